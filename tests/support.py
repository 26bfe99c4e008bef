"""Small in-memory devices and a document checker shared by acq's own tests.

The devices follow ``bluesky.protocols`` and do no I/O; some are sync, some async, so that
both forms of every device method are exercised.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path
from types import ModuleType
from typing import Any

import event_model
from event_model import DocumentNames

CHROMIUM = "/usr/bin/chromium"  # Debian's chromium, driven by Playwright in the browser tests


class DoneStatus:
    """A finished status (bluesky.protocols.Status)."""

    def __init__(self, success: bool = True, exc: BaseException | None = None) -> None:
        self.done = True
        self.success = success
        self._exc = exc

    def add_callback(self, callback: Any) -> None:
        callback(self)

    def exception(self, timeout: float | None = None) -> BaseException | None:
        return self._exc


class ManualStatus:
    """A status that finishes when the test says so (``finish``), from any thread."""

    def __init__(self) -> None:
        self.done = False
        self.success = False
        self._exc: BaseException | None = None
        self._callbacks: list[Any] = []
        self._lock = threading.Lock()

    def finish(self, exc: BaseException | None = None) -> None:
        with self._lock:
            self.done = True
            self.success = exc is None
            self._exc = exc
            callbacks = list(self._callbacks)
        for cb in callbacks:
            cb(self)

    def add_callback(self, callback: Any) -> None:
        with self._lock:
            if not self.done:
                self._callbacks.append(callback)
                return
        callback(self)

    def exception(self, timeout: float | None = None) -> BaseException | None:
        return self._exc


class ThreadStatus(ManualStatus):
    """A status finished by another thread after ``delay`` seconds (like ophyd v1)."""

    def __init__(self, delay: float, success: bool = True) -> None:
        super().__init__()
        error = None if success else RuntimeError("thread status failed")
        threading.Timer(delay, self.finish, args=(error,)).start()


class Signal:
    """A sync readable/movable value (a trivial in-memory motor or detector)."""

    def __init__(self, name: str, value: Any = 0.0, units: str = "mm") -> None:
        self.name = name
        self.parent = None
        self.value = value
        self.units = units
        self.log: list[tuple[str, Any]] = []

    def describe(self) -> dict[str, Any]:
        dtype = "number" if isinstance(self.value, int | float) else "string"
        return {
            self.name: {
                "source": f"mem://{self.name}",
                "dtype": dtype,
                "shape": [],
                "units": self.units,
                "precision": 3,
            }
        }

    def read(self) -> dict[str, Any]:
        self.log.append(("read", None))
        return {self.name: {"value": self.value, "timestamp": time.time()}}

    def set(self, value: Any) -> DoneStatus:
        self.log.append(("set", value))
        self.value = value
        return DoneStatus()

    def trigger(self) -> DoneStatus:
        self.log.append(("trigger", None))
        return DoneStatus()

    def stop(self, *, success: bool = False) -> None:
        self.log.append(("stop", success))

    @property
    def hints(self) -> dict[str, Any]:
        return {"fields": [self.name]}


class AsyncSignal(Signal):
    """The same, with async methods (like ophyd-async devices)."""

    async def describe(self) -> dict[str, Any]:  # type: ignore[override]
        await asyncio.sleep(0)
        return super().describe()

    async def read(self) -> dict[str, Any]:  # type: ignore[override]
        await asyncio.sleep(0)
        return super().read()


class Detector(Signal):
    """A detector with configuration (exposure) and stage/unstage."""

    def __init__(self, name: str, value: float = 1.0) -> None:
        super().__init__(name, value, units="counts")
        self.exposure = 0.1
        self.staged = False

    def describe_configuration(self) -> dict[str, Any]:
        return {f"{self.name}_exposure": {"source": "mem", "dtype": "number", "shape": []}}

    def read_configuration(self) -> dict[str, Any]:
        return {f"{self.name}_exposure": {"value": self.exposure, "timestamp": time.time()}}

    def configure(self, exposure: float) -> tuple[dict[str, Any], dict[str, Any]]:
        old = self.read_configuration()
        self.exposure = exposure
        return old, self.read_configuration()

    def stage(self) -> list[Any]:
        self.log.append(("stage", None))
        self.staged = True
        return [self]

    def unstage(self) -> list[Any]:
        self.log.append(("unstage", None))
        self.staged = False
        return [self]


def _numpy_to_list(value: Any) -> Any:
    if type(value).__module__ == "numpy":
        return value.tolist()
    raise TypeError(f"{type(value).__name__} {value!r} is not JSON data")


class DocChecker:
    """A subscriber that checks every document against event-model's JSON schema and the
    engine's ordering rules; ``problems`` lists every violation seen."""

    def __init__(self) -> None:
        self.docs: list[tuple[str, dict[str, Any]]] = []
        self.problems: list[str] = []
        self._open: set[str] = set()
        self._stopped: Counter[str] = Counter()
        self._descriptor_run: dict[str, str] = {}
        self._descriptor_stream: dict[str, str] = {}
        self._seq: dict[tuple[str, str], int] = defaultdict(int)

    def __call__(self, name: str, doc: dict[str, Any]) -> None:
        self.docs.append((name, doc))
        try:
            json.dumps(doc, default=_numpy_to_list)
        except TypeError as exc:
            self.problems.append(f"{name} is not plain data (JSON): {exc}")
        try:
            event_model.schema_validators[DocumentNames[name]].validate(doc)
        except Exception as exc:  # noqa: BLE001 -- recorded as a problem
            self.problems.append(f"{name} fails event-model's schema: {exc}")
        if name == "start":
            self._open.add(doc["uid"])
        elif name == "stop":
            run = doc["run_start"]
            self._stopped[run] += 1
            if run not in self._open:
                self.problems.append(f"stop for a run that is not open: {run}")
            self._open.discard(run)
            if self._stopped[run] > 1:
                self.problems.append(f"second stop for run {run}")
        elif name == "descriptor":
            if doc["run_start"] not in self._open:
                self.problems.append("descriptor outside its run")
            self._descriptor_run[doc["uid"]] = doc["run_start"]
            self._descriptor_stream[doc["uid"]] = doc.get("name", "")
        elif name in ("event", "event_page"):
            desc = doc["descriptor"]
            run = self._descriptor_run.get(desc)
            if run is None or run not in self._open:
                self.problems.append(f"{name} outside its run or before its descriptor")
                return
            key = (run, self._descriptor_stream[desc])
            seqs = [doc["seq_num"]] if name == "event" else list(doc["seq_num"])
            for s in seqs:
                if s != self._seq[key] + 1:
                    self.problems.append(f"seq_num {s} after {self._seq[key]} in {key}")
                self._seq[key] = s

    def names(self) -> list[str]:
        return [n for n, _ in self.docs]

    def of(self, name: str) -> list[dict[str, Any]]:
        return [d for n, d in self.docs if n == name]

    def assert_clean(self) -> None:
        assert not self.problems, self.problems
        assert not self._open, f"runs left without a stop: {self._open}"


def load_script(path: Path, name: str) -> ModuleType:
    """The Python file ``path`` (a script outside any package) as the module ``name``."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None, path
    assert spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
