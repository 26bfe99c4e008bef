"""Fault injection: whatever fails, every run gets its one Stop and nothing is lost.

Each case makes one thing fail in the middle of a run -- a device method, a status, a
wait that never ends, a subscriber, the plan's own cleanup -- and checks that

* every run the plan opened is closed by exactly one Stop, ``exit_status == 'fail'`` for
  the runs open when it failed, with a reason naming the device and the message;
* the error (or ``WaitTimeoutError``) reaches the caller of ``await RE(plan)``;
* a critical subscriber received every document the (non-critical) checker received, in
  the same order.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from ophyd_async.core import AsyncStatus
from support import DocChecker

from acq import FailedStatus, Msg, RunEngine, SubscriberError, WaitTimeoutError

DEADLINE = 10.0


@pytest.fixture(autouse=True)
def collect_garbage() -> Iterator[None]:
    """Finalize what each test leaves (loops, tasks, plans) before the next one starts.

    Finalizers that happen to run while pytest parses source to report a failure can trip
    a CPython 3.11 bug ("AST constructor recursion depth mismatch") that ends the session.
    """
    gc.collect()
    yield
    gc.collect()


class InjectedFault(RuntimeError):
    """The error a faulty device raises; its message names neither device nor method."""


class Faulty:
    """A readable, movable, triggerable, stageable, flyable device that fails on demand.

    ``fail_in`` names the method that raises :class:`InjectedFault`; ``status`` decides
    what ``set`` returns: ``"done"``, ``"fails"`` (an ophyd-async status that fails a
    moment later) or ``"never"`` (one that never finishes until ``stop()``).
    """

    def __init__(self, fail_in: str | None = None, status: str = "done") -> None:
        self.name = "faulty"
        self.parent = None
        self.fail_in = fail_in
        self.status = status
        self.calls: list[str] = []
        self._forever: asyncio.Future[None] | None = None

    def _call(self, method: str) -> None:
        self.calls.append(method)
        if method == self.fail_in:
            raise InjectedFault("injected fault")

    def describe(self) -> dict[str, Any]:
        return {"faulty": {"source": "mem://faulty", "dtype": "number", "shape": []}}

    def read(self) -> dict[str, Any]:
        self._call("read")
        return {"faulty": {"value": 1.0, "timestamp": time.time()}}

    def set(self, value: float) -> Any:
        self._call("set")
        if self.status == "fails":
            return AsyncStatus(_fail_soon())
        if self.status == "never":
            self._forever = asyncio.get_running_loop().create_future()
            return AsyncStatus(_await(self._forever))
        return AsyncStatus(_nothing())

    def stop(self, *, success: bool = False) -> None:
        if self._forever is not None and not self._forever.done():
            self._forever.cancel()
        self._call("stop")

    def trigger(self) -> Any:
        self._call("trigger")
        return AsyncStatus(_nothing())

    def stage(self) -> list[Any]:
        self._call("stage")
        return [self]

    def unstage(self) -> list[Any]:
        self._call("unstage")
        return [self]

    def kickoff(self) -> Any:
        self._call("kickoff")
        return AsyncStatus(_nothing())

    def complete(self) -> Any:
        self._call("complete")
        return AsyncStatus(_nothing())

    def describe_collect(self) -> dict[str, Any]:
        return {"theta": {"source": "mem://faulty/theta", "dtype": "number", "shape": []}}

    def collect(self) -> list[dict[str, Any]]:
        self._call("collect")
        t = time.time()
        return [
            {"time": t, "data": {"theta": float(i)}, "timestamps": {"theta": t}} for i in range(3)
        ]


async def _nothing() -> None:
    await asyncio.sleep(0)


async def _fail_soon() -> None:
    await asyncio.sleep(0.01)
    raise InjectedFault("injected fault")


async def _await(future: asyncio.Future[None]) -> None:
    await future


def fault_plan(
    dev: Faulty, *, wait_timeout: float | None = None, unstage: bool = True, close: bool = True
) -> Generator[Msg, Any, None]:
    """A clean first run, then a run (and a concurrent 'side' run) using every method.

    ``unstage=False``/``close=False`` leave the unstaging/closing to the engine.
    """
    yield Msg("open_run", plan_name="warm_up")
    yield Msg("create", name="primary")
    yield Msg("null")
    yield Msg("save")
    yield Msg("close_run")

    yield Msg("open_run", plan_name="fault_plan")
    yield Msg("open_run", run="side", plan_name="side_run")
    yield Msg("stage", dev)
    yield Msg("set", dev, 1.0, group="move")
    yield Msg("trigger", dev, group="move")
    yield Msg("wait", group="move", timeout=wait_timeout)
    for _ in range(2):
        yield Msg("create", name="primary")
        yield Msg("read", dev)
        yield Msg("save")
    yield Msg("kickoff", dev, group="fly")
    yield Msg("complete", dev, group="fly")
    yield Msg("wait", group="fly")
    yield Msg("collect", dev, name="fly")
    if unstage:
        yield Msg("unstage", dev)
    if close:
        yield Msg("close_run", run="side")
        yield Msg("close_run")


def plan_failing_in_its_cleanup(dev: Faulty) -> Generator[Msg, Any, None]:
    """The device fails; the plan's own ``finally`` then raises too."""
    yield Msg("open_run", plan_name="bad_cleanup")
    try:
        yield Msg("set", dev, 1.0, group="move")
        yield Msg("wait", group="move")
    finally:
        yield Msg("null")
        raise ValueError("the plan's cleanup broke")
    yield Msg("close_run")  # pragma: no cover -- never reached


