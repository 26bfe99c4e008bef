"""``acq serve`` in a real process: SIGTERM shuts it down cleanly, SIGKILL loses nothing.

Each test starts ``acq serve --config FILE`` as a subprocess (the sim beamline, ``count``
with a delay so that a run is in progress when the signal comes), drives it with the
unmodified ``bluesky-queueserver-api`` async client, then reads the catalog database the
process wrote and starts a second process on the same database.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from acq.service import ServiceConfig, ServiceError, serve
from bluesky_queueserver_api.http.aio import REManagerAPI
from support import DocChecker

from acq.catalog import Catalog, Run

pytestmark = pytest.mark.timeout(180)

CONFIG = """
from acq.devices.sim import sim_beamline
from acq.plans import count
from acq.service import ServiceConfig

async def config():
    beamline = await sim_beamline(instant=True)
    return ServiceConfig(devices=beamline.by_name(), plans={"count": count},
                         catalog=CATALOG, on_sigterm=ON_SIGTERM, shutdown_timeout=TIMEOUT)
"""
SLOW = {"name": "count", "args": [["det"]], "kwargs": {"num": 400, "delay": 0.1}}
START_TIMEOUT = 60.0


def _item(num: int, delay: float = 0.0) -> dict[str, Any]:
    return {"name": "count", "args": [["det"]], "kwargs": {"num": num, "delay": delay},
            "item_type": "plan"}  # fmt: skip


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Served:
    """One ``acq serve`` process and its URL."""

    def __init__(self, config: Path, log: Path) -> None:
        self.url = f"http://127.0.0.1:{_free_port()}"
        self.log = log
        command = "import sys; from acq.callbacks._cli import main; sys.exit(main(sys.argv[1:]))"
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-c", command, "serve", "--config", str(config),
                 "--port", self.url.rsplit(":", 1)[1]],
                stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip

    async def listening(self) -> None:
        """Wait until the process answers ``/api/status``."""
        deadline = time.monotonic() + START_TIMEOUT
        async with httpx.AsyncClient(base_url=self.url) as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise AssertionError(f"acq serve exited early:\n{self.log.read_text()}")
                try:
                    if (await client.get("/api/status")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
        raise AssertionError(f"acq serve never listened:\n{self.log.read_text()}")

    async def exit_code(self, within: float) -> int:
        """The process's exit code, once it has exited (within ``within`` seconds)."""
        deadline = time.monotonic() + within
        while (code := self.process.poll()) is None:
            if time.monotonic() > deadline:
                self.process.kill()
                raise AssertionError(f"acq serve did not exit:\n{self.log.read_text()}")
            await asyncio.sleep(0.05)
        return code


@asynccontextmanager
async def served(config: Path, log: Path) -> AsyncIterator[tuple[Served, Any]]:
    """A started ``acq serve`` and an async REManagerAPI on it; killed if still alive."""
    process = Served(config, log)
    RM: Any = REManagerAPI(http_server_uri=process.url, status_polling_period=0.05)
    try:
        await process.listening()
        yield process, RM
    finally:
        await RM.close()
        if process.process.poll() is None:
            process.process.kill()
            process.process.wait(10)


def _write_config(tmp_path: Path, on_sigterm: str, timeout: float = 20) -> tuple[Path, Path]:
    catalog = tmp_path / "catalog.db"
    path = tmp_path / "beamline.py"
    text = CONFIG.replace("CATALOG", repr(str(catalog))).replace("ON_SIGTERM", repr(on_sigterm))
    text = text.replace("TIMEOUT", repr(timeout))
    path.write_text(text)
    return path, catalog


async def _until(condition: Callable[[], Any], what: str, within: float = 30.0) -> Any:
    deadline = time.monotonic() + within
    while not (found := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)
    return found


def _run_with_events(catalog: Path, at_least: int) -> Callable[[], Run | None]:
    """A check: the newest run in ``catalog`` once it has ``at_least`` committed events."""

    def check() -> Run | None:
        if not catalog.exists():
            return None
        runs = Catalog(str(catalog))
        try:
            if len(runs) == 0:
                return None
            run = runs[-1]
            events = [d for n, d in run.documents() if n == "event"]
            return run if len(events) >= at_least else None
        finally:
            runs.close()

    return check


