"""Search terms for ``catalog.search(...)``: plain objects, turned into SQL in ``_sql.py``.

::

    catalog.search(sample="Si")                          # equality, keyword form
    catalog.search(**{"sample.name": "Si"})              # nested keys: dotted
    catalog.search(Key("sample.name") == "Si")           # the same as a term
    catalog.search(Key("temperature") > 300)             # <, <=, >, >=, !=
    catalog.search(Key("purpose").contains("calib"))     # text contains (any case)
    catalog.search(Key("detectors").includes("det"))     # a list holds a value
    catalog.search(Key("plan_name").one_of(["scan", "count"]))
    catalog.search(Key("sample").exists())
    catalog.search(TimeRange(since="2024-05-01", until="2024-05-02"))
    catalog.search((Key("a") == 1) | ~(Key("b") == 2))   # or, not; several terms: and

A key is a dotted path into the Start document; a tuple path (``Key(("a.b", 0))``)
takes each part literally (keys containing dots, list positions). Keys and values are
always data -- they reach the database as bound parameters, never as SQL text.

Comparisons are typed: ``Key("x") == 5`` matches numbers equal to 5 (not the text
"5"); ranges compare numbers with numbers and text with text; ``!=`` also matches runs
without the key. ``Key("time")`` (and :class:`TimeRange`) take numbers (epoch seconds),
``datetime`` objects and ISO strings ("2024-05-01", "2024-05-01 13:30"; local time
unless the string says otherwise).
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias, cast

__all__ = [
    "Query",
    "Key",
    "Comparison",
    "Contains",
    "Includes",
    "OneOf",
    "Exists",
    "TimeRange",
    "And",
    "Or",
    "Not",
    "as_queries",
    "timestamp",
]

Path: TypeAlias = tuple[str | int, ...]
Op: TypeAlias = Literal["==", "!=", "<", "<=", ">", ">="]


class Query:
    """A search term; combine with ``&``, ``|`` and ``~``."""

    def __and__(self, other: Query) -> Query:
        return And((self, _check(other)))

    def __or__(self, other: Query) -> Query:
        return Or((self, _check(other)))

    def __invert__(self) -> Query:
        return Not(self)


@dataclass(frozen=True, repr=False)
class Comparison(Query):
    """``path op value``."""

    path: Path
    op: Op
    value: Any

    def __repr__(self) -> str:
        return f"{_dotted(self.path)} {self.op} {self.value!r}"


@dataclass(frozen=True, repr=False)
class Contains(Query):
    """A text value at ``path`` contains ``text`` (ignoring case)."""

    path: Path
    text: str

    def __repr__(self) -> str:
        return f"{_dotted(self.path)} contains {self.text!r}"


@dataclass(frozen=True, repr=False)
class Includes(Query):
    """The list at ``path`` has an element equal to ``value``."""

    path: Path
    value: Any

    def __repr__(self) -> str:
        return f"{_dotted(self.path)} includes {self.value!r}"


@dataclass(frozen=True, repr=False)
class OneOf(Query):
    """The value at ``path`` equals one of ``values``."""

    path: Path
    values: tuple[Any, ...]

    def __repr__(self) -> str:
        return f"{_dotted(self.path)} in {list(self.values)!r}"


@dataclass(frozen=True, repr=False)
class Exists(Query):
    """The Start document has ``path`` (any value, null included)."""

    path: Path

    def __repr__(self) -> str:
        return f"{_dotted(self.path)} exists"


@dataclass(frozen=True, repr=False, init=False)
class TimeRange(Query):
    """Runs started at or after ``since`` and before ``until`` (either may be None)."""

    since: float | None
    until: float | None

    def __init__(self, since: Any = None, until: Any = None) -> None:
        object.__setattr__(self, "since", None if since is None else timestamp(since))
        object.__setattr__(self, "until", None if until is None else timestamp(until))

    def __repr__(self) -> str:
        return f"TimeRange(since={_iso(self.since)}, until={_iso(self.until)})"


@dataclass(frozen=True, repr=False)
class And(Query):
    """Every part matches."""

    parts: tuple[Query, ...]

    def __repr__(self) -> str:
        return "(" + " & ".join(map(repr, self.parts)) + ")"


@dataclass(frozen=True, repr=False)
class Or(Query):
    """At least one part matches."""

    parts: tuple[Query, ...]

    def __repr__(self) -> str:
        return "(" + " | ".join(map(repr, self.parts)) + ")"


@dataclass(frozen=True, repr=False)
class Not(Query):
    """The part does not match."""

    part: Query

    def __repr__(self) -> str:
        return f"~{self.part!r}"


class Key:
    """A key of the Start document, to compare: ``Key("sample.name") == "Si"``.

    Args:
        path: a dotted string (``"sample.name"``), or a tuple whose parts are taken
            literally (``("odd.key", 0)``: a key with a dot, then a list position).
    """

    __slots__ = ("path",)

    def __init__(self, path: str | Sequence[str | int]) -> None:
        self.path = _path(path)

    def __repr__(self) -> str:
        return f"Key({_dotted(self.path)!r})"

    def _compare(self, op: Op, value: Any) -> Comparison:
        return Comparison(self.path, op, _value(value, self.path, op))

    def __eq__(self, value: object) -> Comparison:  # type: ignore[override]
        return self._compare("==", value)

    def __ne__(self, value: object) -> Comparison:  # type: ignore[override]
        return self._compare("!=", value)

    def __lt__(self, value: Any) -> Comparison:
        return self._compare("<", value)

    def __le__(self, value: Any) -> Comparison:
        return self._compare("<=", value)

    def __gt__(self, value: Any) -> Comparison:
        return self._compare(">", value)

    def __ge__(self, value: Any) -> Comparison:
        return self._compare(">=", value)

    __hash__ = None  # type: ignore[assignment]

    def contains(self, text: str) -> Contains:
        """The text value contains ``text``, ignoring case."""
        if not isinstance(text, str):  # pyright: ignore[reportUnnecessaryIsInstance]
            raise TypeError(f"Key({_dotted(self.path)!r}).contains() takes text, got {text!r}")
        return Contains(self.path, text)

    def includes(self, value: Any) -> Includes:
        """The list value has an element equal to ``value``."""
        return Includes(self.path, _value(value, self.path, "=="))

    def one_of(self, values: Iterable[Any]) -> OneOf:
        """The value equals one of ``values``."""
        return OneOf(self.path, tuple(_value(v, self.path, "==") for v in values))

    def exists(self) -> Exists:
        """The Start document has this key."""
        return Exists(self.path)


def as_queries(queries: Iterable[Query], equals: Mapping[str, Any]) -> tuple[Query, ...]:
    """The terms of ``search(*queries, **equals)``: keyword ``k=v`` is ``Key(k) == v``."""
    terms = [_check(q) for q in queries]
    terms += [Key(key) == value for key, value in equals.items()]
    return tuple(terms)


def timestamp(value: Any) -> float:
    """Epoch seconds from a number, a ``datetime``/``date`` or an ISO string."""
    if isinstance(value, bool):
        raise TypeError(f"a time must be a number, a datetime or an ISO string, got {value!r}")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise ValueError(f"a time must be finite, got {value!r}")
        return float(value)
    if isinstance(value, str):
        try:
            value = datetime.datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(
                f"cannot read {value!r} as a time: use ISO form, e.g. '2024-05-01' or "
                "'2024-05-01 13:30'"
            ) from None
    if isinstance(value, datetime.datetime):
        return value.timestamp()
    if isinstance(value, datetime.date):
        return datetime.datetime(value.year, value.month, value.day).timestamp()
    raise TypeError(f"a time must be a number, a datetime or an ISO string, got {value!r}")


def _check(query: Any) -> Query:
    if not isinstance(query, Query):
        raise TypeError(
            f"not a search term: {query!r}; use Key('name') == value, TimeRange(...), "
            "or keywords (search(sample='Si'))"
        )
    return query


def _path(path: str | Sequence[str | int]) -> Path:
    if isinstance(path, str):
        parts: Path = tuple(path.split("."))
        if not path or any(p == "" for p in parts):
            raise ValueError(
                f"bad key {path!r}: a dotted path needs a name between every two dots "
                "(for keys that contain dots, give a tuple: Key(('a.b',)))"
            )
        return parts
    given = tuple(cast("Sequence[object]", path))
    if not given or not all(_is_part(p) for p in given):
        raise ValueError(f"bad key {path!r}: a key path is a non-empty tuple of str and int")
    return cast(Path, given)


def _is_part(part: object) -> bool:
    return isinstance(part, str) or (isinstance(part, int) and not isinstance(part, bool))


def _value(value: Any, path: Path, op: Op) -> Any:
    if path == ("time",) and not isinstance(value, int | float):
        return timestamp(value)
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"cannot search {_dotted(path)} for {value!r}: it is stored as null")
    ordered = isinstance(value, int | float | str) and not isinstance(value, bool)
    if op not in ("==", "!=") and not ordered:
        raise TypeError(f"{_dotted(path)} {op} {value!r}: ranges compare numbers or text only")
    if not (ordered or value is None or isinstance(value, bool | list | dict | tuple)):
        raise TypeError(
            f"cannot search {_dotted(path)} for a {type(value).__name__} ({value!r}): use "
            "numbers, text, booleans, None, lists or dicts"
        )
    if isinstance(value, tuple):
        return list(cast("tuple[Any, ...]", value))
    return cast(Any, value)


def _dotted(path: Path) -> str:
    return ".".join(str(p) for p in path)


def _iso(t: float | None) -> str:
    if t is None:
        return "None"
    return repr(datetime.datetime.fromtimestamp(t).isoformat(sep=" ", timespec="seconds"))
