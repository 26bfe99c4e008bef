"""Make the pictures of docs/how-to/watch-a-scan.md: ``python docs/images/make_images.py``.

Runs scans on the simulated beamline with each callback subscribed, then takes
screenshots with headless Chromium (Debian's /usr/bin/chromium driven by Playwright):
bokeh figures from their saved HTML files and from a live page served while a scan
runs, terminal text (table, peak statistics, progress bar) rendered in a <pre> block.
The PNGs are written beside this script.
"""

from __future__ import annotations

import asyncio
import html
import io
import os
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

from acq.callbacks import (
    BestEffort,
    LiveGrid,
    LivePlot,
    LiveScatter,
    LiveTable,
    PeakStats,
    ProgressBar,
)
from acq.devices.sim import SimBeamline, sim_beamline
from acq.plans import grid_scan, scan, spiral
from playwright.async_api import Browser, Page, async_playwright

from acq import RunEngine

HERE = Path(__file__).resolve().parent
CHROMIUM = "/usr/bin/chromium"
TERMINAL = """<!doctype html><meta charset="utf-8"><body style="margin:0;background:#fff">
<pre style="display:inline-block;margin:0;padding:14px 18px;background:#1e1e1e;color:#e8e8e8;
font:13px/1.35 'DejaVu Sans Mono',monospace">{}</pre>"""


async def bokeh_ready(page: Page) -> None:
    """Wait until every bokeh view of the page has rendered."""
    await page.wait_for_function(
        """() => window.Bokeh && Bokeh.documents.length > 0 && Bokeh.documents[0].is_idle
            && Object.values(Bokeh.index).every(v => v.has_finished())""",
        timeout=30_000,
    )


CONTENT_BOX = """() => {
    const boxes = [...document.querySelectorAll("pre")].map(e => e.getBoundingClientRect());
    for (const root of Bokeh.documents[0].roots())
        boxes.push(Bokeh.index[root.id].el.getBoundingClientRect());
    return {x: 0, y: 0, width: Math.ceil(Math.max(...boxes.map(b => b.right))) + 8,
            height: Math.ceil(Math.max(...boxes.map(b => b.bottom))) + 8};
}"""


async def shoot_html(browser: Browser, path: Path, png: str) -> None:
    """Screenshot a saved bokeh page, cropped to its figures (and text)."""
    page = await browser.new_page(viewport={"width": 1200, "height": 300})
    await page.goto(path.as_uri())
    await bokeh_ready(page)
    clip = await page.evaluate(CONTENT_BOX)
    await page.screenshot(path=HERE / png, full_page=True, clip=clip)
    await page.close()


async def shoot_text(browser: Browser, text: str, png: str, workdir: Path) -> None:
    """Screenshot terminal text as a dark <pre> block, cropped to it."""
    path = workdir / (png + ".html")
    path.write_text(TERMINAL.format(html.escape(text)), encoding="utf-8")
    page = await browser.new_page(viewport={"width": 1000, "height": 200})
    await page.goto(path.as_uri())
    await page.locator("pre").screenshot(path=HERE / png)
    await page.close()


def with_text_above(figure_html: Path, text: str) -> None:
    """Put terminal text above the figures of a saved bokeh page."""
    block = TERMINAL.split("<body", 1)[1].split(">", 1)[1].format(html.escape(text))
    head, body = figure_html.read_text(encoding="utf-8").rsplit("<body>", 1)  # the JS has one too
    figure_html.write_text(head + "<body>" + block + body, encoding="utf-8")


async def best_effort(bl: SimBeamline, browser: Browser, work: Path) -> None:
    lines: list[str] = []
    bec = BestEffort(out=lines.append)
    await RunEngine()(scan([bl.det, bl.edge], bl.x, -3, 3, 13), bec)
    path = bec.save(work / "best-effort.html")
    with_text_above(path, "\n".join(lines))
    await shoot_html(browser, path, "best-effort.png")


async def table_and_progress(bl: SimBeamline, browser: Browser, work: Path) -> None:
    lines: list[str] = []
    bar_text = io.StringIO()
    plan = scan([bl.det], bl.x, -2, 2, 9)
    await RunEngine()(plan, LiveTable(["x", "det"], out=lines.append), ProgressBar(file=bar_text))
    await shoot_text(browser, "\n".join(lines), "live-table.png", work)
    final_bar = bar_text.getvalue().split("\r")[-1].strip()
    await shoot_text(browser, final_bar, "progress.png", work)


async def peak_stats(bl: SimBeamline, browser: Browser, work: Path) -> None:
    ps = PeakStats("x", "det")
    await RunEngine()(scan([bl.det], bl.x, -3, 3, 31), ps)
    await shoot_text(browser, f">>> ps\n{ps!r}\n>>> ps.cen, ps.fwhm\n{ps.cen, ps.fwhm}",
                     "peak-stats.png", work)  # fmt: skip


async def figures(bl: SimBeamline, browser: Browser, work: Path) -> None:
    RE = RunEngine()
    plot = LivePlot(["det", "edge"], "x")
    await RE(scan([bl.det, bl.edge], bl.x, -3, 3, 31), plot)
    await RE(scan([bl.det, bl.edge], bl.x, -2, 2, 9), plot)
    await shoot_html(browser, plot.save(work / "plot.html"), "live-plot.png")

    grid = LiveGrid("det2d")
    await RE(grid_scan([bl.det2d], bl.y, -2, 2, 15, bl.x, -3, 3, 21, snake_axes=True), grid)
    await shoot_html(browser, grid.save(work / "grid.html"), "live-grid.png")

    scatter = LiveScatter("x", "y", "det2d")
    await RE(spiral([bl.det2d], bl.x, bl.y, 0, 0, 4, 4, 0.3, 8), scatter)
    await shoot_html(browser, scatter.save(work / "scatter.html"), "live-scatter.png")


async def live_page(browser: Browser) -> None:
    """The page a browser watches, caught half-way through a scan."""
    slow = await sim_beamline(velocity=1.0)  # 0.1 mm steps: 0.1 s each
    plot = LivePlot("det", "x")
    url = await plot.serve()
    page = await browser.new_page(viewport={"width": 960, "height": 420})
    await page.goto(url)
    run = asyncio.ensure_future(RunEngine()(scan([slow.det], slow.x, -3, 3, 61), plot))
    await page.wait_for_function(
        """() => { const doc = window.Bokeh && Bokeh.documents[0];
                   const s = doc && doc.get_model_by_name("det#1");
                   return Boolean(s) && s.data.y.length >= 36; }""",
        timeout=60_000,
    )
    clip = await page.evaluate(CONTENT_BOX)
    await page.screenshot(path=HERE / "live-page.png", clip=clip)
    await run
    await page.close()
    await plot.close()


async def main(steps: list[Callable[..., Awaitable[None]]]) -> None:
    bl = await sim_beamline(instant=True)
    args = ["--no-sandbox"] if os.geteuid() == 0 else []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=args)
            for step in steps:
                await step(bl, browser, work)
            await live_page(browser)
            await browser.close()
    print("wrote", sorted(p.name for p in HERE.glob("*.png")))


if __name__ == "__main__":
    asyncio.run(main([best_effort, table_and_progress, peak_stats, figures]))
