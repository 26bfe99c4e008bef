"""Plan stubs: one small plan per message, and the few-message building blocks.

Each stub is an async generator; use it from another plan as a sub-plan, and receive
its result with ``result = yield stub(...)``::

    async def my_plan(det, motor):
        yield mv(motor, 1.5)              # move and wait
        reading = yield trigger_and_read([det, motor])
        yield Return(reading["det"]["value"])

Stubs never open a run on their own; plans (``acq.plans``) do.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncGenerator, Callable, Iterable, Mapping, Sequence
from typing import Any, TypeAlias

from acq import Msg, PlanError, Return

__all__ = [
    "PlanGenerator",
    "abs_set",
    "broadcast_msg",
    "checkpoint",
    "clear_checkpoint",
    "close_run",
    "collect",
    "collect_while_completing",
    "complete",
    "complete_all",
    "configure",
    "create",
    "declare_stream",
    "drop",
    "input_plan",
    "install_suspender",
    "kickoff",
    "kickoff_all",
    "locate",
    "monitor",
    "mov",
    "move_per_step",
    "movr",
    "mv",
    "mvr",
    "new_group",
    "null",
    "one_1d_step",
    "one_nd_step",
    "one_shot",
    "open_run",
    "pause",
    "prepare",
    "rd",
    "read",
    "rel_set",
    "remove_suspender",
    "repeat",
    "repeater",
    "rewindable",
    "run_async",
    "save",
    "sleep",
    "stage",
    "stage_all",
    "stop",
    "subscribe",
    "trigger",
    "trigger_and_read",
    "unmonitor",
    "unstage",
    "unstage_all",
    "unsubscribe",
    "wait",
    "wait_for",
    "where",
]

PlanGenerator: TypeAlias = AsyncGenerator[Any, Any]
"""What every stub and plan returns: an async generator of messages."""

_groups = itertools.count(1)


def new_group(prefix: str = "group") -> str:
    """A wait-group name not used before in this process (cheap: a counter)."""
    return f"{prefix}-{next(_groups)}"


async def _one(msg: Msg) -> PlanGenerator:
    reply = yield msg
    yield Return(reply)


async def _then_wait(msg: Msg, group: str) -> PlanGenerator:
    status = yield msg
    yield Msg("wait", None, group=group)
    yield Return(status)


def _maybe_wait(msg: Msg, group: Any, wait: bool) -> PlanGenerator:
    if wait:
        return _then_wait(msg._replace(kwargs={**msg.kwargs, "group": group}), group)
    return _one(msg)


def _is_status(reply: Any) -> bool:
    """True if ``reply`` is a status (something to wait for), as the engine files it."""
    return callable(getattr(reply, "add_callback", None))


# -- runs and events -----------------------------------------------------------------------
def open_run(md: Mapping[str, Any] | None = None) -> PlanGenerator:
    """Open a run with metadata ``md``; result: the run's uid."""
    return _one(Msg("open_run", **dict(md or {})))


def close_run(exit_status: str | None = None, reason: str | None = None) -> PlanGenerator:
    """Close the run (Stop document); result: the run's uid."""
    return _one(Msg("close_run", exit_status=exit_status, reason=reason))


def create(name: str = "primary") -> PlanGenerator:
    """Open an event bundle in stream ``name``."""
    return _one(Msg("create", name=name))


def save() -> PlanGenerator:
    """Emit the open bundle as an Event."""
    return _one(Msg("save"))


def drop() -> PlanGenerator:
    """Discard the open bundle."""
    return _one(Msg("drop"))


def read(obj: Any) -> PlanGenerator:
    """Read a device; result: its reading (``{key: {"value":, "timestamp":}}``)."""
    return _one(Msg("read", obj))


def declare_stream(*objs: Any, name: str, collect: bool = False) -> PlanGenerator:
    """Emit the descriptor of stream ``name`` for ``objs`` ahead of its events."""
    return _one(Msg("declare_stream", None, *objs, name=name, collect=collect))


