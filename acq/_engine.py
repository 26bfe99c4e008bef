"""The RunEngine: runs plans on the caller's own event loop.

``result = await RE(plan, **md)`` drives the plan in the awaiting task itself: no thread,
no private loop, no task per message. The :class:`RunEngine` is the long-lived front
end: its state and who observes it, subscriptions, suspenders, the command table,
requests, the catalog and bluesky's settings (``rewindable``, ``msg_hook``,
``scan_id_source``, ...). Each call makes one :class:`~acq._execution.Execution`, which
drives the plan (``_execution.py``); the handlers are in ``_handlers.py`` and the table
of commands and their flags in ``_commands.py``; interruptions (requests, suspenders,
Ctrl-C) in ``_interrupt.py``; the replay log in ``_replay.py``.

A paused plan stays with the engine (``RE.state is State.PAUSED``) until
``await RE.resume()`` rewinds it to its last checkpoint, replays the messages since, and
drives it on -- or ``RE.stop()``, ``RE.abort()``, ``RE.halt()`` end it.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import warnings
from collections.abc import Callable, Mapping, MutableMapping
from typing import Any

from ._call import RunCall
from ._commands import COMMANDS, Command
from ._context import PlanContext
from ._dispatch import Callback, Dispatcher, Overflow, call_subscriptions, make_subscription
from ._documents import call_maybe_async
from ._errors import RunAborted, RunEngineInterrupted, StateError
from ._execution import Execution, Paused
from ._interrupt import Request, SigintHandler, SuspenderRegistry, Suspension
from ._metadata import check_metadata, library_versions, next_scan_id
from ._plan import Plan, as_plan, plan_name
from ._result import RunResult
from ._state import State, transition
from ._status import WatchedStatusGroups

__all__ = ["RunEngine"]

logger = logging.getLogger("acq.engine")


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
            scan_id (e.g. a facility's scan-number service), instead of the default:
            with a catalog, the catalog numbers the runs it stores, one more than the
            highest scan_id it holds and than ``RE.md['scan_id']``, safe with several
            engines and processes (:meth:`~acq.catalog.Catalog.next_scan_id`); with
            ``catalog=None``, one more than ``RE.md['scan_id']``. Either way the run's
            scan_id is written back to ``RE.md['scan_id']``.
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
        self._suspenders = SuspenderRegistry(self)
        self._commands: dict[str, Command] = {
            **COMMANDS,  # and the commands that act on the engine itself:
            "pause": Command(self._pause_message, replayed=False),
            "rewindable": Command(self._rewindable_message, replayed=False),
            "install_suspender": Command(self._suspenders.install_message, replayed=False),
            "remove_suspender": Command(self._suspenders.remove_message, replayed=False),
            "RE_class": Command(lambda _ctx, _msg: type(self)),  # bluesky's self-description
        }
        self._state = State.IDLE
        self._state_observers: list[Callable[[State, State], Any]] = []
        self._execution: Execution | None = None  # the call running or paused, if any
        self._sigint = SigintHandler(self.request_pause) if handle_sigint else None

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
        execution = self._execution
        return execution.ctx.replay.rewindable if execution is not None else self._rewindable

    @rewindable.setter
    def rewindable(self, flag: bool) -> None:
        self._rewindable = bool(flag)
        if self._execution is not None:
            self._execution.ctx.replay.rewindable = self._rewindable

    def _rewindable_message(self, ctx: PlanContext, msg: Any) -> bool:
        """``Msg('rewindable', None, flag)`` sets :attr:`rewindable`; None only asks."""
        if msg.args and msg.args[0] is not None:
            self.rewindable = bool(msg.args[0])
        return self.rewindable

    @property
    def deferred_pause_requested(self) -> bool:
        """Has a pause at the next checkpoint been asked for, and not yet happened?"""
        if self._execution is None:
            return self._deferred_left
        return self._execution.request is Request.PAUSE_DEFERRED

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
        self._suspenders.install(suspender)

    def remove_suspender(self, suspender: Any) -> None:
        """Stop watching ``suspender``'s signal."""
        self._suspenders.remove(suspender)

    def clear_suspenders(self) -> None:
        """Remove every suspender."""
        self._suspenders.clear()

    @property
    def suspenders(self) -> tuple[Any, ...]:
        """The installed suspenders."""
        return self._suspenders.items

    # -- commands -------------------------------------------------------------------------
    def register_command(
        self,
        name: str,
        handler: Callable[[Any], Any],
        *,
        replayed: bool = True,
        interruptible: bool = True,
    ) -> None:
        """Handle ``Msg(name, ...)`` with ``handler(msg)`` (sync or async); replaces any.

        Args:
            name: the command.
            handler: called with the message; what it returns (or its coroutine gives) is
                the plan's reply.
            replayed: handle it again when a resume rewinds to the last checkpoint (a
                command that acts on hardware); False for bookkeeping.
            interruptible: a request (pause now, stop, abort) may cut it short while it
                waits; False for one that must finish (it records something).
        """
        if not callable(handler):
            raise TypeError(f"the handler for {name!r} must be callable, got {handler!r}")

        async def custom(ctx: PlanContext, msg: Any) -> Any:
            return await call_maybe_async(handler, msg)

        self._commands[name] = Command(custom, replayed=replayed, interruptible=interruptible)

    def unregister_command(self, name: str) -> None:
        """Forget the handler of ``name``."""
        self._commands.pop(name, None)

    @property
    def commands(self) -> frozenset[str]:
        """Every command this engine understands."""
        return frozenset(self._commands)

    def _pause_message(self, ctx: PlanContext, msg: Any) -> None:
        """``Msg('pause', defer=False)``: the plan asks to be paused."""
        defer = bool(msg.kwargs.get("defer", msg.args[0] if msg.args else False))
        if self._execution is not None:
            self._execution.ask(Request.PAUSE_DEFERRED if defer else Request.PAUSE_NOW)

    # -- running plans --------------------------------------------------------------------
    def __call__(self, plan: Any, *subscriptions: Any, **md: Any) -> RunCall[RunResult]:
        """Run ``plan`` to its end when awaited: ``result = await RE(plan)``.

        Returns the call's coroutine (:class:`~acq._call.RunCall`); awaited, it gives a
        :class:`RunResult`. Not awaited, nothing runs: its repr says so, and a warning
        names the plan if it is dropped.

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
        return RunCall(self._call(plan, subscriptions, md), plan_name(plan))

    async def _call(
        self, plan: Any, subscriptions: tuple[Any, ...], md: dict[str, Any]
    ) -> RunResult:
        """``RE(...)``, awaited."""
        self._check_call(md)
        root = as_plan(plan)
        inferred = {"plan_type": type(root).__name__, "plan_name": plan_name(root)}
        for preprocessor in self.preprocessors:
            root = as_plan(preprocessor(root))
        ctx = PlanContext(
            dispatcher=self._dispatcher,
            stash=self.md,
            md_validator=self.md_validator,
            md_normalizer=self.md_normalizer,
            scan_id_source=self._scan_id_source(),
            call_md=md,
            inferred=inferred,
        )
        ctx.record_interruptions = self.record_interruptions
        ctx.replay.rewindable = self._rewindable
        if self.waiting_hook is not None:  # it sees finished statuses too, as in bluesky
            ctx.waiting_hook = self.waiting_hook
            ctx.groups = WatchedStatusGroups()
        ctx.replay.checkpoint()  # as in bluesky: a pause before the first checkpoint rewinds
        tokens = [self._dispatcher.subscribe(s) for s in call_subscriptions(subscriptions)]
        self._execution = Execution(
            host=self,
            set_state=self._set_state,
            ctx=ctx,
            plan=root,
            commands=self._commands,
            suspenders=self._suspenders,
            tokens=tokens,
        )
        self._deferred_left = False
        return await self._execute(self._execution)

    def __getattr__(self, name: str) -> Any:
        """Only for names the engine does not have: say what to write instead."""
        hint = _HINTS.get(name)
        raise AttributeError(
            f"'RunEngine' object has no attribute {name!r}" + (f"; {hint}" if hint else "")
        )

    def _scan_id_source(self) -> Callable[[dict[str, Any]], Any] | None:
        """``RE.scan_id_source``; without one, the catalog's (None: from ``RE.md``)."""
        catalog = self.catalog
        if self.scan_id_source is None and catalog is not None:
            # runs in one catalog never share a scan_id; RE.md's is a floor
            return lambda md: catalog.next_scan_id(at_least=next_scan_id(md))
        return self.scan_id_source

    def _check_call(self, md: dict[str, Any]) -> None:
        """Refuse a call before anything acts: engine busy, too deep, bad metadata."""
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
                stacklevel=3,
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

    async def resume(self) -> RunResult:
        """Go on with a paused plan: rewind to its last checkpoint, replay, drive on.

        Raises:
            StateError: nothing is paused.
        """
        execution = self._execution
        if self._state is not State.PAUSED or execution is None:
            raise StateError(f"cannot resume: the RunEngine is {self._state.value}, not paused")
        execution.resumed = True
        return await self._execute(execution)

    def request_pause(self, defer: bool = False) -> None:
        """Ask the running plan to pause: now, or at its next checkpoint (``defer``).

        A plain method: safe from signal handlers, callbacks and other tasks (and threads).

        Raises:
            StateError: the engine is idle: there is nothing to pause.
        """
        if self._state is State.IDLE:
            raise StateError("cannot pause: the RunEngine is idle (no plan is running)")
        execution = self._execution
        if execution is None or self._state not in (State.RUNNING, State.SUSPENDING):
            return
        execution.ask(Request.PAUSE_DEFERRED if defer else Request.PAUSE_NOW)

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
        execution = self._execution
        if execution is None or self._state is not State.RUNNING:
            return
        execution.suspension = Suspension(ready, justification, pre_plan, post_plan)
        execution.ask(Request.SUSPEND)

    def stop(self) -> asyncio.Future[RunResult]:
        """End the plan, letting it clean up; its runs end with exit_status 'success'."""
        return self._end(Request.STOP, "stopped by RE.stop()")

    def abort(self, reason: str = "") -> asyncio.Future[RunResult]:
        """End the plan, letting it clean up; its runs end with exit_status 'abort'."""
        return self._end(Request.ABORT, reason or "aborted by RE.abort()")

    def halt(self) -> asyncio.Future[RunResult]:
        """End the plan at once, without its cleanup; runs end with exit_status 'abort'."""
        return self._end(Request.HALT, "halted by RE.halt(): the plan's cleanup did not run")

    def _end(self, request: Request, reason: str) -> asyncio.Future[RunResult]:
        execution = self._execution
        if execution is None or self._state is State.IDLE:
            raise StateError(f"nothing to end: the RunEngine is {self._state.value}")
        paused = self._state is State.PAUSED
        execution.end(request, reason, paused=paused)
        if paused:  # nobody is driving it: a task of its own finishes it
            task = asyncio.ensure_future(self._finish_paused(execution))
            task.add_done_callback(_retrieve)
        return execution.done

    async def _finish_paused(self, execution: Execution) -> RunResult:
        try:
            return await self._execute(execution)
        except (RunAborted, RunEngineInterrupted):
            return await execution.done

    async def _execute(self, execution: Execution) -> RunResult:
        """Drive ``execution`` until its plan ends or pauses; then settle the engine."""
        if self._state in (State.IDLE, State.PAUSED):
            self._set_state(State.RUNNING)
        self._dispatcher.start()
        sigint = self._sigint is not None and self._sigint.install()
        paused = False
        try:
            return await execution.run()
        except Paused:
            paused = True
            raise RunEngineInterrupted(
                f"the plan is paused ({execution.reason}); its runs stay open. Continue with "
                "'await RE.resume()', or end it with RE.stop(), RE.abort() or RE.halt()"
            ) from None
        finally:
            if sigint and self._sigint is not None:
                self._sigint.remove()
            if not paused:
                execution.release(self.remove_suspender)
            try:
                await self._dispatcher.finish()
            finally:  # even if cancelled while the subscribers drain
                self._settle(execution, paused)

    def _settle(self, execution: Execution, paused: bool) -> None:
        """The engine's state once a call has left the drive loop: paused or idle."""
        if paused:
            self._set_state(State.PAUSED)
            return
        self._execution = None
        self._deferred_left = execution.request is Request.PAUSE_DEFERRED
        self._set_state(State.IDLE)
        execution.settle()


_HINTS: dict[str, str] = dict.fromkeys(
    ("run", "run_plan", "execute", "start"),
    "to run a plan, write 'result = await RE(plan)' (in a script, inside a function run "
    "with asyncio.run)",
)


def _retrieve(task: asyncio.Future[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("ending a paused plan failed", exc_info=task.exception())
