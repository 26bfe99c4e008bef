"""Suspenders: each class's trip/clear logic on a soft signal, and suspensions of real plans.

Sequencing uses asyncio.Event markers and the engine's state observer, never wall-clock
timing; "not done yet" is checked after a few loop iterations.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import pytest
from acq.devices.sim import ShutterState, SimBeamline, sim_beamline
from ophyd_async.core import SignalRW, soft_signal_rw
from support import DocChecker

from acq import Msg, RunAborted, RunEngine, RunEngineInterrupted, State, StateError
from acq import suspenders as suspenders_module
from acq.suspenders import (
    SuspendBoolHigh,
    SuspendBoolLow,
    SuspendCeiling,
    Suspender,
    SuspendFloor,
    SuspendOutsideBand,
    SuspendWhenChanged,
)


# -- helpers --------------------------------------------------------------------------------
class FakeEngine:
    """Records what a suspender asks of the engine."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []

    def request_suspend(self, ready: Callable[[], Any], **kwargs: Any) -> None:
        self.requests.append({"ready": ready, **kwargs})


class FakeSignal:
    """A Subscribable that calls back ophyd-style (``value=``) when told to."""

    def __init__(self, name: str = "fake") -> None:
        self.name = name
        self.callbacks: list[Callable[..., None]] = []

    def subscribe(self, function: Callable[..., None]) -> None:
        self.callbacks.append(function)

    def clear_sub(self, function: Callable[..., None]) -> None:
        self.callbacks.remove(function)

    def emit(self, value: Any) -> None:
        for cb in list(self.callbacks):
            cb(value=value, old_value=None, timestamp=0.0)


async def spin(n: int = 5) -> None:
    """Give the loop a few iterations."""
    for _ in range(n):
        await asyncio.sleep(0)


async def installed(suspender: Suspender) -> FakeEngine:
    engine = FakeEngine()
    suspender.install(engine)
    await spin()
    return engine


async def beam(value: float = 500.0) -> SignalRW[float]:
    return soft_signal_rw(float, value, name="beam")


def state_log(RE: RunEngine) -> tuple[list[tuple[State, State]], Callable[[State], asyncio.Event]]:
    """Record state changes; ``reached(state)`` is an Event set when it is entered."""
    changes: list[tuple[State, State]] = []
    events: dict[State, asyncio.Event] = {}

    def observer(old: State, new: State) -> None:
        changes.append((old, new))
        events.setdefault(new, asyncio.Event()).set()

    RE.observe_state(observer)
    return changes, lambda state: events.setdefault(state, asyncio.Event())


async def wait_for(event: asyncio.Event) -> None:
    async with asyncio.timeout(10):  # a safety net against a hang, not a timing check
        await event.wait()


def event_positions(checker: DocChecker, key: str = "x") -> list[float]:
    return [e["data"][key] for e in checker.of("event")]


@pytest.fixture
async def bl() -> SimBeamline:
    return await sim_beamline(instant=True)


def scan(
    bl: SimBeamline,
    positions: list[float],
    hooks: dict[int, Callable[[], Coroutine[Any, Any, Any]]] | None = None,
) -> Iterator[Msg]:
    """A scan-shaped plan; ``hooks[i]`` is awaited at point i (1-based) after the move."""
    hooks = hooks or {}
    yield Msg("open_run", plan_name="suspended_scan")
    for i, x in enumerate(positions, start=1):
        yield Msg("checkpoint")
        yield Msg("set", bl.x, x, group="m")
        yield Msg("wait", None, group="m")
        if i in hooks:
            yield Msg("await", hooks[i])  # a function: called anew if the point is replayed
        yield Msg("trigger", bl.det, group="d")
        yield Msg("wait", None, group="d")
        yield Msg("create", name="primary")
        yield Msg("read", bl.x)
        yield Msg("read", bl.det)
        yield Msg("save")
    yield Msg("close_run")


