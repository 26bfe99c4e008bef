"""The command table: every command the engine understands, its handler and its flags.

One place says, for each command, what handles it (``_handlers.py``; the engine adds the
few that act on the engine itself: ``pause``, ``rewindable``, the suspender commands) and
how interruptions treat it:

* ``replayed``: handled again when a resume rewinds to the last checkpoint (a ``set``,
  ``trigger``, ``create``, ``read``); not run structure or bookkeeping (``open_run``,
  ``checkpoint``, ``subscribe``, ``save``: a saved event is never emitted twice);
* ``interruptible``: a request (pause now, stop, abort, halt, suspend) may cut it short
  while it waits (a ``wait``, a ``sleep``, a device call); not one that emits documents or
  changes what a run records (``open_run``, ``create``, ``save``, ``collect``, ``stage``).

``RE.register_command(name, handler, replayed=..., interruptible=...)`` adds to an
engine's own copy of the table with the same flags.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from types import CoroutineType
from typing import Any, cast

from . import _handlers as h
from ._context import PlanContext
from ._errors import PlanError, UnknownCommandError
from ._status import device_name

__all__ = ["COMMANDS", "Command", "Handler", "describe", "failed", "handle", "unknown"]

Handler = Callable[[PlanContext, Any], Any]
"""A handler: ``(ctx, msg) -> reply``, or a coroutine giving the reply."""


@dataclass(frozen=True, slots=True)
class Command:
    """What handles a command, and how interruptions treat it."""

    handler: Handler
    replayed: bool = True
    """Handled again when a resume rewinds to the last checkpoint."""
    interruptible: bool = True
    """A request may cut it short while it waits."""


COMMANDS: Mapping[str, Command] = {
    # run structure and documents: never cut short; only a bundle's own messages replay
    "open_run": Command(h.open_run, replayed=False, interruptible=False),
    "close_run": Command(h.close_run, replayed=False, interruptible=False),
    "create": Command(h.create, interruptible=False),
    "save": Command(h.save, replayed=False, interruptible=False),
    "drop": Command(h.drop, replayed=False, interruptible=False),
    "read": Command(h.read),
    "declare_stream": Command(h.declare_stream, replayed=False, interruptible=False),
    "collect": Command(h.collect, interruptible=False),
    "monitor": Command(h.monitor, replayed=False),
    "unmonitor": Command(h.unmonitor, replayed=False),
    # devices
    "set": Command(h.set_),
    "trigger": Command(h.trigger),
    "kickoff": Command(h.kickoff),
    "complete": Command(h.complete),
    "prepare": Command(h.prepare),
    "configure": Command(h.configure, interruptible=False),
    "stage": Command(h.stage, replayed=False, interruptible=False),
    "unstage": Command(h.unstage, replayed=False, interruptible=False),
    "stop": Command(h.stop),
    "locate": Command(h.locate),
    # waiting
    "wait": Command(h.wait),
    "sleep": Command(h.sleep),
    "wait_for": Command(h.wait_for),
    "input": Command(h.input_),
    "await": Command(h.await_),
    # bookkeeping
    "null": Command(h.null),
    "checkpoint": Command(h.checkpoint, replayed=False, interruptible=False),
    "clear_checkpoint": Command(h.clear_checkpoint, replayed=False, interruptible=False),
    "subscribe": Command(h.subscribe, replayed=False),
    "unsubscribe": Command(h.unsubscribe, replayed=False),
}
"""Every built-in command that acts on the call alone; the engine adds its own."""


async def handle(command: Command, ctx: PlanContext, msg: Any) -> Any:
    """Handle ``msg`` off the hot path (replays, suspenders' plans); its reply."""
    reply: Any = command.handler(ctx, msg)
    if type(reply) is CoroutineType:
        reply = await cast("Coroutine[Any, Any, Any]", reply)
    return reply


def describe(msg: Any) -> str:
    """``"the 'set' message on m1"``: how errors name a message."""
    obj = msg.obj
    target = "" if obj is None else f" on {device_name(obj)}"
    return f"the {msg.command!r} message{target}"


def unknown(msg: Any, commands: Mapping[str, Command]) -> UnknownCommandError:
    """The error for a message no handler takes (an unhashable command included)."""
    return UnknownCommandError(
        f"unknown command {msg.command!r} in {msg!r}; known commands: "
        f"{', '.join(sorted(commands))} (register new ones with RE.register_command)"
    )


def failed(msg: Any, exc: Exception) -> Exception:
    """What the plan gets when handling ``msg`` raised ``exc``: noted with the message."""
    if type(exc) is TypeError:  # off the hot path: was it the run key?
        exc = _unhashable_run(msg) or exc
    exc.add_note(f"acq: raised by {describe(msg)}")
    return exc


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
