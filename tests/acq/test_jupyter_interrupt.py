"""A Jupyter kernel interrupt while ``await RE(plan)`` runs in a cell: pause, then resume.

The kernel-starting fixture is the one of ``test_jupyter.py`` (copied: that module's
fixture is module-scoped and yields only the client; here the KernelManager is needed too,
to interrupt the kernel).
"""

from __future__ import annotations

import os
import queue
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager

CELL_DEADLINE = 30.0  # seconds for one cell, from execute request to reply


@dataclass
class Kernel:
    manager: KernelManager
    client: BlockingKernelClient


@dataclass
class CellResult:
    """What one executed cell produced."""

    status: str
    stdout: str = ""
    stderr: str = ""
    error: dict[str, Any] = field(default_factory=dict[str, Any])


def _native_python3_spec_runs_this_python(ksm: KernelSpecManager) -> bool:
    spec = ksm.get_kernel_spec("python3")
    # jupyter_client replaces a leading "python" of the native spec with sys.executable
    return spec.argv[:3] == ["python", "-m", "ipykernel_launcher"] or spec.argv[0] == sys.executable


@pytest.fixture(scope="module")
def kernel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kernel]:
    """A real ipykernel running this venv's Python, talking over IPC sockets in a tmp dir."""
    tmp: Path = tmp_path_factory.mktemp("kernel")
    ksm = KernelSpecManager()
    km = KernelManager(kernel_name="python3", kernel_spec_manager=ksm, transport="ipc")
    if not _native_python3_spec_runs_this_python(ksm):
        # a "python3" spec from elsewhere: run ipykernel with this interpreter instead
        km.kernel_spec.argv = [
            sys.executable,
            "-m",
            "ipykernel_launcher",
            "-f",
            "{connection_file}",
        ]
    km.ip = str(tmp / "kernel-ipc")  # IPC: socket files are named <ip>-<port>
    km.connection_file = str(tmp / "kernel.json")
    env = {
        **os.environ,
        "IPYTHONDIR": str(tmp / "ipython"),
        "JUPYTER_RUNTIME_DIR": str(tmp / "runtime"),
        "PYDEVD_DISABLE_FILE_VALIDATION": "1",
    }
    client: BlockingKernelClient | None = None
    km.start_kernel(env=env)
    try:
        client = km.client()
        client.start_channels()
        client.wait_for_ready(timeout=60)
        yield Kernel(km, client)
    finally:
        if client is not None:
            client.stop_channels()
        km.shutdown_kernel(now=True)
        km.cleanup_resources()


class Cell:
    """A cell sent for execution; its iopub output is read as it comes, with deadlines."""

    def __init__(self, kc: BlockingKernelClient, code: str) -> None:
        self.kc = kc
        self.msg_id = kc.execute(textwrap.dedent(code), store_history=False)
        self.end = time.monotonic() + CELL_DEADLINE
        self.out: list[str] = []
        self.err: list[str] = []
        self.error: dict[str, Any] = {}
        self.idle = False

    def _next(self) -> None:
        remaining = self.end - time.monotonic()
        if remaining <= 0:
            pytest.fail(f"the cell took more than {CELL_DEADLINE} s; out={self.out} err={self.err}")
        try:
            msg = self.kc.get_iopub_msg(timeout=remaining)
        except queue.Empty:
            return
        if msg["parent_header"].get("msg_id") != self.msg_id:
            return
        kind, content = msg["header"]["msg_type"], msg["content"]
        if kind == "stream":
            (self.out if content["name"] == "stdout" else self.err).append(content["text"])
        elif kind == "error":
            self.error = dict(content)
        elif kind == "status" and content["execution_state"] == "idle":
            self.idle = True

    def wait_for(self, stream: str, text: str) -> None:
        """Read output until ``text`` appears on ``stream`` ('stdout' or 'stderr')."""
        while text not in "".join(self.out if stream == "stdout" else self.err):
            if self.idle:
                pytest.fail(f"the cell ended without {text!r}; out={self.out} err={self.err}")
            self._next()

    def result(self) -> CellResult:
        """Read output until the kernel is idle, then the cell's execute_reply."""
        while not self.idle:
            self._next()
        while True:
            remaining = self.end - time.monotonic()
            if remaining <= 0:
                pytest.fail(f"no execute_reply for the cell within {CELL_DEADLINE} s")
            try:
                reply = self.kc.get_shell_msg(timeout=remaining)
            except queue.Empty:
                continue
            if reply["parent_header"].get("msg_id") == self.msg_id:
                return CellResult(
                    reply["content"]["status"],
                    "".join(self.out),
                    "".join(self.err),
                    {**self.error, **reply["content"]},
                )


DEFINE = """
    import asyncio
    import time
    from acq import Msg, RunEngine

    class Counter:
        def __init__(self, name):
            self.name, self.parent, self.value = name, None, 0
        def describe(self):
            return {self.name: {"source": "mem", "dtype": "integer", "shape": []}}
        def read(self):
            return {self.name: {"value": self.value, "timestamp": time.time()}}
        def set(self, value):
            self.value = value

    counter = Counter("counter")
    go = asyncio.Event()

    async def announce():
        print("PLAN RUNNING", flush=True)

    async def hold():
        # the first point waits until a later cell lets it go (at most 20 s), so that
        # both interrupts surely land before the plan reaches its next checkpoint
        try:
            await asyncio.wait_for(go.wait(), 20)
        except asyncio.TimeoutError:
            pass

    def long_plan():
        yield Msg("open_run", plan_name="long_plan")
        yield Msg("await", announce)
        yield Msg("checkpoint")
        yield Msg("await", hold)
        for i in range(50):
            yield Msg("checkpoint")
            yield Msg("set", counter, i)
            yield Msg("sleep", None, 0.1)
            yield Msg("create", name="primary")
            yield Msg("read", counter)
            yield Msg("save")
        yield Msg("close_run")

    RE = RunEngine()
    events = []
    RE.subscribe(lambda name, doc: events.append(doc) if name == "event" else None)
    print("defined", RE.state.value)
"""

RESUME = """
    go.set()
    result = await RE.resume()
    values = [e["data"]["counter"] for e in events]
    print(result.exit_status, len(events), values == list(range(50)), RE.state.value)
"""


@pytest.mark.kernel
def test_two_kernel_interrupts_pause_the_cell_and_resume_completes_every_point(
    kernel: Kernel,
) -> None:
    kc = kernel.client
    defined = Cell(kc, DEFINE).result()
    assert defined.status == "ok", defined.error
    assert "defined idle" in defined.stdout

    running = Cell(kc, "await RE(long_plan())")
    running.wait_for("stdout", "PLAN RUNNING")
    kernel.manager.interrupt_kernel()
    running.wait_for("stderr", "deferred pause")
    kernel.manager.interrupt_kernel()
    paused = running.result()
    assert paused.status == "error"
    assert paused.error["ename"] == "RunEngineInterrupted", paused.error
    assert "pausing now" in paused.stderr

    state = Cell(kc, "print('state', RE.state.value, len(events))").result()
    assert state.status == "ok", state.error
    assert "state paused 0" in state.stdout  # paused now: before the first point's event

    resumed = Cell(kc, RESUME).result()
    assert resumed.status == "ok", resumed.error
    assert "success 50 True idle" in resumed.stdout
