"""Engine overhead per message and per point: acq beside bluesky's RunEngine.

``python -m tests.benchmarks [--quick | --n N] [--repeat R] [--output PATH]``

Three plans run on both engines, on the same trivial in-memory devices (sync methods, no
I/O, statuses that are already finished) with one no-op subscriber:

* ``null``: ``open_run``, N x ``Msg('null')``, ``close_run`` -- the cost of one message;
* ``count``: per point ``checkpoint, trigger, wait, create, read, save`` (bluesky's
  ``count`` without its per-point sleep);
* ``scan``: per point ``checkpoint, set motor, wait, trigger det, wait, create, read
  motor, read det, save`` (bluesky's ``scan``).

The plans are plain generators; acq runs them with ``acq.Msg``, bluesky with its own
``bluesky.utils.Msg``. Each figure is ``(T(N) - T(0)) / N`` where ``T(k)`` is the best
wall time of ``repeat`` calls of the plan with ``k`` points: the fixed cost of a call
(opening and closing the run, bluesky's hand-over to its thread) is left out. At a tiny
N, where that difference drowns in noise, the row falls back to ``T(N) / N`` and says so.

The engine's own overhead is what is left of acq's figure once the plan's cost (its
generator building its Msgs, driven by a loop that does nothing else) and the devices'
cost (the same ``set``/``trigger``/``read`` calls made directly in a loop) are taken out.

The subscriber: bluesky calls its subscribers inline on its loop; the rows marked
``loop`` subscribe acq's no-op the same way (``RE.subscribe(cb, thread=False)``, what
acq's docs advise for a callback that takes no time). The rows marked ``thread`` use
acq's default for a plain function, a worker thread, which keeps a slow callback off
the loop and costs a fast one the hand-over of each document to another core.

acq runs on the caller's loop (``asyncio.run`` here). bluesky's RunEngine runs its own
loop in a thread and is called synchronously, as in a terminal session.

Engines run with ``catalog=None`` so that the engine is measured; the catalog's own
numbers (write, search and read times on SQLite and PostgreSQL) come after, from
``tests/benchmarks/catalog.py`` (``--catalog-backends``, ``--postgres-url``).

Prints a table and writes the rows to ``bench-results.json`` (``--output``).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast

import acq

# -- trivial in-memory devices (bluesky.protocols, sync, no I/O) -----------------------------


class DoneStatus:
    """A status that is finished and successful from birth (``bluesky.protocols.Status``)."""

    __slots__ = ()
    done = True
    success = True

    def add_callback(self, callback: Callable[[DoneStatus], None]) -> None:
        callback(self)

    def exception(self, timeout: float | None = 0.0) -> BaseException | None:
        return None


_DONE = DoneStatus()


class Motor:
    """Readable and Movable: ``set`` returns a finished status."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.parent = None
        self.value = 0.0
        self._described = {name: {"source": f"mem://{name}", "dtype": "number", "shape": []}}

    def describe(self) -> dict[str, Any]:
        return self._described

    def read(self) -> dict[str, Any]:
        return {self.name: {"value": self.value, "timestamp": time.time()}}

    def set(self, value: float) -> DoneStatus:
        self.value = value
        return _DONE

    @property
    def hints(self) -> dict[str, Any]:
        return {"fields": [self.name]}


class Detector(Motor):
    """Readable and Triggerable: ``trigger`` computes a value and returns a finished status."""

    def __init__(self, name: str, motor: Motor) -> None:
        super().__init__(name)
        self.motor = motor

    def trigger(self) -> DoneStatus:
        self.value = 1.0 + self.motor.value
        return _DONE


# -- plans: the same generators on both engines, each with its own Msg class -----------------

MsgFactory = Callable[..., Any]
PlanFactory = Callable[[MsgFactory, Detector, Motor, int], Generator[Any, Any, Any]]


def null_plan(msg: MsgFactory, det: Detector, motor: Motor, n: int) -> Generator[Any, Any, None]:
    yield msg("open_run", plan_name="null_plan")
    null = msg("null")
    for _ in range(n):
        yield null
    yield msg("close_run")


