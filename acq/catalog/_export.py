"""Exporting a run: a stream's scalar columns to CSV, the whole run to NeXus/HDF5.

* :func:`export_csv` -- one stream (``primary`` by default): ``seq_num``, ``time`` and
  every data key with one value per event (file-backed ones such as an area detector's
  frame sums included), one row per event; plain CSV, no comment lines.
* :func:`export_nexus` -- a NeXus file that NeXus tools (nexusformat/NeXpy, silx, ...)
  open on a plot. Its layout:

  - ``/entry`` (``NXentry``): the run's title, uid (``entry_identifier``), start and
    end time, ``sample/name`` (``NXsample``), and the Start and Stop documents as JSON
    text in ``acq/start``, ``acq/stop`` (``NXcollection``).
  - ``/entry/<stream>``: every stream, one row per event as measured: a field per
    data key (frames included; ragged arrays skipped and listed in the group's
    ``acq_skipped_ragged_keys``), plus ``time`` (s) and ``seq_num``.
  - Names: data keys and stream names become NeXus names (NXDL's ``validItemName``,
    and no ``.`` and no leading digit, which nexusformat also demands): every other
    character becomes ``_``, a leading digit gets a ``_`` in front, at most 63
    characters; a name already taken in its group gets
    ``_1``, ``_2``, ... in the order of the descriptor's data keys. Each field keeps
    its data key in its ``data_key`` and ``long_name`` attributes (plus ``units`` and
    ``source``); each stream group its stream name in ``stream_name``.
  - The plotted stream is an ``NXdata`` (the others are ``NXcollection``): ``primary``
    if the run has it, else the first stream the plan's hints name, else the first
    stream that is not ``baseline`` or a ``*_monitor``, else any -- the first of these
    with a numeric field to plot. Its ``signal`` is the first hinted detector field,
    else its first numeric scalar field (else a numeric array field). Its ``axes``: the
    plan's dimension when there is one (``hints["dimensions"]`` of that stream, else
    the Start's ``motors``); ``seq_num`` when there is none or several (a grid in
    event order). Every dimension field gets ``AXISNAME_indices = 0``.
  - A grid (the Start has a ``shape`` of two or more dimensions matching the
    stream's dimensions, e.g. ``grid_scan``) also gets ``/entry/grid`` (``NXdata``):
    the signal and every other numeric scalar field placed on the grid (shape =
    ``shape``, the first motor slowest), **un-snaked** (the Start's ``snaking``: a
    snaking axis's reversed passes are put back in order; ``@unsnaked`` says whether
    any was), ``seq_num`` on the grid (which event each cell holds; 0 for none), and
    per dimension a 1-D field named after its motor's data key holding that motor's
    mean readback along the dimension, listed in ``axes`` slowest first with
    ``AXISNAME_indices = k``. A run cut short leaves NaN in the cells (and axis
    values) it did not reach.
  - ``/@default`` is ``entry``; ``/entry/@default`` is ``grid`` for a grid, else the
    plotted stream (no default when nothing numeric was measured).
"""

from __future__ import annotations

import csv
import datetime
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from ._codec import dumps
from ._external import h5py

if TYPE_CHECKING:
    from ._catalog import Run
    from ._stream import StreamData

__all__ = ["export_csv", "export_nexus", "nexus_name"]

MAX_NAME = 63
"""NXDL's limit on the length of a name."""

_NOT_IN_NAME = re.compile(r"[^A-Za-z0-9_]")
_ENTRY_FIELDS = ("title", "entry_identifier", "start_time", "end_time", "sample", "acq")


def export_csv(run: Run, path: str | os.PathLike[str], stream: str = "primary") -> Path:
    """Write ``stream`` of ``run`` as CSV; return the path written."""
    data = run[stream].read()
    keys = [k for k in data if data[k].ndim == 1]
    columns = [np.asarray(data[k]).tolist() for k in keys]
    target = Path(path)
    with target.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["seq_num", "time", *keys])
        for i, (seq, t) in enumerate(zip(data.seq_num.tolist(), data.time.tolist(), strict=True)):
            writer.writerow([seq, repr(t), *(_cell(c[i]) for c in columns)])
    return target


def _cell(value: Any) -> Any:
    if isinstance(value, float):
        return repr(value)
    return "" if value is None else value


