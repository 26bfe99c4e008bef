"""The WebSocket routes: documents, status, progress and log lines, live.

* ``/api/v1/ws/documents?run_uid=<uid>&start=<n>``: that run's documents from number
  ``n`` (default 0) -- those stored so far from the catalog, then the live ones -- and a
  close (1000) after its Stop; an unknown run closes with 4404. Without ``run_uid``:
  every run's documents from now on (a run open when the client connects is first
  replayed from its Start). Each message is a JSON array of one or more documents in
  order, each ``{"run_uid", "index", "name", "doc"}``: live documents that come within
  20 ms of each other share a message (up to 500 replayed ones do). One message per
  document cost a 2000-point scan ~20 % more CPU (a socket write, and a
  permessage-deflate flush when the client asked for compression, as browsers do);
  batched, the cost is lost in the noise.
* ``/api/v1/ws/status``: what ``GET /api/status`` answers, then again on every change.
* ``/api/v1/ws/progress``: ``{"item_uid", "plan_name", "run_uid", "done", "total"}`` of
  the current run, at most ~10 a second.
* ``/api/v1/ws/logs``: ``{"time", "level", "logger", "message"}`` for each record the
  ``acq`` loggers emit (at the levels configured for them); the last 200 first.

Credentials as for HTTP (an ``Authorization`` header), or -- browsers cannot set headers
on a WebSocket -- the query parameter ``api_key=<key>`` or ``access_token=<jwt>``. A
refusal is logged and closes the socket: 4401 (no or a wrong credential), 4403 (the
scope is missing), 1008 (an unknown or malformed parameter). A client that falls
``FEED_LIMIT`` messages behind is closed with 1013, its reason naming the number to
resume from; one that leaves costs nothing more.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, Callable, Collection, Coroutine, Mapping
from typing import Any, cast

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from acq.catalog import Run

from ._api import status_of
from ._auth import ROUTE_SCOPES, AuthError, Authorizer
from ._events import END, DocumentEntry, EventHub, Feed, encode
from ._manager import QueueManager

__all__ = ["PREFIX", "ws_router"]

logger = logging.getLogger("acq.service")

PREFIX = "/api/v1/ws"
_CREDENTIALS = ("api_key", "access_token")
_STATUS_POLL = 0.1  # s: how often status clients compare the manager's change markers
_PROGRESS_EVERY = 0.1  # s: at most this often a progress message
_LINGER = 0.02  # s: live documents within this of the first go in one message
_REPLAY_BATCH = 500  # stored documents per message at most
_CLOSE_TIMEOUT = 2.0  # s: a dropped client that reads nothing is left without a close


def ws_router(hub: EventHub, manager: QueueManager, auth: Authorizer | None = None) -> APIRouter:
    """The WebSocket routes of ``hub`` and ``manager``, guarded by ``auth``.

    Without ``auth``, anonymous clients may use them all (a trusted network).
    """
    guard = auth if auth is not None else Authorizer()
    router = APIRouter(prefix=PREFIX)

    @router.websocket("/documents")
    async def documents(ws: WebSocket) -> None:  # pyright: ignore[reportUnusedFunction]
        found = await _admitted(ws, guard, "/documents", ("run_uid", "start"))
        if found is not None:
            await _documents(ws, hub, found)

    @router.websocket("/status")
    async def status(ws: WebSocket) -> None:  # pyright: ignore[reportUnusedFunction]
        if await _admitted(ws, guard, "/status", ()) is not None:
            await ws.accept()
            await _until_gone(ws, _send_status(ws, hub, manager))

    @router.websocket("/progress")
    async def progress(ws: WebSocket) -> None:  # pyright: ignore[reportUnusedFunction]
        if await _admitted(ws, guard, "/progress", ()) is not None:
            await ws.accept()
            await _until_gone(ws, _send_progress(ws, hub))

    @router.websocket("/logs")
    async def logs(ws: WebSocket) -> None:  # pyright: ignore[reportUnusedFunction]
        if await _admitted(ws, guard, "/logs", ()) is not None:
            await ws.accept()
            feed = hub.listen_logs()
            try:
                await _until_gone(ws, _pump(ws, feed, encode), feed)
            finally:
                hub.forget(feed)

    return router


# -- admission ----------------------------------------------------------------------------
async def _admitted(
    ws: WebSocket, auth: Authorizer, route: str, allowed: Collection[str]
) -> dict[str, str] | None:
    """The route's parameters once the caller may use it; None once refused (closed)."""
    path = PREFIX + route
    params = dict(ws.query_params)
    header = ws.headers.get("authorization")
    if header is None and params.get("api_key"):
        header = f"ApiKey {params['api_key']}"
    elif header is None and params.get("access_token"):
        header = f"Bearer {params['access_token']}"
    try:
        principal = await auth.authenticate(header)
        auth.require(principal, ROUTE_SCOPES.get(path))
    except AuthError as error:
        logger.warning("refused WEBSOCKET %s from %s: %s", path, error.who, error.reason)
        await refuse(ws, 4000 + error.status, error.reason)
        return None
    unknown = sorted(set(params) - {*allowed, *_CREDENTIALS})
    if unknown:
        names = ", ".join(sorted(allowed)) or "none"
        await refuse(ws, 1008, f"{', '.join(unknown)}: unknown parameter (accepted: {names})")
        return None
    return {key: value for key, value in params.items() if key in allowed}


