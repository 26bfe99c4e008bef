"""Every built-in message: what it does, what it replies, and its clear error on bad input.

reference/003 (the early RunEngine notebook) and bluesky's command set are the contract;
each test below drives one command through a real RunEngine (the ``RE`` fixture checks
every document against event-model's schema and the ordering rules at teardown).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

import bluesky.plan_stubs as bluesky_bps
import pytest
from bluesky.run_engine import WaitForTimeoutError as BlueskyWaitForTimeoutError
from bluesky.utils import FailedStatus as BlueskyFailedStatus
from ophyd_async.core import AsyncStatus, soft_signal_rw
from support import (
    AsyncSignal,
    Detector,
    DocChecker,
    DoneStatus,
    ManualStatus,
    Signal,
    ThreadStatus,
)

from acq import (
    DeviceError,
    FailedStatus,
    IllegalMessageSequence,
    Msg,
    PlanError,
    Return,
    RunEngine,
    UnknownCommandError,
    WaitTimeoutError,
)
from acq._commands import COMMANDS

# -- small devices ---------------------------------------------------------------------------


class Mover(Signal):
    """A motor whose ``set`` returns a status made by ``make_status`` (kept in ``statuses``)."""

    def __init__(self, name: str, make_status: Callable[[], Any] = DoneStatus) -> None:
        super().__init__(name)
        self.make_status = make_status
        self.statuses: list[Any] = []

    def set(self, value: Any) -> Any:  # type: ignore[override]
        super().set(value)
        status = self.make_status()
        self.statuses.append(status)
        return status


class NotADevice:
    """Has a name and nothing else."""

    name = "plain_thing"


class Flyer:
    """A small fly-scan device: exactly bluesky's Flyable + Collectable, nothing more."""

    def __init__(self, name: str = "flyer", n: int = 3) -> None:
        self.name = name
        self.parent = None
        self.n = n
        self.log: list[str] = []

    def kickoff(self) -> DoneStatus:
        self.log.append("kickoff")
        return DoneStatus()

    def complete(self) -> ThreadStatus:
        self.log.append("complete")
        return ThreadStatus(0.01)

    def describe_collect(self) -> dict[str, Any]:
        return {"theta": {"source": "mem://flyer/theta", "dtype": "number", "shape": []}}

    def collect(self) -> Any:
        self.log.append("collect")
        for i in range(self.n):
            t = time.time()
            yield {"time": t, "data": {"theta": float(i)}, "timestamps": {"theta": t}}


class DescribedFlyer(Flyer):
    """A flyer that also has an (empty) ``describe()``, as some ophyd devices do."""

    def describe(self) -> dict[str, Any]:
        return {}


