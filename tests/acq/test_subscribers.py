"""Subscribers (SPEC §Subscribers): each has its own queue and worker, none can block or
break the plan, each sees its documents in order, ``await RE(...)`` returns after every
subscriber has taken every document, critical subscribers are awaited and fail the run.

Slowness is shown by *order*, never by measuring time: a blocked callback that only the
plan itself can release proves the plan did not wait for it.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest
from ophyd_async.core import soft_signal_rw
from support import DocChecker, Signal

from acq import Msg, Return, RunEngine, SubscriberError

EXPECTED_ONE_RUN = ["start", "descriptor", "event", "event", "event", "stop"]


def scan(n: int = 3, det: Any = None) -> list[Msg]:
    det = det or Signal("det", 1.0)
    plan = [Msg("open_run")]
    for _ in range(n):
        plan += [Msg("create", name="primary"), Msg("read", det), Msg("save")]
    return [*plan, Msg("close_run")]


class Recorder:
    """A sync callback recording document names and the thread it ran in."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self.docs: list[tuple[str, dict[str, Any]]] = []
        self.threads: set[int] = set()

    def __call__(self, name: str, doc: dict[str, Any]) -> None:
        self.threads.add(threading.get_ident())
        self.names.append(name)
        self.docs.append((name, doc))


# -- subscribe / unsubscribe --------------------------------------------------------------------


async def test_subscribe_returns_a_token_and_the_callback_gets_every_document(
    RE: RunEngine,
) -> None:
    rec = Recorder()
    token = RE.subscribe(rec, name="all")
    assert isinstance(token, int)
    assert RE.subscribe(Recorder()) != token
    await RE(scan(3))
    assert rec.names == EXPECTED_ONE_RUN
    await RE(scan(1))  # a subscription made with RE.subscribe lasts across calls
    assert rec.names == [*EXPECTED_ONE_RUN, "start", "descriptor", "event", "stop"]


async def test_name_filter_delivers_only_that_document_kind(RE: RunEngine) -> None:
    events, stops = Recorder(), Recorder()
    RE.subscribe(events, "event")
    RE.subscribe(stops, name="stop")
    await RE(scan(3))
    assert events.names == ["event"] * 3
    assert stops.names == ["stop"]


async def test_bluesky_argument_order_name_first_is_accepted(RE: RunEngine) -> None:
    events = Recorder()
    with pytest.warns(UserWarning, match="old argument order"):  # as bluesky warns
        RE.subscribe("event", events)  # type: ignore[arg-type] -- bluesky's old order
    await RE(scan(2))
    assert events.names == ["event", "event"]


async def test_unsubscribe_stops_delivery_for_later_calls(RE: RunEngine) -> None:
    rec = Recorder()
    token = RE.subscribe(rec)
    await RE(scan(1))
    RE.unsubscribe(token)
    await RE(scan(2))
    assert rec.names == ["start", "descriptor", "event", "stop"]


async def test_unsubscribe_during_a_run_delivers_what_was_queued_and_nothing_later(
    RE: RunEngine,
) -> None:
    rec = Recorder()
    token = RE.subscribe(rec)
    det = Signal("det")

    async def plan():
        yield Msg("open_run")
        yield Msg("create", name="primary")
        yield Msg("read", det)
        yield Msg("save")
        RE.unsubscribe(token)
        yield Msg("create", name="primary")
        yield Msg("read", det)
        yield Msg("save")
        yield Msg("close_run")

    await RE(plan())
    assert rec.names == ["start", "descriptor", "event"]


async def test_subscribe_during_a_run_gets_the_rest_of_the_documents(RE: RunEngine) -> None:
    late = Recorder()
    det = Signal("det")

    async def plan():
        yield Msg("open_run")
        RE.subscribe(late)
        yield Msg("create", name="primary")
        yield Msg("read", det)
        yield Msg("save")
        yield Msg("close_run")

    await RE(plan())
    assert late.names == ["descriptor", "event", "stop"]


# -- subscriptions for one call -----------------------------------------------------------------


async def test_a_per_call_subscription_is_gone_after_the_call(RE: RunEngine) -> None:
    rec = Recorder()
    await RE(scan(1), rec)
    assert rec.names == ["start", "descriptor", "event", "stop"]
    await RE(scan(1))
    assert rec.names == ["start", "descriptor", "event", "stop"]


