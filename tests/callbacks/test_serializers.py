"""JSON Lines and msgpack document files round-trip every document type, arrays included."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import event_model
import numpy as np
import pytest
from acq.callbacks import (
    JSONLinesWriter,
    LiveTable,
    MsgpackWriter,
    read_jsonl,
    read_msgpack,
)
from acq.devices.sim import sim_beamline
from acq.plans import count, fly, scan

from acq import RunEngine

Docs = list[tuple[str, dict[str, Any]]]
Reader = Callable[[Path], Iterator[tuple[str, dict[str, Any]]]]
FORMATS: list[tuple[type[JSONLinesWriter] | type[MsgpackWriter], Reader]] = [
    (JSONLinesWriter, read_jsonl),
    (MsgpackWriter, read_msgpack),
]
EVERY_TYPE = {
    "start", "descriptor", "event", "event_page", "stop",
    "resource", "datum", "datum_page", "stream_resource", "stream_datum",
}  # fmt: skip


class Spectrometer:
    """Reads numpy arrays and numpy scalars."""

    name, parent = "spectrometer", None

    def describe(self) -> dict[str, Any]:
        return {
            "spectrum": {"source": "mem", "dtype": "array", "shape": [2, 3], "dtype_numpy": "<i4"},
            "peak": {"source": "mem", "dtype": "number", "shape": [], "dtype_numpy": "<f4"},
            "hits": {"source": "mem", "dtype": "integer", "shape": [], "dtype_numpy": "<i8"},
            "saturated": {"source": "mem", "dtype": "boolean", "shape": []},
        }

    def read(self) -> dict[str, Any]:
        now = time.time()
        values = {
            "spectrum": np.arange(6, dtype=np.int32).reshape(2, 3),
            "peak": np.float32(1.25),
            "hits": np.int64(2**40),
            "saturated": np.bool_(True),
        }
        return {k: {"value": v, "timestamp": now} for k, v in values.items()}


def composed_run() -> Docs:
    """A run with Resource / Datum / Datum Page (acq's devices emit Stream* instead) and
    an Event Page of numpy columns, built with event-model's compose functions."""
    run = event_model.compose_run(metadata={"plan_name": "composed", "scan_id": 99})
    resource = run.compose_resource(
        spec="NPY_SEQ", root="/data", resource_path="frames.npy", resource_kwargs={}
    )
    datum = resource.compose_datum(datum_kwargs={"index": 0})
    datum_page = resource.compose_datum_page(datum_kwargs={"index": [1, 2]})
    data_keys: dict[str, Any] = {
        "frame": {"source": "npy", "dtype": "array", "shape": [4, 4], "external": "FILESTORE:"},
        "temperature": {"source": "mem", "dtype": "number", "shape": []},
    }
    descriptor = run.compose_descriptor(name="primary", data_keys=data_keys)
    ids = [datum["datum_id"], *datum_page["datum_id"]]
    page = descriptor.compose_event_page(
        data={"frame": ids, "temperature": [290.0, 291.5, 293.0]},
        timestamps={"frame": [1.0, 2.0, 3.0], "temperature": [1.0, 2.0, 3.0]},
        seq_num=[1, 2, 3],
        time=[1.0, 2.0, 3.0],
        filled={"frame": [False, False, False]},
    )
    page["data"]["temperature"] = np.array([290.0, 291.5, 293.0])  # as a flyer gives it
    page["time"] = np.array([1.0, 2.0, 3.0])
    stop = run.compose_stop()
    return [
        ("start", run.start_doc),
        ("resource", resource.resource_doc),
        ("datum", datum),
        ("datum_page", datum_page),
        ("descriptor", descriptor.descriptor_doc),
        ("event_page", page),
        ("stop", stop),
    ]


async def run_every_kind_of_plan(RE: RunEngine, tmp_path: Path, *writers: Any) -> Docs:
    """Run real plans (events, numpy values, stream assets, event pages) into the writers,
    then the composed run; return every document, in order."""
    bl = await sim_beamline(instant=True, data_dir=tmp_path / "h5")
    await bl.flyer.num_points.set(25)
    await bl.flyer.page_size.set(10)
    docs: Docs = []
    for writer in writers:
        RE.subscribe(writer)
    collect = RE.subscribe(lambda name, doc: docs.append((name, doc)))
    await RE(scan([bl.det], bl.x, -1, 1, 3))
    await RE(count([Spectrometer()], 2))
    await RE(count([bl.area_detector, bl.det], 2))
    await RE(fly([bl.flyer]))
    RE.unsubscribe(collect)
    for name, doc in composed_run():
        docs.append((name, doc))
        for writer in writers:
            writer(name, doc)
    return docs


def by_run(docs: Docs) -> dict[str, Docs]:
    runs: dict[str, Docs] = {}
    current = ""
    for name, doc in docs:
        if name == "start":
            current = doc["uid"]
        runs.setdefault(current, []).append((name, doc))
    return runs


def as_json_data(value: Any) -> Any:
    """What JSON keeps of a value: arrays and tuples become lists, numpy scalars numbers."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {k: as_json_data(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [as_json_data(v) for v in value]
    return value


def assert_exact(original: Any, read: Any, where: str = "doc") -> None:
    """msgpack keeps arrays exactly; numpy scalars come back as Python numbers."""
    if isinstance(original, np.ndarray) and original.dtype != object:
        assert isinstance(read, np.ndarray), where
        assert read.dtype == original.dtype, where
        assert read.shape == original.shape, where
        np.testing.assert_array_equal(read, original)
    elif isinstance(original, np.generic):
        assert type(read) is type(original.item()), where
        assert read == original.item(), where
    elif isinstance(original, dict):
        assert isinstance(read, dict), where
        assert set(read) == set(original), where
        for key in original:
            assert_exact(original[key], read[key], f"{where}[{key!r}]")
    elif isinstance(original, list | tuple):
        assert isinstance(read, list), where
        assert len(read) == len(original), where
        for i, (a, b) in enumerate(zip(original, read, strict=True)):
            assert_exact(a, b, f"{where}[{i}]")
    else:
        assert read == original, where
        assert isinstance(read, type(original)) or isinstance(original, str), where


async def test_every_document_type_round_trips_through_both_formats(
    RE: RunEngine, tmp_path: Path
) -> None:
    jsonl, msgpack = JSONLinesWriter(tmp_path / "jsonl"), MsgpackWriter(tmp_path / "msgpack")
    docs = await run_every_kind_of_plan(RE, tmp_path, jsonl, msgpack)
    assert {name for name, _ in docs} == EVERY_TYPE
    runs = by_run(docs)
    assert set(jsonl.paths) == set(msgpack.paths) == set(runs)
    for uid, originals in runs.items():
        assert jsonl.paths[uid] == tmp_path / "jsonl" / f"{uid}.jsonl"
        assert msgpack.paths[uid] == tmp_path / "msgpack" / f"{uid}.msgpack"
        from_json = list(read_jsonl(jsonl.paths[uid]))
        assert from_json == [(name, as_json_data(doc)) for name, doc in originals]
        from_msgpack = list(read_msgpack(msgpack.paths[uid]))
        assert [name for name, _ in from_msgpack] == [name for name, _ in originals]
        for (name, original), (_, read) in zip(originals, from_msgpack, strict=True):
            assert_exact(original, read, name)


@pytest.fixture(params=["msgpack", "msgpack_numpy.patch()"])
def msgpack_as(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """msgpack as it comes, or as bluesky-kafka leaves it (it patches the package's names
    with msgpack_numpy's on import); put back after the test."""
    if request.param != "msgpack":
        import msgpack
        import msgpack_numpy

        for name in ("Packer", "Unpacker", "packb", "unpackb", "pack", "unpack", "dumps",
                     "loads", "dump", "load"):  # fmt: skip
            monkeypatch.setattr(msgpack, name, getattr(msgpack, name))
        msgpack_numpy.patch()
    return str(request.param)


def test_msgpack_keeps_dtype_byte_order_and_shape_of_any_array(
    tmp_path: Path, msgpack_as: str
) -> None:
    arrays = {
        "big_endian": np.arange(4, dtype=">f4"),
        "strings": np.array(["a", "bcd"]),
        "flags": np.array([True, False]),
        "zero_d": np.array(3.5),
        "transposed": np.arange(6, dtype=np.uint16).reshape(2, 3).T,
        "records": np.array([(1, 2.0)], dtype=[("n", "<i2"), ("x", "<f8")]),
        "empty": np.zeros((0, 3)),
        "objects": np.array([1, "two"], dtype=object),
    }
    writer = MsgpackWriter(tmp_path)
    open_run(writer)
    writer("event", {"uid": "e1", "descriptor": "d1", "data": arrays})
    writer("stop", {"uid": "s1", "run_start": "r1"})
    (_, _, (_, read), _) = list(read_msgpack(tmp_path / "r1.msgpack"))
    for key, original in arrays.items():
        if key == "objects":
            assert read["data"][key] == [1, "two"]  # object arrays become lists
        else:
            assert_exact(original, read["data"][key], key)


def open_run(writer: Any) -> Path:
    """Start run r1 with a descriptor d1 in ``writer``; return the run's file."""
    writer("start", {"uid": "r1", "time": 0.0})
    writer("descriptor", {"uid": "d1", "run_start": "r1", "data_keys": {}})
    return writer.directory / f"r1{writer.suffix}"


@pytest.mark.parametrize(("writer_class", "reader"), FORMATS)
def test_each_document_is_in_the_file_as_soon_as_it_is_written(
    tmp_path: Path, writer_class: Any, reader: Reader
) -> None:
    with writer_class(tmp_path) as writer:
        path = open_run(writer)
        assert [name for name, _ in reader(path)] == ["start", "descriptor"]  # still open
        writer("event", {"uid": "e1", "descriptor": "d1", "data": {"x": 1}})
        assert [name for name, _ in reader(path)] == ["start", "descriptor", "event"]


@pytest.mark.parametrize(("writer_class", "reader"), FORMATS)
def test_a_record_cut_off_by_a_crash_is_skipped(
    tmp_path: Path, writer_class: Any, reader: Reader
) -> None:
    with writer_class(tmp_path) as writer:
        path = open_run(writer)
        writer("event", {"uid": "e1", "descriptor": "d1", "data": {"x": list(range(50))}})
    whole = path.read_bytes()
    path.write_bytes(whole[:-20])  # the event was being written
    assert [name for name, _ in reader(path)] == ["start", "descriptor"]


def test_a_damaged_line_in_the_middle_is_reported_with_its_place(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('["start", {"uid": "r1"}]\n{not json\n["stop", {}]\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:2: not a JSON document record"):
        list(read_jsonl(path))
    path.write_text('["start", {"uid": "r1"}]\n["nonsense", {}]\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:2: not a \[name, document\] record"):
        list(read_jsonl(path))


async def test_interleaved_runs_each_get_their_own_file(tmp_path: Path) -> None:
    a, b = composed_run(), composed_run()
    writer = JSONLinesWriter(tmp_path)
    for pair in zip(a, b, strict=True):
        for name, doc in pair:
            writer(name, doc)
    uid_a, uid_b = a[0][1]["uid"], b[0][1]["uid"]
    assert [n for n, _ in read_jsonl(writer.paths[uid_a])] == [n for n, _ in a]
    assert [d.get("uid") for _, d in read_jsonl(writer.paths[uid_b])] == [
        d.get("uid") for _, d in b
    ]


def test_a_file_is_never_overwritten_and_strays_are_refused(tmp_path: Path) -> None:
    (start, *_rest) = composed_run()
    with JSONLinesWriter(tmp_path) as first:
        first(*start)
    with pytest.raises(FileExistsError, match="never overwritten"):
        JSONLinesWriter(tmp_path)(*start)
    writer = MsgpackWriter(tmp_path)
    with pytest.raises(ValueError, match="run_start 'nope' is not an open run"):
        writer("descriptor", {"uid": "d", "run_start": "nope", "data_keys": {}})
    with pytest.raises(ValueError, match="descriptor 'd' is not a document of a run"):
        writer("event", {"uid": "e", "descriptor": "d"})


async def test_a_table_replayed_from_a_file_matches_the_live_one(
    RE: RunEngine, tmp_path: Path
) -> None:
    bl = await sim_beamline(instant=True, data_dir=tmp_path)
    live: list[str] = []
    writer = MsgpackWriter(tmp_path / "docs")
    result = await RE(
        scan([bl.det], bl.x, -2, 2, 5), LiveTable(["x", "det"], out=live.append), writer
    )
    replayed: list[str] = []
    table = LiveTable(["x", "det"], out=replayed.append)
    for name, doc in read_msgpack(writer.paths[result.run_start_uids[0]]):
        table(name, doc)
    assert replayed == live
    assert len(live) == 1 + 3 + 5 + 2  # header, headings, rows, rule and footer
