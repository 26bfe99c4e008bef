"""Scan ids from the catalog: the runs it numbers never share a scan_id.

A :class:`~acq.RunEngine` with a catalog and no ``scan_id_source`` of its own numbers
each run here as it opens (:meth:`Catalog.next_scan_id <acq.catalog.Catalog.next_scan_id>`).
The rule::

    scan_id = max(highest reserved, highest stored, RE.md['scan_id']) + 1

where *highest reserved* is the last number this catalog handed out, *highest stored*
is ``max(runs.scan_id)`` (runs stored before reservations existed, or numbered by a
``scan_id_source`` or by the plan), and a missing ``RE.md['scan_id']`` counts as 0 (one
that is not an integer is a :class:`~acq.MetadataError`, as without a catalog). The
engine then writes the number back to ``RE.md['scan_id']`` as always. So two engines
in one process, engines in several processes, and a new engine after a restart all
continue one sequence, and ``catalog[42]`` names one run. A number is never handed out
twice: one whose run was refused as it opened (e.g. by ``RE.md_validator``), or whose
process died before its Start was stored, stays a gap.

The reservation is one short transaction, run on the catalog's I/O loop (``_io.py``)
so that the engine's loop never waits on the database. It keeps the last number in
``catalog_meta`` (key ``last_scan_id``) and looks at ``max(runs.scan_id)`` in the same
transaction; two reservations never overlap:

* SQLite: the writer connection begins every transaction with ``BEGIN IMMEDIATE``
  (``_database.py``): the transaction holds the database's write lock from its first
  statement, so reservations -- from any process -- run one after another.
* PostgreSQL: the ``last_scan_id`` row is created once (``INSERT ... ON CONFLICT DO
  NOTHING``) and locked (``SELECT ... FOR UPDATE``) until the transaction commits; a
  concurrent reservation waits for the lock and then reads the new value and a fresh
  ``max(runs.scan_id)`` (in a READ COMMITTED transaction every statement sees what
  was committed before it began).
"""

from __future__ import annotations

import asyncio

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from ._config import CatalogError, Location
from ._database import Database, database
from ._io import io_thread
from ._schema import catalog_meta, runs
from ._writer import short_error

__all__ = ["LAST_SCAN_ID", "reserve_scan_id"]

LAST_SCAN_ID = "last_scan_id"
"""The ``catalog_meta`` key of the last scan_id reserved (decimal text)."""


async def reserve_scan_id(where: Location, at_least: int) -> int:
    """Reserve the next scan_id in the catalog at ``where``; await it on any event loop.

    ``at_least`` is a floor: the engine passes one more than ``RE.md['scan_id']`` (see the
    module docstring for the rule).

    Raises:
        CatalogError: the catalog cannot be opened or written; nothing was reserved.
    """
    return await asyncio.wrap_future(io_thread().submit(_reserve(database(where), at_least)))


async def _reserve(db: Database, at_least: int) -> int:
    """One transaction on the writer engine (on the I/O loop): the next scan_id."""
    try:
        engine = await db.engine(writer=True)
        async with engine.begin() as conn:  # SQLite: BEGIN IMMEDIATE, the write lock
            return await _next(conn, db, at_least)
    except CatalogError:
        raise
    except Exception as exc:
        raise CatalogError(
            f"cannot reserve a scan_id in the catalog {db.location}: {short_error(exc)}; no run "
            "was opened (give the RunEngine a scan_id_source, or catalog=None, to number "
            "runs without it)"
        ) from exc


async def _next(conn: AsyncConnection, db: Database, at_least: int) -> int:
    insert = postgresql_insert if db.dialect == "postgresql" else sqlite_insert
    await conn.execute(
        insert(catalog_meta)
        .values(key=LAST_SCAN_ID, value="0")
        .on_conflict_do_nothing(index_elements=[catalog_meta.c.key])
    )
    mine = catalog_meta.c.key == LAST_SCAN_ID
    locked = select(catalog_meta.c.value).where(mine).with_for_update()  # PostgreSQL: row lock
    found = (await conn.execute(locked)).scalar()
    stored = (await conn.execute(select(func.max(runs.c.scan_id)))).scalar()
    try:
        last = int(str(found))
    except ValueError:
        raise CatalogError(
            f"the catalog {db.location} holds {found!r} as its last "
            f"scan_id (table catalog_meta, key {LAST_SCAN_ID!r}): set it to an integer"
        ) from None
    scan_id = max(last + 1, (stored or 0) + 1, at_least)
    await conn.execute(update(catalog_meta).where(mine).values(value=str(scan_id)))
    return scan_id