async def test_per_call_subscriptions_in_bluesky_dict_form_and_name_callback_pairs(
    RE: RunEngine,
) -> None:
    events, starts_a, starts_b, stops = Recorder(), Recorder(), Recorder(), Recorder()
    await RE(scan(2), {"event": events, "start": [starts_a, starts_b]}, ("stop", stops))
    assert events.names == ["event", "event"]
    assert starts_a.names == starts_b.names == ["start"]
    assert stops.names == ["stop"]
    await RE(scan(2))
    assert events.names == ["event", "event"]
    assert stops.names == ["stop"]


async def test_a_per_call_subscription_is_removed_even_when_the_plan_fails(RE: RunEngine) -> None:
    rec = Recorder()

    async def failing():
        yield Msg("open_run")
        raise RuntimeError("plan broke")

    with pytest.raises(RuntimeError, match="plan broke"):
        await RE(failing(), rec)
    assert rec.names == ["start", "stop"]
    await RE(scan(1))
    assert rec.names == ["start", "stop"]


async def test_a_bad_per_call_subscription_is_refused_before_anything_runs(
    RE: RunEngine, checker: DocChecker
) -> None:
    with pytest.raises(TypeError, match="callable"):
        await RE(scan(1), 42)
    with pytest.raises(ValueError, match="'evnt'"):
        await RE(scan(1), {"evnt": Recorder()})
    assert checker.docs == []
    assert (await RE(scan(1))).exit_status == "success"  # the engine is still usable


# -- how callbacks are run ----------------------------------------------------------------------


async def test_a_sync_callback_runs_in_a_worker_thread_by_default(RE: RunEngine) -> None:
    rec = Recorder()
    RE.subscribe(rec)
    await RE(scan(3))
    assert rec.names == EXPECTED_ONE_RUN
    assert threading.get_ident() not in rec.threads
    assert len(rec.threads) == 1


async def test_thread_false_runs_a_sync_callback_on_the_loop_thread(RE: RunEngine) -> None:
    rec = Recorder()
    RE.subscribe(rec, thread=False)
    await RE(scan(3))
    assert rec.names == EXPECTED_ONE_RUN
    assert rec.threads == {threading.get_ident()}


async def test_an_async_callback_runs_on_the_loop_in_its_own_task(RE: RunEngine) -> None:
    test_task = asyncio.current_task()
    seen: list[tuple[str, int, bool]] = []

    async def cb(name: str, doc: dict[str, Any]) -> None:
        await asyncio.sleep(0)
        seen.append((name, threading.get_ident(), asyncio.current_task() is test_task))

    RE.subscribe(cb)
    await RE(scan(3))
    assert [s[0] for s in seen] == EXPECTED_ONE_RUN
    assert {s[1] for s in seen} == {threading.get_ident()}
    assert not any(s[2] for s in seen)


async def test_an_async_callable_object_is_awaited(RE: RunEngine) -> None:
    class AsyncCallback:
        def __init__(self) -> None:
            self.names: list[str] = []

        async def __call__(self, name: str, doc: dict[str, Any]) -> None:
            await asyncio.sleep(0)
            self.names.append(name)

    cb = AsyncCallback()
    RE.subscribe(cb)
    await RE(scan(3))
    assert cb.names == EXPECTED_ONE_RUN


async def test_every_kind_of_subscriber_sees_the_documents_in_emission_order(
    RE: RunEngine, checker: DocChecker
) -> None:
    threaded, on_loop, filtered = Recorder(), Recorder(), Recorder()
    async_docs: list[tuple[str, dict[str, Any]]] = []

    async def async_cb(name: str, doc: dict[str, Any]) -> None:
        if len(async_docs) % 7 == 0:
            await asyncio.sleep(0)
        async_docs.append((name, doc))

    RE.subscribe(threaded)
    RE.subscribe(on_loop, thread=False)
    RE.subscribe(async_cb)
    RE.subscribe(filtered, "event")
    await RE(scan(50))
    uids = [doc["uid"] for _, doc in checker.docs]
    assert len(uids) == 53
    assert [d["uid"] for _, d in threaded.docs] == uids
    assert [d["uid"] for _, d in on_loop.docs] == uids
    assert [d["uid"] for _, d in async_docs] == uids
    assert [d["seq_num"] for _, d in filtered.docs] == list(range(1, 51))