@dataclass(frozen=True)
class Case:
    """One fault and what the caller and the documents should show."""

    fail_in: str | None = None
    status: str = "done"
    wait_timeout: float | None = None
    unstage: bool = True
    close: bool = True
    bad_cleanup: bool = False
    subscriber: str | None = None  # "raises" or "critical-raises"
    raises: type[BaseException] | None = InjectedFault
    reason_names: tuple[str, ...] = ()
    failed_runs: int = 2  # the main run and the 'side' run


CASES = {
    "set raises": Case(fail_in="set", reason_names=("faulty", "'set'")),
    "trigger raises": Case(fail_in="trigger", reason_names=("faulty", "'trigger'")),
    "read raises": Case(fail_in="read", reason_names=("faulty", "'read'")),
    "stage raises": Case(fail_in="stage", reason_names=("faulty", "'stage'")),
    "unstage raises": Case(fail_in="unstage", reason_names=("faulty", "'unstage'")),
    "kickoff raises": Case(fail_in="kickoff", reason_names=("faulty", "'kickoff'")),
    "complete raises": Case(fail_in="complete", reason_names=("faulty", "'complete'")),
    "collect raises": Case(fail_in="collect", reason_names=("faulty", "'collect'")),
    "set status fails": Case(  # as in bluesky: FailedStatus, the device's error its cause
        status="fails", raises=FailedStatus, reason_names=("faulty", "set", "wait", "Injected")
    ),
    "set status never finishes": Case(
        status="never",
        wait_timeout=0.2,
        raises=WaitTimeoutError,
        reason_names=("faulty", "set", "wait", "timed out"),
    ),
    # the plan closed its runs (successfully) but left the unstaging to the engine
    # stopping the device that never arrived fails too: the first failure still wins
    "set status never finishes and stop raises": Case(
        fail_in="stop",
        status="never",
        wait_timeout=0.2,
        raises=WaitTimeoutError,
        reason_names=("faulty", "set", "wait", "timed out"),
    ),
    "unstage raises in the engine's cleanup after the runs closed": Case(
        fail_in="unstage", unstage=False, failed_runs=0
    ),
    # the plan left both to the engine: the runs are still open when the unstage fails
    "unstage raises in the engine's cleanup with the runs open": Case(
        fail_in="unstage", unstage=False, close=False, reason_names=("faulty", "unstage")
    ),
    "plan raises in its own cleanup": Case(
        fail_in="set", bad_cleanup=True, raises=ValueError, reason_names=("cleanup broke",),
        failed_runs=1,
    ),
    "non-critical subscriber raises": Case(subscriber="raises", raises=None, failed_runs=0),
    "another critical subscriber raises": Case(
        subscriber="critical-raises", raises=SubscriberError, reason_names=("critical",)
    ),
}  # fmt: skip


