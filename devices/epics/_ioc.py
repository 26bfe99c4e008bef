"""Start the simulated beamline IOC on loopback, for tests, tutorials and demos.

:class:`SimIoc` runs ``_sim_ioc.py`` (a softioc script; see its docstring for the PVs
it serves) as a child process that listens on 127.0.0.1 only, on ports of its own,
and points this process's EPICS clients at it through the ``EPICS_*`` environment
variables.

The clients read those variables once, when their context is created (aioca's
Channel Access context and ophyd-async's PV Access context are both process-wide and
live until exit), so the ports must be in the environment *before* the first EPICS
client call of the process, and every IOC of the process must keep using them.
Hence :func:`loopback_ports`: free ports chosen at the first call and reused by
every later IOC (one at a time). An IOC restarted on those ports is found again.

The child exits when ``exit()`` arrives on its stdin, when its stdin closes (so a
parent that dies leaves no orphan) and on SIGTERM; :meth:`SimIoc.kill` sends
SIGKILL, to test what clients do when an IOC dies.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import random
import signal
import socket
import string
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

__all__ = ["LoopbackPorts", "SimIoc", "loopback_ports", "random_pv_prefix", "start_test_ioc"]

_SCRIPT = Path(__file__).with_name("_sim_ioc.py")
# The same text as _sim_ioc.READY_MARKER; not imported, as that module imports softioc.
_READY_MARKER = "acq-sim-ioc: serving"
_OUTPUT_LINES = 200


@dataclass(frozen=True)
class LoopbackPorts:
    """The ports of an IOC that serves on 127.0.0.1 only.

    Each number is used for both TCP (the server) and UDP (name searches), as
    Channel Access does by default; PV Access does the same here.

    Attributes:
        ca: Channel Access server port.
        pva: PV Access server port.
    """

    ca: int
    pva: int

    @classmethod
    def free(cls) -> LoopbackPorts:
        """Two distinct ports currently free for TCP and UDP on 127.0.0.1."""
        ca = _free_port()
        pva = _free_port(avoid=ca)
        return cls(ca=ca, pva=pva)

    def environ(self) -> dict[str, str]:
        """The ``EPICS_*`` variables that confine servers and clients to these ports."""
        return {
            "EPICS_CA_AUTO_ADDR_LIST": "NO",
            "EPICS_CA_ADDR_LIST": f"127.0.0.1:{self.ca}",
            "EPICS_CAS_INTF_ADDR_LIST": "127.0.0.1",
            "EPICS_CA_SERVER_PORT": str(self.ca),
            "EPICS_PVA_AUTO_ADDR_LIST": "NO",
            "EPICS_PVA_ADDR_LIST": f"127.0.0.1:{self.pva}",
            "EPICS_PVAS_INTF_ADDR_LIST": "127.0.0.1",
            "EPICS_PVA_SERVER_PORT": str(self.pva),
            "EPICS_PVA_BROADCAST_PORT": str(self.pva),
        }


def _free_port(avoid: int = 0) -> int:
    """A port the OS gives for TCP that is also free for UDP (not ``avoid``)."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind(("127.0.0.1", 0))
            port: int = tcp.getsockname()[1]
            if port == avoid:
                continue
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind(("127.0.0.1", port))
                except OSError:
                    continue
            return port
    raise OSError("found no port free for both TCP and UDP on 127.0.0.1")


_process_ports: LoopbackPorts | None = None
_ports_lock = threading.Lock()


