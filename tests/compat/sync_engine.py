"""bluesky's RunEngine API, spelled on top of acq's engine, for bluesky's own tests.

:class:`BlueskyStyleRunEngine` owns an asyncio event loop and runs
``await acq.RunEngine(...)(plan)`` on it with ``loop.run_until_complete``, so that
bluesky's synchronous spellings (``RE(plan)``, ``RE.resume()``, ``RE.state == 'paused'``,
...) drive acq. It translates *spellings only*; what the engine does is acq's. The
mapping, and what it cannot map, is listed in ``tests/compat/README.md``.

Nothing here may make a bluesky test pass that acq's engine would fail: when acq has
no equivalent of a bluesky attribute, using it raises :class:`AttributeError` naming it
(so the test fails, and says why), rather than being silently accepted.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import threading
import warnings
from collections.abc import Callable, Coroutine, Iterable, Mapping
from typing import Any, cast

from bluesky.run_engine import (
    RunEngineResult,
    TransitionError,  # pyright: ignore[reportPrivateImportUsage] -- bluesky's tests import it so
)
from bluesky.utils import RunEngineInterrupted as BlueskyRunEngineInterrupted

import acq
from acq import RunEngine, RunResult, State

__all__ = ["BlueskyStyleRunEngine", "NO_PLAN_RETURN"]


class _NoPlanReturn:
    def __repr__(self) -> str:
        return "NO_PLAN_RETURN"


NO_PLAN_RETURN: Any = _NoPlanReturn()
"""``RE.NO_PLAN_RETURN``: a stopped, aborted or halted plan's ``plan_result``."""

# Every attribute a test may set on the adapter; anything else has no acq equivalent.
_SAME = frozenset(
    {"rewindable", "deferred_pause_requested", "verbose", "scan_id_source", "md_normalizer",
     "max_depth", "msg_hook", "waiting_hook"}
)  # fmt: skip
"""Attributes acq's RunEngine has under bluesky's name, with bluesky's meaning."""

_SETTABLE = frozenset(
    {"md", "md_validator", "preprocessors", "record_interruptions", "state_hook",
     "ignore_callback_exceptions",
     "request_pause"}  # tests wrap it; acq's own Ctrl-C handler still calls acq's
)  # fmt: skip


def _normalize_subs(subs: Any) -> list[tuple[str, Callable[..., Any]]]:
    """bluesky's per-call ``subs``: a callable, a list of them, or ``{name: cb or [cb]}``."""
    if subs is None:
        return []
    if callable(subs):
        return [("all", subs)]
    if isinstance(subs, Mapping):
        pairs: list[tuple[str, Callable[..., Any]]] = []
        for name, funcs in cast(Mapping[str, Any], subs).items():
            many = not callable(funcs)
            pairs.extend((name, f) for f in (cast(Iterable[Any], funcs) if many else [funcs]))
        return pairs
    if isinstance(subs, Iterable):
        return [("all", f) for f in cast(Iterable[Any], subs)]
    raise ValueError(f"subs must be a callable, a list of callables or a dict, got {subs!r}")


