"""A whole simulated beamline, built, named and connected in one call.

::

    bl = await sim_beamline()
    await RE(scan([bl.det], bl.x, -3, 3, 61))

The detectors look at the motors: ``det`` is a Gaussian peak and ``edge`` an
error-function step along ``x``, ``det2d`` a 2D peak over ``x`` and ``y``, and the
``area_detector``'s frames brighten and dim with ``x`` and ``y``.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, fields
from pathlib import Path, PurePath

from ophyd_async.core import DEFAULT_TIMEOUT, Device

from ._area_detector import AreaDetector
from ._beam import BeamCurrent, Shutter
from ._flyer import Flyer
from ._motor import Motor
from ._point_detectors import EdgeDetector, Gaussian2DDetector, GaussianDetector, Noise

__all__ = ["SimBeamline", "sim_beamline"]


@dataclass(frozen=True)
class SimBeamline:
    """The devices of a simulated beamline; each is named after its attribute."""

    x: Motor
    """A motor (``-10 .. 10`` mm soft limits)."""
    y: Motor
    """A second motor, for grid scans (``-10 .. 10`` mm soft limits)."""
    det: GaussianDetector
    """A Gaussian peak along ``x`` (center 0, Imax 1, sigma 1)."""
    edge: EdgeDetector
    """An error-function step along ``x`` (center 0, width 1, 0 to 1)."""
    det2d: Gaussian2DDetector
    """A 2D Gaussian peak over ``x`` and ``y``."""
    area_detector: AreaDetector
    """HDF5 frames whose brightness depends on ``x`` and ``y``."""
    flyer: Flyer
    """A fly-scan device delivering its points as event pages."""
    beam_current: BeamCurrent
    """The ring current in mA (nominal 500)."""
    shutter: Shutter
    """The beam shutter (starts closed)."""

    def __iter__(self) -> Iterator[Device]:
        """Iterate over the devices in declaration order."""
        return (getattr(self, f.name) for f in fields(self))

    def by_name(self) -> dict[str, Device]:
        """Return the devices keyed by name."""
        return {device.name: device for device in self}


async def sim_beamline(
    *,
    instant: bool = False,
    velocity: float = 10.0,
    acquire_time: float = 0.0,
    noise: Noise | str = Noise.NONE,
    seed: int | None = None,
    data_dir: str | PurePath | None = None,
    area_acquire_time: float = 0.01,
    connect_timeout: float = DEFAULT_TIMEOUT,
) -> SimBeamline:
    """Build, name and connect a simulated beamline.

    Args:
        instant: Motors arrive at once instead of moving over time.
        velocity: Motor speed in mm/s when not instant.
        acquire_time: Exposure of the point detectors in seconds.
        noise: Noise on the point detectors and the area detector's pixels (none,
            poisson or uniform).
        seed: Seed of the detectors' noise (each detector gets its own stream
            derived from it); ``None`` for fresh entropy.
        data_dir: Where the area detector writes HDF5 files; ``None`` uses
            ``<tempdir>/acq-sim``.
        area_acquire_time: Exposure of the area detector per frame, > 0 (the
            default gives a peak of about 2 900 counts with the motors at 0).
        connect_timeout: Seconds allowed for connecting all devices.

    Returns:
        The connected devices.
    """
    directory = Path(data_dir) if data_dir is not None else Path(tempfile.gettempdir()) / "acq-sim"
    directory.mkdir(parents=True, exist_ok=True)
    seeds: list[int | None] = [None] * 4 if seed is None else [seed + i for i in range(4)]
    x = Motor("x", velocity=velocity, limits=(-10.0, 10.0), instant=instant)
    y = Motor("y", velocity=velocity, limits=(-10.0, 10.0), instant=instant)
    beamline = SimBeamline(
        x=x,
        y=y,
        det=GaussianDetector(x, acquire_time=acquire_time, noise=noise, seed=seeds[0], name="det"),
        edge=EdgeDetector(x, acquire_time=acquire_time, noise=noise, seed=seeds[1], name="edge"),
        det2d=Gaussian2DDetector(
            x, y, acquire_time=acquire_time, noise=noise, seed=seeds[2], name="det2d"
        ),
        area_detector=AreaDetector(
            directory,
            x,
            y,
            acquire_time=area_acquire_time,
            noise=noise,
            seed=seeds[3],
            name="area_detector",
        ),
        flyer=Flyer("flyer"),
        beam_current=BeamCurrent(name="beam_current"),
        shutter=Shutter("shutter"),
    )
    await asyncio.gather(*(device.connect(timeout=connect_timeout) for device in beamline))
    return beamline