POSITIONS = [float(i) for i in range(-5, 5)]  # 10 points


# -- construction -----------------------------------------------------------------------------
async def test_floor_with_resume_below_suspend_threshold_names_both() -> None:
    sig = await beam()
    with pytest.raises(ValueError, match=r"resume_thresh \(50\).*suspend_thresh \(100\)"):
        SuspendFloor(sig, 100, 50)


async def test_ceiling_with_resume_above_suspend_threshold_names_both() -> None:
    sig = await beam()
    with pytest.raises(ValueError, match=r"resume_thresh \(150\).*suspend_thresh \(100\)"):
        SuspendCeiling(sig, 100, 150)


@pytest.mark.parametrize(
    ("cls", "args", "kwargs", "error", "words"),
    [
        (SuspendFloor, ("100",), {}, TypeError, "suspend_thresh"),
        (SuspendFloor, (100, "x"), {}, TypeError, "resume_thresh"),
        (SuspendFloor, (float("nan"),), {}, ValueError, "suspend_thresh"),
        (SuspendFloor, (100,), {"sleep": -1}, ValueError, "sleep"),
        (SuspendFloor, (100,), {"sleep": "1"}, TypeError, "sleep"),
        (SuspendFloor, (100,), {"sleep": float("inf")}, ValueError, "sleep"),
        (SuspendFloor, (100,), {"pre_plan": [Msg("null")]}, TypeError, "pre_plan"),
        (SuspendFloor, (100,), {"post_plan": 42}, TypeError, "post_plan"),
        (SuspendFloor, (100,), {"tripped_message": 3}, TypeError, "tripped_message"),
        (SuspendOutsideBand, (10, 10), {}, ValueError, "band_bottom"),
        (SuspendOutsideBand, (20, 10), {}, ValueError, "band_top"),
        (SuspendOutsideBand, (None, 10), {}, TypeError, "band_bottom"),
        (SuspendWhenChanged, (1,), {"allow_resume": "yes"}, TypeError, "allow_resume"),
    ],
)
async def test_bad_arguments_are_refused_at_construction_naming_the_argument(
    cls: Any, args: tuple[Any, ...], kwargs: dict[str, Any], error: type[Exception], words: str
) -> None:
    sig = await beam()
    with pytest.raises(error, match=words):
        cls(sig, *args, **kwargs)


async def test_a_signal_that_cannot_be_subscribed_to_is_refused() -> None:
    not_a_signal: Any = object()
    with pytest.raises(TypeError, match="signal must be subscribable"):
        SuspendBoolHigh(not_a_signal)


async def test_module_exports_exactly_the_suspenders() -> None:
    assert set(suspenders_module.__all__) == {
        "Suspender",
        "SuspendFloor",
        "SuspendCeiling",
        "SuspendBoolHigh",
        "SuspendBoolLow",
        "SuspendOutsideBand",
        "SuspendWhenChanged",
    }


async def test_repr_names_the_class_signal_and_arguments() -> None:
    sig = await beam()

    def close_shutter() -> Iterator[Msg]:
        yield Msg("null")

    s = SuspendFloor(sig, 100, 150, sleep=2, pre_plan=close_shutter, tripped_message="dump")
    text = repr(s)
    assert text.startswith("SuspendFloor(beam, suspend_thresh=100, resume_thresh=150")
    assert "sleep=2" in text
    assert "close_shutter" in text
    assert "'dump'" in text
    assert (
        repr(SuspendOutsideBand(sig, 1, 2)) == "SuspendOutsideBand(beam, band_bottom=1, band_top=2)"
    )
    assert repr(SuspendBoolLow(sig)) == "SuspendBoolLow(beam)"


