"""The state of one ``RE(...)`` call: its open runs, wait groups, staged devices, monitors.

Handlers (``_handlers.py``) read and change it; the engine creates one per call and, on
every exit path, asks it to clean up (:meth:`PlanContext.cleanup`).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Coroutine, Hashable, Mapping
from typing import Any, cast

from ._dispatch import CancelGuard, Dispatcher
from ._documents import RunBundler, call_maybe_async, validate_document
from ._errors import (
    DeviceError,
    IllegalMessageSequence,
    MetadataError,
    NoReplayAllowed,
    SubscriberError,
)
from ._metadata import build_start, library_versions
from ._replay import ReplayLog
from ._status import StatusGroups, await_status, device_name
from ._uid import new_uid

__all__ = ["CANCELLED", "PlanContext", "failure_reason"]

logger = logging.getLogger("acq.engine")


CANCELLED = "the task awaiting the RunEngine was cancelled"
"""The reason in the Stop of a run ended by cancelling the task awaiting the engine."""


def _never() -> bool:
    return False


def failure_reason(exc: BaseException) -> str:
    """A Stop's reason for ``exc``.

    An exception the plan raised itself gives ``str(exc)``, as in bluesky (its type when
    it has no message). One that arose in a message, a device or a subscriber also gives
    its type and where acq noted it arose: ``"TimeoutError: ... (raised by the 'wait'
    message; the status of 'set' on m1 failed)"``.
    """
    notes = [n[len("acq: ") :] for n in getattr(exc, "__notes__", ()) if n.startswith("acq: ")]
    if not notes:
        return str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {exc} ({'; '.join(dict.fromkeys(notes))})"


class _Monitor:
    """A ``monitor`` message's subscription: updates become events of its own stream.

    ophyd-async signals call back with a reading (``{key: {"value", "timestamp"}}``) on
    the loop; ophyd v1 signals call back with keywords (``value=``, ``old_value=``,
    ``timestamp=``, ``sub_type=``, ``obj=``) from whatever thread changed the value, and
    then the signal is read right there, as bluesky does. A failure (the read raising,
    or an event that cannot be made) ends the monitor and is raised where it is stopped
    (``unmonitor``, ``close_run`` or the cleanup), so the run fails instead of quietly
    missing events; ophyd v1 would only log an exception raised by a callback.
    """

    def __init__(self, obj: Any, run: RunBundler, name: str) -> None:
        self.obj = obj
        self.run = run
        self.name = name
        self.queue: asyncio.Queue[Mapping[str, Any] | BaseException | None] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None
        self.stream: Any = None
        self.failed = False
        self._loop = asyncio.get_running_loop()
        self._thread = threading.get_ident()

    def callback(self, *args: Any, **kwargs: Any) -> None:
        if self.failed:
            return
        item: Mapping[str, Any] | BaseException
        try:
            item = self._reading(args, kwargs)
        except Exception as exc:  # noqa: BLE001 -- carried to the run, not lost in ophyd's log
            self.failed = True
            item = DeviceError(
                f"monitor of {device_name(self.obj)} (stream {self.name!r}) failed: "
                f"{type(exc).__name__}: {exc}"
            )
            item.__cause__ = exc
        if threading.get_ident() == self._thread:
            self.queue.put_nowait(item)
        else:  # ophyd v1 / pyepics call back from their own threads
            self._loop.call_soon_threadsafe(self.queue.put_nowait, item)

    def _reading(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Mapping[str, Any]:
        if len(args) == 1 and not kwargs and isinstance(args[0], Mapping):
            return cast(Mapping[str, Any], args[0])
        reading = self.obj.read()
        if hasattr(reading, "__await__"):
            close = getattr(reading, "close", None)
            if callable(close):
                close()
            raise DeviceError(
                f"{device_name(self.obj)} called back without a reading and its read() must "
                "be awaited: subscribe() callbacks of async devices get the reading"
            )
        return cast(Mapping[str, Any], reading)

    async def pump(self) -> None:
        while True:
            item = await self.queue.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            if not self.run.closed:
                try:
                    await self.run.monitor_event(self.stream, item)
                except Exception as exc:
                    self.failed = True
                    exc.add_note(f"acq: in the monitor of {device_name(self.obj)}")
                    raise


class PlanContext:
    """Everything one call of the engine keeps while its plan runs."""

    def __init__(
        self,
        *,
        dispatcher: Dispatcher,
        stash: Any,
        md_validator: Callable[[dict[str, Any]], Any] | None,
        md_normalizer: Callable[[dict[str, Any]], Any] | None = None,
        scan_id_source: Callable[[dict[str, Any]], Any] | None = None,
        call_md: Mapping[str, Any],
        inferred: Mapping[str, Any],
    ) -> None:
        self.dispatcher = dispatcher
        self.stash = stash
        self.md_validator = md_validator
        self.md_normalizer = md_normalizer
        self.scan_id_source = scan_id_source
        self.call_md = call_md
        self.inferred = {**inferred, "versions": library_versions()}
        self.runs: dict[Hashable, RunBundler] = {}
        self.run_start_uids: list[str] = []
        self.groups = StatusGroups()
        self.staged: list[Any] = []
        self.moved: dict[int, Any] = {}
        self.monitors: dict[int, _Monitor] = {}
        self.plan_tokens: list[int] = []
        self.plan_suspenders: list[Any] = []
        self.monitors_quiet = False
        self.record_interruptions = False  # installed by Msg('install_suspender')
        self.touched: dict[int, Any] = {}  # devices set/triggered/kicked off/staged
        self.replay = ReplayLog()  # what a resume replays (_replay.py)
        self.validate = validate_document
        self.critical_failure: SubscriberError | None = None
        self.waiting_hook: Callable[[Any], Any] | None = None  # RE.waiting_hook
        self.turn_owed = False  # background work started: give the loop a turn (_handlers)
        self.ending_reason = ""  # why the call is being stopped or aborted, once it is
        self.cancelled: Callable[[], bool] = _never  # has the awaiting task been cancelled?
        self._publish_nowait = dispatcher.publish_nowait

    # -- documents --------------------------------------------------------------------------
    async def emit(self, name: str, doc: dict[str, Any]) -> None:
        """Validate ``doc`` and hand it to the subscribers."""
        self.validate(name, doc)
        rest = self.publish(name, doc)
        if rest is not None:
            await rest

    def publish(self, name: str, doc: dict[str, Any]) -> Coroutine[Any, Any, None] | None:
        """Hand ``doc`` (already checked) to the subscribers; a coroutine if that must wait.

        A critical subscriber's failure is sticky: the run fails even if the plan catches it.
        """
        rest = self._publish_nowait(name, doc)
        return None if rest is None else self._published(rest)

    async def _published(self, rest: Coroutine[Any, Any, None]) -> None:
        try:
            await rest
        except SubscriberError as exc:
            self.critical_failure = exc
            raise

    def run_for(self, msg: Any, command: str) -> RunBundler:
        """The open run a message addresses (by its ``run`` key).

        Hot handlers try ``runs.get(msg.run)`` first and come here for the error.

        Raises:
            IllegalMessageSequence: no run is open under that key.
        """
        key = msg.run
        run = self.runs.get(key)
        if run is None:
            where = "" if key is None else f" with run key {key!r}"
            raise IllegalMessageSequence(
                f"{command!r} needs an open run{where}: send Msg('open_run') first "
                f"(the message was {msg!r})"
            )
        return run

    async def open_run(self, key: Hashable, plan_md: Mapping[str, Any]) -> str:
        """Compose, check and emit a Start; return its uid."""
        if key in self.runs:
            where = "" if key is None else f" with run key {key!r}"
            raise IllegalMessageSequence(
                f"'open_run' while a run{where} is already open: send 'close_run' first, or "
                "give concurrent runs distinct run= keys"
            )
        doc, scan_id = build_start(
            uid=new_uid(),
            time=time.time(),
            stash=self.stash,
            inferred=self.inferred,
            plan_md=plan_md,
            call_md=self.call_md,
            validator=self.md_validator,
            normalizer=self.md_normalizer,
            scan_id=await self._scan_id(),
        )
        self.stash["scan_id"] = scan_id
        run = RunBundler(doc, self.emit, self.publish)
        self.runs[key] = run
        self.run_start_uids.append(doc["uid"])
        await self.emit("start", doc)
        logger.info("run %s (scan_id %s) opened", doc["uid"], scan_id)
        return doc["uid"]

    async def _scan_id(self) -> int | None:
        """The next scan_id from ``RE.scan_id_source`` (sync or async), if one is set."""
        if self.scan_id_source is None:
            return None
        scan_id = await call_maybe_async(self.scan_id_source, dict(self.stash))
        if isinstance(scan_id, bool) or not isinstance(scan_id, int):
            raise MetadataError(
                f"RE.scan_id_source returned {scan_id!r}; it must return an integer scan_id"
            )
        return scan_id

    async def close_run(self, key: Hashable, exit_status: str, reason: str) -> str:
        """Emit the Stop of the run under ``key`` (stopping its monitors first).

        After a critical subscriber failed, the run cannot be a success, whatever the plan
        says: the storage is missing documents.
        """
        run = self.runs[key]
        if self.critical_failure is not None and exit_status == "success":
            exit_status, reason = "fail", f"{self.critical_failure}"
        if exit_status == "success" and self.cancelled():  # the caller gets CancelledError
            exit_status, reason = "abort", CANCELLED
        for token, monitor in list(self.monitors.items()):
            if monitor.run is run:
                await self.stop_monitor(token)
        if run.bundling:
            run.drop()
        doc = run.stop_document(exit_status, reason)
        self.validate("stop", doc)  # before the run is let go: an invalid Stop leaves it open
        del self.runs[key]
        rest = self.publish("stop", doc)
        guard = CancelGuard()  # cancelled meanwhile: every subscriber still gets the Stop
        if rest is not None:
            await guard.essential(rest)
        logger.info("run %s closed: %s %s", doc["run_start"], exit_status, reason)
        guard.reraise()
        return doc["uid"]

    # -- monitors ---------------------------------------------------------------------------
    async def start_monitor(self, obj: Any, run: RunBundler, name: str) -> None:
        """Subscribe to ``obj``; each update becomes an event of stream ``name``."""
        if id(obj) in self.monitors:
            raise IllegalMessageSequence(f"{device_name(obj)} is already monitored")
        monitor = _Monitor(obj, run, name)
        monitor.stream = await run.monitor_descriptor(obj, name)
        monitor.task = asyncio.create_task(monitor.pump(), name=f"acq monitor {name}")
        self.monitors[id(obj)] = monitor
        await call_maybe_async(obj.subscribe, monitor.callback)

    async def stop_monitor(self, token: int) -> None:
        """Unsubscribe a monitor and emit what it had already received."""
        monitor = self.monitors.pop(token)
        try:
            await call_maybe_async(monitor.obj.clear_sub, monitor.callback)
        finally:
            monitor.queue.put_nowait(None)
            if monitor.task is not None:
                await monitor.task

    # -- interruptions --------------------------------------------------------------------
    async def stop_movers(self) -> list[BaseException]:
        """Call ``stop(success=False)`` on every device the plan has set; errors returned."""
        problems: list[BaseException] = []
        for obj in list(self.moved.values()) + [
            o for o in self.touched.values() if callable(getattr(o, "kickoff", None))
        ]:
            stop = getattr(obj, "stop", None)
            if not callable(stop):
                continue
            try:
                try:
                    await await_status(stop(success=False))
                except TypeError:
                    await await_status(stop())
            except Exception as exc:
                exc.add_note(f"acq: stopping {device_name(obj)} failed")
                logger.exception("stopping %s failed", device_name(obj))
                problems.append(exc)
        self.groups.clear()
        return problems

    async def call_each(self, method: str) -> None:
        """Call ``method()`` (``pause``/``resume``) on every touched device that has it.

        A device whose ``pause()`` raises :class:`~acq.NoReplayAllowed` (bluesky's) cannot
        be replayed: the next resume goes on where the plan paused, replaying nothing.
        """
        for obj in list(self.touched.values()):
            func = getattr(obj, method, None)
            if callable(func):
                try:
                    await await_status(func())
                except NoReplayAllowed:
                    self.replay.refuse()
                except Exception:
                    logger.exception("%s of %s failed", method, device_name(obj))

    async def suspend_monitors(self) -> None:
        """Stop listening to monitored signals (while paused); idempotent."""
        if self.monitors_quiet:
            return
        self.monitors_quiet = True
        for monitor in self.monitors.values():
            await call_maybe_async(monitor.obj.clear_sub, monitor.callback)

    async def restore_monitors(self) -> None:
        """Listen again to monitored signals (on resume); idempotent."""
        if not self.monitors_quiet:
            return
        self.monitors_quiet = False
        for monitor in self.monitors.values():
            await call_maybe_async(monitor.obj.subscribe, monitor.callback)

    async def record_interruption(self, kind: str) -> None:
        """Record ``kind`` in every open run's interruptions stream, if asked to."""
        if not self.record_interruptions:
            return
        for run in self.runs.values():
            await run.record_interruption(kind)

    def drop_bundles(self) -> None:
        """Discard every open bundle (a replay makes them again)."""
        for run in self.runs.values():
            if run.bundling:
                run.drop()

    async def _collect_uncollected(self, guard: CancelGuard) -> None:
        """Collect every flyer kicked off in a run still open and never collected.

        As bluesky, before the devices are unstaged and the run's Stop; one that cannot be
        (some flyers do not support a partial collect) is logged and skipped.
        """
        for run in self.runs.values():
            for flyer in run.uncollected:
                try:
                    await guard.optional(run.collect([flyer], None, return_payload=False))
                except Exception:
                    logger.exception(
                        "cleanup: collecting %s, kicked off but never collected, failed",
                        device_name(flyer),
                    )

    # -- the end ---------------------------------------------------------------------------
    async def cleanup(self, exit_status: str, reason: str) -> list[BaseException]:
        """Leave nothing behind: movers, monitors, staged devices, open runs, subscriptions.

        Devices the plan moved are stopped unless it succeeded. Flyers kicked off in a run
        that is still open and never collected are collected before its Stop (bluesky's
        rule; a failure there is logged, as bluesky does). Every step runs even if an
        earlier one fails; failures are returned (and logged).

        Cancelled (again) meanwhile, it still ends every run: a cancellation cuts short
        the step in flight (a ``stop()`` or ``unstage()`` that hangs), never a Stop on
        its way to the subscribers; the runs then end with exit_status 'abort', and
        ``CancelledError`` is raised once everything is done.
        """
        problems: list[BaseException] = []
        guard = CancelGuard()
        if exit_status != "success":
            problems += await guard.optional(self.stop_movers()) or []

        async def attempt(what: str, step: Callable[[], Any], essential: bool = False) -> None:
            try:
                if essential:
                    await guard.essential(call_maybe_async(step))
                else:
                    await guard.optional(call_maybe_async(step))
            except Exception as exc:
                logger.exception("cleanup: %s failed", what)
                exc.add_note(f"acq: during cleanup, {what} failed")
                problems.append(exc)

        for token in list(self.monitors):
            await attempt(
                f"unmonitor {device_name(self.monitors[token].obj)}",
                lambda t=token: self.stop_monitor(t),
            )
        await self._collect_uncollected(guard)
        for obj in reversed(self.staged):
            unstage = getattr(obj, "unstage", None)
            if unstage is not None:
                await attempt(f"unstage {device_name(obj)}", lambda u=unstage: await_status(u()))
        self.staged.clear()
        if problems and exit_status == "success":  # e.g. an unstage failed: not a success
            exit_status, reason = "fail", failure_reason(problems[0])
        cancelled = guard.cancelled or self.cancelled()
        if exit_status == "success" and cancelled:
            exit_status, reason = "abort", CANCELLED
        for key in list(self.runs):
            await attempt(
                "close_run", lambda k=key: self.close_run(k, exit_status, reason), essential=True
            )
        for token in self.plan_tokens:
            await attempt("unsubscribe", lambda t=token: self.dispatcher.unsubscribe(t))
        self.plan_tokens.clear()
        if cancelled:  # the caller gets what the Stops say
            raise asyncio.CancelledError
        guard.reraise()
        return problems
