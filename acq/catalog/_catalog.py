"""Reading the catalog back: :class:`Catalog`, :class:`Results`, :class:`Run`, :class:`Stream`.

The API is synchronous on purpose, so that it reads the same in a script, in a Jupyter
cell and in a test: each call hands its query to the catalog's I/O thread and waits for
the rows (it never touches the caller's event loop, so it also works where a loop is
already running -- it blocks that loop only for the query). Decoding documents and
building arrays happen in the caller's thread. In an asyncio service that must not
block, call it through ``await asyncio.to_thread(...)``.

Runs are ordered newest first. ``catalog[-1]`` is the newest run (``[-2]`` the one
before), ``catalog[42]`` the newest run with scan_id 42, ``catalog["3f2a"]`` the run
whose uid starts with "3f2a".
"""

from __future__ import annotations

import asyncio
import itertools
import os
import sys
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from typing import TYPE_CHECKING, Any, TypeVar, cast

from ._codec import PACKED_EVENTS, loads
from ._columns import decode, is_columnar
from ._config import CatalogError, Location, check_location, default_location, location
from ._io import io_thread
from ._search import Query, as_queries
from ._store import DocumentStore, shared_store
from ._stream import EVENT_ROWS, StreamData, build_stream_data

if TYPE_CHECKING:
    from ._database import Database
    from ._queries import DocumentRow, RunRow

__all__ = ["Catalog", "Results", "Run", "Stream", "catalog_for"]

T = TypeVar("T")
_PAGE = 200  # runs fetched per query while iterating
_DOCUMENTS_PAGE = 2000  # document-log rows fetched per query while replaying


def _database(where: Location) -> Database:
    from ._database import database

    return database(where)


def _run(coro: Coroutine[Any, Any, T]) -> T:
    return io_thread().run(coro)


_Parsed = tuple[str, Any, bytes | None, int]  # name, body, columns, documents it holds


def _parse(rows: list[DocumentRow]) -> list[_Parsed]:
    """Each row's name, parsed body, column blob and how many documents it holds."""
    parsed: list[_Parsed] = []
    for _seq, name, _descriptor, body, blob in rows:
        doc = loads(body)
        parsed.append((name, doc, blob, _size(doc) if name == PACKED_EVENTS else 1))
    return parsed


def _expand(rows: list[_Parsed], skip: int) -> Iterator[tuple[str, dict[str, Any]]]:
    """The documents of parsed document-log rows, after the first ``skip`` of them."""
    for name, doc, blob, size in rows:
        if skip >= size:
            skip -= size
            continue
        if is_columnar(doc):
            doc = decode(doc, blob)
        if name == PACKED_EVENTS:
            for event in itertools.islice(_unpack(doc), skip, None):
                yield "event", dict(event)
        else:
            yield name, doc
        skip = 0


def _size(packed: dict[str, Any]) -> int:
    """How many Events a packed row holds (its header says, or its JSON page)."""
    return int(packed["n"]) if is_columnar(packed) else len(packed["seq_num"])


def _unpack(page: dict[str, Any]) -> Iterator[dict[str, Any]]:
    import event_model  # on first use: it costs ~0.1 s, and `acq runs` never needs it

    unpack = cast(
        "Callable[[Any], Iterator[dict[str, Any]]]",
        event_model.unpack_event_page,  # pyright: ignore[reportUnknownMemberType]
    )
    return unpack(page)


