"""Event Pages as column chunks: a small JSON header and one binary blob per page.

A fly scan's Event Page of 100 000 points as JSON text is ~200 bytes a point, and
parsing it back is slower than the scan; its numbers are 24 bytes a point. So the store
keeps the columns of a page (and of the Events it packs, when they are numbers) as raw
little-endian arrays in the document log's ``columns`` blob, and a JSON header saying
where each column is -- in the same row and the same transaction as before, so the
durability is the document log's (SQLite and PostgreSQL alike).

Header fields, one per page field (``time``, ``seq_num``, ``uid``, ``data.<key>``,
``timestamps.<key>``, ``filled.<key>``), each one of:

* ``{"col": [offset, dtype, shape]}`` -- a numeric column (bool, int64, float64) in the
  blob; only for a field whose values are all of one exact Python type (``float``,
  ``int``, ``bool``), so that a replay gives back the same types;
* ``{"range": first}`` -- ``seq_num`` counting up by one from ``first``;
* ``{"uids": prefix, "first": n}`` -- uids made as acq makes them (a 24-character
  prefix and a 12-digit hexadecimal counter going up by one);
* ``{"same": "time"}`` (or another field) -- equal to that field, value for value;
* ``{"fill": value}`` -- the same value everywhere (``filled`` is all False);
* ``{"json": [...]}`` -- anything else, as it was.

:func:`encode` never loses anything: what it cannot encode exactly stays JSON.
:func:`decode` gives back the page as emitted (lists, Python numbers);
:func:`columns` gives the arrays without making Python lists (``Stream.read()``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

import numpy as np

from acq import EventUids

__all__ = ["COLUMNAR", "Columns", "columns", "decode", "encode", "is_columnar"]

COLUMNAR = "columns"  # the header's marker: {"columns": 1, "n": N, "fields": {...}, ...}

Columns = dict[str, np.ndarray[Any, Any] | list[Any]]
"""Decoded fields: ``time``, ``seq_num``, ``data.<key>``, ... as arrays (or lists)."""

_DTYPES = {float: "<f8", int: "<i8", bool: "|b1"}
_PAGE_FIELDS = ("data", "timestamps", "filled")
_UID_LENGTH = EventUids.LENGTH


def encode(page: Mapping[str, Any]) -> tuple[dict[str, Any], bytes]:
    """The header and blob of an Event Page (or of packed Events, in page form)."""
    n = len(page["seq_num"])
    chunks: list[bytes] = []
    offset = 0
    fields: dict[str, Any] = {}
    seen: list[tuple[str, Any]] = []  # numeric columns so far, for {"same": ...}

    def add(name: str, values: Any) -> None:
        nonlocal offset
        spec = _special(name, values, seen)
        if spec is None:
            array = _numeric(values, n)
            if array is None:
                kept: list[Any] = list(values)  # a copy: the page is the engine's
                spec = {"json": kept}
            else:
                data = array.tobytes()
                spec = {"col": [offset, array.dtype.str, list(array.shape)]}
                chunks.append(data)
                offset += len(data)
                seen.append((name, values))
        fields[name] = spec

    add("time", page["time"])
    add("seq_num", page["seq_num"])
    add("uid", page["uid"])
    for part in _PAGE_FIELDS:
        for key, values in cast(Mapping[str, Any], page.get(part, {})).items():
            add(f"{part}.{key}", values)
    rest = {k: v for k, v in page.items() if k not in ("time", "seq_num", "uid", *_PAGE_FIELDS)}
    header = {COLUMNAR: 1, "n": n, "fields": fields, "keys": _keys(page), "rest": rest}
    return header, b"".join(chunks)


def _keys(page: Mapping[str, Any]) -> dict[str, list[str]]:
    return {part: list(cast(Mapping[str, Any], page.get(part, {}))) for part in _PAGE_FIELDS}


def _special(name: str, values: Any, seen: list[tuple[str, Any]]) -> dict[str, Any] | None:
    """A field that needs no bytes: a count, acq's uids, a copy of another, a constant."""
    if not isinstance(values, list) or not values:
        return None
    values = cast(list[Any], values)
    if name == "seq_num":
        first = values[0]
        if type(first) is int and values == list(range(first, first + len(values))):
            return {"range": first}
        return None
    if name == "uid":
        return _uids(values)
    for other, known in seen:  # a list compare stops at the first difference: cheap
        if known is values or (_equal(values, known) and _same_type(values, known)):
            return {"same": other}
    if name.startswith("filled.") and all(v is False for v in values):
        return {"fill": False}
    return None


