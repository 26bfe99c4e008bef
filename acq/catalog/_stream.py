"""A stream's stored events as columns: numpy arrays, and pandas/xarray when installed.

``run.primary.read()`` gives a :class:`StreamData`: a mapping from data key to a numpy
array with one row per event (``data["det"]``), plus ``data.time`` (event times),
``data.seq_num``, ``data.timestamps[key]`` and ``data.descriptors``. A data key kept in
files (an area detector's frames, large arrays the store moved to HDF5) is an
:class:`~acq.catalog.ExternalArray`: nothing is read from the files until it is indexed
or converted. Numbers with gaps (a key missing from some events, when a stream's
descriptor changed) are floats with NaN; text is an object array.

``data.to_pandas()`` is a DataFrame of the one-value-per-event columns (``arrays=True``
adds the others, one array per cell); ``data.to_xarray()`` a Dataset along ``time``
whose file-backed variables stay lazy (xarray's backend-array protocol).
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, NamedTuple, cast

import numpy as np

from ._codec import PACKED_EVENTS, loads
from ._columns import columns, is_columnar
from ._external import ExternalArray, Piece, path_of

__all__ = ["StreamData", "build_stream_data"]

EVENT_ROWS = ("event", PACKED_EVENTS, "event_page", "stream_datum")


class StreamData(Mapping[str, Any]):
    """The events of one stream, a column per data key (see the module docstring)."""

    def __init__(
        self,
        name: str,
        columns: dict[str, Any],
        time: np.ndarray[Any, Any],
        seq_num: np.ndarray[Any, Any],
        timestamps: dict[str, np.ndarray[Any, Any]],
        descriptors: list[dict[str, Any]],
    ) -> None:
        self.name = name
        self._columns = columns
        self.time = time
        """Each event's time (seconds since the epoch)."""
        self.seq_num = seq_num
        """Each event's sequence number in its stream (from 1)."""
        self.timestamps = timestamps
        """Per data key, the time of each reading."""
        self.descriptors = descriptors
        """The stream's Event Descriptors, in order."""
        self.data_keys: dict[str, dict[str, Any]] = {}
        """What each data key is (dtype, shape, source, units, ...), latest descriptor wins."""
        for descriptor in descriptors:
            self.data_keys.update(descriptor.get("data_keys", {}))

    def __getitem__(self, key: str) -> Any:
        try:
            return self._columns[key]
        except KeyError:
            raise KeyError(
                f"{key!r} is not a data key of stream {self.name!r}; it has {sorted(self._columns)}"
            ) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._columns)

    def __len__(self) -> int:
        return len(self._columns)

    def __repr__(self) -> str:
        return f"<StreamData {self.name!r}: {len(self.time)} events, keys {list(self._columns)}>"

    def to_pandas(self, arrays: bool = False) -> Any:
        """A ``pandas.DataFrame`` indexed by ``seq_num``, with ``time`` and the data keys.

        Args:
            arrays: also add the keys with more than one value per event (one numpy
                array per cell; file-backed ones are read).
        """
        pd = importlib.import_module("pandas")
        frame: dict[str, Any] = {"time": self.time}
        for key, column in self._columns.items():
            if column.ndim == 1:
                frame[key] = np.asarray(column)
            elif arrays:
                frame[key] = list(cast("np.ndarray[Any, Any]", np.asarray(column)))
        return pd.DataFrame(frame, index=pd.Index(self.seq_num, name="seq_num"))

    def to_xarray(self) -> Any:
        """An ``xarray.Dataset`` along ``time``; file-backed keys are read when used."""
        xr = importlib.import_module("xarray")
        variables: dict[str, Any] = {}
        for key, column in self._columns.items():
            dims = ("time", *(f"{key}_dim_{i}" for i in range(1, column.ndim)))
            data = _lazy(column) if isinstance(column, ExternalArray) else column
            variables[key] = xr.Variable(dims, data, attrs=_attrs(self.data_keys.get(key, {})))
        return xr.Dataset(variables, coords={"time": self.time, "seq_num": ("time", self.seq_num)})


def _attrs(data_key: Mapping[str, Any]) -> dict[str, Any]:
    return {
        k: v
        for k, v in data_key.items()
        if k in ("units", "source", "dtype", "precision", "dtype_numpy") and v is not None
    }


