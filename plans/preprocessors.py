"""Preprocessors: plans that wrap plans, as ``*_wrapper`` functions and ``*_decorator`` s.

Most are built on :func:`plan_mutator`, which drives the wrapped plan (sub-plans
included, at any depth) and lets a function replace or surround each message::

    def every_set_twice(msg):
        if msg.command == "set":
            return pchain(single_gen(msg), single_gen(msg)), None
        return None, None

    RE(plan_mutator(scan([det], motor, -1, 1, 5), every_set_twice))

The others simply yield the wrapped plan as a sub-plan (``result = yield plan``), which
costs nothing per message. Wrappers never catch ``GeneratorExit`` (a halt closes the plan
without cleanup); cleanup runs on success, failure, stop and abort.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeAlias

from acq import Msg, PlanFinished, PlanStack, RequestAbort, RequestStop, Return, as_plan

from .stubs import (
    PlanGenerator,
    broadcast_msg,
    complete_all,
    install_suspender,
    kickoff_all,
    new_group,
    remove_suspender,
    stage_all,
    trigger_and_read,
    unique_devices,
    unstage_all,
    where,
)

__all__ = [
    "SupplementalData",
    "baseline_decorator",
    "baseline_wrapper",
    "contingency_decorator",
    "contingency_wrapper",
    "finalize_decorator",
    "finalize_wrapper",
    "fly_during_decorator",
    "fly_during_wrapper",
    "inject_md_decorator",
    "inject_md_wrapper",
    "make_decorator",
    "monitor_during_decorator",
    "monitor_during_wrapper",
    "msg_mutator",
    "pchain",
    "plan_mutator",
    "relative_set_decorator",
    "relative_set_wrapper",
    "reset_positions_decorator",
    "reset_positions_wrapper",
    "rewindable_decorator",
    "rewindable_wrapper",
    "run_decorator",
    "run_wrapper",
    "single_gen",
    "stage_decorator",
    "stage_wrapper",
    "subs_decorator",
    "subs_wrapper",
    "suspend_decorator",
    "suspend_wrapper",
]

Insertion: TypeAlias = tuple[Any, Any]
"""What a :func:`plan_mutator` function returns: ``(head, tail)`` plans or Nones."""
PlanLike: TypeAlias = Any
"""A plan, or a function of no arguments returning one (for cleanup plans)."""


# -- the mutator ------------------------------------------------------------------------------
async def plan_mutator(plan: Any, msg_proc: Callable[[Msg], Insertion]) -> PlanGenerator:
    """Run ``plan``, letting ``msg_proc`` replace or follow each of its messages.

    ``msg_proc(msg)`` returns ``(head, tail)``: ``(None, None)`` passes the message on;
    a ``head`` plan runs instead of the message and its result is the reply the plan
    gets (include the message in ``head`` to keep it); a ``tail`` plan runs after. The
    messages of ``head`` and ``tail`` are not passed to ``msg_proc`` again, but an
    outer mutator sees them. Result: the plan's result.
    """
    stack = PlanStack(as_plan(plan))
    reply: Any = None
    error: BaseException | None = None
    while True:
        try:
            msg = await stack.step(reply, error)
        except PlanFinished as done:
            yield Return(done.result)
            return
        head, tail = msg_proc(msg)
        error = None
        try:
            if head is None and tail is None:
                reply = yield msg
            else:
                reply = yield (single_gen(msg) if head is None else head)
                if tail is not None:
                    yield tail
        except GeneratorExit:
            await stack.close()
            raise
        except BaseException as exc:  # noqa: BLE001 -- thrown into the plan, as the engine would
            error = exc


async def single_gen(msg: Msg) -> PlanGenerator:
    """A plan of one message; its result is the message's reply."""
    reply = yield msg
    yield Return(reply)


def msg_mutator(plan: Any, msg_proc: Callable[[Msg], Msg]) -> PlanGenerator:
    """Run ``plan`` with each message replaced by ``msg_proc(msg)``."""

    def replace(msg: Msg) -> Insertion:
        new = msg_proc(msg)
        return (None, None) if new is msg else (single_gen(new), None)

    return plan_mutator(plan, replace)


async def pchain(*plans: Any) -> PlanGenerator:
    """Run plans one after another; result: the list of their results."""
    results: list[Any] = []
    for plan in plans:
        results.append((yield as_plan(plan)))
    yield Return(results)


def _fresh(plan: PlanLike) -> Any:
    return as_plan(plan() if callable(plan) else plan)


async def _then(msg: Msg, plan: PlanLike) -> PlanGenerator:
    reply = yield msg
    yield _fresh(plan)
    yield Return(reply)


