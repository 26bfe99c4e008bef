"""The ``acq`` command line: ``acq demo`` runs a scan on the simulated beamline."""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import AsyncGenerator, Sequence
from typing import Any

from acq.devices.sim import sim_beamline

from acq import Msg, RunEngine

__all__ = ["main"]


async def _demo_scan(
    det: Any, motor: Any, start: float, stop: float, num: int
) -> AsyncGenerator[Msg, Any]:
    """A step scan, written out message by message (acq.plans.scan will replace it)."""
    step = (stop - start) / (num - 1) if num > 1 else 0.0
    yield Msg(
        "open_run",
        plan_name="demo_scan",
        detectors=[det.name],
        motors=[motor.name],
        num_points=num,
        hints={"dimensions": [([motor.name], "primary")]},
    )
    for i in range(num):
        yield Msg("checkpoint")
        yield Msg("set", motor, start + i * step, group="move")
        yield Msg("wait", group="move")
        yield Msg("trigger", det, group="det")
        yield Msg("wait", group="det")
        yield Msg("create", name="primary")
        yield Msg("read", motor)
        yield Msg("read", det)
        yield Msg("save")
    yield Msg("close_run")


class _Table:
    """Prints each run's events as rows (a plain stand-in until LiveTable exists)."""

    def __init__(self) -> None:
        self.keys: list[str] = []
        self.start: dict[str, Any] = {}

    def __call__(self, name: str, doc: dict[str, Any]) -> None:
        if name == "start":
            self.start = doc
            print(f"Run {doc['uid'][:8]}  scan_id={doc['scan_id']}  plan={doc.get('plan_name')}")
        elif name == "descriptor":
            self.keys = list(doc["data_keys"])
            print("+------+-----------+" + "+".join(["------------"] * len(self.keys)) + "+")
            print("| seq  | time      |" + "|".join(f"{k:>11} " for k in self.keys) + "|")
            print("+------+-----------+" + "+".join(["------------"] * len(self.keys)) + "+")
        elif name == "event":
            t = time.strftime("%H:%M:%S", time.localtime(doc["time"]))
            cells = "|".join(f"{doc['data'][k]:>11.4f} " for k in self.keys)
            print(f"| {doc['seq_num']:>4} | {t:>9} |{cells}|")
        elif name == "stop":
            print("+------+-----------+" + "+".join(["------------"] * len(self.keys)) + "+")
            duration = doc["time"] - self.start.get("time", doc["time"])
            print(
                f"exit_status={doc['exit_status']}  events={doc.get('num_events')}  "
                f"duration={duration:.3f} s"
            )


async def _demo(num: int) -> int:
    RE = RunEngine()
    beamline = await sim_beamline(velocity=50.0, acquire_time=0.01, seed=0)
    result = await RE(
        _demo_scan(beamline.det, beamline.x, -3.0, 3.0, num), _Table(), purpose="demo"
    )
    return 0 if result.exit_status == "success" else 1


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``acq`` command."""
    parser = argparse.ArgumentParser(prog="acq", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="run a demo scan and print it as a table")
    demo.add_argument("--num", type=int, default=11, help="number of points (default 11)")
    args = parser.parse_args(argv)
    if args.command == "demo":
        if args.num < 1:
            parser.error(f"--num must be at least 1, got {args.num}")
        return asyncio.run(_demo(args.num))
    return 2  # pragma: no cover -- argparse rejects unknown commands