def collect(
    obj: Any,
    *args: Any,
    stream: bool = False,
    return_payload: bool = True,
    name: str | None = None,
) -> PlanGenerator:
    """Collect what flyers gathered, as Event Pages or Stream Resource/Datum.

    ``stream`` is passed on in the message, as bluesky does (acq's engine always emits
    pages, so it changes nothing there).
    """
    return _one(Msg("collect", obj, *args, stream=stream, return_payload=return_payload, name=name))


def monitor(obj: Any, *, name: str | None = None, **kwargs: Any) -> PlanGenerator:
    """Record every update of ``obj`` as an event of its own stream until unmonitor."""
    return _one(Msg("monitor", obj, name=name, **kwargs))


def unmonitor(obj: Any) -> PlanGenerator:
    """Stop monitoring ``obj``."""
    return _one(Msg("unmonitor", obj))


# -- devices -------------------------------------------------------------------------------
def abs_set(
    obj: Any, *args: Any, group: Any = None, wait: bool = False, **kwargs: Any
) -> PlanGenerator:
    """Start ``obj.set(*args)``; with ``wait=True`` also wait for it. Result: its status."""
    group = group if group is not None or not wait else new_group("set")
    return _maybe_wait(Msg("set", obj, *args, group=group, **kwargs), group, wait)


def rel_set(
    obj: Any, value: float, *, group: Any = None, wait: bool = False, **kwargs: Any
) -> PlanGenerator:
    """Set ``obj`` to its current position plus ``value``."""
    return _rel_set(obj, value, group, wait, kwargs)


async def _rel_set(
    obj: Any, value: float, group: Any, wait: bool, kwargs: dict[str, Any]
) -> PlanGenerator:
    here = yield where(obj)
    status = yield abs_set(obj, here + value, group=group, wait=wait, **kwargs)
    yield Return(status)


def trigger(obj: Any, *, group: Any = None, wait: bool = False) -> PlanGenerator:
    """Start an acquisition; with ``wait=True`` also wait for it. Result: its status."""
    group = group if group is not None or not wait else new_group("trigger")
    return _maybe_wait(Msg("trigger", obj, group=group), group, wait)


def kickoff(obj: Any, *, group: Any = None, wait: bool = False, **kwargs: Any) -> PlanGenerator:
    """Start a fly scan."""
    group = group if group is not None or not wait else new_group("kickoff")
    return _maybe_wait(Msg("kickoff", obj, group=group, **kwargs), group, wait)


def complete(obj: Any, *, group: Any = None, wait: bool = False, **kwargs: Any) -> PlanGenerator:
    """Ask a flyer to finish; with ``wait=True`` wait until it has."""
    group = group if group is not None or not wait else new_group("complete")
    return _maybe_wait(Msg("complete", obj, group=group, **kwargs), group, wait)


def prepare(
    obj: Any, *args: Any, group: Any = None, wait: bool = False, **kwargs: Any
) -> PlanGenerator:
    """Get a device ready for a scan (``Preparable``)."""
    group = group if group is not None or not wait else new_group("prepare")
    return _maybe_wait(Msg("prepare", obj, *args, group=group, **kwargs), group, wait)


def configure(obj: Any, *args: Any, **kwargs: Any) -> PlanGenerator:
    """Change a device's configuration; result: ``(old, new)`` readings."""
    return _one(Msg("configure", obj, *args, **kwargs))


def stage(obj: Any, *, group: Any = None, wait: bool | None = None) -> PlanGenerator:
    """Stage a device (unstaged at the end of the plan whatever happens).

    A device whose ``stage()`` returns a status (ophyd-async) is waited for before the
    plan goes on, unless a ``group`` is given (wait for it yourself) or ``wait=False``.
    Result: what ``stage()`` returned.
    """
    return _staging("stage", obj, group, wait)


def unstage(obj: Any, *, group: Any = None, wait: bool | None = None) -> PlanGenerator:
    """Unstage a device; waited for as :func:`stage` is."""
    return _staging("unstage", obj, group, wait)


def _staging(command: str, obj: Any, group: Any, wait: bool | None) -> PlanGenerator:
    if wait is None:
        wait = group is None
    if wait and group is None:
        group = new_group(command)
    return _stage_then_wait(command, obj, group, wait)


