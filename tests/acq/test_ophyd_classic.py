"""Classic ophyd (v1) devices on acq, next to their ophyd-async counterparts.

Each behaviour is checked against what bluesky's RunEngine does with the same device:
asset writers called without an index, monitors fed by keyword callbacks from other
threads, legacy flyers whose streams are named by ``describe_collect()``, configuration
read afresh for each stream, and flyers kicked off but never collected.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Generator, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import acq.plans as ap
import bluesky.plans as bp
import numpy as np
import pytest
from acq.devices.sim import Flyer
from ophyd import Signal as ClassicSignal
from ophyd.sim import FakeEpicsSignal, MockFlyer, SynSignal, hw
from ophyd_async.core import soft_signal_rw
from ophyd_async.sim import SimBlobDetector
from support import DocChecker

from acq import DeviceError, Msg, RunEngine


@pytest.fixture
def RE(bare_RE: RunEngine) -> RunEngine:
    """These tests need no catalog."""
    return bare_RE


@pytest.fixture
def sim(tmp_path: Path) -> SimpleNamespace:
    """ophyd.sim's synthetic hardware, saving its files under ``tmp_path``."""
    return hw(str(tmp_path))


def streams(checker: DocChecker) -> dict[str, dict[str, Any]]:
    """The descriptors of the checked documents, by stream name (the last one wins)."""
    return {d["name"]: d for d in checker.of("descriptor")}


def rows(checker: DocChecker, stream: str) -> list[dict[str, Any]]:
    """Every event and event page row of ``stream``: its data by key."""
    uids = {d["uid"] for d in checker.of("descriptor") if d["name"] == stream}
    out: list[dict[str, Any]] = []
    for name, doc in checker.docs:
        if name == "event" and doc["descriptor"] in uids:
            out.append(doc["data"])
        elif name == "event_page" and doc["descriptor"] in uids:
            n = len(doc["seq_num"])
            out.extend({k: v[i] for k, v in doc["data"].items()} for i in range(n))
    return out


# -- 1. asset writers: collect_asset_docs() with or without an index -----------------------------
@pytest.mark.parametrize("count", [bp.count, ap.count], ids=["bluesky.count", "acq.count"])
async def test_classic_area_detector_resource_and_datums_precede_the_events_that_use_them(
    RE: RunEngine, checker: DocChecker, sim: SimpleNamespace, tmp_path: Path, count: Any
) -> None:
    # SynSignalWithRegistry.collect_asset_docs() takes no index, as in every ophyd v1
    # area detector: acq called it with one and every read raised TypeError.
    result = await RE(count([sim.img], 3))
    assert result.exit_status == "success"
    assert checker.names() == [
        "start", "descriptor", "resource",
        "datum", "event", "datum", "event", "datum", "event",
        "stop",
    ]  # fmt: skip
    (start,) = checker.of("start")
    (resource,) = checker.of("resource")
    assert resource["run_start"] == start["uid"]
    assert resource["root"] == str(tmp_path)
    datums = checker.of("datum")
    events = checker.of("event")
    assert [d["resource"] for d in datums] == [resource["uid"]] * 3
    assert [e["data"]["img"] for e in events] == [d["datum_id"] for d in datums]
    assert [e["filled"] for e in events] == [{"img": False}] * 3
    frame = np.load(Path(resource["root"], f"{resource['resource_path']}_0.npy"))
    assert frame.shape == (10, 10)


async def test_classic_flyer_with_asset_docs_is_collected_with_its_events(
    RE: RunEngine, checker: DocChecker, sim: SimpleNamespace
) -> None:
    # NewTrivialFlyer: collect_asset_docs() without an index *and* collect(); bluesky
    # takes both (the assets first), acq took only the assets (after a TypeError).
    result = await RE(bp.fly([sim.new_trivial_flyer]))
    assert result.exit_status == "success"
    assert len(rows(checker, "stream_name")) == 100
    assert checker.of("stop")[0]["num_events"] == {"stream_name": 100}


