"""The area detector's HDF5 file agrees with its Stream Resource / Stream Datum."""

from __future__ import annotations

import asyncio
import math
from collections import defaultdict
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import h5py
import numpy as np
import pytest
from acq.devices.sim import AreaDetector, Motor, sim_beamline
from ophyd_async.core import TriggerInfo

SHAPE = (12, 16)


def h5_files(directory: Path) -> list[Path]:
    return list(directory.glob("*.h5"))


async def make_detector(directory: Path) -> tuple[AreaDetector, Motor, Motor]:
    x, y = Motor("x", instant=True), Motor("y", instant=True)
    det = AreaDetector(directory, x, y, acquire_time=0.005, shape=SHAPE, name="adet")
    await asyncio.gather(x.connect(), y.connect(), det.connect())
    return det, x, y


async def asset_docs(det: AreaDetector) -> list[tuple[str, Any]]:
    return [(name, doc) async for name, doc in det.collect_asset_docs()]


def file_of(resource: dict[str, Any]) -> Path:
    return Path(urlparse(resource["uri"]).path)


async def test_frames_in_file_match_stream_datum_indices(tmp_path: Path) -> None:
    det, x, _ = await make_detector(tmp_path)
    await det.stage()
    docs: list[tuple[str, Any]] = []
    for position in (-1.0, 0.0, 1.0):
        await x.set(position)
        await det.trigger()
        docs += await asset_docs(det)
    await det.unstage()

    resources = {doc["uid"]: doc for name, doc in docs if name == "stream_resource"}
    assert sorted(r["data_key"] for r in resources.values()) == ["adet", "adet-sum"]
    datums: dict[str, list[dict[str, int]]] = defaultdict(list)
    for name, doc in docs:
        if name == "stream_datum":
            datums[doc["stream_resource"]].append(doc["indices"])
    assert set(datums) == set(resources)
    for indices in datums.values():
        # One datum per trigger, contiguous from 0.
        assert indices == [
            {"start": 0, "stop": 1},
            {"start": 1, "stop": 2},
            {"start": 2, "stop": 3},
        ]

    (path,) = {file_of(r) for r in resources.values()}
    assert path.parent == tmp_path
    with h5py.File(path, "r") as f:
        for resource in resources.values():
            dataset = f[resource["parameters"]["dataset"]]
            assert isinstance(dataset, h5py.Dataset)
            stop = max(i["stop"] for i in datums[resource["uid"]])
            assert dataset.shape[0] == stop == 3
            if resource["data_key"] == "adet":
                assert dataset.shape == (3, *SHAPE)
                assert dataset.dtype == np.uint16
                frames = dataset[()]
            else:
                assert dataset.shape == (3,)
                sums = dataset[()]
        np.testing.assert_array_equal(frames.reshape(3, -1).sum(axis=1), sums)


async def test_describe_matches_the_stream_resources(tmp_path: Path) -> None:
    det, _, _ = await make_detector(tmp_path)
    await det.stage()
    await det.trigger()
    described = await det.describe()
    assert described["adet"]["shape"] == [1, *SHAPE]
    assert described["adet"]["external"] == "STREAM:"
    assert described["adet-sum"]["shape"] == [1]
    assert await det.read() == {}  # all data is external
    assert det.hints == {"fields": ["adet-sum"]}
    config = await det.read_configuration()
    assert config["adet-acquire_time"]["value"] == 0.005
    await det.unstage()


async def test_fly_scan_writes_the_prepared_number_of_frames(tmp_path: Path) -> None:
    det, _, _ = await make_detector(tmp_path)
    await det.stage()
    await det.prepare(TriggerInfo(number_of_events=4, livetime=0.002))
    await det.kickoff()
    await det.complete()
    docs = await asset_docs(det)
    await det.unstage()
    datums = [doc for name, doc in docs if name == "stream_datum"]
    assert {(d["indices"]["start"], d["indices"]["stop"]) for d in datums} == {(0, 4)}
    (resource, *_) = [doc for name, doc in docs if name == "stream_resource"]
    with h5py.File(file_of(resource), "r") as f:
        dataset = f["/entry/data/data"]
        assert isinstance(dataset, h5py.Dataset)
        assert dataset.shape == (4, *SHAPE)
    assert (await det.read_configuration())["adet-acquire_time"]["value"] == 0.002


