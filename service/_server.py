"""The service: engine, stored queue and web API, all on the caller's event loop.

``uvicorn.Server`` normally takes SIGINT and SIGTERM; here it takes no signal at all,
so acq keeps Ctrl-C (the engine's pause) and the program that embeds the service keeps
its own handlers. The server stops when ``serve`` is cancelled or ``should_exit`` is set.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncGenerator, Generator
from typing import Any

import uvicorn

from acq import RunEngine

from ._api import make_app
from ._auth import authorizer_for
from ._config import ServiceConfig, ServiceError
from ._events import EventHub
from ._manager import QueueManager
from ._page import page_router
from ._plans import PlanRegistry
from ._store import QueueStore, database_url
from ._ws import ws_router

__all__ = ["Service", "serve"]


class _InLoopServer(uvicorn.Server):
    """A uvicorn server that installs no signal handlers."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class Service:
    """A RunEngine, its persistent queue and the ``/api`` routes, for one configuration.

    Use it as ``async with Service(config) as service:`` (opens the queue database and
    records an item left running as interrupted), then ``async with
    service.serving(host, port) as url:`` or ``await service.serve(host, port)``.
    """

    def __init__(self, config: ServiceConfig, RE: RunEngine | None = None) -> None:
        self.config = config
        self.RE = RE if RE is not None else RunEngine(catalog=config.catalog)
        self.RE.md.update(config.md)
        self.registry = PlanRegistry(config.plans, config.devices)
        self.store = QueueStore(_queue_url(config, self.RE))
        self.manager = QueueManager(self.RE, self.store, self.registry)
        auth = authorizer_for(config)  # keys, scopes, groups
        self.app = make_app(self.manager, auth=auth)
        self.events = EventHub(self.RE)
        """The live feeds of the WebSocket routes (documents, status, progress, logs)."""
        self.app.include_router(ws_router(self.events, self.manager, auth))
        self.app.include_router(page_router())  # the web page: GET / and /static/...
        self.interrupted: list[dict[str, Any]] = []
        """Items found running when the service opened (recorded as interrupted)."""

    async def __aenter__(self) -> Service:
        self.interrupted = await self.store.open()
        self.events.attach()
        return self

    async def __aexit__(self, *exc: object) -> None:
        try:
            await self.manager.close()
        finally:
            self.events.detach()
        await self.store.close()

    @contextlib.asynccontextmanager
    async def serving(self, host: str = "127.0.0.1", port: int = 0) -> AsyncGenerator[str]:
        """Serve the API while in the block; gives its URL (``port=0``: a free port)."""
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        # proto TCP: only then does asyncio set TCP_NODELAY on accepted connections (else
        # Nagle's algorithm and delayed ACKs add ~40 ms to every answer)
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)  # connections wait in the backlog until the server accepts them
        bound = sock.getsockname()[1]
        config = uvicorn.Config(self.app, log_level="warning", lifespan="off")
        server = _InLoopServer(config)
        task = asyncio.get_running_loop().create_task(server.serve(sockets=[sock]))
        try:
            yield f"http://{host}:{bound}"
        finally:
            server.should_exit = True
            try:
                await task
            finally:
                sock.close()

    async def serve(self, host: str = "127.0.0.1", port: int = 60610) -> None:
        """Serve the API until cancelled."""
        async with self.serving(host, port):
            await asyncio.Event().wait()


def _queue_url(config: ServiceConfig, RE: RunEngine) -> str:
    if config.queue_url is not None:
        return database_url(config.queue_url)
    catalog = RE.catalog
    if catalog is None:
        raise ServiceError(
            "the service keeps its queue in the catalog's database, and there is no "
            "catalog: give ServiceConfig(catalog=...) or queue_url=..."
        )
    return str(catalog.location.url)


async def serve(
    config: ServiceConfig,
    host: str = "127.0.0.1",
    port: int = 60610,
    *,
    handle_sigterm: bool = True,
) -> None:
    """Run the service for ``config`` on this event loop until SIGTERM (``acq serve``).

    SIGTERM (taken on the loop from the main thread, unless ``handle_sigterm=False``)
    shuts the service down cleanly as ``config.on_sigterm`` says: the running plan
    pauses at its next checkpoint (or stops now), its run is closed and its item put back
    at the front of the queue, every document is committed, then this returns. SIGINT
    stays the engine's. Cancelled, the running plan's run ends with exit_status 'abort'.
    """
    from ._lifecycle import serve_until_terminated

    async with Service(config) as service:
        await serve_until_terminated(service, host, port, handle_sigterm=handle_sigterm)
