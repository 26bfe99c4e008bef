"""The step plans of acq.plans on the sim beamline: points visited, messages, metadata.

Every plan runs on the ``RE`` fixture, so every document is validated by ``checker``.
Expected trajectories are written out by hand (never computed by acq).
"""

from __future__ import annotations

import asyncio
import importlib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from acq.devices.sim import Motor, SimBeamline
from acq.plans import (
    count,
    grid_scan,
    inner_product_scan,
    list_grid_scan,
    list_scan,
    log_scan,
    rel_grid_scan,
    rel_list_grid_scan,
    rel_list_scan,
    rel_log_scan,
    rel_scan,
    relative_inner_product_scan,
    scan,
    scan_nd,
)
from acq.plans.stubs import PlanGenerator, one_nd_step
from cycler import cycler
from scanspec.specs import Line

from acq import Msg, RunAborted, RunEngine, RunEngineInterrupted

X0, Y0, Z0 = 1.0, -1.0, 0.5  # where every test starts the motors
DEADLINE = 10.0


@pytest.fixture(autouse=True)
async def start_positions(bl: SimBeamline, z: Motor) -> None:
    await asyncio.gather(bl.x.set(X0), bl.y.set(Y0), z.set(Z0))


@dataclass
class Case:
    """A plan, the points it must visit (columns by motor name) and Start metadata."""

    plan: Callable[[SimBeamline, Motor], Any]
    points: dict[str, list[float]]
    md: dict[str, Any] = field(default_factory=dict[str, Any])
    together: bool = False
    """The motors move as one (an inner product): one plot dimension for all of them."""


def _grid(xs: list[float], ys: list[float], snake: bool) -> dict[str, list[float]]:
    """The columns of a two-axis grid, x slowest (written out, not acq's code)."""
    rows = [(x, y) for i, x in enumerate(xs) for y in (ys[::-1] if snake and i % 2 else ys)]
    return {"x": [r[0] for r in rows], "y": [r[1] for r in rows]}


