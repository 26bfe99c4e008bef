"""Live bokeh views redrawn at a bounded rate, wherever they show.

A :class:`LiveView` owns some data that grows (under its lock: subscribers usually
run in a worker thread) and knows how to build bokeh models showing it
(:meth:`LiveView.new_view`). Growing the data only *pokes* a :class:`Throttle`,
which redraws on the event loop at most once per ``redraw_interval``, whatever the
rate of points: the engine only enqueues documents, and drawing costs at most one
redraw per interval.

A redraw brings every :class:`~acq.callbacks._bokeh_server.View` up to date: the
object's own models (:attr:`LiveView.figure`, which a Jupyter cell shows and updates
in place through ``push_notebook``), and one view per browser tab of the page served
by :meth:`LiveView.serve`. :meth:`LiveView.save` writes a standalone HTML file
(BokehJS inlined: it opens offline) from all the data received so far.

In a notebook, BokehJS is inlined too (a plot must draw on a beamline with no
network), and the figure is displayed under a display id: at the end of each run
(:meth:`LiveView.settle`) the display is replaced with the figure as finally drawn, so
that the saved notebook (whose outputs never see ``push_notebook``'s updates) keeps
the final figure rather than the first one.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import math
import sys
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, Literal, overload

from bokeh.document import Document
from bokeh.embed import file_html
from bokeh.embed.notebook import notebook_content
from bokeh.io import output_notebook, push_notebook
from bokeh.io.notebook import EXEC_MIME_TYPE, HTML_MIME_TYPE, JS_MIME_TYPE, CommsHandle, get_comms
from bokeh.io.state import curstate
from bokeh.models import UIElement
from bokeh.resources import INLINE
from bokeh.util.serialization import make_id

from ._bokeh_server import PlotServer, View

__all__ = ["LiveView", "Throttle", "in_notebook", "send_display"]

logger = logging.getLogger("acq.callbacks")

SETTLE_TIMEOUT = 10.0  # seconds a subscriber thread waits for the loop to draw a run's end


class Throttle:
    """Calls ``redraw`` on an event loop, at most once per ``interval`` seconds.

    :meth:`poke` (from any thread) says there is something new to draw; the redraw
    then happens on the loop as soon as ``interval`` has passed since the previous
    one. With no event loop (documents replayed by plain code) the redraw runs in the
    poking thread, still at most once per interval, plus once at :meth:`finish`.
    """

    def __init__(self, redraw: Callable[[], None], interval: float) -> None:
        if not interval > 0:
            raise ValueError(f"redraw_interval must be > 0 seconds, got {interval!r}")
        self.interval = interval
        self.count = 0
        self._redraw = redraw
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending = False
        self._stale = False
        self._handle: asyncio.TimerHandle | None = None
        self._last = -math.inf
        self._waiters: list[asyncio.Future[None]] = []

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Redraw on ``loop`` from now on."""
        self._loop = loop

    def poke(self) -> None:
        """Something changed: redraw when the interval allows (thread-safe, cheap)."""
        loop = self._loop
        if self._pending:
            if loop is not None and not loop.is_closed():
                return
            self._pending, self._handle = False, None  # its loop ended before the redraw
        if loop is None or loop.is_closed():
            try:
                loop = self._loop = asyncio.get_running_loop()
            except RuntimeError:
                self._poke_inline()
                return
        self._pending = True
        try:
            here = asyncio.get_running_loop() is loop
        except RuntimeError:
            here = False
        if here:
            self._schedule()
        else:
            loop.call_soon_threadsafe(self._schedule)

    def finish(self) -> None:
        """The data is complete: without a loop, redraw now if anything is undrawn."""
        if self._stale and not self._pending:
            self._fire(time.monotonic())

    async def wait(self) -> None:
        """Return once everything poked so far has been drawn."""
        loop = asyncio.get_running_loop()
        while self._pending and self._loop is loop:
            waiter = loop.create_future()
            self._waiters.append(waiter)
            await waiter

    def draw_now(self) -> None:
        """Redraw at once, dropping any scheduled redraw (on the loop, or with none)."""
        self.cancel()
        self._fire(time.monotonic() if self._loop is None else self._loop.time())

    def on_loop(self, call: Callable[[], None]) -> None:
        """Run ``call`` on the redraw loop and wait for it (at most ``SETTLE_TIMEOUT`` s).

        Runs it here when this is the loop's thread, or when there is no running loop.
        """
        loop = self._loop
        try:
            here = asyncio.get_running_loop() is loop
        except RuntimeError:
            here = False
        if here or loop is None or loop.is_closed() or not loop.is_running():
            call()
            return
        done: concurrent.futures.Future[None] = concurrent.futures.Future()

        def run() -> None:
            try:
                call()
            except BaseException as exc:
                done.set_exception(exc)
                raise
            done.set_result(None)

        loop.call_soon_threadsafe(run)
        try:
            done.result(timeout=SETTLE_TIMEOUT)
        except TimeoutError:
            logger.warning("the event loop did not draw the figure within %s s", SETTLE_TIMEOUT)

    def cancel(self) -> None:
        """Drop a scheduled redraw (the figure is being closed)."""
        if self._handle is not None:
            self._handle.cancel()
        self._handle, self._pending = None, False
        self._wake()

    def _poke_inline(self) -> None:
        now = time.monotonic()
        if now - self._last >= self.interval:
            self._fire(now)
        else:
            self._stale = True

    def _schedule(self) -> None:  # on the loop
        loop = self._loop
        if self._handle is not None or loop is None:
            return
        delay = max(0.0, self._last + self.interval - loop.time())
        self._handle = loop.call_later(delay, self._on_timer)

    def _on_timer(self) -> None:  # on the loop
        assert self._loop is not None
        self._handle = None
        self._pending = False
        self._fire(self._loop.time())
        self._wake()

    def _fire(self, now: float) -> None:
        self._last = now
        self._stale = False
        self.count += 1
        try:
            self._redraw()
        except Exception:  # a loop callback has nobody to raise to: log it
            logger.exception("redrawing a live figure failed")

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)


