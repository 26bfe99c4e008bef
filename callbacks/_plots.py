"""LivePlot, LiveScatter and LiveGrid: bokeh figures that draw a scan while it runs.

Each is a :class:`~acq.callbacks._live_figure.LiveFigure`: an ordinary subscriber
that batches points and redraws at a bounded rate; it shows in a Jupyter cell,
on a live page (``await plot.serve()``) and in a standalone HTML file
(``plot.save(path)``).

Every data source a figure draws carries a name, so that a page can find it with
BokehJS (``Bokeh.documents[0].get_model_by_name(name)``): ``"<y>#<run>"`` for a
LivePlot line (``"det#1"``: field ``det`` of the first run the plot received),
``"<I>#<run>"`` for LiveScatter's points and LiveGrid's image.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bokeh.models import ColumnDataSource, Legend, Title
from bokeh.palettes import Category10_10
from event_model.documents import EventDescriptor, RunStart

from ._figure_parts import (
    Limits,
    ValueRange,
    axis_label,
    check_fields,
    colour_figure,
    floats,
    line_figure,
    run_label,
    set_limits,
    waiting_label,
)
from ._live_figure import Columns, Feed, LiveFigure

__all__ = ["LivePlot", "LiveScatter"]


def _x_column(
    x: str | None, descriptor: EventDescriptor, start: RunStart
) -> tuple[str | None, Callable[[Columns, Sequence[int], Sequence[float]], list[float]]]:
    """The data key x reads (or None) and how to get x values from rows."""
    if x is not None and x in descriptor["data_keys"]:
        return x, lambda data, seq, t: floats(data[x])
    if x == "time":
        t0 = start["time"]
        return None, lambda data, seq, t: [v - t0 for v in t]
    return None, lambda data, seq, t: [float(s) for s in seq]


# -- LivePlot ----------------------------------------------------------------------------
@dataclass
class _Line:
    name: str
    label: str
    color: str
    x: list[float] = field(default_factory=list[float])
    y: list[float] = field(default_factory=list[float])


class _LineFeed(Feed):
    def __init__(
        self,
        x_of: Callable[[Columns, Sequence[int], Sequence[float]], list[float]],
        x_field: str | None,
        lines: dict[str, _Line],
    ) -> None:
        self.x_of = x_of
        self.lines = lines
        self.fields = tuple(([x_field] if x_field else []) + list(lines))

    def add(self, data: Columns, seq_num: Sequence[int], time: Sequence[float]) -> None:
        xs = self.x_of(data, seq_num, time)
        for y, line in self.lines.items():
            line.x.extend(xs)
            line.y.extend(floats(data[y]))


class LivePlot(LiveFigure):
    """One or more fields against another field, seq_num or time, run after run.

    Args:
        y: the field (or fields) on the vertical axis.
        x: the field on the horizontal axis; ``None`` or ``"seq_num"`` for the point
            number, ``"time"`` for seconds since the run started.
        legend_keys: start-document keys added to each line's legend entry (which
            always names the field and the scan_id).
        xlim: fixed horizontal limits (default: follow the data).
        ylim: fixed vertical limits (default: follow the data).
        width: in pixels.
        height: in pixels.
        **options: ``stream``, ``redraw_interval``, ``notebook``, ``title`` (see
            :class:`~acq.callbacks._live_figure.LiveFigure`).

    Each run draws a new line per field, overlaid on the earlier runs' lines.
    """

    def __init__(
        self,
        y: str | Sequence[str],
        x: str | None = None,
        *,
        legend_keys: Sequence[str] = (),
        xlim: Limits | None = None,
        ylim: Limits | None = None,
        width: int = 700,
        height: int = 400,
        **options: Any,
    ) -> None:
        self.y = [y] if isinstance(y, str) else list(y)
        if not self.y:
            raise ValueError("LivePlot needs at least one y field")
        self.x = x
        self.legend_keys = tuple(legend_keys)
        self.xlim, self.ylim = xlim, ylim
        self.width, self.height = width, height
        self._lines: list[_Line] = []
        self._labels = (x or "seq_num", ", ".join(self.y))
        super().__init__(**options)
        self.title = self.title or f"{', '.join(self.y)} vs {self._labels[0]}"

    def feed(self, start: RunStart, descriptor: EventDescriptor, run: int) -> Feed | None:
        """Lines for this run's fields."""
        if not check_fields("LivePlot", self.y, descriptor, self.stream is not None):
            return None
        x_field, x_of = _x_column(self.x, descriptor, start)
        if x_field is None and self.x not in (None, "seq_num", "time"):
            raise ValueError(
                f"LivePlot: x={self.x!r} is not in stream {descriptor.get('name')!r} "
                f"(its fields: {sorted(descriptor['data_keys'])}; or use 'time' / 'seq_num')"
            )
        if x_field is not None:
            check_fields("LivePlot", [x_field], descriptor, True)
        xlabel = axis_label(x_field, descriptor) if x_field else self._time_label()
        self._labels = (xlabel, ", ".join(axis_label(y, descriptor) for y in self.y))
        label = run_label(start, self.legend_keys)
        lines: dict[str, _Line] = {}
        for y in self.y:
            color = Category10_10[len(self._lines) % len(Category10_10)]
            line = _Line(f"{y}#{run}", f"{y}  {label}", color)
            self._lines.append(line)
            lines[y] = line
        return _LineFeed(x_of, x_field, lines)

    def _time_label(self) -> str:
        return "time since start (s)" if self.x == "time" else "seq_num"

    def new_view(self) -> _LinesView:
        """A figure with a line per field and run."""
        return _LinesView(self)