# -- RE returns after every subscriber took every document --------------------------------------


async def test_re_returns_only_after_slow_subscribers_have_taken_every_document(
    RE: RunEngine,
) -> None:
    slow_sync, slow_sync_on_loop = Recorder(), Recorder()
    slow_async: list[str] = []

    def sync_cb(name: str, doc: dict[str, Any]) -> None:
        time.sleep(0.02)
        slow_sync(name, doc)

    def loop_cb(name: str, doc: dict[str, Any]) -> None:
        time.sleep(0.005)
        slow_sync_on_loop(name, doc)

    async def async_cb(name: str, doc: dict[str, Any]) -> None:
        await asyncio.sleep(0.02)
        slow_async.append(name)

    RE.subscribe(sync_cb)
    RE.subscribe(loop_cb, thread=False)
    RE.subscribe(async_cb)
    async with asyncio.timeout(30):
        await RE(scan(3))
    assert slow_sync.names == EXPECTED_ONE_RUN
    assert slow_sync_on_loop.names == EXPECTED_ONE_RUN
    assert slow_async == EXPECTED_ONE_RUN


async def test_a_per_call_slow_subscriber_is_drained_before_re_returns(RE: RunEngine) -> None:
    names: list[str] = []

    def slow(name: str, doc: dict[str, Any]) -> None:
        time.sleep(0.02)
        names.append(name)

    async with asyncio.timeout(30):
        await RE(scan(3), slow)
    assert names == EXPECTED_ONE_RUN


# -- a failing callback -------------------------------------------------------------------------


def raise_on_start(name: str, doc: dict[str, Any]) -> None:
    if name == "start":
        raise ValueError("bad callback")


async def test_a_raising_callback_does_not_stop_the_scan_and_keeps_receiving(
    RE: RunEngine, checker: DocChecker
) -> None:
    seen: list[str] = []

    def flaky(name: str, doc: dict[str, Any]) -> None:
        seen.append(name)
        raise_on_start(name, doc)

    other = Recorder()
    RE.subscribe(flaky)
    RE.subscribe(other)
    result = await RE(scan(3))
    assert result.exit_status == "success"
    assert seen == EXPECTED_ONE_RUN  # it kept receiving after it raised
    assert other.names == EXPECTED_ONE_RUN
    assert checker.names() == EXPECTED_ONE_RUN


@pytest.mark.parametrize("thread", [True, False])
async def test_a_raising_callback_is_named_in_result_callback_errors(
    RE: RunEngine, thread: bool
) -> None:
    RE.subscribe(raise_on_start, thread=thread)
    result = await RE(scan(3))
    assert len(result.callback_errors) == 1
    (error,) = result.callback_errors
    assert "raise_on_start" in error.subscriber
    assert error.document == "start"
    assert isinstance(error.error, ValueError)


async def test_callback_errors_include_an_error_on_the_last_document(RE: RunEngine) -> None:
    def raise_on_stop(name: str, doc: dict[str, Any]) -> None:
        if name == "stop":
            raise ValueError("cannot finish the plot")

    RE.subscribe(raise_on_stop)
    result = await RE(scan(1))
    assert [(e.document, str(e.error)) for e in result.callback_errors] == [
        ("stop", "cannot finish the plot")
    ]


async def test_a_raising_async_callback_is_reported_and_keeps_receiving(RE: RunEngine) -> None:
    seen: list[str] = []

    async def flaky(name: str, doc: dict[str, Any]) -> None:
        seen.append(name)
        if name == "event":
            raise ValueError("bad event")

    RE.subscribe(flaky)
    result = await RE(scan(3))
    assert seen == EXPECTED_ONE_RUN
    assert [e.document for e in result.callback_errors] == ["event"] * 3


# -- a slow subscriber does not slow the plan ---------------------------------------------------


