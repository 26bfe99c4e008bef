"""Message handlers: one small function per command (the table is ``_commands.COMMANDS``).

Each takes the call's :class:`~acq._context.PlanContext` and the message, and returns
the response that the engine sends back into the plan. A handler that never waits is a
plain function (no coroutine to create and await on the hot path); one that may wait is
``async def``, and the engine awaits what it returns. Pause, resume and suspenders live
with the engine's interruption logic; everything else is here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from numbers import Real
from types import CoroutineType
from typing import Any, cast

from ._context import PlanContext
from ._dispatch import make_subscription
from ._documents import RunBundler, call_maybe_async
from ._errors import DeviceError, IllegalMessageSequence, PlanError, WaitTimeoutError
from ._status import as_status, device_name

__all__: list[str] = []  # the handlers are registered in _commands.COMMANDS


def _method(msg: Any, name: str, protocol: str) -> Callable[..., Any]:
    obj = msg.obj
    method = getattr(obj, name, None)
    if not callable(method):
        if obj is None:
            raise PlanError(f"{msg.command!r} needs a device as its obj, got None ({msg!r})")
        raise DeviceError(
            f"{msg.command!r} message to {device_name(obj)}: it has no {name}() method "
            f"({type(obj).__name__} is not {protocol}); the message was {msg!r}"
        )
    return method


_NO_KWARGS: Mapping[str, Any] = {}


def _split_group(kwargs: Mapping[str, Any]) -> tuple[Any, Mapping[str, Any]]:
    if "group" not in kwargs:
        return None, kwargs
    if len(kwargs) == 1:  # the usual case: only group=
        return kwargs["group"], _NO_KWARGS
    return kwargs["group"], {k: v for k, v in kwargs.items() if k != "group"}


def _check_group(msg: Any, group: Any) -> None:
    """Refuse a ``group=`` that cannot name a group, before the device is called."""
    try:
        hash(group)
    except TypeError:
        raise PlanError(
            f"{msg.command!r} with group={group!r}: a group must be hashable (a string, "
            f"number or tuple) ({msg!r})"
        ) from None


# -- runs and documents -------------------------------------------------------------------
async def open_run(ctx: PlanContext, msg: Any) -> str:
    """Start a run: compose, check and emit its Start document; reply with its uid."""
    return await ctx.open_run(msg.run, msg.kwargs)


async def close_run(ctx: PlanContext, msg: Any) -> str:
    """End a run with a Stop (``exit_status``/``reason`` keywords); reply with its uid.

    A ``reason`` that is not a string (e.g. the exception that ended the plan) is recorded
    as its ``str()``. An ``exit_status`` other than 'success', 'abort' or 'fail' is a
    PlanError thrown into the plan; the run still gets its Stop when the plan ends.
    """
    ctx.run_for(msg, "close_run")
    exit_status = msg.kwargs.get("exit_status") or "success"
    if exit_status not in ("success", "abort", "fail"):
        raise PlanError(
            f"'close_run' with exit_status={exit_status!r}: it must be 'success', 'abort' or "
            f"'fail' ({msg!r})"
        )
    reason = msg.kwargs.get("reason") or ctx.ending_reason
    if not isinstance(reason, str):
        reason = str(reason)
    uid = await ctx.close_run(msg.run, exit_status, reason)
    await ctx.dispatcher.drain()  # every subscriber has seen the Stop when the plan goes on
    return uid


def create(ctx: PlanContext, msg: Any) -> None:
    """Open an event bundle: ``Msg('create', name='primary')``."""
    name = msg.kwargs.get("name", msg.args[0] if msg.args else "primary")
    (ctx.runs.get(msg.run) or ctx.run_for(msg, "create")).create(name)
    ctx.replay.mark_bundle(msg.run)


def save(ctx: PlanContext, msg: Any) -> Any:
    """Emit the open bundle as an Event (a coroutine only when that must wait)."""
    rest = (ctx.runs.get(msg.run) or ctx.run_for(msg, "save")).save()
    if rest is not None:
        return _save_rest(ctx, msg, rest)
    ctx.replay.forget_bundle(msg.run)
    return None


async def _save_rest(ctx: PlanContext, msg: Any, rest: Awaitable[None]) -> None:
    await rest
    ctx.replay.forget_bundle(msg.run)


def drop(ctx: PlanContext, msg: Any) -> None:
    """Discard the open bundle."""
    ctx.run_for(msg, "drop").drop()
    ctx.replay.forget_bundle(msg.run)


def read(ctx: PlanContext, msg: Any) -> Any:
    """Read a device; inside a bundle, the reading joins the next Event.

    A plain function for the usual case (a dict from a device already described in this
    run); a coroutine when the reading must be awaited or the device described first.
    """
    if ctx.turn_owed:
        return _read_after_a_turn(ctx, msg)
    method = getattr(msg.obj, "read", None)
    if not callable(method):
        method = _method(msg, "read", "Readable")  # raises, naming the device
    reading: Any = method()
    if reading.__class__ is not dict:
        if hasattr(reading, "__await__"):
            return _read_async(ctx, msg, reading)
        if reading is None:
            raise _read_returned_none(msg)
    run = ctx.runs.get(msg.run)
    if run is not None and run.bundling and not run.add_known(msg.obj, reading):
        return _add_reading(run, msg.obj, reading)
    return reading


async def _read_after_a_turn(ctx: PlanContext, msg: Any) -> Any:
    await _take_the_turn(ctx)
    reply: Any = read(ctx, msg)
    if type(reply) is CoroutineType:
        reply = await cast("Coroutine[Any, Any, Any]", reply)
    return reply


async def _read_async(ctx: PlanContext, msg: Any, pending: Any) -> Any:
    reading = await pending
    if reading is None:
        raise _read_returned_none(msg)
    run = ctx.runs.get(msg.run)
    if run is not None and run.bundling:
        await run.add_reading(msg.obj, reading)
    return reading


def _read_returned_none(msg: Any) -> DeviceError:
    obj = msg.obj
    return DeviceError(
        f"'read' of {device_name(obj)}: its read() returned None; it must return a dict "
        f"{{data key: {{'value': ..., 'timestamp': ...}}}} (a bug in {type(obj).__name__}; "
        f"the message was {msg!r})"
    )


async def _add_reading(run: RunBundler, obj: Any, reading: Any) -> Any:
    await run.add_reading(obj, reading)
    return reading


async def declare_stream(ctx: PlanContext, msg: Any) -> str:
    """``Msg('declare_stream', None, *objs, name=..., collect=False)``: descriptor ahead."""
    run = ctx.run_for(msg, "declare_stream")
    objs = [o for o in (msg.obj, *msg.args) if o is not None]
    name = msg.kwargs.get("name")
    if not name:
        raise PlanError(f"'declare_stream' needs name=...: {msg!r}")
    return await run.declare_stream(name, objs, bool(msg.kwargs.get("collect", False)))


async def collect(ctx: PlanContext, msg: Any) -> Any:
    """Collect flyers' data as Event Pages or Stream Resource/Datum documents."""
    run = ctx.run_for(msg, "collect")
    objs = [o for o in (msg.obj, *msg.args) if o is not None]
    if not objs:
        raise PlanError(f"'collect' needs at least one object: {msg!r}")
    if ctx.turn_owed:
        await _take_the_turn(ctx)
    return await run.collect(
        objs,
        msg.kwargs.get("name"),
        bool(msg.kwargs.get("return_payload", True)),
        stream=bool(msg.kwargs.get("stream", False)),
    )


