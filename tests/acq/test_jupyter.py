"""``await RE(plan)`` in a real IPython kernel: top-level await, one engine across cells."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from jupyter_client.blocking.client import BlockingKernelClient
from kernels import run_cell, start_kernel

pytestmark = pytest.mark.kernel


@pytest.fixture(scope="module")
def kernel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BlockingKernelClient]:
    """A real kernel for this module (its client)."""
    with start_kernel(tmp_path_factory.mktemp("kernel")) as started:
        yield started.client


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
    # relative to the first: the default catalog (shared by the test session) numbers runs
    print("scan_ids", [s - scan_ids[0] for s in scan_ids], RE.md["scan_id"] - scan_ids[0])
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
    assert "scan_ids [0, 1] 1" in second.stdout  # consecutive, and RE.md has the last


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
