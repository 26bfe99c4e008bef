"""scan_id continues across engines, processes and restarts on one catalog (issue #15).

With a catalog, a run's scan_id is one more than the highest the catalog has handed out
or stored, and than ``RE.md['scan_id']``; a ``scan_id_source`` of the user's wins; with
``catalog=None`` it is one more than ``RE.md['scan_id']``, as before.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import sys
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from acq.plans import count
from support import DocChecker, Signal

from acq import MetadataError, Msg, RunEngine
from acq.catalog import Catalog, CatalogError, DocumentStore


def runs(n: int = 1) -> Iterator[Msg]:
    """``n`` empty runs."""
    for _ in range(n):
        yield Msg("open_run")
        yield Msg("close_run")


def engine(url: str, checker: DocChecker, **kwargs: Any) -> RunEngine:
    RE = RunEngine(catalog=url, handle_sigint=False, **kwargs)
    RE.subscribe(checker, thread=False)
    return RE


def stored(url: str) -> dict[int | None, list[str]]:
    """scan_id -> uids of the runs stored with it, read back from the database."""
    catalog = Catalog(url)
    try:
        found: dict[int | None, list[str]] = {}
        for run in catalog:
            found.setdefault(run.scan_id, []).append(run.uid)
        return found
    finally:
        catalog.close()


class MetaLock:
    """Holds the lock a scan_id reservation needs, from a connection of the test's own."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.conn: Any = None

    async def take(self) -> None:
        if "postgresql" in self.url:
            import asyncpg

            self.conn = await asyncpg.connect(self.url.replace("postgresql+asyncpg", "postgresql"))
            await self.conn.execute("BEGIN")
            await self.conn.execute("LOCK TABLE catalog_meta IN ACCESS EXCLUSIVE MODE")
        else:
            self.conn = sqlite3.connect(self.url, isolation_level=None)
            self.conn.execute("BEGIN IMMEDIATE")

    async def release(self) -> None:
        if "postgresql" in self.url:
            await self.conn.execute("COMMIT")
            await self.conn.close()
        else:
            self.conn.execute("COMMIT")
            self.conn.close()


async def test_a_new_catalog_numbers_runs_from_one_and_writes_them_to_re_md(
    RE: RunEngine, checker: DocChecker, catalog_url: str
) -> None:
    await RE(runs(2))
    await RE(count([Signal("det", 1.0)], 2))
    assert [s["scan_id"] for s in checker.of("start")] == [1, 2, 3]
    assert RE.md["scan_id"] == 3
    uids = [s["uid"] for s in checker.of("start")]
    assert stored(catalog_url) == {3: [uids[2]], 2: [uids[1]], 1: [uids[0]]}


async def test_two_engines_in_one_process_get_distinct_increasing_scan_ids(
    catalog_url: str, checker: DocChecker
) -> None:
    engines = [engine(catalog_url, checker) for _ in range(2)]
    mine: list[list[tuple[str, int]]] = [[], []]
    for i, RE in enumerate(engines):
        RE.subscribe(
            lambda name, doc, i=i: name == "start" and mine[i].append((doc["uid"], doc["scan_id"]))
        )

    await asyncio.gather(*(RE(runs(6)) for RE in engines))  # their open_runs interleave

    ids = [[scan_id for _, scan_id in runs_of] for runs_of in mine]
    assert [len(each) for each in ids] == [6, 6]
    assert all(each == sorted(set(each)) for each in ids), ids  # increasing, per engine
    assert sorted(ids[0] + ids[1]) == list(range(1, 13))
    assert [RE.md["scan_id"] for RE in engines] == [ids[0][-1], ids[1][-1]]
    by_id = stored(catalog_url)
    catalog = Catalog(catalog_url)
    try:
        for uid, scan_id in mine[0] + mine[1]:
            assert by_id[scan_id] == [uid]
            assert catalog[scan_id].uid == uid  # catalog[scan_id] names one run
    finally:
        catalog.close()


