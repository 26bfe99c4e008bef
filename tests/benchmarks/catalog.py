"""Catalog benchmark: write throughput, search time, read time -- SQLite and PostgreSQL.

``python -m tests.benchmarks.catalog [--quick] [--backends sqlite,postgresql]
[--postgres-url URL]`` (also run by ``python -m tests.benchmarks``):

* **write**: ``count`` on the trivial in-memory devices of the engine benchmark, N
  points, on a RunEngine storing into the catalog, against the same engine with
  ``catalog=None``. Events/s is N over the wall time of ``await RE(...)`` -- which
  returns only once the whole run is committed -- and the difference per event is
  what storing costs the engine's caller.
* **search**: 10 000 runs (realistic Start documents, written through the store), then
  the time to count the runs matching a nested key, to fetch the first page of them,
  a numeric range and a text search (best of 3).
* **read**: a 100 000-event run written by the engine, then ``run.primary.read()``
  and ``.to_pandas()`` (best of 3).
* **fly**: a 1 000 000-point fly scan of the sim ``Flyer`` (pages of 100 000 points, two
  float64 columns and time: 24 raw bytes a point) stored by the engine -- points/s of
  ``await RE(fly(...))``, which returns once the run is committed, against the same scan
  with ``catalog=None`` --, the bytes it added on disk per point (SQLite: the database and
  its WAL; PostgreSQL: the tables' size) and ``read()`` of the stream in points/s
  (targets: >= 1 M points/s stored, <= 1.5x the raw bytes, read >= 10 M points/s).

PostgreSQL: a throwaway server from the machine's binaries (``postgres.py``; fsync on,
as in production) unless ``--postgres-url`` names one; skipped with a note when the
binaries are missing. Numbers only: nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import acq
from acq.catalog import Catalog, DocumentStore, Key

from .__main__ import Detector, Motor, count_plan
from .postgres import PostgresServer, find_bin_dir

SIZES = {"full": (20_000, 10_000, 100_000), "quick": (2_000, 500, 5_000)}
FLY_POINTS = {"full": 1_000_000, "quick": 20_000}
RAW_BYTES_PER_POINT = 24  # two float64 columns and the time


def _best(fn: Callable[[], Any], repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


async def _run_count(RE: acq.RunEngine, n: int) -> float:
    motor = Motor("motor")
    det = Detector("det", motor)
    t0 = time.perf_counter()
    result = await RE(count_plan(acq.Msg, det, motor, n))
    elapsed = time.perf_counter() - t0
    if result.exit_status != "success":
        raise RuntimeError(f"catalog benchmark: the count ended with {result.exit_status}")
    return elapsed


def write(url: str, n: int) -> dict[str, float]:
    """Events/s storing ``n`` points, and the cost per event against no catalog."""

    async def measure() -> tuple[float, float]:
        bare = acq.RunEngine(catalog=None, handle_sigint=False)
        storing = acq.RunEngine(catalog=url, handle_sigint=False)
        await _run_count(storing, 100)  # warm up: open the database, import SQLAlchemy
        await _run_count(bare, 100)
        return min([await _run_count(bare, n) for _ in range(2)]), await _run_count(storing, n)

    t_bare, t_store = asyncio.run(measure())
    return {
        "events": n,
        "events_per_s": n / t_store,
        "us_per_event": t_store / n * 1e6,
        "store_cost_us_per_event": max(t_store - t_bare, 0.0) / n * 1e6,
    }


_SAMPLES = ["Si", "Ge", "Cu", "LaB6", "CeO2", "Au", "Pt", "blank"]


def _start(i: int, rng: random.Random) -> dict[str, Any]:
    return {
        "uid": f"{rng.getrandbits(128):032x}",
        "time": 1.7e9 + i,
        "scan_id": i + 1,
        "plan_name": rng.choice(["scan", "count", "grid_scan", "rel_scan"]),
        "plan_type": "generator",
        "detectors": ["det", "det2d"],
        "motors": ["x"],
        "num_points": rng.randint(5, 500),
        "sample": {"name": rng.choice(_SAMPLES), "temperature": rng.uniform(4, 400)},
        "purpose": rng.choice(["alignment", "calibration", "measurement", "test"]),
        "proposal_id": rng.randint(100000, 100100),
        "owner": rng.choice(["alice", "bob", "carol"]),
        "plan_args": {"detectors": ["det"], "num": 11, "args": ["x", -1, 1]},
        "hints": {"dimensions": [[["x"], "primary"]]},
        "versions": {"acq": "0.1.0", "bluesky": "1.15", "numpy": "2.4"},
    }


def search(url: str, runs: int) -> dict[str, float]:
    """Milliseconds for searches over ``runs`` stored runs."""
    store = DocumentStore(url)
    rng = random.Random(0)
    t0 = time.perf_counter()
    for i in range(runs):
        start = _start(i, rng)
        store.write("start", start)
        store.write(
            "stop",
            {"uid": f"{i}-stop", "run_start": start["uid"], "time": start["time"] + 1,
             "exit_status": "success", "num_events": {"primary": 10}},
        )  # fmt: skip
    store.flush()
    load = time.perf_counter() - t0
    catalog = Catalog(store=store)
    try:
        si = catalog.search(**{"sample.name": "Si"})
        return {
            "runs": runs,
            "load_runs_per_s": runs / load,
            "count_by_nested_key_ms": _best(lambda: len(si)) * 1e3,
            "first_page_by_nested_key_ms": _best(lambda: si.page(1, size=20)) * 1e3,
            "numeric_range_ms": _best(lambda: len(catalog.search(Key("sample.temperature") > 390)))
            * 1e3,
            "text_contains_ms": _best(lambda: len(catalog.search(Key("purpose").contains("CALIB"))))
            * 1e3,
            "by_scan_id_ms": _best(lambda: catalog[runs // 2]) * 1e3,
        }
    finally:
        catalog.close()


def read(url: str, n: int) -> dict[str, float]:
    """Seconds to read back an ``n``-event run."""
    RE = acq.RunEngine(catalog=url, handle_sigint=False)
    asyncio.run(_run_count(RE, n))
    assert RE.catalog is not None
    run = RE.catalog[-1]
    try:
        seconds = _best(run.primary.read)
        pandas = _best(lambda: run.primary.read().to_pandas())
        if len(run.primary.read()["det"]) != n:
            raise RuntimeError("catalog benchmark: the run read back is incomplete")
        return {"events": n, "read_s": seconds, "to_pandas_s": pandas}
    finally:
        RE.catalog.close()


def fly(url: str, points: int, disk: Callable[[], Awaitable[int]]) -> dict[str, float]:
    """A fly scan stored, its size on disk, and its stream read back (see the docstring)."""
    from acq.devices.sim import Flyer
    from acq.plans import fly as fly_plan

    async def measure() -> tuple[float, float, int, int]:
        flyer = Flyer("flyer", num_points=points, page_size=100_000, points_per_second=0)
        await flyer.connect()
        bare = acq.RunEngine(catalog=None, handle_sigint=False)
        storing = acq.RunEngine(catalog=url, handle_sigint=False)
        await storing(fly_plan([flyer]))  # warm up: open the database, import SQLAlchemy
        t_bare = min([await _timed(bare, fly_plan([flyer])) for _ in range(2)])
        before = await disk()
        t_store = min([await _timed(storing, fly_plan([flyer])) for _ in range(2)])
        return t_bare, t_store, before, await disk()

    t_bare, t_store, before, after = asyncio.run(measure())
    catalog = Catalog(url)
    try:
        run = catalog[-1]
        seconds = _best(lambda: run.flyer.read())
        if len(run.flyer.read().time) != points:
            raise RuntimeError("catalog benchmark: the fly scan read back is incomplete")
    finally:
        catalog.close()
    return {
        "points": points,
        "stored_points_per_s": points / t_store,
        "bare_points_per_s": points / t_bare,
        "bytes_per_point": (after - before) / (2 * points),  # two runs stored in between
        "read_points_per_s": points / seconds,
    }


async def _timed(RE: acq.RunEngine, plan: Any) -> float:
    t0 = time.perf_counter()
    result = await RE(plan)
    if result.exit_status != "success":
        raise RuntimeError(f"catalog benchmark: the scan ended with {result.exit_status}")
    return time.perf_counter() - t0


def _sqlite_bytes(path: Path) -> Callable[[], Awaitable[int]]:
    async def size() -> int:
        return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))

    return size


def _postgres_bytes(url: str) -> Callable[[], Awaitable[int]]:
    import asyncpg  # the catalog's own PostgreSQL driver

    async def size() -> int:
        conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            return int(
                await conn.fetchval(
                    "SELECT pg_total_relation_size('documents') + pg_total_relation_size('runs')"
                )
            )
        finally:
            await conn.close()

    return size


@contextlib.contextmanager
def _postgres(url: str | None) -> Iterator[Callable[[], str] | str]:
    if url is not None:
        yield url
        return
    try:
        find_bin_dir()
    except RuntimeError as exc:
        yield str(exc)
        return
    server = PostgresServer(fsync=True)
    try:
        server.start()
        yield server.create_database
    finally:
        server.stop()


def run(
    quick: bool = False,
    backends: Sequence[str] = ("sqlite", "postgresql"),
    postgres_url: str | None = None,
) -> dict[str, Any]:
    """Every measurement on every backend; prints a table, returns the numbers."""
    n_write, n_runs, n_read = SIZES["quick" if quick else "full"]
    n_fly = FLY_POINTS["quick" if quick else "full"]
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="acq-catalog-bench-") as folder:
        for backend in backends:
            if backend == "sqlite":

                def urls(name: str) -> str:
                    return str(Path(folder) / f"{name}.db")

                results[backend] = _measure(urls, n_write, n_runs, n_read)
                fly_db = Path(folder) / "fly.db"
                results[backend]["fly"] = fly(str(fly_db), n_fly, _sqlite_bytes(fly_db))
                continue
            with _postgres(postgres_url) as pg:
                if isinstance(pg, str) and "://" not in pg:
                    results[backend] = {"skipped": pg}
                    continue
                if isinstance(pg, str):
                    results[backend] = _measure(lambda _name: pg, n_write, n_runs, n_read)
                    fly_url = pg
                else:
                    results[backend] = _measure(lambda _name: pg(), n_write, n_runs, n_read)
                    fly_url = pg()
                results[backend]["fly"] = fly(fly_url, n_fly, _postgres_bytes(fly_url))
    print(format_results(results))
    return results


def _measure(url: Callable[[str], str], n_write: int, n_runs: int, n_read: int) -> dict[str, Any]:
    return {
        "write": write(url("write"), n_write),
        "search": search(url("search"), n_runs),
        "read": read(url("read"), n_read),
    }


def format_results(results: dict[str, Any]) -> str:
    """The numbers as text, one line per measurement and backend."""
    lines = ["catalog:"]
    for backend, r in results.items():
        if "skipped" in r:
            lines.append(f"  {backend:<10} skipped: {r['skipped']}")
            continue
        w, s, rd = r["write"], r["search"], r["read"]
        lines += [
            f"  {backend:<10} write  {w['events']:>7} events  {w['events_per_s']:>9.0f} events/s  "
            f"(+{w['store_cost_us_per_event']:.1f} µs/event over catalog=None)",
            f"  {backend:<10} search {s['runs']:>7} runs    "
            f"count {s['count_by_nested_key_ms']:.1f} ms"
            f"  first page {s['first_page_by_nested_key_ms']:.1f} ms"
            f"  range {s['numeric_range_ms']:.1f} ms  text {s['text_contains_ms']:.1f} ms"
            f"  scan_id {s['by_scan_id_ms']:.1f} ms  (loaded {s['load_runs_per_s']:.0f} runs/s)",
            f"  {backend:<10} read   {rd['events']:>7} events  read() {rd['read_s']:.3f} s"
            f"  to_pandas() {rd['to_pandas_s']:.3f} s",
        ]
        f = r["fly"]
        lines.append(
            f"  {backend:<10} fly    {f['points']:>7} points"
            f"  stored {f['stored_points_per_s']:,.0f} points/s"
            f" (catalog=None {f['bare_points_per_s']:,.0f})"
            f"  {f['bytes_per_point']:.1f} bytes/point ({RAW_BYTES_PER_POINT} raw)"
            f"  read {f['read_points_per_s']:,.0f} points/s"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the catalog benchmark and print its numbers."""
    parser = argparse.ArgumentParser(prog="python -m tests.benchmarks.catalog", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke test")
    parser.add_argument("--backends", default="sqlite,postgresql", help="comma-separated")
    parser.add_argument("--postgres-url", default=None, help="use this server's database")
    args = parser.parse_args(argv)
    run(args.quick, [b for b in args.backends.split(",") if b], args.postgres_url)
    return 0


if __name__ == "__main__":
    sys.exit(main())