def send_display(
    data: object,
    display_id: str,
    *,
    update: bool = False,
    raw: bool = True,
    metadata: dict[str, Any] | None = None,
) -> None:
    """Display ``data`` (mime data when ``raw``) in the running cell under ``display_id``.

    ``update``: replace what was displayed under that id, wherever it is, instead.
    """
    import IPython.display  # only in a kernel

    ipython: Any = IPython.display
    publish = ipython.update_display if update else ipython.display
    publish(data, raw=raw, metadata=metadata, display_id=display_id)


def in_notebook() -> bool:
    """True inside a Jupyter kernel (where figures display in the running cell)."""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    shell: Any = ipython.get_ipython()
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


class LiveView:
    """Bokeh views of growing data, redrawn at most once per ``redraw_interval``.

    Subclasses keep their data under :attr:`lock`, call :meth:`poke` when it grew,
    and build bokeh models showing it in :meth:`new_view`.

    Args:
        redraw_interval: seconds between redraws at most.
        notebook: show :attr:`figure` in the running Jupyter cell once there is
            something to show, and update it in place; ``None`` detects a kernel.
        title: the title of the page and of saved files.
    """

    def __init__(
        self,
        *,
        redraw_interval: float = 0.05,
        notebook: bool | None = None,
        title: str | None = None,
    ) -> None:
        self.title = title
        self.notebook = in_notebook() if notebook is None else notebook
        self.lock = threading.Lock()
        self._throttle = Throttle(self._redraw, redraw_interval)
        self._live: View | None = None
        self._sessions: dict[Document, View] = {}
        self._handle: CommsHandle | None = None
        self._display_id = ""
        self._server: PlotServer | None = None
        with contextlib.suppress(RuntimeError):  # else when a loop pokes, serves or shows
            self._throttle.attach(asyncio.get_running_loop())

    # -- what subclasses provide ---------------------------------------------------------
    def new_view(self) -> View:
        """Fresh bokeh models showing the data (filled by their first refresh)."""
        raise NotImplementedError

    def has_data(self) -> bool:
        """True once there is something to show in a notebook."""
        return True

    def poke(self) -> None:
        """The data grew: redraw when the interval allows (any thread; cheap)."""
        self._throttle.poke()

    def finish(self) -> None:
        """The data is complete (see :meth:`Throttle.finish`)."""
        self._throttle.finish()

    def settle(self) -> None:
        """A run ended: draw everything now; in a notebook, leave the final figure in its cell.

        The redraw happens on the event loop, and a caller in another thread (a
        subscriber's worker) waits for it: so the notebook cell running the scan has
        the final figure before ``await RE(...)`` returns.
        """
        if not self.notebook:
            self.poke()
            self.finish()
            return
        self._throttle.on_loop(self._settle)

    def _settle(self) -> None:
        self._throttle.draw_now()
        if self._handle is not None:  # the final figure, static: no comm until a next run
            self._release(self._handle)
            self._handle = None
            self._publish(update=True, live=False)

    def show_once(self) -> None:
        """In a Jupyter kernel, show :attr:`figure` now unless it is already shown.

        Like :meth:`settle`, from any thread: the figure is displayed before this returns.
        """
        self._throttle.on_loop(self._show_once)

    def _show_once(self) -> None:
        if self._handle is None and in_notebook():
            self._show_live()

    def _show_live(self) -> None:
        """Show the figure live: again where it was shown before, else as a new output."""
        if self._live is not None:
            self.refreshed(self._live)  # with every model the data needs so far
        if self._display_id:
            self._handle = self._publish(update=True, live=True)
        else:
            self.show()

    def attach_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        """Redraw on ``loop`` (for views made off the loop, e.g. in a subscriber thread)."""
        self._throttle.attach(loop)

    # -- views ---------------------------------------------------------------------------
    @property
    def figure(self) -> UIElement:
        """The object's own bokeh models, brought up to date at each redraw."""
        if self._live is None:
            self._live = self.refreshed(self.new_view())
        return self._live.root

    def refreshed(self, view: View) -> View:
        """``view`` after a refresh under the data's lock."""
        self._refresh(view)
        return view

    def _refresh(self, view: View) -> None:
        with self.lock:
            view.refresh()

    @property
    def redraws(self) -> int:
        """How many redraws so far."""
        return self._throttle.count

    @property
    def url(self) -> str | None:
        """The address of the live page while :meth:`serve` runs, else None."""
        return self._server.url if self._server is not None else None

    def _redraw(self) -> None:
        if self._live is None:
            self.figure  # noqa: B018 -- builds and fills the view
        else:
            self.refreshed(self._live)
        if self._handle is not None:
            push_notebook(handle=self._handle)
        elif self.notebook and self.has_data():
            self._show_live()
        for doc, view in list(self._sessions.items()):
            doc.add_next_tick_callback(partial(self._refresh, view))

    def show(self) -> None:
        """Show :attr:`figure` in the running Jupyter cell; redraws update it in place.

        Raises:
            RuntimeError: not in a Jupyter kernel (serve or save it instead).
        """
        if not in_notebook():
            raise RuntimeError(
                f"{type(self).__name__}.show() displays in a Jupyter notebook; outside one, "
                "`url = await plot.serve()` serves a live page and plot.save(path) writes HTML"
            )
        with contextlib.suppress(RuntimeError):
            self._throttle.attach(asyncio.get_running_loop())
        self.notebook = True
        if not curstate().notebook:
            output_notebook(resources=INLINE, hide_banner=True)  # offline, BokehJS inlined
        if self._handle is not None:
            self._release(self._handle)
        self._display_id = make_id()
        self._handle = self._publish(update=False, live=True)

    @overload
    def _publish(self, *, update: bool, live: Literal[True]) -> CommsHandle: ...
    @overload
    def _publish(self, *, update: bool, live: Literal[False]) -> None: ...
    def _publish(self, *, update: bool, live: bool) -> CommsHandle | None:
        """Display :attr:`figure` as it is now, or replace its display (``update``).

        Bokeh's ``show_doc``, with display ids. A ``live`` figure gets a comm, and the
        returned handle lets ``push_notebook`` update it from here.
        """
        state = curstate()
        root = self.figure
        if root not in state.document.roots:
            state.document.add_root(root)
        target = make_id() if live else None
        script, div, cell_doc = notebook_content(root, target)
        scripted = {JS_MIME_TYPE: script, EXEC_MIME_TYPE: ""}
        metadata: dict[str, Any] = {EXEC_MIME_TYPE: {"id": root.id}}
        send_display({HTML_MIME_TYPE: div}, f"{self._display_id}-div", update=update)
        send_display(scripted, f"{self._display_id}-js", update=update, metadata=metadata)
        if target is None:
            return None
        handle = CommsHandle(get_comms(target), cell_doc)
        state.document.callbacks.on_change_dispatch_to(handle)
        state.last_comms_handle = handle
        return handle

    @staticmethod
    def _release(handle: CommsHandle) -> None:
        """Stop recording the document's changes for a handle no longer pushed to."""
        with contextlib.suppress(KeyError):
            curstate().document.callbacks.remove_on_change(handle)

    async def serve(self, port: int = 0, address: str = "127.0.0.1") -> str:
        """Serve a live page from this event loop; return its URL.

        Every browser tab that opens the URL sees the data so far and then every
        redraw. :meth:`close` stops the server.
        """
        self._throttle.attach(asyncio.get_running_loop())
        if self._server is None:
            self._server = PlotServer(
                lambda: self.refreshed(self.new_view()),
                self._session_changed,
                title=self.title or type(self).__name__,
                address=address,
                port=port,
            )
        return self._server.start()

    async def close(self) -> None:
        """Stop serving (if :meth:`serve` was called) and drop any scheduled redraw."""
        server, self._server = self._server, None
        self._sessions.clear()
        if server is not None:
            await server.stop()
        self._throttle.cancel()

    async def wait_drawn(self) -> None:
        """Return once everything received so far has been drawn."""
        await self._throttle.wait()

    def _session_changed(self, doc: Document, view: View | None) -> None:
        if view is None:
            self._sessions.pop(doc, None)
        else:
            self._sessions[doc] = view

    def save(self, path: str | Path, title: str | None = None) -> Path:
        """Write all the data so far as a standalone HTML file (BokehJS inlined).

        Returns:
            The path written.
        """
        view = self.refreshed(self.new_view())
        target = Path(path).expanduser()
        html = file_html(view.root, resources=INLINE, title=title or self.title or "acq plot")
        target.write_text(html, encoding="utf-8")
        return target
