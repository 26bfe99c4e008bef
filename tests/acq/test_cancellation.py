"""Cancelling the task that awaits the engine, once or again while it cleans up.

Whatever the moment, every Start gets exactly one Stop with ``exit_status == 'abort'``,
the caller gets ``CancelledError``, and the engine is idle and ready for the next plan.
Nothing here sleeps for timing: the tests wait for markers (events) and use
``asyncio.timeout`` only as a guard.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Generator
from typing import Any

import pytest
from support import AsyncSignal, DocChecker, Signal

from acq import Msg, RunEngine
from acq._state import State

DEADLINE = 5.0


class Gate:
    """A device method that marks it was entered, then waits until it is opened."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.opened = asyncio.Event()

    async def pass_through(self) -> None:
        self.entered.set()
        await self.opened.wait()

    def held_at_the_stop(self, names: list[str]) -> Callable[[str, dict[str, Any]], Any]:
        """An async subscriber recording ``names`` that waits at this gate on the Stop."""

        async def record(name: str, doc: dict[str, Any]) -> None:
            if name == "stop":
                await self.pass_through()
            names.append(name)

        return record


class SlowStop(Signal):
    """A motor whose moves never end by themselves and whose ``stop()`` takes a while."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.gate = Gate()
        self.stopped = asyncio.Event()

    def set(self, value: Any) -> Any:  # type: ignore[override]
        self.log.append(("set", value))
        return asyncio.ensure_future(self.stopped.wait())

    async def stop(self, *, success: bool = False) -> None:  # type: ignore[override]
        self.log.append(("stop", success))
        await self.gate.pass_through()
        self.stopped.set()


class SlowUnstage(Signal):
    """A detector whose ``unstage()`` takes a while."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.gate = Gate()

    def stage(self) -> list[Any]:
        self.log.append(("stage", None))
        return [self]

    async def unstage(self) -> list[Any]:
        self.log.append(("unstage", None))
        await self.gate.pass_through()
        return [self]


def reached(RE: RunEngine, command: str) -> asyncio.Event:
    """An event set when the plan sends its first ``command`` message (``RE.msg_hook``)."""
    event = asyncio.Event()

    def hook(msg: Any) -> None:
        if msg.command == command:
            event.set()

    RE.msg_hook = hook
    return event


def assert_aborted(checker: DocChecker, runs: int = 1) -> None:
    starts, stops = checker.of("start"), checker.of("stop")
    assert len(starts) == runs
    assert sorted(s["run_start"] for s in stops) == sorted(s["uid"] for s in starts)
    assert [s["exit_status"] for s in stops] == ["abort"] * runs
    checker.assert_clean()


async def assert_reusable(RE: RunEngine, checker: DocChecker) -> None:
    assert RE.state is State.IDLE
    before = len(checker.of("stop"))
    result = await RE([Msg("open_run"), Msg("close_run")])
    assert result.exit_status == "success"
    assert checker.of("stop")[before:][0]["exit_status"] == "success"


async def cancel_twice(task: asyncio.Task[Any], gate: Gate) -> None:
    """Cancel ``task``; once it is inside ``gate``, cancel it again."""
    task.cancel()
    await gate.entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


# -- 1. a second cancellation while the engine cleans up -----------------------------------


async def test_a_second_cancel_while_a_device_stops_still_ends_the_run(
    bare_RE: RunEngine, checker: DocChecker
) -> None:
    motor = SlowStop("motor")
    plan = [Msg("open_run"), Msg("set", motor, 1, group="g"), Msg("wait", group="g")]
    async with asyncio.timeout(DEADLINE):
        waiting = reached(bare_RE, "wait")
        task = asyncio.create_task(bare_RE(plan))
        await waiting.wait()
        await cancel_twice(task, motor.gate)
    assert_aborted(checker)
    await assert_reusable(bare_RE, checker)


