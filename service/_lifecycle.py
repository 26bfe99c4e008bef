"""Serving until SIGTERM, then a clean shutdown: nothing queued and no document is lost.

``acq serve`` (and :func:`~acq.service.serve`) take SIGTERM on the loop
(``loop.add_signal_handler``; SIGINT stays the engine's Ctrl-C). On the first SIGTERM:

1. the queue stops after the running item, and the running plan is asked to pause: at
   its next checkpoint (``ServiceConfig(on_sigterm="pause")``, the default) or now
   (``"abort"``);
2. the HTTP server closes (requests under way are answered; no new work is taken);
3. once the plan is paused, its run is closed with ``RE.abort(reason)``: exit_status
   ``"abort"``, because the plan did not run to its end and a partial scan must not
   look complete; the Stop's ``reason`` says the service shut down;
4. the history records the item ``aborted`` with that reason and, in the same
   transaction, a copy of it under a new ``item_uid`` goes back to the FRONT of the
   queue -- what bluesky-queueserver does with an aborted item -- so that it runs
   again, from its start, after a restart;
5. the catalog is flushed (every document committed), the queue store and the server
   closed, and ``serve`` returns (``acq serve`` exits 0).

A plan that reaches no checkpoint within ``shutdown_timeout`` seconds, or a second
SIGTERM, escalates to a pause now; if even that does not come within
``ESCALATED_TIMEOUT``, the runner is cancelled (its run ends ``abort``) and the item
is recorded and requeued the same way. A SIGKILL at any point leaves the item either
marked running (the next start records it ``interrupted``) or already requeued.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any

from acq import RunAborted, RunResult, State, StateError

from ._manager import Refused
from ._store import result

if TYPE_CHECKING:
    from ._server import Service

__all__ = ["Shutdown", "serve_until_terminated"]

logger = logging.getLogger("acq.service")

ESCALATED_TIMEOUT = 10.0
"""Seconds a plan has to pause once the pause is asked for "now", before it is cancelled."""
_POLL = 0.02


class Shutdown:
    """SIGTERM's path for one :class:`~acq.service.Service` (see the module docstring)."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self.requested = asyncio.Event()
        """Set by the first SIGTERM (or :meth:`signal`)."""
        self.escalated = asyncio.Event()
        """Set by a second SIGTERM: the plan is aborted now."""
        self._at_once = False  # a pause "now" was asked for (not at a checkpoint)

    def signal(self) -> None:
        """Note one SIGTERM: the first asks for the shutdown, a second escalates it."""
        if self.requested.is_set():
            logger.warning("second SIGTERM: the running plan is aborted now")
            self.escalated.set()
            return
        logger.warning("SIGTERM: shutting down (on_sigterm=%r)", self.service.config.on_sigterm)
        self.requested.set()

    def begin(self) -> None:
        """Stop the queue after its running item; ask the running plan to pause."""
        with contextlib.suppress(Refused):
            self.service.manager.stop()
        self._ask_pause(defer=self.service.config.on_sigterm == "pause")

    async def finish(self) -> None:
        """Bring the running item (if any) to rest, requeue it, flush the catalog."""
        manager = self.service.manager
        if manager.manager_state != "idle":
            self.begin()  # again: a start may have come in while the server closed
            await self._settle()
            if manager.manager_state != "idle":
                await self._close_running()
        catalog = self.service.RE.catalog
        if catalog is not None:
            await catalog.store.aflush()

    # -- the steps -----------------------------------------------------------------------
    def _ask_pause(self, defer: bool) -> None:
        self._at_once = self._at_once or not defer
        with contextlib.suppress(StateError):  # nothing running: nothing to pause
            self.service.RE.request_pause(defer=defer)

    async def _settle(self) -> None:
        """Wait until the runner is paused or done; escalate on a timeout or a 2nd SIGTERM."""
        timeout = self.service.config.shutdown_timeout
        if await self._until_settled(timeout):
            return
        if self.service.config.on_sigterm == "pause" and not self.escalated.is_set():
            logger.warning("no checkpoint within %s s of SIGTERM: pausing now", timeout)
        self._ask_pause(defer=False)
        self.escalated.clear()
        if not await self._until_settled(ESCALATED_TIMEOUT):
            logger.error("the plan did not pause within %s s: cancelling it", ESCALATED_TIMEOUT)

    async def _until_settled(self, seconds: float) -> bool:
        """True once the runner is not executing; False after ``seconds`` or escalation."""
        manager = self.service.manager
        deadline = asyncio.get_running_loop().time() + seconds
        while manager.manager_state == "executing_queue":
            if self.escalated.is_set() or asyncio.get_running_loop().time() > deadline:
                return False
            await asyncio.sleep(_POLL)
        return True

    async def _close_running(self) -> None:
        """Cancel the runner, close the paused run, requeue its item, record it aborted."""
        service = self.service
        item = dict(service.manager.running_item)
        await service.manager.close()  # the runner leaves the paused item as it is
        how = "stopped at once" if self._at_once else "paused at a checkpoint"
        reason = f"the service shut down (SIGTERM): the plan was {how} and its run closed"
        run = await _abort_paused(service.RE, reason)
        if not item.get("item_uid"):
            return
        uids = run.run_start_uids if run is not None else ()
        once = bool(item.get("properties", {}).get("immediate_execution"))  # never requeued
        where = "" if once else "; a copy of the item is back at the front of the queue"
        record = result(
            "aborted",
            msg=reason + where,
            run_uids=uids,
            scan_ids=_scan_ids(service, uids),
            time_start=item.get("properties", {}).get("time_start"),
        )
        await service.store.finish(item, record, requeue=None if once else "front")
        await service.manager.changed_queue()  # the record and the copy: one transaction
        logger.warning("queue item %s (%s) aborted%s", item["item_uid"], item.get("name"),
                       "; requeued at the front of the queue" if not once else "")  # fmt: skip