class StreamWriter:
    """A WritesStreamAssets-shaped device: collect_asset_docs(index) and get_index()."""

    def __init__(self, name: str, fail_with: BaseException | None = None) -> None:
        self.name = name
        self.parent = None
        self.indices: list[int | None] = []
        self.fail_with = fail_with

    def describe(self) -> dict[str, Any]:
        return {self.name: {"source": "sim://w", "dtype": "number", "shape": []}}

    def read(self) -> dict[str, Any]:
        return {self.name: {"value": 1.0, "timestamp": time.time()}}

    def get_index(self) -> int:
        return 0

    def collect_asset_docs(self, index: int | None = None) -> Iterator[Any]:
        self.indices.append(index)
        if self.fail_with is not None:
            raise self.fail_with
        return iter(())


async def test_a_device_whose_collect_asset_docs_takes_an_index_still_gets_one(
    RE: RunEngine, checker: DocChecker
) -> None:
    writer = StreamWriter("writer")
    await RE(bp.count([writer], 2))
    assert writer.indices == [None, None]  # as bluesky: no index on a read


async def test_a_type_error_inside_collect_asset_docs_is_not_retried_or_hidden(
    RE: RunEngine, checker: DocChecker
) -> None:
    # Deciding by signature (not by catching TypeError) keeps a device's own bug visible.
    writer = StreamWriter("writer", fail_with=TypeError("the writer's own bug"))
    with pytest.raises(TypeError, match="the writer's own bug"):
        await RE(bp.count([writer], 2))
    assert writer.indices == [None]
    assert checker.of("stop")[0]["exit_status"] == "fail"


async def test_ophyd_async_detector_read_in_a_step_scan_still_writes_stream_assets(
    RE: RunEngine, checker: DocChecker, tmp_path: Path
) -> None:
    from ophyd_async.core import StaticFilenameProvider, StaticPathProvider, init_devices

    path = StaticPathProvider(StaticFilenameProvider("blob"), tmp_path)
    async with init_devices(mock=False):
        blob = SimBlobDetector(path)
    result = await RE(bp.count([blob], 2))
    assert result.exit_status == "success"
    assert len(checker.of("stream_datum")) >= 1
    assert checker.of("stop")[0]["num_events"] == {"primary": 2}


# -- 2. monitors -----------------------------------------------------------------------------------
def monitor_while(sig: Any, action: Any, name: str | None = None):
    """Monitor ``sig`` in a run while ``action()`` (a coroutine function) runs."""
    yield Msg("open_run")
    if name is None:
        yield Msg("monitor", sig)
    else:
        yield Msg("monitor", sig, name=name)
    yield Msg("await", action)
    yield Msg("unmonitor", sig)
    yield Msg("close_run")


def puts_from_a_thread(sig: Any, values: list[Any]) -> Any:
    """A coroutine function putting ``values`` into ``sig`` from another thread, in order."""

    def put_all() -> None:
        for value in values:
            sig.put(value)

    async def action() -> None:
        await asyncio.to_thread(put_all)

    return action


@pytest.mark.parametrize(
    "make",
    [
        lambda: ClassicSignal(name="sig", value=0.0),
        lambda: SynSignal(name="sig", func=lambda: 0.0),
        lambda: FakeEpicsSignal("SIM:SIG", name="sig"),
    ],
    ids=["Signal", "SynSignal", "FakeEpicsSignal"],
)
async def test_classic_signal_updated_from_a_thread_gives_one_monitor_event_per_update(
    RE: RunEngine, checker: DocChecker, make: Any
) -> None:
    # ophyd v1 calls back with keywords (value=, old_value=, timestamp=, sub_type=, obj=)
    # from the thread that put the value; acq expected a reading dict and recorded nothing.
    sig = make()
    sig.put(0.0)
    result = await RE(monitor_while(sig, puts_from_a_thread(sig, [1.0, 2.0, 3.0])))
    assert result.exit_status == "success"
    # the first event is the value at subscription (ophyd v1 and ophyd-async both send it)
    assert [r["sig"] for r in rows(checker, "sig_monitor")] == [0.0, 1.0, 2.0, 3.0]
    descriptor = streams(checker)["sig_monitor"]
    assert descriptor["object_keys"] == {"sig": ["sig"]}
    assert descriptor["data_keys"]["sig"]["object_name"] == "sig"
    assert checker.of("stop")[0]["num_events"] == {"sig_monitor": 4}


