"""SQL for reading the catalog: search terms as SQLAlchemy expressions, and fetches.

Every key and value of a search reaches the database as a bound parameter:

* SQLite: a key path is walked with ``json_each`` (one level per part, matching each
  key as data, whatever characters it holds); the predicate looks at the element's
  ``type`` and ``value``.
* PostgreSQL: ``start #> :path`` (the path a ``text[]`` parameter) and ``jsonb_typeof``;
  an equality also asks ``start @> :document`` so that the GIN index narrows the scan.

The fetches run on the I/O loop and return plain rows; decoding documents is left to the
caller's thread.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

from sqlalchemy import (
    Boolean,
    ColumnElement,
    Text,
    and_,
    bindparam,
    case,
    cast,
    exists,
    false,
    func,
    literal,
    not_,
    or_,
    select,
    true,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

from ._codec import index_copy, index_dumps
from ._database import Database
from ._schema import documents, runs
from ._search import (
    And,
    Comparison,
    Contains,
    Exists,
    Includes,
    Not,
    OneOf,
    Or,
    Query,
    TimeRange,
)

__all__ = [
    "DocumentRow",
    "RunRow",
    "count",
    "fetch_runs",
    "by_scan_id",
    "by_uid",
    "fetch_documents",
]

DocumentRow: TypeAlias = tuple[int, str, str | None, str, bytes | None]
"""``(seq, name, descriptor, body, columns)``: one row of a run's document log."""

Predicate = Callable[[Any, Any], ColumnElement[bool]]  # (value, type) -> condition
_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}
_NEWEST_FIRST = (runs.c.time.desc(), runs.c.id.desc())


@dataclass(frozen=True)
class RunRow:
    """One row of ``runs``."""

    id: int
    uid: str
    scan_id: int | None
    time: float
    start: dict[str, Any]
    stop: dict[str, Any] | None


# -- search terms ---------------------------------------------------------------------
def condition(query: Query, dialect: str) -> ColumnElement[bool]:
    """``query`` as a condition on ``runs`` for ``dialect`` ("sqlite" or "postgresql")."""
    build = _sqlite if dialect == "sqlite" else _postgres
    if isinstance(query, And):
        return and_(true(), *(condition(q, dialect) for q in query.parts))
    if isinstance(query, Or):
        return or_(false(), *(condition(q, dialect) for q in query.parts))
    if isinstance(query, Not):
        return not_(condition(query.part, dialect))
    if isinstance(query, TimeRange):
        terms: list[ColumnElement[bool]] = [true()]
        if query.since is not None:
            terms.append(runs.c.time >= query.since)
        if query.until is not None:
            terms.append(runs.c.time < query.until)
        return and_(*terms)
    if isinstance(query, Comparison) and query.path == ("time",):
        if isinstance(query.value, int | float) and not isinstance(query.value, bool):
            return _OPS[query.op](runs.c.time, float(query.value))
        return not_(true()) if query.op != "!=" else true()
    if isinstance(query, Comparison) and query.op == "!=":
        return not_(build(Comparison(query.path, "==", query.value)))
    if isinstance(query, OneOf):
        return or_(false(), *(build(Comparison(query.path, "==", v)) for v in query.values))
    return build(query)


def _typed(op: str, value: Any, types: dict[str, Any]) -> Predicate:
    """A predicate on a JSON element of the given (dialect's) type names."""
    value = index_copy(value)
    compare = _OPS[op]
    if isinstance(value, bool):
        return lambda v, t: t == types["true" if value else "false"]
    if value is None:
        return lambda v, t: t == types["null"]
    if isinstance(value, str):
        return lambda v, t: and_(t == types["text"], compare(v, value))
    if isinstance(value, int | float):
        return lambda v, t: and_(t.in_(types["number"]), compare(v, value))
    return lambda v, t: and_(
        t.in_(types["container"]), func.json(v) == func.json(index_dumps(value))
    )


