"""The catalog's writer: a task on the I/O loop that commits what the store queues.

:class:`Writer` owns the queue between the engine's thread (the store appends to it,
``_store.py``) and the catalog's I/O loop (``_io.py``), where one task takes whatever has
queued up, turns it into rows (``_rows.py``) and commits it in one transaction: the
busier the engine, the bigger the batches. It sleeps when the queue is empty and is
woken by the next document; it keeps which runs could not be stored, so that their next
document fails fast; and it lets a caller wait for room (``max_pending``) or for
everything queued so far to be committed (``flush``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
from collections import deque
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from ._config import CatalogError, Location
from ._io import io_thread

if TYPE_CHECKING:
    from ._rows import Batch, Batcher, Item

__all__ = ["Writer", "short_error", "wait"]

logger = logging.getLogger("acq.catalog")

_MAX_BATCH = 20_000  # documents per transaction at most
_SMALL = 256  # after a commit, fewer documents than this waiting: let more come first...
_NAP = 0.02  # ...for up to this long (s), unless a Start, Stop, flush or full queue wakes it


class Writer:
    """The queue of one store and the task that commits it."""

    def __init__(self, location: Location, inline_limit: int, max_pending: int) -> None:
        self.location = location
        self.inline_limit = inline_limit
        self.max_pending = max_pending
        self.failed: dict[str, BaseException] = {}  # run uid -> why it could not be stored
        self._queue: deque[Item] = deque()
        self._sleeping = True  # the writer waits for a wake-up
        self._napping = False  # the writer lets a few documents gather (see _nap)
        self._lock = threading.Lock()
        self._wakeup: asyncio.Event | None = None
        self._task: concurrent.futures.Future[None] | None = None
        self._errors: list[BaseException] = []  # failures since the last flush()
        self._room: list[concurrent.futures.Future[None]] = []
        self._closing = False

    @property
    def running(self) -> bool:
        """Is a writer task alive (it may be asleep)?"""
        return self._task is not None

    def put(self, item: Item) -> Awaitable[None] | None:
        """Queue ``item``; an awaitable if the caller must wait (its commit, or room)."""
        queue = self._queue
        queue.append(item)
        waiter = item[3]
        if self._sleeping or (self._napping and waiter is not None):
            self._wake()
        if waiter is not None:
            return wait(waiter)
        if len(queue) > self.max_pending:
            return self._wait_for_room()
        return None

    def put_nowait(self, item: Item) -> None:
        """Queue ``item`` without waiting for anything."""
        self._queue.append(item)
        if self._sleeping:
            self._wake()

    def _wake(self) -> None:
        self._sleeping = False
        with self._lock:
            if self._task is None or self._task.done():
                self._wakeup = asyncio.Event()
                self._task = io_thread().submit(self._write_forever())
                return
        wakeup = self._wakeup
        if wakeup is not None:
            io_thread().call_soon(wakeup.set)

    async def _write_forever(self) -> None:
        from ._database import database
        from ._rows import Batcher

        batcher = Batcher(self.location.files_dir, self.inline_limit)
        db = database(self.location)
        queue = self._queue
        wakeup = self._wakeup
        assert wakeup is not None
        try:
            while True:
                if self._room and len(queue) <= self.max_pending // 2:
                    rooms, self._room = self._room, []
                    for room in rooms:
                        if room.set_running_or_notify_cancel():
                            room.set_result(None)
                if not queue:
                    self._sleeping = True
                    if not queue and not self._room:
                        await wakeup.wait()
                    wakeup.clear()
                    self._sleeping = False
                    continue
                items = [queue.popleft() for _ in range(min(len(queue), _MAX_BATCH))]
                try:
                    await self._commit(db, batcher, items)
                except Exception:  # a bug; the writer must go on for the other runs
                    logger.exception("the catalog writer failed on a batch")
                if len(queue) < _SMALL:
                    await self._nap(wakeup)
        finally:
            for run in list(batcher.runs):
                batcher.forget(run)
            with self._lock:
                self._task = None
                self._sleeping = True  # the next document starts a writer again
            if queue and not self._closing:
                self._wake()  # documents came in while this writer ended

    async def _nap(self, wakeup: asyncio.Event) -> None:
        """Let documents gather for a moment before the next transaction.

        A slow producer (a step scan of real devices, a few hundred µs a point) would
        otherwise get a transaction per document, and the writer's Python would hold the
        GIL each time the engine's loop wakes: a count of ophyd-async sim devices ran at
        455 µs/point with the catalog against 208 without. A Start or Stop (the engine
        awaits its commit), a flush or a full queue ends the nap at once.
        """
        self._napping = True  # from here on, a Start or Stop queued sets wakeup...
        wakeup.clear()
        try:
            if any(item[3] is not None for item in self._queue):
                return  # ...and one queued before is seen here
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_NAP):
                    await wakeup.wait()
        finally:
            self._napping = False

    async def _commit(self, db: Any, batcher: Batcher, items: list[Item]) -> None:
        from ._rows import commit

        try:
            batch: Batch = batcher.prepare(items, self.failed)
        except Exception as exc:  # a bug: fail every run in the batch, keep writing
            logger.exception("the catalog writer failed to prepare a batch")
            from ._rows import Batch

            batch = Batch(waiters=[(i[0], i[3]) for i in items if i[3] is not None])
            batch.runs = {i[0] for i in items if i[0] is not None}
            batch.failures = dict.fromkeys(batch.runs, exc)
        try:
            await commit(db, batch)
        except Exception as exc:  # noqa: BLE001 -- the runs of the batch fail with it
            for run in batch.runs:
                batch.failures.setdefault(run, exc)
        for run, exc in batch.failures.items():
            if run not in self.failed:  # newly failed
                logger.error(
                    "the catalog %s could not store run %s: %s",
                    self.location,
                    run,
                    short_error(exc),
                )
                batcher.forget(run)
                self._errors.append(exc)
            if run in batch.stopped:
                self.failed.pop(run, None)  # nothing more will come for it
            else:
                self.failed[run] = exc
        for run, waiter in batch.waiters:
            if not waiter.set_running_or_notify_cancel():
                continue  # whoever waited was cancelled
            error = batch.failures.get(run) if run is not None else None
            if error is None:
                waiter.set_result(None)
            else:
                failure = CatalogError(
                    f"the catalog {self.location} could not store run {run}: {short_error(error)}"
                )
                failure.__cause__ = error
                waiter.set_exception(failure)

    def _wait_for_room(self) -> Awaitable[None] | None:
        room = concurrent.futures.Future[None]()
        self._room.append(room)
        if self._sleeping or self._napping:
            self._wake()
        return wait(room)

    # -- flushing and closing ----------------------------------------------------------
    def _marker(self) -> concurrent.futures.Future[None]:
        done = concurrent.futures.Future[None]()
        self._queue.append((None, "", None, done))
        self._wake()
        return done

    def flush(self, timeout: float | None = None) -> None:
        """Wait until everything queued so far is committed.

        Raises:
            CatalogError: documents queued since the last flush could not be stored.
        """
        if self._task is None and not self._queue:
            return
        self._marker().result(timeout)
        self._check_errors()

    async def aflush(self) -> None:
        """:meth:`flush`, awaitable."""
        if self._task is None and not self._queue:
            return
        await asyncio.wrap_future(self._marker())
        self._check_errors()

    def _check_errors(self) -> None:
        errors, self._errors = self._errors, []
        if errors:
            raise CatalogError(
                f"the catalog {self.location} could not store {len(errors)} batch(es): {errors[0]}"
            ) from errors[0]

    def close(self, timeout: float | None = 60.0) -> None:
        """Flush, stop the writer and close the database connections (reopened on use).

        Runs still open lose their writer: close a store only between runs.
        """
        task = self._task
        if task is not None:
            try:
                self._marker().result(timeout)
            finally:
                self._closing = True
                task.cancel()
                with contextlib.suppress(concurrent.futures.CancelledError, Exception):
                    task.result(timeout)
                self._closing = False

    def forget_in_child(self) -> None:
        """In a forked child: the parent's queue and task are not this process's."""
        self._queue.clear()
        self._task = None
        self._sleeping = True


def short_error(error: BaseException) -> str:
    """An error in one line: a database error without the SQL and parameters it carries."""
    cause = getattr(error, "orig", None) or error
    text = str(cause) if isinstance(cause, CatalogError) else f"{type(cause).__name__}: {cause}"
    return text if len(text) <= 300 else text[:297] + "..."


def wait(future: concurrent.futures.Future[None]) -> Awaitable[None] | None:
    """An awaitable of ``future`` on the running loop; without one, wait here."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        future.result()
        return None
    return asyncio.wrap_future(future, loop=loop)
