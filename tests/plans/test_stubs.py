"""acq.plans.stubs: the messages each stub yields, the results it gives back, and its effect
on the sim beamline (documents validated by ``checker``)."""

from __future__ import annotations

import asyncio
import builtins
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from acq.devices.sim import Flyer, SimBeamline
from acq.plans import stubs
from acq.plans.stubs import (
    PlanGenerator,
    abs_set,
    broadcast_msg,
    checkpoint,
    collect_while_completing,
    complete_all,
    input_plan,
    kickoff_all,
    move_per_step,
    mv,
    mvr,
    one_1d_step,
    one_nd_step,
    one_shot,
    pause,
    rd,
    rel_set,
    repeat,
    repeater,
    sleep,
    stage_all,
    trigger_and_read,
    unstage_all,
    wait,
    wait_for,
    where,
)
from support import Detector, ManualStatus, Signal

from acq import (
    Msg,
    PlanError,
    PlanFinished,
    PlanStack,
    Return,
    RunEngine,
    RunEngineInterrupted,
    WaitTimeoutError,
)

X0, Y0 = 1.0, -1.0
OBJ, OTHER = Signal("obj"), Signal("other")


def _factory() -> Any:
    return asyncio.sleep(0)


@pytest.fixture(autouse=True)
async def start_positions(bl: SimBeamline) -> None:
    await asyncio.gather(bl.x.set(X0), bl.y.set(Y0))


async def in_run(*plans: Any) -> PlanGenerator:
    """The plans, one after another, inside one run; result: the last plan's result."""
    yield Msg("open_run")
    result = None
    for plan in plans:
        result = yield plan
    yield Msg("close_run")
    yield Return(result)


# -- one message each ----------------------------------------------------------------------
ONE_MESSAGE: dict[str, tuple[Callable[[], Any], Msg]] = {
    "open_run": (lambda: stubs.open_run({"a": 1}), Msg("open_run", a=1)),
    "close_run": (
        lambda: stubs.close_run("fail", "why"),
        Msg("close_run", exit_status="fail", reason="why"),
    ),
    "create": (lambda: stubs.create("s"), Msg("create", name="s")),
    "save": (stubs.save, Msg("save")),
    "drop": (stubs.drop, Msg("drop")),
    "read": (lambda: stubs.read(OBJ), Msg("read", OBJ)),
    "declare_stream": (
        lambda: stubs.declare_stream(OBJ, OTHER, name="s"),
        Msg("declare_stream", None, OBJ, OTHER, name="s", collect=False),
    ),
    "collect": (
        lambda: stubs.collect(OBJ, name="s"),
        Msg("collect", OBJ, stream=False, return_payload=True, name="s"),
    ),
    "monitor": (lambda: stubs.monitor(OBJ, name="m"), Msg("monitor", OBJ, name="m")),
    "unmonitor": (lambda: stubs.unmonitor(OBJ), Msg("unmonitor", OBJ)),
    "abs_set": (lambda: abs_set(OBJ, 3, group="g"), Msg("set", OBJ, 3, group="g")),
    "trigger": (lambda: stubs.trigger(OBJ, group="g"), Msg("trigger", OBJ, group="g")),
    "kickoff": (lambda: stubs.kickoff(OBJ), Msg("kickoff", OBJ, group=None)),
    "complete": (lambda: stubs.complete(OBJ), Msg("complete", OBJ, group=None)),
    "prepare": (lambda: stubs.prepare(OBJ, 5), Msg("prepare", OBJ, 5, group=None)),
    "configure": (
        lambda: stubs.configure(OBJ, exposure=2),
        Msg("configure", OBJ, exposure=2),
    ),
    "stage-in-a-group": (lambda: stubs.stage(OBJ, group="g"), Msg("stage", OBJ, group="g")),
    "unstage-no-wait": (
        lambda: stubs.unstage(OBJ, wait=False),
        Msg("unstage", OBJ, group=None),
    ),
    "stop": (lambda: stubs.stop(OBJ), Msg("stop", OBJ)),
    "locate": (lambda: stubs.locate(OBJ, OTHER), Msg("locate", OBJ, OTHER, squeeze=True)),
    "wait": (
        lambda: wait("g", timeout=2.0),
        Msg("wait", None, group="g", timeout=2.0, error_on_timeout=True, watch=()),
    ),
    "sleep": (lambda: sleep(0.5), Msg("sleep", None, 0.5)),
    "wait_for": (
        lambda: wait_for([_factory], timeout=1),
        Msg("wait_for", None, [_factory], timeout=1),
    ),
    "run_async": (lambda: stubs.run_async(_factory, 1, k=2), Msg("await", _factory, 1, k=2)),
    "null": (stubs.null, Msg("null")),
    "checkpoint": (checkpoint, Msg("checkpoint")),
    "clear_checkpoint": (stubs.clear_checkpoint, Msg("clear_checkpoint")),
    "rewindable": (lambda: stubs.rewindable(False), Msg("rewindable", None, False)),
    "pause": (pause, Msg("pause")),
    "subscribe": (lambda: stubs.subscribe("event", print), Msg("subscribe", None, print, "event")),
    "unsubscribe": (lambda: stubs.unsubscribe(7), Msg("unsubscribe", None, 7)),
    "install_suspender": (
        lambda: stubs.install_suspender(OBJ),
        Msg("install_suspender", None, OBJ),
    ),
    "remove_suspender": (
        lambda: stubs.remove_suspender(OBJ),
        Msg("remove_suspender", None, OBJ),
    ),
}


