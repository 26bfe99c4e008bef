"""Message handlers: one small function per command, registered in :data:`HANDLERS`.

Each takes the call's :class:`~acq._context.PlanContext` and the message, and returns
the response that the engine sends back into the plan. A handler that never waits is a
plain function (no coroutine to create and await on the hot path); one that may wait is
``async def``, and the engine awaits what it returns. Pause, resume and suspenders live
with the engine's interruption logic; everything else is here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from types import CoroutineType
from typing import Any

from ._context import PlanContext
from ._dispatch import make_subscription
from ._documents import RunBundler, call_maybe_async
from ._errors import DeviceError, IllegalMessageSequence, PlanError
from ._status import as_status, device_name

__all__ = ["HANDLERS", "Handler"]

Handler = Callable[[PlanContext, Any], Any]
"""A handler: ``(ctx, msg) -> reply``, or a coroutine giving the reply."""


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


# -- runs and documents -------------------------------------------------------------------
async def open_run(ctx: PlanContext, msg: Any) -> str:
    """Start a run: compose, check and emit its Start document; reply with its uid."""
    return await ctx.open_run(msg.run, msg.kwargs)


async def close_run(ctx: PlanContext, msg: Any) -> str:
    """End a run with a Stop (``exit_status``/``reason`` keywords); reply with its uid."""
    ctx.run_for(msg, "close_run")
    exit_status = msg.kwargs.get("exit_status") or "success"
    if exit_status not in ("success", "abort", "fail"):
        raise PlanError(
            f"'close_run' with exit_status={exit_status!r}: it must be 'success', 'abort' or 'fail'"
        )
    reason = msg.kwargs.get("reason") or ctx.ending_reason
    uid = await ctx.close_run(msg.run, exit_status, reason)
    await ctx.dispatcher.drain()  # every subscriber has seen the Stop when the plan goes on
    return uid


def create(ctx: PlanContext, msg: Any) -> None:
    """Open an event bundle: ``Msg('create', name='primary')``."""
    name = msg.kwargs.get("name", msg.args[0] if msg.args else "primary")
    (ctx.runs.get(msg.run) or ctx.run_for(msg, "create")).create(name)
    ctx.mark_bundle(msg.run)


def save(ctx: PlanContext, msg: Any) -> Any:
    """Emit the open bundle as an Event (a coroutine only when that must wait)."""
    rest = (ctx.runs.get(msg.run) or ctx.run_for(msg, "save")).save()
    if rest is not None:
        return _save_rest(ctx, msg, rest)
    ctx.forget_bundle(msg.run)
    return None


async def _save_rest(ctx: PlanContext, msg: Any, rest: Awaitable[None]) -> None:
    await rest
    ctx.forget_bundle(msg.run)


def drop(ctx: PlanContext, msg: Any) -> None:
    """Discard the open bundle."""
    ctx.run_for(msg, "drop").drop()
    ctx.forget_bundle(msg.run)


def read(ctx: PlanContext, msg: Any) -> Any:
    """Read a device; inside a bundle, the reading joins the next Event.

    A plain function for the usual case (a dict from a device already described in this
    run); a coroutine when the reading must be awaited or the device described first.
    """
    method = getattr(msg.obj, "read", None)
    if not callable(method):
        method = _method(msg, "read", "Readable")  # raises, naming the device
    reading: Any = method()
    if reading.__class__ is not dict and hasattr(reading, "__await__"):
        return _read_async(ctx, msg, reading)
    run = ctx.runs.get(msg.run)
    if run is not None and run.bundling and not run.add_known(msg.obj, reading):
        return _add_reading(run, msg.obj, reading)
    return reading


async def _read_async(ctx: PlanContext, msg: Any, pending: Any) -> Any:
    reading = await pending
    run = ctx.runs.get(msg.run)
    if run is not None and run.bundling:
        await run.add_reading(msg.obj, reading)
    return reading


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
    return await run.collect(
        objs, msg.kwargs.get("name"), bool(msg.kwargs.get("return_payload", True))
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
        status = method(*msg.args)
    else:
        group, kwargs = _split_group(kwargs)
        status = method(*msg.args, **kwargs)
    if type(status) is CoroutineType:
        status = as_status(status)
    ctx.touched[id(obj)] = obj
    if status is not None and ctx.groups.add(group, name, obj, status):
        return _after_a_turn(status)
    return status


async def _after_a_turn(status: Any) -> Any:
    """Reply ``status`` after one turn of the event loop.

    A message that started background work (a move, an acquisition) lets that work
    start before the plan goes on, as bluesky's engine does: an instantly-moving async
    device read right after its ``set`` (no ``wait``) gives the new value. Only a
    status still running pays for the turn; a finished one is replied at once.
    """
    await asyncio.sleep(0)
    return status


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

    A device without ``stage()`` has nothing to stage: the reply is ``[]``, as in bluesky.
    A returned status joins the message's ``group``.
    """
    method = getattr(msg.obj, "stage", None)
    if not callable(method):
        return []
    if all(o is not msg.obj for o in ctx.staged):
        ctx.staged.append(msg.obj)  # before calling: a failed stage is still unstaged
    ctx.touched[id(msg.obj)] = msg.obj
    result: Any = method()
    ctx.reset_replay()  # as in bluesky, a resume never rewinds past a stage
    if _is_status(result) and ctx.groups.add(msg.kwargs.get("group"), "stage", msg.obj, result):
        await asyncio.sleep(0)  # let it start (see _after_a_turn)
    elif hasattr(result, "__await__"):
        result = await result
    return result