async def monitor(ctx: PlanContext, msg: Any) -> None:
    """Turn a signal's updates into events of their own stream until ``unmonitor``."""
    run = ctx.run_for(msg, "monitor")
    _method(msg, "subscribe", "Subscribable")
    name = msg.kwargs.get("name") or f"{device_name(msg.obj)}_monitor"
    await ctx.start_monitor(msg.obj, run, name)


async def unmonitor(ctx: PlanContext, msg: Any) -> None:
    """Stop a monitor started by ``monitor``."""
    if id(msg.obj) not in ctx.monitors:
        raise IllegalMessageSequence(
            f"'unmonitor' of {device_name(msg.obj)}, which is not monitored"
        )
    await ctx.stop_monitor(id(msg.obj))


# -- devices -------------------------------------------------------------------------------
def set_(ctx: PlanContext, msg: Any) -> Any:
    """``Msg('set', obj, value, group=...)``: start a move; reply with its status."""
    status = _status_command(ctx, msg, "set", "Movable")
    ctx.moved[id(msg.obj)] = msg.obj
    return status


def trigger(ctx: PlanContext, msg: Any) -> Any:
    """``Msg('trigger', obj, group=...)``: start an acquisition; reply with its status."""
    return _status_command(ctx, msg, "trigger", "Triggerable")


