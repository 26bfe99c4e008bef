"""Trajectories: the points a plan visits, as functions of its arguments.

Every built-in plan with a fixed trajectory records ``plan_pattern`` (a function name
here), ``plan_pattern_module`` (``"acq.plans.patterns"``) and ``plan_pattern_args`` in its
Start document, with motors given by name. Calling the function on those arguments gives
the trajectory again, keyed by motor name (reference/001)::

    module = importlib.import_module(start["plan_pattern_module"])
    points = getattr(module, start["plan_pattern"])(**start["plan_pattern_args"])

A trajectory is a list of points; a point maps each motor (or its name) to a position.
The functions treat motors as opaque keys, so plans call them with the motor objects.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Sequence
from typing import Any, TypeAlias, cast

import numpy as np

__all__ = [
    "Trajectory",
    "inner_list_product",
    "inner_product",
    "logspace",
    "outer_list_product",
    "outer_product",
    "points",
    "spiral",
    "spiral_fermat",
    "spiral_square",
]

Trajectory: TypeAlias = list[dict[Any, float]]
"""The points of a plan, in order; each maps a motor (or its name) to a position."""


def _floats(values: Any) -> list[float]:
    return [float(v) for v in cast(Iterable[Any], values)]


def _zip(columns: dict[Any, list[float]]) -> Trajectory:
    keys = list(columns)
    return [dict(zip(keys, row, strict=True)) for row in zip(*columns.values(), strict=True)]


def inner_product(num: int, args: Sequence[Any]) -> Trajectory:
    """All motors together, each linearly from start to stop in ``num`` points.

    Args:
        num: number of points.
        args: ``motor1, start1, stop1, ..., motorN, startN, stopN``.
    """
    return _zip(
        {
            args[i]: _floats(np.linspace(args[i + 1], args[i + 2], num))
            for i in range(0, len(args), 3)
        }
    )


def logspace(motor: Any, start: float, stop: float, num: int, offset: float = 0.0) -> Trajectory:
    """One motor through ``offset + 10**e`` for ``num`` exponents ``e`` from start to stop.

    As ``numpy.logspace`` (what bluesky's ``log_scan`` records): ``logspace(m, 1, 2, 3)``
    visits 10, 31.6 and 100. ``offset`` is where a relative log scan started.
    """
    return [{motor: float(p) + offset} for p in np.logspace(start, stop, num)]


def inner_list_product(args: Sequence[Any]) -> Trajectory:
    """All motors together through lists of positions of one length.

    Args:
        args: ``motor1, positions1, ..., motorN, positionsN``.
    """
    return _zip({args[i]: _floats(args[i + 1]) for i in range(0, len(args), 2)})


def _snaking(keys: Sequence[Any], snake_axes: bool | Sequence[Any] | None) -> list[bool]:
    """Which axes snake: never the first (slowest); True means all the others."""
    if snake_axes is True:
        return [False] + [True] * (len(keys) - 1)
    chosen = list(snake_axes or [])
    return [i > 0 and any(k is c or k == c for c in chosen) for i, k in enumerate(keys)]


def outer_list_product(
    args: Sequence[Any], snake_axes: bool | Sequence[Any] | None = None
) -> Trajectory:
    """A grid through lists of positions, the first motor slowest.

    Args:
        args: ``motor1, positions1, ..., motorN, positionsN``.
        snake_axes: True to snake every axis but the slowest, or the motors (or
            names) that snake: such an axis reverses direction each time an axis
            outside it steps, so the motors never fly back.
    """
    keys = [args[i] for i in range(0, len(args), 2)]
    lists = [_floats(args[i + 1]) for i in range(0, len(args), 2)]
    snakes = _snaking(keys, snake_axes)
    trajectory: Trajectory = [{}]
    for key, positions, snake in zip(keys, lists, snakes, strict=True):
        grown: Trajectory = []
        for row, point in enumerate(trajectory):
            ordered = positions[::-1] if snake and row % 2 else positions
            grown += [{**point, key: p} for p in ordered]
        trajectory = grown
    return trajectory


def outer_product(
    args: Sequence[Any], snake_axes: bool | Sequence[Any] | None = None
) -> Trajectory:
    """A grid, the first motor slowest.

    Args:
        args: ``motor1, start1, stop1, num1, ..., motorN, startN, stopN, numN``.
        snake_axes: as for :func:`outer_list_product`.
    """
    lists: list[Any] = []
    for i in range(0, len(args), 4):
        lists += [args[i], _floats(np.linspace(args[i + 1], args[i + 2], int(args[i + 3])))]
    return outer_list_product(lists, snake_axes)


def points(points: Sequence[dict[Hashable, float]]) -> Trajectory:
    """An explicit trajectory (what ``scan_nd`` records): the points themselves."""
    return [{k: float(v) for k, v in p.items()} for p in points]


def _in_box(
    x_motor: Any,
    y_motor: Any,
    centre: tuple[float, float],
    size: tuple[float, float],
    aspect: float,
    tilt: float,
    polar: Iterable[tuple[float, float]],
) -> Trajectory:
    """The points ``(radius, angle)`` of ``polar`` that fall inside the (tilted) box.

    ``aspect`` stretches y (elliptic rings); the box is ``size`` wide around ``centre``.
    """
    half_x, half_y = size[0] / 2, size[1] / (2 * aspect)
    tilt_tan = math.tan(tilt + math.pi / 2)
    points: Trajectory = []
    for radius, angle in polar:
        x, y = radius * math.cos(angle), radius * math.sin(angle)
        if abs(x - y / tilt_tan) <= half_x and abs(y) <= half_y:
            points.append({x_motor: centre[0] + x, y_motor: centre[1] + y * aspect})
    return points


def _reach(x_range: float, y_range: float, aspect: float) -> float:
    return math.hypot(x_range / 2, y_range / (2 * aspect))


def spiral(
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
) -> Trajectory:
    """Rings of growing radius ``dr, 2 dr, ...`` with ``nth`` more points per ring.

    Points outside the (tilted) ``x_range`` x ``y_range`` box centred on the start are
    left out; ``dr_y`` makes the rings elliptic.
    """
    aspect = 1.0 if dr_y is None else dr_y / dr
    rings = 1 + int(_reach(x_range, y_range, aspect) / dr)
    polar = (
        (ring * dr, 2 * math.pi * k / (ring * nth))
        for ring in range(1, rings + 2)
        for k in range(int(ring * nth))
    )
    return _in_box(x_motor, y_motor, (x_start, y_start), (x_range, y_range), aspect, tilt, polar)


_GOLDEN_ANGLE = math.radians(137.508)


def spiral_fermat(
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
) -> Trajectory:
    """Fermat's spiral: point ``i`` at radius ``sqrt(i) dr / factor``, golden angle apart.

    The points cover the box evenly, which suits ptychography.
    """
    aspect = 1.0 if dr_y is None else dr_y / dr
    count = int((1.5 * _reach(x_range, y_range, aspect) / (dr / factor)) ** 2)
    polar = ((math.sqrt(i) * dr / factor, _GOLDEN_ANGLE * i) for i in range(1, count))
    return _in_box(x_motor, y_motor, (x_start, y_start), (x_range, y_range), aspect, tilt, polar)


def spiral_square(
    x_motor: Any,
    y_motor: Any,
    x_center: float,
    y_center: float,
    x_range: float,
    y_range: float,
    x_num: int,
    y_num: int,
) -> Trajectory:
    """Every point of an ``x_num`` x ``y_num`` grid, walked as a square spiral from the centre.

    The walk goes right 1, down 1, left 2, up 2, right 3, ... (+x first, then -y, as
    bluesky's ``spiral_square_pattern``) and keeps the grid's points in the order it
    meets them. With an even count the walk starts left of and above the centre.
    """
    dx = x_range / (x_num - 1) if x_num > 1 else 0.0
    dy = y_range / (y_num - 1) if y_num > 1 else 0.0
    # grid indices relative to the centre; even counts put the centre between points
    i, j = (x_num - 1) // 2, y_num // 2
    points: Trajectory = []

    def visit(a: int, b: int) -> None:
        if 0 <= a < x_num and 0 <= b < y_num:
            points.append(
                {
                    x_motor: x_center + (a - (x_num - 1) / 2) * dx,
                    y_motor: y_center + (b - (y_num - 1) / 2) * dy,
                }
            )

    visit(i, j)
    leg, direction = 1, 0
    moves = ((1, 0), (0, -1), (-1, 0), (0, 1))
    while len(points) < x_num * y_num:
        for _ in range(2):
            step_x, step_y = moves[direction % 4]
            for _ in range(leg):
                i, j = i + step_x, j + step_y
                visit(i, j)
            direction += 1
        leg += 1
    return points