async def _before(plan: PlanLike, msg: Msg) -> PlanGenerator:
    yield _fresh(plan)
    reply = yield msg
    yield Return(reply)


def _around_run(plan: Any, opened: PlanLike, closing: PlanLike) -> PlanGenerator:
    """Run ``opened()`` right after each ``open_run``, ``closing()`` right before ``close_run``."""

    def insert(msg: Msg) -> Insertion:
        if msg.command == "open_run":
            return _then(msg, opened), None
        if msg.command == "close_run":
            return _before(closing, msg), None
        return None, None

    return plan_mutator(plan, insert)


# -- cleanup -----------------------------------------------------------------------------------
async def finalize_wrapper(
    plan: Any, final_plan: PlanLike, *, pause_for_debug: bool = False
) -> PlanGenerator:
    """Run ``plan``, then ``final_plan`` whatever happens (success, failure, stop, abort).

    ``final_plan`` is a plan or a function returning one (needed if it may run twice).
    ``pause_for_debug``: when ``plan`` raises, pause before the cleanup (a debugging aid:
    the devices stay as the failure left them until you resume).
    """
    try:
        result = yield as_plan(plan)
    except GeneratorExit:
        raise
    except BaseException:
        if pause_for_debug:
            yield _debug_pause(final_plan)
        yield _fresh(final_plan)
        raise
    yield _fresh(final_plan)
    yield Return(result)


async def _debug_pause(final_plan: PlanLike | None) -> PlanGenerator:
    """Pause; if the pause ends in an abort or stop, run ``final_plan`` before that goes on."""
    try:
        yield Msg("pause")
    except GeneratorExit:
        raise
    except BaseException:
        if final_plan is not None:
            yield _fresh(final_plan)
        raise


async def contingency_wrapper(
    plan: Any,
    *,
    except_plan: Callable[[Exception], Any] | None = None,
    else_plan: PlanLike | None = None,
    final_plan: PlanLike | None = None,
    pause_for_debug: bool = False,
    auto_raise: bool = True,
) -> PlanGenerator:
    """try/except/else/finally for plans.

    ``except_plan(exc)`` runs when ``plan`` raises an Exception; the exception is raised
    again afterwards unless ``auto_raise`` is False, and then the result is
    ``except_plan``'s (without an ``except_plan`` the exception always goes on).
    ``else_plan`` runs after success, ``final_plan`` always. ``pause_for_debug``: pause
    when ``plan`` raises an Exception, before any of that.
    """
    try:
        result = yield as_plan(plan)
    except GeneratorExit:
        raise
    except Exception as exc:
        if pause_for_debug:
            yield _debug_pause(final_plan)
        handled: Any = None
        if except_plan is not None:
            handled = yield except_plan(exc)
        if final_plan is not None:
            yield _fresh(final_plan)
        if auto_raise or except_plan is None:
            raise
        yield Return(handled)
        return
    except BaseException:
        if final_plan is not None:
            yield _fresh(final_plan)
        raise
    if else_plan is not None:
        yield _fresh(else_plan)
    if final_plan is not None:
        yield _fresh(final_plan)
    yield Return(result)


# -- run structure ------------------------------------------------------------------------------
async def run_wrapper(plan: Any, *, md: Mapping[str, Any] | None = None) -> PlanGenerator:
    """Enclose ``plan`` in a run: ``open_run`` (with ``md``) before, ``close_run`` after.

    If ``plan`` raises, the run closes with exit_status ``"fail"`` and the error goes on;
    on ``RE.stop()`` it closes as a success, on ``RE.abort()`` as an abort (as bluesky's).
    """
    yield Msg("open_run", **dict(md or {}))
    try:
        result = yield as_plan(plan)
    except GeneratorExit:
        raise
    except (RequestStop, RequestAbort) as exc:  # the engine's reason goes to the Stop
        yield Msg("close_run", exit_status=exc.exit_status)
        raise
    except Exception as exc:
        yield Msg("close_run", exit_status="fail", reason=f"{type(exc).__name__}: {exc}")
        raise
    yield Msg("close_run")
    yield Return(result)


def stage_wrapper(plan: Any, devices: Iterable[Any]) -> PlanGenerator:
    """Stage ``devices`` before ``plan`` and unstage them (in reverse) after, whatever happens.

    Staging completes before ``plan`` starts and unstaging before the wrapper ends (the
    statuses of ophyd-async devices are waited for); a failed stage is unstaged too.
    """
    found = unique_devices(devices)
    return finalize_wrapper(
        pchain_last(stage_all(*found), as_plan(plan)), lambda: unstage_all(*reversed(found))
    )


async def pchain_last(first: Any, second: Any) -> PlanGenerator:
    """Run two plans; result: the second's."""
    yield first
    result = yield second
    yield Return(result)


