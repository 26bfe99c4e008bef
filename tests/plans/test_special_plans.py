"""Spirals, adaptive_scan, tune_centroid, fly and ramp_plan on the simulated beamline."""

from __future__ import annotations

import importlib
import itertools
import math
from typing import Any

import pytest
from acq.devices.sim import SimBeamline, sim_beamline
from acq.plans import (
    adaptive_scan,
    fly,
    ramp_plan,
    rel_adaptive_scan,
    rel_spiral,
    rel_spiral_fermat,
    rel_spiral_square,
    spiral,
    spiral_fermat,
    spiral_square,
    tune_centroid,
)
from acq.plans.stubs import abs_set, trigger_and_read
from support import DocChecker

from acq import PlanError, RunEngine


async def _run(plan: Any) -> DocChecker:
    checker = DocChecker()
    await RunEngine()(plan, checker)
    checker.assert_clean()
    return checker


def _visited(checker: DocChecker, *keys: str) -> list[tuple[float, ...]]:
    return [tuple(e["data"][k] for k in keys) for e in checker.of("event")]


def _recreated(start: dict[str, Any]) -> list[tuple[float, ...]]:
    module = importlib.import_module(start["plan_pattern_module"])
    points = getattr(module, start["plan_pattern"])(**start["plan_pattern_args"])
    return [tuple(p[m] for m in start["motors"]) for p in points]


@pytest.fixture
async def bl() -> SimBeamline:
    return await sim_beamline(instant=True)


async def test_spiral_visits_rings_inside_the_box_and_records_its_pattern(bl: SimBeamline) -> None:
    docs = await _run(spiral([bl.det2d], bl.x, bl.y, 1.0, -1.0, 4.0, 2.0, 0.5, 6))
    points = _visited(docs, "x", "y")
    start = docs.of("start")[0]
    assert points == _recreated(start)
    assert start["num_points"] == len(points) > 20
    assert all(abs(x - 1.0) <= 2.0 + 1e-9 and abs(y + 1.0) <= 1.0 + 1e-9 for x, y in points)
    radii = [math.hypot(x - 1.0, y + 1.0) for x, y in points]
    assert radii == sorted(radii, key=lambda r: round(r / 0.5))  # ring after ring, outwards
    assert start["extents"] == [[-1.0, 3.0], [-2.0, 0.0]]
    assert start["hints"]["dimensions"] == [[["x"], "primary"], [["y"], "primary"]]


async def test_spiral_fermat_covers_the_box_from_the_centre(bl: SimBeamline) -> None:
    docs = await _run(spiral_fermat([bl.det2d], bl.x, bl.y, 0.0, 0.0, 2.0, 2.0, 0.4, 2.0))
    points = _visited(docs, "x", "y")
    assert points == _recreated(docs.of("start")[0])
    radii = [math.hypot(x, y) for x, y in points]
    assert radii == sorted(radii)
    assert all(abs(x) <= 1 + 1e-9 and abs(y) <= 1 + 1e-9 for x, y in points)
    assert len(points) > 30


async def test_spiral_square_visits_every_grid_point_once_from_the_centre(bl: SimBeamline) -> None:
    docs = await _run(spiral_square([bl.det2d], bl.x, bl.y, 1.0, 2.0, 4.0, 2.0, 5, 3))
    points = _visited(docs, "x", "y")
    grid = {(1.0 + dx, 2.0 + dy) for dx in (-2.0, -1.0, 0.0, 1.0, 2.0) for dy in (-1.0, 0.0, 1.0)}
    assert sorted(points) == sorted(grid)
    assert points[0] == (1.0, 2.0)
    steps = [max(abs(a[0] - b[0]), abs(a[1] - b[1])) for a, b in itertools.pairwise(points)]
    assert max(steps[:8]) == 1.0  # the first ring is walked point to point
    assert points == _recreated(docs.of("start")[0])


@pytest.mark.parametrize(
    "make",
    [
        lambda b: rel_spiral([b.det2d], b.x, b.y, 2.0, 2.0, 0.5, 6),
        lambda b: rel_spiral_fermat([b.det2d], b.x, b.y, 2.0, 2.0, 0.5, 2.0),
        lambda b: rel_spiral_square([b.det2d], b.x, b.y, 2.0, 2.0, 3, 3),
    ],
    ids=["rel_spiral", "rel_spiral_fermat", "rel_spiral_square"],
)
async def test_relative_spirals_centre_on_the_motors_and_return(bl: SimBeamline, make: Any) -> None:
    await bl.x.set(3.0)
    await bl.y.set(-4.0)
    docs = await _run(make(bl))
    points = _visited(docs, "x", "y")
    assert points == _recreated(docs.of("start")[0])  # the pattern is recorded absolute
    assert min(p[0] for p in points) >= 2.0 - 1e-9
    assert max(p[0] for p in points) <= 4.0 + 1e-9
    assert min(p[1] for p in points) >= -5.0 - 1e-9
    assert await bl.x.user_readback.get_value() == 3.0
    assert await bl.y.user_readback.get_value() == -4.0


