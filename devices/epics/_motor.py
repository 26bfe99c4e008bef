"""A motor on EPICS: setpoint, readback, velocity, done-moving and stop.

Its PVs are the motor record's field names appended to a prefix, so the same class
drives a real motor record (prefix ``"BL:MOT1."``, giving ``BL:MOT1.VAL``) and the
simulated motors of the test IOC (records named ``{prefix}m1:VAL`` etc., prefix
``"{prefix}m1:"``). A ``ca://`` or ``pva://`` prefix picks the protocol, as everywhere
in ophyd-async (Channel Access if none).

Why not ``ophyd_async.epics.motor.Motor``: it always appends ``.FIELD`` and connects
some twenty motor-record fields (resolution, limits, encoder, offsets, ...), which only
a real motor record serves (EPICS record names cannot contain a dot, and the motor
record is not part of any package installable from PyPI). This class keeps its move
semantics (a put with completion on ``VAL``; stop writes 1 to ``STOP`` only if the
motor is moving) and its signal names, on the five fields a daily scan needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from ophyd_async.core import (
    DEFAULT_TIMEOUT,
    MovableLogic,
    SignalR,
    SignalW,
    StandardMovable,
    StandardReadable,
    TimeoutCalculator,
)
from ophyd_async.core import StandardReadableFormat as Format
from ophyd_async.epics.core import epics_signal_r, epics_signal_rw, epics_signal_w

__all__ = ["Motor", "MotorMoveError"]


class MotorMoveError(RuntimeError):
    """A move's put completed but the motor does not report being done."""


@dataclass
class _MotorMoveLogic(MovableLogic[float]):
    """How a :class:`Motor` times, performs and stops a move."""

    velocity: SignalR[float]
    motor_done_move: SignalR[int]
    motor_stop: SignalW[int]
    margin: float

    async def stop(self) -> None:
        """Write 1 to ``STOP`` if the motor is moving (so stopping twice is harmless)."""
        if not await self.motor_done_move.get_value():
            await self.motor_stop.set(1)

    async def calculate_timeout(self, old_position: float, new_position: float) -> float:
        """The move's duration at the current velocity plus the device's timeout."""
        velocity = await self.velocity.get_value()
        if velocity == 0:
            raise ValueError(
                f"{self.readback.name}: velocity is 0, so the move to {new_position} would "
                "never finish; set the velocity first"
            )
        return abs(new_position - old_position) / abs(velocity) + self.margin

    async def move(self, new_position: float, timeout: TimeoutCalculator) -> None:  # noqa: ASYNC109
        """Put ``new_position`` with completion, then check that the motor is done.

        The check matters over Channel Access: a put whose connection drops (the IOC
        died) completes as a *success* in ophyd-async (aioca's ``CANothing`` error
        is falsy, and the retry wrapper of ``SignalW.set`` takes it for no error), so
        the done-moving read is what reports the loss, as a timeout naming the PV.
        """
        await self.setpoint.set(new_position, timeout=timeout())
        if not await self.motor_done_move.get_value():
            raise MotorMoveError(
                f"{self.readback.name}: the move to {new_position} completed but the motor "
                "is still moving (done-moving is 0)"
            )


class Motor(StandardReadable, StandardMovable[float]):
    """A motor with the motor record's setpoint, readback, velocity, done-moving, stop.

    ``read()`` gives the readback under the motor's own name (its only hint);
    velocity is configuration. ``set()`` puts the setpoint with completion (it
    finishes when the motion does) and returns a
    :class:`~ophyd_async.core.WatchableAsyncStatus` reporting progress; its timeout
    is the move's duration at the current velocity plus ``timeout``. ``stop()``
    follows ophyd-async: a pending ``set`` fails with ``RuntimeError`` unless
    ``stop(success=True)``; the motor stays where it stopped.

    Args:
        prefix: Prepended to the field names ``VAL``, ``RBV``, ``VELO``, ``DMOV`` and
            ``STOP``; may start with ``ca://`` or ``pva://``. ``"BL:MOT1."`` for a
            motor record, ``"pva://{prefix}m1:"`` for a motor of the test IOC.
        name: Device name; also the data key of the readback.
        timeout: Seconds allowed for each read or write of a PV, and added to a
            move's expected duration; a dead IOC is reported after this long.

    Attributes:
        user_setpoint: ``VAL``, the target position.
        user_readback: ``RBV``, the position.
        velocity: ``VELO``, units per second.
        motor_done_move: ``DMOV``, 1 when not moving.
        motor_stop: ``STOP``; write 1 to stop.
    """

    def __init__(self, prefix: str, name: str = "", *, timeout: float = DEFAULT_TIMEOUT) -> None:
        with self.add_children_as_readables(Format.HINTED_SIGNAL):
            self.user_readback = epics_signal_r(float, prefix + "RBV", timeout=timeout)
        with self.add_children_as_readables(Format.CONFIG_SIGNAL):
            self.velocity = epics_signal_rw(float, prefix + "VELO", timeout=timeout)
        self.user_setpoint = epics_signal_rw(float, prefix + "VAL", timeout=timeout)
        self.motor_done_move = epics_signal_r(int, prefix + "DMOV", timeout=timeout)
        # A put with completion on STOP would wait for the move it stops; don't wait.
        self.motor_stop = epics_signal_w(int, prefix + "STOP", timeout=timeout, wait=False)
        self._timeout = timeout
        super().__init__(name=name)

    @cached_property
    def movable_logic(self) -> _MotorMoveLogic:
        """The logic StandardMovable uses to time, perform and stop a move."""
        return _MotorMoveLogic(
            setpoint=self.user_setpoint,
            readback=self.user_readback,
            velocity=self.velocity,
            motor_done_move=self.motor_done_move,
            motor_stop=self.motor_stop,
            margin=self._timeout,
        )
