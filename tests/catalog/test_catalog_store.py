"""The store writes every document of every run; the catalog gives the data back."""

from __future__ import annotations

import asyncio
import sqlite3
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from acq.devices.sim import SimBeamline
from acq.plans import count, fly, scan
from catalog_helpers import Spectrum, frames_from_documents, plain
from support import DocChecker, Signal

from acq import Msg, RunEngine, SubscriberError
from acq.catalog import Catalog, CatalogError, DocumentStore, ExternalArray

TESTS = str(Path(__file__).resolve().parent.parent)


def events_of(
    docs: list[tuple[str, dict[str, Any]]], stream: str = "primary"
) -> list[dict[str, Any]]:
    descriptors = {d["uid"] for n, d in docs if n == "descriptor" and d["name"] == stream}
    return [d for n, d in docs if n == "event" and d["descriptor"] in descriptors]


async def test_a_scan_reads_back_equal_to_what_was_measured(
    RE: RunEngine, beamline: SimBeamline, checker: DocChecker
) -> None:
    bl = beamline
    result = await RE(scan([bl.det, bl.area_detector], bl.x, -2, 2, 5), sample="Si")
    assert RE.catalog is not None
    run = RE.catalog[-1]
    assert run.uid == result.run_start_uids[0]
    assert run.streams == ["primary"]
    events = events_of(checker.docs)
    data = run.primary.read()

    assert data.seq_num.tolist() == [e["seq_num"] for e in events] == [1, 2, 3, 4, 5]
    assert data.time.tolist() == [e["time"] for e in events]
    for key in ("x", "det"):
        assert data[key].tolist() == [e["data"][key] for e in events]
        assert data.timestamps[key].tolist() == [e["timestamps"][key] for e in events]
    frames = data["area_detector"]
    assert isinstance(frames, ExternalArray)
    expected = frames_from_documents(checker.docs, "area_detector")
    assert frames.shape == (5, *expected[0].shape)
    for i in range(5):
        np.testing.assert_array_equal(frames[i], expected[i])
    np.testing.assert_array_equal(
        np.asarray(data["area_detector-sum"]),
        np.array(frames_from_documents(checker.docs, "area_detector-sum")),
    )
    assert [d["uid"] for d in data.descriptors] == [
        d["uid"] for n, d in checker.docs if n == "descriptor"
    ]
    assert run.start == plain(checker.of("start")[0])
    assert run.stop == plain(checker.of("stop")[0])
    assert run.exit_status == "success"


async def test_documents_replay_in_order_equal_to_the_emitted_ones(
    RE: RunEngine, beamline: SimBeamline, checker: DocChecker
) -> None:
    bl = beamline
    await RE(scan([bl.det, bl.area_detector], bl.x, -1, 1, 3))
    await RE(count([bl.det, bl.edge], 4))
    assert RE.catalog is not None
    for run, uid in zip(RE.catalog, reversed([d["uid"] for d in checker.of("start")]), strict=True):
        assert run.uid == uid
        emitted = []
        inside = False
        for name, doc in checker.docs:
            inside = inside or (name == "start" and doc["uid"] == uid)
            if inside:
                emitted.append((name, plain(doc)))
            if name == "stop" and doc["run_start"] == uid:
                break
        assert list(run.documents()) == emitted


async def test_replayed_documents_drive_a_live_table_and_pass_the_schema(
    RE: RunEngine, beamline: SimBeamline, checker: DocChecker
) -> None:
    from acq.callbacks import LiveTable

    live: list[str] = []
    await RE(scan([beamline.det], beamline.x, -1, 1, 3), LiveTable(["x", "det"], out=live.append))
    assert RE.catalog is not None
    replayed: list[str] = []
    again = DocChecker()
    RE.catalog[-1].replay(LiveTable(["x", "det"], out=replayed.append), again)
    again.assert_clean()
    assert again.names() == checker.names()
    assert replayed == live
    rows = [
        line.split("|")[1:-1] for line in replayed if line.startswith("|") and "seq" not in line
    ]
    assert [(r[0].strip(), r[2].strip(), r[3].strip()) for r in rows] == [
        ("1", "-1.000", "0.607"),
        ("2", "0.000", "1.000"),
        ("3", "1.000", "0.607"),
    ]


