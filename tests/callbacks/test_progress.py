"""Progress bars count a run's points and follow a move, redrawing at a bounded rate."""

from __future__ import annotations

import io
from collections.abc import AsyncGenerator
from typing import Any

import pytest
from acq.callbacks import MoveProgress, ProgressBar, watch_progress
from acq.devices.sim import Flyer, Motor
from acq.plans import count, fly, scan
from support import Detector, Signal

from acq import Msg, RunEngine


def redraws(text: str) -> int:
    """The text bar starts every redraw with a carriage return."""
    return text.count("\r")


async def test_the_bar_counts_to_num_points_and_shows_the_exit_status(RE: RunEngine) -> None:
    out = io.StringIO()
    await RE(scan([Detector("det")], Signal("motor"), 0, 1, 40), ProgressBar(file=out))
    final = out.getvalue().rsplit("\r", 1)[-1]
    assert final.startswith(f"scan {RE.md['scan_id']}: 100%")  # the run's scan_id
    assert "40/40" in final
    assert "exit_status=success" in final
    assert final.endswith("\n")  # closed, left on screen


async def test_redraws_are_bounded_by_min_interval_not_by_points(RE: RunEngine) -> None:
    det, motor = Detector("det"), Signal("motor")
    every = io.StringIO()
    await RE(scan([det], motor, 0, 1, 300), ProgressBar(file=every, min_interval=0))
    bounded = io.StringIO()
    await RE(scan([det], motor, 0, 1, 300), ProgressBar(file=bounded, min_interval=3600))
    assert redraws(every.getvalue()) >= 300  # with no bound, one redraw per point
    assert redraws(bounded.getvalue()) <= 3  # the first draw and the closing one
    assert "300/300" in bounded.getvalue()


async def test_event_pages_advance_by_their_size(RE: RunEngine) -> None:
    flyer = Flyer("flyer", num_points=25, page_size=10)
    await flyer.connect()
    out = io.StringIO()
    await RE(fly([flyer]), ProgressBar(stream="flyer", file=out, min_interval=0))
    # fly() gives no num_points: the bar counts
    draws = out.getvalue().split("\r")[1:]
    scan_id = RE.md["scan_id"]
    assert [d.split(" [")[0] for d in draws] == [
        f"fly {scan_id}: {n}pt" for n in (0, 10, 20, 25, 25)
    ]
    assert "exit_status=success" in draws[-1]


async def test_a_failed_run_closes_its_bar_where_it_stopped(RE: RunEngine) -> None:
    det = Detector("det")

    async def plan() -> AsyncGenerator[Msg, Any]:
        yield Msg("open_run", plan_name="doomed", num_points=10)
        for _ in range(3):
            yield Msg("create", name="primary")
            yield Msg("read", det)
            yield Msg("save")
        raise RuntimeError("detector fell over")

    out = io.StringIO()
    with pytest.raises(RuntimeError, match="fell over"):
        await RE(plan(), ProgressBar(file=out))
    final = out.getvalue().rsplit("\r", 1)[-1]
    assert "3/10" in final
    assert "exit_status=fail" in final


async def test_other_streams_do_not_count(RE: RunEngine) -> None:
    out = io.StringIO()
    await RE(count([Detector("det")], 4), ProgressBar(stream="baseline", file=out))
    assert "0/4" in out.getvalue().rsplit("\r", 1)[-1]


async def test_a_motor_move_shows_position_and_fills_the_bar() -> None:
    motor = Motor("m", velocity=40.0, update_period=0.005)
    await motor.connect()
    out = io.StringIO()
    status = motor.set(1.0)
    watcher = watch_progress(status, file=out, min_interval=0)
    await status
    draws = out.getvalue().split("\r")[1:]
    assert len(draws) > 3  # the readback was published while moving
    assert draws[-1].startswith("m: 100%")
    assert "1.000/1.000 mm" in draws[-1]
    assert draws[-1].endswith("\n")
    assert any("%|" in d and not d.startswith("m: 100%") for d in draws)
    watcher(current=0.5, initial=0.0, target=1.0)  # after finishing: ignored
    assert out.getvalue().split("\r")[1:] == draws


async def test_a_move_redraws_at_most_at_min_interval() -> None:
    motor = Motor("m", velocity=40.0, update_period=0.002)
    await motor.connect()
    out = io.StringIO()
    status = motor.set(1.0)
    watch_progress(status, file=out, min_interval=3600)
    await status
    assert redraws(out.getvalue()) <= 3
    assert "1.000/1.000 mm" in out.getvalue()


async def test_a_flyer_complete_reports_points() -> None:
    flyer = Flyer("flyer", num_points=100, points_per_second=5000.0)
    await flyer.connect()
    await flyer.kickoff()
    out = io.StringIO()
    status = flyer.complete()
    watch_progress(status, file=out, desc="fly", min_interval=0)
    await status
    assert out.getvalue().rsplit("\r", 1)[-1].startswith("fly: 100%")
    assert "100/100 points" in out.getvalue()


async def test_a_failed_move_leaves_the_bar_where_it_stopped() -> None:
    watcher = MoveProgress(file=(out := io.StringIO()), min_interval=0)
    watcher(current=2.0, initial=0.0, target=8.0, name="m", unit="mm")

    class Failed:
        success = False

    watcher.finish(Failed())
    final = out.getvalue().rsplit("\r", 1)[-1]
    assert final.startswith("m:  25%")
    assert "failed" in final


def test_bad_min_interval_is_refused() -> None:
    with pytest.raises(ValueError, match="min_interval"):
        ProgressBar(min_interval=-1)
    with pytest.raises(ValueError, match="min_interval"):
        MoveProgress(min_interval=-1)
