"""A notebook run in a real kernel keeps its final figures and bars, and opens offline.

The notebook (made here with nbformat, executed by nbclient) scans the simulated
beamline with BestEffort and a ProgressBar subscribed, plus a LivePlot of 31 points and
a LiveGrid of 5 x 5. The saved notebook must then hold BokehJS itself (no CDN), each
figure with all of its points, each progress bar at 100 % and each table in one piece;
and, converted to HTML by nbconvert, it must show the plots in Debian's chromium with
every network request refused.
"""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from nbconvert import HTMLExporter
from nbformat import NotebookNode
from notebooks import execute_notebook, figures, shown_text, texts
from PIL import Image
from playwright.async_api import Browser, Route

pytestmark = pytest.mark.kernel

WAIT_MS = 20_000

SETUP = """\
from acq import RunEngine
from acq.callbacks import BestEffort, LiveGrid, LivePlot, ProgressBar
from acq.devices.sim import sim_beamline
from acq.plans import grid_scan, scan

bl = await sim_beamline()  # motors at 10 mm/s: a point every 20-50 ms
RE = RunEngine(catalog=None)
RE.subscribe(BestEffort())
RE.subscribe(ProgressBar())
"""
SCAN = """\
await RE(scan([bl.det], bl.x, -3, 3, 31), LivePlot("det", "x"))
"""
GRID = """\
import sys

sys.modules["ipywidgets"] = None  # from here on, as in a kernel without ipywidgets
await RE(grid_scan([bl.det2d], bl.y, -1, 1, 5, bl.x, -1, 1, 5, snake_axes=True), LiveGrid("det2d"))
"""


@pytest.fixture(scope="module")
def notebook(tmp_path_factory: pytest.TempPathFactory) -> NotebookNode:
    return execute_notebook([SETUP, SCAN, GRID], tmp_path_factory.mktemp("notebook"))


def test_the_saved_notebook_holds_bokehjs_itself(notebook: NotebookNode) -> None:
    everything = list(texts(notebook))
    assert not [t for t in everything if "cdn.bokeh.org" in t], "BokehJS must not come from a CDN"
    assert not [t for t in everything if re.search(r"<script[^>]+src=", t)]
    scripts = [
        len(o.data["application/javascript"])
        for cell in notebook.cells
        for o in cell.outputs
        if "application/javascript" in o.get("data", {})
    ]
    assert max(scripts) > 500_000, "no output holds BokehJS (inline, it is over 500 kB)"


def test_the_saved_notebook_keeps_each_figure_as_drawn_at_the_end(notebook: NotebookNode) -> None:
    _setup, scan_cell, grid_cell = notebook.cells
    # BestEffort's plot and the LivePlot, each once, each with all 31 points
    plots = figures(scan_cell)
    assert len(plots) == 2, [list(f) for f in plots]
    for plot in plots:
        assert len(plot["det#1"]["y"]) == 31
        assert max(plot["det#1"]["y"]) == pytest.approx(1.0)  # the peak, at x = 0
    # BestEffort's grid and the LiveGrid, each once, every pixel filled
    grids = figures(grid_cell)
    assert len(grids) == 2, [list(f) for f in grids]
    for grid in grids:
        (image,) = grid["det2d#1"]["image"]
        assert image.shape == (5, 5)
        assert np.isfinite(image).all(), image


def _bars(cell: NotebookNode, desc: str) -> list[tuple[str, str]]:
    shown = [(o.output_type, shown_text(o)) for o in cell.outputs]
    return [(kind, text) for kind, text in shown if re.search(rf"^{desc}:\s+\d+%", text, re.M)]


def test_the_saved_progress_bars_end_full(notebook: NotebookNode) -> None:
    _setup, scan_cell, grid_cell = notebook.cells
    # with ipywidgets: the widget, whose saved text is the final state
    (widget,) = [o for o in scan_cell.outputs if "application/vnd.jupyter.widget-view+json"
                 in o.get("data", {})]  # fmt: skip
    assert "scan 1: 100%" in shown_text(widget)
    assert "31/31" in shown_text(widget)
    assert _bars(scan_cell, "scan 1") == [("display_data", shown_text(widget))]
    # without: one text display updated in place, never lines on stderr between the rows
    ((kind, text),) = _bars(grid_cell, "grid_scan 2")
    assert kind == "display_data"
    assert "grid_scan 2: 100%" in text, text
    assert "25/25" in text
    assert "exit_status=success" in text


