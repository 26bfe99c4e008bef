"""Point detectors compute their model at the motors' current readbacks."""

from __future__ import annotations

import math

import pytest
from acq.devices.sim import EdgeDetector, Gaussian2DDetector, GaussianDetector, Motor
from ophyd_async.sim import SimMotor


async def connected_motor(name: str, position: float = 0.0) -> Motor:
    motor = Motor(name, instant=True, initial_value=position)
    await motor.connect()
    return motor


async def value_at(detector: GaussianDetector | EdgeDetector | Gaussian2DDetector) -> float:
    await detector.trigger()
    reading = await detector.read()
    return reading[detector.name]["value"]


async def test_gaussian_at_center_equals_imax() -> None:
    x = await connected_motor("x", 1.5)
    det = GaussianDetector(x, center=1.5, Imax=42.0, sigma=0.3, name="det")
    await det.connect()
    assert await value_at(det) == 42.0


@pytest.mark.parametrize("position", [-2.0, -0.4, 0.0, 0.7, 1.5, 3.0])
async def test_gaussian_matches_the_analytic_formula(position: float) -> None:
    center, imax, sigma = 0.5, 7.0, 0.8
    x = await connected_motor("x")
    det = GaussianDetector(x, center=center, Imax=imax, sigma=sigma, name="det")
    await det.connect()
    await x.set(position)
    expected = imax * math.exp(-((position - center) ** 2) / (2 * sigma**2))
    assert await value_at(det) == pytest.approx(expected, rel=1e-12)


async def test_value_follows_the_readback_after_a_timed_move() -> None:
    x = Motor("x", velocity=20.0)
    await x.connect()
    det = GaussianDetector(x, name="det")
    await det.connect()
    await x.set(1.0)
    assert await value_at(det) == pytest.approx(math.exp(-0.5))


async def test_changing_a_model_parameter_changes_the_next_value() -> None:
    x = await connected_motor("x", 1.0)
    det = GaussianDetector(x, name="det")
    await det.connect()
    assert await value_at(det) == pytest.approx(math.exp(-0.5))
    await det.center.set(1.0)
    assert await value_at(det) == 1.0


@pytest.mark.parametrize("position", [-3.0, -0.5, 0.0, 0.25, 1.0, 4.0])
async def test_edge_is_an_error_function_step(position: float) -> None:
    center, width, low, high = 0.2, 0.5, 10.0, 110.0
    x = await connected_motor("x", position)
    edge = EdgeDetector(x, center=center, width=width, low=low, high=high, name="edge")
    await edge.connect()
    expected = low + (high - low) * (1 + math.erf((position - center) / (math.sqrt(2) * width))) / 2
    assert await value_at(edge) == pytest.approx(expected, rel=1e-12)


async def test_edge_midpoint_and_plateaus() -> None:
    x = await connected_motor("x")
    edge = EdgeDetector(x, center=0.0, width=0.1, low=1.0, high=3.0, name="edge")
    await edge.connect()
    assert await value_at(edge) == pytest.approx(2.0)
    await x.set(-5.0)
    assert await value_at(edge) == pytest.approx(1.0)
    await x.set(5.0)
    assert await value_at(edge) == pytest.approx(3.0)


@pytest.mark.parametrize(("px", "py"), [(0.0, 0.0), (1.0, -0.5), (-1.2, 2.0)])
async def test_gaussian_2d_over_two_motors(px: float, py: float) -> None:
    x = await connected_motor("x", px)
    y = await connected_motor("y", py)
    det = Gaussian2DDetector(
        x, y, center_x=0.5, center_y=-0.25, Imax=9.0, sigma_x=0.7, sigma_y=1.3, name="det2d"
    )
    await det.connect()
    expected = 9.0 * math.exp(-((px - 0.5) ** 2) / (2 * 0.7**2) - (py + 0.25) ** 2 / (2 * 1.3**2))
    assert await value_at(det) == pytest.approx(expected, rel=1e-12)


async def test_gaussian_2d_peak_equals_imax() -> None:
    x = await connected_motor("x", 2.0)
    y = await connected_motor("y", -1.0)
    det = Gaussian2DDetector(x, y, center_x=2.0, center_y=-1.0, Imax=5.0, name="det2d")
    await det.connect()
    assert await value_at(det) == 5.0


async def test_works_with_any_locatable_motor_such_as_ophyd_async_sim_motor() -> None:
    motor = SimMotor("sim", instant=True)
    await motor.connect()
    await motor.set(2.0)
    det = GaussianDetector(motor, sigma=2.0, name="det")
    await det.connect()
    assert await value_at(det) == pytest.approx(math.exp(-0.5))


def test_bad_model_parameters_are_refused() -> None:
    x = Motor("x")
    with pytest.raises(ValueError, match="sigma"):
        GaussianDetector(x, sigma=0.0)
    with pytest.raises(ValueError, match="width"):
        EdgeDetector(x, width=-1.0)
    with pytest.raises(ValueError, match="acquire_time"):
        GaussianDetector(x, acquire_time=-0.1)
