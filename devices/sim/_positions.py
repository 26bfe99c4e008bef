"""Where a motor is, asked through the bluesky ``Locatable`` protocol."""

from __future__ import annotations

import inspect

from bluesky.protocols import Locatable

__all__ = ["read_position"]


async def read_position(motor: Locatable[float]) -> float:
    """Return ``motor``'s current readback; ``locate()`` may be sync or async."""
    location = motor.locate()
    if inspect.isawaitable(location):
        location = await location
    return float(location["readback"])