class _LinesView:
    def __init__(self, plot: LivePlot) -> None:
        self._plot = plot
        self.root = line_figure(plot.title or "", plot.width, plot.height, plot.xlim, plot.ylim)
        self.root.add_layout(Legend(location="top_left", click_policy="hide"), "right")
        self._waiting = waiting_label(self.root)
        self._drawn: dict[str, tuple[ColumnDataSource, int]] = {}

    def refresh(self) -> None:
        fig, plot = self.root, self._plot
        fig.xaxis.axis_label, fig.yaxis.axis_label = plot._labels  # pyright: ignore[reportPrivateUsage]
        for line in plot._lines:  # pyright: ignore[reportPrivateUsage]
            drawn = self._drawn.get(line.name)
            old, n = (drawn[1] if drawn else 0), len(line.y)
            rows: dict[str, Any] = {"x": line.x[old:n], "y": line.y[old:n]}
            if drawn is None:
                source = ColumnDataSource(rows, name=line.name)
                self._waiting.visible = False
                fig.line("x", "y", source=source, color=line.color, legend_label=line.label)
                fig.scatter(
                    "x", "y", source=source, color=line.color, size=5, legend_label=line.label
                )
                self._drawn[line.name] = (source, n)
            elif n > old:
                drawn[0].stream(rows)
                self._drawn[line.name] = (drawn[0], n)


# -- LiveScatter ---------------------------------------------------------------------------
@dataclass
class _Points:
    name: str
    label: str
    x: list[float] = field(default_factory=list[float])
    y: list[float] = field(default_factory=list[float])
    v: list[float] = field(default_factory=list[float])


class _PointFeed(Feed):
    def __init__(self, fields: tuple[str, str, str], points: _Points, vrange: ValueRange) -> None:
        self.fields = fields
        self.points = points
        self.vrange = vrange

    def add(self, data: Columns, seq_num: Sequence[int], time: Sequence[float]) -> None:
        x, y, v = self.fields
        values = floats(data[v])
        self.points.x.extend(floats(data[x]))
        self.points.y.extend(floats(data[y]))
        self.points.v.extend(values)
        self.vrange.update(values)


class LiveScatter(LiveFigure):
    """Points at (x, y) coloured by the value of ``I``: scans that are not a grid.

    Args:
        x: the field on the horizontal axis.
        y: the field on the vertical axis.
        I: the field whose value colours each point.
        clim: fixed colour limits (default: the values' range so far).
        palette: a bokeh palette name or a list of colours.
        xlim: fixed horizontal limits.
        ylim: fixed vertical limits.
        width: in pixels.
        height: in pixels.
        **options: ``stream``, ``redraw_interval``, ``notebook``, ``title``.
    """

    def __init__(
        self,
        x: str,
        y: str,
        I: str,  # noqa: E741 -- bluesky's name for the intensity
        *,
        clim: Limits | None = None,
        palette: str | Sequence[str] = "Viridis256",
        xlim: Limits | None = None,
        ylim: Limits | None = None,
        width: int = 600,
        height: int = 500,
        **options: Any,
    ) -> None:
        self.x, self.y, self.I = x, y, I
        self.clim, self.palette = clim, palette
        self.xlim, self.ylim = xlim, ylim
        self.width, self.height = width, height
        self._points: list[_Points] = []
        self._range = ValueRange()
        self._labels = (x, y, I)
        super().__init__(**options)
        self.title = self.title or f"{I} at ({x}, {y})"

    def feed(self, start: RunStart, descriptor: EventDescriptor, run: int) -> Feed | None:
        """Points for this run."""
        fields = (self.x, self.y, self.I)
        if not check_fields("LiveScatter", fields, descriptor, self.stream is not None):
            return None
        self._labels = (
            axis_label(self.x, descriptor),
            axis_label(self.y, descriptor),
            axis_label(self.I, descriptor),
        )
        points = _Points(f"{self.I}#{run}", run_label(start))
        self._points.append(points)
        return _PointFeed(fields, points, self._range)

    def new_view(self) -> _ScatterView:
        """A scatter plot with a colour bar."""
        return _ScatterView(self)


class _ScatterView:
    def __init__(self, plot: LiveScatter) -> None:
        self._plot = plot
        self.root, self._mapper = colour_figure(
            plot.title or "", (plot.width, plot.height), plot.palette, plot.xlim, plot.ylim
        )
        self._waiting = waiting_label(self.root)
        self._drawn: dict[str, tuple[ColumnDataSource, int]] = {}

    def refresh(self) -> None:
        fig, plot = self.root, self._plot
        labels = plot._labels  # pyright: ignore[reportPrivateUsage]
        fig.xaxis.axis_label, fig.yaxis.axis_label = labels[:2]
        runs = ", ".join(p.label for p in plot._points)  # pyright: ignore[reportPrivateUsage]
        if runs and isinstance(fig.title, Title):
            fig.title.text = f"{plot.title}  {runs}"
        set_limits(self._mapper, plot._range.limits(plot.clim))  # pyright: ignore[reportPrivateUsage]
        for points in plot._points:  # pyright: ignore[reportPrivateUsage]
            drawn = self._drawn.get(points.name)
            old, n = (drawn[1] if drawn else 0), len(points.v)
            rows: dict[str, Any] = {
                "x": points.x[old:n],
                "y": points.y[old:n],
                "I": points.v[old:n],
            }
            if drawn is None:
                source = ColumnDataSource(rows, name=points.name)
                self._waiting.visible = False
                fig.scatter(
                    "x",
                    "y",
                    source=source,
                    size=9,
                    line_color=None,
                    fill_color={"field": "I", "transform": self._mapper},
                )
                self._drawn[points.name] = (source, n)
            elif n > old:
                drawn[0].stream(rows)
                self._drawn[points.name] = (drawn[0], n)