def loopback_ports(ca_port: int | None = None, pva_port: int | None = None) -> LoopbackPorts:
    """The ports of this process's test IOCs, chosen and exported on the first call.

    The first call takes the given ports, or free ones, and puts their ``EPICS_*``
    variables (see :meth:`LoopbackPorts.environ`) into ``os.environ``, so that the
    EPICS clients created afterwards in this process look for PVs on 127.0.0.1 at
    those ports only. Later calls return the same ports (see the module docstring).

    Args:
        ca_port: Channel Access port to use (with ``pva_port``); free ones if omitted.
        pva_port: PV Access port to use.

    Raises:
        ValueError: only one port was given, or the process already uses others.
    """
    global _process_ports
    if (ca_port is None) != (pva_port is None):
        raise ValueError("give both ca_port and pva_port, or neither")
    with _ports_lock:
        if _process_ports is None:
            if ca_port is not None and pva_port is not None:
                _process_ports = LoopbackPorts(ca=ca_port, pva=pva_port)
            else:
                _process_ports = LoopbackPorts.free()
            os.environ.update(_process_ports.environ())
        elif ca_port is not None and (ca_port, pva_port) != (
            _process_ports.ca,
            _process_ports.pva,
        ):
            raise ValueError(
                f"this process's EPICS clients already look for test IOCs at "
                f"ca={_process_ports.ca}, pva={_process_ports.pva} (their contexts read "
                f"the environment once); cannot switch to ca={ca_port}, pva={pva_port}"
            )
        return _process_ports


def random_pv_prefix() -> str:
    """A PV prefix unlikely to clash with any other IOC, e.g. ``"acqhqzkxmwe:"``."""
    return "acq" + "".join(random.choices(string.ascii_lowercase, k=8)) + ":"


