"""Large arrays in HDF5 files beside the database: written by the store, read lazily.

**Writing.** A data key whose descriptor declares a numeric array of at least
``inline_limit`` elements (and is not already external) is *externalized*: the stored
descriptor marks it ``external: "STREAM:"``, its values leave the stored Events and go
to HDF5 files under ``<files_dir>/<run uid>/``, announced by Stream Resource and Stream
Datum documents written into the document log just before the Events they belong to --
the same form as an area detector's frames. One file holds one *segment*: consecutive
values of one key with one shape and dtype, in the dataset ``/data`` (its first axis
counts values). A value of another shape or dtype starts a new segment (a new file).
Files are written in HDF5's single-writer/multiple-reader mode and flushed before the
database commit that refers to them, so a killed process leaves them readable up to
that commit.

**Reading.** :class:`ExternalArray` stands for one data key of a stream: it knows which
rows live in which file and dataset, and reads only what is indexed (or everything, on
``numpy.asarray``). Every index of a Stream Datum is one element ``dataset[i]``; an
Event covering one index gets that element, an Event covering ``k`` gets ``k`` of them.

h5py is imported when a file is first written or read.
"""

from __future__ import annotations

import importlib
import math
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast
from urllib.parse import unquote, urlparse

import numpy as np

from ._config import CatalogError

__all__ = ["ExternalFiles", "ExternalArray", "Piece", "large_keys", "path_of", "h5py"]

_NUMERIC = "biufc"
_CHUNK_BYTES = 1 << 20


def h5py() -> Any:
    """The h5py module, imported on first use (it has no type stubs)."""
    return importlib.import_module("h5py")


def large_keys(descriptor: Mapping[str, Any], limit: int) -> frozenset[str]:
    """The data keys of ``descriptor`` the store writes to HDF5 (see the docstring)."""
    keys: list[str] = []
    data_keys: Mapping[str, Mapping[str, Any]] = descriptor.get("data_keys", {})
    for key, dk in data_keys.items():
        if dk.get("external") or dk.get("dtype") == "string":
            continue
        shape: list[Any] = dk.get("shape") or []
        if not shape or not all(isinstance(n, int) and n > 0 for n in shape):
            continue
        if math.prod(cast("list[int]", shape)) < limit:
            continue
        dtype_numpy = dk.get("dtype_numpy")
        if dtype_numpy:
            try:
                if np.dtype(dtype_numpy).kind not in _NUMERIC:
                    continue
            except TypeError:
                continue
        keys.append(key)
    return frozenset(keys)