# -- trip and clear, class by class --------------------------------------------------------
async def test_floor_trips_below_and_clears_only_at_the_resume_threshold() -> None:
    sig = await beam()
    s = SuspendFloor(sig, 100, 150, tripped_message="beam dump")
    engine = await installed(s)
    assert not s.tripped
    await sig.set(100)  # not below: no trip
    assert not s.tripped
    await sig.set(99.5)
    assert s.tripped
    assert "beam = 99.5" in s.justification
    assert "100" in s.justification
    assert "150" in s.justification
    assert s.justification.endswith("beam dump")
    await spin()
    assert len(engine.requests) == 1
    request = engine.requests[0]
    assert request["justification"] == s.justification
    assert request["ready"] == s.wait_ready
    assert request["pre_plan"] is None
    assert request["post_plan"] is None

    ready = asyncio.create_task(s.wait_ready())
    await sig.set(120)  # between the thresholds: still tripped (hysteresis)
    await spin()
    assert s.tripped
    assert not ready.done()
    await sig.set(150)
    assert not s.tripped
    assert s.justification == ""
    await wait_for_task(ready)
    await sig.set(120)  # above the floor: no new trip
    assert not s.tripped
    await spin()
    assert len(engine.requests) == 1


async def wait_for_task(task: asyncio.Task[Any]) -> None:
    async with asyncio.timeout(10):  # a safety net against a hang, not a timing check
        await task


async def test_ceiling_trips_above_and_clears_at_or_below_the_resume_threshold() -> None:
    sig = await beam(10)
    s = SuspendCeiling(sig, 100, 80)
    engine = await installed(s)
    await sig.set(100)
    assert not s.tripped
    await sig.set(101)
    assert s.tripped
    assert "rose above 100" in s.justification
    ready = asyncio.create_task(s.wait_ready())
    await sig.set(90)
    await spin()
    assert s.tripped
    assert not ready.done()
    await sig.set(80)
    await wait_for_task(ready)
    assert not s.tripped
    await spin()
    assert len(engine.requests) == 1


async def test_threshold_default_resume_is_the_suspend_threshold() -> None:
    sig = await beam()
    s = SuspendFloor(sig, 100)
    assert s.resume_thresh == 100
    await installed(s)
    await sig.set(99)
    assert s.tripped
    await sig.set(100)
    assert not s.tripped


async def test_bool_high_suspends_while_truthy() -> None:
    sig = soft_signal_rw(bool, False, name="interlock")
    s = SuspendBoolHigh(sig)
    await installed(s)
    assert not s.tripped
    await sig.set(True)
    assert s.tripped
    assert "interlock = True is high" in s.justification
    ready = asyncio.create_task(s.wait_ready())
    await spin()
    assert not ready.done()
    await sig.set(False)
    await wait_for_task(ready)


async def test_bool_low_suspends_while_falsy() -> None:
    sig = soft_signal_rw(int, 1, name="permit")
    s = SuspendBoolLow(sig)
    await installed(s)
    assert not s.tripped
    await sig.set(0)
    assert s.tripped
    assert "permit = 0 is low" in s.justification
    ready = asyncio.create_task(s.wait_ready())
    await spin()
    assert not ready.done()
    await sig.set(2)
    await wait_for_task(ready)


async def test_outside_band_includes_its_bounds() -> None:
    sig = await beam(15)
    s = SuspendOutsideBand(sig, 10, 20)
    engine = await installed(s)
    for inside in (10, 20, 15):
        await sig.set(inside)
        assert not s.tripped, inside
    await sig.set(20.5)
    assert s.tripped
    assert "[10, 20]" in s.justification
    await sig.set(9)  # still outside: no second request
    ready = asyncio.create_task(s.wait_ready())
    await spin()
    assert not ready.done()
    await sig.set(10)
    await wait_for_task(ready)
    await sig.set(9.9)
    assert s.tripped
    await spin()
    assert len(engine.requests) == 2


