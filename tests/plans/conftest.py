"""Fixtures for the tests of acq.plans: the sim beamline, a message recorder, document views.

Helpers are fixtures (a test directory without ``__init__.py`` cannot import its
conftest), each returning a small object or function.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable
from typing import Any

import pytest
from acq.devices.sim import Motor, SimBeamline, sim_beamline
from support import Detector, DocChecker, DoneStatus, ManualStatus

from acq import Msg, PlanFinished, PlanStack, Return, RunEngine, RunResult, as_plan


@pytest.fixture
async def bl() -> SimBeamline:
    """The simulated beamline, motors instant (x and y: soft limits -10 .. 10)."""
    return await sim_beamline(instant=True)


@pytest.fixture
async def z() -> Motor:
    """A third instant motor (limits -10 .. 10), for grids of three axes."""
    motor = Motor("z", instant=True, limits=(-10.0, 10.0))
    await motor.connect()
    return motor


async def _recording(plan: Any, log: list[Msg]) -> AsyncGenerator[Any, Any]:
    """``plan``, driven through its own PlanStack so that every message it yields
    (sub-plans included, at any depth) is appended to ``log`` before the engine sees it."""
    stack = PlanStack(as_plan(plan))
    reply: Any = None
    error: BaseException | None = None
    while True:
        try:
            msg = await stack.step(reply, error)
        except PlanFinished as done:
            yield Return(done.result)
            return
        log.append(msg)
        error = None
        try:
            reply = yield msg
        except GeneratorExit:
            await stack.close()
            raise
        except BaseException as exc:  # noqa: BLE001 -- back into the plan, as the engine does
            error = exc


class Recorder:
    """Runs plans on ``RE`` and keeps every message they yielded, in order."""

    def __init__(self, RE: RunEngine) -> None:
        self.RE = RE
        self.msgs: list[Msg] = []

    def wrap(self, plan: Any) -> AsyncGenerator[Any, Any]:
        """``plan``, recording into ``self.msgs`` (run it yourself, e.g. in a task)."""
        return _recording(plan, self.msgs)

    async def __call__(self, plan: Any, **md: Any) -> RunResult:
        """Run ``plan`` to its end, recording."""
        return await self.RE(self.wrap(plan), **md)

    def commands(self, *, skip: tuple[str, ...] = ()) -> list[str]:
        """The commands yielded, without those in ``skip``."""
        return [m.command for m in self.msgs if m.command not in skip]

    def of(self, command: str) -> list[Msg]:
        """The messages with this command."""
        return [m for m in self.msgs if m.command == command]


@pytest.fixture
def recorder(RE: RunEngine) -> Recorder:
    """A :class:`Recorder` on the test's ``RE`` (documents checked by ``checker``)."""
    return Recorder(RE)


class Docs:
    """What the ``checker`` saw, by document type and stream."""

    def __init__(self, checker: DocChecker) -> None:
        self.checker = checker

    @property
    def start(self) -> dict[str, Any]:
        """The only Start document."""
        (start,) = self.checker.of("start")
        return start

    @property
    def stop(self) -> dict[str, Any]:
        """The only Stop document."""
        (stop,) = self.checker.of("stop")
        return stop

    def streams(self) -> list[str]:
        """Stream names in the order their descriptors came."""
        return [d["name"] for d in self.checker.of("descriptor")]

    def rows(self, stream: str = "primary") -> list[dict[str, Any]]:
        """The data of every event of ``stream`` (event pages unpacked), in order."""
        names = {d["uid"]: d["name"] for d in self.checker.of("descriptor")}
        rows: list[dict[str, Any]] = []
        for name, doc in self.checker.docs:
            if name == "event" and names[doc["descriptor"]] == stream:
                rows.append(dict(doc["data"]))
            elif name == "event_page" and names[doc["descriptor"]] == stream:
                keys = list(doc["data"])
                columns = zip(*(doc["data"][k] for k in keys), strict=True)
                rows += [dict(zip(keys, values, strict=True)) for values in columns]
        return rows

    def column(self, key: str, stream: str = "primary") -> list[Any]:
        """One data key of every event of ``stream``."""
        return [row[key] for row in self.rows(stream)]


@pytest.fixture
def docs(checker: DocChecker) -> Docs:
    """A :class:`Docs` view of the test's ``checker``."""
    return Docs(checker)


class Faulty(Detector):
    """A detector whose ``fail_at``-th trigger raises, and whose ``block_at``-th trigger
    returns a status that never finishes (``blocked`` is set then)."""

    def __init__(self, name: str, *, fail_at: int = 0, block_at: int = 0) -> None:
        super().__init__(name)
        self.fail_at = fail_at
        self.block_at = block_at
        self.triggers = 0
        self.blocked = asyncio.Event()

    def trigger(self) -> DoneStatus | ManualStatus:  # type: ignore[override]
        self.triggers += 1
        if self.triggers == self.fail_at:
            raise RuntimeError(f"{self.name}: trigger {self.triggers} failed")
        if self.triggers == self.block_at:
            self.blocked.set()
            return ManualStatus()
        return super().trigger()


@pytest.fixture
def faulty() -> Callable[..., Faulty]:
    """``faulty(fail_at=n)`` or ``faulty(block_at=n)``: a :class:`Faulty` detector."""
    return lambda **kwargs: Faulty("faulty", **kwargs)


@pytest.fixture
def readback() -> Callable[[Motor], Any]:
    """``await readback(motor)``: where a sim motor is."""

    async def read(motor: Motor) -> float:
        return await motor.user_readback.get_value()

    return read
