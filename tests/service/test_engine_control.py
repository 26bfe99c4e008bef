"""Pause is a state: a plan paused over the API waits, then resumes or ends as asked."""

from __future__ import annotations

from typing import Any

import pytest
from acq.service import Service
from test_queue import count_item


async def _paused(RM: Any, num: int = 30) -> None:
    await RM.item_add(count_item(num, delay=0.05))
    await RM.queue_start()
    await RM.wait_for_condition(lambda s: s["re_state"] == "running", timeout=10)
    await RM.re_pause("immediate")
    await RM.wait_for_idle_or_paused(timeout=10)


async def test_pause_over_the_api_keeps_the_item_running_and_resume_completes_it(
    RM: Any, service: Service
) -> None:
    await _paused(RM)
    status = await RM.status()
    assert (status["manager_state"], status["re_state"]) == ("paused", "paused")
    assert status["running_item_uid"] is not None
    assert (await RM.history_get())["items"] == []  # a pause is not a failure

    await RM.re_resume()
    await RM.wait_for_idle(timeout=30)
    (done,) = (await RM.history_get())["items"]
    assert done["result"]["exit_status"] == "completed"
    catalog = service.RE.catalog
    assert catalog is not None
    run = catalog[done["result"]["run_uids"][0]]
    assert len(run.primary.read()["det"]) == 30  # every point, the pause rewound and replayed


@pytest.mark.parametrize(("control", "status"), [("re_abort", "aborted"), ("re_stop", "stopped")])
async def test_a_paused_plan_ends_as_the_api_asks(RM: Any, control: str, status: str) -> None:
    await _paused(RM)
    await getattr(RM, control)()
    await RM.wait_for_idle(timeout=30)
    (done,) = (await RM.history_get())["items"]
    assert done["result"]["exit_status"] == status
    assert len(done["result"]["run_uids"]) == 1
    requeued = [i["item_uid"] for i in (await RM.queue_get())["items"]]  # as queueserver:
    assert len(requeued) == (1 if status == "aborted" else 0)  # aborted: back, a new uid
    assert done["item_uid"] not in requeued


async def test_resume_when_nothing_is_paused_is_refused_with_a_reason(RM: Any) -> None:
    RM.request_fail_exceptions_enabled = False
    reply = await RM.re_resume()
    assert reply["success"] is False
    assert "idle" in reply["msg"]
    reply = await RM.re_pause()
    assert reply["success"] is False
    assert "no plan is running" in reply["msg"]
