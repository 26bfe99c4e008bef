"""BestEffort: the table, the plots and the peak statistics chosen from the hints."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from acq.callbacks import BestEffort, LiveGrid, LivePlot, LiveScatter
from acq.devices.sim import SimBeamline, sim_beamline
from acq.plans import count, grid_scan, scan, spiral
from support import DocChecker

from acq import RunEngine


@pytest.fixture
async def beamline() -> SimBeamline:
    return await sim_beamline(instant=True)


def data(figure: Any, name: str, key: str) -> list[float]:
    source = figure.figure.select_one({"name": name})
    assert source is not None, f"{figure} has no source {name!r}"
    return [float(v) for v in source.data[key]]


def headings(lines: list[str]) -> list[str]:
    """The column headings of the first table printed."""
    row = next(line for line in lines if line.startswith("| seq_num"))
    return [cell.strip() for cell in row.strip("|").split("|")]


async def test_a_1d_scan_gets_a_table_a_plot_per_field_and_peak_statistics(
    RE: RunEngine, beamline: SimBeamline
) -> None:
    lines: list[str] = []
    bec = BestEffort(out=lines.append)
    result = await RE(scan([beamline.det, beamline.edge], beamline.x, -3, 3, 61), bec)
    assert result.callback_errors == []

    assert headings(lines) == ["seq_num", "time", "x [mm]", "det [counts]", "edge [counts]"]
    assert [type(f) for f in bec.figures] == [LivePlot, LivePlot]
    assert [(f.y, f.x) for f in bec.figures] == [(["det"], "x"), (["edge"], "x")]  # type: ignore[attr-defined]
    for figure in bec.figures:
        await figure.wait_drawn()
    assert data(bec.figures[0], "det#1", "x") == pytest.approx(np.linspace(-3, 3, 61))

    # the sim Gaussian: centre 0, sigma 1, height 1
    det = bec.peaks["det"]
    assert det.cen == pytest.approx(0.0, abs=1e-9)
    assert det.max == pytest.approx((0.0, 1.0))
    assert det.fit is not None
    assert (det.fit.center, det.fit.sigma) == pytest.approx((0.0, 1.0), abs=1e-6)
    text = "\n".join(lines)
    footer = text.index("exit_status=success")
    assert footer < text.index("Peak statistics of det against x:") < text.index("cen=")
    assert "Peak statistics of edge against x:" in text


async def test_a_grid_scan_gets_a_live_grid_and_no_peak_statistics(
    RE: RunEngine, beamline: SimBeamline
) -> None:
    lines: list[str] = []
    bec = BestEffort(out=lines.append)
    plan = grid_scan([beamline.det2d], beamline.y, -1, 1, 3, beamline.x, -2, 2, 5)
    result = await RE(plan, bec)
    assert result.callback_errors == []

    assert headings(lines) == ["seq_num", "time", "y [mm]", "x [mm]", "det2d [counts]"]
    (grid,) = bec.figures
    assert isinstance(grid, LiveGrid)
    await grid.wait_drawn()
    image = np.asarray(grid.figure.select_one({"name": "det2d#1"}).data["image"][0])
    assert image.shape == (3, 5)
    assert not np.isnan(image).any()
    assert bec.peaks == {}
    assert "Peak statistics" not in "\n".join(lines)


async def test_count_plots_against_time(RE: RunEngine, beamline: SimBeamline) -> None:
    lines: list[str] = []
    bec = BestEffort(out=lines.append)
    await RE(count([beamline.det], 3), bec)
    (plot,) = bec.figures
    assert isinstance(plot, LivePlot)
    assert plot.x == "time"
    assert headings(lines) == ["seq_num", "time", "det [counts]"]
    assert bec.peaks == {}


async def test_motors_moved_together_are_one_dimension(
    RE: RunEngine, beamline: SimBeamline
) -> None:
    lines: list[str] = []
    bec = BestEffort(out=lines.append)
    await RE(scan([beamline.det2d], beamline.x, -1, 1, beamline.y, -1, 1, 5), bec)
    assert headings(lines) == ["seq_num", "time", "x [mm]", "y [mm]", "det2d [counts]"]
    (plot,) = bec.figures
    assert isinstance(plot, LivePlot)
    assert plot.x == "x"
    assert list(bec.peaks) == ["det2d"]


async def test_two_dimensions_off_a_grid_get_a_scatter(
    RE: RunEngine, beamline: SimBeamline
) -> None:
    bec = BestEffort(out=lambda line: None)
    result = await RE(spiral([beamline.det2d], beamline.x, beamline.y, 0, 0, 2, 2, 0.5, 6), bec)
    assert result.callback_errors == []
    (scatter,) = bec.figures
    assert isinstance(scatter, LiveScatter)
    assert (scatter.x, scatter.y, scatter.I) == ("x", "y", "det2d")


async def test_the_next_run_of_the_same_fields_is_overplotted(
    RE: RunEngine, beamline: SimBeamline
) -> None:
    bec = BestEffort(out=lambda line: None)
    await RE(scan([beamline.det], beamline.x, -1, 1, 3), bec)
    first = bec.figures[0]
    await RE(scan([beamline.det], beamline.x, -2, 2, 5), bec)
    assert bec.figures == [first]
    await first.wait_drawn()
    assert data(first, "det#1", "x") == [-1.0, 0.0, 1.0]
    assert data(first, "det#2", "x") == [-2.0, -1.0, 0.0, 1.0, 2.0]

    separate = BestEffort(out=lambda line: None, overplot=False)
    await RE(scan([beamline.det], beamline.x, -1, 1, 3), separate)
    before = separate.figures[0]
    await RE(scan([beamline.det], beamline.x, -1, 1, 3), separate)
    assert separate.figures[0] is not before


async def test_replayed_documents_show_the_same(
    RE: RunEngine, checker: DocChecker, beamline: SimBeamline
) -> None:
    live: list[str] = []
    await RE(scan([beamline.det], beamline.x, -3, 3, 31), BestEffort(out=live.append))

    replayed: list[str] = []
    bec = BestEffort(out=replayed.append)
    for name, doc in checker.docs:
        bec(name, doc)
    assert replayed == live
    assert bec.peaks["det"].cen == pytest.approx(0.0, abs=1e-9)
    assert data(bec.figures[0], "det#1", "y") == pytest.approx(
        np.exp(-(np.linspace(-3, 3, 31) ** 2) / 2)
    )


async def test_save_writes_every_figure_of_the_latest_run(
    RE: RunEngine, beamline: SimBeamline, tmp_path: Any
) -> None:
    bec = BestEffort(out=lambda line: None)
    await RE(scan([beamline.det, beamline.edge], beamline.x, -1, 1, 5), bec)
    html = bec.save(tmp_path / "run.html").read_text(encoding="utf-8")
    assert '"det#1"' in html
    assert '"edge#1"' in html
