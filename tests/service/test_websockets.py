"""The WebSocket feeds: documents (replayed, then live), status, progress and log lines.

A real served service and the ``websockets`` package's asyncio client.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import socket
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from acq.devices.sim import SimBeamline
from acq.plans import count
from acq.service import ApiKey, Service, ServiceConfig, hash_api_key
from acq.service._events import encode
from support import DocChecker
from test_queue import count_item
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

Message = dict[str, Any]


def ws_url(url: str, route: str, **params: Any) -> str:
    query = f"?{urlencode(params)}" if params else ""
    return f"{url.replace('http://', 'ws://')}/api/v1/ws/{route}{query}"


async def receive(ws: ClientConnection) -> Any:
    async with asyncio.timeout(20):
        return json.loads(await ws.recv())


async def until_closed(ws: ClientConnection) -> tuple[list[Message], int, str]:
    """Every document until the server closes, and its close code and reason."""
    got: list[Message] = []
    try:
        async with asyncio.timeout(30):
            async for text in ws:
                batch = json.loads(text)
                assert isinstance(batch, list), "a message is a list of documents"
                assert batch
                got.extend(batch)
    except ConnectionClosed:
        pass
    assert ws.close_code is not None
    return got, ws.close_code, ws.close_reason or ""


async def until(
    ws: ClientConnection, done: Callable[[Message], bool], documents: bool = False
) -> list[Message]:
    """Messages (``documents``: the documents of each) up to the first that is ``done``."""
    got: list[Message] = []
    while not got or not done(got[-1]):
        message = await receive(ws)
        got.extend(message if documents else [message])
    return got


def stored(service: Service, uid: str, start: int = 0) -> list[Message]:
    """The catalog's documents of run ``uid`` from ``start``, as the feed numbers them."""
    catalog = service.RE.catalog
    assert catalog is not None
    docs = catalog[uid].documents(start)
    return [
        json.loads(encode({"run_uid": uid, "index": start + i, "name": name, "doc": doc}))
        for i, (name, doc) in enumerate(docs)
    ]


async def run_item(client: httpx.AsyncClient, item: Message) -> str:
    """Queue ``item``, start the queue; the item's uid."""
    added = (await client.post("/api/queue/item/add", json={"item": item})).json()
    assert added["success"], added
    assert (await client.post("/api/queue/start")).json()["success"]
    return str(added["item"]["item_uid"])


async def eventually(condition: Callable[[], Awaitable[Any]], within: float = 30.0) -> None:
    """Return once ``condition()`` is true (polled); fail after ``within`` seconds."""
    async with asyncio.timeout(within):
        while not await condition():  # noqa: ASYNC110 -- a plain condition, no event to wait on
            await asyncio.sleep(0.005)


async def wait_idle(client: httpx.AsyncClient) -> Message:
    """The last history item once the queue is idle again."""

    async def idle() -> bool:
        return (await client.get("/api/status")).json()["manager_state"] == "idle"

    await eventually(idle)
    return (await client.get("/api/history/get")).json()["items"][-1]


def fed(service: Service, expected: bool) -> Callable[[], Awaitable[bool]]:
    """A condition: the service's hub feeds some client (``expected``) or none."""

    async def condition() -> bool:
        return bool(service.events.feeds()) == expected

    return condition


async def live_run(service: Service, documents: int) -> str:
    """The uid of the run open now, once it has emitted ``documents`` documents."""

    async def emitted() -> bool:
        return any(r.count >= documents for r in service.events.live.values())

    await eventually(emitted)
    return next(iter(service.events.live))


@pytest.fixture
async def http(url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=url) as client:
        yield client


# -- documents ------------------------------------------------------------------------------
async def test_replay_of_a_finished_run_from_its_start_and_from_a_middle_number(
    url: str, http: httpx.AsyncClient, service: Service
) -> None:
    await run_item(http, count_item(5))
    uid = (await wait_idle(http))["result"]["run_uids"][0]
    for start in (0, 3):
        async with connect(ws_url(url, "documents", run_uid=uid, start=start)) as ws:
            got, code, _ = await until_closed(ws)
        assert code == 1000
        assert got == stored(service, uid, start)
        assert [m["index"] for m in got] == list(range(start, start + len(got)))
    assert [m["name"] for m in got] == ["event"] * 4 + ["stop"]  # 0: start, 1: descriptor
    async with connect(ws_url(url, "documents", run_uid=uid, start=99)) as ws:
        assert await until_closed(ws) == ([], 1000, "run finished")


async def test_an_unknown_run_or_a_bad_start_is_refused_with_a_reason(url: str) -> None:
    async with connect(ws_url(url, "documents", run_uid="no-such-run")) as ws:
        got, code, reason = await until_closed(ws)
    assert (got, code) == ([], 4404)
    assert "no-such-run" in reason
    async with connect(ws_url(url, "documents", run_uid="x", start="-1")) as ws:
        _, code, reason = await until_closed(ws)
    assert (code, reason) == (1008, "start: a document number (0, 1, ...), not '-1'")
    async with connect(ws_url(url, "documents", runuid="x")) as ws:
        _, code, reason = await until_closed(ws)
    assert code == 1008
    assert reason.startswith("runuid: unknown parameter")


