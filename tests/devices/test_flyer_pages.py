"""The flyer delivers num_points points as pages of numpy arrays."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from acq.devices.sim import Flyer
from bluesky.protocols import EventPageCollectable, Flyable, Stoppable
from ophyd_async.core import observe_value


async def make_flyer(**kwargs: Any) -> Flyer:
    flyer = Flyer("flyer", **kwargs)
    await flyer.connect()
    return flyer


async def collect(flyer: Flyer) -> list[Any]:
    return [page async for page in flyer.collect_pages()]


async def test_a_million_points_arrive_in_pages_totalling_n() -> None:
    flyer = await make_flyer(num_points=1_000_000, page_size=100_000)
    await flyer.kickoff()
    await flyer.complete()
    pages = await collect(flyer)
    assert len(pages) == 10
    assert sum(len(page["time"]) for page in pages) == 1_000_000
    for page in pages:
        assert isinstance(page["data"]["flyer-position"], np.ndarray)
        assert set(page["data"]) == set(page["timestamps"]) == set(await flyer.describe_collect())
    assert await collect(flyer) == []  # nothing is delivered twice


@pytest.mark.parametrize(("num_points", "page_size"), [(1, 10), (10, 3), (1000, 1000), (7, 1)])
async def test_pages_respect_page_size_and_cover_the_axis(num_points: int, page_size: int) -> None:
    flyer = await make_flyer(
        num_points=num_points, page_size=page_size, start_position=-2.0, end_position=2.0
    )
    await flyer.kickoff()
    await flyer.complete()
    pages = await collect(flyer)
    assert len(pages) == math.ceil(num_points / page_size)
    assert all(len(page["time"]) <= page_size for page in pages)
    positions = np.concatenate([page["data"]["flyer-position"] for page in pages])
    expected = np.linspace(-2.0, 2.0, num_points) if num_points > 1 else np.array([-2.0])
    np.testing.assert_allclose(positions, expected)
    intensities = np.concatenate([page["data"]["flyer-intensity"] for page in pages])
    np.testing.assert_allclose(intensities, np.exp(-(expected**2) / 2))


async def test_collecting_while_flying_delivers_every_point_once_in_order() -> None:
    flyer = await make_flyer(num_points=200, points_per_second=2000.0, page_size=50)
    await flyer.kickoff()
    status = flyer.complete()
    pages: list[Any] = []
    async for acquired in observe_value(flyer.points_acquired, done_status=status):
        if acquired > 0:
            pages += await collect(flyer)  # a partial collect, normally mid-flight
            break
    await status
    pages += await collect(flyer)
    positions = np.concatenate([page["data"]["flyer-position"] for page in pages])
    np.testing.assert_allclose(positions, np.linspace(-5.0, 5.0, 200))
    times = np.concatenate([page["time"] for page in pages])
    assert np.all(np.diff(times) > 0)


async def test_complete_reports_progress_up_to_n() -> None:
    flyer = await make_flyer(num_points=100, points_per_second=5000.0)
    await flyer.kickoff()
    currents: list[int] = []
    status = flyer.complete()
    status.watch(lambda **kwargs: currents.append(kwargs["current"]))
    await status
    assert currents == sorted(currents)
    assert currents[-1] == 100


async def test_stop_fails_complete_and_keeps_points_acquired_so_far() -> None:
    flyer = await make_flyer(num_points=10_000, points_per_second=1000.0)
    await flyer.kickoff()
    status = flyer.complete()
    async for acquired in observe_value(flyer.points_acquired):
        if acquired > 0:
            break
    await flyer.stop()
    with pytest.raises(RuntimeError, match="flyer was stopped after"):
        await status
    acquired = await flyer.points_acquired.get_value()
    assert 0 < acquired < 10_000
    assert sum(len(page["time"]) for page in await collect(flyer)) == acquired


async def test_kickoff_can_repeat_and_each_flight_restarts_at_zero() -> None:
    flyer = await make_flyer(num_points=30)
    for _ in range(2):
        await flyer.kickoff()
        await flyer.complete()
        assert sum(len(page["time"]) for page in await collect(flyer)) == 30


async def test_out_of_order_calls_are_refused() -> None:
    flyer = await make_flyer()
    with pytest.raises(RuntimeError, match="before kickoff"):
        await flyer.complete()
    with pytest.raises(RuntimeError, match="before kickoff"):
        await collect(flyer)


async def test_configuration_describes_the_scan() -> None:
    flyer = await make_flyer(num_points=5)
    config = await flyer.read_configuration()
    assert config["flyer-num_points"]["value"] == 5
    assert {"flyer-page_size", "flyer-points_per_second", "flyer-start_position"} <= set(config)
    assert set(await flyer.describe_configuration()) == set(config)


def test_flyer_follows_the_bluesky_protocols() -> None:
    flyer = Flyer("flyer")
    assert isinstance(flyer, Flyable)
    assert isinstance(flyer, EventPageCollectable)
    assert isinstance(flyer, Stoppable)
