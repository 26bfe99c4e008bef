"""Writing processes die or run side by side; what they committed stays intact."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import numpy as np

from acq.catalog import Catalog

CHILD = """
import asyncio, sys
from acq import Msg, RunEngine
url, points, tests, tag = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
sys.path[:0] = [tests, tests + "/catalog"]
from catalog_helpers import Spectrum
from support import Signal

async def main():
    RE = RunEngine(catalog=url, handle_sigint=False)
    store = RE.catalog.store
    det, spectrum = Signal("det", 0.0), Spectrum("spectrum", 1500)

    async def plan():
        yield Msg("open_run", tag=tag)
        for i in range(1, points + 1):
            det.value = float(i)
            yield Msg("trigger", spectrum)
            yield Msg("create", name="primary")
            yield Msg("read", det)
            yield Msg("read", spectrum)
            yield Msg("save")
            if i % 10 == 0:
                await store.aflush()  # everything so far is committed
                print(f"committed {i}", flush=True)
        yield Msg("close_run")

    await RE(plan())

asyncio.run(main())
"""

TESTS = str(Path(__file__).resolve().parent.parent)


async def start_writer(script: Path, url: str, points: int, tag: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, str(script), url, str(points), TESTS, tag, stdout=asyncio.subprocess.PIPE
    )


def check_rows(catalog: Catalog, tag: str, at_least: int) -> int:
    """The run tagged ``tag`` holds its first points intact; return how many it has."""
    (run,) = list(catalog.search(tag=tag))
    data = run.primary.read()
    rows = len(data.seq_num)
    assert rows >= at_least
    assert data.seq_num.tolist() == list(range(1, rows + 1))
    assert data["det"].tolist() == [float(i) for i in range(1, rows + 1)]
    np.testing.assert_array_equal(
        np.asarray(data["spectrum"]), np.repeat(np.arange(1.0, rows + 1), 1500).reshape(rows, 1500)
    )
    return rows


async def test_kill_9_mid_run_keeps_everything_committed_before(
    catalog_url: str, tmp_path: Path
) -> None:
    script = tmp_path / "writer.py"
    script.write_text(CHILD)
    child = await start_writer(script, catalog_url, 1_000_000, "killed")
    assert child.stdout is not None
    committed = 0
    async with asyncio.timeout(50):
        while committed < 60:
            line = (await child.stdout.readline()).decode()
            assert line, "the writer ended before it was killed"
            committed = int(line.split()[1])
        child.send_signal(signal.SIGKILL)
        assert await child.wait() == -signal.SIGKILL
    catalog = Catalog(catalog_url)
    try:
        run = catalog.search(tag="killed")[-1]
        assert run.stop is None
        assert run.exit_status == "incomplete"
        check_rows(catalog, "killed", at_least=committed)
        names = [name for name, _ in run.documents()]
        assert names[:2] == ["start", "descriptor"]
        assert "stop" not in names
    finally:
        catalog.close()


async def test_two_processes_write_one_catalog_side_by_side(
    catalog_url: str, tmp_path: Path
) -> None:
    script = tmp_path / "writer.py"
    script.write_text(CHILD)
    children = [await start_writer(script, catalog_url, 300, f"process {i}") for i in range(2)]
    async with asyncio.timeout(50):
        for child in children:
            await child.communicate()
            assert child.returncode == 0
    catalog = Catalog(catalog_url)
    try:
        assert len(catalog) == 2
        for i in range(2):
            assert check_rows(catalog, f"process {i}", at_least=300) == 300
            assert catalog.search(tag=f"process {i}")[-1].exit_status == "success"
    finally:
        catalog.close()