class BlueskyStyleRunEngine:
    """bluesky's ``RunEngine`` API over :class:`acq.RunEngine` (``catalog=None``).

    Args:
        md: the metadata stash (``RE.md``).
        call_returns_result: ``RE(plan)`` returns bluesky's ``RunEngineResult`` (True)
            or the tuple of run uids (False), as bluesky's option of that name.
        handle_sigint: acq's Ctrl-C handling while a plan runs.
    """

    NO_PLAN_RETURN = NO_PLAN_RETURN

    def __init__(
        self,
        md: dict[str, Any] | None = None,
        *,
        call_returns_result: bool = True,
        handle_sigint: bool = True,
    ) -> None:
        object.__setattr__(self, "_loop", asyncio.new_event_loop())
        engine = RunEngine({} if md is None else md, catalog=None, handle_sigint=handle_sigint)
        object.__setattr__(self, "_engine", engine)
        object.__setattr__(self, "_call_returns_result", call_returns_result)
        object.__setattr__(self, "preprocessors", [])
        object.__setattr__(self, "state_hook", None)
        object.__setattr__(self, "_ignore_callback_exceptions", False)
        # adapter token -> (name, callback, acq token); per-call ones end with the call
        object.__setattr__(self, "_subs", {})
        object.__setattr__(self, "_call_tokens", [])
        object.__setattr__(self, "_tokens", itertools.count(0))  # bluesky's start at 0
        object.__setattr__(self, "_ended_while_running", False)
        object.__setattr__(self, "_loop_thread", 0)  # the thread running the loop, if any
        engine.observe_state(self._on_state)
        # the RE a bluesky test sees is this facade: Msg('RE_class') describes it
        engine.register_command("RE_class", lambda msg: type(self))

    # -- attributes: only what acq has -------------------------------------------------------
    def __setattr__(self, name: str, value: Any) -> None:
        prop = getattr(type(self), name, None)
        if isinstance(prop, property) and prop.fset is not None:
            prop.fset(self, value)
        elif name in _SAME:
            setattr(self._engine, name, value)
        elif name in _SETTABLE:
            object.__setattr__(self, name, value)
        else:
            raise AttributeError(
                f"acq's RunEngine has no equivalent of bluesky's RE.{name} (compat adapter)"
            )

    def __getattr__(self, name: str) -> Any:
        if name in _SAME:
            return getattr(self._engine, name)
        raise AttributeError(
            f"acq's RunEngine has no equivalent of bluesky's RE.{name} (compat adapter)"
        )

    @property
    def engine(self) -> RunEngine:
        """The acq engine behind this facade."""
        return self._engine

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The loop plans run on (running only while ``RE(...)``/``RE.resume()`` run)."""
        return self._loop

    @property
    def call_returns_result(self) -> bool:
        """True: ``RE(plan)`` returns a ``RunEngineResult``; False: the run uids."""
        return self._call_returns_result

    @property
    def md(self) -> Any:
        """acq's ``RE.md``."""
        return self._engine.md

    @md.setter
    def md(self, value: Any) -> None:
        self._engine.md = value

    @property
    def md_validator(self) -> Any:
        """acq's ``RE.md_validator``."""
        return self._engine.md_validator

    @md_validator.setter
    def md_validator(self, value: Any) -> None:
        self._engine.md_validator = value

    @property
    def record_interruptions(self) -> bool:
        """acq's ``RE.record_interruptions``."""
        return self._engine.record_interruptions

    @record_interruptions.setter
    def record_interruptions(self, value: bool) -> None:
        self._engine.record_interruptions = value

    @property
    def state(self) -> str:
        """acq's state, spelled as bluesky's strings ('idle', 'running', 'paused', ...)."""
        return self._engine.state.value

    @property
    def suspenders(self) -> tuple[Any, ...]:
        """acq's installed suspenders."""
        return self._engine.suspenders

    @property
    def commands(self) -> list[str]:
        """The commands acq's engine understands."""
        return sorted(self._engine.commands)

    @property
    def ignore_callback_exceptions(self) -> bool:
        """False (bluesky's default): a callback's exception fails the run.

        bluesky calls callbacks synchronously, in order, and a raising callback kills
        the run; acq spells that ``subscribe(..., critical=True)``. True maps to acq's
        default (non-critical) subscriptions, whose errors are only recorded.
        """
        return self._ignore_callback_exceptions

    @ignore_callback_exceptions.setter
    def ignore_callback_exceptions(self, value: bool) -> None:
        object.__setattr__(self, "_ignore_callback_exceptions", bool(value))
        for token, (name, func, acq_token) in list(self._subs.items()):
            self._engine.unsubscribe(acq_token)
            self._subs[token] = (name, func, self._acq_subscribe(func, name))

    # -- subscriptions --------------------------------------------------------------------
    def _acq_subscribe(self, func: Callable[..., Any], name: str) -> int:
        if self._ignore_callback_exceptions:
            return self._engine.subscribe(func, name, thread=False)
        return self._engine.subscribe(func, name, critical=True)

    def subscribe(self, func: Callable[..., Any], name: str = "all") -> int:
        """bluesky's ``RE.subscribe(func, name)``: acq's subscribe (see above)."""
        acq_token = self._acq_subscribe(func, name)
        token = next(self._tokens)
        self._subs[token] = (name, func, acq_token)
        return token

    def unsubscribe(self, token: int) -> None:
        """bluesky's ``RE.unsubscribe(token)``."""
        entry = self._subs.pop(token, None)
        if entry is not None:
            self._engine.unsubscribe(entry[2])

    unsubscribe_lossless = unsubscribe  # bluesky's deprecated spelling of unsubscribe

    # -- commands, suspenders, preprocessors ------------------------------------------------
    def register_command(self, name: str, func: Callable[..., Any]) -> None:
        """acq's ``register_command`` (bluesky's handlers are ``async def f(msg)``)."""
        self._engine.register_command(name, func)

    def unregister_command(self, name: str) -> None:
        """acq's ``unregister_command``."""
        self._engine.unregister_command(name)

    def install_suspender(self, suspender: Any) -> None:
        """acq's ``install_suspender``."""
        self._engine.install_suspender(suspender)

    def remove_suspender(self, suspender: Any) -> None:
        """acq's ``remove_suspender``."""
        self._engine.remove_suspender(suspender)

    def clear_suspenders(self) -> None:
        """acq's ``clear_suspenders``."""
        self._engine.clear_suspenders()

    def request_suspend(
        self,
        fut: Callable[[], Any],
        *,
        pre_plan: Any = None,
        post_plan: Any = None,
        justification: str | None = None,
    ) -> None:
        """bluesky's ``request_suspend(fut, ...)``: acq's ``request_suspend(ready, ...)``."""
        self._on_loop(
            self._engine.request_suspend,
            fut,
            justification=justification or "",
            pre_plan=_plan_factory(pre_plan),
            post_plan=_plan_factory(post_plan),
        )

    # -- interruptions ----------------------------------------------------------------------
    def request_pause(self, defer: bool = False) -> None:
        """acq's ``request_pause(defer)``, from any thread."""
        try:
            self._on_loop(self._engine.request_pause, defer)
        except acq.StateError as exc:
            raise TransitionError(str(exc)) from exc

    def resume(self) -> Any:
        """bluesky's blocking ``RE.resume()``."""
        if self._engine.state is not State.PAUSED:
            raise TransitionError(
                f"The RunEngine is the {self.state} state. You can only resume for the "
                "paused state."
            )
        object.__setattr__(self, "_ended_while_running", False)
        return self._drive(self._engine.resume)

    def stop(self) -> Any:
        """bluesky's ``RE.stop()``."""
        return self._end("stop")

    def abort(self, reason: str = "") -> Any:
        """bluesky's ``RE.abort(reason)``."""
        return self._end("abort", reason)

    def halt(self) -> Any:
        """bluesky's ``RE.halt()``."""
        return self._end("halt")

    def _end(self, what: str, *args: Any) -> Any:
        """stop/abort/halt: while paused, block until the plan ended (as bluesky does).

        While a plan runs (from a callback or another thread), only ask: the blocked
        ``RE(...)`` then raises ``RunEngineInterrupted``, as bluesky's does.
        """
        end = cast(Callable[..., Any], getattr(self._engine, what))
        if self._engine.state is State.IDLE:
            raise TransitionError("RunEngine is already idle.")
        if self._loop.is_running():
            object.__setattr__(self, "_ended_while_running", True)
            self._on_loop(end, *args)
            return None

        async def ended() -> RunResult:
            return await end(*args)

        return self._drive(ended, interrupted=True)

    # -- running plans --------------------------------------------------------------------
    def __call__(self, plan: Any, subs: Any = None, /, **metadata_kw: Any) -> Any:
        """bluesky's blocking ``RE(plan, subs, **md)``: ``await acq_RE(plan, **md)``."""
        if self._engine.state is not State.IDLE:
            raise RuntimeError(f"The RunEngine is in a {self.state} state")
        for name, func in _normalize_subs(subs):
            self._call_tokens.append(self._acq_subscribe(func, name))
        object.__setattr__(self, "_ended_while_running", False)
        self._engine.preprocessors = list(self.preprocessors)

        def run() -> Coroutine[Any, Any, RunResult]:
            return self._engine(plan, **metadata_kw)

        return self._drive(run)

    def _drive(
        self, start: Callable[[], Coroutine[Any, Any, RunResult]], interrupted: bool = False
    ) -> Any:
        """Run acq's coroutine on the loop; spell its outcome as bluesky would."""
        object.__setattr__(self, "_loop_thread", threading.get_ident())
        try:
            result = self._loop.run_until_complete(start())
        except acq.RunEngineInterrupted as exc:
            raise BlueskyRunEngineInterrupted(str(exc)) from None
        except acq.RunAborted as exc:
            if self._ended_while_running:  # RE.abort()/halt() while RE(...) ran
                raise BlueskyRunEngineInterrupted(str(exc)) from None
            raise
        except acq.SubscriberError as exc:
            # bluesky's callbacks raise straight through RE(...); acq wraps the error
            if exc.__cause__ is not None:
                raise exc.__cause__ from exc
            raise
        except acq.StateError as exc:
            raise TransitionError(str(exc)) from exc
        finally:
            self._end_call()
        if self._ended_while_running:  # RE.stop() while RE(...) ran
            raise BlueskyRunEngineInterrupted(f"the plan was stopped: {result.reason}")
        return self._spell(result, interrupted)

    def _end_call(self) -> None:
        if self._engine.state is State.IDLE:
            for token in self._call_tokens:
                self._engine.unsubscribe(token)
            self._call_tokens.clear()

    def _spell(self, result: RunResult, interrupted: bool) -> Any:
        for error in result.callback_errors:  # bluesky reports an ignored one as a warning
            warnings.warn(
                f"callback {error.subscriber} raised on a {error.document!r} document: "
                f"{error.error!r} (acq: RunResult.callback_errors)",
                UserWarning,
                stacklevel=3,
            )
        if not self._call_returns_result:
            return result.run_start_uids
        plan_result = result.plan_result
        if interrupted and plan_result is None:
            plan_result = NO_PLAN_RETURN
        return RunEngineResult(
            run_start_uids=result.run_start_uids,
            plan_result=plan_result,
            exit_status=result.exit_status,
            interrupted=interrupted or result.interrupted,
            reason=result.reason,
            exception=None,
        )

    # -- plumbing ---------------------------------------------------------------------------
    def _on_state(self, old: State, new: State) -> None:
        hook = self.state_hook
        if hook is not None:
            hook(new.value, old.value)

    def _on_loop(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call ``func`` on the loop's thread (and wait), as bluesky's RE does."""
        loop = self._loop
        if not loop.is_running() or self._loop_thread == threading.get_ident():
            return func(*args, **kwargs)

        async def call() -> Any:
            return func(*args, **kwargs)

        return asyncio.run_coroutine_threadsafe(call(), loop).result()

    def close(self) -> None:
        """Halt whatever is left and close the loop (the fixture's teardown)."""
        if self._engine.state is State.PAUSED:
            with contextlib.suppress(Exception):  # the test's own failure matters more
                self.halt()
        loop = self._loop
        pending = asyncio.all_tasks(loop)
        for task in pending:
            task.cancel()
        if pending:
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


def _plan_factory(plan: Any) -> Callable[[], Any] | None:
    """bluesky's pre/post plans may be plans or callables returning one; acq's are callables."""
    if plan is None or callable(plan):
        return plan
    return lambda: plan