def nexus_name(key: str) -> str:
    """``key`` as a NeXus name (see the module docstring), before making it unique.

    >>> nexus_name("det-stats-total"), nexus_name("2theta"), nexus_name("I0:diode")
    ('det_stats_total', '_2theta', 'I0_diode')
    """
    name = _NOT_IN_NAME.sub("_", key)
    if not name or name[0].isdigit():
        name = "_" + name
    return name[:MAX_NAME]


class _Names:
    """Unique NeXus names in one group, handed out in order (see the module docstring)."""

    def __init__(self, *taken: str) -> None:
        self._taken = set(taken)

    def claim(self, key: str) -> str:
        base = name = nexus_name(key)
        n = 0
        while name in self._taken:
            n += 1
            suffix = f"_{n}"
            name = base[: MAX_NAME - len(suffix)] + suffix
        self._taken.add(name)
        return name


@dataclass(frozen=True)
class _Plot:
    """What the default plot shows: a stream's signal against its dimensions."""

    stream: str
    signal: str
    dimensions: list[list[str]]
    """Per dimension (slowest first), the stream's numeric scalar fields that give it."""


def _numeric(column: Any) -> bool:
    return np.dtype(column.dtype).kind in "biuf"


def _scalars(data: StreamData) -> list[str]:
    """The stream's numeric keys with one value per event."""
    return [k for k in data if data[k].ndim == 1 and _numeric(data[k])]


def _dimensions(run: Run, data: StreamData) -> list[list[str]]:
    """The plan's dimensions in ``data``: its hints for this stream, else its motors."""
    scalars = _scalars(data)
    dimensions: list[list[str]] = []
    for fields, stream in run.start.get("hints", {}).get("dimensions", []):
        present = [f for f in fields if f in scalars] if stream == data.name else []
        if present:
            dimensions.append(present)
    if dimensions:
        return dimensions
    motors = [m for m in run.start.get("motors", []) if m in scalars]
    shape = run.start.get("shape")
    if isinstance(shape, list) and len(cast("list[Any]", shape)) == len(motors) > 1:
        return [[m] for m in motors]
    return [motors] if motors else []


def _signal(run: Run, data: StreamData, dimensions: list[list[str]]) -> str | None:
    """A hinted detector field, else the first numeric scalar, else a numeric array."""
    axes = {f for fields in dimensions for f in fields}
    descriptor_hints: dict[str, Any] = {}
    for descriptor in data.descriptors:
        descriptor_hints.update(descriptor.get("hints", {}))
    hinted: list[str] = []
    for obj in [*run.start.get("detectors", []), *descriptor_hints]:
        hinted += [f for f in descriptor_hints.get(obj, {}).get("fields", []) if f not in hinted]
    scalars = _scalars(data)
    arrays = [k for k in data if data[k].ndim > 1 and _numeric(data[k])]
    candidates = [f for f in hinted if f in scalars] + scalars + arrays
    return next((c for c in candidates if c not in axes), None)


def _plot(run: Run, streams: Mapping[str, StreamData]) -> _Plot | None:
    """The stream, signal and dimensions of the default plot (see the module docstring)."""
    hinted = [s for _, s in run.start.get("hints", {}).get("dimensions", [])]
    ordinary = [s for s in streams if s != "baseline" and not s.endswith("_monitor")]
    for name in dict.fromkeys(["primary", *hinted, *ordinary, *streams]):
        if name not in streams:
            continue
        dimensions = _dimensions(run, streams[name])
        signal = _signal(run, streams[name], dimensions)
        if signal is not None:
            return _Plot(name, signal, dimensions)
    return None