def count_plan(msg: MsgFactory, det: Detector, motor: Motor, n: int) -> Generator[Any, Any, None]:
    yield msg("open_run", plan_name="count_plan")
    for _ in range(n):
        yield msg("checkpoint")
        yield msg("trigger", det, group="det")
        yield msg("wait", None, group="det")
        yield msg("create", name="primary")
        yield msg("read", det)
        yield msg("save")
    yield msg("close_run")


def scan_plan(msg: MsgFactory, det: Detector, motor: Motor, n: int) -> Generator[Any, Any, None]:
    yield msg("open_run", plan_name="scan_plan")
    for i in range(n):
        yield msg("checkpoint")
        yield msg("set", motor, float(i), group="motor")
        yield msg("wait", None, group="motor")
        yield msg("trigger", det, group="det")
        yield msg("wait", None, group="det")
        yield msg("create", name="primary")
        yield msg("read", motor)
        yield msg("read", det)
        yield msg("save")
    yield msg("close_run")


# -- the devices' own cost: the calls each plan's messages make, made directly -------------


def null_devices(det: Detector, motor: Motor, n: int) -> None:
    """A null message calls no device."""


def count_devices(det: Detector, motor: Motor, n: int) -> None:
    for _ in range(n):
        det.trigger()
        det.read()


def scan_devices(det: Detector, motor: Motor, n: int) -> None:
    for i in range(n):
        motor.set(float(i))
        det.trigger()
        motor.read()
        det.read()


@dataclass(frozen=True)
class Case:
    name: str
    unit: str
    plan: PlanFactory
    devices: Callable[[Detector, Motor, int], None]
    scale: int  # this case's N is N_base // scale
    subscribers: tuple[str, ...]  # acq's subscriber modes to measure: "loop", "thread"


CASES = (
    Case("null", "message", null_plan, null_devices, 1, ("loop",)),
    Case("count", "point", count_plan, count_devices, 5, ("loop", "thread")),
    Case("scan", "point", scan_plan, scan_devices, 8, ("loop", "thread")),
)


@dataclass(frozen=True)
class Row:
    name: str
    subscriber: str  # how acq ran its no-op subscriber: "loop" (as bluesky) or "thread"
    unit: str
    n: int
    acq_us: float
    bluesky_us: float
    ratio: float  # bluesky / acq
    baseline_subtracted: bool
    plan_us: float  # the plan's own cost: building its Msgs, on a driver that does nothing
    devices_us: float  # the devices' own cost: the same calls, made directly
    acq_overhead_us: float  # acq_us - plan_us - devices_us: what the engine itself spends


def _noop(name: str, doc: dict[str, Any]) -> None:
    """The one subscriber of every run: takes each document and does nothing."""


def _best(timings: Sequence[float]) -> float:
    return min(timings)


def _per_unit(full: Sequence[float], empty: Sequence[float], n: int) -> tuple[float, bool]:
    """Microseconds per unit, and whether the empty call's time could be subtracted.

    At a tiny N (``--quick``) the difference can drown in noise; then the whole call's
    time per unit is reported instead, flagged ``baseline_subtracted=False``.
    """
    diff = _best(full) - _best(empty)
    if diff > 0:
        return diff / n * 1e6, True
    return _best(full) / n * 1e6, False


# -- acq ---------------------------------------------------------------------------------------


ACQ_REPEAT_FACTOR = 3  # acq's calls are ~50x cheaper than bluesky's: take 3x as many


@dataclass
class AcqTimes:
    """Seconds per repetition: acq with N and 0 points, the plan alone, the devices alone."""

    full: list[float]
    empty: list[float]
    plan: list[float]
    devices: list[float]


async def _acq_times(case: Case, n: int, repeat: int, subscriber: str) -> AcqTimes:
    """acq's calls, interleaved with the plan and the devices alone.

    The machine's speed drifts by tens of percent over seconds (a shared 2-core VM), so
    the four figures are taken in turn within each repetition: the best of each then
    comes from the same fast stretches, and ``acq - plan - devices`` stays meaningful.
    """
    motor = Motor("motor")
    det = Detector("det", motor)
    RE = acq.RunEngine(catalog=None)  # the engine alone (catalog.py measures storage)
    RE.subscribe(_noop, thread=subscriber == "thread")
    await RE(case.plan(acq.Msg, det, motor, min(n, 100)))  # warm up
    times = AcqTimes([], [], [], [])
    for _ in range(repeat):
        for k, out in ((0, times.empty), (n, times.full)):
            plan = case.plan(acq.Msg, det, motor, k)
            gc.collect()
            t0 = time.perf_counter()
            result = await RE(plan)
            out.append(time.perf_counter() - t0)
            if result.exit_status != "success":
                raise RuntimeError(f"acq: {case.name} ended with {result.exit_status}")
        times.plan.append(_plan_time(case, n))
        times.devices.append(_device_time(case, n))
    return times


