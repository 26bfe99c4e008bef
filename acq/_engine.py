"""The RunEngine: runs plans on the caller's own event loop.

``result = await RE(plan, **md)`` drives the plan in the awaiting task itself: no thread,
no private loop, no task per message. The loop that drives a plan is :meth:`RunEngine._drive`;
the handlers it calls are in ``_handlers.py``, the per-call state in ``_context.py``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from typing import Any, cast

from ._context import PlanContext
from ._dispatch import Callback, Dispatcher, Overflow, Subscription, make_subscription
from ._documents import call_maybe_async
from ._errors import StateError, UnknownCommandError
from ._handlers import HANDLERS, Handler
from ._msg import Msg
from ._plan import PlanFinished, PlanStack, as_plan, plan_name
from ._result import RunResult
from ._state import State, transition
from ._status import device_name

__all__ = ["RunEngine"]

logger = logging.getLogger("acq.engine")


class RunEngine:
    """Executes plans and turns what they measure into documents.

    Args:
        md: the metadata stash, copied into every run (``RE.md``); any mutable mapping,
            e.g. a :class:`~acq.PersistentDict`. A new dict if omitted.
        md_validator: called with the final metadata before each run opens; raise to
            refuse the run.

    Example:
        >>> RE = RunEngine()
        >>> result = await RE(count([det], 5), sample="Si")  # doctest: +SKIP
    """

    def __init__(
        self,
        md: MutableMapping[str, Any] | None = None,
        *,
        md_validator: Callable[[dict[str, Any]], Any] | None = None,
    ) -> None:
        self.md: MutableMapping[str, Any] = {} if md is None else md
        self.md_validator = md_validator
        self._dispatcher = Dispatcher()
        self._handlers: dict[str, Handler] = dict(HANDLERS)
        self._state = State.IDLE
        self._state_observers: list[Callable[[State, State], Any]] = []

    # -- state --------------------------------------------------------------------------
    @property
    def state(self) -> State:
        """What the engine is doing now."""
        return self._state

    def _set_state(self, new: State) -> None:
        old = self._state
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
        thread: bool = True,
        maxsize: int = 100_000,
        overflow: Overflow = "block",
    ) -> int:
        """Send every document called ``name`` (or all) to ``callback(name, doc)``.

        Args:
            callback: a function or ``async def`` taking ``(name, doc)``.
            name: ``"all"`` or one document name (``"start"``, ``"event"``, ...).
            critical: the plan waits for it on every document, and its failure fails
                the run (for storage); otherwise it runs in its own worker.
            thread: run a plain-function callback in its own thread (default), so a slow
                one never blocks the loop; False runs it on the loop, in its own task.
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
            StateError: the engine is already running a plan.
            Exception: whatever failed the plan, after every open run got its Stop.
        """
        if self._state is not State.IDLE:
            raise StateError(
                f"this RunEngine is {self._state.value}: it runs one plan at a time; await "
                "the running plan, or make another RunEngine for concurrent plans"
            )
        root = as_plan(plan)
        call_tokens = [self._dispatcher.subscribe(s) for s in _call_subscriptions(subscriptions)]
        ctx = PlanContext(
            dispatcher=self._dispatcher,
            stash=self.md,
            md_validator=self.md_validator,
            call_md=md,
            inferred={"plan_type": type(root).__name__, "plan_name": plan_name(root)},
        )
        self._set_state(State.RUNNING)
        self._dispatcher.start()
        try:
            return await self._run(ctx, PlanStack(root))
        finally:
            for token in call_tokens:
                self._dispatcher.unsubscribe_nowait(token)
            await self._dispatcher.finish()
            self._set_state(State.IDLE)

    async def _run(self, ctx: PlanContext, stack: PlanStack) -> RunResult:
        try:
            plan_result = await self._drive(ctx, stack)
        except asyncio.CancelledError:
            await ctx.cleanup("abort", "the task awaiting the RunEngine was cancelled")
            raise
        except BaseException as exc:
            await ctx.cleanup("fail", _reason(exc))
            raise
        problems = await ctx.cleanup("success", "")
        if problems:
            raise problems[0]
        return RunResult(
            run_start_uids=tuple(ctx.run_start_uids),
            exit_status="success",
            plan_result=plan_result,
            callback_errors=tuple(self._dispatcher.errors),
            dropped=self._dispatcher.dropped,
        )

    async def _drive(self, ctx: PlanContext, stack: PlanStack) -> Any:
        """Send each response into the plan and handle the message it yields next."""
        handlers = self._handlers
        frames = stack.frames
        reply: Any = None
        error: BaseException | None = None
        cancelled: asyncio.CancelledError | None = None
        while True:
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
                    except BaseException as exc:  # noqa: BLE001 -- goes to the parent plan
                        msg = await stack.raise_in_parent(exc)
                    else:
                        if type(msg) is not Msg:
                            msg = await stack.dispatch(msg)
                else:
                    msg = await stack.throw(error)
            except PlanFinished as finished:
                if cancelled is not None:
                    raise cancelled from None
                return finished.result
            try:
                handler = handlers[msg.command]
            except KeyError:
                error = UnknownCommandError(
                    f"unknown command {msg.command!r} in {msg!r}; known commands: "
                    f"{', '.join(sorted(handlers))} (register new ones with RE.register_command)"
                )
                continue
            try:
                reply = await handler(ctx, msg)
                error = None
            except asyncio.CancelledError as exc:
                cancelled = exc
                error = exc
            except Exception as exc:  # noqa: BLE001 -- thrown into the plan, which may catch it
                exc.add_note(f"acq: raised by {_describe(msg)}")
                error = exc


def _describe(msg: Any) -> str:
    obj = msg.obj
    target = "" if obj is None else f" on {device_name(obj)}"
    return f"the {msg.command!r} message{target}"


def _reason(exc: BaseException) -> str:
    notes = [n for n in getattr(exc, "__notes__", ()) if n.startswith("acq: raised by ")]
    where = f" ({notes[-1][len('acq: ') :]})" if notes else ""
    return f"{type(exc).__name__}: {exc}{where}"


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
