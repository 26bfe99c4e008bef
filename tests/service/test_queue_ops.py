"""Queue operations of queueserver, through the unmodified bluesky-queueserver-api client.

Batch add (all or nothing), update, move, batch move and remove, execute-now,
autostart, the queue's modes, and what happens to an item that fails or is stopped,
aborted or halted while paused: as queueserver does it. The core runs on SQLite and on
a real PostgreSQL server.
"""

from __future__ import annotations

import asyncio
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest
from acq.devices.sim import SimBeamline
from acq.plans import count
from acq.service import Service, ServiceConfig
from bluesky_queueserver_api.http.aio import REManagerAPI
from test_queue import count_item


def broken(reason: str = "boom") -> Generator[Any, Any, None]:
    """A plan that fails when it runs (its arguments are fine)."""
    raise RuntimeError(reason)
    yield  # a generator


@pytest.fixture
def config(bl: SimBeamline, tmp_path: Path) -> ServiceConfig:
    return ServiceConfig(
        devices=bl.by_name(),
        plans={"count": count, "broken": broken},
        catalog=str(tmp_path / "catalog.db"),
    )


def uids_of(items: list[dict[str, Any]]) -> list[str]:
    return [i["item_uid"] for i in items]


async def queued(RM: Any) -> list[str]:
    return uids_of((await RM.queue_get())["items"])


async def queue_ops_core(RM: Any) -> None:
    """Batch add, update, move, batch move, batch remove: each one change of the store."""
    a, b = uids_of((await RM.item_add_batch([count_item(1), count_item(2)]))["items"])
    c, d = uids_of((await RM.item_add_batch([count_item(3), count_item(4)], pos="front"))["items"])
    (e,) = uids_of((await RM.item_add_batch([count_item(5)], after_uid=c))["items"])
    assert await queued(RM) == [c, e, d, a, b]

    with pytest.raises(RM.HTTPClientError, match="422") as info:
        await RM.item_add_batch([count_item(6), count_item(num="x"), {"name": "mv"}])
    assert "items.1" in str(info.value)
    assert "items.2" in str(info.value)
    assert await queued(RM) == [c, e, d, a, b]  # nothing of the batch was added

    item = (await RM.item_get(uid=e))["item"]
    same = (await RM.item_update({**item, "kwargs": {"num": 7}}))["item"]
    assert same["item_uid"] == e
    new = (await RM.item_update({**same, "kwargs": {"num": 8}}, replace=True))["item"]
    assert new["item_uid"] != e
    assert await queued(RM) == [c, new["item_uid"], d, a, b]
    assert (await RM.item_get(pos=1))["item"]["kwargs"] == {"num": 8}
    e = new["item_uid"]

    await RM.item_move(uid=b, pos_dest="front")
    assert await queued(RM) == [b, c, e, d, a]
    await RM.item_move(pos=0, before_uid=a)
    assert await queued(RM) == [c, e, d, b, a]
    await RM.item_move(pos="back", pos_dest=1)
    assert await queued(RM) == [c, a, e, d, b]
    moved = await RM.item_move_batch(uids=[b, c], after_uid=e)
    assert uids_of(moved["items"]) == [b, c]
    assert await queued(RM) == [a, e, b, c, d]
    await RM.item_move_batch(uids=[d, a], pos_dest="front", reorder=True)
    assert await queued(RM) == [a, d, e, b, c]

    removed = await RM.item_remove_batch(uids=[e, c])
    assert uids_of(removed["items"]) == [e, c]
    assert await queued(RM) == [a, d, b]
    assert (await RM.status())["items_in_queue"] == 3


async def test_batch_add_update_move_and_remove_change_the_stored_queue(RM: Any) -> None:
    await queue_ops_core(RM)