async def unstage(ctx: PlanContext, msg: Any) -> Any:
    """Unstage a device (nothing to do for one without ``unstage()``)."""
    method = getattr(msg.obj, "unstage", None)
    ctx.staged = [o for o in ctx.staged if o is not msg.obj]
    if not callable(method):
        return []
    result: Any = method()
    ctx.reset_replay()
    if _is_status(result) and ctx.groups.add(msg.kwargs.get("group"), "unstage", msg.obj, result):
        await asyncio.sleep(0)  # let it start (see _after_a_turn)
    elif hasattr(result, "__await__"):
        result = await result
    return result


async def stop(ctx: PlanContext, msg: Any) -> None:
    """Stop a device (``Stoppable``)."""
    await call_maybe_async(_method(msg, "stop", "Stoppable"), *msg.args, **msg.kwargs)
    ctx.moved.pop(id(msg.obj), None)


async def locate(ctx: PlanContext, msg: Any) -> Any:
    """``Msg('locate', *objs, squeeze=True)``: where devices are (setpoint and readback)."""
    objs = [msg.obj, *msg.args]
    if msg.obj is None:
        raise PlanError(f"'locate' needs a device as its obj, got None ({msg!r})")
    locations: list[Any] = []
    for obj in objs:
        method = getattr(obj, "locate", None)
        if not callable(method):
            raise DeviceError(f"'locate' of {device_name(obj)}: it has no locate() method")
        locations.append(await call_maybe_async(method))
    if len(locations) == 1 and msg.kwargs.get("squeeze", True):
        return locations[0]
    return locations


# -- time and groups -----------------------------------------------------------------------
def wait(ctx: PlanContext, msg: Any) -> Any:
    """``Msg('wait', group=..., timeout=None, error_on_timeout=True)``: reply True if done.

    Finished statuses are never filed, so a group with nothing filed is done at once
    (a plain return, no coroutine); otherwise the reply is the coroutine of the wait.
    """
    kwargs = msg.kwargs
    group = kwargs.get("group", msg.args[0] if msg.args else None)
    groups = ctx.groups
    if not groups.has(group):
        return True
    return groups.wait(group, kwargs.get("timeout"), bool(kwargs.get("error_on_timeout", True)))


async def sleep(ctx: PlanContext, msg: Any) -> None:
    """``Msg('sleep', None, seconds)``."""
    if not msg.args:
        raise PlanError(f"'sleep' needs a duration in seconds: {msg!r}")
    await asyncio.sleep(msg.args[0])


async def wait_for(ctx: PlanContext, msg: Any) -> None:
    """``Msg('wait_for', None, [factory, ...], timeout=None)``: await what factories make."""
    factories = msg.args[0] if msg.args else msg.obj
    awaitables = [asyncio.ensure_future(f()) for f in factories]
    if not awaitables:
        return
    done, pending = await asyncio.wait(awaitables, timeout=msg.kwargs.get("timeout"))
    for fut in pending:
        fut.cancel()
    if pending:
        raise TimeoutError(f"'wait_for' timed out with {len(pending)} awaitable(s) unfinished")
    for fut in done:
        fut.result()


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
    ctx.checkpoint()


def clear_checkpoint(ctx: PlanContext, msg: Any) -> None:
    """Forget the last checkpoint: from here on the plan cannot be rewound."""
    ctx.clear_checkpoint()


def rewindable(ctx: PlanContext, msg: Any) -> bool:
    """``Msg('rewindable', None, flag)`` sets whether a resume may rewind; replies with it."""
    if msg.args and msg.args[0] is not None:  # None asks, as bluesky's rewindable_wrapper does
        ctx.rewindable = bool(msg.args[0])
    return ctx.rewindable


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


HANDLERS: dict[str, Handler] = {
    "open_run": open_run,
    "close_run": close_run,
    "create": create,
    "save": save,
    "drop": drop,
    "read": read,
    "declare_stream": declare_stream,
    "collect": collect,
    "monitor": monitor,
    "unmonitor": unmonitor,
    "set": set_,
    "trigger": trigger,
    "kickoff": kickoff,
    "complete": complete,
    "prepare": prepare,
    "configure": configure,
    "stage": stage,
    "unstage": unstage,
    "stop": stop,
    "locate": locate,
    "wait": wait,
    "sleep": sleep,
    "wait_for": wait_for,
    "await": await_,
    "null": null,
    "checkpoint": checkpoint,
    "clear_checkpoint": clear_checkpoint,
    "rewindable": rewindable,
    "subscribe": subscribe,
    "unsubscribe": unsubscribe,
}
"""Every built-in command and its handler."""
