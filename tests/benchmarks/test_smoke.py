"""The benchmark runs end to end at a tiny N (a smoke test: no timing is asserted)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from .__main__ import main

pytestmark = [pytest.mark.bench, pytest.mark.timeout(180)]


def test_quick_benchmark_writes_a_positive_row_per_case_for_both_engines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "bench-results.json"
    assert main(["--quick", "--output", str(output), "--catalog-backends", "sqlite"]) == 0

    rows = {(row["name"], row["subscriber"]): row for row in json.loads(output.read_text())["rows"]}
    assert set(rows) == {
        ("null", "loop"),
        ("count", "loop"),
        ("count", "thread"),
        ("scan", "loop"),
        ("scan", "thread"),
    }
    for row in rows.values():
        assert row["n"] > 0
        for key in ("acq_us", "bluesky_us", "ratio"):
            assert math.isfinite(row[key]), (key, row)
            assert row[key] > 0, (key, row)
        assert row["acq_overhead_us"] <= row["acq_us"]
    catalog = json.loads(output.read_text())["catalog"]["sqlite"]
    assert catalog["write"]["events_per_s"] > 0
    assert catalog["read"]["read_s"] > 0
    remote = {row["name"]: row for row in json.loads(output.read_text())["remote"]}
    assert set(remote) == {
        "remote: NATS publish rate",
        "remote: scan, acq relay to NATS",
        "remote: scan, acq relay to Tiled",
    }
    assert remote["remote: NATS publish rate"]["acq"] > 0
    for name in ("remote: scan, acq relay to NATS", "remote: scan, acq relay to Tiled"):
        assert math.isfinite(remote[name]["acq"]), remote[name]  # a difference: may be < 0
        assert remote[name]["met"] is (remote[name]["acq"] <= 5.0), remote[name]
    table = capsys.readouterr().out
    assert "bluesky/acq" in table
    assert f"wrote {output}" in table
