"""LiveTable prints a known scan's rows, header and footer, and fits cells to columns."""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from acq.callbacks import LiveTable
from acq.devices.sim import SimBeamline, sim_beamline
from acq.plans import count, fly, scan
from support import DocChecker

from acq import Msg, RunEngine


@pytest.fixture
async def bl(tmp_path: Path) -> SimBeamline:
    return await sim_beamline(instant=True, data_dir=tmp_path)


def clock(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp).strftime("%H:%M:%S.%f")[:-3]


def times(checker: DocChecker) -> tuple[str, list[str], str]:
    """The run's uid prefix, its events' local times and its duration, from the documents."""
    (start,) = checker.of("start")
    (stop,) = checker.of("stop")
    events = [clock(e["time"]) for e in checker.of("event")]
    return start["uid"][:8], events, f"{stop['time'] - start['time']:.3f}"


async def test_a_known_scan_prints_header_rows_with_units_and_precision_and_footer(
    RE: RunEngine, checker: DocChecker, bl: SimBeamline
) -> None:
    lines: list[str] = []
    await RE(scan([bl.det], bl.x, -1, 1, 3), LiveTable(["x", "det"], out=lines.append))
    uid, (t1, t2, t3), duration = times(checker)
    # det = exp(-x**2 / 2): 0.6065 at x = +-1, 1 at 0; x has precision 3 (mm), det none
    assert lines == [
        f"scan_id={RE.md['scan_id']}  uid={uid}  plan_name=scan",
        "+---------+--------------+------------+--------------+",
        "| seq_num |         time |     x [mm] | det [counts] |",
        "+---------+--------------+------------+--------------+",
        f"|       1 | {t1} |     -1.000 |        0.607 |",
        f"|       2 | {t2} |      0.000 |        1.000 |",
        f"|       3 | {t3} |      1.000 |        0.607 |",
        "+---------+--------------+------------+--------------+",
        f"exit_status=success  num_events=3  duration={duration} s",
    ]


async def test_documents_replayed_later_print_the_same_table(
    RE: RunEngine, checker: DocChecker, bl: SimBeamline
) -> None:
    live: list[str] = []
    await RE(scan([bl.det], bl.x, -1, 1, 4), LiveTable(["x", "det"], out=live.append))
    replayed: list[str] = []
    table = LiveTable(["x", "det"], out=replayed.append)
    for name, doc in checker.docs:
        table(name, doc)
    assert replayed == live
    assert len(live) == 1 + 3 + 4 + 1 + 1


async def test_event_pages_print_one_row_per_event(
    RE: RunEngine, checker: DocChecker, bl: SimBeamline
) -> None:
    await bl.flyer.num_points.set(10)
    await bl.flyer.page_size.set(4)
    lines: list[str] = []
    keys = [f"{bl.flyer.name}-position", f"{bl.flyer.name}-intensity"]
    table = LiveTable(keys, stream="flyer", out=lines.append)
    await RE(fly([bl.flyer]), table)
    # positions linspace(-5, 5, 10), intensities exp(-position**2 / 2)
    rows = [line[25:] for line in lines[4:14]]
    assert rows == [
        "|         -5.000 |           0.000 |",
        "|         -3.889 |           0.001 |",
        "|         -2.778 |           0.021 |",
        "|         -1.667 |           0.249 |",
        "|         -0.556 |           0.857 |",
        "|          0.556 |           0.857 |",
        "|          1.667 |           0.249 |",
        "|          2.778 |           0.021 |",
        "|          3.889 |           0.001 |",
        "|          5.000 |           0.000 |",
    ]
    assert lines[2] == "| seq_num |         time | flyer-position | flyer-intensity |"
    assert [line[:11] for line in lines[4:14]] == [f"| {n:>7} |" for n in range(1, 11)]
    assert lines[-1].startswith("exit_status=success  num_events=10  ")


async def test_a_device_stands_for_its_hinted_fields_and_a_key_for_itself(
    RE: RunEngine, bl: SimBeamline
) -> None:
    by_device: list[str] = []
    by_key: list[str] = []
    everything: list[str] = []
    await RE(
        count([bl.area_detector, bl.det], 2),
        LiveTable([bl.area_detector, bl.det], out=by_device.append),
        LiveTable(["area_detector"], out=by_key.append),
        LiveTable(None, out=everything.append),
    )
    # the area detector hints its sum; its frames are stored in HDF5 (external): a
    # cell shows the shape of one event's data
    assert by_device[2] == "| seq_num |         time | area_detector-sum | det [counts] |"
    assert by_device[4].endswith("|              (1,) |        1.000 |")  # det at x = 0
    assert by_key[2] == "| seq_num |         time | area_detector |"
    assert by_key[4].endswith("| (1, 240, 320) |")  # one 240 x 320 frame per event
    assert everything[2] == by_device[2]


