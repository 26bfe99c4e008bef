"""Motor: motion over time, progress, stop, limits, instant mode."""

from __future__ import annotations

import asyncio

import pytest
from acq.devices.sim import Motor, MotorLimitsError
from bluesky.protocols import Reading
from ophyd_async.core import observe_value


class Recorder:
    """Collects a signal's values from its reading subscription."""

    def __init__(self) -> None:
        self.values: list[float] = []

    def __call__(self, reading: dict[str, Reading[float]]) -> None:
        (only,) = reading.values()
        self.values.append(only["value"])


async def make_motor(**kwargs: object) -> Motor:
    motor = Motor("m", **kwargs)  # type: ignore[arg-type]
    await motor.connect()
    return motor


async def test_readback_passes_strictly_between_start_and_target_then_arrives() -> None:
    motor = await make_motor(velocity=10.0)
    seen: list[float] = []
    status = motor.set(1.0)
    async for value in observe_value(motor.user_readback, done_status=status):
        seen.append(value)
    await status
    intermediate = [v for v in seen if v not in (0.0, 1.0)]
    assert len(intermediate) >= 3
    assert all(0.0 < v < 1.0 for v in intermediate)
    assert seen == sorted(seen)  # monotonic towards the target
    assert seen[-1] == 1.0
    assert await motor.user_readback.get_value() == 1.0
    assert await motor.locate() == {"setpoint": 1.0, "readback": 1.0}


async def test_move_with_acceleration_is_monotonic_and_arrives() -> None:
    motor = await make_motor(velocity=20.0, acceleration_time=0.05, initial_value=2.0)
    seen: list[float] = []
    status = motor.set(1.0)
    async for value in observe_value(motor.user_readback, done_status=status):
        seen.append(value)
    assert seen == sorted(seen, reverse=True)
    assert any(1.0 < v < 2.0 for v in seen)
    assert seen[-1] == 1.0


async def test_set_status_reports_progress_to_watchers() -> None:
    motor = await make_motor(velocity=10.0)
    updates: list[dict[str, object]] = []
    status = motor.set(0.5)
    status.watch(lambda **kwargs: updates.append(kwargs))
    await status
    assert status.success
    assert len(updates) >= 3
    assert {u["name"] for u in updates} == {"m"}
    assert all(u["initial"] == 0.0 and u["target"] == 0.5 for u in updates)
    currents = [u["current"] for u in updates]
    assert currents[-1] == 0.5
    assert any(0.0 < c < 0.5 for c in currents)  # type: ignore[operator]
    assert updates[-1]["unit"] == "mm"


@pytest.mark.parametrize("kwargs", [{"instant": True}, {"velocity": 0.0}])
async def test_instant_motor_arrives_without_intermediate_values(
    kwargs: dict[str, object],
) -> None:
    motor = await make_motor(**kwargs)
    assert await motor.velocity.get_value() == 0.0
    seen = Recorder()
    motor.user_readback.subscribe_reading(seen)
    await motor.set(3.0)
    motor.user_readback.clear_sub(seen)
    assert seen.values == [0.0, 3.0]


async def test_stop_mid_move_leaves_readback_short_of_target_and_fails_status() -> None:
    motor = await make_motor(velocity=2.0)
    status = motor.set(1.0)
    async for value in observe_value(motor.user_readback):
        if value > 0.1:
            await motor.stop()
            break
    with pytest.raises(RuntimeError, match="m was stopped"):
        await status
    stopped_at = await motor.user_readback.get_value()
    assert 0.1 < stopped_at < 1.0
    # The setpoint follows the readback, and nothing moves any more.
    await asyncio.sleep(0.05)
    assert await motor.locate() == {"setpoint": stopped_at, "readback": stopped_at}


async def test_stop_with_success_completes_status_where_it_stopped() -> None:
    motor = await make_motor(velocity=2.0)
    status = motor.set(-1.0)
    async for value in observe_value(motor.user_readback):
        if value < -0.1:
            await motor.stop(success=True)
            break
    await status
    assert status.success
    assert -1.0 < await motor.user_readback.get_value() < -0.1


async def test_new_set_supersedes_a_move_in_progress() -> None:
    motor = await make_motor(velocity=5.0)
    first = motor.set(1.0)
    async for value in observe_value(motor.user_readback):
        if value > 0.05:
            break
    second = motor.set(-0.2)
    await asyncio.gather(first, second)
    assert await motor.locate() == {"setpoint": -0.2, "readback": -0.2}


@pytest.mark.parametrize(
    ("target", "limit_word", "limit_value"), [(5.5, "high", "5.0"), (-2.5, "low", "-2.0")]
)
async def test_set_past_limit_fails_before_any_motion(
    target: float, limit_word: str, limit_value: str
) -> None:
    motor = await make_motor(velocity=10.0, limits=(-2.0, 5.0), initial_value=0.5)
    seen = Recorder()
    motor.user_readback.subscribe_reading(seen)
    status = motor.set(target)
    with pytest.raises(MotorLimitsError) as excinfo:
        await status
    motor.user_readback.clear_sub(seen)
    message = str(excinfo.value)
    assert "m" in message.split(":")[0]
    assert f"{limit_word} soft limit {limit_value}" in message
    assert f"m-{limit_word}_limit_travel" in message
    assert seen.values == [0.5]
    assert await motor.locate() == {"setpoint": 0.5, "readback": 0.5}


async def test_check_value_refuses_a_position_outside_limits_without_moving() -> None:
    motor = await make_motor(limits=(0.0, 1.0))
    with pytest.raises(MotorLimitsError, match="above the high soft limit"):
        await motor.check_value(2.0)
    await motor.check_value(0.5)
    assert await motor.user_readback.get_value() == 0.0


async def test_non_finite_target_is_refused() -> None:
    motor = await make_motor()
    with pytest.raises(MotorLimitsError, match="non-finite"):
        await motor.set(float("nan"))


async def test_no_limits_by_default() -> None:
    motor = await make_motor(instant=True)
    await motor.set(1e6)
    assert await motor.user_readback.get_value() == 1e6


async def test_read_hints_and_configuration_use_the_motor_name() -> None:
    motor = await make_motor(velocity=2.0, acceleration_time=0.1, limits=(-1.0, 1.0))
    assert list(await motor.read()) == ["m"]
    assert motor.hints == {"fields": ["m"]}
    config = await motor.read_configuration()
    assert {k: v["value"] for k, v in config.items()} == {
        "m-velocity": 2.0,
        "m-acceleration_time": 0.1,
        "m-low_limit_travel": -1.0,
        "m-high_limit_travel": 1.0,
    }
    assert set(await motor.describe_configuration()) == set(config)
    assert (await motor.describe())["m"]["units"] == "mm"


def test_bad_construction_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="low <= high"):
        Motor("m", limits=(1.0, -1.0))
    with pytest.raises(ValueError, match="update_period"):
        Motor("m", update_period=0.0)


@pytest.mark.looptime(start=0.123457)
async def test_moves_finish_on_virtual_time_despite_float_rounding() -> None:
    # On looptime's clock a rounding remainder of 1e-17 s never elapsed: moves hung.
    motor = await make_motor(velocity=10.0)
    for target in (1.0, 2.0, 3.0, -3.0, 0.5):
        await motor.set(target)
        assert await motor.user_readback.get_value() == pytest.approx(target)
