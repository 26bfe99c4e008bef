"""A simulated motor whose readback moves over (loop) time.

The motor follows a trapezoidal velocity profile (constant acceleration for
``acceleration_time``, cruise at ``velocity``, symmetric deceleration) and publishes
its readback every ``update_period`` seconds of *event-loop* time, so it also runs
on virtual time (e.g. looptime) unchanged.

It is an ordinary ophyd-async :class:`~ophyd_async.core.StandardMovable`: ``set``
returns a :class:`~ophyd_async.core.WatchableAsyncStatus` and ``stop`` follows
ophyd-async's convention (``stop()`` fails the pending ``set`` status with
``RuntimeError``, ``stop(success=True)`` completes it). The readback stays where the
motion was interrupted.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

from ophyd_async.core import (
    DEFAULT_TIMEOUT,
    DeviceMock,
    MovableLogic,
    SignalRW,
    StandardMovable,
    StandardReadable,
    TimeoutCalculator,
    default_mock_class,
    soft_signal_r_and_setter,
    soft_signal_rw,
)
from ophyd_async.core import StandardReadableFormat as Format

from ._positions import values

__all__ = ["Motor", "MotorLimitsError"]


class MotorLimitsError(ValueError):
    """A requested position is outside a motor's soft limits (or not finite)."""


@dataclass(frozen=True)
class _Trajectory:
    """Trapezoidal (or triangular, for short moves) motion from start to target.

    Attributes:
        start: Position at t = 0.
        target: Position at t = ``duration``.
        velocity: Cruise speed, > 0.
        acceleration_time: Time to reach cruise speed, >= 0 (0: instant speed-up).
    """

    start: float
    target: float
    velocity: float
    acceleration_time: float

    @cached_property
    def _distance(self) -> float:
        return abs(self.target - self.start)

    @cached_property
    def _ramp_time(self) -> float:
        """Time spent accelerating (and, equally, decelerating)."""
        if self.acceleration_time <= 0:
            return 0.0
        acceleration = self.velocity / self.acceleration_time
        # A short move never reaches cruise speed: its profile is a triangle.
        return min(self.acceleration_time, math.sqrt(self._distance / acceleration))

    @cached_property
    def _peak_velocity(self) -> float:
        if self._ramp_time == 0:
            return self.velocity
        return self.velocity * self._ramp_time / self.acceleration_time

    @cached_property
    def duration(self) -> float:
        """Total time of the move in seconds."""
        ramp, peak = self._ramp_time, self._peak_velocity
        cruise_distance = self._distance - peak * ramp
        return 2 * ramp + max(cruise_distance, 0.0) / peak

    def position(self, t: float) -> float:
        """Position at ``t`` seconds after the start of the move."""
        if t <= 0:
            return self.start
        if t >= self.duration:
            return self.target
        ramp, peak = self._ramp_time, self._peak_velocity
        if t < ramp:
            travelled = peak * t * t / (2 * ramp)
        elif t <= self.duration - ramp:
            travelled = peak * ramp / 2 + peak * (t - ramp)
        else:
            left = self.duration - t
            travelled = self._distance - peak * left * left / (2 * ramp)
        return self.start + math.copysign(travelled, self.target - self.start)


@dataclass
class _MotorMoveLogic(MovableLogic[float]):
    """How a :class:`Motor` checks, times and performs a move."""

    readback_set: Callable[[float], None]
    velocity: SignalRW[float]
    acceleration_time: SignalRW[float]
    low_limit_travel: SignalRW[float]
    high_limit_travel: SignalRW[float]
    update_period: float
    motor_name: Callable[[], str]
    # Bumped by every move and stop: a move superseded by a newer one (or stopped)
    # stops publishing. Polled, because task cancellation alone is lost if it lands
    # while a signal put is completing.
    _generation: int = field(default=0, init=False)

    async def stop(self) -> None:
        """Make the setpoint the current readback (the move task is cancelled)."""
        self._generation += 1
        await self.setpoint.set(await self.readback.get_value())

    async def check_move(self, new_position: float) -> None:
        """Refuse a non-finite position or one outside the soft limits."""
        name = self.motor_name()
        if not math.isfinite(new_position):
            raise MotorLimitsError(f"{name}: cannot move to non-finite position {new_position}")
        low, high = await values(self.low_limit_travel, self.high_limit_travel)
        if low == high == 0:  # EPICS motor-record convention: no soft limits
            return
        if new_position < low:
            raise MotorLimitsError(
                f"{name}: requested position {new_position} is below the low soft limit "
                f"{low} ({name}-low_limit_travel); allowed range is [{low}, {high}]"
            )
        if new_position > high:
            raise MotorLimitsError(
                f"{name}: requested position {new_position} is above the high soft limit "
                f"{high} ({name}-high_limit_travel); allowed range is [{low}, {high}]"
            )

    async def _trajectory(self, old_position: float, new_position: float) -> _Trajectory:
        velocity, acceleration_time = await values(self.velocity, self.acceleration_time)
        return _Trajectory(old_position, new_position, abs(velocity), abs(acceleration_time))

    async def calculate_timeout(self, old_position: float, new_position: float) -> float | None:
        """Allow the move's duration plus ophyd-async's default timeout."""
        trajectory = await self._trajectory(old_position, new_position)
        if trajectory.velocity == 0:
            return DEFAULT_TIMEOUT
        return trajectory.duration + DEFAULT_TIMEOUT

    async def move(self, new_position: float, timeout: TimeoutCalculator) -> None:  # noqa: ASYNC109
        """Move the readback towards ``new_position``, publishing it as it goes."""
        self._generation += 1
        generation = self._generation
        old_position = await self.readback.get_value()
        trajectory = await self._trajectory(old_position, new_position)
        await self.setpoint.set(new_position)
        if trajectory.velocity == 0 or old_position == new_position:
            self.readback_set(new_position)
            return
        loop = asyncio.get_running_loop()
        start = loop.time()
        async with asyncio.timeout(timeout()):
            while True:
                elapsed = loop.time() - start
                await asyncio.sleep(min(self.update_period, trajectory.duration - elapsed))
                if generation != self._generation:
                    return  # a newer set() or stop() took over
                elapsed = loop.time() - start
                if trajectory.duration - elapsed < 1e-6:
                    # asyncio runs a timer due within its clock resolution at once: on
                    # virtual time a float-rounding remainder would never elapse
                    elapsed = trajectory.duration
                self.readback_set(trajectory.position(elapsed))
                if elapsed >= trajectory.duration:
                    return


