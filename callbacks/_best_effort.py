"""BestEffort: what a scientist sees by default, with no configuration.

For each run it reads the plan's hints and the devices' hints and shows:

* a :class:`~acq.callbacks.LiveTable` of the dimension fields (the motors) and the
  detectors' hinted fields;
* a plot per hinted detector field, chosen from the dimensions in the start
  document's ``hints["dimensions"]`` (``[(fields, stream), ...]``; without it, the
  ``motors`` of the start document, else time):

  - one dimension: a :class:`~acq.callbacks.LivePlot` of the field against it (against
    time for ``count``);
  - two dimensions of a rectilinear grid (``hints["gridding"] == "rectilinear"`` and a
    2-D ``shape``, as ``grid_scan`` records): a :class:`~acq.callbacks.LiveGrid`;
  - two other dimensions (e.g. a spiral, or two motors moved together): a
    :class:`~acq.callbacks.LiveScatter`;

* and, at the end of a one-dimensional scan, each field's peak statistics
  (:class:`~acq.callbacks.PeakStats`), printed below the table.

The detectors' fields are the hinted fields (descriptor ``hints``) of the devices in
the start document's ``detectors`` (of every hinted device when it names none), less
the dimension fields; only scalar numbers are plotted.

In a Jupyter notebook the figures are displayed when the run's first event stream
begins, and each run's text (the table, then the peak statistics) goes to one display
area of its own, updated in place: a figure displayed meanwhile can no longer land
between two rows, as it did between printed lines.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from bokeh.models import Column, Div
from bokeh.util.serialization import make_id
from event_model import DocumentRouter
from event_model.documents import Event, EventDescriptor, EventPage, RunStart, RunStop

from ._bokeh_server import View
from ._grid import LiveGrid
from ._live_figure import LiveFigure
from ._live_view import LiveView, in_notebook, send_display
from ._peaks import PeakStats
from ._plots import LivePlot, LiveScatter
from ._progress import print_through_bars
from ._table import LiveTable

__all__ = ["BestEffort"]

_NUMERIC = frozenset({"number", "integer"})
Subscriber = Callable[[str, Any], Any]


class NotebookLines:
    """Lines of text shown in one display area of the running cell, updated in place.

    The area appears with the first line; later lines update it at most every
    ``interval`` seconds (a line arriving sooner waits for the next one or for
    :meth:`flush`), so a long scan costs a bounded number of updates per second.
    """

    def __init__(self, interval: float = 0.1) -> None:
        self.interval = interval
        self._lines: list[str] = []
        self._lock = threading.Lock()
        self._id = ""
        self._last = -math.inf
        self._stale = False

    def __call__(self, line: str) -> None:
        """Add a line."""
        with self._lock:
            self._lines.append(line)
            self._stale = True
            if time.monotonic() - self._last >= self.interval:
                self._send()

    def flush(self) -> None:
        """Show every line so far."""
        with self._lock:
            if self._stale:
                self._send()

    @property
    def text(self) -> str:
        """Every line so far."""
        return "\n".join(self._lines)

    def _send(self) -> None:  # under the lock
        data = {"text/plain": self.text}
        if self._id:
            send_display(data, self._id, update=True)
        else:
            self._id = make_id()
            send_display(data, self._id)
        self._last, self._stale = time.monotonic(), False


def dimensions(start: RunStart) -> tuple[list[list[str]], str]:
    """The fields of each dimension of a run, and the dimensions' event stream.

    Motors moved together (an inner product) share one dimension.
    """
    hinted: Any = start.get("hints", {}).get("dimensions")
    if hinted:
        return [[str(f) for f in names] for names, _stream in hinted if names], str(hinted[0][1])
    motors: list[Any] = list(start.get("motors") or [])
    return ([[str(m)] for m in motors] or [["time"]]), "primary"


def detector_fields(
    start: RunStart, descriptor: EventDescriptor, exclude: Sequence[str]
) -> list[str]:
    """The hinted scalar fields of the run's detectors, in the detectors' order."""
    hints: Any = descriptor.get("hints") or {}
    devices = list(start.get("detectors") or hints)
    keys = descriptor["data_keys"]
    fields: list[str] = []
    for device in devices:
        for name in hints.get(device, {}).get("fields", []):
            key = keys.get(name)
            if name in exclude or name in fields or key is None:
                continue
            if key["dtype"] in _NUMERIC and not key["shape"]:
                fields.append(name)
    return fields


class BestEffort(LiveView, DocumentRouter):
    """A table, a plot per field and peak statistics for every run, from its hints.

    Args:
        table: print a LiveTable.
        plots: draw live figures (shown in the running Jupyter cell in a notebook;
            ``await bec.serve()`` serves a page with the current run's figures).
        peaks: print the peak statistics of one-dimensional scans at their end.
        overplot: draw a run on the previous run's figure when it plots the same
            fields (a notebook shows that figure where it first appeared).
        out: called with each line of text (by default printed through any progress bar on
            the terminal, so that lines and bars never share a line; in Jupyter, shown
            in one display area per run).
        redraw_interval: seconds between redraws of each figure at most.
        notebook: show the figures in Jupyter; ``None`` detects a kernel.

    Attributes:
        figures: the live figures of the latest run.
        peaks: ``{field: PeakStats}`` of the latest one-dimensional run.
    """

    def __init__(
        self,
        *,
        table: bool = True,
        plots: bool = True,
        peaks: bool = True,
        overplot: bool = True,
        out: Callable[[str], object] = print_through_bars,
        redraw_interval: float = 0.05,
        notebook: bool | None = None,
    ) -> None:
        LiveView.__init__(self, redraw_interval=redraw_interval, notebook=False, title="acq")
        DocumentRouter.__init__(self)  # pyright: ignore[reportUnknownMemberType]
        self.table, self.plots, self.overplot = table, plots, overplot
        self.print_peaks = peaks
        self.out = out
        self._lines: NotebookLines | None = None
        self.redraw_interval = redraw_interval
        self.figures_in_notebook = in_notebook() if notebook is None else notebook
        self.figures: list[LiveFigure] = []
        self.peaks: dict[str, PeakStats] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        with contextlib.suppress(RuntimeError):
            self._loop = asyncio.get_running_loop()
        self._start: RunStart | None = None
        self._stream = "primary"
        self._dims: list[list[str]] = []
        self._children: list[Subscriber] = []
        self._planned = False
        self._by_key: dict[tuple[str, ...], LiveFigure] = {}

    # -- documents -----------------------------------------------------------------------
    def start(self, doc: RunStart) -> None:
        """Start the run's table; the plots wait for its first descriptor."""
        self._start = doc
        self._dims, self._stream = dimensions(doc)
        self._planned = False
        self.peaks = {}
        self._children = []
        self._lines = None
        if self.out is print_through_bars and in_notebook():
            self._lines = NotebookLines()
        if self.table:
            detectors = list(doc.get("detectors") or [])
            motors = [f for fields in self._dims for f in fields if f != "time"]
            fields = motors + detectors if detectors else None
            self._children.append(LiveTable(fields, stream=self._stream, out=self._out))
        self._forward("start", doc)

    def descriptor(self, doc: EventDescriptor) -> None:
        """On the dimensions' stream, choose and start the figures and peak statistics."""
        self._forward("descriptor", doc)
        if self._start is None or self._planned or doc.get("name") != self._stream:
            return
        self._planned = True
        new = self._choose(self._start, doc)
        for child in new:
            child("start", self._start)
            child("descriptor", doc)
        self._children += new
        figures = [c for c in self._children if isinstance(c, LiveFigure)]
        with self.lock:
            self.figures = figures
        self.poke()

    def event(self, doc: Event) -> Event:
        """Pass the event on."""
        self._forward("event", doc)
        self.poke()
        return doc

    def event_page(self, doc: EventPage) -> EventPage:
        """Pass the page on."""
        self._forward("event_page", doc)
        self.poke()
        return doc

    def stop(self, doc: RunStop) -> None:
        """Close the table, then print the peak statistics."""
        self._forward("stop", doc)
        if self._start is None or doc["run_start"] != self._start["uid"]:
            return
        if self.print_peaks:
            for field, stats in self.peaks.items():
                if stats.stats is not None:
                    self._out(f"Peak statistics of {field} against {stats.x}:\n{stats.stats}")
        if self._lines is not None:
            self._lines.flush()
        self.poke()
        self.finish()

    def _out(self, line: str) -> None:
        (self.out if self._lines is None else self._lines)(line)

    def _forward(self, name: str, doc: Any) -> None:
        for child in self._children:
            child(name, doc)

    # -- choosing what to show -----------------------------------------------------------
    def _choose(self, start: RunStart, descriptor: EventDescriptor) -> list[Subscriber]:
        dims = [fields[0] for fields in self._dims]  # the first motor of each dimension
        ys = detector_fields(start, descriptor, [f for fields in self._dims for f in fields])
        keys = descriptor["data_keys"]
        options: dict[str, Any] = {
            "height": 300,
            "stream": self._stream,
            "notebook": self.figures_in_notebook,
            "redraw_interval": self.redraw_interval,
        }
        chosen: list[Subscriber] = []
        if len(dims) == 1:
            x = dims[0] if dims[0] in keys or dims[0] == "time" else None
            for y in ys:
                if self.plots:
                    make = partial(LivePlot, y, x, **options)
                    chosen.append(self._figure(("plot", str(x), y), make))
                if self.print_peaks and x is not None and x != "time":
                    self.peaks[y] = PeakStats(x, y, stream=self._stream)
            chosen += self.peaks.values()
        elif len(dims) == 2 and self.plots and all(d in keys for d in dims):
            hints: Any = start.get("hints") or {}
            grid = hints.get("gridding") == "rectilinear" and len(start.get("shape") or []) == 2
            for y in ys:
                if grid:
                    chosen.append(self._figure(("grid", y), partial(LiveGrid, y, **options)))
                else:
                    make = partial(LiveScatter, dims[0], dims[1], y, **options)
                    chosen.append(self._figure(("scatter", *dims, y), make))
        return chosen

    def _figure(self, key: tuple[str, ...], make: Callable[[], LiveFigure]) -> LiveFigure:
        """The previous run's figure for ``key`` (when overplotting), else a new one."""
        figure = self._by_key.get(key) if self.overplot else None
        if figure is None:
            figure = make()
            if self._loop is not None:
                figure.attach_loop(self._loop)
            self._by_key[key] = figure
        return figure

    # -- the page of the current run's figures -------------------------------------------
    async def serve(self, port: int = 0, address: str = "127.0.0.1") -> str:
        """Serve a live page showing the latest run's figures; return its URL."""
        self._loop = asyncio.get_running_loop()
        for figure in self.figures:
            figure.attach_loop(self._loop)
        return await super().serve(port, address)

    def new_view(self) -> View:
        """A column of the latest run's figures."""
        return _BoardView(self)


class _BoardView:
    def __init__(self, board: BestEffort) -> None:
        self._board = board
        self._shown: list[LiveFigure] = []
        self._views: list[View] = []
        self.root = Column(children=[Div(text="Waiting for a scan...")])

    def refresh(self) -> None:
        figures = self._board.figures
        if figures != self._shown:
            self._shown = list(figures)
            self._views = [f.new_view() for f in figures]
            self.root.children = [v.root for v in self._views]
        for figure, view in zip(self._shown, self._views, strict=True):
            figure.refreshed(view)
