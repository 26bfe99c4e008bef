"""Documents where bluesky's own tests pin the behaviour (tests/compat): stream assets
in event-model's pre-1.20 form, the rules of ``collect`` and ``declare_stream``, which
read order makes a new descriptor, and how often a device is described.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import event_model
import pytest
from event_model import DocumentNames
from support import DocChecker, Signal

from acq import DeviceError, IllegalMessageSequence, Msg, PlanError, RunEngine

LEGACY_KEYS = {"root", "resource_path", "spec", "resource_kwargs", "path_semantics"}
CURRENT_FORM = {  # for AssetDetector: a StreamResource as event-model >= 1.20 has it
    **dict.fromkeys(("root", "resource_path", "spec", "resource_kwargs")),
    "uri": "file://localhost/data/scan_1.h5",
    "mimetype": "application/x-hdf5",
    "parameters": {"dataset": "/entry/data"},
}


def data_key(external: str | None = None) -> dict[str, Any]:
    dk: dict[str, Any] = {"source": "file", "dtype": "number", "shape": []}
    if external is not None:
        dk["external"] = external
    return dk


class AssetDetector:
    """Writes one frame per read and reports it as a pre-event-model-1.20 StreamResource.

    ``legacy`` updates the StreamResource it yields (``None`` values delete the key);
    ``collect_asset_docs(index)`` and ``get_index()`` make it collectable in a group.
    """

    def __init__(self, name: str, **legacy: Any) -> None:
        self.name = name
        self.parent = None
        self.legacy = legacy
        self.frames = 0
        self.key = f"{name}-frame"

    def describe(self) -> dict[str, Any]:
        return {self.key: data_key("STREAM:")}

    describe_collect = describe

    def read(self) -> dict[str, Any]:
        return {}

    def get_index(self) -> int:
        return 2

    def collect_asset_docs(self, index: int | None = None) -> Iterator[tuple[str, Any]]:
        index = index or 1
        uid = f"{self.name}-resource"
        if self.frames == 0:
            resource: dict[str, Any] = {
                "uid": uid,
                "data_key": self.key,
                "root": "/data",
                "resource_path": "/2024/scan_1.h5",
                "spec": "AD_HDF5_SWMR_STREAM",
                "resource_kwargs": {"dataset": "/entry/data", "multiplier": 1},
                **self.legacy,
            }
            yield "stream_resource", {k: v for k, v in resource.items() if v is not None}
        yield (
            "stream_datum",
            {
                "uid": f"{uid}/{self.frames}",
                "stream_resource": uid,
                "descriptor": "",
                "indices": {"start": self.frames, "stop": self.frames + index},
                "seq_nums": {"start": 0, "stop": 0},
            },
        )
        self.frames += index


def count_plan(*dets: Any, points: int = 1):
    yield Msg("open_run")
    for _ in range(points):
        yield Msg("create", name="primary")
        for det in dets:
            yield Msg("read", det)
        yield Msg("save")
    yield Msg("close_run")


async def legacy_stream_resource(RE: RunEngine, checker: DocChecker, **legacy: Any) -> Any:
    await RE(count_plan(AssetDetector("det", **legacy)))
    (resource,) = checker.of("stream_resource")
    return resource


# -- StreamResource in event-model's pre-1.20 form ---------------------------------------------
async def test_a_pre_1_20_stream_resource_is_emitted_in_event_models_current_form(
    RE: RunEngine, checker: DocChecker
) -> None:
    await RE(count_plan(AssetDetector("det"), points=2))
    assert checker.names() == [
        "start",
        "descriptor",
        "stream_resource",
        "stream_datum",
        "event",
        "stream_datum",
        "event",
        "stop",
    ]
    (resource,) = checker.of("stream_resource")
    (start,) = checker.of("start")
    assert resource == {
        "uid": "det-resource",
        "data_key": "det-frame",
        "run_start": start["uid"],
        "uri": "file://localhost/data/2024/scan_1.h5",
        "mimetype": "application/x-hdf5",
        "parameters": {"dataset": "/entry/data", "multiplier": 1},
    }
    event_model.schema_validators[DocumentNames.stream_resource].validate(resource)
    assert all(d["stream_resource"] == "det-resource" for d in checker.of("stream_datum"))


@pytest.mark.parametrize(
    ("spec", "mimetype"),
    [
        ("AD_HDF5_SWMR_SLICE", "application/x-hdf5"),
        ("ADHDF5_SWMR", "application/x-hdf5"),
        ("HDF5", "application/x-hdf5"),
        ("hdf5", "application/x-hdf5"),
        ("TPX_HDF5", "application/x-hdf5"),
        ("XSP3_BULK", "application/x-hdf5"),
        ("PANDA", "application/x-hdf5"),
        ("AD_TIFF", "multipart/related;type=image/tiff"),
        ("NPY_SEQ", "multipart/related;type=application/x-npy"),
        ("MY_FORMAT", "application/x-my_format"),  # unknown: application/x-<spec lowercased>
        ("odd spec/v2", "application/x-odd-spec-v2"),  # ... with only a MIME type's characters
    ],
)
async def test_a_legacy_stream_resource_gets_the_mimetype_of_its_spec(
    RE: RunEngine, checker: DocChecker, spec: str, mimetype: str
) -> None:
    resource = await legacy_stream_resource(RE, checker, spec=spec)
    assert resource["mimetype"] == mimetype
    assert not LEGACY_KEYS & set(resource)


async def test_an_hdf5_legacy_stream_resource_names_its_dataset_as_event_model_does_now(
    RE: RunEngine, checker: DocChecker
) -> None:
    # ophyd-async's pre-1.20 HDF writers said "path"; event-model's consumers read "dataset"
    kwargs = {"path": "/entry/sum", "multiplier": 1}
    resource = await legacy_stream_resource(RE, checker, resource_kwargs=kwargs)
    assert resource["parameters"] == {
        "path": "/entry/sum",
        "dataset": "/entry/sum",
        "multiplier": 1,
    }


@pytest.mark.parametrize(
    ("legacy", "uri"),
    [
        ({"root": "/root", "resource_path": "/path.h5"}, "file://localhost/root/path.h5"),
        ({"root": "/root/", "resource_path": "a/b.h5"}, "file://localhost/root/a/b.h5"),
        ({"root": "", "resource_path": "/abs/c.h5"}, "file://localhost/abs/c.h5"),
        ({"root": None, "resource_path": "/abs/c.h5"}, "file://localhost/abs/c.h5"),
        ({"root": "/my data", "resource_path": "f#1.h5"}, "file://localhost/my%20data/f%231.h5"),
        (
            {"root": "C:\\data", "resource_path": "scan\\d.h5", "path_semantics": "windows"},
            "file://localhost/C:/data/scan/d.h5",
        ),
    ],
)
async def test_a_legacy_stream_resource_uri_joins_root_and_resource_path(
    RE: RunEngine, checker: DocChecker, legacy: dict[str, Any], uri: str
) -> None:
    resource = await legacy_stream_resource(RE, checker, **legacy)
    assert resource["uri"] == uri
    assert not LEGACY_KEYS & set(resource)


async def test_a_legacy_stream_resource_without_a_spec_is_a_device_error_naming_what_is_missing(
    RE: RunEngine, checker: DocChecker
) -> None:
    with pytest.raises(DeviceError, match=r"det-resource.*'spec'"):
        await RE(count_plan(AssetDetector("det", spec=None)))
    assert checker.of("stream_resource") == []
    assert checker.of("stop")[0]["exit_status"] == "fail"


# -- collect and declare_stream ------------------------------------------------------------------
class NestedFlyer:
    """An ophyd v1-style flyer whose describe_collect() names its streams."""

    def __init__(self, name: str, streams: dict[str, list[str]]) -> None:
        self.name = name
        self.parent = None
        self.streams = streams

    def describe_collect(self) -> dict[str, Any]:
        return {s: {k: data_key() for k in keys} for s, keys in self.streams.items()}

    def collect(self) -> Iterator[dict[str, Any]]:
        for keys in self.streams.values():
            now = time.time()
            yield {
                "time": now,
                "data": dict.fromkeys(keys, 1.0),
                "timestamps": dict.fromkeys(keys, now),
            }


def collect_plan(*objs: Any, declare: list[tuple[str, bool]] = (), **collect_kwargs: Any):  # type: ignore[assignment]
    yield Msg("open_run")
    for name, collect in declare:
        yield Msg("declare_stream", None, *objs, name=name, collect=collect)
    yield Msg("collect", *objs, **collect_kwargs)
    yield Msg("close_run")


async def test_collect_with_stream_true_is_refused_as_bluesky_refuses_it(
    RE: RunEngine, checker: DocChecker
) -> None:
    flyer = NestedFlyer("flyer", {"s1": ["a"]})
    with pytest.raises(PlanError, match=r"flyer.*stream=True") as info:
        await RE(collect_plan(flyer, stream=True))
    assert isinstance(info.value, RuntimeError)  # what bluesky raises (and its plans catch)
    assert "Collect now emits EventPages (stream=False)" in str(info.value)
    assert checker.names() == ["start", "stop"]


async def test_a_flyer_naming_one_data_key_in_two_streams_is_a_device_error(
    RE: RunEngine, checker: DocChecker
) -> None:
    flyer = NestedFlyer("flyer", {"s1": ["a", "pv"], "s2": ["pv", "b"], "s3": ["c"]})
    with pytest.raises(DeviceError, match=r"flyer.*'pv'.*'s1'.*'s2'") as info:
        await RE(collect_plan(flyer))
    assert isinstance(info.value, RuntimeError)  # as bluesky's
    assert "identical data keys in multiple streams" in str(info.value)
    assert checker.names() == ["start", "stop"]  # no descriptor for any of its streams


async def test_collect_goes_into_the_stream_declared_for_its_objects_without_collect_true(
    RE: RunEngine, checker: DocChecker
) -> None:
    det1, det2 = AssetDetector("det1", **CURRENT_FORM), AssetDetector("det2", **CURRENT_FORM)
    await RE(collect_plan(det1, det2, declare=[("main", False)]))
    (descriptor,) = checker.of("descriptor")
    assert descriptor["name"] == "main"
    assert set(descriptor["data_keys"]) == {"det1-frame", "det2-frame"}
    datums = checker.of("stream_datum")
    assert len(datums) == 2
    assert all(d["descriptor"] == descriptor["uid"] for d in datums)
    # both detectors' 2 frames (get_index()) are the same 2 events of the stream
    assert [d["seq_nums"] for d in datums] == [{"start": 1, "stop": 3}] * 2
    assert checker.of("stop")[0]["num_events"] == {"main": 2}


async def test_collect_without_a_name_refuses_to_choose_between_streams_declared_for_its_objects(
    RE: RunEngine, checker: DocChecker
) -> None:
    det1, det2 = AssetDetector("det1", **CURRENT_FORM), AssetDetector("det2", **CURRENT_FORM)
    with pytest.raises(IllegalMessageSequence, match=r"'dark'.*'flat'.*name="):
        await RE(collect_plan(det1, det2, declare=[("flat", True), ("dark", True)]))
    assert checker.of("stream_datum") == []


async def test_collect_without_a_name_may_use_a_stream_declared_twice(
    RE: RunEngine, checker: DocChecker
) -> None:
    det1, det2 = AssetDetector("det1", **CURRENT_FORM), AssetDetector("det2", **CURRENT_FORM)
    await RE(collect_plan(det1, det2, declare=[("main", False), ("main", False)]))
    first, second = checker.of("descriptor")
    assert first["name"] == second["name"] == "main"
    assert all(d["descriptor"] == second["uid"] for d in checker.of("stream_datum"))


class PagesAndAssetsFlyer(AssetDetector):
    """A flyer whose frames are both event page rows (a position) and stream datums."""

    def describe_collect(self) -> dict[str, Any]:
        return {**self.describe(), f"{self.name}-x": data_key()}

    def collect_pages(self) -> Iterator[dict[str, Any]]:
        now = time.time()
        rows = self.frames - self.paged
        self.paged = self.frames
        yield {
            "time": [now] * rows,
            "data": {f"{self.name}-x": [0.5] * rows},
            "timestamps": {f"{self.name}-x": [now] * rows},
        }

    paged = 0


async def test_a_flyers_page_rows_and_stream_datums_are_the_same_events(
    RE: RunEngine, checker: DocChecker
) -> None:
    flyer = PagesAndAssetsFlyer("flyer", **CURRENT_FORM)

    def plan():
        yield Msg("open_run")
        yield Msg("declare_stream", None, flyer, name="fly", collect=True)
        for _ in range(2):
            yield Msg("collect", flyer, name="fly")
        yield Msg("close_run")

    await RE(plan())
    assert [d["seq_nums"] for d in checker.of("stream_datum")] == [
        {"start": 1, "stop": 2},
        {"start": 2, "stop": 3},
    ]
    assert [p["seq_num"] for p in checker.of("event_page")] == [[1], [2]]
    assert checker.of("stop")[0]["num_events"] == {"fly": 2}


# -- descriptors: the set of objects read, described once per stream ----------------------------
async def test_reading_the_declared_objects_in_another_order_keeps_their_descriptor(
    RE: RunEngine, checker: DocChecker
) -> None:
    det, motor = Signal("det", 1.0), Signal("motor", 2.0)

    def plan():
        yield Msg("open_run")
        yield Msg("declare_stream", None, det, motor, name="primary")
        for _ in range(3):
            yield Msg("create", name="primary")
            yield Msg("read", motor)
            yield Msg("read", det)
            yield Msg("save")
        yield Msg("create", name="primary")
        yield Msg("read", det)  # the declared order again
        yield Msg("read", motor)
        yield Msg("save")
        yield Msg("close_run")

    await RE(plan())
    (descriptor,) = checker.of("descriptor")
    assert descriptor["object_keys"] == {"det": ["det"], "motor": ["motor"]}
    events = checker.of("event")
    assert [e["seq_num"] for e in events] == [1, 2, 3, 4]
    assert all(e["descriptor"] == descriptor["uid"] for e in events)
    assert all(e["data"] == {"det": 1.0, "motor": 2.0} for e in events)


class CountingSignal(Signal):
    """A Signal that counts its describe() calls (and can be monitored: it never updates)."""

    describes = 0

    def describe(self) -> dict[str, Any]:
        self.describes += 1
        return super().describe()

    def subscribe(self, callback: Any) -> None:
        pass

    def clear_sub(self, callback: Any) -> None:
        pass


async def test_a_device_is_described_once_per_stream_it_is_read_into(
    RE: RunEngine, checker: DocChecker
) -> None:
    det = CountingSignal("det", 1.0)

    def plan():
        yield Msg("open_run")
        for stream in ("a", "b", "a", "b", "a"):
            yield Msg("create", name=stream)
            yield Msg("read", det)
            yield Msg("save")
        yield Msg("monitor", det, name="det_monitor")
        yield Msg("unmonitor", det)
        yield Msg("close_run")

    await RE(plan())
    assert det.describes == 3  # a, b and the monitor's stream: as bluesky, once per stream
    assert [d["name"] for d in checker.of("descriptor")] == ["a", "b", "det_monitor"]
    assert checker.of("stop")[0]["num_events"] == {"a": 3, "b": 2, "det_monitor": 0}


async def test_configure_describes_the_device_again_in_every_stream(
    RE: RunEngine, checker: DocChecker
) -> None:
    det = CountingSignal("det", 1.0)
    det.configure = lambda: ({}, {})  # type: ignore[attr-defined]

    def plan():
        yield Msg("open_run")
        for stream in ("a", "b"):
            yield Msg("create", name=stream)
            yield Msg("read", det)
            yield Msg("save")
        yield Msg("configure", det)
        for stream in ("a", "b"):
            yield Msg("create", name=stream)
            yield Msg("read", det)
            yield Msg("save")
        yield Msg("close_run")

    await RE(plan())
    assert det.describes == 4
    assert [d["name"] for d in checker.of("descriptor")] == ["a", "b", "a", "b"]
