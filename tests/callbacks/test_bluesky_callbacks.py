"""bluesky's own callbacks, subscribed to acq's engine, on classic ophyd's sim devices.

These are the real packages a bluesky user brings (bluesky.callbacks, ophyd.sim), not
copies: a LiveTable prints a row per point, a BestEffortCallback finds the peak, and a
PeakStats subscribed by the plan itself has its result when ``close_run`` returns, so
the plan can move to the peak it just found (apstools' ``lineup2`` does exactly this).
"""

from __future__ import annotations

import math
from collections.abc import Generator, Iterator
from typing import Any

import bluesky.plan_stubs as bps
import bluesky.plans as bp
import bluesky.preprocessors as bpp
import matplotlib
import pytest
from acq.callbacks import PeakStats as AcqPeakStats
from bluesky.callbacks import LiveTable
from bluesky.callbacks.best_effort import BestEffortCallback
from bluesky.callbacks.fitting import PeakStats as BlueskyPeakStats
from ophyd.sim import SynAxis, SynGauss

from acq import RunEngine

CENTER = 0.3


@pytest.fixture(autouse=True)
def agg_backend() -> Iterator[None]:
    """No screen here: bluesky's plotting callbacks draw with matplotlib's Agg."""
    matplotlib.use("Agg")
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


@pytest.fixture
def motor() -> SynAxis:
    return SynAxis(name="motor")


@pytest.fixture
def det(motor: SynAxis) -> SynGauss:
    return SynGauss("det", motor, "motor", center=CENTER, Imax=1, sigma=0.5)


async def test_bluesky_live_table_prints_a_row_per_point(
    RE: RunEngine, motor: SynAxis, det: SynGauss, capsys: pytest.CaptureFixture[str]
) -> None:
    await RE(bp.scan([det], motor, -1, 1, 5), LiveTable(["motor", "det"]))
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("|") and "motor" not in line]
    assert len(rows) == 5, out
    assert [float(row.split("|")[3]) for row in rows] == [-1.0, -0.5, 0.0, 0.5, 1.0]


async def test_bluesky_best_effort_callback_finds_the_peak(
    RE: RunEngine, motor: SynAxis, det: SynGauss, capsys: pytest.CaptureFixture[str]
) -> None:
    bec = BestEffortCallback()  # its peak statistics come with its plots (Agg here)
    RE.subscribe(bec, thread=False)  # matplotlib's pyplot wants one thread
    await RE(bp.scan([det], motor, -2, 2, 41))
    assert bec.peaks["cen"]["det"] == pytest.approx(CENTER, abs=0.02)
    assert "det" in capsys.readouterr().out  # its table


def _lineup(
    det: Any, motor: Any, stats: Any, start: float, stop: float, num: int
) -> Generator[Any, Any, float]:
    """Scan, then move to the centre the callback found (apstools' lineup pattern)."""
    token = yield from bps.subscribe("all", stats)
    yield from bp.rel_scan([det], motor, start, stop, num)
    yield from bps.unsubscribe(token)
    yield from bps.mv(motor, stats.cen)
    return float(stats.cen)


@pytest.mark.parametrize("kind", ["bluesky", "acq"])
async def test_a_plan_moves_to_the_centre_its_own_peak_stats_found(
    bare_RE: RunEngine, motor: SynAxis, det: SynGauss, kind: str
) -> None:
    stats = BlueskyPeakStats("motor", "det") if kind == "bluesky" else AcqPeakStats("motor", "det")
    result = await bare_RE(_lineup(det, motor, stats, -2, 2, 41))
    assert not math.isnan(result.plan_result)
    assert result.plan_result == pytest.approx(CENTER, abs=0.02)
    assert motor.position == pytest.approx(result.plan_result)


async def test_peak_stats_subscribed_by_rE_is_ready_after_the_scan_in_the_same_plan(
    bare_RE: RunEngine, motor: SynAxis, det: SynGauss
) -> None:
    RE = bare_RE
    ps = BlueskyPeakStats("motor", "det")
    RE.subscribe(ps)

    def plan() -> Generator[Any, Any, Any]:
        yield from bp.scan([det], motor, -2, 2, 41)
        yield from bps.mv(motor, ps.cen)  # read when the plan gets here, as in bluesky

    await RE(plan())
    assert motor.position == pytest.approx(CENTER, abs=0.02)


async def test_a_callback_the_plan_subscribed_has_every_event_before_close_run(
    bare_RE: RunEngine, motor: SynAxis, det: SynGauss
) -> None:
    # apstools' lineup2 computes its statistics in a plan inserted before close_run
    events: list[float] = []
    counted_before_close: list[int] = []

    def collect(name: str, doc: dict[str, Any]) -> None:
        if name == "event":
            events.append(doc["data"]["det"])

    def count_then_close(msg: Any) -> tuple[Any, Any]:
        if msg.command != "close_run":
            return None, None

        def before() -> Generator[Any, Any, Any]:
            counted_before_close.append(len(events))
            yield from bps.null()

        return bpp.pchain(before(), bpp.single_gen(msg)), None

    @bpp.subs_decorator(collect)
    def plan() -> Generator[Any, Any, Any]:
        return (yield from bpp.plan_mutator(bp.scan([det], motor, -1, 1, 7), count_then_close))

    await bare_RE(plan())
    assert counted_before_close == [7]
