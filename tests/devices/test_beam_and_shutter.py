"""The beam current is a settable soft signal; the shutter moves with a status."""

from __future__ import annotations

import pytest
from acq.devices.sim import BeamCurrent, Shutter, ShutterState
from bluesky.protocols import Locatable, Movable, Readable, Reading, Stoppable, Subscribable
from ophyd_async.core import SignalRW, observe_value


async def make_beam() -> BeamCurrent:
    beam = BeamCurrent(400.0, name="ring")
    await beam.connect()
    return beam


async def test_beam_current_reads_sets_and_describes_like_a_signal() -> None:
    beam = await make_beam()
    assert isinstance(beam, SignalRW)
    assert (await beam.read())["ring"]["value"] == 400.0
    assert (await beam.describe())["ring"]["units"] == "mA"
    await beam.set(123.0)
    assert await beam.get_value() == 123.0


async def test_dump_and_refill_are_seen_by_subscribers_in_order() -> None:
    beam = await make_beam()
    seen: list[float] = []

    def record(reading: dict[str, Reading[float]]) -> None:
        seen.append(reading["ring"]["value"])

    beam.subscribe_reading(record)
    await beam.dump()
    await beam.refill()
    beam.clear_sub(record)
    assert seen == [400.0, 0.0, 400.0]


async def test_decay_ramps_down_through_intermediate_values_to_the_target() -> None:
    beam = await make_beam()
    status = beam.decay(100.0, 0.05)
    seen = [value async for value in observe_value(beam, done_status=status)]
    assert seen[-1] == 100.0
    assert seen == sorted(seen, reverse=True)
    assert any(100.0 < value < 400.0 for value in seen)


async def test_decay_with_zero_duration_is_immediate() -> None:
    beam = await make_beam()
    await beam.decay(50.0, 0.0)
    assert await beam.get_value() == 50.0


async def test_shutter_opens_and_closes_with_a_status() -> None:
    shutter = Shutter("shutter")
    await shutter.connect()
    assert (await shutter.read())["shutter"]["value"] == ShutterState.CLOSED
    status = shutter.open()
    await status
    assert status.success
    assert await shutter.locate() == {"setpoint": ShutterState.OPEN, "readback": ShutterState.OPEN}
    await shutter.set(ShutterState.CLOSED)
    assert (await shutter.read())["shutter"]["value"] == ShutterState.CLOSED


async def test_shutter_readback_changes_only_after_transit() -> None:
    shutter = Shutter("shutter", transit_time=0.02)
    await shutter.connect()
    status = shutter.open()
    async for setpoint in observe_value(shutter.setpoint):
        if setpoint == ShutterState.OPEN:
            break
    assert await shutter.readback.get_value() == ShutterState.CLOSED
    await status
    assert await shutter.readback.get_value() == ShutterState.OPEN
    config = await shutter.read_configuration()
    assert config["shutter-transit_time"]["value"] == 0.02


async def test_shutter_stop_mid_transit_fails_the_status() -> None:
    shutter = Shutter("shutter", transit_time=5.0)
    await shutter.connect()
    status = shutter.open()
    async for setpoint in observe_value(shutter.setpoint):
        if setpoint == ShutterState.OPEN:
            break
    await shutter.stop()
    with pytest.raises(RuntimeError, match="stopped"):
        await status
    assert await shutter.readback.get_value() == ShutterState.CLOSED


def test_beam_devices_follow_the_bluesky_protocols() -> None:
    beam, shutter = BeamCurrent(), Shutter()
    assert isinstance(beam, Readable)
    assert isinstance(beam, Movable)
    assert isinstance(beam, Subscribable)
    for protocol in (Readable, Movable, Locatable, Stoppable, Subscribable):
        assert isinstance(shutter, protocol)