def _documents(catalog: Path, uid: str) -> tuple[Run, list[tuple[str, dict[str, Any]]]]:
    runs = Catalog(str(catalog))
    try:
        run = runs[uid]
        return run, list(run.documents())
    finally:
        runs.close()


async def _start_three(RM: Any) -> list[dict[str, Any]]:
    """Queue a slow count and two quick ones, start the queue; the three stored items."""
    items = [(await RM.item_add({**SLOW, "item_type": "plan"}))["item"]]
    items += [(await RM.item_add(_item(n)))["item"] for n in (2, 3)]
    await RM.queue_start()
    return items


@pytest.mark.parametrize("on_sigterm", ["pause", "abort"])
async def test_sigterm_closes_the_run_requeues_its_item_at_the_front_and_exits_0(
    tmp_path: Path, on_sigterm: str
) -> None:
    config, catalog = _write_config(tmp_path, on_sigterm)
    async with served(config, tmp_path / "first.log") as (process, RM):
        items = await _start_three(RM)
        await _until(_run_with_events(catalog, 3), "a run with 3 events")
        process.process.send_signal(signal.SIGTERM)
        assert await process.exit_code(within=60) == 0, (tmp_path / "first.log").read_text()
    log = (tmp_path / "first.log").read_text()
    assert "SIGTERM" in log, log
    assert "requeued at the front of the queue" in log, log

    # every document of the interrupted run is committed, its Stop says why
    runs = Catalog(str(catalog))
    try:
        (only,) = list(runs)
        uid = only.uid
    finally:
        runs.close()
    run, docs = _documents(catalog, uid)
    assert run.stop is not None, "the run has no Stop"
    assert run.stop["exit_status"] == "abort"
    assert "SIGTERM" in run.stop["reason"]
    checker = DocChecker()
    for name, doc in docs:
        checker(name, doc)
    checker.assert_clean()
    events = checker.of("event")
    assert len(events) >= 3
    assert run.stop["num_events"]["primary"] == len(events)

    # restarted on the same database: the item is back at the front, the history says why
    async with served(config, tmp_path / "second.log") as (process, RM):
        queue = await RM.queue_get()
        assert queue["running_item"] == {}
        front, *rest = queue["items"]
        assert [i["item_uid"] for i in rest] == [i["item_uid"] for i in items[1:]]
        assert front["item_uid"] != items[0]["item_uid"]  # a new uid, as queueserver gives
        assert (front["name"], front["args"], front["kwargs"]) == (
            items[0]["name"], items[0]["args"], items[0]["kwargs"],
        )  # fmt: skip
        (done,) = (await RM.history_get())["items"]
        assert done["item_uid"] == items[0]["item_uid"]
        assert done["result"]["exit_status"] == "aborted"
        assert done["result"]["run_uids"] == [uid]
        assert done["result"]["scan_ids"] == [run.scan_id]
        assert "SIGTERM" in done["result"]["msg"]
        assert "front of the queue" in done["result"]["msg"]
        # idle, SIGTERM: a prompt clean exit that changes nothing
        process.process.send_signal(signal.SIGTERM)
        assert await process.exit_code(within=30) == 0
    async with served(config, tmp_path / "third.log") as (process, RM):
        assert len((await RM.queue_get())["items"]) == 3
        assert len((await RM.history_get())["items"]) == 1


@pytest.mark.parametrize("escalation", ["timeout", "second SIGTERM"])
async def test_a_plan_far_from_its_checkpoint_is_aborted_on_timeout_or_a_second_sigterm(
    tmp_path: Path, escalation: str
) -> None:
    timeout = 1.0 if escalation == "timeout" else 600.0
    config, catalog = _write_config(tmp_path, "pause", timeout)
    async with served(config, tmp_path / "first.log") as (process, RM):
        await RM.item_add(_item(5, delay=600.0))  # the next checkpoint is 10 minutes away
        await RM.queue_start()
        await _until(_run_with_events(catalog, 1), "a run with its first event")
        process.process.send_signal(signal.SIGTERM)
        if escalation == "second SIGTERM":
            await _until(lambda: "SIGTERM: shutting down" in process.log.read_text(), "the log")
            process.process.send_signal(signal.SIGTERM)
        assert await process.exit_code(within=60) == 0, process.log.read_text()
    log = (tmp_path / "first.log").read_text()
    expected = "no checkpoint within 1.0 s" if escalation == "timeout" else "second SIGTERM"
    assert expected in log, log
    async with served(config, tmp_path / "second.log") as (process, RM):
        (done,) = (await RM.history_get())["items"]
        assert done["result"]["exit_status"] == "aborted"
        assert [i["kwargs"] for i in (await RM.queue_get())["items"]] == [
            {"num": 5, "delay": 600.0}
        ]
    runs = Catalog(str(catalog))
    try:
        (run,) = list(runs)
        assert run.exit_status == "abort"
    finally:
        runs.close()


