"""A real headless Chromium watches a live plot and looks at a saved one.

Debian's chromium (/usr/bin/chromium) driven by Playwright; no browser is downloaded.
"""

from __future__ import annotations

import asyncio
import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from acq.callbacks import BestEffort, LivePlot
from acq.devices.sim import sim_beamline
from acq.plans import grid_scan, scan
from PIL import Image
from playwright.async_api import Browser, Page

from acq import RunEngine

pytestmark = pytest.mark.browser

WAIT_MS = 20_000  # the longest any single wait for the page may take

# the length of a named data source in the page's first bokeh document (-1: not yet)
SOURCE_LENGTH = """name => {
    const doc = window.Bokeh && Bokeh.documents[0];
    const source = doc && doc.get_model_by_name(name);
    if (!source) return -1;
    const data = source.data;
    return (data instanceof Map ? data.get("y") : data["y"]).length;
}"""


async def source_length_above(page: Page, name: str, length: int) -> int:
    """Wait (bounded) until the page's source ``name`` has more than ``length`` rows."""
    handle = await page.wait_for_function(
        f"name => ({SOURCE_LENGTH})(name) > {length} && ({SOURCE_LENGTH})(name)",
        arg=name,
        timeout=WAIT_MS,
        polling=10,
    )
    return int(await handle.json_value())


async def test_the_live_page_shows_the_points_grow_while_the_scan_runs(browser: Browser) -> None:
    beamline = await sim_beamline(velocity=1.0)  # 0.05 mm steps take 50 ms each
    plot = LivePlot("det", "x", redraw_interval=0.05)
    url = await plot.serve()
    assert url.startswith("http://127.0.0.1:")
    try:
        page = await browser.new_page()
        await page.goto(url)
        await page.wait_for_function("window.Bokeh && Bokeh.documents.length > 0", timeout=WAIT_MS)

        num = 41
        run = asyncio.create_task(RunEngine()(scan([beamline.det], beamline.x, -1, 1, num), plot))
        seen = [await source_length_above(page, "det#1", 0)]
        while seen[-1] < num:
            seen.append(await source_length_above(page, "det#1", seen[-1]))
        result = await run

        assert result.exit_status == "success"
        assert seen == sorted(seen)
        assert seen[-1] == num
        # the page was updated many times during the scan, not once at its end
        assert len(seen) >= 5, seen
        y = await page.evaluate(
            """() => Array.from((d => d instanceof Map ? d.get("y") : d.y)(
                Bokeh.documents[0].get_model_by_name("det#1").data))"""
        )
        assert max(y) == pytest.approx(1.0)  # the sim Gaussian's peak, at x = 0
    finally:
        await plot.close()


async def test_a_second_tab_opened_late_gets_the_whole_curve(browser: Browser) -> None:
    beamline = await sim_beamline(instant=True)
    plot = LivePlot("det", "x")
    await RunEngine()(scan([beamline.det], beamline.x, -1, 1, 11), plot)
    url = await plot.serve()
    try:
        page = await browser.new_page()
        await page.goto(url)
        assert await source_length_above(page, "det#1", 10) == 11
    finally:
        await plot.close()


async def test_the_best_effort_page_follows_the_latest_run(browser: Browser) -> None:
    beamline = await sim_beamline(instant=True)
    bec = BestEffort(out=lambda line: None)
    url = await bec.serve()
    try:
        page = await browser.new_page()
        await page.goto(url)
        await page.wait_for_function("window.Bokeh && Bokeh.documents.length > 0", timeout=WAIT_MS)
        RE = RunEngine()
        await RE(scan([beamline.det, beamline.edge], beamline.x, -1, 1, 11), bec)
        assert await source_length_above(page, "det#1", 10) == 11
        assert await source_length_above(page, "edge#1", 10) == 11

        await RE(grid_scan([beamline.det2d], beamline.y, -1, 1, 3, beamline.x, -1, 1, 3), bec)
        # the page now shows the grid scan's image instead of the 1-D scan's two plots
        await page.wait_for_function(
            """() => { const doc = Bokeh.documents[0];
                return doc.get_model_by_name("det2d#1") !== null
                    && doc.roots()[0].children.length === 1; }""",
            timeout=WAIT_MS,
        )
    finally:
        await bec.close()


def _line_pixels(png: bytes, box: tuple[int, int, int, int]) -> np.ndarray[Any, Any]:
    """Which pixels inside ``box`` are the curve's: the background and the grid are
    white and grey (red = green = blue), the first line is blue (#1f77b4)."""
    left, top, width, height = box
    rgb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=int)
    area = rgb[top : top + height, left : left + width]
    return (area[..., 2] - area[..., 0]) > 40


async def test_a_screenshot_of_the_saved_plot_shows_the_curve(
    browser: Browser, tmp_path: Path
) -> None:
    beamline = await sim_beamline(instant=True)
    plot = LivePlot("det", "x")
    await RunEngine()(scan([beamline.det], beamline.x, -3, 3, 61), plot)
    path = plot.save(tmp_path / "scan.html")

    page = await browser.new_page(viewport={"width": 900, "height": 500})
    await page.goto(path.as_uri())
    await page.wait_for_function(
        """() => window.Bokeh && Bokeh.documents.length > 0 && Bokeh.documents[0].is_idle
            && Object.values(Bokeh.index).some(v => v.frame && v.has_finished())""",
        timeout=WAIT_MS,
    )
    box = await page.evaluate(
        """() => {
            const view = Object.values(Bokeh.index).find(v => v.frame);
            const rect = view.el.getBoundingClientRect(), f = view.frame.bbox;
            return [rect.left + f.left, rect.top + f.top, f.width, f.height].map(Math.round);
        }"""
    )
    png = await page.screenshot(path=tmp_path / "scan.png")
    line = _line_pixels(png, tuple(box))

    width = box[2]
    columns = np.flatnonzero(line.any(axis=0))
    assert columns.size > 0, "no curve in the plot area"
    # the curve spans the plot area from side to side (bokeh pads the range by 5 %)
    assert columns[0] < 0.1 * width
    assert columns[-1] > 0.9 * width
    assert columns.size > 0.95 * (columns[-1] - columns[0] + 1), "the curve has gaps"
    # the Gaussian peaks at x = 0, the middle of the scan: its highest pixel is there
    rows, cols = np.nonzero(line)
    peak_column = cols[rows == rows.min()].mean()
    assert abs(peak_column - width / 2) < 0.05 * width
    # and its tails are low: the curve's ends sit in the lower part of the frame
    assert rows[cols == columns[0]].min() > 0.7 * box[3]
    assert rows[cols == columns[-1]].min() > 0.7 * box[3]
