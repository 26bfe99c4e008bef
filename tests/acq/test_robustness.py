"""Malformed messages and bad metadata: a clear AcqError naming the problem, never a crash.

Each bad input below once gave a TypeError/IndexError from deep inside the engine, an
invalid Stop document, or a device that moved before the refusal. The ``bare_RE`` fixture
checks every document against event-model's schema and that every run got its Stop.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest
from support import DocChecker, DoneStatus, ManualStatus, Signal

from acq import AcqInternalError, MetadataError, Msg, PlanError, RunEngine, UnknownCommandError


class Busy(Signal):
    """A device whose every status-returning method records the call and stays unfinished."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.statuses: list[ManualStatus] = []

    def _started(self, what: str, value: Any = None) -> ManualStatus:
        self.log.append((what, value))
        status = ManualStatus()
        self.statuses.append(status)
        return status

    def set(self, value: Any, **kwargs: Any) -> ManualStatus:  # type: ignore[override]
        return self._started("set", value)

    def trigger(self) -> ManualStatus:  # type: ignore[override]
        return self._started("trigger")

    def kickoff(self) -> ManualStatus:
        return self._started("kickoff")

    def complete(self) -> ManualStatus:
        return self._started("complete")

    def prepare(self, value: Any) -> ManualStatus:
        return self._started("prepare", value)


def with_cleanup(msgs: list[Msg], cleaned: list[str]) -> Generator[Msg, Any, None]:
    """Yield ``msgs``; record that the plan's ``finally`` ran."""
    try:
        for msg in msgs:  # noqa: UP028 -- a list iterator cannot take the replies
            yield msg
    finally:
        cleaned.append("finally")


# -- close_run with a reason or exit_status that is not a string ----------------------------
async def test_close_run_with_a_non_string_reason_emits_a_valid_stop_with_its_text(
    bare_RE: RunEngine, checker: DocChecker
) -> None:
    result = await bare_RE([Msg("open_run"), Msg("close_run", reason=ValueError("x"))])
    assert result.exit_status == "success"
    (stop,) = checker.of("stop")
    assert stop["reason"] == "x"
    assert stop["exit_status"] == "success"


async def test_close_run_with_a_bad_exit_status_is_a_plan_error_and_the_run_still_stops(
    bare_RE: RunEngine, checker: DocChecker
) -> None:
    cleaned: list[str] = []
    plan = with_cleanup([Msg("open_run"), Msg("close_run", exit_status=5)], cleaned)
    with pytest.raises(PlanError, match=r"exit_status=5.*'success', 'abort' or 'fail'"):
        await bare_RE(plan)
    assert cleaned == ["finally"]
    assert checker.names() == ["start", "stop"]
    (stop,) = checker.of("stop")
    assert stop["exit_status"] == "fail"
    assert "exit_status=5" in stop["reason"]


# -- a group that cannot be a group ---------------------------------------------------------
@pytest.mark.parametrize(
    ("command", "args"),
    [("set", (1,)), ("trigger", ()), ("kickoff", ()), ("prepare", (2,))],
)
async def test_an_unhashable_group_is_refused_before_the_device_is_called(
    bare_RE: RunEngine, checker: DocChecker, command: str, args: tuple[Any, ...]
) -> None:
    dev = Busy("dev")
    cleaned: list[str] = []
    msgs = [Msg("open_run"), Msg(command, dev, *args, group=["g"]), Msg("close_run")]
    with pytest.raises(PlanError, match=rf"'{command}'.*group=\['g'\].*hashable") as info:
        await bare_RE(with_cleanup(msgs, cleaned))
    assert "Msg(" in str(info.value)  # names the message
    assert [what for what, _ in dev.log if what != "stop"] == []
    assert cleaned == ["finally"]
    assert checker.names() == ["start", "stop"]


async def test_an_unhashable_group_with_other_keywords_is_refused_too(bare_RE: RunEngine) -> None:
    dev = Busy("dev")
    with pytest.raises(PlanError, match="group"):
        await bare_RE([Msg("set", dev, 1, group={"a": 1}, extra=2)])
    assert [what for what, _ in dev.log if what != "stop"] == []


class Stageable(Signal):
    def stage(self) -> DoneStatus:
        self.log.append(("stage", None))
        return DoneStatus()

    def unstage(self) -> DoneStatus:
        self.log.append(("unstage", None))
        return DoneStatus()


@pytest.mark.parametrize("command", ["stage", "unstage"])
async def test_an_unhashable_group_is_refused_before_a_stage_or_unstage(
    bare_RE: RunEngine, command: str
) -> None:
    dev = Stageable("dev")
    with pytest.raises(PlanError, match=rf"'{command}'.*group=\['g'\].*hashable"):
        await bare_RE([Msg(command, dev, group=["g"])])
    assert dev.log == []  # neither called, nor unstaged at the end


