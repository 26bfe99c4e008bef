"""acq.plans called the way bluesky.plans are called: same signatures, same trajectories,
and staging that completes before the plan goes on.

bluesky (installed beside acq) is the reference: its plans run on acq's engine with the
same devices, and what they visit or record is compared with acq's plan of the same name.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

import bluesky.plan_stubs as bluesky_stubs
import bluesky.plans as bp
import bluesky.preprocessors as bluesky_pp
import pytest
from acq.devices.sim import AreaDetector, Motor, SimBeamline
from acq.plans import (
    adaptive_scan,
    count,
    grid_scan,
    inner_product_scan,
    list_scan,
    log_scan,
    rel_log_scan,
    relative_inner_product_scan,
    scan,
    scan_nd,
    spiral,
    stubs,
    tune_centroid,
)
from acq.plans import preprocessors as pp
from acq.plans.stubs import PlanGenerator
from support import Detector, DocChecker, ManualStatus

from acq import Msg, RunEngine

X0 = 0.5


@pytest.fixture(autouse=True)
async def start_position(bl: SimBeamline) -> None:
    await asyncio.gather(bl.x.set(X0), bl.y.set(X0))


# -- staging completes before the plan goes on ---------------------------------------------
async def test_two_counts_of_the_area_detector_both_succeed(tmp_path: Path) -> None:
    """The second count used to fail (``open_file not run`` or a 10 s trigger timeout):
    the first count's unstage, or the second's stage, was not waited for."""
    x, y = Motor("x", instant=True), Motor("y", instant=True)
    det = AreaDetector(tmp_path, x, y, acquire_time=0.005, shape=(4, 6), name="adet")
    await asyncio.gather(x.connect(), y.connect(), det.connect())
    RE = RunEngine(catalog=None)
    checker = DocChecker()
    RE.subscribe(checker)
    for _ in range(2):
        result = await RE(count([det], 2))
        assert result.exit_status == "success"
    checker.assert_clean()
    stops = checker.of("stop")
    assert [s["num_events"] for s in stops] == [{"primary": 2}, {"primary": 2}]
    datums = [d["indices"] for d in checker.of("stream_datum") if d["indices"]["start"] == 1]
    assert len(datums) == 4  # two frames in each run (two data keys): all written


class StatusStaged(Detector):
    """A detector whose stage() and unstage() return a status that finishes a moment later."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.statuses: list[ManualStatus] = []

    def _later(self, action: str) -> ManualStatus:
        self.log.append((action, None))
        status = ManualStatus()
        asyncio.get_running_loop().call_soon(status.finish)
        self.statuses.append(status)
        return status

    def stage(self) -> ManualStatus:  # type: ignore[override]
        return self._later("stage")

    def unstage(self) -> ManualStatus:  # type: ignore[override]
        return self._later("unstage")


def _in_run(*plans: Any) -> Callable[[], PlanGenerator]:
    async def plan() -> PlanGenerator:
        yield Msg("open_run")
        for each in plans:
            yield each
        yield Msg("close_run")

    return plan


STAGING: dict[str, Callable[[SimBeamline, StatusStaged], Any]] = {
    "count": lambda bl, d: count([d], 2),
    "scan": lambda bl, d: scan([d], bl.x, 0, 1, num=2),
    "grid_scan": lambda bl, d: grid_scan([d], bl.x, 0, 1, 2, bl.y, 0, 1, 2),
    "list_scan": lambda bl, d: list_scan([d], bl.x, [0, 1]),
    "log_scan": lambda bl, d: log_scan([d], bl.x, -1, 0, 2),
    "rel_log_scan": lambda bl, d: rel_log_scan([d], bl.x, -1, 0, 2),
    "scan_nd": lambda bl, d: scan_nd([d], [{bl.x: 0.0}, {bl.x: 1.0}]),
    "spiral": lambda bl, d: spiral([d], bl.x, bl.y, 0, 0, 1, 1, 0.5, 3),
    "adaptive_scan": lambda bl, d: adaptive_scan([d], "sd", bl.x, 0, 1, 0.2, 0.5, 0.1, False),
    "tune_centroid": lambda bl, d: tune_centroid([d], "sd", bl.x, 0, 1, 0.6, 3),
    "stage and unstage": lambda bl, d: _in_run(stubs.stage(d), stubs.unstage(d))(),
    "stage_all": lambda bl, d: _in_run(stubs.stage_all(d, bl.x), stubs.unstage_all(bl.x, d))(),
    "stage_wrapper": lambda bl, d: pp.stage_wrapper(_in_run(stubs.null())(), [d, bl.x]),
    "stage_decorator": lambda bl, d: pp.stage_decorator([d])(_in_run(stubs.null()))(),
}


