"""acq.plans.preprocessors: the mutator, the wrappers, their decorators, SupplementalData.

Plans run on the ``RE`` fixture (documents validated by ``checker``); the ``recorder``
records every message that reaches the engine, so insertions can be checked in order.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from acq.devices.sim import Flyer, SimBeamline
from acq.plans import count, scan
from acq.plans import preprocessors as pp
from acq.plans.preprocessors import (
    SupplementalData,
    baseline_wrapper,
    contingency_wrapper,
    finalize_wrapper,
    fly_during_wrapper,
    inject_md_wrapper,
    make_decorator,
    monitor_during_wrapper,
    msg_mutator,
    pchain,
    plan_mutator,
    relative_set_wrapper,
    reset_positions_wrapper,
    rewindable_wrapper,
    run_wrapper,
    single_gen,
    stage_wrapper,
    subs_wrapper,
    suspend_wrapper,
)
from acq.plans.stubs import PlanGenerator, abs_set, mv, null, rd, trigger_and_read
from support import Detector, Signal

from acq import Msg, Return, RunAborted, RunEngine, RunEngineInterrupted, State
from acq.suspenders import SuspendFloor

X0, Y0 = 1.0, -1.0


@pytest.fixture(autouse=True)
async def start_positions(bl: SimBeamline) -> None:
    await asyncio.gather(bl.x.set(X0), bl.y.set(Y0))


@pytest.fixture
async def flyer() -> Flyer:
    fly = Flyer("fly", num_points=5)
    await fly.connect()
    return fly


class Steps:
    """A plan factory that notes which of its parts ran."""

    def __init__(self) -> None:
        self.ran: list[str] = []

    def note(self, what: str) -> Any:
        async def plan() -> PlanGenerator:
            self.ran.append(what)
            yield Msg("null")

        return plan()


async def moves_then(bl: SimBeamline, end: str) -> PlanGenerator:
    """Move x and y, then ``end``: "return", "raise" or "pause"."""
    yield mv(bl.x, 3, bl.y, 4)
    yield Msg("checkpoint")
    if end == "raise":
        raise ValueError("boom")
    if end == "pause":
        yield Msg("pause")
        yield Msg("null")
    yield Return("result")


# -- plan_mutator -------------------------------------------------------------------------
async def test_plan_mutator_head_and_tail(bl: SimBeamline, recorder: Any, readback: Any) -> None:
    seen: list[str] = []

    async def head(msg: Msg) -> PlanGenerator:
        yield Msg("null")
        reply = yield msg  # keep the message: its reply goes to the plan
        yield Return(reply)

    def insert(msg: Msg) -> tuple[Any, Any]:
        seen.append(msg.command)
        if msg.command == "set":
            return head(msg), single_gen(Msg("checkpoint"))
        return None, None

    async def plan() -> PlanGenerator:
        statuses = yield mv(bl.x, 2)
        yield Return(statuses)

    result = await recorder(plan_mutator(plan(), insert))
    assert recorder.commands() == ["null", "set", "checkpoint", "wait"]
    assert seen == ["set", "wait"]  # inserted messages are not passed to insert again
    (status,) = result.plan_result  # mv got the set's status from the head
    assert status.done
    assert status.success
    assert await readback(bl.x) == 2.0


async def test_plan_mutator_tail_only_and_results_propagate(recorder: Any) -> None:
    def after_null(msg: Msg) -> tuple[Any, Any]:
        return (None, single_gen(Msg("checkpoint"))) if msg.command == "null" else (None, None)

    async def plan() -> PlanGenerator:
        reply = yield Msg("rewindable", None, None)
        yield Msg("null")
        yield Return(("plan result", reply))

    result = await recorder(plan_mutator(plan(), after_null))
    assert recorder.commands() == ["rewindable", "null", "checkpoint"]
    assert result.plan_result == ("plan result", True)


async def test_nested_mutators_both_see_messages(bl: SimBeamline, recorder: Any) -> None:
    inner_saw: list[str] = []
    outer_saw: list[str] = []

    def inner(msg: Msg) -> tuple[Any, Any]:
        inner_saw.append(msg.command)
        if msg.command == "set":
            return None, single_gen(Msg("null"))
        return None, None

    def outer(msg: Msg) -> tuple[Any, Any]:
        outer_saw.append(msg.command)
        return None, None

    await recorder(plan_mutator(plan_mutator(mv(bl.x, 2, bl.y, 3), inner), outer))
    assert inner_saw == ["set", "set", "wait"]
    assert outer_saw == ["set", "null", "set", "null", "wait"]  # the inner's insertions too
    assert recorder.commands() == outer_saw


class Breaks(Signal):
    def read(self) -> dict[str, Any]:
        raise OSError(f"{self.name}: lost the connection")


async def test_plan_catches_errors_through_the_mutator(RE: RunEngine) -> None:
    caught: list[str] = []

    async def failing() -> PlanGenerator:
        yield Msg("null")
        raise KeyError("from a sub-plan")

    async def plan() -> PlanGenerator:
        try:
            yield Msg("read", Breaks("broken"))  # the engine's error
        except OSError as exc:
            caught.append(str(exc))
        try:
            yield failing()  # a sub-plan's error
        except KeyError as exc:
            caught.append(str(exc))
        try:
            yield Msg("set", Signal("wrapped"), 1)  # replaced by a head that fails
        except RuntimeError as exc:
            caught.append(str(exc))
        yield Return("went on")

    async def bad_head(msg: Msg) -> PlanGenerator:
        yield Msg("null")
        raise RuntimeError(f"head for {msg.command} failed")

    def proc(msg: Msg) -> tuple[Any, Any]:
        return (bad_head(msg), None) if msg.command == "set" else (None, None)

    result = await RE(plan_mutator(plan(), proc))
    assert caught == ["broken: lost the connection", "'from a sub-plan'", "head for set failed"]
    assert result.plan_result == "went on"


async def test_plan_mutator_uncaught_error_fails_the_run(
    bl: SimBeamline, RE: RunEngine, docs: Any
) -> None:
    async def plan() -> PlanGenerator:
        yield trigger_and_read([bl.det])
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        await RE(plan_mutator(run_wrapper(plan()), lambda msg: (None, None)))
    assert docs.stop["exit_status"] == "fail"


async def test_msg_mutator(bl: SimBeamline, RE: RunEngine, readback: Any) -> None:
    def double(msg: Msg) -> Msg:
        if msg.command == "set":
            return msg._replace(args=(msg.args[0] * 2,))
        return msg

    await RE(msg_mutator(mv(bl.x, 1.5, bl.y, -2), double))
    assert (await readback(bl.x), await readback(bl.y)) == (3.0, -4.0)


async def test_pchain(bl: SimBeamline, recorder: Any) -> None:
    result = await recorder(pchain(mv(bl.x, 2), rd(bl.x), null()))
    statuses, position, nothing = result.plan_result
    assert len(statuses) == 1
    assert position == 2.0
    assert nothing is None
    assert recorder.commands() == ["set", "wait", "read", "null"]


async def test_lists_of_messages_are_plans_too(RE: RunEngine, recorder: Any) -> None:
    """As in bluesky (and as ``RE(...)`` itself takes them): a list of Msg is a plan."""
    await recorder(pchain([Msg("null")], [Msg("checkpoint")]))
    await recorder(finalize_wrapper([Msg("null")], [Msg("checkpoint")]))
    assert recorder.commands() == ["null", "checkpoint"] * 2


# -- cleanup -------------------------------------------------------------------------------
async def test_finalize_on_success_and_failure(bl: SimBeamline, RE: RunEngine) -> None:
    steps = Steps()
    result = await RE(finalize_wrapper(moves_then(bl, "return"), lambda: steps.note("final")))
    assert result.plan_result == "result"
    assert steps.ran == ["final"]
    with pytest.raises(ValueError, match="boom"):
        await RE(finalize_wrapper(moves_then(bl, "raise"), steps.note("final")))  # a plan
    assert steps.ran == ["final", "final"]


async def test_finalize_on_abort_not_on_halt(bl: SimBeamline, RE: RunEngine) -> None:
    steps = Steps()
    with pytest.raises(RunEngineInterrupted):
        await RE(finalize_wrapper(moves_then(bl, "pause"), lambda: steps.note("final")))
    assert (await RE.abort()).exit_status == "abort"
    assert steps.ran == ["final"]
    with pytest.raises(RunEngineInterrupted):
        await RE(finalize_wrapper(moves_then(bl, "pause"), lambda: steps.note("halted")))
    assert (await RE.halt()).exit_status == "abort"
    assert steps.ran == ["final"]  # a halt skips the cleanup


async def test_finalize_on_abort_from_another_task(
    bl: SimBeamline, RE: RunEngine, faulty: Any
) -> None:
    steps = Steps()
    det = faulty(block_at=1)
    task = asyncio.create_task(
        RE(finalize_wrapper(trigger_and_read([det]), lambda: steps.note("final")))
    )
    async with asyncio.timeout(10):
        await det.blocked.wait()
    await RE.abort()
    with pytest.raises(RunAborted):
        await task
    assert steps.ran == ["final"]


async def test_contingency_success_runs_else_and_final(bl: SimBeamline, RE: RunEngine) -> None:
    steps = Steps()
    result = await RE(
        contingency_wrapper(
            moves_then(bl, "return"),
            except_plan=lambda exc: steps.note(f"except {exc}"),
            else_plan=lambda: steps.note("else"),
            final_plan=lambda: steps.note("final"),
        )
    )
    assert steps.ran == ["else", "final"]
    assert result.plan_result == "result"


@pytest.mark.parametrize("auto_raise", [True, False])
async def test_contingency_failure(bl: SimBeamline, RE: RunEngine, auto_raise: bool) -> None:
    steps = Steps()
    plan = contingency_wrapper(
        moves_then(bl, "raise"),
        except_plan=lambda exc: steps.note(f"except {exc!r}"),
        else_plan=lambda: steps.note("else"),
        final_plan=lambda: steps.note("final"),
        auto_raise=auto_raise,
    )
    if auto_raise:
        with pytest.raises(ValueError, match="boom"):
            await RE(plan)
    else:
        assert (await RE(plan)).exit_status == "success"
    assert steps.ran == ["except ValueError('boom')", "final"]


async def test_contingency_abort_runs_except_with_the_abort_then_final(
    bl: SimBeamline, RE: RunEngine
) -> None:
    # as bluesky's: RequestAbort is an Exception, so except_plan sees it (bluesky's
    # run_wrapper closes its run with exit_status 'abort' this way)
    steps = Steps()
    plan = contingency_wrapper(
        moves_then(bl, "pause"),
        except_plan=lambda exc: steps.note(f"except {type(exc).__name__}"),
        final_plan=lambda: steps.note("final"),
    )
    with pytest.raises(RunEngineInterrupted):
        await RE(plan)
    await RE.abort()
    assert steps.ran == ["except RequestAbort", "final"]


# -- run structure -------------------------------------------------------------------------
async def test_run_wrapper(bl: SimBeamline, RE: RunEngine, docs: Any) -> None:
    async def plan() -> PlanGenerator:
        reading = yield trigger_and_read([bl.det])
        yield Return(reading["det"]["value"])

    result = await RE(run_wrapper(plan(), md={"purpose": "wrapped"}))
    assert result.plan_result == pytest.approx(np.exp(-0.5))
    assert docs.start["purpose"] == "wrapped"
    assert docs.stop["exit_status"] == "success"
    assert docs.stop["num_events"] == {"primary": 1}


async def test_run_wrapper_fails_the_run_on_an_exception(
    bl: SimBeamline, RE: RunEngine, docs: Any
) -> None:
    with pytest.raises(ValueError, match="boom"):
        await RE(run_wrapper(moves_then(bl, "raise")))
    assert docs.stop["exit_status"] == "fail"
    assert "ValueError: boom" in docs.stop["reason"]


@pytest.mark.parametrize("end", ["return", "raise"])
async def test_stage_wrapper(bl: SimBeamline, RE: RunEngine, end: str) -> None:
    a, b = Detector("a"), Detector("b")
    during: list[bool] = []

    async def plan() -> PlanGenerator:
        during.extend([a.staged, b.staged])
        yield moves_then(bl, end)

    if end == "raise":
        with pytest.raises(ValueError, match="boom"):
            await RE(stage_wrapper(plan(), [a, b]))
    else:
        await RE(stage_wrapper(plan(), [a, b]))
    assert during == [True, True]
    assert not a.staged
    assert not b.staged
    assert [e for e in a.log if e[0] != "read"] == [("stage", None), ("unstage", None)]


async def test_subs_wrapper(bl: SimBeamline, RE: RunEngine) -> None:
    every: list[str] = []
    starts: list[str] = []
    events: list[str] = []
    subs = {
        "start": [lambda name, doc: starts.append(doc["plan_name"])],
        "event": lambda name, doc: events.append(name),
    }

    async def plan() -> PlanGenerator:
        yield subs_wrapper(count([bl.det]), lambda name, doc: every.append(name))
        yield subs_wrapper(count([bl.det], md={"plan_name": "second"}), subs)
        yield count([bl.det], md={"plan_name": "third"})  # nobody of the above listens

    await RE(plan())
    assert every == ["start", "descriptor", "event", "stop"]
    assert starts == ["second"]
    assert len(events) == 1


async def test_inject_md_wrapper(bl: SimBeamline, RE: RunEngine, checker: Any) -> None:
    async def plan() -> PlanGenerator:
        yield count([bl.det], md={"purpose": "plan", "kept": 1})
        yield scan([bl.det], bl.x, 0, 1, num=2)

    await RE(inject_md_wrapper(plan(), {"purpose": "injected", "beamtime": 7}))
    first, second = checker.of("start")
    assert (first["purpose"], first["kept"], first["beamtime"]) == ("injected", 1, 7)
    assert (second["purpose"], second["beamtime"]) == ("injected", 7)
    assert second["plan_name"] == "scan"


async def test_rewindable_wrapper(RE: RunEngine) -> None:
    async def plan() -> PlanGenerator:
        inside = yield Msg("rewindable", None, None)
        yield Return(inside)

    async def outer() -> PlanGenerator:
        inside = yield rewindable_wrapper(plan(), False)
        after = yield Msg("rewindable", None, None)
        yield Return((inside, after))

    assert (await RE(outer())).plan_result == (False, True)


async def test_suspend_wrapper_installs_for_the_plan_only(bl: SimBeamline, RE: RunEngine) -> None:
    suspender = SuspendFloor(bl.beam_current, 100)
    inside: list[tuple[Any, ...]] = []

    async def plan(fail: bool) -> PlanGenerator:
        inside.append(RE.suspenders)
        yield Msg("null")
        if fail:
            raise ValueError("boom")

    await RE(suspend_wrapper(plan(False), suspender))
    with pytest.raises(ValueError, match="boom"):
        await RE(suspend_wrapper(plan(True), [suspender]))
    assert inside == [(suspender,), (suspender,)]
    assert RE.suspenders == ()


async def test_suspend_wrapper_suspends_while_the_beam_is_down(
    bl: SimBeamline, RE: RunEngine
) -> None:
    suspender = SuspendFloor(bl.beam_current, 100, 400)
    loop = asyncio.get_running_loop()
    states: list[State] = []
    RE.observe_state(lambda old, new: states.append(new))
    beam: list[Any] = []

    async def plan() -> PlanGenerator:
        yield Msg("checkpoint")
        beam.append(bl.beam_current.set(10))  # the beam is lost (not by the plan) ...
        loop.call_later(0.02, lambda: beam.append(bl.beam_current.set(450)))  # ... and back
        yield Msg("sleep", None, 0.01)
        yield Msg("null")
        yield Return(await bl.beam_current.get_value())

    async with asyncio.timeout(10):
        result = await RE(suspend_wrapper(plan(), suspender))
    assert result.plan_result == 450
    assert State.SUSPENDING in states
    assert RE.suspenders == ()


# -- positions -----------------------------------------------------------------------------
async def test_relative_set_wrapper(bl: SimBeamline, RE: RunEngine, readback: Any) -> None:
    async def plan() -> PlanGenerator:
        yield mv(bl.x, 0.5, bl.y, 0.5)
        yield mv(bl.x, 2, bl.y, 2)

    await RE(relative_set_wrapper(plan(), [bl.x]))  # x relative, y absolute
    assert (await readback(bl.x), await readback(bl.y)) == (X0 + 2, 2.0)
    await RE(relative_set_wrapper(mv(bl.x, -1, bl.y, -1)))  # every device
    assert (await readback(bl.x), await readback(bl.y)) == (X0 + 1, 1.0)


@pytest.mark.parametrize("end", ["return", "raise", "pause"])
async def test_reset_positions_wrapper(
    end: str, bl: SimBeamline, RE: RunEngine, readback: Any
) -> None:
    plan = reset_positions_wrapper(moves_then(bl, end))
    if end == "return":
        assert (await RE(plan)).plan_result == "result"
    elif end == "raise":
        with pytest.raises(ValueError, match="boom"):
            await RE(plan)
    else:
        with pytest.raises(RunEngineInterrupted):
            await RE(plan)
        assert (await readback(bl.x), await readback(bl.y)) == (3.0, 4.0)
        await RE.abort()
    assert (await readback(bl.x), await readback(bl.y)) == (X0, Y0)


async def test_reset_positions_of_chosen_devices(
    bl: SimBeamline, recorder: Any, readback: Any
) -> None:
    await recorder(reset_positions_wrapper(moves_then(bl, "return"), [bl.y]))
    assert (await readback(bl.x), await readback(bl.y)) == (3.0, Y0)
    assert [(m.obj.name, m.args[0]) for m in recorder.of("set")] == [
        ("x", 3),
        ("y", 4),
        ("y", Y0),
    ]


# -- supplemental data --------------------------------------------------------------------
async def test_baseline_wrapper(bl: SimBeamline, RE: RunEngine, docs: Any) -> None:
    await RE(baseline_wrapper(count([bl.det], 2), [bl.y, bl.x]))
    assert docs.streams() == ["baseline", "primary"]
    assert docs.rows("baseline") == [{"y": Y0, "x": X0}] * 2
    names = [n for n, _ in docs.checker.docs]
    assert names == ["start", "descriptor", "event", "descriptor", *["event"] * 3, "stop"]
    assert docs.stop["num_events"] == {"baseline": 2, "primary": 2}


async def test_baseline_wrapper_without_devices(bl: SimBeamline, RE: RunEngine, docs: Any) -> None:
    result = await RE(baseline_wrapper(count([bl.det]), []))
    assert docs.streams() == ["primary"]
    assert result.exit_status == "success"


async def test_monitor_during_wrapper(bl: SimBeamline, RE: RunEngine, docs: Any) -> None:
    async def plan() -> PlanGenerator:
        yield Msg("open_run")
        yield abs_set(bl.beam_current, 400, wait=True)
        yield trigger_and_read([bl.det])
        yield abs_set(bl.beam_current, 300, wait=True)
        yield Msg("close_run")
        yield abs_set(bl.beam_current, 200, wait=True)  # not monitored any more

    await RE(monitor_during_wrapper(plan(), [bl.beam_current]))
    assert docs.column("beam_current", "beam_current_monitor") == [500, 400, 300]


async def test_fly_during_wrapper(bl: SimBeamline, flyer: Flyer, recorder: Any, docs: Any) -> None:
    await recorder(fly_during_wrapper(count([bl.det], 2), [flyer]))
    commands = recorder.commands()
    opened, closed = commands.index("open_run"), commands.index("close_run")
    assert commands[opened : opened + 2] == ["open_run", "kickoff"]
    assert commands[closed - 3 : closed + 1] == ["complete", "wait", "collect", "close_run"]
    assert docs.column("fly-position", "fly") == [-5.0, -2.5, 0.0, 2.5, 5.0]
    assert len(docs.rows("primary")) == 2


async def test_supplemental_data_on_the_engine(
    bl: SimBeamline, flyer: Flyer, RE: RunEngine, docs: Any
) -> None:
    sd = SupplementalData(baseline=[bl.y])
    sd.monitors.append(bl.beam_current)
    sd.flyers.append(flyer)
    RE.preprocessors.append(sd)
    await RE(count([bl.det], 2))
    assert sorted(docs.streams()) == ["baseline", "beam_current_monitor", "fly", "primary"]
    assert docs.column("y", "baseline") == [Y0, Y0]
    assert docs.column("beam_current", "beam_current_monitor") == [500]
    assert len(docs.rows("fly")) == 5
    assert "baseline=[" in repr(sd)


async def test_supplemental_data_empty_is_transparent(bl: SimBeamline, RE: RunEngine) -> None:
    RE.preprocessors.append(SupplementalData())
    assert (await RE(moves_then(bl, "return"))).plan_result == "result"


# -- decorators ----------------------------------------------------------------------------
async def test_make_decorator(bl: SimBeamline, RE: RunEngine, readback: Any) -> None:
    def times(plan: Any, factor: float) -> Any:
        return msg_mutator(
            plan,
            lambda m: m._replace(args=(m.args[0] * factor,)) if m.command == "set" else m,
        )

    @make_decorator(times)(3)
    def move(position: float) -> Any:
        """Move x."""
        return mv(bl.x, position)

    assert move.__name__ == "move"
    assert move.__doc__ == "Move x."
    await RE(move(2))
    assert await readback(bl.x) == 6.0


async def test_every_decorator(
    bl: SimBeamline, flyer: Flyer, RE: RunEngine, docs: Any, readback: Any
) -> None:
    steps = Steps()
    seen: list[str] = []
    det = Detector("staged")

    def inside(plan: Any) -> Any:
        async def noted() -> PlanGenerator:
            seen.append(f"staged={det.staged}")
            result = yield plan
            seen.append(f"rewindable={(yield Msg('rewindable', None, None))}")
            yield Return(result)

        return noted()

    decorators: list[Callable[..., Any]] = [  # innermost first
        pp.reset_positions_decorator([bl.y]),
        pp.relative_set_decorator([bl.x]),
        pp.stage_decorator([det]),
        pp.rewindable_decorator(False),
        pp.finalize_decorator(lambda: steps.note("finalize")),
        pp.contingency_decorator(final_plan=lambda: steps.note("contingency")),
        pp.run_decorator(md={"purpose": "decorators"}),
        pp.inject_md_decorator({"decorated": True}),
        pp.baseline_decorator([bl.x]),
        pp.monitor_during_decorator([bl.beam_current]),
        pp.fly_during_decorator([flyer]),
        pp.subs_decorator(lambda name, doc: seen.append(name) if name == "stop" else None),
    ]

    def body(step: float) -> Any:
        return inside(pchain(mv(bl.x, step, bl.y, step), trigger_and_read([bl.det, bl.x])))

    decorated = body
    for decorator in decorators:
        decorated = decorator(decorated)
    await RE(decorated(0.5))
    start = docs.start
    assert (start["purpose"], start["decorated"]) == ("decorators", True)
    assert sorted(docs.streams()) == ["baseline", "beam_current_monitor", "fly", "primary"]
    assert docs.column("x") == [X0 + 0.5]  # relative for x
    assert docs.rows("baseline")[0] == {"x": X0}
    assert await readback(bl.y) == Y0  # reset
    assert steps.ran == ["finalize", "contingency"]  # finalize is the inner one
    assert seen == ["staged=True", "rewindable=False", "stop"]
    assert not det.staged


async def test_suspend_decorator(bl: SimBeamline, RE: RunEngine) -> None:
    suspender = SuspendFloor(bl.beam_current, 100)

    @pp.suspend_decorator(suspender)
    def plan() -> Any:
        async def inside() -> PlanGenerator:
            yield Return(RE.suspenders)

        return inside()

    assert (await RE(plan())).plan_result == (suspender,)
    assert RE.suspenders == ()


# -- as bluesky's: pause_for_debug, the except_plan's result -------------------------------
@pytest.mark.parametrize("after", ["resume", "abort"])
@pytest.mark.parametrize("wrapper", ["finalize", "contingency"])
async def test_pause_for_debug_pauses_before_the_cleanup(
    bl: SimBeamline, RE: RunEngine, readback: Any, wrapper: str, after: str
) -> None:
    steps = Steps()
    final = lambda: steps.note("final")  # noqa: E731
    plan = (
        finalize_wrapper(moves_then(bl, "raise"), final, pause_for_debug=True)
        if wrapper == "finalize"
        else contingency_wrapper(moves_then(bl, "raise"), final_plan=final, pause_for_debug=True)
    )
    with pytest.raises(RunEngineInterrupted):
        await RE(plan)
    assert steps.ran == []  # paused where the failure left the devices
    assert (await readback(bl.x), await readback(bl.y)) == (3.0, 4.0)
    if after == "resume":
        with pytest.raises(ValueError, match="boom"):
            await RE.resume()
    else:
        assert (await RE.abort()).exit_status == "abort"
    assert steps.ran == ["final"]


async def test_contingency_without_auto_raise_returns_what_except_plan_returns(
    bl: SimBeamline, RE: RunEngine
) -> None:
    async def handle(exc: Exception) -> PlanGenerator:
        yield Msg("null")
        yield Return(f"handled {exc}")

    plan = contingency_wrapper(moves_then(bl, "raise"), except_plan=handle, auto_raise=False)
    assert (await RE(plan)).plan_result == "handled boom"
    with pytest.raises(ValueError, match="boom"):  # nothing to handle it: it goes on
        await RE(contingency_wrapper(moves_then(bl, "raise"), auto_raise=False))
