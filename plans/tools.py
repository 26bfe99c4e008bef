"""Plan tools: look at a plan before running it -- summarize, check limits, estimate time.

Each tool walks the plan as the RunEngine would (sub-plans at any depth, async or plain
generators) but never calls a device to act: it answers every message with a plausible
made-up reply, so plans that use replies keep going.

* ``set``, ``trigger``, ``kickoff``, ``complete``, ``prepare``, ``stage``, ``unstage``:
  a finished, successful status.
* ``read``: ``{field: {"value": v, "timestamp": 0.0}}`` for the device's hinted fields
  (else its name), where ``v`` is the device's tracked position, else 0.0. A real read
  of an ophyd-async device needs a connection and an await, and would touch hardware;
  a made-up reading needs neither. Plans that decide from readings (``adaptive_scan``,
  ``tune_centroid``) therefore walk a plausible path, not the one a run would take.
* ``locate``: ``{"setpoint": p, "readback": p}`` with the tracked position ``p``.
* ``wait``: True; ``open_run``/``close_run``: a made-up uid; ``rewindable``: the flag.
* ``await`` and ``wait_for``: None, never awaited (the plans' own limit checks are
  ``await`` messages; :func:`check_limits` does that job for every ``set``).

Positions are tracked from each ``set``. They start at 0.0 or at ``positions=``
(``{motor: 1.0}``); the async tools ask a device without a given position where it is
(``locate()``, which reads and never moves), so relative plans walk from the real
positions.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import math
import numbers
import sys
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, TextIO

from acq import Msg, PlanError, PlanFinished, PlanStack, as_plan

from ._checks import device_name, is_limit_check
from ._md import motor_fields

__all__ = [
    "TimeEstimate",
    "check_limits",
    "estimate_time",
    "move_time",
    "plan_summary",
    "summarize_plan",
]

MAX_MESSAGES = 1_000_000
"""The tools refuse a plan still going after this many messages (an endless plan)."""

EXPOSURE_SIGNALS = ("acquire_time", "exposure_time", "preset_time", "count_time")
"""Where :func:`estimate_time` looks for a detector's exposure, first found wins."""

_STATUS_COMMANDS = frozenset(
    {"set", "trigger", "kickoff", "complete", "prepare", "stage", "unstage"}
)


class _DoneStatus:
    """A finished, successful status (``bluesky.protocols.Status``), also awaitable."""

    done = True
    success = True

    def add_callback(self, callback: Callable[[Any], None]) -> None:
        callback(self)

    def exception(self, timeout: float | None = None) -> None:
        return None

    def __await__(self) -> Any:
        return iter(())

    def __repr__(self) -> str:
        return "<done status>"


# -- the walk ---------------------------------------------------------------------------------
class _Walk:
    """Made-up replies to a plan's messages, and the positions they imply."""

    def __init__(self, positions: Mapping[Any, float] | None) -> None:
        self.positions: dict[Any, Any] = dict(positions or {})
        self._uids = itertools.count(1)
        self._tokens = itertools.count(1)
        self._runs: list[str] = []

    def position(self, obj: Any) -> Any:
        return self.positions.get(obj, 0.0)

    def reply(self, msg: Msg) -> Any:
        command = msg.command
        if command == "set" and msg.args:
            self.positions[msg.obj] = msg.args[0]
        if command in _STATUS_COMMANDS:
            return _DoneStatus()
        if command == "read":
            value = self.position(msg.obj)
            return {f: {"value": value, "timestamp": 0.0} for f in motor_fields(msg.obj)}
        if command == "locate":
            found = [
                {"setpoint": self.position(o), "readback": self.position(o)}
                for o in (msg.obj, *msg.args)
            ]
            return found[0] if len(found) == 1 and msg.kwargs.get("squeeze", True) else found
        if command == "wait":
            return True
        if command == "open_run":
            self._runs.append(f"walk-{next(self._uids)}")
            return self._runs[-1]
        if command == "close_run":
            return self._runs.pop() if self._runs else None
        if command == "subscribe":
            return next(self._tokens)
        if command == "rewindable":
            return True if not msg.args or msg.args[0] is None else msg.args[0]
        if command == "configure":
            return ({}, {})
        return None


def _is_limit_check(msg: Msg) -> bool:
    return is_limit_check(msg)


Visit = Callable[[int, Msg], Coroutine[Any, Any, None] | None]