@default_mock_class(DeviceMock)
class Motor(StandardReadable, StandardMovable[float]):
    """A simulated motor with velocity, acceleration time and soft limits.

    ``read()`` gives the readback under the motor's own name (e.g. ``{"x": ...}``),
    which is its only hint; velocity, acceleration time and soft limits are
    configuration. ``set()`` checks the limits before any motion, then moves the
    readback over time, publishing it every ``update_period`` seconds, and returns a
    :class:`~ophyd_async.core.WatchableAsyncStatus` reporting progress.

    Args:
        name: Device name; also the data key of the readback.
        initial_value: Starting position.
        velocity: Cruise speed in units per second; 0 moves instantly.
        acceleration_time: Seconds to reach cruise speed.
        limits: ``(low, high)`` soft limits. ``None`` (or ``(0, 0)``, the EPICS
            motor-record convention) means no limits.
        instant: Move instantly regardless of ``velocity`` (sets velocity to 0).
        units: Engineering units of the position.
        precision: Display precision of the position.
        update_period: Seconds of loop time between readback updates while moving.
    """

    def __init__(
        self,
        name: str = "",
        *,
        initial_value: float = 0.0,
        velocity: float = 1.0,
        acceleration_time: float = 0.0,
        limits: tuple[float, float] | None = None,
        instant: bool = False,
        units: str = "mm",
        precision: int = 3,
        update_period: float = 0.01,
    ) -> None:
        if update_period <= 0:
            raise ValueError(f"update_period must be > 0, got {update_period}")
        low, high = limits if limits is not None else (0.0, 0.0)
        if low > high:
            raise ValueError(f"limits must be (low, high) with low <= high, got {limits}")
        with self.add_children_as_readables(Format.HINTED_SIGNAL):
            self.user_readback, self._user_readback_set = soft_signal_r_and_setter(
                float, initial_value, units=units, precision=precision
            )
        with self.add_children_as_readables(Format.CONFIG_SIGNAL):
            self.velocity = soft_signal_rw(
                float, 0.0 if instant else velocity, units=f"{units}/s", precision=precision
            )
            self.acceleration_time = soft_signal_rw(float, acceleration_time, units="s")
            self.low_limit_travel = soft_signal_rw(float, low, units=units, precision=precision)
            self.high_limit_travel = soft_signal_rw(float, high, units=units, precision=precision)
        self.user_setpoint = soft_signal_rw(float, initial_value, units=units, precision=precision)
        self._update_period = update_period
        super().__init__(name=name)

    async def check_value(self, value: float) -> None:
        """Refuse ``value`` as :meth:`set` would, without moving (``bluesky.protocols.Checkable``).

        Raises:
            MotorLimitsError: ``value`` is outside the soft limits or not finite.
        """
        await self.movable_logic.check_move(value)

    @cached_property
    def movable_logic(self) -> _MotorMoveLogic:
        """The logic StandardMovable uses to check, time, move and stop."""
        return _MotorMoveLogic(
            setpoint=self.user_setpoint,
            readback=self.user_readback,
            readback_set=self._user_readback_set,
            velocity=self.velocity,
            acceleration_time=self.acceleration_time,
            low_limit_travel=self.low_limit_travel,
            high_limit_travel=self.high_limit_travel,
            update_period=self._update_period,
            motor_name=lambda: self.name,
        )
