"""Suspenders: suspend a running plan while a signal is out of bounds, resume when it recovers.

A suspender watches one signal (anything with ``subscribe(callback)`` and
``clear_sub(callback)``, like an ophyd-async ``SignalR`` or an ophyd ``Signal``)::

    RE.install_suspender(SuspendFloor(beam_current, 100, resume_thresh=150, sleep=10))

When its condition *trips* while a plan runs, it asks the engine to suspend
(:meth:`~acq.RunEngine.request_suspend`): the engine stops the movers, runs the
suspender's ``pre_plan``, awaits :meth:`Suspender.wait_ready`, runs ``post_plan``, rewinds
the plan to its last checkpoint and replays it, so the point that was in flight is
measured again. A suspender already tripped when a plan starts delays its start.

:meth:`Suspender.wait_ready` returns once the condition has cleared and then stayed clear
for ``sleep`` seconds (if it trips again meanwhile, the wait starts over). Each class
below decides *trip* and *clear* from the signal's value, with hysteresis where it has
two thresholds:

======================  ==============================  ===============================
class                   trips when the value ...        clears when the value ...
======================  ==============================  ===============================
SuspendFloor            < suspend_thresh                >= resume_thresh
SuspendCeiling          > suspend_thresh                <= resume_thresh
SuspendBoolHigh         is truthy                       is falsy
SuspendBoolLow          is falsy                        is truthy
SuspendOutsideBand      is outside [bottom, top]        is inside [bottom, top]
SuspendWhenChanged      != expected_value               == expected_value, and only if
                                                        allow_resume (else never)
======================  ==============================  ===============================

A value a threshold or band cannot be compared with (``None`` from a disconnected PV,
NaN, a string) counts as out of bounds: the plan is suspended rather than run blind.

Signal callbacks may come from any thread (ophyd and pyepics call back from their own);
the suspender moves them onto the event loop it was installed from.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import numbers
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import Any, Protocol, cast

from bluesky.protocols import Subscribable

from ._errors import StateError

__all__ = [
    "Suspender",
    "SuspendFloor",
    "SuspendCeiling",
    "SuspendBoolHigh",
    "SuspendBoolLow",
    "SuspendOutsideBand",
    "SuspendWhenChanged",
]

logger = logging.getLogger("acq.suspenders")

PlanFactory = Callable[[], Any]
"""A zero-argument callable returning a plan (e.g. a generator function)."""


class _Engine(Protocol):
    """What a suspender needs of the RunEngine."""

    def request_suspend(
        self,
        ready: Callable[[], Any],
        *,
        justification: str = "",
        pre_plan: PlanFactory | None = None,
        post_plan: PlanFactory | None = None,
    ) -> None: ...


class _Unset:
    def __repr__(self) -> str:
        return "<unset>"


_UNSET: Any = _Unset()


class Suspender(ABC):
    """The shared logic of every suspender; subclasses say when to trip and to clear.

    A new kind of suspender implements ``_should_suspend(value)`` (asked while not
    tripped), ``_should_resume(value)`` (asked while tripped) and ``_condition(value)``
    (the justification text); everything else -- subscribing, threads, the request to
    the engine, ``sleep`` -- is here.

    Args:
        signal: what to watch: it has ``subscribe(callback)`` and ``clear_sub(callback)``
            (``bluesky.protocols.Subscribable``); the callback gets a reading
            ``{name: {"value": v, "timestamp": t}}`` (or, ophyd-style, ``value=v``).
        sleep: seconds the condition must stay clear before the plan resumes (>= 0).
        pre_plan: called with no arguments when the plan is suspended (after the movers
            stopped); returns a plan to run then, e.g. one that closes a shutter.
        post_plan: the same, run after the wait and before the plan is rewound.
        tripped_message: appended to the justification when the suspender trips.

    Raises:
        TypeError: an argument has the wrong type (the message names it).
        ValueError: an argument has a bad value (the message names it).
    """

    def __init__(
        self,
        signal: Subscribable[Any],
        *,
        sleep: float = 0,
        pre_plan: PlanFactory | None = None,
        post_plan: PlanFactory | None = None,
        tripped_message: str = "",
    ) -> None:
        if not (
            callable(getattr(signal, "subscribe", None))
            and callable(getattr(signal, "clear_sub", None))
        ):
            raise TypeError(
                f"signal must be subscribable (have subscribe() and clear_sub(), like an "
                f"ophyd-async SignalR), got {signal!r}"
            )
        _check_number("sleep", sleep)
        if not 0 <= sleep < math.inf:
            raise ValueError(f"sleep must be a finite number of seconds >= 0, got {sleep!r}")
        _check_plan_factory("pre_plan", pre_plan)
        _check_plan_factory("post_plan", post_plan)
        if not isinstance(tripped_message, str):  # pyright: ignore[reportUnnecessaryIsInstance]
            raise TypeError(f"tripped_message must be a str, got {tripped_message!r}")
        self._signal = signal
        self._sleep = float(sleep)
        self._pre_plan = pre_plan
        self._post_plan = post_plan
        self._tripped_message = tripped_message
        self._engine: _Engine | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: int | None = None
        self._value: Any = _UNSET
        self._tripped = False
        self._trips = 0  # how many times it has tripped: a re-trip restarts the sleep
        self._cleared_at: float | None = -math.inf  # loop time; None: unknown, sleep it all
        self._justification = ""
        self._clear = asyncio.Event()
        self._clear.set()

    # -- what the subclasses decide ---------------------------------------------------------
    @abstractmethod
    def _should_suspend(self, value: Any) -> bool:
        """Does ``value`` trip the suspender (it is not tripped now)?"""

    @abstractmethod
    def _should_resume(self, value: Any) -> bool:
        """Does ``value`` clear the suspender (it is tripped now)?"""

    @abstractmethod
    def _condition(self, value: Any) -> str:
        """Why ``value`` tripped the suspender, naming the signal and the threshold."""

    def _arguments(self) -> list[str]:
        """The subclass's own arguments, as ``name=value`` for ``__repr__``."""
        return []

    # -- the public face --------------------------------------------------------------------
    @property
    def signal(self) -> Subscribable[Any]:
        """The watched signal."""
        return self._signal

    @property
    def sleep(self) -> float:
        """Seconds the condition must stay clear before the plan resumes."""
        return self._sleep

    @property
    def tripped(self) -> bool:
        """True while the condition holds (from a trip until it clears)."""
        return self._tripped

    @property
    def value(self) -> Any:
        """The last value seen from the signal (None before the first)."""
        return None if self._value is _UNSET else self._value

    @property
    def justification(self) -> str:
        """While tripped, why: the signal, its value and the threshold; else ``""``."""
        return self._justification if self._tripped else ""

    def __repr__(self) -> str:
        args = [_signal_name(self._signal), *self._arguments()]
        if self._sleep:
            args.append(f"sleep={self._sleep:g}")
        for name, plan in (("pre_plan", self._pre_plan), ("post_plan", self._post_plan)):
            if plan is not None:
                args.append(f"{name}={getattr(plan, '__qualname__', repr(plan))}")
        if self._tripped_message:
            args.append(f"tripped_message={self._tripped_message!r}")
        state = " (tripped)" if self._tripped else ""
        return f"{type(self).__name__}({', '.join(args)}){state}"

    # -- the engine's protocol --------------------------------------------------------------
    def install(self, RE: _Engine) -> None:
        """Watch the signal for ``RE`` (called by ``RE.install_suspender``).

        Raises:
            StateError: it is already installed on another RunEngine.
        """
        if self._engine is RE:
            return
        if self._engine is not None:
            raise StateError(
                f"{self!r} is already installed on another RunEngine: remove it there first "
                "(RE.remove_suspender), or make one suspender per RunEngine"
            )
        try:
            self._loop = asyncio.get_running_loop()
        except RuntimeError:
            self._loop = None
        self._thread = threading.get_ident()
        self._clear = asyncio.Event()  # for this loop, not a former one (it is not tripped)
        self._clear.set()
        self._engine = RE
        try:
            self._signal.subscribe(self._on_update)
        except BaseException:
            self._engine = None
            raise

    def remove(self) -> None:
        """Stop watching the signal (called by ``RE.remove_suspender``).

        A plan waiting on this suspender is released: removing the suspender is a way to
        give up on a condition that will not clear by itself.
        """
        if self._engine is None:
            return
        self._engine = None
        try:
            self._signal.clear_sub(self._on_update)
        finally:
            self._tripped = False
            self._cleared_at = -math.inf  # released: no sleep either
            self._clear.set()

    async def wait_ready(self) -> None:
        """Return once the condition has cleared and stayed clear for ``sleep`` seconds.

        The ``sleep`` counts from the moment it cleared, which may be before this call;
        if it trips again meanwhile, the wait starts over. Not tripped (and not tripped
        within the last ``sleep`` seconds): return at once.
        """
        loop = asyncio.get_running_loop()
        while True:
            await self._clear.wait()
            if self._tripped:
                continue  # it tripped again before this task woke up
            trips = self._trips
            cleared_at = self._cleared_at
            remaining = (
                self._sleep if cleared_at is None else cleared_at + self._sleep - loop.time()
            )
            if remaining > 0:
                logger.info("%r cleared; resuming in %.3g s if it stays clear", self, remaining)
                await asyncio.sleep(remaining)
                if self._tripped or self._trips != trips:
                    continue
            return

    # -- signal updates ---------------------------------------------------------------------
    def _on_update(self, *args: Any, **kwargs: Any) -> None:
        """The signal's callback: a reading dict (ophyd-async) or ``value=`` (ophyd)."""
        if args:
            value = self._value_of(args[0])
        elif "value" in kwargs:
            value = kwargs["value"]
        else:
            logger.error("%r: a callback without a value: %r %r", self, args, kwargs)
            return
        if self._loop is None:  # installed outside a loop: the first update from one adopts it
            with contextlib.suppress(RuntimeError):
                self._loop = asyncio.get_running_loop()
                self._thread = threading.get_ident()
        if self._loop is not None and threading.get_ident() != self._thread:
            self._loop.call_soon_threadsafe(self._update, value)
        else:
            self._update(value)

    def _value_of(self, update: Any) -> Any:
        if not isinstance(update, Mapping):
            return update  # subscribe_value-style: the bare value
        readings = cast(Mapping[Any, Any], update)
        reading = readings.get(getattr(self._signal, "name", None))
        if reading is None and len(readings) == 1:
            reading = next(iter(readings.values()))
        if isinstance(reading, Mapping) and "value" in reading:
            return reading["value"]  # pyright: ignore[reportUnknownVariableType]
        return readings

    def _update(self, value: Any) -> None:
        if self._engine is None:
            return  # removed while a callback from another thread was on its way
        self._value = value
        if self._tripped:
            if self._should_resume(value):
                self._tripped = False
                self._cleared_at = _loop_time()
                self._clear.set()
                logger.info("%r: %s = %r, the condition cleared", self, self._name, value)
        elif self._should_suspend(value):
            self._tripped = True
            self._trips += 1
            self._clear.clear()
            text = self._condition(value)
            self._justification = (
                f"{text}: {self._tripped_message}" if self._tripped_message else text
            )
            logger.warning("%r tripped: %s", self, self._justification)
            self._schedule_request()

    def _schedule_request(self) -> None:
        """Ask the engine to suspend, from the loop, never from inside a signal's setter.

        The callback may run in the engine's own task (a plan that sets the watched signal):
        asking from there would cancel the task in the middle of a message.
        """
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = self._loop
        if loop is None:
            self._request(self._trips)
        else:
            loop.call_soon(self._request, self._trips)

    def _request(self, trips: int) -> None:
        engine = self._engine
        if engine is None or not self._tripped or trips != self._trips:
            return  # removed or cleared meanwhile
        engine.request_suspend(
            self.wait_ready,
            justification=self._justification,
            pre_plan=self._pre_plan,
            post_plan=self._post_plan,
        )

    @property
    def _name(self) -> str:
        return _signal_name(self._signal)


