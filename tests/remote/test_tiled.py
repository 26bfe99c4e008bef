"""The Tiled sink writes runs into a real ``tiled serve`` server, read back by tiled's client.

Runs are made by a RunEngine into a catalog; the documents go to the sink as a relay
sends them (``Outgoing`` numbered as ``Run.documents`` gives them), in batches.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from acq.devices.sim import SimBeamline, sim_beamline
from acq.plans import fly, scan
from acq.remote import Outgoing, Relay, SinkError
from acq.remote._tiled import TiledSink
from nats_checks import until
from tiled_server import TiledServer, free_port, tiled_server

from acq import RunEngine
from acq.catalog import Run

__all__ = ["tiled_server"]  # the fixture, imported to be found

# bluesky 1.15's TiledWriter calls tiled's append_partition(table, 0), whose argument order
# tiled >= 0.2 deprecates (it still accepts it); the warning is bluesky's to fix, not ours.
# A Tiled server takes 3 s to start here, 15 s on a busy machine: the first test waits.
pytestmark = [
    pytest.mark.filterwarnings("ignore:The order of arguments has changed:DeprecationWarning"),
    pytest.mark.timeout(120),
]


@pytest.fixture
async def beamline(tiled_server: TiledServer, tmp_path: Path) -> SimBeamline:
    """The sim beamline, writing its frames where the Tiled server may read them."""
    frames = tiled_server.data / tmp_path.name
    return await sim_beamline(instant=True, data_dir=frames, seed=1)


@pytest.fixture
async def sink(tiled_server: TiledServer, RE: RunEngine) -> AsyncIterator[TiledSink]:
    assert RE.catalog is not None
    s = TiledSink(tiled_server.url, RE.catalog, api_key=tiled_server.api_key)
    await s.open()
    yield s
    await s.close()


def outgoing(run: Run, start: int = 0) -> list[Outgoing]:
    """The run's documents from number ``start``, as the relay hands them to a sink."""
    return [
        Outgoing(run.uid, start + i, name, doc)
        for i, (name, doc) in enumerate(run.documents(start))
    ]


async def send_in_batches(sink: TiledSink, docs: list[Outgoing], size: int = 4) -> None:
    for i in range(0, len(docs), size):
        await sink.send(docs[i : i + size])


@contextlib.contextmanager
def read_back(server: TiledServer, uid: str) -> Iterator[Any]:
    """The run as tiled's own client reads it from the server."""
    from tiled.client import from_uri

    client = from_uri(server.url, api_key=server.api_key)
    try:
        yield client[uid]
    finally:
        client.context.close()


def assert_same_table(tiled_stream: Any, stream: Any, keys: list[str]) -> None:
    """The stream as tiled serves it equals the catalog's, key by key."""
    theirs = tiled_stream.read()
    ours = stream.read()
    np.testing.assert_array_equal(np.asarray(theirs["seq_num"]), np.asarray(ours.seq_num))
    np.testing.assert_array_equal(np.asarray(theirs["time"]), np.asarray(ours.time))
    for key in keys:
        np.testing.assert_array_equal(np.asarray(theirs[key]), np.asarray(ours[key]))
        np.testing.assert_array_equal(
            np.asarray(theirs[f"ts_{key}"]), np.asarray(ours.timestamps[key])
        )


async def test_a_step_scan_reads_back_from_tiled_equal_to_the_catalog(
    RE: RunEngine, beamline: SimBeamline, sink: TiledSink, tiled_server: TiledServer
) -> None:
    await RE(scan([beamline.det], beamline.x, -1, 1, 7), sample="Si")
    assert RE.catalog is not None
    run = RE.catalog[-1]
    await send_in_batches(sink, outgoing(run))

    with read_back(tiled_server, run.uid) as tiled_run:
        assert tiled_run.specs[0].name == "BlueskyRun"
        assert tiled_run.metadata["start"]["sample"] == "Si"
        assert tiled_run.metadata["start"]["uid"] == run.uid
        assert tiled_run.metadata["stop"]["exit_status"] == "success"
        assert list(tiled_run) == ["primary"]
        assert_same_table(tiled_run["primary"], run.primary, ["x", "det"])


async def test_a_fly_scan_reads_back_from_tiled_equal_to_the_catalog(
    RE: RunEngine, beamline: SimBeamline, sink: TiledSink, tiled_server: TiledServer
) -> None:
    await beamline.flyer.num_points.set(50)
    await RE(fly([beamline.flyer]))
    assert RE.catalog is not None
    run = RE.catalog[-1]
    docs = outgoing(run)
    assert "event_page" in [d.name for d in docs]
    await send_in_batches(sink, docs)

    with read_back(tiled_server, run.uid) as tiled_run:
        assert list(tiled_run) == ["flyer"]
        flyer = tiled_run["flyer"]
        assert_same_table(flyer, run["flyer"], ["flyer-intensity", "flyer-position"])
        assert len(flyer.read()["seq_num"]) == 50


async def test_an_area_detector_scan_serves_the_frames_from_the_hdf5_files(
    RE: RunEngine, beamline: SimBeamline, sink: TiledSink, tiled_server: TiledServer
) -> None:
    bl = beamline
    await RE(scan([bl.det, bl.area_detector], bl.x, -1, 1, 4))
    assert RE.catalog is not None
    run = RE.catalog[-1]
    await send_in_batches(sink, outgoing(run), size=5)

    assert_same_frames(tiled_server, run)

    # a restarted sink rewrites the run from the catalog: Tiled deletes its own copy of the
    # run but never the registered HDF5 files, so the frames are still there
    again = TiledSink(tiled_server.url, RE.catalog, api_key=tiled_server.api_key)
    await again.open()
    await again.send(outgoing(run, 3))
    await again.close()
    assert_same_frames(tiled_server, run)