async def test_classic_signal_monitor_events_carry_the_signals_own_timestamps(
    RE: RunEngine, checker: DocChecker
) -> None:
    sig = ClassicSignal(name="sig", value=0.0)
    stamps: list[float] = []

    def put_all() -> None:
        for value in (1.0, 2.0):
            sig.put(value, timestamp=1000.0 + value)
            stamps.append(sig.timestamp)

    async def action() -> None:
        await asyncio.to_thread(put_all)

    await RE(monitor_while(sig, action))
    # a Signal never put has no cached update: ophyd v1 sends none at subscription
    events = checker.of("event")
    assert [e["timestamps"]["sig"] for e in events] == stamps == [1001.0, 1002.0]


async def test_ophyd_async_soft_signal_monitor_records_each_set(
    RE: RunEngine, checker: DocChecker
) -> None:
    sig = soft_signal_rw(float, 0.0, name="soft")

    async def action() -> None:
        for value in (1.0, 2.0):
            await sig.set(value)

    result = await RE(monitor_while(sig, action, name="soft_updates"))
    assert result.exit_status == "success"
    assert [r["soft"] for r in rows(checker, "soft_updates")] == [0.0, 1.0, 2.0]


class BreakingSignal(ClassicSignal):
    """A classic signal whose read() fails once ``broken`` is set."""

    broken = False

    def read(self) -> Any:
        if self.broken:
            raise RuntimeError("lost the IOC")
        return super().read()


async def test_a_monitor_that_fails_fails_the_run_naming_the_signal(
    RE: RunEngine, checker: DocChecker
) -> None:
    # ophyd v1 swallows (logs) exceptions raised by subscribed callbacks: acq's monitor
    # must carry them to the run itself, not record nothing and report success.
    sig = BreakingSignal(name="sig", value=0.0)
    sig.put(0.0)  # sent to the monitor when it subscribes

    async def action() -> None:
        sig.broken = True
        await asyncio.to_thread(sig.put, 1.0)

    with pytest.raises(DeviceError, match=r"monitor of sig .*lost the IOC"):
        await RE(monitor_while(sig, action))
    (stop,) = checker.of("stop")
    assert stop["exit_status"] == "fail"
    assert "lost the IOC" in stop["reason"]
    assert stop["num_events"] == {"sig_monitor": 1}  # the value before it broke


async def test_a_monitor_that_fails_after_the_plan_ends_still_fails_the_run(
    RE: RunEngine, checker: DocChecker
) -> None:
    sig = BreakingSignal(name="sig", value=0.0)

    def plan():
        yield Msg("open_run")
        yield Msg("monitor", sig)
        sig.broken = True
        yield Msg("await", asyncio.to_thread, sig.put, 1.0)
        # no unmonitor, no close_run: the cleanup stops the monitor and closes the run

    with pytest.raises(DeviceError, match="monitor of sig"):
        await RE(plan())
    assert checker.of("stop")[0]["exit_status"] == "fail"


# -- 3. object_name in data keys -----------------------------------------------------------------
async def test_every_data_key_names_the_object_that_produced_it(
    RE: RunEngine, checker: DocChecker, sim: SimpleNamespace
) -> None:
    await RE(bp.scan([sim.det1, sim.det_with_count_time], sim.motor, -1, 1, 3))
    descriptor = streams(checker)["primary"]
    owners = {
        key: obj for obj, keys in descriptor["object_keys"].items() for key in keys
    }  # fmt: skip
    assert {k: dk["object_name"] for k, dk in descriptor["data_keys"].items()} == owners
    assert owners["motor_setpoint"] == "motor"
    assert owners["det_count_time"] == "det"  # DetWithCountTime is named "det"
    assert "object_name" not in sim.det1.describe()["det1"]  # the device's dict is kept