CASES: dict[str, Case] = {
    "scan": Case(
        lambda bl, z: scan([bl.det], bl.x, -1, 1, num=5),
        {"x": [-1.0, -0.5, 0.0, 0.5, 1.0]},
        {"motors": ["x"], "num_points": 5, "plan_pattern": "inner_product"},
        together=True,
    ),
    "scan-two-motors": Case(
        lambda bl, z: scan([bl.det], bl.x, -1, 1, bl.y, 2, 4, num=3),
        {"x": [-1.0, 0.0, 1.0], "y": [2.0, 3.0, 4.0]},
        {"motors": ["x", "y"], "num_points": 3},
        together=True,
    ),
    "scan-num-in-args": Case(
        lambda bl, z: scan([bl.det], bl.x, 2, 4, 3),
        {"x": [2.0, 3.0, 4.0]},
        {"num_points": 3},
        together=True,
    ),
    "inner_product_scan": Case(  # num first, as in bluesky
        lambda bl, z: inner_product_scan([bl.det], 2, bl.x, 0, 2, bl.y, 0, -2),
        {"x": [0.0, 2.0], "y": [0.0, -2.0]},
        {"plan_name": "inner_product_scan", "num_points": 2, "plan_pattern": "inner_product"},
        together=True,
    ),
    "relative_inner_product_scan": Case(
        lambda bl, z: relative_inner_product_scan([bl.det], 3, bl.x, 0, 2),
        {"x": [X0, X0 + 1, X0 + 2]},
        {"plan_name": "relative_inner_product_scan", "num_points": 3},
        together=True,
    ),
    "rel_scan": Case(
        lambda bl, z: rel_scan([bl.det], bl.x, 0.5, 1.5, num=3),
        {"x": [X0 + 0.5, X0 + 1.0, X0 + 1.5]},
        {"plan_name": "rel_scan", "motors": ["x"], "num_points": 3},
        together=True,
    ),
    "rel_scan-two-motors": Case(
        lambda bl, z: rel_scan([bl.det], bl.x, 1, 2, bl.y, -1, -3, num=3),
        {"x": [X0 + 1, X0 + 1.5, X0 + 2], "y": [Y0 - 1, Y0 - 2, Y0 - 3]},
        together=True,
    ),
    "list_scan": Case(
        lambda bl, z: list_scan([bl.det], bl.x, [1, 3, 2], bl.y, [0, 5, -5]),
        {"x": [1.0, 3.0, 2.0], "y": [0.0, 5.0, -5.0]},
        {"num_points": 3, "plan_pattern": "inner_list_product"},
        together=True,
    ),
    "rel_list_scan": Case(
        lambda bl, z: rel_list_scan([bl.det], bl.x, [0.5, 1], bl.y, [0.5, -1]),
        {"x": [X0 + 0.5, X0 + 1], "y": [Y0 + 0.5, Y0 - 1]},
        {"plan_name": "rel_list_scan", "num_points": 2},
        together=True,
    ),
    "grid_scan": Case(
        lambda bl, z: grid_scan([bl.det2d], bl.x, -1, 1, 3, bl.y, 0, 1, 2),
        _grid([-1.0, 0.0, 1.0], [0.0, 1.0], snake=False),
        {
            "num_points": 6,
            "shape": [3, 2],
            "extents": [[-1.0, 1.0], [0.0, 1.0]],
            "plan_pattern": "outer_product",
        },
    ),
    "grid_scan-snake-false": Case(
        lambda bl, z: grid_scan([bl.det2d], bl.x, -1, 1, 3, bl.y, 0, 1, 2, snake_axes=False),
        _grid([-1.0, 0.0, 1.0], [0.0, 1.0], snake=False),
        {"snaking": [False, False]},
    ),
    "grid_scan-snake-true": Case(
        lambda bl, z: grid_scan([bl.det2d], bl.x, -1, 1, 3, bl.y, 0, 1, 2, snake_axes=True),
        _grid([-1.0, 0.0, 1.0], [0.0, 1.0], snake=True),
        {"snaking": [False, True], "shape": [3, 2]},
    ),
    "grid_scan-snake-fastest-of-three": Case(
        lambda bl, z: grid_scan(
            [bl.det2d], bl.x, -1, 1, 2, bl.y, 0, 1, 2, z, 0, 2, 3, snake_axes=[z]
        ),
        {
            "x": [-1.0] * 6 + [1.0] * 6,
            "y": [0.0, 0.0, 0.0, 1.0, 1.0, 1.0] * 2,
            "z": [0.0, 1.0, 2.0, 2.0, 1.0, 0.0] * 2,
        },
        {"snaking": [False, False, True], "shape": [2, 2, 3], "motors": ["x", "y", "z"]},
    ),
    "grid_scan-snake-middle-of-three": Case(
        lambda bl, z: grid_scan(
            [bl.det2d], bl.x, -1, 1, 2, bl.y, 0, 1, 2, z, 0, 1, 2, snake_axes=[bl.y]
        ),
        {
            "x": [-1.0] * 4 + [1.0] * 4,
            "y": [0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0],
            "z": [0.0, 1.0] * 4,
        },
        {"snaking": [False, True, False], "num_points": 8},
    ),
    "rel_grid_scan": Case(
        lambda bl, z: rel_grid_scan([bl.det2d], bl.x, 1, 2, 2, bl.y, 0, 1, 3, snake_axes=True),
        _grid([X0 + 1, X0 + 2], [Y0, Y0 + 0.5, Y0 + 1], snake=True),
        {
            "plan_name": "rel_grid_scan",
            "shape": [2, 3],
            "extents": [[X0 + 1, X0 + 2], [Y0, Y0 + 1]],
        },
    ),
    "list_grid_scan": Case(
        lambda bl, z: list_grid_scan([bl.det2d], bl.x, [1, 2], bl.y, [3, 4, 5]),
        _grid([1.0, 2.0], [3.0, 4.0, 5.0], snake=False),
        {
            "num_points": 6,
            "shape": [2, 3],
            "extents": [[1.0, 2.0], [3.0, 5.0]],
            "plan_pattern": "outer_list_product",
            "snake_axes": "False",  # bluesky's list_grid_scan records its repr
        },
    ),
    "list_grid_scan-snake": Case(
        lambda bl, z: list_grid_scan([bl.det2d], bl.x, [2, 1], bl.y, [5, 3, 4], snake_axes=True),
        _grid([2.0, 1.0], [5.0, 3.0, 4.0], snake=True),
        {"shape": [2, 3], "snake_axes": "True"},
    ),
    "rel_list_grid_scan": Case(
        lambda bl, z: rel_list_grid_scan([bl.det2d], bl.x, [1, 2], bl.y, [0.5, 1], snake_axes=True),
        _grid([X0 + 1, X0 + 2], [Y0 + 0.5, Y0 + 1], snake=True),
        {"plan_name": "rel_list_grid_scan", "shape": [2, 2]},
    ),
    "log_scan": Case(  # start and stop are exponents of 10, as in bluesky
        lambda bl, z: log_scan([bl.det], bl.x, -2, 1, 4),
        {"x": [0.01, 0.1, 1.0, 10.0]},
        {"num_points": 4, "plan_pattern": "logspace"},
        together=True,
    ),
    "log_scan-down": Case(
        lambda bl, z: log_scan([bl.det], bl.x, 0, -2, 3),
        {"x": [1.0, 0.1, 0.01]},
        together=True,
    ),
    "rel_log_scan": Case(
        lambda bl, z: rel_log_scan([bl.det], bl.x, -1, 0, 3),
        {"x": [X0 + 0.1, X0 + math.sqrt(0.1), X0 + 1]},
        {"plan_name": "rel_log_scan", "plan_pattern": "logspace"},
        together=True,
    ),
    "scan_nd-cycler": Case(
        lambda bl, z: scan_nd([bl.det2d], cycler(bl.x, [1, 2]) * cycler(bl.y, [3, 4])),
        {"x": [1.0, 1.0, 2.0, 2.0], "y": [3.0, 4.0, 3.0, 4.0]},
        {"plan_name": "scan_nd", "num_points": 4, "plan_pattern": "points"},
    ),
    "scan_nd-cycler-sum": Case(
        lambda bl, z: scan_nd([bl.det], cycler(bl.x, [1, 2, 3]) + cycler(bl.y, [4, 5, 6])),
        {"x": [1.0, 2.0, 3.0], "y": [4.0, 5.0, 6.0]},
    ),
    "scan_nd-scanspec": Case(
        lambda bl, z: scan_nd([bl.det2d], Line(bl.x, 0, 1, 3) * ~Line(bl.y, 0, 2, 2)),
        {"x": [0.0, 0.0, 0.5, 0.5, 1.0, 1.0], "y": [0.0, 2.0, 2.0, 0.0, 0.0, 2.0]},
        {"motors": ["x", "y"], "num_points": 6},
    ),
    "scan_nd-points": Case(
        lambda bl, z: scan_nd([bl.det], [{bl.x: 1, bl.y: 2}, {bl.x: 3, bl.y: 1}]),
        {"x": [1.0, 3.0], "y": [2.0, 1.0]},
        {"num_points": 2},
    ),
}


