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
from ._manager import QueueManager
from ._plans import PlanRegistry
from ._store import QueueStore, database_url

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
        self.app = make_app(self.manager, auth=authorizer_for(config))  # keys, scopes, groups
        self.interrupted: list[dict[str, Any]] = []
        """Items found running when the service opened (recorded as interrupted)."""

    async def __aenter__(self) -> Service:
        self.interrupted = await self.store.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.manager.close()
        await self.store.close()

    @contextlib.asynccontextmanager
    async def serving(self, host: str = "127.0.0.1", port: int = 0) -> AsyncGenerator[str]:
        """Serve the API while in the block; gives its URL (``port=0``: a free port)."""
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
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


async def serve(config: ServiceConfig, host: str = "127.0.0.1", port: int = 60610) -> None:
    """Run the service for ``config`` on this event loop until cancelled (``acq serve``)."""
    async with Service(config) as service:
        await service.serve(host, port)
