"""A Jupyter kernel interrupt while ``await RE(plan)`` runs in a cell: pause, then resume.

The kernel-starting fixture is the one of ``test_jupyter.py`` (copied: that module's
fixture is module-scoped and yields only the client; here the KernelManager is needed too,
to interrupt the kernel).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kernels import Cell, Kernel, start_kernel


@pytest.fixture(scope="module")
def kernel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kernel]:
    """A real kernel for this module."""
    with start_kernel(tmp_path_factory.mktemp("kernel")) as started:
        yield started


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
