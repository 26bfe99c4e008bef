"""Stored data as numpy, pandas and xarray; files are read only when their data is used."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from acq.devices.sim import SimBeamline
from acq.plans import count, grid_scan, scan
from support import DocChecker, Signal

from acq import Msg, RunEngine
from acq.catalog import Catalog, CatalogError, DocumentStore, ExternalArray


def primary_events(checker: DocChecker) -> list[dict[str, Any]]:
    descriptors = {d["uid"] for d in checker.of("descriptor") if d["name"] == "primary"}
    return [e for e in checker.of("event") if e["descriptor"] in descriptors]


async def test_pandas_and_xarray_hold_the_measured_values(
    RE: RunEngine, beamline: SimBeamline, checker: DocChecker
) -> None:
    bl = beamline
    await RE(grid_scan([bl.det2d, bl.area_detector], bl.x, -1, 1, 3, bl.y, -1, 1, 2))
    assert RE.catalog is not None
    stream = RE.catalog[-1].primary
    events = primary_events(checker)
    frame = stream.to_pandas()
    assert list(frame.index) == [e["seq_num"] for e in events]
    assert list(frame.columns) == ["time", "det2d", "area_detector-sum", "x", "y"]
    for key in ("x", "y", "det2d"):
        assert frame[key].tolist() == [e["data"][key] for e in events]
    assert frame["time"].tolist() == [e["time"] for e in events]
    with_arrays = stream.to_pandas(arrays=True)
    assert with_arrays["area_detector"].iloc[0].shape == (240, 320)

    dataset = stream.to_xarray()
    assert dataset["det2d"].dims == ("time",)
    assert dataset["det2d"].values.tolist() == [e["data"]["det2d"] for e in events]
    assert dataset["x"].attrs["units"] == "mm"
    assert dataset["seq_num"].values.tolist() == list(range(1, 7))
    assert dataset["area_detector"].shape == (6, 240, 320)
    np.testing.assert_array_equal(
        dataset["area_detector"][2, 100:110, 5].values,
        np.asarray(stream.read()["area_detector"][2])[100:110, 5],
    )


async def test_frames_are_read_from_their_files_only_when_used(
    RE: RunEngine, beamline: SimBeamline, tmp_path: Path
) -> None:
    bl = beamline
    await RE(count([bl.det, bl.area_detector], 3))
    assert RE.catalog is not None
    data = RE.catalog[-1].primary.read()
    frames = data["area_detector"]
    assert isinstance(frames, ExternalArray)
    first = frames[0]
    assert first.shape == (240, 320)
    np.testing.assert_array_equal(frames[-1], np.asarray(frames)[2])
    np.testing.assert_array_equal(frames[0:2][1], np.asarray(frames)[1])
    np.testing.assert_array_equal(frames[1, 10:20, 30], np.asarray(frames)[1, 10:20, 30])
    (path,) = (tmp_path / "frames").glob("*.h5")
    path.unlink()
    data = RE.catalog[-1].primary.read()  # reading the stream does not open the files
    dataset = data.to_xarray()  # nor does making a Dataset
    assert len(data["det"]) == 3
    with pytest.raises(CatalogError, match="area_detector"):
        data["area_detector"][0]
    with pytest.raises(CatalogError, match="area_detector"):
        dataset["area_detector"].values  # noqa: B018


async def test_a_stream_whose_keys_change_fills_gaps(RE: RunEngine) -> None:
    a, b = Signal("a", 1.0), Signal("b", "text")

    def plan() -> Any:
        yield Msg("open_run")
        for objs in ([a], [a, b], [a]):
            yield Msg("create", name="primary")
            for obj in objs:
                yield Msg("read", obj)
            yield Msg("save")
        yield Msg("close_run")

    await RE(plan())
    assert RE.catalog is not None
    data = RE.catalog[-1].primary.read()
    assert len(data.descriptors) == 3
    assert data["a"].tolist() == [1.0, 1.0, 1.0]
    assert data["b"].tolist() == [None, "text", None]
    assert np.isnan(data.timestamps["b"][0])
    assert not np.isnan(data.timestamps["b"][1])


async def test_other_streams_and_configuration(RE: RunEngine, beamline: SimBeamline) -> None:
    from acq.plans.preprocessors import baseline_wrapper

    bl = beamline
    await RE(baseline_wrapper(scan([bl.det], bl.x, 0, 1, 2), [bl.beam_current]))
    assert RE.catalog is not None
    run = RE.catalog[-1]
    assert run.streams == ["baseline", "primary"]
    assert len(run.baseline.read()["beam_current"]) == 2
    assert run["primary"].config["det"]["det-sigma"] == 1.0
    with pytest.raises(AttributeError, match="no attribute or stream 'secondary'"):
        run.secondary  # noqa: B018
    with pytest.raises(KeyError, match="has no stream 'secondary'"):
        run["secondary"]


async def test_documents_from_a_number_skip_the_ones_before(
    RE: RunEngine, beamline: SimBeamline, checker: DocChecker
) -> None:
    # a packed row of Events, then Start/Descriptor/Stop rows: start inside and between
    await RE(count([beamline.det], num=5))
    assert RE.catalog is not None
    run = RE.catalog[-1]
    emitted = checker.docs
    assert list(run.documents()) == emitted
    for start in range(len(emitted) + 2):
        assert list(run.documents(start)) == emitted[start:]
        assert [pair async for pair in run.adocuments(start)] == emitted[start:]


async def test_a_growing_run_reads_on_from_where_the_last_read_ended(
    RE: RunEngine, beamline: SimBeamline, checker: DocChecker, catalog_url: str
) -> None:
    # the documents of a finished run, stored again as another run, in three parts
    await RE(count([beamline.det], num=12))
    emitted = checker.docs
    store = DocumentStore(catalog_url)
    first = emitted[0][1]["uid"]
    copy_start = {**emitted[0][1], "uid": first[:-4] + "copy"}
    renamed = [("start", copy_start)] + [
        (n, {**d, "run_start": copy_start["uid"]} if "run_start" in d else d)
        for n, d in emitted[1:]
    ]
    run = None
    for part in (renamed[:3], renamed[3:9], renamed[9:]):
        for name, doc in part:
            store.write(name, doc)
        await store.aflush()
        run = run or Catalog(store.location)[copy_start["uid"]]
        got = len(renamed[: renamed.index(part[-1]) + 1])
        assert list(run.documents()) == renamed[:got]  # from the start: all so far
        assert [p async for p in run.adocuments(got - 2)] == renamed[got - 2 : got]
    assert run is not None
    assert list(run.documents(4)) == renamed[4:]  # back before the remembered end
    store.close()