async def test_when_changed_takes_the_first_value_and_never_clears_by_default() -> None:
    sig = soft_signal_rw(str, "hutch A", name="owner")
    s = SuspendWhenChanged(sig)
    await installed(s)
    assert s.expected_value == "hutch A"
    assert not s.tripped
    await sig.set("hutch B")
    assert s.tripped
    assert "'hutch B' changed from 'hutch A'" in s.justification
    assert "allow_resume=False" in s.justification
    ready = asyncio.create_task(s.wait_ready())
    await sig.set("hutch A")  # back, but resuming is not allowed
    await spin()
    assert s.tripped
    assert not ready.done()
    s.remove()  # the way out short of an abort: it releases the waiting plan
    await wait_for_task(ready)
    assert not s.tripped


async def test_when_changed_with_allow_resume_clears_when_back_to_expected() -> None:
    sig = soft_signal_rw(str, "hutch A", name="owner")
    s = SuspendWhenChanged(sig, expected_value="hutch A", allow_resume=True)
    await installed(s)
    await sig.set("hutch C")
    assert s.tripped
    ready = asyncio.create_task(s.wait_ready())
    await sig.set("hutch B")
    await spin()
    assert not ready.done()
    await sig.set("hutch A")
    await wait_for_task(ready)


async def test_when_changed_with_an_expected_value_trips_on_install() -> None:
    sig = soft_signal_rw(str, "hutch B", name="owner")
    s = SuspendWhenChanged(sig, expected_value="hutch A", allow_resume=True)
    await installed(s)
    assert s.tripped


async def test_a_value_that_is_not_a_number_trips_a_threshold() -> None:
    sig = FakeSignal("current")
    s = SuspendFloor(sig, 100)
    await installed(s)
    sig.emit(200.0)
    assert not s.tripped
    sig.emit(None)  # e.g. a disconnected PV
    assert s.tripped
    assert "not a number" in s.justification
    sig.emit(float("nan"))
    assert s.tripped
    sig.emit(200)
    assert not s.tripped


async def test_wait_ready_returns_at_once_when_not_tripped() -> None:
    sig = await beam()
    s = SuspendFloor(sig, 100, sleep=5)
    await installed(s)
    await s.wait_ready()  # the sleep is only after a trip has cleared


async def test_sleep_restarts_when_the_condition_trips_again_during_it() -> None:
    sig = await beam()
    s = SuspendFloor(sig, 100, sleep=0.05)
    await installed(s)
    await sig.set(0)
    ready = asyncio.create_task(s.wait_ready())
    await spin()
    await sig.set(500)  # clears: the sleep begins
    await spin()
    await sig.set(0)  # trips again within the sleep
    await asyncio.sleep(0.2)  # longer than the sleep: it must still wait (it is tripped)
    assert not ready.done()
    loop = asyncio.get_running_loop()
    cleared_at = loop.time()
    await sig.set(500)
    await wait_for_task(ready)
    assert loop.time() - cleared_at >= 0.05 - 0.005  # never earlier than the sleep


async def test_update_from_another_thread_is_moved_onto_the_loop() -> None:
    sig = FakeSignal("vacuum_ok")
    s = SuspendBoolLow(sig)
    engine = await installed(s)
    sig.emit(True)
    thread = threading.Thread(target=sig.emit, args=(False,))
    thread.start()
    thread.join()
    await spin()
    assert s.tripped
    await spin()
    assert len(engine.requests) == 1


def test_a_suspender_installed_outside_a_loop_still_trips_and_asks() -> None:
    sig = FakeSignal("current")
    s = SuspendFloor(sig, 100)
    engine = FakeEngine()
    s.install(engine)
    sig.emit(5.0)
    assert s.tripped
    assert len(engine.requests) == 1
    s.remove()


async def test_remove_unsubscribes_and_a_removed_suspender_ignores_the_signal() -> None:
    sig = FakeSignal("current")
    s = SuspendFloor(sig, 100)
    engine = await installed(s)
    assert len(sig.callbacks) == 1
    s.remove()
    assert sig.callbacks == []
    s.remove()  # twice is harmless
    await spin()
    assert not s.tripped
    assert engine.requests == []