def _status_command(ctx: PlanContext, msg: Any, name: str, protocol: str) -> Any:
    """Call ``obj.<name>(*args, **kwargs)`` and file its status under ``group``.

    Written out for speed (set and trigger run once per point): the usual message has
    ``group=`` as its only keyword and a device method that returns a finished status.
    """
    obj = msg.obj
    method = getattr(obj, name, None)
    if not callable(method):
        method = _method(msg, name, protocol)  # raises, naming the device
    kwargs = msg.kwargs
    if not kwargs:
        group = None
        status = method(*msg.args)
    elif len(kwargs) == 1 and "group" in kwargs:
        group = kwargs["group"]
        if type(group) is not str and group is not None:
            _check_group(msg, group)
        status = method(*msg.args)
    else:
        group, kwargs = _split_group(kwargs)
        if type(group) is not str and group is not None:
            _check_group(msg, group)
        status = method(*msg.args, **kwargs)
    if type(status) is CoroutineType:
        status = as_status(status)
    ctx.touched[id(obj)] = obj
    if status is not None and ctx.groups.add(group, name, obj, status):
        ctx.turn_owed = True
    return status


async def _take_the_turn(ctx: PlanContext) -> None:
    """Give the event loop the turn a message that started background work left owed.

    A message that starts background work (a move, an acquisition, a stage) lets that
    work start before the plan observes anything, as bluesky's engine does with a loop
    turn after every message: an instantly-moving async device read right after its
    ``set`` (no ``wait``) gives the new value. The turn is taken by the next message
    that observes devices (read, locate, collect); a ``wait`` (which lets the work run
    anyway) pays it off for free, so ``set, wait, trigger, wait`` costs no extra turn.
    """
    ctx.turn_owed = False
    await asyncio.sleep(0)


def kickoff(ctx: PlanContext, msg: Any) -> Any:
    """``Msg('kickoff', flyer, group=...)``: start a fly scan in the open run.

    As in bluesky, a flyer flies inside a run (its data belong to one); a flyer kicked
    off and never collected is collected before the run's Stop.
    """
    run = ctx.run_for(msg, "kickoff")  # before the flyer starts
    status = _status_command(ctx, msg, "kickoff", "Flyable")
    run.kicked_off(msg.obj)
    return status


def complete(ctx: PlanContext, msg: Any) -> Any:
    """``Msg('complete', flyer, group=...)``: the status of the fly scan's end."""
    return _status_command(ctx, msg, "complete", "Flyable")


def prepare(ctx: PlanContext, msg: Any) -> Any:
    """``Msg('prepare', obj, value, group=...)``: get a device ready for a scan."""
    return _status_command(ctx, msg, "prepare", "Preparable")


async def configure(ctx: PlanContext, msg: Any) -> Any:
    """``Msg('configure', obj, *args, **kwargs)``: reply with ``(old, new)``."""
    method = _method(msg, "configure", "Configurable")
    for run in ctx.runs.values():
        if run.bundling:
            raise IllegalMessageSequence(
                f"'configure' of {device_name(msg.obj)} inside an open bundle: save or drop it"
            )
    result = await call_maybe_async(method, *msg.args, **msg.kwargs)
    for run in ctx.runs.values():
        run.forget(msg.obj)
    return result