async def _walk(plan: Any, walk: _Walk, visit: Visit, tool: str, max_messages: int) -> Any:
    """Drive ``plan`` with ``walk``'s replies, calling ``visit(index, msg)`` on each message."""
    stack = PlanStack(as_plan(plan))
    reply: Any = None
    index = 0
    try:
        while True:
            try:
                msg = await stack.step(reply)
            except PlanFinished as done:
                return done.result
            if index >= max_messages:
                raise PlanError(
                    f"{tool}: the plan is still going after {max_messages} messages; an "
                    "endless plan (count(num=None)?) cannot be walked; pass max_messages= "
                    "to allow more"
                )
            if not _is_limit_check(msg):
                pending = visit(index, msg)
                if pending is not None:
                    await pending
            reply = walk.reply(msg)
            index += 1
    except Exception:
        await stack.close()
        raise


def _run_now(coro: Coroutine[Any, Any, Any], tool: str) -> Any:
    """Run ``coro``, which awaits nothing real, to its end, with or without a running loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    while True:  # inside a running loop (Jupyter, async tests): step it by hand
        try:
            awaited = coro.send(None)
        except StopIteration as done:
            return done.value
        if awaited is not None:  # None is a bare yield (asyncio.sleep(0)): keep going
            coro.close()
            raise PlanError(
                f"{tool}: the plan awaited {awaited!r} itself, outside a message; "
                "it cannot be walked without running it"
            )


async def _learn_positions(walk: _Walk, msg: Msg, tool: str) -> None:
    """Ask the devices of ``msg`` the walk has no position for where they are.

    ``locate()`` reads and never moves.
    """
    if msg.command not in ("set", "read", "locate"):
        return
    for obj in (msg.obj, *msg.args) if msg.command == "locate" else (msg.obj,):
        if obj is None or obj in walk.positions or not callable(getattr(obj, "locate", None)):
            continue
        try:
            location = obj.locate()
            if inspect.isawaitable(location):
                location = await location
        except Exception as exc:
            raise PlanError(
                f"{tool}: cannot ask {device_name(obj)} where it is ({exc!r}); connect it, "
                "or give its start with positions={device: value}"
            ) from exc
        walk.positions[obj] = location["setpoint"]


# -- summarize ------------------------------------------------------------------------------
def _shown(value: Any) -> str:
    """A position for people: 8 significant digits, so 0.30000000000000004 shows as 0.3."""
    if isinstance(value, bool):
        return repr(value)
    if isinstance(value, numbers.Real):
        return repr(float(f"{float(value):.8g}"))
    if isinstance(value, str):
        return repr(str(value))
    return repr(value)


class _Summary:
    """The readable lines of a walk: runs, moves, events, sleeps."""

    _SHOWN: ClassVar[Mapping[str, str]] = {
        "kickoff": "Kickoff",
        "complete": "Complete",
        "collect": "Collect",
        "monitor": "Monitor",
        "unmonitor": "Stop monitoring",
        "configure": "Configure",
        "stop": "Stop",
    }

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._depth = 0
        self._moves: list[tuple[Any, Any]] = []
        self._bundle: tuple[str, list[str]] | None = None

    def flush(self) -> None:
        """Write the moves started since the last wait as one line."""
        if self._moves:
            moves, self._moves = self._moves, []
            self.line(", ".join(f"{device_name(o)} -> {_shown(v)}" for o, v in moves))

    def line(self, text: str) -> None:
        self.flush()
        self.lines.append("  " * self._depth + text)

    def visit(self, index: int, msg: Msg) -> None:
        command = msg.command
        if command == "set":
            self._moves.append((msg.obj, msg.args[0] if msg.args else None))
        elif command == "wait":
            self.flush()
        elif command == "open_run":
            name = msg.kwargs.get("plan_name")
            self.line(f"Open run: {name}" if name else "Open run")
            self._depth += 1
        elif command == "close_run":
            self._depth = max(self._depth - 1, 0)
            status = msg.kwargs.get("exit_status")
            self.line(f"Close run ({status})" if status else "Close run")
        elif command == "create":
            self._bundle = (msg.kwargs.get("name", msg.args[0] if msg.args else "primary"), [])
        elif command == "read" and self._bundle is not None:
            self._bundle[1].append(device_name(msg.obj))
        elif command == "read":
            self.line(f"Read {device_name(msg.obj)} (no event)")
        elif command == "save" and self._bundle is not None:
            (stream, names), self._bundle = self._bundle, None
            self.line(f"Read {names}" + ("" if stream == "primary" else f" into {stream!r}"))
        elif command == "drop":
            self._bundle = None
        elif command == "sleep":
            self.line(f"Sleep {_shown(msg.args[0] if msg.args else msg.obj)} s")
        elif command in self._SHOWN and msg.obj is not None:
            self.line(f"{self._SHOWN[command]} {device_name(msg.obj)}")
        elif command == "pause":
            self.line("Pause")
        elif command == "await":
            target = getattr(msg.obj, "__qualname__", None) or repr(msg.obj)
            self.line(f"Await {target} (not run)")

    def text(self) -> str:
        self.flush()
        return "".join(line + "\n" for line in self.lines)


def plan_summary(
    plan: Any, *, positions: Mapping[Any, float] | None = None, max_messages: int = MAX_MESSAGES
) -> str:
    """What ``plan`` would do, as text, worked out without hardware or a RunEngine.

    One line per run opened (``Open run: scan``) and closed, per move (``x -> 1.0``;
    motors set together before one wait share a line), per event (``Read ['det', 'x']``,
    with ``into 'baseline'`` for a stream other than primary), per sleep, and per
    kickoff/complete/collect/monitor. Lines inside a run are indented. Replies to the
    plan are made up (see the module docstring), so devices need not be connected.

    Args:
        plan: the plan (a generator or async generator; it is used up).
        positions: where motors start (default 0.0), for relative plans.
        max_messages: refuse a plan still going after this many messages.

    Raises:
        PlanError: the plan is endless, or awaits something outside a message.
        Exception: whatever the plan itself raises.
    """
    summary = _Summary()
    walk = _Walk(positions)
    _run_now(_walk(plan, walk, summary.visit, "plan_summary", max_messages), "plan_summary")
    return summary.text()


def summarize_plan(
    plan: Any,
    *,
    positions: Mapping[Any, float] | None = None,
    file: TextIO | None = None,
    max_messages: int = MAX_MESSAGES,
) -> None:
    """Print :func:`plan_summary` of ``plan`` (to ``file``, default stdout)."""
    text = plan_summary(plan, positions=positions, max_messages=max_messages)
    print(text, end="", file=file or sys.stdout)


# -- limits ----------------------------------------------------------------------------------
async def check_limits(
    plan: Any, *, positions: Mapping[Any, float] | None = None, max_messages: int = MAX_MESSAGES
) -> None:
    """Check every position ``plan`` would set against its device's limits, moving nothing.

    Each ``set`` of a device that can check a value (``check_value()``,
    ``bluesky.protocols.Checkable``; the simulated and EPICS motors can) is checked once
    per distinct position. Relative plans start from where the devices are now.

    Args:
        plan: the plan (it is used up).
        positions: assumed start positions instead of asking the devices.
        max_messages: refuse a plan still going after this many messages.

    Raises:
        PlanError: a position is refused; the message names the device, the position,
            the index of the message (counted from 0) and the device's reason.
    """
    walk = _Walk(positions)
    checked: set[tuple[int, str]] = set()

    async def visit(index: int, msg: Msg) -> None:
        await _learn_positions(walk, msg, "check_limits")
        check = getattr(msg.obj, "check_value", None)
        if msg.command != "set" or not msg.args or not callable(check):
            return
        key = (id(msg.obj), repr(msg.args[0]))
        if key in checked:
            return
        checked.add(key)
        try:
            result = check(msg.args[0])
            if inspect.isawaitable(result):
                await result
        except Exception as exc:
            raise PlanError(
                f"check_limits: message {index} would set {device_name(msg.obj)} to "
                f"{_shown(msg.args[0])}, which it refuses: {exc}"
            ) from exc

    await _walk(plan, walk, visit, "check_limits", max_messages)


# -- time --------------------------------------------------------------------------------------
def move_time(distance: float, velocity: float, acceleration_time: float = 0.0) -> float:
    """Seconds to move ``distance`` on a trapezoidal velocity profile.

    The motor accelerates for ``acceleration_time`` up to ``velocity``, cruises, and
    decelerates symmetrically; a move too short to reach ``velocity`` is a triangle.
    Velocity 0 means an instant move (as for :class:`acq.devices.sim.Motor`).
    """
    distance, velocity, ramp_time = abs(distance), abs(velocity), abs(acceleration_time)
    if distance == 0 or velocity == 0:
        return 0.0
    if ramp_time == 0:
        return distance / velocity
    ramp = min(ramp_time, math.sqrt(distance * ramp_time / velocity))
    peak = velocity * ramp / ramp_time
    return 2 * ramp + max(distance - peak * ramp, 0.0) / peak


@dataclass(frozen=True)
class TimeEstimate:
    """How long a plan should take, and where the time goes (seconds).

    ``float(estimate)`` is the total. ``untimed`` names the devices whose moves or
    acquisitions had no known duration and were counted as instant.
    """

    total: float
    moving: float = 0.0
    exposing: float = 0.0
    sleeping: float = 0.0
    untimed: tuple[str, ...] = field(default=())

    def __float__(self) -> float:
        return self.total

    def __str__(self) -> str:
        text = (
            f"{self.total:.3f} s (moving {self.moving:.3f} s, exposing {self.exposing:.3f} s, "
            f"sleeping {self.sleeping:.3f} s)"
        )
        return text + (f"; untimed: {', '.join(self.untimed)}" if self.untimed else "")


async def _number(obj: Any, attribute: str) -> float | None:
    """The value of ``obj.attribute``: a number, or a signal's ``get_value()``/``get()``."""
    value: Any = getattr(obj, attribute, None)
    if value is None or isinstance(value, bool):
        return None
    if callable(getattr(value, "get_value", None)):
        value = value.get_value()
    elif callable(getattr(value, "get", None)):
        value = value.get()
    if inspect.isawaitable(value):
        value = await value
    return float(value) if isinstance(value, numbers.Real) else None


