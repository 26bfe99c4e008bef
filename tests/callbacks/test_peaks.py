"""PeakStats against the analytic values of the simulated detectors' models."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from acq.callbacks import PeakStats, fit_gaussian, peak_stats
from acq.devices.sim import EdgeDetector, Flyer, GaussianDetector, Motor, Noise
from acq.plans import fly, scan
from support import DocChecker

from acq import RunEngine

FWHM_PER_SIGMA = 2 * math.sqrt(2 * math.log(2))
CENTER, IMAX, SIGMA = 0.5, 2.0, 0.7


async def gaussian_setup(**options: Any) -> tuple[Motor, GaussianDetector]:
    x = Motor("x", instant=True)
    det = GaussianDetector(x, center=CENTER, Imax=IMAX, sigma=SIGMA, name="det", **options)
    await x.connect()
    await det.connect()
    return x, det


async def test_a_noise_free_gaussian_scan_gives_the_analytic_statistics(RE: RunEngine) -> None:
    x, det = await gaussian_setup()
    ps = PeakStats("x", "det")
    # 161 points, step 0.05, symmetric about the centre; scanned downwards
    await RE(scan([det], x, 4.5, -3.5, 161), ps)

    assert ps.cen == pytest.approx(CENTER, abs=1e-9)
    assert ps.com == pytest.approx(CENTER, abs=1e-9)
    assert ps.max == pytest.approx((CENTER, IMAX), abs=1e-12)
    tail = IMAX * math.exp(-(4.0**2) / (2 * SIGMA**2))  # at both ends, 4 from the centre
    assert ps.min is not None
    assert ps.min[0] in (-3.5, 4.5)
    assert ps.min[1] == pytest.approx(tail, rel=1e-9)
    # half-maximum crossings at centre -+ sqrt(2 ln 2) sigma, to within the linear
    # interpolation error over a 0.05 step (about 1e-4)
    half_width = FWHM_PER_SIGMA * SIGMA / 2
    assert ps.crossings == pytest.approx([CENTER - half_width, CENTER + half_width], abs=5e-4)
    assert ps.fwhm == pytest.approx(2 * half_width, abs=1e-3)
    assert ps.fit is not None
    assert ps.fit.amplitude == pytest.approx(IMAX, abs=1e-6)
    assert ps.fit.center == pytest.approx(CENTER, abs=1e-6)
    assert ps.fit.sigma == pytest.approx(SIGMA, abs=1e-6)
    assert ps.fit.offset == pytest.approx(0.0, abs=1e-6)
    assert ps.fit.fwhm == pytest.approx(FWHM_PER_SIGMA * SIGMA, abs=1e-5)
    assert ps.x_data is not None
    assert ps.x_data.size == 161


async def test_seeded_poisson_noise_still_finds_the_peak(RE: RunEngine) -> None:
    x, det = await gaussian_setup(noise=Noise.POISSON, seed=7)
    await det.Imax.set(1000.0)
    ps = PeakStats("x", "det")
    await RE(scan([det], x, -3.5, 4.5, 81), ps)
    assert ps.fit is not None
    # sqrt(1000) ~ 3 % noise on the peak: the fit lands within a few hundredths
    assert ps.fit.center == pytest.approx(CENTER, abs=0.02)
    assert ps.fit.sigma == pytest.approx(SIGMA, abs=0.02)
    assert ps.fit.amplitude == pytest.approx(1000.0, rel=0.03)
    assert ps.cen == pytest.approx(CENTER, abs=0.05)
    assert ps.com == pytest.approx(CENTER, abs=0.02)


async def test_an_edge_and_its_derivative_give_the_edge_position_and_width(
    RE: RunEngine,
) -> None:
    x = Motor("x", instant=True)
    edge = EdgeDetector(x, center=-0.4, width=0.3, low=1.0, high=5.0, name="edge")
    await x.connect()
    await edge.connect()
    ps = PeakStats("x", "edge", calc_derivative_and_stats=True)
    await RE(scan([edge], x, -3.4, 2.6, 121), ps)  # symmetric about the edge

    assert ps.cen == pytest.approx(-0.4, abs=1e-9)  # the half-way point of the step
    assert ps.min == pytest.approx((-3.4, 1.0), abs=1e-9)
    d = ps.derivative_stats
    assert d is not None
    assert d.fit is not None
    # d(edge)/dx is a Gaussian: centre -0.4, sigma 0.3, height 4 / (sqrt(2 pi) 0.3); the
    # difference quotient over a 0.05 step widens it by h**2 / 12 in variance
    assert d.cen == pytest.approx(-0.4, abs=1e-9)
    assert d.com == pytest.approx(-0.4, abs=1e-9)
    assert d.fit.center == pytest.approx(-0.4, abs=1e-9)
    assert d.fit.sigma == pytest.approx(math.sqrt(0.3**2 + 0.05**2 / 12), abs=1e-4)
    assert d.fit.amplitude == pytest.approx(4 / (math.sqrt(2 * math.pi) * 0.3), rel=2e-3)
    assert d.fwhm == pytest.approx(FWHM_PER_SIGMA * 0.3, abs=5e-3)


async def test_event_pages_are_collected_too(RE: RunEngine) -> None:
    flyer = Flyer("flyer", num_points=201, page_size=50, start_position=-4, end_position=4)
    await flyer.connect()
    ps = PeakStats("flyer-position", "flyer-intensity", stream="flyer")
    await RE(fly([flyer]), ps)
    assert ps.x_data is not None
    assert ps.x_data.size == 201
    assert ps.cen == pytest.approx(0.0, abs=1e-9)
    assert ps.fit is not None
    assert ps.fit.sigma == pytest.approx(1.0, abs=1e-6)


async def test_results_are_cleared_when_the_next_run_starts(
    RE: RunEngine, checker: DocChecker
) -> None:
    x, det = await gaussian_setup()
    ps = PeakStats("x", "det")
    assert ps.cen is None
    assert ps.stats is None
    assert ps.fit is None
    await RE(scan([det], x, -1, 2, 31), ps)
    assert ps.cen is not None
    ps("start", checker.of("start")[0])
    assert ps.cen is None
    assert ps.max is None
    assert ps.x_data is None


async def test_a_stream_without_the_fields_leaves_the_results_empty(RE: RunEngine) -> None:
    x, det = await gaussian_setup()
    ps = PeakStats("x", "nonexistent")
    await RE(scan([det], x, -1, 1, 5), ps)
    assert ps.stats is None
    assert ps.com is None


def test_peak_stats_of_plain_arrays_with_a_linear_background() -> None:
    x = np.linspace(-5, 5, 1001)
    peak = 3.0 * np.exp(-((x - 1.2) ** 2) / (2 * 0.5**2))
    stats = peak_stats(x, peak + 0.2 + 0.05 * x, edge_count=50)
    assert stats.lin_bkg is not None
    assert stats.lin_bkg["m"] == pytest.approx(0.05, abs=1e-6)
    assert stats.lin_bkg["b"] == pytest.approx(0.2, abs=1e-6)
    assert stats.com == pytest.approx(1.2, abs=1e-6)
    assert stats.cen == pytest.approx(1.2, abs=1e-4)
    assert stats.fwhm == pytest.approx(FWHM_PER_SIGMA * 0.5, abs=1e-4)
    assert stats.max[0] == pytest.approx(1.2)
    assert stats.fit is not None
    assert stats.fit.offset == pytest.approx(0.0, abs=1e-6)  # fitted after subtraction


def test_order_does_not_matter_and_nans_are_dropped() -> None:
    x = np.array([2.0, 0.0, 1.0, np.nan, 3.0, -1.0])
    y = np.array([1.0, 1.0, 3.0, 5.0, 0.0, 0.0])
    stats = peak_stats(x, y, fit=False)
    assert list(stats.x) == [-1.0, 0.0, 1.0, 2.0, 3.0]
    assert stats.max == (1.0, 3.0)
    assert stats.min == (-1.0, 0.0)
    # half-way line 1.5: crossed between 0 and 1 (at 0.25) and between 1 and 2 (at 1.75)
    assert list(stats.crossings) == pytest.approx([0.25, 1.75])
    assert stats.cen == pytest.approx(1.0)
    assert stats.fwhm == pytest.approx(1.5)
    assert stats.fit is None


def test_a_single_crossing_gives_a_centre_but_no_width() -> None:
    stats = peak_stats([0, 1, 2, 3], [0, 1, 2, 3])
    assert stats.cen == pytest.approx(1.5)
    assert stats.fwhm is None


def test_too_few_points_for_a_fit_and_bad_input() -> None:
    assert fit_gaussian([0, 1, 2], [0, 1, 0]) is None
    one = peak_stats([4.0], [2.0])
    assert one.com == 4.0
    assert one.cen is None
    assert one.max == (4.0, 2.0)
    with pytest.raises(ValueError, match="differ in length"):
        peak_stats([1, 2], [1])
    with pytest.raises(ValueError, match="no points"):
        peak_stats([np.nan], [1.0])
    with pytest.raises(ValueError, match="edge_count"):
        peak_stats([1, 2], [1, 2], edge_count=3)


def test_the_summary_names_each_statistic() -> None:
    x = np.linspace(-3, 3, 61)
    text = str(peak_stats(x, np.exp(-(x**2) / 2)))
    for name in ("cen=", "com=", "fwhm=", "max=", "min=", "gaussian fit:", "sigma=1"):
        assert name in text
