"""LivePlot, LiveGrid, LiveScatter: what they draw, how often they redraw, what they save."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from acq.callbacks import LiveGrid, LivePlot, LiveScatter
from acq.plans import count, grid_scan, scan
from bokeh.models import ColumnDataSource, GlyphRenderer, Legend, LinearColorMapper
from bokeh_docs import named_sources
from event_model import pack_event_page
from support import Detector, DocChecker, Signal

from acq import RunEngine


class Plane(Detector):
    """Reads ``10 * slow + fast``: every grid point has its own value."""

    def __init__(self, name: str, slow: Signal, fast: Signal) -> None:
        super().__init__(name)
        self.slow, self.fast = slow, fast

    def read(self) -> dict[str, Any]:
        value = 10 * self.slow.value + self.fast.value
        return {self.name: {"value": value, "timestamp": time.time()}}


class Square(Detector):
    """Reads the square of its motor's position."""

    def __init__(self, name: str, motor: Signal) -> None:
        super().__init__(name)
        self.motor = motor

    def read(self) -> dict[str, Any]:
        return {self.name: {"value": self.motor.value**2, "timestamp": time.time()}}


def source(fig: Any, name: str) -> ColumnDataSource:
    found = fig.select_one({"name": name})
    assert isinstance(found, ColumnDataSource), f"no data source named {name!r}"
    return found


def column(fig: Any, name: str, key: str) -> list[float]:
    return [float(v) for v in source(fig, name).data[key]]


async def test_a_50ms_plot_does_not_slow_a_fast_scan(checker: DocChecker) -> None:
    # The checker validates afterwards: validating on the loop would slow the engine
    # and hide the cost this test is about.
    docs: list[tuple[str, dict[str, Any]]] = []
    RE = RunEngine()
    RE.subscribe(lambda name, doc: docs.append((name, doc)), thread=False)
    motor = Signal("motor")
    det = Square("det", motor)
    plot = LivePlot("det", "motor", redraw_interval=0.05)
    # "drop" instead of waiting: a subscriber that ever fell 10 000 documents behind
    # would show up in result.dropped -- the engine never waits for the plot. The plot
    # takes a few µs per event and redraws on the loop anyway, so it runs on the loop
    # (thread=False), where it gets a turn every 128 messages of the plan.
    RE.subscribe(plot, overflow="drop", maxsize=10_000, thread=False)
    num = 20_000
    began = time.monotonic()
    result = await RE(scan([det], motor, -1, 1, num))
    await plot.wait_drawn()
    elapsed = time.monotonic() - began
    for name, doc in docs:
        checker(name, doc)

    assert result.exit_status == "success"
    assert result.dropped == {}
    assert result.callback_errors == []
    x = column(plot.figure, "det#1", "x")
    y = column(plot.figure, "det#1", "y")
    assert len(x) == num
    assert x == pytest.approx(np.linspace(-1, 1, num).tolist())
    assert y == pytest.approx([v * v for v in x])
    assert 1 <= plot.redraws <= elapsed / 0.05 + 1


async def test_points_that_come_between_two_redraws_are_drawn_in_one(
    RE: RunEngine, checker: DocChecker
) -> None:
    await RE(count([Detector("det", 3.0)], 300))
    plot = LivePlot("det", redraw_interval=0.05)
    for name, doc in checker.docs:  # no await: the loop cannot redraw in between
        plot(name, doc)
    assert plot.redraws == 0
    await plot.wait_drawn()
    assert plot.redraws == 1
    assert column(plot.figure, "det#1", "y") == [3.0] * 300


async def test_liveplot_draws_several_fields_and_overlays_runs_with_a_legend(
    RE: RunEngine,
) -> None:
    motor = Signal("motor")
    det, det2 = Square("det", motor), Square("det2", motor)
    plot = LivePlot(["det", "det2"], "motor", legend_keys=["sample"])
    await RE(scan([det, det2], motor, 0, 2, 3), plot, sample="Si")
    si = RE.md["scan_id"]  # numbered by the session's catalog: not 1
    await RE(scan([det, det2], motor, -1, 1, 5), plot, sample="Ge")
    ge = RE.md["scan_id"]
    await plot.wait_drawn()

    fig = plot.figure
    assert column(fig, "det#1", "x") == [0.0, 1.0, 2.0]
    assert column(fig, "det#1", "y") == [0.0, 1.0, 4.0]
    assert column(fig, "det2#1", "y") == [0.0, 1.0, 4.0]
    assert column(fig, "det#2", "x") == [-1.0, -0.5, 0.0, 0.5, 1.0]
    assert column(fig, "det2#2", "y") == [1.0, 0.25, 0.0, 0.25, 1.0]
    legend = fig.select_one({"type": Legend})
    labels = [item.label.value for item in legend.items]
    assert labels == [f"det  scan {si}  sample=Si", f"det2  scan {si}  sample=Si",
                      f"det  scan {ge}  sample=Ge", f"det2  scan {ge}  sample=Ge"]  # fmt: skip
    colours = {r.glyph.line_color for r in fig.select({"type": GlyphRenderer})}
    assert len(colours) == 4, "each line has its own colour"
    assert fig.xaxis[0].axis_label == "motor (mm)"
    assert fig.yaxis[0].axis_label == "det (counts), det2 (counts)"


