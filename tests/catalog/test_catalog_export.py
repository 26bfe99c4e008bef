"""Exports (CSV, NeXus) and the command line: acq runs, acq show, acq export, acq demo."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
from acq.callbacks._cli import main
from acq.devices.sim import SimBeamline
from acq.plans import scan
from support import DocChecker

from acq import RunEngine
from acq.catalog import Catalog, export_csv, export_nexus


def primary_events(checker: DocChecker) -> list[dict[str, Any]]:
    descriptors = {d["uid"] for d in checker.of("descriptor") if d["name"] == "primary"}
    return [e for e in checker.of("event") if e["descriptor"] in descriptors]


@pytest.fixture
async def stored(RE: RunEngine, beamline: SimBeamline) -> Catalog:
    """A catalog with one scan of det and the area detector over x (sample Si)."""
    bl = beamline
    await RE(scan([bl.det, bl.area_detector], bl.x, -1, 1, 4), sample={"name": "Si"})
    assert RE.catalog is not None
    return RE.catalog


def test_csv_has_one_row_per_event_and_the_scalar_columns(
    stored: Catalog, checker: DocChecker, tmp_path: Path
) -> None:
    path = export_csv(stored[-1], tmp_path / "scan.csv")
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    events = primary_events(checker)
    assert list(rows[0]) == ["seq_num", "time", "det", "area_detector-sum", "x"]
    assert [int(r["seq_num"]) for r in rows] == [e["seq_num"] for e in events]
    for key in ("det", "x", "time"):
        expected = [e[key] if key == "time" else e["data"][key] for e in events]
        assert [float(r[key]) for r in rows] == expected


def test_nexus_file_has_an_nxdata_plottable_from_the_hints(
    stored: Catalog, checker: DocChecker, tmp_path: Path
) -> None:
    run = stored[-1]
    path = export_nexus(run, tmp_path / "scan.nxs")
    events = primary_events(checker)
    with h5py.File(path, "r") as f:
        assert f.attrs["default"] == "entry"
        entry = f["entry"]
        assert entry.attrs["NX_class"] == "NXentry"
        assert entry.attrs["default"] == "primary"
        assert entry["entry_identifier"][()].decode() == run.uid
        assert entry["sample/name"][()].decode() == "Si"
        data = entry["primary"]
        assert data.attrs["NX_class"] == "NXdata"
        assert data.attrs["signal"] == "det"
        assert list(data.attrs["axes"]) == ["x"]
        assert data.attrs["x_indices"] == 0
        assert data["det"][()].tolist() == [e["data"]["det"] for e in events]
        assert data["x"][()].tolist() == [e["data"]["x"] for e in events]
        assert data["x"].attrs["units"] == "mm"
        assert data["area_detector"].shape == (4, 240, 320)
        np.testing.assert_array_equal(
            data["area_detector"][3], np.asarray(run.primary.read()["area_detector"][3])
        )
        assert json.loads(entry["acq/start"][()])["uid"] == run.uid


def test_command_line_lists_shows_and_exports(
    stored: Catalog, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    where = stored.location.url
    run = stored[-1]
    assert main(["runs", "--catalog", where]) == 0
    listing = capsys.readouterr().out
    assert run.uid[:8] in listing
    assert "success" in listing
    assert "primary:4" in listing
    assert main(["runs", "--catalog", where, "sample.name=Ge"]) == 0
    assert run.uid[:8] not in capsys.readouterr().out
    assert main(["runs", "--catalog", where, "sample.name=Si"]) == 0
    assert run.uid[:8] in capsys.readouterr().out

    for ident in ("-1", str(run.scan_id), run.uid[:6]):
        assert main(["show", ident, "--catalog", where]) == 0
        shown = capsys.readouterr().out
        assert run.uid in shown
        assert "primary: det [counts]" in shown.replace(", area_detector", "")
        assert "primary (4 events)" in shown

    out = tmp_path / "out.csv"
    assert main(["export", "-1", "--catalog", where, "--format", "csv", "-o", str(out)]) == 0
    assert len(out.read_text().splitlines()) == 5
    nexus = tmp_path / "out.nxs"
    assert main(["export", "-1", "--catalog", where, "--format", "nexus", "-o", str(nexus)]) == 0
    with h5py.File(nexus) as f:
        assert f["entry/primary"].attrs["signal"] == "det"

    assert main(["show", "99", "--catalog", where]) == 1
    assert "no run with scan_id 99 or uid starting '99'" in capsys.readouterr().err


def test_demo_stores_its_run_and_says_how_to_get_it_back(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("ACQ_CATALOG", str(tmp_path / "demo.db"))
    assert main(["demo", "--num", "3"]) == 0
    out = capsys.readouterr().out
    catalog = Catalog()
    try:
        run = catalog[-1]
        assert run.primary.read()["det"].shape == (3,)
        assert f"acq show {run.scan_id}" in out
        assert str(tmp_path / "demo.db") in out
        assert "Catalog()" in out
    finally:
        catalog.close()
