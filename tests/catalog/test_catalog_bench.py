"""The catalog benchmark runs end to end at small sizes on both backends (no timing asserted)."""

from __future__ import annotations

import math

import pytest
from benchmarks import catalog as bench
from benchmarks.postgres import PostgresServer

pytestmark = [pytest.mark.bench, pytest.mark.database]


def test_quick_catalog_benchmark_prints_numbers_for_sqlite_and_postgresql(
    postgres: PostgresServer, capsys: pytest.CaptureFixture[str]
) -> None:
    results = bench.run(quick=True, postgres_url=postgres.create_database("bench"))
    for backend in ("sqlite", "postgresql"):
        numbers = results[backend]
        assert numbers["write"]["events"] == bench.SIZES["quick"][0]
        for group in ("write", "search", "read"):
            assert all(math.isfinite(v) and v >= 0 for v in numbers[group].values()), numbers
    out = capsys.readouterr().out
    assert "postgresql write" in out
    assert "events/s" in out
