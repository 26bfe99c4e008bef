"""A simulated fly-scan device that delivers its points as pages of numpy arrays.

The flyer sweeps a virtual axis from ``start_position`` to ``end_position`` in
``num_points`` points and measures a Gaussian peak along it. ``kickoff()`` starts
the acquisition, ``complete()`` finishes when every point is acquired, and
``collect_pages()`` yields the points acquired since the last collect in pages of at
most ``page_size`` points (any time after kickoff, also while flying). Pages are
computed on demand from the point indices, so a million points cost a few
milliseconds and no memory beyond one page.

With ``points_per_second`` 0 (the default) every point is acquired at kickoff;
otherwise points accrue at that rate on the event loop's clock, published every
``update_period`` seconds through the ``points_acquired`` signal (which
``complete()`` reports to watchers as progress).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator
from typing import Any, cast

import numpy as np
from bluesky.protocols import EventPageCollectable, Flyable, Hints, Stoppable
from event_model import DataKey, PartialEventPage
from ophyd_async.core import (
    AsyncStatus,
    StandardReadable,
    WatchableAsyncStatus,
    WatcherUpdate,
    observe_value,
    soft_signal_r_and_setter,
    soft_signal_rw,
)
from ophyd_async.core import StandardReadableFormat as Format

from ._positions import values

__all__ = ["Flyer"]


class _Flight:
    """One kickoff's bookkeeping: when it started, how far it got, how it ended."""

    def __init__(self, num_points: int, rate: float, wall_start: float) -> None:
        self.num_points = num_points
        self.rate = rate
        self.wall_start = wall_start
        self.collected = 0
        # None while flying; True/False once stop(success=...) was called.
        self.stopped_with_success: bool | None = None