def _subscriptions(subs: Any) -> list[tuple[str, Any]]:
    if callable(subs):
        return [("all", subs)]
    if isinstance(subs, Mapping):
        out: list[tuple[str, Any]] = []
        for name, funcs in subs.items():  # pyright: ignore[reportUnknownVariableType]
            items: list[Any] = list(funcs) if isinstance(funcs, Sequence) else [funcs]  # pyright: ignore[reportUnknownArgumentType]
            out += [(str(name), f) for f in items]  # pyright: ignore[reportUnknownArgumentType]
        return out
    return [("all", f) for f in subs]


async def subs_wrapper(plan: Any, subs: Any) -> PlanGenerator:
    """Subscribe callbacks for the duration of ``plan``.

    ``subs``: a callback, a list of them, or ``{document name: callback or list}``.
    """
    tokens: list[Any] = []
    for name, func in _subscriptions(subs):
        tokens.append((yield Msg("subscribe", None, func, name)))

    async def unsubscribe_all() -> PlanGenerator:
        for token in tokens:
            yield Msg("unsubscribe", None, token)

    result = yield finalize_wrapper(plan, unsubscribe_all)
    yield Return(result)


def inject_md_wrapper(plan: Any, md: Mapping[str, Any]) -> PlanGenerator:
    """Add ``md`` to every run the plan opens (``md`` wins over the plan's own keys)."""
    extra = dict(md)

    def inject(msg: Msg) -> Msg:
        if msg.command == "open_run":
            return msg._replace(kwargs={**msg.kwargs, **extra})
        return msg

    return msg_mutator(plan, inject)


async def rewindable_wrapper(plan: Any, rewindable: bool) -> PlanGenerator:
    """Run ``plan`` with resume-rewinding on or off, then restore the previous setting."""
    before = yield Msg("rewindable", None, None)
    yield Msg("rewindable", None, rewindable)

    async def restore() -> PlanGenerator:
        yield Msg("rewindable", None, before)

    result = yield finalize_wrapper(plan, restore)
    yield Return(result)


def suspend_wrapper(plan: Any, suspenders: Any) -> PlanGenerator:
    """Install suspenders for the duration of ``plan``."""
    found: list[Any] = list(suspenders) if isinstance(suspenders, Iterable) else [suspenders]  # pyright: ignore[reportUnknownArgumentType]

    async def install() -> PlanGenerator:
        for s in found:
            yield install_suspender(s)

    async def remove() -> PlanGenerator:
        for s in found:
            yield remove_suspender(s)

    return pchain_last(install(), finalize_wrapper(plan, remove))


# -- positions ------------------------------------------------------------------------------------
def _first_sets(
    plan: Any, devices: Iterable[Any] | None, initial: dict[Any, Any], rewrite: bool
) -> PlanGenerator:
    """Note each eligible device's position before its first ``set``; maybe add it to sets."""
    eligible = None if devices is None else {id(d) for d in devices}

    async def first_set(msg: Msg) -> PlanGenerator:
        initial[msg.obj] = yield where(msg.obj)
        status = yield single_gen(_shifted(msg) if rewrite else msg)
        yield Return(status)

    def _shifted(msg: Msg) -> Msg:
        return msg._replace(args=(initial[msg.obj] + msg.args[0], *msg.args[1:]))

    def insert(msg: Msg) -> Insertion:
        if msg.command != "set" or (eligible is not None and id(msg.obj) not in eligible):
            return None, None
        if msg.obj not in initial:
            return first_set(msg), None
        return (single_gen(_shifted(msg)), None) if rewrite else (None, None)

    return plan_mutator(plan, insert)


def relative_set_wrapper(plan: Any, devices: Iterable[Any] | None = None) -> PlanGenerator:
    """Interpret every ``set`` of ``devices`` (default: all) relative to where it started."""
    return _first_sets(plan, devices, {}, rewrite=True)


def reset_positions_wrapper(plan: Any, devices: Iterable[Any] | None = None) -> PlanGenerator:
    """Put every moved device (of ``devices``, default all) back where it was, whatever happens.

    The return move runs after success, failure, stop and abort.
    """
    initial: dict[Any, Any] = {}

    async def reset() -> PlanGenerator:
        group = new_group("reset")
        for device, position in initial.items():
            yield Msg("set", device, position, group=group)
        if initial:
            yield Msg("wait", None, group=group)

    return finalize_wrapper(_first_sets(plan, devices, initial, rewrite=False), reset)


