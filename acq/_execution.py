"""One ``RE(...)`` call, from its first message to its runs' last Stop: :class:`Execution`.

The :class:`~acq.RunEngine` is the long-lived front end (state, subscriptions,
suspenders, settings); each ``RE(...)`` makes one :class:`Execution`, much as trio's
``run()`` makes one ``Runner``. The execution owns everything that lives and dies with
the call: the plan stack, the call's :class:`~acq._context.PlanContext` (its open runs,
groups, staged devices, replay log), the message waiting to be handled, the reply and
error owed to the plan, how and why the plan is ending, the request slot, and the
cutting short of the message in flight. A paused call keeps its execution until
``RE.resume()`` drives it on or ``RE.stop()``/``abort()``/``halt()`` finish it.

:meth:`Execution.drive` is the hot path: it moves between the plan and a handler; the
msg_hook, requests and interrupted messages wait behind one check of
:attr:`Execution.attention`.

Invariants (asserted in the tests, cheap checks here where they guard a state):

* ``current`` is the message being handled (or ``_WAITING`` while the engine waits
  for a suspender), None otherwise; only then may a request cut it short;
* ``interrupting`` is True only between the engine cancelling its own task to cut a
  message short and taking that cancellation back (``uncancel``);
* once :meth:`Execution.finish` returns or raises, every run the plan opened has its
  Stop, and ``result`` says what the Stops say.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable, Mapping
from types import CoroutineType
from typing import Any, Protocol, cast

from ._commands import Command, describe, failed, handle, unknown
from ._context import CANCELLED, PlanContext, failure_reason
from ._errors import AcqInternalError, RequestAbort, RequestStop, RunAborted
from ._interrupt import Request, SuspenderRegistry, Suspension
from ._msg import Msg
from ._plan import Plan, PlanFinished, PlanStack, as_plan
from ._result import RunResult
from ._state import State

__all__ = ["Execution", "Halted", "Host", "Paused"]

logger = logging.getLogger("acq.engine")

_YIELD_EVERY = 1024  # messages between two chances for other tasks (Ctrl-C, subscribers)
_WAITING = Msg("wait")  # stands for "the engine is waiting": a request may cut it short


class Paused(Exception):
    """Raised inside the engine to leave the drive loop with the plan kept."""


class Halted(Exception):
    """Raised inside the engine to abandon the plan without its cleanup."""


class Host(Protocol):
    """What an execution reads of the engine that made it."""

    @property
    def state(self) -> State:
        """The engine's state."""
        ...

    @property
    def msg_hook(self) -> Callable[[Any], Any] | None:
        """Called with every message (``RE.msg_hook``)."""
        ...