async def test_concurrent_reservations_never_hand_out_one_number_twice(catalog_url: str) -> None:
    catalog = Catalog(catalog_url)
    try:
        reserved = await asyncio.gather(*(catalog.next_scan_id() for _ in range(40)))
    finally:
        catalog.close()
    assert sorted(reserved) == list(range(1, 41))


CHILD = """
import asyncio, json, sys
from acq import Msg, RunEngine

def runs(n):
    for _ in range(n):
        yield Msg("open_run")
        yield Msg("close_run")

async def main():
    url, n = sys.argv[1], int(sys.argv[2])
    engines = [RunEngine(catalog=url, handle_sigint=False) for _ in range(2)]
    mine = [[], []]
    for i, RE in enumerate(engines):
        RE.subscribe(lambda name, doc, i=i: name == "start" and mine[i].append(
            [doc["uid"], doc["scan_id"]]))
    await asyncio.to_thread(len, engines[0].catalog)  # the database is open: tables made
    print("ready", flush=True)
    await asyncio.to_thread(sys.stdin.readline)
    await asyncio.gather(*(RE(runs(n)) for RE in engines))
    print(json.dumps(mine), flush=True)

asyncio.run(main())
"""


async def test_processes_running_engines_concurrently_never_share_a_scan_id(
    catalog_url: str,
) -> None:
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            CHILD,
            catalog_url,
            "5",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for _ in range(3)
    ]
    try:
        for process in processes:  # every child waits, its catalog open, until all are
            assert process.stdout is not None
            line = await asyncio.wait_for(process.stdout.readline(), 60)
            assert line == b"ready\n", line
        for process in processes:
            assert process.stdin is not None
            process.stdin.write(b"go\n")
            await process.stdin.drain()
        outputs = [await asyncio.wait_for(p.communicate(), 60) for p in processes]
    finally:
        for process in processes:
            if process.returncode is None:
                process.kill()
                await process.wait()
    reported: list[tuple[str, int]] = []
    for process, (out, err) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, err.decode()
        for engine_runs in json.loads(out):
            ids = [scan_id for _, scan_id in engine_runs]
            assert len(ids) == 5, ids
            assert ids == sorted(set(ids)), ids  # increasing, per engine
            reported += [(uid, scan_id) for uid, scan_id in engine_runs]
    assert sorted(scan_id for _, scan_id in reported) == list(range(1, 31))
    assert stored(catalog_url) == {scan_id: [uid] for uid, scan_id in reported}


async def test_a_new_engine_on_the_same_catalog_continues(
    catalog_url: str, checker: DocChecker
) -> None:
    first = engine(catalog_url, checker)
    await first(runs(2))
    assert first.catalog is not None
    first.catalog.close()  # as if the session ended: connections closed

    again = engine(catalog_url, checker)  # a fresh RE.md, no scan_id in it
    assert "scan_id" not in again.md
    await again(runs(1))
    assert [s["scan_id"] for s in checker.of("start")] == [1, 2, 3]
    assert again.md["scan_id"] == 3


async def test_a_scan_id_bumped_in_re_md_is_honoured_and_numbers_never_go_back(
    catalog_url: str, checker: DocChecker
) -> None:
    RE, other = engine(catalog_url, checker), engine(catalog_url, checker)
    await RE(runs(1))
    RE.md["scan_id"] = 1000
    await RE(runs(1))
    await other(runs(1))  # its RE.md knows nothing of 1000: the catalog does
    RE.md["scan_id"] = 5  # lower than the catalog's: ignored, the catalog goes on
    await RE(runs(1))
    assert [s["scan_id"] for s in checker.of("start")] == [1, 1001, 1002, 1003]
    assert (RE.md["scan_id"], other.md["scan_id"]) == (1003, 1002)


async def test_a_scan_id_in_re_md_that_is_no_integer_is_refused_and_reserves_nothing(
    catalog_url: str, checker: DocChecker
) -> None:
    RE = engine(catalog_url, checker)
    RE.md["scan_id"] = "seven"
    with pytest.raises(MetadataError, match=r"RE.md\['scan_id'\]"):
        await RE(runs(1))
    assert checker.docs == []
    del RE.md["scan_id"]
    await RE(runs(1))
    assert [s["scan_id"] for s in checker.of("start")] == [1]


