"""Fixtures for acq.service: a real uvicorn server on loopback, in the test's event loop.

The referee is the unmodified ``bluesky-queueserver-api`` HTTP client (its async
``REManagerAPI``), polling status every 50 ms.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from acq.devices.sim import SimBeamline, sim_beamline
from acq.plans import count
from acq.service import Service, ServiceConfig
from bluesky_queueserver_api.http.aio import REManagerAPI

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
async def bl() -> SimBeamline:
    """The simulated beamline, motors instant."""
    return await sim_beamline(instant=True)


@pytest.fixture
def config(bl: SimBeamline, tmp_path: Path) -> ServiceConfig:
    """The sim beamline's devices and ``count``, the catalog (and queue) in ``tmp_path``."""
    return ServiceConfig(
        devices=bl.by_name(), plans={"count": count}, catalog=str(tmp_path / "catalog.db")
    )


@pytest.fixture
async def service(config: ServiceConfig) -> AsyncIterator[Service]:
    """The service of ``config``, its queue database open."""
    async with Service(config) as s:
        yield s


@pytest.fixture
async def url(service: Service) -> AsyncIterator[str]:
    """The service served on a free loopback port."""
    async with service.serving("127.0.0.1", 0) as where:
        yield where


@pytest.fixture
async def RM(url: str) -> AsyncIterator[Any]:
    """bluesky-queueserver-api's async HTTP client, talking to the served service."""
    client = REManagerAPI(http_server_uri=url, status_polling_period=0.05)
    try:
        yield client
    finally:
        await client.close()