def _is_status(value: Any) -> bool:
    return callable(getattr(value, "add_callback", None))


async def stage(ctx: PlanContext, msg: Any) -> Any:
    """Stage a device (unstaged at the end of the plan whatever happens).

    A device without both ``stage()`` and ``unstage()`` has nothing to stage: the reply
    is ``[]``, as in bluesky. A returned status joins the message's ``group``.
    """
    method = getattr(msg.obj, "stage", None)
    ctx.touched[id(msg.obj)] = msg.obj  # paused and resumed with the plan, as in bluesky
    if not callable(method) or not callable(getattr(msg.obj, "unstage", None)):
        return []  # as bluesky's: only what can be unstaged again is staged
    group = msg.kwargs.get("group")
    if type(group) is not str and group is not None:
        _check_group(msg, group)
    if all(o is not msg.obj for o in ctx.staged):
        ctx.staged.append(msg.obj)  # before calling: a failed stage is still unstaged
    result: Any = method()
    ctx.replay.restart()  # as in bluesky, a resume never rewinds past a stage
    if _is_status(result) and ctx.groups.add(group, "stage", msg.obj, result):
        ctx.turn_owed = True  # see _take_the_turn
    elif hasattr(result, "__await__"):
        result = await result
    return result


async def unstage(ctx: PlanContext, msg: Any) -> Any:
    """Unstage a device (nothing to do for one without ``unstage()``)."""
    method = getattr(msg.obj, "unstage", None)
    ctx.staged = [o for o in ctx.staged if o is not msg.obj]
    if not callable(method) or not callable(getattr(msg.obj, "stage", None)):
        return []
    group = msg.kwargs.get("group")
    if type(group) is not str and group is not None:
        _check_group(msg, group)
    result: Any = method()
    ctx.replay.restart()
    if _is_status(result) and ctx.groups.add(group, "unstage", msg.obj, result):
        ctx.turn_owed = True  # see _take_the_turn
    elif hasattr(result, "__await__"):
        result = await result
    return result


async def stop(ctx: PlanContext, msg: Any) -> None:
    """Stop a device (``Stoppable``)."""
    await call_maybe_async(_method(msg, "stop", "Stoppable"), *msg.args, **msg.kwargs)
    ctx.moved.pop(id(msg.obj), None)


async def locate(ctx: PlanContext, msg: Any) -> Any:
    """``Msg('locate', *objs, squeeze=True)``: where devices are (setpoint and readback).

    Several objects are located concurrently, as in bluesky, so that their locations are
    of one instant; the reply is then the list of them, in order.
    """
    if msg.obj is None:
        raise PlanError(f"'locate' needs a device as its obj, got None ({msg!r})")
    methods: list[Callable[[], Any]] = []
    for obj in (msg.obj, *msg.args):  # every one checked before any is located
        method = getattr(obj, "locate", None)
        if not callable(method):
            raise DeviceError(f"'locate' of {device_name(obj)}: it has no locate() method")
        methods.append(method)
    if ctx.turn_owed:
        await _take_the_turn(ctx)
    if len(methods) == 1:
        location = await call_maybe_async(methods[0])
        return location if msg.kwargs.get("squeeze", True) else [location]
    locations = await asyncio.gather(*map(call_maybe_async, methods), return_exceptions=True)
    for location in locations:  # all have ended: none is left running when one failed
        if isinstance(location, BaseException):
            raise location
    return locations


