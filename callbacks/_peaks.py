"""Peak statistics of y against x: a plain function, and a subscriber that applies it.

::

    ps = PeakStats("x", "det")
    await RE(scan([det], x, -3, 3, 61), ps)
    ps.cen, ps.com, ps.fwhm, ps.max, ps.fit

:func:`peak_stats` is what plans use (``tune_centroid``, "go to peak"):
``peak_stats(xs, ys).cen``.

Definitions (x is sorted first, so the scan direction does not matter):

* ``max`` / ``min``: ``(x, y)`` of the largest / smallest y (the first, on ties).
* ``com``: the centre of mass, the integral of ``x * y`` over the integral of ``y``
  (trapezoid rule, so uneven steps weigh correctly). Meant for a peak over a small
  background; use ``edge_count`` to subtract a linear background.
* ``crossings``: the x where y crosses the half-way line ``(max(y) + min(y)) / 2``,
  interpolated linearly between the samples on either side.
* ``cen``: the mean of the crossings (the peak's centre from its half-maximum points).
* ``fwhm``: the distance between the first and the last crossing.
* ``fit``: a Gaussian ``offset + amplitude * exp(-(x - center)**2 / (2 * sigma**2))``
  fitted by least squares when scipy is installed (``None`` without scipy, with fewer
  than four points, or when the fit fails).
"""

from __future__ import annotations

import importlib
import importlib.util
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
from event_model import (
    DocumentRouter,
    Event,
    EventDescriptor,
    EventPage,
    RunStart,
    RunStop,
)
from numpy.typing import ArrayLike, NDArray

__all__ = ["GaussianFit", "PeakStatistics", "PeakStats", "peak_stats"]

_FWHM_PER_SIGMA = 2 * math.sqrt(2 * math.log(2))


@dataclass(frozen=True)
class GaussianFit:
    """A fitted ``offset + amplitude * exp(-(x - center)**2 / (2 * sigma**2))``.

    Attributes:
        amplitude: Height of the peak above the offset.
        center: Position of the peak.
        sigma: Width (standard deviation), > 0.
        offset: Constant background.
    """

    amplitude: float
    center: float
    sigma: float
    offset: float

    @property
    def fwhm(self) -> float:
        """Full width at half maximum of the fitted peak, ``2 sqrt(2 ln 2) sigma``."""
        return _FWHM_PER_SIGMA * self.sigma

    def __call__(self, x: ArrayLike) -> NDArray[np.float64]:
        """Evaluate the fitted curve at ``x``."""
        return _gaussian(
            np.asarray(x, dtype=np.float64), self.amplitude, self.center, self.sigma, self.offset
        )


@dataclass(frozen=True)
class PeakStatistics:
    """What :func:`peak_stats` finds (see the module docstring for the definitions).

    Attributes:
        x: The x values, sorted.
        y: The y values in the order of ``x`` (before any background subtraction).
        min: ``(x, y)`` at the smallest y.
        max: ``(x, y)`` at the largest y.
        com: Centre of mass; ``None`` when the integral of y is 0.
        cen: Mean of the half-way crossings; ``None`` without a crossing.
        fwhm: Distance between the first and last crossing; ``None`` with fewer than two.
        crossings: Where y crosses the half-way line, in increasing x.
        fit: The fitted Gaussian, or ``None``.
        lin_bkg: ``{"m": slope, "b": intercept}`` of the subtracted background, when
            ``edge_count`` was given.
    """

    x: NDArray[np.float64]
    y: NDArray[np.float64]
    min: tuple[float, float]
    max: tuple[float, float]
    com: float | None
    cen: float | None
    fwhm: float | None
    crossings: NDArray[np.float64]
    fit: GaussianFit | None = None
    lin_bkg: Mapping[str, float] | None = field(default=None)

    def __str__(self) -> str:
        """A few lines for a terminal: cen, com, fwhm, max, min and the fit."""

        def num(value: float | None) -> str:
            return "-" if value is None else f"{value:.6g}"

        lines = [
            f"cen={num(self.cen)}  com={num(self.com)}  fwhm={num(self.fwhm)}",
            f"max=({num(self.max[0])}, {num(self.max[1])})  "
            f"min=({num(self.min[0])}, {num(self.min[1])})",
        ]
        if self.fit is not None:
            f = self.fit
            lines.append(
                f"gaussian fit: amplitude={num(f.amplitude)}  center={num(f.center)}  "
                f"sigma={num(f.sigma)}  offset={num(f.offset)}"
            )
        return "\n".join(lines)