class Results:
    """Runs matching a search, newest first (:class:`Catalog` is the search for all)."""

    def __init__(self, where: Location, queries: tuple[Query, ...] = ()) -> None:
        self.location = where
        self.queries = queries
        self._must_exist = False  # a pure reader: never create the database (checked once)

    def search(self, *queries: Query, **equals: Any) -> Results:
        """Narrow down: runs matching these terms too (see :mod:`acq.catalog`)."""
        found = Results(self.location, self.queries + as_queries(queries, equals))
        found._must_exist = self._must_exist
        return found

    def _fetch(self, call: Callable[..., Coroutine[Any, Any, T]], *args: Any, **kwargs: Any) -> T:
        if self._must_exist:
            opened = _opened_here(self.location)
            check_location(self.location, write=False, opened=opened)  # never creates one
            self._must_exist = False
        return _run(call(_database(self.location), self.queries, *args, **kwargs))

    def __len__(self) -> int:
        from ._queries import count

        return self._fetch(count)

    def __bool__(self) -> bool:
        from ._queries import fetch_runs

        return bool(self._fetch(fetch_runs, limit=1))

    def __iter__(self) -> Iterator[Run]:
        from ._queries import fetch_runs

        after: tuple[float, int] | None = None
        while True:
            rows = self._fetch(fetch_runs, limit=_PAGE, after=after)
            for row in rows:
                yield Run(self.location, row)
            if len(rows) < _PAGE:
                return
            after = (rows[-1].time, rows[-1].id)

    def page(self, number: int, size: int = 20) -> list[Run]:
        """Page ``number`` (from 1, newest first) of ``size`` runs."""
        from ._queries import fetch_runs

        if number < 1 or size < 1:
            raise ValueError(
                f"pages count from 1 and hold at least 1 run, got page({number}, {size})"
            )
        rows = self._fetch(fetch_runs, limit=size, offset=(number - 1) * size)
        return [Run(self.location, row) for row in rows]

    def __getitem__(self, key: int | str) -> Run:
        from ._queries import by_scan_id, by_uid, fetch_runs

        if isinstance(key, bool) or not isinstance(key, int | str):  # pyright: ignore[reportUnnecessaryIsInstance]
            raise TypeError(
                f"look a run up by scan_id (int), position from the newest (-1, -2, ...) or "
                f"uid (str), not {key!r}"
            )
        if isinstance(key, int):
            if key < 0:
                rows = self._fetch(fetch_runs, limit=1, offset=-key - 1)
                if not rows:
                    raise IndexError(self._no_position(key))
                return Run(self.location, rows[0])
            if key == 0:
                raise KeyError("scan_ids start at 1; use [-1] for the newest run")
            found = self._fetch(by_scan_id, key)
            if found is None:
                raise KeyError(f"no run with scan_id {key} in {self._what()}")
            return Run(self.location, found)
        if not key:
            raise KeyError("an empty uid")
        rows = self._fetch(by_uid, key)
        if not rows:
            raise KeyError(f"no run whose uid starts with {key!r} in {self._what()}")
        if len(rows) > 1:
            shown = ", ".join(r.uid for r in rows[:5])
            raise KeyError(
                f"{key!r} starts the uid of several runs ({shown}, ...): give more of it"
            )
        return Run(self.location, rows[0])

    def _no_position(self, key: int) -> str:
        held = len(self)
        if held == 0:
            return f"there are no runs in {self._what()}"
        runs = "run" if held == 1 else "runs"
        return f"there is no run at position {key}: {self._what()} has only {held} {runs}"

    def _what(self) -> str:
        if not self.queries:
            return f"the catalog {self.location}"
        return f"the runs matching {' & '.join(map(repr, self.queries))}"

    def __repr__(self) -> str:
        return f"<Results: {len(self)} runs matching {' & '.join(map(repr, self.queries))}>"


class Catalog(Results):
    """Every run stored in one catalog database.

    Args:
        where: a URL, a SQLite path or a :class:`Location`; None for the default (the
            same one a ``RunEngine()`` writes to).
        store: the :class:`DocumentStore` writing to it (its location is used).

    Example:
        >>> catalog = Catalog()  # doctest: +SKIP
        >>> run = catalog[-1]  # doctest: +SKIP
        >>> run.primary.read()["det"]  # doctest: +SKIP
    """

    def __init__(
        self,
        where: str | os.PathLike[str] | Location | None = None,
        *,
        store: DocumentStore | None = None,
    ) -> None:
        if store is not None:
            where = store.location
        elif where is None:
            where = default_location()
        elif not isinstance(where, Location):
            where = location(where)
        super().__init__(where)
        self._store = store
        self._must_exist = store is None

    @property
    def store(self) -> DocumentStore:
        """The store that writes into this catalog (subscribe it as a critical subscriber)."""
        if self._store is None:
            self._store = shared_store(self.location)
            self._must_exist = False  # a writer's catalog: its first run creates it
        return self._store

    async def next_scan_id(self, at_least: int = 1) -> int:
        """Reserve a new run's scan_id: a ``RunEngine``'s default ``scan_id_source``.

        One more than the highest scan_id this catalog has handed out or stored, and at
        least ``at_least`` (the engine passes one more than ``RE.md['scan_id']``) --
        reserved in one transaction, so engines in any number of processes sharing the
        catalog never get the same one (see ``_scan_ids.py``). Awaitable: the database
        work runs on the catalog's I/O thread.

        Raises:
            CatalogError: the catalog cannot be opened or written.
        """
        from ._scan_ids import reserve_scan_id

        return await reserve_scan_id(self.location, at_least)

    def close(self) -> None:
        """Flush the store (if any) and close the database connections (reopened on use)."""
        if self._store is not None:
            self._store.close()
        _database(self.location).close()

    def __repr__(self) -> str:
        return f"<Catalog {self.location}: {len(self)} runs>"