async def test_a_blocked_thread_subscriber_does_not_block_the_plan(RE: RunEngine) -> None:
    # The callback blocks on its first document until the plan itself releases it near
    # the end: the plan can only get there if the engine never waits for the callback.
    release = threading.Event()
    seen: list[str] = []

    def blocked(name: str, doc: dict[str, Any]) -> None:
        if not release.wait(timeout=10):
            seen.append("gave up waiting: the plan was blocked")
        seen.append(name)

    async def open_the_gate() -> None:
        release.set()

    RE.subscribe(blocked)
    det = Signal("det")
    plan = [*scan(20, det)[:-1], Msg("await", open_the_gate), Msg("close_run")]
    async with asyncio.timeout(30):
        result = await RE(plan)
    assert result.exit_status == "success"
    assert seen == ["start", "descriptor", *["event"] * 20, "stop"]


async def test_a_blocked_async_subscriber_does_not_block_the_plan(RE: RunEngine) -> None:
    release = asyncio.Event()
    seen: list[str] = []

    async def blocked(name: str, doc: dict[str, Any]) -> None:
        try:
            async with asyncio.timeout(10):
                await release.wait()
        except TimeoutError:
            seen.append("gave up waiting: the plan was blocked")
        seen.append(name)

    det = Signal("det")

    async def plan():
        yield Msg("open_run")
        for _ in range(20):
            yield Msg("create", name="primary")
            yield Msg("read", det)
            yield Msg("save")
            yield Msg("sleep", None, 0)  # the subscriber's task gets to run (and block)
        yield Return(list(seen))
        release.set()
        yield Msg("close_run")

    RE.subscribe(blocked)
    async with asyncio.timeout(30):
        result = await RE(plan())
    assert result.plan_result == []  # nothing was taken while the plan ran
    assert seen == ["start", "descriptor", *["event"] * 20, "stop"]


@pytest.mark.parametrize("kind", ["thread", "loop", "async", "subscribed by the plan"])
async def test_when_close_run_returns_every_subscriber_has_seen_the_stop(
    RE: RunEngine, kind: str
) -> None:
    # as in bluesky: a plan reads its callbacks' results (PeakStats, say) after close_run
    rec = Recorder()

    async def async_rec(name: str, doc: dict[str, Any]) -> None:
        await asyncio.sleep(0)
        rec(name, doc)

    if kind == "thread":
        RE.subscribe(rec)
    elif kind == "loop":
        RE.subscribe(rec, thread=False)
    elif kind == "async":
        RE.subscribe(async_rec)
    det = Signal("det")

    async def plan():
        if kind == "subscribed by the plan":
            yield Msg("subscribe", None, rec, "all")
        yield Msg("open_run")
        for _ in range(3):
            yield Msg("create", name="primary")
            yield Msg("read", det)
            yield Msg("save")
        yield Msg("close_run")
        yield Return(list(rec.names))

    async with asyncio.timeout(30):
        result = await RE(plan())
    assert result.plan_result == EXPECTED_ONE_RUN


async def test_a_critical_subscriber_in_a_thread_blocks_the_plan_but_not_the_loop(
    RE: RunEngine,
) -> None:
    # bluesky's TiledWriter makes blocking HTTP calls: critical=True, thread=True keeps
    # the plan waiting for each document while the loop goes on. The callback blocks on
    # the Start until a task on the loop releases it: only possible if the loop runs.
    release = threading.Event()
    stored: list[str] = []
    threads: set[int] = set()

    def store(name: str, doc: dict[str, Any]) -> None:
        threads.add(threading.get_ident())
        if name == "start" and not release.wait(timeout=10):
            stored.append("the loop was blocked")
        stored.append(name)

    async def releaser() -> None:
        while not stored and not release.is_set():
            await asyncio.sleep(0.001)
            if RE.state.value == "running":
                release.set()

    RE.subscribe(store, critical=True, thread=True)
    det = Signal("det")
    observed: list[list[str]] = []

    async def plan():
        yield Msg("open_run")
        observed.append(list(stored))  # the plan waited for the critical subscriber
        yield Msg("create", name="primary")
        yield Msg("read", det)
        yield Msg("save")
        yield Msg("close_run")

    async with asyncio.timeout(30):
        helper = asyncio.create_task(releaser())
        await RE(plan())
        await helper
    assert observed == [["start"]]
    assert stored == ["start", "descriptor", "event", "stop"]
    assert threading.get_ident() not in threads


