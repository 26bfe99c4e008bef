"""Plans that are not a fixed grid of steps: spirals, adaptive steps, tuning, fly and ramp.

Spirals are step scans over a :mod:`acq.plans.patterns` trajectory. ``adaptive_scan``
chooses each step from the measured change (reference/003); ``tune_centroid`` narrows
a range around the centroid of a signal pass after pass; ``fly`` kicks off flyers and
collects what they gathered; ``ramp_plan`` reads while something ramps.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

import numpy as np

from acq import Msg, PlanError, Return

from . import patterns
from ._checks import (
    check_detectors,
    check_limits,
    check_movable,
    check_num,
    check_number,
    device_name,
)
from ._md import dimensions, motor_fields, plan_md
from ._step import PerStep, relative_to_start, step_scan
from .patterns import Trajectory
from .stubs import (
    PlanGenerator,
    new_group,
    reading_messages,
    stage_all,
    unique_devices,
    unstage_all,
)

__all__ = [
    "adaptive_scan",
    "fly",
    "ramp_plan",
    "rel_adaptive_scan",
    "rel_spiral",
    "rel_spiral_fermat",
    "rel_spiral_square",
    "spiral",
    "spiral_fermat",
    "spiral_square",
    "tune_centroid",
]


# -- spirals ---------------------------------------------------------------------------------
def _spiral_plan(
    plan: str,
    detectors: Sequence[Any],
    x_motor: Any,
    y_motor: Any,
    pattern: Callable[..., Trajectory],
    numbers: dict[str, Any],
    options: dict[str, Any],
    per_step: PerStep | None,
    md: Mapping[str, Any] | None,
    relative: bool,
) -> PlanGenerator:
    """A step scan over ``pattern(x_motor, y_motor, **numbers, **options)``.

    ``numbers`` names the centre first (``x_start``/``x_center``, then y); a relative
    plan centres the pattern on where the motors are.
    """
    dets = check_detectors(plan, detectors)
    check_movable(plan, "x_motor", x_motor)
    check_movable(plan, "y_motor", y_motor)
    if x_motor is y_motor:
        raise PlanError(f"{plan}(): x_motor and y_motor are the same device")
    for key, value in numbers.items():
        check_number(plan, key, value)
    x_key, y_key = list(numbers)[:2]

    def centred(origin: Mapping[Any, float] | None) -> dict[str, Any]:
        here = dict(numbers)
        if origin is not None:
            here[x_key] += origin[x_motor]
            here[y_key] += origin[y_motor]
        return here

    def trajectory(origin: Mapping[Any, float] | None) -> Trajectory:
        points = pattern(x_motor, y_motor, **centred(origin), **options)
        if not points:
            raise PlanError(f"{plan}(): the ranges and steps given leave no point to visit")
        return points

    def md_of(points: Trajectory, origin: Mapping[Any, float] | None) -> dict[str, Any]:
        args = centred(origin)
        x0, y0 = args[x_key], args[y_key]
        extents = [
            [x0 - args["x_range"] / 2, x0 + args["x_range"] / 2],
            [y0 - args["y_range"] / 2, y0 + args["y_range"] / 2],
        ]
        extra: dict[str, Any] = {"extents": extents}
        hints: dict[str, Any] | None = None
        if "x_num" in args:  # a square spiral visits a grid: described y first, as bluesky
            extra = {"shape": [args["y_num"], args["x_num"]], "extents": extents[::-1]}
            hints = {
                "gridding": "rectilinear_nonsequential",
                "dimensions": dimensions([y_motor, x_motor]),
            }
        return plan_md(
            plan,
            detectors=dets,
            motors=[x_motor, y_motor],
            plan_args={"detectors": dets, "x_motor": x_motor, "y_motor": y_motor}
            | numbers
            | options
            | {"per_step": per_step},
            num_points=len(points),
            pattern=pattern.__name__,
            pattern_args={"x_motor": x_motor, "y_motor": y_motor} | args | options,
            hints=hints,
            extra=extra,
            md=md,
        )

    motors = [x_motor, y_motor]
    return step_scan(plan, dets, motors, trajectory, md_of, per_step=per_step, relative=relative)


def spiral(
    detectors: Sequence[Any],
    x_motor: Any,
    y_motor: Any,
    x_start: float,
    y_start: float,
    x_range: float,
    y_range: float,
    dr: float,
    nth: float,
    *,
    dr_y: float | None = None,
    tilt: float = 0.0,
    per_step: PerStep | None = None,
    md: Mapping[str, Any] | None = None,
) -> PlanGenerator:
    """Rings around ``(x_start, y_start)``, ``dr`` apart, ``nth`` more points per ring.

    Only points inside the ``x_range`` x ``y_range`` box (rotated by ``tilt`` radians)
    are visited; ``dr_y`` makes the rings elliptic. See :func:`acq.plans.patterns.spiral`.
    """
    numbers = {"x_start": x_start, "y_start": y_start, "x_range": x_range, "y_range": y_range}
    numbers |= {"dr": dr, "nth": nth}
    return _spiral_plan(
        "spiral", detectors, x_motor, y_motor, patterns.spiral, numbers,
        {"dr_y": dr_y, "tilt": tilt}, per_step, md, False,
    )  # fmt: skip


def rel_spiral(
    detectors: Sequence[Any],
    x_motor: Any,
    y_motor: Any,
    x_range: float,
    y_range: float,
    dr: float,
    nth: float,
    *,
    dr_y: float | None = None,
    tilt: float = 0.0,
    per_step: PerStep | None = None,
    md: Mapping[str, Any] | None = None,
) -> PlanGenerator:
    """:func:`spiral` around where the motors are; they return there afterwards."""
    numbers = {"x_start": 0.0, "y_start": 0.0, "x_range": x_range, "y_range": y_range}
    numbers |= {"dr": dr, "nth": nth}
    return _spiral_plan(
        "rel_spiral", detectors, x_motor, y_motor, patterns.spiral, numbers,
        {"dr_y": dr_y, "tilt": tilt}, per_step, md, True,
    )  # fmt: skip


def spiral_fermat(
    detectors: Sequence[Any],
    x_motor: Any,
    y_motor: Any,
    x_start: float,
    y_start: float,
    x_range: float,
    y_range: float,
    dr: float,
    factor: float,
    *,
    dr_y: float | None = None,
    tilt: float = 0.0,
    per_step: PerStep | None = None,
    md: Mapping[str, Any] | None = None,
) -> PlanGenerator:
    """A Fermat spiral around ``(x_start, y_start)``: even coverage of the box.

    See :func:`acq.plans.patterns.spiral_fermat`.
    """
    numbers = {"x_start": x_start, "y_start": y_start, "x_range": x_range, "y_range": y_range}
    numbers |= {"dr": dr, "factor": factor}
    return _spiral_plan(
        "spiral_fermat", detectors, x_motor, y_motor, patterns.spiral_fermat, numbers,
        {"dr_y": dr_y, "tilt": tilt}, per_step, md, False,
    )  # fmt: skip


def rel_spiral_fermat(
    detectors: Sequence[Any],
    x_motor: Any,
    y_motor: Any,
    x_range: float,
    y_range: float,
    dr: float,
    factor: float,
    *,
    dr_y: float | None = None,
    tilt: float = 0.0,
    per_step: PerStep | None = None,
    md: Mapping[str, Any] | None = None,
) -> PlanGenerator:
    """:func:`spiral_fermat` around where the motors are; they return there afterwards."""
    numbers = {"x_start": 0.0, "y_start": 0.0, "x_range": x_range, "y_range": y_range}
    numbers |= {"dr": dr, "factor": factor}
    return _spiral_plan(
        "rel_spiral_fermat", detectors, x_motor, y_motor, patterns.spiral_fermat, numbers,
        {"dr_y": dr_y, "tilt": tilt}, per_step, md, True,
    )  # fmt: skip


def spiral_square(
    detectors: Sequence[Any],
    x_motor: Any,
    y_motor: Any,
    x_center: float,
    y_center: float,
    x_range: float,
    y_range: float,
    x_num: int,
    y_num: int,
    *,
    per_step: PerStep | None = None,
    md: Mapping[str, Any] | None = None,
) -> PlanGenerator:
    """Every point of an ``x_num`` x ``y_num`` grid, in a square spiral from the centre."""
    check_num("spiral_square", "x_num", x_num)
    check_num("spiral_square", "y_num", y_num)
    numbers = {"x_center": x_center, "y_center": y_center, "x_range": x_range}
    numbers |= {"y_range": y_range, "x_num": x_num, "y_num": y_num}
    return _spiral_plan(
        "spiral_square", detectors, x_motor, y_motor, patterns.spiral_square, numbers, {},
        per_step, md, False,
    )  # fmt: skip


def rel_spiral_square(
    detectors: Sequence[Any],
    x_motor: Any,
    y_motor: Any,
    x_range: float,
    y_range: float,
    x_num: int,
    y_num: int,
    *,
    per_step: PerStep | None = None,
    md: Mapping[str, Any] | None = None,
) -> PlanGenerator:
    """:func:`spiral_square` around where the motors are; they return there afterwards."""
    check_num("rel_spiral_square", "x_num", x_num)
    check_num("rel_spiral_square", "y_num", y_num)
    numbers = {"x_center": 0.0, "y_center": 0.0, "x_range": x_range}
    numbers |= {"y_range": y_range, "x_num": x_num, "y_num": y_num}
    return _spiral_plan(
        "rel_spiral_square", detectors, x_motor, y_motor, patterns.spiral_square, numbers, {},
        per_step, md, True,
    )  # fmt: skip


# -- adaptive ----------------------------------------------------------------------------------
def _adaptive(
    plan: str,
    detectors: Sequence[Any],
    target_field: str,
    motor: Any,
    start: float,
    stop: float,
    min_step: float,
    max_step: float,
    target_delta: float,
    backstep: bool,
    threshold: float,
    md: Mapping[str, Any] | None,
    relative: bool,
) -> PlanGenerator:
    dets = check_detectors(plan, detectors)
    check_movable(plan, "motor", motor)
    for name, value in (("start", start), ("stop", stop), ("target_delta", target_delta)):
        check_number(plan, name, value)
    check_number(plan, "min_step", min_step)
    check_number(plan, "max_step", max_step)
    if not 0 < min_step < max_step:
        raise PlanError(
            f"{plan}(): need 0 < min_step < max_step, got min_step={min_step}, max_step={max_step}"
        )
    if not isinstance(cast(Any, target_field), str):
        raise PlanError(f"{plan}(): target_field must be a data key (str), got {target_field!r}")
    start_md = plan_md(
        plan,
        detectors=dets,
        motors=[motor],
        plan_args={
            "detectors": dets, "target_field": target_field, "motor": motor, "start": start,
            "stop": stop, "min_step": min_step, "max_step": max_step,
            "target_delta": target_delta, "backstep": backstep, "threshold": threshold,
        },
        md=md,
    )  # fmt: skip

    def core(origin: Mapping[Any, float] | None) -> PlanGenerator:
        return _adaptive_core(
            plan, dets, target_field, motor, (start, stop), (min_step, max_step),
            target_delta, backstep, threshold, start_md, origin[motor] if origin else 0.0,
        )  # fmt: skip

    return relative_to_start([motor], core) if relative else core(None)


async def _adaptive_core(
    plan: str,
    dets: list[Any],
    target_field: str,
    motor: Any,
    span: tuple[float, float],
    steps: tuple[float, float],
    target_delta: float,
    backstep: bool,
    threshold: float,
    start_md: dict[str, Any],
    origin: float,
) -> PlanGenerator:
    start, stop = span[0] + origin, span[1] + origin
    min_step, max_step = steps
    yield check_limits(plan, [{motor: start}, {motor: stop}])
    devices = unique_devices([*dets, motor])
    yield stage_all(*devices)
    yield Msg("open_run", **start_md)
    direction = 1 if stop >= start else -1
    read = reading_messages(devices, "primary", new_group("trigger"))
    move = new_group("move")
    position, step = start, (max_step - min_step) / 2
    previous: float | None = None
    while position * direction < stop * direction:
        yield Msg("checkpoint")
        yield Msg("set", motor, position, group=move)
        yield Msg("wait", None, group=move)
        value: Any = None
        for msg in read:
            reply = yield msg
            if msg.command == "read" and target_field in reply:
                value = reply[target_field]["value"]
        if value is None:
            raise PlanError(
                f"{plan}(): no device read {target_field!r} (fields read: the detectors' "
                "and the motor's); pass the data key of a detector as target_field"
            )
        if previous is None:  # the first point only sets the reference
            previous = value
            position += step * direction
            continue
        slope = abs(value - previous) / step
        new_step = (
            float(np.clip(target_delta / slope, min_step, max_step))
            if slope
            else min(step * 1.1, max_step)
        )
        if backstep and new_step < step * threshold:  # overshot: step back, try smaller
            position -= step * direction
            step = new_step
        else:
            previous = value
            step = 0.2 * new_step + 0.8 * step
        position += step * direction
    yield Msg("close_run")
    yield unstage_all(*reversed(devices))


def adaptive_scan(
    detectors: Sequence[Any],
    target_field: str,
    motor: Any,
    start: float,
    stop: float,
    min_step: float,
    max_step: float,
    target_delta: float,
    backstep: bool,
    threshold: float = 0.8,
    *,
    md: Mapping[str, Any] | None = None,
) -> PlanGenerator:
    """Scan with the step adapted to the signal: small where it changes, large where flat.

    After each point the next step aims at a change of ``target_delta`` in
    ``target_field`` (clipped to ``[min_step, max_step]`` and smoothed); with
    ``backstep`` a step whose change came out too large (the new step below
    ``threshold`` times the last) is taken again, smaller.
    """
    return _adaptive(
        "adaptive_scan", detectors, target_field, motor, start, stop, min_step, max_step,
        target_delta, backstep, threshold, md, False,
    )  # fmt: skip


def rel_adaptive_scan(
    detectors: Sequence[Any],
    target_field: str,
    motor: Any,
    start: float,
    stop: float,
    min_step: float,
    max_step: float,
    target_delta: float,
    backstep: bool,
    threshold: float = 0.8,
    *,
    md: Mapping[str, Any] | None = None,
) -> PlanGenerator:
    """:func:`adaptive_scan` relative to where the motor is; it returns there afterwards."""
    return _adaptive(
        "rel_adaptive_scan", detectors, target_field, motor, start, stop, min_step, max_step,
        target_delta, backstep, threshold, md, True,
    )  # fmt: skip


# -- tuning ----------------------------------------------------------------------------------------
def tune_centroid(
    detectors: Sequence[Any],
    signal: str,
    motor: Any,
    start: float,
    stop: float,
    min_step: float,
    num: int = 10,
    step_factor: float = 3.0,
    snake: bool = False,
    *,
    md: Mapping[str, Any] | None = None,
) -> PlanGenerator:
    """Find the centroid of ``signal`` along ``motor`` and leave the motor there.

    Each pass scans ``num`` points; the next pass covers ``1/step_factor`` of the range
    around the centroid found (within ``start..stop``), until the step is below
    ``min_step``. ``snake`` reverses direction each pass. Result: the centroid (None if
    the signal was zero everywhere).
    """
    plan = "tune_centroid"
    dets = check_detectors(plan, detectors)
    check_movable(plan, "motor", motor)
    check_number(plan, "start", start)
    check_number(plan, "stop", stop)
    check_num(plan, "num", num, minimum=2)
    if check_number(plan, "min_step", min_step) <= 0:
        raise PlanError(f"{plan}(): min_step must be > 0, got {min_step}")
    if check_number(plan, "step_factor", step_factor) <= 1:
        raise PlanError(f"{plan}(): step_factor must be > 1, got {step_factor}")
    start_md = plan_md(
        plan,
        detectors=dets,
        motors=[motor],
        plan_args={
            "detectors": dets, "signal": signal, "motor": motor, "start": start, "stop": stop,
            "min_step": min_step, "num": num, "step_factor": step_factor, "snake": snake,
        },
        md=md,
    )  # fmt: skip
    return _tune(dets, signal, motor, (start, stop), min_step, num, step_factor, snake, start_md)


async def _tune(
    dets: list[Any],
    signal: str,
    motor: Any,
    span: tuple[float, float],
    min_step: float,
    num: int,
    step_factor: float,
    snake: bool,
    start_md: dict[str, Any],
) -> PlanGenerator:
    start, stop = span
    low, high = min(span), max(span)
    yield check_limits("tune_centroid", [{motor: low}, {motor: high}])
    devices = unique_devices([*dets, motor])
    yield stage_all(*devices)
    yield Msg("open_run", **start_md)
    (motor_key,) = motor_fields(motor)[:1]
    read = reading_messages(devices, "primary", new_group("trigger"))
    move = new_group("move")
    position, step = start, (stop - start) / (num - 1)
    centroid: float | None = None
    total = moment = 0.0
    while abs(step) >= min_step and low <= position <= high:
        yield Msg("checkpoint")
        yield Msg("set", motor, position, group=move)
        yield Msg("wait", None, group=move)
        reading: dict[str, Any] = {}
        for msg in read:
            reply = yield msg
            if msg.command == "read":
                reading.update(reply)
        if signal not in reading:
            raise PlanError(
                f"tune_centroid(): no device read {signal!r}; fields: {sorted(reading)}"
            )
        value = float(reading[signal]["value"])
        total += value
        moment += float(reading[motor_key]["value"]) * value
        position += step
        if min(start, stop) <= position <= max(start, stop):
            continue
        if total == 0:
            break
        centroid = moment / total
        total = moment = 0.0
        half = (stop - start) / step_factor / 2
        start = float(np.clip(centroid - half, low, high))
        stop = float(np.clip(centroid + half, low, high))
        if snake:
            start, stop = stop, start
        step = (stop - start) / (num - 1)
        position = start
    yield Msg("close_run")
    yield unstage_all(*reversed(devices))
    if centroid is not None:
        yield Msg("set", motor, centroid, group=move)
        yield Msg("wait", None, group=move)
    yield Return(centroid)


# -- fly and ramp ----------------------------------------------------------------------
def fly(flyers: Sequence[Any], *, md: Mapping[str, Any] | None = None) -> PlanGenerator:
    """Kick off the flyers, wait for them to complete, and collect what they gathered."""
    found = list(flyers)
    for i, flyer in enumerate(found):
        missing = [m for m in ("kickoff", "complete") if not callable(getattr(flyer, m, None))]
        if missing:
            raise PlanError(f"fly(): flyers[{i}] ({device_name(flyer)}) has no {missing[0]}()")
    start_md = plan_md(
        "fly",
        plan_args={"flyers": found},
        md=md,
        extra={"flyers": [device_name(f) for f in found]},
    )
    return _fly(found, start_md)


async def _fly(flyers: list[Any], start_md: dict[str, Any]) -> PlanGenerator:
    yield Msg("open_run", **start_md)
    group = new_group("fly")
    for flyer in flyers:
        yield Msg("kickoff", flyer, group=group)
    yield Msg("wait", None, group=group)
    for flyer in flyers:
        yield Msg("complete", flyer, group=group)
    yield Msg("wait", None, group=group)
    for flyer in flyers:
        yield Msg("collect", flyer)
    uid = yield Msg("close_run")
    yield Return(uid)


def ramp_plan(
    go_plan: Any,
    monitor_sig: Any,
    inner_plan_func: Callable[[], PlanGenerator],
    take_pre_data: bool = True,
    timeout: float | None = None,
    period: float | None = None,
    md: Mapping[str, Any] | None = None,
) -> PlanGenerator:
    """Read repeatedly while something ramps, and record its every update.

    ``go_plan`` starts the ramp and its result is the ramp's status (e.g.
    ``abs_set(temperature, 300)``); ``inner_plan_func()`` takes one reading (e.g.
    ``lambda: trigger_and_read([det])``) and runs until the status is done, at most
    every ``period`` seconds; ``monitor_sig`` is monitored meanwhile. More than
    ``timeout`` seconds of ramp fails the plan.
    """
    if not callable(inner_plan_func):
        raise PlanError("ramp_plan(): inner_plan_func must be a function returning a plan")
    start_md = plan_md(
        "ramp_plan",
        plan_args={
            "go_plan": go_plan,
            "monitor_sig": monitor_sig,
            "timeout": timeout,
            "period": period,
        },
        md=md,
    )
    return _ramp(go_plan, monitor_sig, inner_plan_func, take_pre_data, timeout, period, start_md)


async def _ramp(
    go_plan: Any,
    monitor_sig: Any,
    inner_plan_func: Callable[[], PlanGenerator],
    take_pre_data: bool,
    timeout: float | None,  # noqa: ASYNC109 -- the ramp's limit, checked between readings
    period: float | None,
    start_md: dict[str, Any],
) -> PlanGenerator:
    loop = asyncio.get_running_loop()
    yield Msg("open_run", **start_md)
    yield Msg("monitor", monitor_sig, name=f"{device_name(monitor_sig)}_monitor")
    if take_pre_data:
        yield inner_plan_func()
    status = yield go_plan
    began = loop.time()
    while not getattr(status, "done", True):
        if timeout is not None and loop.time() - began > timeout:
            raise PlanError(f"ramp_plan(): the ramp did not finish within {timeout} s")
        tick = loop.time()
        yield inner_plan_func()
        if period is not None:
            rest = period - (loop.time() - tick)
            if rest > 0:
                yield Msg("sleep", None, rest)
    yield inner_plan_func()
    yield Msg("unmonitor", monitor_sig)
    uid = yield Msg("close_run")
    yield Return(uid)