async def test_a_trip_that_clears_before_the_request_goes_out_is_not_requested() -> None:
    sig = FakeSignal("current")
    s = SuspendFloor(sig, 100)
    engine = await installed(s)
    sig.emit(0.0)
    sig.emit(500.0)  # within the same loop iteration
    await spin()
    assert engine.requests == []


async def test_installing_on_a_second_engine_is_refused() -> None:
    sig = await beam()
    s = SuspendFloor(sig, 100)
    await installed(s)
    with pytest.raises(StateError, match="another RunEngine"):
        s.install(FakeEngine())


# -- with the RunEngine ---------------------------------------------------------------------
async def test_beam_loss_mid_scan_suspends_and_the_point_in_flight_is_measured_again(
    RE: RunEngine, checker: DocChecker, bl: SimBeamline
) -> None:
    log: list[str] = []
    changes, reached = state_log(RE)
    in_flight = asyncio.Event()
    hold = asyncio.Event()  # never set: the point waits here until the suspension cuts in
    calls = 0

    async def point_five() -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            log.append("point 5 in flight")
            in_flight.set()
            await hold.wait()
        else:
            log.append("point 5 replayed")

    pre_plan_ran = asyncio.Event()

    async def note(what: str) -> None:
        log.append(what)
        if what == "pre_plan":
            pre_plan_ran.set()

    def close_shutter() -> Iterator[Msg]:
        yield Msg("await", note("pre_plan"))
        yield Msg("set", bl.shutter, ShutterState.CLOSED, group="shutter")
        yield Msg("wait", None, group="shutter")

    def open_shutter() -> Iterator[Msg]:
        yield Msg("await", note("post_plan"))
        yield Msg("set", bl.shutter, ShutterState.OPEN, group="shutter")
        yield Msg("wait", None, group="shutter")

    floor = SuspendFloor(bl.beam_current, 100, 400, pre_plan=close_shutter, post_plan=open_shutter)
    RE.install_suspender(floor)

    def on_event(name: str, doc: dict[str, Any]) -> None:
        log.append(f"event {doc['seq_num']}")

    RE.subscribe(on_event, "event", thread=False)

    async def operator() -> None:
        await wait_for(in_flight)
        await bl.beam_current.set(5.0)  # beam lost while point 5 is measured
        await wait_for(reached(State.SUSPENDING))
        log.append("suspended")
        await wait_for(pre_plan_ran)
        await bl.beam_current.set(300.0)  # recovering, not yet at resume_thresh
        log.append("beam at 300")
        await spin()
        await bl.beam_current.set(450.0)
        log.append("beam restored")

    async with asyncio.TaskGroup() as tg:
        tg.create_task(operator())
        result = await RE(scan(bl, POSITIONS, {5: point_five}))

    assert result.exit_status == "success"
    events = checker.of("event")
    assert [e["seq_num"] for e in events] == list(range(1, 11))
    assert event_positions(checker) == POSITIONS  # point 5 (x=0) exactly once, in order
    assert [new for _, new in changes] == [
        State.RUNNING,
        State.SUSPENDING,
        State.RUNNING,
        State.IDLE,
    ]
    # subscribers run in their own tasks: documents are ordered against the markers only
    # where the engine makes it so (nothing of point 5 is emitted before the beam is back)
    markers = [m for m in log if not m.startswith("event")]
    assert markers[:2] == ["point 5 in flight", markers[1]]
    assert sorted(markers[1:3]) == ["pre_plan", "suspended"]  # pre_plan runs in SUSPENDING
    assert markers[3:] == ["beam at 300", "beam restored", "post_plan", "point 5 replayed"]
    assert log.index("event 5") > log.index("point 5 replayed")
    assert await bl.shutter.readback.get_value() == ShutterState.OPEN
    assert not floor.tripped
    assert RE.suspenders == (floor,)  # installed with RE.install_suspender: stays