class Preparable(Signal):
    """``prepare(value)`` is a coroutine (as ophyd-async's are)."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.prepared: list[Any] = []
        self.release = asyncio.Event()

    async def prepare(self, value: Any) -> None:
        await self.release.wait()
        self.prepared.append(value)


class Stageable(Signal):
    """``stage``/``unstage`` return finished statuses (bluesky.protocols.Stageable)."""

    def stage(self) -> DoneStatus:
        self.log.append(("stage", None))
        return DoneStatus()

    def unstage(self) -> DoneStatus:
        self.log.append(("unstage", None))
        return DoneStatus()


async def soft_signal(name: str, value: float = 1.0) -> Any:
    sig = soft_signal_rw(float, initial_value=value, name=name)
    await sig.connect()
    return sig


def one_event(*objs: Any, stream: str = "primary") -> list[Msg]:
    return [Msg("create", name=stream), *(Msg("read", o) for o in objs), Msg("save")]


def notes(exc: BaseException) -> str:
    return " | ".join(getattr(exc, "__notes__", []))


# -- the command table is covered ------------------------------------------------------------

COVERED = {
    "open_run", "close_run", "create", "save", "drop", "read", "declare_stream", "collect",
    "monitor", "unmonitor", "set", "trigger", "kickoff", "complete", "prepare", "configure",
    "stage", "unstage", "stop", "locate", "wait", "sleep", "wait_for", "await", "null",
    "checkpoint", "clear_checkpoint", "rewindable", "subscribe", "unsubscribe", "input",
}  # fmt: skip


# the engine's own commands, tested in test_interruptions.py and test_suspenders.py
ENGINE_COMMANDS = {"pause", "install_suspender", "remove_suspender", "RE_class"}


async def test_every_built_in_command_has_tests_here() -> None:
    commands = RunEngine(catalog=None).commands
    assert commands == COVERED | ENGINE_COMMANDS, "a command was added or removed: test it here"
    assert set(COMMANDS) < commands  # the engine's table starts from the built-in one


# -- runs: open_run / close_run --------------------------------------------------------------


async def test_open_run_and_close_run_reply_with_the_start_and_stop_uids(
    RE: RunEngine, checker: DocChecker
) -> None:
    async def plan():
        start_uid = yield Msg("open_run", purpose="test")
        stop_uid = yield Msg("close_run")
        yield Return((start_uid, stop_uid))

    result = await RE(plan())
    start_uid, stop_uid = result.plan_result
    assert checker.names() == ["start", "stop"]
    assert start_uid == checker.of("start")[0]["uid"]
    assert checker.of("start")[0]["purpose"] == "test"
    assert stop_uid == checker.of("stop")[0]["uid"]
    assert checker.of("stop")[0]["run_start"] == start_uid
    assert result.run_start_uids == (start_uid,)


async def test_close_run_exit_status_and_reason_keywords_reach_the_stop(
    RE: RunEngine, checker: DocChecker
) -> None:
    await RE([Msg("open_run"), Msg("close_run", exit_status="abort", reason="beam lost")])
    (stop,) = checker.of("stop")
    assert stop["exit_status"] == "abort"
    assert stop["reason"] == "beam lost"


async def test_close_run_with_an_invalid_exit_status_is_a_plan_error_and_the_run_still_stops(
    RE: RunEngine, checker: DocChecker
) -> None:
    # A typo in the plan is bad input (PlanError naming the keyword), not an acq bug
    # (AcqInternalError), and the run must still get exactly one Stop.
    with pytest.raises(PlanError, match="exit_status"):
        await RE([Msg("open_run"), Msg("close_run", exit_status="finished")])
    assert checker.names().count("stop") == 1


async def test_open_run_twice_without_a_run_key_is_refused(
    RE: RunEngine, checker: DocChecker
) -> None:
    with pytest.raises(IllegalMessageSequence, match=r"'open_run'.*already open"):
        await RE([Msg("open_run"), Msg("open_run"), Msg("close_run")])
    assert checker.names() == ["start", "stop"]
    assert checker.of("stop")[0]["exit_status"] == "fail"


async def test_two_runs_open_at_once_with_distinct_run_keys(
    RE: RunEngine, checker: DocChecker
) -> None:
    det = Signal("det", 4.0)
    result = await RE(
        [
            Msg("open_run", run="a"),
            Msg("open_run", run="b"),
            Msg("create", name="primary", run="b"),
            Msg("read", det, run="b"),
            Msg("save", run="b"),
            Msg("close_run", run="a"),
            Msg("close_run", run="b"),
        ]
    )
    assert len(result.run_start_uids) == 2
    stops = {s["run_start"]: s["num_events"] for s in checker.of("stop")}
    assert stops == {result.run_start_uids[0]: {}, result.run_start_uids[1]: {"primary": 1}}


async def test_close_run_without_an_open_run_is_refused(RE: RunEngine) -> None:
    with pytest.raises(IllegalMessageSequence, match="'close_run' needs an open run"):
        await RE([Msg("close_run")])


# -- bundles: create / save / drop / read ----------------------------------------------------


async def test_create_read_save_makes_one_event_of_the_readings(
    RE: RunEngine, checker: DocChecker
) -> None:
    motor, det = Signal("motor", 1.5), AsyncSignal("det", 9.0)
    await RE([Msg("open_run"), *one_event(motor, det), *one_event(motor, det), Msg("close_run")])
    assert checker.names() == ["start", "descriptor", "event", "event", "stop"]
    assert checker.of("descriptor")[0]["name"] == "primary"
    assert [e["data"] for e in checker.of("event")] == [{"motor": 1.5, "det": 9.0}] * 2
    assert [e["seq_num"] for e in checker.of("event")] == [1, 2]


async def test_create_takes_the_stream_name_positionally_too(
    RE: RunEngine, checker: DocChecker
) -> None:
    det = Signal("det")
    await RE([Msg("open_run"), Msg("create", None, "baseline"), Msg("read", det), Msg("save"),
              Msg("close_run")])  # fmt: skip
    assert checker.of("descriptor")[0]["name"] == "baseline"


async def test_drop_discards_the_bundle(RE: RunEngine, checker: DocChecker) -> None:
    det = Signal("det", 2.0)
    await RE(
        [
            Msg("open_run"),
            Msg("create", name="primary"),
            Msg("read", det),
            Msg("drop"),
            *one_event(det),
            Msg("close_run"),
        ]
    )
    assert checker.names() == ["start", "descriptor", "event", "stop"]
    assert checker.of("event")[0]["seq_num"] == 1
    assert checker.of("stop")[0]["num_events"] == {"primary": 1}


async def test_save_without_create_is_refused(RE: RunEngine) -> None:
    with pytest.raises(IllegalMessageSequence, match="'save' without an open bundle"):
        await RE([Msg("open_run"), Msg("save"), Msg("close_run")])


async def test_drop_without_create_is_refused(RE: RunEngine) -> None:
    with pytest.raises(IllegalMessageSequence, match="'drop' without an open bundle"):
        await RE([Msg("open_run"), Msg("drop"), Msg("close_run")])


async def test_create_outside_a_run_is_refused_naming_the_message(RE: RunEngine) -> None:
    with pytest.raises(IllegalMessageSequence, match="'create' needs an open run") as info:
        await RE([Msg("create", name="primary")])
    assert "Msg('create'" in str(info.value)


async def test_save_outside_a_run_is_refused(RE: RunEngine) -> None:
    with pytest.raises(IllegalMessageSequence, match="'save' needs an open run"):
        await RE([Msg("save")])


async def test_create_twice_is_refused_naming_the_open_stream(RE: RunEngine) -> None:
    with pytest.raises(IllegalMessageSequence, match="'primary' is still open"):
        await RE([Msg("open_run"), Msg("create", name="primary"), Msg("create", name="other")])


@pytest.mark.parametrize("device_class", [Signal, AsyncSignal])
async def test_read_replies_with_the_reading_of_sync_and_async_devices(
    RE: RunEngine, checker: DocChecker, device_class: type[Signal]
) -> None:
    det = device_class("det", 3.25)

    async def plan():
        reading = yield Msg("read", det)  # outside a run: just a reading, no document
        yield Return(reading)

    reading = (await RE(plan())).plan_result
    assert reading["det"]["value"] == 3.25
    assert isinstance(reading["det"]["timestamp"], float)
    assert checker.docs == []


async def test_read_of_an_object_without_read_names_the_device_and_read(RE: RunEngine) -> None:
    with pytest.raises(DeviceError, match="plain_thing") as info:
        await RE([Msg("read", NotADevice())])
    assert "read()" in str(info.value)
    assert "'read'" in str(info.value)


class NoneReader(Signal):
    """A device whose ``read()`` forgot its return statement."""

    def read(self) -> Any:  # type: ignore[override]
        return None


class AsyncNoneReader(Signal):
    async def read(self) -> Any:  # type: ignore[override]
        await asyncio.sleep(0)


@pytest.mark.parametrize("in_a_run", [False, True])
@pytest.mark.parametrize("device", [NoneReader, AsyncNoneReader])
async def test_a_read_that_returns_none_is_a_device_error_naming_the_device(
    RE: RunEngine, checker: DocChecker, device: type[Signal], in_a_run: bool
) -> None:
    broken = device("broken_det")
    plan = (
        [Msg("open_run"), *one_event(broken), Msg("close_run")]
        if in_a_run
        else [Msg("read", broken)]
    )
    # bluesky raises RuntimeError for it: acq's DeviceError is one, so its tests' checks hold
    with pytest.raises(DeviceError, match="broken_det") as info:
        await RE(plan)
    assert isinstance(info.value, RuntimeError)
    assert "returned None" in str(info.value)
    assert "'read'" in str(info.value)
    assert checker.names() == (["start", "stop"] if in_a_run else [])


@pytest.mark.parametrize(
    "command", ["read", "set", "trigger", "kickoff", "complete", "prepare", "configure", "stop",
                "locate"],
)  # fmt: skip
async def test_a_device_message_whose_obj_is_none_is_a_plan_error(
    RE: RunEngine, command: str
) -> None:
    with pytest.raises(PlanError, match=f"'{command}'"):
        await RE([Msg(command, None)])


async def test_monitor_of_none_is_a_plan_error(RE: RunEngine) -> None:
    with pytest.raises(PlanError, match="'monitor'"):
        await RE([Msg("open_run"), Msg("monitor", None), Msg("close_run")])


# -- errors reach the plan ---------------------------------------------------------------------


async def test_a_handler_error_is_thrown_into_the_plan_which_can_catch_it_and_continue(
    RE: RunEngine, checker: DocChecker
) -> None:
    det = Signal("det", 5.0)

    async def plan():
        yield Msg("open_run")
        try:
            yield Msg("read", NotADevice())
        except DeviceError as exc:
            caught = exc
        try:
            yield Msg("teleport", det)
        except UnknownCommandError as exc:
            unknown = exc
        yield Msg("create", name="primary")
        yield Msg("read", det)
        yield Msg("save")
        yield Msg("close_run")
        yield Return((caught, unknown))

    result = await RE(plan())
    caught, unknown = result.plan_result
    assert result.exit_status == "success"
    assert "acq: raised by the 'read' message on plain_thing" in notes(caught)
    assert "'teleport'" in str(unknown)
    assert [e["data"] for e in checker.of("event")] == [{"det": 5.0}]
    assert checker.of("stop")[0]["exit_status"] == "success"


async def test_unknown_command_raises_naming_it_and_listing_known_ones(RE: RunEngine) -> None:
    with pytest.raises(UnknownCommandError, match="'teleport'") as info:
        await RE([Msg("teleport", None, 1, 2)])
    assert "register_command" in str(info.value)
    assert "open_run" in str(info.value)


# -- set / trigger -----------------------------------------------------------------------------


async def test_set_of_a_sync_device_replies_with_its_status(RE: RunEngine) -> None:
    motor = Mover("motor")

    async def plan():
        status = yield Msg("set", motor, 2.5, group="m")
        yield Msg("wait", None, "m")
        yield Return(status)

    status = (await RE(plan())).plan_result
    assert status is motor.statuses[0]
    assert motor.value == 2.5


async def test_set_of_an_ophyd_async_soft_signal_replies_with_its_async_status(
    RE: RunEngine,
) -> None:
    sig = await soft_signal("sig", 1.0)

    async def plan():
        status = yield Msg("set", sig, 7.0, group="s")
        yield Msg("wait", None, "s")
        yield Return(status)

    status = (await RE(plan())).plan_result
    assert isinstance(status, AsyncStatus)
    assert status.done
    assert status.success
    assert await sig.get_value() == 7.0


async def test_set_whose_status_is_finished_by_another_thread_is_waited_for(
    RE: RunEngine,
) -> None:
    motor = Mover("motor", ManualStatus)
    seen: list[bool] = []

    async def plan():
        status = yield Msg("set", motor, 1.0, group="m")
        seen.append(status.done)
        threading.Thread(target=status.finish).start()
        yield Msg("wait", None, "m")
        seen.append(status.done)

    async with asyncio.timeout(10):
        await RE(plan())
    assert seen == [False, True]


async def test_set_with_a_support_thread_status_is_waited_for(RE: RunEngine) -> None:
    motor = Mover("motor", lambda: ThreadStatus(0.01))

    async def plan():
        status = yield Msg("set", motor, 1.0, group="m")
        yield Msg("wait", None, "m")
        yield Return(status)

    async with asyncio.timeout(10):
        status = (await RE(plan())).plan_result
    assert status.done
    assert status.success


async def test_trigger_replies_with_the_status_and_wait_waits_for_it(RE: RunEngine) -> None:
    status = ManualStatus()

    class Cam(Signal):
        def trigger(self) -> ManualStatus:  # type: ignore[override]
            return status

    cam = Cam("cam")

    async def plan():
        reply = yield Msg("trigger", cam, group="det")
        threading.Timer(0.01, status.finish).start()
        yield Msg("wait", None, "det")
        yield Return((reply, status.done))

    async with asyncio.timeout(10):
        reply, done_after_wait = (await RE(plan())).plan_result
    assert reply is status
    assert done_after_wait


async def test_trigger_of_an_object_without_trigger_names_it(RE: RunEngine) -> None:
    with pytest.raises(DeviceError, match="'trigger' message to plain_thing"):
        await RE([Msg("trigger", NotADevice())])


# -- wait --------------------------------------------------------------------------------------


async def test_wait_complex_of_reference_003_waits_for_each_group_separately(
    RE: RunEngine, checker: DocChecker
) -> None:
    # reference/003 wait_complex: motors 1 and 2 in group A, motor 3 in group B; wait A,
    # read, wait B, read. Motor 3 is still moving when the plan reads after waiting for A.
    m1 = Mover("motor1", lambda: ThreadStatus(0.01))
    m2 = Mover("motor2", lambda: ThreadStatus(0.02))
    slow = ManualStatus()
    m3 = Mover("motor3", lambda: slow)
    det = Signal("det", 1.0)
    observed: list[tuple[bool, bool, bool]] = []

    def state() -> tuple[bool, bool, bool]:
        return (m1.statuses[0].done, m2.statuses[0].done, m3.statuses[0].done)

    async def wait_complex():
        yield Msg("open_run")
        for motor in (m1, m2):
            yield Msg("set", motor, 5, group="A")
        yield Msg("set", m3, 5, group="B")
        yield Msg("wait", None, "A")
        observed.append(state())
        for msg in one_event(det):
            yield msg
        threading.Thread(target=slow.finish).start()
        yield Msg("wait", None, "B")
        observed.append(state())
        for msg in one_event(det):
            yield msg
        yield Msg("close_run")

    async with asyncio.timeout(10):
        await RE(wait_complex())
    assert observed == [(True, True, False), (True, True, True)]
    assert len(checker.of("event")) == 2


async def test_wait_takes_the_group_as_keyword_or_positional_argument(RE: RunEngine) -> None:
    a, b = ManualStatus(), ManualStatus()
    m1, m2 = Mover("m1", lambda: a), Mover("m2", lambda: b)
    order: list[str] = []

    async def plan():
        yield Msg("set", m1, 1, group="kw")
        yield Msg("set", m2, 1, group="pos")
        asyncio.get_running_loop().call_soon(a.finish)
        yield Msg("wait", group="kw")
        order.append(f"kw done, pos done={b.done}")
        asyncio.get_running_loop().call_soon(b.finish)
        yield Msg("wait", None, "pos")
        order.append(f"pos done={b.done}")

    async with asyncio.timeout(10):
        await RE(plan())
    assert order == ["kw done, pos done=False", "pos done=True"]


async def test_wait_timeout_raises_naming_the_group_and_the_device(RE: RunEngine) -> None:
    stuck = Mover("stuck_motor", ManualStatus)
    with pytest.raises(WaitTimeoutError) as info:
        async with asyncio.timeout(10):
            await RE([Msg("set", stuck, 1, group="A"), Msg("wait", None, "A", timeout=0.01)])
    assert "'A'" in str(info.value)
    assert "stuck_motor" in str(info.value)
    assert "set" in str(info.value)
    assert isinstance(info.value, TimeoutError)
    assert isinstance(info.value, BlueskyWaitForTimeoutError)  # bluesky plans catch that one


async def test_wait_timeout_without_error_on_timeout_returns_and_the_plan_goes_on(
    RE: RunEngine,
) -> None:
    stuck = Mover("stuck_motor", ManualStatus)

    async def plan():
        yield Msg("set", stuck, 1, group="A")
        reply = yield Msg("wait", None, "A", timeout=0.01, error_on_timeout=False)
        yield Return(("went on", reply, stuck.statuses[0].done))

    async with asyncio.timeout(10):
        result = await RE(plan())
    assert result.plan_result == ("went on", False, False)  # the reply: not finished


async def test_wait_raises_the_error_of_a_status_that_failed_naming_command_and_device(
    RE: RunEngine,
) -> None:
    bad = Mover("bad_motor", lambda: ThreadStatus(0.01, success=False))
    # bluesky's FailedStatus (plans catch it to retry), the device's error as its cause
    with pytest.raises(BlueskyFailedStatus, match="thread status failed") as info:
        async with asyncio.timeout(10):
            await RE([Msg("set", bad, 1, group="A"), Msg("wait", None, "A")])
    assert isinstance(info.value, FailedStatus)
    assert isinstance(info.value.__cause__, RuntimeError)
    assert "the status of 'set' on bad_motor failed" in str(info.value)
    assert "raised by the 'wait' message" in notes(info.value)


async def test_wait_raises_failed_status_for_a_status_that_failed_without_an_exception(
    RE: RunEngine,
) -> None:
    bad = Mover("bad_motor", lambda: DoneStatus(success=False))
    with pytest.raises(FailedStatus) as info:
        await RE([Msg("set", bad, 1, group="A"), Msg("wait", None, "A")])
    assert "bad_motor" in notes(info.value)


async def test_wait_raises_the_error_of_a_failed_ophyd_async_status(RE: RunEngine) -> None:
    class Jammed(Signal):
        def set(self, value: Any) -> AsyncStatus:  # type: ignore[override]
            async def move() -> None:
                await asyncio.sleep(0)
                raise ValueError("motor jammed")

            return AsyncStatus(move())

    with pytest.raises(FailedStatus, match="motor jammed") as info:
        await RE([Msg("set", Jammed("jammed"), 1, group="A"), Msg("wait", None, "A")])
    assert isinstance(info.value.__cause__, ValueError)
    assert "'set' on jammed" in str(info.value)


async def test_a_failed_status_is_not_lost_by_a_wait_that_times_out_without_error(
    RE: RunEngine,
) -> None:
    # Group A holds a status that already failed and one that never finishes. The wait
    # with error_on_timeout=False may skip the timeout error, but the known failure must
    # not vanish: it raises at this wait (or, at the latest, at the next wait for A).
    bad = Mover("bad_motor", lambda: DoneStatus(success=False, exc=ValueError("jammed")))
    stuck = Mover("stuck_motor", ManualStatus)

    async def plan():
        yield Msg("set", bad, 1, group="A")
        yield Msg("set", stuck, 1, group="A")
        yield Msg("wait", None, "A", timeout=0.01, error_on_timeout=False)
        stuck.statuses[0].finish()
        yield Msg("wait", None, "A")

    with pytest.raises(FailedStatus, match="jammed"):
        async with asyncio.timeout(10):
            await RE(plan())


async def test_wait_fails_as_soon_as_one_status_of_its_group_fails(RE: RunEngine) -> None:
    # bluesky's wait ends at the first failure; it does not wait for the rest of the group
    failing = Mover("failing_motor", ManualStatus)
    stuck = Mover("stuck_motor", ManualStatus)

    async def fail_soon() -> None:
        await asyncio.sleep(0)
        failing.statuses[0].finish(ValueError("failing_motor stalled"))

    async def plan():
        yield Msg("set", failing, 1, group="A")
        yield Msg("set", stuck, 1, group="A")
        yield Msg("await", fail_soon)
        yield Msg("wait", None, "A")

    with pytest.raises(FailedStatus, match="failing_motor"):
        async with asyncio.timeout(10):  # the stuck motor never finishes
            await RE(plan())


async def test_a_bluesky_plan_catching_failed_status_retries_the_move(RE: RunEngine) -> None:
    attempts: list[int] = []

    def flaky_status() -> DoneStatus:
        attempts.append(1)
        if len(attempts) == 1:
            return DoneStatus(success=False, exc=ValueError("stalled"))
        return DoneStatus(success=True)

    motor = Mover("flaky_motor", flaky_status)

    def plan():  # a bluesky plan, catching bluesky's exception class
        for _ in range(3):
            try:
                yield Msg("set", motor, 1, group="move")
                yield Msg("wait", None, "move")
            except BlueskyFailedStatus:
                continue
            return "moved"
        return "gave up"

    result = await RE(plan())
    assert result.plan_result == "moved"
    assert len(attempts) == 2


async def test_a_read_right_after_the_set_of_an_instant_async_device_sees_the_new_value(
    RE: RunEngine,
) -> None:
    # bluesky's engine gives the loop a turn after a message that starts background work,
    # so an ophyd-async soft signal's set has landed when the plan reads without waiting
    sig = soft_signal_rw(float, 0.0, name="sig")

    async def plan():
        yield Msg("set", sig, 5.0)
        reading = yield Msg("read", sig)
        yield Return(reading["sig"]["value"])

    assert (await RE(plan())).plan_result == 5.0


async def test_wait_for_an_unknown_group_returns_at_once(RE: RunEngine) -> None:
    async def plan():
        reply = yield Msg("wait", None, "nobody-filed-this")
        yield Return(reply)

    async with asyncio.timeout(10):
        assert (await RE(plan())).plan_result is True  # nothing left to wait for


# -- wait(watch=...) ------------------------------------------------------------------------------


class FinishesOnceWaited(ManualStatus):
    """Finishes on the loop's next turn after someone first waits for it (adds a callback)."""

    error: BaseException | None = None

    def add_callback(self, callback: Any) -> None:
        if not self.done and not self._callbacks:
            asyncio.get_running_loop().call_soon(self.finish, self.error)
        super().add_callback(callback)


