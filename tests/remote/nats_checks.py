"""Reading back what reached NATS, for the remote tests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import nats
import nats.errors
from acq.remote import SinkError, replay, stream_name, subject
from nats.aio.msg import Msg
from nats.js import api

from acq.catalog import Catalog

T = TypeVar("T")


def catalog_docs(catalog: Path | str, uid: str) -> list[tuple[str, str]]:
    """``(name, doc uid)`` of every document of a run, as the catalog holds them."""
    cat = Catalog(catalog)
    try:
        return [(name, doc["uid"]) for name, doc in cat[uid].documents()]
    finally:
        cat.close()


async def stream_count(url: str, instrument: str, uid: str) -> int:
    """Messages of the run in the stream (-1 while the server does not answer)."""
    try:
        client = await nats.connect(url, max_reconnect_attempts=1, connect_timeout=1)
    except (nats.errors.Error, OSError, TimeoutError):
        return -1
    try:
        where = subject(instrument, uid, ">")
        info = await client.jetstream(timeout=2).stream_info(stream_name(instrument), where)
        return sum((info.state.subjects or {}).values())
    except (nats.errors.Error, OSError, TimeoutError):
        return -1
    finally:
        await client.close()


async def stream_ids(url: str, instrument: str, uid: str) -> list[str]:
    """The Nats-Msg-Id of each of the run's messages, in stream order."""
    total = await stream_count(url, instrument, uid)
    ids: list[str] = []
    done = asyncio.Event()

    async def take(msg: Msg) -> None:
        ids.append((msg.headers or {}).get("Nats-Msg-Id", "?"))
        if len(ids) >= total:
            done.set()

    client = await nats.connect(url)
    try:
        sub = await client.jetstream().subscribe(
            subject(instrument, uid, ">"),
            cb=take,
            ordered_consumer=True,
            deliver_policy=api.DeliverPolicy.ALL,
        )
        async with asyncio.timeout(20):
            await done.wait()
        await sub.unsubscribe()
    finally:
        await client.close()
    return ids


async def replayed(url: str, instrument: str, uid: str) -> list[tuple[str, str]]:
    """``(name, doc uid)`` of the run as :func:`acq.remote.replay` delivers it."""
    got: list[tuple[str, dict[str, Any]]] = []
    await replay(url, instrument, uid, lambda name, doc: got.append((name, doc)))
    return [(name, doc["uid"]) for name, doc in got]


async def retrying(read: Callable[[], Awaitable[T]], within: float = 30.0) -> T:
    """``await read()``, again while the server does not answer (a cluster electing)."""
    deadline = time.monotonic() + within
    while True:
        try:
            return await read()
        except (nats.errors.Error, SinkError, TimeoutError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


async def until(
    condition: Callable[[], Awaitable[bool]] | Callable[[], bool], within: float = 30.0
) -> None:
    """Poll ``condition`` every 20 ms until true; fail after ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        result = condition()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {within} s: {condition}")
        await asyncio.sleep(0.02)


async def assert_delivered_once_in_order(
    url: str, instrument: str, catalog: Path | str, uid: str, within: float = 30.0
) -> None:
    """The stream holds every document of the run once, and replay gives them in order."""
    expected = catalog_docs(catalog, uid)

    async def all_there() -> bool:
        return await stream_count(url, instrument, uid) >= len(expected)

    await until(all_there, within)
    ids = await retrying(lambda: stream_ids(url, instrument, uid))
    assert sorted(ids, key=lambda i: int(i.rsplit(":", 1)[1])) == [
        f"{uid}:{i}" for i in range(len(expected))
    ], "lost or duplicated documents"
    assert await retrying(lambda: replayed(url, instrument, uid)) == expected
