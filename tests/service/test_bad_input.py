"""Bad input gets a 4xx naming the field or the rule; nothing is queued, nothing runs."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from acq.service import Service
from test_queue import count_item


@pytest.mark.parametrize(
    ("item", "named"),
    [
        ({"name": "mv", "args": [["det"]], "kwargs": {}}, "unknown plan 'mv'"),
        ({**count_item(), "args": [["nope"]]}, "detectors.0: unknown device 'nope'"),
        (count_item(num="five"), "num: Input should be a valid integer"),
        (count_item(num=-1), "num"),  # count's own check (acq.PlanError), before queueing
        (count_item(speed=3), "got an unexpected keyword argument 'speed'"),
        ({**count_item(), "args": "det"}, "item.args: must be a list"),
        ({**count_item(), "item_type": "instruction"}, "item.item_type"),
    ],
    ids=["unknown-plan", "unknown-device", "wrong-type", "plan-check", "extra-kw",
         "args-not-list", "item-type"],
)  # fmt: skip
async def test_bad_item_is_refused_with_422_naming_it_and_queue_unchanged(
    RM: Any, service: Service, item: dict[str, Any], named: str
) -> None:
    await RM.item_add(count_item(1))
    before = await RM.queue_get()
    with pytest.raises(RM.HTTPClientError, match="422") as info:
        await RM.item_add(item)
    assert named in str(info.value)
    after = await RM.queue_get()
    assert after["items"] == before["items"]
    assert after["plan_queue_uid"] == before["plan_queue_uid"]
    assert service.RE.state == "idle"


async def test_every_wrong_argument_is_named_at_once(RM: Any) -> None:
    with pytest.raises(RM.HTTPClientError) as info:
        await RM.item_add({**count_item(num="five", delay="soon"), "args": [["nope"]]})
    message = str(info.value)
    assert "detectors.0" in message
    assert "num" in message
    assert "delay" in message


async def test_malformed_json_and_unknown_parameters_are_refused(url: str) -> None:
    async with httpx.AsyncClient(base_url=url) as client:
        reply = await client.post(
            "/api/queue/item/add",
            content=b"{not json",
            headers={"content-type": "application/json"},
        )
        assert reply.status_code == 400
        assert "malformed JSON" in reply.json()["detail"]
        reply = await client.post("/api/queue/item/add", json=[1, 2])
        assert reply.status_code == 400
        reply = await client.post("/api/queue/start", json={"bogus": 1})
        assert reply.status_code == 422
        assert "bogus: unknown parameter" in reply.json()["detail"]
        reply = await client.get("/api/status")
        assert reply.json()["items_in_queue"] == 0
        assert reply.json()["manager_state"] == "idle"


async def test_get_routes_take_query_parameters_instead_of_a_body(url: str, RM: Any) -> None:
    first = (await RM.item_add(count_item(1)))["item"]
    await RM.item_add(count_item(2))
    async with httpx.AsyncClient(base_url=url) as client:
        reply = await client.get("/api/queue/item/get", params={"pos": 0})
        assert reply.json()["item"]["item_uid"] == first["item_uid"]
        reply = await client.get("/api/queue/item/get", params={"uid": first["item_uid"]})
        assert reply.json()["item"]["kwargs"] == {"num": 1}
        reply = await client.get("/api/plans/allowed", params={"user_group": "primary"})
        assert "count" in reply.json()["plans_allowed"]