async def test_a_tripped_suspender_delays_the_start_of_a_plan(
    RE: RunEngine, checker: DocChecker, bl: SimBeamline
) -> None:
    log: list[str] = []
    changes, reached = state_log(RE)
    await bl.beam_current.set(0.0)
    RE.install_suspender(SuspendFloor(bl.beam_current, 100))
    RE.subscribe(lambda name, doc: log.append(name), thread=False)

    async def operator() -> None:
        await wait_for(reached(State.SUSPENDING))
        await spin()
        log.append("restored")
        await bl.beam_current.set(500.0)

    async with asyncio.TaskGroup() as tg:
        tg.create_task(operator())
        await RE(scan(bl, POSITIONS[:2]))

    assert log[0] == "restored"
    assert log[1] == "start"
    assert len(checker.of("event")) == 2
    assert [new for _, new in changes] == [
        State.RUNNING,
        State.SUSPENDING,
        State.RUNNING,
        State.IDLE,
    ]


async def test_sleep_after_recovery_delays_the_resume(
    RE: RunEngine, checker: DocChecker, bl: SimBeamline
) -> None:
    log: list[str] = []
    _, reached = state_log(RE)
    in_flight = asyncio.Event()
    loop = asyncio.get_running_loop()
    restored_at: list[float] = []
    resumed_at: list[float] = []

    async def point_three() -> None:
        if not in_flight.is_set():
            in_flight.set()
            await asyncio.Event().wait()
        else:
            resumed_at.append(loop.time())
            log.append("resumed")

    RE.install_suspender(SuspendFloor(bl.beam_current, 100, sleep=0.05))
    RE.subscribe(lambda name, doc: log.append(f"event {doc['seq_num']}"), "event", thread=False)

    async def operator() -> None:
        await wait_for(in_flight)
        await bl.beam_current.set(0.0)
        await wait_for(reached(State.SUSPENDING))
        restored_at.append(loop.time())
        log.append("restored")
        await bl.beam_current.set(500.0)

    async with asyncio.TaskGroup() as tg:
        tg.create_task(operator())
        await RE(scan(bl, POSITIONS[:4], {3: point_three}))

    assert log == ["event 1", "event 2", "restored", "resumed", "event 3", "event 4"]
    assert resumed_at[0] - restored_at[0] >= 0.05 - 0.005  # never earlier than the sleep
    assert event_positions(checker) == POSITIONS[:4]


async def test_msg_install_suspender_lasts_for_the_plan_only(
    RE: RunEngine, checker: DocChecker, bl: SimBeamline
) -> None:
    changes, reached = state_log(RE)
    floor = SuspendFloor(bl.beam_current, 100)
    seen: list[tuple[Any, ...]] = []
    in_flight = asyncio.Event()

    async def point_two() -> None:
        seen.append(RE.suspenders)
        if not in_flight.is_set():
            in_flight.set()
            await asyncio.Event().wait()

    def plan() -> Iterator[Msg]:
        yield Msg("install_suspender", floor)
        yield from scan(bl, POSITIONS[:3], {2: point_two})

    async def operator() -> None:
        await wait_for(in_flight)
        await bl.beam_current.set(0.0)
        await wait_for(reached(State.SUSPENDING))
        await bl.beam_current.set(500.0)

    async with asyncio.TaskGroup() as tg:
        tg.create_task(operator())
        await RE(plan())

    assert seen == [(floor,), (floor,)]
    assert State.SUSPENDING in [new for _, new in changes]
    assert event_positions(checker) == POSITIONS[:3]
    assert RE.suspenders == ()
    await bl.beam_current.set(0.0)  # no longer watched: it does not trip
    assert not floor.tripped


