"""LiveFigure: the subscriber half of the live bokeh figures.

A live figure is an ordinary subscriber (``figure(name, doc)``), so it works on a
running engine and on replayed documents alike. For each event stream it draws, the
subclass gives a :class:`Feed` that turns rows into the figure's data; receiving a
document only appends (under the figure's lock) and pokes the redraw throttle of
:class:`~acq.callbacks._live_view.LiveView`. Events and Event Pages take the same
path, as columns.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from event_model import DocumentRouter
from event_model.documents import Event, EventDescriptor, EventPage, RunStart, RunStop

from ._live_view import LiveView

__all__ = ["LiveFigure", "Feed", "Columns"]

Columns = Mapping[str, Sequence[Any]]


class Feed:
    """Turns the rows of one event stream into a figure's data (subclasses add rows).

    Attributes:
        fields: the data keys the feed reads from each event.
    """

    fields: tuple[str, ...] = ()

    def add(self, data: Columns, seq_num: Sequence[int], time: Sequence[float]) -> None:
        """Add rows given as columns (called under the figure's lock)."""
        raise NotImplementedError


class LiveFigure(LiveView, DocumentRouter):
    """A subscriber drawing a bokeh figure live (base of LivePlot, LiveGrid, LiveScatter).

    Subclasses build their data in :meth:`feed` (one :class:`Feed` per event stream
    they draw) and their bokeh models in :meth:`new_view`.

    Args:
        stream: the event stream drawn (``None``: every stream with the fields).
        redraw_interval: seconds between redraws at most.
        notebook: show the figure in the running Jupyter cell when its first run
            starts, update it in place, and leave it as finally drawn when each run
            stops; ``None`` detects a Jupyter kernel.
        title: the figure's title (each figure has a default).
    """

    def __init__(
        self,
        *,
        stream: str | None = "primary",
        redraw_interval: float = 0.05,
        notebook: bool | None = None,
        title: str | None = None,
    ) -> None:
        LiveView.__init__(self, redraw_interval=redraw_interval, notebook=notebook, title=title)
        DocumentRouter.__init__(self)  # pyright: ignore[reportUnknownMemberType]
        self.stream = stream
        self._runs: dict[str, RunStart] = {}
        self._feeds: dict[str, Feed] = {}

    def feed(self, start: RunStart, descriptor: EventDescriptor, run: int) -> Feed | None:
        """The feed for a new event stream of run number ``run`` (1, 2, ...), or None."""
        raise NotImplementedError

    def has_data(self) -> bool:
        """True once a run started."""
        return bool(self._runs)

    # -- documents -----------------------------------------------------------------------
    def start(self, doc: RunStart) -> None:
        """Remember the run."""
        with self.lock:
            self._runs[doc["uid"]] = doc

    def descriptor(self, doc: EventDescriptor) -> None:
        """Start feeding the stream if the figure draws it; in a notebook, show the figure.

        The figure is shown (once) before this returns, with its data sources for the
        stream: ``push_notebook`` can only update models that the display has.
        """
        start = self._runs.get(doc["run_start"])
        if start is None or (self.stream is not None and doc.get("name") != self.stream):
            return
        with self.lock:
            run = list(self._runs).index(doc["run_start"]) + 1
            feed = self.feed(start, doc, run)
        if feed is not None:
            self._feeds[doc["uid"]] = feed
            if self.notebook:
                self.show_once()
            self.poke()

    def event(self, doc: Event) -> Event:
        """Add one row."""
        feed = self._feeds.get(doc["descriptor"])
        if feed is None:
            return doc
        data = doc["data"]
        columns = {f: [data[f]] for f in feed.fields if f in data}
        with self.lock:
            feed.add(columns, [doc["seq_num"]], [doc["time"]])
        self.poke()
        return doc

    def event_page(self, doc: EventPage) -> EventPage:
        """Add the page's rows."""
        feed = self._feeds.get(doc["descriptor"])
        if feed is None:
            return doc
        with self.lock:
            feed.add(doc["data"], doc["seq_num"], doc["time"])
        self.poke()
        return doc

    def stop(self, doc: RunStop) -> None:
        """The run is over: draw what is left (in a notebook, as the cell's final figure)."""
        self.settle()