def _lazy(column: ExternalArray) -> Any:
    backends = importlib.import_module("xarray.backends")
    indexing = importlib.import_module("xarray.core.indexing")

    class _Backend(backends.BackendArray):
        def __init__(self) -> None:
            self.shape = column.shape
            self.dtype = column.dtype

        def __getitem__(self, key: Any) -> Any:
            return indexing.explicit_indexing_adapter(
                key, self.shape, indexing.IndexingSupport.BASIC, self._raw
            )

        def _raw(self, key: tuple[Any, ...]) -> Any:
            rows = column[key[0]]
            rest = key[1:]
            if isinstance(key[0], slice):
                return np.asarray(rows)[(slice(None), *rest)]
            return np.asarray(rows)[rest]

    return indexing.LazilyIndexedArray(_Backend())


class _Chunk(NamedTuple):
    """One stored row of a stream: its events' columns (arrays or lists)."""

    n: int
    time: Any
    seq_num: Any
    data: Mapping[str, Any]
    timestamps: Mapping[str, Any]


def _chunk(row_name: str, doc: dict[str, Any], blob: bytes | None) -> _Chunk:
    if row_name == "event":
        return _Chunk(
            1,
            [doc["time"]],
            [doc["seq_num"]],
            {k: [v] for k, v in doc["data"].items()},
            {k: [v] for k, v in doc["timestamps"].items()},
        )
    if is_columnar(doc):
        found = columns(doc, blob)
        keys = doc["keys"]
        return _Chunk(
            doc["n"],
            found["time"],
            found["seq_num"],
            {k: found[f"data.{k}"] for k in keys.get("data", ())},
            {k: found[f"timestamps.{k}"] for k in keys.get("timestamps", ())},
        )
    return _Chunk(len(doc["seq_num"]), doc["time"], doc["seq_num"], doc["data"], doc["timestamps"])


def _add_datum_rows(chunks: list[_Chunk], datums: list[dict[str, Any]]) -> None:
    """Rows for the events that only Stream Datums tell of (a flown detector's frames).

    Such events have no Event documents: no time (NaN) and no inline data (gaps).
    """
    if not datums:
        return
    told = {n for d in datums for n in range(d["seq_nums"]["start"], d["seq_nums"]["stop"])}
    for chunk in chunks:
        told.difference_update(np.asarray(chunk.seq_num).tolist())
    if not told:
        return
    missing = sorted(told)
    breaks = [i for i in range(1, len(missing)) if missing[i] != missing[i - 1] + 1]
    for start, stop in zip([0, *breaks], [*breaks, len(missing)], strict=True):
        run = missing[start:stop]
        chunks.append(_Chunk(len(run), [np.nan] * len(run), run, {}, {}))
    chunks.sort(key=lambda c: int(np.asarray(c.seq_num)[0]) if c.n else 0)  # seq_num order


def _gather(parts: Sequence[Any], sizes: Sequence[int]) -> Any:
    """One column from its chunks: arrays joined as they are, else one list (None: gaps)."""
    if parts and all(isinstance(p, np.ndarray) for p in parts):
        return np.concatenate(parts)  # a copy: writable, and the blobs can go
    out: list[Any] = []
    for part, size in zip(parts, sizes, strict=True):
        if part is None:
            out.extend([None] * size)
        elif isinstance(part, np.ndarray):
            out.extend(cast("list[Any]", part.tolist()))
        else:
            out.extend(part)
    return out


def build_stream_data(
    name: str,
    descriptor_bodies: Sequence[str],
    rows: Sequence[tuple[int, str, str | None, str, bytes | None]],
    resources: Mapping[str, Mapping[str, Any]],
) -> StreamData:
    """Columns from the stream's descriptors and its event/stream-datum rows (in order)."""
    descriptors = [cast(dict[str, Any], loads(b)) for b in descriptor_bodies]
    data_keys: dict[str, dict[str, Any]] = {}
    for descriptor in descriptors:
        data_keys.update(descriptor.get("data_keys", {}))
    external = {k for k, dk in data_keys.items() if dk.get("external")}
    inline = [k for k in data_keys if k not in external]
    chunks: list[_Chunk] = []
    datums: list[dict[str, Any]] = []
    for _seq, row_name, _descriptor, body, blob in rows:
        doc = loads(body)
        if row_name == "stream_datum":
            datums.append(doc)
        else:
            chunks.append(_chunk(row_name, doc, blob))
    _add_datum_rows(chunks, datums)
    sizes = [c.n for c in chunks]
    times = np.asarray(_gather([c.time for c in chunks], sizes), dtype=float)
    seqs = np.asarray(_gather([c.seq_num for c in chunks], sizes), dtype=np.int64)
    columns_: dict[str, Any] = {
        k: _column(_gather([c.data.get(k) for c in chunks], sizes), data_keys[k]) for k in inline
    }
    columns_.update(_external_columns(external, datums, seqs, resources, data_keys))
    timestamps: dict[str, np.ndarray[Any, Any]] = {}
    for key in data_keys:
        parts = [c.timestamps.get(key) for c in chunks]
        if any(p is not None for p in parts):
            stamps = _gather(parts, sizes)
            timestamps[key] = (
                stamps
                if isinstance(stamps, np.ndarray)
                else np.asarray([np.nan if t is None else t for t in stamps], dtype=float)
            )
    order = {k: i for i, k in enumerate(data_keys)}
    columns_ = dict(sorted(columns_.items(), key=lambda kv: order[kv[0]]))
    return StreamData(name, columns_, times, seqs, timestamps, descriptors)


