"""Soak: a long count with a checkpoint per point; peak memory must not grow with length.

``python -m tests.benchmarks.soak N`` runs N points in a fresh process and prints one
JSON line: the points, the wall time, and the process's peak RSS. The main benchmark runs
it at two lengths (10 000 and 1 000 000 points) so that the two peaks can be compared.
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import time
from collections.abc import Generator
from typing import Any

import acq
from tests.benchmarks.__main__ import Detector, Motor


def soak_plan(det: Detector, n: int) -> Generator[Any, Any, None]:
    """``count`` with a checkpoint per point: the replay cache is cleared at each one."""
    yield acq.Msg("open_run", plan_name="soak")
    for _ in range(n):
        yield acq.Msg("checkpoint")
        yield acq.Msg("trigger", det, group="det")
        yield acq.Msg("wait", None, group="det")
        yield acq.Msg("create", name="primary")
        yield acq.Msg("read", det)
        yield acq.Msg("save")
    yield acq.Msg("close_run")


class _Counter:
    """The one subscriber: counts events (keeps nothing)."""

    def __init__(self) -> None:
        self.events = 0

    def __call__(self, name: str, doc: dict[str, Any]) -> None:
        if name == "event":
            self.events += 1


async def soak(n: int) -> dict[str, Any]:
    """Run ``n`` points; return points, seconds and peak RSS in MiB."""
    det = Detector("det", Motor("motor"))
    RE = acq.RunEngine(catalog=None)  # memory of the engine itself
    counter = _Counter()
    RE.subscribe(counter)  # the default: a worker thread
    t0 = time.perf_counter()
    result = await RE(soak_plan(det, n))
    elapsed = time.perf_counter() - t0
    if result.exit_status != "success" or counter.events != n:
        raise RuntimeError(f"soak: {result.exit_status}, {counter.events} of {n} events")
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"points": n, "seconds": round(elapsed, 3), "peak_rss_mib": round(peak_kib / 1024, 1)}


if __name__ == "__main__":
    print(json.dumps(asyncio.run(soak(int(sys.argv[1])))))
