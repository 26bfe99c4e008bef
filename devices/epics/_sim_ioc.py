"""The simulated beamline IOC: a script run as its own process by :func:`start_test_ioc`.

Standalone on purpose: it imports only the standard library and softioc
(pythonSoftIOC), never acq or ophyd-async, so the IOC process starts fast and stays
independent of the client it serves. Run it by path::

    python .../acq/devices/epics/_sim_ioc.py PREFIX

It serves, under ``PREFIX``, over Channel Access and (through pvxs's QSRV) PV Access:

* two motors, ``{PREFIX}m1:`` and ``{PREFIX}m2:``, with records named after the motor
  record's fields: ``VAL`` (setpoint; a put with completion finishes when the move
  does), ``RBV`` (readback, moving toward ``VAL`` at ``VELO`` units/s, updated at
  50 Hz), ``VELO``, ``DMOV`` (1 when done moving) and ``STOP`` (write 1: stop where
  the motor is, ``VAL`` becomes the readback and the pending put completes);
* a scaler, ``{PREFIX}sc:``, with records named after the scaler record's fields:
  ``CNT`` (``Done``/``Count``; a put of ``Count`` with completion finishes when the
  count does), ``TP`` (preset time, s), ``T`` (elapsed time, s) and ``S1``..``S4``:
  ``S1`` the 10 MHz clock, ``S2`` a monitor counting 10 000/s, ``S3`` a detector
  whose rate is a Gaussian of ``m1``'s readback (100 000/s at 0, sigma 1) and ``S4``
  one of both motors' readbacks.

Protocol with the parent: it prints :data:`READY_MARKER` (flushed) once the IOC
serves its PVs; it exits when a line ``exit()`` arrives on stdin, when stdin closes
(so a parent that dies leaves no orphan), and on SIGTERM (handler installed before
the marker is printed).
"""

from __future__ import annotations

import asyncio
import math
import signal
import sys
import time
from types import FrameType

from softioc import asyncio_dispatcher, builder, softioc

READY_MARKER = "acq-sim-ioc: serving"
CLOCK_HZ = 1e7
UPDATE_PERIOD = 0.02


class SimMotor:
    """Motor-record-like records whose readback moves over time."""

    def __init__(self, prefix: str) -> None:
        self._stop = False
        self.rbv = builder.aIn(prefix + "RBV", initial_value=0.0, EGU="mm", PREC=3)
        self.dmov = builder.longIn(prefix + "DMOV", initial_value=1)
        self.velo = builder.aOut(prefix + "VELO", initial_value=1.0, EGU="mm/s", PREC=3, DRVL=0.0)
        self.val = builder.aOut(
            prefix + "VAL",
            initial_value=0.0,
            EGU="mm",
            PREC=3,
            blocking=True,
            always_update=True,
            on_update=self.move,
        )
        self.stop = builder.longOut(
            prefix + "STOP", initial_value=0, always_update=True, on_update=self.request_stop
        )

    async def move(self, target: float) -> None:
        """Move the readback toward ``target`` at the current velocity."""
        self._stop = False
        position = float(self.rbv.get())
        self.dmov.set(0)
        last = time.monotonic()
        while position != target and not self._stop:
            await asyncio.sleep(UPDATE_PERIOD)
            now = time.monotonic()
            step = max(float(self.velo.get()), 0.0) * (now - last)
            last = now
            if abs(target - position) <= step:
                position = target
            else:
                position += math.copysign(step, target - position)
            self.rbv.set(position)
        if self._stop:
            self.val.set(position, process=False)
        self.dmov.set(1)

    def request_stop(self, value: int) -> None:
        """Stop the move in progress, if any (the motor record's ``STOP``)."""
        if value:
            self._stop = True

    def position(self) -> float:
        """The current readback."""
        return float(self.rbv.get())


class SimScaler:
    """Scaler-record-like records counting for a preset time."""

    def __init__(self, prefix: str, m1: SimMotor, m2: SimMotor) -> None:
        self._m1 = m1
        self._m2 = m2
        self.tp = builder.aOut(prefix + "TP", initial_value=1.0, EGU="s", PREC=3, DRVL=0.0)
        self.t = builder.aIn(prefix + "T", initial_value=0.0, EGU="s", PREC=3)
        self.channels = [
            builder.aIn(f"{prefix}S{i}", initial_value=0.0, EGU="cts", PREC=0) for i in range(1, 5)
        ]
        self.cnt = builder.boolOut(
            prefix + "CNT",
            ZNAM="Done",
            ONAM="Count",
            initial_value=False,
            blocking=True,
            always_update=True,
            on_update=self.count,
        )

    def _rates(self) -> list[float]:
        x, y = self._m1.position(), self._m2.position()
        return [
            CLOCK_HZ,
            1e4,
            1e5 * math.exp(-(x**2) / 2),
            1e5 * math.exp(-(x**2 + y**2) / 2),
        ]

    async def count(self, value: bool) -> None:
        """Count for the preset time, publishing the counts as they grow."""
        if not value:
            return
        preset = max(float(self.tp.get()), 0.0)
        counts = [0.0] * len(self.channels)
        start = time.monotonic()
        elapsed = 0.0
        while elapsed < preset:
            await asyncio.sleep(min(5 * UPDATE_PERIOD, preset - elapsed))
            before, elapsed = elapsed, min(time.monotonic() - start, preset)
            counts = [
                c + r * (elapsed - before) for c, r in zip(counts, self._rates(), strict=True)
            ]
            self.t.set(elapsed)
            for record, c in zip(self.channels, counts, strict=True):
                record.set(round(c))
        self.cnt.set(False, process=False)


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def main(prefix: str) -> None:
    """Build the records, start the IOC, announce it, and serve until told to stop."""
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    dispatcher = asyncio_dispatcher.AsyncioDispatcher()
    m1 = SimMotor(prefix + "m1:")
    m2 = SimMotor(prefix + "m2:")
    SimScaler(prefix + "sc:", m1, m2)
    builder.LoadDatabase()
    softioc.iocInit(dispatcher)
    print(READY_MARKER, flush=True)
    try:
        for line in sys.stdin:
            if line.strip() in ("exit()", "exit"):
                break
    except (SystemExit, KeyboardInterrupt):  # SIGTERM, or Ctrl-C in a terminal
        pass
    softioc.safeEpicsExit(0)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(f"usage: {sys.argv[0]} PREFIX")
    main(sys.argv[1])