async def test_x_defaults_to_seq_num_and_time_is_seconds_since_the_start(RE: RunEngine) -> None:
    by_number, by_time = LivePlot("det"), LivePlot("det", x="time")
    await RE(count([Detector("det", 2.5)], 4), by_number, by_time)
    await by_number.wait_drawn()
    await by_time.wait_drawn()
    assert column(by_number.figure, "det#1", "x") == [1.0, 2.0, 3.0, 4.0]
    assert column(by_number.figure, "det#1", "y") == [2.5] * 4
    times = column(by_time.figure, "det#1", "x")
    assert all(0 <= t < 60 for t in times)
    assert times == sorted(times)


def _replay(documents: list[tuple[str, dict[str, Any]]], as_pages: bool) -> list[Any]:
    out: list[Any] = []
    for name, doc in documents:
        if as_pages and name == "event":
            if out and out[-1][0] == "event_page":
                continue
            events = [d for n, d in documents if n == "event"]
            out.append(("event_page", pack_event_page(*events)))
        else:
            out.append((name, doc))
    return out


def test_replayed_documents_and_event_pages_draw_without_an_event_loop(
    checker: DocChecker,
) -> None:
    import asyncio

    async def record() -> None:
        motor = Signal("motor")
        await RunEngine()(scan([Square("det", motor)], motor, 0, 3, 4), checker)

    asyncio.run(record())
    plot = LivePlot("det", "motor")
    for name, doc in _replay(checker.docs, as_pages=True):
        plot(name, doc)
    assert [n for n, _ in _replay(checker.docs, as_pages=True)].count("event_page") == 1
    assert plot.redraws >= 1
    assert column(plot.figure, "det#1", "x") == [0.0, 1.0, 2.0, 3.0]
    assert column(plot.figure, "det#1", "y") == [0.0, 1.0, 4.0, 9.0]


async def test_a_missing_or_non_scalar_field_is_a_clear_error_and_the_scan_goes_on(
    RE: RunEngine,
) -> None:
    result = await RE(count([Detector("det")], 2), LivePlot("nope"), LivePlot("det", x="motor"))
    assert result.exit_status == "success"
    messages = sorted(str(e.error) for e in result.callback_errors)
    assert len(messages) == 2
    assert "['nope'] not in stream 'primary'" in messages[0]
    assert "x='motor' is not in stream 'primary'" in messages[1]


async def test_livegrid_is_shaped_from_the_grid_scan_hints(RE: RunEngine) -> None:
    slow, fast = Signal("slow"), Signal("fast")
    grid = LiveGrid("plane")
    plan = grid_scan([Plane("plane", slow, fast)], slow, -1, 1, 3, fast, 0, 3, 4, snake_axes=True)
    result = await RE(plan, grid)
    await grid.wait_drawn()
    assert result.callback_errors == []

    data = source(grid.figure, "plane#1").data
    image = np.asarray(data["image"][0])
    slow_at = np.linspace(-1, 1, 3)[:, None]
    fast_at = np.linspace(0, 3, 4)[None, :]
    # every pixel holds the value read at its own (slow, fast) point, snaking or not
    np.testing.assert_allclose(image, 10 * slow_at + fast_at)
    # pixels centred on the points: 1 mm apart in fast (x), 1 mm apart in slow (y)
    assert data["x"] == [-0.5]
    assert data["dw"] == [4.0]
    assert data["y"] == [-1.5]
    assert data["dh"] == [3.0]
    assert grid.figure.xaxis[0].axis_label == "fast (mm)"
    assert grid.figure.yaxis[0].axis_label == "slow (mm)"
    mapper = grid.figure.select_one({"type": LinearColorMapper})
    assert (mapper.low, mapper.high) == (-10.0, 13.0)


async def test_livegrid_shows_a_partial_grid_and_decreasing_extents(RE: RunEngine) -> None:
    slow, fast = Signal("slow"), Signal("fast")
    grid = LiveGrid("plane", shape=(2, 3), extents=((1, 0), (2, 0)))
    # an explicit shape larger than what runs: 4 of 6 points, the rest stays empty (NaN)
    await RE(scan([Plane("plane", slow, fast)], fast, 2, -1, 4), grid)
    await grid.wait_drawn()
    image = np.asarray(source(grid.figure, "plane#1").data["image"][0])
    in_scan_order = np.array([[2.0, 1.0, 0.0], [-1.0, np.nan, np.nan]])
    # both extents decrease: the drawn image is flipped so that x and y increase
    np.testing.assert_array_equal(image, in_scan_order[::-1, ::-1])


async def test_livegrid_without_a_shape_says_so(RE: RunEngine) -> None:
    result = await RE(count([Detector("det")], 2), LiveGrid("det"))
    assert result.exit_status == "success"
    (error,) = result.callback_errors
    assert "shape=(rows, columns)" in str(error.error)