_SQLITE_TYPES = {
    "true": "true",
    "false": "false",
    "null": "null",
    "text": "text",
    "number": ("integer", "real"),
    "container": ("array", "object"),
}


def _sqlite_each(parent: Any) -> Any:
    return func.json_each(parent).table_valued("key", "value", "type").alias()


def _sqlite_node(path: Sequence[str | int]) -> Any:
    """The element at ``path`` as a ``json_each`` row source (last part not yet matched)."""
    parent: Any = runs.c.start
    for part in path[:-1]:
        each = _sqlite_each(parent)
        parent = (
            select(each.c.value)
            .where(each.c.key == part, each.c.type.in_(("object", "array")))
            .scalar_subquery()
        )
    return _sqlite_each(parent)


def _sqlite(query: Query) -> ColumnElement[bool]:
    path: tuple[str | int, ...] = getattr(query, "path")  # noqa: B009 -- every keyed term has one
    each = _sqlite_node(path)
    found: list[Any] = [each.c.key == path[-1]]
    if isinstance(query, Comparison):
        found.append(_typed(query.op, query.value, _SQLITE_TYPES)(each.c.value, each.c.type))
    elif isinstance(query, Contains):
        found += [
            each.c.type == "text",
            func.instr(func.acq_casefold(each.c.value), index_copy(query.text).casefold()) > 0,
        ]
    elif isinstance(query, Includes):
        array = (
            select(each.c.value).where(each.c.key == path[-1], each.c.type == "array")
        ).scalar_subquery()
        element = _sqlite_each(array)
        match = _typed("==", query.value, _SQLITE_TYPES)(element.c.value, element.c.type)
        return exists(select(literal(1)).select_from(element).where(match))
    elif not isinstance(query, Exists):
        raise TypeError(f"unknown search term {query!r}")
    return exists(select(literal(1)).select_from(each).where(*found))


_PG_TYPES = {
    "true": "boolean",
    "false": "boolean",
    "null": "null",
    "text": "string",
    "number": ("number",),
    "container": ("array", "object"),
}


def _postgres(query: Query) -> ColumnElement[bool]:
    keys: tuple[str | int, ...] = getattr(query, "path")  # noqa: B009 -- every keyed term has one
    path = [index_copy(str(p)) for p in keys]
    param = bindparam(None, path, type_=ARRAY(Text))
    node = runs.c.start.op("#>", return_type=JSONB)(param)
    kind = func.jsonb_typeof(node)
    if isinstance(query, Comparison):
        value = index_copy(query.value)
        if isinstance(value, str):
            text = runs.c.start.op("#>>", return_type=Text)(param)
            if query.op != "==":
                text = text.collate("C")
                value_expr: Any = literal(value, Text).collate("C")
            else:
                value_expr = value
            cond = and_(kind == "string", _OPS[query.op](text, value_expr))
        elif value is None:
            cond = kind == "null"
        else:
            cond = _OPS[query.op](node, cast(bindparam(None, value, type_=JSONB), JSONB))
            if isinstance(value, int | float) and not isinstance(value, bool):
                cond = and_(kind == "number", cond)
        if query.op == "==" and all(isinstance(p, str) for p in keys):
            document: Any = value
            for part in reversed(path):
                document = {part: document}
            contains = runs.c.start.op("@>", return_type=Boolean)
            cond = and_(contains(cast(bindparam(None, document, type_=JSONB), JSONB)), cond)
    elif isinstance(query, Contains):
        text = runs.c.start.op("#>>", return_type=Text)(param)
        needle = index_copy(query.text).lower()
        cond = and_(kind == "string", func.strpos(func.lower(text), needle) > 0)
    elif isinstance(query, Includes):
        array = case((kind == "array", node), else_=cast(literal("[]"), JSONB))
        element = func.jsonb_array_elements(array).table_valued("value").alias()
        wanted = cast(bindparam(None, index_copy(query.value), type_=JSONB), JSONB)
        return exists(select(literal(1)).select_from(element).where(element.c.value == wanted))
    elif isinstance(query, Exists):
        return node.is_not(None)
    else:
        raise TypeError(f"unknown search term {query!r}")
    return func.coalesce(cond, false())


