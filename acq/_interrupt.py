"""Interruptions: what the engine may be asked while a plan runs, and Ctrl-C.

Requests (``RE.request_pause``, ``RE.stop``, ``RE.abort``, ``RE.halt``, a suspender's
``RE.request_suspend``) are recorded on the engine and looked at once per message; a
request that must not wait for the current message to finish (pause now, stop, abort,
halt, suspend) also interrupts it, if it is one that may be interrupted (a ``wait``,
``sleep``, a device call -- never one that is emitting documents: the flag
``interruptible`` in ``_commands.py``). Suspenders an engine watches are kept in a
:class:`SuspenderRegistry`.

Ctrl-C: while ``await RE(...)`` runs in the main thread, SIGINT is the engine's: the
first one asks for a deferred pause (at the next checkpoint), a second within 10 s for a
pause now. The handler that was there before is put back when the call ends
(``signal.signal``: ``loop.remove_signal_handler`` alone would leave Python's default,
which kills a Jupyter kernel).
"""

from __future__ import annotations

import asyncio
import enum
import logging
import signal
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from ._errors import PlanError

__all__ = [
    "Request",
    "SigintHandler",
    "SuspenderRegistry",
    "Suspension",
]

logger = logging.getLogger("acq.engine")


class Request(enum.Enum):
    """What the engine has been asked to do, in increasing order of urgency."""

    PAUSE_DEFERRED = 1
    SUSPEND = 2
    PAUSE_NOW = 3
    STOP = 4
    ABORT = 5
    HALT = 6

    @property
    def interrupts(self) -> bool:
        """Does this request cut short the message in flight?"""
        return self is not Request.PAUSE_DEFERRED


@dataclass
class Suspension:
    """A suspender's request: wait for ``ready``, with plans before and after."""

    ready: Callable[[], Awaitable[Any]]
    justification: str = ""
    pre_plan: Callable[[], Any] | None = None
    post_plan: Callable[[], Any] | None = None
    tripped_at: float = field(default_factory=time.time)


class SuspenderRegistry:
    """The suspenders an engine watches (``RE.install_suspender``), and their messages.

    A suspender has ``install(RE)`` (it then calls ``RE.request_suspend`` when it trips),
    ``remove()``, a ``tripped`` flag and ``wait_ready()`` (a coroutine that finishes when
    the plan may go on).
    """

    def __init__(self, engine: object) -> None:
        self._engine = engine
        self._items: list[Any] = []

    @property
    def items(self) -> tuple[Any, ...]:
        """The installed suspenders."""
        return tuple(self._items)

    def tripped(self) -> list[Any]:
        """The installed suspenders that are tripped now."""
        return [s for s in self._items if s.tripped]

    def install(self, suspender: Any) -> None:
        """Watch ``suspender`` from now on (once, however often it is installed)."""
        if any(s is suspender for s in self._items):
            return
        suspender.install(self._engine)
        self._items.append(suspender)

    def remove(self, suspender: Any) -> None:
        """Stop watching ``suspender`` (nothing if it is not installed)."""
        if any(s is suspender for s in self._items):
            self._items = [s for s in self._items if s is not suspender]
            suspender.remove()

    def clear(self) -> None:
        """Remove every suspender."""
        for suspender in list(self._items):
            self.remove(suspender)

    def install_message(self, ctx: Any, msg: Any) -> None:
        """``Msg('install_suspender', suspender)`` (or bluesky's ``None, suspender``).

        Installed for the rest of the call: removed when the call ends.
        """
        suspender = msg.obj if msg.obj is not None else next(iter(msg.args), None)
        if not callable(getattr(suspender, "install", None)):
            raise PlanError(
                f"'install_suspender' needs a suspender (e.g. from acq.suspenders) as its obj, "
                f"got {suspender!r}: {msg!r}"
            )
        self.install(suspender)
        ctx.plan_suspenders.append(suspender)

    def remove_message(self, ctx: Any, msg: Any) -> None:
        """``Msg('remove_suspender', suspender)`` (or bluesky's ``None, suspender``)."""
        suspender = msg.obj if msg.obj is not None else next(iter(msg.args), None)
        if suspender is None:
            raise PlanError(f"'remove_suspender' needs the suspender to remove: {msg!r}")
        self.remove(suspender)


DOUBLE_TAP_SECONDS = 10.0


BLOCKED_SECONDS = 1.0
"""A Ctrl-C the event loop has not taken for this long means something blocks the loop."""


class SigintHandler:
    """Ctrl-C while a plan runs: first a deferred pause, a second within 10 s pauses now.

    The loop takes each Ctrl-C through ``loop.add_signal_handler`` (its wake-up fd, which
    also works while a Jupyter kernel swaps Python-level handlers). Beside it, a Python
    ``signal.signal`` handler, which runs at once even while a plan, a classic device or
    a critical callback blocks the loop (``time.sleep``, a blocking read), notes when a
    Ctrl-C arrived; when the loop has not taken it within :data:`BLOCKED_SECONDS`, the
    next Ctrl-C raises ``KeyboardInterrupt`` in the blocking code itself, as Python would
    without acq: the plan ends as an abort and its runs still get their Stop.
    """

    def __init__(self, request_pause: Callable[[bool], Any]) -> None:
        self._request_pause = request_pause
        self._previous: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._last = 0.0
        self._waiting_since: float | None = None  # a Ctrl-C the loop has not taken yet

    def install(self) -> bool:
        """Take SIGINT on the running loop, if this is the main thread; True if done."""
        if threading.current_thread() is not threading.main_thread():
            return False
        loop = asyncio.get_running_loop()
        try:
            previous = signal.getsignal(signal.SIGINT)
            loop.add_signal_handler(signal.SIGINT, self._on_sigint)
        except (NotImplementedError, RuntimeError, ValueError):
            return False  # no signals here (Windows loop, or not the main thread)
        signal.signal(signal.SIGINT, self._on_signal)  # the wake-up fd still reaches the loop
        self._previous = previous
        self._loop = loop
        self._last = 0.0
        self._waiting_since = None
        return True

    def remove(self) -> None:
        """Give SIGINT back to whoever had it before."""
        if self._loop is None:
            return
        try:
            self._loop.remove_signal_handler(signal.SIGINT)
        finally:
            previous = self._previous if self._previous is not None else signal.default_int_handler
            signal.signal(signal.SIGINT, previous)
            self._loop = None
            self._previous = None

    def _on_signal(self, signum: int, frame: object) -> None:
        """Python's signal handler: break into code that keeps the loop from the Ctrl-C."""
        now = time.monotonic()
        waiting = self._waiting_since
        if waiting is None:
            self._waiting_since = now
            return
        if now - waiting >= BLOCKED_SECONDS:
            self._waiting_since = None
            print(
                "acq: the event loop is blocked (a plan, device or callback that does not "
                "return); interrupting it: the plan ends as an abort.",
                file=sys.stderr,
            )
            raise KeyboardInterrupt

    def _on_sigint(self) -> None:
        self._waiting_since = None  # the loop took the Ctrl-C
        now = time.monotonic()
        if now - self._last < DOUBLE_TAP_SECONDS:
            print(
                "acq: pausing now (Ctrl-C twice). When the cell/command returns: "
                "await RE.resume(), or RE.stop(), RE.abort(), RE.halt().",
                file=sys.stderr,
            )
            self._request_pause(False)
        else:
            print(
                "acq: a deferred pause was requested: the plan pauses at its next "
                f"checkpoint. Press Ctrl-C again within {DOUBLE_TAP_SECONDS:.0f} s to pause now.",
                file=sys.stderr,
            )
            self._request_pause(True)
        self._last = now
