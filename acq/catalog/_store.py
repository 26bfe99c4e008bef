"""The document store: a critical subscriber that writes every document to the catalog.

The engine calls a critical subscriber inline, once per document, so the call must be
cheap: :meth:`DocumentStore.__call__` only works out which run the document belongs to
(the routing: a Descriptor, Resource or Stream Resource names its run; an Event, Datum
or Stream Datum names one of those) and hands it to the store's :class:`Writer`
(``_writer.py``), a task on the catalog's I/O loop that commits whatever has queued up
in one transaction (well under a microsecond for an Event, on the engine's side).

Durability: a run's documents are committed in the order they were emitted. For the
Start and the Stop the call returns an awaitable that finishes when the document is
committed, which the engine awaits -- a run cannot begin on a catalog that cannot be
written, and ``await RE(...)`` returns only once the run is on disk. If writing fails,
the run's next document raises :class:`CatalogError` (the engine then fails the run);
other runs are not affected. When the writer falls ``max_pending`` documents behind,
the call returns an awaitable that waits for it to catch up (nothing is dropped).
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
import weakref
from collections.abc import Awaitable
from typing import Any

from ._config import CatalogError, Location, PerLocation, default_location, location
from ._io import on_exit
from ._writer import Writer, short_error

__all__ = ["DocumentStore", "shared_store"]

logger = logging.getLogger("acq.catalog")

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
        self._writer = Writer(self.location, inline_limit, max_pending)
        self._failed = self._writer.failed  # run uid -> why it could not be stored
        self._owner: dict[str, str] = {}  # descriptor/resource uid -> run uid
        self._owned: dict[str, list[str]] = {}  # open run uid -> its keys in _owner
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
        return self._writer.put((run, name, doc, waiter))

    def write(self, name: str, doc: dict[str, Any]) -> None:
        """Queue ``doc`` without waiting for anything (bulk loading; see :meth:`flush`)."""
        if name in ("start", "stop"):
            self._writer.put_nowait((self._route(name, doc), name, doc, None))
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
            f"the catalog {self.location} could not store run {run}: {short_error(error)}"
        ) from error

    # -- flushing and closing ----------------------------------------------------------
    def flush(self, timeout: float | None = None) -> None:
        """Wait until everything queued so far is committed.

        Raises:
            CatalogError: documents queued since the last flush could not be stored.
        """
        self._writer.flush(timeout)

    async def aflush(self) -> None:
        """:meth:`flush`, awaitable."""
        await self._writer.aflush()

    def close(self, timeout: float | None = 60.0) -> None:
        """Flush, stop the writer and close the database connections (reopened on use).

        Runs still open lose their writer: close a store only between runs.
        """
        self._writer.close(timeout)
        from ._database import database

        database(self.location).close()


_stores: weakref.WeakSet[DocumentStore] = weakref.WeakSet()
shared_store = PerLocation[DocumentStore](DocumentStore)
"""The process's store for a location: engines writing to one place share one writer."""


def _close_all() -> None:
    for store in list(_stores):
        if store._writer.running:  # pyright: ignore[reportPrivateUsage]
            try:
                store.close(timeout=30)
            except Exception:
                logger.exception("closing %r at exit failed", store)


def _forget_in_child() -> None:
    for store in list(_stores):
        store._writer.forget_in_child()  # pyright: ignore[reportPrivateUsage]


on_exit(_close_all)
os.register_at_fork(after_in_child=_forget_in_child)