def recorder() -> tuple[list[tuple[str, dict[str, Any]]], Any]:
    docs: list[tuple[str, dict[str, Any]]] = []

    def record(name: str, doc: dict[str, Any]) -> None:
        docs.append((name, doc))

    return docs, record


def raise_on_events(name: str, doc: dict[str, Any]) -> None:
    if name == "event":
        raise RuntimeError("a subscriber broke on an event")


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
async def test_a_fault_closes_every_run_once_reaches_the_caller_and_loses_nothing(
    case: Case, RE: RunEngine, checker: DocChecker, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.CRITICAL, logger="acq")  # the failures are expected here
    stored, store = recorder()
    RE.subscribe(store, critical=True)
    if case.subscriber == "raises":
        RE.subscribe(raise_on_events, thread=False)
    elif case.subscriber == "critical-raises":
        RE.subscribe(raise_on_events, critical=True)
    dev = Faulty(case.fail_in, case.status)
    plan = (
        plan_failing_in_its_cleanup(dev)
        if case.bad_cleanup
        else fault_plan(dev, wait_timeout=case.wait_timeout, unstage=case.unstage, close=case.close)
    )

    error: BaseException | None = None
    async with asyncio.timeout(DEADLINE):
        try:
            result = await RE(plan)
        except Exception as exc:  # noqa: BLE001 -- checked below
            error = exc
            result = None

    # the error reaches the caller
    if case.raises is None:
        assert error is None, repr(error)
        assert result is not None
        assert result.exit_status == "success"
    else:
        assert isinstance(error, case.raises), repr(error)

    # every run closed exactly once (the checker also fails the test otherwise)
    starts, stops = checker.of("start"), checker.of("stop")
    assert len(stops) == len(starts) > 0
    assert sorted(s["run_start"] for s in stops) == sorted(s["uid"] for s in starts)
    failed = [s for s in stops if s["exit_status"] != "success"]
    assert len(failed) == case.failed_runs, [(s["exit_status"], s["reason"]) for s in stops]
    for stop in failed:
        assert stop["exit_status"] == "fail", stop
        for word in case.reason_names:
            assert word in stop["reason"], f"{word!r} not in the Stop's reason {stop['reason']!r}"

    # the critical subscriber got every document the checker got, in the same order
    assert [name for name, _ in stored] == checker.names()
    assert all(a is b for (_, a), (_, b) in zip(stored, checker.docs, strict=True))

    if case.status in ("fails", "never"):
        assert "stop" in dev.calls  # the device the plan was moving was stopped
    if case.subscriber == "raises":
        assert result is not None
        assert [e.document for e in result.callback_errors] == ["event", "event"]
    if case.bad_cleanup:
        assert isinstance(error, ValueError)
        assert isinstance(error.__context__, InjectedFault)  # the first failure is kept


async def test_cancelling_mid_run_loses_no_document_for_a_critical_subscriber(
    RE: RunEngine, checker: DocChecker
) -> None:
    stored, store = recorder()
    RE.subscribe(store, critical=True)
    dev = Faulty(status="never")
    task = asyncio.create_task(RE(fault_plan(dev)))
    async with asyncio.timeout(DEADLINE):
        # once triggered, the plan waits for a move that never ends
        while "trigger" not in dev.calls:  # noqa: ASYNC110 -- a plain condition
            await asyncio.sleep(0.002)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    stops = checker.of("stop")
    assert [s["exit_status"] for s in stops] == ["success", "abort", "abort"]
    assert all("cancel" in s["reason"] for s in stops[1:])
    assert "stop" in dev.calls
    assert "unstage" in dev.calls
    assert [name for name, _ in stored] == checker.names()
    assert all(a is b for (_, a), (_, b) in zip(stored, checker.docs, strict=True))
