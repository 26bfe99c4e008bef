"""A real Jupyter kernel for tests: start it on IPC sockets, run cells with deadlines.

Used by tests/acq/test_jupyter.py and tests/acq/test_jupyter_interrupt.py.
"""

from __future__ import annotations

import contextlib
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
    """A started kernel: its manager (to interrupt it) and a blocking client."""

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


@contextlib.contextmanager
def start_kernel(tmp: Path) -> Iterator[Kernel]:
    """A real ipykernel running this venv's Python, talking over IPC sockets in ``tmp``."""
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


def run_cell(kc: BlockingKernelClient, code: str) -> CellResult:
    """Execute ``code``; gather its iopub output and its execute_reply, matched by msg_id."""
    return Cell(kc, code).result()
