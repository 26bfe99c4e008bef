"""A real Tiled server for the Tiled sink's tests (``benchmarks.remote.TiledServer``).

If tiled is not installed, the tests using it skip naming it (CI installs it).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from benchmarks.remote import API_KEY, TiledServer, free_port

__all__ = ["API_KEY", "TiledServer", "free_port", "tiled_server"]


@pytest.fixture(scope="module")
def tiled_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TiledServer]:
    """A Tiled server for the module's tests, which may read files under ``server.data``."""
    pytest.importorskip("tiled.client", reason="tiled is not installed (tiled[client])")
    data = tmp_path_factory.mktemp("tiled")
    try:
        server = TiledServer([data], data / "tiled.log")
    except RuntimeError as exc:  # no tiled command
        pytest.skip(str(exc))
    server.start()
    try:
        yield server
    finally:
        server.stop()