# -- thresholds -----------------------------------------------------------------------------
class _Threshold(Suspender):
    """Trip beyond one threshold, clear back across another (hysteresis)."""

    _trip_word = ""
    _clear_word = ""

    def __init__(
        self,
        signal: Subscribable[Any],
        suspend_thresh: float,
        resume_thresh: float | None = None,
        *,
        sleep: float = 0,
        pre_plan: PlanFactory | None = None,
        post_plan: PlanFactory | None = None,
        tripped_message: str = "",
    ) -> None:
        _check_number("suspend_thresh", suspend_thresh)
        if resume_thresh is None:
            resume_thresh = suspend_thresh
        _check_number("resume_thresh", resume_thresh)
        self._validate(suspend_thresh, resume_thresh)
        super().__init__(
            signal,
            sleep=sleep,
            pre_plan=pre_plan,
            post_plan=post_plan,
            tripped_message=tripped_message,
        )
        self._suspend_thresh = suspend_thresh
        self._resume_thresh = resume_thresh

    @property
    def suspend_thresh(self) -> float:
        """The threshold whose crossing trips the suspender."""
        return self._suspend_thresh

    @property
    def resume_thresh(self) -> float:
        """The threshold the value must get back across to clear it."""
        return self._resume_thresh

    @abstractmethod
    def _validate(self, suspend_thresh: float, resume_thresh: float) -> None: ...

    def _arguments(self) -> list[str]:
        args = [f"suspend_thresh={self._suspend_thresh!r}"]
        if self._resume_thresh != self._suspend_thresh:
            args.append(f"resume_thresh={self._resume_thresh!r}")
        return args

    def _condition(self, value: Any) -> str:
        if not _is_number(value):
            return (
                f"signal {self._name} = {value!r} is not a number, so it cannot be checked "
                f"against {self._suspend_thresh!r}"
            )
        return (
            f"signal {self._name} = {value!r} {self._trip_word} {self._suspend_thresh!r}; "
            f"the plan resumes once it {self._clear_word} {self._resume_thresh!r}"
            + (f" and stays there for {self._sleep:g} s" if self._sleep else "")
        )


