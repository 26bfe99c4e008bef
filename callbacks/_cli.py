"""The ``acq`` command line: ``acq demo`` runs a scan on the embedded defaults."""

from __future__ import annotations

import argparse
import asyncio
import math
import time
from collections.abc import AsyncGenerator, Sequence
from typing import Any

from acq import Msg, RunEngine

__all__ = ["main"]


class _DemoMotor:
    """An in-memory motor: moves instantly (until the simulated beamline replaces it)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.parent = None
        self.position = 0.0

    def describe(self) -> dict[str, Any]:
        return {
            self.name: {
                "source": "demo://motor",
                "dtype": "number",
                "shape": [],
                "units": "mm",
                "precision": 3,
            }
        }

    def read(self) -> dict[str, Any]:
        return {self.name: {"value": self.position, "timestamp": time.time()}}

    def set(self, value: float) -> None:
        self.position = float(value)

    @property
    def hints(self) -> dict[str, Any]:
        return {"fields": [self.name]}


class _DemoDetector:
    """A Gaussian peak over the motor position (reference/003's SynGauss)."""

    def __init__(self, name: str, motor: _DemoMotor, center: float = 0.0, sigma: float = 1.0):
        self.name = name
        self.parent = None
        self.motor = motor
        self.center = center
        self.sigma = sigma
        self.value = 0.0

    def describe(self) -> dict[str, Any]:
        return {
            self.name: {
                "source": "demo://det",
                "dtype": "number",
                "shape": [],
                "units": "counts",
                "precision": 4,
            }
        }

    def trigger(self) -> None:
        x = self.motor.position
        self.value = math.exp(-((x - self.center) ** 2) / (2 * self.sigma**2))

    def read(self) -> dict[str, Any]:
        return {self.name: {"value": self.value, "timestamp": time.time()}}

    @property
    def hints(self) -> dict[str, Any]:
        return {"fields": [self.name]}


async def _demo_scan(
    det: _DemoDetector, motor: _DemoMotor, start: float, stop: float, num: int
) -> AsyncGenerator[Msg, Any]:
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
    motor = _DemoMotor("motor")
    det = _DemoDetector("det", motor)
    result = await RE(_demo_scan(det, motor, -3.0, 3.0, num), _Table(), purpose="demo")
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
