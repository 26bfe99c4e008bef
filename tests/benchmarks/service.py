"""Service benchmark: status latency during a scan, and what a documents WebSocket costs.

``python -m tests.benchmarks.service [--quick] [--points N]`` (also run by
``python -m tests.benchmarks``). The service is a real ``acq serve --config FILE``
process (the sim beamline, instant motors, ``scan``; the catalog in a temporary
directory); every client is in THIS process, so the service's process does only the
service's work and the latencies are what a client sees over loopback:

* **status p95**: ``GET /api/status`` (httpx, one keep-alive connection) every 5 ms while
  a scan of N points runs in the service: p50, p95 and max of the requests answered
  while the manager said ``executing_queue`` (target: p95 <= 5 ms), beside the same
  requests with the service idle;
* **scan + ws documents**: the scan's own duration (its Stop's ``time`` minus its
  Start's, so queueing and polling do not count) without a client, and with a client of
  ``ws /api/v1/ws/documents`` (every run's documents, each decoded from JSON) in a
  thread of this process; best of ``repeat`` alternating pairs (target: <= 5 % slower).
  Skipped, with a note, when the service has no such route.

Numbers only: nothing is asserted. Rows have the shape of ``scenarios.py``'s (``name,
unit, n, acq, bluesky, ratio, notes, target, met``; ``bluesky`` is None: bluesky has no
service to compare).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import httpx

from acq.catalog import Catalog

from .scenarios import format_rows as scenario_rows
from .scenarios import row

Row = dict[str, Any]
SIZES = {"full": (2_000, 3), "quick": (100, 1)}  # scan points, repeat
STATUS_PERIOD = 0.005  # s between two status requests
STATUS_TARGET_MS = 5.0
WS_TARGET_PERCENT = 5.0
WS_PATH = "/api/v1/ws/documents"
START_TIMEOUT = 60.0

CONFIG = """
from acq.devices.sim import sim_beamline
from acq.plans import scan
from acq.service import ServiceConfig

async def config():
    beamline = await sim_beamline(instant=True)
    return ServiceConfig(devices=beamline.by_name(), plans={"scan": scan}, catalog=CATALOG)
"""
_CLI = "import sys; from acq.callbacks._cli import main; sys.exit(main(sys.argv[1:]))"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServiceProcess:
    """``acq serve`` on a free port, its catalog in ``where``; SIGTERM on exit."""

    def __init__(self, where: Path) -> None:
        self.catalog = where / "catalog.db"
        config = where / "bench_service.py"
        config.write_text(CONFIG.replace("CATALOG", repr(str(self.catalog))))
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = where / "service.log"
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-c", _CLI, "serve", "--config", str(config),
                 "--port", str(self.port)],
                stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        self.client = httpx.Client(base_url=self.url, timeout=30)

    def wait_listening(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"acq serve exited:\n{self.log.read_text()}")
            with contextlib.suppress(httpx.TransportError):
                if self.client.get("/api/status").status_code == 200:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"acq serve never listened:\n{self.log.read_text()}")

    def post(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        reply = self.client.post(path, json=body or {})
        reply.raise_for_status()
        answer: dict[str, Any] = reply.json()
        if not answer.get("success", True):
            raise RuntimeError(f"{path}: {answer.get('msg')}")
        return answer

    def start_scan(self, points: int) -> None:
        item = {"name": "scan", "args": [["det"], "x", -1.0, 1.0], "kwargs": {"num": points},
                "item_type": "plan"}  # fmt: skip
        self.post("/api/queue/item/add", {"item": item})
        self.post("/api/queue/start")

    def state(self) -> str:
        return str(self.client.get("/api/status").json()["manager_state"])

    def wait_idle(self) -> None:
        deadline = time.monotonic() + 600
        while self.state() != "idle":
            if time.monotonic() > deadline:
                raise RuntimeError("the scan did not end within 600 s")
            time.sleep(0.02)

    def last_scan_seconds(self) -> float:
        """The newest run's Stop time minus its Start time (measured by the service)."""
        uid = self.client.get("/api/history/get").json()["items"][-1]["result"]["run_uids"][0]
        runs = Catalog(str(self.catalog))
        try:
            run = runs[uid]
            assert run.stop is not None, f"run {uid} has no Stop"
            return float(run.stop["time"]) - float(run.start["time"])
        finally:
            runs.close()

    def close(self) -> None:
        """SIGTERM (the service's clean shutdown); raise if it needed a kill or failed."""
        self.client.close()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
                log = self.log.read_text()
                raise RuntimeError(f"SIGTERM did not stop acq serve:\n{log}") from None
        if self.process.returncode != 0:
            raise RuntimeError(
                f"acq serve exited with {self.process.returncode}:\n{self.log.read_text()}"
            )


