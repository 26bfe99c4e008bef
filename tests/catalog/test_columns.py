"""Event Pages stored as column chunks: exact replay, 24 bytes a point, old catalogs."""

from __future__ import annotations

import json
import math
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from acq.devices.sim import SimBeamline
from acq.plans import count, fly
from catalog_helpers import frames_from_documents
from hypothesis import given, settings
from hypothesis import strategies as st
from support import DocChecker, Signal

from acq import Msg, RunEngine
from acq._uid import EventUids
from acq.catalog import Catalog
from acq.catalog._columns import decode, encode


def exact(doc: Any) -> str:
    """JSON text that tells 1 from 1.0 and True from 1 (what a replay must keep)."""
    return json.dumps(doc, sort_keys=True, default=lambda o: o.tolist())


# -- the codec -----------------------------------------------------------------------------

_scalars = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.booleans(),
    st.text(max_size=5),
    st.none(),
)


@st.composite
def pages(draw: st.DrawFn) -> dict[str, Any]:
    """Event Pages as devices and other tools make them: uniform columns and odd ones."""
    n = draw(st.integers(min_value=1, max_value=12))

    def column() -> list[Any]:
        kind = draw(st.sampled_from(["float", "int", "bool", "mixed", "nested"]))
        if kind == "float":
            return draw(st.lists(st.floats(), min_size=n, max_size=n))
        if kind == "int":
            return draw(st.lists(st.integers(-(2**70), 2**70), min_size=n, max_size=n))
        if kind == "bool":
            return draw(st.lists(st.booleans(), min_size=n, max_size=n))
        if kind == "nested":
            return draw(st.lists(st.lists(st.floats(), max_size=3), min_size=n, max_size=n))
        return draw(st.lists(_scalars, min_size=n, max_size=n))

    time = draw(st.lists(st.floats(0, 2e9), min_size=n, max_size=n))
    first = draw(st.integers(1, 1000))
    counted = draw(st.booleans())
    if counted:
        uids = EventUids()
        uids.next = first
        uid = uids.take(n)
    else:
        uid = [f"uid-{i}-{draw(st.text(max_size=3))}" for i in range(n)]
    seq = list(range(first, first + n)) if draw(st.booleans()) else column()
    keys = draw(st.lists(st.sampled_from(["a", "b", "c"]), unique=True, max_size=3))
    data = {k: column() for k in keys}
    same = draw(st.booleans())
    timestamps = {k: (list(time) if same else column()) for k in keys}
    filled = {k: [False] * n if draw(st.booleans()) else column() for k in keys[:1]}
    return {
        "descriptor": "d-uid",
        "time": time,
        "seq_num": seq,
        "uid": uid,
        "data": data,
        "timestamps": timestamps,
        "filled": filled,
    }


@given(pages())
@settings(max_examples=300, deadline=None)
def test_a_page_decodes_to_exactly_what_was_encoded(page: dict[str, Any]) -> None:
    header, blob = encode(page)
    json.dumps(header)  # the header is JSON (the body of the row)
    assert exact(decode(header, blob)) == exact(page)


