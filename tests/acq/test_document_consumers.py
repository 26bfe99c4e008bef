"""Third-party document consumers take acq's documents as they take bluesky's.

suitcase-specfile, suitcase-csv and suitcase-jsonl export a scan run on acq, as critical
subscribers (so that a consumer's exception fails the run instead of being logged), from
classic ophyd devices with a bluesky plan and from acq's ophyd-async sim beamline with
acq's plan. suitcase-specfile reads ``data_keys[k]["object_name"]``, which bluesky's
descriptors carry: without it every Event raised KeyError.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import acq.plans as ap
import bluesky.plans as bp
import pytest
import suitcase.csv
import suitcase.jsonl
import suitcase.specfile
from acq.devices.sim import sim_beamline
from ophyd.sim import hw
from support import DocChecker

from acq import RunEngine

POSITIONS = [-1.0, 0.0, 1.0]


@pytest.fixture
def RE(checker: DocChecker) -> RunEngine:
    """An engine without a catalog whose documents all go through ``checker``."""
    engine = RunEngine(catalog=None)
    engine.subscribe(checker, thread=False)
    return engine


async def classic_scan() -> tuple[Any, str, str]:
    """A bluesky scan of ophyd.sim's det over its motor: (plan, detector key, motor key)."""
    sim = hw()
    return bp.scan([sim.det], sim.motor, -1, 1, 3), "det", "motor"


async def acq_scan() -> tuple[Any, str, str]:
    """acq's scan on its ophyd-async sim beamline: (plan, detector key, motor key)."""
    beamline = await sim_beamline(instant=True)
    return ap.scan([beamline.det], beamline.x, -1, 1, 3), "det", "x"


SCANS: list[Callable[[], Any]] = [classic_scan, acq_scan]


async def export(RE: RunEngine, make_scan: Callable[[], Any], serializer: Any) -> tuple[str, str]:
    """Run the scan into ``serializer`` (critical); return its detector and motor keys."""
    plan, det_key, motor_key = await make_scan()
    RE.subscribe(serializer, critical=True)
    result = await RE(plan)
    assert result.exit_status == "success", result.reason
    assert not result.callback_errors
    return det_key, motor_key


@pytest.mark.parametrize("make_scan", SCANS, ids=["ophyd.sim", "acq.sim"])
async def test_suitcase_specfile_writes_the_scan(
    RE: RunEngine, checker: DocChecker, tmp_path: Path, make_scan: Callable[[], Any]
) -> None:
    serializer = suitcase.specfile.Serializer(tmp_path, file_prefix="scan")
    det_key, motor_key = await export(RE, make_scan, serializer)
    serializer.close()
    lines = (tmp_path / "scan.spec").read_text().splitlines()
    header = next(line for line in lines if line.startswith("#S 1 "))
    assert header.startswith(f"#S 1 ascan {motor_key} -1 1 3")
    columns = next(line for line in lines if line.startswith("#L ")).split()[1:]
    assert columns[0] == motor_key
    assert columns[-1] == det_key
    data = [line.split() for line in lines if line and not line.startswith("#")]
    assert [float(row[0]) for row in data] == POSITIONS
    detector = [float(row[-1]) for row in data]
    assert len(detector) == 3
    assert max(detector) == detector[1] > 0  # the peak at 0


@pytest.mark.parametrize("make_scan", SCANS, ids=["ophyd.sim", "acq.sim"])
async def test_suitcase_csv_writes_the_primary_stream(
    RE: RunEngine, checker: DocChecker, tmp_path: Path, make_scan: Callable[[], Any]
) -> None:
    serializer = suitcase.csv.Serializer(tmp_path, file_prefix="scan-")
    det_key, motor_key = await export(RE, make_scan, serializer)
    # suitcase-csv closes its files on the Stop (a second close() would raise)
    with (tmp_path / "scan-primary.csv").open() as f:
        table = list(csv.DictReader(f))
    assert [float(row[motor_key]) for row in table] == POSITIONS
    assert [int(row["seq_num"]) for row in table] == [1, 2, 3]
    assert all(float(row[det_key]) > 0 for row in table)


@pytest.mark.parametrize("make_scan", SCANS, ids=["ophyd.sim", "acq.sim"])
async def test_suitcase_jsonl_writes_every_document_in_order(
    RE: RunEngine, checker: DocChecker, tmp_path: Path, make_scan: Callable[[], Any]
) -> None:
    serializer = suitcase.jsonl.Serializer(tmp_path, file_prefix="scan")
    det_key, motor_key = await export(RE, make_scan, serializer)
    serializer.close()
    written = [json.loads(line) for line in (tmp_path / "scan.jsonl").read_text().splitlines()]
    assert [name for name, _ in written] == checker.names()
    descriptor = next(doc for name, doc in written if name == "descriptor")
    assert descriptor["data_keys"][det_key]["object_name"] == "det"
    events = [doc for name, doc in written if name == "event"]
    assert [e["data"][motor_key] for e in events] == POSITIONS