async def test_each_stage_writes_a_new_file(tmp_path: Path) -> None:
    det, _, _ = await make_detector(tmp_path)
    uris = set()
    for _ in range(2):
        await det.stage()
        await det.trigger()
        uris |= {doc["uri"] for name, doc in await asset_docs(det) if name == "stream_resource"}
        await det.unstage()
    assert len(uris) == 2
    assert len(h5_files(tmp_path)) == 2


async def test_frame_brightness_depends_on_motor_positions(tmp_path: Path) -> None:
    det, x, y = await make_detector(tmp_path)
    await det.stage()
    for position in (0.0, 1.5):
        await asyncio.gather(x.set(position), y.set(position))
        await det.trigger()
    docs = await asset_docs(det)
    await det.unstage()
    (path,) = {file_of(doc) for name, doc in docs if name == "stream_resource"}
    with h5py.File(path, "r") as f:
        sums = f["/entry/sum"]
        assert isinstance(sums, h5py.Dataset)
        first, second = sums[()]
    assert first != second


def test_acquire_time_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="acquire_time"):
        AreaDetector(tmp_path, acquire_time=0.0)


async def frames_of(det: AreaDetector, triggers: int) -> np.ndarray:
    """Stage, trigger ``triggers`` times, unstage; the frames in the file."""
    await det.stage()
    for _ in range(triggers):
        await det.trigger()
    docs = await asset_docs(det)
    await det.unstage()
    (path,) = {file_of(doc) for name, doc in docs if name == "stream_resource"}
    with h5py.File(path, "r") as f:
        dataset = f["/entry/data/data"]
        assert isinstance(dataset, h5py.Dataset)
        return dataset[()]


async def test_beamline_defaults_give_a_peak_of_thousands_of_counts(tmp_path: Path) -> None:
    bl = await sim_beamline(data_dir=tmp_path)  # motors at 0, default exposure
    (frame,) = await frames_of(bl.area_detector, 1)
    assert frame.dtype == np.uint16
    assert 1_000 <= frame.max() <= 10_000  # a visible image, not 0-2 counts
    height, width = frame.shape
    assert frame[height // 2, width // 2] == frame.max()  # the blob is centred
    assert frame[0, 0] < frame.max() / 2  # and falls off towards the corners


async def test_frames_saturate_at_the_16_bit_limit(tmp_path: Path) -> None:
    det, x, y = await make_detector(tmp_path)
    # where the pattern is at its brightest (sin x = 1, cos(x y + 10) = 1), 0.1 s gives
    # 100 000 counts at the peak: more than 16 bits hold
    await asyncio.gather(x.set(math.pi / 2), y.set((4 * math.pi - 10) / (math.pi / 2)))
    await det.acquire_time.set(0.1)
    (frame,) = await frames_of(det, 1)
    assert frame.max() == 65_535
    assert frame.min() < 65_535  # the wings are not saturated


async def test_poisson_noise_follows_counting_statistics_and_its_seed(tmp_path: Path) -> None:
    async def noisy_frames(seed: int) -> np.ndarray:
        x, y = Motor("x", instant=True), Motor("y", instant=True)
        det = AreaDetector(
            tmp_path, x, y, acquire_time=0.01, shape=(60, 80), noise="poisson", seed=seed
        )
        await asyncio.gather(x.connect(), y.connect(), det.connect())
        return (await frames_of(det, 2)).astype(np.float64)

    first, second = await noisy_frames(seed=7)
    assert not np.array_equal(first, second)  # a fresh draw per frame
    np.testing.assert_array_equal(await noisy_frames(seed=7), [first, second])
    # In the bright middle, the spread between two frames is that of counting:
    # var(a - b) = 2 * mean for Poisson counts.
    middle = (slice(20, 40), slice(27, 53))
    mean = (first[middle] + second[middle]).mean() / 2
    assert mean > 1_000
    spread = (first[middle] - second[middle]).var() / 2
    assert spread == pytest.approx(mean, rel=0.15)
