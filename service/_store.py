"""The queue and its history, kept in a database: SQLite by default, PostgreSQL by URL.

Two tables of the service's own (``acq_service_queue``, ``acq_service_history``) in the
catalog's database. Every change is one transaction; an item moves from the queue to the
history in the same transaction that records its result. An item marked running when
the process died is found when the store opens again and recorded in the history as
``interrupted``: it is not run again by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncGenerator, Sequence
from typing import Any, Literal

from sqlalchemy import (
    Column,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    delete,
    func,
    insert,
    select,
)
from sqlalchemy import update as sql_update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from ._plans import ItemError

__all__ = ["DEFAULT_MODE", "QueueStore", "UnknownItem", "database_url"]

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
_SETTINGS = Table(
    "acq_service_settings",
    _META,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),  # JSON
)
_QUEUED = "queued"
_RUNNING = "running"
DEFAULT_MODE = {"loop": False, "ignore_failures": False}
Item = dict[str, Any]


class UnknownItem(ItemError):
    """No queued item has the uid (or the position) asked for."""


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
        self.mode: dict[str, bool] = dict(DEFAULT_MODE)
        """The queue's mode (queueserver's ``plan_queue_mode``), kept in the database."""
        self._sizes: tuple[int, int] | None = None  # counted once per change, not per status
        self._changes = 0

    @contextlib.asynccontextmanager
    async def _change(self) -> AsyncGenerator[AsyncConnection]:
        """One transaction changing the queue or history, after the ones before it."""
        async with self._lock:
            try:
                async with self._engine.begin() as conn:
                    yield conn
            finally:
                self._changes += 1
                self._sizes = None

    async def open(self) -> list[Item]:
        """Create the tables if needed; record items left running as interrupted (returned)."""
        async with self._change() as conn:
            await conn.run_sync(_META.create_all)
            rows = await conn.execute(select(_QUEUE.c.item).where(_QUEUE.c.state == _RUNNING))
            left = [json.loads(r[0]) for r in rows]
            for item in left:
                item.pop("properties", None)
                item["result"] = _result(
                    "interrupted", msg="the service stopped while this item ran"
                )
                await _to_history(conn, item)
            row = await conn.execute(select(_SETTINGS.c.value).where(_SETTINGS.c.key == "mode"))
            saved = row.scalar_one_or_none()
            self.mode = {**DEFAULT_MODE, **(json.loads(saved) if saved else {})}
            return left

    async def save_mode(self, mode: dict[str, bool]) -> None:
        """Keep the queue's mode (it survives a restart)."""
        async with self._change() as conn:
            await conn.execute(delete(_SETTINGS).where(_SETTINGS.c.key == "mode"))
            await conn.execute(insert(_SETTINGS).values(key="mode", value=json.dumps(mode)))
        self.mode = dict(mode)

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
        return await self.add_batch([item], pos=pos, before=before, after=after)

    async def add_batch(self, items: Sequence[Item], *, pos: int | str | None,
                        before: str | None, after: str | None) -> int:  # fmt: skip
        """Insert ``items`` together, in order, where ``add`` would put one; queue size."""
        async with self._change() as conn:
            uids = await _queued_uids(conn)
            index = _insert_index(uids, pos, before, after)
            for offset, item in enumerate(items):
                uids.insert(index + offset, item["item_uid"])
                await _insert(conn, item, _QUEUED)
            await _renumber(conn, uids)
            return len(uids)

    async def replace(self, uid: str, item: Item) -> int:
        """Put ``item`` in the place of the queued item ``uid`` (its uid may differ)."""
        async with self._change() as conn:
            if uid not in await _queued_uids(conn):
                raise UnknownItem(f"item.item_uid: no queued item {uid!r}")
            await conn.execute(
                sql_update(_QUEUE)
                .where(_QUEUE.c.item_uid == uid)
                .values(item_uid=item["item_uid"], item=json.dumps(item))
            )
            return len(await _queued_uids(conn))

    async def move(self, batch: Sequence[str] | None, *, pos: int | str | None = None,
                   pos_dest: int | str | None, before: str | None, after: str | None,
                   reorder: bool = False) -> tuple[list[Item], int]:  # fmt: skip
        """Move the queued items ``batch`` (or the one at ``pos``) together.

        They keep the order of ``batch``, or their order in the queue if ``reorder``.
        """
        async with self._change() as conn:
            uids = await _queued_uids(conn)
            if batch is None:
                if not uids:
                    raise UnknownItem("pos: the queue is empty")
                batch = [uids[_index(uids, pos)]]
            if reorder:
                batch = sorted(batch, key=lambda u: uids.index(u) if u in uids else -1)
            await _renumber(conn, _moved(uids, list(batch), pos_dest, before, after))
            rows = await conn.execute(
                select(_QUEUE.c.item_uid, _QUEUE.c.item).where(_QUEUE.c.item_uid.in_(batch))
            )
            found = {uid: json.loads(text) for uid, text in rows}
            return [found[uid] for uid in batch], len(uids)

    async def start_now(self, item: Item) -> None:
        """Record ``item`` as running without queueing it (an item executed at once)."""
        async with self._change() as conn:
            await _insert(conn, item, _RUNNING, position=-1)

    async def remove(self, *, pos: int | str | None, uid: str | None) -> tuple[Item, int]:
        """Take one queued item out (by uid, else by position, default the back)."""
        async with self._change() as conn:
            uids = await _queued_uids(conn)
            target = uid if uid is not None else uids[_index(uids, pos)] if uids else None
            if target is None or target not in uids:
                raise UnknownItem(f"uid: no queued item {uid!r}" if uid else "the queue is empty")
            (item,) = await _delete(conn, [target])
            return item, len(uids) - 1

    async def remove_batch(
        self, batch: Sequence[str], *, ignore_missing: bool
    ) -> tuple[list[Item], int]:
        """Take the queued items ``batch`` out (all or none unless ``ignore_missing``)."""
        async with self._change() as conn:
            uids = await _queued_uids(conn)
            missing = [u for u in batch if u not in uids]
            if missing and not ignore_missing:
                raise UnknownItem(f"uids: no queued items {missing!r}")
            taken = [u for u in dict.fromkeys(batch) if u in uids]
            return await _delete(conn, taken), len(uids) - len(taken)

    async def clear(self) -> None:
        """Remove every queued item (not the running one)."""
        async with self._change() as conn:
            await conn.execute(delete(_QUEUE).where(_QUEUE.c.state == _QUEUED))

    async def clear_history(self) -> None:
        """Forget every finished item."""
        async with self._change() as conn:
            await conn.execute(delete(_HISTORY))

    async def take_next(self) -> Item | None:
        """Mark the front item running and return it; None if the queue is empty."""
        async with self._change() as conn:
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

    async def finish(self, item: Item, result: dict[str, Any], *,
                     requeue: Literal["front", "back"] | None = None) -> Item:  # fmt: skip
        """Move the running ``item`` to the history with its ``result``, in one transaction.

        ``requeue``: a copy of the item with a new uid goes back into the queue, at its
        front (a failed item, as queueserver does) or its back (the queue's loop mode).
        """
        done = {k: v for k, v in item.items() if k != "properties"}
        done["result"] = result
        async with self._change() as conn:
            await conn.execute(delete(_QUEUE).where(_QUEUE.c.item_uid == item["item_uid"]))
            await _to_history(conn, done)
            if requeue is not None:
                again = {k: v for k, v in done.items() if k != "result"}
                again["item_uid"] = str(uuid.uuid4())
                uids = await _queued_uids(conn)
                uids.insert(0 if requeue == "front" else len(uids), again["item_uid"])
                await _insert(conn, again, _QUEUED)
                await _renumber(conn, uids)
        return done

    async def sizes(self) -> tuple[int, int]:
        """How many items are queued, and how many are in the history.

        Counted after each change and kept: ``status``, which clients poll many times a
        second, costs no query.
        """
        if self._sizes is not None:
            return self._sizes
        changes = self._changes
        async with self._engine.connect() as conn:
            queued = await conn.scalar(
                select(func.count()).select_from(_QUEUE).where(_QUEUE.c.state == _QUEUED)
            )
            history = await conn.scalar(select(func.count()).select_from(_HISTORY))
        sizes = int(queued or 0), int(history or 0)
        if changes == self._changes:  # no change committed meanwhile: the counts hold
            self._sizes = sizes
        return sizes


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


