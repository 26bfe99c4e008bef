"""Exporting a run: a stream's scalar columns to CSV, the whole run to NeXus/HDF5.

* :func:`export_csv` -- one stream (``primary`` by default): ``seq_num``, ``time`` and
  every data key with one value per event (file-backed ones such as an area detector's
  frame sums included), one row per event; plain CSV, no comment lines.
* :func:`export_nexus` -- an ``NXentry`` named ``entry`` with the run's title, uid,
  start and end time and sample name; the primary stream as ``NXdata`` whose ``signal``
  and ``axes`` come from the run's hints (the plan's dimensions and the detectors'
  hinted fields); every other stream as an ``NXcollection``; and the Start and Stop
  documents as JSON text in ``entry/acq``. Every column is written, frames included.
"""

from __future__ import annotations

import csv
import datetime
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from ._codec import dumps
from ._config import CatalogError
from ._external import h5py

if TYPE_CHECKING:
    from ._catalog import Run
    from ._stream import StreamData

__all__ = ["export_csv", "export_nexus", "plot_fields"]


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


def plot_fields(run: Run, data: StreamData) -> tuple[list[str], str | None]:
    """The axes (the plan's dimensions) and the signal (a hinted detector field).

    Falls back to the first motor for the axis and the first other scalar column for
    the signal; an empty axes list when nothing fits.
    """
    scalars = [k for k in data if data[k].ndim == 1]
    axes: list[str] = []
    for dimension in run.start.get("hints", {}).get("dimensions", []):
        fields, stream = dimension
        if stream == data.name:
            axes += [f for f in fields if f in scalars and f not in axes]
    if not axes:
        axes = [m for m in run.start.get("motors", []) if m in scalars][:1]
    hinted: list[str] = []
    descriptor_hints: dict[str, Any] = {}
    for descriptor in data.descriptors:
        descriptor_hints.update(descriptor.get("hints", {}))
    for obj in [*run.start.get("detectors", []), *descriptor_hints]:
        hinted += [f for f in descriptor_hints.get(obj, {}).get("fields", []) if f not in hinted]
    candidates = [f for f in hinted if f in scalars and f not in axes]
    candidates += [k for k in scalars if k not in axes and k not in candidates]
    return axes, (candidates[0] if candidates else None)


def export_nexus(run: Run, path: str | os.PathLike[str]) -> Path:
    """Write ``run`` as a NeXus/HDF5 file; return the path written."""
    target = Path(path)
    start, stop = run.start, run.stop
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
        for stream in run.streams:
            _write_stream(entry, run, run[stream].read())
        if "primary" in run.streams:
            entry.attrs["default"] = "primary"
    return target


def _write_stream(entry: Any, run: Run, data: StreamData) -> None:
    group = entry.create_group(_name(data.name))
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
        dataset = group.create_dataset(_name(key), data=values)
        for attr in ("units", "source"):
            value = data.data_keys.get(key, {}).get(attr)
            if value is not None:
                dataset.attrs[attr] = str(value)
    group.create_dataset("time", data=data.time).attrs["units"] = "s"
    group.create_dataset("seq_num", data=data.seq_num)
    if skipped:
        group.attrs["acq_skipped_ragged_keys"] = skipped
    if data.name != "primary":
        group.attrs["NX_class"] = "NXcollection"
        return
    group.attrs["NX_class"] = "NXdata"
    axes, signal = plot_fields(run, data)
    if signal is None:
        raise CatalogError(f"run {run.uid[:8]} has no scalar data to write as the NXdata signal")
    group.attrs["signal"] = _name(signal)
    group.attrs["axes"] = [_name(axes[0]) if axes else "seq_num"]  # the signal is 1-D
    for axis in axes or ["seq_num"]:
        group.attrs[f"{_name(axis)}_indices"] = 0


def _name(key: str) -> str:
    return key.replace("/", "_") or "_"


def _iso(t: float) -> str:
    return datetime.datetime.fromtimestamp(t).astimezone().isoformat()