def _column(values: Any, data_key: Mapping[str, Any]) -> np.ndarray[Any, Any]:
    """One inline data key as an array (NaN for gaps in numbers)."""
    if isinstance(values, np.ndarray):  # joined column chunks: numbers, no gaps
        return _as_declared(cast("np.ndarray[Any, Any]", values), data_key)
    values = cast("list[Any]", values)
    kind = data_key.get("dtype")
    if kind == "string":
        return _objects(values)
    missing = None in values
    if missing and kind in ("number", "integer"):
        values = [np.nan if v is None else v for v in values]
    try:
        array = np.asarray(values)
    except ValueError:  # ragged arrays
        return _objects(values)
    return array if missing else _as_declared(array, data_key)


def _as_declared(array: np.ndarray[Any, Any], data_key: Mapping[str, Any]) -> np.ndarray[Any, Any]:
    """Numbers in the descriptor's ``dtype_numpy``, when it gives one."""
    dtype_numpy = data_key.get("dtype_numpy")
    if dtype_numpy and array.dtype.kind in "biuf":
        with contextlib.suppress(TypeError, ValueError):
            array = array.astype(np.dtype(dtype_numpy), copy=False)
    return array


def _objects(values: list[Any]) -> np.ndarray[Any, Any]:
    array = np.empty(len(values), dtype=object)
    array[:] = values
    return array


def _external_columns(
    keys: set[str],
    datums: list[dict[str, Any]],
    seqs: np.ndarray[Any, Any],
    resources: Mapping[str, Mapping[str, Any]],
    data_keys: Mapping[str, Mapping[str, Any]],
) -> dict[str, ExternalArray]:
    """One :class:`ExternalArray` per file-backed key, from the Stream Datums."""
    if not keys or not datums:
        return {}
    position = {s: i for i, s in enumerate(cast("list[int]", seqs.tolist()))}
    pieces: dict[str, list[Piece]] = {k: [] for k in keys}
    shapes: dict[str, list[int]] = {}  # element shape a resource declares
    for datum in datums:
        resource = resources.get(datum["stream_resource"])
        if resource is None or resource.get("data_key") not in pieces:
            continue
        first, stop = datum["seq_nums"]["start"], datum["seq_nums"]["stop"]
        start_index, stop_index = datum["indices"]["start"], datum["indices"]["stop"]
        events = stop - first
        row = position.get(first)
        if events <= 0 or row is None:
            continue
        present = 0
        while present < events and position.get(first + present) == row + present:
            present += 1
        declared = resource.get("parameters", {}).get("shape")
        if isinstance(declared, list):
            shapes.setdefault(resource["data_key"], cast("list[int]", declared))
        pieces[resource["data_key"]].append(
            Piece(
                row,
                row + present,
                path_of(resource["uri"]),
                resource.get("parameters", {}).get("dataset", "/data"),
                start_index,
                max(1, (stop_index - start_index) // events),
            )
        )
    return {
        k: ExternalArray(k, pieces[k], len(seqs), _declared(data_keys[k], shapes.get(k), pieces[k]))
        for k in keys
        if pieces[k]
    }


def _declared(
    data_key: Mapping[str, Any], element: list[int] | None, pieces: list[Piece]
) -> tuple[tuple[int, ...], np.dtype[Any]] | None:
    """A key's (row shape, dtype) from its documents, so nothing is opened to know it.

    A resource the store wrote says its element shape; otherwise the descriptor's shape
    is taken as ``[values per event, *value shape]`` (ophyd-async's form). None when the
    documents do not say, or the pieces disagree on values per event.
    """
    try:
        dtype = np.dtype(data_key["dtype_numpy"])
    except (KeyError, TypeError):
        return None
    per_row = {p.per_row for p in pieces}
    if len(per_row) != 1:
        return None
    (per,) = per_row
    if element is None:
        shape = data_key.get("shape")
        if not isinstance(shape, list) or not shape or shape[0] != per:
            return None
        element = cast("list[int]", shape)[1:]
    row = tuple(int(n) for n in element)
    return ((per, *row) if per != 1 else row), dtype
