"""Documents as JSON text, and the searchable copy of a run's metadata.

Two encodings:

* :func:`dumps` -- a document exactly as emitted, for the document log: ASCII-only JSON
  (so any database's text column takes it), NaN and infinities kept (Python's JSON
  reads them back), numpy arrays and scalars as lists and numbers, enums as their
  values. Tuples come back as lists.
* :func:`index_copy` -- the Start/Stop copy the database searches (its JSON column):
  what its JSON functions accept, so NaN/infinities become null and the characters
  PostgreSQL refuses in JSON text (NUL, lone surrogates) become U+FFFD. Search values
  go through the same function, so they match what was stored.
"""

from __future__ import annotations

import datetime
import enum
import json
import math
import re
from collections.abc import Mapping
from pathlib import PurePath
from typing import Any, cast

from ._config import CatalogError

__all__ = [
    "PACKED_EVENTS",
    "dumps",
    "loads",
    "index_copy",
    "index_dumps",
    "describe_unstorable",
]

PACKED_EVENTS = "events"  # the document-log name of consecutive Events packed in one row

_BAD_TEXT = re.compile("[\x00\ud800-\udfff]")


def _default(obj: Any) -> Any:
    """JSON for what the json module does not know (numpy, enums, paths, ...)."""
    tolist = getattr(obj, "tolist", None)
    if callable(tolist) and type(obj).__module__ == "numpy":
        return tolist()
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, set | frozenset):
        return sorted(cast("set[Any]", obj), key=repr)
    if isinstance(obj, PurePath):
        return str(obj)
    if isinstance(obj, datetime.datetime | datetime.date):
        return obj.isoformat()
    if isinstance(obj, bytes):
        return obj.decode("utf-8", "backslashreplace")
    dump = getattr(obj, "model_dump", None)  # pydantic models
    if callable(dump):
        return dump()
    raise TypeError(f"{type(obj).__module__}.{type(obj).__qualname__} {obj!r:.80}")


_encode = json.JSONEncoder(default=_default, separators=(",", ":")).encode
loads = json.loads


def dumps(doc: Any) -> str:
    """A document as JSON text (see the module docstring).

    Raises:
        TypeError: a value is neither JSON nor one of the types above.
    """
    return _encode(doc)


def describe_unstorable(name: str, doc: Mapping[str, Any]) -> str:
    """Say which field of ``doc`` cannot be stored (after :func:`dumps` failed)."""
    path = _find_unstorable(doc, ())
    where = ".".join(str(p) for p in path) if path else "?"
    value: Any = doc
    for part in path:
        value = value[part]
    return (
        f"the {name!r} document cannot be stored: its field {where!r} holds a "
        f"{type(value).__module__}.{type(value).__qualname__} ({value!r:.80}), which is not "
        "JSON data (numbers, strings, lists, dicts, numpy arrays); fix the device or "
        "metadata that produced it"
    )


def _find_unstorable(obj: Any, path: tuple[Any, ...]) -> tuple[Any, ...]:
    if isinstance(obj, Mapping):
        for key, value in cast(Mapping[Any, Any], obj).items():
            found = _find_unstorable(value, (*path, key))
            if found:
                return found
        return ()
    if isinstance(obj, list | tuple):
        for i, value in enumerate(cast("list[Any]", obj)):
            found = _find_unstorable(value, (*path, i))
            if found:
                return found
        return ()
    try:
        _encode(obj)
    except (TypeError, ValueError):
        return path
    return ()


def index_copy(obj: Any) -> Any:
    """The searchable form of ``obj`` (see the module docstring)."""
    if isinstance(obj, str):
        return _BAD_TEXT.sub("\ufffd", obj) if _BAD_TEXT.search(obj) else obj
    if isinstance(obj, bool) or obj is None or isinstance(obj, int):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {index_copy(str(k)): index_copy(v) for k, v in cast(Mapping[Any, Any], obj).items()}
    if isinstance(obj, list | tuple):
        return [index_copy(v) for v in cast("list[Any]", obj)]
    try:
        plain = _default(obj)
    except TypeError as exc:
        raise CatalogError(f"cannot store or search for {exc}: not JSON data") from None
    return index_copy(plain)


def index_dumps(obj: Any) -> str:
    """JSON text of an :func:`index_copy` (for the database's JSON columns).

    Keys are sorted, so that equal dicts are equal text (SQLite compares dicts as text).
    """
    return json.dumps(
        obj, ensure_ascii=False, allow_nan=False, separators=(",", ":"), sort_keys=True
    )