async def _stage_then_wait(command: str, obj: Any, group: Any, wait: bool) -> PlanGenerator:
    reply = yield Msg(command, obj, group=group)
    if wait and _is_status(reply):
        yield Msg("wait", None, group=group)
    yield Return(reply)


def stop(obj: Any) -> PlanGenerator:
    """Stop a device."""
    return _one(Msg("stop", obj))


def locate(*objs: Any, squeeze: bool = True) -> PlanGenerator:
    """Where devices are: ``{"setpoint":, "readback":}`` (a list for several)."""
    return _one(Msg("locate", *objs, squeeze=squeeze))


# -- time and flow ---------------------------------------------------------------------------
def wait(
    group: Any = None,
    *,
    timeout: float | None = None,
    error_on_timeout: bool = True,
    watch: Sequence[str] = (),
) -> PlanGenerator:
    """Wait for every status of ``group`` (None: the ungrouped ones).

    ``watch`` (groups to watch meanwhile, in bluesky) is passed on in the message.
    """
    return _one(
        Msg(
            "wait",
            None,
            group=group,
            timeout=timeout,
            error_on_timeout=error_on_timeout,
            watch=watch,
        )
    )


def sleep(time: float) -> PlanGenerator:
    """Sleep ``time`` seconds without blocking the event loop."""
    return _one(Msg("sleep", None, time))


def wait_for(futures: Iterable[Callable[[], Any]], **kwargs: Any) -> PlanGenerator:
    """Await what each factory in ``futures`` returns (coroutines or futures).

    ``kwargs`` (e.g. ``timeout=``) go into the message.
    """
    return _one(Msg("wait_for", None, list(futures), **kwargs))


def run_async(target: Any, *args: Any, **kwargs: Any) -> PlanGenerator:
    """Await a coroutine, or ``target(*args, **kwargs)``; result: what it returns."""
    return _one(Msg("await", target, *args, **kwargs))


def null() -> PlanGenerator:
    """A message that does nothing."""
    return _one(Msg("null"))


def checkpoint() -> PlanGenerator:
    """A point a resume may rewind to."""
    return _one(Msg("checkpoint"))


def clear_checkpoint() -> PlanGenerator:
    """From here on, the plan cannot be rewound."""
    return _one(Msg("clear_checkpoint"))


def rewindable(flag: bool | None = None) -> PlanGenerator:
    """Set (or, with None, ask) whether a resume may rewind; result: the setting."""
    return _one(Msg("rewindable", None, flag))


def pause() -> PlanGenerator:
    """Pause the engine here (``RunEngineInterrupted`` for the caller)."""
    return _one(Msg("pause"))


def subscribe(name: str, func: Callable[[str, Mapping[str, Any]], Any]) -> PlanGenerator:
    """Subscribe ``func(name, doc)`` to documents ``name`` ("all", "start", "event", ...).

    The subscription lasts for the rest of the plan. Result: a token for
    :func:`unsubscribe`.
    """
    return _one(Msg("subscribe", None, func, name))


def unsubscribe(token: int) -> PlanGenerator:
    """Remove a subscription made by :func:`subscribe`."""
    return _one(Msg("unsubscribe", None, token))


def install_suspender(suspender: Any) -> PlanGenerator:
    """Install a suspender for the rest of the plan."""
    return _one(Msg("install_suspender", None, suspender))


def remove_suspender(suspender: Any) -> PlanGenerator:
    """Remove a suspender installed by :func:`install_suspender`."""
    return _one(Msg("remove_suspender", None, suspender))


def input_plan(prompt: str = "") -> PlanGenerator:
    """Ask the user for a line of text without blocking the loop; result: the text.

    ``input()`` runs in a worker thread, so this suits a terminal; in Jupyter, ask before
    running the plan instead.
    """
    return run_async(asyncio.to_thread, input, prompt)


def broadcast_msg(command: str, objs: Iterable[Any], *args: Any, **kwargs: Any) -> PlanGenerator:
    """Send the same message to each object; result: the list of replies."""
    return _broadcast(command, list(objs), args, kwargs)


