"""Step plans: count, the 1-D and N-D scans, grids, lists, log scans and scan_nd.

Every step scan runs through :func:`step_scan`: check the soft limits, stage, open the
run, visit each point of the trajectory (move what changed, trigger, read into the
primary stream), close the run, unstage. The default step is written out inline --
about eight messages per point and no sub-plan -- so the engine's per-point cost stays
small; ``per_step`` replaces it with any plan. Relative plans note where the motors
are, shift the trajectory by it, and put the motors back whatever happens.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeAlias, cast

import numpy as np

from acq import Msg, PlanError, Return

from . import patterns
from ._checks import (
    check_detectors,
    check_limits,
    check_movable,
    check_num,
    check_number,
    check_snake_axes,
    device_name,
    split_args,
)
from ._md import dimensions, plan_md
from .patterns import Trajectory
from .preprocessors import finalize_wrapper
from .stubs import (
    PlanGenerator,
    check_delay,
    new_group,
    reading_messages,
    stage_all,
    unique_devices,
    unstage_all,
    where,
)

__all__ = [
    "count",
    "grid_scan",
    "inner_product_scan",
    "list_grid_scan",
    "list_scan",
    "log_scan",
    "rel_grid_scan",
    "rel_list_grid_scan",
    "rel_list_scan",
    "rel_log_scan",
    "rel_scan",
    "relative_inner_product_scan",
    "scan",
    "scan_nd",
    "relative_to_start",
    "step_scan",
]

PerStep: TypeAlias = Callable[..., PlanGenerator]
_MAX_EXPONENT = math.log10(sys.float_info.max)
_CHECKPOINT = Msg("checkpoint")


# -- the engine of every step scan ---------------------------------------------------------
def step_scan(
    plan_name: str,
    detectors: Sequence[Any],
    motors: Sequence[Any],
    trajectory: Callable[[Mapping[Any, float] | None], Trajectory],
    md: Callable[[Trajectory, Mapping[Any, float] | None], dict[str, Any]],
    *,
    per_step: PerStep | None = None,
    relative: bool = False,
) -> PlanGenerator:
    """A step scan over ``trajectory(origin)`` (origin: the motors' start positions if relative).

    ``md(trajectory, origin)`` gives the Start metadata. ``per_step(detectors, point, pos_cache)``
    replaces the default step (see :func:`acq.plans.stubs.one_nd_step`).
    """
    dets, movers = list(detectors), list(motors)

    def core(origin: Mapping[Any, float] | None) -> PlanGenerator:
        return _step_scan(plan_name, dets, movers, trajectory, md, per_step, origin)

    return relative_to_start(movers, core) if relative else core(None)


async def relative_to_start(
    motors: list[Any], core: Callable[[dict[Any, Any]], Any]
) -> PlanGenerator:
    """Run ``core(origin)``; afterwards put ``motors`` back at ``origin``, whatever happened.

    ``origin`` maps each motor to where it was before the plan.
    """
    origin: dict[Any, Any] = {}
    for motor in motors:
        origin[motor] = yield where(motor)

    async def go_back() -> PlanGenerator:
        """Move back the motors that are not where they started (none, if refused early)."""
        group = new_group("reset")
        moved = False
        for motor, position in origin.items():
            if (yield where(motor)) != position:
                yield Msg("set", motor, position, group=group)
                moved = True
        if moved:
            yield Msg("wait", None, group=group)

    result = yield finalize_wrapper(core(origin), go_back)
    yield Return(result)


async def _step_scan(
    plan_name: str,
    detectors: list[Any],
    motors: list[Any],
    trajectory_of: Callable[[Mapping[Any, float] | None], Trajectory],
    md_of: Callable[[Trajectory, Mapping[Any, float] | None], dict[str, Any]],
    per_step: PerStep | None,
    origin: Mapping[Any, float] | None,
) -> PlanGenerator:
    trajectory = trajectory_of(origin)
    yield check_limits(plan_name, trajectory)
    devices = unique_devices([*detectors, *motors])
    yield stage_all(*devices)
    yield Msg("open_run", **md_of(trajectory, origin))
    pos_cache: dict[Any, Any] = {}
    if per_step is not None:
        for point in trajectory:
            yield per_step(detectors, point, pos_cache)
    else:
        move = new_group("move")
        read = reading_messages(devices, "primary", new_group("trigger"))
        wait = Msg("wait", None, group=move)
        for point in trajectory:
            yield _CHECKPOINT
            moved = False
            for motor, position in point.items():
                if pos_cache.get(motor) != position:
                    yield Msg("set", motor, position, group=move)
                    pos_cache[motor] = position
                    moved = True
            if moved:
                yield wait
            for msg in read:
                yield msg
    yield Msg("close_run")
    yield unstage_all(*reversed(devices))


def _shift(trajectory: Trajectory, origin: Mapping[Any, float] | None) -> Trajectory:
    if origin is None:
        return trajectory
    return [{m: p + origin[m] for m, p in point.items()} for point in trajectory]


# -- count ------------------------------------------------------------------------------------
def count(
    detectors: Sequence[Any],
    num: int | None = 1,
    delay: float | Sequence[float] | None = 0.0,
    *,
    per_shot: Callable[[list[Any]], PlanGenerator] | None = None,
    md: Mapping[str, Any] | None = None,
) -> PlanGenerator:
    """Read the detectors ``num`` times (forever if None): a time series.

    Args:
        detectors: the devices to trigger and read.
        num: number of readings; None counts until stopped.
        delay: seconds between readings: one number, or one per gap (``num - 1``).
        per_shot: a plan ``per_shot(detectors)`` replacing trigger-and-read.
        md: metadata merged into the Start document.
    """
    dets = check_detectors("count", detectors)
    if num is not None:
        num = check_num("count", "num", num)
    delays = check_delay(delay, num)
    start = plan_md(  # no "motors" key: count moves nothing (as in bluesky)
        "count",
        detectors=dets,
        plan_args={"detectors": dets, "num": num, "delay": delay, "per_shot": per_shot},
        num_points=num,
        hints={"dimensions": [(["time"], "primary")]},
        md=md,
    )
    return _count(dets, num, delays, per_shot, start)


async def _count(
    dets: list[Any],
    num: int | None,
    delays: list[float] | float,
    per_shot: Callable[[list[Any]], PlanGenerator] | None,
    start: dict[str, Any],
) -> PlanGenerator:
    yield stage_all(*dets)
    yield Msg("open_run", **start)
    read = reading_messages(dets, "primary", new_group("trigger"))
    i = 0
    while num is None or i < num:
        if i:
            gap = delays[i - 1] if isinstance(delays, list) else delays
            if gap:
                yield Msg("sleep", None, gap)
        yield _CHECKPOINT
        if per_shot is not None:
            yield per_shot(dets)
        else:
            for msg in read:
                yield msg
        i += 1
    yield Msg("close_run")
    yield unstage_all(*reversed(dets))


# -- inner products: scan, log_scan, list_scan ------------------------------------------------
def _num_from_args(
    plan: str, args: tuple[Any, ...], num: int | None
) -> tuple[tuple[Any, ...], int]:
    if num is None and len(args) % 3 == 1:  # bluesky's older spelling: num last in args
        args, num = args[:-1], args[-1]
    if num is None:
        raise PlanError(f"{plan}(): num (the number of points) is required")
    return args, check_num(plan, "num", num)


def _inner(
    plan: str,
    detectors: Sequence[Any],
    args: tuple[Any, ...],
    num: int | None,
    per_step: PerStep | None,
    md: Mapping[str, Any] | None,
    relative: bool,
) -> PlanGenerator:
    dets = check_detectors(plan, detectors)
    args, n = _num_from_args(plan, args, num)
    groups = split_args(plan, args, 3, "motor, start, stop, ...")
    for motor, start, stop in groups:
        check_number(plan, f"start of {device_name(motor)}", start)
        check_number(plan, f"stop of {device_name(motor)}", stop)
    motors = [g[0] for g in groups]
    relative_args = [x for g in groups for x in g]

    def trajectory(origin: Mapping[Any, float] | None) -> Trajectory:
        return _shift(patterns.inner_product(n, relative_args), origin)

    def md_of(points: Trajectory, origin: Mapping[Any, float] | None) -> dict[str, Any]:
        ends = [x for m in motors for x in (m, points[0][m], points[-1][m])]
        return plan_md(
            plan,
            detectors=dets,
            motors=motors,
            plan_args={"detectors": dets, "num": n, "args": relative_args, "per_step": per_step},
            num_points=n,
            pattern="inner_product",
            pattern_args={"num": n, "args": ends},
            hints={"dimensions": dimensions(motors, together=True)},
            md=md,
        )

    return step_scan(plan, dets, motors, trajectory, md_of, per_step=per_step, relative=relative)


def scan(
    detectors: Sequence[Any],
    *args: Any,
    num: int | None = None,
    per_step: PerStep | None = None,
    md: Mapping[str, Any] | None = None,
) -> PlanGenerator:
    """Move motors together from start to stop in ``num`` points, reading at each.

    Args:
        detectors: devices to trigger and read at each point.
        *args: ``motor1, start1, stop1, motor2, start2, stop2, ...`` (an inner product:
            all motors move at once).
        num: number of points.
        per_step: a plan ``per_step(detectors, point, pos_cache)`` replacing the step.
        md: metadata merged into the Start document.
    """
    return _inner("scan", detectors, args, num, per_step, md, False)


def rel_scan(
    detectors: Sequence[Any],
    *args: Any,
    num: int | None = None,
    per_step: PerStep | None = None,
    md: Mapping[str, Any] | None = None,
) -> PlanGenerator:
    """:func:`scan` relative to where the motors are; they return there afterwards."""
    return _inner("rel_scan", detectors, args, num, per_step, md, True)


def inner_product_scan(
    detectors: Sequence[Any],
    num: int,
    *args: Any,
    per_step: PerStep | None = None,
    md: Mapping[str, Any] | None = None,
) -> PlanGenerator:
    """:func:`scan` with ``num`` first, as bluesky spells it.

    ``inner_product_scan([det], 5, m1, 0, 1, m2, 2, 3)`` is ``scan([det], m1, 0, 1, m2, 2, 3,
    num=5)`` recorded under its own plan name.
    """
    return _inner("inner_product_scan", detectors, args, num, per_step, md, False)


def relative_inner_product_scan(
    detectors: Sequence[Any],
    num: int,
    *args: Any,
    per_step: PerStep | None = None,
    md: Mapping[str, Any] | None = None,
) -> PlanGenerator:
    """:func:`rel_scan` with ``num`` first (bluesky's name and argument order)."""
    return _inner("relative_inner_product_scan", detectors, args, num, per_step, md, True)


def log_scan(
    detectors: Sequence[Any],
    motor: Any,
    start: float,
    stop: float,
    num: int,
    *,
    per_step: PerStep | None = None,
    md: Mapping[str, Any] | None = None,
) -> PlanGenerator:
    """Scan one motor through ``num`` positions from ``10**start`` to ``10**stop``.

    The exponents are evenly spaced (``numpy.logspace``, as in bluesky):
    ``log_scan([det], m, 1, 2, 3)`` visits 10, 31.6 and 100.
    """
    return _log("log_scan", detectors, motor, start, stop, num, per_step, md, False)


def rel_log_scan(
    detectors: Sequence[Any],
    motor: Any,
    start: float,
    stop: float,
    num: int,
    *,
    per_step: PerStep | None = None,
    md: Mapping[str, Any] | None = None,
) -> PlanGenerator:
    """:func:`log_scan` of offsets ``10**start .. 10**stop`` from where the motor is.

    The motor returns where it was afterwards.
    """
    return _log("rel_log_scan", detectors, motor, start, stop, num, per_step, md, True)


def _log(
    plan: str,
    detectors: Sequence[Any],
    motor: Any,
    start: float,
    stop: float,
    num: int,
    per_step: PerStep | None,
    md: Mapping[str, Any] | None,
    relative: bool,
) -> PlanGenerator:
    dets = check_detectors(plan, detectors)
    check_movable(plan, "motor", motor)
    for name, exponent in (("start", start), ("stop", stop)):
        if check_number(plan, name, exponent) > _MAX_EXPONENT:
            raise PlanError(
                f"{plan}(): {name} is an exponent of 10 (positions run from 10**start to "
                f"10**stop); 10**{exponent} is beyond any float"
            )
    n = check_num(plan, "num", num)

    def offset(origin: Mapping[Any, float] | None) -> float:
        return 0.0 if origin is None else origin[motor]

    def trajectory(origin: Mapping[Any, float] | None) -> Trajectory:
        return patterns.logspace(motor, start, stop, n, offset(origin))

    def md_of(points: Trajectory, origin: Mapping[Any, float] | None) -> dict[str, Any]:
        pattern_args = {"motor": motor, "start": start, "stop": stop, "num": n}
        if origin is not None:
            pattern_args["offset"] = offset(origin)
        return plan_md(
            plan,
            detectors=dets,
            motors=[motor],
            plan_args={
                "detectors": dets, "num": n, "start": start, "stop": stop, "motor": motor,
                "per_step": per_step,
            },
            num_points=n,
            pattern="logspace",
            pattern_args=pattern_args,
            md=md,
        )  # fmt: skip

    return step_scan(plan, dets, [motor], trajectory, md_of, per_step=per_step, relative=relative)


def _lists(plan: str, args: tuple[Any, ...]) -> list[list[Any]]:
    groups = split_args(plan, args, 2, "motor, positions, ...")
    for group in groups:
        positions = group[1]
        if isinstance(positions, str) or not isinstance(positions, Iterable):
            raise PlanError(
                f"{plan}(): positions of {device_name(group[0])} must be a list of numbers, "
                f"got {positions!r}"
            )
        group[1] = [
            check_number(plan, f"positions of {device_name(group[0])}", p)
            for p in positions  # pyright: ignore[reportUnknownVariableType]
        ]
        if not group[1]:
            raise PlanError(f"{plan}(): positions of {device_name(group[0])} is empty")
    return groups


def _list_plan(
    plan: str,
    detectors: Sequence[Any],
    args: tuple[Any, ...],
    grid: bool,
    snake_axes: bool | Sequence[Any] | None,
    per_step: PerStep | None,
    md: Mapping[str, Any] | None,
    relative: bool,
) -> PlanGenerator:
    dets = check_detectors(plan, detectors)
    groups = _lists(plan, args)
    motors = [g[0] for g in groups]
    check_snake_axes(plan, snake_axes, motors)
    lengths = [len(g[1]) for g in groups]
    if not grid and len(set(lengths)) > 1:
        named = ", ".join(f"{device_name(m)}: {n}" for m, n in zip(motors, lengths, strict=True))
        raise PlanError(f"{plan}(): every list of positions must have the same length ({named})")
    flat = [x for g in groups for x in g]
    num_points = int(np.prod(lengths)) if grid else lengths[0]

    def trajectory(origin: Mapping[Any, float] | None) -> Trajectory:
        if grid:
            return _shift(patterns.outer_list_product(flat, snake_axes), origin)
        return _shift(patterns.inner_list_product(flat), origin)

    def md_of(points: Trajectory, origin: Mapping[Any, float] | None) -> dict[str, Any]:
        shift = {m: (origin or {}).get(m, 0.0) for m in motors}
        absolute = [
            x
            for m, g in zip(motors, groups, strict=True)
            for x in (m, [p + shift[m] for p in g[1]])
        ]
        pattern_args: dict[str, Any] = {"args": absolute}
        extra: dict[str, Any] = {}
        hints: dict[str, Any] = {"dimensions": dimensions(motors, together=True)}
        if grid:
            pattern_args["snake_axes"] = _snake_names(snake_axes, motors)
            extra = {
                "shape": lengths,
                "extents": [[min(g[1]), max(g[1])] for g in groups],
                "snake_axes": repr(snake_axes),  # as bluesky's list_grid_scan records it
            }
            hints = {"gridding": "rectilinear"}  # and one dimension per motor
        return plan_md(
            plan,
            detectors=dets,
            motors=motors,
            plan_args={"detectors": dets, "args": flat, "per_step": per_step}
            | ({"snake_axes": snake_axes} if grid else {}),
            num_points=num_points,
            pattern="outer_list_product" if grid else "inner_list_product",
            pattern_args=pattern_args,
            hints=hints,
            extra=extra,
            md=md,
        )

    return step_scan(plan, dets, motors, trajectory, md_of, per_step=per_step, relative=relative)


def _snake_names(snake_axes: bool | Sequence[Any] | None, motors: Sequence[Any]) -> Any:
    if snake_axes is None or isinstance(snake_axes, bool):
        return bool(snake_axes)
    return [device_name(m) for m in snake_axes]


def list_scan(
    detectors: Sequence[Any],
    *args: Any,
    per_step: PerStep | None = None,
    md: Mapping[str, Any] | None = None,
) -> PlanGenerator:
    """Move motors together through lists of positions: ``list_scan([det], m1, [1, 2, 5])``."""
    return _list_plan("list_scan", detectors, args, False, None, per_step, md, False)


def rel_list_scan(
    detectors: Sequence[Any],
    *args: Any,
    per_step: PerStep | None = None,
    md: Mapping[str, Any] | None = None,
) -> PlanGenerator:
    """:func:`list_scan` of offsets from where the motors are; they return there afterwards."""
    return _list_plan("rel_list_scan", detectors, args, False, None, per_step, md, True)


def list_grid_scan(
    detectors: Sequence[Any],
    *args: Any,
    snake_axes: bool | Sequence[Any] | None = False,
    per_step: PerStep | None = None,
    md: Mapping[str, Any] | None = None,
) -> PlanGenerator:
    """A grid through lists of positions, the first motor slowest.

    ``snake_axes``: True snakes every axis but the first; or the motors that snake.
    """
    return _list_plan("list_grid_scan", detectors, args, True, snake_axes, per_step, md, False)


def rel_list_grid_scan(
    detectors: Sequence[Any],
    *args: Any,
    snake_axes: bool | Sequence[Any] | None = False,
    per_step: PerStep | None = None,
    md: Mapping[str, Any] | None = None,
) -> PlanGenerator:
    """:func:`list_grid_scan` of offsets; the motors return where they were afterwards."""
    return _list_plan("rel_list_grid_scan", detectors, args, True, snake_axes, per_step, md, True)


# -- grids ---------------------------------------------------------------------------------------
def _grid(
    plan: str,
    detectors: Sequence[Any],
    args: tuple[Any, ...],
    snake_axes: bool | Sequence[Any] | None,
    per_step: PerStep | None,
    md: Mapping[str, Any] | None,
    relative: bool,
) -> PlanGenerator:
    dets = check_detectors(plan, detectors)
    groups = split_args(plan, args, 4, "motor, start, stop, num, ...")
    for motor, start, stop, num in groups:
        check_number(plan, f"start of {device_name(motor)}", start)
        check_number(plan, f"stop of {device_name(motor)}", stop)
        check_num(plan, f"num of {device_name(motor)}", num)
    motors = [g[0] for g in groups]
    check_snake_axes(plan, snake_axes, motors)
    flat = [x for g in groups for x in g]
    shape = [int(g[3]) for g in groups]

    def trajectory(origin: Mapping[Any, float] | None) -> Trajectory:
        return _shift(patterns.outer_product(flat, snake_axes), origin)

    def md_of(points: Trajectory, origin: Mapping[Any, float] | None) -> dict[str, Any]:
        offset = {m: (origin or {}).get(m, 0.0) for m in motors}
        absolute = [x for m, s, e, n in groups for x in (m, s + offset[m], e + offset[m], n)]
        return plan_md(
            plan,
            detectors=dets,
            motors=motors,
            plan_args={
                "detectors": dets,
                "args": flat,
                "snake_axes": snake_axes,
                "per_step": per_step,
            },
            num_points=int(np.prod(shape)),
            pattern="outer_product",
            pattern_args={"args": absolute, "snake_axes": _snake_names(snake_axes, motors)},
            hints={"gridding": "rectilinear"},
            extra={
                "shape": shape,
                "extents": [[s + offset[m], e + offset[m]] for m, s, e, _ in groups],
                "snaking": [bool(x) for x in patterns._snaking(motors, snake_axes)],  # pyright: ignore[reportPrivateUsage]
            },
            md=md,
        )

    return step_scan(plan, dets, motors, trajectory, md_of, per_step=per_step, relative=relative)


def grid_scan(
    detectors: Sequence[Any],
    *args: Any,
    snake_axes: bool | Sequence[Any] | None = None,
    per_step: PerStep | None = None,
    md: Mapping[str, Any] | None = None,
) -> PlanGenerator:
    """A grid: ``motor1, start1, stop1, num1, motor2, ...``, the first motor slowest.

    Args:
        detectors: devices to trigger and read at each point.
        *args: ``motor, start, stop, num`` per axis.
        snake_axes: True snakes every axis but the first; or the motors that snake
            (reverse direction at each step of a slower axis).
        per_step: a plan ``per_step(detectors, point, pos_cache)`` replacing the step.
        md: metadata merged into the Start document.
    """
    return _grid("grid_scan", detectors, args, snake_axes, per_step, md, False)


def rel_grid_scan(
    detectors: Sequence[Any],
    *args: Any,
    snake_axes: bool | Sequence[Any] | None = None,
    per_step: PerStep | None = None,
    md: Mapping[str, Any] | None = None,
) -> PlanGenerator:
    """:func:`grid_scan` relative to where the motors are; they return there afterwards."""
    return _grid("rel_grid_scan", detectors, args, snake_axes, per_step, md, True)


# -- any trajectory ----------------------------------------------------------------------
def _trajectory_of(plan: str, cycler: Any) -> Trajectory:
    """A cycler, a scanspec Spec, or an iterable of ``{motor: position}`` as a list of points."""
    frames = getattr(cycler, "frames", None)
    if callable(frames) and hasattr(cycler, "axes"):  # a scanspec Spec
        midpoints = cast(dict[Any, Any], cast(Any, frames()).midpoints)
        columns = {axis: [float(p) for p in values] for axis, values in midpoints.items()}
        return patterns._zip(columns)  # pyright: ignore[reportPrivateUsage]
    if isinstance(cycler, str) or not isinstance(cycler, Iterable):
        raise PlanError(
            f"{plan}(): the trajectory must be a cycler, a scanspec Spec or a list of "
            f"{{motor: position}} points, got {cycler!r}"
        )
    points: Trajectory = []
    keys: list[Any] | None = None
    for i, item in enumerate(cast(Iterable[Any], cycler)):
        if not isinstance(item, Mapping):
            raise PlanError(f"{plan}(): point {i} of the trajectory is {item!r}, not a mapping")
        point = cast(Mapping[Any, Any], item)
        these = list(point)
        if keys is None:
            keys = these
        elif {id(k) for k in these} != {id(k) for k in keys}:
            raise PlanError(
                f"{plan}(): point {i} moves {[device_name(k) for k in these]}, not the same "
                "motors as point 0"
            )
        points.append(
            {m: check_number(plan, f"point {i} of {device_name(m)}", p) for m, p in point.items()}
        )
    if not points:
        raise PlanError(f"{plan}(): the trajectory has no points")
    return points


def scan_nd(
    detectors: Sequence[Any],
    cycler: Any,
    *,
    per_step: PerStep | None = None,
    md: Mapping[str, Any] | None = None,
) -> PlanGenerator:
    """Visit any trajectory: a cycler, a scanspec ``Spec``, or a list of ``{motor: position}``.

    The trajectory is recorded point by point (``plan_pattern="points"``).
    """
    dets = check_detectors("scan_nd", detectors)
    points = _trajectory_of("scan_nd", cycler)
    motors = list(points[0])
    for i, motor in enumerate(motors):
        check_movable("scan_nd", f"motor {i + 1}", motor)

    def md_of(trajectory: Trajectory, origin: Mapping[Any, float] | None) -> dict[str, Any]:
        return plan_md(
            "scan_nd",
            detectors=dets,
            motors=motors,
            plan_args={"detectors": dets, "cycler": repr(cycler), "per_step": per_step},
            num_points=len(trajectory),
            pattern="points",
            pattern_args={"points": trajectory},
            md=md,
        )

    return step_scan("scan_nd", dets, motors, lambda _origin: points, md_of, per_step=per_step)
