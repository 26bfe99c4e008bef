"""Pause, resume, stop, abort, halt and cancellation, driven against a motor that moves.

The simulated motor moves over (loop) time, so a move takes about half a second and an
interruption that lands while the plan waits for it is observable: the motor is stopped
short of its target. Every document goes through the ``checker`` fixture (schema,
Start..Stop exactly once, seq_num without gap or duplicate).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Generator, Iterator
from typing import Any

import pytest
from acq.devices.sim import Motor, SimBeamline, sim_beamline
from ophyd_async.core import observe_value
from support import Detector, DocChecker, Signal

from acq import (
    Msg,
    RunAborted,
    RunEngine,
    RunEngineInterrupted,
    RunResult,
    State,
    StateError,
)

VELOCITY = 1.0  # mm/s
STEP = 0.5  # mm between points: a move takes 0.5 s
POSITIONS = [STEP, 2 * STEP, 3 * STEP]
DEADLINE = 10.0  # seconds any one test may take


# -- helpers ---------------------------------------------------------------------------------


async def until(predicate: Callable[[], bool], what: str, seconds: float = DEADLINE) -> None:
    """Wait (polling, with a deadline) until ``predicate()`` is true."""
    try:
        async with asyncio.timeout(seconds):
            while not predicate():  # noqa: ASYNC110 -- a plain condition, no event to wait on
                await asyncio.sleep(0.002)
    except TimeoutError:
        pytest.fail(f"gave up after {seconds} s waiting until {what}")


async def readback(bl: SimBeamline) -> float:
    return await bl.x.user_readback.get_value()


class Log:
    """What the plan did: Python-level steps, and the 'mark' messages the engine handled."""

    def __init__(self) -> None:
        self.steps: list[Any] = []
        self.marks: list[Any] = []


@pytest.fixture
async def bl() -> SimBeamline:
    return await sim_beamline(velocity=VELOCITY)


@pytest.fixture(autouse=True)
def collect_garbage() -> Iterator[None]:
    """Finalize what each test leaves (loops, tasks, plans) before the next one starts.

    Finalizers that happen to run while pytest parses source to report a failure can trip
    a CPython 3.11 bug ("AST constructor recursion depth mismatch") that ends the session.
    """
    gc.collect()
    yield
    gc.collect()


@pytest.fixture(autouse=True)
async def one_line_loop_errors() -> None:
    """Report the loop's unhandled errors (e.g. "Task exception was never retrieved") in one
    line, without formatting a traceback.

    Such a report comes from a finalizer, at any moment; formatting a traceback there calls
    ``ast.parse`` and, when the finalizer runs while pytest itself parses source to report a
    failure, trips a CPython 3.11 bug ("AST constructor recursion depth mismatch") that
    crashes the whole session. The engine's own failing to retrieve a status is tested in
    ``test_a_move_the_engine_stopped_leaves_no_unretrieved_task_exception``.
    """

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        logging.getLogger("asyncio").error(
            "%s: %r", context.get("message"), context.get("exception")
        )

    asyncio.get_running_loop().set_exception_handler(handler)


@pytest.fixture(autouse=True)
async def end_what_is_left(RE: RunEngine) -> AsyncIterator[None]:
    """A test that failed half-way may leave a paused plan: end it, so the run is closed."""
    yield
    if RE.state is State.PAUSED:
        await RE.abort("the test ended with the plan paused")
    if RE.state is not State.IDLE:
        await until(lambda: RE.state is State.IDLE, "the engine is idle", seconds=2)


@pytest.fixture
def log(RE: RunEngine) -> Log:
    """``Msg('mark', value)`` is recorded by the engine (so we see cleanup messages run)."""
    result = Log()
    RE.register_command("mark", lambda msg: result.marks.append(msg.obj))
    return result


@pytest.fixture
def staged() -> Detector:
    """A device the plan stages (its log shows stage/unstage)."""
    return Detector("staged_det")


def scan_plan(
    bl: SimBeamline,
    positions: list[float],
    log: Log,
    staged: Detector,
    *,
    checkpoint: bool = True,
    pause_at: float | None = None,
    rewindable: bool = True,
) -> Generator[Msg, Any, None]:
    """Stage, open a run, per point: checkpoint, move and wait, one event; cleanup marks."""
    yield Msg("stage", staged)
    yield Msg("open_run", plan_name="scan_plan")
    if not rewindable:
        yield Msg("rewindable", None, False)
    try:
        for x in positions:
            if checkpoint:
                yield Msg("checkpoint")
            yield Msg("set", bl.x, x, group="move")
            log.steps.append(("moving", x))
            if x == pause_at:
                yield Msg("pause")
            yield Msg("wait", group="move")
            yield Msg("create", name="primary")
            yield Msg("read", bl.x)
            yield Msg("read", bl.det)
            yield Msg("save")
    finally:
        yield Msg("mark", "cleanup")
    yield Msg("close_run")
    yield Msg("unstage", staged)


async def start_and_catch_mid_move(
    RE: RunEngine, bl: SimBeamline, log: Log, staged: Detector, **kwargs: Any
) -> asyncio.Task[RunResult]:
    """Run the scan in a task; return once the plan waits for the second move."""
    task = asyncio.create_task(RE(scan_plan(bl, POSITIONS, log, staged, **kwargs)))
    await until(lambda: ("moving", POSITIONS[1]) in log.steps or task.done(), "the 2nd move")
    assert not task.done()
    # the readback has left the first point: the motor is visibly on its way
    await until_moving(bl, POSITIONS[0])
    return task


async def until_moving(bl: SimBeamline, start: float) -> None:
    """Wait until the motor's readback has left ``start``."""
    await until_beyond(bl.x, start)


