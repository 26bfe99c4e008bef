"""The unmodified bluesky-queueserver-api client runs a queue on acq's in-loop service."""

from __future__ import annotations

import asyncio
from typing import Any

from acq.service import Service


def count_item(num: Any = 3, **kwargs: Any) -> dict[str, Any]:
    return {
        "name": "count",
        "args": [["det"]],
        "kwargs": {"num": num, **kwargs},
        "item_type": "plan",
    }


async def test_client_adds_two_counts_runs_the_queue_and_reads_completed_history(
    RM: Any, service: Service
) -> None:
    status = await RM.status()
    assert status["manager_state"] == "idle"
    assert status["worker_environment_exists"] is True
    await RM.environment_open()
    first = await RM.item_add(count_item(3))
    await RM.item_add(count_item(2))
    queue = await RM.queue_get()
    assert queue["items"][0]["item_uid"] == first["item"]["item_uid"]
    assert len(queue["items"]) == 2
    assert (await RM.status())["items_in_queue"] == 2

    await RM.queue_start()
    await RM.wait_for_idle(timeout=30)

    history = (await RM.history_get())["items"]
    assert [h["result"]["exit_status"] for h in history] == ["completed", "completed"]
    uids = [h["result"]["run_uids"] for h in history]
    assert all(len(u) == 1 for u in uids)
    catalog = service.RE.catalog
    assert catalog is not None
    assert catalog[uids[0][0]].start["num_points"] == 3  # the runs are in acq's catalog
    assert catalog[uids[1][0]].start["queue_item_uid"] == history[1]["item_uid"]
    assert (await RM.queue_get())["items"] == []
    status = await RM.status()
    assert (status["items_in_queue"], status["items_in_history"]) == (0, 2)


async def test_items_go_where_pos_says_and_remove_and_clear_change_the_queue(RM: Any) -> None:
    a = (await RM.item_add(count_item(1)))["item"]["item_uid"]
    b = (await RM.item_add(count_item(2), pos="front"))["item"]["item_uid"]
    c = (await RM.item_add(count_item(3), after_uid=b))["item"]["item_uid"]
    assert [i["item_uid"] for i in (await RM.queue_get())["items"]] == [b, c, a]
    removed = await RM.item_remove(uid=c)
    assert removed["item"]["item_uid"] == c
    assert [i["item_uid"] for i in (await RM.queue_get())["items"]] == [b, a]
    await RM.queue_clear()
    assert (await RM.queue_get())["items"] == []


async def test_history_clear_empties_the_history(RM: Any) -> None:
    await RM.item_add(count_item(1))
    await RM.queue_start()
    await RM.wait_for_idle(timeout=30)
    assert len((await RM.history_get())["items"]) == 1
    await RM.history_clear()
    assert (await RM.history_get())["items"] == []


async def test_allowed_lists_name_only_the_configured_plans_and_devices(RM: Any) -> None:
    plans = (await RM.plans_allowed())["plans_allowed"]
    assert set(plans) == {"count"}
    assert [p["name"] for p in plans["count"]["parameters"]][:2] == ["detectors", "num"]
    devices = (await RM.devices_allowed())["devices_allowed"]
    assert {"det", "x", "y"} <= set(devices)
    assert devices["x"]["is_movable"] is True


async def test_queue_stop_ends_the_queue_after_the_running_item(RM: Any) -> None:
    await RM.item_add(count_item(20, delay=0.05))
    await RM.item_add(count_item(1))
    await RM.queue_start()
    await RM.wait_for_condition(lambda s: s["re_state"] == "running", timeout=10)
    await RM.queue_stop()
    assert (await RM.status())["queue_stop_pending"] is True
    await RM.wait_for_idle(timeout=30)
    assert len((await RM.history_get())["items"]) == 1
    assert len((await RM.queue_get())["items"]) == 1


async def test_the_sync_client_in_a_thread_runs_the_queue_too(url: str) -> None:
    from bluesky_queueserver_api.http import REManagerAPI as SyncREManagerAPI

    def session() -> list[Any]:
        RM: Any = SyncREManagerAPI(http_server_uri=url, status_polling_period=0.05)
        try:
            RM.item_add(count_item(2))
            RM.queue_start()
            RM.wait_for_idle(timeout=30)
            return RM.history_get()["items"]
        finally:
            RM.close()

    (done,) = await asyncio.to_thread(session)  # the server answers on this test's loop
    assert done["result"]["exit_status"] == "completed"