async def test_fly_scan_pages_are_stored_and_read_back(
    RE: RunEngine, beamline: SimBeamline, checker: DocChecker
) -> None:
    await beamline.flyer.num_points.set(1000)
    await RE(fly([beamline.flyer]))
    assert RE.catalog is not None
    data = RE.catalog[-1]["flyer"].read()
    pages = [d for n, d in checker.docs if n == "event_page"]
    expected = np.concatenate([np.asarray(p["data"]["flyer-intensity"]) for p in pages])
    assert len(expected) == 1000
    np.testing.assert_array_equal(data["flyer-intensity"], expected)
    assert data.seq_num.tolist() == list(range(1, 1001))


async def test_large_arrays_go_to_hdf5_and_small_ones_stay_in_the_database(
    RE: RunEngine, catalog_url: str, checker: DocChecker
) -> None:
    big, small = Spectrum("spectrum", 2000), Spectrum("roi", 5)
    await RE(count([big, small], 7))
    assert RE.catalog is not None
    run = RE.catalog[-1]
    data = run.primary.read()
    assert isinstance(data["spectrum"], ExternalArray)
    np.testing.assert_array_equal(
        np.asarray(data["spectrum"]), np.repeat(np.arange(1.0, 8.0), 2000).reshape(7, 2000)
    )
    assert isinstance(data["roi"], np.ndarray)
    assert data["roi"].tolist() == [[float(i)] * 5 for i in range(1, 8)]
    files = sorted((RE.catalog.store.location.files_dir / run.uid).glob("*.h5"))
    assert len(files) == 1  # one file of 7 spectra
    stored = list(run.documents())
    assert max(len(str(doc)) for _, doc in stored) < 4000  # no 2000-number array inline
    descriptor = next(doc for name, doc in stored if name == "descriptor")
    assert descriptor["data_keys"]["spectrum"]["external"] == "STREAM:"
    assert "external" not in descriptor["data_keys"]["roi"]
    emitted = next(d for n, d in checker.docs if n == "descriptor")
    assert "external" not in emitted["data_keys"]["spectrum"]  # the engine's own is untouched


async def test_a_run_is_stored_before_the_engine_returns(catalog_url: str, tmp_path: Path) -> None:
    """A child process exits without any cleanup right after ``await RE(...)``."""
    script = tmp_path / "child.py"
    script.write_text(
        "import asyncio, os, sys\n"
        "from acq import RunEngine\n"
        "from acq.plans import count\n"
        "sys.path.insert(0, sys.argv[2])\n"
        "from support import Signal\n"
        "async def main():\n"
        "    RE = RunEngine(catalog=sys.argv[1])\n"
        "    await RE(count([Signal('det', 3.0)], 50), tag='hard-exit')\n"
        "    os._exit(0)  # no atexit, no flush: only what the engine waited for\n"
        "asyncio.run(main())\n"
    )
    process = await asyncio.create_subprocess_exec(sys.executable, str(script), catalog_url, TESTS)
    assert await asyncio.wait_for(process.wait(), 60) == 0
    catalog = Catalog(catalog_url)
    try:
        run = catalog.search(tag="hard-exit")[-1]
        assert run.exit_status == "success"
        assert run.primary.read()["det"].tolist() == [3.0] * 50
    finally:
        catalog.close()


async def test_an_unstorable_value_fails_that_run_and_not_the_next(catalog_url: str) -> None:
    RE = RunEngine(catalog=catalog_url, handle_sigint=False)
    odd = Signal("odd", 1.0)
    odd.value = object()  # type: ignore[assignment]
    with pytest.raises(SubscriberError, match="odd"):
        await RE(count([odd], 3))
    good = await RE(count([Signal("fine", 2.0)], 2))
    assert good.exit_status == "success"
    assert RE.catalog is not None
    assert RE.catalog[-1].primary.read()["fine"].tolist() == [2.0, 2.0]
    failed = RE.catalog[-2]
    assert failed.exit_status == "incomplete"  # its Stop could not be stored either
    RE.catalog.close()