async def until_beyond(motor: Motor, start: float) -> None:
    async with asyncio.timeout(DEADLINE):
        async for position in observe_value(motor.user_readback):
            if position > start:
                return


async def pause_mid_move(
    RE: RunEngine, bl: SimBeamline, log: Log, staged: Detector, **kwargs: Any
) -> None:
    """Pause now while the plan waits for the second move; return when paused."""
    task = await start_and_catch_mid_move(RE, bl, log, staged, **kwargs)
    RE.request_pause(defer=False)
    with pytest.raises(RunEngineInterrupted):
        await task
    assert RE.state is State.PAUSED


def assert_one_complete_run(checker: DocChecker, positions: list[float]) -> None:
    names = checker.names()
    assert names.count("start") == 1
    assert names.count("stop") == 1
    assert names[0] == "start"
    assert names[-1] == "stop"
    events = checker.of("event")
    assert [e["seq_num"] for e in events] == list(range(1, len(positions) + 1))
    assert [e["data"]["x"] for e in events] == positions
    stop = checker.of("stop")[0]
    assert stop["num_events"] == {"primary": len(positions)}
    assert stop["exit_status"] == "success"


def the_stop(checker: DocChecker) -> dict[str, Any]:
    stops = checker.of("stop")
    assert len(stops) == 1, stops
    assert checker.names().count("start") == 1
    return stops[0]


# -- pause and resume ------------------------------------------------------------------------


async def test_pause_now_stops_the_motor_short_and_resume_completes_the_run(
    RE: RunEngine, checker: DocChecker, bl: SimBeamline, log: Log, staged: Detector
) -> None:
    async with asyncio.timeout(DEADLINE):
        await pause_mid_move(RE, bl, log, staged)
        position = await readback(bl)
        assert POSITIONS[0] < position < POSITIONS[1], "the move was not stopped short"
        assert checker.names().count("stop") == 0  # the run stays open while paused
        assert len(checker.of("event")) == 1

        result = await RE.resume()

    assert result.exit_status == "success"
    assert RE.state is State.IDLE
    assert await readback(bl) == POSITIONS[-1]
    assert_one_complete_run(checker, POSITIONS)
    assert log.marks == ["cleanup"]
    assert staged.log == [("stage", None), ("unstage", None)]


async def test_deferred_pause_waits_for_the_next_checkpoint_and_loses_no_point(
    RE: RunEngine, checker: DocChecker, bl: SimBeamline, log: Log, staged: Detector
) -> None:
    async with asyncio.timeout(DEADLINE):
        task = await start_and_catch_mid_move(RE, bl, log, staged)
        RE.request_pause(defer=True)
        with pytest.raises(RunEngineInterrupted, match="checkpoint"):
            await task
        assert RE.state is State.PAUSED
        # the move in flight finished and its point was saved before the checkpoint
        assert await readback(bl) == POSITIONS[1]
        assert [e["data"]["x"] for e in checker.of("event")] == POSITIONS[:2]

        result = await RE.resume()

    assert result.exit_status == "success"
    assert_one_complete_run(checker, POSITIONS)