def export_nexus(run: Run, path: str | os.PathLike[str]) -> Path:
    """Write ``run`` as a NeXus/HDF5 file; return the path written.

    The layout (groups, names, the default plot, grids) is in the module docstring.
    """
    target = Path(path)
    start, stop = run.start, run.stop
    streams = {name: run[name].read() for name in run.streams}
    plot = _plot(run, streams)
    with h5py().File(target, "w") as f:
        f.attrs.update(
            {"NX_class": "NXroot", "default": "entry", "creator": "acq", "file_name": target.name}
        )
        f.attrs["file_time"] = datetime.datetime.now().astimezone().isoformat()
        entry = f.create_group("entry")
        entry.attrs["NX_class"] = "NXentry"
        entry["title"] = f"{start.get('plan_name', 'run')} scan_id={run.scan_id}"
        entry["entry_identifier"] = run.uid
        entry["start_time"] = _iso(start["time"])
        if stop is not None:
            entry["end_time"] = _iso(stop["time"])
        sample: Any = start.get("sample")
        name: Any = cast(dict[str, Any], sample).get("name") if isinstance(sample, dict) else sample
        if name is not None:
            group = entry.create_group("sample")
            group.attrs["NX_class"] = "NXsample"
            group["name"] = str(name)
        notes = entry.create_group("acq")
        notes.attrs["NX_class"] = "NXcollection"
        notes["start"] = dumps(start)
        notes["stop"] = dumps(stop)
        names = _Names(*_ENTRY_FIELDS)
        for stream, data in streams.items():
            group = entry.create_group(names.claim(stream))
            group.attrs["stream_name"] = stream
            fields = _write_stream(group, data)
            if plot is None or plot.stream != stream:
                group.attrs["NX_class"] = "NXcollection"
                continue
            _mark_plot(group, plot, data, fields)
            entry.attrs["default"] = group.name.rsplit("/", 1)[-1]
            shape = _grid_shape(run.start, plot, data)
            if shape is not None:
                grid = entry.create_group(names.claim("grid"))
                _write_grid(grid, run.start, plot, data, shape)
                entry.attrs["default"] = grid.name.rsplit("/", 1)[-1]
    return target


def _write_stream(group: Any, data: StreamData) -> dict[str, str]:
    """Write every column of ``data`` into ``group``; return each key's field name."""
    names = _Names("time", "seq_num")
    fields: dict[str, str] = {}
    skipped: list[str] = []
    for key in data:
        values = np.asarray(data[key])
        if values.dtype == object:
            if any(isinstance(v, np.ndarray | list) for v in values):
                skipped.append(key)
                continue
            values = np.asarray(
                ["" if v is None else str(v) for v in values], dtype=h5py().string_dtype()
            )
        fields[key] = names.claim(key)
        _describe(group.create_dataset(fields[key], data=values), key, data.data_keys)
    group.create_dataset("time", data=data.time).attrs["units"] = "s"
    group.create_dataset("seq_num", data=data.seq_num)
    if skipped:
        group.attrs["acq_skipped_ragged_keys"] = skipped
    return fields


def _describe(dataset: Any, key: str, data_keys: Mapping[str, Mapping[str, Any]]) -> None:
    """Label a field with its data key (``data_key``, ``long_name``), units and source."""
    dataset.attrs["data_key"] = key
    dataset.attrs["long_name"] = key
    for attr in ("units", "source"):
        value = data_keys.get(key, {}).get(attr)
        if value is not None:
            dataset.attrs[attr] = str(value)


def _mark_plot(group: Any, plot: _Plot, data: StreamData, fields: Mapping[str, str]) -> None:
    """Make the plotted stream's group an NXdata, in event order."""
    group.attrs["NX_class"] = "NXdata"
    group.attrs["signal"] = fields[plot.signal]
    axis = fields[plot.dimensions[0][0]] if len(plot.dimensions) == 1 else "seq_num"
    group.attrs["axes"] = [axis] + ["."] * (data[plot.signal].ndim - 1)
    group.attrs[f"{axis}_indices"] = 0
    for key in (f for fields_ in plot.dimensions for f in fields_):
        group.attrs[f"{fields[key]}_indices"] = 0


def _grid_shape(start: Mapping[str, Any], plot: _Plot, data: StreamData) -> tuple[int, ...] | None:
    """The Start's grid ``shape`` when the plotted stream fills it (in part), else None."""
    shape: Any = start.get("shape")
    if data[plot.signal].ndim != 1:
        return None
    if not isinstance(shape, list | tuple) or len(cast("Sequence[Any]", shape)) < 2:
        return None
    dims = cast("Sequence[Any]", shape)
    if not all(isinstance(n, int) and n > 0 for n in dims) or len(dims) != len(plot.dimensions):
        return None
    grid = tuple(cast("Sequence[int]", dims))
    return grid if 0 < len(data.seq_num) <= math.prod(grid) else None


