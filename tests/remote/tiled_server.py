"""A real Tiled server for the Tiled sink's tests: ``tiled serve catalog --temp`` on loopback.

The server is the ``tiled`` console script of the [test] extra, started as a subprocess on
a free port with a fixed API key; it may read files under the directories it is given
(where the sim area detector writes its HDF5 files), so it can serve external data.
If tiled is not installed, the tests using it skip naming it (CI installs it).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

API_KEY = "acqtestsecret0123456789"


def free_port() -> int:
    """A TCP port nothing listens on now (the OS chose it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _tiled_command() -> str:
    script = Path(sys.executable).with_name("tiled")
    if script.exists():
        return str(script)
    found = shutil.which("tiled")
    if found is None:
        pytest.skip("tiled is not installed (pip install 'tiled[server,client]')")
    return found


class TiledServer:
    """``tiled serve catalog --temp`` on ``127.0.0.1:<port>``, readable under ``read``."""

    def __init__(self, read: list[Path], log: Path) -> None:
        pytest.importorskip("tiled.client", reason="tiled is not installed (tiled[client])")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.api_key = API_KEY
        self.data = read[0]
        self._read = read
        self._log = log
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, deadline: float = 60.0) -> None:
        """Start the server; return once it answers (fail the test if it never does)."""
        args = [_tiled_command(), "serve", "catalog", "--temp", "--api-key", self.api_key]
        args += ["--host", "127.0.0.1", "--port", str(self.port)]
        for directory in self._read:
            args += ["-r", str(directory)]
        with self._log.open("ab") as log:
            self._process = subprocess.Popen(
                args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            if self._process.poll() is not None:
                raise AssertionError(f"tiled serve exited: {self._log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/api/v1/", timeout=1.0).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        raise AssertionError(f"tiled serve never answered: {self._log.read_text()[-2000:]}")

    def stop(self) -> None:
        """Stop the server (its temporary catalog goes with it)."""
        if self._process is None or self._process.poll() is not None:
            return
        os.killpg(self._process.pid, signal.SIGTERM)
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self._process.pid, signal.SIGKILL)
            self._process.wait()


@pytest.fixture(scope="module")
def tiled_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TiledServer]:
    """A Tiled server for the module's tests, which may read files under ``server.data``."""
    data = tmp_path_factory.mktemp("tiled")
    server = TiledServer([data], data / "tiled.log")
    server.start()
    try:
        yield server
    finally:
        server.stop()
