"""Simulated point detectors whose value depends on motor positions.

Each detector holds the motors it watches. ``trigger()`` waits the exposure
(``acquire_time``, a configuration signal) on the event loop, then asks each motor
where it is (``locate()``, from :class:`bluesky.protocols.Locatable`, so any
ophyd-async or bluesky motor works) and publishes the model's value, optionally with
noise from a seeded :class:`numpy.random.Generator` (the same seed gives the same
sequence). The model's parameters are configuration signals too, so they appear in
``read_configuration()`` and in every descriptor.

``read()`` gives the value under the detector's own name (``{"det": ...}``), as
bluesky's ``SynGauss`` does, so ``PeakStats("x", "det")`` finds it.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence

import numpy as np
from bluesky.protocols import Locatable, Triggerable
from ophyd_async.core import (
    AsyncStatus,
    StandardReadable,
    StrictEnum,
    soft_signal_r_and_setter,
    soft_signal_rw,
)
from ophyd_async.core import StandardReadableFormat as Format

from ._positions import read_position, values

__all__ = ["EdgeDetector", "Gaussian2DDetector", "GaussianDetector", "Noise", "PointDetector"]


class Noise(StrictEnum):
    """Noise added to a simulated detector's value (as in bluesky's ``SynGauss``)."""

    NONE = "none"
    """The exact model value."""

    POISSON = "poisson"
    """A Poisson draw with the model value as mean (counting statistics)."""

    UNIFORM = "uniform"
    """The model value plus ``noise_multiplier`` times a uniform draw in [-1, 1)."""


class PointDetector(StandardReadable, Triggerable):
    """Base class of the simulated point detectors: exposure, noise, motor lookup.

    Subclasses create their model's configuration signals, call this ``__init__``
    with the motors they watch, and implement :meth:`compute`.

    Args:
        motors: The motors whose readbacks the model depends on, in the order
            :meth:`compute` receives their positions.
        acquire_time: Exposure time in seconds (a configuration signal).
        noise: Kind of noise added to the model value.
        noise_multiplier: Scale of uniform noise.
        seed: Seed of the noise generator; ``None`` draws fresh entropy.
        units: Units of the value.
        name: Device name; also the data key of the value.
    """

    def __init__(
        self,
        motors: Sequence[Locatable[float]],
        *,
        acquire_time: float = 0.0,
        noise: Noise | str = Noise.NONE,
        noise_multiplier: float = 1.0,
        seed: int | None = None,
        units: str = "counts",
        name: str = "",
    ) -> None:
        if acquire_time < 0:
            raise ValueError(f"acquire_time must be >= 0, got {acquire_time}")
        self._motors = tuple(motors)
        self._rng = np.random.default_rng(seed)
        with self.add_children_as_readables(Format.HINTED_SIGNAL):
            self.value, self._set_value = soft_signal_r_and_setter(float, 0.0, units=units)
        with self.add_children_as_readables(Format.CONFIG_SIGNAL):
            self.acquire_time = soft_signal_rw(float, acquire_time, units="s")
            self.noise = soft_signal_rw(Noise, Noise(noise))
            self.noise_multiplier = soft_signal_rw(float, noise_multiplier)
        super().__init__(name=name)

    def set_name(self, name: str, *, child_name_separator: str | None = None) -> None:
        """Name the device and its children; the value takes the device's own name."""
        super().set_name(name, child_name_separator=child_name_separator)
        self.value.set_name(name)

    def reseed(self, seed: int | None) -> None:
        """Restart the noise generator from ``seed`` (reproduce a sequence)."""
        self._rng = np.random.default_rng(seed)

    async def compute(self, positions: Sequence[float]) -> float:
        """Return the noiseless model value at the given motor positions."""
        raise NotImplementedError(type(self).__name__)

    async def _add_noise(self, value: float) -> float:
        noise, multiplier = await values(self.noise, self.noise_multiplier)
        match noise:
            case Noise.POISSON:
                return float(self._rng.poisson(max(value, 0.0)))
            case Noise.UNIFORM:
                return value + multiplier * float(self._rng.uniform(-1.0, 1.0))
            case _:
                return value

    @AsyncStatus.wrap
    async def trigger(self) -> None:
        """Expose for ``acquire_time``, then compute the value at the motors' readbacks."""
        await asyncio.sleep(await self.acquire_time.get_value())
        positions = [await read_position(motor) for motor in self._motors]
        self._set_value(await self._add_noise(await self.compute(positions)))


class GaussianDetector(PointDetector):
    """A peak over one motor: ``Imax * exp(-(x - center)**2 / (2 * sigma**2))``.

    Args:
        motor: The motor giving ``x``.
        center: Peak position.
        Imax: Peak height.
        sigma: Peak width (standard deviation), > 0.
        acquire_time: Exposure time in seconds (configuration).
        noise: Kind of noise added to the value.
        noise_multiplier: Scale of uniform noise.
        seed: Seed of the noise generator; ``None`` draws fresh entropy.
        units: Units of the value.
        name: Device name; also the data key of the value.
    """

    def __init__(
        self,
        motor: Locatable[float],
        *,
        center: float = 0.0,
        Imax: float = 1.0,  # bluesky's SynGauss spelling
        sigma: float = 1.0,
        acquire_time: float = 0.0,
        noise: Noise | str = Noise.NONE,
        noise_multiplier: float = 1.0,
        seed: int | None = None,
        units: str = "counts",
        name: str = "",
    ) -> None:
        if sigma <= 0:
            raise ValueError(f"sigma must be > 0, got {sigma}")
        with self.add_children_as_readables(Format.CONFIG_SIGNAL):
            self.center = soft_signal_rw(float, center)
            self.Imax = soft_signal_rw(float, Imax)
            self.sigma = soft_signal_rw(float, sigma)
        super().__init__(
            [motor],
            acquire_time=acquire_time,
            noise=noise,
            noise_multiplier=noise_multiplier,
            seed=seed,
            units=units,
            name=name,
        )

    async def compute(self, positions: Sequence[float]) -> float:
        """Evaluate the Gaussian at the motor position."""
        (x,) = positions
        center, imax, sigma = await values(self.center, self.Imax, self.sigma)
        return imax * math.exp(-((x - center) ** 2) / (2 * sigma**2))


