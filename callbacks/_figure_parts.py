"""Small pieces the live figures share: reading columns, labels, colour ranges."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from bokeh.models import ColorBar, Label, LinearColorMapper
from bokeh.plotting import figure
from event_model.documents import EventDescriptor, RunStart

__all__ = [
    "Limits",
    "floats",
    "check_fields",
    "axis_label",
    "run_label",
    "ValueRange",
    "colour_figure",
    "set_limits",
    "line_figure",
    "waiting_label",
]

Limits = tuple[float, float]
_NUMERIC = frozenset({"number", "integer", "boolean"})


def floats(column: Sequence[Any]) -> list[float]:
    """A column of numbers (list or numpy array) as a list of floats."""
    if len(column) == 1:
        return [float(column[0])]
    return np.asarray(column, dtype=float).tolist()


def check_fields(
    owner: str, fields: Sequence[str], descriptor: EventDescriptor, required: bool
) -> bool:
    """True if every field is a scalar number of the stream.

    Raises:
        ValueError: a field is missing (when ``required``) or is not a scalar number.
    """
    keys = descriptor["data_keys"]
    missing = [f for f in fields if f not in keys]
    if missing:
        if not required:
            return False
        raise ValueError(
            f"{owner}: {missing} not in stream {descriptor.get('name')!r} "
            f"(its fields: {sorted(keys)})"
        )
    for f in fields:
        key = keys[f]
        if key["dtype"] not in _NUMERIC or key["shape"]:
            raise ValueError(
                f"{owner}: field {f!r} is {key['dtype']} of shape {key['shape']}; "
                "it can only draw scalar numbers"
            )
    return True


def axis_label(field: str, descriptor: EventDescriptor | None) -> str:
    """``field`` with its units from the descriptor, e.g. ``"x (mm)"``."""
    if descriptor is None:
        return field
    key: Mapping[str, Any] = descriptor["data_keys"].get(field, {})
    units = key.get("units")
    return f"{field} ({units})" if units else field


def run_label(start: RunStart, keys: Sequence[str] = ()) -> str:
    """``"scan 3"`` (or the uid's start), then ``key=value`` for each of ``keys``."""
    scan_id = start.get("scan_id")
    words = [f"scan {scan_id}" if scan_id is not None else start["uid"][:8]]
    words += [f"{k}={start.get(k)}" for k in keys]
    return "  ".join(words)


class ValueRange:
    """The running minimum and maximum of a figure's colour values."""

    def __init__(self) -> None:
        self.low = np.inf
        self.high = -np.inf

    def update(self, values: Sequence[float]) -> None:
        """Widen the range to include the finite ``values``."""
        finite = [v for v in values if np.isfinite(v)]
        if finite:
            self.low = min(self.low, *finite)
            self.high = max(self.high, *finite)

    def limits(self, clim: Limits | None) -> Limits | None:
        """``clim`` if given, else the range so far (None before any value)."""
        if clim is not None:
            return clim
        if self.low > self.high:
            return None
        return (self.low, self.high) if self.high > self.low else (self.low, self.low + 1.0)


def line_figure(
    title: str, width: int, height: int, xlim: Limits | None, ylim: Limits | None
) -> figure:
    """A bokeh figure with fixed limits where given (else following the data)."""
    ranges: dict[str, Any] = {}
    if xlim is not None:
        ranges["x_range"] = xlim
    if ylim is not None:
        ranges["y_range"] = ylim
    return figure(title=title, width=width, height=height, **ranges)


def colour_figure(
    title: str,
    size: tuple[int, int],
    palette: str | Sequence[str],
    xlim: Limits | None = None,
    ylim: Limits | None = None,
) -> tuple[figure, LinearColorMapper]:
    """A figure with a colour bar on the right, and the bar's colour mapper."""
    fig = line_figure(title, size[0], size[1], xlim, ylim)
    mapper = LinearColorMapper(palette=palette, nan_color=(0, 0, 0, 0))
    fig.add_layout(ColorBar(color_mapper=mapper), "right")
    return fig, mapper


def set_limits(mapper: LinearColorMapper, limits: Limits | None) -> None:
    """Set the colour limits, when they changed."""
    if limits is not None and (mapper.low, mapper.high) != limits:
        mapper.low, mapper.high = limits


def waiting_label(fig: figure) -> Label:
    """A note in an empty figure (hide it once data comes)."""
    label = Label(
        x=10, y=10, x_units="screen", y_units="screen", text="waiting for data...",
        text_color="gray", text_font_size="12px",
    )  # fmt: skip
    fig.add_layout(label)
    return label
