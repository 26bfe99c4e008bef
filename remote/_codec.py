"""Documents as bytes on a bus: acq's msgpack record ``[name, doc]``.

The same record a ``MsgpackWriter`` file holds (:mod:`acq.callbacks`), so numpy arrays
round-trip exactly (msgpack extension type 1: ``[descr, shape, data]``).
"""

from __future__ import annotations

from typing import Any, cast

import msgpack  # pyright: ignore[reportMissingTypeStubs]
import numpy as np
from acq.callbacks import MsgpackWriter
from event_model import DocumentNames
from numpy.lib.format import descr_to_dtype

__all__ = ["pack", "unpack"]

_msgpack: Any = msgpack  # the package has no type information
_NDARRAY_EXT = 1  # as in acq.callbacks' msgpack files
_writer = MsgpackWriter(".")  # only its encoder is used: it opens no file


def pack(name: str, doc: dict[str, Any]) -> bytes:
    """The msgpack record ``[name, doc]`` of one document."""
    return _writer.encode(name, doc)


def _ext(code: int, data: bytes) -> object:
    if code != _NDARRAY_EXT:
        return _msgpack.ExtType(code, data)
    descr, shape, raw = cast(tuple[Any, list[int], bytes], _msgpack.unpackb(data, raw=False))
    return np.frombuffer(bytearray(raw), dtype=descr_to_dtype(descr)).reshape(shape)


def unpack(data: bytes) -> tuple[str, dict[str, Any]]:
    """The ``(name, doc)`` of a record made by :func:`pack`.

    Raises:
        ValueError: ``data`` is not such a record (says what it found).
    """
    try:
        record: object = _msgpack.unpackb(
            data, raw=False, ext_hook=_ext, strict_map_key=False, use_list=True
        )
    except Exception as exc:  # noqa: BLE001 -- msgpack raises many kinds; all mean "not ours"
        raise ValueError(f"not msgpack: {exc}") from None
    if isinstance(record, list) and len(cast(list[object], record)) == 2:
        name, doc = cast(list[object], record)
        if isinstance(name, str) and name in DocumentNames.__members__ and isinstance(doc, dict):
            return name, cast(dict[str, Any], doc)
    raise ValueError(f"not a [name, document] record: {repr(cast(object, record))[:80]}")
