"""The scenarios run end to end at tiny sizes (a smoke test: no timing is asserted)."""

from __future__ import annotations

import math

import pytest

from .scenarios import format_rows, run

pytestmark = pytest.mark.bench

SIGNED_UNITS = {"% wall added"}  # a difference of two wall times: noise can make it <= 0


def test_quick_scenarios_give_every_row_finite_figures_for_both_engines() -> None:
    rows = run(quick=True)

    names = [row["name"] for row in rows]
    assert len(names) == len(set(names)), names
    for prefix in ("count", "scan", "grid_scan", "10 ms/doc", "fly", "import", "RunEngine()"):
        assert any(name.startswith(prefix) for name in names), (prefix, names)
    # bluesky never awaits an async def subscriber, and has no command line
    assert [row["name"] for row in rows if row["bluesky"] is None] == [
        "10 ms/doc subscriber, async",
        "process: acq --help",
        "process: acq runs",
    ]
    for row in rows:
        assert isinstance(row["n"], int), row
        assert row["n"] > 0, row
        assert row["notes"], row
        figures = [row["acq"]] if row["bluesky"] is None else [row["acq"], row["bluesky"]]
        for figure in figures:
            assert isinstance(figure, float), row
            assert math.isfinite(figure), row
            if row["unit"] not in SIGNED_UNITS:
                assert figure > 0, row
        if all(figure > 0 for figure in figures) and len(figures) == 2:
            assert math.isfinite(row["ratio"]), row
            assert row["ratio"] > 0, row
        assert (row["target"] is None) == (row["met"] is None), row

    table = format_rows(rows)
    for name in names:
        assert name in table