def drop_documents_table(url: str) -> None:
    if "postgresql" in url:
        import asyncpg

        async def drop() -> None:
            dsn = url.replace("postgresql+asyncpg", "postgresql")
            conn = await asyncpg.connect(dsn)
            await conn.execute("DROP TABLE documents")
            await conn.close()

        asyncio.run(drop())
    else:
        with sqlite3.connect(url) as conn:
            conn.execute("DROP TABLE documents")


async def test_a_database_failure_mid_run_fails_the_run(RE: RunEngine, catalog_url: str) -> None:
    det = Signal("det", 1.0)

    async def plan() -> Any:
        yield Msg("open_run")
        for i in range(20):
            if i == 5:
                await asyncio.to_thread(drop_documents_table, catalog_url)
            yield Msg("create", name="primary")
            yield Msg("read", det)
            yield Msg("save")
            yield Msg("null")
        yield Msg("close_run")

    with pytest.raises(SubscriberError, match="could not store run"):
        await RE(plan())


async def test_the_engine_runs_on_while_the_database_is_locked(
    RE: RunEngine, catalog_url: str
) -> None:
    """Events only queue: the plan runs through all its points while another connection
    holds the database's write lock, and only the Stop waits for the commit."""
    det = Signal("det", 1.0)
    lock = DatabaseLock(catalog_url)
    seen: dict[str, int] = {}

    async def plan() -> Any:
        yield Msg("open_run")  # its Start is committed before the lock is taken
        await asyncio.to_thread(lock.take)
        for _ in range(200):
            yield Msg("create", name="primary")
            yield Msg("read", det)
            yield Msg("save")
        seen["events committed while locked"] = await asyncio.to_thread(lock.count_events)
        await asyncio.to_thread(lock.release)
        yield Msg("close_run")

    result = await RE(plan())
    assert seen == {"events committed while locked": 0}
    assert RE.catalog is not None
    assert RE.catalog[result.run_start_uids[0]].primary.read()["det"].tolist() == [1.0] * 200