async def test_pause_message_from_the_plan_pauses_and_resume_completes(
    RE: RunEngine, checker: DocChecker, bl: SimBeamline, log: Log, staged: Detector
) -> None:
    async with asyncio.timeout(DEADLINE):
        with pytest.raises(RunEngineInterrupted):
            await RE(scan_plan(bl, POSITIONS, log, staged, pause_at=POSITIONS[1]))
        assert RE.state is State.PAUSED
        current = asyncio.current_task()
        assert current is not None
        left_cancelling = current.cancelling()
        assert POSITIONS[0] <= await readback(bl) < POSITIONS[1]

        result = await RE.resume()

    assert result.exit_status == "success"
    assert_one_complete_run(checker, POSITIONS)
    # the engine must not leave a cancellation request behind on the task that awaited
    # it (it would turn that task's next unrelated await into a CancelledError)
    assert left_cancelling == 0


async def test_pause_message_from_a_plan_of_instant_devices_pauses_cleanly(
    RE: RunEngine, checker: DocChecker
) -> None:
    """Msg('pause') with devices whose stop() returns at once (nothing awaits)."""
    motor, det = Signal("m"), Signal("d")

    def plan() -> Generator[Msg, Any, None]:
        yield Msg("open_run")
        for i in range(3):
            yield Msg("checkpoint")
            yield Msg("set", motor, i, group="g")
            if i == 1:
                yield Msg("pause")
            yield Msg("wait", group="g")
            yield Msg("create", name="primary")
            yield Msg("read", motor)
            yield Msg("read", det)
            yield Msg("save")
        yield Msg("close_run")

    async with asyncio.timeout(DEADLINE):
        with pytest.raises(RunEngineInterrupted):
            await RE(plan())
        assert RE.state is State.PAUSED
        result = await RE.resume()
    assert result.exit_status == "success"
    assert [e["data"]["m"] for e in checker.of("event")] == [0, 1, 2]


async def test_pause_resume_many_times_keeps_every_point_once(
    RE: RunEngine, checker: DocChecker
) -> None:
    motor, det = Signal("m"), Signal("d")
    points = list(range(6))
    in_sleep = asyncio.Event()

    async def plan() -> Any:
        yield Msg("open_run")
        for i in points:
            yield Msg("checkpoint")
            yield Msg("set", motor, i)
            yield Msg("await", _set_event, in_sleep)
            yield Msg("sleep", None, 0.05)
            yield Msg("create", name="primary")
            yield Msg("read", motor)
            yield Msg("read", det)
            yield Msg("save")
        yield Msg("close_run")

    pauses = 0
    async with asyncio.timeout(DEADLINE):
        task = asyncio.create_task(RE(plan()))
        while True:
            await in_sleep.wait()
            in_sleep.clear()
            if task.done() or pauses == 3:
                break
            RE.request_pause()
            with pytest.raises(RunEngineInterrupted):
                await task
            pauses += 1
            task = asyncio.create_task(RE.resume())
        result = await task
    assert pauses == 3
    assert result.exit_status == "success"
    assert [e["data"]["m"] for e in checker.of("event")] == points
    assert [e["seq_num"] for e in checker.of("event")] == [i + 1 for i in points]


async def _set_event(event: asyncio.Event) -> None:
    event.set()


async def test_request_pause_from_another_thread_interrupts_a_long_wait(
    RE: RunEngine, checker: DocChecker
) -> None:
    """request_pause is documented as safe from callbacks, which run in worker threads.

    A pause now must cut a long ``sleep`` short even when asked from another thread.
    """
    entered = asyncio.Event()
    plan = [
        Msg("open_run"),
        Msg("checkpoint"),
        Msg("await", _set_event, entered),
        Msg("sleep", None, 30),
        Msg("close_run"),
    ]
    task = asyncio.create_task(RE(plan))
    try:
        async with asyncio.timeout(DEADLINE):
            await entered.wait()
        # asked once the loop sleeps (nothing else wakes it: the engine waits for the
        # 30 s sleep only), as a callback's thread would ask at any moment
        threading.Timer(0.1, RE.request_pause).start()
        try:
            async with asyncio.timeout(5):
                with pytest.raises(RunEngineInterrupted):
                    await asyncio.shield(task)
        except TimeoutError:
            pytest.fail(
                "RE.request_pause() called from another thread did not cut the plan's "
                "30 s sleep short within 5 s (the loop was never woken up)"
            )
        assert RE.state is State.PAUSED
    finally:
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        if RE.state is State.PAUSED:
            await RE.abort("end of test")
        await until(lambda: RE.state is State.IDLE, "the engine is idle")