class SuspendFloor(_Threshold):
    """Suspend when the value falls below ``suspend_thresh``; resume at ``resume_thresh``.

    Args:
        signal: the signal to watch (see :class:`Suspender`).
        suspend_thresh: suspend when the value is ``< suspend_thresh``.
        resume_thresh: resume when the value is ``>= resume_thresh``; it must be
            ``>= suspend_thresh`` (default: ``suspend_thresh``).
        sleep: seconds the value must stay recovered before the plan resumes.
        pre_plan: plan factory run when the plan is suspended.
        post_plan: plan factory run before the plan resumes.
        tripped_message: appended to the justification.

    Example:
        >>> RE.install_suspender(SuspendFloor(bl.beam_current, 100, 150))  # doctest: +SKIP
    """

    _trip_word = "fell below"
    _clear_word = "is back at or above"

    def _validate(self, suspend_thresh: float, resume_thresh: float) -> None:
        if resume_thresh < suspend_thresh:
            raise ValueError(
                f"SuspendFloor: resume_thresh ({resume_thresh!r}) must be >= suspend_thresh "
                f"({suspend_thresh!r}): the value has to recover at least to where it tripped"
            )

    def _should_suspend(self, value: Any) -> bool:
        return not _is_number(value) or value < self._suspend_thresh

    def _should_resume(self, value: Any) -> bool:
        return _is_number(value) and value >= self._resume_thresh