async def _insert(conn: AsyncConnection, item: Item, state: str, position: int = 0) -> None:
    await conn.execute(
        insert(_QUEUE).values(
            item_uid=item["item_uid"], position=position, state=state, item=json.dumps(item)
        )
    )


async def _delete(conn: AsyncConnection, uids: Sequence[str]) -> list[Item]:
    """Delete the queue's items ``uids``; they are returned, in that order."""
    rows = await conn.execute(
        select(_QUEUE.c.item_uid, _QUEUE.c.item).where(_QUEUE.c.item_uid.in_(uids))
    )
    found = {uid: json.loads(text) for uid, text in rows}
    await conn.execute(delete(_QUEUE).where(_QUEUE.c.item_uid.in_(uids)))
    return [found[uid] for uid in uids]


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


def _moved(uids: list[str], batch: list[str], pos_dest: int | str | None,
           before: str | None, after: str | None) -> list[str]:  # fmt: skip
    """The queue's order once ``batch`` is moved: to ``pos_dest`` or next to another item."""
    if sum(x is not None for x in (pos_dest, before, after)) != 1:
        raise ItemError("pos_dest, before_uid, after_uid: give exactly one of them")
    if len(set(batch)) != len(batch):
        raise ItemError("uids: an item is listed more than once")
    missing = [u for u in batch if u not in uids]
    if missing:
        raise UnknownItem(f"uids: no queued items {missing!r}")
    rest = [u for u in uids if u not in batch]
    for uid, shift, name in ((before, 0, "before_uid"), (after, 1, "after_uid")):
        if uid is not None:
            if uid in batch:
                raise ItemError(f"{name}: the item {uid!r} is one of those moved")
            if uid not in rest:
                raise UnknownItem(f"{name}: no queued item {uid!r}")
            index = rest.index(uid) + shift
            return rest[:index] + batch + rest[index:]
    if pos_dest == "front":
        index = 0
    elif pos_dest == "back":
        index = len(rest)
    else:
        if isinstance(pos_dest, bool) or not isinstance(pos_dest, int):
            raise ItemError(f"pos_dest: an integer, 'front' or 'back', not {pos_dest!r}")
        if not -len(uids) <= pos_dest < len(uids):
            raise ItemError(f"pos_dest: no queued item at {pos_dest} (the queue has {len(uids)})")
        index = min(pos_dest % len(uids), len(rest))
    return rest[:index] + batch + rest[index:]