# -- time and groups -----------------------------------------------------------------------
def wait(ctx: PlanContext, msg: Any) -> Any:
    """``Msg('wait', group=..., timeout=None, error_on_timeout=True, watch=())``.

    Replies True once the group is done (False if ``timeout`` passed first and
    ``error_on_timeout`` is False). A failed status in one of the ``watch`` groups ends
    the wait with its ``FailedStatus``, as in bluesky.

    Finished statuses are never filed, so a group with nothing filed is done at once
    (a plain return, no coroutine); otherwise the reply is the coroutine of the wait.
    """
    kwargs = msg.kwargs
    group = kwargs.get("group", msg.args[0] if msg.args else None)
    if type(group) is not str and group is not None:
        _check_group(msg, group)
    timeout = kwargs.get("timeout")
    if timeout is not None and not isinstance(timeout, Real):
        raise PlanError(
            f"'wait' needs a timeout in seconds (a number) or None, got {timeout!r}: {msg!r}"
        )
    groups = ctx.groups
    if not groups.has(group):
        return True
    ctx.turn_owed = False  # the wait lets the background work run
    watch: Any = kwargs.get("watch") or ()
    if isinstance(watch, str):
        watch = (watch,)  # one group's name, not its letters
    elif watch:
        watch = _watched_groups(msg, watch)
    waiting = groups.wait(
        group, kwargs.get("timeout"), bool(kwargs.get("error_on_timeout", True)), watch
    )
    if ctx.waiting_hook is None:
        return waiting
    return _wait_watched(ctx.waiting_hook, groups.statuses(group), waiting)


def _watched_groups(msg: Any, watch: Any) -> tuple[Any, ...]:
    """The group names of a ``wait``'s ``watch=``, refused unless they can be names."""
    try:
        names = tuple(watch)
        for name in names:
            hash(name)
    except TypeError:
        raise PlanError(
            f"'wait' with watch={watch!r}: watch takes a group name or a list of group "
            f"names (hashable); the message was {msg!r}"
        ) from None
    return names


async def _wait_watched(hook: Callable[[Any], Any], statuses: set[Any], waiting: Any) -> Any:
    """``RE.waiting_hook`` (a progress bar) gets the statuses waited for, then None."""
    hook(statuses)
    try:
        return await waiting
    finally:
        hook(None)


async def sleep(ctx: PlanContext, msg: Any) -> None:
    """``Msg('sleep', None, seconds)``."""
    if not msg.args:
        raise PlanError(f"'sleep' needs a duration in seconds: {msg!r}")
    seconds = msg.args[0]
    if not isinstance(seconds, Real):
        raise PlanError(f"'sleep' needs a duration in seconds (a number), got {seconds!r}: {msg!r}")
    await asyncio.sleep(float(seconds))


_WAIT_FOR_KEYWORDS = frozenset({"timeout", "return_when"})


async def wait_for(ctx: PlanContext, msg: Any) -> list[asyncio.Future[Any]]:
    """``Msg('wait_for', None, [factory, ...], timeout=None, return_when=ALL_COMPLETED)``.

    Awaits what each factory (a function without arguments) makes, as
    ``asyncio.wait(..., timeout=, return_when=)`` would, and replies with the futures, in
    the order of the factories, as bluesky does: a failed awaitable does not raise here,
    its future holds the error. Factories may be called again when a resume replays
    the message.

    Raises:
        WaitTimeoutError: some awaitables are unfinished (the timeout passed, or
            ``return_when`` let the wait end early, as in bluesky); the tasks made here
            from coroutines are cancelled, futures the factories returned are not.
    """
    factories = msg.args[0] if msg.args else msg.obj
    unknown = set(msg.kwargs) - _WAIT_FOR_KEYWORDS
    if unknown:
        raise PlanError(
            f"'wait_for' takes the keywords timeout= and return_when=, not "
            f"{', '.join(map(repr, sorted(unknown)))}: {msg!r}"
        )
    factories = list(factories or ())
    if not all(callable(f) for f in factories):
        raise PlanError(
            f"'wait_for' needs a list of functions without arguments that make awaitables "
            f"(e.g. [lambda: status, coroutine_function]): {msg!r}"
        )
    futures: list[asyncio.Future[Any]] = []
    made_here: list[asyncio.Future[Any]] = []  # tasks of coroutines: this handler's own
    try:
        for factory in factories:
            awaitable = factory()
            if not (asyncio.isfuture(awaitable) or hasattr(awaitable, "__await__")):
                raise PlanError(
                    f"'wait_for': {factory!r} made {awaitable!r}, which is not awaitable"
                )
            future = asyncio.ensure_future(awaitable)
            if asyncio.iscoroutine(awaitable):
                made_here.append(future)
            futures.append(future)
        if not futures:
            return futures
        timeout = msg.kwargs.get("timeout")
        return_when = msg.kwargs.get("return_when", asyncio.ALL_COMPLETED)
        done, pending = await asyncio.wait(futures, timeout=timeout, return_when=return_when)
    except BaseException:
        for future in made_here:
            future.cancel()
        raise
    if not pending:
        return futures
    for future in made_here:
        future.cancel()
    if return_when == asyncio.ALL_COMPLETED or not done:
        how = f"timed out after {timeout} s"
    else:
        how = f"ended early (return_when={return_when}, timeout={timeout})"
    running = ", ".join(_describe_awaitable(f) for f in futures if f in pending)
    raise WaitTimeoutError(
        f"Plan failed to complete in the specified time: 'wait_for' {how} with "
        f"{len(pending)} of {len(futures)} awaitables unfinished: {running}"
    )