async def test_msg_remove_suspender_stops_watching_mid_plan(
    RE: RunEngine, checker: DocChecker, bl: SimBeamline
) -> None:
    changes, _ = state_log(RE)
    floor = SuspendFloor(bl.beam_current, 100)
    RE.install_suspender(floor)

    async def drop_beam() -> None:
        await bl.beam_current.set(0.0)
        await spin()

    def plan() -> Iterator[Msg]:
        yield Msg("remove_suspender", floor)
        yield from scan(bl, POSITIONS[:3], {2: drop_beam})

    await RE(plan())
    assert RE.suspenders == ()
    assert not floor.tripped
    assert State.SUSPENDING not in [new for _, new in changes]
    assert event_positions(checker) == POSITIONS[:3]


async def test_re_remove_suspender_unsubscribes_from_the_signal(RE: RunEngine) -> None:
    sig = FakeSignal("current")
    floor = SuspendFloor(sig, 100)
    RE.install_suspender(floor)
    assert len(sig.callbacks) == 1
    sig.emit(50.0)
    assert floor.tripped
    RE.remove_suspender(floor)
    assert sig.callbacks == []
    assert RE.suspenders == ()
    assert not floor.tripped


async def test_a_suspender_can_be_installed_again_after_removal(
    RE: RunEngine, bl: SimBeamline
) -> None:
    floor = SuspendFloor(bl.beam_current, 100)
    RE.install_suspender(floor)
    RE.remove_suspender(floor)
    await bl.beam_current.set(0.0)
    assert not floor.tripped
    RE.install_suspender(floor)  # subscribing again delivers the current value
    await spin()
    assert floor.tripped
    RE.remove_suspender(floor)


async def test_sleep_counts_from_when_the_condition_cleared() -> None:
    sig = await beam()
    s = SuspendFloor(sig, 100, sleep=0.05)
    await installed(s)
    await sig.set(0)
    await sig.set(500)
    await asyncio.sleep(0.06)  # clear for longer than the sleep already
    ready = asyncio.create_task(s.wait_ready())
    await spin()
    assert ready.done()


async def test_a_plan_that_trips_its_own_suspender_is_suspended_and_completes(
    RE: RunEngine, checker: DocChecker, bl: SimBeamline
) -> None:
    changes, reached = state_log(RE)
    RE.install_suspender(SuspendFloor(bl.beam_current, 100))
    calls = 0

    async def dump_the_beam() -> None:  # runs in the engine's own task
        nonlocal calls
        calls += 1
        if calls == 1:
            await bl.beam_current.set(0.0)

    async def operator() -> None:
        await wait_for(reached(State.SUSPENDING))
        await bl.beam_current.set(500.0)

    async with asyncio.TaskGroup() as tg:
        tg.create_task(operator())
        result = await RE(scan(bl, POSITIONS, {3: dump_the_beam}))

    assert result.exit_status == "success"
    assert [new for _, new in changes] == [
        State.RUNNING,
        State.SUSPENDING,
        State.RUNNING,
        State.IDLE,
    ]
    assert [e["seq_num"] for e in checker.of("event")] == list(range(1, 11))
    assert event_positions(checker) == POSITIONS


# -- requests and cancellation during a suspension, more suspenders, resume -------------------


async def _run_until_suspended(
    RE: RunEngine, bl: SimBeamline, make: Callable[[Callable[[], Any]], Suspender]
) -> tuple[asyncio.Task[Any], list[str]]:
    """Start a 3-point scan, lose the beam during point 2; return once the engine waits.

    ``make(pre_plan)`` builds the suspender. Returning only after its pre_plan ran puts
    the engine in the wait itself, past stopping the movers (a cancellation landing in a
    device's status there can be lost: ``asyncio.wait_for`` in Python 3.11).
    """
    waiting = asyncio.Event()

    async def mark() -> None:
        waiting.set()

    def pre_plan() -> Iterator[Msg]:
        yield Msg("await", mark)

    RE.install_suspender(make(pre_plan))
    in_flight = asyncio.Event()
    replays: list[str] = []

    async def point_two() -> None:
        if not in_flight.is_set():
            in_flight.set()
            await asyncio.Event().wait()  # until the suspension cuts in
        else:
            replays.append("replayed")

    task = asyncio.ensure_future(RE(scan(bl, POSITIONS[:3], {2: point_two})))
    await wait_for(in_flight)
    await bl.beam_current.set(0.0)
    await wait_for(waiting)
    await spin()
    return task, replays