async def _broadcast(
    command: str, objs: list[Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> PlanGenerator:
    replies: list[Any] = []
    for obj in objs:
        replies.append((yield Msg(command, obj, *args, **kwargs)))
    yield Return(replies)


# -- moving ----------------------------------------------------------------------------------
def _pairs(args: Sequence[Any], stub: str) -> list[tuple[Any, Any]]:
    if len(args) % 2:
        raise PlanError(
            f"{stub}() takes pairs (device, value, device, value, ...); got {len(args)} arguments"
        )
    return list(zip(args[::2], args[1::2], strict=True))


def mv(*args: Any, group: Any = None, timeout: float | None = None, **kwargs: Any) -> PlanGenerator:
    """Move devices to positions at once, and wait: ``mv(m1, 1, m2, 2)``.

    ``timeout``: seconds the wait may last (None: no limit); ``kwargs`` go to each
    ``set``. Result: the statuses, in argument order.
    """
    return _mv(_pairs(args, "mv"), group or new_group("mv"), timeout, kwargs)


async def _mv(
    pairs: list[tuple[Any, Any]], group: Any, wait_timeout: float | None, kwargs: dict[str, Any]
) -> PlanGenerator:
    statuses: list[Any] = []
    for obj, value in pairs:
        statuses.append((yield Msg("set", obj, value, group=group, **kwargs)))
    yield Msg("wait", None, group=group, timeout=wait_timeout)
    yield Return(tuple(statuses))


def mvr(
    *args: Any, group: Any = None, timeout: float | None = None, **kwargs: Any
) -> PlanGenerator:
    """Move devices by offsets from where they are, and wait: ``mvr(m1, 0.1)``."""
    return _mvr(_pairs(args, "mvr"), group or new_group("mvr"), timeout, kwargs)


async def _mvr(
    pairs: list[tuple[Any, Any]], group: Any, wait_timeout: float | None, kwargs: dict[str, Any]
) -> PlanGenerator:
    targets: list[Any] = []
    for obj, delta in pairs:
        here = yield where(obj)
        targets += [obj, here + delta]
    statuses = yield _mv(_pairs(targets, "mvr"), group, wait_timeout, kwargs)
    yield Return(statuses)


mov = mv
"""bluesky's other name for :func:`mv`."""
movr = mvr
"""bluesky's other name for :func:`mvr`."""


def rd(obj: Any, *, default_value: Any = 0) -> PlanGenerator:
    """Read one value of a device: its hinted field, or its only field.

    Result: the value, or ``default_value`` when the reading is empty.
    """
    return _rd(obj, default_value)


async def _rd(obj: Any, default_value: Any) -> PlanGenerator:
    reading: Mapping[str, Any] = yield Msg("read", obj)
    if not reading:
        yield Return(default_value)
        return
    fields = list(getattr(obj, "hints", {}).get("fields", ())) or list(reading)
    if len(fields) != 1:
        name = getattr(obj, "name", repr(obj))
        raise PlanError(
            f"rd({name}): cannot choose one value among {sorted(reading)}; read it with "
            "read() and pick the key"
        )
    yield Return(reading[fields[0]]["value"])


async def where(obj: Any) -> PlanGenerator:
    """Where a device is: its setpoint if it can ``locate()``, else its read value."""
    if callable(getattr(obj, "locate", None)):
        location = yield Msg("locate", obj)
        yield Return(location["setpoint"])
    else:
        value = yield rd(obj)
        yield Return(value)


# -- reading ---------------------------------------------------------------------------------
def unique_devices(devices: Iterable[Any]) -> list[Any]:
    """``devices`` in order, each once (by identity)."""
    seen: set[int] = set()
    out: list[Any] = []
    for device in devices:
        if id(device) not in seen:
            seen.add(id(device))
            out.append(device)
    return out


def reading_messages(devices: Sequence[Any], name: str, group: str) -> list[Msg]:
    """The messages of one point: trigger, wait, create, read each, save."""
    msgs = [Msg("trigger", d, group=group) for d in devices if hasattr(d, "trigger")]
    if msgs:
        msgs.append(Msg("wait", None, group=group))
    msgs.append(Msg("create", name=name))
    msgs += [Msg("read", d) for d in devices]
    msgs.append(Msg("save"))
    return msgs


def trigger_and_read(devices: Iterable[Any], name: str = "primary") -> PlanGenerator:
    """Trigger the devices that can be, wait, and read them all into one Event.

    Result: the merged readings. An error while reading drops the event.
    """
    return _trigger_and_read(unique_devices(devices), name)


async def _trigger_and_read(devices: list[Any], name: str) -> PlanGenerator:
    readings: dict[str, Any] = {}
    bundling = False  # a bundle is open: drop it on the way out
    try:
        for msg in reading_messages(devices, name, new_group("trigger")):
            reply = yield msg
            if msg.command == "read":
                readings.update(reply)
            elif msg.command in ("create", "save"):
                bundling = msg.command == "create"
    except Exception:  # a failed read, or a stop or abort (bluesky's are Exceptions)
        if bundling:
            yield Msg("drop")
        raise
    yield Return(readings)


def one_shot(
    detectors: Sequence[Any], take_reading: Callable[..., PlanGenerator] | None = None
) -> PlanGenerator:
    """The step of ``count``: a checkpoint, then one reading of the detectors."""
    return _one_shot(list(detectors), take_reading or trigger_and_read)


async def _one_shot(detectors: list[Any], take_reading: Callable[..., Any]) -> PlanGenerator:
    yield Msg("checkpoint")
    result = yield take_reading(detectors)
    yield Return(result)


def one_1d_step(
    detectors: Sequence[Any],
    motor: Any,
    step: Any,
    take_reading: Callable[..., PlanGenerator] | None = None,
) -> PlanGenerator:
    """The step of a 1-D scan: move ``motor`` to ``step``, then read it and the detectors."""
    return _one_1d_step(list(detectors), motor, step, take_reading or trigger_and_read)


async def _one_1d_step(
    detectors: list[Any], motor: Any, step: Any, take_reading: Callable[..., Any]
) -> PlanGenerator:
    yield Msg("checkpoint")
    yield mv(motor, step)
    result = yield take_reading([*detectors, motor])
    yield Return(result)


def move_per_step(step: Mapping[Any, Any], pos_cache: dict[Any, Any]) -> PlanGenerator:
    """Move the motors of ``step`` whose cached position differs, together, and wait."""
    return _move_per_step(step, pos_cache)


async def _move_per_step(step: Mapping[Any, Any], pos_cache: dict[Any, Any]) -> PlanGenerator:
    yield Msg("checkpoint")
    group = new_group("step")
    moved = False
    for motor, position in step.items():
        if pos_cache.get(motor) == position:
            continue
        yield Msg("set", motor, position, group=group)
        pos_cache[motor] = position
        moved = True
    if moved:
        yield Msg("wait", None, group=group)


def one_nd_step(
    detectors: Sequence[Any],
    step: Mapping[Any, Any],
    pos_cache: dict[Any, Any],
    take_reading: Callable[..., PlanGenerator] | None = None,
) -> PlanGenerator:
    """The step of an N-D scan: move what changed, then read the detectors and motors."""
    return _one_nd_step(list(detectors), step, pos_cache, take_reading or trigger_and_read)


async def _one_nd_step(
    detectors: list[Any],
    step: Mapping[Any, Any],
    pos_cache: dict[Any, Any],
    take_reading: Callable[..., Any],
) -> PlanGenerator:
    yield move_per_step(step, pos_cache)
    result = yield take_reading([*detectors, *step])
    yield Return(result)


def repeat(
    plan: Callable[[], PlanGenerator], num: int | None = 1, delay: float | Sequence[float] = 0.0
) -> PlanGenerator:
    """Run ``plan()`` ``num`` times (forever if None), ``delay`` seconds apart.

    ``delay`` is one number or one per gap (``num - 1`` of them). Each repetition starts
    with a checkpoint. Result: the list of the plans' results.
    """
    delays = check_delay(delay, num)
    return _repeat(plan, num, delays)


def check_delay(delay: float | Sequence[float] | None, num: int | None) -> list[float] | float:
    """Check a time-series delay: one number, or ``num - 1`` non-negative ones."""
    if delay is None:
        return 0.0
    if isinstance(delay, int | float):
        if delay < 0:
            raise PlanError(f"delay must be >= 0 seconds, got {delay}")
        return float(delay)
    delays = [float(d) for d in delay]
    if num is None:
        raise PlanError("delay as a list needs a finite num (one delay per gap)")
    if len(delays) != max(num - 1, 0):
        raise PlanError(f"delay has {len(delays)} values but num={num} points have {num - 1} gaps")
    if any(d < 0 for d in delays):
        raise PlanError(f"every delay must be >= 0 seconds, got {delays}")
    return delays


async def _repeat(
    plan: Callable[[], PlanGenerator], num: int | None, delays: list[float] | float
) -> PlanGenerator:
    results: list[Any] = []
    indices = itertools.count() if num is None else range(num)
    for i in indices:
        if i:
            gap = delays[i - 1] if isinstance(delays, list) else delays
            if gap:
                yield Msg("sleep", None, gap)
        yield Msg("checkpoint")
        results.append((yield plan()))
    yield Return(results)


def repeater(
    n: int | None, gen_func: Callable[..., PlanGenerator], *args: Any, **kwargs: Any
) -> PlanGenerator:
    """Run ``gen_func(*args, **kwargs)`` ``n`` times (forever if None), back to back."""
    return _repeat(lambda: gen_func(*args, **kwargs), n, 0.0)


# -- several devices at once -------------------------------------------------------------------
def stage_all(*devices: Any, group: Any = None) -> PlanGenerator:
    """Stage each device (once), in order, then wait for those that returned a status.

    All stage in one ``group`` (a new one if None) and one wait covers them.
    Result: the replies, in order.
    """
    return _all("stage", unique_devices(devices), group, None)


def unstage_all(*devices: Any, group: Any = None) -> PlanGenerator:
    """Unstage each device (once), in the order given, then wait as :func:`stage_all` does.

    As in bluesky, the order is the caller's: pass ``*reversed(devices)`` to undo a
    :func:`stage_all` in reverse.
    """
    return _all("unstage", unique_devices(devices), group, None)


def kickoff_all(*flyers: Any, group: Any = None, wait: bool = True, **kwargs: Any) -> PlanGenerator:
    """Kick off every flyer, then (by default) wait until all have started.

    ``kwargs`` go into each ``kickoff`` message. Result: the statuses.
    """
    return _all("kickoff", flyers, group, wait, kwargs)


def complete_all(
    *flyers: Any, group: Any = None, wait: bool = False, **kwargs: Any
) -> PlanGenerator:
    """Ask every flyer to finish; with ``wait=True`` wait until all have."""
    return _all("complete", flyers, group, wait, kwargs)


async def _all(
    command: str,
    objs: Sequence[Any],
    group: Any,
    wait: bool | None,
    kwargs: Mapping[str, Any] | None = None,
) -> PlanGenerator:
    """Send ``command`` to each object in one group; wait if ``wait`` (None: for statuses).

    Result: the replies, as a tuple.
    """
    group = group or new_group(command)
    replies: list[Any] = []
    for obj in objs:
        replies.append((yield Msg(command, obj, group=group, **(kwargs or {}))))
    if wait or (wait is None and any(_is_status(r) for r in replies)):
        yield Msg("wait", None, group=group)
    yield Return(tuple(replies))


def collect_while_completing(
    flyers: Sequence[Any],
    dets: Sequence[Any],
    flush_period: float | None = None,
    stream_name: str | None = None,
    watch: Sequence[str] = (),
) -> PlanGenerator:
    """Complete the flyers, collecting ``dets`` every ``flush_period`` s until they finish.

    ``watch`` is passed on in each ``wait`` message (see :func:`wait`).
    """
    return _collect_while_completing(list(flyers), list(dets), flush_period, stream_name, watch)


async def _collect_while_completing(
    flyers: list[Any],
    dets: list[Any],
    flush_period: float | None,
    stream_name: str | None,
    watch: Sequence[str],
) -> PlanGenerator:
    group = new_group("collect_while_completing")
    yield complete_all(*flyers, group=group, wait=False)
    done = False
    while not done:
        done = yield Msg(
            "wait",
            None,
            group=group,
            timeout=flush_period,
            error_on_timeout=False,
            watch=watch,
        )
        yield Msg("collect", *dets, name=stream_name)
