"""The RunEngine: runs plans on the caller's own event loop.

``result = await RE(plan, **md)`` drives the plan in the awaiting task itself: no thread,
no private loop, no task per message. :meth:`RunEngine._drive` is the loop that drives a
plan; the handlers it calls are in ``_handlers.py``, the per-call state in
``_context.py``, interruptions (pause, suspend, stop, abort, halt, Ctrl-C) in
``_interrupt.py`` and :meth:`RunEngine._interrupt`.

A paused plan stays with the engine (``RE.state is State.PAUSED``) until
``await RE.resume()`` rewinds it to its last checkpoint, replays the messages since, and
drives it on -- or ``RE.stop()``, ``RE.abort()``, ``RE.halt()`` end it.

Why one module of ~930 lines: the long-lived front end (state, subscriptions, suspenders,
bluesky's settings such as ``rewindable``, ``msg_hook``, ``scan_id_source``) and the life
of one call (the drive loop, pause, suspend, rewind) still share the engine object; the
next step gives each call an object of its own and moves the second half there.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import threading
import warnings
from collections.abc import Callable, Coroutine, Iterable, Mapping, MutableMapping
from types import CoroutineType
from typing import Any, cast

from ._context import CANCELLED, PlanContext, failure_reason
from ._dispatch import Callback, Dispatcher, Overflow, Subscription, make_subscription
from ._documents import call_maybe_async
from ._errors import (
    PlanError,
    RequestAbort,
    RequestStop,
    RunAborted,
    RunEngineInterrupted,
    StateError,
    UnknownCommandError,
)
from ._handlers import HANDLERS, Handler
from ._interrupt import NOT_INTERRUPTIBLE, REPLAY_SKIP, Request, SigintHandler, Suspension
from ._metadata import check_metadata, library_versions
from ._msg import Msg
from ._plan import Plan, PlanFinished, PlanStack, as_plan, plan_name
from ._result import RunResult
from ._state import State, transition
from ._status import WatchedStatusGroups, device_name

__all__ = ["RunEngine"]

logger = logging.getLogger("acq.engine")

_YIELD_EVERY = 1024  # messages between two chances for other tasks (Ctrl-C, subscribers)


class _Paused(Exception):
    """Raised inside the engine to leave the drive loop with the plan kept."""


class _Halted(Exception):
    """Raised inside the engine to abandon the plan without its cleanup."""


_WAITING = Msg("wait")  # stands for "the engine is waiting": a request may cut it short


class _Call:
    """One ``RE(...)`` call: its plan and context, kept across a pause."""

    def __init__(self, ctx: PlanContext, stack: PlanStack, tokens: list[int]) -> None:
        self.ctx = ctx
        self.stack = stack
        self.tokens = tokens
        self.pending: Any = None  # a message to handle before asking the plan again
        self.reply: Any = None
        self.error: BaseException | None = None
        self.ending: Request | None = None  # STOP or ABORT once thrown into the plan
        self.reason = ""
        self.rewind = False  # replay the checkpoint's messages when driving resumes
        self.done: asyncio.Future[RunResult] = asyncio.get_running_loop().create_future()
        self.result: RunResult | None = None  # given to `done` once the engine is idle


class RunEngine:
    """Executes plans and turns what they measure into documents.

    Args:
        md: the metadata stash, copied into every run (``RE.md``); any mutable mapping,
            e.g. a :class:`~acq.PersistentDict`. A new dict if omitted.
        md_validator: called with the final metadata before each run opens; raise to
            refuse the run.
        md_normalizer: called with the merged metadata before it is checked; returns the
            metadata to use (e.g. with its keys lower-cased), or raises to refuse the run.
        scan_id_source: called with ``RE.md`` (sync or ``async def``) for each run's
            scan_id, instead of one more than ``RE.md['scan_id']`` (e.g. a facility's
            scan-number service).
        handle_sigint: take Ctrl-C while a plan runs (main thread only): the first asks
            for a deferred pause, a second within 10 s for a pause now.
        record_interruptions: record each pause, resume and suspension as an event of
            an ``interruptions`` stream in every open run (``RE.record_interruptions``).
        catalog: where every document of every run is stored (a critical subscriber,
            see :mod:`acq.catalog`): ``"default"`` (``ACQ_CATALOG``, else the per-user
            data directory), a URL or SQLite path, a ``DocumentStore`` or ``Catalog``,
            or None for no storage. ``RE.catalog`` reads the runs back.

    Example:
        >>> RE = RunEngine()
        >>> result = await RE(count([det], 5), sample="Si")  # doctest: +SKIP
    """

    def __init__(
        self,
        md: MutableMapping[str, Any] | None = None,
        *,
        md_validator: Callable[[dict[str, Any]], Any] | None = None,
        md_normalizer: Callable[[dict[str, Any]], Any] | None = None,
        scan_id_source: Callable[[dict[str, Any]], Any] | None = None,
        handle_sigint: bool = True,
        record_interruptions: bool = False,
        catalog: object = "default",
    ) -> None:
        self.md: MutableMapping[str, Any] = {} if md is None else md
        self.md_validator = md_validator
        self.md_normalizer = md_normalizer
        self.scan_id_source = scan_id_source
        versions = self.md.get("versions")
        self.md["versions"] = {  # as bluesky's: the libraries this engine runs with
            **(versions if isinstance(versions, Mapping) else {}),
            **library_versions(),
        }
        self.waiting_hook: Callable[[Any], Any] | None = None
        """Called with the set of statuses a ``wait`` waits for, then with None when it
        ends (a progress bar, as bluesky's ``RE.waiting_hook``)."""
        self.msg_hook: Callable[[Any], Any] | None = None
        """Called with every message before it is handled, replays included (debugging,
        as bluesky's ``RE.msg_hook``)."""
        self.max_depth: int | None = None
        """Refuse ``RE(...)`` (RuntimeError) when called this many Python frames deep."""
        self._rewindable = True
        self._deferred_left = False  # a deferred pause asked for was never reached
        self.record_interruptions = record_interruptions
        self._dispatcher = Dispatcher()
        from .catalog._catalog import catalog_for  # acq.catalog loads SQLAlchemy lazily

        self.catalog = catalog_for(catalog)
        """The :class:`~acq.catalog.Catalog` this engine stores runs in, or None."""
        if self.catalog is not None:
            self.subscribe(self.catalog.store, critical=True)
        self.preprocessors: list[Callable[[Plan], Any]] = []
        """Functions applied to every plan ``RE(...)`` runs, in order (e.g. a
        ``SupplementalData``): each takes a plan and returns a plan."""
        self._handlers: dict[str, Handler] = dict(HANDLERS)
        self._handlers["pause"] = self._pause_message
        self._handlers["rewindable"] = self._rewindable_message
        self._handlers["install_suspender"] = self._install_suspender_message
        self._handlers["remove_suspender"] = self._remove_suspender_message
        self._handlers["RE_class"] = lambda _ctx, _msg: type(self)  # bluesky's self-description
        self._suspenders: list[Any] = []
        self._state = State.IDLE
        self._state_observers: list[Callable[[State, State], Any]] = []
        self._call: _Call | None = None
        self._attention = False  # a request or an interruption is pending: look closer
        self.__request: Request | None = None
        self._suspension: Suspension | None = None
        self._task: asyncio.Task[Any] | None = None
        self._cancels = 0  # the task's cancellation requests when it began driving the call
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self._current: Any = None  # the message being handled, if any
        self.__interrupting = False  # we cancelled our own task to cut a message short
        self._sigint = SigintHandler(self.request_pause) if handle_sigint else None

    # The drive loop reads one flag per message, _attention; these keep it up to date.
    @property
    def _request(self) -> Request | None:
        return self.__request

    @_request.setter
    def _request(self, request: Request | None) -> None:
        self.__request = request
        self._attention = request is not None or self.__interrupting

    @property
    def _interrupting(self) -> bool:
        return self.__interrupting

    @_interrupting.setter
    def _interrupting(self, flag: bool) -> None:
        self.__interrupting = flag
        self._attention = flag or self.__request is not None

    # -- state --------------------------------------------------------------------------
    @property
    def state(self) -> State:
        """What the engine is doing now."""
        return self._state

    @property
    def rewindable(self) -> bool:
        """Whether a resume may rewind to the last checkpoint and replay (True by default).

        The default for every call; ``Msg('rewindable', None, flag)`` sets it too, as in
        bluesky. False: a resume goes on where the plan paused, replaying nothing.
        """
        call = self._call
        return call.ctx.rewindable if call is not None else self._rewindable

    @rewindable.setter
    def rewindable(self, flag: bool) -> None:
        self._rewindable = bool(flag)
        if self._call is not None:
            self._call.ctx.rewindable = self._rewindable

    def _rewindable_message(self, ctx: PlanContext, msg: Any) -> bool:
        """``Msg('rewindable', None, flag)`` sets :attr:`rewindable`; None only asks."""
        if msg.args and msg.args[0] is not None:
            self.rewindable = bool(msg.args[0])
        return self.rewindable

    @property
    def deferred_pause_requested(self) -> bool:
        """Has a pause at the next checkpoint been asked for, and not yet happened?"""
        if self._call is None:
            return self._deferred_left
        return self._request is Request.PAUSE_DEFERRED

    @property
    def verbose(self) -> bool:
        """Log each run's Start and Stop (logger ``acq.engine``, INFO), as bluesky's."""
        return logger.isEnabledFor(logging.INFO) and logger.level <= logging.INFO

    @verbose.setter
    def verbose(self, flag: bool) -> None:
        logger.setLevel(logging.INFO if flag else logging.NOTSET)

    def _set_state(self, new: State) -> None:
        old = self._state
        if old is new:
            return
        self._state = transition(old, new)
        for observer in self._state_observers:
            try:
                observer(old, new)
            except Exception:
                logger.exception("state observer %r failed", observer)

    def observe_state(self, observer: Callable[[State, State], Any]) -> None:
        """Call ``observer(old, new)`` on every state change."""
        self._state_observers.append(observer)

    # -- subscriptions --------------------------------------------------------------------
    def subscribe(
        self,
        callback: Callback,
        name: str = "all",
        *,
        critical: bool = False,
        thread: bool | None = None,
        maxsize: int = 10_000,
        overflow: Overflow = "block",
    ) -> int:
        """Send every document called ``name`` (or all) to ``callback(name, doc)``.

        Args:
            callback: a function or ``async def`` taking ``(name, doc)``.
            name: ``"all"`` or one document name (``"start"``, ``"event"``, ...).
            critical: the plan waits for it on every document, and its failure fails
                the run (for storage); otherwise it runs in its own worker.
            thread: run a plain-function callback in its own thread (the default for
                one that is not critical), so a slow one never blocks the loop; False
                runs it on the loop, in its own task. A critical subscriber runs inline
                on the loop unless ``thread=True``: then each document is handed to its
                own thread and the plan waits for it without blocking the loop (for
                storage that does blocking I/O, e.g. bluesky's ``TiledWriter``).
            maxsize: the worker's queue bound.
            overflow: ``"block"`` (wait for room: nothing lost) or ``"drop"``.

        Returns:
            A token for :meth:`unsubscribe`.
        """
        sub = make_subscription(
            callback, name, critical=critical, thread=thread, maxsize=maxsize, overflow=overflow
        )
        return self._dispatcher.subscribe(sub)

    def unsubscribe(self, token: int) -> None:
        """Remove the subscription ``token`` (documents already queued are still delivered)."""
        self._dispatcher.unsubscribe_nowait(token)

    # -- suspenders ------------------------------------------------------------------------
    def install_suspender(self, suspender: Any) -> None:
        """Watch ``suspender``'s signal from now on (see :mod:`acq.suspenders`).

        A suspender has ``install(RE)`` (it then calls :meth:`request_suspend` when it
        trips), ``remove()``, a ``tripped`` flag and ``wait_ready()`` (a coroutine that
        finishes when the plan may go on).
        """
        if any(s is suspender for s in self._suspenders):
            return
        suspender.install(self)
        self._suspenders.append(suspender)

    def remove_suspender(self, suspender: Any) -> None:
        """Stop watching ``suspender``'s signal."""
        if any(s is suspender for s in self._suspenders):
            self._suspenders = [s for s in self._suspenders if s is not suspender]
            suspender.remove()

    def clear_suspenders(self) -> None:
        """Remove every suspender."""
        for suspender in list(self._suspenders):
            self.remove_suspender(suspender)

    @property
    def suspenders(self) -> tuple[Any, ...]:
        """The installed suspenders."""
        return tuple(self._suspenders)

    async def _install_suspender_message(self, ctx: PlanContext, msg: Any) -> None:
        """``Msg('install_suspender', suspender)`` (or bluesky's ``None, suspender``)."""
        suspender = msg.obj if msg.obj is not None else next(iter(msg.args), None)
        if not callable(getattr(suspender, "install", None)):
            raise PlanError(
                f"'install_suspender' needs a suspender (e.g. from acq.suspenders) as its obj, "
                f"got {suspender!r}: {msg!r}"
            )
        self.install_suspender(suspender)
        ctx.plan_suspenders.append(suspender)

    async def _remove_suspender_message(self, ctx: PlanContext, msg: Any) -> None:
        """``Msg('remove_suspender', suspender)`` (or bluesky's ``None, suspender``)."""
        suspender = msg.obj if msg.obj is not None else next(iter(msg.args), None)
        if suspender is None:
            raise PlanError(f"'remove_suspender' needs the suspender to remove: {msg!r}")
        self.remove_suspender(suspender)

    async def _wait_for_suspenders(self) -> bool:
        """Wait while any installed suspender is tripped (before a start, on a resume).

        Returns False if a request (pause, stop, abort, halt) cut the wait short.
        """
        while True:
            tripped = [s for s in self._suspenders if s.tripped]
            if not tripped:
                return True
            if self._state is State.RUNNING:
                self._set_state(State.SUSPENDING)
            logger.warning("waiting for suspender %r", tripped[0])
            if not await self._interruptible(tripped[0].wait_ready()):
                return False

    async def _interruptible(self, awaitable: Any) -> bool:
        """Await ``awaitable``; a request may cut it short (then False)."""
        self._current = _WAITING
        try:
            await awaitable
        except asyncio.CancelledError:
            if not self._interrupting:
                raise
            self._interrupting = False
            cast(asyncio.Task[Any], self._task).uncancel()
            return False
        finally:
            self._current = None
        return True

    # -- commands -------------------------------------------------------------------------
    def register_command(self, name: str, handler: Callable[[Any], Any]) -> None:
        """Handle ``Msg(name, ...)`` with ``handler(msg)`` (sync or async); replaces any."""
        if not callable(handler):
            raise TypeError(f"the handler for {name!r} must be callable, got {handler!r}")

        async def custom(ctx: PlanContext, msg: Any) -> Any:
            return await call_maybe_async(handler, msg)

        self._handlers[name] = custom

    def unregister_command(self, name: str) -> None:
        """Forget the handler of ``name``."""
        self._handlers.pop(name, None)

    @property
    def commands(self) -> frozenset[str]:
        """Every command this engine understands."""
        return frozenset(self._handlers)

    # -- running plans --------------------------------------------------------------------
    async def __call__(self, plan: Any, *subscriptions: Any, **md: Any) -> RunResult:
        """Run ``plan`` to its end; return a :class:`RunResult`.

        Args:
            plan: an async generator or generator of messages (or a list of messages).
            *subscriptions: callbacks for this call only: ``callback``, ``(name,
                callback)``, or bluesky's ``{name: callback-or-list}``.
            **md: metadata for every run of this plan (highest precedence).

        Raises:
            StateError: the engine is already running (or holding a paused) plan.
            RunEngineInterrupted: the plan was paused; resume, stop, abort or halt it.
            RunAborted: the plan was aborted or halted.
            Exception: whatever failed the plan, after every open run got its Stop.
        """
        if self._state is not State.IDLE:
            what = "holding a paused plan" if self._state is State.PAUSED else "running a plan"
            raise StateError(
                f"this RunEngine is {what} ({self._state.value}): it runs one plan at a time; "
                "await the running plan (or resume/stop/abort the paused one), or make "
                "another RunEngine for concurrent plans"
            )
        if "raise_if_interrupted" in md:  # bluesky's old keyword, not metadata
            md.pop("raise_if_interrupted")
            warnings.warn(
                "RE(..., raise_if_interrupted=...) is a keyword of bluesky's old API and is "
                "ignored: acq always raises RunEngineInterrupted when a plan pauses",
                UserWarning,
                stacklevel=2,
            )
        if self.max_depth is not None and len(inspect.stack(0)) > self.max_depth:
            raise RuntimeError(
                f"RE(...) called {len(inspect.stack(0))} frames deep, more than "
                f"RE.max_depth={self.max_depth}"
            )
        check_metadata(  # before any device acts; the plan's own md is checked at open_run
            stash=self.md,
            call_md=md,
            scan_id_from_stash=self.scan_id_source is None,
            normalizer=self.md_normalizer,
        )
        root = as_plan(plan)
        inferred = {"plan_type": type(root).__name__, "plan_name": plan_name(root)}
        for preprocessor in self.preprocessors:
            root = as_plan(preprocessor(root))
        subs = _call_subscriptions(subscriptions)
        tokens = [self._dispatcher.subscribe(s) for s in subs]
        ctx = PlanContext(
            dispatcher=self._dispatcher,
            stash=self.md,
            md_validator=self.md_validator,
            md_normalizer=self.md_normalizer,
            scan_id_source=self.scan_id_source,
            call_md=md,
            inferred=inferred,
        )
        ctx.record_interruptions = self.record_interruptions
        ctx.rewindable = self._rewindable
        if self.waiting_hook is not None:  # it sees finished statuses too, as in bluesky
            ctx.waiting_hook = self.waiting_hook
            ctx.groups = WatchedStatusGroups()
        ctx.checkpoint()  # as in bluesky: a pause before the plan's first checkpoint rewinds
        self._call = _Call(ctx, PlanStack(root), tokens)
        self._request = None
        self._deferred_left = False
        return await self._execute(self._call)

    async def resume(self) -> RunResult:
        """Go on with a paused plan: rewind to its last checkpoint, replay, drive on.

        Raises:
            StateError: nothing is paused.
        """
        call = self._paused_call("resume")
        call.rewind = True
        return await self._execute(call)

    def request_pause(self, defer: bool = False) -> None:
        """Ask the running plan to pause: now, or at its next checkpoint (``defer``).

        A plain method: safe from signal handlers, callbacks and other tasks.

        Raises:
            StateError: the engine is idle: there is nothing to pause.
        """
        if self._state is State.IDLE:
            raise StateError("cannot pause: the RunEngine is idle (no plan is running)")
        if self._state not in (State.RUNNING, State.SUSPENDING):
            return
        self._ask(Request.PAUSE_DEFERRED if defer else Request.PAUSE_NOW)

    def request_suspend(
        self,
        ready: Callable[[], Any],
        *,
        justification: str = "",
        pre_plan: Callable[[], Any] | None = None,
        post_plan: Callable[[], Any] | None = None,
    ) -> None:
        """Suspend the running plan until ``ready()`` (awaitable) finishes (suspenders).

        The movers are stopped, ``pre_plan()`` runs, then ``ready()`` is awaited,
        ``post_plan()`` runs, and the plan is rewound to its last checkpoint and replayed.
        """
        if self._state is not State.RUNNING:
            return
        self._suspension = Suspension(ready, justification, pre_plan, post_plan)
        self._ask(Request.SUSPEND)

    def stop(self) -> asyncio.Future[RunResult]:
        """End the plan, letting it clean up; its runs end with exit_status 'success'."""
        return self._end(Request.STOP, "stopped by RE.stop()")

    def abort(self, reason: str = "") -> asyncio.Future[RunResult]:
        """End the plan, letting it clean up; its runs end with exit_status 'abort'."""
        return self._end(Request.ABORT, reason or "aborted by RE.abort()")

    def halt(self) -> asyncio.Future[RunResult]:
        """End the plan at once, without its cleanup; runs end with exit_status 'abort'."""
        return self._end(Request.HALT, "halted by RE.halt(): the plan's cleanup did not run")

    # -- the life of a call ---------------------------------------------------------------
    def _paused_call(self, what: str) -> _Call:
        if self._state is not State.PAUSED or self._call is None:
            raise StateError(f"cannot {what}: the RunEngine is {self._state.value}, not paused")
        return self._call

    def _ask(self, request: Request) -> None:
        """Record a request; cut the message in flight short if the request says so.

        Safe from other threads: the request is then handed to the engine's loop.
        """
        loop = self._loop
        if loop is not None and threading.get_ident() != self._loop_thread:
            loop.call_soon_threadsafe(self._ask, request)
            return
        if self._request is not None and self._request.value >= request.value:
            return  # something at least as urgent is already on its way
        self._request = request
        current, task = self._current, self._task
        if (
            request.interrupts
            and current is not None
            and task is not None
            and task is not asyncio.current_task()  # asked from the plan's own task
            and not task.done()
            and current.command not in NOT_INTERRUPTIBLE
            and not self._interrupting
        ):
            self._interrupting = True
            task.cancel(msg="acq: interrupted by a request")

    def _end(self, request: Request, reason: str) -> asyncio.Future[RunResult]:
        call = self._call
        if call is None or self._state is State.IDLE:
            raise StateError(f"nothing to end: the RunEngine is {self._state.value}")
        call.reason = reason
        if self._state is State.PAUSED:
            if request is Request.HALT:
                self._set_state(State.HALTING)
                self._request = Request.HALT  # _drive sees it before touching the plan
            else:
                call.pending, call.error = None, _ending(call, request)
                self._set_state(State.STOPPING if request is Request.STOP else State.ABORTING)
            task = asyncio.ensure_future(self._finish_paused(call))
            task.add_done_callback(_retrieve)
            return call.done
        self._ask(request)
        return call.done

    async def _finish_paused(self, call: _Call) -> RunResult:
        try:
            return await self._execute(call)
        except (RunAborted, RunEngineInterrupted):
            return await call.done

    async def _execute(self, call: _Call) -> RunResult:
        """Drive ``call``'s plan until it ends or pauses."""
        if self._state in (State.IDLE, State.PAUSED):
            self._set_state(State.RUNNING)
        self._task = asyncio.current_task()
        self._cancels = self._task.cancelling() if self._task is not None else 0
        call.ctx.cancelled = self._cancelled
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._dispatcher.start()
        sigint = self._sigint is not None and self._sigint.install()
        paused = False
        try:
            return await self._run(call)
        except _Paused:
            paused = True
            raise RunEngineInterrupted(
                f"the plan is paused ({call.reason}); its runs stay open. Continue with "
                "'await RE.resume()', or end it with RE.stop(), RE.abort() or RE.halt()"
            ) from None
        finally:
            if sigint and self._sigint is not None:
                self._sigint.remove()
            self._task = None
            self._interrupting = False
            if not paused:
                for token in call.tokens:
                    self._dispatcher.unsubscribe_nowait(token)
                for suspender in call.ctx.plan_suspenders:
                    self.remove_suspender(suspender)
            try:
                await self._dispatcher.finish()
            finally:  # even if cancelled while the subscribers drain
                self._settle(call, paused)

    def _settle(self, call: _Call, paused: bool) -> None:
        """The engine's state once a call has left the drive loop: paused or idle."""
        if paused:
            self._set_state(State.PAUSED)
            return
        self._call = None
        self._deferred_left = self._request is Request.PAUSE_DEFERRED
        self._request = None
        self._set_state(State.IDLE)
        if not call.done.done():  # whoever awaits RE.stop()/abort()/halt()
            if call.result is not None:
                call.done.set_result(call.result)
            else:
                call.done.cancel()

    async def _run(self, call: _Call) -> RunResult:
        ctx = call.ctx
        try:
            plan_result = await self._drive(call)
            ctx.groups.raise_unwaited_failure()
        except _Paused:
            raise
        except _Halted:
            await call.stack.close()
            await self._cleanup(call, "abort", call.reason)
            result = self._result(call, "abort", call.reason)
            raise RunAborted(f"the plan was halted: {call.reason}", result) from None
        except asyncio.CancelledError:
            await self._cancel(call)
            raise
        except RequestStop:
            return await self._close(call, "success", call.reason, None)
        except RequestAbort:
            await self._cleanup(call, "abort", call.reason)
            result = self._result(call, "abort", call.reason)
            raise RunAborted(f"the plan was aborted: {call.reason}", result) from None
        except BaseException as exc:
            reason = _reason(exc)
            # Ctrl-C into code that blocked the loop (acq._interrupt): the user ended it
            status = "abort" if isinstance(exc, KeyboardInterrupt) else "fail"
            await self._cleanup(call, status, reason)
            self._result(call, status, reason)
            raise
        if self._cancelled():  # the plan swallowed the cancellation, or it is on its way
            await self._cancel(call)
            raise asyncio.CancelledError
        if ctx.critical_failure is not None:  # the plan caught it; the run fails anyway
            reason = _reason(ctx.critical_failure)
            await self._cleanup(call, "fail", reason)
            self._result(call, "fail", reason)
            raise ctx.critical_failure
        if call.ending is Request.ABORT:  # the plan swallowed the abort
            await self._cleanup(call, "abort", call.reason)
            result = self._result(call, "abort", call.reason)
            raise RunAborted(f"the plan was aborted: {call.reason}", result)
        status, reason = (
            ("success", call.reason) if call.ending is Request.STOP else ("success", "")
        )
        return await self._close(call, status, reason, plan_result)

    async def _close(self, call: _Call, status: str, reason: str, plan_result: Any) -> RunResult:
        problems = await self._cleanup(call, status, reason)
        if problems:
            self._result(call, "fail", _reason(problems[0]))
            raise problems[0]
        return self._result(call, "success", reason, plan_result)

    def _cancelled(self) -> bool:
        """Has the task driving the call been cancelled from outside (landed or not yet)?"""
        task = self._task
        return task is not None and task.cancelling() - self._interrupting > self._cancels

    async def _cancel(self, call: _Call) -> None:
        """End a call whose task was cancelled: its runs end with exit_status 'abort'."""
        if self._state not in (State.STOPPING, State.ABORTING, State.HALTING):
            self._set_state(State.ABORTING)
        await self._cleanup(call, "abort", CANCELLED)
        self._result(call, "abort", CANCELLED)

    async def _cleanup(self, call: _Call, status: str, reason: str) -> list[BaseException]:
        """The call's cleanup; cancelled meanwhile, its result says so, as its Stops do."""
        self._current = None  # nothing to cut short now: a request waits for the end
        if self._interrupting:  # our own cancellation is still on its way: take it here
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(0)
            self._interrupting = False
            cast(asyncio.Task[Any], self._task).uncancel()
        try:
            return await call.ctx.cleanup(status, reason)
        except asyncio.CancelledError:
            self._result(call, "abort" if status == "success" else status, CANCELLED)
            raise

    def _result(
        self, call: _Call, exit_status: str, reason: str, plan_result: Any = None
    ) -> RunResult:
        """The call's result, also given to whoever awaits ``RE.stop()``/``abort()``."""
        result = RunResult(
            run_start_uids=tuple(call.ctx.run_start_uids),
            exit_status=cast(Any, exit_status),
            reason=reason,
            plan_result=plan_result,
            callback_errors=self._dispatcher.errors,  # filled until the workers drain
            dropped=self._dispatcher.dropped,
        )
        call.result = result
        return result

    # -- the drive loop -------------------------------------------------------------------
    async def _drive(self, call: _Call) -> Any:
        """Send each response into the plan and handle the message it yields next."""
        ctx, stack = call.ctx, call.stack
        handlers = self._handlers
        frames = stack.frames
        replay = ctx.replay
        if self._request is Request.HALT:
            raise _Halted()
        fresh = call.stack.depth == 1 and not call.ctx.runs and call.pending is None
        if self._suspenders and (fresh or call.rewind):
            await self._wait_for_suspenders()  # a tripped suspender delays a start or resume
            if self._state is State.SUSPENDING:
                self._set_state(State.RUNNING)
        reply, error, msg = call.reply, call.error, call.pending
        call.error = call.pending = None
        if call.rewind:
            call.rewind = False
            error = await self._rewind(call) or error
        countdown = _YIELD_EVERY
        hook = self.msg_hook
        again = msg is not None  # a message handled before: not shown to the hook again
        while True:
            if msg is None:
                try:
                    if error is None:
                        # the fast path: the active plan, sent its reply directly
                        frame = frames[-1]
                        try:
                            if frame.is_async:
                                msg = await frame.gen.asend(reply)
                            else:
                                msg = frame.gen.send(reply)
                        except (StopIteration, StopAsyncIteration) as stop:
                            msg = await stack.pop(stop)
                        except BaseException as exc:  # noqa: BLE001 -- to the parent plan
                            msg = await stack.raise_in_parent(exc)
                        else:
                            if type(msg) is not Msg:
                                msg = await stack.dispatch(msg)
                    else:
                        msg = await stack.throw(error)
                except PlanFinished as finished:
                    return finished.result
                error = None
            if hook is not None:  # the only cost of RE.msg_hook: one check a message
                if not again:
                    hook(msg)
                again = False
            if self._attention and self._request is not None:
                error = await self._interrupt(call, msg, reply)
                if error is not None:
                    msg = None
                    continue
            try:
                handler = handlers[msg.command]
            except (KeyError, TypeError):  # TypeError: an unhashable command
                error = UnknownCommandError(
                    f"unknown command {msg.command!r} in {msg!r}; known commands: "
                    f"{', '.join(sorted(handlers))} (register new ones with RE.register_command)"
                )
                msg = None
                continue
            self._current = msg
            try:
                reply: Any = handler(ctx, msg)
                if type(reply) is CoroutineType:  # an async handler (no cast(): a call)
                    reply = await reply  # pyright: ignore[reportUnknownVariableType]
            except asyncio.CancelledError as exc:
                self._current = None
                if not self._interrupting:
                    error, msg = exc, None  # cancelled from outside: an abort
                    continue
                self._interrupting = False
                cast(asyncio.Task[Any], self._task).uncancel()
                again = True
                continue  # msg is still pending: the request decides what becomes of it
            except Exception as exc:  # noqa: BLE001 -- thrown into the plan, which may catch it
                self._current = None
                if type(exc) is TypeError:  # off the hot path: was it the run key?
                    exc = _unhashable_run(msg) or exc
                exc.add_note(f"acq: raised by {_describe(msg)}")
                error, msg = exc, None
                continue
            self._current = None
            if ctx.recording and msg.command not in REPLAY_SKIP:
                replay.append(msg)
            if self._attention:
                if self._interrupting:  # a device swallowed our cancellation: undo it
                    self._interrupting = False
                    cast(asyncio.Task[Any], self._task).uncancel()
                request = self._request
                if request is Request.PAUSE_DEFERRED and msg.command == "checkpoint":
                    call.reply, call.pending = reply, None
                    call.reason = "paused at a checkpoint, as requested"
                    await self._pause(call)
                elif request is not None and request is not Request.PAUSE_DEFERRED:
                    # asked for while this message ran (Msg('pause') itself, a callback,
                    # another task): act on it now, not before the plan's next message,
                    # so that a pause as the plan's last message still pauses
                    error = await self._interrupt(call, None, reply)
                    msg = None
                    continue
            msg = None
            countdown -= 1
            if not countdown:
                countdown = _YIELD_EVERY
                await asyncio.sleep(0)  # let signal handlers and subscribers in

    # -- interruptions ----------------------------------------------------------------------
    async def _interrupt(self, call: _Call, msg: Any, reply: Any) -> BaseException | None:
        """Act on a request before ``msg`` is handled; return an error for the plan."""
        request = self._request
        ctx = call.ctx
        if request is Request.PAUSE_DEFERRED:
            return None  # at the next checkpoint
        self._request = None
        if request is Request.HALT:
            self._set_state(State.HALTING)
            raise _Halted()
        if request in (Request.STOP, Request.ABORT):
            self._set_state(State.STOPPING if request is Request.STOP else State.ABORTING)
            return _ending(call, request)
        if not ctx.recording and ctx.rewindable:
            # nowhere to rewind to: a pause (or suspension) would lose the point in flight
            call.reason = (
                f"a {'suspension' if request is Request.SUSPEND else 'pause'} was requested "
                "while the plan had no checkpoint to resume from, so the plan was aborted"
            )
            self._set_state(State.ABORTING)
            return _ending(call, Request.ABORT)
        call.pending, call.reply = msg, reply
        if request is Request.SUSPEND:
            suspension = self._suspension
            self._suspension = None
            if suspension is not None and not await self._suspend(call, suspension):
                return await self._interrupt(call, msg, reply)  # cut short by a request
            call.pending = None
            return None
        call.reason = "paused now, as requested"
        await self._pause(call)
        return None  # not reached: _pause raises

    async def _pause(self, call: _Call) -> None:
        """Park the plan: stop movers, pause devices, quiet monitors; leave the loop."""
        self._set_state(State.PAUSING)
        self._request = None
        await self._quiesce(call.ctx)
        await call.ctx.call_each("pause")
        await call.ctx.record_interruption("pause")
        raise _Paused()

    async def _quiesce(self, ctx: PlanContext) -> None:
        for problem in await ctx.stop_movers():
            logger.warning("while pausing: %s", problem)
        if ctx.recording:  # the replay makes them again; without one, the plan goes on
            ctx.drop_bundles()
        await ctx.suspend_monitors()

    async def _suspend(self, call: _Call, suspension: Suspension) -> bool:
        """Wait, with the plan parked, until the suspenders' conditions clear.

        Returns False if a request (pause, stop, abort, halt) cut the suspension short;
        the caller then acts on that request.
        """
        ctx = call.ctx
        self._set_state(State.SUSPENDING)
        logger.warning("suspending: %s", suspension.justification or "a suspender tripped")
        await self._quiesce(ctx)
        await ctx.record_interruption("suspend")
        if suspension.pre_plan is not None:
            await self._side_plan(ctx, suspension.pre_plan())
        if not await self._interruptible(suspension.ready()):
            return False
        if not await self._wait_for_suspenders():  # another one may have tripped meanwhile
            return False
        if suspension.post_plan is not None:
            await self._side_plan(ctx, suspension.post_plan())
        self._set_state(State.RUNNING)
        pending = call.pending
        error = await self._rewind(call)
        if error is not None:
            raise error
        call.pending = pending
        return True

    async def _side_plan(self, ctx: PlanContext, plan: Any) -> None:
        """Run a suspender's pre/post plan with the paused plan's context (not replayed)."""
        stack = PlanStack(as_plan(plan))
        reply: Any = None
        while True:
            try:
                msg = await stack.send(reply)
            except PlanFinished:
                return
            if self.msg_hook is not None:
                self.msg_hook(msg)
            reply = await _handle(self._handlers[msg.command], ctx, msg)

    async def _rewind(self, call: _Call) -> BaseException | None:
        """Resume: devices resume, monitors listen again, the checkpoint's messages replay."""
        ctx = call.ctx
        if self._state is not State.RUNNING:
            self._set_state(State.RUNNING)
        await ctx.call_each("resume")
        await ctx.restore_monitors()
        await ctx.record_interruption("resume")
        if ctx.no_replay:  # a device's pause() said it cannot be replayed
            ctx.no_replay = False
            ctx.replay.clear()
            ctx.bundle_marks.clear()
            return None
        if not ctx.recording:
            return None
        messages = list(ctx.replay)
        ctx.replay.clear()
        ctx.bundle_marks.clear()
        for msg in messages:
            if self.msg_hook is not None:
                self.msg_hook(msg)
            try:
                await _handle(self._handlers[msg.command], ctx, msg)
            except Exception as exc:  # noqa: BLE001 -- thrown into the plan
                exc.add_note(f"acq: raised while replaying {_describe(msg)} after a rewind")
                return exc
            ctx.replay.append(msg)
        return None

    async def _pause_message(self, ctx: PlanContext, msg: Any) -> None:
        """``Msg('pause', defer=False)``: the plan asks to be paused."""
        defer = bool(msg.kwargs.get("defer", msg.args[0] if msg.args else False))
        self._ask(Request.PAUSE_DEFERRED if defer else Request.PAUSE_NOW)


async def _handle(handler: Handler, ctx: PlanContext, msg: Any) -> Any:
    """Call a handler off the hot path (replays, suspenders' plans)."""
    reply: Any = handler(ctx, msg)
    if type(reply) is CoroutineType:
        reply = await cast("Coroutine[Any, Any, Any]", reply)
    return reply


def _ending(call: _Call, request: Request) -> BaseException:
    """Record that ``call`` is ending (stop or abort); the exception to throw into its plan.

    A ``close_run`` the plan sends from now on (bluesky's ``run_wrapper`` closes its run
    when the exception reaches it) gets the call's reason unless it gives its own.
    """
    call.ending = request
    call.ctx.ending_reason = call.reason
    return RequestStop(call.reason) if request is Request.STOP else RequestAbort(call.reason)


def _retrieve(task: asyncio.Future[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("ending a paused plan failed", exc_info=task.exception())


def _describe(msg: Any) -> str:
    obj = msg.obj
    target = "" if obj is None else f" on {device_name(obj)}"
    return f"the {msg.command!r} message{target}"


def _unhashable_run(msg: Any) -> PlanError | None:
    """The error for a message whose ``run`` key cannot be a key (None if it can)."""
    try:
        hash(msg.run)
    except TypeError as exc:
        error = PlanError(
            f"{msg.command!r} with run={msg.run!r}: a run key must be hashable (a string, "
            f"a number, a tuple...); the message was {msg!r}"
        )
        error.__cause__ = exc
        return error
    return None


def _reason(exc: BaseException) -> str:
    return failure_reason(exc)


def _call_subscriptions(items: Iterable[Any]) -> list[Subscription]:
    """Per-call subscriptions: ``cb``, ``(name, cb)`` or bluesky's ``{name: cb or [cb]}``."""
    subs: list[Subscription] = []
    for item in items:
        if isinstance(item, Mapping):
            for name, callbacks in cast(Mapping[str, Any], item).items():
                many = isinstance(callbacks, list | tuple)
                for cb in cast(list[Any], callbacks) if many else [callbacks]:
                    subs.append(make_subscription(cb, name))
        elif isinstance(item, tuple):
            name, cb = cast(tuple[str, Any], item)
            subs.append(make_subscription(cb, name))
        else:
            subs.append(make_subscription(item))
    return subs