async def _abort_paused(RE: Any, reason: str) -> RunResult | None:
    """``RE.abort(reason)`` if the engine holds a paused plan; its result."""
    if RE.state is not State.PAUSED:
        return None
    try:
        return await RE.abort(reason)
    except RunAborted as exc:
        return exc.result


def _scan_ids(service: Service, uids: tuple[str, ...]) -> list[int]:
    catalog = service.RE.catalog
    if catalog is None:
        return []
    found: list[int] = []
    for uid in uids:
        with contextlib.suppress(KeyError):
            scan_id = catalog[uid].scan_id
            if scan_id is not None:
                found.append(scan_id)
    return found


@contextlib.contextmanager
def sigterm_handler(callback: Callable[[], None] | None) -> Generator[bool]:
    """Call ``callback`` on SIGTERM while in the block (main thread only); gives whether."""
    loop = asyncio.get_running_loop()
    usable = callback is not None and threading.current_thread() is threading.main_thread()
    if callback is None or not usable:
        yield False
        return
    previous = signal.getsignal(signal.SIGTERM)
    loop.add_signal_handler(signal.SIGTERM, callback)
    try:
        yield True
    finally:
        loop.remove_signal_handler(signal.SIGTERM)
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


async def serve_until_terminated(
    service: Service, host: str, port: int, *, handle_sigterm: bool = True
) -> None:
    """Serve ``service`` until SIGTERM (or cancelled), then shut down as the module says."""
    shutdown = Shutdown(service)
    with sigterm_handler(shutdown.signal if handle_sigterm else None):
        async with service.serving(host, port) as url:
            logger.info("serving %s (on SIGTERM: %s)", url, service.config.on_sigterm)
            await shutdown.requested.wait()
            shutdown.begin()  # the plan heads for its checkpoint while the server closes
        await shutdown.finish()
    logger.info("shut down cleanly")
