"""The RunEngine drives plans on the caller's loop: forms of plans, sub-plans, results."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import bluesky
import bluesky.plan_stubs as bps_bluesky
import bluesky.plans as bp
import pytest
from bluesky.utils import Msg as BlueskyMsg
from support import AsyncSignal, DocChecker, ManualStatus, Signal

from acq import (
    MetadataError,
    Msg,
    PlanError,
    Return,
    RunEngine,
    RunEngineInterrupted,
    State,
    StateError,
    UnknownCommandError,
)


def step_scan(motor: Any, det: Any, positions: list[float]):
    yield Msg("open_run", plan_name="step_scan")
    for x in positions:
        yield Msg("set", motor, x, group="move")
        yield Msg("wait", None, group="move")
        yield Msg("trigger", det, group="det")
        yield Msg("wait", group="det")
        yield Msg("create", name="primary")
        yield Msg("read", motor)
        yield Msg("read", det)
        yield Msg("save")
    yield Msg("close_run")


async def test_generator_plan_produces_start_descriptor_events_stop(
    RE: RunEngine, checker: DocChecker
) -> None:
    motor, det = Signal("motor"), Signal("det", 3.0)
    result = await RE(step_scan(motor, det, [1.0, 2.0, 3.0]))
    assert checker.names() == ["start", "descriptor", "event", "event", "event", "stop"]
    events = checker.of("event")
    assert [e["data"]["motor"] for e in events] == [1.0, 2.0, 3.0]
    assert [e["seq_num"] for e in events] == [1, 2, 3]
    assert result.exit_status == "success"
    assert result.run_start_uids == (checker.of("start")[0]["uid"],)
    assert checker.of("stop")[0]["num_events"] == {"primary": 3}


async def test_async_plan_gets_each_response() -> None:
    RE = RunEngine()
    det = AsyncSignal("det", 7.0)
    seen: list[Any] = []

    async def plan():
        reading = yield Msg("read", det)
        seen.append(reading["det"]["value"])
        location = yield Msg("rewindable", None, False)
        seen.append(location)

    await RE(plan())
    assert seen == [7.0, False]


def _intensity(reading: dict[str, Any]) -> float:
    return float(reading["det"]["value"])


async def measure_at(motor: Signal, det: Signal, x: float):
    """A sub-plan: move, trigger, read inside a bundle; its result is the intensity."""
    yield Msg("set", motor, x, group="m")
    yield Msg("wait", group="m")
    yield Msg("trigger", det, group="d")
    yield Msg("wait", group="d")
    yield Msg("create", name="primary")
    yield Msg("read", motor)
    reading = yield Msg("read", det)
    yield Msg("save")
    yield Return(_intensity(reading))


class GaussDet(Signal):
    """A detector whose value is a Gaussian of the motor position (reference/003 SynGauss)."""

    def __init__(self, name: str, motor: Signal) -> None:
        super().__init__(name)
        self.motor = motor

    def trigger(self):  # type: ignore[override]
        import math

        self.value = math.exp(-((self.motor.value) ** 2) / 2)
        return super().trigger()


async def test_adaptive_scan_of_reference_003_as_async_plan_with_sub_plan(
    RE: RunEngine, checker: DocChecker
) -> None:
    motor = Signal("motor")
    det = GaussDet("det", motor)

    async def adaptive_scan(threshold: float):
        yield Msg("open_run", plan_name="adaptive_scan")
        i = 0
        while True:
            intensity = yield measure_at(motor, det, float(i))
            if intensity < threshold:
                break
            i += 1
        yield Msg("close_run")
        yield Return(i)

    result = await RE(adaptive_scan(0.2))
    # exp(-x^2/2) >= 0.2 for x = 0, 1; < 0.2 at x = 2
    assert result.plan_result == 2
    assert [e["data"]["motor"] for e in checker.of("event")] == [0.0, 1.0, 2.0]


async def test_sub_plan_results_and_errors_reach_the_plan_that_asked_at_any_depth(
    RE: RunEngine,
) -> None:
    async def leaf(n: int):
        yield Msg("null")
        if n < 0:
            raise ValueError("negative")
        yield Return(n * 10)

    def middle(n: int):  # a plain generator in between
        value = yield leaf(n)
        return value + 1

    async def top():
        a = yield middle(2)
        try:
            yield middle(-1)
        except ValueError as exc:
            b = str(exc)
        yield Return((a, b))

    result = await RE(top())
    assert result.plan_result == (21, "negative")


async def test_bluesky_plan_yielding_bluesky_msgs_runs_unchanged(
    RE: RunEngine, checker: DocChecker
) -> None:
    motor, det = Signal("motor"), Signal("det", 2.0)
    result = await RE(bp.scan([det], motor, -1, 1, 5))
    assert result.exit_status == "success"
    assert [e["data"]["motor"] for e in checker.of("event")] == [-1.0, -0.5, 0.0, 0.5, 1.0]
    start = checker.of("start")[0]
    assert start["plan_name"] == "scan"
    assert start["motors"] == ("motor",)  # bluesky's scan records a tuple, kept as it is


async def test_bluesky_stub_plans_and_msgs_compose_with_acq_plans(RE: RunEngine) -> None:
    det = Signal("det", 5.0)

    async def plan():
        reading = yield bps_bluesky.rd(det)
        raw = yield BlueskyMsg("read", det)
        yield Return((reading, raw["det"]["value"]))

    result = await RE(plan())
    assert result.plan_result == (5.0, 5.0)


async def test_a_list_of_messages_is_a_plan(RE: RunEngine, checker: DocChecker) -> None:
    await RE([Msg("open_run"), Msg("close_run")])
    assert checker.names() == ["start", "stop"]


@pytest.mark.parametrize(
    ("not_a_plan", "words"),
    [
        (step_scan, "call it"),
        (asyncio.sleep(0), "awaitable"),
        (42, "not a plan"),
    ],
)
async def test_something_that_is_not_a_plan_is_refused_clearly(not_a_plan: Any, words: str) -> None:
    RE = RunEngine()
    try:
        with pytest.raises(PlanError, match=words):
            await RE(not_a_plan)
    finally:
        if asyncio.iscoroutine(not_a_plan):
            await not_a_plan
    assert RE.state is State.IDLE


async def test_yielding_something_that_is_not_a_message_raises_in_the_plan() -> None:
    RE = RunEngine()

    async def plan():
        try:
            yield 5
        except PlanError as exc:
            yield Return(str(exc))

    result = await RE(plan())
    assert "yielded 5" in result.plan_result


async def test_unknown_command_names_the_message() -> None:
    RE = RunEngine()
    with pytest.raises(UnknownCommandError, match="'teleport'"):
        await RE([Msg("teleport", None)])


async def test_awaiting_the_engine_while_it_runs_a_plan_is_refused() -> None:
    RE = RunEngine()
    started = asyncio.Event()
    release = asyncio.Event()

    async def slow():
        started.set()
        yield Msg("await", release.wait())

    first = asyncio.create_task(RE(slow()))
    await started.wait()
    with pytest.raises(StateError, match="one plan at a time"):
        await RE([Msg("null")])
    release.set()
    assert (await first).exit_status == "success"


async def test_several_engines_run_concurrently_on_one_loop() -> None:
    engines = [RunEngine() for _ in range(3)]
    docs: list[list[str]] = [[], [], []]
    for engine, names in zip(engines, docs, strict=True):
        engine.subscribe(lambda n, d, names=names: names.append(n), thread=False)

    def plan(i: int):
        yield Msg("open_run", which=i)
        yield Msg("sleep", None, 0.01)
        yield Msg("close_run")

    results = await asyncio.gather(*(e(plan(i)) for i, e in enumerate(engines)))
    assert all(r.exit_status == "success" for r in results)
    assert docs == [["start", "stop"]] * 3


async def test_custom_command_registry() -> None:
    RE = RunEngine()
    calls: list[Any] = []

    async def handler(msg: Any) -> str:
        calls.append(msg.args)
        return "done"

    RE.register_command("beep", handler)
    assert "beep" in RE.commands

    async def plan():
        reply = yield Msg("beep", None, 440)
        yield Return(reply)

    assert (await RE(plan())).plan_result == "done"
    assert calls == [(440,)]
    RE.unregister_command("beep")
    with pytest.raises(UnknownCommandError):
        await RE([Msg("beep")])


@pytest.mark.parametrize("replayed", [True, False])
async def test_a_custom_command_is_replayed_on_resume_as_its_flag_says(
    RE: RunEngine, checker: DocChecker, replayed: bool
) -> None:
    calls: list[Any] = []
    RE.register_command("beep", lambda msg: calls.append(msg.args), replayed=replayed)
    plan = [
        Msg("open_run"),
        Msg("checkpoint"),
        Msg("beep", None, 440),
        Msg("pause"),  # resume rewinds to the checkpoint and replays what was logged since
        Msg("close_run"),
    ]
    with pytest.raises(RunEngineInterrupted):
        await RE(plan)
    assert calls == [(440,)]
    result = await RE.resume()
    assert result.exit_status == "success"
    assert calls == [(440,)] * (2 if replayed else 1)
    assert checker.names() == ["start", "stop"]


@pytest.mark.parametrize("interruptible", [True, False])
async def test_a_pause_cuts_a_custom_command_short_only_if_it_is_interruptible(
    RE: RunEngine, interruptible: bool
) -> None:
    started, gate = asyncio.Event(), asyncio.Event()
    outcome: list[str] = []

    async def slow(msg: Any) -> None:
        started.set()
        try:
            await gate.wait()
        except asyncio.CancelledError:
            outcome.append("cut short")
            raise
        outcome.append("finished")

    RE.register_command("slow", slow, interruptible=interruptible)
    task = asyncio.create_task(RE([Msg("open_run"), Msg("slow"), Msg("close_run")]))
    async with asyncio.timeout(5):
        await started.wait()
        RE.request_pause()
        for _ in range(5):  # give a cancellation every chance to land
            await asyncio.sleep(0)
        assert outcome == (["cut short"] if interruptible else [])
        gate.set()
        with pytest.raises(RunEngineInterrupted):
            await task
    assert outcome == (["cut short"] if interruptible else ["finished"])
    await RE.abort("the test is over")


async def test_the_plan_runs_in_the_awaiting_task_on_the_callers_loop() -> None:
    RE = RunEngine()
    outer = asyncio.current_task()
    seen: list[Any] = []

    async def probe() -> None:
        seen.append((asyncio.current_task(), asyncio.get_running_loop()))

    await RE([Msg("await", probe)])
    assert seen == [(outer, asyncio.get_running_loop())]


# -- bluesky's RunEngine settings ------------------------------------------------------------


async def test_re_rewindable_is_the_default_of_every_call_and_the_message_sets_it(
    RE: RunEngine,
) -> None:
    assert RE.rewindable is True
    RE.rewindable = False

    async def plan():
        seen = yield Msg("rewindable", None, None)  # None only asks
        now = yield Msg("rewindable", None, True)
        yield Return((seen, now))

    assert (await RE(plan())).plan_result == (False, True)
    assert RE.rewindable is True  # as in bluesky, the message changed the engine's setting


async def test_a_pause_with_re_rewindable_false_resumes_without_a_replay(
    RE: RunEngine,
) -> None:
    det = Signal("det")
    RE.rewindable = False
    plan = [Msg("trigger", det), Msg("pause"), Msg("null")]
    with pytest.raises(RunEngineInterrupted):
        await RE(plan)
    triggered = det.log.count(("trigger", None))
    await RE.resume()
    assert det.log.count(("trigger", None)) == triggered == 1  # nothing replayed


async def test_request_pause_while_idle_is_a_state_error(RE: RunEngine) -> None:
    with pytest.raises(StateError, match="idle"):
        RE.request_pause()
    with pytest.raises(StateError, match="idle"):
        RE.request_pause(defer=True)


async def test_deferred_pause_requested_until_a_checkpoint_takes_it(RE: RunEngine) -> None:
    seen: list[bool] = []

    async def plan():
        yield Msg("null")
        RE.request_pause(defer=True)
        seen.append(RE.deferred_pause_requested)
        yield Msg("null")  # no checkpoint follows: the request is left over

    assert RE.deferred_pause_requested is False
    await RE(plan())
    assert seen == [True]
    assert RE.deferred_pause_requested is True  # as bluesky reports it after the call
    await RE([Msg("null")])
    assert RE.deferred_pause_requested is False  # a new call starts clean


async def test_scan_id_source_sync_or_async_gives_the_scan_id(checker: DocChecker) -> None:
    async def facility_counter(md: dict[str, Any]) -> int:
        return 314159

    for source, expected in ((lambda md: 42, 42), (facility_counter, 314159)):
        RE = RunEngine(catalog=None, scan_id_source=source)
        RE.subscribe(checker, thread=False)
        await RE([Msg("open_run"), Msg("close_run")])
        assert RE.md["scan_id"] == expected
        assert checker.of("start")[-1]["scan_id"] == expected


async def test_a_scan_id_source_that_returns_no_integer_is_refused_before_the_start(
    checker: DocChecker,
) -> None:
    RE = RunEngine(catalog=None, scan_id_source=lambda md: "seven")
    RE.subscribe(checker, thread=False)
    with pytest.raises(MetadataError, match="scan_id_source returned 'seven'"):
        await RE([Msg("open_run"), Msg("close_run")])
    assert checker.of("start") == []


async def test_md_normalizer_rewrites_the_metadata_before_it_is_checked(
    RE: RunEngine, checker: DocChecker
) -> None:
    RE.md_normalizer = lambda md: {key.lower(): value for key, value in md.items()}
    await RE([Msg("open_run", TEST=1), Msg("close_run")])
    start = checker.of("start")[0]
    assert start["test"] == 1
    assert "TEST" not in start


async def test_re_md_records_the_library_versions_as_bluesky_does() -> None:
    RE = RunEngine(catalog=None)
    assert RE.md["versions"]["bluesky"] == bluesky.__version__
    assert RE.md["versions"]["acq"]


async def test_max_depth_refuses_a_call_made_too_deep(RE: RunEngine) -> None:
    RE.max_depth = 0
    with pytest.raises(RuntimeError, match="max_depth"):
        await RE([Msg("null")])
    RE.max_depth = None
    assert (await RE([Msg("null")])).exit_status == "success"


async def test_verbose_logs_each_runs_start_and_stop(
    RE: RunEngine, caplog: pytest.LogCaptureFixture
) -> None:
    RE.verbose = True
    try:
        assert RE.verbose
        with caplog.at_level(logging.INFO, logger="acq.engine"):
            await RE([Msg("open_run"), Msg("close_run")])
    finally:
        RE.verbose = False
    assert not RE.verbose
    assert any("opened" in r.getMessage() for r in caplog.records)
    assert any("closed: success" in r.getMessage() for r in caplog.records)


async def test_bluesky_raise_if_interrupted_keyword_warns_and_is_not_metadata(
    RE: RunEngine, checker: DocChecker
) -> None:
    with pytest.warns(UserWarning, match="raise_if_interrupted"):
        await RE([Msg("open_run"), Msg("close_run")], raise_if_interrupted=True)
    assert "raise_if_interrupted" not in checker.of("start")[0]


async def test_waiting_hook_sees_the_statuses_of_each_wait_then_none(RE: RunEngine) -> None:
    seen: list[Any] = []
    RE.waiting_hook = seen.append
    status = ManualStatus()
    motor = Signal("motor")
    motor.set = lambda value: status  # type: ignore[method-assign]

    async def plan():
        yield Msg("set", motor, 1, group="A")
        asyncio.get_running_loop().call_soon(status.finish)
        yield Msg("wait", None, "A")

    await RE(plan())
    assert seen == [{status}, None]


# -- RE(plan) without await ---------------------------------------------------------------------


def _recording_plan(steps: list[str]) -> Any:
    def measure_twice() -> Any:
        steps.append("started")
        yield Msg("null")

    return measure_twice()


async def test_re_without_await_runs_nothing_and_its_repr_says_to_await() -> None:
    RE = RunEngine(catalog=None)
    steps: list[str] = []
    call = RE(_recording_plan(steps))
    assert "await RE(...)" in repr(call)
    assert "measure_twice" in repr(call)
    assert steps == []
    assert RE.state is State.IDLE
    result = await call
    assert steps == ["started"]
    assert result.exit_status == "success"


async def test_a_call_never_awaited_warns_naming_its_plan() -> None:
    import gc

    RE = RunEngine(catalog=None)
    steps: list[str] = []
    with pytest.warns(RuntimeWarning, match=r"RE\(measure_twice\) was never awaited"):
        RE(_recording_plan(steps))  # dropped at once: the warning comes from its finalizer
    gc.collect()
    assert steps == []


async def test_the_call_is_a_coroutine_to_asyncio() -> None:
    RE = RunEngine(catalog=None)
    steps: list[str] = []
    call = RE(_recording_plan(steps))
    assert asyncio.iscoroutine(call)
    assert (await asyncio.create_task(call)).exit_status == "success"


def test_re_run_says_how_to_run_a_plan() -> None:
    RE = RunEngine(catalog=None)
    with pytest.raises(AttributeError, match=r"await RE\(plan\)"):
        RE.run(None)  # type: ignore[attr-defined]
    with pytest.raises(AttributeError, match=r"no attribute 'frobnicate'$"):
        _ = RE.frobnicate  # type: ignore[attr-defined]