class FailsOnceWatched(FinishesOnceWaited):
    error = ValueError("flyer lost its trigger")


class CountingStatus(ManualStatus):
    """Counts the callbacks added to it."""

    def __init__(self) -> None:
        super().__init__()
        self.added = 0

    def add_callback(self, callback: Any) -> None:
        self.added += 1
        super().add_callback(callback)


@pytest.mark.parametrize(
    "watched_status",
    [
        pytest.param(FailsOnceWatched, id="fails-during-the-wait"),
        pytest.param(
            lambda: DoneStatus(success=False, exc=ValueError("flyer lost its trigger")),
            id="failed-before-the-wait",
        ),
    ],
)
async def test_wait_ends_with_failed_status_when_a_status_of_a_watched_group_fails(
    RE: RunEngine, watched_status: Callable[[], Any]
) -> None:
    step = Mover("step_motor", ManualStatus)  # never finishes by itself
    flyer = Mover("watched_flyer", watched_status)

    async def plan():
        yield Msg("set", step, 1, group="step")
        yield Msg("set", flyer, 1, group="fly")
        yield Msg("wait", None, "step", watch=("fly",))

    with pytest.raises(BlueskyFailedStatus, match="watched_flyer") as info:
        async with asyncio.timeout(10):
            await RE(plan())
    assert isinstance(info.value, FailedStatus)
    assert isinstance(info.value.__cause__, ValueError)
    assert "flyer lost its trigger" in str(info.value)
    assert "watched group 'fly'" in notes(info.value)
    assert "group 'step'" in notes(info.value)


