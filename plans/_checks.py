"""Argument checks shared by the built-in plans.

Plans are plain functions that check their arguments and then return the plan's
generator, so a bad argument raises :class:`acq.PlanError` at the call -- before any
device moves and before any document is emitted -- naming the argument. Soft limits
need the devices, so :func:`check_limits` is a sub-plan the plans yield before they
stage anything or open their run.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Sequence
from typing import Any, cast

from acq import Msg, PlanError

from .patterns import Trajectory
from .stubs import PlanGenerator

__all__ = [
    "is_limit_check",
    "check_detectors",
    "check_snake_axes",
    "check_limits",
    "check_movable",
    "check_num",
    "check_number",
    "device_name",
    "split_args",
]


def device_name(obj: Any) -> str:
    """A device's name, or its repr."""
    name = getattr(obj, "name", None)
    return name if isinstance(name, str) and name else repr(obj)


def check_detectors(plan: str, detectors: Any) -> list[Any]:
    """``detectors`` must be a list of readable devices."""
    if isinstance(detectors, str | bytes) or not hasattr(detectors, "__iter__"):
        raise PlanError(
            f"{plan}(): detectors must be a list of readable devices, got {detectors!r}; "
            f"write {plan}([det], ...) even for one detector"
        )
    if hasattr(detectors, "read") and hasattr(detectors, "describe"):
        raise PlanError(
            f"{plan}(): detectors must be a list, got the device {device_name(detectors)}; "
            f"write {plan}([{device_name(detectors)}], ...)"
        )
    found: list[Any] = list(cast(Iterable[Any], detectors))
    for i, det in enumerate(found):
        missing = [m for m in ("read", "describe") if not callable(getattr(det, m, None))]
        if missing:
            raise PlanError(
                f"{plan}(): detectors[{i}] ({device_name(det)}) is not readable: it has no "
                f"{' or '.join(m + '()' for m in missing)}"
            )
    return found


def check_movable(plan: str, argument: str, motor: Any) -> Any:
    """``motor`` must have ``set()`` (and be readable, to be recorded)."""
    if not callable(getattr(motor, "set", None)):
        raise PlanError(
            f"{plan}(): {argument} ({device_name(motor)}) is not movable: it has no set() method"
        )
    return motor


def check_number(plan: str, argument: str, value: Any) -> float:
    """``value`` must be a finite real number."""
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not math.isfinite(float(value))
    ):
        raise PlanError(f"{plan}(): {argument} must be a finite number, got {value!r}")
    return float(value)


def check_num(plan: str, argument: str, num: Any, minimum: int = 1) -> int:
    """``num`` must be an integer >= ``minimum``."""
    if isinstance(num, bool) or not isinstance(num, numbers.Integral) or num < minimum:
        raise PlanError(f"{plan}(): {argument} must be an integer >= {minimum}, got {num!r}")
    return int(num)


def check_snake_axes(plan: str, snake_axes: Any, motors: Sequence[Any]) -> None:
    """``snake_axes``: None, a bool, or motors of the grid other than the first (slowest)."""
    if snake_axes is None or isinstance(snake_axes, bool):
        return
    for axis in cast(Iterable[Any], snake_axes):
        if not any(axis is m for m in motors):
            raise PlanError(
                f"{plan}(): snake_axes names {device_name(axis)}, not a motor of the grid"
            )
        if axis is motors[0]:
            raise PlanError(
                f"{plan}(): the first (slowest) motor {device_name(motors[0])} cannot snake"
            )


def split_args(plan: str, args: Sequence[Any], width: int, pattern: str) -> list[list[Any]]:
    """Split ``motor, a, b, motor, a, b, ...`` into groups of ``width`` and check motors."""
    if not args or len(args) % width:
        raise PlanError(
            f"{plan}(): expected arguments in groups of {width} ({pattern}), got {len(args)} "
            f"argument(s): {[device_name(a) for a in args]}"
        )
    groups = [list(args[i : i + width]) for i in range(0, len(args), width)]
    for n, group in enumerate(groups, 1):
        check_movable(plan, f"motor {n}", group[0])
    motors = [id(g[0]) for g in groups]
    if len(set(motors)) != len(motors):
        raise PlanError(f"{plan}(): a motor appears more than once in {pattern}")
    return groups


async def _check_value(motor: Any, value: float) -> None:
    result = motor.check_value(value)
    if hasattr(result, "__await__"):
        await result


async def _refuse(plan: str, motor: Any, value: float) -> None:
    try:
        await _check_value(motor, value)
    except Exception as exc:
        raise PlanError(
            f"{plan}(): {device_name(motor)} cannot go to {value} (refused before any "
            f"motion): {exc}"
        ) from exc


def is_limit_check(msg: Msg) -> bool:
    """True for the messages :func:`check_limits` yields (plan tools skip them)."""
    return msg.command == "await" and msg.obj is _refuse


def check_limits(plan: str, trajectory: Trajectory) -> PlanGenerator:
    """A sub-plan: ask each motor that can check (``check_value``) about its extremes.

    The trajectory's smallest and largest position per motor are checked, so a scan
    that would leave a motor's soft limits fails before anything moves.
    """
    return _check_limits(plan, trajectory)


async def _check_limits(plan: str, trajectory: Trajectory) -> PlanGenerator:
    motors: dict[int, Any] = {}
    for point in trajectory[:1] + trajectory[-1:]:  # every point moves the same motors
        motors.update((id(m), m) for m in point)
    checks: list[tuple[Any, float]] = []
    for motor in motors.values():
        if callable(getattr(motor, "check_value", None)):
            positions = [p[motor] for p in trajectory if motor in p]
            checks += [(motor, min(positions)), (motor, max(positions))]
    for motor, value in checks:
        yield Msg("await", _refuse, plan, motor, value)
