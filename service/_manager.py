"""The queue runner and the engine's controls: what the API's routes call.

States, as queueserver names them (``manager_state``): ``idle``, ``executing_queue``,
``paused``. The runner is one task, owned by the manager: it takes the front item, runs
its plan with ``await RE(plan)`` on this event loop and records the result, until the
queue is empty or a stop was asked for. A pause is a state, not a failure: the runner
waits for ``resume``, ``stop``, ``abort`` or ``halt`` and the item stays running.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Mapping
from typing import Any, Literal

from acq import RunAborted, RunEngine, RunEngineInterrupted, RunResult, StateError

from ._plans import PlanRegistry
from ._store import Item, QueueStore, result

__all__ = ["QueueManager", "Refused"]

logger = logging.getLogger("acq.service")
Control = Literal["resume", "stop", "abort", "halt"]
_ENDED = {"stop": "stopped", "abort": "aborted", "halt": "halted"}


class Refused(Exception):
    """A valid request that cannot be done now (e.g. resume while nothing is paused)."""


def new_uid() -> str:
    """A fresh uid for items and change markers."""
    return str(uuid.uuid4())


class QueueManager:
    """Runs the stored queue on ``RE``; keeps the change markers clients poll."""

    def __init__(self, RE: RunEngine, store: QueueStore, registry: PlanRegistry) -> None:
        self.RE = RE
        self.store = store
        self.registry = registry
        self.manager_state = "idle"
        self.stop_pending = False
        self.pause_pending = False
        self.plan_queue_uid = new_uid()
        self.plan_history_uid = new_uid()
        self.allowed_uid = new_uid()
        self.running_item: Item = {}
        self._controls: asyncio.Queue[Control] = asyncio.Queue()
        self._ending: Control | None = None
        self._runner: asyncio.Task[None] | None = None

    # -- queue --------------------------------------------------------------------------
    async def add(self, item: Mapping[str, Any], pos: Any, before: Any, after: Any) -> Item:
        """Check ``item`` (raises ItemError) and queue it; the stored item is returned."""
        self.registry.check(item.get("name"), item.get("args", []), item.get("kwargs", {}))
        stored: Item = {
            "name": item["name"],
            "args": list(item.get("args", [])),
            "kwargs": dict(item.get("kwargs", {})),
            "item_type": "plan",
            "user": str(item.get("user", "anonymous")),
            "user_group": str(item.get("user_group", "primary")),
            "item_uid": new_uid(),
        }
        await self.store.add(stored, pos=pos, before=before, after=after)
        self.plan_queue_uid = new_uid()
        return stored

    async def changed_queue(self) -> None:
        """Mark the queue changed (after a remove or a clear)."""
        self.plan_queue_uid = new_uid()

    async def clear_history(self) -> None:
        """Forget the history."""
        await self.store.clear_history()
        self.plan_history_uid = new_uid()

    def start(self) -> None:
        """Run the queue's items one after another (until empty or stopped)."""
        if self._runner is not None and not self._runner.done():
            raise Refused("the queue is already running")
        self.manager_state = "executing_queue"
        self.stop_pending = False
        self._runner = asyncio.get_running_loop().create_task(self._run_queue())

    def stop(self) -> None:
        """Stop the queue after the running item."""
        if self.manager_state == "idle":
            raise Refused("the queue is not running")
        self.stop_pending = True

    async def close(self) -> None:
        """Cancel the runner (its item's run ends with exit_status 'abort')."""
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner

    # -- the engine ---------------------------------------------------------------------
    def pause(self, option: str) -> None:
        """Pause the running plan: ``deferred`` (next checkpoint) or ``immediate``."""
        if option not in ("deferred", "immediate"):
            raise ValueError(f"option: 'deferred' or 'immediate', not {option!r}")
        if self.manager_state != "executing_queue" or self.RE.state.value != "running":
            raise Refused(f"no plan is running to pause (the engine is {self.RE.state.value})")
        self.RE.request_pause(defer=option == "deferred")
        self.pause_pending = True

    def control(self, what: Control) -> None:
        """Resume a paused plan, or stop, abort or halt the running or paused one."""
        if self.manager_state == "paused":
            self._controls.put_nowait(what)
            return
        if what == "resume" or self.manager_state != "executing_queue":
            raise Refused(f"cannot {what}: the engine is {self.RE.state.value}")
        self._ending = what
        try:
            getattr(self.RE, what)()
        except StateError as exc:
            raise Refused(str(exc)) from None

    # -- the runner ---------------------------------------------------------------------
    async def _run_queue(self) -> None:
        try:
            while not self.stop_pending:
                item = await self.store.take_next()
                if item is None:
                    break
                self.running_item = item
                self.plan_queue_uid = new_uid()
                outcome = await self._execute(item)
                await self.store.finish(item, outcome)
                self.running_item = {}
                self.plan_queue_uid = self.plan_history_uid = new_uid()
        finally:
            self.manager_state = "idle"
            self.stop_pending = self.pause_pending = False

    async def _execute(self, item: Item) -> dict[str, Any]:
        started = item["properties"]["time_start"]
        scan_ids: list[int] = []

        def collect(name: str, doc: Mapping[str, Any]) -> None:
            if name == "start" and isinstance(doc.get("scan_id"), int):
                scan_ids.append(doc["scan_id"])

        self._ending = None
        try:
            call = self.registry.check(item["name"], item["args"], item["kwargs"])
            run = await self._drive(call.make(), collect)
        except Exception as exc:  # the plan failed: recorded in the history, queue goes on
            logger.exception("queue item %s (%s) failed", item["item_uid"], item["name"])
            return result("failed", msg=f"{type(exc).__name__}: {exc}", time_start=started)
        status = self._exit_status(run)
        return result(status, msg=run.reason, run_uids=run.run_start_uids,
                      scan_ids=scan_ids, time_start=started)  # fmt: skip

    async def _drive(self, plan: Any, collect: Any) -> RunResult:
        """``await RE(plan)``; while paused, wait for the control that ends the pause."""
        try:
            return await self.RE(plan, collect, **self._md())
        except RunAborted as exc:
            return exc.result
        except RunEngineInterrupted:
            pass
        while True:
            self.manager_state, self.pause_pending = "paused", False
            what = await self._controls.get()
            self.manager_state = "executing_queue"
            self._ending = None if what == "resume" else what
            try:
                return await (self.RE.resume() if what == "resume" else getattr(self.RE, what)())
            except RunAborted as exc:
                return exc.result
            except RunEngineInterrupted:
                continue

    def _md(self) -> dict[str, Any]:
        return {"queue_item_uid": self.running_item.get("item_uid", "")}

    def _exit_status(self, run: RunResult) -> str:
        if self._ending is not None:
            return _ENDED[self._ending]
        return {"success": "completed", "abort": "aborted"}.get(run.exit_status, "failed")