# -- supplemental data --------------------------------------------------------------------------
def baseline_wrapper(plan: Any, devices: Sequence[Any], name: str = "baseline") -> PlanGenerator:
    """Read ``devices`` into stream ``name`` after each ``open_run`` and before ``close_run``."""
    found = list(devices)
    if not found:
        return as_plan_generator(plan)
    return _around_run(
        plan, lambda: trigger_and_read(found, name), lambda: trigger_and_read(found, name)
    )


def monitor_during_wrapper(plan: Any, signals: Sequence[Any]) -> PlanGenerator:
    """Record every update of ``signals`` (each in its own stream) while each run is open."""
    found = list(signals)
    return _around_run(
        plan, lambda: broadcast_msg("monitor", found), lambda: broadcast_msg("unmonitor", found)
    )


def fly_during_wrapper(plan: Any, flyers: Sequence[Any]) -> PlanGenerator:
    """Kick off ``flyers`` after each ``open_run``; complete and collect them at ``close_run``."""
    found = list(flyers)

    async def finish() -> PlanGenerator:
        yield complete_all(*found, wait=True)
        for flyer in found:
            yield Msg("collect", flyer)

    return _around_run(plan, lambda: kickoff_all(*found, wait=True), finish)


async def as_plan_generator(plan: Any) -> PlanGenerator:
    """Any plan (or list of messages) as an async generator with the same result."""
    result = yield as_plan(plan)
    yield Return(result)


class SupplementalData:
    """Baseline readings, monitors and flyers added to every run of every plan.

    Install it on an engine so every plan gets them::

        sd = SupplementalData(baseline=[temperature, slits])
        RE.preprocessors.append(sd)
    """

    def __init__(
        self,
        *,
        baseline: Sequence[Any] | None = None,
        monitors: Sequence[Any] | None = None,
        flyers: Sequence[Any] | None = None,
    ) -> None:
        """Start with these devices (None: none); the lists can be changed later."""
        self.baseline: list[Any] = list(baseline or ())
        self.monitors: list[Any] = list(monitors or ())
        self.flyers: list[Any] = list(flyers or ())

    def __call__(self, plan: Any) -> PlanGenerator:
        """``plan`` with the supplemental data added."""
        wrapped: Any = plan
        if self.flyers:
            wrapped = fly_during_wrapper(wrapped, self.flyers)
        if self.monitors:
            wrapped = monitor_during_wrapper(wrapped, self.monitors)
        if self.baseline:
            wrapped = baseline_wrapper(wrapped, self.baseline)
        return as_plan_generator(wrapped) if wrapped is plan else wrapped

    def __repr__(self) -> str:
        return (
            f"SupplementalData(baseline={self.baseline!r}, monitors={self.monitors!r}, "
            f"flyers={self.flyers!r})"
        )


# -- decorators ----------------------------------------------------------------------
def make_decorator(
    wrapper: Callable[..., PlanGenerator],
) -> Callable[..., Callable[[Callable[..., Any]], Callable[..., PlanGenerator]]]:
    """Turn ``wrapper(plan, *args, **kwargs)`` into a decorator factory for plan functions.

    ``@make_decorator(baseline_wrapper)([det])`` on ``def plan(...)`` gives a function
    whose plans are wrapped.
    """

    def decorator_factory(
        *args: Any, **kwargs: Any
    ) -> Callable[[Callable[..., Any]], Callable[..., PlanGenerator]]:
        def decorator(func: Callable[..., Any]) -> Callable[..., PlanGenerator]:
            @functools.wraps(func)
            def decorated(*fargs: Any, **fkwargs: Any) -> PlanGenerator:
                return wrapper(func(*fargs, **fkwargs), *args, **kwargs)

            return decorated

        return decorator

    decorator_factory.__name__ = wrapper.__name__.replace("_wrapper", "_decorator")
    decorator_factory.__qualname__ = decorator_factory.__name__
    decorator_factory.__doc__ = (
        f"The decorator form of :func:`{wrapper.__name__}`: "
        f"``@{decorator_factory.__name__}(...)`` on a plan function wraps its plans."
    )
    return decorator_factory


baseline_decorator = make_decorator(baseline_wrapper)
contingency_decorator = make_decorator(contingency_wrapper)
finalize_decorator = make_decorator(finalize_wrapper)
fly_during_decorator = make_decorator(fly_during_wrapper)
inject_md_decorator = make_decorator(inject_md_wrapper)
monitor_during_decorator = make_decorator(monitor_during_wrapper)
relative_set_decorator = make_decorator(relative_set_wrapper)
reset_positions_decorator = make_decorator(reset_positions_wrapper)
rewindable_decorator = make_decorator(rewindable_wrapper)
run_decorator = make_decorator(run_wrapper)
stage_decorator = make_decorator(stage_wrapper)
subs_decorator = make_decorator(subs_wrapper)
suspend_decorator = make_decorator(suspend_wrapper)
