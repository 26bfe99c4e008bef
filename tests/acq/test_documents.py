"""Documents of a run: every rule of SPEC §Documents (reference/000 and 002).

Start first and Stop last, once per run; seq_num from 1 per stream; num_events per
stream; descriptors (data_keys, object_keys, configuration, hints) and when a new one is
needed; event pages from flyers; stream resources from a detector writing HDF5;
concurrent runs; validation before emission; a failing device's Stop.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import bluesky.plans as bp
import h5py
import numpy as np
import pytest
from ophyd_async.core import StaticFilenameProvider, StaticPathProvider
from ophyd_async.sim import SimBlobDetector
from support import Detector, DocChecker, DoneStatus, Signal

from acq import AcqInternalError, DeviceError, Msg, RunEngine


# -- helpers ----------------------------------------------------------------------------------
def read_event(*devices: Any, stream: str = "primary", run: Any = None):
    """create / read each device / save."""
    yield Msg("create", name=stream, run=run)
    for device in devices:
        yield Msg("read", device, run=run)
    yield Msg("save", run=run)


def descriptors_by_uid(checker: DocChecker) -> dict[str, dict[str, Any]]:
    return {d["uid"]: d for d in checker.of("descriptor")}


def seq_nums_by_stream(checker: DocChecker) -> dict[str, list[int]]:
    """Every event's and event page row's seq_num, per stream name, in emission order."""
    descriptors = descriptors_by_uid(checker)
    out: dict[str, list[int]] = {}
    for name, doc in checker.docs:
        if name == "event":
            out.setdefault(descriptors[doc["descriptor"]]["name"], []).append(doc["seq_num"])
        elif name == "event_page":
            out.setdefault(descriptors[doc["descriptor"]]["name"], []).extend(doc["seq_num"])
    return out


def docs_of_run(checker: DocChecker, start_uid: str) -> list[str]:
    """The names of the documents that belong to one run, in emission order."""
    descriptors = {u for u, d in descriptors_by_uid(checker).items() if d["run_start"] == start_uid}
    resources = {d["uid"] for d in checker.of("stream_resource") if d["run_start"] == start_uid}
    names: list[str] = []
    for name, doc in checker.docs:
        if (
            (name == "start" and doc["uid"] == start_uid)
            or (name in ("descriptor", "stop") and doc["run_start"] == start_uid)
            or (name in ("event", "event_page") and doc["descriptor"] in descriptors)
            or (name == "stream_resource" and doc["uid"] in resources)
            or (name == "stream_datum" and doc["stream_resource"] in resources)
        ):
            names.append(name)
    return names


class CountingDetector(Detector):
    """A Detector that counts how often its configuration is read."""

    def __init__(self, name: str, value: float = 1.0) -> None:
        super().__init__(name, value)
        self.configuration_reads = 0

    def read_configuration(self) -> dict[str, Any]:
        self.configuration_reads += 1
        return super().read_configuration()


class KeyedDevice:
    """A readable whose data keys are given (and may change), not derived from its name."""

    def __init__(self, name: str, keys: list[str], read_keys: list[str] | None = None) -> None:
        self.name = name
        self.parent = None
        self.keys = keys
        self.read_keys = read_keys  # None: read what describe() promises

    def describe(self) -> dict[str, Any]:
        return {k: {"source": f"mem://{k}", "dtype": "number", "shape": []} for k in self.keys}

    def read(self) -> dict[str, Any]:
        keys = self.keys if self.read_keys is None else self.read_keys
        return {k: {"value": 1.0, "timestamp": time.time()} for k in keys}


class BadDtypeDevice(Signal):
    """describe() promises a dtype event-model does not know."""

    def describe(self) -> dict[str, Any]:
        return {self.name: {"source": "mem://bad", "dtype": "complex", "shape": []}}


class FailingDetector(Signal):
    """Reads fine ``good`` times, then its read raises."""

    def __init__(self, name: str, good: int) -> None:
        super().__init__(name, 1.0)
        self.good = good

    def read(self) -> dict[str, Any]:
        if self.good == 0:
            raise RuntimeError("detector lost its connection")
        self.good -= 1
        return super().read()


class PageFlyer:
    """A fly-scan device (Flyable, EventPageCollectable): each collect returns one page.

    Its pages are numpy arrays, as a real flyer's would be.
    """

    def __init__(self, name: str, rows: int = 3) -> None:
        self.name = name
        self.parent = None
        self.rows = rows
        self.collected = 0
        self.log: list[str] = []

    def kickoff(self) -> DoneStatus:
        self.log.append("kickoff")
        return DoneStatus()

    def complete(self) -> DoneStatus:
        self.log.append("complete")
        return DoneStatus()

    def describe_collect(self) -> dict[str, Any]:
        return {
            f"{self.name}_x": {"source": "sim://x", "dtype": "number", "shape": [], "units": "mm"},
            f"{self.name}_i": {"source": "sim://i", "dtype": "integer", "shape": []},
        }

    def collect_pages(self) -> Iterator[dict[str, Any]]:
        start = self.collected
        self.collected += self.rows
        n = np.arange(start, start + self.rows)
        now = np.full(self.rows, time.time())
        yield {
            "time": now,
            "data": {f"{self.name}_x": n * 0.5, f"{self.name}_i": n},
            "timestamps": {f"{self.name}_x": now, f"{self.name}_i": now},
        }


class DescribedPageFlyer(PageFlyer):
    """The same flyer with a describe() too (as ophyd-async devices have)."""

    def describe(self) -> dict[str, Any]:
        return self.describe_collect()


class EventFlyer(DescribedPageFlyer):
    """A flyer whose collect() returns partial events (EventCollectable)."""

    collect_pages = None  # type: ignore[assignment]

    def collect(self) -> list[dict[str, Any]]:
        start = self.collected
        self.collected += self.rows
        return [
            {
                "time": time.time(),
                "data": {f"{self.name}_x": i * 0.5, f"{self.name}_i": i},
                "timestamps": {f"{self.name}_x": time.time(), f"{self.name}_i": time.time()},
            }
            for i in range(start, start + self.rows)
        ]


def fly(flyer: Any, collects: int = 2, declare: str | None = None):
    yield Msg("open_run")
    yield Msg("kickoff", flyer, group="kickoff")
    yield Msg("wait", group="kickoff")
    yield Msg("complete", flyer, group="complete")
    yield Msg("wait", group="complete")
    if declare is not None:
        yield Msg("declare_stream", None, flyer, name=declare, collect=True)
    for _ in range(collects):
        yield Msg("collect", flyer)
    yield Msg("close_run")


def rows_of(checker: DocChecker) -> list[dict[str, Any]]:
    """Every event and every event page row, as (seq_num, data)."""
    rows: list[dict[str, Any]] = []
    for name, doc in checker.docs:
        if name == "event":
            rows.append({"seq_num": doc["seq_num"], **doc["data"]})
        elif name == "event_page":
            for i, seq in enumerate(doc["seq_num"]):
                rows.append({"seq_num": seq, **{k: v[i] for k, v in doc["data"].items()}})
    return rows


# -- Start first, Stop last, once per run -----------------------------------------------------
async def test_reference_three_run_plan_each_run_starts_first_and_stops_last_once(
    RE: RunEngine, checker: DocChecker
) -> None:
    det, motor = Signal("det", 1.0), Signal("motor")

    def plan():
        yield from bp.count([det])
        yield from bp.scan([det], motor, 1, 5, 5)
        yield from bp.count([det])

    result = await RE(plan())
    starts = checker.of("start")
    assert len(starts) == 3
    assert result.run_start_uids == tuple(s["uid"] for s in starts)
    assert [docs_of_run(checker, s["uid"]) for s in starts] == [
        ["start", "descriptor", "event", "stop"],
        ["start", "descriptor", *["event"] * 5, "stop"],
        ["start", "descriptor", "event", "stop"],
    ]
    # the runs follow each other: each run's documents are contiguous
    assert checker.names() == [name for s in starts for name in docs_of_run(checker, s["uid"])]
    assert [s["num_events"] for s in checker.of("stop")] == [
        {"primary": 1},
        {"primary": 5},
        {"primary": 1},
    ]
    assert [s["run_start"] for s in checker.of("stop")] == [s["uid"] for s in starts]


async def test_events_link_to_their_descriptor_and_descriptors_to_their_start(
    RE: RunEngine, checker: DocChecker
) -> None:
    det = Signal("det", 2.0)
    await RE(bp.count([det], 3))
    (start,), (descriptor,), (stop,) = (checker.of(n) for n in ("start", "descriptor", "stop"))
    assert descriptor["run_start"] == start["uid"] == stop["run_start"]
    assert {e["descriptor"] for e in checker.of("event")} == {descriptor["uid"]}
    uids = [doc["uid"] for _, doc in checker.docs]
    assert len(set(uids)) == len(uids)
    assert stop["exit_status"] == "success"
    assert stop["time"] >= start["time"]


# -- seq_num and num_events -------------------------------------------------------------------
async def test_seq_num_counts_from_one_in_each_of_several_interleaved_streams(
    RE: RunEngine, checker: DocChecker
) -> None:
    det, temperature = Signal("det", 1.0), Signal("temperature", 300.0, units="K")

    def plan():
        yield Msg("open_run")
        yield from read_event(temperature, stream="baseline")
        for i in range(4):
            yield from read_event(det)
            if i % 2:
                yield from read_event(temperature, stream="baseline")
        yield Msg("close_run")

    await RE(plan())
    assert seq_nums_by_stream(checker) == {"baseline": [1, 2, 3], "primary": [1, 2, 3, 4]}
    assert checker.names() == [
        "start",
        "descriptor",
        "event",
        "descriptor",
        "event",
        "event",
        "event",
        "event",
        "event",
        "event",
        "stop",
    ]
    (stop,) = checker.of("stop")
    assert stop["num_events"] == {"baseline": 3, "primary": 4}


async def test_a_declared_stream_without_events_counts_zero_in_the_stop(
    RE: RunEngine, checker: DocChecker
) -> None:
    det, spare = Signal("det", 1.0), Signal("spare")

    def plan():
        yield Msg("open_run")
        yield Msg("declare_stream", None, spare, name="secondary")
        yield from read_event(det)
        yield from read_event(det)
        yield Msg("close_run")

    await RE(plan())
    descriptors = checker.of("descriptor")
    assert [d["name"] for d in descriptors] == ["secondary", "primary"]
    assert list(descriptors[0]["data_keys"]) == ["spare"]
    (stop,) = checker.of("stop")
    assert stop["num_events"] == {"secondary": 0, "primary": 2}


async def test_a_run_without_events_has_empty_num_events(
    RE: RunEngine, checker: DocChecker
) -> None:
    await RE([Msg("open_run"), Msg("close_run")])
    (stop,) = checker.of("stop")
    assert stop["num_events"] == {}


async def test_drop_discards_the_bundle_and_does_not_consume_a_seq_num(
    RE: RunEngine, checker: DocChecker
) -> None:
    det = Signal("det", 1.0)

    def plan():
        yield Msg("open_run")
        yield Msg("create", name="primary")
        yield Msg("read", det)
        yield Msg("drop")
        yield from read_event(det)
        yield Msg("create", name="primary")
        yield Msg("read", det)
        yield Msg("drop")
        yield from read_event(det)
        yield Msg("close_run")

    await RE(plan())
    assert checker.names() == ["start", "descriptor", "event", "event", "stop"]
    assert [e["seq_num"] for e in checker.of("event")] == [1, 2]
    assert checker.of("stop")[0]["num_events"] == {"primary": 2}


async def test_save_with_nothing_read_emits_nothing(RE: RunEngine, checker: DocChecker) -> None:
    det = Signal("det", 1.0)

    def plan():
        yield Msg("open_run")
        yield Msg("create", name="primary")
        yield Msg("save")
        yield from read_event(det)
        yield Msg("close_run")

    await RE(plan())
    assert checker.names() == ["start", "descriptor", "event", "stop"]
    assert checker.of("event")[0]["seq_num"] == 1
    assert checker.of("stop")[0]["num_events"] == {"primary": 1}


# -- descriptors --------------------------------------------------------------------------------
async def test_descriptor_data_keys_object_keys_configuration_and_hints(
    RE: RunEngine, checker: DocChecker
) -> None:
    det, motor = Detector("det", 5.0), Signal("motor", 1.5, units="mm")
    await RE(bp.count([det, motor], 2))
    (descriptor,) = checker.of("descriptor")
    assert descriptor["name"] == "primary"
    assert descriptor["data_keys"] == {
        "det": {
            "source": "mem://det",
            "dtype": "number",
            "shape": [],
            "units": "counts",
            "precision": 3,
            "object_name": "det",
        },
        "motor": {
            "source": "mem://motor",
            "dtype": "number",
            "shape": [],
            "units": "mm",
            "precision": 3,
            "object_name": "motor",
        },
    }
    assert descriptor["object_keys"] == {"det": ["det"], "motor": ["motor"]}
    config = descriptor["configuration"]["det"]
    assert config["data"] == {"det_exposure": 0.1}
    assert set(config["timestamps"]) == {"det_exposure"}
    assert config["data_keys"] == {
        "det_exposure": {"source": "mem", "dtype": "number", "shape": []}
    }
    assert descriptor["hints"] == {"det": {"fields": ["det"]}, "motor": {"fields": ["motor"]}}
    assert [e["data"] for e in checker.of("event")] == [{"det": 5.0, "motor": 1.5}] * 2


async def test_descriptor_has_an_empty_configuration_for_a_device_without_one(
    RE: RunEngine, checker: DocChecker
) -> None:
    # reference/002: temp_ctrl "happens to provide no configuration information" and is
    # recorded as {'data': {}, 'timestamps': {}, 'data_keys': {}}
    det, temp_ctrl = Detector("det"), Signal("temp_ctrl", 300.0, units="K")
    await RE(bp.count([det, temp_ctrl]))
    (descriptor,) = checker.of("descriptor")
    assert descriptor["configuration"]["temp_ctrl"] == {
        "data": {},
        "timestamps": {},
        "data_keys": {},
    }


async def test_configuration_is_read_on_a_devices_first_read_in_each_run(
    RE: RunEngine, checker: DocChecker
) -> None:
    det = CountingDetector("det")

    def plan():
        yield from bp.count([det], 3)
        assert det.configuration_reads == 1
        det.exposure = 0.7  # changed between runs, without a 'configure' message
        yield from bp.count([det], 3)

    await RE(plan())
    assert det.configuration_reads == 2
    first, second = checker.of("descriptor")
    assert first["run_start"] != second["run_start"]
    assert first["configuration"]["det"]["data"] == {"det_exposure": 0.1}
    assert second["configuration"]["det"]["data"] == {"det_exposure": 0.7}


async def test_configure_mid_run_gives_a_new_descriptor_in_the_same_stream(
    RE: RunEngine, checker: DocChecker
) -> None:
    det = Detector("det")
    replies: list[Any] = []

    def plan():
        yield Msg("open_run")
        yield from read_event(det)
        yield from read_event(det)
        replies.append((yield Msg("configure", det, exposure=0.5)))
        yield from read_event(det)
        yield Msg("close_run")

    await RE(plan())
    old, new = replies[0]
    assert (old["det_exposure"]["value"], new["det_exposure"]["value"]) == (0.1, 0.5)
    first, second = checker.of("descriptor")
    assert first["name"] == second["name"] == "primary"
    assert first["configuration"]["det"]["data"] == {"det_exposure": 0.1}
    assert second["configuration"]["det"]["data"] == {"det_exposure": 0.5}
    events = checker.of("event")
    assert [e["descriptor"] for e in events] == [first["uid"], first["uid"], second["uid"]]
    assert [e["seq_num"] for e in events] == [1, 2, 3]
    assert checker.of("stop")[0]["num_events"] == {"primary": 3}


async def test_a_new_descriptor_when_the_set_of_read_objects_changes_within_a_stream(
    RE: RunEngine, checker: DocChecker
) -> None:
    det, motor = Signal("det", 1.0), Signal("motor", 2.0)

    def plan():
        yield Msg("open_run")
        yield from read_event(det)
        yield from read_event(det)
        yield from read_event(det, motor)
        yield Msg("close_run")

    await RE(plan())
    first, second = checker.of("descriptor")
    assert first["name"] == second["name"] == "primary"
    assert first["object_keys"] == {"det": ["det"]}
    assert second["object_keys"] == {"det": ["det"], "motor": ["motor"]}
    assert set(second["data_keys"]) == {"det", "motor"}
    events = checker.of("event")
    assert [e["descriptor"] for e in events] == [first["uid"], first["uid"], second["uid"]]
    assert [e["seq_num"] for e in events] == [1, 2, 3]
    assert events[2]["data"] == {"det": 1.0, "motor": 2.0}
    assert checker.of("stop")[0]["num_events"] == {"primary": 3}


async def test_a_new_descriptor_when_a_devices_data_keys_change_within_a_stream(
    RE: RunEngine, checker: DocChecker
) -> None:
    dev = KeyedDevice("multi", ["multi_a"])

    def plan():
        yield Msg("open_run")
        yield from read_event(dev)
        dev.keys = ["multi_a", "multi_b"]  # describe() and read() both change
        yield from read_event(dev)
        yield Msg("close_run")

    await RE(plan())
    first, second = checker.of("descriptor")
    assert list(first["data_keys"]) == ["multi_a"]
    assert list(second["data_keys"]) == ["multi_a", "multi_b"]
    assert second["object_keys"] == {"multi": ["multi_a", "multi_b"]}
    events = checker.of("event")
    assert [e["descriptor"] for e in events] == [first["uid"], second["uid"]]
    assert [e["seq_num"] for e in events] == [1, 2]


async def test_colliding_data_keys_of_two_devices_raise_a_device_error_naming_both(
    RE: RunEngine, checker: DocChecker
) -> None:
    temp = Signal("temp", 300.0)
    thermo = KeyedDevice("thermo", ["temp"])  # a different device with the same data key

    def plan():
        yield Msg("open_run")
        yield from read_event(temp, thermo)
        yield Msg("close_run")

    with pytest.raises(DeviceError) as info:
        await RE(plan())
    message = str(info.value)
    assert "'temp' of thermo" in message
    assert "key of temp" in message
    assert checker.names() == ["start", "stop"]
    assert checker.of("stop")[0]["exit_status"] == "fail"


async def test_read_keys_that_differ_from_describe_raise_a_device_error_naming_the_device(
    RE: RunEngine, checker: DocChecker
) -> None:
    liar = KeyedDevice("liar", ["liar_value"], read_keys=["liar_other"])
    with pytest.raises(DeviceError, match="liar") as info:
        await RE([Msg("open_run"), *read_event(liar), Msg("close_run")])
    assert "liar_other" in str(info.value)
    assert "liar_value" in str(info.value)
    assert checker.names() == ["start", "stop"]
    assert checker.of("stop")[0]["exit_status"] == "fail"


# -- flyers: event pages --------------------------------------------------------------------
async def test_flyer_pages_become_event_pages_whose_seq_nums_continue(
    RE: RunEngine, checker: DocChecker
) -> None:
    flyer = DescribedPageFlyer("flyer", rows=3)
    await RE(fly(flyer, collects=2))
    assert flyer.log == ["kickoff", "complete"]
    assert checker.names() == ["start", "descriptor", "event_page", "event_page", "stop"]
    (descriptor,) = checker.of("descriptor")
    assert descriptor["name"] == "flyer"
    assert descriptor["data_keys"] == {
        k: {**dk, "object_name": "flyer"} for k, dk in flyer.describe_collect().items()
    }
    assert descriptor["object_keys"] == {"flyer": ["flyer_x", "flyer_i"]}
    pages = checker.of("event_page")
    assert [p["seq_num"] for p in pages] == [[1, 2, 3], [4, 5, 6]]
    assert all(p["descriptor"] == descriptor["uid"] for p in pages)
    assert pages[0]["data"] == {"flyer_x": [0.0, 0.5, 1.0], "flyer_i": [0, 1, 2]}
    assert pages[1]["data"] == {"flyer_x": [1.5, 2.0, 2.5], "flyer_i": [3, 4, 5]}
    for page in pages:  # numpy arrays became plain lists
        assert json.loads(json.dumps(page)) == page
        assert len(page["uid"]) == len(set(page["uid"])) == 3
        assert set(page["timestamps"]) == {"flyer_x", "flyer_i"}
    assert checker.of("stop")[0]["num_events"] == {"flyer": 6}


async def test_flyer_collected_into_a_declared_stream(RE: RunEngine, checker: DocChecker) -> None:
    flyer = DescribedPageFlyer("flyer", rows=2)
    await RE(fly(flyer, collects=3, declare="fly"))
    (descriptor,) = checker.of("descriptor")
    assert descriptor["name"] == "fly"
    assert [p["seq_num"] for p in checker.of("event_page")] == [[1, 2], [3, 4], [5, 6]]
    assert checker.of("stop")[0]["num_events"] == {"fly": 6}


async def test_flyer_with_only_the_collectable_protocol_can_be_collected(
    RE: RunEngine, checker: DocChecker
) -> None:
    # bluesky.protocols: Flyable (kickoff, complete) + EventPageCollectable
    # (describe_collect, collect_pages); describe() is not part of it.
    flyer = PageFlyer("flyer", rows=3)
    await RE(fly(flyer, collects=1))
    assert checker.names() == ["start", "descriptor", "event_page", "stop"]
    assert checker.of("event_page")[0]["seq_num"] == [1, 2, 3]


async def test_flyer_partial_events_are_emitted_with_continuing_seq_nums(
    RE: RunEngine, checker: DocChecker
) -> None:
    flyer = EventFlyer("flyer", rows=2)
    await RE(fly(flyer, collects=2))
    (descriptor,) = checker.of("descriptor")
    assert descriptor["data_keys"] == {
        k: {**dk, "object_name": "flyer"} for k, dk in flyer.describe_collect().items()
    }
    assert rows_of(checker) == [
        {"seq_num": 1, "flyer_x": 0.0, "flyer_i": 0},
        {"seq_num": 2, "flyer_x": 0.5, "flyer_i": 1},
        {"seq_num": 3, "flyer_x": 1.0, "flyer_i": 2},
        {"seq_num": 4, "flyer_x": 1.5, "flyer_i": 3},
    ]
    assert checker.of("stop")[0]["num_events"] == {"flyer": 4}


# -- stream resources from a detector writing HDF5 ---------------------------------------------
async def test_hdf5_detector_emits_stream_resources_and_datums_linked_to_its_events(
    RE: RunEngine, checker: DocChecker, tmp_path: Path
) -> None:
    provider = StaticPathProvider(StaticFilenameProvider("blob"), tmp_path)
    det = SimBlobDetector(provider, name="bdet")
    await det.connect()
    await RE(bp.count([det], 3))

    (start,), (descriptor,) = checker.of("start"), checker.of("descriptor")
    data_keys = descriptor["data_keys"]
    assert set(data_keys) == {"bdet", "bdet-sum"}
    assert all(dk["external"] == "STREAM:" for dk in data_keys.values())
    resources = {r["uid"]: r for r in checker.of("stream_resource")}
    assert sorted(r["data_key"] for r in resources.values()) == ["bdet", "bdet-sum"]
    assert all(r["run_start"] == start["uid"] for r in resources.values())

    datums = checker.of("stream_datum")
    assert len(datums) == 6
    for uid in resources:
        mine = [d for d in datums if d["stream_resource"] == uid]
        assert [d["indices"] for d in mine] == [{"start": i, "stop": i + 1} for i in range(3)]
        assert [d["seq_nums"] for d in mine] == [{"start": i, "stop": i + 1} for i in range(1, 4)]
        assert all(d["descriptor"] == descriptor["uid"] for d in mine)

    # each event follows the stream datums that cover its seq_num
    position = {id(doc): i for i, (_, doc) in enumerate(checker.docs)}
    for event in checker.of("event"):
        covering = [d for d in datums if d["seq_nums"]["start"] == event["seq_num"]]
        assert len(covering) == 2
        assert all(position[id(d)] < position[id(event)] for d in covering)
    assert [e["seq_num"] for e in checker.of("event")] == [1, 2, 3]
    assert checker.of("stop")[0]["num_events"] == {"primary": 3}

    (uri,) = {r["uri"] for r in resources.values()}
    with h5py.File(urlparse(uri).path, "r") as f:
        for resource in resources.values():
            dataset = f[resource["parameters"]["dataset"]]
            assert isinstance(dataset, h5py.Dataset)
            assert dataset.shape[0] == 3


# -- concurrent runs ------------------------------------------------------------------------
async def test_two_concurrent_runs_keep_their_own_streams_and_counts(
    RE: RunEngine, checker: DocChecker
) -> None:
    det_a, det_b = Signal("det_a", 1.0), Signal("det_b", 2.0)

    def plan():
        yield Msg("open_run", run="a", purpose="a")
        yield Msg("open_run", run="b", purpose="b")
        for i in range(3):
            yield from read_event(det_a, run="a")
            if i < 2:
                yield from read_event(det_b, run="b")
        yield Msg("close_run", run="a")
        yield from read_event(det_b, run="b")
        yield from read_event(det_b, run="b")
        yield Msg("close_run", run="b")

    result = await RE(plan())
    start_a, start_b = checker.of("start")
    assert (start_a["purpose"], start_b["purpose"]) == ("a", "b")
    assert result.run_start_uids == (start_a["uid"], start_b["uid"])
    descriptors = descriptors_by_uid(checker)
    per_run: dict[str, list[tuple[int, float]]] = {start_a["uid"]: [], start_b["uid"]: []}
    for event in checker.of("event"):
        run = descriptors[event["descriptor"]]["run_start"]
        per_run[run].append((event["seq_num"], next(iter(event["data"].values()))))
    assert per_run[start_a["uid"]] == [(1, 1.0), (2, 1.0), (3, 1.0)]
    assert per_run[start_b["uid"]] == [(1, 2.0), (2, 2.0), (3, 2.0), (4, 2.0)]
    # the events of the two runs really were interleaved
    runs_in_order = [descriptors[e["descriptor"]]["run_start"] for e in checker.of("event")]
    assert runs_in_order[:4] == [start_a["uid"], start_b["uid"]] * 2
    stops = {s["run_start"]: s for s in checker.of("stop")}
    assert stops[start_a["uid"]]["num_events"] == {"primary": 3}
    assert stops[start_b["uid"]]["num_events"] == {"primary": 4}
    assert checker.names()[-1] == "stop"


# -- validation before emission -------------------------------------------------------------
async def test_an_invalid_document_is_never_emitted_and_raises_an_internal_error(
    RE: RunEngine, checker: DocChecker
) -> None:
    bad = BadDtypeDevice("bad")
    with pytest.raises(AcqInternalError) as info:
        await RE([Msg("open_run"), *read_event(bad), Msg("close_run")])
    message = str(info.value)
    assert "descriptor" in message
    assert "data_keys.bad.dtype" in message
    assert "descriptor" not in checker.names()
    assert checker.names() == ["start", "stop"]
    (stop,) = checker.of("stop")
    assert stop["exit_status"] == "fail"
    assert "AcqInternalError" in stop["reason"]


# -- a device failing mid-run ---------------------------------------------------------------
async def test_a_device_failing_mid_run_gives_a_fail_stop_naming_message_and_device(
    RE: RunEngine, checker: DocChecker
) -> None:
    det = FailingDetector("flaky_det", good=2)

    async def measure(n: int):  # no bluesky run_wrapper: the engine closes the run itself
        yield Msg("open_run")
        for _ in range(n):
            yield Msg("trigger", det, group="det")
            yield Msg("wait", group="det")
            yield read_event(det)
        yield Msg("close_run")

    with pytest.raises(RuntimeError, match="lost its connection"):
        await RE(measure(5))
    assert checker.names() == ["start", "descriptor", "event", "event", "stop"]
    (stop,) = checker.of("stop")
    assert stop["exit_status"] == "fail"
    assert "'read'" in stop["reason"]
    assert "flaky_det" in stop["reason"]
    assert "lost its connection" in stop["reason"]
    assert stop["num_events"] == {"primary": 2}