def peak_stats(
    x: ArrayLike, y: ArrayLike, *, edge_count: int | None = None, fit: bool = True
) -> PeakStatistics:
    """Return the peak statistics of ``y`` against ``x``.

    Args:
        x: Positions (any order; NaNs in x or y drop the point).
        y: Values at those positions.
        edge_count: Subtract the straight line through the mean of the first and of the
            last ``edge_count`` points (by x) before computing (not from ``max``/``min``,
            which report the measured y).
        fit: Fit a Gaussian when scipy is installed.

    Raises:
        ValueError: ``x`` and ``y`` differ in length, are empty, or ``edge_count`` is
            not between 1 and the number of points.
    """
    xs = np.asarray(x, dtype=np.float64).ravel()
    ys = np.asarray(y, dtype=np.float64).ravel()
    if xs.shape != ys.shape:
        raise ValueError(f"x and y differ in length: {xs.size} and {ys.size} points")
    keep = np.isfinite(xs) & np.isfinite(ys)
    order = np.argsort(xs[keep], kind="stable")
    xs, ys = xs[keep][order], ys[keep][order]
    if not xs.size:
        raise ValueError("no points (with finite x and y) to compute peak statistics from")
    signal, lin_bkg = ys, None
    if edge_count is not None:
        if not 1 <= edge_count <= xs.size:
            raise ValueError(f"edge_count must be between 1 and {xs.size}, got {edge_count}")
        lx, rx = xs[:edge_count].mean(), xs[-edge_count:].mean()
        ly, ry = ys[:edge_count].mean(), ys[-edge_count:].mean()
        slope = float((ry - ly) / (rx - lx)) if rx != lx else 0.0
        intercept = float(ly - slope * lx)
        signal = ys - (slope * xs + intercept)
        lin_bkg = {"m": slope, "b": intercept}
    i_min, i_max = int(np.argmin(signal)), int(np.argmax(signal))
    crossings = _crossings(xs, signal)
    return PeakStatistics(
        x=xs,
        y=ys,
        min=(float(xs[i_min]), float(ys[i_min])),
        max=(float(xs[i_max]), float(ys[i_max])),
        com=_center_of_mass(xs, signal),
        cen=float(crossings.mean()) if crossings.size else None,
        fwhm=float(crossings[-1] - crossings[0]) if crossings.size >= 2 else None,
        crossings=crossings,
        fit=fit_gaussian(xs, signal) if fit else None,
        lin_bkg=lin_bkg,
    )


def _center_of_mass(x: NDArray[np.float64], y: NDArray[np.float64]) -> float | None:
    if x.size == 1:
        return float(x[0])
    dx = np.diff(x)
    area = float(np.sum((y[1:] + y[:-1]) * dx) / 2)
    if abs(area) <= 1e-12 * float(np.sum((abs(y[1:]) + abs(y[:-1])) * dx)):
        return None  # no net area (e.g. a derivative): no meaningful centre
    moment = float(np.sum((x[1:] * y[1:] + x[:-1] * y[:-1]) * dx) / 2)
    return moment / area


def _crossings(x: NDArray[np.float64], y: NDArray[np.float64]) -> NDArray[np.float64]:
    """Where ``y`` crosses ``(max + min) / 2``, interpolated between neighbours."""
    mid = (float(y.max()) + float(y.min())) / 2
    above = y > mid
    (left,) = np.nonzero(above[1:] != above[:-1])
    x0, x1, y0, y1 = x[left], x[left + 1], y[left] - mid, y[left + 1] - mid
    return x0 - y0 * (x1 - x0) / (y1 - y0)


def _gaussian(
    x: NDArray[np.float64], amplitude: float, center: float, sigma: float, offset: float
) -> NDArray[np.float64]:
    return offset + amplitude * np.exp(-((x - center) ** 2) / (2 * sigma**2))


def fit_gaussian(x: ArrayLike, y: ArrayLike) -> GaussianFit | None:
    """Least-squares fit of a Gaussian on a constant offset (needs scipy).

    Returns:
        The fit, or ``None`` when scipy is missing, there are fewer than 4 points, or
        the optimiser does not converge.
    """
    xs = np.asarray(x, dtype=np.float64).ravel()
    ys = np.asarray(y, dtype=np.float64).ravel()
    if xs.size < 4 or importlib.util.find_spec("scipy") is None:
        return None
    optimize = cast(Any, importlib.import_module("scipy.optimize"))  # slow: only when fitting

    span = float(xs.max() - xs.min()) or 1.0
    i_max = int(np.argmax(ys))
    low = float(ys.min())
    guess = [float(ys[i_max]) - low, float(xs[i_max]), span / 10, low]

    def residuals(p: NDArray[np.float64]) -> NDArray[np.float64]:
        return _gaussian(xs, float(p[0]), float(p[1]), float(p[2]), float(p[3])) - ys

    lower = [-np.inf, float(xs.min()) - span, span * 1e-9, -np.inf]
    upper = [np.inf, float(xs.max()) + span, span * 10, np.inf]
    result = optimize.least_squares(residuals, guess, bounds=(lower, upper), xtol=1e-12)
    if not result.success:
        return None
    amplitude, center, sigma, offset = (float(v) for v in result.x)
    return GaussianFit(amplitude, center, sigma, offset)


