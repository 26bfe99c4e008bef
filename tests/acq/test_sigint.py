"""Ctrl-C (SIGINT) while ``await RE(plan)`` runs under ``asyncio.run``, in a real process.

The first SIGINT asks for a pause at the next checkpoint, a second one (within 10 s) for
a pause now; ``await RE(...)`` then raises ``RunEngineInterrupted`` and the plan can be
resumed or aborted. The SIGINT handler that was there before (``asyncio.run``'s own) is
put back when the engine lets go.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

PROCESS_DEADLINE = 30.0  # seconds for a whole script run
LINE_DEADLINE = 15.0  # seconds to wait for any one expected line

SCRIPT = r'''
import asyncio
import signal
import sys
import time

from acq import Msg, RunEngine, RunEngineInterrupted

N_POINTS = 50


class Counter:
    """A readable in-memory device."""

    def __init__(self, name):
        self.name, self.parent, self.value = name, None, 0

    def describe(self):
        return {self.name: {"source": "mem", "dtype": "integer", "shape": []}}

    def read(self):
        return {self.name: {"value": self.value, "timestamp": time.time()}}

    def set(self, value):
        self.value = value


async def announce():
    print("RUNNING", flush=True)


def long_plan(counter, first_sleep):
    yield Msg("open_run", plan_name="long_plan")
    yield Msg("checkpoint")
    yield Msg("await", announce)
    yield Msg("sleep", None, first_sleep)
    for i in range(N_POINTS):
        yield Msg("checkpoint")
        yield Msg("set", counter, i)
        yield Msg("sleep", None, 0.2)
        yield Msg("create", name="primary")
        yield Msg("read", counter)
        yield Msg("save")
    yield Msg("close_run")


async def main(mode):
    saved = signal.getsignal(signal.SIGINT)
    RE = RunEngine()
    stops, events = [], []

    def store(name, doc):  # critical: has every document by the time an await returns
        if name == "stop":
            stops.append(doc)
        elif name == "event":
            events.append(doc)

    RE.subscribe(store, critical=True)
    counter = Counter("counter")
    first_sleep = 10.0 if mode == "double" else 0.2
    try:
        await RE(long_plan(counter, first_sleep))
    except RunEngineInterrupted as exc:
        print(f"PAUSED state={RE.state.value} events={len(events)}", flush=True)
        print(f"AT_CHECKPOINT {'checkpoint' in str(exc)}", flush=True)
        print(f"HANDLER_WHILE_PAUSED restored={signal.getsignal(signal.SIGINT) == saved}",
              flush=True)
    else:
        print("NOT_PAUSED", flush=True)
        return
    if mode == "double":
        await RE.abort("ctrl-c")
        stop = stops[-1] if stops else {}
        print(f"STOP exit_status={stop.get('exit_status')} reason={stop.get('reason')}",
              flush=True)
        print(f"HANDLER restored={signal.getsignal(signal.SIGINT) == saved}", flush=True)
    else:
        result = await RE.resume()
        values = [e["data"]["counter"] for e in events]
        seq = [e["seq_num"] for e in events]
        print(f"RESUMED exit_status={result.exit_status} events={len(events)} "
              f"points_once={values == list(range(N_POINTS))} "
              f"seq_ok={seq == list(range(1, N_POINTS + 1))} stops={len(stops)}", flush=True)
        print(f"HANDLER restored={signal.getsignal(signal.SIGINT) == saved}", flush=True)
    print(f"DONE state={RE.state.value}", flush=True)


asyncio.run(main(sys.argv[1]))
'''


class Script:
    """A running script whose stdout and stderr lines are read by two threads."""

    def __init__(self, path: Path, *args: str) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, str(path), *args],
            cwd=path.parent,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: dict[str, list[str]] = {"stdout": [], "stderr": []}
        self._queues: dict[str, queue.Queue[str | None]] = {
            "stdout": queue.Queue(),
            "stderr": queue.Queue(),
        }
        self._threads = [
            threading.Thread(target=self._pump, args=(name,), daemon=True)
            for name in ("stdout", "stderr")
        ]
        for thread in self._threads:
            thread.start()

    def _pump(self, name: str) -> None:
        stream = self.proc.stdout if name == "stdout" else self.proc.stderr
        assert stream is not None
        for line in stream:
            self._queues[name].put(line.rstrip("\n"))
        self._queues[name].put(None)

    def expect(self, name: str, text: str, deadline: float = LINE_DEADLINE) -> str:
        """Read ``name``'s lines until one contains ``text``; return it."""
        end = time.monotonic() + deadline
        while True:
            remaining = end - time.monotonic()
            if remaining <= 0:
                pytest.fail(f"no {text!r} on {name} within {deadline} s; {self.lines}")
            try:
                line = self._queues[name].get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                pytest.fail(f"{name} ended without {text!r}; {self.lines}")
            self.lines[name].append(line)
            if text in line:
                return line

    def finish(self, deadline: float = PROCESS_DEADLINE) -> int:
        """Wait for the exit; gather the rest of the output."""
        code = self.proc.wait(timeout=deadline)
        for thread in self._threads:
            thread.join(timeout=5)
        for name, q in self._queues.items():
            while True:
                try:
                    line = q.get_nowait()
                except queue.Empty:
                    break
                if line is not None:
                    self.lines[name].append(line)
        return code

    def close(self) -> None:
        """Kill the process if it still runs; close its pipes."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        for thread in self._threads:
            thread.join(timeout=5)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


@pytest.fixture
def script(tmp_path: Path) -> Path:
    path = tmp_path / "sigint_plan.py"
    path.write_text(SCRIPT)
    return path


def test_two_sigints_pause_now_then_abort_restores_the_previous_handler(script: Path) -> None:
    run = Script(script, "double")
    try:
        run.expect("stdout", "RUNNING")
        run.proc.send_signal(signal.SIGINT)
        run.expect("stderr", "deferred pause")
        run.proc.send_signal(signal.SIGINT)
        run.expect("stderr", "pausing now")
        # paused now, in the middle of the first point's 10 s sleep: no event yet (a
        # deferred pause would have waited for the next checkpoint, after an event)
        assert run.expect("stdout", "PAUSED") == "PAUSED state=paused events=0"
        assert run.expect("stdout", "HANDLER_WHILE_PAUSED") == (
            "HANDLER_WHILE_PAUSED restored=True"
        )
        assert run.expect("stdout", "STOP") == "STOP exit_status=abort reason=ctrl-c"
        assert run.expect("stdout", "HANDLER") == "HANDLER restored=True"
        assert run.expect("stdout", "DONE") == "DONE state=idle"
        code = run.finish()
    finally:
        run.close()
    assert code == 0, run.lines


def test_one_sigint_pauses_at_the_next_checkpoint_and_resume_completes(script: Path) -> None:
    run = Script(script, "single")
    try:
        run.expect("stdout", "RUNNING")
        run.proc.send_signal(signal.SIGINT)
        run.expect("stderr", "deferred pause")
        paused = run.expect("stdout", "PAUSED")
        assert paused.startswith("PAUSED state=paused events=")
        assert int(paused.rsplit("=", 1)[1]) < 50
        assert run.expect("stdout", "AT_CHECKPOINT") == "AT_CHECKPOINT True"
        assert run.expect("stdout", "HANDLER_WHILE_PAUSED") == (
            "HANDLER_WHILE_PAUSED restored=True"
        )
        assert run.expect("stdout", "RESUMED") == (
            "RESUMED exit_status=success events=50 points_once=True seq_ok=True stops=1"
        )
        assert run.expect("stdout", "HANDLER") == "HANDLER restored=True"
        assert run.expect("stdout", "DONE") == "DONE state=idle"
        code = run.finish()
    finally:
        run.close()
    assert code == 0, run.lines
    assert not any("pausing now" in line for line in run.lines["stderr"])


BLOCKING_SCRIPT = r'''
import asyncio
import signal
import sys
import time

from acq import Msg, RunEngine


class SlowDetector:
    """A classic-style device whose read blocks the event loop (for a minute)."""

    name, parent = "slow", None

    def describe(self):
        return {"slow": {"source": "mem", "dtype": "number", "shape": []}}

    def read(self):
        print("BLOCKING", flush=True)
        time.sleep(60)
        return {"slow": {"value": 1.0, "timestamp": time.time()}}


def plan(det):
    yield Msg("open_run", plan_name="blocking")
    yield Msg("checkpoint")
    yield Msg("create", name="primary")
    yield Msg("read", det)
    yield Msg("save")
    yield Msg("close_run")


async def main():
    saved = signal.getsignal(signal.SIGINT)
    RE = RunEngine(catalog=None)
    stops = []
    RE.subscribe(lambda name, doc: stops.append(doc) if name == "stop" else None,
                 critical=True)
    started = time.monotonic()
    try:
        await RE(plan(SlowDetector()))
    except KeyboardInterrupt:
        print("KEYBOARD_INTERRUPT", flush=True)
    stop = stops[-1] if stops else {}
    print(f"STOP exit_status={stop.get('exit_status')} quick={time.monotonic() - started < 30}",
          flush=True)
    print(f"HANDLER restored={signal.getsignal(signal.SIGINT) == saved}", flush=True)
    print(f"DONE state={RE.state.value}", flush=True)


asyncio.run(main())
'''


def test_ctrl_c_reaches_a_device_that_blocks_the_loop_and_the_run_gets_its_stop(
    tmp_path: Path,
) -> None:
    path = tmp_path / "blocking_plan.py"
    path.write_text(BLOCKING_SCRIPT)
    run = Script(path)
    try:
        run.expect("stdout", "BLOCKING")
        run.proc.send_signal(signal.SIGINT)  # the loop is blocked: it cannot take this one
        time.sleep(1.5)  # what "the loop has not taken it" means (acq's BLOCKED_SECONDS)
        run.proc.send_signal(signal.SIGINT)  # so this one interrupts the blocking read
        run.expect("stderr", "event loop is blocked")
        assert run.expect("stdout", "KEYBOARD_INTERRUPT") == "KEYBOARD_INTERRUPT"
        assert run.expect("stdout", "STOP") == "STOP exit_status=abort quick=True"
        assert run.expect("stdout", "HANDLER") == "HANDLER restored=True"
        assert run.expect("stdout", "DONE") == "DONE state=idle"
        code = run.finish()
    finally:
        run.close()
    assert code == 0, run.lines