# -- 4. legacy flyers: stream named by describe_collect() ---------------------------------------
class TwoStreamFlyer:
    """A classic flyer whose describe_collect() names two streams."""

    name = "two"
    parent = None

    def kickoff(self) -> Any:
        return done_status()

    def complete(self) -> Any:
        return done_status()

    def describe_collect(self) -> dict[str, Any]:
        def key(k: str) -> dict[str, Any]:
            return {"source": f"sim://{k}", "dtype": "number", "shape": []}

        return {"fast": {"x": key("x")}, "slow": {"t": key("t")}}

    def collect(self) -> Iterator[dict[str, Any]]:
        for i in range(3):
            yield {"time": time.time(), "data": {"x": i}, "timestamps": {"x": time.time()}}
            if i % 2 == 0:
                yield {"time": time.time(), "data": {"t": 10 * i}, "timestamps": {"t": time.time()}}


def done_status() -> Any:
    from ophyd.status import StatusBase

    status = StatusBase()
    status.set_finished()
    return status


@pytest.mark.parametrize("fly", [bp.fly, ap.fly], ids=["bluesky.fly", "acq.fly"])
async def test_classic_flyer_stream_is_named_by_its_describe_collect_key(
    RE: RunEngine, checker: DocChecker, sim: SimpleNamespace, fly: Any
) -> None:
    # TrivialFlyer.describe_collect() == {"stream_name": {}}: bluesky names the stream
    # "stream_name"; acq named it after the device ("trivial_flyer").
    await RE(fly([sim.trivial_flyer]))
    assert list(streams(checker)) == ["stream_name"]
    assert len(rows(checker, "stream_name")) == 100
    assert checker.of("stop")[0]["num_events"] == {"stream_name": 100}


async def test_mock_flyer_rows_land_in_its_stream(
    RE: RunEngine, checker: DocChecker, sim: SimpleNamespace
) -> None:
    flyer = MockFlyer("mock", sim.det, sim.motor, 1, 5, 5)
    await RE(ap.fly([flyer]))
    descriptor = streams(checker)["mock"]
    assert set(descriptor["data_keys"]) == {"motor", "motor_setpoint", "det"}
    assert {dk["object_name"] for dk in descriptor["data_keys"].values()} == {"mock"}
    assert [r["motor"] for r in rows(checker, "mock")] == [1.0, 2.0, 3.0, 4.0, 5.0]


async def test_a_legacy_flyer_with_two_streams_sends_each_event_to_its_stream(
    RE: RunEngine, checker: DocChecker
) -> None:
    await RE(bp.fly([TwoStreamFlyer()]))
    assert sorted(streams(checker)) == ["fast", "slow"]
    assert rows(checker, "fast") == [{"x": 0}, {"x": 1}, {"x": 2}]
    assert rows(checker, "slow") == [{"t": 0}, {"t": 20}]
    assert checker.of("stop")[0]["num_events"] == {"fast": 3, "slow": 2}


async def test_a_legacy_flyer_event_matching_no_stream_names_the_keys(RE: RunEngine) -> None:
    flyer = TwoStreamFlyer()
    flyer.collect = lambda: iter(  # type: ignore[method-assign]
        [{"time": 0.0, "data": {"y": 1}, "timestamps": {"y": 0.0}}]
    )
    with pytest.raises(DeviceError, match=r"two.*\['y'\].*fast.*slow"):
        await RE(bp.fly([flyer]))


# -- 5. configuration read afresh for each stream ---------------------------------------------
async def test_a_later_stream_records_the_configuration_as_it_then_is(
    RE: RunEngine, checker: DocChecker, sim: SimpleNamespace
) -> None:
    det = sim.det

    def read_into(stream: str):
        yield Msg("create", name=stream)
        yield Msg("read", det)
        yield Msg("save")

    def plan():
        yield Msg("open_run")
        yield from read_into("primary")
        yield from read_into("primary")
        det.Imax.put(5.0)  # changed outside a 'configure' message
        yield from read_into("after")
        yield Msg("close_run")

    await RE(plan())
    by_stream = streams(checker)
    assert by_stream["primary"]["configuration"]["det"]["data"]["det_Imax"] == 1.0
    assert by_stream["after"]["configuration"]["det"]["data"]["det_Imax"] == 5.0