class PeakStats(DocumentRouter):
    """Collect ``y`` against ``x`` from a run's events; compute the statistics at stop.

    The attributes are ``None`` until a run with points ends (and are cleared when the
    next run starts): ``stats`` (the :class:`PeakStatistics`), and for convenience, as
    in bluesky, ``cen``, ``com``, ``fwhm``, ``max``, ``min``, ``crossings``, ``fit``,
    ``lin_bkg``, ``x_data``, ``y_data``; ``derivative_stats`` when asked for.

    Args:
        x: Data key of the positions (e.g. a motor's).
        y: Data key of the values (e.g. a detector's).
        stream: The event stream read.
        edge_count: Subtract a linear background (see :func:`peak_stats`).
        calc_derivative_and_stats: Also compute the statistics of ``dy/dx`` (at the
            midpoints of consecutive x), e.g. an edge scan's derivative peak.
        fit: Fit a Gaussian when scipy is installed.
    """

    def __init__(
        self,
        x: str,
        y: str,
        *,
        stream: str = "primary",
        edge_count: int | None = None,
        calc_derivative_and_stats: bool = False,
        fit: bool = True,
    ) -> None:
        super().__init__()  # pyright: ignore[reportUnknownMemberType]
        self.x = x
        self.y = y
        self._stream = stream
        self._edge_count = edge_count
        self._derivative = calc_derivative_and_stats
        self._fit = fit
        self._descriptors: set[str] = set()
        self._xs: list[NDArray[np.float64]] = []
        self._ys: list[NDArray[np.float64]] = []
        self._clear()

    def _clear(self) -> None:
        self.stats: PeakStatistics | None = None
        self.derivative_stats: PeakStatistics | None = None
        self.x_data: NDArray[np.float64] | None = None
        self.y_data: NDArray[np.float64] | None = None

    @property
    def cen(self) -> float | None:
        """Mean of the half-way crossings."""
        return None if self.stats is None else self.stats.cen

    @property
    def com(self) -> float | None:
        """Centre of mass."""
        return None if self.stats is None else self.stats.com

    @property
    def fwhm(self) -> float | None:
        """Full width at half maximum."""
        return None if self.stats is None else self.stats.fwhm

    @property
    def max(self) -> tuple[float, float] | None:
        """``(x, y)`` at the largest y."""
        return None if self.stats is None else self.stats.max

    @property
    def min(self) -> tuple[float, float] | None:
        """``(x, y)`` at the smallest y."""
        return None if self.stats is None else self.stats.min

    @property
    def crossings(self) -> NDArray[np.float64] | None:
        """Where y crosses the half-way line."""
        return None if self.stats is None else self.stats.crossings

    @property
    def fit(self) -> GaussianFit | None:
        """The fitted Gaussian."""
        return None if self.stats is None else self.stats.fit

    @property
    def lin_bkg(self) -> Mapping[str, float] | None:
        """The subtracted linear background (with ``edge_count``)."""
        return None if self.stats is None else self.stats.lin_bkg

    def start(self, doc: RunStart) -> None:
        """Forget the previous run."""
        self._descriptors.clear()
        self._xs, self._ys = [], []
        self._clear()

    def descriptor(self, doc: EventDescriptor) -> None:
        """Follow the chosen stream when it has both keys."""
        keys = doc["data_keys"]
        if doc.get("name") == self._stream and self.x in keys and self.y in keys:
            self._descriptors.add(doc["uid"])

    def event(self, doc: Event) -> Event:
        """Keep the event's x and y."""
        if doc["descriptor"] in self._descriptors:
            self._take(doc["data"], single=True)
        return doc

    def event_page(self, doc: EventPage) -> EventPage:
        """Keep the page's x and y columns."""
        if doc["descriptor"] in self._descriptors:
            self._take(doc["data"], single=False)
        return doc

    def _take(self, data: Mapping[str, Any], *, single: bool) -> None:
        if self.x not in data or self.y not in data:
            return
        x = np.asarray(data[self.x], dtype=np.float64)
        y = np.asarray(data[self.y], dtype=np.float64)
        if single and (x.size != 1 or y.size != 1):
            raise ValueError(
                f"PeakStats needs a number per event in {self.x!r} and {self.y!r}, "
                f"got shapes {x.shape} and {y.shape}"
            )
        self._xs.append(x.ravel())
        self._ys.append(y.ravel())

    def stop(self, doc: RunStop) -> None:
        """Compute the statistics of the points collected."""
        if not self._xs:
            return
        x, y = np.concatenate(self._xs), np.concatenate(self._ys)
        self._xs, self._ys = [], []
        self.x_data, self.y_data = x, y
        self.stats = peak_stats(x, y, edge_count=self._edge_count, fit=self._fit)
        if self._derivative and self.stats.x.size >= 2:
            xs, ys = self.stats.x, self.stats.y
            dx = np.diff(xs)
            step = dx != 0
            mid = ((xs[1:] + xs[:-1]) / 2)[step]
            slope = np.diff(ys)[step] / dx[step]
            if mid.size:
                self.derivative_stats = peak_stats(mid, slope, fit=self._fit)

    def __repr__(self) -> str:
        return f"PeakStats({self.x!r}, {self.y!r})" + (
            "" if self.stats is None else f"\n{self.stats}"
        )