class _Clock:
    """Plays a walk's messages on a simulated clock: statuses finish when devices would."""

    def __init__(self, walk: _Walk) -> None:
        self.walk = walk
        self.now = 0.0
        self.spent = {"moving": 0.0, "exposing": 0.0, "sleeping": 0.0}
        self.untimed: dict[int, str] = {}
        self._groups: dict[Any, tuple[float, str]] = {}
        self._motion: dict[int, tuple[float, float] | None] = {}
        self._exposure: dict[int, float | None] = {}

    async def _duration(self, msg: Msg) -> tuple[float, str]:
        obj, key = msg.obj, id(msg.obj)
        if msg.command == "set":
            if key not in self._motion:
                velocity = await _number(obj, "velocity")
                ramp = await _number(obj, "acceleration_time")
                self._motion[key] = None if velocity is None else (velocity, ramp or 0.0)
            motion = self._motion[key]
            start, target = self.walk.position(obj), msg.args[0] if msg.args else None
            if motion is None or not isinstance(target, numbers.Real):
                self.untimed.setdefault(key, device_name(obj))
                return 0.0, "moving"
            return move_time(float(target) - float(start), *motion), "moving"
        if key not in self._exposure:
            found = [await _number(obj, name) for name in EXPOSURE_SIGNALS]
            self._exposure[key] = next((f for f in found if f is not None), None)
        exposure = self._exposure[key]
        if exposure is None:
            self.untimed.setdefault(key, device_name(obj))
        return exposure or 0.0, "exposing"

    async def visit(self, index: int, msg: Msg) -> None:
        await _learn_positions(self.walk, msg, "estimate_time")
        command = msg.command
        if command in ("set", "trigger", "kickoff", "complete"):
            seconds, kind = await self._duration(msg)
            group = msg.kwargs.get("group")
            done_at = (self.now + seconds, kind)
            self._groups[group] = max(self._groups.get(group, done_at), done_at)
        elif command == "wait":
            group = msg.kwargs.get("group", msg.args[0] if msg.args else None)
            done_at, kind = self._groups.pop(group, (self.now, "moving"))
            if done_at > self.now:
                self.spent[kind] += done_at - self.now
                self.now = done_at
        elif command == "sleep":
            seconds = float(msg.args[0] if msg.args else 0.0)
            self.spent["sleeping"] += seconds
            self.now += seconds


