"""A bokeh server inside the caller's process, on the caller's event loop.

A live figure (:mod:`acq.callbacks._live_figure`) serves a page that a browser
watches while a scan runs. The server is bokeh's own (``BokehTornado`` behind a
tornado ``HTTPServer``) started on the running asyncio loop: no thread, no second
loop, nothing to configure. It listens on ``127.0.0.1`` and a free port chosen by the
operating system, and accepts websocket connections only from the page it serves.

Every browser tab is a bokeh *session* with its own :class:`~bokeh.document.Document`:
bokeh models belong to one document at a time, so each session gets its own
:class:`View` (its own figure built from the live figure's data) and the live figure
refreshes those views at its redraw rate.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol

from bokeh.application import Application
from bokeh.application.handlers.function import FunctionHandler
from bokeh.document import Document
from bokeh.models import UIElement
from bokeh.server.server import BaseServer
from bokeh.server.tornado import BokehTornado
from tornado import netutil
from tornado.httpserver import HTTPServer
from tornado.ioloop import IOLoop

__all__ = ["View", "PlotServer"]


class View(Protocol):
    """Bokeh models showing a live figure's data in one place (a page, a cell, a file)."""

    @property
    def root(self) -> UIElement:
        """The model to put in a document."""
        ...

    def refresh(self) -> None:
        """Catch up with the data received since the last refresh."""
        ...


class PlotServer:
    """Serves one page whose every session shows a fresh :class:`View`.

    Args:
        make_view: builds the models of one session (called on the loop).
        on_session: called with each new session's document and view, so that the
            owner can refresh it; ``on_session(doc, None)`` when the session ends.
        title: the page's title.
        address: the interface to listen on.
        port: the port, ``0`` for a free one.
    """

    def __init__(
        self,
        make_view: Callable[[], View],
        on_session: Callable[[Document, View | None], None],
        *,
        title: str,
        address: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self._make_view = make_view
        self._on_session = on_session
        self._title = title
        self._address = address
        self._port = port
        self._server: BaseServer | None = None
        self._http: HTTPServer | None = None
        self.url = ""

    @property
    def running(self) -> bool:
        """True between :meth:`start` and :meth:`stop`."""
        return self._server is not None

    def start(self) -> str:
        """Listen and serve on the running event loop; return the page's URL."""
        asyncio.get_running_loop()  # the server lives on this loop: there must be one
        if self._server is not None:
            return self.url
        sockets = netutil.bind_sockets(self._port, self._address)
        port = sockets[0].getsockname()[1]
        self.url = f"http://{self._address}:{port}/"
        try:
            app = BokehTornado(
                {"/": Application(FunctionHandler(self._session))},
                absolute_url=self.url,
                extra_websocket_origins=[f"{self._address}:{port}", f"localhost:{port}"],
            )
            http = HTTPServer(app)
            http.add_sockets(sockets)
        except BaseException:
            for sock in sockets:
                sock.close()
            raise
        server = BaseServer(IOLoop.current(), app, http)
        server.start()
        self._server, self._http = server, http
        return self.url

    async def stop(self) -> None:
        """Close every connection and stop listening."""
        server, http = self._server, self._http
        self._server = self._http = None
        if server is None or http is None:
            return
        server.stop()
        await http.close_all_connections()

    def _session(self, doc: Document) -> None:
        view = self._make_view()
        doc.title = self._title
        doc.add_root(view.root)
        doc.on_session_destroyed(lambda _context: self._on_session(doc, None))
        self._on_session(doc, view)