def assert_same_frames(server: TiledServer, run: Run) -> None:
    ours = run.primary.read()
    with read_back(server, run.uid) as tiled_run:
        stream = tiled_run["primary"]
        frames = stream["area_detector"].read()
        assert frames.shape == (4, 240, 320)
        for i in range(4):
            np.testing.assert_array_equal(frames[i], np.asarray(ours["area_detector"][i]))
        np.testing.assert_array_equal(
            stream["area_detector-sum"].read(), np.asarray(ours["area_detector-sum"])
        )
        assert_same_table(stream, run.primary, ["x", "det"])


async def test_re_sent_documents_make_no_duplicates(
    RE: RunEngine, beamline: SimBeamline, sink: TiledSink, tiled_server: TiledServer
) -> None:
    await RE(scan([beamline.det], beamline.x, -1, 1, 6))
    assert RE.catalog is not None
    run = RE.catalog[-1]
    docs = outgoing(run)
    head, tail = docs[:5], docs[5:]
    await sink.send(head)
    await sink.send(head)  # the same batch again: the relay retried it
    await sink.send(docs[2:8])  # overlapping the last one
    await sink.send(tail)
    await sink.send(docs)  # the whole run again, after its Stop
    with read_back(tiled_server, run.uid) as tiled_run:
        assert len(tiled_run["primary"].read()["seq_num"]) == 6
        runs = len(tiled_run.parent)

    # a restarted relay and sink: the run resumes mid-way, then starts over from its Start
    for resent in (outgoing(run, 4), docs):
        again = TiledSink(tiled_server.url, RE.catalog, api_key=tiled_server.api_key)
        await again.open()
        await again.send(resent)
        await again.close()
        with read_back(tiled_server, run.uid) as tiled_run:
            assert_same_table(tiled_run["primary"], run.primary, ["x", "det"])
            assert len(tiled_run.parent) == runs


async def test_an_unreachable_tiled_is_a_sink_error_naming_the_url(
    RE: RunEngine, beamline: SimBeamline
) -> None:
    assert RE.catalog is not None
    url = f"http://127.0.0.1:{free_port()}"
    sink = TiledSink(url, RE.catalog, api_key="nothing")
    with pytest.raises(SinkError, match=url.replace(".", r"\.") + " could not be reached"):
        await sink.open()
    await RE(scan([beamline.det], beamline.x, -1, 1, 2))
    with pytest.raises(SinkError, match=r"127\.0\.0\.1"):
        await sink.send(outgoing(RE.catalog[-1]))
    await sink.close()
    with pytest.raises(ValueError, match="http:// or https://"):
        TiledSink("nats://127.0.0.1:4222", RE.catalog)
    with pytest.raises(ValueError, match="batch_size"):
        TiledSink(url, RE.catalog, batch_size=0)


async def test_a_wrong_api_key_is_a_sink_error(
    RE: RunEngine, beamline: SimBeamline, tiled_server: TiledServer
) -> None:
    assert RE.catalog is not None
    await RE(scan([beamline.det], beamline.x, -1, 1, 2))
    sink = TiledSink(tiled_server.url, RE.catalog, api_key="wrong0key")
    with pytest.raises(SinkError, match=re.escape(tiled_server.url)):
        await sink.send(outgoing(RE.catalog[-1]))
    await sink.close()


@contextlib.asynccontextmanager
async def black_hole() -> AsyncIterator[str]:
    """A server that takes connections and never answers: a Tiled that hangs."""
    held: list[asyncio.StreamWriter] = []

    async def hold(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_a_hanging_or_absent_tiled_never_holds_up_a_scan(
    RE: RunEngine, beamline: SimBeamline, tmp_path: Path
) -> None:
    assert RE.catalog is not None
    catalog = RE.catalog
    await RE(scan([beamline.det], beamline.x, -1, 1, 3))
    async with black_hole() as url:
        hung = Relay(catalog, TiledSink(url, catalog, timeout=30), max_backoff=0.5)
        task = asyncio.create_task(hung.run())
        # the relay is stuck on Tiled; scans go on, at their own pace, and are stored
        done = await RE(scan([beamline.det], beamline.x, -1, 1, 50))
        assert done.exit_status == "success"
        assert len(catalog[-1].primary.read()["det"]) == 50
        assert not task.done()
        assert hung.delivered == 0
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    # no Tiled at all while scanning: the catalog keeps the runs, Tiled gets them later
    server = TiledServer([tmp_path], tmp_path / "tiled.log")
    sink = TiledSink(server.url, catalog, api_key=server.api_key)
    late = Relay(catalog, sink, max_backoff=0.5)
    task = asyncio.create_task(late.run())
    uid = (await RE(scan([beamline.det], beamline.x, -1, 1, 5))).run_start_uids[0]
    try:
        await asyncio.to_thread(server.start)
        every = sum(len(list(run.documents())) for run in catalog)
        await until(lambda: late.delivered >= every, within=90)
        for run in catalog:  # every run, the ones from before Tiled was there too
            with read_back(server, run.uid) as tiled_run:
                assert_same_table(tiled_run["primary"], run.primary, ["x", "det"])
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        server.stop()
    assert uid in {run.uid for run in catalog}