class EdgeDetector(PointDetector):
    """A smooth step over one motor (an error function), like a knife-edge scan.

    ``value = low + (high - low) * (1 + erf((x - center) / (sqrt(2) * width))) / 2``:
    ``low`` far below ``center``, ``high`` far above, the midpoint at ``center``.

    Args:
        motor: The motor giving ``x``.
        center: Edge position.
        width: Edge width (standard deviation of the underlying Gaussian), > 0.
        low: Value far below the edge.
        high: Value far above the edge.
        acquire_time: Exposure time in seconds (configuration).
        noise: Kind of noise added to the value.
        noise_multiplier: Scale of uniform noise.
        seed: Seed of the noise generator; ``None`` draws fresh entropy.
        units: Units of the value.
        name: Device name; also the data key of the value.
    """

    def __init__(
        self,
        motor: Locatable[float],
        *,
        center: float = 0.0,
        width: float = 1.0,
        low: float = 0.0,
        high: float = 1.0,
        acquire_time: float = 0.0,
        noise: Noise | str = Noise.NONE,
        noise_multiplier: float = 1.0,
        seed: int | None = None,
        units: str = "counts",
        name: str = "",
    ) -> None:
        if width <= 0:
            raise ValueError(f"width must be > 0, got {width}")
        with self.add_children_as_readables(Format.CONFIG_SIGNAL):
            self.center = soft_signal_rw(float, center)
            self.width = soft_signal_rw(float, width)
            self.low = soft_signal_rw(float, low)
            self.high = soft_signal_rw(float, high)
        super().__init__(
            [motor],
            acquire_time=acquire_time,
            noise=noise,
            noise_multiplier=noise_multiplier,
            seed=seed,
            units=units,
            name=name,
        )

    async def compute(self, positions: Sequence[float]) -> float:
        """Evaluate the error-function step at the motor position."""
        (x,) = positions
        center, width, low, high = await values(self.center, self.width, self.low, self.high)
        return low + (high - low) * (1 + math.erf((x - center) / (math.sqrt(2) * width))) / 2


class Gaussian2DDetector(PointDetector):
    """A peak over two motors, for grid scans.

    ``value = Imax * exp(-(x - center_x)**2 / (2 sigma_x**2) - (y - center_y)**2 /
    (2 sigma_y**2))``.

    Args:
        x_motor: The motor giving ``x``.
        y_motor: The motor giving ``y``.
        center_x: Peak position along x.
        center_y: Peak position along y.
        Imax: Peak height.
        sigma_x: Peak width along x, > 0.
        sigma_y: Peak width along y, > 0.
        acquire_time: Exposure time in seconds (configuration).
        noise: Kind of noise added to the value.
        noise_multiplier: Scale of uniform noise.
        seed: Seed of the noise generator; ``None`` draws fresh entropy.
        units: Units of the value.
        name: Device name; also the data key of the value.
    """

    def __init__(
        self,
        x_motor: Locatable[float],
        y_motor: Locatable[float],
        *,
        center_x: float = 0.0,
        center_y: float = 0.0,
        Imax: float = 1.0,  # bluesky's SynGauss spelling
        sigma_x: float = 1.0,
        sigma_y: float = 1.0,
        acquire_time: float = 0.0,
        noise: Noise | str = Noise.NONE,
        noise_multiplier: float = 1.0,
        seed: int | None = None,
        units: str = "counts",
        name: str = "",
    ) -> None:
        if sigma_x <= 0 or sigma_y <= 0:
            raise ValueError(f"sigma_x and sigma_y must be > 0, got {sigma_x}, {sigma_y}")
        with self.add_children_as_readables(Format.CONFIG_SIGNAL):
            self.center_x = soft_signal_rw(float, center_x)
            self.center_y = soft_signal_rw(float, center_y)
            self.Imax = soft_signal_rw(float, Imax)
            self.sigma_x = soft_signal_rw(float, sigma_x)
            self.sigma_y = soft_signal_rw(float, sigma_y)
        super().__init__(
            [x_motor, y_motor],
            acquire_time=acquire_time,
            noise=noise,
            noise_multiplier=noise_multiplier,
            seed=seed,
            units=units,
            name=name,
        )

    async def compute(self, positions: Sequence[float]) -> float:
        """Evaluate the 2D Gaussian at the two motor positions."""
        x, y = positions
        cx, cy, imax, sx, sy = await values(
            self.center_x, self.center_y, self.Imax, self.sigma_x, self.sigma_y
        )
        return imax * math.exp(-((x - cx) ** 2) / (2 * sx**2) - (y - cy) ** 2 / (2 * sy**2))
