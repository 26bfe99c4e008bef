"""The relay's view of the catalog database: what is new, and what each sink has taken.

The relay reads the catalog's tables (``runs``, ``documents``; read-only: their layout is
described in ``acq/catalog/_schema.py``) and keeps one table of its own in the same
database, ``acq_relay_cursor``: per sink (its URL, or a name given) and per run it has
begun, how many of the run's documents the sink acknowledged and whether that was the
Stop. Rows of finished runs below the oldest unfinished one are pruned; the highest
finished one stays, so the relay knows where to go on from.

It has its own small SQLAlchemy engine (one connection), on the relay's event loop.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    and_,
    delete,
    func,
    select,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from acq.catalog import Location

__all__ = ["Cursor", "RunState", "cursor_table"]

_metadata = MetaData()

cursor_table = Table(
    "acq_relay_cursor",
    _metadata,
    Column("sink", String(200), primary_key=True),
    Column("run_id", Integer, primary_key=True, autoincrement=False),
    Column("run_uid", String(80), nullable=False),
    Column("sent", Integer, nullable=False),  # documents acknowledged
    Column("done", Boolean, nullable=False),  # the Stop was acknowledged
    Column("updated", Float(asdecimal=False), nullable=False),
)

_LOCK_TIMEOUT = 60.0  # seconds a SQLite connection waits for the engine's writer
_RUNS_PAGE = 500  # runs looked at per poll


@dataclass
class RunState:
    """Where the relay is in one run."""

    run_id: int
    uid: str
    sent: int = 0  # documents acknowledged by the sink
    last_seq: int = -1  # the highest document-log row seen (rows are only ever appended)
    done: bool = False


class Cursor:
    """The relay's queries, for one catalog database and one sink name."""

    def __init__(self, where: Location, sink: str) -> None:
        self.where = where
        self.sink = sink
        self._engine: AsyncEngine | None = None

    async def open(self) -> None:
        """Connect, and create the cursor table if it is not there."""
        if self.where.dialect == "sqlite":
            engine = create_async_engine(
                self.where.url, connect_args={"timeout": _LOCK_TIMEOUT}, pool_size=1
            )
        else:
            engine = create_async_engine(self.where.url, pool_size=1, max_overflow=1)
        self._engine = engine
        async with engine.begin() as conn:
            await conn.run_sync(_metadata.create_all)

    async def close(self) -> None:
        """Return the connection."""
        if self._engine is not None:
            await self._engine.dispose()
            self._engine = None

    @property
    def engine(self) -> AsyncEngine:
        """The open engine (call :meth:`open` first)."""
        if self._engine is None:
            raise RuntimeError("the relay's cursor is not open")
        return self._engine

    async def load(self) -> tuple[int, dict[int, RunState]]:
        """``(floor, runs past it)``: every run with id <= floor was delivered."""
        c = cursor_table.c
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(c.run_id, c.run_uid, c.sent, c.done).where(c.sink == self.sink)
                )
            ).all()
        floor = _floor([(r.run_id, bool(r.done)) for r in rows])
        states = {
            r.run_id: RunState(r.run_id, r.run_uid, r.sent, done=bool(r.done))
            for r in rows
            if r.run_id > floor
        }
        return floor, states

    async def changes(self, after: int) -> list[tuple[int, str, int]]:
        """``(run id, uid, highest document row)`` of the unfinished runs past ``after``.

        In id order; one query (a primary-key lookup per run): the cost of a poll.
        """
        runs = text(
            "SELECT r.id, r.uid, MAX(d.seq) FROM runs r JOIN documents d ON d.run_uid = r.uid "
            "LEFT JOIN acq_relay_cursor c ON c.run_id = r.id AND c.sink = :sink "
            "WHERE r.id > :after AND (c.done IS NULL OR c.done = :no) "
            "GROUP BY r.id, r.uid ORDER BY r.id LIMIT :limit"
        )
        params = {"after": after, "limit": _RUNS_PAGE, "sink": self.sink, "no": False}
        async with self.engine.connect() as conn:
            rows = (await conn.execute(runs, params)).all()
        return [(int(r[0]), str(r[1]), int(r[2])) for r in rows]

    async def acknowledge(self, states: list[RunState]) -> None:
        """Record, in one transaction, what the sink took of these runs; prune finished rows."""
        now = time.time()
        values = [
            {
                "sink": self.sink,
                "run_id": s.run_id,
                "run_uid": s.uid,
                "sent": s.sent,
                "done": s.done,
                "updated": now,
            }
            for s in states
        ]
        upsert: Any = (postgresql if self.where.dialect == "postgresql" else sqlite).insert(
            cursor_table
        )
        upsert = upsert.on_conflict_do_update(
            index_elements=["sink", "run_id"],
            set_={
                "sent": upsert.excluded.sent,
                "done": upsert.excluded.done,
                "updated": upsert.excluded.updated,
            },
        )
        c = cursor_table.c
        async with self.engine.begin() as conn:
            await conn.execute(upsert, values)
            oldest_open = (
                await conn.execute(
                    select(func.min(c.run_id)).where(c.sink == self.sink, c.done.is_(False))
                )
            ).scalar()
            if oldest_open is None:
                oldest_open = (
                    await conn.execute(select(func.max(c.run_id)).where(c.sink == self.sink))
                ).scalar()
            await conn.execute(
                delete(cursor_table).where(
                    and_(c.sink == self.sink, c.done.is_(True), c.run_id < oldest_open)
                )
            )


def _floor(rows: list[tuple[int, bool]]) -> int:
    """The highest run id below which (and at which) every run is delivered."""
    unfinished = [run_id for run_id, done in rows if not done]
    if unfinished:
        return min(unfinished) - 1
    return max((run_id for run_id, _ in rows), default=0)