def _plan_time(case: Case, n: int) -> float:
    """The plan alone, driven by a loop that only sends None: its own cost per call."""
    plan = case.plan(acq.Msg, Detector("det", Motor("motor")), Motor("motor"), n)
    gc.collect()
    t0 = time.perf_counter()
    for _msg in plan:
        pass
    return time.perf_counter() - t0


def _device_time(case: Case, n: int) -> float:
    """The devices alone: the calls the plan's messages make, made directly."""
    motor = Motor("motor")
    det = Detector("det", motor)
    gc.collect()
    t0 = time.perf_counter()
    case.devices(det, motor, n)
    return time.perf_counter() - t0


# -- bluesky -----------------------------------------------------------------------------------


def _bluesky_times(case: Case, n: int, repeat: int) -> tuple[list[float], list[float]]:
    from bluesky import RunEngine as BlueskyRE
    from bluesky.run_engine import get_bluesky_event_loop, set_bluesky_event_loop
    from bluesky.utils import Msg as BlueskyMsg

    previous_loop = get_bluesky_event_loop()
    RE_bs = BlueskyRE({}, call_returns_result=True)
    try:
        RE_bs.subscribe(_noop)
        motor = Motor("motor")
        det = Detector("det", motor)
        RE_bs(case.plan(BlueskyMsg, det, motor, min(n, 100)))  # warm up
        full: list[float] = []
        empty: list[float] = []
        for _ in range(repeat):
            for k, out in ((0, empty), (n, full)):
                plan = case.plan(BlueskyMsg, det, motor, k)
                gc.collect()
                t0 = time.perf_counter()
                result = RE_bs(plan)
                out.append(time.perf_counter() - t0)
                if result.exit_status != "success":
                    raise RuntimeError(f"bluesky: {case.name} ended with {result.exit_status}")
        return full, empty
    finally:
        loop = RE_bs.loop
        loop.call_soon_threadsafe(loop.stop)
        RE_bs._th.join(timeout=10)  # pyright: ignore[reportPrivateUsage]
        if not loop.is_running():
            loop.close()
        set_bluesky_event_loop(previous_loop)


# -- the run -----------------------------------------------------------------------------------