def visited(docs: Any, names: list[str]) -> dict[str, list[float]]:
    return {name: docs.column(name) for name in names}


@pytest.mark.parametrize("case", CASES.values(), ids=list(CASES))
async def test_points_streams_and_metadata(
    case: Case, bl: SimBeamline, z: Motor, RE: RunEngine, docs: Any
) -> None:
    result = await RE(case.plan(bl, z))
    assert result.exit_status == "success"
    names = list(case.points)
    got = visited(docs, names)
    assert got == {k: pytest.approx(v) for k, v in case.points.items()}
    assert docs.streams() == ["primary"]
    start = docs.start
    assert start["motors"] == names
    if case.together:
        assert start["hints"]["dimensions"] == [[names, "primary"]]
    else:
        assert start["hints"]["dimensions"] == [[[name], "primary"] for name in names]
    num = len(case.points[names[0]])
    assert start["num_points"] == num
    assert start["num_intervals"] == num - 1
    (descriptor,) = docs.checker.of("descriptor")
    assert start["detectors"] == [k for k in descriptor["data_keys"] if k not in names]
    json.dumps(start["plan_args"])  # plain JSON, nothing needs a custom encoder
    assert start["plan_pattern_module"] == "acq.plans.patterns"
    for key, value in case.md.items():
        assert start[key] == value, key
    if "shape" in start:
        assert start["hints"]["gridding"] == "rectilinear"
    assert docs.stop["num_events"] == {"primary": num}


@pytest.mark.parametrize("case", CASES.values(), ids=list(CASES))
async def test_plan_pattern_recreates_the_trajectory(
    case: Case, bl: SimBeamline, z: Motor, RE: RunEngine, docs: Any
) -> None:
    await RE(case.plan(bl, z))
    start = json.loads(json.dumps(docs.start))  # as a catalog would give it back
    module = importlib.import_module(start["plan_pattern_module"])
    points = getattr(module, start["plan_pattern"])(**start["plan_pattern_args"])
    names = start["motors"]
    recreated = {name: [p[name] for p in points] for name in names}
    assert recreated == {k: pytest.approx(v) for k, v in visited(docs, names).items()}


