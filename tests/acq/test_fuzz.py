"""Random message sequences, valid and invalid, against the engine (a hypothesis fuzz).

Whatever a plan yields, the engine must: never hang, leave no run open (one Stop for
every Start), emit only valid documents, end IDLE, and fail only with an error that
names the command of the message that caused it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Generator
from typing import Any, NamedTuple

from bluesky.utils import Msg as BlueskyMsg
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from support import DocChecker, DoneStatus, ManualStatus, Signal

from acq import AcqError, FailedStatus, Msg, RequestAbort, RunEngine, State


class Later(Signal):
    """A device whose statuses finish on a later turn of the event loop."""

    def _later(self) -> ManualStatus:
        status = ManualStatus()
        asyncio.get_running_loop().call_soon(status.finish)
        return status

    def set(self, value: Any) -> ManualStatus:  # type: ignore[override]
        self.log.append(("set", value))
        self.value = value
        return self._later()

    def trigger(self) -> ManualStatus:  # type: ignore[override]
        self.log.append(("trigger", None))
        return self._later()


class Stuck(Signal):
    """A device whose statuses never finish (only ever waited on with a timeout)."""

    def set(self, value: Any) -> ManualStatus:  # type: ignore[override]
        self.log.append(("set", value))
        return ManualStatus()

    def trigger(self) -> ManualStatus:  # type: ignore[override]
        self.log.append(("trigger", None))
        return ManualStatus()


class Failing(Signal):
    """A device whose moves and acquisitions fail."""

    def set(self, value: Any) -> DoneStatus:  # type: ignore[override]
        self.log.append(("set", value))
        return DoneStatus(success=False, exc=RuntimeError("motor jammed"))

    def trigger(self) -> DoneStatus:  # type: ignore[override]
        self.log.append(("trigger", None))
        return DoneStatus(success=False, exc=RuntimeError("detector jammed"))


def devices() -> dict[str, Any]:
    """Fresh devices for one example, by the names the strategy uses."""
    return {
        "sig": Signal("sig"),
        "text": Signal("text", value="abc", units=""),
        "later": Later("later"),
        "stuck": Stuck("stuck"),
        "failing": Failing("failing"),
        "none": None,
        "number": 5,
    }


# A message is drawn as (command, object's name, args, kwargs, run) and built once the
# example's devices exist. ``stuck`` only files its statuses under the group "slow", and
# every wait for "slow" has a timeout: a wait without one would (rightly) wait forever.
runs = st.sampled_from([None, "r1", "r2"])
streams = st.sampled_from(["primary", "baseline", "other"])
groups = st.sampled_from([None, "g", "h"])
timeouts = st.sampled_from([None, 0.0, 0.01])
Drawn = tuple[str, str, tuple[Any, ...], dict[str, Any], Any]


def msg(command: str, obj: str = "none", *args: Any, run: Any = None, **kwargs: Any) -> Drawn:
    return (command, obj, args, kwargs, run)


valid = st.one_of(
    st.builds(lambda run: msg("open_run", run=run), runs),
    st.builds(lambda run: msg("close_run", run=run), runs),
    st.builds(lambda name, run: msg("create", name=name, run=run), streams, runs),
    st.builds(lambda run: msg("save", run=run), runs),
    st.builds(lambda run: msg("drop", run=run), runs),
    st.builds(lambda dev: msg("read", dev), st.sampled_from(["sig", "text", "later"])),
    st.builds(
        lambda dev, value, group: msg("set", dev, value, group=group),
        st.sampled_from(["sig", "later", "failing"]),
        st.integers(-3, 3),
        groups,
    ),
    st.builds(
        lambda dev, group: msg("trigger", dev, group=group),
        st.sampled_from(["sig", "later", "failing"]),
        groups,
    ),
    st.builds(lambda dev: msg("set", dev, 1, group="slow"), st.just("stuck")),
    st.builds(lambda dev: msg("trigger", dev, group="slow"), st.just("stuck")),
    st.builds(lambda group: msg("wait", group=group), groups),
    st.builds(lambda group, timeout: msg("wait", group=group, timeout=timeout), groups, timeouts),
    st.builds(
        lambda timeout: msg("wait", group="slow", timeout=timeout), st.sampled_from([0.0, 0.01])
    ),
    st.just(msg("checkpoint")),
    st.just(msg("clear_checkpoint")),
    st.just(msg("sleep", "none", 0)),
    st.just(msg("null")),
)

invalid = st.one_of(
    st.just(msg("frobnicate")),
    st.just(msg("open_run", run=["unhashable"])),
    st.just(msg("close_run", exit_status=5)),
    st.just(msg("close_run", exit_status="weird")),
    st.just(msg("create", name=5)),
    st.just(msg("read", "none")),
    st.just(msg("read", "number")),
    st.just(msg("set", "none", 1)),
    st.just(msg("set", "number", 1)),
    st.just(msg("set", "sig", 1, group=["g"])),
    st.just(msg("trigger", "number")),
    st.just(msg("wait", group=["g"])),
    st.just(msg("wait", group="g", timeout="soon")),
    st.just(msg("sleep", "none", "x")),
    st.just(msg("sleep", "none", None)),
    st.just(msg("sleep", "none", -1)),
    st.just(msg("checkpoint", "sig", 1, 2, extra=3)),
    st.just(msg("open_run", sample=[1, 2])),
    st.just(msg("open_run", owner=5)),
    st.just(msg("close_run", reason=ValueError("not text"))),
    st.just(msg("wait", group="slow", timeout=0.0, error_on_timeout=False)),
    st.just(msg("read", "sig", "extra-argument")),
    st.just(msg("wait", group="g", watch=5)),
    st.just(msg("save", "sig", 1)),
    st.just(msg("create", "sig", name="primary")),
    st.just(msg("kickoff", "sig")),
    st.just(msg("collect", "sig")),
    st.just(msg("stage", "number")),
    st.just(msg("configure", "sig", exposure=1)),
    st.just(msg("monitor", "sig")),
    st.just(msg("locate", "number")),
    st.just(msg("declare_stream", "none", "sig", name="primary")),
    st.just(msg("declare_stream", "none", "number", name=5)),
    st.just(msg("unmonitor", "sig")),
)

# runs and their events: drawn more often, so that most plans open runs and fill them
bundling = st.one_of(
    st.builds(lambda run: msg("open_run", run=run), runs),
    st.builds(lambda run: msg("close_run", run=run), runs),
    st.builds(lambda name, run: msg("create", name=name, run=run), streams, runs),
    st.builds(lambda dev, run: msg("read", dev, run=run), st.sampled_from(["sig", "text"]), runs),
    st.builds(lambda run: msg("save", run=run), runs),
)
starts = st.sampled_from([[], [msg("open_run")], [msg("open_run"), msg("create", name="primary")]])
plans = st.builds(
    lambda start, body: start + body,
    starts,
    st.lists(st.one_of(bundling, bundling, valid, valid, invalid), max_size=30),
)


def build(drawn: list[Drawn], devs: dict[str, Any], bluesky: bool) -> list[Any]:
    """The messages, as acq's ``Msg`` or bluesky's (the engine takes both)."""
    make = BlueskyMsg if bluesky else Msg
    return [make(cmd, devs[obj], *args, run=run, **kwargs) for cmd, obj, args, kwargs, run in drawn]


def recorded(
    msgs: list[Msg], sent: list[Msg], caught: list[tuple[int, Exception]], resilient: bool
) -> Generator[Msg, Any, None]:
    """Yield ``msgs``, recording each; a ``resilient`` plan catches errors and goes on."""
    for m in msgs:
        sent.append(m)
        try:
            yield m
        except Exception as exc:
            if not resilient:
                raise
            caught.append((len(sent), exc))


class Outcome(NamedTuple):
    checker: DocChecker
    RE: RunEngine
    sent: list[Msg]
    caught: list[tuple[int, Exception]]  # (how many messages were sent, the error)
    error: BaseException | None


async def run_plan(msgs: list[Msg], resilient: bool) -> Outcome:
    RE = RunEngine(catalog=None)
    checker = DocChecker()
    RE.subscribe(checker, thread=False)
    sent: list[Msg] = []
    caught: list[tuple[int, Exception]] = []
    error: BaseException | None = None
    try:
        async with asyncio.timeout(5):
            await RE(recorded(msgs, sent, caught, resilient))
    except TimeoutError as exc:
        if isinstance(exc, AcqError):  # a wait's own timeout (WaitTimeoutError)
            error = exc
        else:
            raise AssertionError(f"the engine hung on {msgs}") from exc
    except Exception as exc:  # noqa: BLE001 -- checked by the caller
        error = exc
    return Outcome(checker, RE, sent, caught, error)


def assert_names_its_message(error: BaseException, sent: list[Msg]) -> None:
    """``error`` is one of acq's, and what its traceback shows names the command at fault.

    That is in its text or in the note the engine adds (``acq: raised by the 'x'
    message``). The message at fault is the last one sent, except for a status that
    failed with nobody waiting for it: as in bluesky, that fails the message after it,
    and the error names the message that started the status.
    """
    assert isinstance(error, AcqError | RequestAbort), repr(error)
    shown = "\n".join([str(error), *getattr(error, "__notes__", ())])
    at_fault = sent if isinstance(error, FailedStatus) else sent[-1:]
    commands = {repr(m.command) for m in at_fault}
    assert any(c in shown for c in commands), f"{error!r} names none of {commands}"


@settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(plans, st.booleans(), st.booleans())
def test_random_message_sequences_keep_the_engine_sound(
    drawn: list[Drawn], resilient: bool, bluesky: bool
) -> None:
    out = asyncio.run(run_plan(build(drawn, devices(), bluesky), resilient))
    out.checker.assert_clean()  # valid documents, one Stop for every Start
    assert out.RE.state is State.IDLE
    for sent, exc in out.caught:
        event(f"caught {type(exc).__name__}")
        assert_names_its_message(exc, out.sent[:sent])
    if out.error is not None:
        event(f"raised {type(out.error).__name__}")
        assert out.sent, f"{out.error!r} before any message"
        assert_names_its_message(out.error, out.sent)
    event(f"{len(out.checker.of('start'))} runs")