async def test_a_client_attached_before_the_item_gets_every_document_numbered_and_valid(
    url: str, http: httpx.AsyncClient, service: Service
) -> None:
    async with connect(ws_url(url, "documents")) as ws:
        await eventually(fed(service, True), within=5)  # the server has registered it
        await run_item(http, count_item(10))
        got = await until(ws, lambda m: m["name"] == "stop", documents=True)
    uid = (await wait_idle(http))["result"]["run_uids"][0]
    assert [m["index"] for m in got] == list(range(len(got)))
    assert {m["run_uid"] for m in got} == {uid}
    checker = DocChecker()
    for m in got:
        checker(m["name"], m["doc"])
    assert checker.problems == []
    assert got == stored(service, uid)


async def test_clients_joining_mid_run_get_no_gap_and_no_duplicate(
    url: str, http: httpx.AsyncClient, service: Service
) -> None:
    await run_item(http, count_item(150, delay=0.01))
    uid = await live_run(service, 20)
    async with (
        connect(ws_url(url, "documents", run_uid=uid)) as whole,
        connect(ws_url(url, "documents", run_uid=uid, start=7)) as later,
        connect(ws_url(url, "documents")) as every,
    ):
        (first, code, _), (second, code2, _), third = await asyncio.gather(
            until_closed(whole),
            until_closed(later),
            until(every, lambda m: m["name"] == "stop", documents=True),
        )
    await wait_idle(http)
    expected = stored(service, uid)
    assert len(expected) == 153  # start, descriptor, 150 events, stop
    assert (code, code2) == (1000, 1000)
    assert first == expected
    assert second == expected[7:]
    assert third == expected


async def test_a_client_leaving_mid_run_costs_nothing(
    url: str, http: httpx.AsyncClient, service: Service
) -> None:
    await run_item(http, count_item(100, delay=0.005))
    uid = await live_run(service, 5)
    async with connect(ws_url(url, "documents")) as gone, connect(ws_url(url, "documents")):
        await receive(gone)  # a first message; then both leave, one politely, one not
        assert gone.transport is not None
        gone.transport.abort()
    assert (await wait_idle(http))["result"]["exit_status"] == "completed"
    assert service.events.live == {}
    await eventually(fed(service, False), within=5)
    async with connect(ws_url(url, "documents", run_uid=uid)) as ws:
        got, code, _ = await until_closed(ws)
    assert (code, got) == (1000, stored(service, uid))