@contextlib.contextmanager
def service_process() -> Iterator[ServiceProcess]:
    """A started ``acq serve`` in a temporary directory."""
    with tempfile.TemporaryDirectory(prefix="acq-bench-service-") as where:
        service = ServiceProcess(Path(where))
        try:
            service.wait_listening()
            yield service
        finally:
            service.close()


# -- status latency -----------------------------------------------------------------------
def _latencies_ms(service: ServiceProcess, *, while_running: bool, count: int) -> list[float]:
    """``GET /api/status`` every STATUS_PERIOD: the round trips, in ms."""
    found: list[float] = []
    with httpx.Client(base_url=service.url, timeout=30) as client:
        client.get("/api/status")  # the connection is open before the first measure
        while len(found) < count:
            t0 = time.perf_counter()
            answer = client.get("/api/status").json()
            elapsed = (time.perf_counter() - t0) * 1e3
            if while_running and answer["manager_state"] != "executing_queue":
                if found:  # the scan ended
                    break
            else:
                found.append(elapsed)
            time.sleep(STATUS_PERIOD)
    return found


def _percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def status_rows(service: ServiceProcess, points: int) -> list[Row]:
    """Status latency idle, then while a scan of ``points`` runs."""
    idle = _latencies_ms(service, while_running=False, count=200)
    service.start_scan(points)
    busy = _latencies_ms(service, while_running=True, count=10**9)
    service.wait_idle()
    if not busy:
        busy = [float("nan")]
    p95 = _percentile(busy, 95)
    return [
        _row("service: status p95, scan running", "ms", len(busy), p95,
             f"p50 {statistics.median(busy):.2f} ms, max {max(busy):.2f} ms over {len(busy)} "
             f"requests during a {points}-point scan; idle p95 "
             f"{_percentile(idle, 95):.2f} ms (p50 {statistics.median(idle):.2f})",
             f"<= {STATUS_TARGET_MS:g} ms", p95 <= STATUS_TARGET_MS),
    ]  # fmt: skip


# -- a documents WebSocket client ---------------------------------------------------------
class DocumentsClient:
    """A ``ws /api/v1/ws/documents`` client in a thread: every message decoded, counted.

    ``messages`` counts documents (a message holds one, or a list of them).
    """

    def __init__(self, url: str) -> None:
        self.url = url.replace("http://", "ws://") + WS_PATH
        self.messages = 0
        self.stops = 0
        self.error: BaseException | None = None
        self._ws: Any = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._read, name="bench-ws-client", daemon=True)
        self._thread.start()
        if not self._ready.wait(10) or self._ws is None:
            raise RuntimeError(f"could not connect to {self.url}: {self.error}")

    def _read(self) -> None:
        from websockets.exceptions import ConnectionClosed
        from websockets.sync.client import connect

        try:
            with connect(self.url, open_timeout=10) as ws:
                self._ws = ws
                self._ready.set()
                for message in ws:
                    decoded = json.loads(message)  # one entry, or a list of them
                    entries = decoded if isinstance(decoded, list) else [decoded]
                    for entry in cast(list[dict[str, Any]], entries):
                        self.stops += entry.get("name") == "stop"
                    self.messages += len(entries)
        except ConnectionClosed:
            pass
        except Exception as exc:  # noqa: BLE001 -- reported by close()
            self.error = exc
        finally:
            self._ready.set()

    def wait_stops(self, count: int, within: float = 60.0) -> None:
        """Wait until ``count`` Stop documents have come (every message of those runs)."""
        deadline = time.monotonic() + within
        while self.stops < count and self.error is None and time.monotonic() < deadline:
            time.sleep(0.01)

    def close(self) -> None:
        """Close the connection; raise what the reading thread met, if anything."""
        if self._ws is not None:
            self._ws.close()
        self._thread.join(10)
        if self.error is not None:
            raise RuntimeError(f"the documents client failed: {self.error!r}") from self.error