def _grid_cells(
    events: int, shape: tuple[int, ...], snaking: Sequence[bool]
) -> tuple[np.ndarray[Any, Any], ...]:
    """The grid index of each event, per dimension, with snaking passes put back in order.

    Event ``n`` is point ``n`` of the trajectory, the first dimension slowest; a
    snaking dimension runs backwards on every other pass (its passes are counted by
    the points of the dimensions outside it), as ``grid_scan`` moves it.
    """
    point = np.arange(events)
    cells: list[np.ndarray[Any, Any]] = []
    for k, size in enumerate(shape):
        inner = math.prod(shape[k + 1 :])
        index = (point // inner) % size
        if k < len(snaking) and snaking[k]:
            backwards = (point // (inner * size)) % 2 == 1
            index = np.where(backwards, size - 1 - index, index)
        cells.append(index)
    return tuple(cells)


def _snaking(start: Mapping[str, Any], ndim: int) -> list[bool]:
    """Which grid dimensions snake: the Start's ``snaking``, else its pattern's ``snake_axes``.

    ``list_grid_scan`` records only ``plan_pattern_args["snake_axes"]``: True (every
    dimension but the first) or the names of the motors that snake.
    """
    snaking: Any = start.get("snaking")
    if isinstance(snaking, list) and len(cast("list[Any]", snaking)) == ndim:
        return [bool(s) for s in cast("list[Any]", snaking)]
    pattern: Any = start.get("plan_pattern_args")
    axes: Any = (
        cast("dict[str, Any]", pattern).get("snake_axes") if isinstance(pattern, dict) else None
    )
    if axes is True:
        return [False] + [True] * (ndim - 1)
    motors: list[Any] = start.get("motors", [])
    if isinstance(axes, list) and len(motors) == ndim:
        return [k > 0 and m in cast("list[Any]", axes) for k, m in enumerate(motors)]
    return [False] * ndim


def _write_grid(
    group: Any, start: Mapping[str, Any], plot: _Plot, data: StreamData, shape: tuple[int, ...]
) -> None:
    """The plotted stream's numeric scalars on the grid, with one 1-D axis per dimension."""
    events = len(data.seq_num)
    snaking = _snaking(start, len(shape))
    cells = _grid_cells(events, shape, snaking)
    full = events == math.prod(shape)
    dimension_keys = [f for fields in plot.dimensions for f in fields]
    names = _Names("seq_num")
    group.attrs["NX_class"] = "NXdata"
    group.attrs["stream_name"] = plot.stream
    group.attrs["unsnaked"] = int(any(snaking))
    axes: list[str] = []
    for k, fields in enumerate(plot.dimensions):
        for key in fields:
            on_grid = _on_grid(np.asarray(data[key], dtype=float), cells, shape, False)
            along = np.moveaxis(on_grid, k, 0).reshape(shape[k], -1)
            counts = np.count_nonzero(~np.isnan(along), axis=1)
            sums = np.nansum(along, axis=1)
            values = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
            name = names.claim(key)
            _describe(group.create_dataset(name, data=values), key, data.data_keys)
            group.attrs[f"{name}_indices"] = k
            if key == fields[0]:
                axes.append(name)
    for key in [plot.signal, *(k for k in _scalars(data) if k != plot.signal)]:
        if key in dimension_keys:
            continue
        name = names.claim(key)
        values = _on_grid(np.asarray(data[key]), cells, shape, full)
        _describe(group.create_dataset(name, data=values), key, data.data_keys)
        if key == plot.signal:
            group.attrs["signal"] = name
    seq_num = np.zeros(shape, dtype=np.int64)
    seq_num[cells] = data.seq_num
    group.create_dataset("seq_num", data=seq_num)
    group.attrs["axes"] = axes


def _on_grid(
    values: np.ndarray[Any, Any],
    cells: tuple[np.ndarray[Any, Any], ...],
    shape: tuple[int, ...],
    full: bool,
) -> np.ndarray[Any, Any]:
    """``values`` (one per event) placed on the grid; NaN where no event is (as floats)."""
    grid = np.empty(shape, values.dtype) if full else np.full(shape, np.nan)
    grid[cells] = values
    return grid


def _iso(t: float) -> str:
    return datetime.datetime.fromtimestamp(t).astimezone().isoformat()
