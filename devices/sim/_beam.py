"""The beam: a storage-ring current to watch (suspenders) and a shutter to move.

:class:`BeamCurrent` *is* an ophyd-async soft signal (a ``SignalRW[float]``), so
anything that reads, sets or subscribes to a signal works with it unchanged; it adds
helpers to script beam events in tests: :meth:`~BeamCurrent.dump`,
:meth:`~BeamCurrent.refill` and :meth:`~BeamCurrent.decay`.

:class:`Shutter` is a two-state :class:`~ophyd_async.core.StandardMovable` whose
``set`` takes ``transit_time`` seconds (0 by default).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from functools import cached_property

from ophyd_async.core import (
    AsyncStatus,
    DeviceMock,
    MovableLogic,
    SignalRW,
    SoftSignalBackend,
    StandardMovable,
    StandardReadable,
    StrictEnum,
    TimeoutCalculator,
    WatchableAsyncStatus,
    WatcherUpdate,
    default_mock_class,
    soft_signal_r_and_setter,
    soft_signal_rw,
)
from ophyd_async.core import StandardReadableFormat as Format

__all__ = ["BeamCurrent", "Shutter", "ShutterState"]


class BeamCurrent(SignalRW[float]):
    """The storage-ring current, a settable soft signal (in mA by default).

    ``read()`` gives ``{name: reading}``; ``set(value)`` changes it; subscribers
    (e.g. a ``SuspendFloor``) see every change.

    Args:
        nominal: The current after :meth:`refill`, also the initial value.
        units: Engineering units.
        update_period: Seconds of loop time between updates during :meth:`decay`.
        name: Signal name, the data key.
    """

    def __init__(
        self,
        nominal: float = 500.0,
        *,
        units: str = "mA",
        update_period: float = 0.01,
        name: str = "",
    ) -> None:
        if update_period <= 0:
            raise ValueError(f"update_period must be > 0, got {update_period}")
        super().__init__(SoftSignalBackend(float, nominal, units, 3), name=name)
        self.nominal = nominal
        self._units = units
        self._update_period = update_period

    @AsyncStatus.wrap
    async def dump(self) -> None:
        """Lose the beam at once: the current becomes 0."""
        await self.set(0.0)

    @AsyncStatus.wrap
    async def refill(self) -> None:
        """Restore the beam at once: the current becomes ``nominal``."""
        await self.set(self.nominal)

    @WatchableAsyncStatus.wrap
    async def decay(self, to: float, duration: float) -> AsyncIterator[WatcherUpdate[float]]:
        """Ramp the current linearly to ``to`` over ``duration`` seconds of loop time.

        Args:
            to: The final current.
            duration: How long the ramp takes; 0 sets ``to`` at once.
        """
        if duration < 0:
            raise ValueError(f"{self.name}: decay duration must be >= 0, got {duration}")
        initial = await self.get_value()
        loop = asyncio.get_running_loop()
        start = loop.time()
        while True:
            elapsed = loop.time() - start
            fraction = 1.0 if duration == 0 else min(elapsed / duration, 1.0)
            current = initial + (to - initial) * fraction
            await self.set(current)
            yield WatcherUpdate(
                name=self.name, current=current, initial=initial, target=to, unit=self._units
            )
            if fraction >= 1.0:
                return
            await asyncio.sleep(min(self._update_period, duration - elapsed))


class ShutterState(StrictEnum):
    """The two positions of a :class:`Shutter`."""

    OPEN = "Open"
    CLOSED = "Closed"


@dataclass
class _ShutterMoveLogic(MovableLogic[ShutterState]):
    """A shutter move: the setpoint at once, the readback after the transit time."""

    readback_set: Callable[[ShutterState], None]
    transit_time: SignalRW[float]
    # Set by stop() or a newer move. The transit waits on it rather than relying on
    # task cancellation alone, which is lost if it lands while a signal put completes.
    _interrupted: asyncio.Event = field(default_factory=asyncio.Event, init=False)

    async def stop(self) -> None:
        """Abandon the transit: the shutter stays in (and commands) its current state."""
        self._interrupted.set()
        await self.setpoint.set(await self.readback.get_value())

    async def move(self, new_position: ShutterState, timeout: TimeoutCalculator) -> None:  # noqa: ASYNC109
        """Command the new state and report it once the blades have travelled."""
        self._interrupted.set()
        self._interrupted = interrupted = asyncio.Event()
        new_position = ShutterState(new_position)
        await self.setpoint.set(new_position)
        transit_time = await self.transit_time.get_value()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(transit_time):
                await interrupted.wait()
        if not interrupted.is_set():
            self.readback_set(new_position)

    async def get_units_precision(self) -> tuple[str | None, int | None]:
        """A state has no units or precision."""
        return None, None


@default_mock_class(DeviceMock)
class Shutter(StandardReadable, StandardMovable[ShutterState]):
    """A shutter: ``set(ShutterState.OPEN)`` / ``set("Closed")`` returns a status.

    ``read()`` gives the state under the shutter's own name; ``transit_time`` is
    configuration.

    Args:
        name: Device name; also the data key of the state.
        initial: The state at start.
        transit_time: Seconds a move takes.
    """

    def __init__(
        self,
        name: str = "",
        *,
        initial: ShutterState = ShutterState.CLOSED,
        transit_time: float = 0.0,
    ) -> None:
        with self.add_children_as_readables(Format.HINTED_SIGNAL):
            self.readback, self._readback_set = soft_signal_r_and_setter(ShutterState, initial)
        with self.add_children_as_readables(Format.CONFIG_SIGNAL):
            self.transit_time = soft_signal_rw(float, transit_time, units="s")
        self.setpoint = soft_signal_rw(ShutterState, initial)
        super().__init__(name=name)

    @cached_property
    def movable_logic(self) -> _ShutterMoveLogic:
        """The logic StandardMovable uses to move and stop."""
        return _ShutterMoveLogic(
            setpoint=self.setpoint,
            readback=self.readback,
            readback_set=self._readback_set,
            transit_time=self.transit_time,
        )

    def open(self) -> WatchableAsyncStatus[ShutterState]:
        """Open the shutter (``set(ShutterState.OPEN)``)."""
        return self.set(ShutterState.OPEN)

    def close(self) -> WatchableAsyncStatus[ShutterState]:
        """Close the shutter (``set(ShutterState.CLOSED)``)."""
        return self.set(ShutterState.CLOSED)
