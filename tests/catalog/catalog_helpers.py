"""Helpers of the catalog tests: plain JSON data, and a detector of large arrays."""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import unquote, urlparse

import h5py
import numpy as np
from support import DoneStatus


def plain(doc: Any) -> Any:
    """``doc`` as JSON data (numpy -> lists, tuples -> lists, enums -> values)."""

    def default(obj: Any) -> Any:
        if hasattr(obj, "tolist"):
            return obj.tolist()
        if hasattr(obj, "value"):
            return obj.value
        raise TypeError(repr(obj))

    return json.loads(json.dumps(doc, default=default))


class Spectrum:
    """A detector reading a numpy array of ``size`` values, all equal to its trigger count."""

    def __init__(self, name: str, size: int = 2000) -> None:
        self.name = name
        self.parent = None
        self.size = size
        self.count = 0

    def describe(self) -> dict[str, Any]:
        return {
            self.name: {
                "source": f"mem://{self.name}",
                "dtype": "array",
                "dtype_numpy": "<f8",
                "shape": [self.size],
            }
        }

    def trigger(self) -> DoneStatus:
        self.count += 1
        return DoneStatus()

    def read(self) -> dict[str, Any]:
        value = np.full(self.size, float(self.count))
        return {self.name: {"value": value, "timestamp": time.time()}}

    @property
    def hints(self) -> dict[str, Any]:
        return {"fields": []}


def frames_from_documents(docs: list[tuple[str, dict[str, Any]]], key: str) -> list[np.ndarray]:
    """The frames of ``key``, read with h5py straight from the emitted asset documents."""
    resources = {d["uid"]: d for n, d in docs if n == "stream_resource" and d["data_key"] == key}
    frames = []
    for name, doc in docs:
        if name == "stream_datum" and doc["stream_resource"] in resources:
            resource = resources[doc["stream_resource"]]
            with h5py.File(unquote(urlparse(resource["uri"]).path), "r", swmr=True) as f:
                dataset = f[resource["parameters"]["dataset"]]
                frames += list(dataset[doc["indices"]["start"] : doc["indices"]["stop"]])
    return frames