async def test_a_failing_critical_thread_subscriber_fails_the_run(RE: RunEngine) -> None:
    def store(name: str, doc: dict[str, Any]) -> None:
        if name == "event":
            raise OSError("the data service is down")

    RE.subscribe(store, critical=True, thread=True)
    with pytest.raises(SubscriberError, match="the data service is down"):
        await RE(scan(2))


# -- critical subscribers -----------------------------------------------------------------------


@pytest.mark.parametrize("is_async", [False, True])
async def test_a_critical_subscriber_has_each_document_before_the_plan_goes_on(
    RE: RunEngine, is_async: bool
) -> None:
    stored: list[str] = []

    def store(name: str, doc: dict[str, Any]) -> None:
        stored.append(name)

    async def async_store(name: str, doc: dict[str, Any]) -> None:
        await asyncio.sleep(0)
        stored.append(name)

    RE.subscribe(async_store if is_async else store, critical=True)
    det = Signal("det")
    observed: list[list[str]] = []

    async def plan():
        yield Msg("open_run")
        observed.append(list(stored))
        yield Msg("create", name="primary")
        yield Msg("read", det)
        yield Msg("save")
        observed.append(list(stored))
        yield Msg("close_run")
        observed.append(list(stored))

    await RE(plan())
    assert observed == [
        ["start"],
        ["start", "descriptor", "event"],
        ["start", "descriptor", "event", "stop"],
    ]


async def test_a_critical_subscriber_with_a_name_filter(RE: RunEngine) -> None:
    stored: list[str] = []
    RE.subscribe(lambda name, doc: stored.append(name), "event", critical=True)
    await RE(scan(2))
    assert stored == ["event", "event"]


async def test_a_failing_critical_subscriber_fails_the_run_and_the_stop_reaches_others(
    RE: RunEngine, checker: DocChecker
) -> None:
    def storage(name: str, doc: dict[str, Any]) -> None:
        if name == "event":
            raise OSError("disk full")

    RE.subscribe(storage, critical=True)
    other = Recorder()
    RE.subscribe(other)
    with pytest.raises(SubscriberError, match="disk full") as info:
        await RE(scan(3))
    assert "storage" in str(info.value)
    assert other.names[-1] == "stop"
    assert other.names.count("stop") == 1
    (stop,) = checker.of("stop")
    assert stop["exit_status"] == "fail"
    assert "disk full" in stop["reason"]


@pytest.mark.parametrize("broken_from", ["event", "stop"])
async def test_the_stop_reaches_other_subscribers_even_when_the_critical_one_fails_on_it(
    RE: RunEngine, checker: DocChecker, broken_from: str
) -> None:
    # Storage that breaks and stays broken (disk full) also fails on the Stop: the other
    # subscribers must still get the run's Stop, exactly once.
    broken = False

    def storage(name: str, doc: dict[str, Any]) -> None:
        nonlocal broken
        broken = broken or name == broken_from
        if broken:
            raise OSError("disk full")

    RE.subscribe(storage, critical=True)
    other = Recorder()
    RE.subscribe(other)
    with pytest.raises(SubscriberError, match="disk full"):
        async with asyncio.timeout(10):
            await RE(scan(2))
    assert other.names.count("stop") == 1
    assert checker.names().count("stop") == 1
    # broken on an event: the run fails; broken only on the Stop itself: the Stop already
    # says what the plan did, and the storage's failure reaches the caller (raised above)
    expected = "fail" if broken_from == "event" else "success"
    assert checker.of("stop")[0]["exit_status"] == expected


@pytest.mark.parametrize("first_failure", [1, 2])
async def test_a_plan_cannot_swallow_a_critical_subscriber_failure(
    RE: RunEngine, checker: DocChecker, first_failure: int
) -> None:
    # The storage lost an event: however the plan handles errors, the run must not end
    # as a success, or data would be lost silently. The first Event of a descriptor and
    # the later ones take different paths to the subscribers (only the first is
    # validated), hence both.
    def storage(name: str, doc: dict[str, Any]) -> None:
        if name == "event" and doc["seq_num"] >= first_failure:
            raise OSError("disk full")

    RE.subscribe(storage, critical=True)
    det = Signal("det")

    async def plan():
        yield Msg("open_run")
        for _ in range(3):
            try:
                yield Msg("create", name="primary")
                yield Msg("read", det)
                yield Msg("save")
            except Exception:  # noqa: BLE001 -- a plan that skips a point on any error
                yield Msg("null")
        yield Msg("close_run")

    with pytest.raises(SubscriberError, match="disk full"):
        await RE(plan())
    assert checker.of("stop")[0]["exit_status"] == "fail"