async def test_a_second_cancel_while_a_device_unstages_still_ends_the_run(
    bare_RE: RunEngine, checker: DocChecker
) -> None:
    det = SlowUnstage("det")
    never = asyncio.Event()
    plan = [Msg("stage", det), Msg("open_run"), Msg("wait_for", None, [never.wait])]
    async with asyncio.timeout(DEADLINE):
        waiting = reached(bare_RE, "wait_for")
        task = asyncio.create_task(bare_RE(plan))
        await waiting.wait()
        await cancel_twice(task, det.gate)
    assert_aborted(checker)
    assert ("unstage", None) in det.log
    await assert_reusable(bare_RE, checker)


async def test_a_second_cancel_while_a_critical_subscriber_takes_the_stop(
    bare_RE: RunEngine, checker: DocChecker
) -> None:
    gate = Gate()
    stored: list[str] = []
    store = gate.held_at_the_stop(stored)

    bare_RE.subscribe(store, critical=True)
    never = asyncio.Event()
    plan = [Msg("open_run"), Msg("wait_for", None, [never.wait])]
    async with asyncio.timeout(DEADLINE):
        waiting = reached(bare_RE, "wait_for")
        task = asyncio.create_task(bare_RE(plan))
        await waiting.wait()
        task.cancel()
        await gate.entered.wait()
        task.cancel()
        await asyncio.sleep(0)
        gate.opened.set()  # the storage finishes taking the Stop
        with pytest.raises(asyncio.CancelledError):
            await task
    assert stored == ["start", "stop"]
    assert_aborted(checker)


async def test_a_cancel_while_a_critical_subscriber_takes_the_plans_stop(
    bare_RE: RunEngine, checker: DocChecker
) -> None:
    """The plan's own close_run: its Stop reaches every subscriber, and the caller still
    gets CancelledError."""
    gate = Gate()
    stored: list[str] = []
    store = gate.held_at_the_stop(stored)

    bare_RE.subscribe(store, critical=True)
    async with asyncio.timeout(DEADLINE):
        task = asyncio.create_task(bare_RE([Msg("open_run"), Msg("close_run")]))
        await gate.entered.wait()
        task.cancel()
        await asyncio.sleep(0)
        gate.opened.set()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert stored == ["start", "stop"]
    assert [n for n, _ in checker.docs] == ["start", "stop"]
    checker.assert_clean()
    await assert_reusable(bare_RE, checker)


# -- 2. a cancellation while the subscribers drain -------------------------------------------


async def test_a_cancel_while_subscribers_drain_leaves_the_engine_idle(
    bare_RE: RunEngine, checker: DocChecker
) -> None:
    gate = Gate()
    seen: list[str] = []
    slow = gate.held_at_the_stop(seen)

    async with asyncio.timeout(DEADLINE):
        task = asyncio.create_task(bare_RE([Msg("open_run"), Msg("close_run")], slow))
        await gate.entered.wait()  # close_run waits for the subscribers to drain
        task.cancel()
        await asyncio.sleep(0)
        gate.opened.set()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert bare_RE.state is State.IDLE
        await assert_reusable(bare_RE, checker)
    assert seen[:2] == ["start", "stop"]


async def test_a_cancel_while_the_engine_finishes_leaves_it_idle(
    bare_RE: RunEngine, checker: DocChecker
) -> None:
    gate = Gate()
    seen: list[str] = []
    slow = gate.held_at_the_stop(seen)

    # the engine closes the run the plan left open: its Stop drains after the plan ended
    async with asyncio.timeout(DEADLINE):
        task = asyncio.create_task(bare_RE([Msg("open_run")], slow))
        await gate.entered.wait()
        task.cancel()
        await asyncio.sleep(0)
        gate.opened.set()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert bare_RE.state is State.IDLE
        await assert_reusable(bare_RE, checker)
    assert seen == ["start", "stop"]


# -- 3. a plan that swallows the cancellation ----------------------------------------------


def swallowing_plan() -> Generator[Msg, Any, None]:
    yield Msg("open_run")
    try:  # noqa: SIM105 -- as a user's plan would write it
        yield Msg("sleep", None, 10)
    except asyncio.CancelledError:
        pass
    yield Msg("close_run")