@pytest.mark.parametrize(("make", "expected"), ONE_MESSAGE.values(), ids=list(ONE_MESSAGE))
async def test_one_message_stub(make: Callable[[], Any], expected: Msg) -> None:
    stack = PlanStack(make())
    assert await stack.step(None) == expected
    reply = object()
    with pytest.raises(PlanFinished) as finished:
        await stack.step(reply)
    assert finished.value.result is reply  # the result is the message's reply


# -- moving --------------------------------------------------------------------------------
async def test_mv_moves_together_and_waits(bl: SimBeamline, recorder: Any, readback: Any) -> None:
    result = await recorder(mv(bl.x, 2, bl.y, 3))
    set_x, set_y, wait_msg = recorder.msgs
    assert (set_x.command, set_x.obj, set_x.args) == ("set", bl.x, (2,))
    assert (set_y.command, set_y.obj, set_y.args) == ("set", bl.y, (3,))
    assert wait_msg.command == "wait"
    assert set_x.kwargs["group"] == set_y.kwargs["group"] == wait_msg.kwargs["group"]
    assert (await readback(bl.x), await readback(bl.y)) == (2.0, 3.0)
    statuses = result.plan_result
    assert len(statuses) == 2
    assert all(s.done and s.success for s in statuses)


def test_mv_needs_pairs(bl: SimBeamline) -> None:
    with pytest.raises(PlanError, match=r"mv\(\) takes pairs"):
        mv(bl.x, 1, bl.y)
    with pytest.raises(PlanError, match=r"mvr\(\) takes pairs"):
        mvr(bl.x)


async def test_mvr_moves_by_offsets(bl: SimBeamline, RE: RunEngine, readback: Any) -> None:
    await RE(mvr(bl.x, 0.5, bl.y, -0.25))
    assert (await readback(bl.x), await readback(bl.y)) == (X0 + 0.5, Y0 - 0.25)


async def test_abs_set_without_and_with_wait(bl: SimBeamline, recorder: Any, readback: Any) -> None:
    async def plan() -> PlanGenerator:
        status = yield abs_set(bl.x, 4, group="here")
        done = yield wait("here")
        waited = yield abs_set(bl.y, 5, wait=True)
        yield Return((status, done, waited))

    result = await recorder(plan())
    status, done, waited = result.plan_result
    assert done is True
    assert status.done
    assert waited.done
    assert recorder.commands() == ["set", "wait", "set", "wait"]
    last_set, last_wait = recorder.msgs[2:]
    assert last_set.kwargs["group"] == last_wait.kwargs["group"] is not None
    assert (await readback(bl.x), await readback(bl.y)) == (4.0, 5.0)


async def test_rel_set(bl: SimBeamline, RE: RunEngine, readback: Any) -> None:
    await RE(rel_set(bl.x, -0.75, wait=True))
    assert await readback(bl.x) == X0 - 0.75


async def test_rd_reads_one_value(bl: SimBeamline, RE: RunEngine) -> None:
    async def plan() -> PlanGenerator:
        x = yield rd(bl.x)
        yield stubs.trigger(bl.det, wait=True)  # rd reads, it does not trigger
        det = yield rd(bl.det)
        mem = yield rd(Signal("mem", 7.5))
        yield Return((x, det, mem))

    result = await RE(plan())
    assert result.plan_result == (X0, pytest.approx(np.exp(-0.5)), 7.5)


class Empty:
    name = "empty"

    def read(self) -> dict[str, Any]:
        return {}

    def describe(self) -> dict[str, Any]:
        return {}


class TwoFields(Signal):
    def read(self) -> dict[str, Any]:
        return {"a": {"value": 1, "timestamp": 0.0}, "b": {"value": 2, "timestamp": 0.0}}

    @property
    def hints(self) -> dict[str, Any]:
        return {}


