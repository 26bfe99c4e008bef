"""The compat suite's own tools: the verdict's strictness and the adapter's spellings."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import suite
from bluesky import Msg
from bluesky.run_engine import RunEngineResult
from bluesky.utils import RunEngineInterrupted
from sync_engine import NO_PLAN_RETURN, BlueskyStyleRunEngine


def _record(nodeid: str, outcome: str, detail: str = "") -> dict[str, Any]:
    return {"nodeid": nodeid, "outcome": outcome, "detail": detail}


FILES = ("test_a.py",)


def test_a_known_failure_that_passes_makes_the_verdict_fail() -> None:
    verdict = suite.judge(
        [_record("test_a.py::test_x", "passed")], {"test_a.py::test_x": "cause"}, {}, FILES
    )
    assert not verdict.ok
    assert verdict.fixed == ["test_a.py::test_x"]
    assert "delete its line" in verdict.problems()


def test_an_unlisted_failure_makes_the_verdict_fail_and_shows_its_detail() -> None:
    verdict = suite.judge([_record("test_a.py::test_x", "failed", "E boom")], {}, {}, FILES)
    assert not verdict.ok
    assert "E boom" in verdict.problems()


def test_listed_failures_excluded_and_skipped_tests_leave_the_verdict_ok() -> None:
    records = [
        _record("test_a.py::test_ok", "passed"),
        _record("test_a.py::test_known", "failed", "E known"),
        _record("test_a.py::test_internal[1]", "excluded", "RE._x"),
        _record("test_a.py::test_db", "skipped", "no databroker"),
    ]
    verdict = suite.judge(
        records, {"test_a.py::test_known": "c"}, {"test_a.py::test_internal": "RE._x"}, FILES
    )
    assert verdict.ok
    assert verdict.applicable == 2
    assert verdict.summary().startswith("acq passes 1 of 2 applicable bluesky tests")


def test_list_entries_that_match_no_test_make_the_verdict_fail() -> None:
    records = [_record("test_a.py::test_ok", "passed")]
    verdict = suite.judge(
        records, {"test_a.py::test_gone": "c"}, {"test_a.py::test_renamed": "RE._x"}, FILES
    )
    assert verdict.stale_known == ["test_a.py::test_gone"]
    assert verdict.stale_excluded == ["test_a.py::test_renamed"]
    assert not verdict.ok


@pytest.fixture
def bs_RE() -> Iterator[BlueskyStyleRunEngine]:
    engine = BlueskyStyleRunEngine({}, handle_sigint=False)
    yield engine
    engine.close()


def test_adapter_returns_a_bluesky_result_with_the_run_uids(bs_RE: BlueskyStyleRunEngine) -> None:
    names: list[str] = []

    def plan() -> Any:
        yield Msg("open_run")
        yield Msg("close_run")
        return "done"

    result = bs_RE(plan(), lambda name, doc: names.append(name))
    assert isinstance(result, RunEngineResult)
    assert result.plan_result == "done"
    assert result.exit_status == "success"
    assert len(result.run_start_uids) == 1
    assert names == ["start", "stop"]


def test_adapter_pause_raises_bluesky_interrupted_and_abort_ends_it(
    bs_RE: BlueskyStyleRunEngine,
) -> None:
    with pytest.raises(RunEngineInterrupted):
        bs_RE([Msg("open_run"), Msg("pause"), Msg("close_run")])
    assert bs_RE.state == "paused"
    result = bs_RE.abort("enough")
    assert result.exit_status == "abort"
    assert result.plan_result is NO_PLAN_RETURN
    assert bs_RE.state == "idle"


def test_adapter_refuses_attributes_acq_has_no_equivalent_of(
    bs_RE: BlueskyStyleRunEngine,
) -> None:
    with pytest.raises(AttributeError, match=r"no equivalent of bluesky's RE\.loop_for_kwargs"):
        bs_RE.loop_for_kwargs = {}
    with pytest.raises(AttributeError, match=r"no equivalent of bluesky's RE\._run_bundlers"):
        _ = bs_RE._run_bundlers  # pyright: ignore[reportPrivateUsage]


def test_adapter_msg_hook_sees_each_message_the_plan_yields(bs_RE: BlueskyStyleRunEngine) -> None:
    seen: list[str] = []
    bs_RE.msg_hook = lambda msg: seen.append(msg.command)
    bs_RE([Msg("null"), Msg("sleep", None, 0)])
    assert seen == ["null", "sleep"]