async def test_a_wait_ended_by_a_watched_failure_keeps_its_own_statuses_filed(
    RE: RunEngine,
) -> None:
    step = Mover("step_motor", ManualStatus)
    flyer = Mover("watched_flyer", FailsOnceWatched)

    async def plan():
        yield Msg("set", step, 1, group="step")
        yield Msg("set", flyer, 1, group="fly")
        with pytest.raises(FailedStatus):  # the plan goes on
            yield Msg("wait", None, "step", watch=("fly",))
        still_moving = yield Msg("wait", None, "step", timeout=0.01, error_on_timeout=False)
        step.statuses[0].finish()
        finished = yield Msg("wait", None, "step")
        fly = yield Msg("wait", None, "fly")  # its failure reached the plan once, above
        yield Return((still_moving, finished, fly))

    async with asyncio.timeout(10):
        result = await RE(plan())
    assert result.plan_result == (False, True, True)
    assert result.exit_status == "success"


async def test_wait_goes_on_when_the_watched_statuses_succeed(RE: RunEngine) -> None:
    step_status, fly_status = ManualStatus(), ManualStatus()
    step, flyer = Mover("step_motor", lambda: step_status), Mover("flyer", lambda: fly_status)
    seen: list[str] = []

    def fly_done(_: object) -> None:
        seen.append("fly done")
        asyncio.get_running_loop().call_soon(step_status.finish)

    async def plan():
        yield Msg("set", step, 1, group="step")
        yield Msg("set", flyer, 1, group="fly")
        fly_status.add_callback(fly_done)
        asyncio.get_running_loop().call_soon(fly_status.finish)
        reply = yield Msg("wait", None, "step", watch=["fly", "nobody-filed-this"])
        seen.append(f"wait replied {reply}, step done={step_status.done}")

    async with asyncio.timeout(10):
        await RE(plan())
    assert seen == ["fly done", "wait replied True, step done=True"]


async def test_waits_watching_a_long_status_do_not_pile_callbacks_on_it(RE: RunEngine) -> None:
    # a fly scan's status watched at every step of a scan: memory stays flat
    fly_status = CountingStatus()
    step, flyer = Mover("step_motor", FinishesOnceWaited), Mover("flyer", lambda: fly_status)

    async def plan():
        yield Msg("set", flyer, 1, group="fly")
        for _ in range(20):
            yield Msg("set", step, 1, group="step")
            yield Msg("wait", None, "step", watch=("fly",))
        fly_status.finish()
        yield Msg("wait", None, "fly")

    async with asyncio.timeout(10):
        await RE(plan())
    assert all(s.done for s in step.statuses)
    assert fly_status.added <= 2


# -- sleep / null / checkpoints / rewindable --------------------------------------------------


async def test_sleep_suspends_the_plan_so_other_tasks_run(RE: RunEngine) -> None:
    flag = asyncio.Event()
    observed: list[bool] = []

    async def other() -> None:
        flag.set()

    async def plan():
        task = asyncio.create_task(other())
        observed.append(flag.is_set())
        reply = yield Msg("sleep", None, 0.001)
        observed.append(flag.is_set())
        await task
        yield Return(reply)

    assert (await RE(plan())).plan_result is None
    assert observed == [False, True]


async def test_sleep_without_a_duration_is_a_plan_error(RE: RunEngine) -> None:
    with pytest.raises(PlanError, match="'sleep' needs a duration"):
        await RE([Msg("sleep")])