# -- ending a paused plan --------------------------------------------------------------------


async def test_stop_after_pause_ends_with_success_and_runs_the_plans_cleanup(
    RE: RunEngine, checker: DocChecker, bl: SimBeamline, log: Log, staged: Detector
) -> None:
    async with asyncio.timeout(DEADLINE):
        await pause_mid_move(RE, bl, log, staged)
        result = await RE.stop()
        await until(lambda: RE.state is State.IDLE, "the engine is idle")
    assert result.exit_status == "success"
    stop = the_stop(checker)
    assert stop["exit_status"] == "success"
    assert log.marks == ["cleanup"]
    assert staged.log[-1] == ("unstage", None)
    assert POSITIONS[0] < await readback(bl) < POSITIONS[1]  # not moved on after the pause


async def test_abort_after_pause_ends_with_abort_and_the_reason_and_runs_cleanup(
    RE: RunEngine, checker: DocChecker, bl: SimBeamline, log: Log, staged: Detector
) -> None:
    async with asyncio.timeout(DEADLINE):
        await pause_mid_move(RE, bl, log, staged)
        result = await RE.abort("why")
        await until(lambda: RE.state is State.IDLE, "the engine is idle")
    assert result.exit_status == "abort"
    assert result.reason == "why"
    stop = the_stop(checker)
    assert (stop["exit_status"], stop["reason"]) == ("abort", "why")
    assert log.marks == ["cleanup"]
    assert staged.log[-1] == ("unstage", None)
    assert not staged.staged


async def test_halt_after_pause_skips_the_plans_cleanup_but_unstages(
    RE: RunEngine, checker: DocChecker, bl: SimBeamline, log: Log, staged: Detector
) -> None:
    async with asyncio.timeout(DEADLINE):
        await pause_mid_move(RE, bl, log, staged)
        result = await RE.halt()
        await until(lambda: RE.state is State.IDLE, "the engine is idle")
    assert result.exit_status == "abort"
    stop = the_stop(checker)
    assert stop["exit_status"] == "abort"
    assert "halt" in stop["reason"]
    assert log.marks == []  # the plan's cleanup messages did not run
    assert staged.log == [("stage", None), ("unstage", None)]  # the engine unstaged it


@pytest.mark.parametrize("end", ["stop", "abort", "halt"])
async def test_awaiting_an_ending_returns_once_the_engine_is_idle_and_subscribers_are_served(
    end: str, RE: RunEngine, checker: DocChecker, bl: SimBeamline, log: Log, staged: Detector
) -> None:
    """``await RE.stop()/abort()/halt()`` of a paused plan: done means done.

    As for ``await RE(...)``, the awaited call returns once every subscriber has taken
    the run's documents and the engine can take the next plan at once.
    """
    seen: list[str] = []

    async def slow_subscriber(name: str, doc: dict[str, Any]) -> None:
        await asyncio.sleep(0.01)
        seen.append(name)

    RE.subscribe(slow_subscriber)
    async with asyncio.timeout(DEADLINE):
        await pause_mid_move(RE, bl, log, staged)
        ending = {"stop": RE.stop, "abort": lambda: RE.abort("why"), "halt": RE.halt}[end]
        try:
            await ending()
            assert RE.state is State.IDLE, "awaiting the ending returned before the end"
            assert seen[-1:] == ["stop"], "a subscriber had not yet taken the Stop"
            next_run = await RE([Msg("open_run"), Msg("close_run")])
            assert next_run.exit_status == "success"
        finally:
            await until(lambda: RE.state is State.IDLE, "the engine is idle")


# -- ending a running plan (no pause first) ----------------------------------------------------