@pytest.mark.parametrize("make", STAGING.values(), ids=list(STAGING))
async def test_every_stage_and_unstage_is_waited_for(
    make: Callable[[SimBeamline, StatusStaged], Any], bl: SimBeamline, recorder: Any
) -> None:
    det = StatusStaged("sd")
    result = await recorder(make(bl, det))
    assert result.exit_status == "success"
    assert [a for a, _ in det.log if a != "read"][:1] == ["stage"]
    msgs = recorder.msgs
    staging = [i for i, m in enumerate(msgs) if m.command in ("stage", "unstage")]
    assert staging
    for i in staging:
        group = msgs[i].kwargs.get("group")
        assert group is not None, f"{msgs[i]!r} has no group to wait for"
        after = [m for m in msgs[i + 1 :] if m.command not in ("stage", "unstage")]
        assert after, f"nothing after {msgs[i]!r}"
        assert after[0].command == "wait", f"{msgs[i]!r} is followed by {after[0]!r}"
        assert after[0].kwargs["group"] == group


async def test_stage_waits_unless_given_a_group_or_told_not_to(recorder: Any) -> None:
    det = StatusStaged("sd")

    async def plan() -> PlanGenerator:
        waited = yield stubs.stage(det)
        assert waited.done  # the plan goes on once staging has finished
        yield stubs.unstage(det, group="later")
        yield stubs.stage(det, wait=False)
        yield stubs.wait("later")
        yield stubs.unstage(det, group="mine", wait=True)

    await recorder(plan())
    commands = [(m.command, m.kwargs.get("group")) for m in recorder.msgs]
    first = commands[0][1]
    assert commands[1] == ("wait", first)
    assert commands[2:] == [
        ("unstage", "later"),
        ("stage", None),
        ("wait", "later"),
        ("unstage", "mine"),
        ("wait", "mine"),
    ]


async def test_stage_of_a_device_that_blocks_sends_no_wait(recorder: Any) -> None:
    """A device whose stage() returns a list (classic ophyd) has staged already."""
    det = Detector("plain")

    async def plan() -> PlanGenerator:
        reply = yield stubs.stage(det)
        assert reply == [det]
        yield stubs.unstage_all(det)

    await recorder(plan())
    assert recorder.commands() == ["stage", "unstage"]


async def test_stage_wrapper_unstages_in_reverse_and_after_a_failed_stage(
    RE: RunEngine,
) -> None:
    a, b = Detector("a"), Detector("b")
    order: list[str] = []

    def failing_stage() -> list[Any]:
        order.append("stage b")
        raise RuntimeError("b cannot stage")

    a.stage = lambda: (order.append("stage a"), [a])[1]  # type: ignore[method-assign]
    a.unstage = lambda: (order.append("unstage a"), [a])[1]  # type: ignore[method-assign]
    b.stage = failing_stage  # type: ignore[method-assign]
    b.unstage = lambda: (order.append("unstage b"), [b])[1]  # type: ignore[method-assign]
    with pytest.raises(RuntimeError, match="b cannot stage"):
        await RE(pp.stage_wrapper(_in_run(stubs.null())(), [a, b]))
    assert order[:4] == ["stage a", "stage b", "unstage b", "unstage a"]


# -- trajectories as bluesky's ------------------------------------------------------------
async def _visited(RE: RunEngine, plan: Any, key: str = "x") -> list[float]:
    checker = DocChecker()
    await RE(plan, checker)
    checker.assert_clean()
    return [e["data"][key] for e in checker.of("event")]


TRAJECTORIES: dict[str, tuple[Callable[[SimBeamline], Any], Callable[[SimBeamline], Any]]] = {
    "log_scan": (
        lambda bl: log_scan([bl.det], bl.x, -1, 1, 3),
        lambda bl: bp.log_scan([bl.det], bl.x, -1, 1, 3),
    ),
    "log_scan-down": (
        lambda bl: log_scan([bl.det], bl.x, 0.5, -2, 4),
        lambda bl: bp.log_scan([bl.det], bl.x, 0.5, -2, 4),
    ),
    "rel_log_scan": (
        lambda bl: rel_log_scan([bl.det], bl.x, -1, 0.5, 4),
        lambda bl: bp.rel_log_scan([bl.det], bl.x, -1, 0.5, 4),
    ),
    "inner_product_scan": (
        lambda bl: inner_product_scan([bl.det], 3, bl.x, -1, 1, bl.y, 2, 0),
        lambda bl: bp.inner_product_scan([bl.det], 3, bl.x, -1, 1, bl.y, 2, 0),
    ),
    "relative_inner_product_scan": (
        lambda bl: relative_inner_product_scan([bl.det], 3, bl.x, -1, 1, bl.y, 2, 0),
        lambda bl: bp.relative_inner_product_scan([bl.det], 3, bl.x, -1, 1, bl.y, 2, 0),
    ),
}


