"""Plans and sub-plans: the engine-managed plan stack.

A plan is an async generator (the native form) or a plain generator (the form bluesky's
plans take). Async generators have neither ``yield from`` nor a return value, so acq
composes plans with a stack that the engine keeps:

* ``result = yield sub_plan`` -- a plan yields a generator or async generator; the engine
  pushes it on the stack, drives it to the end, and sends its result back, much as
  ``await`` would. Messages' responses go to whichever plan yielded the message.
* ``yield Return(value)`` -- an async plan's way of saying ``return value``: the engine
  records the value and keeps driving the plan until it ends (so ``finally`` blocks that
  yield cleanup messages still run). A plain generator may simply ``return value``.
* An exception raised in a sub-plan is thrown into the plan that yielded it, at the
  ``yield``, exactly as with ``yield from``; a plan can catch it.

docs/explanations/plan-composition.md records why.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Generator, Iterable
from typing import Any, NamedTuple, TypeAlias, TypeGuard, cast

from ._errors import PlanError
from ._msg import Msg

__all__ = [
    "Plan",
    "PlanFinished",
    "PlanStack",
    "Return",
    "as_plan",
    "is_message",
    "is_plan",
    "plan_name",
]

Plan: TypeAlias = AsyncGenerator[Any, Any] | Generator[Any, Any, Any]
"""What ``RE(...)`` runs and what a plan may yield as a sub-plan."""


class Return(NamedTuple):
    """``yield Return(value)``: the result of an async plan (its ``return value``)."""

    value: Any


class PlanFinished(Exception):
    """Raised by :meth:`PlanStack.send` when the outermost plan has ended."""

    def __init__(self, result: Any) -> None:
        super().__init__(result)
        self.result = result


_NO_RETURN: Any = object()


class _Frame:
    """One plan on the stack."""

    __slots__ = ("gen", "is_async", "returned")

    def __init__(self, gen: Plan) -> None:
        self.gen: Any = gen
        self.is_async = not isinstance(gen, Generator)
        self.returned: Any = _NO_RETURN


def is_message(item: object) -> bool:
    """True for an ``acq.Msg`` or any Msg-shaped namedtuple (bluesky's ``Msg``)."""
    return type(item) is Msg or (isinstance(item, tuple) and hasattr(cast(Any, item), "command"))


def plan_name(plan: object) -> str:
    """A readable name for a plan object, for error messages."""
    inner = getattr(plan, "_iter", plan)  # bluesky wraps its plans in a Plan object
    code = getattr(inner, "gi_code", None) or getattr(inner, "ag_code", None)
    return code.co_name if code is not None else type(plan).__name__


def is_plan(item: object) -> TypeGuard[Plan]:
    """True for a generator or async generator (or an object that behaves as one)."""
    return isinstance(item, Generator | AsyncGenerator)


def _iterable_plan(messages: Iterable[Any]) -> Generator[Any, Any, None]:
    for msg in messages:  # noqa: UP028 -- not yield from: replies must not reach a list
        yield msg


def as_plan(plan: object) -> Plan:
    """Check that ``plan`` can be run, and return it as a generator or async generator.

    Raises:
        PlanError: for a function that was not called, a coroutine, or anything else
            that is not a plan.
    """
    if is_plan(plan):
        return plan
    if callable(plan):
        name = getattr(plan, "__name__", repr(plan))
        raise PlanError(
            f"RE() was given the function {name!r}, not a plan: call it, e.g. RE({name}(...))"
        )
    if hasattr(plan, "__await__"):
        raise PlanError(
            f"RE() was given an awaitable ({type(plan).__name__}), not a plan: a plan is a "
            "generator or async generator that yields Msg objects"
        )
    if isinstance(plan, Iterable) and not isinstance(plan, str | bytes | dict):
        messages: Iterable[Any] = cast(Iterable[Any], plan)
        return _iterable_plan(messages)
    shown = cast(object, plan)
    raise PlanError(
        f"RE() was given {shown!r} ({type(shown).__name__}), not a plan: a plan is a "
        "generator or async generator that yields Msg objects (or a list of Msg)"
    )


class PlanStack:
    """The stack of running plans: the outermost at the bottom, the active one on top.

    :meth:`step` advances the active plan until it yields a message, pushing sub-plans
    and popping finished ones on the way; it raises :class:`PlanFinished` when the
    outermost plan ends. The engine, the preprocessors (``plan_mutator``) and the plan
    tools (``simulate``, ``summarize_plan``) all drive plans with it; the engine's drive
    loop inlines its common case (a reply sent to the active plan).
    """

    __slots__ = ("_frames",)

    def __init__(self, plan: Plan) -> None:
        self._frames = [_Frame(plan)]

    @property
    def frames(self) -> list[_Frame]:
        """The plans, outermost first (the engine's fast path reads the last one)."""
        return self._frames

    @property
    def depth(self) -> int:
        """How many plans are on the stack."""
        return len(self._frames)

    async def step(self, reply: Any = None, error: BaseException | None = None) -> Any:
        """Advance the active plan to its next message and return it.

        Sends ``reply`` into the plan at its ``yield`` or, if ``error`` is given, raises
        ``error`` there (as the engine does with a message's failure). Sub-plans the plan
        yields are pushed and driven; a plan that ends hands its result to its parent, one
        that raises throws the exception into its parent, as ``yield from`` would.

        Raises:
            PlanFinished: the outermost plan ended (its result is on the exception).
            BaseException: what the outermost plan raised.
        """
        frame = self._frames[-1]
        gen = frame.gen
        try:
            if error is not None:
                item = await gen.athrow(error) if frame.is_async else gen.throw(error)
            elif frame.is_async:
                item = await gen.asend(reply)
            else:
                item = gen.send(reply)
        except BaseException as stopped:  # noqa: BLE001 -- ended, or raised: to the parent plan
            return await self.unwind(stopped)
        if type(item) is Msg:
            return item
        return await self.dispatch(item)

    async def close(self) -> None:
        """Close every plan on the stack, innermost first (used by halt)."""
        while self._frames:
            frame = self._frames.pop()
            try:
                if frame.is_async:
                    await frame.gen.aclose()
                else:
                    frame.gen.close()
            except Exception:  # noqa: BLE001 -- a plan that refuses to close is abandoned
                pass

    async def dispatch(self, item: Any) -> Any:
        """Handle a yielded item that is not an ``acq.Msg``; return the next message."""
        if is_plan(item):
            self._frames.append(_Frame(item))
            return await self.step()
        if type(item) is Return:
            self._frames[-1].returned = item.value
            return await self.step()
        if is_message(item):
            return item  # a bluesky Msg, or another Msg-shaped namedtuple
        frame = self._frames[-1]
        return await self.step(
            None,
            PlanError(
                f"plan {plan_name(frame.gen)!r} yielded {item!r} ({type(item).__name__}), which "
                "is neither a Msg, a sub-plan (generator or async generator) nor Return(value)"
            ),
        )

    async def unwind(self, stopped: BaseException) -> Any:
        """The active plan stopped with ``stopped``; return the next message.

        A plan that ended (``StopIteration``) hands its result to its parent; one that
        raised has the exception thrown into its parent, as ``yield from`` would.

        Raises:
            PlanFinished: the outermost plan ended.
            BaseException: ``stopped``, raised by the outermost plan.
        """
        frame = self._frames.pop()
        if isinstance(stopped, StopIteration | StopAsyncIteration):
            result = frame.returned
            if result is _NO_RETURN:
                result = stopped.value if isinstance(stopped, StopIteration) else None
            if not self._frames:
                raise PlanFinished(result)
            return await self.step(result)
        if not self._frames:
            raise stopped
        return await self.step(None, stopped)