async def test_detector_and_plan_args_are_recorded(
    bl: SimBeamline, RE: RunEngine, docs: Any
) -> None:
    await RE(grid_scan([bl.det2d, bl.det], bl.x, -1, 1, 2, bl.y, 0, 1, 2, snake_axes=True))
    start = docs.start
    assert start["plan_name"] == "grid_scan"
    assert start["detectors"] == ["det2d", "det"]
    args = start["plan_args"]
    assert args["detectors"] == [repr(bl.det2d), repr(bl.det)]
    assert args["args"] == [repr(bl.x), -1, 1, 2, repr(bl.y), 0, 1, 2]
    assert args["snake_axes"] is True
    (descriptor,) = docs.checker.of("descriptor")
    assert set(descriptor["data_keys"]) == {"det2d", "det", "x", "y"}
    assert set(descriptor["hints"]) >= {"det2d", "det", "x", "y"}


async def test_scan_messages(bl: SimBeamline, recorder: Any) -> None:
    await recorder(scan([bl.det], bl.x, 0, 1, bl.y, 2, 3, num=2))
    stage = [m.obj for m in recorder.of("stage")]
    assert stage == [bl.det, bl.x, bl.y]
    assert [m.obj for m in recorder.of("unstage")] == [bl.y, bl.x, bl.det]
    commands = recorder.commands(skip=("await",))  # the soft-limit checks come first
    point = ["checkpoint", "set", "set", "wait", "trigger", "wait", "create"]
    point += ["read", "read", "read", "save"]
    staging = ["stage"] * 3 + ["wait"]  # the sim devices' stage() returns a status: wait
    unstaging = ["unstage"] * 3 + ["wait"]
    assert commands == staging + ["open_run"] + point * 2 + ["close_run"] + unstaging
    assert [(m.obj, m.args[0]) for m in recorder.of("set")] == [
        (bl.x, 0.0),
        (bl.y, 2.0),
        (bl.x, 1.0),
        (bl.y, 3.0),
    ]
    assert recorder.msgs.index(recorder.of("await")[-1]) < recorder.msgs.index(
        recorder.of("stage")[0]
    )


async def test_grid_moves_only_the_motors_that_change(bl: SimBeamline, recorder: Any) -> None:
    await recorder(grid_scan([bl.det2d], bl.x, 0, 1, 2, bl.y, 0, 1, 2, snake_axes=True))
    moves = [(m.obj.name, m.args[0]) for m in recorder.of("set")]
    assert moves == [("x", 0.0), ("y", 0.0), ("y", 1.0), ("x", 1.0), ("y", 0.0)]


async def test_per_step_replaces_the_step(bl: SimBeamline, RE: RunEngine, docs: Any) -> None:
    seen: list[dict[str, float]] = []

    def per_step(detectors: list[Any], point: dict[Any, float], cache: dict[Any, Any]) -> Any:
        seen.append({m.name: p for m, p in point.items()})
        return one_nd_step(detectors, point, cache)

    await RE(scan([bl.det], bl.x, 0, 2, num=3, per_step=per_step))
    assert seen == [{"x": 0.0}, {"x": 1.0}, {"x": 2.0}]
    assert docs.column("x") == [0.0, 1.0, 2.0]
    assert docs.start["plan_args"]["per_step"] == repr(per_step)


# -- count ---------------------------------------------------------------------------------
async def test_count_messages_and_documents(bl: SimBeamline, recorder: Any, docs: Any) -> None:
    await recorder(count([bl.det], 3))
    shot = ["checkpoint", "trigger", "wait", "create", "read", "save"]
    assert recorder.commands() == [
        *("stage", "wait", "open_run"),
        *shot * 3,
        *("close_run", "unstage", "wait"),
    ]
    assert docs.column("det") == pytest.approx([math.exp(-0.5)] * 3)  # a Gaussian, x at 1
    start = docs.start
    assert start["plan_name"] == "count"
    assert start["detectors"] == ["det"]
    assert "motors" not in start  # count moves nothing; bluesky's has no such key either
    assert start["num_points"] == 3
    assert start["num_intervals"] == 2
    assert start["hints"]["dimensions"] == [[["time"], "primary"]]
    assert start["plan_args"]["num"] == 3
    json.dumps(start["plan_args"])
    assert "plan_pattern" not in start


async def test_count_default_is_one_reading(bl: SimBeamline, RE: RunEngine, docs: Any) -> None:
    await RE(count([bl.det, bl.edge]))
    assert len(docs.rows()) == 1
    assert set(docs.rows()[0]) == {"det", "edge"}