async def test_rd_default_and_ambiguous(RE: RunEngine) -> None:
    assert (await RE(rd(Empty(), default_value=-1))).plan_result == -1
    with pytest.raises(PlanError, match=r"rd\(two\): cannot choose one value among \['a', 'b'\]"):
        await RE(rd(TwoFields("two")))


async def test_where(bl: SimBeamline, RE: RunEngine) -> None:
    async def plan() -> PlanGenerator:
        yield abs_set(bl.x, 2.5, wait=True)
        x = yield where(bl.x)
        mem = yield where(Signal("mem", 4.0))  # no locate(): its reading
        yield Return((x, mem))

    assert (await RE(plan())).plan_result == (2.5, 4.0)


# -- reading -------------------------------------------------------------------------------
async def test_trigger_and_read(bl: SimBeamline, recorder: Any, docs: Any) -> None:
    result = await recorder(
        in_run(trigger_and_read([bl.det, bl.x, bl.det]), trigger_and_read([bl.x], "other"))
    )
    assert recorder.commands() == [
        "open_run",
        *["trigger", "wait", "create", "read", "read", "save"],  # det once: de-duplicated
        *["create", "read", "save"],  # nothing to trigger
        "close_run",
    ]
    assert set(result.plan_result) == {"x"}
    assert docs.streams() == ["primary", "other"]
    assert docs.rows("primary") == [{"det": pytest.approx(np.exp(-0.5)), "x": X0}]
    assert docs.rows("other") == [{"x": X0}]


class Breaks(Signal):
    """Reads fine, except the ``fail``-th read raises."""

    def __init__(self, name: str, fail: int) -> None:
        super().__init__(name, 1.0)
        self.fail, self.reads = fail, 0

    def read(self) -> dict[str, Any]:
        self.reads += 1
        if self.reads == self.fail:
            raise OSError("lost the connection")
        return super().read()


async def test_trigger_and_read_drops_the_event_on_a_read_error(
    bl: SimBeamline, recorder: Any, docs: Any
) -> None:
    broken = Breaks("broken", fail=2)
    errors: list[str] = []

    async def plan() -> PlanGenerator:
        for _ in range(3):
            try:
                yield trigger_and_read([bl.det, broken])
            except OSError as exc:
                errors.append(str(exc))

    await recorder(in_run(plan()))
    assert errors == ["lost the connection"]
    assert len(recorder.of("drop")) == 1
    assert len(docs.rows()) == 2  # the second reading never became an event
    assert [e["seq_num"] for e in docs.checker.of("event")] == [1, 2]


async def test_one_shot(bl: SimBeamline, recorder: Any, docs: Any) -> None:
    result = await recorder(in_run(one_shot([bl.det])))
    assert recorder.commands() == [
        "open_run", "checkpoint", "trigger", "wait", "create", "read", "save", "close_run",
    ]  # fmt: skip
    assert set(result.plan_result) == {"det"}
    assert len(docs.rows()) == 1


async def test_one_shot_with_take_reading(bl: SimBeamline, RE: RunEngine, docs: Any) -> None:
    taken: list[list[Any]] = []

    def take(devices: list[Any]) -> Any:
        taken.append(devices)
        return trigger_and_read(devices, name="mine")

    await RE(in_run(one_shot([bl.det], take)))
    assert taken == [[bl.det]]
    assert docs.streams() == ["mine"]


async def test_one_1d_step(bl: SimBeamline, recorder: Any, docs: Any, readback: Any) -> None:
    result = await recorder(in_run(one_1d_step([bl.det], bl.x, 0.0)))
    assert recorder.commands()[:4] == ["open_run", "checkpoint", "set", "wait"]
    assert recorder.of("set")[0].args == (0.0,)
    assert docs.rows() == [{"det": 1.0, "x": 0.0}]
    assert result.plan_result["x"]["value"] == 0.0
    assert await readback(bl.x) == 0.0


async def test_move_per_step_moves_only_what_changed(bl: SimBeamline, recorder: Any) -> None:
    cache: dict[Any, Any] = {bl.x: 2.0}
    await recorder(move_per_step({bl.x: 2.0, bl.y: 3.0}, cache))
    assert recorder.commands() == ["checkpoint", "set", "wait"]
    assert recorder.of("set")[0].obj is bl.y
    assert cache == {bl.x: 2.0, bl.y: 3.0}
    recorder.msgs.clear()
    await recorder(move_per_step({bl.x: 2.0, bl.y: 3.0}, cache))
    assert recorder.commands() == ["checkpoint"]  # nothing to move, nothing to wait for