class Run:
    """One stored run: its Start and Stop, its streams, its documents."""

    def __init__(self, where: Location, row: RunRow) -> None:
        self.location = where
        self.uid: str = row.uid
        self.scan_id: int | None = row.scan_id
        self.start: dict[str, Any] = row.start
        """The Start document (its searchable copy: NaN is stored as None)."""
        self.stop: dict[str, Any] | None = row.stop
        """The Stop document, or None: the run is still going, or its process died."""
        self._descriptors: list[tuple[str, str]] | None = None
        self._tail = (-1, 0)
        """(the last log row read, how many documents up to it): where the next read of a
        growing run starts (rows are only ever appended)."""

    @property
    def metadata(self) -> dict[str, Any]:
        """``{"start": ..., "stop": ...}``."""
        return {"start": self.start, "stop": self.stop}

    @property
    def exit_status(self) -> str:
        """The Stop's exit_status, or "incomplete" when there is no Stop."""
        return "incomplete" if self.stop is None else str(self.stop.get("exit_status"))

    def _descriptor_rows(self) -> list[tuple[str, str]]:
        """``(stream name, body)`` of every descriptor, in order."""
        if self._descriptors is not None:
            return self._descriptors
        from ._queries import fetch_documents

        rows = _run(fetch_documents(_database(self.location), self.uid, names=["descriptor"]))
        found = [(str(loads(row[3]).get("name", "primary")), row[3]) for row in rows]
        if self.stop is not None:
            self._descriptors = found
        return found

    @property
    def streams(self) -> list[str]:
        """The names of the run's streams, in the order they began."""
        return list(dict.fromkeys(name for name, _ in self._descriptor_rows()))

    def __getitem__(self, stream: str) -> Stream:
        if stream not in self.streams:
            raise KeyError(f"run {self.uid[:8]} has no stream {stream!r}; it has {self.streams}")
        return Stream(self, stream)

    def __dir__(self) -> list[str]:
        return [*super().__dir__(), *self.streams]

    def __getattr__(self, name: str) -> Stream:
        if name.startswith("_"):
            raise AttributeError(name)
        streams = self.streams
        if name in streams:
            return Stream(self, name)
        raise AttributeError(
            f"run {self.uid[:8]} has no attribute or stream {name!r} (streams: {streams})"
        )

    def documents(self, start: int = 0) -> Iterator[tuple[str, dict[str, Any]]]:
        """Every stored document, in the order it was emitted: ``(name, doc)`` pairs.

        ``start`` skips the first documents: ``documents(n)`` begins with the run's
        document number ``n`` (the Start is 0; each Event of a packed row counts as one).
        """
        after, start = self._resume(start)
        while True:
            rows = _run(self._document_rows(after))
            parsed = _parse(rows)
            yield from _expand(parsed, start)
            after, start = self._advance(after, rows, parsed, start)
            if len(rows) < _DOCUMENTS_PAGE:
                return

    async def adocuments(self, start: int = 0) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """:meth:`documents` for a coroutine: queries run on the catalog's I/O thread.

        The event loop is free while the database answers; decoding is done here. A run
        still being written gives the documents committed so far.
        """
        after, start = self._resume(start)
        while True:
            rows = await asyncio.wrap_future(io_thread().submit(self._document_rows(after)))
            parsed = _parse(rows)
            for pair in _expand(parsed, start):
                yield pair
            after, start = self._advance(after, rows, parsed, start)
            if len(rows) < _DOCUMENTS_PAGE:
                return

    def _resume(self, start: int) -> tuple[int, int]:
        """Where a read from document ``start`` begins: (row to read after, documents to skip)."""
        row, read = self._tail
        return (row, start - read) if read <= start else (-1, start)

    def _advance(
        self, after: int, rows: list[DocumentRow], parsed: list[_Parsed], skip: int
    ) -> tuple[int, int]:
        """Past ``rows`` (read whole, after row ``after``): (last row, still to skip).

        Rows read on from the remembered end move it (not a re-read from further back).
        """
        if not rows:
            return after, skip
        counted = sum(size for *_, size in parsed)
        row, read = self._tail
        if after == row:
            self._tail = (rows[-1][0], read + counted)
        return rows[-1][0], skip - counted

    def _document_rows(self, after: int) -> Coroutine[Any, Any, list[DocumentRow]]:
        from ._queries import fetch_documents

        db = _database(self.location)
        return fetch_documents(db, self.uid, after=after, limit=_DOCUMENTS_PAGE)

    def replay(self, *callbacks: Callable[[str, dict[str, Any]], Any]) -> None:
        """Send every document, in order, to each ``callback(name, doc)``."""
        for name, doc in self.documents():
            for callback in callbacks:
                callback(name, doc)

    def __repr__(self) -> str:
        plan = self.start.get("plan_name", "?")
        return f"<Run scan_id={self.scan_id} uid={self.uid[:8]} plan={plan} {self.exit_status}>"