# -- fetches ----------------------------------------------------------------------------
def _where(queries: Sequence[Query], dialect: str) -> list[ColumnElement[bool]]:
    return [condition(q, dialect) for q in queries]


def _row(r: Any) -> RunRow:
    return RunRow(r.id, r.uid, r.scan_id, r.time, r.start, r.stop)


_RUN_COLUMNS = (runs.c.id, runs.c.uid, runs.c.scan_id, runs.c.time, runs.c.start, runs.c.stop)


async def count(db: Database, queries: Sequence[Query]) -> int:
    """How many runs match every query."""
    engine = await db.engine()
    statement = select(func.count()).select_from(runs).where(*_where(queries, db.dialect))
    async with engine.connect() as conn:
        return int((await conn.execute(statement)).scalar_one())


async def fetch_runs(
    db: Database,
    queries: Sequence[Query],
    *,
    limit: int,
    offset: int = 0,
    after: tuple[float, int] | None = None,
) -> list[RunRow]:
    """Matching runs, newest first; ``after`` = (time, id) of the last run already seen."""
    engine = await db.engine()
    statement = select(*_RUN_COLUMNS).where(*_where(queries, db.dialect))
    if after is not None:
        t, i = after
        statement = statement.where(or_(runs.c.time < t, and_(runs.c.time == t, runs.c.id < i)))
    statement = statement.order_by(*_NEWEST_FIRST).limit(limit).offset(offset)
    async with engine.connect() as conn:
        return [_row(r) for r in await conn.execute(statement)]


async def by_scan_id(db: Database, queries: Sequence[Query], scan_id: int) -> RunRow | None:
    """The newest matching run with ``scan_id``."""
    engine = await db.engine()
    statement = (
        select(*_RUN_COLUMNS)
        .where(runs.c.scan_id == scan_id, *_where(queries, db.dialect))
        .order_by(*_NEWEST_FIRST)
        .limit(1)
    )
    async with engine.connect() as conn:
        found = (await conn.execute(statement)).first()
    return None if found is None else _row(found)


async def by_uid(db: Database, queries: Sequence[Query], prefix: str) -> list[RunRow]:
    """The run whose uid is ``prefix``, else up to 6 runs whose uid starts with it."""
    engine = await db.engine()
    where = _where(queries, db.dialect)
    async with engine.connect() as conn:
        exact = (
            await conn.execute(select(*_RUN_COLUMNS).where(runs.c.uid == prefix, *where))
        ).first()
        if exact is not None:
            return [_row(exact)]
        statement = (
            select(*_RUN_COLUMNS)
            .where(runs.c.uid.startswith(prefix, autoescape=True), *where)
            .order_by(*_NEWEST_FIRST)
            .limit(6)
        )
        return [_row(r) for r in await conn.execute(statement)]


async def fetch_documents(
    db: Database,
    run_uid: str,
    *,
    names: Sequence[str] | None = None,
    descriptors: Sequence[str] | None = None,
    after: int = -1,
    limit: int | None = None,
) -> list[DocumentRow]:
    """Rows ``(seq, name, descriptor, body, columns)`` of the log of ``run_uid``, in order."""
    engine = await db.engine()
    statement = select(
        documents.c.seq,
        documents.c.name,
        documents.c.descriptor,
        documents.c.body,
        documents.c.columns,
    ).where(documents.c.run_uid == run_uid, documents.c.seq > after)
    if names is not None:
        statement = statement.where(documents.c.name.in_(list(names)))
    if descriptors is not None:
        statement = statement.where(documents.c.descriptor.in_(list(descriptors)))
    statement = statement.order_by(documents.c.seq)
    if limit is not None:
        statement = statement.limit(limit)
    async with engine.connect() as conn:
        return [
            (r.seq, r.name, r.descriptor, r.body, r.columns) for r in await conn.execute(statement)
        ]