async def refuse(ws: WebSocket, code: int, reason: str) -> None:
    """Accept, then close with ``code`` and ``reason`` (a browser sees neither otherwise)."""
    await ws.accept()
    await ws.close(code, _short(reason))


def _short(reason: str) -> str:
    """A close reason fits 123 bytes of UTF-8."""
    data = reason.encode()
    return reason if len(data) <= 123 else data[:120].decode(errors="ignore") + "..."


# -- the life of a connection -------------------------------------------------------------
async def _until_gone(
    ws: WebSocket,
    sending: Coroutine[Any, Any, None],
    feed: Feed | None = None,
    hint: Callable[[], str] = str,
) -> None:
    """Run ``sending`` until it ends, the client leaves, or ``feed`` ends at once.

    A feed ended at once closes the socket with its code and reason, and ``hint()``
    (how to resume).
    """
    tasks: set[asyncio.Future[Any]] = {asyncio.ensure_future(sending)}
    tasks.add(asyncio.ensure_future(_disconnected(ws)))
    ended = asyncio.ensure_future(feed.ended_event.wait()) if feed is not None else None
    if ended is not None:
        tasks.add(ended)
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    for outcome in outcomes:
        if isinstance(outcome, Exception) and not _gone(outcome):
            logger.error("WebSocket %s failed: %r", ws.url.path, outcome, exc_info=outcome)
            await _close(ws, 1011, f"failed: {outcome}")
    if feed is not None and feed.ended is not None:
        code, reason = feed.ended
        reason += hint()
        if code == 1013:
            logger.warning("WebSocket %s: client dropped, %s", ws.url.path, reason)
        await _close(ws, code, reason)


async def _disconnected(ws: WebSocket) -> None:
    """Return when the client leaves (what it sends is ignored)."""
    while (await ws.receive())["type"] != "websocket.disconnect":
        pass


def _gone(error: BaseException) -> bool:
    """True for the errors of sending to a client that left."""
    return isinstance(error, WebSocketDisconnect | OSError | asyncio.CancelledError) or (
        type(error).__name__ == "ClientDisconnected"
    )


async def _close(ws: WebSocket, code: int, reason: str) -> None:
    """Close, unless the client reads nothing (then it is only left)."""
    with contextlib.suppress(Exception):
        async with asyncio.timeout(_CLOSE_TIMEOUT):
            await ws.close(code, _short(reason))


async def _pump(ws: WebSocket, feed: Feed, text: Callable[[Any], str]) -> None:
    """Send what ``feed`` holds, as it comes, one message an item."""
    while feed.ended is None:
        await feed.wait()
        for item in feed.take():
            await ws.send_text(text(item))


# -- documents ----------------------------------------------------------------------------
async def _documents(ws: WebSocket, hub: EventHub, params: Mapping[str, str]) -> None:
    uid, start = params.get("run_uid"), params.get("start", "0")
    if not start.isdigit():
        await refuse(ws, 1008, f"start: a document number (0, 1, ...), not {start!r}")
        return
    if uid is None and start != "0":
        await refuse(ws, 1008, "start: only with run_uid (the number of one run's document)")
        return
    run: Run | None = None
    if uid is not None and uid not in hub.live:
        try:
            run, why = await _stored_run(hub, uid)
        except Exception as exc:  # the catalog failed: say so, and log it
            logger.exception("WebSocket %s: reading run %s failed", ws.url.path, uid)
            await refuse(ws, 1011, f"reading run {uid!r} failed: {exc}")
            return
        if run is None:
            await refuse(ws, 4404, why)
            return
        uid = run.uid
    feed, counts = hub.listen(uid) if uid is None or uid in hub.live else (None, {})
    following: dict[str, int] = {} if uid is None else {uid: int(start)}  # next to send

    def hint() -> str:
        last = next(reversed(following.items()), None)
        return "" if last is None else f"; resume with run_uid={last[0]}&start={last[1]}"

    try:
        await ws.accept()
        if uid is None:
            sending = _replay_all(ws, hub, feed, counts, following)
        else:
            sending = _replay_run(ws, hub, run, uid, feed, counts, following)
        await _until_gone(ws, sending, feed, hint)
    finally:
        if feed is not None:
            hub.forget(feed)