async def never_reading_client(url: str, route: str) -> socket.socket:
    """A WebSocket client that, once connected, reads nothing (a raw socket, small buffer)."""
    loop = asyncio.get_running_loop()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await loop.sock_connect(sock, ("127.0.0.1", int(url.rsplit(":", 1)[1])))
    key = base64.b64encode(os.urandom(16)).decode()
    await loop.sock_sendall(sock, (
        f"GET /api/v1/ws/{route} HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode())  # fmt: skip
    head = b""
    while b"\r\n\r\n" not in head:
        head += await loop.sock_recv(sock, 1)
    assert head.startswith(b"HTTP/1.1 101 "), head
    return sock


class _SmallSendBuffer(socket.socket):
    """A socket whose send buffer stays 4 KiB (the kernel would let it grow to 4 MiB)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)


@pytest.fixture
async def tight_url(service: Service, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[str]:
    """The service served from a listening socket whose connections get a 4 KiB send buffer
    (accepted sockets inherit it): a client that reads nothing blocks the sender at once,
    not after megabytes of documents sit in the kernel's buffers."""
    with monkeypatch.context() as patch:
        patch.setattr(socket, "socket", _SmallSendBuffer)
        serving = service.serving("127.0.0.1", 0)
        where = await serving.__aenter__()
    try:
        yield where
    finally:
        await serving.__aexit__(None, None, None)


async def test_a_client_that_never_reads_is_dropped_and_the_scan_goes_on(
    tight_url: str, service: Service, caplog: pytest.LogCaptureFixture
) -> None:
    url = tight_url
    async with httpx.AsyncClient(base_url=url) as http:
        await _never_reading_client_is_dropped(url, http, service, caplog)


async def _never_reading_client_is_dropped(
    url: str, http: httpx.AsyncClient, service: Service, caplog: pytest.LogCaptureFixture
) -> None:
    service.events.limit = 50
    with await never_reading_client(url, "documents") as sock:
        await eventually(fed(service, True), within=5)
        await run_item(http, count_item(3000))
        history = await wait_idle(http)
        assert history["result"]["exit_status"] == "completed"
        await eventually(fed(service, False), within=10)  # no longer fed
        async with asyncio.timeout(10):  # and its connection let go
            while await asyncio.get_running_loop().sock_recv(sock, 65536):
                pass
    uid = history["result"]["run_uids"][0]
    dropped = [r.getMessage() for r in caplog.records if "client dropped" in r.getMessage()]
    assert len(dropped) == 1
    assert dropped[0].startswith(
        "WebSocket /api/v1/ws/documents: client dropped, too slow: 50 items waited to be sent; "
        f"resume with run_uid={uid}&start="
    )
    async with connect(ws_url(url, "documents", run_uid=uid, start=3000)) as ws:
        got, code, _ = await until_closed(ws)
    assert (code, [m["index"] for m in got]) == (1000, [3000, 3001, 3002])


# -- status, progress, log lines ------------------------------------------------------------
async def test_status_is_sent_whole_then_on_every_change(url: str, http: httpx.AsyncClient) -> None:
    async with connect(ws_url(url, "status")) as ws:
        first = await receive(ws)
        assert first == (await http.get("/api/status")).json()
        await http.post("/api/queue/item/add", json={"item": count_item(20, delay=0.01)})
        added = await until(ws, lambda s: s["items_in_queue"] == 1)
        assert set(added[-1]) == set(first)
        await http.post("/api/queue/start")
        running = await until(ws, lambda s: s["manager_state"] == "executing_queue")
        assert running[-1]["running_item_uid"] is not None
        done = await until(ws, lambda s: s["manager_state"] == "idle")
        assert (done[-1]["items_in_queue"], done[-1]["items_in_history"]) == (0, 1)


async def test_progress_counts_the_events_of_the_running_item_a_few_times_a_second(
    url: str, http: httpx.AsyncClient
) -> None:
    async with connect(ws_url(url, "progress")) as ws:
        item_uid = await run_item(http, count_item(300))
        got = await until(ws, lambda p: p["done"] == 300)
    last = got[-1]
    assert last["item_uid"] == item_uid
    assert (last["plan_name"], last["total"]) == ("count", 300)
    assert [p["done"] for p in got] == sorted(p["done"] for p in got)
    assert len(got) < 100  # throttled: at most ~10 a second, not one per event


async def test_log_lines_of_acq_loggers_live_and_the_last_ones_on_connect(
    url: str, service: Service
) -> None:
    log = logging.getLogger("acq.test_websockets")
    async with connect(ws_url(url, "logs")) as ws:
        await eventually(fed(service, True), within=5)
        log.warning("on the loop %d", 1)
        thread = threading.Thread(target=log.error, args=("from a thread",))
        thread.start()
        thread.join()
        got = [await receive(ws), await receive(ws)]
    assert [(g["level"], g["logger"], g["message"]) for g in got] == [
        ("WARNING", "acq.test_websockets", "on the loop 1"),
        ("ERROR", "acq.test_websockets", "from a thread"),
    ]
    assert isinstance(got[0]["time"], float)
    async with connect(ws_url(url, "logs")) as ws:
        replayed = [await receive(ws), await receive(ws)]
    assert replayed == got


# -- credentials ----------------------------------------------------------------------------
KEY = "websocket-reader-key-0123456789"
QUEUE_ONLY = "websocket-queue-key-0123456789"


@pytest.fixture
def secured(bl: SimBeamline, tmp_path: Path) -> ServiceConfig:
    return ServiceConfig(
        devices=bl.by_name(), plans={"count": count}, catalog=str(tmp_path / "catalog.db"),
        api_keys=[
            ApiKey("reader", hash_api_key(KEY, iterations=1000), ["read:monitor", "read:console"]),
            ApiKey("queuer", hash_api_key(QUEUE_ONLY, iterations=1000), ["read:queue"]),
        ],
    )  # fmt: skip


async def test_credentials_by_header_or_query_and_refusals_closed_and_logged(
    secured: ServiceConfig, caplog: pytest.LogCaptureFixture
) -> None:
    async with Service(secured) as service, service.serving() as url:
        for route in ("documents", "status", "progress", "logs"):
            async with connect(ws_url(url, route)) as ws:
                assert await until_closed(ws) == ([], 4401, "credentials needed: send "
                                                   "'Authorization: ApiKey <key>'")  # fmt: skip
            async with connect(ws_url(url, route, api_key="wrong-key-0123456789")) as ws:
                assert (await until_closed(ws))[1:] == (4401, "invalid API key")
            async with connect(ws_url(url, route, api_key=QUEUE_ONLY)) as ws:
                _, code, reason = await until_closed(ws)
            assert code == 4403
            assert reason.startswith("missing scope 'read:")
        async with connect(ws_url(url, "status", api_key=KEY)) as ws:
            assert (await receive(ws))["manager_state"] == "idle"
        header = {"Authorization": f"ApiKey {KEY}"}
        async with connect(ws_url(url, "status"), additional_headers=header) as ws:
            assert (await receive(ws))["manager_state"] == "idle"
        async with connect(ws_url(url, "logs", access_token="xyz")) as ws:
            assert (await until_closed(ws))[1] == 4401  # no OIDC provider configured
    refusals = [r.getMessage() for r in caplog.records if r.name == "acq.service"]
    assert "refused WEBSOCKET /api/v1/ws/logs from queuer: missing scope 'read:console'" in (
        refusals
    )