class _Segment:
    """One HDF5 file: consecutive values of one key with one shape and dtype."""

    def __init__(self, path: Path, shape: tuple[int, ...], dtype: np.dtype[Any]) -> None:
        self.path = path
        self.shape = shape
        self.dtype = dtype
        self.uid = str(uuid.uuid4())
        self.count = 0
        self.datums = 0
        rows = max(1, min(1024, _CHUNK_BYTES // max(1, dtype.itemsize * math.prod(shape))))
        path.parent.mkdir(parents=True, exist_ok=True)
        self.file: Any = h5py().File(path, "w", libver="latest")
        self.dataset: Any = self.file.create_dataset(
            "data", shape=(0, *shape), maxshape=(None, *shape), chunks=(rows, *shape), dtype=dtype
        )
        self.file.swmr_mode = True

    def append(self, values: np.ndarray[Any, Any]) -> tuple[int, int]:
        start = self.count
        self.count = start + len(values)
        self.dataset.resize(self.count, axis=0)
        self.dataset[start : self.count] = values
        return start, self.count

    def flush(self) -> None:
        self.dataset.flush()

    def close(self) -> None:
        self.file.close()


class ExternalFiles:
    """The HDF5 files of one run's externalized keys (made on the first value)."""

    def __init__(self, folder: Path, run_uid: str, limit: int) -> None:
        self.folder = folder / run_uid
        self.run_uid = run_uid
        self.limit = limit
        self.keys: dict[str, frozenset[str]] = {}  # descriptor uid -> externalized keys
        self._segments: dict[tuple[str, str], _Segment] = {}
        self._files = 0
        self._dirty: set[_Segment] = set()

    def descriptor(self, doc: dict[str, Any]) -> dict[str, Any]:
        """The descriptor to store: ``doc``, or a copy marking large keys external."""
        keys = large_keys(doc, self.limit)
        if not keys:
            return doc
        self.keys[doc["uid"]] = keys
        data_keys = {
            k: ({**dk, "external": "STREAM:"} if k in keys else dk)
            for k, dk in doc["data_keys"].items()
        }
        return {**doc, "data_keys": data_keys}

    def write(
        self, descriptor: str, key: str, seq_nums: list[int], values: list[Any]
    ) -> list[tuple[str, dict[str, Any]]]:
        """Write ``values`` (of Events ``seq_nums``); return the documents announcing them."""
        docs: list[tuple[str, dict[str, Any]]] = []
        i = 0
        while i < len(values):
            first = self._array(key, values[i])
            segment = self._segments.get((descriptor, key))
            if segment is None or segment.shape != first.shape or segment.dtype != first.dtype:
                segment = self._new_segment(descriptor, key, first)
                docs.append(("stream_resource", self._resource(segment, key)))
            arrays = [first]
            j = i + 1
            while j < len(values) and seq_nums[j] == seq_nums[j - 1] + 1:
                value = self._array(key, values[j])
                if value.shape != segment.shape or value.dtype != segment.dtype:
                    break
                arrays.append(value)
                j += 1
            start, stop = segment.append(np.stack(arrays))
            self._dirty.add(segment)
            docs.append(
                (
                    "stream_datum",
                    {
                        "uid": f"{segment.uid}/{segment.datums}",
                        "stream_resource": segment.uid,
                        "descriptor": descriptor,
                        "indices": {"start": start, "stop": stop},
                        "seq_nums": {"start": seq_nums[i], "stop": seq_nums[j - 1] + 1},
                    },
                )
            )
            segment.datums += 1
            i = j
        return docs

    def _array(self, key: str, value: Any) -> np.ndarray[Any, Any]:
        array = np.asarray(value)
        if array.dtype.kind not in _NUMERIC:
            raise CatalogError(
                f"data key {key!r} is declared a large numeric array, but an event holds "
                f"{type(value).__name__} {value!r:.60} (numpy dtype {array.dtype}), which "
                "cannot be written to HDF5"
            )
        return array

    def _new_segment(self, descriptor: str, key: str, first: np.ndarray[Any, Any]) -> _Segment:
        old = self._segments.pop((descriptor, key), None)
        if old is not None:
            old.flush()
            old.close()
            self._dirty.discard(old)
        self._files += 1
        path = self.folder / f"{self._files:04d}.h5"
        try:
            segment = _Segment(path, first.shape, first.dtype)
        except OSError as exc:
            raise CatalogError(f"cannot write {path} for data key {key!r}: {exc}") from exc
        self._segments[(descriptor, key)] = segment
        return segment

    def _resource(self, segment: _Segment, key: str) -> dict[str, Any]:
        return {
            "uid": segment.uid,
            "run_start": self.run_uid,
            "data_key": key,
            "mimetype": "application/x-hdf5",
            "uri": segment.path.as_uri(),
            "parameters": {
                "dataset": "/data",
                "chunk_shape": list(segment.dataset.chunks),
                "shape": list(segment.shape),  # of one value (one index)
            },
        }

    def flush(self) -> None:
        """Flush every file written since the last flush (before the database commit)."""
        for segment in self._dirty:
            segment.flush()
        self._dirty.clear()

    def close(self) -> None:
        """Flush and close every file (at the run's Stop)."""
        self.flush()
        for segment in self._segments.values():
            segment.close()
        self._segments.clear()


def path_of(uri: str) -> Path:
    """The local file a resource ``uri`` names (``file://host/path`` or a plain path)."""
    parsed = urlparse(uri)
    if parsed.scheme in ("", "file"):
        return Path(unquote(parsed.path))
    raise CatalogError(f"cannot read {uri!r}: only local files (file://) are supported")


@dataclass(frozen=True)
class Piece:
    """Rows ``row_start:row_stop`` of a column are ``per_row`` elements each of a dataset."""

    row_start: int
    row_stop: int
    path: Path
    dataset: str
    index_start: int
    per_row: int


class ExternalArray:
    """One data key of a stream, in HDF5 files: read when indexed or converted.

    Behaves like a read-only numpy array (``shape``, ``dtype``, ``len``, indexing,
    ``numpy.asarray``); only the rows indexed are read from the files.
    """

    def __init__(
        self,
        key: str,
        pieces: list[Piece],
        length: int,
        declared: tuple[tuple[int, ...], np.dtype[Any]] | None = None,
    ) -> None:
        self.key = key
        self.pieces = sorted(pieces, key=lambda p: p.row_start)
        self.length = length
        # (element shape, dtype) as the documents declare them; else read from the file
        self._meta: tuple[tuple[int, ...], np.dtype[Any]] | None = declared

    def _open(self, path: Path) -> Any:
        try:
            return h5py().File(path, "r", swmr=True)
        except OSError as exc:
            raise CatalogError(f"cannot read data key {self.key!r} from {path}: {exc}") from exc

    def _describe(self) -> tuple[tuple[int, ...], np.dtype[Any]]:
        if self._meta is None:
            if not self.pieces:
                raise CatalogError(f"data key {self.key!r} has no stored data")
            piece = self.pieces[0]
            with self._open(piece.path) as f:
                dataset = f[piece.dataset]
                element = tuple(int(n) for n in dataset.shape[1:])
                dtype = cast("np.dtype[Any]", dataset.dtype)
            self._meta = ((piece.per_row, *element) if piece.per_row != 1 else element), dtype
        return self._meta

    @property
    def shape(self) -> tuple[int, ...]:
        """``(rows, *element shape)``."""
        return (self.length, *self._describe()[0])

    @property
    def dtype(self) -> np.dtype[Any]:
        """The dtype of the stored values."""
        return self._describe()[1]

    @property
    def ndim(self) -> int:
        """Number of dimensions."""
        return len(self.shape)

    def __len__(self) -> int:
        return self.length

    def __repr__(self) -> str:
        return f"<ExternalArray {self.key!r} rows={self.length} in {len(self.pieces)} piece(s)>"

    def _read(self, rows: range) -> np.ndarray[Any, Any]:
        element, dtype = self._describe()
        out = np.empty((len(rows), *element), dtype=dtype)
        covered = 0
        for piece in self.pieces:
            lo, hi = max(rows.start, piece.row_start), min(rows.stop, piece.row_stop)
            if lo >= hi:
                continue
            first = piece.index_start + (lo - piece.row_start) * piece.per_row
            with self._open(piece.path) as f:
                values = f[piece.dataset][first : first + (hi - lo) * piece.per_row]
            out[lo - rows.start : hi - rows.start] = values.reshape((hi - lo, *element))
            covered += hi - lo
        if covered != len(rows):
            raise CatalogError(
                f"data key {self.key!r}: {len(rows) - covered} of the rows asked for have "
                "no Stream Datum (the run may have been cut short)"
            )
        return out

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, int | np.integer):
            i = int(cast(int, index))
            i += self.length if i < 0 else 0
            if not 0 <= i < self.length:
                raise IndexError(f"row {index} of data key {self.key!r} (rows: {self.length})")
            return self._read(range(i, i + 1))[0]
        if isinstance(index, slice) and cast("slice[Any, Any, Any]", index).step in (None, 1):
            return self._read(range(*cast(slice, index).indices(self.length)))
        if isinstance(index, tuple) and index and isinstance(index[0], int | slice):
            rows, *rest = cast("tuple[Any, ...]", index)
            picked = np.asarray(self[rows])
            return picked[tuple(rest)] if isinstance(rows, int) else picked[:, *rest]
        return np.asarray(self)[index]

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray[Any, Any]:
        data = self._read(range(self.length))
        return data if dtype is None else data.astype(dtype)