# -- bounded queues: overflow policies ----------------------------------------------------------


async def test_overflow_drop_counts_the_dropped_documents_and_the_call_returns() -> None:
    # The subscriber blocks on its first document; its queue holds 2, the rest is dropped.
    # A second subscriber releases it when it sees the Stop, i.e. only after the engine has
    # published everything and is waiting for the subscribers to finish.
    RE = RunEngine()
    release = threading.Event()
    taken: list[str] = []

    def blocked(name: str, doc: dict[str, Any]) -> None:
        release.wait(timeout=10)
        taken.append(name)

    def releaser(name: str, doc: dict[str, Any]) -> None:
        if name == "stop":
            release.set()

    RE.subscribe(blocked, maxsize=2, overflow="drop")
    RE.subscribe(releaser, thread=False)
    async with asyncio.timeout(20):
        result = await RE(scan(10))
    total = 13  # start, descriptor, 10 events, stop
    (label,) = result.dropped
    assert "blocked" in label
    assert result.dropped[label] >= total - 3  # one in the callback, two queued
    assert len(taken) + result.dropped[label] == total
    assert taken[0] == "start"


@pytest.mark.parametrize("kind", ["thread", "loop", "async"])
async def test_overflow_block_loses_nothing(RE: RunEngine, kind: str) -> None:
    names: list[str] = []

    def slow(name: str, doc: dict[str, Any]) -> None:
        time.sleep(0.001)
        names.append(name)

    async def async_slow(name: str, doc: dict[str, Any]) -> None:
        await asyncio.sleep(0.001)
        names.append(name)

    if kind == "async":
        RE.subscribe(async_slow, maxsize=2, overflow="block")
    else:
        RE.subscribe(slow, thread=kind == "thread", maxsize=2, overflow="block")
    async with asyncio.timeout(30):
        result = await RE(scan(30))
    assert names == ["start", "descriptor", *["event"] * 30, "stop"]
    assert result.dropped == {}


async def test_overflow_block_loses_nothing_while_a_monitor_publishes_concurrently() -> None:
    # Two publishers (the plan and a monitor's pump task) wait for room in the same full
    # queue of an async subscriber: both must get in.
    RE = RunEngine()
    sig = soft_signal_rw(float, initial_value=1.0, name="sig")
    await sig.connect()
    gate = asyncio.Event()
    names: list[str] = []

    async def slow(name: str, doc: dict[str, Any]) -> None:
        await gate.wait()
        names.append(name)

    async def open_gate_later() -> None:
        for _ in range(100):
            await asyncio.sleep(0)
        gate.set()

    RE.subscribe(slow, maxsize=1, overflow="block")
    det = Signal("det")
    plan = [
        Msg("open_run"),
        Msg("monitor", sig),
        Msg("create", name="primary"),
        Msg("read", det),
        Msg("save"),
        Msg("close_run"),
    ]
    opener = asyncio.create_task(open_gate_later())
    try:
        async with asyncio.timeout(10):
            await RE(plan)
    finally:
        gate.set()
        await opener
    assert sorted(names) == sorted(["start", "descriptor", "event", "descriptor", "event", "stop"])
    assert names[0] == "start"
    assert names[-1] == "stop"


# -- bad arguments ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "words"),
    [
        ((Recorder(), "evnt"), {}, ValueError, "'evnt'"),
        ((42,), {}, TypeError, "callable"),
        ((Recorder(),), {"overflow": "spill"}, ValueError, "'spill'"),
        ((Recorder(),), {"maxsize": 0}, ValueError, "maxsize"),
    ],
)
async def test_bad_subscribe_arguments_are_refused_clearly(
    args: tuple[Any, ...], kwargs: dict[str, Any], error: type[Exception], words: str
) -> None:
    RE = RunEngine()
    with pytest.raises(error, match=words):
        RE.subscribe(*args, **kwargs)
    names: list[str] = []
    RE.subscribe(lambda name, doc: names.append(name), thread=False)
    await RE(scan(1))
    assert names == ["start", "descriptor", "event", "stop"]  # nothing half-subscribed