def test_numbers_of_one_type_go_to_the_blob_and_the_rest_stays_json() -> None:
    n = 1000
    uids = EventUids()
    time = [1e9 + i for i in range(n)]
    page = {
        "descriptor": "d",
        "time": time,
        "seq_num": list(range(1, n + 1)),
        "uid": uids.take(n),
        "data": {"x": [float(i) for i in range(n)], "mixed": [1, 2.5] * (n // 2)},
        "timestamps": {"x": list(time), "mixed": list(time)},
        "filled": {"x": [False] * n},
    }
    header, blob = encode(page)
    fields = header["fields"]
    assert fields["seq_num"] == {"range": 1}
    assert fields["uid"] == {"uids": uids.prefix, "first": 1}
    assert fields["timestamps.x"] == {"same": "time"}
    assert fields["filled.x"] == {"fill": False}
    assert "json" in fields["data.mixed"]  # 1 and 2.5: a float column would replay 1.0
    assert len(blob) == 2 * 8 * n  # time and x
    assert len(json.dumps(header)) < len(json.dumps(page["data"]["mixed"])) + 600


def test_uids_that_only_look_counted_stay_as_they_are() -> None:
    uids = EventUids().take(4)
    gap = [*uids[:2], uids[3], uids[2]]  # out of order
    cut = [uids[0][:-1], uids[0][-1] + uids[1], *uids[2:]]  # the same text, cut elsewhere
    for case in (gap, cut):
        header, blob = encode({"time": [0.0] * 4, "seq_num": [1, 2, 3, 4], "uid": case})
        assert "json" in header["fields"]["uid"]
        assert decode(header, blob)["uid"] == case


# -- in the catalog ----------------------------------------------------------------------------


async def test_a_fly_scan_is_stored_as_columns_and_replays_exactly(
    RE: RunEngine, catalog_url: str, beamline: SimBeamline, checker: DocChecker
) -> None:
    points = 5000
    await beamline.flyer.num_points.set(points)
    await RE(fly([beamline.flyer]))
    assert RE.catalog is not None
    run = RE.catalog[-1]
    assert exact(list(run.documents())) == exact(checker.docs)
    data = run["flyer"].read()
    pages = [d for n, d in checker.docs if n == "event_page"]
    for key in pages[0]["data"]:
        np.testing.assert_array_equal(data[key], np.concatenate([p["data"][key] for p in pages]))
    np.testing.assert_array_equal(data.time, np.concatenate([p["time"] for p in pages]))
    data[next(iter(data))][0] = math.pi  # arrays read back are the caller's to change
    if not catalog_url.startswith("postgresql"):
        with sqlite3.connect(catalog_url) as db:
            (stored,) = db.execute(
                "SELECT sum(length(body)) + sum(coalesce(length(columns), 0)) FROM documents"
                " WHERE name = 'event_page'"
            ).fetchone()
        columns = 1 + len(pages[0]["data"])  # time and the data keys, 8 bytes each
        assert stored < 1.1 * 8 * columns * points, stored


async def test_step_scan_events_of_every_type_replay_exactly(
    RE: RunEngine, checker: DocChecker
) -> None:
    words, flag, counter = Signal("words", "a"), Signal("flag", True), Signal("counter", 3)
    await RE(count([words, flag, counter], 5))
    assert RE.catalog is not None
    assert exact(list(RE.catalog[-1].documents())) == exact(checker.docs)
    data = RE.catalog[-1].primary.read()
    assert data["words"].tolist() == ["a"] * 5
    assert data["counter"].tolist() == [3] * 5


# -- a catalog written by acq before column chunks ------------------------------------------

_VERSION_1 = """
CREATE TABLE runs (id INTEGER PRIMARY KEY, uid VARCHAR(80) NOT NULL UNIQUE, scan_id BIGINT,
  time FLOAT NOT NULL, plan_name TEXT, start JSON NOT NULL, stop_time FLOAT,
  exit_status VARCHAR(32), stop JSON);
CREATE TABLE documents (run_uid VARCHAR(80) NOT NULL, seq INTEGER NOT NULL,
  name VARCHAR(32) NOT NULL, descriptor VARCHAR(80), body TEXT NOT NULL,
  PRIMARY KEY (run_uid, seq));
CREATE TABLE catalog_meta (key VARCHAR(64) PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO catalog_meta VALUES ('schema', '1');
"""


async def test_a_version_1_catalog_is_upgraded_and_its_runs_still_read(
    tmp_path: Path, checker: DocChecker
) -> None:
    path = tmp_path / "old.db"
    RE = RunEngine(catalog=None, handle_sigint=False)
    RE.subscribe(checker, thread=False)
    await RE(count([Signal("det", 2.0)], 3))
    docs = [(n, json.loads(exact(d))) for n, d in checker.docs]
    start, stop = docs[0][1], docs[-1][1]
    with sqlite3.connect(path) as db:
        db.executescript(_VERSION_1)
        db.execute(
            "INSERT INTO runs (uid, scan_id, time, plan_name, start, stop_time, exit_status, stop)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (start["uid"], 1, start["time"], "count", json.dumps(start), stop["time"], "success",
             json.dumps(stop)),
        )  # fmt: skip
        db.executemany(
            "INSERT INTO documents VALUES (?, ?, ?, ?, ?)",
            [(start["uid"], i, n, d.get("descriptor"), json.dumps(d)) for i, (n, d) in
             enumerate(docs)],
        )  # fmt: skip
    catalog = Catalog(str(path))
    old = catalog[start["uid"]]
    assert list(old.documents()) == docs
    assert old.primary.read()["det"].tolist() == [2.0] * 3
    storing = RunEngine(catalog=str(path), handle_sigint=False)
    await storing(count([Signal("det", 5.0)], 2))
    assert storing.catalog is not None
    assert storing.catalog[-1].primary.read()["det"].tolist() == [5.0] * 2
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT value FROM catalog_meta WHERE key = 'schema'").fetchone() == (
            "2",
        )
    storing.catalog.close()
    catalog.close()


@pytest.mark.parametrize("version", ["3", "x"])
async def test_a_catalog_of_an_unknown_version_is_refused_by_name(
    tmp_path: Path, version: str
) -> None:
    path = tmp_path / "future.db"
    with sqlite3.connect(path) as db:
        db.executescript(_VERSION_1.replace("'schema', '1'", f"'schema', '{version}'"))
    with pytest.raises(Exception, match=f"schema version {version}"):
        list(Catalog(str(path)))


# -- a stream of Stream Datums only ----------------------------------------------------------


async def test_a_flown_area_detector_reads_back_its_frames_lazily(
    RE: RunEngine, beamline: SimBeamline, checker: DocChecker, tmp_path: Path
) -> None:
    from acq.plans import stubs
    from ophyd_async.core import TriggerInfo

    from acq.catalog import ExternalArray, export_nexus

    det = beamline.area_detector
    frames = 4

    async def flown() -> Any:
        yield stubs.stage(det)
        yield Msg("open_run")
        yield Msg("prepare", det, TriggerInfo(number_of_events=frames, livetime=0.002), group="p")
        yield Msg("wait", None, group="p")
        yield Msg("kickoff", det, group="k")
        yield Msg("wait", None, group="k")
        yield Msg("complete", det, group="c")
        yield Msg("wait", None, group="c")
        yield Msg("declare_stream", None, det, name="area_detector", collect=True)
        yield Msg("collect", det, name="area_detector")
        yield Msg("close_run")
        yield stubs.unstage(det)

    await RE(flown())
    assert RE.catalog is not None
    assert not checker.of("event")  # Stream Datums only
    assert not checker.of("event_page")
    run = RE.catalog[-1]
    data = run.area_detector.read()
    assert data.seq_num.tolist() == list(range(1, frames + 1))
    image = data[det.name]
    assert isinstance(image, ExternalArray)  # nothing read yet
    expected = frames_from_documents(checker.docs, det.name)
    assert len(image) == frames == len(expected)
    np.testing.assert_array_equal(np.asarray(image), np.stack(expected))
    np.testing.assert_array_equal(np.asarray(image[2]), expected[2])
    assert np.isnan(data.time).all()  # Stream Datums carry no times
    path = export_nexus(run, tmp_path / "flown.nxs")
    import h5py

    with h5py.File(path, "r") as f:
        assert f[f"entry/area_detector/{det.name}"].shape[0] == frames
