"""One catalog database: its SQLAlchemy engines on the I/O loop, and its schema.

Each database has two asyncio engines, created on first use on the catalog's I/O loop
(``_io.py``): a *writer* for the store and a *reader* for catalogs. On SQLite the writer
begins every transaction with ``BEGIN IMMEDIATE`` (it takes the write lock up front, so
two processes writing one file wait for each other instead of failing), the database
runs in WAL mode (readers never block the writer) with ``synchronous=FULL`` (a commit
is on disk when it returns) and waits up to a minute for a lock. On PostgreSQL both are
plain asyncpg engines that give up connecting after ``CONNECT_TIMEOUT`` seconds (an
unreachable server is one clear :class:`CatalogError`, not a minute's wait).

Databases are shared per URL within a process (:func:`database`); :meth:`close` only
returns their connections (they reconnect when used again), and every one is closed at
interpreter exit.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from sqlalchemy import event, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from ._codec import index_dumps, loads
from ._config import CatalogError, Location, PerLocation
from ._io import io_thread, on_exit
from ._schema import SCHEMA_VERSION, catalog_meta, metadata

__all__ = ["CONNECT_TIMEOUT", "Database", "database"]

CONNECT_TIMEOUT = 5.0
"""Seconds a PostgreSQL connection attempt may take before the catalog gives up."""

_LOCK_TIMEOUT = 60.0  # seconds a SQLite connection waits for another writer
_SCHEMA_LOCK = 0x61637163  # PostgreSQL advisory lock held while creating the tables


class Database:
    """The engines of one catalog database (use :func:`database` to get one)."""

    def __init__(self, location: Location) -> None:
        self.location = location
        self.dialect = location.dialect
        self._engines: dict[bool, AsyncEngine] = {}
        self._ready = False
        self._schema_lock: asyncio.Lock | None = None

    @property
    def is_open(self) -> bool:
        """Does this process hold connections (or engines that may) to the database?"""
        return bool(self._engines)

    async def engine(self, writer: bool = False) -> AsyncEngine:
        """The writer or reader engine, tables created (call on the I/O loop)."""
        engine = self._engines.get(writer)
        if engine is None:
            engine = self._engines[writer] = self._create(writer)
        if not self._ready:
            if self._schema_lock is None:
                self._schema_lock = asyncio.Lock()
            async with self._schema_lock:
                if not self._ready:
                    await self._ensure_schema()
                    self._ready = True
        return engine

    def _create(self, writer: bool) -> AsyncEngine:
        options: dict[str, Any] = {"json_serializer": index_dumps, "json_deserializer": loads}
        if self.dialect == "sqlite":
            path = self.location.path
            if path is not None:
                try:
                    path.parent.mkdir(parents=True, exist_ok=True)
                except OSError as exc:
                    raise CatalogError(
                        f"cannot create the folder of the catalog {self.location}: {exc}"
                    ) from exc
            engine = create_async_engine(
                self.location.url, connect_args={"timeout": _LOCK_TIMEOUT}, **options
            )
            _sqlite_events(engine, "BEGIN IMMEDIATE" if writer else "BEGIN")
            return engine
        return create_async_engine(
            self.location.url,
            pool_size=2,
            connect_args={"timeout": CONNECT_TIMEOUT},
            **options,
        )

    async def _ensure_schema(self) -> None:
        engine = self._engines.get(True)
        if engine is None:
            engine = self._engines[True] = self._create(True)
        try:
            async with engine.begin() as conn:
                if self.dialect == "postgresql":
                    await conn.execute(
                        text("SELECT pg_advisory_xact_lock(:k)"), {"k": _SCHEMA_LOCK}
                    )
                await conn.run_sync(metadata.create_all)
                found = (
                    await conn.execute(
                        select(catalog_meta.c.value).where(catalog_meta.c.key == "schema")
                    )
                ).scalar()
                if found is None:
                    await conn.execute(
                        insert(catalog_meta).values(key="schema", value=str(SCHEMA_VERSION))
                    )
                elif found == "1":
                    await _upgrade_from_1(conn, self.dialect)
                    found = str(SCHEMA_VERSION)
        except CatalogError:
            raise
        except Exception as exc:
            raise CatalogError(f"cannot open the catalog {self.location}: {_why(exc)}") from exc
        if found is not None and found != str(SCHEMA_VERSION):
            raise CatalogError(
                f"the catalog {self.location} has schema version {found}, this acq knows "
                f"version {SCHEMA_VERSION}: use the acq version that wrote it"
            )

    async def dispose(self) -> None:
        """Close every pooled connection (they are made again when needed)."""
        engines = list(self._engines.values())
        self._engines.clear()
        for engine in engines:
            await engine.dispose()

    def close(self) -> None:
        """:meth:`dispose`, from any thread but the I/O thread."""
        if self._engines:
            io_thread().run(self.dispose())

    def __repr__(self) -> str:
        return f"Database({str(self.location)!r})"


def _why(exc: Exception) -> str:
    """A failure to open a database in one line, with what to check."""
    cause = getattr(exc, "orig", None) or exc
    if isinstance(cause, TimeoutError):
        return (
            f"no answer from the server within {CONNECT_TIMEOUT:g} s: is it running, and "
            "are the host and port right?"
        )
    text = str(cause).splitlines()[0] if str(cause) else type(cause).__name__
    if isinstance(cause, OSError):
        return f"{text}: is the server running, and are the host and port right?"
    return text


async def _upgrade_from_1(conn: Any, dialect: str) -> None:
    """Version 1 to 2: the document log gets its ``columns`` blob (old rows keep JSON)."""
    blob = "BYTEA" if dialect == "postgresql" else "BLOB"
    await conn.execute(text(f"ALTER TABLE documents ADD COLUMN columns {blob}"))
    await conn.execute(
        update(catalog_meta).where(catalog_meta.c.key == "schema").values(value=str(SCHEMA_VERSION))
    )


def _casefold(value: Any) -> Any:
    return value.casefold() if isinstance(value, str) else value


_WAL_TRIES = 100  # x 50 ms: how long a new file waits for another process to let go


def _wal(cursor: Any) -> None:
    """Put the database in WAL mode (once per file; it stays so).

    Switching needs the file to itself, and SQLite answers "database is locked" at once
    (no busy timeout) while another process holds it -- two processes opening a new
    catalog together: so look first, and wait a little for the other one.
    """
    for _ in range(_WAL_TRIES):
        try:
            cursor.execute("PRAGMA journal_mode")
            if str(cursor.fetchone()[0]).lower() == "wal":
                return
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except Exception as exc:
            if "locked" not in str(exc):
                raise
        time.sleep(0.05)
    cursor.execute("PRAGMA journal_mode=WAL")  # a last try: its error says what is wrong


def _sqlite_events(engine: AsyncEngine, begin: str) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:  # pyright: ignore[reportUnusedFunction]
        dbapi_connection.isolation_level = None  # transactions begin in _on_begin
        cursor = dbapi_connection.cursor()
        _wal(cursor)
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.close()
        dbapi_connection.create_function("acq_casefold", 1, _casefold, deterministic=True)

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:  # pyright: ignore[reportUnusedFunction]
        conn.exec_driver_sql(begin)


database = PerLocation(Database)
"""The process's :class:`Database` for a location."""


def _close_all() -> None:
    for db in database.values():
        if db._engines:  # pyright: ignore[reportPrivateUsage]
            io_thread().run(db.dispose(), timeout=30)


def _forget_in_child() -> None:
    for db in database.values():
        db._engines.clear()  # pyright: ignore[reportPrivateUsage] -- the parent's connections
        db._schema_lock = None  # pyright: ignore[reportPrivateUsage]


on_exit(_close_all, last=True)
os.register_at_fork(after_in_child=_forget_in_child)