async def _stored_run(hub: EventHub, uid: str) -> tuple[Run | None, str]:
    """The catalog's run ``uid`` (its documents all committed), or None and why not."""
    catalog = hub.RE.catalog
    if catalog is None:
        return None, f"no run {uid!r}: the service keeps no catalog"
    await catalog.store.aflush()
    try:
        return await asyncio.to_thread(catalog.__getitem__, uid), ""
    except KeyError as exc:
        return None, f"no run {uid!r}: {exc.args[0] if exc.args else exc}"


async def _replay_run(
    ws: WebSocket, hub: EventHub, run: Run | None, uid: str, feed: Feed | None,
    counts: Mapping[str, int], following: dict[str, int],
) -> None:  # fmt: skip
    """One run from ``following[uid]``: stored documents, then (open run) live ones."""
    upto = counts.get(uid)
    if upto is None or following[uid] < upto:
        if run is None:
            run, why = await _stored_run(hub, uid)
            if run is None:
                raise LookupError(why)
        await _replay(ws, run, upto, following)
    if feed is None:
        await ws.close(1000, "run finished")
        return
    await _send_live(ws, feed, following)


async def _replay_all(
    ws: WebSocket, hub: EventHub, feed: Feed | None, counts: Mapping[str, int],
    following: dict[str, int],
) -> None:  # fmt: skip
    """Every run from now on; those open now first replayed from their Start."""
    assert feed is not None
    for uid, count in counts.items():
        run, why = await _stored_run(hub, uid)
        if run is None:
            raise LookupError(why)
        following[uid] = 0
        await _replay(ws, run, count, following)
    await _send_live(ws, feed, following)


async def _replay(ws: WebSocket, run: Run, upto: int | None, following: dict[str, int]) -> None:
    """Send ``run``'s stored documents from ``following[run.uid]`` up to ``upto``.

    ``upto`` None: all of them. Each sent is counted in ``following``.
    """
    index = following[run.uid]
    batch: list[str] = []
    documents = cast("AsyncGenerator[tuple[str, dict[str, Any]]]", run.adocuments(index))
    async with contextlib.aclosing(documents) as stored:
        async for name, doc in stored:
            if upto is not None and index >= upto:
                break
            batch.append(DocumentEntry(run.uid, index, name, doc).text())
            index += 1
            if len(batch) >= _REPLAY_BATCH:
                await ws.send_text(f"[{','.join(batch)}]")
                following[run.uid] = index
                batch.clear()
    if batch:
        await ws.send_text(f"[{','.join(batch)}]")
        following[run.uid] = index


async def _send_live(ws: WebSocket, feed: Feed, following: dict[str, int]) -> None:
    """Send the feed's documents a client does not have yet; close 1000 at :data:`END`.

    ``following``: per run, the number of the next document the client needs. What
    comes within ``_LINGER`` of a first document goes in the same message.
    """
    while feed.ended is None:
        await feed.wait()
        await asyncio.sleep(_LINGER)
        batch: list[str] = []
        end = False
        for entry in feed.take():
            if entry is END:
                end = True
                break
            if entry.index >= following.get(entry.run_uid, 0):
                following[entry.run_uid] = entry.index + 1
                batch.append(entry.text())
        if batch:
            await ws.send_text(f"[{','.join(batch)}]")
        if end:
            await ws.close(1000, "run finished")
            return


# -- status and progress ------------------------------------------------------------------
def _status_key(m: QueueManager) -> tuple[Any, ...]:
    """What changes whenever the status does, without a database query.

    The manager's public plain attributes (state, flags, ``*_uid`` change markers), the
    engine's state, the running item and the queue mode.
    """
    plain = tuple(
        (key, value)
        for key, value in vars(m).items()
        if not key.startswith("_") and isinstance(value, str | bool | int | float | None)
    )
    mode = repr(getattr(m, "mode", None))
    return (*plain, m.RE.state, m.running_item.get("item_uid"), mode)


async def _send_status(ws: WebSocket, hub: EventHub, m: QueueManager) -> None:
    seen: tuple[Any, ...] | None = None
    while hub.attached:
        key = _status_key(m)
        if key != seen:
            seen = key
            await ws.send_text(encode(await status_of(m)))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(hub.changed("status")), _STATUS_POLL)
    await ws.close(1001, "the service is shutting down")


async def _send_progress(ws: WebSocket, hub: EventHub) -> None:
    seen = -1
    while hub.attached:
        if hub.progress_version == seen:
            await asyncio.shield(hub.changed("progress"))
            continue
        seen = hub.progress_version
        message = hub.progress_message()
        if message is not None:
            await ws.send_text(encode(message))
        await asyncio.sleep(_PROGRESS_EVERY)
    await ws.close(1001, "the service is shutting down")