class SuspendCeiling(_Threshold):
    """Suspend when the value rises above ``suspend_thresh``; resume at ``resume_thresh``.

    Args:
        signal: the signal to watch (see :class:`Suspender`).
        suspend_thresh: suspend when the value is ``> suspend_thresh``.
        resume_thresh: resume when the value is ``<= resume_thresh``; it must be
            ``<= suspend_thresh`` (default: ``suspend_thresh``).
        sleep: seconds the value must stay recovered before the plan resumes.
        pre_plan: plan factory run when the plan is suspended.
        post_plan: plan factory run before the plan resumes.
        tripped_message: appended to the justification.
    """

    _trip_word = "rose above"
    _clear_word = "is back at or below"

    def _validate(self, suspend_thresh: float, resume_thresh: float) -> None:
        if resume_thresh > suspend_thresh:
            raise ValueError(
                f"SuspendCeiling: resume_thresh ({resume_thresh!r}) must be <= suspend_thresh "
                f"({suspend_thresh!r}): the value has to recover at least to where it tripped"
            )

    def _should_suspend(self, value: Any) -> bool:
        return not _is_number(value) or value > self._suspend_thresh

    def _should_resume(self, value: Any) -> bool:
        return _is_number(value) and value <= self._resume_thresh


# -- booleans -------------------------------------------------------------------------------
class SuspendBoolHigh(Suspender):
    """Suspend while the value is truthy (e.g. an interlock that is set); resume when falsy.

    Args:
        signal: the signal to watch (see :class:`Suspender`).
        sleep: seconds the value must stay falsy before the plan resumes.
        pre_plan: plan factory run when the plan is suspended.
        post_plan: plan factory run before the plan resumes.
        tripped_message: appended to the justification.
    """

    def _should_suspend(self, value: Any) -> bool:
        return bool(value)

    def _should_resume(self, value: Any) -> bool:
        return not value

    def _condition(self, value: Any) -> str:
        return f"signal {self._name} = {value!r} is high (true); the plan resumes when it is low"


