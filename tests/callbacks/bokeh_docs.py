"""Read the data back out of a bokeh JSON document (a saved page, a notebook output)."""

from __future__ import annotations

import base64
import gzip
from typing import Any

import numpy as np


def named_sources(document: Any, *, as_lists: bool = False) -> dict[str, dict[str, Any]]:
    """Every named ColumnDataSource in ``document``: name -> {column: array}.

    ``as_lists``: plain Python lists instead of numpy arrays (for ``==`` with a list).
    """
    found: dict[str, dict[str, Any]] = {}
    _walk(document, found, as_lists)
    return found


def _walk(node: Any, found: dict[str, dict[str, Any]], as_lists: bool) -> None:
    if isinstance(node, dict):
        attrs: Any = node.get("attributes", {})
        if node.get("name") == "ColumnDataSource" and "name" in attrs:
            entries = attrs["data"]["entries"]
            found[attrs["name"]] = {key: _array(value, as_lists) for key, value in entries}
        for value in node.values():
            _walk(value, found, as_lists)
    elif isinstance(node, list):
        for value in node:
            _walk(value, found, as_lists)


def _array(value: Any, as_lists: bool) -> Any:
    if isinstance(value, dict) and value.get("type") == "ndarray":
        raw = base64.b64decode(value["array"]["data"])
        if raw[:2] == b"\x1f\x8b":  # bokeh gzips larger arrays
            raw = gzip.decompress(raw)
        array = np.frombuffer(raw, dtype=value["dtype"]).reshape(value["shape"])
        return array.tolist() if as_lists else array
    if isinstance(value, list):
        return [_array(v, as_lists) for v in value]
    return value