async def test_one_nd_step(bl: SimBeamline, RE: RunEngine, docs: Any) -> None:
    cache: dict[Any, Any] = {}
    await RE(in_run(one_nd_step([bl.det2d], {bl.x: 0.5, bl.y: 0.25}, cache)))
    (row,) = docs.rows()
    assert (row["x"], row["y"]) == (0.5, 0.25)
    assert set(row) == {"det2d", "x", "y"}


# -- repeating -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("delay", "sleeps"), [(0.0, []), (0.01, [0.01, 0.01]), ([0.01, 0.02], [0.01, 0.02])]
)
async def test_repeat(
    bl: SimBeamline, recorder: Any, docs: Any, delay: Any, sleeps: list[float]
) -> None:
    result = await recorder(in_run(repeat(lambda: trigger_and_read([bl.det]), 3, delay)))
    assert [m.args[0] for m in recorder.of("sleep")] == sleeps
    assert len(recorder.of("checkpoint")) == 3
    assert len(result.plan_result) == 3
    assert all(set(r) == {"det"} for r in result.plan_result)
    assert len(docs.rows()) == 3


def test_repeat_checks_delay() -> None:
    with pytest.raises(PlanError, match="delay has 1 values but num=3"):
        repeat(stubs.null, 3, [0.1])
    with pytest.raises(PlanError, match="delay must be >= 0"):
        repeat(stubs.null, 3, -1)
    with pytest.raises(PlanError, match="finite num"):
        repeat(stubs.null, None, [0.1])


async def test_repeater(bl: SimBeamline, RE: RunEngine, docs: Any) -> None:
    result = await RE(in_run(repeater(2, trigger_and_read, [bl.det, bl.x])))
    assert len(result.plan_result) == 2
    assert docs.column("x") == [X0, X0]


# -- several devices -----------------------------------------------------------------------
async def test_stage_all_unstage_all_and_broadcast(RE: RunEngine) -> None:
    a, b = Detector("a"), Detector("b")
    order: list[str] = []
    for det in (a, b):
        det.stage = lambda det=det: (order.append(f"stage {det.name}"), [det])[1]  # type: ignore[method-assign]
        det.unstage = lambda det=det: (order.append(f"unstage {det.name}"), [det])[1]  # type: ignore[method-assign]

    async def plan() -> PlanGenerator:
        staged = yield stage_all(a, b, a)
        unstaged = yield unstage_all(a, b, a)
        configured = yield broadcast_msg("configure", [a, b], exposure=0.5)
        yield Return((staged, unstaged, configured))

    staged, unstaged, configured = (await RE(plan())).plan_result
    assert order == ["stage a", "stage b", "unstage a", "unstage b"]  # each once, as given
    assert len(staged) == len(unstaged) == 2
    assert a.exposure == b.exposure == 0.5
    exposures = [
        new[f"{d.name}_exposure"]["value"]
        for (_old, new), d in zip(configured, (a, b), strict=True)
    ]
    assert exposures == [0.5, 0.5]


@pytest.fixture
async def flyer() -> Flyer:
    fly = Flyer("fly", num_points=100, points_per_second=1000.0, page_size=7)  # 0.1 s
    await fly.connect()
    return fly


async def test_kickoff_complete_all(flyer: Flyer, recorder: Any, docs: Any) -> None:
    async def plan() -> PlanGenerator:
        yield kickoff_all(flyer)
        yield complete_all(flyer, wait=True)
        yield Msg("collect", flyer, name="fly")

    await recorder(in_run(plan()))
    commands = recorder.commands()
    assert commands[1:5] == ["kickoff", "wait", "complete", "wait"]
    kick, kick_wait = recorder.msgs[1:3]
    assert kick.kwargs["group"] == kick_wait.kwargs["group"]
    assert docs.column("fly-position", "fly") == pytest.approx(list(np.linspace(-5, 5, 100)))


async def test_collect_while_completing(flyer: Flyer, recorder: Any, docs: Any) -> None:
    async def plan() -> PlanGenerator:
        yield kickoff_all(flyer)
        yield collect_while_completing([flyer], [flyer], flush_period=0.005, stream_name="fly")

    await recorder(in_run(plan()))
    collects = recorder.of("collect")
    assert len(collects) >= 2  # collected while flying, then once more after
    waits = [m for m in recorder.of("wait") if m.kwargs.get("timeout") == 0.005]
    assert len(waits) == len(collects)
    assert all(m.kwargs["error_on_timeout"] is False for m in waits)
    assert docs.column("fly-position", "fly") == pytest.approx(list(np.linspace(-5, 5, 100)))