async def test_abort_while_running_raises_run_aborted_with_the_result(
    RE: RunEngine, checker: DocChecker, bl: SimBeamline, log: Log, staged: Detector
) -> None:
    async with asyncio.timeout(DEADLINE):
        task = await start_and_catch_mid_move(RE, bl, log, staged)
        ending = RE.abort("beam lost")
        with pytest.raises(RunAborted) as info:
            await task
        from_ending = await ending
    assert info.value.result.exit_status == "abort"
    assert info.value.result.reason == "beam lost"
    assert from_ending.exit_status == "abort"
    stop = the_stop(checker)
    assert (stop["exit_status"], stop["reason"]) == ("abort", "beam lost")
    assert log.marks == ["cleanup"]
    assert staged.log[-1] == ("unstage", None)
    assert POSITIONS[0] < await readback(bl) < POSITIONS[1]  # the mover was stopped
    assert RE.state is State.IDLE


async def test_stop_while_running_returns_a_success_result(
    RE: RunEngine, checker: DocChecker, bl: SimBeamline, log: Log, staged: Detector
) -> None:
    async with asyncio.timeout(DEADLINE):
        task = await start_and_catch_mid_move(RE, bl, log, staged)
        ending = RE.stop()
        result = await task
        from_ending = await ending
    assert result.exit_status == "success"
    assert from_ending.exit_status == "success"
    assert the_stop(checker)["exit_status"] == "success"
    assert log.marks == ["cleanup"]
    assert staged.log[-1] == ("unstage", None)
    assert [e["data"]["x"] for e in checker.of("event")] == POSITIONS[:1]
    assert RE.state is State.IDLE


async def test_halt_while_running_skips_cleanup_and_raises_run_aborted(
    RE: RunEngine, checker: DocChecker, bl: SimBeamline, log: Log, staged: Detector
) -> None:
    async with asyncio.timeout(DEADLINE):
        task = await start_and_catch_mid_move(RE, bl, log, staged)
        RE.halt()
        with pytest.raises(RunAborted) as info:
            await task
    assert info.value.result.exit_status == "abort"
    assert the_stop(checker)["exit_status"] == "abort"
    assert log.marks == []
    assert staged.log == [("stage", None), ("unstage", None)]
    assert POSITIONS[0] < await readback(bl) < POSITIONS[1]


async def test_pause_before_the_first_checkpoint_pauses_and_resume_replays_from_the_start(
    RE: RunEngine, checker: DocChecker, bl: SimBeamline, log: Log, staged: Detector
) -> None:
    # as in bluesky, every call starts with an implicit checkpoint: a plan without one
    # (an early Ctrl-C in count, say) is paused, not lost
    async with asyncio.timeout(DEADLINE):
        task = await start_and_catch_mid_move(RE, bl, log, staged, checkpoint=False)
        RE.request_pause(defer=False)
        with pytest.raises(RunEngineInterrupted):
            await task
        assert RE.state is State.PAUSED
        result = await RE.resume()
    assert result.exit_status == "success"
    assert_one_complete_run(checker, POSITIONS)
    assert RE.state is State.IDLE


async def test_pause_after_clear_checkpoint_becomes_an_abort_saying_so(
    RE: RunEngine, checker: DocChecker
) -> None:
    sleeping = asyncio.Event()

    async def plan() -> AsyncGenerator[Msg, Any]:
        yield Msg("open_run")
        yield Msg("clear_checkpoint")
        sleeping.set()
        yield Msg("sleep", None, DEADLINE)

    async with asyncio.timeout(DEADLINE):
        task = asyncio.create_task(RE(plan()))
        await sleeping.wait()
        RE.request_pause(defer=False)
        with pytest.raises(RunAborted) as info:
            await task
    assert info.value.result.exit_status == "abort"
    assert "no checkpoint" in info.value.result.reason
    stop = the_stop(checker)
    assert stop["exit_status"] == "abort"
    assert "no checkpoint" in stop["reason"]
    assert RE.state is State.IDLE


async def test_a_pause_message_pauses_at_that_message_even_as_the_last_one(
    RE: RunEngine, checker: DocChecker
) -> None:
    seen: list[str] = []

    async def plan() -> AsyncGenerator[Msg, Any]:
        yield Msg("open_run")
        yield Msg("close_run")
        seen.append("before pause")
        yield Msg("pause")

    async with asyncio.timeout(DEADLINE):
        with pytest.raises(RunEngineInterrupted):
            await RE(plan())
        assert RE.state is State.PAUSED
        assert seen == ["before pause"]
        result = await RE.resume()
    assert result.exit_status == "success"
    assert checker.names() == ["start", "stop"]


