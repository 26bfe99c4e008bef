"""LiveTable: the run's events as rows of a text table, printed as they arrive.

::

    await RE(scan([det], x, -1, 1, 3), LiveTable(["x", "det"]))

prints::

    scan_id=1  uid=602d3a04  plan_name=scan
    +---------+--------------+------------+--------------+
    | seq_num |         time |     x [mm] | det [counts] |
    +---------+--------------+------------+--------------+
    |       1 | 10:21:07.512 |     -1.000 |        0.607 |
    |       2 | 10:21:07.514 |      0.000 |        1.000 |
    |       3 | 10:21:07.516 |      1.000 |        0.607 |
    +---------+--------------+------------+--------------+
    exit_status=success  num_events=3  duration=0.031 s

Everything shown comes from the documents (units and precision from the descriptor's
data keys), so the table works as well on documents replayed from storage.

Lines go to stdout through any text progress bar on the terminal (the bar is cleared,
the line printed, the bar redrawn: :func:`~acq.callbacks._progress.print_through_bars`),
so a :class:`~acq.callbacks.ProgressBar` on stderr never breaks a row.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import numpy as np
from event_model import (
    DataKey,
    DocumentRouter,
    Event,
    EventDescriptor,
    EventPage,
    RunStart,
    RunStop,
    unpack_event_page,  # pyright: ignore[reportUnknownVariableType]
)

from ._progress import print_through_bars

__all__ = ["LiveTable"]

_ELLIPSIS = "…"
_TIME_WIDTH = len("12:34:56.789")


@dataclass(frozen=True)
class _Column:
    """One column: its heading, its width and the text of its cell for an event."""

    label: str
    width: int
    cell: Callable[[Event], str]


def fit(text: str, width: int) -> str:
    """Return ``text``, cut to ``width`` characters with a trailing ellipsis if longer."""
    return text if len(text) <= width else text[: width - 1] + _ELLIPSIS


def format_number(value: float, precision: int, width: int) -> str:
    """Format a number to fit ``width`` characters.

    ``precision`` decimals, or as many significant digits as fit when that is wider.
    """
    text = f"{value:.{precision}f}"
    for digits in range(width, 0, -1):
        if len(text) <= width:
            return text
        text = f"{value:.{digits}g}"
    return text if len(text) <= width else "#" * width


def shape_text(shape: Sequence[int | None]) -> str:
    """``(240, 320)``: how an array shows in a cell."""
    return str(tuple(shape))


def _cell_renderer(key: DataKey, width: int, default_prec: int) -> Callable[[Any], str]:
    """How the values of one data key show in a cell of ``width`` characters."""
    if key.get("external"):
        # stored elsewhere (the event holds a datum id, or nothing): show the shape
        summary = fit(shape_text(key.get("shape") or []), width)
        return lambda _value: summary
    precision = key.get("precision")
    prec = int(precision) if isinstance(precision, int | float) else default_prec
    integer = key.get("dtype") == "integer"

    def render(raw: Any) -> str:
        value = cast(object, raw.value if isinstance(raw, enum.Enum) else raw)
        if isinstance(value, np.generic):
            value = cast(object, value.item())  # the Python bool, int, float or str
        if value is None:
            return ""
        if isinstance(value, bool):
            return str(value)
        if isinstance(value, int) and (integer or prec == 0):
            return format_number(value, 0, width)
        if isinstance(value, int | float):
            return format_number(value, prec, width)
        if isinstance(value, list | tuple | np.ndarray):
            return fit(shape_text(np.shape(cast(Any, value))), width)
        return fit(str(value), width)

    return render


class LiveTable(DocumentRouter):
    """Print the events of one stream as table rows while a run goes.

    Each run prints a header line (``scan_id``, the first 8 characters of the ``uid``,
    ``plan_name``), then a table whose columns are ``seq_num``, the event's local time
    and the chosen fields, then a footer line (``exit_status``, ``num_events`` of the
    stream, the run's duration, and the ``reason`` when there is one). Event Pages are
    shown row by row.

    A field names a data key, or a device (a key of the descriptor's ``object_keys``),
    which stands for the device's hinted fields (the descriptor's ``hints``) or, when it
    gives none, all its data keys. A device object may be given for its name. Fields
    that the stream does not have are left out.

    Cells: numbers get the data key's ``precision`` (else ``default_prec``) decimals,
    switching to as many significant digits as fit when too wide; integers and
    booleans show as such; strings are cut to the column with an ellipsis; arrays
    and externally stored data (``external`` data keys, e.g. area-detector frames) show
    their shape, such as ``(240, 320)``. The heading carries the units:
    ``x [mm]``.

    Args:
        fields: The data keys or devices to show, in order; ``None`` shows every
            device's hinted fields.
        stream: The event stream shown.
        out: Called with each line of text; by default the line is printed to stdout
            through any text progress bar on the terminal (:func:`print_through_bars`).
        default_prec: Decimals for numbers whose data key gives no precision.
        min_width: The narrowest data column, in characters.
        header_interval: Repeat the column headings every this many rows; ``None``
            never repeats them.
    """

    def __init__(
        self,
        fields: Sequence[str | Any] | None,
        *,
        stream: str = "primary",
        out: Callable[[str], object] = print_through_bars,
        default_prec: int = 3,
        min_width: int = 10,
        header_interval: int | None = 50,
    ) -> None:
        super().__init__()  # pyright: ignore[reportUnknownMemberType]
        if default_prec < 0 or min_width < 1:
            raise ValueError(
                f"default_prec must be >= 0 and min_width >= 1, got {default_prec}, {min_width}"
            )
        if header_interval is not None and header_interval < 1:
            raise ValueError(f"header_interval must be >= 1 or None, got {header_interval}")
        self._fields = None if fields is None else [_field(f) for f in fields]
        self._stream = stream
        self._out = out
        self._default_prec = default_prec
        self._min_width = min_width
        self._header_interval = header_interval
        self._start: RunStart | None = None
        self._descriptors: set[str] = set()
        self._columns: list[_Column] = []
        self._rows = 0

    # -- documents ----------------------------------------------------------------------
    def start(self, doc: RunStart) -> None:
        """Print the run's header line and forget the previous run."""
        self._start = doc
        self._descriptors.clear()
        self._columns = []
        self._rows = 0
        scan_id, plan_name = doc.get("scan_id", "?"), doc.get("plan_name", "?")
        self._out(f"scan_id={scan_id}  uid={doc['uid'][:8]}  plan_name={plan_name}")

    def descriptor(self, doc: EventDescriptor) -> None:
        """Lay out the columns for the chosen stream and print the headings."""
        if self._start is None or doc.get("name") != self._stream:
            return
        if doc["run_start"] != self._start["uid"]:
            return
        self._descriptors.add(doc["uid"])
        columns = self._layout(doc)
        if [c.label for c in columns] == [c.label for c in self._columns]:
            self._columns = columns
            return
        if self._columns:
            self._out(self._rule())
        self._columns = columns
        self._print_headings()

    def event(self, doc: Event) -> Event:
        """Print one row."""
        if doc["descriptor"] in self._descriptors:
            self._print_row(doc)
        return doc

    def event_page(self, doc: EventPage) -> EventPage:
        """Print one row per event of the page."""
        if doc["descriptor"] in self._descriptors:
            for event in cast(Iterator[Event], unpack_event_page(doc)):
                self._print_row(event)
        return doc

    def stop(self, doc: RunStop) -> None:
        """Close the table and print the footer line."""
        start = self._start
        if start is not None and doc["run_start"] != start["uid"]:
            return
        if self._columns:
            self._out(self._rule())
        counts: Mapping[str, int] = doc.get("num_events") or {}
        parts = [
            f"exit_status={doc['exit_status']}",
            f"num_events={counts.get(self._stream, self._rows)}",
        ]
        if start is not None:
            parts.append(f"duration={doc['time'] - start['time']:.3f} s")
        if doc.get("reason"):
            parts.append(f"reason={doc.get('reason')}")
        self._out("  ".join(parts))
        self._start = None
        self._descriptors.clear()
        self._columns = []

    # -- layout ---------------------------------------------------------------------------
    def _layout(self, descriptor: EventDescriptor) -> list[_Column]:
        data_keys = descriptor["data_keys"]
        columns = [
            _Column("seq_num", len("seq_num"), lambda event: str(event["seq_num"])),
            _Column("time", _TIME_WIDTH, lambda event: _clock_time(event["time"])),
        ]
        for key in _expand(self._fields, descriptor):
            data_key = data_keys[key]
            units = data_key.get("units")
            label = f"{key} [{units}]" if units else key
            width = max(self._min_width, len(label))
            render = _cell_renderer(data_key, width, self._default_prec)
            columns.append(_Column(label, width, _data_cell(key, render, data_key)))
        return columns

    def _rule(self) -> str:
        return "+" + "+".join("-" * (c.width + 2) for c in self._columns) + "+"

    def _line(self, cells: Sequence[str]) -> str:
        return (
            "|"
            + "|".join(f" {t:>{c.width}} " for c, t in zip(self._columns, cells, strict=True))
            + "|"
        )

    def _print_headings(self) -> None:
        self._out(self._rule())
        self._out(self._line([c.label for c in self._columns]))
        self._out(self._rule())

    def _print_row(self, event: Event) -> None:
        if self._header_interval and self._rows and not self._rows % self._header_interval:
            self._print_headings()
        self._rows += 1
        self._out(self._line([column.cell(event) for column in self._columns]))


def _data_cell(key: str, render: Callable[[Any], str], data_key: DataKey) -> Callable[[Event], str]:
    """The cell of one data key.

    Blank when an event lacks the key, unless the data is external (stored elsewhere):
    its shape is shown anyway.
    """
    missing = render(None) if data_key.get("external") else ""

    def cell(event: Event) -> str:
        data = event["data"]
        return render(data[key]) if key in data else missing

    return cell


def _clock_time(timestamp: float) -> str:
    """``HH:MM:SS.mmm`` in local time."""
    return datetime.fromtimestamp(timestamp).strftime("%H:%M:%S.%f")[:-3]


def _field(field: str | Any) -> tuple[str, bool]:
    """``(name, is_device)``: a string names a key (or a device), an object a device."""
    if isinstance(field, str):
        return field, False
    name = getattr(field, "name", None)
    if not isinstance(name, str) or not name:
        raise TypeError(f"LiveTable fields are data keys or named devices, got {field!r}")
    return name, True


def _expand(fields: list[tuple[str, bool]] | None, descriptor: EventDescriptor) -> list[str]:
    """The data keys the fields stand for in this descriptor, in order, once each.

    A string that is a data key stays one (a device's main key is often named like the
    device); a device object, or a string naming only a device, stands for the device's
    hinted fields, or all its keys when it hints none. With no fields: every device's
    hinted fields, all its keys if it gives no hints entry.
    """
    data_keys = descriptor["data_keys"]
    object_keys: Mapping[str, Sequence[str]] = descriptor.get("object_keys") or {}
    hints: Mapping[str, Any] = descriptor.get("hints") or {}

    def hinted(device: str) -> list[str]:
        hint = cast(Mapping[str, Any], hints.get(device) or {})
        return list(cast(Sequence[str], hint.get("fields") or []))

    keys: list[str] = []
    if fields is None:
        for device, its_keys in object_keys.items():
            keys += hinted(device) if device in hints else list(its_keys)
    else:
        for name, is_device in fields:
            if name in object_keys and (is_device or name not in data_keys):
                keys += hinted(name) or list(object_keys[name])
            else:
                keys.append(name)
    return [k for i, k in enumerate(keys) if k in data_keys and k not in keys[:i]]
