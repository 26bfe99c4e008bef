"""Fixtures for the catalog tests: every test runs on SQLite and on a real PostgreSQL.

The PostgreSQL server is started once per session (``benchmarks/postgres.py``: the
machine's server binaries, else the ``pgserver`` wheel of the [test] extra); each test
gets a database of its own. If no server can be started here, the PostgreSQL tests skip
with the reason (how to get one); CI has a server and fails on any skip.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from acq.devices.sim import SimBeamline, sim_beamline
from benchmarks.postgres import PostgresServer
from support import DocChecker

from acq import RunEngine


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.database)])
def catalog_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty catalog: a SQLite file, or a new database on the session's server."""
    if request.param == "sqlite":
        return str(tmp_path / "catalog.db")
    server: PostgresServer = request.getfixturevalue("postgres")
    return server.create_database()


@pytest.fixture
def RE(catalog_url: str, checker: DocChecker) -> Iterator[RunEngine]:
    """A RunEngine storing into ``catalog_url``, its documents checked by ``checker``."""
    engine = RunEngine(catalog=catalog_url, handle_sigint=False)
    engine.subscribe(checker, thread=False)
    yield engine
    assert engine.catalog is not None
    engine.catalog.close()


@pytest.fixture
async def beamline(tmp_path: Path) -> AsyncIterator[SimBeamline]:
    """The simulated beamline, motors instant, frames written under ``tmp_path``."""
    return await sim_beamline(instant=True, data_dir=tmp_path / "frames", seed=1)
