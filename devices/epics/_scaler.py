"""A scaler on EPICS: count for a preset time, then read the channels' counts.

Its PVs are the scaler record's field names appended to a prefix, so the same class
drives a real scaler record (prefix ``"BL:scaler1."``, giving ``BL:scaler1.CNT``) and
the simulated scaler of the test IOC (prefix ``"{prefix}sc:"``). A ``ca://`` or
``pva://`` prefix picks the protocol (Channel Access if none).
"""

from __future__ import annotations

from bluesky.protocols import Triggerable
from ophyd_async.core import (
    DEFAULT_TIMEOUT,
    AsyncStatus,
    DeviceVector,
    SignalR,
    StandardReadable,
)
from ophyd_async.core import StandardReadableFormat as Format
from ophyd_async.epics.core import epics_signal_r, epics_signal_rw

__all__ = ["Scaler", "ScalerCountError"]


class ScalerCountError(RuntimeError):
    """A count's put completed but the scaler does not report being done."""


class Scaler(StandardReadable, Triggerable):
    """A scaler: ``trigger()`` counts for the preset time; ``read()`` gives the counts.

    ``trigger()`` writes ``Count`` to ``CNT`` with completion, which finishes when
    the scaler is done counting, and allows the preset time plus ``timeout``.
    ``read()`` gives each channel (hinted) and the elapsed time; the preset time is
    configuration.

    Args:
        prefix: Prepended to the field names ``CNT``, ``TP``, ``T`` and ``S1``,
            ``S2``, ...; may start with ``ca://`` or ``pva://``.
        channels: Numbers of the channels to read (``S<n>``), e.g. ``(1, 2, 3, 4)``.
        name: Device name; channel ``n`` reads as ``f"{name}-channels-{n}"``.
        timeout: Seconds allowed for each read or write of a PV, and added to the
            preset time when counting; a dead IOC is reported after this long.

    Attributes:
        count: ``CNT``, True (``Count``) while counting.
        preset_time: ``TP``, seconds to count for.
        elapsed_time: ``T``, seconds counted.
        channels: ``S<n>`` for each ``n`` in ``channels``, counts.
    """

    def __init__(
        self,
        prefix: str,
        channels: tuple[int, ...] = (1, 2, 3, 4),
        name: str = "",
        *,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        if not channels or any(n < 1 for n in channels):
            raise ValueError(f"channels must be numbers >= 1, got {channels!r}")
        self.count = epics_signal_rw(bool, prefix + "CNT", timeout=timeout)
        with self.add_children_as_readables(Format.CONFIG_SIGNAL):
            self.preset_time = epics_signal_rw(float, prefix + "TP", timeout=timeout)
        # Uncached: a read after trigger() asks the IOC, never a monitor that may lag.
        with self.add_children_as_readables(Format.HINTED_UNCACHED_SIGNAL):
            self.channels: DeviceVector[SignalR[int]] = DeviceVector(
                {n: epics_signal_r(int, f"{prefix}S{n}", timeout=timeout) for n in channels}
            )
        with self.add_children_as_readables(Format.UNCACHED_SIGNAL):
            self.elapsed_time = epics_signal_r(float, prefix + "T", timeout=timeout)
        self._timeout = timeout
        super().__init__(name=name)

    @AsyncStatus.wrap
    async def trigger(self) -> None:
        """Count for the preset time.

        Raises:
            ScalerCountError: the put completed but ``CNT`` still says ``Count``.
            TimeoutError: a PV did not answer in time (e.g. the IOC died).
        """
        preset = await self.preset_time.get_value()
        await self.count.set(True, timeout=preset + self._timeout)
        # Over Channel Access a put whose connection drops completes as a success in
        # ophyd-async (see Motor's move); reading CNT back reports the loss.
        if await self.count.get_value():
            raise ScalerCountError(
                f"{self.name}: counting for {preset} s completed but the scaler still "
                "says it is counting"
            )