class SuspendBoolLow(Suspender):
    """Suspend while the value is falsy (e.g. a permit that is off); resume when truthy.

    Args:
        signal: the signal to watch (see :class:`Suspender`).
        sleep: seconds the value must stay truthy before the plan resumes.
        pre_plan: plan factory run when the plan is suspended.
        post_plan: plan factory run before the plan resumes.
        tripped_message: appended to the justification.
    """

    def _should_suspend(self, value: Any) -> bool:
        return not value

    def _should_resume(self, value: Any) -> bool:
        return bool(value)

    def _condition(self, value: Any) -> str:
        return f"signal {self._name} = {value!r} is low (false); the plan resumes when it is high"


# -- a band ---------------------------------------------------------------------------------
class SuspendOutsideBand(Suspender):
    """Suspend while the value is outside ``[band_bottom, band_top]`` (bounds included).

    Args:
        signal: the signal to watch (see :class:`Suspender`).
        band_bottom: the lowest good value.
        band_top: the highest good value; it must be > ``band_bottom``.
        sleep: seconds the value must stay in the band before the plan resumes.
        pre_plan: plan factory run when the plan is suspended.
        post_plan: plan factory run before the plan resumes.
        tripped_message: appended to the justification.
    """

    def __init__(
        self,
        signal: Subscribable[Any],
        band_bottom: float,
        band_top: float,
        *,
        sleep: float = 0,
        pre_plan: PlanFactory | None = None,
        post_plan: PlanFactory | None = None,
        tripped_message: str = "",
    ) -> None:
        _check_number("band_bottom", band_bottom)
        _check_number("band_top", band_top)
        if not band_bottom < band_top:
            raise ValueError(
                f"SuspendOutsideBand: band_bottom ({band_bottom!r}) must be < band_top "
                f"({band_top!r})"
            )
        super().__init__(
            signal,
            sleep=sleep,
            pre_plan=pre_plan,
            post_plan=post_plan,
            tripped_message=tripped_message,
        )
        self._bottom = band_bottom
        self._top = band_top

    @property
    def band(self) -> tuple[float, float]:
        """``(band_bottom, band_top)``."""
        return self._bottom, self._top

    def _inside(self, value: Any) -> bool:
        return _is_number(value) and self._bottom <= value <= self._top

    def _should_suspend(self, value: Any) -> bool:
        return not self._inside(value)

    def _should_resume(self, value: Any) -> bool:
        return self._inside(value)

    def _arguments(self) -> list[str]:
        return [f"band_bottom={self._bottom!r}", f"band_top={self._top!r}"]

    def _condition(self, value: Any) -> str:
        return (
            f"signal {self._name} = {value!r} is outside the band "
            f"[{self._bottom!r}, {self._top!r}]; the plan resumes when it is back inside"
        )