async def test_runs_numbered_elsewhere_count_towards_the_next_scan_id(
    catalog_url: str, checker: DocChecker
) -> None:
    """Runs stored by an older acq, by a user's scan_id_source or with the plan's own
    scan_id are in the catalog too: the next number is above all of them."""
    store = DocumentStore(catalog_url)
    store.write("start", {"uid": "from-before", "time": 1.0, "scan_id": 41})
    store.flush()
    RE = engine(catalog_url, checker)
    await RE(runs(1))
    facility = engine(catalog_url, checker, scan_id_source=lambda md: 500)
    await facility(runs(1))
    await RE(runs(1))
    await RE(runs(1), scan_id=900)  # the call's scan_id wins for that run (502 is a gap)
    await RE(runs(1))
    assert [s["scan_id"] for s in checker.of("start")] == [42, 500, 501, 900, 901]
    store.close()


async def test_a_user_scan_id_source_wins_over_the_catalog(
    catalog_url: str, checker: DocChecker
) -> None:
    asked: list[dict[str, Any]] = []

    async def facility(md: dict[str, Any]) -> int:
        asked.append(md)
        return 7

    RE = engine(catalog_url, checker, scan_id_source=facility)
    RE.md["scan_id"] = 100
    await RE(runs(2))
    assert [s["scan_id"] for s in checker.of("start")] == [7, 7]
    assert [md["scan_id"] for md in asked] == [100, 7]
    assert RE.md["scan_id"] == 7
    assert stored(catalog_url).keys() == {7}


async def test_without_a_catalog_scan_id_comes_from_re_md_as_before(checker: DocChecker) -> None:
    engines = [RunEngine(catalog=None, handle_sigint=False) for _ in range(2)]
    for RE in engines:
        RE.subscribe(checker, thread=False)
        await RE(runs(2))
    engines[0].md["scan_id"] = 41
    await engines[0](runs(1))
    engines[1].md.clear()
    await engines[1](runs(1))
    assert [s["scan_id"] for s in checker.of("start")] == [1, 2, 1, 2, 42, 1]


async def test_the_engine_loop_runs_on_while_a_reservation_waits_for_the_database(
    RE: RunEngine, checker: DocChecker, catalog_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    await RE(runs(1))  # the tables exist
    assert RE.catalog is not None
    reserve = RE.catalog.next_scan_id
    asked = asyncio.Event()

    async def watched(at_least: int = 1) -> int:
        asked.set()
        return await reserve(at_least)

    monkeypatch.setattr(RE.catalog, "next_scan_id", watched)
    lock = MetaLock(catalog_url)
    await lock.take()
    try:
        second = asyncio.create_task(RE(runs(1)))
        await asyncio.wait_for(asked.wait(), 30)
        # if the reservation blocked this loop, nothing here would run until it gave up
        assert not second.done()
    finally:
        await lock.release()
    await second
    assert [s["scan_id"] for s in checker.of("start")] == [1, 2]


async def test_a_catalog_that_cannot_number_a_run_refuses_it_before_anything_moves(
    tmp_path: Path, checker: DocChecker
) -> None:
    url = str(tmp_path / "catalog.db")
    RE = engine(url, checker)
    await RE(runs(1))
    with closing(sqlite3.connect(url)) as conn, conn:
        conn.execute("UPDATE catalog_meta SET value = 'many' WHERE key = 'last_scan_id'")
    det = Signal("det", 1.0)
    with pytest.raises(CatalogError, match=r"'many' as its last scan_id.*'last_scan_id'"):
        await RE(count([det], 2))
    assert [entry for entry in det.log if entry[0] == "read"] == []
    assert [s["scan_id"] for s in checker.of("start")] == [1]
    assert RE.catalog is not None
    RE.catalog.close()
