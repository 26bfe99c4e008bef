"""Reading simulated values: where a motor is, and several soft signals at once."""

from __future__ import annotations

import inspect
from typing import Any

from bluesky.protocols import Locatable
from ophyd_async.core import SignalR

__all__ = ["read_position", "values"]


async def values(*signals: SignalR[Any]) -> list[Any]:
    """The current values of soft signals, each awaited in turn.

    A soft signal answers without waiting, so this is cheaper than ``asyncio.gather``,
    which makes a task of each (a few µs and an event-loop turn apiece, several times per
    point of a simulated scan).
    """
    return [await signal.get_value() for signal in signals]


async def read_position(motor: Locatable[float]) -> float:
    """Return ``motor``'s current readback; ``locate()`` may be sync or async."""
    location = motor.locate()
    if inspect.isawaitable(location):
        location = await location
    return float(location["readback"])
