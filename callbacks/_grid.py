"""LiveGrid: a 2-D grid scan drawn as an image, pixel by pixel while it runs.

The grid's geometry comes from the run's start document as bluesky's ``grid_scan``
(and acq's) record it: ``shape`` = (rows, columns) = (points of the slow motor,
points of the fast motor), ``extents`` = ((slow start, slow stop), (fast start,
fast stop)), ``snaking`` = (False, True when the fast motor reverses on every other
row), and ``hints["dimensions"]`` naming the two motors' fields for the axis labels.
Explicit arguments override any of them.

Events fill pixels in scan order (the stream's ``seq_num``): point *n* is row
``(n-1) // columns``; its column runs backwards on odd rows of a snaking scan.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from bokeh.models import ColumnDataSource, HoverTool, Image, Title
from event_model.documents import EventDescriptor, RunStart

from ._figure_parts import (
    Limits,
    ValueRange,
    axis_label,
    check_fields,
    colour_figure,
    floats,
    run_label,
    set_limits,
)
from ._live_figure import Columns, Feed, LiveFigure

__all__ = ["LiveGrid"]

Extents = tuple[Limits, Limits]


@dataclass
class _Grid:
    name: str
    title: str
    image: np.ndarray[Any, np.dtype[np.float64]]
    extents: Extents
    snake: bool
    labels: tuple[str, str] = ("column", "row")
    version: int = 0
    values: ValueRange = field(default_factory=ValueRange)

    def put(self, seq_num: Sequence[int], values: Sequence[float]) -> None:
        rows, cols = self.image.shape
        for n, value in zip(seq_num, values, strict=True):
            row, col = divmod(n - 1, cols)
            if row >= rows:
                continue  # more points than the declared shape: not part of the grid
            if self.snake and row % 2:
                col = cols - 1 - col
            self.image[row, col] = value
        self.values.update(values)
        self.version += 1

    def placement(self) -> dict[str, Any]:
        """The image with rows and columns in increasing y and x, and where it goes."""
        (y0, y1), (x0, x1) = self.extents
        rows, cols = self.image.shape
        image = self.image
        if y1 < y0:
            image, (y0, y1) = image[::-1, :], (y1, y0)
        if x1 < x0:
            image, (x0, x1) = image[:, ::-1], (x1, x0)
        dx = (x1 - x0) / (cols - 1) if cols > 1 and x1 > x0 else 1.0
        dy = (y1 - y0) / (rows - 1) if rows > 1 and y1 > y0 else 1.0
        return {
            "image": [image.copy()],
            "x": [x0 - dx / 2],
            "y": [y0 - dy / 2],
            "dw": [cols * dx],
            "dh": [rows * dy],
        }


class _GridFeed(Feed):
    def __init__(self, field: str, grid: _Grid) -> None:
        self.fields = (field,)
        self.grid = grid

    def add(self, data: Columns, seq_num: Sequence[int], time: Sequence[float]) -> None:
        self.grid.put(seq_num, floats(data[self.fields[0]]))


class LiveGrid(LiveFigure):
    """The value of ``I`` over a 2-D grid scan, as an image (the latest run's grid).

    Args:
        I: the field whose value colours each pixel.
        shape: (rows, columns); default: the start document's ``shape``.
        extents: ((row start, row stop), (column start, column stop)) in motor units;
            default: the start document's ``extents``, else pixel numbers.
        snaking: the fast motor reverses on every other row; default: the start
            document's ``snaking``.
        clim: fixed colour limits (default: the values' range so far).
        palette: a bokeh palette name or a list of colours.
        width: in pixels.
        height: in pixels.
        **options: ``stream``, ``redraw_interval``, ``notebook``, ``title``.
    """

    def __init__(
        self,
        I: str,  # noqa: E741 -- bluesky's name for the intensity
        *,
        shape: tuple[int, int] | None = None,
        extents: Extents | None = None,
        snaking: bool | None = None,
        clim: Limits | None = None,
        palette: str | Sequence[str] = "Viridis256",
        width: int = 600,
        height: int = 500,
        **options: Any,
    ) -> None:
        self.I = I
        self.shape, self.extents, self.snaking = shape, extents, snaking
        self.clim, self.palette = clim, palette
        self.width, self.height = width, height
        self._grids: list[_Grid] = []
        super().__init__(**options)
        self.title = self.title or f"{I} grid"

    def feed(self, start: RunStart, descriptor: EventDescriptor, run: int) -> Feed | None:
        """The image of this run's grid."""
        if not check_fields("LiveGrid", [self.I], descriptor, self.stream is not None):
            return None
        shape = tuple(self.shape or start.get("shape") or ())
        if len(shape) != 2 or min(shape) < 1:
            raise ValueError(
                f"LiveGrid: run {run_label(start)} has shape {list(shape) or None}; it draws "
                "2-D grids: pass shape=(rows, columns) or run a 2-D grid_scan"
            )
        rows, cols = int(shape[0]), int(shape[1])
        extents = self.extents or _start_extents(start) or ((0, rows - 1), (0, cols - 1))
        snake = self.snaking
        if snake is None:
            snaking = list(start.get("snaking") or [False, False])
            snake = bool(snaking[1]) if len(snaking) > 1 else False
        grid = _Grid(
            f"{self.I}#{run}",
            f"{self.title}  {run_label(start)}",
            np.full((rows, cols), np.nan),
            extents,
            snake,
            _axis_labels(start, descriptor),
        )
        self._grids.append(grid)
        return _GridFeed(self.I, grid)

    def new_view(self) -> _GridView:
        """An image with a colour bar."""
        return _GridView(self)


def _start_extents(start: RunStart) -> Extents | None:
    extents: Any = start.get("extents")
    if not extents or len(extents) != 2:
        return None
    (y0, y1), (x0, x1) = extents
    return (float(y0), float(y1)), (float(x0), float(x1))


def _axis_labels(start: RunStart, descriptor: EventDescriptor) -> tuple[str, str]:
    """(x label, y label): the fast and slow motors' fields, with units."""
    dimensions: Any = start.get("hints", {}).get("dimensions") or []
    names = [fields[0] for fields, _stream in dimensions if fields]
    if len(names) != 2:
        names = list(start.get("motors") or [])
    if len(names) != 2:
        return ("column", "row")
    return axis_label(names[1], descriptor), axis_label(names[0], descriptor)


class _GridView:
    def __init__(self, plot: LiveGrid) -> None:
        self._plot = plot
        self.root, self._mapper = colour_figure(
            plot.title or "", (plot.width, plot.height), plot.palette
        )
        self._source = ColumnDataSource(
            {"image": [], "x": [], "y": [], "dw": [], "dh": []}, name=plot.I
        )
        image = Image(image="image", x="x", y="y", dw="dw", dh="dh", color_mapper=self._mapper)
        self.root.add_glyph(self._source, image)
        self.root.add_tools(HoverTool(tooltips=[("x", "$x"), ("y", "$y"), (plot.I, "@image")]))
        self._drawn = ("", -1)

    def refresh(self) -> None:
        grids = self._plot._grids  # pyright: ignore[reportPrivateUsage]
        if not grids or (grids[-1].name, grids[-1].version) == self._drawn:
            return
        grid = grids[-1]
        self._drawn = (grid.name, grid.version)
        fig = self.root
        if isinstance(fig.title, Title):
            fig.title.text = grid.title
        fig.xaxis.axis_label, fig.yaxis.axis_label = grid.labels
        set_limits(self._mapper, grid.values.limits(self._plot.clim))
        self._source.name = grid.name
        self._source.data = grid.placement()