async def test_null_does_nothing_and_replies_none(RE: RunEngine, checker: DocChecker) -> None:
    async def plan():
        reply = yield Msg("null")
        yield Return(reply)

    assert (await RE(plan())).plan_result is None
    assert checker.docs == []


async def test_checkpoint_between_events_is_fine_but_inside_a_bundle_is_refused(
    RE: RunEngine, checker: DocChecker
) -> None:
    det = Signal("det")

    async def plan():
        yield Msg("open_run")
        reply = yield Msg("checkpoint")
        for msg in one_event(det):
            yield msg
        yield Msg("checkpoint")
        yield Msg("create", name="primary")
        try:
            yield Msg("checkpoint")
        except IllegalMessageSequence as exc:
            refused = str(exc)
        yield Msg("save")
        yield Msg("close_run")
        yield Return((reply, refused))

    reply, refused = (await RE(plan())).plan_result
    assert reply is None
    assert "'checkpoint' inside an open bundle" in refused
    assert len(checker.of("event")) == 1


async def test_checkpoint_inside_a_bundle_fails_an_uncaught_plan(RE: RunEngine) -> None:
    det = Signal("det")
    with pytest.raises(IllegalMessageSequence, match="checkpoint"):
        await RE([Msg("open_run"), Msg("create", name="primary"), Msg("read", det),
                  Msg("checkpoint")])  # fmt: skip


async def test_clear_checkpoint_is_accepted_anywhere_even_inside_a_bundle(
    RE: RunEngine, checker: DocChecker
) -> None:
    det = Signal("det")

    async def plan():
        yield Msg("open_run")
        yield Msg("checkpoint")
        a = yield Msg("clear_checkpoint")
        yield Msg("create", name="primary")
        b = yield Msg("clear_checkpoint")
        yield Msg("read", det)
        yield Msg("save")
        yield Msg("close_run")
        yield Return((a, b))

    assert (await RE(plan())).plan_result == (None, None)
    assert len(checker.of("event")) == 1


async def test_rewindable_sets_the_flag_and_replies_with_it(RE: RunEngine) -> None:
    async def plan():
        initial = yield Msg("rewindable")
        after_false = yield Msg("rewindable", None, False)
        still = yield Msg("rewindable")
        after_true = yield Msg("rewindable", None, True)
        yield Return((initial, after_false, still, after_true))

    assert (await RE(plan())).plan_result == (True, False, False, True)


async def test_rewindable_none_queries_without_changing_it_as_in_bluesky(RE: RunEngine) -> None:
    # bluesky's rewindable_wrapper asks with Msg('rewindable', None, None) and restores the
    # answer afterwards; None must mean "just tell me", not False.
    async def plan():
        asked = yield Msg("rewindable", None, None)
        after = yield Msg("rewindable")
        yield Return((asked, after))

    assert (await RE(plan())).plan_result == (True, True)


# -- flyers: kickoff / complete / collect; prepare --------------------------------------------


async def test_kickoff_outside_a_run_is_refused_before_the_flyer_starts(RE: RunEngine) -> None:
    flyer = Flyer()
    with pytest.raises(IllegalMessageSequence, match="'kickoff' needs an open run"):
        await RE([Msg("kickoff", flyer)])
    assert "kickoff" not in flyer.log


async def test_kickoff_and_complete_reply_with_statuses_that_wait_waits_for(
    RE: RunEngine,
) -> None:
    finishing = ManualStatus()

    class ManualFlyer(Flyer):
        def complete(self) -> ManualStatus:  # type: ignore[override]
            self.log.append("complete")
            return finishing

    flyer = ManualFlyer()

    async def plan():
        yield Msg("open_run")
        kicked = yield Msg("kickoff", flyer, group="k")
        yield Msg("wait", None, "k")
        completing = yield Msg("complete", flyer, group="c")
        done_before = completing.done
        threading.Thread(target=completing.finish).start()
        yield Msg("wait", None, "c")
        yield Msg("close_run")
        yield Return((kicked, completing, done_before, completing.done))

    async with asyncio.timeout(10):
        kicked, completing, done_before, done_after = (await RE(plan())).plan_result
    assert isinstance(kicked, DoneStatus)
    assert completing is finishing
    assert (done_before, done_after) == (False, True)
    assert flyer.log == ["kickoff", "complete"]


async def test_async_kickoff_coroutine_is_run_and_filed_in_its_group(RE: RunEngine) -> None:
    finished: list[bool] = []

    class AsyncFlyer(Flyer):
        async def kickoff(self) -> None:  # type: ignore[override]
            await asyncio.sleep(0.01)
            finished.append(True)

    async def plan():
        yield Msg("open_run")
        status = yield Msg("kickoff", AsyncFlyer(), group="k")
        yield Msg("wait", None, "k")
        yield Msg("close_run")
        yield Return(status.done())

    async with asyncio.timeout(10):
        assert (await RE(plan())).plan_result is True
    assert finished == [True]


async def fly(flyer: Any, **collect_kwargs: Any):
    yield Msg("open_run")
    yield Msg("kickoff", flyer, group="k")
    yield Msg("wait", None, "k")
    yield Msg("complete", flyer, group="c")
    yield Msg("wait", None, "c")
    payload = yield Msg("collect", flyer, **collect_kwargs)
    yield Msg("close_run")
    yield Return(payload)


async def test_collect_from_a_small_flyer_emits_an_event_page(
    RE: RunEngine, checker: DocChecker
) -> None:
    # The flyer has exactly bluesky's Flyable + Collectable methods: no describe().
    async with asyncio.timeout(10):
        result = await RE(fly(Flyer(n=3)))
    assert checker.names() == ["start", "descriptor", "event_page", "stop"]
    (page,) = checker.of("event_page")
    assert page["data"] == {"theta": [0.0, 1.0, 2.0]}
    assert page["seq_num"] == [1, 2, 3]
    assert len(result.plan_result) == 3


async def test_collect_emits_an_event_page_in_the_flyers_stream(
    RE: RunEngine, checker: DocChecker
) -> None:
    async with asyncio.timeout(10):
        result = await RE(fly(DescribedFlyer(n=4)))
    assert checker.names() == ["start", "descriptor", "event_page", "stop"]
    (descriptor,) = checker.of("descriptor")
    assert descriptor["name"] == "flyer"
    assert set(descriptor["data_keys"]) == {"theta"}
    (page,) = checker.of("event_page")
    assert page["data"] == {"theta": [0.0, 1.0, 2.0, 3.0]}
    assert page["seq_num"] == [1, 2, 3, 4]
    assert page["descriptor"] == descriptor["uid"]
    assert [e["data"]["theta"] for e in result.plan_result] == [0.0, 1.0, 2.0, 3.0]
    assert checker.of("stop")[0]["num_events"] == {"flyer": 4}


async def test_collect_with_return_payload_false_replies_none(
    RE: RunEngine, checker: DocChecker
) -> None:
    async with asyncio.timeout(10):
        result = await RE(fly(DescribedFlyer(n=2), return_payload=False))
    assert result.plan_result is None
    assert len(checker.of("event_page")) == 1


async def test_collect_without_objects_or_outside_a_run_is_refused(RE: RunEngine) -> None:
    with pytest.raises(PlanError, match="'collect' needs at least one object"):
        await RE([Msg("open_run"), Msg("collect"), Msg("close_run")])
    with pytest.raises(IllegalMessageSequence, match="'collect' needs an open run"):
        await RE([Msg("collect", DescribedFlyer())])


async def test_collect_of_an_object_that_cannot_be_collected_is_a_device_error(
    RE: RunEngine,
) -> None:
    class NoCollect(DescribedFlyer):
        collect = None  # type: ignore[assignment]

    with pytest.raises(DeviceError, match="cannot be collected"):
        await RE([Msg("open_run"), Msg("collect", NoCollect("nocollect")), Msg("close_run")])