def _has_documents_route(url: str) -> bool:
    from websockets.exceptions import InvalidHandshake, InvalidStatus
    from websockets.sync.client import connect

    try:
        with connect(url.replace("http://", "ws://") + WS_PATH, open_timeout=10):
            return True
    except (InvalidStatus, InvalidHandshake, OSError):
        return False


def ws_rows(service: ServiceProcess, points: int, repeat: int) -> list[Row]:
    """A scan's duration without, then with, a documents client (alternating pairs)."""
    if not _has_documents_route(service.url):
        return [_row("service: scan + ws documents client", "% slower", points, float("nan"),
                     f"not measured: the service has no {WS_PATH} route", None, None)]  # fmt: skip
    bare: list[float] = []
    watched: list[float] = []
    received = 0
    for _ in range(repeat):
        service.start_scan(points)
        service.wait_idle()
        bare.append(service.last_scan_seconds())
        client = DocumentsClient(service.url)
        try:
            service.start_scan(points)
            service.wait_idle()
            watched.append(service.last_scan_seconds())
            client.wait_stops(1)
        finally:
            client.close()
            received = max(received, client.messages)
    slower = (min(watched) / min(bare) - 1.0) * 100.0
    return [
        _row("service: scan + ws documents client", "% slower", points, slower,
             f"best scan {min(bare) * 1e3:.0f} ms without a client, {min(watched) * 1e3:.0f} ms "
             f"with one ({received} documents received); best of {repeat}",
             f"<= {WS_TARGET_PERCENT:g} %", slower <= WS_TARGET_PERCENT),
    ]  # fmt: skip


def _row(name: str, unit: str, n: int, acq: float, notes: str, target: str | None,
         met: bool | None) -> Row:  # fmt: skip
    return row(name, unit, n, acq, None, notes, target=target, met=met)  # no bluesky figure


def run(quick: bool = False, points: int | None = None) -> list[Row]:
    """Every row, from one service process."""
    size, repeat = SIZES["quick" if quick else "full"]
    size = points or size
    with service_process() as service:
        service.start_scan(5)  # warm up: imports, the first run, the catalog's tables
        service.wait_idle()
        return [*status_rows(service, size), *ws_rows(service, size, repeat)]


def format_rows(rows: list[Row]) -> str:
    """The rows as a fixed-width table, each row's notes indented under it."""
    footer = (
        f"(service process: acq serve, sim beamline; clients in this process; "
        f"load average {os.getloadavg()[0]:.2f})"
    )
    return scenario_rows(rows, "service", footer)


def main(argv: list[str] | None = None) -> int:
    """Run the service benchmark and print its table."""
    parser = argparse.ArgumentParser(prog="python -m tests.benchmarks.service", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test")
    parser.add_argument("--points", type=int, default=None, help="scan points (default 2000)")
    args = parser.parse_args(argv)
    if args.points is not None and args.points < 1:
        parser.error("--points must be at least 1")
    print(format_rows(run(args.quick, args.points)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