@pytest.mark.parametrize(("ours", "theirs"), TRAJECTORIES.values(), ids=list(TRAJECTORIES))
async def test_same_points_as_bluesky(
    ours: Callable[[SimBeamline], Any], theirs: Callable[[SimBeamline], Any], bl: SimBeamline
) -> None:
    RE = RunEngine(catalog=None)
    runs: list[dict[str, list[float]]] = []
    for make in (ours, theirs):
        await asyncio.gather(bl.x.set(X0), bl.y.set(X0))
        checker = DocChecker()
        await RE(make(bl), checker)
        checker.assert_clean()
        events = checker.of("event")
        runs.append(
            {k: [e["data"][k] for e in events] for k in ("x", "y") if k in events[0]["data"]}
        )
    mine, other = runs
    assert mine.keys() == other.keys()
    for key in mine:
        assert mine[key] == pytest.approx(other[key]), key
    assert len(mine["x"]) >= 3


async def test_log_scan_moves_to_powers_of_ten(bl: SimBeamline, RE: RunEngine) -> None:
    """``log_scan(..., 1, 2, 3)`` visits 10, 31.6, 100 in bluesky; here within the limits."""
    assert await _visited(RE, log_scan([bl.det], bl.x, -1, 1, 3)) == pytest.approx([0.1, 1, 10])
    await bl.x.set(X0)
    assert await _visited(RE, rel_log_scan([bl.det], bl.x, -1, 0, 2)) == pytest.approx(
        [X0 + 0.1, X0 + 1]
    )


def test_inner_product_scan_takes_num_first_and_nowhere_else(bl: SimBeamline) -> None:
    inner_product_scan([bl.det], 3, bl.x, 0, 1)
    with pytest.raises(TypeError, match="num"):
        inner_product_scan([bl.det], bl.x, 0, 1, num=3)  # type: ignore[misc]


# -- signatures ---------------------------------------------------------------------------
def _parameters(func: Callable[..., Any]) -> list[tuple[str, str, Any]]:
    """(name, kind, default) of each parameter; *args named "*" (a caller never names it)."""
    out: list[tuple[str, str, Any]] = []
    for p in inspect.signature(func).parameters.values():
        name = "*" if p.kind is p.VAR_POSITIONAL else p.name
        default = "<none>" if p.default is p.empty else p.default
        out.append((name, p.kind.name, default))
    return out


def _common(ours: Any, theirs: Any) -> list[str]:
    names = [n for n in ours.__all__ if callable(getattr(ours, n)) and hasattr(theirs, n)]
    return [n for n in names if not n.endswith("_decorator")]  # see the test's docstring


# Deliberately different, and harmless for a caller of bluesky's spelling:
DIFFERENT = {
    # bluesky: rel_set(obj, *args, ...) passes *args to set(); acq takes the one offset.
    "rel_set",
}
SIGNATURES = [
    (name, getattr(ours, name), getattr(theirs, name))
    for ours, theirs in ((__import__("acq.plans", fromlist=["_"]), bp), (stubs, bluesky_stubs))
    for name in _common(ours, theirs)
    if name not in DIFFERENT
] + [
    (name, getattr(pp, name), getattr(bluesky_pp, name))
    for name in _common(pp, bluesky_pp)
    if name not in DIFFERENT
]


@pytest.mark.parametrize(
    ("name", "ours", "theirs"), SIGNATURES, ids=[f"{s[2].__module__}.{s[0]}" for s in SIGNATURES]
)
def test_same_signature_as_bluesky(
    name: str, ours: Callable[..., Any], theirs: Callable[..., Any]
) -> None:
    """Parameter names, kinds and defaults match bluesky's, for every plan, stub and
    wrapper both have. (The ``*_decorator`` factories are called the same way, but
    bluesky's report the wrapper's signature, plan included.)"""
    assert _parameters(ours) == _parameters(theirs)


def test_the_comparison_covers_the_plans_a_user_calls() -> None:
    covered = {name for name, _, _ in SIGNATURES}
    assert {"count", "scan", "inner_product_scan", "log_scan", "stage", "mv"} <= covered
    assert {"stage_wrapper", "finalize_wrapper", "subscribe", "sleep"} <= covered