class Stream:
    """One stream of a run (``run.primary``): its descriptors and its data."""

    def __init__(self, run: Run, name: str) -> None:
        self.run = run
        self.name = name

    @property
    def descriptors(self) -> list[dict[str, Any]]:
        """The stream's Event Descriptors, in order."""
        return [loads(body) for name, body in self.run._descriptor_rows() if name == self.name]  # pyright: ignore[reportPrivateUsage]

    @property
    def data_keys(self) -> dict[str, dict[str, Any]]:
        """What each data key is (latest descriptor wins)."""
        keys: dict[str, dict[str, Any]] = {}
        for descriptor in self.descriptors:
            keys.update(descriptor.get("data_keys", {}))
        return keys

    @property
    def config(self) -> dict[str, dict[str, Any]]:
        """Each device's configuration values when the stream began."""
        descriptors = self.descriptors
        if not descriptors:
            return {}
        return {
            obj: dict(conf.get("data", {}))
            for obj, conf in descriptors[0].get("configuration", {}).items()
        }

    def read(self) -> StreamData:
        """The stream's events as arrays (see :class:`StreamData`)."""
        from ._queries import fetch_documents

        bodies = [body for name, body in self.run._descriptor_rows() if name == self.name]  # pyright: ignore[reportPrivateUsage]
        uids = [loads(body)["uid"] for body in bodies]
        db = _database(self.run.location)

        async def fetch() -> tuple[list[Any], list[Any]]:
            rows = await fetch_documents(db, self.run.uid, names=EVENT_ROWS, descriptors=uids)
            resources = await fetch_documents(db, self.run.uid, names=["stream_resource"])
            return rows, resources

        rows, resource_rows = _run(fetch())
        resources = {doc["uid"]: doc for doc in (loads(r[3]) for r in resource_rows)}
        return build_stream_data(self.name, bodies, rows, resources)

    def to_pandas(self, arrays: bool = False) -> Any:
        """``read().to_pandas(arrays)``."""
        return self.read().to_pandas(arrays)

    def to_xarray(self) -> Any:
        """``read().to_xarray()``."""
        return self.read().to_xarray()

    def __repr__(self) -> str:
        return f"<Stream {self.name!r} of run {self.run.uid[:8]}: keys {list(self.data_keys)}>"


def catalog_for(spec: object) -> Catalog | None:
    """The catalog of a ``RunEngine(catalog=spec)``: see :class:`~acq.RunEngine`.

    ``"default"`` is the default location; None is none; a URL or path, a
    :class:`DocumentStore` or a :class:`Catalog` are used as given. Engines given the
    same location share one store (one writer).

    The location is checked here, once, before any plan runs: a SQLite file with the
    file system alone (cheap: SQLAlchemy is not imported), a server by connecting.

    Raises:
        CatalogError: the catalog cannot be written there; the message says why and
            what to do.
    """
    if spec is None:
        return None
    if isinstance(spec, Catalog | DocumentStore):
        _check_writable(spec.location)
        return spec if isinstance(spec, Catalog) else Catalog(store=spec)
    if isinstance(spec, str) and spec == "default":
        where = default_location()
    elif isinstance(spec, str | os.PathLike | Location):
        where = spec if isinstance(spec, Location) else location(spec)  # pyright: ignore[reportUnknownArgumentType]
    else:
        raise TypeError(
            "catalog= takes a URL or path, a DocumentStore, a Catalog, 'default' or None; "
            f"got {spec!r}"
        )
    _check_writable(where)
    return Catalog(store=shared_store(where))


def _opened_here(where: Location) -> bool:
    """Has this process opened the database at ``where`` (see ``check_location``)?"""
    module = sys.modules.get(f"{__package__}._database")  # not imported: nothing is open
    return module is not None and where in module.database and module.database(where).is_open


def _check_writable(where: Location) -> None:
    """One :class:`CatalogError` (no chained traceback) if runs cannot be stored there."""
    if where.path is not None:
        check_location(where, write=True, opened=_opened_here(where))
        return
    try:
        _run(_database(where).engine(writer=True))  # a server: connect (a short timeout)
    except CatalogError as exc:
        raise CatalogError(str(exc)) from None
