"""A downstream project's tests of its own plan, as a user writes them with acq installed.

acq's pytest plugin provides the fixtures ``RE``, ``documents`` and ``sim_beamline`` and
the markers ``acq_sim_beamline`` and ``acq_virtual_time``: nothing here is imported
from a conftest. docs/how-to/test-your-plans.md shows this file a piece at a time (a
test checks that every piece it shows is in here, verbatim).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from acq.devices.pytest_plugin import DocumentRecorder
from acq.devices.sim import SimBeamline

from acq import Msg, Plan, Return, RunEngine


async def find_peak(det: Any, motor: Any, start: float, stop: float, num: int) -> Plan:
    """Step ``motor`` from ``start`` to ``stop``, reading ``det`` at each point; then
    park the motor where ``det`` read highest and return that position."""
    best_position, best_value = start, float("-inf")
    yield Msg("open_run", plan_name="find_peak", motors=[motor.name], detectors=[det.name])
    for i in range(num):
        position = start + (stop - start) * i / (num - 1)
        yield Msg("checkpoint")
        yield Msg("set", motor, position, group="move")
        yield Msg("wait", group="move")
        yield Msg("trigger", det, group="det")
        yield Msg("wait", group="det")
        yield Msg("create", name="primary")
        yield Msg("read", motor)
        reading = yield Msg("read", det)
        yield Msg("save")
        if reading[det.name]["value"] > best_value:
            best_position, best_value = position, reading[det.name]["value"]
    yield Msg("close_run")
    yield Msg("set", motor, best_position, group="park")
    yield Msg("wait", group="park")
    yield Return(best_position)


pytestmark = pytest.mark.acq_virtual_time  # every test below runs on virtual time


async def test_find_peak_records_one_event_per_point(
    RE: RunEngine, documents: DocumentRecorder, sim_beamline: SimBeamline
) -> None:
    result = await RE(find_peak(sim_beamline.det, sim_beamline.x, -2.0, 2.0, 5))

    assert result.exit_status == "success"
    assert documents.names() == ["start", "descriptor", *["event"] * 5, "stop"]
    assert documents.last("start")["plan_name"] == "find_peak"
    assert documents.data("x") == [-2.0, -1.0, 0.0, 1.0, 2.0]
    assert documents.last("stop")["num_events"] == {"primary": 5}


async def test_find_peak_parks_the_motor_on_the_peak(
    RE: RunEngine, documents: DocumentRecorder, sim_beamline: SimBeamline
) -> None:
    # the simulated detector "det" is a Gaussian peak centred at x = 0
    result = await RE(find_peak(sim_beamline.det, sim_beamline.x, -3.0, 3.0, 13))

    assert result.plan_result == 0.0
    assert await sim_beamline.x.user_readback.get_value() == 0.0
    assert max(documents.data("det")) == 1.0


@pytest.mark.acq_sim_beamline(velocity=1.0, acquire_time=1.0)  # 1 mm/s, 1 s exposures
async def test_a_minute_long_scan_takes_no_wall_time(
    RE: RunEngine, documents: DocumentRecorder, sim_beamline: SimBeamline
) -> None:
    loop = asyncio.get_running_loop()
    loop_start, wall_start = loop.time(), time.perf_counter()

    # 60 points of 1 s each, plus the moves: over a minute on the beamline's clock
    result = await RE(find_peak(sim_beamline.det, sim_beamline.x, -3.0, 3.0, 60))

    beamline_seconds = loop.time() - loop_start
    print(f"{beamline_seconds:.1f} s scan in {time.perf_counter() - wall_start:.3f} s wall time")
    assert beamline_seconds >= 60.0
    assert len(documents.events()) == 60
    assert abs(result.plan_result) < 0.1