@pytest.mark.parametrize("index", [1, 2], ids=["scan", "grid_scan"])
def test_the_table_is_in_one_piece(notebook: NotebookNode, index: int) -> None:
    outputs = notebook.cells[index].outputs
    first = next(i for i, o in enumerate(outputs) if "scan_id=" in shown_text(o))
    last = next(i for i in range(first, len(outputs)) if "num_events=" in shown_text(outputs[i]))
    # one output (a display area), or lines on stdout with nothing in between
    between = [(o.output_type, o.get("name")) for o in outputs[first : last + 1]]
    assert first == last or set(between) == {("stream", "stdout")}, between
    table = "".join(shown_text(o) for o in outputs[first : last + 1])
    assert table.count("\n|") >= (31 if index == 1 else 25)


def _coloured(png: bytes, box: tuple[int, int, int, int]) -> np.ndarray[Any, Any]:
    """Which pixels inside ``box`` have a colour (the background and grid are greys)."""
    left, top, width, height = box
    rgb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=int)
    area = rgb[top : top + height, left : left + width]
    return (area.max(axis=2) - area.min(axis=2)) > 40


@pytest.mark.browser
async def test_the_notebook_as_html_shows_the_final_plots_offline(
    notebook: NotebookNode, browser: Browser, tmp_path: Path
) -> None:
    html, _resources = HTMLExporter(template_name="lab").from_notebook_node(notebook)
    path = tmp_path / "scan.html"
    path.write_text(html, encoding="utf-8")
    refused: list[str] = []

    async def offline(route: Route) -> None:
        if route.request.url.startswith("file:"):
            await route.continue_()
        else:
            refused.append(route.request.url)
            await route.abort()

    page = await browser.new_page(viewport={"width": 1200, "height": 900})
    await page.route("**/*", offline)
    await page.goto(path.as_uri())
    await page.wait_for_function(
        """() => window.Bokeh && Bokeh.documents.length === 4
            && Bokeh.documents.every(d => d.is_idle)
            && Object.values(Bokeh.index).filter(v => v.frame).length === 4
            && Object.values(Bokeh.index).every(v => v.has_finished())""",
        timeout=WAIT_MS,
    )
    boxes = await page.evaluate(
        """() => Object.values(Bokeh.index).filter(v => v.frame).map(view => {
            const rect = view.el.getBoundingClientRect(), f = view.frame.bbox;
            return [rect.left + f.left, rect.top + window.scrollY + f.top,
                    f.width, f.height].map(Math.round);
        }).sort((a, b) => a[1] - b[1])"""
    )
    png = await page.screenshot(path=tmp_path / "scan.png", full_page=True)

    assert len(boxes) == 4
    for box in boxes[:2]:  # the two plots of the 1-D scan: a curve from side to side
        columns = np.flatnonzero(_coloured(png, tuple(box)).any(axis=0))
        assert columns.size > 0.8 * box[2], f"the plot at {box} is blank or partial"
    for box in boxes[2:]:  # the two grids: an image filling the frame
        filled = _coloured(png, tuple(box)).mean()
        assert filled > 0.7, f"the grid at {box} is {filled:.0%} filled"


def test_the_tutorial_run_top_to_bottom_in_a_kernel_keeps_its_final_plot(
    tmp_path: Path,
) -> None:
    from test_docs import DOCS, python_blocks

    page = DOCS / "tutorials" / "first-scan.md"
    cells = [block.source for block in python_blocks(page) if block.runnable]
    setup = "import os\nos.chdir(" + repr(str(tmp_path)) + ")\n"  # files it writes go here
    executed = execute_notebook([setup, *cells], tmp_path)
    errors = [o for c in executed.cells for o in c.outputs if o.output_type == "error"]
    assert not errors, [f"{e.ename}: {e.evalue}" for e in errors]
    everything = list(texts(executed))
    assert not [t for t in everything if "cdn.bokeh.org" in t], "BokehJS must not come from a CDN"
    drawn = [f for cell in executed.cells for f in figures(cell)]
    assert drawn, "the tutorial's live plot is not in the saved notebook"
    (points,) = {len(source["y"]) for source in drawn[-1].values() if "y" in source}
    assert points == 21  # the final figure: every point of the scan