def _equal(a: list[Any], b: list[Any]) -> bool:
    try:
        return bool(a == b)
    except (TypeError, ValueError):  # e.g. arrays inside: their == is elementwise
        return False


def _same_type(a: list[Any], b: list[Any]) -> bool:
    return type(a[0]) is type(b[0]) and set(map(type, a)) == {type(a[0])}


def _uids(uids: list[Any]) -> dict[str, Any] | None:
    """``{"uids": prefix, "first": n}`` if ``uids`` are acq's counted uids, else None."""
    first = uids[0]
    if not isinstance(first, str) or len(first) != _UID_LENGTH:
        return None
    try:
        start = int(first[EventUids.PREFIX_LENGTH :], 16)
        joined = "".join(uids)  # TypeError: not all strings
    except (TypeError, ValueError):
        return None
    prefix = first[: EventUids.PREFIX_LENGTH]
    if not prefix.isascii() or joined != EventUids.text(prefix, start, len(uids)):
        return None
    if set(map(len, uids)) != {_UID_LENGTH}:  # the same text, cut elsewhere
        return None
    return {"uids": prefix, "first": start}


def _numeric(values: Any, n: int) -> np.ndarray[Any, Any] | None:
    """``values`` as a one-dimensional bool/int64/float64 array, if exactly that."""
    if isinstance(values, np.ndarray):
        array = cast(np.ndarray[Any, Any], values)
        if array.ndim == 1 and len(array) == n and array.dtype.kind in "bif":
            return array.astype(array.dtype.newbyteorder("<"), copy=False)
        return None
    if not isinstance(values, list) or len(cast(list[Any], values)) != n or not n:
        return None
    kinds = set(map(type, cast(list[Any], values)))
    if len(kinds) != 1:
        return None
    dtype = _DTYPES.get(kinds.pop())
    if dtype is None:
        return None
    try:
        return np.asarray(values, dtype=dtype)
    except OverflowError:  # an int beyond int64
        return None


def columns(header: Mapping[str, Any], blob: bytes | None, uids: bool = False) -> Columns:
    """The fields of an encoded page as arrays, without copies (``uid`` only if asked)."""
    n: int = header["n"]
    fields: Mapping[str, Any] = header["fields"]
    out: Columns = {}
    for name, spec in fields.items():
        if uids or name != "uid":
            out[name] = _field(spec, n, blob, out)
    return out


def _field(spec: Mapping[str, Any], n: int, blob: bytes | None, done: Columns) -> Any:
    if "col" in spec:
        offset, dtype, shape = cast("tuple[int, str, list[int]]", spec["col"])
        count = int(np.prod(shape)) if shape else 1
        return np.frombuffer(cast(bytes, blob), dtype=dtype, count=count, offset=offset).reshape(
            shape
        )
    if "range" in spec:
        return np.arange(spec["range"], spec["range"] + n, dtype=np.int64)
    if "uids" in spec:
        text = EventUids.text(spec["uids"], spec["first"], n)
        return [text[i : i + _UID_LENGTH] for i in range(0, _UID_LENGTH * n, _UID_LENGTH)]
    if "same" in spec:
        return done[spec["same"]]
    if "fill" in spec:
        return [spec["fill"]] * n
    return spec["json"]


def decode(header: Mapping[str, Any], blob: bytes | None) -> dict[str, Any]:
    """The page as it was emitted (lists of Python values)."""
    fields = columns(header, blob, uids=True)
    lists = {k: _as_list(v) for k, v in fields.items()}
    page: dict[str, Any] = dict(header["rest"])
    page["time"] = lists["time"]
    page["seq_num"] = lists["seq_num"]
    page["uid"] = lists["uid"]
    keys: Mapping[str, Sequence[str]] = header["keys"]
    for part in _PAGE_FIELDS:
        if part in keys:
            page[part] = {k: lists[f"{part}.{k}"] for k in keys[part]}
    return page


def _as_list(values: Any) -> list[Any]:
    if isinstance(values, np.ndarray):
        return cast(list[Any], values.tolist())
    return list(cast(list[Any], values))  # a copy: a "same" field is not the other's list


def is_columnar(doc: Any) -> bool:
    """Is this stored body an encoded page's header?"""
    return isinstance(doc, dict) and COLUMNAR in doc
