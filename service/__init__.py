"""acq.service: the engine as a network service, on the engine's own event loop.

A FastAPI application served by uvicorn in the same loop as the RunEngine; a plan queue
and its history kept in the catalog's database; routes compatible with
bluesky-httpserver, so that the ``bluesky-queueserver-api`` client works unchanged::

    from acq.service import ServiceConfig, serve

    await serve(ServiceConfig(devices=..., plans={"count": count}), "127.0.0.1", 60610)

Only the devices and plans of the :class:`ServiceConfig` can run; every item's
arguments are checked against its plan's signature before it is queued.
"""

from __future__ import annotations

from ._auth import ApiKey, Authorizer, OidcProvider, authorizer_for, hash_api_key
from ._config import ServiceConfig, ServiceError, load_config
from ._manager import QueueManager, Refused
from ._plans import ItemError, PlanCall, PlanRegistry, Units
from ._server import Service, serve
from ._store import QueueStore

__all__ = [
    "ServiceConfig",
    "Service",
    "serve",
    "load_config",
    "PlanRegistry",
    "PlanCall",
    "Units",
    "QueueStore",
    "QueueManager",
    "ApiKey",
    "OidcProvider",
    "hash_api_key",
    "Authorizer",
    "authorizer_for",
    # errors
    "ServiceError",
    "ItemError",
    "Refused",
]