def swallowing_plan_without_run() -> Generator[Msg, Any, str]:
    yield Msg("open_run")
    try:  # noqa: SIM105 -- as a user's plan would write it
        yield Msg("sleep", None, 10)
    except asyncio.CancelledError:
        pass
    return "done"


@pytest.mark.parametrize("make_plan", [swallowing_plan, swallowing_plan_without_run])
async def test_a_plan_cannot_turn_a_cancellation_into_success(
    bare_RE: RunEngine, checker: DocChecker, make_plan: Callable[[], Any]
) -> None:
    async with asyncio.timeout(DEADLINE):
        sleeping = reached(bare_RE, "sleep")
        task = asyncio.create_task(bare_RE(make_plan()))
        await sleeping.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert_aborted(checker)
    await assert_reusable(bare_RE, checker)


# -- the sweep: cancel after every message ------------------------------------------------


def scan_like(det: Signal, motor: Signal) -> Generator[Msg, Any, None]:
    yield Msg("stage", det)
    yield Msg("open_run", plan_name="scan_like")
    for x in (1, 2, 3):
        yield Msg("checkpoint")
        yield Msg("set", motor, x, group="m")
        yield Msg("wait", group="m")
        yield Msg("trigger", det, group="t")
        yield Msg("wait", group="t")
        yield Msg("create", name="primary")
        yield Msg("read", motor)
        yield Msg("read", det)
        yield Msg("save")
    yield Msg("close_run")
    yield Msg("unstage", det)


CLOSE_RUN = 2 + 3 * 9 + 1  # the number of scan_like's close_run message


class Unstager(Signal):
    """A detector whose ``unstage()`` lets the loop run once and may cancel the call."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.on_unstage: Callable[[], None] = lambda: None

    def stage(self) -> list[Any]:
        self.log.append(("stage", None))
        return [self]

    async def unstage(self) -> list[Any]:
        self.log.append(("unstage", None))
        self.on_unstage()
        await asyncio.sleep(0)  # a suspension: where a cancellation lands
        return [self]


async def _sweep_once(RE: RunEngine, checker: DocChecker, k: int, twice: bool) -> bool:
    """Cancel the call after its ``k``-th message; False if the plan had fewer."""
    det, motor = Unstager("det"), AsyncSignal("motor")
    count = 0
    task: asyncio.Task[Any] | None = None

    def hook(msg: Any) -> None:
        nonlocal count
        count += 1
        if count == k and task is not None:
            task.cancel()

    def cancel_again() -> None:  # the cleanup unstages the detector: cancel once more
        if twice and task is not None and task.cancelling():
            task.cancel()

    det.on_unstage = cancel_again

    RE.msg_hook = hook
    task = asyncio.create_task(RE(scan_like(det, motor)))
    try:
        await task
    except asyncio.CancelledError:
        cancelled = True
    else:
        cancelled = False
    RE.msg_hook = None
    assert count >= k
    starts, stops = checker.of("start"), checker.of("stop")
    assert sorted(s["run_start"] for s in stops) == sorted(s["uid"] for s in starts)
    if k <= CLOSE_RUN:  # asked for before the run's close_run was handled
        assert cancelled, k
        assert [s["exit_status"] for s in stops] == ["abort"] * len(starts), (k, stops)
    assert RE.state is State.IDLE
    checker.assert_clean()
    return count > k


@pytest.mark.parametrize("twice", [False, True], ids=["once", "twice"])
async def test_cancel_after_every_message(twice: bool) -> None:
    async with asyncio.timeout(DEADLINE):
        for k in range(1, 40):
            checker = DocChecker()
            RE = RunEngine(catalog=None)
            RE.subscribe(checker, thread=False)
            more = await _sweep_once(RE, checker, k, twice)
            await assert_reusable(RE, checker)
            if not more:
                break
        else:
            raise AssertionError("the sweep never reached the plan's end")
