"""The queue and history live in the database: a new service on it finds them."""

from __future__ import annotations

from typing import Any

from acq.service import Service, ServiceConfig
from bluesky_queueserver_api.http.aio import REManagerAPI
from test_queue import count_item


async def test_second_service_on_the_same_database_sees_queue_and_history(
    config: ServiceConfig,
) -> None:
    async with Service(config) as first, first.serving() as url:
        RM: Any = REManagerAPI(http_server_uri=url, status_polling_period=0.05)
        try:
            await RM.item_add(count_item(1))
            await RM.queue_start()
            await RM.wait_for_idle(timeout=30)
            kept = (await RM.item_add(count_item(2)))["item"]
        finally:
            await RM.close()

    async with Service(config) as second, second.serving() as url:
        RM: Any = REManagerAPI(http_server_uri=url, status_polling_period=0.05)
        try:
            assert [i["item_uid"] for i in (await RM.queue_get())["items"]] == [kept["item_uid"]]
            (done,) = (await RM.history_get())["items"]
            assert done["result"]["exit_status"] == "completed"
            await RM.queue_start()  # the kept item runs in the new process
            await RM.wait_for_idle(timeout=30)
            assert len((await RM.history_get())["items"]) == 2
        finally:
            await RM.close()


async def test_an_item_left_running_is_recorded_as_interrupted_on_restart(
    config: ServiceConfig,
) -> None:
    async with Service(config) as first:
        await first.manager.add(count_item(5), None, None, None)
        await first.manager.add(count_item(6), None, None, None)
        running = await first.store.take_next()  # as the runner does; then the process "dies"
        assert running is not None
        uid = running["item_uid"]

    async with Service(config) as second, second.serving() as url:
        assert [i["item_uid"] for i in second.interrupted] == [uid]
        RM: Any = REManagerAPI(http_server_uri=url, status_polling_period=0.05)
        try:
            queue = await RM.queue_get()
            assert queue["running_item"] == {}
            assert [i["kwargs"]["num"] for i in queue["items"]] == [6]
            (left,) = (await RM.history_get())["items"]
            assert left["item_uid"] == uid
            assert left["result"]["exit_status"] == "interrupted"
            assert (await RM.status())["manager_state"] == "idle"
        finally:
            await RM.close()