async def estimate_time(
    plan: Any, *, positions: Mapping[Any, float] | None = None, max_messages: int = MAX_MESSAGES
) -> TimeEstimate:
    """Estimate how long ``plan`` takes, from the devices' settings; nothing moves.

    A ``set`` lasts :func:`move_time` of the distance from the motor's tracked position,
    with its ``velocity`` and ``acceleration_time`` (read once, at its first move); a
    ``trigger`` lasts the detector's exposure (the first of ``acquire_time``,
    ``exposure_time``, ``preset_time``, ``count_time`` it has); a ``wait`` lasts until
    the last status of its group is done (moves in one group overlap); ``sleep`` lasts
    what it says. Engine overhead and settling are not counted. Motors start where they
    are now (``locate()``), or at ``positions``.

    Args:
        plan: the plan (it is used up).
        positions: assumed start positions instead of asking the devices.
        max_messages: refuse a plan still going after this many messages.

    Returns:
        The estimate; ``float()`` of it is the total in seconds.
    """
    clock = _Clock(_Walk(positions))
    await _walk(plan, clock.walk, clock.visit, "estimate_time", max_messages)
    return TimeEstimate(
        total=clock.now,
        moving=clock.spent["moving"],
        exposing=clock.spent["exposing"],
        sleeping=clock.spent["sleeping"],
        untimed=tuple(clock.untimed.values()),
    )