async def test_sigkill_mid_run_loses_no_queue_item_and_no_committed_document(
    tmp_path: Path,
) -> None:
    config, catalog = _write_config(tmp_path, "pause")
    async with served(config, tmp_path / "first.log") as (process, RM):
        items = await _start_three(RM)
        seen = await _until(_run_with_events(catalog, 3), "a run with 3 events")
        committed = [d for n, d in _documents(catalog, seen.uid)[1] if n == "event"]
        process.process.kill()
        assert await process.exit_code(within=30) == -signal.SIGKILL

    run, docs = _documents(catalog, seen.uid)  # listed, without a Stop
    assert run.stop is None
    assert run.exit_status == "incomplete"
    checker = DocChecker()
    for name, doc in docs:
        checker(name, doc)
    assert not checker.problems, checker.problems
    kept = checker.of("event")
    assert [e["uid"] for e in kept[: len(committed)]] == [e["uid"] for e in committed]

    async with served(config, tmp_path / "second.log") as (process, RM):
        queue = await RM.queue_get()
        assert queue["running_item"] == {}
        assert [i["item_uid"] for i in queue["items"]] == [i["item_uid"] for i in items[1:]]
        (left,) = (await RM.history_get())["items"]
        assert left["item_uid"] == items[0]["item_uid"]
        assert left["result"]["exit_status"] == "interrupted"
        await RM.queue_start()  # the service works again: the queue runs to its end
        await RM.wait_for_idle(timeout=60)
        history = (await RM.history_get())["items"]
        assert [h["result"]["exit_status"] for h in history] == [
            "interrupted", "completed", "completed",
        ]  # fmt: skip
        assert (await RM.queue_get())["items"] == []


def test_the_shutdown_options_are_checked() -> None:
    assert ServiceConfig().on_sigterm == "pause"
    with pytest.raises(ServiceError, match="on_sigterm: 'pause' or 'abort', not 'later'"):
        ServiceConfig(on_sigterm="later")  # pyright: ignore[reportArgumentType]
    for bad in (0, -1.0, float("nan"), "10", True):
        with pytest.raises(ServiceError, match="shutdown_timeout: a number of seconds above 0"):
            ServiceConfig(shutdown_timeout=bad)  # pyright: ignore[reportArgumentType]


async def _serving_task(config: ServiceConfig, port: int, **kwargs: Any) -> asyncio.Task[None]:
    task = asyncio.get_running_loop().create_task(serve(config, "127.0.0.1", port, **kwargs))
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        for _ in range(500):
            try:
                await client.get("/api/status")
                return task
            except httpx.TransportError:
                await asyncio.sleep(0.02)
    raise AssertionError("the server never listened")


async def test_serve_takes_sigterm_only_while_serving_and_returns_on_it(tmp_path: Path) -> None:
    config = ServiceConfig(catalog=str(tmp_path / "catalog.db"))
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    task = await _serving_task(config, _free_port())
    try:
        assert signal.getsignal(signal.SIGINT) == before[0]  # Ctrl-C stays the engine's
        assert signal.getsignal(signal.SIGTERM) != before[1]
        os.kill(os.getpid(), signal.SIGTERM)  # the loop's handler takes it
        async with asyncio.timeout(30):
            await task  # returns: a clean shutdown, no exception
    finally:
        task.cancel()
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


async def test_serve_with_handle_sigterm_false_leaves_every_signal_alone(tmp_path: Path) -> None:
    config = ServiceConfig(catalog=str(tmp_path / "catalog.db"))
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    task = await _serving_task(config, _free_port(), handle_sigterm=False)
    try:
        assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