class DatabaseLock:
    """Holds the catalog's write lock from another connection (in a thread)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.loop: asyncio.AbstractEventLoop | None = None
        self.conn: Any = None

    def take(self) -> None:
        if "postgresql" in self.url:
            import asyncpg

            self.loop = asyncio.new_event_loop()
            dsn = self.url.replace("postgresql+asyncpg", "postgresql")
            self.conn = self.loop.run_until_complete(asyncpg.connect(dsn))
            self.loop.run_until_complete(self.conn.execute("BEGIN"))
            self.loop.run_until_complete(
                self.conn.execute("LOCK TABLE documents IN ACCESS EXCLUSIVE MODE")
            )
        else:
            self.conn = sqlite3.connect(self.url, isolation_level=None, check_same_thread=False)
            self.conn.execute("BEGIN IMMEDIATE")

    def count_events(self) -> int:
        sql = "SELECT count(*) FROM documents WHERE name IN ('event', 'events')"
        if self.loop is not None:
            return int(self.loop.run_until_complete(self.conn.fetchval(sql)))
        return int(self.conn.execute(sql).fetchone()[0])

    def release(self) -> None:
        if self.loop is not None:
            self.loop.run_until_complete(self.conn.execute("COMMIT"))
            self.loop.run_until_complete(self.conn.close())
            self.loop.close()
        else:
            self.conn.execute("COMMIT")
            self.conn.close()


async def test_two_engines_in_one_process_keep_their_runs_apart(
    catalog_url: str, checker: DocChecker
) -> None:
    engines = [RunEngine(catalog=catalog_url, handle_sigint=False) for _ in range(2)]
    mine: list[list[tuple[str, dict[str, Any]]]] = [[], []]
    assert engines[0].catalog is not None
    assert engines[1].catalog is not None
    assert engines[0].catalog.store is engines[1].catalog.store  # one writer per catalog

    async def run(i: int) -> str:
        det = Signal(f"det{i}", float(i))

        async def plan() -> Any:
            yield Msg("open_run", engine=i)
            for _ in range(300):
                yield Msg("create", name="primary")
                yield Msg("read", det)
                yield Msg("save")
                yield Msg("sleep", None, 0)
            yield Msg("close_run")

        result = await engines[i](plan(), lambda n, d: mine[i].append((n, plain(d))))
        return result.run_start_uids[0]

    uids = await asyncio.gather(run(0), run(1))
    catalog = engines[0].catalog
    try:
        for i, uid in enumerate(uids):
            assert list(catalog[uid].documents()) == mine[i]
            assert catalog.search(engine=i)[-1].uid == uid
    finally:
        catalog.close()


def test_a_run_engine_stores_in_the_default_catalog_without_configuration(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("ACQ_CATALOG", str(tmp_path / "mine.db"))
    RE = RunEngine()
    assert RE.catalog is not None
    assert RE.catalog.location.path == tmp_path / "mine.db"
    asyncio.run(RE(count([Signal("det", 1.0)], 2)))
    catalog = Catalog()  # the same default, read back elsewhere
    assert len(catalog) == 1
    assert catalog[-1].primary.read()["det"].tolist() == [1.0, 1.0]
    monkeypatch.delenv("ACQ_CATALOG")
    monkeypatch.setenv("ACQ_DATA_DIR", str(tmp_path / "data"))
    assert RunEngine().catalog.location.path == tmp_path / "data" / "catalog.db"  # type: ignore[union-attr]
    assert RunEngine(catalog=None).catalog is None
    RE.catalog.close()


def test_catalog_argument_forms(tmp_path: Path) -> None:
    store = DocumentStore(tmp_path / "a.db")
    assert RunEngine(catalog=store).catalog.store is store  # type: ignore[union-attr]
    catalog = Catalog(tmp_path / "b.db")
    assert RunEngine(catalog=catalog).catalog is catalog
    url = f"sqlite:///{tmp_path / 'c.db'}"
    assert RunEngine(catalog=url).catalog.location.path == tmp_path / "c.db"  # type: ignore[union-attr]
    with pytest.raises(TypeError, match="catalog="):
        RunEngine(catalog=42)
    with pytest.raises(CatalogError, match="in-memory"):
        RunEngine(catalog="sqlite:///:memory:")
    with pytest.raises(CatalogError, match="unsupported"):
        RunEngine(catalog="mongodb://user:secret@host/db")
    with pytest.raises(CatalogError) as info:
        RunEngine(catalog="mysql://user:secret@host/db")
    assert "secret" not in str(info.value)


async def test_a_catalog_that_cannot_be_opened_fails_the_run_before_it_starts(
    tmp_path: Path,
) -> None:
    blocker = tmp_path / "not-a-folder"
    RE = RunEngine(catalog=blocker / "catalog.db", handle_sigint=False)  # checked: fine
    blocker.write_text("a file where the catalog's folder should be")  # broken since
    det = Signal("det", 1.0)
    # the run's scan_id is reserved in the catalog first: that fails, naming the catalog
    with pytest.raises(CatalogError, match="cannot create the folder of the catalog"):
        await RE(count([det], 3))
    assert [entry for entry in det.log if entry[0] == "read"] == []


async def test_giving_up_on_a_commit_leaves_the_writer_working(catalog_url: str) -> None:
    store = DocumentStore(catalog_url)
    store.write("start", {"uid": "first", "time": 1.0, "scan_id": 1})
    store.flush()
    lock = DatabaseLock(catalog_url)
    await asyncio.to_thread(lock.take)
    stop = {"uid": "s", "run_start": "first", "time": 2.0, "exit_status": "success"}
    waiting = store("stop", stop)
    assert isinstance(waiting, asyncio.Future)
    waiting.cancel()  # e.g. the task awaiting the RunEngine was cancelled
    await asyncio.to_thread(lock.release)
    RE = RunEngine(catalog=store, handle_sigint=False)
    assert (await RE(count([Signal("det", 5.0)], 2))).exit_status == "success"
    assert RE.catalog is not None
    assert [run.exit_status for run in RE.catalog] == ["success", "success"]
    RE.catalog.close()