async def test_kickoff_of_an_object_that_is_not_flyable_names_it(RE: RunEngine) -> None:
    with pytest.raises(DeviceError, match="'kickoff' message to plain_thing"):
        await RE([Msg("open_run"), Msg("kickoff", NotADevice()), Msg("close_run")])


async def test_prepare_runs_the_devices_prepare_and_files_its_status(RE: RunEngine) -> None:
    dev = Preparable("dev")

    async def plan():
        status = yield Msg("prepare", dev, {"exposure": 0.2}, group="p")
        before = list(dev.prepared)
        dev.release.set()
        yield Msg("wait", None, "p")
        yield Return((status.done(), before, list(dev.prepared)))

    async with asyncio.timeout(10):
        done, before, after = (await RE(plan())).plan_result
    assert done
    assert (before, after) == ([], [{"exposure": 0.2}])


async def test_a_failing_async_prepare_raises_its_error_at_wait(RE: RunEngine) -> None:
    class Broken(Preparable):
        async def prepare(self, value: Any) -> None:
            await asyncio.sleep(0)
            raise ValueError(f"cannot prepare for {value!r}")

    with pytest.raises(FailedStatus, match="cannot prepare for 3") as info:
        async with asyncio.timeout(10):
            await RE([Msg("prepare", Broken("broken"), 3, group="p"), Msg("wait", None, "p")])
    assert isinstance(info.value.__cause__, ValueError)
    assert "'prepare' on broken" in str(info.value)


async def test_prepare_of_an_object_without_prepare_names_it(RE: RunEngine) -> None:
    with pytest.raises(DeviceError, match="'prepare' message to plain_thing"):
        await RE([Msg("prepare", NotADevice(), 1)])


# -- configure ----------------------------------------------------------------------------------


async def test_configure_replies_old_and_new_and_the_next_read_gets_a_new_descriptor(
    RE: RunEngine, checker: DocChecker
) -> None:
    det = Detector("det")

    async def plan():
        yield Msg("open_run")
        for msg in one_event(det):
            yield msg
        old_new = yield Msg("configure", det, exposure=0.5)
        for msg in one_event(det):
            yield msg
        yield Msg("close_run")
        yield Return(old_new)

    old, new = (await RE(plan())).plan_result
    assert old["det_exposure"]["value"] == 0.1
    assert new["det_exposure"]["value"] == 0.5
    descriptors = checker.of("descriptor")
    assert [d["configuration"]["det"]["data"]["det_exposure"] for d in descriptors] == [0.1, 0.5]
    assert [e["descriptor"] for e in checker.of("event")] == [d["uid"] for d in descriptors]


async def test_configure_inside_a_bundle_is_refused(RE: RunEngine) -> None:
    det = Detector("det")
    with pytest.raises(IllegalMessageSequence, match="'configure' of det inside an open bundle"):
        await RE([Msg("open_run"), Msg("create", name="primary"), Msg("configure", det,
                  exposure=1.0)])  # fmt: skip
    assert det.exposure == 0.1


async def test_configure_of_an_object_without_configure_names_it(RE: RunEngine) -> None:
    with pytest.raises(DeviceError, match="'configure' message to plain_thing"):
        await RE([Msg("configure", NotADevice(), exposure=1)])


# -- stage / unstage ----------------------------------------------------------------------------


async def test_stage_and_unstage_of_a_device_without_them_reply_an_empty_list(
    RE: RunEngine,
) -> None:
    plain = Signal("plain")

    async def plan():
        a = yield Msg("stage", plain)
        b = yield Msg("unstage", plain)
        yield Return((a, b))

    assert (await RE(plan())).plan_result == ([], [])


async def test_stage_and_unstage_call_the_device_once_each(RE: RunEngine) -> None:
    dev = Stageable("dev")
    await RE([Msg("stage", dev), Msg("unstage", dev)])
    assert dev.log == [("stage", None), ("unstage", None)]


async def test_a_device_the_plan_forgets_to_unstage_is_unstaged_at_the_end(
    RE: RunEngine,
) -> None:
    dev = Stageable("dev")
    result = await RE([Msg("open_run"), Msg("stage", dev), Msg("close_run")])
    assert result.exit_status == "success"
    assert dev.log == [("stage", None), ("unstage", None)]


async def test_staged_devices_are_unstaged_in_reverse_order_when_the_plan_raises(
    RE: RunEngine, checker: DocChecker
) -> None:
    order: list[str] = []

    class Ordered(Stageable):
        def unstage(self) -> DoneStatus:
            order.append(self.name)
            return super().unstage()

    first, second = Ordered("first"), Ordered("second")

    async def plan():
        yield Msg("open_run")
        yield Msg("stage", first)
        yield Msg("stage", second)
        raise ValueError("plan bug")

    with pytest.raises(ValueError, match="plan bug"):
        await RE(plan())
    assert order == ["second", "first"]
    assert checker.of("stop")[0]["exit_status"] == "fail"


async def test_an_ophyd_v1_style_device_whose_unstage_returns_a_list_is_unstaged_at_the_end(
    RE: RunEngine,
) -> None:
    # ophyd v1 devices (and support.Detector) return the list of staged devices from
    # stage()/unstage(), not statuses; the end-of-plan unstage must accept that.
    det = Detector("det")
    result = await RE([Msg("open_run"), Msg("stage", det), Msg("close_run")])
    assert result.exit_status == "success"
    assert det.staged is False


async def test_an_explicitly_unstaged_device_is_not_unstaged_again(RE: RunEngine) -> None:
    det = Detector("det")

    async def plan():
        staged = yield Msg("stage", det)
        unstaged = yield Msg("unstage", det)
        yield Return((staged, unstaged))

    staged, unstaged = (await RE(plan())).plan_result
    assert staged == [det]
    assert unstaged == [det]
    assert det.log.count(("unstage", None)) == 1


# -- stop / locate --------------------------------------------------------------------------------


async def test_stop_calls_the_devices_stop(RE: RunEngine) -> None:
    motor = Signal("motor")

    async def plan():
        reply = yield Msg("stop", motor)
        yield Return(reply)

    assert (await RE(plan())).plan_result is None
    assert motor.log == [("stop", False)]


async def test_stop_of_an_object_without_stop_names_it(RE: RunEngine) -> None:
    with pytest.raises(DeviceError, match="'stop' message to plain_thing"):
        await RE([Msg("stop", NotADevice())])


async def test_locate_an_ophyd_async_soft_signal(RE: RunEngine) -> None:
    sig = await soft_signal("sig", 3.0)

    async def plan():
        yield Msg("set", sig, 4.0, group="s")
        yield Msg("wait", None, "s")
        location = yield Msg("locate", sig)
        yield Return(location)

    assert (await RE(plan())).plan_result == {"setpoint": 4.0, "readback": 4.0}


async def test_locate_several_objects_replies_a_list_and_squeeze_false_keeps_one_in_a_list(
    RE: RunEngine,
) -> None:
    a, b = await soft_signal("a", 1.0), await soft_signal("b", 2.0)

    async def plan():
        both = yield Msg("locate", a, b)
        one = yield Msg("locate", a, squeeze=False)
        yield Return((both, one))

    both, one = (await RE(plan())).plan_result
    assert both == [{"setpoint": 1.0, "readback": 1.0}, {"setpoint": 2.0, "readback": 2.0}]
    assert one == [{"setpoint": 1.0, "readback": 1.0}]


async def test_locate_of_an_object_without_locate_names_it(RE: RunEngine) -> None:
    with pytest.raises(DeviceError, match="'locate' of plain_thing"):
        await RE([Msg("locate", NotADevice())])


