"""A simulated motor whose readback moves over (loop) time.

The motor follows a trapezoidal velocity profile (constant acceleration for
``acceleration_time``, cruise at ``velocity``, symmetric deceleration). Its position
is a function of *event-loop* time: ``read()`` and ``locate()`` give the position at
that instant (publishing it to the readback's subscribers), and while moving the
readback is also published every ``update_period`` seconds (0.1 s, the rate of an
EPICS motor record), so it runs on virtual time (e.g. looptime) unchanged and cheaply:
a minute of motion is 600 timer wake-ups, not 6 000.

A ``set(..., timeout=...)`` that runs out raises :class:`TimeoutError` naming the
motor, the target, the timeout and where the motor got to; the motor stays there.

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

from bluesky.protocols import Location, Reading
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


@dataclass(frozen=True)
class _Motion:
    """A trajectory started at a given loop time."""

    trajectory: _Trajectory
    start: float

    def elapsed(self) -> float:
        """Seconds of loop time since the start, snapped to the end when within 1 µs.

        asyncio runs a timer due within its clock resolution at once: on virtual time a
        float-rounding remainder would never elapse.
        """
        elapsed = asyncio.get_running_loop().time() - self.start
        if self.trajectory.duration - elapsed < 1e-6:
            return self.trajectory.duration
        return elapsed

    def position(self) -> float:
        """Where the motion is now."""
        return self.trajectory.position(self.elapsed())


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
    units: str
    precision: int
    # Bumped by every move and stop: a move superseded by a newer one (or stopped)
    # stops publishing. Polled, because task cancellation alone is lost if it lands
    # while a signal put is completing.
    _generation: int = field(default=0, init=False)
    # The motion in progress (None at rest), and the readback last published.
    _motion: _Motion | None = field(default=None, init=False)
    _published: float | None = field(default=None, init=False)

    def _publish(self, position: float) -> None:
        if position != self._published:
            self._published = position
            self.readback_set(position)

    def refresh(self) -> None:
        """Publish the readback of this instant, if the motor is moving."""
        if self._motion is not None:
            self._publish(self._motion.position())

    def _halt(self) -> float | None:
        """End the motion in progress where it is now; return that position (None at rest)."""
        motion, self._motion = self._motion, None
        if motion is None:
            return None
        position = motion.position()
        self._publish(position)
        return position

    async def stop(self) -> None:
        """Stop where the motor is and make that the setpoint (the move task is cancelled)."""
        self._generation += 1
        position = self._halt()
        if position is None:
            position = await self.readback.get_value()
        await self.setpoint.set(position)

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
        """Move towards ``new_position``, publishing the readback as it goes.

        Raises:
            TimeoutError: The move did not finish within ``timeout()``; the motor stays
                where it got to (the message says where).
        """
        self._generation += 1
        generation = self._generation
        halted_at = self._halt()  # a move in progress is superseded from where it is
        old_position = await self.readback.get_value() if halted_at is None else halted_at
        trajectory = await self._trajectory(old_position, new_position)
        await self.setpoint.set(new_position)
        if trajectory.velocity == 0 or old_position == new_position:
            self._publish(new_position)
            return
        motion = _Motion(trajectory, asyncio.get_running_loop().time())
        self._motion = motion
        allowed = timeout()
        try:
            async with asyncio.timeout(allowed):
                while True:
                    left = trajectory.duration - motion.elapsed()
                    await asyncio.sleep(min(self.update_period, left))
                    if generation != self._generation:
                        return  # a newer set() or stop() took over
                    elapsed = motion.elapsed()
                    self._publish(trajectory.position(elapsed))
                    if elapsed >= trajectory.duration:
                        return
        except TimeoutError as exc:
            position = motion.position()
            # ophyd-async's MoveTimeout keeps the timeout the caller gave; allowed is
            # what was left of it when the motion started
            requested = getattr(timeout, "timeout", None)
            requested = requested if isinstance(requested, int | float) else allowed
            within = "its timeout" if requested is None else f"{requested:g} s"
            raise TimeoutError(
                f"{self.motor_name()}: set({new_position}) did not finish within "
                f"{within} (at {round(position, self.precision)} of {new_position}, moving "
                f"{trajectory.velocity:g} {self.units}/s from {old_position}); it stays "
                f"there: allow more time (timeout=) or a higher velocity"
            ) from exc
        finally:
            if generation == self._generation:
                self._halt()  # arrived, timed out or cancelled: at rest where it is


@default_mock_class(DeviceMock)
class Motor(StandardReadable, StandardMovable[float]):
    """A simulated motor with velocity, acceleration time and soft limits.

    ``read()`` gives the readback under the motor's own name (e.g. ``{"x": ...}``),
    which is its only hint; velocity, acceleration time and soft limits are
    configuration. ``set()`` checks the limits before any motion, then moves the
    readback over time, publishing it every ``update_period`` seconds, and returns a
    :class:`~ophyd_async.core.WatchableAsyncStatus` reporting progress. ``read()`` and
    ``locate()`` during a move give the position of that instant, between updates too.

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
        update_period: Seconds of loop time between readback updates while moving
            (each costs an event-loop wake-up; reads are exact in between).
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
        update_period: float = 0.1,
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
        self._units, self._precision = units, precision
        super().__init__(name=name)

    async def read(self) -> dict[str, Reading[float]]:
        """Read the readback of this instant (also published to its subscribers)."""
        self.movable_logic.refresh()
        return await super().read()

    async def locate(self) -> Location[float]:
        """Return the setpoint and the readback of this instant."""
        self.movable_logic.refresh()
        return await super().locate()

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
            units=self._units,
            precision=self._precision,
        )