async def test_spiral_refuses_one_motor_for_both_axes(bl: SimBeamline) -> None:
    with pytest.raises(PlanError, match="same device"):
        spiral([bl.det], bl.x, bl.x, 0, 0, 1, 1, 0.1, 6)


async def test_adaptive_scan_steps_finely_on_the_peak_and_coarsely_on_the_tails(
    bl: SimBeamline,
) -> None:
    docs = await _run(adaptive_scan([bl.det], "det", bl.x, -5, 5, 0.05, 1.0, 0.05, True))
    xs = [x for (x,) in _visited(docs, "x")]
    steps = [b - a for a, b in itertools.pairwise(xs)]
    assert xs[0] == -5
    assert xs[-1] < 5
    near = [s for a, s in zip(xs, steps, strict=False) if abs(a) < 1.5 and s > 0]
    far = [s for a, s in zip(xs, steps, strict=False) if abs(a) > 3.5 and s > 0]
    assert max(near) < min(far[1:])  # where the Gaussian changes, steps are smaller
    assert "plan_pattern" not in docs.of("start")[0]


async def test_adaptive_scan_names_a_target_field_nothing_reads(bl: SimBeamline) -> None:
    checker = DocChecker()
    with pytest.raises(PlanError, match="'nope'"):
        await RunEngine()(
            adaptive_scan([bl.det], "nope", bl.x, 0, 1, 0.1, 0.5, 0.1, False), checker
        )
    assert checker.of("stop")[0]["exit_status"] == "fail"


async def test_adaptive_scan_checks_its_steps_before_anything_runs(bl: SimBeamline) -> None:
    with pytest.raises(PlanError, match="min_step < max_step"):
        adaptive_scan([bl.det], "det", bl.x, 0, 1, 0.5, 0.1, 0.1, False)


async def test_rel_adaptive_scan_returns_the_motor_after_a_failure(bl: SimBeamline) -> None:
    await bl.x.set(1.5)
    with pytest.raises(PlanError):
        await RunEngine()(rel_adaptive_scan([bl.det], "nope", bl.x, -1, 1, 0.1, 0.5, 0.1, False))
    assert await bl.x.user_readback.get_value() == 1.5


async def test_tune_centroid_finds_the_peak_and_leaves_the_motor_there(bl: SimBeamline) -> None:
    checker = DocChecker()
    result = await RunEngine()(tune_centroid([bl.det], "det", bl.x, -2.5, 3.5, 0.01, 11), checker)
    centroid = result.plan_result
    assert abs(centroid) < 0.05  # the sim Gaussian is centred on 0
    assert await bl.x.user_readback.get_value() == pytest.approx(centroid)
    assert len(checker.of("event")) > 11  # more than one pass


async def test_fly_collects_the_flyers_pages(bl: SimBeamline) -> None:
    docs = await _run(fly([bl.flyer]))
    start, stop = docs.of("start")[0], docs.of("stop")[0]
    assert start["plan_name"] == "fly"
    assert start["flyers"] == ["flyer"]
    assert sum(stop["num_events"].values()) == 1000
    assert docs.of("event_page")


async def test_fly_refuses_a_device_that_cannot_fly(bl: SimBeamline) -> None:
    with pytest.raises(PlanError, match=r"flyers\[0\] \(det\)"):
        fly([bl.det])


async def test_ramp_plan_reads_while_the_motor_ramps() -> None:
    bl = await sim_beamline(velocity=20.0)
    docs = await _run(
        ramp_plan(
            abs_set(bl.x, 4.0),
            bl.x.user_readback,
            lambda: trigger_and_read([bl.det, bl.x]),
            period=0.02,
        )
    )
    primary = [e for e in docs.of("event") if "det" in e["data"]]
    xs = [e["data"]["x"] for e in primary]
    assert len(primary) >= 5  # 0.2 s of ramp read every 20 ms, plus before and after
    assert xs[0] == 0.0
    assert xs[-1] == 4.0
    assert sum(1 for x in xs if 0 < x < 4) > 0
    monitored = [d for d in docs.of("descriptor") if d["name"] == "x_monitor"]
    assert monitored
    assert set(monitored[0]["data_keys"]) == {"x"}
