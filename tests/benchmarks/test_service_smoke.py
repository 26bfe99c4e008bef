"""The service benchmark runs end to end at a tiny size (a smoke test: no timing asserted)."""

from __future__ import annotations

import math

import pytest

from .service import format_rows, run

pytestmark = [pytest.mark.bench, pytest.mark.timeout(180)]


def test_quick_service_benchmark_gives_status_latency_and_the_ws_documents_row() -> None:
    rows = run(quick=True)

    assert [row["name"] for row in rows] == [
        "service: status p95, scan running",
        "service: scan + ws documents client",
    ]
    status, ws = rows
    assert status["n"] > 0, status
    assert math.isfinite(status["acq"]), status
    assert status["acq"] > 0, status
    assert status["met"] is (status["acq"] <= 5.0), status
    assert ws["notes"], ws
    if ws["target"] is not None:  # the service has the documents route
        assert math.isfinite(ws["acq"]), ws  # a difference of two times: may be < 0
        assert "documents received" in ws["notes"], ws
        assert "(0 documents" not in ws["notes"], ws
    table = format_rows(rows)
    for row in rows:
        assert row["name"] in table