@pytest.mark.database
async def test_the_queue_operations_work_on_postgresql(
    bl: SimBeamline, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    server = request.getfixturevalue("postgres")
    config = ServiceConfig(
        devices=bl.by_name(), plans={"count": count}, catalog=str(tmp_path / "catalog.db"),
        queue_url=server.create_database(),
    )  # fmt: skip
    async with Service(config) as service, service.serving() as url:
        assert service.store.url.startswith("postgresql+asyncpg://")
        RM: Any = REManagerAPI(http_server_uri=url, status_polling_period=0.05)
        try:
            await queue_ops_core(RM)
            await RM.queue_start()
            await RM.wait_for_idle(timeout=30)
            assert [h["result"]["exit_status"] for h in (await RM.history_get())["items"]] == [
                "completed"
            ] * 3
        finally:
            await RM.close()
    async with Service(config) as again:  # the same database, a new process
        assert (await again.store.sizes()) == (0, 3)


async def test_a_batch_with_a_bad_item_adds_nothing_and_answers_for_every_item(url: str) -> None:
    import httpx

    async with httpx.AsyncClient(base_url=url) as client:
        batch = [count_item(1), count_item(num=-1), {**count_item(1), "args": [["nope"]]}]
        reply = await client.post("/api/queue/item/add/batch", json={"items": batch})
        assert reply.status_code == 422
        answer = reply.json()
        assert answer["success"] is False
        assert "2 out of 3" in answer["msg"]
        assert [r["success"] for r in answer["results"]] == [True, False, False]
        assert "items.2" in answer["results"][2]["msg"]
        assert "nope" in answer["detail"]
        for path, bad, named in [
            ("queue/item/add/batch", {"items": "x"}, "items: a list"),
            ("queue/item/add/batch", {"items": [count_item(1)], "pos": "middle"}, "pos: must"),
            ("queue/autostart", {"enable": "yes"}, "enable: true or false"),
            ("queue/item/move/batch", {"uids": "abc", "pos_dest": 0}, "uids: a list"),
            ("queue/item/execute", {"item": [1]}, "item: an object"),
            ("re/runs", {"option": "all"}, "option: 'active', 'open' or 'closed'"),
        ]:
            reply = await client.post(f"/api/{path}", json=bad)
            assert reply.status_code == 422, path
            assert named in reply.json()["detail"]
        assert (await client.get("/api/queue/get")).json()["items"] == []


async def test_bad_moves_and_updates_are_refused_naming_the_field(RM: Any) -> None:
    (a,) = uids_of((await RM.item_add_batch([count_item(1)]))["items"])
    before = await RM.queue_get()
    cases = [
        (RM.item_move(uid=a), "pos_dest, before_uid, after_uid"),
        (RM.item_move(uid="nope", pos_dest=0), "no queued items ['nope']"),
        (RM.item_move(pos=5, pos_dest=0), "pos: no queued item at 5"),
        (RM.item_move_batch(uids=[a, a], pos_dest="front"), "uids: an item is listed more"),
        (RM.item_move_batch(uids=[a], before_uid=a), "before_uid: the item"),
        (RM.item_update({**count_item(2), "item_uid": "nope"}), "item.item_uid: no queued"),
        (RM.item_update(count_item(2)), "item.item_uid"),
        (RM.item_update({**count_item(num="x"), "item_uid": a}), "num"),
    ]
    for request, named in cases:
        with pytest.raises(RM.HTTPClientError, match="422") as info:
            await request
        assert named in str(info.value)
    with pytest.raises(RM.HTTPClientError, match=r"mode\.speed: unknown mode"):
        await RM.queue_mode_set(speed=True)
    with pytest.raises(RM.HTTPClientError, match=r"mode\.loop: true or false"):
        await RM.queue_mode_set(loop="yes")
    after = await RM.queue_get()
    assert (after["items"], after["plan_queue_uid"]) == (before["items"], before["plan_queue_uid"])


async def test_execute_runs_one_item_now_leaving_the_queue_alone(RM: Any, service: Service) -> None:
    waiting = (await RM.item_add(count_item(1)))["item"]["item_uid"]
    plan_queue_uid = (await RM.queue_get())["plan_queue_uid"]
    answer = await RM.item_execute(count_item(20, delay=0.05))
    executed = answer["item"]["item_uid"]
    await RM.wait_for_condition(lambda s: s["re_state"] == "running", timeout=10)
    status = await RM.status()
    assert (status["manager_state"], status["running_item_uid"]) == ("executing_queue", executed)
    RM.request_fail_exceptions_enabled = False
    refused = await RM.item_execute(count_item(1))
    assert refused["success"] is False
    assert "executing_queue" in refused["msg"]
    await RM.wait_for_idle(timeout=30)
    (done,) = (await RM.history_get())["items"]
    assert (done["item_uid"], done["result"]["exit_status"]) == (executed, "completed")
    assert "properties" not in done
    assert await queued(RM) == [waiting]  # not run, not moved
    queue = await RM.queue_get()
    assert queue["running_item"] == {}
    assert queue["plan_queue_uid"] != plan_queue_uid  # the running item came and went
    assert service.manager.autostart is False


async def test_autostart_starts_the_queue_when_an_item_is_added(RM: Any) -> None:
    await RM.queue_autostart(True)
    assert (await RM.status())["queue_autostart_enabled"] is True
    await RM.item_add(count_item(2))
    await RM.wait_for_condition(lambda s: s["items_in_history"] == 1, timeout=30)
    await RM.wait_for_idle(timeout=30)
    await RM.item_add_batch([count_item(1), count_item(1)])
    await RM.wait_for_condition(lambda s: s["items_in_history"] == 3, timeout=30)
    await RM.wait_for_idle(timeout=30)
    assert (await RM.status())["queue_autostart_enabled"] is True  # an empty queue keeps it
    await RM.item_add(count_item(30, delay=0.05))
    await RM.item_add(count_item(1))
    await RM.wait_for_condition(lambda s: s["re_state"] == "running", timeout=10)
    await RM.queue_stop()
    await RM.wait_for_idle(timeout=30)
    status = await RM.status()
    assert status["queue_autostart_enabled"] is False  # a stopped queue turns it off
    assert status["items_in_queue"] == 1


async def test_a_failed_item_goes_back_to_the_front_and_stops_the_queue(RM: Any) -> None:
    (bad, good) = uids_of((await RM.item_add_batch([
        {"name": "broken", "args": [], "kwargs": {"reason": "no beam"}}, count_item(1),
    ]))["items"])  # fmt: skip
    await RM.queue_start()
    await RM.wait_for_condition(lambda s: s["items_in_history"] == 1, timeout=30)
    await RM.wait_for_idle(timeout=30)
    (failed,) = (await RM.history_get())["items"]
    assert (failed["item_uid"], failed["result"]["exit_status"]) == (bad, "failed")
    assert "no beam" in failed["result"]["msg"]
    items = (await RM.queue_get())["items"]
    assert [i["name"] for i in items] == ["broken", "count"]
    assert items[0]["item_uid"] not in (bad, good)  # a new uid, as queueserver gives it
    assert items[1]["item_uid"] == good

    await RM.queue_mode_set(ignore_failures=True)
    assert (await RM.status())["plan_queue_mode"] == {"loop": False, "ignore_failures": True}
    await RM.queue_start()
    await RM.wait_for_condition(lambda s: s["items_in_history"] == 3, timeout=30)
    await RM.wait_for_idle(timeout=30)
    statuses = [h["result"]["exit_status"] for h in (await RM.history_get())["items"]]
    assert statuses == ["failed", "failed", "completed"]
    assert await queued(RM) == []
    await RM.queue_mode_set(mode="default")
    assert (await RM.status())["plan_queue_mode"]["ignore_failures"] is False


async def test_the_loop_mode_puts_each_done_item_back_at_the_end(RM: Any) -> None:
    await RM.queue_mode_set(loop=True)
    first, second = uids_of((await RM.item_add_batch([count_item(1), count_item(2)]))["items"])
    await RM.queue_start()
    await RM.wait_for_condition(lambda s: s["items_in_history"] >= 3, timeout=30)
    await RM.queue_stop()
    await RM.wait_for_idle(timeout=30)
    history = (await RM.history_get())["items"]
    assert [h["kwargs"]["num"] for h in history[:3]] == [1, 2, 1]
    assert uids_of(history[:2]) == [first, second]
    assert len(await queued(RM)) == 2  # the loop never empties the queue


async def test_the_queue_mode_survives_a_restart(config: ServiceConfig) -> None:
    async with Service(config) as first, first.serving() as url:
        RM: Any = REManagerAPI(http_server_uri=url, status_polling_period=0.05)
        try:
            await RM.queue_mode_set(loop=True)
        finally:
            await RM.close()
    async with Service(config) as second:
        assert second.manager.mode == {"loop": True, "ignore_failures": False}


async def _paused_with_one_behind(RM: Any) -> tuple[str, str]:
    running, behind = uids_of(
        (await RM.item_add_batch([count_item(30, delay=0.05), count_item(1)]))["items"]
    )
    await RM.queue_start()
    await RM.wait_for_condition(lambda s: s["re_state"] == "running", timeout=10)
    await RM.re_pause("immediate")
    await RM.wait_for_idle_or_paused(timeout=10)
    return running, behind


@pytest.mark.parametrize(
    ("control", "status", "requeued"),
    [("re_stop", "stopped", False), ("re_abort", "aborted", True), ("re_halt", "halted", True)],
)
async def test_a_paused_item_stopped_aborted_or_halted_ends_the_queue_as_queueserver_does(
    RM: Any, control: str, status: str, requeued: bool
) -> None:
    running, behind = await _paused_with_one_behind(RM)
    await RM.queue_autostart(True)
    runs = await RM.re_runs()
    assert [r["is_open"] for r in runs["run_list"]] == [True]
    await getattr(RM, control)()
    await RM.wait_for_idle(timeout=30)
    (done,) = (await RM.history_get())["items"]
    assert (done["item_uid"], done["result"]["exit_status"]) == (running, status)
    assert len(done["result"]["run_uids"]) == 1
    items = (await RM.queue_get())["items"]
    if requeued:  # back at the front with a new uid; the next item did not run
        assert [i["kwargs"]["num"] for i in items] == [30, 1]
        assert items[0]["item_uid"] != running
    else:  # a stop is a success: not put back, but the queue stops all the same
        assert uids_of(items) == [behind]
    status_now = await RM.status()
    assert (status_now["manager_state"], status_now["queue_autostart_enabled"]) == ("idle", False)
    assert (await RM.re_runs("closed"))["run_list"][0]["uid"] == done["result"]["run_uids"][0]


async def test_existing_plans_and_devices_and_runs_are_listed(RM: Any) -> None:
    assert set((await RM.plans_existing())["plans_existing"]) == {"count", "broken"}
    assert {"det", "x"} <= set((await RM.devices_existing())["devices_existing"])
    assert (await RM.re_runs("open"))["run_list"] == []
    await RM.queue_stop_cancel()


async def test_the_sync_client_in_a_thread_batches_moves_updates_and_executes(url: str) -> None:
    from bluesky_queueserver_api.http import REManagerAPI as SyncREManagerAPI

    def session() -> tuple[list[str], list[str], dict[str, Any]]:
        RM: Any = SyncREManagerAPI(http_server_uri=url, status_polling_period=0.05)
        try:
            a, b = uids_of(RM.item_add_batch([count_item(1), count_item(2)])["items"])
            RM.item_move(uid=b, before_uid=a)
            item = RM.item_get(uid=a)["item"]
            RM.item_update({**item, "kwargs": {"num": 3}})
            order = uids_of(RM.queue_get()["items"])
            RM.item_execute(count_item(1))
            RM.wait_for_idle(timeout=30)
            (done,) = RM.history_get()["items"]
            return [b, a], order, done
        finally:
            RM.close()

    expected, order, done = await asyncio.to_thread(session)  # the server is on this loop
    assert order == expected
    assert done["result"]["exit_status"] == "completed"
