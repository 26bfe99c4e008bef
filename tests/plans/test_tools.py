"""acq.plans.tools: summaries without hardware, limit checks that move nothing, time estimates.

Expected summaries are written out by hand. Time estimates are compared with a real run
of the simulated beamline on virtual time (looptime), which is deterministic: the loop's
clock jumps from timer to timer, so the measured time is what the devices' models say.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from typing import Any

import bluesky.plans as bp
import pytest
from acq.devices.sim import Gaussian2DDetector, GaussianDetector, Motor, SimBeamline
from acq.plans import count, grid_scan, rel_scan, scan
from acq.plans.preprocessors import baseline_wrapper
from acq.plans.stubs import mv, mvr, sleep, trigger_and_read
from acq.plans.tools import (
    TimeEstimate,
    check_limits,
    estimate_time,
    move_time,
    plan_summary,
    summarize_plan,
)
from support import Signal

from acq import Msg, PlanError, Return, RunEngine

# -- summaries ----------------------------------------------------------------------------


class Devices:
    """Simulated devices that are never connected: a summary must not need them to be."""

    def __init__(self) -> None:
        self.x = Motor("x", limits=(-10.0, 10.0))
        self.y = Motor("y", limits=(-10.0, 10.0))
        self.det = GaussianDetector(self.x, name="det")
        self.det2d = Gaussian2DDetector(self.x, self.y, name="det2d")


@pytest.fixture
def dev() -> Devices:
    return Devices()


def test_summary_of_scan_shows_each_move_and_read_inside_the_run(dev: Devices) -> None:
    text = plan_summary(scan([dev.det], dev.x, -1, 1, num=3))
    assert text == (
        "Open run: scan\n"
        "  x -> -1.0\n"
        "  Read ['det', 'x']\n"
        "  x -> 0.0\n"
        "  Read ['det', 'x']\n"
        "  x -> 1.0\n"
        "  Read ['det', 'x']\n"
        "Close run\n"
    )


def test_summary_of_grid_scan_puts_motors_set_together_on_one_line(dev: Devices) -> None:
    text = plan_summary(grid_scan([dev.det2d], dev.x, -1, 1, 2, dev.y, 0, 1, 3, snake_axes=True))
    assert text == (
        "Open run: grid_scan\n"
        "  x -> -1.0, y -> 0.0\n"
        "  Read ['det2d', 'x', 'y']\n"
        "  y -> 0.5\n"
        "  Read ['det2d', 'x', 'y']\n"
        "  y -> 1.0\n"
        "  Read ['det2d', 'x', 'y']\n"
        "  x -> 1.0\n"  # y snakes: it stays at 1.0 while x steps
        "  Read ['det2d', 'x', 'y']\n"
        "  y -> 0.5\n"
        "  Read ['det2d', 'x', 'y']\n"
        "  y -> 0.0\n"
        "  Read ['det2d', 'x', 'y']\n"
        "Close run\n"
    )


def test_summary_of_count_shows_each_delay(dev: Devices) -> None:
    text = plan_summary(count([dev.det], 3, delay=[0.5, 2]))
    assert text == (
        "Open run: count\n"
        "  Read ['det']\n"
        "  Sleep 0.5 s\n"
        "  Read ['det']\n"
        "  Sleep 2.0 s\n"
        "  Read ['det']\n"
        "Close run\n"
    )


def test_summary_of_relative_scan_starts_at_the_given_position_and_returns(
    dev: Devices,
) -> None:
    text = plan_summary(rel_scan([dev.det], dev.x, -1, 1, num=2), positions={dev.x: 5.0})
    assert text == (
        "Open run: rel_scan\n"
        "  x -> 4.0\n"
        "  Read ['det', 'x']\n"
        "  x -> 6.0\n"
        "  Read ['det', 'x']\n"
        "Close run\n"
        "x -> 5.0\n"
    )


def test_summary_names_a_stream_other_than_primary(dev: Devices) -> None:
    text = plan_summary(baseline_wrapper(count([dev.det]), [dev.x, dev.y]))
    assert text == (
        "Open run: count\n"
        "  Read ['x', 'y'] into 'baseline'\n"
        "  Read ['det']\n"
        "  Read ['x', 'y'] into 'baseline'\n"
        "Close run\n"
    )


def test_summary_follows_sub_plans_at_depth_with_plausible_replies(dev: Devices) -> None:
    def legacy_offset() -> Any:  # a plain-generator sub-plan that returns a value
        yield Msg("null")
        return 0.25

    async def measure(det: Any, motor: Any) -> Any:
        offset = yield legacy_offset()
        yield mvr(motor, offset)  # locate (reply: the tracked position), then move
        reading = yield trigger_and_read([det, motor])
        yield Return(reading[motor.name]["value"])  # a read reply carries the position

    async def my_plan() -> Any:
        yield mv(dev.x, 1.0, dev.y, 2.0)
        here = yield measure(dev.det, dev.x)
        yield sleep(here)
        yield Msg("open_run", plan_name="mine")
        yield Msg("kickoff", dev.det)
        yield Msg("close_run", exit_status="fail")

    assert plan_summary(my_plan()) == (
        "x -> 1.0, y -> 2.0\n"
        "x -> 1.25\n"
        "Read ['det', 'x']\n"
        "Sleep 1.25 s\n"
        "Open run: mine\n"
        "  Kickoff det\n"
        "Close run (fail)\n"
    )


def test_summary_of_a_bluesky_plan_reads_like_that_of_acqs(dev: Devices) -> None:
    ours = plan_summary(scan([dev.det], dev.x, -2, 2, num=5))
    theirs = plan_summary(bp.scan([dev.det], dev.x, -2, 2, 5))
    assert theirs == ours
    assert theirs.count("Read ['det', 'x']") == 5


def test_summarize_plan_prints_the_summary_without_an_event_loop(
    dev: Devices, capsys: pytest.CaptureFixture[str]
) -> None:
    summarize_plan(count([dev.det], 2))
    assert capsys.readouterr().out == (
        "Open run: count\n  Read ['det']\n  Read ['det']\nClose run\n"
    )


async def test_summary_works_inside_a_running_event_loop(dev: Devices) -> None:
    assert plan_summary(count([dev.det])) == "Open run: count\n  Read ['det']\nClose run\n"


def test_an_endless_plan_is_refused_after_max_messages(dev: Devices) -> None:
    with pytest.raises(PlanError, match="still going after 100 messages"):
        plan_summary(count([dev.det], None), max_messages=100)


async def test_a_plan_that_awaits_outside_a_message_cannot_be_summarized() -> None:
    async def impatient() -> Any:
        await asyncio.sleep(0.01)
        yield Msg("null")

    with pytest.raises(PlanError, match=r"awaited .* itself, outside a message"):
        plan_summary(impatient())


def test_an_error_raised_by_the_plan_reaches_the_caller(dev: Devices) -> None:
    async def broken() -> Any:
        yield Msg("set", dev.x, 1.0)
        raise ValueError("broken plan")

    with pytest.raises(ValueError, match="broken plan"):
        plan_summary(broken())


# -- limits (``bl``: the instant sim beamline of tests/plans/conftest.py) ----------------------


async def _setpoints(bl: SimBeamline) -> tuple[float, float]:
    return (await bl.x.user_setpoint.get_value(), await bl.x.user_readback.get_value())


async def test_check_limits_refuses_a_scan_past_the_soft_limit_and_moves_nothing(
    bl: SimBeamline,
) -> None:
    await bl.x.set(3.0)
    with pytest.raises(PlanError) as caught:
        await check_limits(scan([bl.det], bl.x, -5, 15, num=5))  # -5, 0, 5, 10, 15
    message = str(caught.value)
    assert re.search(r"message \d+ would set x to 15\.0", message), message
    assert "above the high soft limit 10.0" in message
    assert await _setpoints(bl) == (3.0, 3.0)  # instant motor: any set would show


async def test_check_limits_names_the_index_of_the_refused_message(bl: SimBeamline) -> None:
    x = bl.x
    plan = [Msg("set", x, 1.0), Msg("wait"), Msg("set", x, 2.0), Msg("set", x, -12.0)]
    with pytest.raises(PlanError, match=r"message 3 would set x to -12\.0.*below the low"):
        await check_limits(plan)


async def test_check_limits_passes_a_good_grid_and_moves_nothing(bl: SimBeamline) -> None:
    await bl.x.set(3.0)
    await check_limits(grid_scan([bl.det2d], bl.x, -10, 10, 5, bl.y, -10, 10, 5))
    assert await _setpoints(bl) == (3.0, 3.0)
    assert await bl.y.user_setpoint.get_value() == 0.0


async def test_check_limits_starts_relative_plans_where_the_motors_are(bl: SimBeamline) -> None:
    plan: Callable[[], Any] = lambda: rel_scan([bl.det], bl.x, -2, 2, num=3)  # noqa: E731
    await check_limits(plan())  # from 0: -2 .. 2 is fine
    await bl.x.set(9.0)
    with pytest.raises(PlanError, match=r"would set x to 11\.0"):
        await check_limits(plan())
    await check_limits(plan(), positions={bl.x: 0.0})  # an assumed start wins
    assert await _setpoints(bl) == (9.0, 9.0)


# -- time -------------------------------------------------------------------------------------


def test_move_time_follows_the_trapezoid_and_the_triangle() -> None:
    assert move_time(4.0, 2.0) == 2.0  # no acceleration: distance / velocity
    assert move_time(-4.0, 2.0) == 2.0
    assert move_time(2.0, 2.0, 0.2) == pytest.approx(1.2)  # ramps cost 0.2 s extra
    # 0.1 mm at 10 mm/s^2 never reaches 2 mm/s: two ramps of sqrt(0.05 / 10) s
    assert move_time(0.1, 2.0, 0.2) == pytest.approx(2 * 0.1)
    assert move_time(3.0, 0.0, 1.0) == 0.0  # velocity 0: an instant motor
    assert move_time(0.0, 2.0, 1.0) == 0.0


def _mv_and_sleep(bl: SimBeamline) -> Any:
    async def plan() -> Any:
        yield mv(bl.x, 2.0, bl.y, -4.0)  # one group: the slower move (y) counts
        yield sleep(0.75)
        yield mv(bl.x, 0.0)

    return plan()


PLANS: dict[str, Callable[[SimBeamline], Any]] = {
    "scan": lambda bl: scan([bl.det], bl.x, -1, 1, num=5),
    "grid_scan": lambda bl: grid_scan([bl.det2d], bl.x, -1, 1, 3, bl.y, -2, 2, 3, snake_axes=True),
    "count with delays": lambda bl: count([bl.det], 4, delay=[0.5, 1.0, 0.25]),
    "rel_scan": lambda bl: rel_scan([bl.det], bl.x, -0.5, 0.5, num=3),
    "bluesky scan": lambda bl: bp.scan([bl.det], bl.x, 1, -1, 4),
    "mv and sleep": _mv_and_sleep,
}


@pytest.mark.acq_virtual_time
@pytest.mark.acq_sim_beamline(velocity=2.0, acquire_time=0.25)
@pytest.mark.parametrize("name", list(PLANS))
async def test_estimate_matches_a_run_on_virtual_time(
    RE: RunEngine, sim_beamline: SimBeamline, name: str
) -> None:
    bl = sim_beamline
    await bl.x.acceleration_time.set(0.2)  # 2 mm/s reached in 0.2 s
    await bl.y.acceleration_time.set(0.5)
    await bl.x.set(0.5)  # start off the trajectories, so every plan moves first
    estimate = await estimate_time(PLANS[name](bl))
    assert await _setpoints(bl) == (0.5, 0.5)  # estimating moved nothing

    loop = asyncio.get_running_loop()
    started = loop.time()
    result = await RE(PLANS[name](bl))
    measured = loop.time() - started

    assert result.exit_status == "success"
    # looptime rounds every timer to 1 us; these runs fire fewer than 2000 timers (the
    # motors publish every 100 ms over < 15 s of motion, plus one exposure per point)
    assert estimate.total == pytest.approx(measured, abs=2e-3)
    assert estimate.total > 1.0  # something was timed
    assert estimate.moving + estimate.exposing + estimate.sleeping == pytest.approx(estimate.total)
    assert estimate.untimed == ()


@pytest.mark.acq_sim_beamline(velocity=2.0, acquire_time=0.25)
async def test_estimate_of_a_scan_adds_moves_and_exposures(sim_beamline: SimBeamline) -> None:
    bl = sim_beamline  # x at 0, no acceleration: -1 .. 1 in 5 points
    estimate = await estimate_time(scan([bl.det], bl.x, -1, 1, num=5))
    # 0 -> -1 is 0.5 s, then four 0.5 mm steps of 0.25 s; five exposures of 0.25 s
    assert estimate == TimeEstimate(total=2.75, moving=1.5, exposing=1.25, sleeping=0.0)
    assert float(estimate) == 2.75
    assert str(estimate).startswith("2.750 s (moving 1.500 s, exposing 1.250 s")


async def test_estimate_counts_devices_without_a_known_speed_as_instant() -> None:
    stage, det = Signal("stage"), Signal("pd")
    estimate = await estimate_time(scan([det], stage, 0, 1, num=3), positions={stage: 0.0})
    assert estimate.total == 0.0
    assert set(estimate.untimed) == {"stage", "pd"}
    assert "untimed: " in str(estimate)