# -- a change -------------------------------------------------------------------------------
class SuspendWhenChanged(Suspender):
    """Suspend when the value differs from ``expected_value``.

    Meant for a setting that must not change under a running session, e.g. which
    instrument owns shared hardware.

    With ``allow_resume=False`` (the default) the suspension never clears on its own,
    even if the value comes back: :meth:`wait_ready` waits forever. End the suspended
    plan with ``RE.abort()`` (or ``RE.stop()``), or release it with
    ``RE.remove_suspender(suspender)`` once you have checked that it is safe to go on.

    Args:
        signal: the signal to watch (see :class:`Suspender`).
        expected_value: the good value; if None, the first value seen after
            :meth:`install` (kept if the suspender is removed and installed again).
        allow_resume: clear when the value equals ``expected_value`` again.
        sleep: seconds the value must stay expected before the plan resumes.
        pre_plan: plan factory run when the plan is suspended.
        post_plan: plan factory run before the plan resumes.
        tripped_message: appended to the justification.
    """

    def __init__(
        self,
        signal: Subscribable[Any],
        expected_value: Any = None,
        allow_resume: bool = False,
        *,
        sleep: float = 0,
        pre_plan: PlanFactory | None = None,
        post_plan: PlanFactory | None = None,
        tripped_message: str = "",
    ) -> None:
        if not isinstance(allow_resume, bool):  # pyright: ignore[reportUnnecessaryIsInstance]
            raise TypeError(f"allow_resume must be True or False, got {allow_resume!r}")
        super().__init__(
            signal,
            sleep=sleep,
            pre_plan=pre_plan,
            post_plan=post_plan,
            tripped_message=tripped_message,
        )
        self._expected: Any = _UNSET if expected_value is None else expected_value
        self._allow_resume = allow_resume

    @property
    def expected_value(self) -> Any:
        """The good value (None until the first value is seen, if it was not given)."""
        return None if self._expected is _UNSET else self._expected

    @property
    def allow_resume(self) -> bool:
        """Whether the suspension clears when the value is back to expected."""
        return self._allow_resume

    def _update(self, value: Any) -> None:
        if self._expected is _UNSET and self._engine is not None:
            self._expected = value  # the first value seen is the good one
            logger.info("%r: expecting %s to stay %r", self, self._name, value)
        super()._update(value)

    def _should_suspend(self, value: Any) -> bool:
        return self._expected is not _UNSET and not _equal(value, self._expected)

    def _should_resume(self, value: Any) -> bool:
        return self._allow_resume and _equal(value, self._expected)

    def _arguments(self) -> list[str]:
        return [f"expected_value={self._expected!r}", f"allow_resume={self._allow_resume}"]

    def _condition(self, value: Any) -> str:
        then = (
            "the plan resumes when it is back"
            if self._allow_resume
            else "this does not clear by itself (allow_resume=False): abort the plan, or "
            "remove the suspender once it is safe to go on"
        )
        return f"signal {self._name} = {value!r} changed from {self._expected!r}; {then}"


# -- helpers --------------------------------------------------------------------------------
def _signal_name(signal: Any) -> str:
    name = getattr(signal, "name", None)
    return name if isinstance(name, str) and name else repr(signal)


def _loop_time() -> float | None:
    """The running loop's clock (which may be virtual), or None outside a loop."""
    try:
        return asyncio.get_running_loop().time()
    except RuntimeError:
        return None


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not math.isnan(value)


def _check_number(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {value!r}")
    if math.isnan(value):
        raise ValueError(f"{name} must be a number, got NaN")


def _check_plan_factory(name: str, plan: Any) -> None:
    if plan is not None and not callable(plan):
        raise TypeError(
            f"{name} must be None or a callable with no arguments that returns a plan "
            f"(e.g. a generator function, or lambda: my_plan(shutter)), got {plan!r}"
        )


def _equal(a: Any, b: Any) -> bool:
    """``a == b`` as one bool, also for arrays (all elements equal)."""
    try:
        same = a == b
        if isinstance(same, bool):
            return same
        every = getattr(same, "all", None)
        return bool(every()) if callable(every) else bool(same)
    except (TypeError, ValueError):
        return False
