"""The metadata every built-in plan records in its Start document (reference/001).

``plan_name``, ``plan_args`` (repr-safe, JSON), ``detectors``, ``motors``,
``num_points``, ``num_intervals``, ``hints`` (``dimensions`` for plotting) and, for
plans with a fixed trajectory, ``plan_pattern``, ``plan_pattern_module`` and
``plan_pattern_args`` (motors by name). The caller's ``md=`` is merged on top: its keys
win, and its ``hints`` are merged key by key with the plan's. As in bluesky, a plan
that moves nothing (``count``) has no ``motors`` key, and one without detectors
(``fly``) no ``detectors`` key.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, cast

import numpy as np

from ._checks import device_name

__all__ = ["dimensions", "jsonable", "motor_fields", "named", "plan_md"]

PATTERN_MODULE = "acq.plans.patterns"


def jsonable(value: Any) -> Any:
    """``value`` with devices, callables and other objects replaced by their repr.

    Numbers, strings, booleans and None stay; numpy scalars and arrays become Python
    numbers and lists; lists, tuples and dicts are converted item by item.
    """
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, np.generic):
        return jsonable(value.item())
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in cast(Iterable[Any], value)]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in cast(dict[Any, Any], value).items()}
    return repr(value)


def named(value: Any) -> Any:
    """As :func:`jsonable`, but devices become their names (for ``plan_pattern_args``)."""
    if hasattr(value, "name") and (hasattr(value, "read") or hasattr(value, "set")):
        return device_name(value)
    if isinstance(value, list | tuple):
        return [named(v) for v in cast(Iterable[Any], value)]
    if isinstance(value, dict):
        items = cast(dict[Any, Any], value).items()
        return {k if isinstance(k, str) else device_name(k): named(v) for k, v in items}
    return jsonable(value)


def motor_fields(motor: Any) -> list[str]:
    """The fields a plot should use for ``motor``: its hinted fields, or its name."""
    hints: Any = getattr(motor, "hints", None)
    if isinstance(hints, Mapping):
        fields: Any = cast(Mapping[str, Any], hints).get("fields")
        if fields:
            return [str(f) for f in fields]
    return [device_name(motor)]


def dimensions(
    motors: Sequence[Any], stream: str = "primary", *, together: bool = False
) -> list[Any]:
    """``hints["dimensions"]``: one ``(fields, stream)`` pair per motor.

    ``together``: the motors move as one (an inner product), so they make one dimension.
    """
    if together:
        return [([f for m in motors for f in motor_fields(m)], stream)]
    return [(motor_fields(m), stream) for m in motors]


def plan_md(
    plan_name: str,
    *,
    detectors: Sequence[Any] | None = None,
    motors: Sequence[Any] | None = None,
    plan_args: Mapping[str, Any],
    num_points: int | None = None,
    pattern: str | None = None,
    pattern_args: Mapping[str, Any] | None = None,
    hints: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
    md: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The Start metadata of a built-in plan, with the caller's ``md`` merged on top.

    ``detectors`` and ``motors`` are recorded by name when given (None: no such key).
    """
    args = dict(plan_args)
    for hook in ("per_step", "per_shot"):
        if hook in args:  # as bluesky records per_step: repr, so None is "None"
            args[hook] = repr(args[hook])
    out: dict[str, Any] = {"plan_name": plan_name, "plan_args": jsonable(args)}
    if detectors is not None:
        out["detectors"] = [device_name(d) for d in detectors]
    if motors is not None:
        out["motors"] = [device_name(m) for m in motors]
    if num_points is not None:
        out["num_points"] = num_points
        out["num_intervals"] = max(num_points - 1, 0)
    if pattern is not None:
        out["plan_pattern"] = pattern
        out["plan_pattern_module"] = PATTERN_MODULE
        out["plan_pattern_args"] = named(dict(pattern_args or {}))
    plan_hints: dict[str, Any] = {}
    if motors:
        plan_hints["dimensions"] = dimensions(motors)
    plan_hints.update(hints or {})
    out.update(extra or {})
    user = dict(md or {})
    user_hints = user.pop("hints", None)
    out.update(user)
    if isinstance(user_hints, Mapping):
        plan_hints.update(cast(Mapping[str, Any], user_hints))
    elif user_hints is not None:
        out["hints"] = user_hints  # not a mapping: let the engine's check name it
        return out
    if plan_hints:
        out["hints"] = jsonable(plan_hints)
    return out
