"""The native ``/api/v1`` routes, against the real served URL: resources and HTTP statuses."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from acq.service import PlanRegistry, Service, ServiceConfig
from test_queue import count_item


@pytest.fixture
async def client(url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=f"{url}/api/v1") as c:
        yield c


async def _until(client: httpx.AsyncClient, key: str, value: Any) -> dict[str, Any]:
    """The status, once its ``key`` is ``value`` (polled, 30 s at most)."""
    async with asyncio.timeout(30):
        while True:
            status = (await client.get("/status")).json()
            if status[key] == value:
                return status
            await asyncio.sleep(0.02)


def _uids(items: list[dict[str, Any]]) -> list[str]:
    return [i["item_uid"] for i in items]


async def test_items_are_added_read_changed_moved_and_deleted_as_resources(
    client: httpx.AsyncClient,
) -> None:
    reply = await client.post("/queue/items", json=count_item(1))
    assert reply.status_code == 201
    (a,) = _uids(reply.json()["items"])
    reply = await client.post("/queue/items", json=[count_item(2), count_item(3)])
    b, c = _uids(reply.json()["items"])
    reply = await client.post("/queue/items", params={"pos": "front"}, json=count_item(4))
    (d,) = _uids(reply.json()["items"])
    reply = await client.post("/queue/items", json={"items": [count_item(5)], "after": d})
    (e,) = _uids(reply.json()["items"])
    assert reply.json()["qsize"] == 5
    assert _uids((await client.get("/queue")).json()["items"]) == [d, e, a, b, c]

    assert (await client.get(f"/queue/items/{b}")).json()["kwargs"] == {"num": 2}
    reply = await client.put(f"/queue/items/{b}", json=count_item(7))
    assert reply.json()["item_uid"] == b
    assert (await client.get(f"/queue/items/{b}")).json()["kwargs"] == {"num": 7}
    reply = await client.put(f"/queue/items/{b}", params={"replace": "true"}, json=count_item(8))
    b2 = reply.json()["item_uid"]
    assert b2 != b
    assert (await client.get(f"/queue/items/{b}")).status_code == 404

    reply = await client.post(f"/queue/items/{c}/move", json={"pos": "front"})
    assert reply.json()["queue"] == [c, d, e, a, b2]
    reply = await client.post(f"/queue/items/{c}/move", json={"after": a})
    assert reply.json()["queue"] == [d, e, a, c, b2]

    reply = await client.delete(f"/queue/items/{e}")
    assert (reply.status_code, reply.json()["item"]["item_uid"]) == (200, e)
    assert (await client.delete(f"/queue/items/{e}")).status_code == 404
    queue = (await client.get("/queue")).json()
    assert (_uids(queue["items"]), queue["running"]) == ([d, a, c, b2], None)


async def test_the_queue_runs_and_the_history_is_read_and_cleared(
    client: httpx.AsyncClient, service: Service
) -> None:
    await client.post("/queue/items", json=[count_item(1), count_item(2)])
    reply = await client.post("/queue/start")
    assert (reply.status_code, reply.json()["manager_state"]) == (200, "executing_queue")
    await _until(client, "manager_state", "idle")
    history = (await client.get("/history")).json()["items"]
    assert [h["result"]["exit_status"] for h in history] == ["completed", "completed"]
    assert (await client.delete("/history")).status_code == 204
    assert (await client.get("/history")).json()["items"] == []
    reply = await client.put("/queue/autostart", json={"enable": True})
    assert reply.json() == {"enable": True}
    await client.post("/queue/items", json=count_item(1))
    await _until(client, "items_in_history", 1)
    assert service.manager.autostart is True


async def test_the_engine_pauses_resumes_and_refuses_with_409(client: httpx.AsyncClient) -> None:
    reply = await client.post("/engine/resume")
    assert reply.status_code == 409
    assert "cannot resume" in reply.json()["detail"]
    assert (await client.post("/engine/pause")).status_code == 409
    assert (await client.post("/queue/stop")).status_code == 409
    await client.post("/queue/items", json=count_item(30, delay=0.05))
    await client.post("/queue/start")
    await _until(client, "re_state", "running")
    assert (await client.post("/queue/start")).status_code == 409
    reply = await client.post("/engine/pause", json={"option": "immediate"})
    assert reply.status_code == 200
    status = await _until(client, "manager_state", "paused")
    running = status["running_item_uid"]
    reply = await client.put(f"/queue/items/{running}", json=count_item(1))
    assert reply.status_code == 409
    assert "is running" in reply.json()["detail"]
    assert (await client.get(f"/queue/items/{running}")).json()["item_uid"] == running
    assert (await client.post("/engine/resume")).status_code == 200
    await _until(client, "manager_state", "idle")
    (done,) = (await client.get("/history")).json()["items"]
    assert done["result"]["exit_status"] == "completed"


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "named"),
    [
        ("POST", "/queue/items", {"name": "mv"}, 422, "unknown plan 'mv'"),
        ("POST", "/queue/items", [count_item(1), count_item(num="x")], 422, "items.1"),
        ("POST", "/queue/items", [], 422, "items:"),
        ("POST", "/queue/items", {"items": [count_item(1)], "pos": "mid"}, 422, "pos:"),
        ("POST", "/queue/items", {"items": [count_item(1)], "speed": 1}, 422, "speed"),
        ("PUT", "/queue/items/nope", count_item(1), 404, "no queued item 'nope'"),
        ("PUT", "/queue/items/nope", count_item(num="x"), 422, "num"),
        ("DELETE", "/queue/items/nope", None, 404, "no queued item 'nope'"),
        ("POST", "/queue/items/nope/move", {"pos": 0}, 404, "'nope'"),
        ("POST", "/queue/items/nope/move", {}, 422, "pos, before, after"),
        ("PUT", "/queue/autostart", {"enable": "yes"}, 422, "enable"),
        ("POST", "/engine/pause", {"option": "later"}, 422, "option"),
        ("GET", "/plans/mv", None, 404, "name: no plan 'mv'"),
    ],
)
async def test_bad_input_gets_a_status_naming_the_field_and_changes_nothing(
    client: httpx.AsyncClient, method: str, path: str, body: Any, status: int, named: str
) -> None:
    await client.post("/queue/items", json=count_item(1))
    before = (await client.get("/queue")).json()
    reply = await client.request(method, path, json=body)
    assert reply.status_code == status, reply.text
    assert named in reply.json()["detail"]
    assert (await client.get("/queue")).json() == before


async def test_plans_devices_and_a_plans_schema_are_described(client: httpx.AsyncClient) -> None:
    assert set((await client.get("/plans")).json()) == {"count"}
    assert (await client.get("/devices")).json()["x"]["is_movable"] is True
    described = (await client.get("/plans/count")).json()
    assert described["name"] == "count"
    assert [p["name"] for p in described["parameters"]][:2] == ["detectors", "num"]
    if hasattr(PlanRegistry, "json_schema"):  # the JSON Schema of the plan's arguments
        assert "num" in described["schema"]["properties"]


async def test_v1_routes_are_guarded_by_scopes_like_api(config: ServiceConfig) -> None:
    from acq.service._auth import READ_SCOPES

    reader = dataclasses.replace(config, anonymous_scopes=READ_SCOPES)
    async with (
        Service(reader) as service,
        service.serving() as url,
        httpx.AsyncClient(base_url=f"{url}/api/v1") as client,
    ):
        assert (await client.get("/queue")).status_code == 200
        assert (await client.get("/queue/items/x")).status_code == 404  # read:queue
        for method, path, scope in [
            ("POST", "/queue/items", "write:queue:edit"),
            ("PUT", "/queue/items/x", "write:queue:edit"),
            ("DELETE", "/queue/items/x", "write:queue:edit"),
            ("DELETE", "/history", "write:history:edit"),
            ("POST", "/queue/start", "write:queue:control"),
            ("POST", "/engine/abort", "write:plan:control"),
        ]:
            reply = await client.request(method, path, json=count_item(1))
            assert reply.status_code == 403, path
            assert f"missing scope {scope!r}" in reply.json()["detail"]
        assert (await client.get("/queue")).json()["items"] == []