class Flyer(StandardReadable, Flyable, EventPageCollectable, Stoppable):
    """A fly-scan device yielding ``num_points`` points as event pages.

    Data keys: ``<name>-position`` (the axis) and ``<name>-intensity``
    (``Imax * exp(-(position - center)**2 / (2 sigma**2))``). Everything that shapes
    the scan is a configuration signal.

    Args:
        name: Device name, the prefix of the data keys.
        num_points: Points per flight, >= 1.
        page_size: Maximum points per page from ``collect_pages``, >= 1.
        points_per_second: Acquisition rate; 0 acquires every point at kickoff.
        start_position: Axis position of the first point.
        end_position: Axis position of the last point.
        center: Peak position.
        sigma: Peak width, > 0.
        Imax: Peak height.
        update_period: Seconds of loop time between progress updates while flying.
    """

    def __init__(
        self,
        name: str = "",
        *,
        num_points: int = 1000,
        page_size: int = 100_000,
        points_per_second: float = 0.0,
        start_position: float = -5.0,
        end_position: float = 5.0,
        center: float = 0.0,
        sigma: float = 1.0,
        Imax: float = 1.0,  # bluesky's SynGauss spelling
        update_period: float = 0.01,
    ) -> None:
        if num_points < 1 or page_size < 1:
            raise ValueError(
                f"num_points and page_size must be >= 1, got {num_points}, {page_size}"
            )
        if points_per_second < 0 or sigma <= 0 or update_period <= 0:
            raise ValueError("points_per_second must be >= 0; sigma, update_period > 0")
        with self.add_children_as_readables(Format.CONFIG_SIGNAL):
            self.num_points = soft_signal_rw(int, num_points)
            self.page_size = soft_signal_rw(int, page_size)
            self.points_per_second = soft_signal_rw(float, points_per_second, units="Hz")
            self.start_position = soft_signal_rw(float, start_position)
            self.end_position = soft_signal_rw(float, end_position)
            self.center = soft_signal_rw(float, center)
            self.sigma = soft_signal_rw(float, sigma)
            self.Imax = soft_signal_rw(float, Imax)
        self.points_acquired, self._set_points_acquired = soft_signal_r_and_setter(int, 0)
        self._update_period = update_period
        self._flight: _Flight | None = None
        self._task: asyncio.Task[None] | None = None
        super().__init__(name=name)

    @property
    def _keys(self) -> tuple[str, str]:
        return f"{self.name}-position", f"{self.name}-intensity"

    @property
    def hints(self) -> Hints:
        """The intensity is what to plot (against the position, the plan's dimension)."""
        return {"fields": [self._keys[1]]}

    @AsyncStatus.wrap
    async def kickoff(self) -> None:
        """Start acquiring; done as soon as the acquisition has begun."""
        if self._task is not None and not self._task.done():
            raise RuntimeError(f"{self.name}: kickoff() while already flying; stop() first")
        num_points, rate = await values(self.num_points, self.points_per_second)
        if num_points < 1 or rate < 0:
            raise ValueError(
                f"{self.name}: num_points must be >= 1 and points_per_second >= 0, "
                f"got {num_points}, {rate}"
            )
        self._flight = _Flight(num_points, rate, time.time())
        self._set_points_acquired(0)
        self._task = asyncio.create_task(self._acquire(self._flight))
        await asyncio.sleep(0)  # let the acquisition start

    async def _acquire(self, flight: _Flight) -> None:
        if flight.rate == 0:
            self._set_points_acquired(flight.num_points)
            return
        loop = asyncio.get_running_loop()
        start = loop.time()
        duration = flight.num_points / flight.rate
        while flight.stopped_with_success is None:
            elapsed = loop.time() - start
            acquired = min(flight.num_points, math.floor(elapsed * flight.rate))
            self._set_points_acquired(acquired)
            if acquired >= flight.num_points:
                return
            # The flag is polled, so stop() takes effect within one update period.
            await asyncio.sleep(min(self._update_period, max(duration - elapsed, 0.0)))

    @WatchableAsyncStatus.wrap
    async def complete(self) -> AsyncIterator[WatcherUpdate[int]]:
        """Finish when every point is acquired, reporting points acquired as progress.

        After ``stop(success=False)`` the status fails with ``RuntimeError``; after
        ``stop(success=True)`` it completes early (ophyd-async's convention).
        """
        flight, task = self._flight, self._task
        if flight is None or task is None:
            raise RuntimeError(f"{self.name}: complete() before kickoff()")
        async for acquired in observe_value(self.points_acquired, done_status=AsyncStatus(task)):
            yield WatcherUpdate(
                name=self.name,
                current=acquired,
                initial=0,
                target=flight.num_points,
                unit="points",
                precision=0,
            )
        if flight.stopped_with_success is False:
            acquired = await self.points_acquired.get_value()
            raise RuntimeError(
                f"{self.name} was stopped after {acquired} of {flight.num_points} points"
            )

    async def stop(self, success: bool = False) -> None:
        """Stop acquiring; the points acquired so far can still be collected.

        Args:
            success: Whether a pending ``complete()`` succeeds (True) or fails.
        """
        flight, task = self._flight, self._task
        if flight is None or task is None or task.done():
            return
        flight.stopped_with_success = success
        await asyncio.wait([task])

    async def describe_collect(self) -> dict[str, DataKey]:
        """Describe the two per-point data keys."""
        position, intensity = self._keys
        return {
            key: DataKey(source=f"sim://{key}", dtype="number", dtype_numpy="<f8", shape=[])
            for key in (position, intensity)
        }

    async def collect_pages(self) -> AsyncIterator[PartialEventPage]:
        """Yield the points acquired since the last collect, in pages of numpy arrays."""
        flight = self._flight
        if flight is None:
            raise RuntimeError(f"{self.name}: collect_pages() before kickoff()")
        acquired, page_size = await values(self.points_acquired, self.page_size)
        first, last, center, sigma, imax = await values(
            self.start_position, self.end_position, self.center, self.sigma, self.Imax
        )
        step = (last - first) / (flight.num_points - 1) if flight.num_points > 1 else 0.0
        position_key, intensity_key = self._keys
        while flight.collected < acquired:
            stop = min(acquired, flight.collected + max(page_size, 1))
            index = np.arange(flight.collected, stop, dtype=np.float64)
            flight.collected = stop
            positions = first + step * index
            intensities = imax * np.exp(-((positions - center) ** 2) / (2 * sigma**2))
            if flight.rate:
                times = flight.wall_start + index / flight.rate
            else:
                times = np.full(index.shape, flight.wall_start)
            yield _page(times, {position_key: positions, intensity_key: intensities})

    @AsyncStatus.wrap
    async def unstage(self) -> None:
        """Stop acquiring, then unstage the configuration signals."""
        await self.stop()
        await super().unstage()


def _page(times: np.ndarray, data: dict[str, np.ndarray]) -> PartialEventPage:
    # PartialEventPage is typed with lists; numpy arrays are what keeps a million
    # points fast, and every consumer indexes them like lists.
    return {
        "time": cast(list[Any], times),
        "data": cast(dict[str, list[Any]], data),
        "timestamps": {key: cast(list[Any], times) for key in data},
    }