async def _finish(task: asyncio.Task[Any]) -> None:
    """Await ``task`` for a while (a safety net against a hang); cancel it if stuck."""
    done, _ = await asyncio.wait([task], timeout=2)
    if not done:
        task.cancel()
        with contextlib.suppress(BaseException):
            await task
        pytest.fail("the suspended plan did not end")


async def test_abort_ends_a_plan_suspended_by_a_suspender_that_never_clears(
    RE: RunEngine, checker: DocChecker, bl: SimBeamline
) -> None:
    task, _ = await _run_until_suspended(
        RE, bl, lambda pre: SuspendWhenChanged(bl.beam_current, allow_resume=False, pre_plan=pre)
    )
    RE.abort("the hutch changed hands")
    await _finish(task)
    with pytest.raises(RunAborted):
        task.result()
    assert checker.of("stop")[0]["exit_status"] == "abort"
    assert RE.state is State.IDLE


async def test_cancelling_the_caller_during_a_suspension_aborts_the_run(
    RE: RunEngine, checker: DocChecker, bl: SimBeamline
) -> None:
    task, _ = await _run_until_suspended(
        RE, bl, lambda pre: SuspendFloor(bl.beam_current, 100, pre_plan=pre)
    )
    task.cancel()
    await _finish(task)
    error = None if task.cancelled() else task.exception()
    assert task.cancelled(), f"RE(...) raised {error!r} instead"
    assert checker.of("stop")[0]["exit_status"] == "abort"
    assert RE.state is State.IDLE
    assert checker.of("stop")[0]["exit_status"] == "abort"
    assert RE.state is State.IDLE


async def test_a_second_suspender_tripped_during_a_suspension_holds_the_plan(
    RE: RunEngine, checker: DocChecker, bl: SimBeamline
) -> None:
    interlock = soft_signal_rw(bool, False, name="interlock")
    second = SuspendBoolHigh(interlock)
    RE.install_suspender(second)
    task, replays = await _run_until_suspended(
        RE, bl, lambda pre: SuspendFloor(bl.beam_current, 100, pre_plan=pre)
    )
    await interlock.set(True)
    await bl.beam_current.set(500.0)  # the first clears; the second is still tripped
    for _ in range(100):  # a fixed number of loop iterations, not a time
        if replays:
            break
        await asyncio.sleep(0)
    resumed_while_tripped = bool(replays)
    await interlock.set(False)
    await _finish(task)
    assert not resumed_while_tripped
    assert event_positions(checker) == POSITIONS[:3]


async def test_resuming_a_paused_plan_waits_for_a_tripped_suspender(
    RE: RunEngine, checker: DocChecker, bl: SimBeamline
) -> None:
    floor = SuspendFloor(bl.beam_current, 100)
    RE.install_suspender(floor)
    in_flight = asyncio.Event()
    tripped_on_replay: list[bool] = []

    async def point_two() -> None:
        if not in_flight.is_set():
            in_flight.set()
            await asyncio.Event().wait()
        tripped_on_replay.append(floor.tripped)

    async def pauser() -> None:
        await wait_for(in_flight)
        RE.request_pause()

    async with asyncio.TaskGroup() as tg:
        tg.create_task(pauser())
        with pytest.raises(RunEngineInterrupted):
            await RE(scan(bl, POSITIONS[:3], {2: point_two}))
    await bl.beam_current.set(0.0)  # the beam is lost while the plan is paused
    task = asyncio.ensure_future(RE.resume())
    for _ in range(100):  # a fixed number of loop iterations, not a time
        if tripped_on_replay or task.done():
            break
        await asyncio.sleep(0)
    await bl.beam_current.set(500.0)
    await _finish(task)
    assert tripped_on_replay == [False]