class SlowLocatable(Signal):
    """``locate()`` takes a few turns of the loop and logs when it starts and ends."""

    def __init__(self, name: str, journal: list[str]) -> None:
        super().__init__(name)
        self.journal = journal

    async def locate(self) -> dict[str, Any]:
        self.journal.append(f"{self.name} starts")
        for _ in range(3):
            await asyncio.sleep(0)
        self.journal.append(f"{self.name} ends")
        return {"setpoint": self.value, "readback": self.value}


async def test_locate_of_several_objects_locates_them_concurrently(RE: RunEngine) -> None:
    # as bluesky: every locate() starts before any ends, so the locations are of one instant
    journal: list[str] = []
    a, b = SlowLocatable("a", journal), SlowLocatable("b", journal)
    a.value, b.value = 1.0, 2.0

    async def plan():
        locations = yield Msg("locate", a, b)
        yield Return(locations)

    locations = (await RE(plan())).plan_result
    assert locations == [{"setpoint": 1.0, "readback": 1.0}, {"setpoint": 2.0, "readback": 2.0}]
    assert journal[:2] == ["a starts", "b starts"]


async def test_locate_checks_every_object_before_locating_any(RE: RunEngine) -> None:
    journal: list[str] = []
    with pytest.raises(DeviceError, match="'locate' of plain_thing"):
        await RE([Msg("locate", SlowLocatable("a", journal), NotADevice())])
    assert journal == []


# -- declare_stream -----------------------------------------------------------------------------


async def test_declare_stream_emits_the_descriptor_ahead_and_replies_its_uid(
    RE: RunEngine, checker: DocChecker
) -> None:
    det, motor = Signal("det"), Signal("motor")

    async def plan():
        yield Msg("open_run")
        uid = yield Msg("declare_stream", None, motor, det, name="primary")
        for msg in one_event(motor, det):
            yield msg
        yield Msg("close_run")
        yield Return(uid)

    uid = (await RE(plan())).plan_result
    assert checker.names() == ["start", "descriptor", "event", "stop"]
    (descriptor,) = checker.of("descriptor")
    assert uid == descriptor["uid"]
    assert descriptor["name"] == "primary"
    assert set(descriptor["data_keys"]) == {"det", "motor"}
    assert checker.of("event")[0]["descriptor"] == uid


async def test_declare_stream_without_a_name_or_outside_a_run_is_refused(RE: RunEngine) -> None:
    det = Signal("det")
    with pytest.raises(PlanError, match="'declare_stream' needs name="):
        await RE([Msg("open_run"), Msg("declare_stream", None, det), Msg("close_run")])
    with pytest.raises(IllegalMessageSequence, match="'declare_stream' needs an open run"):
        await RE([Msg("declare_stream", None, det, name="primary")])


# -- monitor / unmonitor ------------------------------------------------------------------------


async def test_monitor_turns_updates_into_events_of_the_monitor_stream(
    RE: RunEngine, checker: DocChecker
) -> None:
    sig = await soft_signal("sig", 1.0)

    async def plan():
        yield Msg("open_run")
        yield Msg("monitor", sig)
        for value in (2.0, 3.0):
            yield Msg("set", sig, value, group="s")
            yield Msg("wait", None, "s")
        yield Msg("unmonitor", sig)
        yield Msg("set", sig, 99.0, group="s")  # not monitored any more
        yield Msg("wait", None, "s")
        yield Msg("close_run")

    async with asyncio.timeout(10):
        await RE(plan())
    (descriptor,) = checker.of("descriptor")
    assert descriptor["name"] == "sig_monitor"
    events = checker.of("event")
    assert [e["data"]["sig"] for e in events] == [1.0, 2.0, 3.0]  # initial value, then updates
    assert {e["descriptor"] for e in events} == {descriptor["uid"]}
    assert checker.of("stop")[0]["num_events"] == {"sig_monitor": 3}


async def test_monitor_with_a_stream_name(RE: RunEngine, checker: DocChecker) -> None:
    sig = await soft_signal("sig", 1.0)
    async with asyncio.timeout(10):
        await RE([Msg("open_run"), Msg("monitor", sig, name="beam"), Msg("unmonitor", sig),
                  Msg("close_run")])  # fmt: skip
    assert checker.of("descriptor")[0]["name"] == "beam"


async def test_a_signal_still_monitored_at_close_run_is_unmonitored_automatically(
    RE: RunEngine, checker: DocChecker
) -> None:
    sig = await soft_signal("sig", 1.0)

    async def plan():
        yield Msg("open_run")
        yield Msg("monitor", sig)
        yield Msg("set", sig, 2.0, group="s")
        yield Msg("wait", None, "s")
        yield Msg("close_run")  # no unmonitor: close_run stops the monitor
        yield Msg("set", sig, 5.0, group="s")
        yield Msg("wait", None, "s")
        yield Msg("open_run")
        yield Msg("monitor", sig)  # "already monitored" if the first one were still alive
        yield Msg("close_run")

    async with asyncio.timeout(10):
        await RE(plan())
    assert [s["num_events"] for s in checker.of("stop")] == [
        {"sig_monitor": 2},
        {"sig_monitor": 1},
    ]
    assert [e["data"]["sig"] for e in checker.of("event")] == [1.0, 2.0, 5.0]


async def test_monitor_outside_a_run_and_unmonitor_of_an_unmonitored_signal_are_refused(
    RE: RunEngine,
) -> None:
    sig = await soft_signal("sig", 1.0)
    with pytest.raises(IllegalMessageSequence, match="'monitor' needs an open run"):
        await RE([Msg("monitor", sig)])
    with pytest.raises(IllegalMessageSequence, match="'unmonitor' of sig, which is not monitored"):
        await RE([Msg("open_run"), Msg("unmonitor", sig), Msg("close_run")])


async def test_monitor_of_an_object_that_cannot_be_subscribed_names_it(RE: RunEngine) -> None:
    with pytest.raises(DeviceError, match="'monitor' message to plain_thing"):
        await RE([Msg("open_run"), Msg("monitor", NotADevice()), Msg("close_run")])


# -- subscribe / unsubscribe messages -----------------------------------------------------------


async def test_subscribe_message_lasts_until_the_plan_ends(RE: RunEngine) -> None:
    det = Signal("det")
    seen: list[str] = []

    def cb(name: str, doc: dict[str, Any]) -> None:
        seen.append(name)

    async def plan():
        token = yield Msg("subscribe", None, cb, "all")
        yield Msg("open_run")
        for msg in one_event(det):
            yield msg
        yield Msg("close_run")
        yield Return(token)

    result = await RE(plan())
    assert isinstance(result.plan_result, int)
    assert seen == ["start", "descriptor", "event", "stop"]
    await RE([Msg("open_run"), Msg("close_run")])  # a later plan: not subscribed any more
    assert seen == ["start", "descriptor", "event", "stop"]


async def test_subscribe_message_with_a_name_filter_via_bluesky_plan_stubs(RE: RunEngine) -> None:
    det = Signal("det")
    seen: list[str] = []

    def cb(name: str, doc: dict[str, Any]) -> None:
        seen.append(name)

    async def plan():
        token = yield bluesky_bps.subscribe("event", cb)  # Msg('subscribe', None, cb, 'event')
        yield Msg("open_run")
        for msg in one_event(det) + one_event(det):
            yield msg
        yield bluesky_bps.unsubscribe(token)
        for msg in one_event(det):
            yield msg
        yield Msg("close_run")

    await RE(plan())
    assert seen == ["event", "event"]


async def test_unsubscribe_message_of_an_unknown_token_is_refused(RE: RunEngine) -> None:
    with pytest.raises(IllegalMessageSequence, match="'unsubscribe' of token 12345"):
        await RE([Msg("unsubscribe", None, 12345)])


async def test_subscribe_message_with_a_bad_callback_raises_in_the_plan(RE: RunEngine) -> None:
    async def plan():
        try:
            yield Msg("subscribe", None, "not callable", "all")
        except TypeError as exc:
            yield Return(str(exc))

    assert "callable" in (await RE(plan())).plan_result


