"""Motor: motion over time, progress, stop, limits, instant mode."""

from __future__ import annotations

import asyncio
import itertools
import re

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
    # These tests count the updates of sub-second moves: publish every 10 ms.
    kwargs.setdefault("update_period", 0.01)
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


@pytest.mark.looptime(start=0.0)
async def test_timed_out_set_names_motor_target_and_timeout_and_stays_there() -> None:
    motor = await make_motor(velocity=1.0)
    with pytest.raises(TimeoutError) as excinfo:
        await motor.set(5.0, timeout=0.2)
    message = str(excinfo.value)
    match = re.match(
        r"m: set\(5\.0\) did not finish within 0\.2 s \(at ([\d.]+) of 5\.0, "
        r"moving 1 mm/s from 0\.0\)",
        message,
    )
    assert match, message
    # The motor stays where the time ran out (what the timeout left after the limits
    # check, in real time), and nothing moves any more.
    stopped_at = (await motor.locate())["readback"]
    assert stopped_at == pytest.approx(0.2, abs=0.02)
    assert float(match[1]) == pytest.approx(stopped_at, abs=1e-3)
    await asyncio.sleep(1.0)
    assert (await motor.locate())["readback"] == stopped_at


@pytest.mark.looptime(start=0.0)
async def test_minute_long_move_publishes_correct_positions_and_reads_are_exact() -> None:
    # On virtual time: the default update period, and reads between the updates.
    motor = Motor("m", velocity=1.0, acceleration_time=2.0)
    await motor.connect()
    loop = asyncio.get_running_loop()
    published: list[tuple[float, float]] = []

    def record(reading: dict[str, Reading[float]]) -> None:
        published.append((loop.time(), reading["m"]["value"]))

    motor.subscribe_reading(record)
    start = loop.time()
    status = motor.set(60.0)
    await asyncio.sleep(30.055)  # between two updates: a read gives this instant's position
    expected = 1.0 + (30.055 - 2.0)  # 1 mm to reach 1 mm/s in 2 s, then cruise
    assert (await motor.locate())["readback"] == pytest.approx(expected, abs=1e-9)
    assert (await motor.read())["m"]["value"] == pytest.approx(expected, abs=1e-9)
    await status
    motor.clear_sub(record)

    assert loop.time() - start == pytest.approx(62.0)  # 2 s ramp each end, 58 s cruise
    times = [t - start for t, _ in published]
    positions = [p for _, p in published]
    assert positions[0] == 0.0
    assert positions[-1] == 60.0
    assert positions == sorted(positions)
    assert max(b - a for a, b in itertools.pairwise(times[1:])) <= 0.1 + 1e-6
    assert len(published) >= 620  # 62 s at 10 updates a second
    for t, position in published[1:]:  # each update is where the trajectory is then
        t -= start
        if t <= 2.0:
            model = 0.25 * t * t  # accelerating: 0.5 mm/s^2
        elif t <= 60.0:
            model = 1.0 + (t - 2.0)
        else:
            model = 60.0 - 0.25 * (62.0 - t) ** 2
        assert position == pytest.approx(model, abs=1e-6), t