def _describe_awaitable(future: asyncio.Future[Any]) -> str:
    get_coro = getattr(future, "get_coro", None)
    coro = get_coro() if callable(get_coro) else None
    name = getattr(coro, "__qualname__", None)
    return f"{name}()" if isinstance(name, str) else repr(future)


async def input_(ctx: PlanContext, msg: Any) -> str:
    """``Msg('input', None, prompt='> ')``: reply a line the user types (bluesky's input_plan).

    ``input()`` runs in a worker thread, so the loop (and every other task on it) goes on
    while the user types; in Jupyter, whose input needs the kernel's own thread, ask
    before running the plan instead.
    """
    prompt = msg.kwargs.get("prompt", msg.args[0] if msg.args else "")
    return await asyncio.to_thread(input, str(prompt))


async def await_(ctx: PlanContext, msg: Any) -> Any:
    """The escape hatch: ``Msg('await', coroutine)`` or ``Msg('await', func, *args)``."""
    target: Any = msg.obj
    if callable(target):
        target = target(*msg.args, **msg.kwargs)
    if hasattr(target, "__await__"):
        return await target
    raise PlanError(f"'await' needs an awaitable or a function returning one: {msg!r}")


# -- bookkeeping -------------------------------------------------------------------------
def null(ctx: PlanContext, msg: Any) -> None:
    """Do nothing (useful in tests and as a placeholder)."""


def checkpoint(ctx: PlanContext, msg: Any) -> None:
    """Mark a point the plan can be rewound to on resume."""
    for run in ctx.runs.values():
        if run.bundling:
            raise IllegalMessageSequence(
                "'checkpoint' inside an open bundle: save or drop it first"
            )
    ctx.replay.checkpoint()


def clear_checkpoint(ctx: PlanContext, msg: Any) -> None:
    """Forget the last checkpoint: from here on the plan cannot be rewound."""
    ctx.replay.clear_checkpoint()


async def subscribe(ctx: PlanContext, msg: Any) -> int:
    """``Msg('subscribe', None, callback, 'all')``: for the rest of this plan; reply a token."""
    args: list[Any] = list(msg.args)
    callback: Any = args.pop(0) if args else msg.kwargs.get("func")
    name: Any = args.pop(0) if args else msg.kwargs.get("name", "all")
    # part of the plan's logic: it has each document before the plan's next message
    token = ctx.dispatcher.subscribe(make_subscription(callback, name, inline=True))
    ctx.plan_tokens.append(token)
    return token


async def unsubscribe(ctx: PlanContext, msg: Any) -> None:
    """``Msg('unsubscribe', None, token)``."""
    token = msg.args[0] if msg.args else msg.kwargs.get("token")
    if not ctx.dispatcher.has(token):
        raise IllegalMessageSequence(f"'unsubscribe' of token {token!r}, which is not subscribed")
    await ctx.dispatcher.unsubscribe(token)
    if token in ctx.plan_tokens:
        ctx.plan_tokens.remove(token)
