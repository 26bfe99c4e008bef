"""sim_beamline() returns a connected, named set of working devices."""

from __future__ import annotations

import math
from pathlib import Path

from acq.devices.sim import Noise, ShutterState, sim_beamline
from bluesky.protocols import (
    Configurable,
    EventPageCollectable,
    Flyable,
    Locatable,
    Readable,
    Stoppable,
    Triggerable,
    WritesStreamAssets,
)


def h5_files(directory: Path) -> list[Path]:
    return list(directory.glob("*.h5"))


async def test_devices_are_named_after_their_attributes(tmp_path: Path) -> None:
    bl = await sim_beamline(data_dir=tmp_path)
    names = [
        "x", "y", "det", "edge", "det2d", "area_detector", "flyer", "beam_current", "shutter",
    ]  # fmt: skip
    assert [device.name for device in bl] == names
    assert list(bl.by_name()) == names


async def test_devices_are_connected_and_usable(tmp_path: Path) -> None:
    bl = await sim_beamline(instant=True, data_dir=tmp_path)
    await bl.x.set(1.0)
    await bl.det.trigger()
    assert (await bl.det.read())["det"]["value"] == math.exp(-0.5)
    assert (await bl.shutter.read())["shutter"]["value"] == ShutterState.CLOSED
    assert await bl.beam_current.get_value() == 500.0
    await bl.area_detector.stage()
    await bl.area_detector.trigger()
    await bl.area_detector.unstage()
    assert len(h5_files(tmp_path)) == 1


async def test_motors_move_over_time_unless_instant(tmp_path: Path) -> None:
    bl = await sim_beamline(data_dir=tmp_path, velocity=50.0)
    assert await bl.x.velocity.get_value() == 50.0
    instant = await sim_beamline(instant=True, data_dir=tmp_path)
    assert await instant.x.velocity.get_value() == 0.0


async def test_seeded_noise_reproduces_across_beamlines(tmp_path: Path) -> None:
    async def values() -> list[float]:
        bl = await sim_beamline(noise=Noise.UNIFORM, seed=42, data_dir=tmp_path)
        out = []
        for _ in range(5):
            await bl.det.trigger()
            out.append((await bl.det.read())["det"]["value"])
        return out

    assert await values() == await values()


async def test_devices_satisfy_the_protocols_a_run_engine_needs(tmp_path: Path) -> None:
    bl = await sim_beamline(data_dir=tmp_path)
    for motor in (bl.x, bl.y):
        assert isinstance(motor, Locatable)
        assert isinstance(motor, Stoppable)
        assert isinstance(motor, Readable)
        assert isinstance(motor, Configurable)
    for det in (bl.det, bl.edge, bl.det2d, bl.area_detector):
        assert isinstance(det, Readable)
        assert isinstance(det, Triggerable)
        assert isinstance(det, Configurable)
    assert isinstance(bl.area_detector, WritesStreamAssets)
    assert isinstance(bl.flyer, Flyable)
    assert isinstance(bl.flyer, EventPageCollectable)