def run(n_base: int, repeat: int) -> list[Row]:
    """Measure every case on both engines; return the rows of the table."""
    rows: list[Row] = []
    for case in CASES:
        n = max(n_base // case.scale, 1)
        bs_full, bs_empty = _bluesky_times(case, n, repeat)
        bs_us, bs_sub = _per_unit(bs_full, bs_empty, n)
        for subscriber in case.subscribers:
            times = asyncio.run(_acq_times(case, n, repeat * ACQ_REPEAT_FACTOR, subscriber))
            acq_us, acq_sub = _per_unit(times.full, times.empty, n)
            plan_us = _best(times.plan) / n * 1e6
            devices_us = _best(times.devices) / n * 1e6
            rows.append(
                Row(
                    case.name,
                    subscriber,
                    case.unit,
                    n,
                    acq_us,
                    bs_us,
                    bs_us / acq_us if acq_us > 0 else float("inf"),
                    acq_sub and bs_sub,
                    plan_us,
                    devices_us,
                    max(acq_us - plan_us - devices_us, 0.0),
                )
            )
    return rows


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "?"


def report(rows: Sequence[Row], n_base: int, repeat: int, elapsed: float) -> dict[str, Any]:
    """The JSON document written to the output file."""
    return {
        "benchmark": "engine overhead, trivial in-memory devices, one no-op subscriber",
        "method": "(best T(N) - best T(0)) / N over `repeat` calls (acq: 3x as many)",
        "n_base": n_base,
        "repeat": repeat,
        "elapsed_s": round(elapsed, 3),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "versions": {d: _version(d) for d in ("acq", "bluesky", "event-model", "pydantic")},
        "rows": [asdict(r) for r in rows],
    }


def format_table(rows: Sequence[Row]) -> str:
    """The rows as a fixed-width text table."""
    head = (
        f"{'case':<6} {'subscriber':<10} {'per':<8} {'N':>6} {'acq µs':>7} "
        f"{'bluesky µs':>10} {'bluesky/acq':>11} {'plan µs':>7} {'devices µs':>10} "
        f"{'acq engine µs':>13}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r.name:<6} {r.subscriber:<10} {r.unit:<8} {r.n:>6} {r.acq_us:>7.2f} "
            f"{r.bluesky_us:>10.2f} {r.ratio:>10.1f}x {r.plan_us:>7.2f} {r.devices_us:>10.2f} "
            f"{r.acq_overhead_us:>13.2f}"
            f"{'' if r.baseline_subtracted else '  (whole call / N)'}"
        )
    lines.append(
        "plan µs: the plan generator alone (building its Msgs); devices µs: the same device "
        "calls made directly;\nacq engine µs = acq - plan - devices (target: <= 10 per point); "
        "subscriber: acq's no-op on the loop, as bluesky's, or on its default worker thread"
    )
    return "\n".join(lines)


def _soak(n: int) -> dict[str, Any]:
    """Run the soak of ``n`` points in a fresh process (so its peak RSS is its own)."""
    out = subprocess.run(
        [sys.executable, "-m", "tests.benchmarks.soak", str(n)],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    return cast(dict[str, Any], json.loads(out.stdout.strip().splitlines()[-1]))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark, print the table, write the JSON; return the exit code."""
    parser = argparse.ArgumentParser(prog="python -m tests.benchmarks", description=__doc__)
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="tiny N: a smoke test, not a figure")
    size.add_argument(
        "--n", type=int, default=None, help="messages in the null case (default 40000)"
    )
    parser.add_argument("--repeat", type=int, default=None, help="calls per case (best is kept)")
    parser.add_argument(
        "--output", type=Path, default=Path("bench-results.json"), help="where to write JSON"
    )
    parser.add_argument(
        "--catalog-backends",
        default="sqlite,postgresql",
        help="catalog benchmark backends, comma-separated ('' for none)",
    )
    parser.add_argument("--postgres-url", default=None, help="catalog benchmark: use this database")
    args = parser.parse_args(argv)
    n_base = 200 if args.quick else (args.n or 40_000)
    repeat = args.repeat or (1 if args.quick else 5)
    if n_base < 1 or repeat < 1:
        parser.error("--n and --repeat must be at least 1")

    t0 = time.perf_counter()
    rows = run(n_base, repeat)
    elapsed = time.perf_counter() - t0
    print(format_table(rows))
    print(
        f"(N: null {n_base}, count N/5, scan N/8; best of {repeat} calls for bluesky, "
        f"{repeat * ACQ_REPEAT_FACTOR} for acq; {elapsed:.1f} s total)"
    )
    soaks = [_soak(n) for n in ((1_000, 10_000) if args.quick else (10_000, 1_000_000))]
    print("soak: count with a checkpoint per point, one subscriber, each in a fresh process")
    for s in soaks:
        print(
            f"  {s['points']:>9} points  {s['seconds']:>7.2f} s  peak RSS {s['peak_rss_mib']} MiB"
        )
    from . import catalog as catalog_benchmark  # it uses this module's devices and plans

    backends = [b for b in args.catalog_backends.split(",") if b]
    catalog_numbers = catalog_benchmark.run(args.quick, backends, args.postgres_url)
    from . import scenarios  # the rest of issue #8's rows (sim devices, subscribers, fly, ...)

    scenario_rows = scenarios.run(args.quick)
    print(scenarios.format_rows(scenario_rows))
    from . import service  # issue #17: status latency and a WebSocket client, in a real service

    service_rows = service.run(args.quick)
    print(service.format_rows(service_rows))
    from . import remote  # issue #18: the relay's cost to a scan, NATS's publish rate

    remote_rows = remote.run(args.quick)
    print(remote.format_rows(remote_rows))
    document = report(rows, n_base, repeat, time.perf_counter() - t0)
    document["soak"] = soaks
    document["scenarios"] = scenario_rows
    document["catalog"] = catalog_numbers
    document["service"] = service_rows
    document["remote"] = remote_rows
    args.output.write_text(json.dumps(document, indent=2) + "\n")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