@pytest.mark.parametrize(
    ("delay", "sleeps"),
    [(0.01, [0.01, 0.01, 0.01]), ([0.01, 0.0, 0.02], [0.01, 0.02]), (None, [])],
)
async def test_count_delay(
    bl: SimBeamline, recorder: Any, docs: Any, delay: Any, sleeps: list[float]
) -> None:
    await recorder(count([bl.det], 4, delay=delay))
    assert [m.args[0] for m in recorder.of("sleep")] == sleeps
    commands = recorder.commands()
    for i in range(commands.count("sleep")):  # each sleep sits between two readings
        at = [j for j, c in enumerate(commands) if c == "sleep"][i]
        assert "save" in commands[:at]
        assert "save" in commands[at:]
    assert len(docs.rows()) == 4
    assert docs.start["plan_args"]["delay"] == delay


async def test_count_forever_until_stopped_from_another_task(
    bl: SimBeamline, RE: RunEngine, docs: Any
) -> None:
    task = asyncio.create_task(RE(count([bl.det], None)))
    async with asyncio.timeout(DEADLINE):
        while len(docs.checker.of("event")) < 5:  # noqa: ASYNC110 -- the engine's own pace
            await asyncio.sleep(0)
    stopped = await RE.stop()
    result = await task
    assert result.exit_status == stopped.exit_status == "success"
    assert docs.stop["exit_status"] == "success"
    assert docs.stop["num_events"]["primary"] >= 5
    assert "num_points" not in docs.start
    assert docs.start["plan_args"]["num"] is None


async def test_count_forever_with_delay_stopped(bl: SimBeamline, recorder: Any, docs: Any) -> None:
    task = asyncio.create_task(recorder.RE(recorder.wrap(count([bl.det], None, delay=0.001))))
    async with asyncio.timeout(DEADLINE):
        while len(docs.checker.of("event")) < 3:  # noqa: ASYNC110 -- the engine's own pace
            await asyncio.sleep(0.001)
    await recorder.RE.stop()
    await task
    assert all(m.args[0] == 0.001 for m in recorder.of("sleep"))
    assert len(recorder.of("sleep")) >= 2
    assert docs.stop["exit_status"] == "success"


async def test_count_per_shot(bl: SimBeamline, RE: RunEngine, docs: Any) -> None:
    async def per_shot(detectors: list[Any]) -> PlanGenerator:
        yield Msg("create", name="primary")
        for det in detectors:
            yield Msg("read", det)
        yield Msg("save")

    await RE(count([bl.det], 2, per_shot=per_shot))
    assert len(docs.rows()) == 2


# -- metadata: md= merging (reference/001) -------------------------------------------------
async def test_md_merges_caller_wins_and_hints_merge(
    bl: SimBeamline, RE: RunEngine, docs: Any
) -> None:
    RE.md["operator"] = "stash"
    RE.md["purpose"] = "stash"
    RE.md["sample"] = "stash"
    plan = grid_scan(
        [bl.det2d],
        bl.x, 0, 1, 2, bl.y, 0, 1, 2,
        md={
            "purpose": "plan",
            "sample": "plan",
            "plan_name": "my_grid",
            "num_points": 99,
            "hints": {"dimensions": [[["det2d"], "primary"]], "mine": 1},
        },
    )  # fmt: skip
    await RE(plan, sample="call")
    start = docs.start
    assert start["operator"] == "stash"  # only the stash has it
    assert start["purpose"] == "plan"  # the plan's md beats the stash
    assert start["sample"] == "call"  # RE(...) keywords beat everything
    assert start["plan_name"] == "my_grid"  # the caller's md beats the plan's own keys
    assert start["num_points"] == 99
    assert start["hints"] == {
        "dimensions": [[["det2d"], "primary"]],  # replaced, key by key
        "gridding": "rectilinear",  # the plan's other hints stay
        "mine": 1,
    }
    assert start["motors"] == ["x", "y"]


