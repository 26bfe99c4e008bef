"""The queue and its history, kept in a database: SQLite by default, PostgreSQL by URL.

Two tables of the service's own (``acq_service_queue``, ``acq_service_history``) in the
catalog's database. Every change is one transaction; an item moves from the queue to the
history in the same transaction that records its result. An item marked running when
the process died is found when the store opens again and recorded in the history as
``interrupted``: it is not run again by itself.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Column, Integer, MetaData, String, Table, Text, delete, insert, select
from sqlalchemy import update as sql_update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from ._plans import ItemError

__all__ = ["QueueStore", "database_url"]

_META = MetaData()
_QUEUE = Table(
    "acq_service_queue",
    _META,
    Column("item_uid", String(64), primary_key=True),
    Column("position", Integer, nullable=False),
    Column("state", String(16), nullable=False),  # "queued" or "running"
    Column("item", Text, nullable=False),  # the item as JSON
)
_HISTORY = Table(
    "acq_service_history",
    _META,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("item_uid", String(64), nullable=False),
    Column("item", Text, nullable=False),  # the item and its "result", as JSON
)
_QUEUED = "queued"
_RUNNING = "running"
Item = dict[str, Any]


def database_url(spec: str) -> str:
    """An async SQLAlchemy URL: ``sqlite:///p``, a plain path, or ``postgresql://...``."""
    if "://" not in spec:
        return f"sqlite+aiosqlite:///{spec}"
    scheme, rest = spec.split("://", 1)
    drivers = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg"}
    return f"{drivers.get(scheme, scheme)}://{rest}"


class QueueStore:
    """The persistent queue and history; one instance per service (its lock orders changes)."""

    def __init__(self, url: str) -> None:
        self.url = url
        args: dict[str, Any] = {"timeout": 30} if url.startswith("sqlite") else {}
        self._engine: AsyncEngine = create_async_engine(url, connect_args=args)
        self._lock = asyncio.Lock()

    async def open(self) -> list[Item]:
        """Create the tables if needed; record items left running as interrupted (returned)."""
        async with self._lock, self._engine.begin() as conn:
            await conn.run_sync(_META.create_all)
            rows = await conn.execute(select(_QUEUE.c.item).where(_QUEUE.c.state == _RUNNING))
            left = [json.loads(r[0]) for r in rows]
            for item in left:
                item["result"] = _result(
                    "interrupted", msg="the service stopped while this item ran"
                )
                await _to_history(conn, item)
            return left

    async def close(self) -> None:
        """Release the database connections."""
        await self._engine.dispose()

    async def queue(self) -> tuple[list[Item], Item]:
        """The queued items in order, and the running item (``{}`` if none)."""
        async with self._engine.connect() as conn:
            rows = await conn.execute(
                select(_QUEUE.c.item, _QUEUE.c.state).order_by(_QUEUE.c.position)
            )
            running: Item = {}
            items: list[Item] = []
            for text, state in rows:
                if state == _RUNNING:
                    running = json.loads(text)
                else:
                    items.append(json.loads(text))
            return items, running

    async def history(self) -> list[Item]:
        """Every finished item, oldest first, each with its ``result``."""
        async with self._engine.connect() as conn:
            rows = await conn.execute(select(_HISTORY.c.item).order_by(_HISTORY.c.id))
            return [json.loads(r[0]) for r in rows]

    async def add(self, item: Item, *, pos: int | str | None, before: str | None,
                  after: str | None) -> int:  # fmt: skip
        """Insert ``item`` (``pos``: index as ``list.insert``, "front" or "back"); queue size."""
        async with self._lock, self._engine.begin() as conn:
            uids = await _queued_uids(conn)
            index = _insert_index(uids, pos, before, after)
            uids.insert(index, item["item_uid"])
            await conn.execute(
                insert(_QUEUE).values(
                    item_uid=item["item_uid"], position=0, state=_QUEUED, item=json.dumps(item)
                )
            )
            await _renumber(conn, uids)
            return len(uids)

    async def remove(self, *, pos: int | str | None, uid: str | None) -> tuple[Item, int]:
        """Take one queued item out (by uid, else by position, default the back)."""
        async with self._lock, self._engine.begin() as conn:
            uids = await _queued_uids(conn)
            target = uid if uid is not None else uids[_index(uids, pos)] if uids else None
            if target is None or target not in uids:
                raise ItemError(f"uid: no queued item {uid!r}" if uid else "the queue is empty")
            row = await conn.execute(select(_QUEUE.c.item).where(_QUEUE.c.item_uid == target))
            item: Item = json.loads(row.scalar_one())
            await conn.execute(delete(_QUEUE).where(_QUEUE.c.item_uid == target))
            return item, len(uids) - 1

    async def clear(self) -> None:
        """Remove every queued item (not the running one)."""
        async with self._lock, self._engine.begin() as conn:
            await conn.execute(delete(_QUEUE).where(_QUEUE.c.state == _QUEUED))

    async def clear_history(self) -> None:
        """Forget every finished item."""
        async with self._lock, self._engine.begin() as conn:
            await conn.execute(delete(_HISTORY))

    async def take_next(self) -> Item | None:
        """Mark the front item running and return it; None if the queue is empty."""
        async with self._lock, self._engine.begin() as conn:
            row = await conn.execute(
                select(_QUEUE.c.item_uid, _QUEUE.c.item)
                .where(_QUEUE.c.state == _QUEUED)
                .order_by(_QUEUE.c.position)
                .limit(1)
            )
            found = row.first()
            if found is None:
                return None
            item: Item = json.loads(found[1])
            item["properties"] = {"time_start": time.time()}
            await conn.execute(
                sql_update(_QUEUE)
                .where(_QUEUE.c.item_uid == found[0])
                .values(state=_RUNNING, item=json.dumps(item))
            )
            return item

    async def finish(self, item: Item, result: dict[str, Any]) -> Item:
        """Move the running ``item`` to the history with its ``result``, in one transaction."""
        done = {k: v for k, v in item.items() if k != "properties"}
        done["result"] = result
        async with self._lock, self._engine.begin() as conn:
            await conn.execute(delete(_QUEUE).where(_QUEUE.c.item_uid == item["item_uid"]))
            await _to_history(conn, done)
        return done

    async def sizes(self) -> tuple[int, int]:
        """How many items are queued, and how many are in the history."""
        async with self._engine.connect() as conn:
            queued = await conn.execute(select(_QUEUE.c.item_uid).where(_QUEUE.c.state == _QUEUED))
            history = await conn.execute(select(_HISTORY.c.id))
            return len(queued.all()), len(history.all())