# -- wrong state ------------------------------------------------------------------------------


async def test_resume_and_endings_when_idle_are_state_errors(RE: RunEngine) -> None:
    with pytest.raises(StateError, match="resume"):
        await RE.resume()
    for end in (RE.stop, RE.abort, RE.halt):
        with pytest.raises(StateError, match="idle"):
            end()
    assert RE.state is State.IDLE


async def test_running_another_plan_while_paused_is_a_state_error(
    RE: RunEngine, checker: DocChecker, bl: SimBeamline, log: Log, staged: Detector
) -> None:
    async with asyncio.timeout(DEADLINE):
        await pause_mid_move(RE, bl, log, staged)
        with pytest.raises(StateError, match="paused"):
            await RE([Msg("open_run"), Msg("close_run")])
        assert RE.state is State.PAUSED  # the paused plan is untouched
        result = await RE.resume()
    assert result.exit_status == "success"
    assert_one_complete_run(checker, POSITIONS)


async def test_state_observer_sees_running_pausing_paused_running_idle(
    RE: RunEngine, checker: DocChecker, bl: SimBeamline, log: Log, staged: Detector
) -> None:
    changes: list[tuple[State, State]] = []
    RE.observe_state(lambda old, new: changes.append((old, new)))
    async with asyncio.timeout(DEADLINE):
        await pause_mid_move(RE, bl, log, staged)
        await RE.resume()
    S = State
    assert changes == [
        (S.IDLE, S.RUNNING),
        (S.RUNNING, S.PAUSING),
        (S.PAUSING, S.PAUSED),
        (S.PAUSED, S.RUNNING),
        (S.RUNNING, S.IDLE),
    ]


# -- cancellation -------------------------------------------------------------------------------


async def test_cancelling_the_awaiting_task_aborts_the_run_and_cleans_up(
    RE: RunEngine, checker: DocChecker, bl: SimBeamline, log: Log, staged: Detector
) -> None:
    async with asyncio.timeout(DEADLINE):
        task = await start_and_catch_mid_move(RE, bl, log, staged)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    stop = the_stop(checker)
    assert stop["exit_status"] == "abort"
    assert "cancel" in stop["reason"]
    assert log.marks == ["cleanup"]
    assert staged.log == [("stage", None), ("unstage", None)]
    assert POSITIONS[0] < await readback(bl) < POSITIONS[1]  # the moving motor was stopped
    assert RE.state is State.IDLE


async def test_cancelling_the_task_awaiting_resume_aborts_the_run_and_cleans_up(
    RE: RunEngine, checker: DocChecker, bl: SimBeamline, log: Log, staged: Detector
) -> None:
    async with asyncio.timeout(DEADLINE):
        await pause_mid_move(RE, bl, log, staged)
        log.steps.clear()
        task = asyncio.create_task(RE.resume())
        await until(lambda: ("moving", POSITIONS[2]) in log.steps, "the 3rd move")
        await until_moving(bl, POSITIONS[1])
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    stop = the_stop(checker)
    assert stop["exit_status"] == "abort"
    assert "cancel" in stop["reason"]
    assert log.marks == ["cleanup"]
    assert staged.log == [("stage", None), ("unstage", None)]
    assert POSITIONS[1] < await readback(bl) < POSITIONS[2]
    assert RE.state is State.IDLE