async def test_waiting_on_an_unhashable_group_is_a_plan_error(bare_RE: RunEngine) -> None:
    with pytest.raises(PlanError, match=r"'wait' with group=\[1\].*hashable"):
        await bare_RE([Msg("wait", None, group=[1])])


async def test_hashable_groups_of_any_kind_still_work(bare_RE: RunEngine) -> None:
    dev = Busy("dev")

    def plan() -> Generator[Msg, Any, None]:
        yield Msg("set", dev, 1, group=("a", 1))
        yield Msg("trigger", dev, group=7)
        for status in dev.statuses:
            status.finish()
        yield Msg("wait", None, group=("a", 1))
        yield Msg("wait", None, group=7)

    await bare_RE(plan())
    assert [what for what, _ in dev.log] == ["set", "trigger"]


# -- malformed messages: a PlanError thrown into the plan, whose cleanup runs ---------------
@pytest.mark.parametrize(
    ("msg", "error", "match"),
    [
        (
            Msg(["x"]),  # pyright: ignore[reportArgumentType]
            UnknownCommandError,
            r"unknown command \['x'\]",
        ),
        (Msg("install_suspender"), PlanError, r"'install_suspender' needs a suspender"),
        (Msg("install_suspender", 5), PlanError, r"'install_suspender' needs a suspender.* 5"),
        (Msg("remove_suspender"), PlanError, r"'remove_suspender' needs the suspender"),
        (Msg("sleep", None, "x"), PlanError, r"'sleep'.*seconds.*'x'"),
        (Msg("sleep", None, None), PlanError, r"'sleep'.*seconds.*None"),
        (Msg("wait_for", None, [42]), PlanError, r"'wait_for' needs a list of functions"),
    ],
    ids=[
        "unhashable-command",
        "install_suspender-without-object",
        "install_suspender-of-a-number",
        "remove_suspender-without-object",
        "sleep-str",
        "sleep-none",
        "wait_for-non-callable",
    ],
)
async def test_a_malformed_message_is_a_plan_error_thrown_into_the_plan(
    bare_RE: RunEngine, checker: DocChecker, msg: Msg, error: type[Exception], match: str
) -> None:
    cleaned: list[str] = []
    caught: list[BaseException] = []

    def plan() -> Generator[Msg, Any, None]:
        yield Msg("open_run")
        try:
            yield msg
        except Exception as exc:
            caught.append(exc)
            raise
        finally:
            cleaned.append("finally")

    with pytest.raises(error, match=match):
        await bare_RE(plan())
    assert [type(exc) for exc in caught] == [type(caught[0])]
    assert isinstance(caught[0], error)  # the plan saw the error: it was thrown into it
    assert cleaned == ["finally"]
    assert checker.names() == ["start", "stop"]
    assert checker.of("stop")[0]["exit_status"] == "fail"


async def test_sleep_still_takes_any_real_number(bare_RE: RunEngine) -> None:
    np = pytest.importorskip("numpy")
    await bare_RE(
        [Msg("sleep", None, 0), Msg("sleep", None, 0.0), Msg("sleep", None, np.float64(0))]
    )


# -- metadata is checked when RE(...) is called, before any device acts ---------------------
def moves_then_runs(motor: Signal) -> list[Msg]:
    return [Msg("set", motor, 1), Msg("open_run"), Msg("close_run")]


async def test_bad_call_metadata_is_refused_before_the_plan_moves_anything(
    bare_RE: RunEngine, checker: DocChecker
) -> None:
    motor = Signal("motor")
    with pytest.raises(MetadataError, match="'sample' must be a string or a dict"):
        await bare_RE(moves_then_runs(motor), sample=[1, 2])
    assert motor.log == []
    assert checker.docs == []


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [
        ("owner", 5, "'owner' must be a string"),
        ("scan_id", "seven", r"RE.md\['scan_id'\]"),
        ("when", object(), "metadata 'when' is a object"),
    ],
)
async def test_bad_re_md_is_refused_before_the_plan_moves_anything(
    bare_RE: RunEngine, checker: DocChecker, key: str, value: Any, match: str
) -> None:
    motor = Signal("motor")
    bare_RE.md[key] = value
    with pytest.raises(MetadataError, match=match):
        await bare_RE(moves_then_runs(motor))
    assert motor.log == []
    assert checker.docs == []