async def test_livescatter_colours_points_by_value(RE: RunEngine) -> None:
    slow, fast = Signal("slow"), Signal("fast")
    scatter = LiveScatter("fast", "slow", "plane")
    await RE(grid_scan([Plane("plane", slow, fast)], slow, 0, 1, 2, fast, 0, 2, 3), scatter)
    await scatter.wait_drawn()
    fig = scatter.figure
    assert column(fig, "plane#1", "x") == [0.0, 1.0, 2.0, 0.0, 1.0, 2.0]
    assert column(fig, "plane#1", "y") == [0.0, 0.0, 0.0, 1.0, 1.0, 1.0]
    assert column(fig, "plane#1", "I") == [0.0, 1.0, 2.0, 10.0, 11.0, 12.0]
    mapper = fig.select_one({"type": LinearColorMapper})
    assert (mapper.low, mapper.high) == (0.0, 12.0)


def _bokeh_json(html: str) -> list[dict[str, Any]]:
    """The documents a standalone bokeh HTML file embeds."""
    scripts = re.findall(r'<script type="application/json"[^>]*>\s*(.*?)\s*</script>', html, re.S)
    assert scripts, "no embedded bokeh document"
    return list(json.loads(scripts[0]).values())


async def test_save_writes_a_standalone_html_file_with_the_data(
    RE: RunEngine, tmp_path: Path
) -> None:
    motor = Signal("motor")
    plot = LivePlot("det", "motor")
    await RE(scan([Square("det", motor)], motor, -2, 2, 5), plot)
    path = plot.save(tmp_path / "plot.html")

    html = path.read_text(encoding="utf-8")
    assert "<script src=" not in html, "BokehJS must be inlined, not fetched"
    assert "Bokeh.embed" in html or "embed_items" in html
    sources = named_sources(_bokeh_json(html), as_lists=True)
    assert sources["det#1"]["x"] == [-2.0, -1.0, 0.0, 1.0, 2.0]
    assert sources["det#1"]["y"] == [4.0, 1.0, 0.0, 1.0, 4.0]


NOTEBOOK_CELL = """
from acq import RunEngine
from acq.callbacks import LivePlot
from acq.devices.sim import sim_beamline
from acq.plans import scan

beamline = await sim_beamline(velocity=1.0)  # 50 ms per point
plot = LivePlot("det", "x", redraw_interval=0.05)
result = await RunEngine()(scan([beamline.det], beamline.x, -1, 1, 21), plot)
await plot.wait_drawn()
points = len(plot.figure.select_one({"name": "det#1"}).data["x"])
print("done", result.exit_status, plot.redraws, points)
"""


@pytest.mark.kernel
def test_in_jupyter_the_plot_shows_in_its_cell_and_updates_in_place(tmp_path: Path) -> None:
    from kernels import CELL_DEADLINE, start_kernel

    with start_kernel(tmp_path) as kernel:
        kc = kernel.client
        msg_id = kc.execute(NOTEBOOK_CELL)
        deadline = time.monotonic() + CELL_DEADLINE
        messages: list[dict[str, Any]] = []
        while not any(
            m["msg_type"] == "status" and m["content"]["execution_state"] == "idle"
            for m in messages
        ):
            assert time.monotonic() < deadline, f"the cell did not finish: {messages[-5:]}"
            msg = kc.get_iopub_msg(timeout=CELL_DEADLINE)
            if msg["parent_header"].get("msg_id") == msg_id:
                messages.append({"msg_type": msg["header"]["msg_type"], **msg})

    kinds = [m["msg_type"] for m in messages]
    assert "error" not in kinds, [m["content"] for m in messages if m["msg_type"] == "error"]
    out = "".join(m["content"]["text"] for m in messages if m["msg_type"] == "stream")
    status, redraws, points = out.split("done", 1)[1].split()
    assert (status, points) == ("success", "21")
    # the figure is displayed once, in this cell, as a BokehJS document ...
    shown = [m for m in messages if m["msg_type"] == "display_data"
             and "application/vnd.bokehjs_exec.v0+json" in m["content"]["data"]]  # fmt: skip
    assert len(shown) == 1
    # ... then patched in place through its comm while the scan runs: one PATCH-DOC
    # (header, metadata, content) per redraw, never more often than redraws
    assert kinds.count("comm_open") == 1
    patches = [m for m in messages if m["msg_type"] == "comm_msg"
               and "PATCH-DOC" in str(m["content"]["data"])]  # fmt: skip
    assert 2 <= len(patches) <= int(redraws)


def test_the_figures_are_public_names_of_acq_callbacks() -> None:
    import acq.callbacks

    mine = {"LivePlot", "LiveGrid", "LiveScatter", "LiveFigure", "BestEffort"}
    assert mine <= set(acq.callbacks.__all__)
    for name in mine:
        assert getattr(acq.callbacks, name).__module__.startswith("acq.callbacks._")