async def test_a_move_the_engine_stopped_leaves_no_unretrieved_task_exception(
    RE: RunEngine, checker: DocChecker
) -> None:
    """Pausing stops the motor, which fails its ``set`` status; the engine, which filed that
    status in a wait group and then forgot it, must consume its outcome -- otherwise
    asyncio reports "Task exception was never retrieved" with a traceback (in a Jupyter
    log, after every pause or abort of a move)."""
    loop = asyncio.get_running_loop()
    reports: list[str] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: reports.append(context["message"]))

    async def pause_a_move_then_abort() -> None:
        motor = Motor("m", velocity=VELOCITY)
        await motor.connect()
        plan = [
            Msg("open_run"),
            Msg("checkpoint"),
            Msg("set", motor, 1.0, group="move"),
            Msg("wait", group="move"),
            Msg("close_run"),
        ]
        task = asyncio.create_task(RE(plan))
        await until_beyond(motor, 0.0)
        RE.request_pause()
        with pytest.raises(RunEngineInterrupted):
            await task
        await RE.abort("done")
        await until(lambda: RE.state is State.IDLE, "the engine is idle")

    try:
        await pause_a_move_then_abort()
        gc.collect()  # the stopped move's status (and its task) are garbage now
        await asyncio.sleep(0)
    finally:
        loop.set_exception_handler(previous)
    assert the_stop(checker)["exit_status"] == "abort"
    assert not [r for r in reports if "never retrieved" in r], reports


# -- rewind -------------------------------------------------------------------------------------


async def test_replay_cache_stays_small_over_many_checkpointed_points(
    RE: RunEngine, checker: DocChecker
) -> None:
    motor, det = Signal("m"), Signal("d")
    n = 500
    sizes: list[int] = []

    async def report_size() -> None:
        call = RE._execution  # pyright: ignore[reportPrivateUsage]
        assert call is not None
        sizes.append(len(call.ctx.replay.messages))

    def plan() -> Generator[Msg, Any, None]:
        yield Msg("open_run")
        for i in range(n):
            yield Msg("checkpoint")
            yield Msg("set", motor, i, group="g")
            yield Msg("trigger", det, group="g")
            yield Msg("wait", group="g")
            yield Msg("create", name="primary")
            yield Msg("read", motor)
            yield Msg("read", det)
            yield Msg("save")
            if i % 100 == 99:
                yield Msg("await", report_size)
        yield Msg("checkpoint")
        yield Msg("set", motor, n, group="g")
        yield Msg("sleep", None, 30)  # paused here
        yield Msg("close_run")

    async with asyncio.timeout(DEADLINE):
        task = asyncio.create_task(RE(plan()))
        await until(lambda: len(checker.of("event")) == n, f"{n} events")
        RE.request_pause()
        with pytest.raises(RunEngineInterrupted):
            await task
        call = RE._execution  # pyright: ignore[reportPrivateUsage]
        assert call is not None
        paused_size = len(call.ctx.replay.messages)
        await RE.abort("enough")
        await until(lambda: RE.state is State.IDLE, "the engine is idle")
    assert max(sizes) <= 8, sizes  # only the messages since the last checkpoint
    assert paused_size <= 8, paused_size


async def test_non_rewindable_plan_resumes_without_replay(
    RE: RunEngine, checker: DocChecker, bl: SimBeamline, log: Log, staged: Detector
) -> None:
    async with asyncio.timeout(DEADLINE):
        await pause_mid_move(RE, bl, log, staged, rewindable=False)
        short = await readback(bl)
        assert POSITIONS[0] < short < POSITIONS[1]
        result = await RE.resume()
    assert result.exit_status == "success"
    xs = [e["data"]["x"] for e in checker.of("event")]
    # no replay: the interrupted move was not issued again, so its point was read where
    # the motor had stopped; the run then went on with the next point
    assert xs == [POSITIONS[0], short, POSITIONS[2]]
    assert [e["seq_num"] for e in checker.of("event")] == [1, 2, 3]


async def test_interruptions_are_recorded_as_their_own_stream_when_asked(
    checker: DocChecker,
) -> None:
    RE = RunEngine(record_interruptions=True)
    RE.subscribe(checker, thread=False)
    det = Signal("det")

    def plan():
        yield Msg("open_run")
        for point in range(3):
            yield Msg("checkpoint")
            yield Msg("create", name="primary")
            yield Msg("read", det)
            yield Msg("save")
            if point == 1:
                yield Msg("pause", defer=False)
        yield Msg("close_run")

    with pytest.raises(RunEngineInterrupted):
        await RE(plan())
    await RE.resume()
    streams = {d["uid"]: d["name"] for d in checker.of("descriptor")}
    kinds = [
        e["data"]["interruption"]
        for e in checker.of("event")
        if streams[e["descriptor"]] == "interruptions"
    ]
    assert kinds == ["pause", "resume"]
    assert checker.of("stop")[0]["num_events"] == {"primary": 3, "interruptions": 2}