def _result(
    exit_status: str,
    *,
    msg: str = "",
    run_uids: Sequence[str] = (),
    scan_ids: Sequence[int] = (),
    time_start: float | None = None,
) -> dict[str, Any]:
    now = time.time()
    return {
        "exit_status": exit_status,
        "run_uids": list(run_uids),
        "scan_ids": list(scan_ids),
        "time_start": now if time_start is None else time_start,
        "time_stop": now,
        "msg": msg,
        "traceback": "",
    }


result = _result  # the record of one finished item, as queueserver's history holds it


async def _to_history(conn: AsyncConnection, item: Item) -> None:
    await conn.execute(delete(_QUEUE).where(_QUEUE.c.item_uid == item["item_uid"]))
    await conn.execute(insert(_HISTORY).values(item_uid=item["item_uid"], item=json.dumps(item)))


async def _queued_uids(conn: AsyncConnection) -> list[str]:
    rows = await conn.execute(
        select(_QUEUE.c.item_uid).where(_QUEUE.c.state == _QUEUED).order_by(_QUEUE.c.position)
    )
    return [r[0] for r in rows]


async def _renumber(conn: AsyncConnection, uids: list[str]) -> None:
    for position, uid in enumerate(uids):
        await conn.execute(
            sql_update(_QUEUE).where(_QUEUE.c.item_uid == uid).values(position=position)
        )


def _index(uids: list[str], pos: int | str | None) -> int:
    """The index of an existing item: ``pos`` an int (negative from the back), front, back."""
    if pos is None or pos == "back":
        return len(uids) - 1
    if pos == "front":
        return 0
    if not isinstance(pos, int) or not -len(uids) <= pos < len(uids):
        raise ItemError(f"pos: no queued item at {pos!r} (the queue has {len(uids)})")
    return pos


def _insert_index(uids: list[str], pos: int | str | None, before: str | None,
                  after: str | None) -> int:  # fmt: skip
    if sum(x is not None for x in (pos, before, after)) > 1:
        raise ItemError("pos, before_uid, after_uid: give at most one of them")
    for uid, shift in ((before, 0), (after, 1)):
        if uid is not None:
            if uid not in uids:
                raise ItemError(
                    f"{'before' if shift == 0 else 'after'}_uid: no queued item {uid!r}"
                )
            return uids.index(uid) + shift
    if pos is None or pos == "back":
        return len(uids)
    if pos == "front":
        return 0
    if isinstance(pos, bool) or not isinstance(pos, int):
        raise ItemError(f"pos: must be an integer, 'front' or 'back', not {pos!r}")
    return pos if pos >= 0 else max(len(uids) + pos, 0)