# -- time and flow -------------------------------------------------------------------------
class Slow(Signal):
    """A device whose set() finishes only when the test says so."""

    def __init__(self) -> None:
        super().__init__("slow")
        self.status = ManualStatus()

    def set(self, value: Any) -> ManualStatus:  # type: ignore[override]
        return self.status


async def test_wait_true_false_and_timeout(RE: RunEngine) -> None:
    slow = Slow()

    async def plan() -> PlanGenerator:
        yield abs_set(slow, 1, group="g")
        first = yield wait("g", timeout=0.01, error_on_timeout=False)
        try:
            yield wait("g", timeout=0.01)
            raised = None
        except WaitTimeoutError as exc:
            raised = exc
        slow.status.finish()
        last = yield wait("g", timeout=1)
        yield Return((first, raised, last))

    first, raised, last = (await RE(plan())).plan_result
    assert first is False
    assert isinstance(raised, WaitTimeoutError)
    assert last is True


async def test_sleep_and_wait_for(RE: RunEngine) -> None:
    ran: list[str] = []

    async def note() -> None:
        ran.append("awaited")

    async def plan() -> PlanGenerator:
        slept = yield sleep(0.001)
        yield wait_for([note, note])
        yield Return(slept)

    assert (await RE(plan())).plan_result is None
    assert ran == ["awaited", "awaited"]


async def test_pause_and_resume_from_the_checkpoint(RE: RunEngine) -> None:
    steps: list[str] = []

    async def plan() -> PlanGenerator:
        yield checkpoint()
        steps.append("before")
        yield pause()  # takes effect before the next message is handled
        yield stubs.null()
        steps.append("after")
        yield Return("done")

    with pytest.raises(RunEngineInterrupted):
        await RE(plan())
    assert steps == ["before"]
    result = await RE.resume()
    assert steps == ["before", "after"]
    assert result.plan_result == "done"


async def test_input_plan(monkeypatch: pytest.MonkeyPatch, RE: RunEngine) -> None:
    prompts: list[str] = []
    monkeypatch.setattr(builtins, "input", lambda prompt: prompts.append(prompt) or "Si")
    assert (await RE(input_plan("sample? "))).plan_result == "Si"
    assert prompts == ["sample? "]


async def test_sub_plan_results_reach_the_top_at_depth(bl: SimBeamline, recorder: Any) -> None:
    async def innermost() -> PlanGenerator:  # depth 4, under the recorder
        x = yield rd(bl.x)  # rd itself is depth 5
        yield Return(x * 10)

    async def middle() -> PlanGenerator:
        value = yield innermost()
        yield Return(value + 1)

    def outer() -> Any:  # a plain generator returns its result
        value = yield middle()
        statuses = yield mv(bl.y, value / 100)
        return value, len(statuses)

    async def top() -> PlanGenerator:
        result = yield outer()
        yield Return(result)

    result = await recorder(top())
    assert result.plan_result == (X0 * 10 + 1, 1)
    assert recorder.commands() == ["read", "set", "wait"]


# -- called as bluesky's stubs are ---------------------------------------------------------
async def test_mv_and_mvr_timeout_bounds_the_wait(bl: SimBeamline, recorder: Any) -> None:
    await recorder(mv(bl.x, 2, timeout=5.0))
    await recorder(stubs.movr(bl.x, 1, timeout=6.0))  # bluesky's other name for mvr
    assert [m.kwargs["timeout"] for m in recorder.of("wait")] == [5.0, 6.0]
    assert all("timeout" not in m.kwargs for m in recorder.of("set"))


async def test_subscribe_takes_the_document_name_first(bl: SimBeamline, RE: RunEngine) -> None:
    seen: list[str] = []
    await RE(
        in_run(
            stubs.subscribe("event", lambda name, doc: seen.append(name)),
            trigger_and_read([bl.det]),
        )
    )
    assert seen == ["event"]


async def test_repeater_passes_keywords(bl: SimBeamline, RE: RunEngine, docs: Any) -> None:
    await RE(in_run(repeater(2, trigger_and_read, [bl.det], name="other")))
    assert docs.streams() == ["other"]
    assert len(docs.rows("other")) == 2


async def test_sleep_and_wait_for_take_bluesky_keywords(RE: RunEngine, recorder: Any) -> None:
    await recorder(sleep(time=0.0))
    await recorder(wait_for(futures=[_factory], timeout=1.0))
    assert recorder.msgs == [
        Msg("sleep", None, 0.0),
        Msg("wait_for", None, [_factory], timeout=1.0),
    ]