class Execution:
    """One ``RE(...)`` call: its plan, its context, and how it is ending."""

    def __init__(
        self,
        *,
        host: Host,
        set_state: Callable[[State], None],
        ctx: PlanContext,
        plan: Plan,
        commands: Mapping[str, Command],
        suspenders: SuspenderRegistry,
        tokens: list[int],
    ) -> None:
        self._host = host
        self._set_state = set_state
        self.ctx = ctx
        self.stack = PlanStack(plan)
        self.commands = commands
        self._suspenders = suspenders
        self._tokens = tokens  # the call's own subscriptions, removed when it ends
        self.pending: Any = None  # a message to handle before asking the plan again
        self.reply: Any = None
        self.error: BaseException | None = None
        self.ending: Request | None = None  # STOP or ABORT once thrown into the plan
        self.reason = ""
        self.resumed = False  # rewind and replay when driving goes on
        self.done: asyncio.Future[RunResult] = asyncio.get_running_loop().create_future()
        self.result: RunResult | None = None  # given to `done` once the engine is idle
        self.suspension: Suspension | None = None  # what request_suspend asked for
        self.current: Any = None  # the message being handled, if any
        self.attention = False  # a request, an interruption or a hook: look closer
        self._request: Request | None = None
        self._interrupting = False  # we cancelled our own task to cut a message short
        self._hook: Callable[[Any], Any] | None = None
        self._shown: Any = None  # the message the hook saw last (not shown twice)
        self._task: asyncio.Task[Any] | None = None
        self._cancels = 0  # the task's cancellation requests when it began driving
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()

    # -- the attention flag: one check a message on the hot path -------------------------
    @property
    def request(self) -> Request | None:
        """What the engine has been asked and not yet done."""
        return self._request

    @request.setter
    def request(self, request: Request | None) -> None:
        self._request = request
        self._attend()

    @property
    def interrupting(self) -> bool:
        """Has the engine cancelled its own task to cut the message in flight short?"""
        return self._interrupting

    @interrupting.setter
    def interrupting(self, flag: bool) -> None:
        self._interrupting = flag
        self._attend()

    def _attend(self) -> None:
        self.attention = self._request is not None or self._interrupting or self._hook is not None

    # -- requests -----------------------------------------------------------------------
    def ask(self, request: Request) -> None:
        """Record a request; cut the message in flight short if the request says so.

        Safe from other threads: the request is then handed to the call's loop.
        """
        if threading.get_ident() != self._loop_thread:
            self._loop.call_soon_threadsafe(self.ask, request)
            return
        if self._request is not None and self._request.value >= request.value:
            return  # something at least as urgent is already on its way
        self.request = request
        current, task = self.current, self._task
        if (
            request.interrupts
            and current is not None
            and task is not None
            and task is not asyncio.current_task()  # asked from the plan's own task
            and not task.done()
            and self._interruptible(current)
            and not self._interrupting
        ):
            self.interrupting = True
            task.cancel(msg="acq: interrupted by a request")

    def _interruptible(self, msg: Any) -> bool:
        command = self.commands.get(msg.command)
        return command is None or command.interruptible

    def _take_interruption(self) -> None:
        """Our own cancellation has landed (or was swallowed): take it back."""
        self.interrupting = False
        cast(asyncio.Task[Any], self._task).uncancel()

    def end(self, request: Request, reason: str, *, paused: bool) -> None:
        """``RE.stop()``/``abort()``/``halt()``: ask, or, for a paused plan, set it up to end."""
        self.reason = reason
        if not paused:
            self.ask(request)
        elif request is Request.HALT:
            self._set_state(State.HALTING)
            self.request = Request.HALT  # drive() sees it before touching the plan
        else:
            self.pending, self.error = None, self._ending(request)
            self._set_state(State.STOPPING if request is Request.STOP else State.ABORTING)

    def cancelled(self) -> bool:
        """Has the task driving the call been cancelled from outside (landed or not yet)?"""
        task = self._task
        return task is not None and task.cancelling() - self._interrupting > self._cancels

    # -- the life of the call ----------------------------------------------------------------
    async def run(self) -> RunResult:
        """Drive the plan in the current task until it ends, or pauses (:class:`Paused`).

        Raises:
            Paused: the plan is parked; ``run()`` again (after ``resumed = True``) goes on.
            RunAborted: aborted or halted (the result is on the exception).
            BaseException: whatever failed the plan, after every run got its Stop.
        """
        if self._task is not None:  # the engine's states allow one driver at a time
            raise AcqInternalError("an execution was driven by two tasks at once")
        task = self._task = asyncio.current_task()
        self._cancels = task.cancelling() if task is not None else 0
        self.ctx.cancelled = self.cancelled
        self._hook = self._host.msg_hook
        self._attend()
        try:
            return await self._run()
        finally:
            self._task = None
            self.interrupting = False

    async def _run(self) -> RunResult:
        try:
            plan_result = await self.drive()
            self.ctx.groups.raise_unwaited_failure()
        except Paused:
            raise
        except Halted:
            await self.stack.close()
            result = await self.finish("abort", self.reason)
            raise RunAborted(f"the plan was halted: {self.reason}", result) from None
        except asyncio.CancelledError:
            await self._cancel()
            raise
        except RequestStop:
            return await self.finish("success", self.reason)
        except RequestAbort:
            result = await self.finish("abort", self.reason)
            raise RunAborted(f"the plan was aborted: {self.reason}", result) from None
        except BaseException as exc:
            # Ctrl-C into code that blocked the loop (acq._interrupt): the user ended it
            await self.finish("abort" if isinstance(exc, KeyboardInterrupt) else "fail", exc)
            raise
        return await self._ended(plan_result)

    async def _ended(self, plan_result: Any) -> RunResult:
        """The plan returned; what it swallowed still decides how its runs end."""
        failure = self.ctx.critical_failure
        if self.cancelled():  # the plan swallowed the cancellation, or it is on its way
            await self._cancel()
            raise asyncio.CancelledError
        if failure is not None:  # the plan caught a critical subscriber's failure
            await self.finish("fail", failure)
            raise failure
        if self.ending is Request.ABORT:  # the plan swallowed the abort
            result = await self.finish("abort", self.reason)
            raise RunAborted(f"the plan was aborted: {self.reason}", result)
        reason = self.reason if self.ending is Request.STOP else ""
        return await self.finish("success", reason, plan_result)

    async def _cancel(self) -> None:
        """End a call whose task was cancelled: its runs end with exit_status 'abort'."""
        if self._host.state not in (State.STOPPING, State.ABORTING, State.HALTING):
            self._set_state(State.ABORTING)
        await self.finish("abort", CANCELLED)

    async def finish(
        self, status: str, why: str | BaseException, plan_result: Any = None
    ) -> RunResult:
        """Clean up (every run gets its Stop) and make the call's result.

        A failed cleanup step turns a success into a failure: its error is raised. Cancelled
        meanwhile, the result says so, as the Stops do, and ``CancelledError`` is raised.
        """
        reason = why if isinstance(why, str) else failure_reason(why)
        self.current = None  # nothing to cut short now: a request waits for the end
        if self._interrupting:  # our own cancellation is still on its way: take it here
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(0)
            self._take_interruption()
        try:
            problems = await self.ctx.cleanup(status, reason)
        except asyncio.CancelledError:
            self._make_result("abort" if status == "success" else status, CANCELLED)
            raise
        if problems and status == "success":
            self._make_result("fail", failure_reason(problems[0]))
            raise problems[0]
        if self.ctx.runs:  # the invariant: cleanup gives every run its Stop
            raise AcqInternalError(f"runs left without a Stop: {list(self.ctx.runs)!r}")
        return self._make_result(status, reason, plan_result)

    def _make_result(self, exit_status: str, reason: str, plan_result: Any = None) -> RunResult:
        """The call's result, also given to whoever awaits ``RE.stop()``/``abort()``."""
        dispatcher = self.ctx.dispatcher
        self.result = RunResult(
            run_start_uids=tuple(self.ctx.run_start_uids),
            exit_status=cast(Any, exit_status),
            reason=reason,
            plan_result=plan_result,
            callback_errors=dispatcher.errors,  # filled until the workers drain
            dropped=dispatcher.dropped,
        )
        return self.result

    def release(self, remove_suspender: Callable[[Any], None]) -> None:
        """The call is over: drop its own subscriptions and the suspenders its plan installed."""
        for token in self._tokens:
            self.ctx.dispatcher.unsubscribe_nowait(token)
        for suspender in self.ctx.plan_suspenders:
            remove_suspender(suspender)

    def settle(self) -> None:
        """Give the result to whoever awaits ``RE.stop()``/``abort()``/``halt()``."""
        if not self.done.done():
            if self.result is not None:
                self.done.set_result(self.result)
            else:
                self.done.cancel()

    # -- the drive loop ---------------------------------------------------------------------
    async def drive(self) -> Any:
        """Send each reply into the plan and handle the message it yields next.

        Returns the plan's result. The loop moves between the plan and a handler; the
        msg_hook, requests and cut-short messages wait behind ``self.attention``. No
        function call per message that is not needed: the active plan is advanced here
        (``PlanStack.step`` inlined), and a failed lookup is told from a failed handler
        by ``self.current`` (set once the command is found).
        """
        reply, error, msg = await self._enter()
        stack, frames, commands = self.stack, self.stack.frames, self.commands
        ctx, log = self.ctx, self.ctx.replay
        countdown = _YIELD_EVERY
        while True:
            if msg is None:
                try:
                    if error is None:  # PlanStack.step inlined: the active plan, sent its reply
                        frame = frames[-1]
                        try:
                            gen = frame.gen
                            msg = await gen.asend(reply) if frame.is_async else gen.send(reply)
                        except BaseException as exc:  # noqa: BLE001 -- to the parent plan
                            msg = await stack.unwind(exc)
                        if type(msg) is not Msg:
                            msg = await stack.dispatch(msg)
                    else:
                        msg, error = await stack.step(None, error), None
                except PlanFinished as finished:
                    return finished.result
            if self.attention:
                msg, error = await self._before(msg, reply)
                if msg is None:
                    continue
            try:
                command = commands[msg.command]  # KeyError, TypeError: unknown, unhashable
                self.current = msg
                reply = command.handler(ctx, msg)
                if type(reply) is CoroutineType:  # an async handler (no cast(): a call)
                    reply = await reply  # pyright: ignore[reportUnknownVariableType]
            except asyncio.CancelledError as exc:
                msg, error = self._cut_short(msg, exc)
                continue
            except Exception as exc:  # noqa: BLE001 -- thrown into the plan, which may catch it
                msg, error = None, self._failed(msg, exc)
                continue
            self.current = None
            if log.recording and command.replayed:
                log.messages.append(msg)
            if self.attention:
                error = await self._after(msg, reply)
            msg = None
            countdown -= 1
            if not countdown:
                countdown = _YIELD_EVERY
                await asyncio.sleep(0)  # let signal handlers and subscribers in

    def _failed(self, msg: Any, exc: Exception) -> Exception:
        """The error for the plan: no handler for ``msg`` (not yet current), or it raised."""
        handled, self.current = self.current is not None, None
        return failed(msg, exc) if handled else unknown(msg, self.commands)

    async def _enter(self) -> tuple[Any, BaseException | None, Any]:
        """Where driving starts or goes on: a halt, tripped suspenders, the rewind."""
        if self._request is Request.HALT:
            raise Halted()
        fresh = self.stack.depth == 1 and not self.ctx.runs and self.pending is None
        if (fresh or self.resumed) and self._suspenders.tripped():
            await self.wait_for_suspenders()  # a tripped suspender delays a start or resume
            if self._host.state is State.SUSPENDING:
                self._set_state(State.RUNNING)
        reply, error, msg = self.reply, self.error, self.pending
        self.error = self.pending = None
        if self.resumed:
            self.resumed = False
            error = await self.rewind() or error
        return reply, error, msg

    async def _before(self, msg: Any, reply: Any) -> tuple[Any, BaseException | None]:
        """Before ``msg`` is handled: show it to the msg_hook, act on a request.

        Returns the message to handle, or None and the error to throw into the plan.
        """
        hook = self._hook
        if hook is not None and msg is not self._shown:  # once, even if it is cut short
            self._shown = msg
            hook(msg)
        if self._request is None:
            return msg, None
        error = await self._interrupt(msg, reply)
        return (msg, None) if error is None else (None, error)

    def _cut_short(self, msg: Any, exc: asyncio.CancelledError) -> tuple[Any, BaseException | None]:
        """A handler was cancelled: by a request (``msg`` stays pending) or from outside."""
        self.current = None
        if not self._interrupting:
            return None, exc  # cancelled from outside: thrown into the plan, an abort
        self._take_interruption()
        return msg, None  # the request decides what becomes of it

    async def _after(self, msg: Any, reply: Any) -> BaseException | None:
        """After ``msg`` was handled: a request that came meanwhile; an error for the plan."""
        self._shown = None
        if self._interrupting:  # a device swallowed our cancellation: undo it
            self._take_interruption()
        request = self._request
        if request is Request.PAUSE_DEFERRED:
            if msg.command == "checkpoint":
                self.reply, self.pending = reply, None
                self.reason = "paused at a checkpoint, as requested"
                await self.pause()
            return None
        if request is None:
            return None
        # asked for while this message ran (Msg('pause') itself, a callback, another task):
        # acted on now, not before the plan's next message, so that a pause as the plan's
        # last message still pauses
        return await self._interrupt(None, reply)

    # -- interruptions --------------------------------------------------------------------
    async def _interrupt(self, msg: Any, reply: Any) -> BaseException | None:
        """Act on a request before ``msg`` is handled; return an error for the plan."""
        request = self._request
        if request is Request.PAUSE_DEFERRED:
            return None  # at the next checkpoint
        self.request = None
        if request is Request.HALT:
            self._set_state(State.HALTING)
            raise Halted()
        if request in (Request.STOP, Request.ABORT):
            self._set_state(State.STOPPING if request is Request.STOP else State.ABORTING)
            return self._ending(cast(Request, request))
        what = "suspension" if request is Request.SUSPEND else "pause"
        if not self.ctx.replay.can_park:
            self.reason = (
                f"a {what} was requested while the plan had no checkpoint to resume from, "
                "so the plan was aborted"
            )
            self._set_state(State.ABORTING)
            return self._ending(Request.ABORT)
        self.pending, self.reply = msg, reply
        if request is Request.SUSPEND:
            suspension, self.suspension = self.suspension, None
            if suspension is not None and not await self.suspend(suspension):
                return await self._interrupt(msg, reply)  # cut short by a request
            self.pending = None
            return None
        self.reason = "paused now, as requested"
        await self.pause()
        return None  # not reached: pause() raises

    def _ending(self, request: Request) -> BaseException:
        """Record that the call is ending (stop or abort); the exception for its plan.

        A ``close_run`` the plan sends from now on (bluesky's ``run_wrapper`` closes its run
        when the exception reaches it) gets the call's reason unless it gives its own.
        """
        self.ending = request
        self.ctx.ending_reason = self.reason
        return RequestStop(self.reason) if request is Request.STOP else RequestAbort(self.reason)

    async def pause(self) -> None:
        """Park the plan: stop movers, pause devices, quiet monitors; leave the loop."""
        self._set_state(State.PAUSING)
        self.request = None
        await self._quiesce()
        await self.ctx.call_each("pause")
        await self.ctx.record_interruption("pause")
        raise Paused()

    async def _quiesce(self) -> None:
        ctx = self.ctx
        for problem in await ctx.stop_movers():
            logger.warning("while pausing: %s", problem)
        if ctx.replay.recording:  # the replay makes them again; without one, the plan goes on
            ctx.drop_bundles()
        await ctx.suspend_monitors()

    async def suspend(self, suspension: Suspension) -> bool:
        """Wait, with the plan parked, until the suspenders' conditions clear.

        Returns False if a request (pause, stop, abort, halt) cut the suspension short;
        the caller then acts on that request.
        """
        self._set_state(State.SUSPENDING)
        logger.warning("suspending: %s", suspension.justification or "a suspender tripped")
        await self._quiesce()
        await self.ctx.record_interruption("suspend")
        if suspension.pre_plan is not None:
            await self.side_plan(suspension.pre_plan())
        if not await self.interruptible(suspension.ready()):
            return False
        if not await self.wait_for_suspenders():  # another one may have tripped meanwhile
            return False
        if suspension.post_plan is not None:
            await self.side_plan(suspension.post_plan())
        self._set_state(State.RUNNING)
        pending = self.pending
        error = await self.rewind()
        if error is not None:
            raise error
        self.pending = pending
        return True

    async def side_plan(self, plan: Any) -> None:
        """Run a suspender's pre/post plan with the parked plan's context (not replayed)."""
        stack = PlanStack(as_plan(plan))
        reply: Any = None
        while True:
            try:
                msg = await stack.step(reply)
            except PlanFinished:
                return
            if self._hook is not None:
                self._hook(msg)
            command = self.commands.get(msg.command)
            if command is None:
                raise unknown(msg, self.commands)
            reply = await handle(command, self.ctx, msg)

    async def rewind(self) -> BaseException | None:
        """Resume: devices resume, monitors listen again, the checkpoint's messages replay.

        Returns the error a replayed message raised (thrown into the plan), or None.
        """
        ctx = self.ctx
        if self._host.state is not State.RUNNING:
            self._set_state(State.RUNNING)
        await ctx.call_each("resume")
        await ctx.restore_monitors()
        await ctx.record_interruption("resume")
        for msg in ctx.replay.take():
            if self._hook is not None:
                self._hook(msg)
            try:
                await handle(self.commands[msg.command], ctx, msg)
            except Exception as exc:  # noqa: BLE001 -- thrown into the plan
                exc.add_note(f"acq: raised while replaying {describe(msg)} after a rewind")
                return exc
            ctx.replay.log(msg)
        return None

    async def wait_for_suspenders(self) -> bool:
        """Wait while any installed suspender is tripped (before a start, on a resume).

        Returns False if a request (pause, stop, abort, halt) cut the wait short.
        """
        while tripped := self._suspenders.tripped():
            if self._host.state is State.RUNNING:
                self._set_state(State.SUSPENDING)
            logger.warning("waiting for suspender %r", tripped[0])
            if not await self.interruptible(tripped[0].wait_ready()):
                return False
        return True

    async def interruptible(self, awaitable: Any) -> bool:
        """Await ``awaitable``; a request may cut it short (then False)."""
        self.current = _WAITING
        try:
            await awaitable
        except asyncio.CancelledError:
            if not self._interrupting:
                raise
            self._take_interruption()
            return False
        finally:
            self.current = None
        return True
