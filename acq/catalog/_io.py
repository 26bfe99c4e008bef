"""The catalog's I/O thread: one event loop, off the caller's, for every database call.

The catalog talks to its database through SQLAlchemy's asyncio engine (aiosqlite,
asyncpg). Those coroutines run on a private event loop in a daemon thread, so that

* the store's writer never runs on -- and never blocks -- the RunEngine's loop;
* the synchronous catalog API works the same in a script, in Jupyter (where a loop is
  already running) and in an asyncio service: it hands a coroutine to this thread and
  waits for the answer, never touching the caller's loop.

At interpreter exit, before non-daemon threads are joined, every store is flushed and
every database engine disposed (aiosqlite keeps a non-daemon thread per connection).
A forked child starts afresh: the parent's thread does not exist there.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from acq import AcqInternalError

__all__ = ["IOThread", "io_thread", "on_exit"]

logger = logging.getLogger("acq.catalog")

T = TypeVar("T")


class IOThread:
    """An event loop running in a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._main, name="acq catalog I/O", daemon=True)
        self._thread.start()

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_forever()
        finally:
            self.loop.close()

    @property
    def is_current(self) -> bool:
        """True when called from the I/O thread itself."""
        return threading.current_thread() is self._thread

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Start ``coro`` on the I/O loop; return a future of its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coro`` on the I/O loop and wait for its result (from any other thread)."""
        if self.is_current:
            coro.close()
            raise AcqInternalError("a catalog call waited on the catalog's own I/O thread")
        return self.submit(coro).result(timeout)

    def call_soon(self, callback: Callable[..., Any], *args: Any) -> None:
        """Schedule a plain callback on the I/O loop (safe from any thread)."""
        self.loop.call_soon_threadsafe(callback, *args)

    def stop(self) -> None:
        """Stop the loop; the thread ends."""
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=5)


_lock = threading.Lock()
_io: IOThread | None = None
_exit_hooks: list[Callable[[], None]] = []
_last_hooks: list[Callable[[], None]] = []


def io_thread() -> IOThread:
    """The process's I/O thread, started on first use."""
    global _io
    with _lock:
        if _io is None:
            _io = IOThread()
        return _io


def on_exit(hook: Callable[[], None], *, last: bool = False) -> None:
    """Call ``hook()`` at interpreter exit, before the I/O thread stops.

    Hooks run newest first; those registered with ``last=True`` (closing databases)
    run after all the others (flushing stores).
    """
    with _lock:
        (_last_hooks if last else _exit_hooks).append(hook)


def _shutdown() -> None:
    global _io
    with _lock:
        hooks = [*reversed(_exit_hooks), *reversed(_last_hooks)]
        _exit_hooks.clear()
        _last_hooks.clear()
    for hook in hooks:
        try:
            hook()
        except Exception:
            logger.exception("closing the catalog at exit failed")
    with _lock:
        io, _io = _io, None
    if io is not None:
        io.stop()


def _forget_in_child() -> None:
    global _io, _lock
    _lock = threading.Lock()
    _io = None


def _register() -> None:
    # threading's own exit hooks run before non-daemon threads are joined, so the
    # database connections (each with an aiosqlite thread) can still be closed there.
    register = getattr(threading, "_register_atexit", None)
    if callable(register):
        register(_shutdown)
    else:  # pragma: no cover -- every supported Python has it
        import atexit

        atexit.register(_shutdown)


_register()
os.register_at_fork(after_in_child=_forget_in_child)
