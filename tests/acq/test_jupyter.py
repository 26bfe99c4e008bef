"""``await RE(plan)`` in a real IPython kernel: top-level await, one engine across cells."""

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

pytestmark = pytest.mark.kernel

CELL_DEADLINE = 30.0  # seconds for one cell, from execute request to reply


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
def kernel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BlockingKernelClient]:
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
        yield client
    finally:
        if client is not None:
            client.stop_channels()
        km.shutdown_kernel(now=True)
        km.cleanup_resources()


def run_cell(kc: BlockingKernelClient, code: str, deadline: float = CELL_DEADLINE) -> CellResult:
    """Execute ``code``; gather its iopub output and its execute_reply, matched by msg_id."""
    msg_id = kc.execute(textwrap.dedent(code), store_history=False)
    end = time.monotonic() + deadline
    out: list[str] = []
    err: list[str] = []
    error: dict[str, Any] = {}
    idle = False
    while not idle:
        remaining = end - time.monotonic()
        if remaining <= 0:
            pytest.fail(f"no 'idle' status for the cell within {deadline} s; output so far: {out}")
        try:
            msg = kc.get_iopub_msg(timeout=remaining)
        except queue.Empty:
            continue
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        kind, content = msg["header"]["msg_type"], msg["content"]
        if kind == "stream":
            (out if content["name"] == "stdout" else err).append(content["text"])
        elif kind == "error":
            error = dict(content)
        elif kind == "status" and content["execution_state"] == "idle":
            idle = True
    while True:
        remaining = end - time.monotonic()
        if remaining <= 0:
            pytest.fail(f"no execute_reply for the cell within {deadline} s")
        try:
            reply = kc.get_shell_msg(timeout=remaining)
        except queue.Empty:
            continue
        if reply["parent_header"].get("msg_id") == msg_id:
            return CellResult(reply["content"]["status"], "".join(out), "".join(err), error)


DEFINE = """
    import time
    from acq import Msg, Return, RunEngine

    class Motor:
        def __init__(self, name):
            self.name, self.parent, self.value = name, None, 0.0
        def describe(self):
            return {self.name: {"source": "mem", "dtype": "number", "shape": []}}
        def read(self):
            return {self.name: {"value": self.value, "timestamp": time.time()}}
        def set(self, value):
            self.value = value

    class Det(Motor):
        def __init__(self, name, motor):
            super().__init__(name)
            self.motor = motor
        def trigger(self):
            self.value = 10.0 * self.motor.value

    motor = Motor("motor")
    det = Det("det", motor)

    def plan(points):
        yield Msg("open_run", plan_name="cell_plan")
        total = 0.0
        for x in points:
            yield Msg("set", motor, x, group="m")
            yield Msg("wait", group="m")
            yield Msg("trigger", det)
            yield Msg("create", name="primary")
            yield Msg("read", motor)
            reading = yield Msg("read", det)
            yield Msg("save")
            total += reading["det"]["value"]
        yield Msg("close_run")
        return total

    RE = RunEngine()
    documents = []
    scan_ids = []

    def collect(name, doc):
        documents.append(name)
        if name == "start":
            scan_ids.append(doc["scan_id"])

    RE.subscribe(collect)
    print("defined", type(RE).__name__)
"""

FIRST_RUN = """
    result = await RE(plan([1.0, 2.0, 3.0]))
    print("exit_status", result.exit_status)
    print("plan_result", result.plan_result)
    print("documents", len(documents), documents[0], documents[-1])
"""

SECOND_RUN = """
    documents.clear()
    result2 = await RE(plan([5.0]))
    print("exit_status", result2.exit_status)
    print("documents", len(documents))
    print("scan_ids", scan_ids, RE.md["scan_id"])
"""


def test_top_level_await_runs_plans_in_a_kernel_and_reuses_the_engine(
    kernel: BlockingKernelClient,
) -> None:
    defined = run_cell(kernel, DEFINE)
    assert defined.status == "ok", defined.error
    assert "defined RunEngine" in defined.stdout

    first = run_cell(kernel, FIRST_RUN)
    assert first.status == "ok", first.error
    assert "exit_status success" in first.stdout
    assert "plan_result 60.0" in first.stdout
    # start, descriptor, 3 events, stop; all taken by the subscriber before the await ends
    assert "documents 6 start stop" in first.stdout

    second = run_cell(kernel, SECOND_RUN)
    assert second.status == "ok", second.error
    assert "exit_status success" in second.stdout
    assert "documents 4" in second.stdout
    assert "scan_ids [1, 2] 2" in second.stdout


def test_a_failing_plan_fails_the_cell_and_leaves_the_engine_usable(
    kernel: BlockingKernelClient,
) -> None:
    setup = run_cell(
        kernel, "from acq import Msg, RunEngine\nRE = RunEngine()\nprint('fresh', RE.state.value)"
    )
    assert setup.status == "ok", setup.error
    assert "fresh idle" in setup.stdout

    failed = run_cell(kernel, "await RE([Msg('teleport')])")
    assert failed.status == "error"
    assert failed.error["ename"] == "UnknownCommandError"

    after = run_cell(
        kernel,
        """
        r = await RE([Msg("open_run"), Msg("close_run")])
        print("after", r.exit_status, RE.state.value)
        """,
    )
    assert after.status == "ok", after.error
    assert "after success idle" in after.stdout
