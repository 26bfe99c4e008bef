"""The queue runner and the engine's controls: what the API's routes call.

States, as queueserver names them (``manager_state``): ``idle``, ``executing_queue``,
``paused``. The runner is one task, owned by the manager: it takes the front item, runs
its plan with ``await RE(plan)`` on this event loop and records the result, until the
queue is empty or a stop was asked for. A pause is a state, not a failure: the runner
waits for ``resume``, ``stop``, ``abort`` or ``halt`` and the item stays running.

How an item ends decides what follows, as in queueserver: ``completed`` (or ``failed``
with the ``ignore_failures`` mode) goes on with the next item; ``stopped`` counts as
done but ends the queue; ``failed``, ``aborted`` and ``halted`` end the queue and a copy
of the item, with a new uid, goes back to the queue's front. In the ``loop`` mode a
done item's copy goes to the back. Each of these is one transaction with the history
record. An item executed at once (``execute``) is never put back. A queue that ends
other than empty turns autostart off.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import typing
import uuid
from collections.abc import Coroutine, Mapping, Sequence
from typing import Any, Literal

from acq import RunAborted, RunEngine, RunEngineInterrupted, RunResult, StateError

from ._plans import ItemError, PlanRegistry
from ._store import DEFAULT_MODE, Item, QueueStore, result

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
        self.autostart = False
        self.plan_queue_uid = new_uid()
        self.plan_history_uid = new_uid()
        self.allowed_uid = new_uid()
        self.run_list_uid = new_uid()
        self.run_list: list[dict[str, Any]] = []
        """The runs of the running item: ``uid``, ``scan_id``, ``is_open``, ``exit_status``."""
        self.running_item: Item = {}
        self._controls: asyncio.Queue[Control] = asyncio.Queue()
        self._ending: Control | None = None
        self._runner: asyncio.Task[None] | None = None

    # -- queue --------------------------------------------------------------------------
    def stored(self, item: Mapping[str, Any], uid: str | None = None) -> Item:
        """Check ``item`` (raises ItemError); the item as it is stored (a new uid)."""
        self.registry.check(item.get("name"), item.get("args", []), item.get("kwargs", {}))
        return {
            "name": item["name"],
            "args": list(item.get("args", [])),
            "kwargs": dict(item.get("kwargs", {})),
            "item_type": "plan",
            "user": str(item.get("user", "anonymous")),
            "user_group": str(item.get("user_group", "primary")),
            "item_uid": uid if uid is not None else new_uid(),
        }

    async def add(self, item: Mapping[str, Any], pos: Any, before: Any, after: Any) -> Item:
        """Check ``item`` (raises ItemError) and queue it; the stored item is returned."""
        (stored,) = await self.add_batch([item], pos, before, after)
        return stored

    async def add_batch(
        self, items: Sequence[Mapping[str, Any]], pos: Any, before: Any, after: Any
    ) -> list[Item]:
        """Check every item, then queue them all in one transaction (or none)."""
        stored = [self.stored(item) for item in items]
        await self.store.add_batch(stored, pos=pos, before=before, after=after)
        self.plan_queue_uid = new_uid()
        await self._autostart()
        return stored

    async def update(self, item: Mapping[str, Any], *, replace: bool) -> Item:
        """Put ``item`` in the place of the queued item of its ``item_uid``."""
        uid = item.get("item_uid")
        if not isinstance(uid, str):
            raise ItemError("item.item_uid: the uid of the queued item to update is needed")
        if uid == self.running_item.get("item_uid"):
            raise Refused(f"item {uid!r} is running: it cannot be changed")
        stored = self.stored(item, None if replace else uid)
        await self.store.replace(uid, stored)
        self.plan_queue_uid = new_uid()
        return stored

    async def move(self, uids: list[str] | None, pos: Any, pos_dest: Any, before: Any,
                   after: Any, reorder: bool = False) -> list[Item]:  # fmt: skip
        """Move the queued items ``uids`` (or the one at ``pos``) together, in one change."""
        items, _ = await self.store.move(uids, pos=pos, pos_dest=pos_dest, before=before,
                                         after=after, reorder=reorder)  # fmt: skip
        self.plan_queue_uid = new_uid()
        return items

    async def changed_queue(self) -> None:
        """Mark the queue changed (after a remove or a clear)."""
        self.plan_queue_uid = new_uid()

    async def clear_history(self) -> None:
        """Forget the history."""
        await self.store.clear_history()
        self.plan_history_uid = new_uid()

    def busy(self) -> bool:
        """Whether the queue, or an item executed at once, is running."""
        return self._runner is not None and not self._runner.done()

    def start(self) -> None:
        """Run the queue's items one after another (until empty or stopped)."""
        if self.busy():
            raise Refused("the queue is already running")
        self._begin(self._run_queue())

    async def execute(self, item: Mapping[str, Any]) -> Item:
        """Run one item now, not from the queue (only when idle); it is recorded in history."""
        stored = self.stored(item)
        if self.busy():
            raise Refused(f"cannot execute an item now: the manager is {self.manager_state}")
        stored["properties"] = {"time_start": time.time(), "immediate_execution": True}
        self._begin(self._run_single(stored))
        return {k: v for k, v in stored.items() if k != "properties"}

    def stop(self) -> None:
        """Stop the queue after the running item."""
        if self.manager_state == "idle":
            raise Refused("the queue is not running")
        self.stop_pending = True

    def cancel_stop(self) -> None:
        """Forget a pending stop of the queue."""
        self.stop_pending = False

    async def set_autostart(self, enable: bool) -> None:
        """Autostart on: the queue starts whenever it has items and the manager is idle."""
        self.autostart = enable
        await self._autostart()

    @property
    def mode(self) -> dict[str, bool]:
        """The queue's mode: ``loop`` and ``ignore_failures`` (kept in the database)."""
        return self.store.mode

    async def set_mode(self, mode: Any) -> None:
        """Change the queue's mode (``loop``, ``ignore_failures``), or ``"default"``."""
        if mode == "default":
            await self.store.save_mode(dict(DEFAULT_MODE))
            return
        if not isinstance(mode, dict):
            raise ItemError(f"mode: an object of loop, ignore_failures or 'default', not {mode!r}")
        changes = typing.cast(dict[str, Any], mode)
        for key, value in changes.items():
            if key not in DEFAULT_MODE:
                raise ItemError(f"mode.{key}: unknown mode (known: loop, ignore_failures)")
            if not isinstance(value, bool):
                raise ItemError(f"mode.{key}: true or false, not {value!r}")
        await self.store.save_mode({**self.mode, **changes})

    async def close(self) -> None:
        """Cancel the runner (its item's run ends with exit_status 'abort')."""
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner

    async def _autostart(self) -> None:
        if self.autostart and not self.busy() and (await self.store.sizes())[0]:
            self.start()

    def _begin(self, work: Coroutine[Any, Any, None]) -> None:
        self.manager_state = "executing_queue"
        self.stop_pending = False
        self._runner = asyncio.get_running_loop().create_task(work)

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
                if item is None or not await self._run(item):
                    break
        finally:
            self._idle()

    async def _run_single(self, item: Item) -> None:
        try:
            await self.store.start_now(item)
            await self._run(item)
        finally:
            self._idle()
        if self.autostart:  # the queue, if not empty, starts now: the runner goes on with it
            self.manager_state = "executing_queue"
            await self._run_queue()

    async def _run(self, item: Item) -> bool:
        """Run ``item``, record how it ended; whether the queue goes on."""
        self.running_item = item
        self.run_list = []
        self.run_list_uid = self.plan_queue_uid = new_uid()
        outcome = await self._execute(item)
        status = outcome["exit_status"]
        go_on = status == "completed" or (status == "failed" and self.mode["ignore_failures"])
        requeue: Literal["front", "back"] | None = None
        if item["properties"].get("immediate_execution"):
            go_on = False
        elif go_on or status == "stopped":
            requeue = "back" if self.mode["loop"] else None
        else:
            requeue = "front"
        await self.store.finish(item, outcome, requeue=requeue)
        self.running_item = {}
        self.plan_queue_uid = self.plan_history_uid = new_uid()
        if not go_on and not item["properties"].get("immediate_execution"):
            self.autostart = False
        return go_on

    def _idle(self) -> None:
        if self.stop_pending:
            self.autostart = False
        self.manager_state = "idle"
        self.stop_pending = self.pause_pending = False

    async def _execute(self, item: Item) -> dict[str, Any]:
        started = item["properties"]["time_start"]
        scan_ids: list[int] = []

        def collect(name: str, doc: Mapping[str, Any]) -> None:
            if name == "start":
                scan_id = doc.get("scan_id")
                if isinstance(scan_id, int):
                    scan_ids.append(scan_id)
                self.run_list.append({"uid": doc["uid"], "scan_id": scan_id, "is_open": True,
                                      "exit_status": None})  # fmt: skip
            elif name == "stop":
                for run in self.run_list:
                    if run["uid"] == doc["run_start"]:
                        run.update(is_open=False, exit_status=doc.get("exit_status"))
            else:
                return
            self.run_list_uid = new_uid()

        self._ending = None
        try:
            call = self.registry.check(item["name"], item["args"], item["kwargs"])
            run = await self._drive(call.make(), collect)
        except Exception as exc:  # the plan failed: recorded; _run decides what follows
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