@pytest.mark.parametrize("key", ["uid", "time"])
async def test_reserved_call_keywords_are_refused_before_the_plan_moves_anything(
    bare_RE: RunEngine, key: str
) -> None:
    motor = Signal("motor")
    with pytest.raises(MetadataError, match=f"{key!r}.*reserved"):
        await bare_RE(moves_then_runs(motor), **{key: 1})
    assert motor.log == []


async def test_call_metadata_may_fix_re_md_and_plan_md_stays_checked_at_open_run(
    bare_RE: RunEngine, checker: DocChecker
) -> None:
    motor = Signal("motor")
    bare_RE.md["owner"] = 5
    await bare_RE(moves_then_runs(motor), owner="dan")  # the keyword wins: a valid Start
    assert checker.of("start")[0]["owner"] == "dan"
    # the plan's own metadata is only known at open_run: refused there
    plan = [Msg("set", motor, 2), Msg("open_run", sample=[1]), Msg("close_run")]
    with pytest.raises(MetadataError, match="'sample'"):
        await bare_RE(plan, owner="dan")
    assert ("set", 2) in motor.log  # it moved: the plan ran up to its open_run


async def test_md_validator_still_sees_only_final_metadata(bare_RE: RunEngine) -> None:
    """A validator requiring a key the plan's md gives is not run early on partial md."""
    seen: list[dict[str, Any]] = []

    def needs_purpose(md: dict[str, Any]) -> None:
        seen.append(md)
        if "purpose" not in md:
            raise ValueError("no purpose")

    bare_RE.md_validator = needs_purpose
    await bare_RE([Msg("open_run", purpose="good"), Msg("close_run")])
    assert [md["purpose"] for md in seen] == ["good"]


async def test_a_stop_that_cannot_be_validated_leaves_the_run_open_for_cleanup(
    bare_RE: RunEngine, checker: DocChecker, monkeypatch: pytest.MonkeyPatch
) -> None:
    # an invalid Stop is a bug in acq; it must not lose the run: cleanup closes it
    from acq._documents import RunBundler

    real = RunBundler.stop_document
    calls: list[str] = []

    def first_stop_broken(self: RunBundler, exit_status: str, reason: str) -> dict[str, Any]:
        doc = real(self, exit_status, reason)
        calls.append(exit_status)
        if len(calls) == 1:
            doc["exit_status"] = "no such status"
        return doc

    monkeypatch.setattr(RunBundler, "stop_document", first_stop_broken)
    with pytest.raises(AcqInternalError):
        await bare_RE([Msg("open_run"), Msg("close_run")])
    assert checker.names() == ["start", "stop"]  # closed by the cleanup, with its failure
    assert checker.of("stop")[0]["exit_status"] == "fail"


# -- a run key that cannot be a key (found by tests/acq/test_fuzz.py) -----------------------
UNHASHABLE: Any = ["r"]


@pytest.mark.parametrize(
    "msgs",
    [
        [Msg("open_run", run=UNHASHABLE)],
        [Msg("open_run"), Msg("create", name="primary", run=UNHASHABLE)],
        [Msg("open_run"), Msg("close_run", run=UNHASHABLE)],
    ],
    ids=["open_run", "create", "close_run"],
)
async def test_an_unhashable_run_key_is_a_plan_error_naming_the_message(
    bare_RE: RunEngine, checker: DocChecker, msgs: list[Msg]
) -> None:
    command = msgs[-1].command
    with pytest.raises(PlanError, match=rf"'{command}' with run=.*hashable"):
        await bare_RE(msgs)
    assert checker.names() == ([] if command == "open_run" else ["start", "stop"])


# -- a wait timeout that is not a number (found by tests/acq/test_fuzz.py) -----------------
@pytest.mark.parametrize("pending", [True, False], ids=["pending-group", "empty-group"])
async def test_a_wait_with_a_non_numeric_timeout_is_a_plan_error(
    bare_RE: RunEngine, pending: bool
) -> None:
    dev = Busy("dev")
    msgs = [Msg("set", dev, 1, group="g")] if pending else []
    msgs.append(Msg("wait", None, group="g", timeout="soon"))
    with pytest.raises(PlanError, match=r"'wait'.*timeout.*'soon'"):
        await bare_RE(msgs)


@pytest.mark.parametrize("watch", [5, [["g2"]]], ids=["number", "unhashable-name"])
async def test_a_wait_watching_something_that_is_not_groups_is_a_plan_error(
    bare_RE: RunEngine, watch: Any
) -> None:
    dev = Busy("dev")
    msgs = [Msg("set", dev, 1, group="g"), Msg("wait", None, group="g", watch=watch)]
    with pytest.raises(PlanError, match=r"'wait' with watch=.*group name"):
        await bare_RE(msgs)