class SimIoc:
    """The simulated beamline IOC as a child process (see ``_sim_ioc.py`` for its PVs).

    Use it as a context manager, sync or async (``async with`` starts and stops it in
    a worker thread, so the event loop keeps running), or call :meth:`start` and
    :meth:`stop`. Device prefixes: ``f"ca://{ioc.prefix}m1:"`` etc., or
    :meth:`pv_prefix`.

    Args:
        prefix: Prefix of every PV it serves; a random one if omitted.
        ports: Where it serves; :func:`loopback_ports` if omitted. Clients find it
            only if these are the ports in their environment (see the module
            docstring).
        startup_timeout: Seconds to wait for the IOC to serve its PVs.
        shutdown_timeout: Seconds to wait for a clean exit before SIGKILL.
    """

    def __init__(
        self,
        prefix: str | None = None,
        *,
        ports: LoopbackPorts | None = None,
        startup_timeout: float = 30.0,
        shutdown_timeout: float = 5.0,
    ) -> None:
        self.prefix = prefix if prefix is not None else random_pv_prefix()
        self.ports = ports if ports is not None else loopback_ports()
        self.startup_timeout = startup_timeout
        self.shutdown_timeout = shutdown_timeout
        self._process: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None
        self._ready = threading.Event()
        self._lines: collections.deque[str] = collections.deque(maxlen=_OUTPUT_LINES)

    def pv_prefix(self, device: str, protocol: str = "ca") -> str:
        """The prefix of a device's PVs, e.g. ``pv_prefix("m1", "pva")``.

        Args:
            device: ``"m1"``, ``"m2"`` (motors) or ``"sc"`` (the scaler).
            protocol: ``"ca"`` (Channel Access) or ``"pva"`` (PV Access).
        """
        if protocol not in ("ca", "pva"):
            raise ValueError(f"protocol must be 'ca' or 'pva', got {protocol!r}")
        return f"{protocol}://{self.prefix}{device}:"

    @property
    def running(self) -> bool:
        """True while the IOC process is alive."""
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        """The IOC process's id, once started."""
        return None if self._process is None else self._process.pid

    @property
    def output(self) -> str:
        """The last lines the IOC printed (stdout and stderr), for diagnostics."""
        return "".join(self._lines)

    def start(self) -> None:
        """Start the IOC and wait until it serves its PVs.

        Raises:
            RuntimeError: it is already running, or it exited before serving.
            TimeoutError: it did not serve within ``startup_timeout`` (it is killed).
        """
        if self.running:
            raise RuntimeError(f"the IOC {self.prefix!r} is already running")
        if self._process is not None:  # it died by itself: reap it, close its pipes
            self._process.wait()
            self._close(self._process)
        env = {**os.environ, **self.ports.environ(), "PYTHONUNBUFFERED": "1"}
        self._ready.clear()
        self._lines.clear()
        process = subprocess.Popen(
            [sys.executable, str(_SCRIPT), self.prefix],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        self._process = process
        self._reader = threading.Thread(
            target=self._read_output, args=(process,), name=f"ioc-{self.prefix}", daemon=True
        )
        self._reader.start()
        deadline = time.monotonic() + self.startup_timeout
        while not self._ready.wait(0.05):
            if process.poll() is not None:
                self._join_reader()
                raise RuntimeError(
                    f"the IOC {self.prefix!r} exited with code {process.returncode} before "
                    f"serving its PVs; its output:\n{self.output}"
                )
            if time.monotonic() > deadline:
                self.kill()
                raise TimeoutError(
                    f"the IOC {self.prefix!r} did not serve its PVs within "
                    f"{self.startup_timeout} s; its output:\n{self.output}"
                )

    def _read_output(self, process: subprocess.Popen[str]) -> None:
        stdout = process.stdout
        if stdout is None:  # pragma: no cover -- always a pipe
            return
        for line in stdout:
            self._lines.append(line)
            if _READY_MARKER in line:
                self._ready.set()

    def _join_reader(self) -> None:
        if self._reader is not None:
            self._reader.join(timeout=5.0)
            self._reader = None

    def stop(self) -> None:
        """Ask the IOC to exit (``exit()`` on stdin, then SIGTERM, then SIGKILL) and wait.

        Does nothing if it is not running.
        """
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            with contextlib.suppress(OSError):  # e.g. it just exited: a broken pipe
                if process.stdin is not None:
                    process.stdin.write("exit()\n")
                    process.stdin.close()
            try:
                process.wait(timeout=self.shutdown_timeout)
            except subprocess.TimeoutExpired:
                process.terminate()
                try:
                    process.wait(timeout=self.shutdown_timeout)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        self._close(process)

    def kill(self) -> None:
        """Kill the IOC at once (SIGKILL), as a crash would, and reap it."""
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            process.wait()
        self._close(process)

    def restart(self) -> None:
        """Stop the IOC if it runs, then start it again with the same prefix and ports."""
        self.stop()
        self.start()

    def _close(self, process: subprocess.Popen[str]) -> None:
        if process.stdin is not None and not process.stdin.closed:
            with contextlib.suppress(OSError):  # e.g. a broken pipe
                process.stdin.close()
        self._join_reader()
        if process.stdout is not None:
            process.stdout.close()

    def __enter__(self) -> SimIoc:
        if not self.running:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> SimIoc:
        if not self.running:
            await asyncio.to_thread(self.start)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await asyncio.to_thread(self.stop)

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"SimIoc({self.prefix!r}, ca={self.ports.ca}, pva={self.ports.pva}, {state})"


def start_test_ioc(
    prefix: str | None = None,
    *,
    ca_port: int | None = None,
    pva_port: int | None = None,
    startup_timeout: float = 30.0,
) -> SimIoc:
    """Start the simulated beamline IOC on loopback; return it once it serves its PVs.

    Use the result as a context manager to stop it::

        with start_test_ioc() as ioc:
            motor = Motor(ioc.pv_prefix("m1", "pva"), name="m1")
            ...

    Args:
        prefix: Prefix of every PV; a random one if omitted.
        ca_port: Channel Access port; ``loopback_ports(ca_port, pva_port)`` decides.
        pva_port: PV Access port.
        startup_timeout: Seconds to wait for the IOC to serve its PVs.

    Raises:
        ValueError: the ports are not this process's (see :func:`loopback_ports`).
        RuntimeError: the IOC exited before serving.
        TimeoutError: the IOC did not serve in time.
    """
    ports = loopback_ports(ca_port, pva_port)
    ioc = SimIoc(prefix, ports=ports, startup_timeout=startup_timeout)
    ioc.start()
    return ioc