class Gadget:
    """A device whose keys exercise every kind of cell."""

    name, parent = "gadget", None

    def describe(self) -> dict[str, Any]:
        def key(dtype: str, shape: list[int] | None = None, **extra: Any) -> dict[str, Any]:
            return {"source": "mem", "dtype": dtype, "shape": shape or [], **extra}

        return {
            "label": key("string"),
            "big": key("number", precision=2, units="cts"),
            "n": key("integer"),
            "ok": key("boolean"),
            "spectrum": key("array", [5]),
            "pos": key("number", precision=1),
            "a_rather_long_key": key("number"),
        }

    def read(self) -> dict[str, Any]:
        values = {
            "label": "a rather long sample label",
            "big": 123456789.125,
            "n": np.int64(42),
            "ok": True,
            "spectrum": np.arange(5.0),
            "pos": np.float32(0.26),
            "a_rather_long_key": -1.5e-12,
        }
        now = time.time()
        return {k: {"value": v, "timestamp": now} for k, v in values.items()}


async def test_cells_fit_their_columns_whatever_the_value(RE: RunEngine) -> None:
    lines: list[str] = []
    fields = ["label", "big", "n", "ok", "spectrum", "pos", "a_rather_long_key"]
    await RE(count([Gadget()], 1), LiveTable(fields, out=lines.append))
    heading, row = lines[2], lines[4]
    assert heading[25:] == (
        "|      label |  big [cts] |          n |         ok |   spectrum |        pos "
        "| a_rather_long_key |"
    )
    assert row[25:] == (
        "| a rather … |  123456789 |         42 |       True |       (5,) |        0.3 "
        "|            -0.000 |"
    )  # precision rules: -1.5e-12 to 3 decimals


async def test_the_footer_of_a_failed_run_gives_the_reason(
    RE: RunEngine, checker: DocChecker
) -> None:
    lines: list[str] = []

    async def plan() -> AsyncGenerator[Msg, Any]:
        yield Msg("open_run", plan_name="doomed")
        raise RuntimeError("the beam was lost")
        yield Msg("close_run")  # never reached

    with pytest.raises(RuntimeError, match="beam was lost"):
        await RE(plan(), LiveTable(["x"], out=lines.append))
    (stop,) = checker.of("stop")
    _, _, duration = times(checker)
    assert lines[0].endswith("plan_name=doomed")
    assert lines[1] == (
        f"exit_status=fail  num_events=0  duration={duration} s  reason={stop['reason']}"
    )
    assert "the beam was lost" in lines[1]


async def test_headings_repeat_every_header_interval_rows(RE: RunEngine, bl: SimBeamline) -> None:
    lines: list[str] = []
    await RE(count([bl.det], 5), LiveTable(["det"], out=lines.append, header_interval=2))
    headings = [i for i, line in enumerate(lines) if "seq_num" in line]
    # after the rule and headings: rows 1-2, headings, rows 3-4, headings, row 5
    assert headings == [2, 7, 12]
    assert sum(line.startswith("|") and "seq_num" not in line for line in lines) == 5


async def test_other_streams_and_missing_fields_are_left_out(
    RE: RunEngine, bl: SimBeamline
) -> None:
    lines: list[str] = []
    await RE(
        count([bl.det], 2), LiveTable(["det", "nonexistent"], stream="other", out=lines.append)
    )
    assert len(lines) == 2  # header and footer, no table
    assert lines[1].startswith("exit_status=success  num_events=0  ")
    lines.clear()
    await RE(count([bl.det], 1), LiveTable(["nonexistent", "det"], out=lines.append))
    assert lines[2] == "| seq_num |         time | det [counts] |"


def test_bad_arguments_are_refused_by_name() -> None:
    with pytest.raises(ValueError, match="default_prec"):
        LiveTable(["x"], default_prec=-1)
    with pytest.raises(ValueError, match="header_interval"):
        LiveTable(["x"], header_interval=0)
    with pytest.raises(TypeError, match="named devices"):
        LiveTable([3.5])
