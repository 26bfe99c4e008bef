"""Exposure and model parameters are configuration; the value is the reading."""

from __future__ import annotations

import asyncio

from acq.devices.sim import EdgeDetector, Gaussian2DDetector, GaussianDetector, Motor, Noise
from bluesky.protocols import Configurable, Readable, Triggerable


async def test_configuration_holds_exposure_and_model_parameters() -> None:
    x = Motor("x", instant=True)
    det = GaussianDetector(x, center=1.0, Imax=3.0, sigma=0.5, acquire_time=0.002, name="det")
    await asyncio.gather(x.connect(), det.connect())
    config = await det.read_configuration()
    assert {k: v["value"] for k, v in config.items()} == {
        "det-acquire_time": 0.002,
        "det-center": 1.0,
        "det-Imax": 3.0,
        "det-sigma": 0.5,
        "det-noise": Noise.NONE,
        "det-noise_multiplier": 1.0,
    }
    described = await det.describe_configuration()
    assert set(described) == set(config)
    assert described["det-acquire_time"]["units"] == "s"
    assert described["det-noise"]["choices"] == ["none", "poisson", "uniform"]


async def test_setting_acquire_time_shows_in_the_next_configuration_read() -> None:
    x = Motor("x", instant=True)
    det = EdgeDetector(x, name="edge")
    await asyncio.gather(x.connect(), det.connect())
    await det.acquire_time.set(0.001)
    await det.trigger()
    assert (await det.read_configuration())["edge-acquire_time"]["value"] == 0.001


async def test_reading_is_keyed_by_the_detector_name_and_hinted() -> None:
    x, y = Motor("x", instant=True), Motor("y", instant=True)
    det = Gaussian2DDetector(x, y, name="det2d")
    await asyncio.gather(x.connect(), y.connect(), det.connect())
    await det.trigger()
    assert list(await det.read()) == ["det2d"]
    assert list(await det.describe()) == ["det2d"]
    assert det.hints == {"fields": ["det2d"]}
    assert {"det2d-center_x", "det2d-sigma_y", "det2d-Imax"} <= set(await det.read_configuration())


def test_detectors_follow_the_bluesky_protocols() -> None:
    x = Motor("x")
    for det in (GaussianDetector(x), EdgeDetector(x), Gaussian2DDetector(x, x)):
        assert isinstance(det, Readable)
        assert isinstance(det, Triggerable)
        assert isinstance(det, Configurable)
