"""The document store: a critical subscriber that writes every document to the catalog.

The engine calls a critical subscriber inline, once per document, so the call must be
cheap: :meth:`DocumentStore.__call__` only works out which run the document belongs to
and appends it to a queue (well under a microsecond for an Event). A writer task on
the catalog's I/O loop (``_io.py``) takes whatever has queued up, turns it into rows
(``_writer.py``) and commits it in one transaction: the busier the engine, the bigger
the batches.

Durability: a run's documents are committed in the order they were emitted. For the
Start and the Stop the call returns an awaitable that finishes when the document is
committed, which the engine awaits -- a run cannot begin on a catalog that cannot be
written, and ``await RE(...)`` returns only once the run is on disk. If writing fails,
the run's next document raises :class:`CatalogError` (the engine then fails the run);
other runs are not affected. When the writer falls ``max_pending`` documents behind,
the call returns an awaitable that waits for it to catch up (nothing is dropped).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import threading
import weakref
from collections import deque
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from ._config import CatalogError, Location, PerLocation, default_location, location
from ._io import io_thread, on_exit

if TYPE_CHECKING:
    from ._writer import Batch, Batcher, Item

__all__ = ["DocumentStore", "shared_store"]

logger = logging.getLogger("acq.catalog")

_MAX_BATCH = 20_000  # documents per transaction at most
_OWNED_BY = {"descriptor": "run_start", "resource": "run_start", "stream_resource": "run_start"}


class DocumentStore:
    """Writes every document of every run to a catalog database (a critical subscriber).

    Args:
        where: a URL (``sqlite:///...``, ``postgresql://...``), a path to a SQLite file,
            or a :class:`Location`; None for the default (see :mod:`acq.catalog`).
        files_dir: where large arrays are written (HDF5); see ``_config.py``.
        inline_limit: arrays declared with at least this many elements are written to
            HDF5 instead of the database.
        max_pending: documents the writer may fall behind before the engine waits.

    Example:
        >>> store = DocumentStore("/tmp/example-catalog.db")  # doctest: +SKIP
        >>> RE.subscribe(store, critical=True)  # doctest: +SKIP
    """

    def __init__(
        self,
        where: str | os.PathLike[str] | Location | None = None,
        *,
        files_dir: str | os.PathLike[str] | None = None,
        inline_limit: int = 1000,
        max_pending: int = 100_000,
    ) -> None:
        if isinstance(where, Location):
            self.location = where if files_dir is None else location(where.url, files_dir)
        elif where is None:
            self.location = default_location()
            if files_dir is not None:
                self.location = location(self.location.url, files_dir)
        else:
            self.location = location(where, files_dir)
        if inline_limit < 1 or max_pending < 1:
            raise ValueError("inline_limit and max_pending must be at least 1")
        self.inline_limit = inline_limit
        self.max_pending = max_pending
        self._queue: deque[Item] = deque()
        self._owner: dict[str, str] = {}  # descriptor/resource uid -> run uid
        self._owned: dict[str, list[str]] = {}  # open run uid -> its keys in _owner
        self._failed: dict[str, BaseException] = {}  # run uid -> why it could not be stored
        self._sleeping = True  # the writer waits for a wake-up
        self._lock = threading.Lock()
        self._wakeup: asyncio.Event | None = None
        self._task: concurrent.futures.Future[None] | None = None
        self._errors: list[BaseException] = []  # failures since the last flush()
        self._room: list[concurrent.futures.Future[None]] = []
        self._closing = False
        _stores.add(self)

    def __repr__(self) -> str:
        return f"DocumentStore({str(self.location)!r})"

    # -- the subscriber ---------------------------------------------------------------
    def __call__(self, name: str, doc: dict[str, Any]) -> Awaitable[None] | None:
        """Queue ``doc``; for a Start or Stop, return an awaitable of its commit."""
        if name == "event" or name == "event_page":
            run = self._owner.get(doc["descriptor"]) or self._unknown(name, doc["descriptor"])
        else:
            run = self._route(name, doc)
        if self._failed and run in self._failed:
            self._raise_failure(run, name)
        waiter = concurrent.futures.Future[None]() if name in ("start", "stop") else None
        self._queue.append((run, name, doc, waiter))
        if self._sleeping:
            self._wake()
        if waiter is not None:
            return _wait(waiter)
        if len(self._queue) > self.max_pending:
            return self._wait_for_room()
        return None

    def write(self, name: str, doc: dict[str, Any]) -> None:
        """Queue ``doc`` without waiting for anything (bulk loading; see :meth:`flush`)."""
        if name in ("start", "stop"):
            run = self._route(name, doc)
            self._queue.append((run, name, doc, None))
            if self._sleeping:
                self._wake()
            return
        self(name, doc)

    def _route(self, name: str, doc: dict[str, Any]) -> str:
        if name == "start":
            run = doc["uid"]
            self._owned[run] = []
            return run
        if name == "stop":
            run = doc["run_start"]
            for key in self._owned.pop(run, ()):
                self._owner.pop(key, None)
            return run
        field = _OWNED_BY.get(name)
        if field is not None:
            run = doc[field]
            owned = self._owned.get(run)
            if owned is None:
                raise CatalogError(
                    f"a {name!r} document of run {run!r}, whose Start this store never "
                    "received: subscribe the store before the run opens"
                )
            self._owner[doc["uid"]] = run
            owned.append(doc["uid"])
            return run
        if name == "stream_datum":
            key = doc.get("descriptor") or doc["stream_resource"]
        elif name in ("datum", "datum_page"):
            key = doc["resource"]
        else:
            raise CatalogError(f"cannot store a document called {name!r}: not an event-model name")
        return self._owner.get(key) or self._unknown(name, key)

    def _unknown(self, name: str, key: str) -> str:
        raise CatalogError(
            f"a {name!r} document refers to {key!r}, which this store has not seen: "
            "subscribe the store before the run opens"
        )

    def _raise_failure(self, run: str, name: str) -> None:
        error = self._failed.pop(run) if name == "stop" else self._failed[run]
        raise CatalogError(
            f"the catalog {self.location} could not store run {run}: {_short(error)}"
        ) from error

    # -- the writer --------------------------------------------------------------------
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
        from ._writer import Batcher

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
        finally:
            for run in list(batcher.runs):
                batcher.forget(run)
            with self._lock:
                self._task = None
                self._sleeping = True  # the next document starts a writer again
            if queue and not self._closing:
                self._wake()  # documents came in while this writer ended

    async def _commit(self, db: Any, batcher: Batcher, items: list[Item]) -> None:
        from ._writer import commit

        try:
            batch: Batch = batcher.prepare(items, self._failed)
        except Exception as exc:  # a bug: fail every run in the batch, keep writing
            logger.exception("the catalog writer failed to prepare a batch")
            from ._writer import Batch

            batch = Batch(waiters=[(i[0], i[3]) for i in items if i[3] is not None])
            batch.runs = {i[0] for i in items if i[0] is not None}
            batch.failures = dict.fromkeys(batch.runs, exc)
        try:
            await commit(db, batch)
        except Exception as exc:  # noqa: BLE001 -- the runs of the batch fail with it
            for run in batch.runs:
                batch.failures.setdefault(run, exc)
        for run, exc in batch.failures.items():
            if run not in self._failed:  # newly failed
                logger.error(
                    "the catalog %s could not store run %s: %s", self.location, run, _short(exc)
                )
                batcher.forget(run)
                self._errors.append(exc)
            if run in batch.stopped:
                self._failed.pop(run, None)  # nothing more will come for it
            else:
                self._failed[run] = exc
        for run, waiter in batch.waiters:
            if not waiter.set_running_or_notify_cancel():
                continue  # whoever waited was cancelled
            error = batch.failures.get(run) if run is not None else None
            if error is None:
                waiter.set_result(None)
            else:
                failure = CatalogError(
                    f"the catalog {self.location} could not store run {run}: {_short(error)}"
                )
                failure.__cause__ = error
                waiter.set_exception(failure)

    def _wait_for_room(self) -> Awaitable[None] | None:
        room = concurrent.futures.Future[None]()
        self._room.append(room)
        if self._sleeping:
            self._wake()
        return _wait(room)

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
        from ._database import database

        database(self.location).close()


def _short(error: BaseException) -> str:
    """An error in one line: a database error without the SQL and parameters it carries."""
    cause = getattr(error, "orig", None) or error
    text = str(cause) if isinstance(cause, CatalogError) else f"{type(cause).__name__}: {cause}"
    return text if len(text) <= 300 else text[:297] + "..."


def _wait(future: concurrent.futures.Future[None]) -> Awaitable[None] | None:
    """An awaitable of ``future`` on the running loop; without one, wait here."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        future.result()
        return None
    return asyncio.wrap_future(future, loop=loop)


_stores: weakref.WeakSet[DocumentStore] = weakref.WeakSet()
shared_store = PerLocation[DocumentStore](DocumentStore)
"""The process's store for a location: engines writing to one place share one writer."""


def _close_all() -> None:
    for store in list(_stores):
        if store._task is not None:  # pyright: ignore[reportPrivateUsage]
            try:
                store.close(timeout=30)
            except Exception:
                logger.exception("closing %r at exit failed", store)


def _forget_in_child() -> None:
    for store in list(_stores):
        store._queue.clear()  # pyright: ignore[reportPrivateUsage]
        store._task = None  # pyright: ignore[reportPrivateUsage]
        store._sleeping = True  # pyright: ignore[reportPrivateUsage]


on_exit(_close_all)
os.register_at_fork(after_in_child=_forget_in_child)
