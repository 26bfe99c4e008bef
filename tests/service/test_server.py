"""The server shares the test's loop, leaves Ctrl-C to acq, and loads Python configs."""

from __future__ import annotations

import asyncio
import signal
import socket
from pathlib import Path

import httpx
import pytest
from acq.service import Service, ServiceConfig, ServiceError, load_config, serve

CONFIG = """
from acq.devices.sim import sim_beamline
from acq.plans import count
from acq.service import ServiceConfig

async def config():
    beamline = await sim_beamline(instant=True)
    return ServiceConfig(devices=beamline.by_name(), plans={"count": count},
                         catalog=CATALOG)
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _first_answer(client: httpx.AsyncClient, path: str) -> httpx.Response:
    """GET ``path`` once the server listens (the connection is refused before)."""
    for _ in range(500):
        try:
            return await client.get(path)
        except httpx.ConnectError:
            await asyncio.sleep(0.02)
    raise AssertionError("the server never listened")


async def test_serve_from_a_config_file_answers_on_the_same_loop_and_takes_only_sigterm(
    tmp_path: Path,
) -> None:
    path = tmp_path / "beamline.py"
    path.write_text(CONFIG.replace("CATALOG", repr(str(tmp_path / "catalog.db"))))
    config = await load_config(path)
    assert set(config.plans) == {"count"}
    handlers = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    port = _free_port()
    task = asyncio.get_running_loop().create_task(serve(config, "127.0.0.1", port))
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            reply = await _first_answer(client, "/api/status")
            assert reply.json()["manager_state"] == "idle"
            assert signal.getsignal(signal.SIGINT) == handlers[0]  # Ctrl-C stays the engine's
            assert signal.getsignal(signal.SIGTERM) != handlers[1]  # a clean shutdown (#17)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_bad_configurations_are_refused_naming_the_problem(tmp_path: Path) -> None:
    with pytest.raises(ServiceError, match="no configuration file"):
        await load_config(tmp_path / "missing.py")
    (tmp_path / "empty.py").write_text("x = 1\n")
    with pytest.raises(ServiceError, match="defines no 'config'"):
        await load_config(tmp_path / "empty.py")
    with pytest.raises(ServiceError, match="not callable"):
        ServiceConfig(plans={"count": 3})  # type: ignore[dict-item]
    with pytest.raises(ServiceError, match="no catalog"):
        Service(ServiceConfig(catalog=None))


def test_acq_serve_with_a_missing_configuration_says_so_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from acq.callbacks._cli import main

    assert main(["serve", "--config", str(tmp_path / "nowhere.py")]) == 1
    err = capsys.readouterr().err
    assert err.strip() == f"acq serve: no configuration file {tmp_path / 'nowhere.py'}"