# -- wait_for / await ---------------------------------------------------------------------------


async def test_wait_for_awaits_what_each_factory_makes_and_replies_the_futures(
    RE: RunEngine,
) -> None:
    ready = asyncio.Event()

    async def first() -> str:
        await ready.wait()
        return "first"

    async def second() -> str:
        ready.set()
        return "second"

    async def plan():
        reply = yield Msg("wait_for", None, [first, second])
        yield Return(reply)

    async with asyncio.timeout(10):
        futures = (await RE(plan())).plan_result
    # as bluesky: the futures, in the order of the factories, all finished
    assert all(isinstance(f, asyncio.Future) and f.done() for f in futures)
    assert [f.result() for f in futures] == ["first", "second"]


async def test_wait_for_replies_a_failed_awaitable_instead_of_raising(RE: RunEngine) -> None:
    # bluesky's plans look at the futures: a failure is theirs to raise or to handle
    async def broken() -> None:
        await asyncio.sleep(0)
        raise KeyError("no such PV")

    async def fine() -> int:
        return 1

    async def plan():
        futures = yield Msg("wait_for", None, [broken, fine])
        yield Return([type(f.exception()).__name__ for f in futures])

    async with asyncio.timeout(10):
        assert (await RE(plan())).plan_result == ["KeyError", "NoneType"]


async def test_wait_for_with_a_timeout_raises_a_bluesky_wait_for_timeout_error(
    RE: RunEngine,
) -> None:
    never = asyncio.Event()
    theirs = asyncio.ensure_future(never.wait())  # the plan's own task: not acq's to cancel
    cancelled = asyncio.Event()

    async def forever() -> None:
        try:
            await never.wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    async def plan():
        try:
            yield Msg("wait_for", None, [forever, lambda: theirs], timeout=0.01)
        except BlueskyWaitForTimeoutError as exc:
            yield Return(exc)

    async with asyncio.timeout(10):
        exc = (await RE(plan())).plan_result
        await cancelled.wait()  # the task wait_for made for forever() is cancelled
    assert isinstance(exc, WaitTimeoutError)
    message = str(exc)
    assert "'wait_for' timed out after 0.01 s" in message
    assert "2 of 2" in message
    assert "forever" in message  # names what is still running
    assert "Plan failed to complete in the specified time" in message  # bluesky's tests match it
    assert not theirs.done()
    theirs.cancel()


async def test_wait_for_that_ends_early_by_return_when_raises_as_bluesky_does(
    RE: RunEngine,
) -> None:
    never = asyncio.Event()

    async def quick() -> None:
        pass

    async def plan():
        yield Msg("wait_for", None, [quick, never.wait], return_when=asyncio.FIRST_COMPLETED)

    with pytest.raises(WaitTimeoutError, match=r"return_when=FIRST_COMPLETED.*1 of 2"):
        async with asyncio.timeout(10):
            await RE(plan())


async def test_wait_for_with_an_unknown_keyword_is_a_plan_error(RE: RunEngine) -> None:
    async def quick() -> None:
        pass

    with pytest.raises(PlanError, match=r"'wait_for'.*'timeuot'"):
        await RE([Msg("wait_for", None, [quick], timeuot=1)])


async def test_wait_for_of_something_not_a_function_is_a_plan_error(RE: RunEngine) -> None:
    async def quick() -> None:
        pass

    with pytest.raises(PlanError, match=r"'wait_for'.*functions"):
        await RE([Msg("wait_for", None, [quick, 42])])


async def test_wait_for_of_no_factories_replies_an_empty_list(RE: RunEngine) -> None:
    async def plan():
        reply = yield Msg("wait_for", None, [])
        yield Return(reply)

    assert (await RE(plan())).plan_result == []


async def test_cancelling_a_call_during_wait_for_cancels_what_wait_for_started(
    RE: RunEngine,
) -> None:
    started, cancelled = asyncio.Event(), asyncio.Event()

    async def forever() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    call = asyncio.ensure_future(RE([Msg("wait_for", None, [forever])]))
    async with asyncio.timeout(10):
        await started.wait()
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        await cancelled.wait()  # never set: the timeout fails the test


async def test_await_a_coroutine_replies_its_result(RE: RunEngine) -> None:
    async def answer() -> int:
        await asyncio.sleep(0)
        return 42

    async def plan():
        reply = yield Msg("await", answer())
        yield Return(reply)

    assert (await RE(plan())).plan_result == 42


async def test_await_a_function_with_args_and_kwargs(RE: RunEngine) -> None:
    async def add(a: int, b: int, *, scale: int = 1) -> int:
        return (a + b) * scale

    async def plan():
        reply = yield Msg("await", add, 2, 3, scale=10)
        yield Return(reply)

    assert (await RE(plan())).plan_result == 50


async def test_await_of_something_not_awaitable_is_a_plan_error(RE: RunEngine) -> None:
    with pytest.raises(PlanError, match="'await' needs an awaitable"):
        await RE([Msg("await", lambda: 5)])


# -- input / RE_class ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "msg",
    [Msg("input", prompt="sample? "), Msg("input", None, "sample? "), None],
    ids=["keyword", "positional", "bluesky-input_plan"],
)
async def test_input_replies_the_line_typed_without_blocking_the_loop(
    RE: RunEngine, monkeypatch: pytest.MonkeyPatch, msg: Msg | None
) -> None:
    loop_ran = threading.Event()
    prompts: list[str] = []

    def fake_input(prompt: str = "") -> str:  # the user types while the loop goes on
        prompts.append(prompt)
        return "silicon" if loop_ran.wait(5) else "the loop was blocked"

    monkeypatch.setattr("builtins.input", fake_input)
    asyncio.get_running_loop().call_later(0.001, loop_ran.set)

    def plan():
        if msg is None:
            return (yield from bluesky_bps.input_plan("sample? "))
        return (yield msg)

    async with asyncio.timeout(10):
        assert (await RE(plan())).plan_result == "silicon"
    assert prompts == ["sample? "]


async def test_re_class_replies_the_class_of_the_engine_running_the_plan() -> None:
    class MyEngine(RunEngine):
        pass

    def plan():
        cls = yield Msg("RE_class")
        return cls

    assert (await RunEngine()(plan())).plan_result is RunEngine
    assert (await MyEngine()(plan())).plan_result is MyEngine


# -- custom commands ----------------------------------------------------------------------------


@pytest.mark.parametrize("is_async", [False, True])
async def test_a_registered_custom_command_gets_the_message_and_replies(
    RE: RunEngine, is_async: bool
) -> None:
    calls: list[Any] = []

    def handler(msg: Any) -> str:
        calls.append((msg.command, msg.obj, msg.args, dict(msg.kwargs)))
        return f"beeped {msg.args[0]}"

    async def async_handler(msg: Any) -> str:
        await asyncio.sleep(0)
        return handler(msg)

    RE.register_command("beep", async_handler if is_async else handler)
    det = Signal("det")

    async def plan():
        reply = yield Msg("beep", det, 440, loud=True)
        yield Return(reply)

    assert (await RE(plan())).plan_result == "beeped 440"
    assert calls == [("beep", det, (440,), {"loud": True})]


async def test_register_command_refuses_a_non_callable_handler() -> None:
    with pytest.raises(TypeError, match="'beep'"):
        RunEngine().register_command("beep", "not callable")  # type: ignore[arg-type]


async def test_a_custom_command_can_replace_a_built_in_one_per_engine(RE: RunEngine) -> None:
    RE.register_command("null", lambda msg: "custom null")

    async def plan():
        reply = yield Msg("null")
        yield Return(reply)

    assert (await RE(plan())).plan_result == "custom null"
    assert (await RunEngine()(plan())).plan_result is None  # other engines unaffected