@pytest.mark.parametrize(
    "make",
    [
        lambda bl: count([bl.det], md={"purpose": "p", "hints": {"extra": True}}),
        lambda bl: scan([bl.det], bl.x, 0, 1, num=2, md={"purpose": "p", "hints": {"extra": True}}),
        lambda bl: list_scan([bl.det], bl.x, [0, 1], md={"purpose": "p", "hints": {"extra": True}}),
        lambda bl: scan_nd([bl.det], [{bl.x: 0}], md={"purpose": "p", "hints": {"extra": True}}),
    ],
)
async def test_md_on_every_plan(
    make: Callable[[SimBeamline], Any], bl: SimBeamline, RE: RunEngine, docs: Any
) -> None:
    await RE(make(bl))
    assert docs.start["purpose"] == "p"
    assert docs.start["hints"]["extra"] is True
    assert docs.start["hints"]["dimensions"]  # the plan's own hints kept


async def test_md_is_not_shared_between_runs(bl: SimBeamline, RE: RunEngine, docs: Any) -> None:
    md = {"purpose": "first"}

    async def two() -> PlanGenerator:
        yield scan([bl.det], bl.x, 0, 1, num=2, md=md)
        yield count([bl.det])

    await RE(two())
    first, second = docs.checker.of("start")
    assert first["purpose"] == "first"
    assert "purpose" not in second
    assert md == {"purpose": "first"}  # the caller's dict is not changed


# -- relative plans go back to where they started -----------------------------------------
REL = {
    "rel_scan": lambda bl, det: rel_scan([bl.det, det], bl.x, 1, 2, bl.y, 1, 2, num=3),
    "rel_list_scan": lambda bl, det: rel_list_scan([bl.det, det], bl.x, [1, 2, 3], bl.y, [1, 2, 3]),
    "rel_grid_scan": lambda bl, det: rel_grid_scan(
        [bl.det, det], bl.x, 1, 2, 2, bl.y, 1, 2, 2, snake_axes=True
    ),
    "rel_list_grid_scan": lambda bl, det: rel_list_grid_scan(
        [bl.det, det], bl.x, [1, 2], bl.y, [1, 2]
    ),
    "rel_log_scan": lambda bl, det: rel_log_scan([bl.det, det], bl.x, 0, 0.6, 3),
}


async def at_start(bl: SimBeamline, readback: Any) -> bool:
    return (await readback(bl.x), await readback(bl.y)) == (X0, Y0)


@pytest.mark.parametrize("ending", ["success", "failure", "abort", "pause-then-abort"])
@pytest.mark.parametrize("make", REL.values(), ids=list(REL))
async def test_relative_plans_return_to_the_start(
    make: Any,
    ending: str,
    bl: SimBeamline,
    RE: RunEngine,
    docs: Any,
    readback: Any,
    faulty: Any,
) -> None:
    det = faulty(fail_at=2 if ending == "failure" else 0, block_at=2 if "abort" in ending else 0)
    plan = make(bl, det)
    if ending == "success":
        await RE(plan)
    elif ending == "failure":
        with pytest.raises(RuntimeError, match="trigger 2 failed"):
            await RE(plan)
    else:  # interrupted from another task while the second point is being taken
        task = asyncio.create_task(RE(plan))
        async with asyncio.timeout(DEADLINE):
            await det.blocked.wait()
        assert await readback(bl.x) > X0  # mid-scan, away from the start
        if ending == "abort":
            assert (await RE.abort("enough")).exit_status == "abort"
            with pytest.raises(RunAborted):
                await task
        else:
            RE.request_pause()
            with pytest.raises(RunEngineInterrupted):
                await task
            assert await readback(bl.x) > X0  # paused where it was
            assert (await RE.abort()).exit_status == "abort"
    assert docs.column("x")  # it took readings ...
    assert all(x > X0 for x in docs.column("x"))  # ... away from the start
    assert await at_start(bl, readback)
    assert docs.stop["exit_status"] == {"success": "success", "failure": "fail"}.get(
        ending, "abort"
    )


async def test_relative_returns_when_the_plan_pauses_itself_then_is_aborted(
    bl: SimBeamline, RE: RunEngine, docs: Any, readback: Any
) -> None:
    calls = 0

    async def pausing_step(detectors: list[Any], point: Any, cache: Any) -> PlanGenerator:
        nonlocal calls
        calls += 1
        yield one_nd_step(detectors, point, cache)
        if calls == 2:
            yield Msg("pause")

    with pytest.raises(RunEngineInterrupted):
        await RE(rel_scan([bl.det], bl.x, 1, 3, num=3, per_step=pausing_step))
    assert await readback(bl.x) == X0 + 2
    assert (await RE.abort()).exit_status == "abort"
    assert await readback(bl.x) == X0
    assert docs.stop["exit_status"] == "abort"
    assert docs.column("x") == [X0 + 1, X0 + 2]