async def test_configuration_is_read_once_per_stream_not_once_per_point(
    RE: RunEngine, checker: DocChecker, sim: SimpleNamespace
) -> None:
    reads: list[float] = []
    original = sim.det.read_configuration

    def counting() -> Any:
        reads.append(time.time())
        return original()

    sim.det.read_configuration = counting
    await RE(bp.count([sim.det], 5))
    assert len(reads) == 1


# -- 6. flyers kicked off but never collected ------------------------------------------------
def kicked_off_not_collected(flyer: Any, fail: bool = False):
    """Kick off and complete ``flyer`` in a run, then end without collect or close_run."""
    yield Msg("open_run")
    yield Msg("kickoff", flyer, group="k")
    yield Msg("wait", None, group="k")
    yield Msg("complete", flyer, group="c")
    yield Msg("wait", None, group="c")
    if fail:
        raise RuntimeError("the plan broke after the flyer finished")


@pytest.mark.parametrize("fail", [False, True], ids=["plan-ends", "plan-fails"])
async def test_a_classic_flyer_never_collected_is_collected_before_the_stop(
    RE: RunEngine, checker: DocChecker, sim: SimpleNamespace, fail: bool
) -> None:
    flyer = MockFlyer("mock", sim.det, sim.motor, 1, 4, 4)
    if fail:
        with pytest.raises(RuntimeError, match="the plan broke"):
            await RE(kicked_off_not_collected(flyer, fail))
    else:
        await RE(kicked_off_not_collected(flyer, fail))
    assert [r["motor"] for r in rows(checker, "mock")] == [1.0, 2.0, 3.0, 4.0]
    (stop,) = checker.of("stop")
    assert stop["num_events"] == {"mock": 4}
    assert stop["exit_status"] == ("fail" if fail else "success")
    assert checker.names()[-1] == "stop"


async def test_acq_sim_flyer_never_collected_is_collected_before_the_stop(
    RE: RunEngine, checker: DocChecker
) -> None:
    flyer = Flyer("flyer", num_points=7)
    await flyer.connect()
    await RE(kicked_off_not_collected(flyer))
    assert len(rows(checker, "flyer")) == 7
    assert checker.of("stop")[0]["num_events"] == {"flyer": 7}


class CountingFlyer(Flyer):
    """acq's sim flyer, counting its collects."""

    collects = 0

    async def collect_pages(self) -> AsyncIterator[Any]:
        self.collects += 1
        async for page in super().collect_pages():
            yield page


async def test_a_collected_flyer_is_not_collected_again_at_the_end(
    RE: RunEngine, checker: DocChecker
) -> None:
    flyer = CountingFlyer("flyer", num_points=7)
    await flyer.connect()

    def plan():
        yield from kicked_off_not_collected(flyer)
        yield Msg("collect", flyer)

    await RE(plan())
    assert flyer.collects == 1
    assert checker.of("stop")[0]["num_events"] == {"flyer": 7}


class BrokenFlyer(MockFlyer):
    """A classic flyer whose collect() fails."""

    def collect(self) -> Generator[dict[str, Any], None, None]:
        raise RuntimeError("the flyer's buffer is gone")


async def test_a_flyer_that_cannot_be_collected_at_the_end_is_logged_and_the_others_collected(
    RE: RunEngine, checker: DocChecker, sim: SimpleNamespace, caplog: pytest.LogCaptureFixture
) -> None:
    # bluesky's rule (test_collect_uncollected_and_log_any_errors): some flyers do not
    # support a partial collect, so a failure here is logged, and the rest still collected
    broken = BrokenFlyer("broken", sim.det, sim.motor, 1, 2, 2)
    good = MockFlyer("good", sim.det, sim.motor, 1, 2, 2)

    def plan():
        yield Msg("open_run")
        for flyer in (broken, good):
            yield Msg("kickoff", flyer, group="k")
        yield Msg("wait", None, group="k")
        for flyer in (broken, good):
            yield Msg("complete", flyer, group="c")
        yield Msg("wait", None, group="c")

    result = await RE(plan())
    assert result.exit_status == "success"
    assert len(rows(checker, "good")) == 2
    assert "collecting broken, kicked off but never collected, failed" in caplog.text
    assert "the flyer's buffer is gone" in caplog.text
