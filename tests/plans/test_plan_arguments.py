"""Bad arguments fail with acq.PlanError naming the argument, before anything happens.

"Before anything happens": no document reaches a subscriber, no device is staged,
triggered or set, and the motors are where they were.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from typing import Any

import pytest
from acq.devices.sim import Motor, SimBeamline
from acq.plans import (
    count,
    grid_scan,
    list_grid_scan,
    list_scan,
    log_scan,
    rel_grid_scan,
    rel_list_grid_scan,
    rel_list_scan,
    rel_log_scan,
    rel_scan,
    scan,
    scan_nd,
)

from acq import PlanError, RunEngine, State

X0, Y0 = 1.0, -1.0
NAN, INF = math.nan, math.inf


class SetOnly:
    """Movable but not readable: no read(), no describe()."""

    name = "set_only"

    def set(self, value: float) -> None:
        raise AssertionError("a plan with bad arguments set a device")


BAD: dict[str, tuple[Callable[[SimBeamline], Any], str]] = {
    # count
    "count-num-zero": (lambda bl: count([bl.det], 0), r"count\(\): num must be .*>= 1, got 0"),
    "count-num-negative": (lambda bl: count([bl.det], -3), r"num .*got -3"),
    "count-num-float": (lambda bl: count([bl.det], 2.5), r"num must be an integer.*2\.5"),  # pyright: ignore[reportArgumentType]
    "count-num-str": (lambda bl: count([bl.det], "3"), r"num must be an integer.*'3'"),  # pyright: ignore[reportArgumentType]
    "count-num-bool": (lambda bl: count([bl.det], True), r"num must be an integer.*True"),
    "count-single-device": (lambda bl: count(bl.det), r"detectors must be a list.*det"),  # pyright: ignore[reportArgumentType]
    "count-not-readable": (
        lambda bl: count([bl.det, SetOnly()]),
        r"detectors\[1\] \(set_only\) is not readable",
    ),
    "count-string-detectors": (lambda bl: count("det"), r"detectors must be a list"),
    "count-delay-negative": (lambda bl: count([bl.det], 3, delay=-1), r"delay"),
    "count-delay-length": (lambda bl: count([bl.det], 3, delay=[0.1]), r"delay has 1 value"),
    "count-delay-list-forever": (lambda bl: count([bl.det], None, delay=[0.1]), r"delay"),
    # scan and its relatives
    "scan-num-zero": (lambda bl: scan([bl.det], bl.x, 0, 1, num=0), r"scan\(\): num"),
    "scan-num-float": (lambda bl: scan([bl.det], bl.x, 0, 1, num=2.5), r"num .*2\.5"),  # pyright: ignore[reportArgumentType]
    "scan-num-missing": (lambda bl: scan([bl.det], bl.x, 0, 1), r"num"),
    "scan-single-device": (lambda bl: scan(bl.det, bl.x, 0, 1, num=3), r"detectors"),  # pyright: ignore[reportArgumentType]
    "scan-not-readable": (
        lambda bl: scan([SetOnly()], bl.x, 0, 1, num=3),
        r"detectors\[0\] \(set_only\) is not readable",
    ),
    "scan-detector-as-motor": (
        lambda bl: scan([bl.det], bl.det, 0, 1, num=3),
        r"motor 1 \(det\) is not movable",
    ),
    "scan-second-motor-not-movable": (
        lambda bl: scan([bl.det], bl.x, 0, 1, bl.edge, 0, 1, num=3),
        r"motor 2 \(edge\) is not movable",
    ),
    "scan-nan-start": (
        lambda bl: scan([bl.det], bl.x, NAN, 1, num=3),
        r"start of x must be a finite number, got nan",
    ),
    "scan-inf-stop": (lambda bl: scan([bl.det], bl.x, 0, INF, num=3), r"stop of x .*inf"),
    "scan-str-start": (lambda bl: scan([bl.det], bl.x, "0", 1, num=3), r"start of x"),
    "scan-args-not-in-threes": (
        lambda bl: scan([bl.det], bl.x, 0, num=3),
        r"groups of 3 \(motor, start, stop",
    ),
    "scan-motor-twice": (
        lambda bl: scan([bl.det], bl.x, 0, 1, bl.x, 1, 2, num=3),
        r"more than once",
    ),
    "scan-outside-limits": (
        lambda bl: scan([bl.det], bl.x, 0, 11, num=3),
        r"scan\(\): x cannot go to 11",
    ),
    "scan-second-motor-outside-limits": (
        lambda bl: scan([bl.det], bl.x, 0, 1, bl.y, -11, 0, num=3),
        r"y cannot go to -11",
    ),
    "rel_scan-outside-limits": (
        lambda bl: rel_scan([bl.det], bl.x, 0, 9.5, num=2),  # from 1: up to 10.5
        r"rel_scan\(\): x cannot go to 10\.5",
    ),
    "rel_scan-not-movable": (lambda bl: rel_scan([bl.det], bl.det, 0, 1, num=2), r"motor 1"),
    "log_scan-start": (
        lambda bl: log_scan([bl.det], bl.x, "1", 2, 3),  # pyright: ignore[reportArgumentType]
        r"start must be a finite",
    ),
    "log_scan-not-movable": (lambda bl: log_scan([bl.det], bl.det, 0, 1, 3), r"motor \(det\)"),
    "log_scan-num": (lambda bl: log_scan([bl.det], bl.x, 1, 2, 0), r"num"),
    "log_scan-overflow": (lambda bl: log_scan([bl.det], bl.x, 0, 400, 3), r"10\*\*400 is beyond"),
    "log_scan-outside-limits": (  # exponents: 10**1 .. 10**2, as numpy.logspace
        lambda bl: log_scan([bl.det], bl.x, 1, 2, 3),
        r"x cannot go to 100",
    ),
    "rel_log_scan-outside-limits": (
        lambda bl: rel_log_scan([bl.det], bl.x, 0, 1, 3),  # from 1: 1 + 10**0 .. 1 + 10**1
        r"x cannot go to 11",
    ),
    # lists
    "list_scan-lengths": (
        lambda bl: list_scan([bl.det], bl.x, [1, 2, 3], bl.y, [1, 2]),
        r"same length \(x: 3, y: 2\)",
    ),
    "rel_list_scan-lengths": (
        lambda bl: rel_list_scan([bl.det], bl.x, [1], bl.y, [1, 2]),
        r"same length \(x: 1, y: 2\)",
    ),
    "list_scan-not-a-list": (lambda bl: list_scan([bl.det], bl.x, 5), r"positions of x"),
    "list_scan-empty": (lambda bl: list_scan([bl.det], bl.x, []), r"positions of x is empty"),
    "list_scan-nan": (lambda bl: list_scan([bl.det], bl.x, [1, NAN]), r"positions of x"),
    "list_scan-detector-as-motor": (
        lambda bl: list_scan([bl.det], bl.det, [1, 2]),
        r"motor 1 \(det\) is not movable",
    ),
    "list_scan-outside-limits": (
        lambda bl: list_scan([bl.det], bl.x, [1, 20]),
        r"x cannot go to 20",
    ),
    "rel_list_scan-outside-limits": (
        lambda bl: rel_list_scan([bl.det], bl.y, [0, -9.5]),  # from -1: down to -10.5
        r"y cannot go to -10\.5",
    ),
    "list_grid_scan-outside-limits": (
        lambda bl: list_grid_scan([bl.det], bl.x, [0, 1], bl.y, [0, 10.5]),
        r"y cannot go to 10\.5",
    ),
    "list_grid_scan-snake-slowest": (
        lambda bl: list_grid_scan([bl.det], bl.x, [0, 1], bl.y, [0, 1], snake_axes=[bl.x]),
        r"slowest.*x",
    ),
    "rel_list_grid_scan-not-movable": (
        lambda bl: rel_list_grid_scan([bl.det], bl.x, [0, 1], bl.det, [0, 1]),
        r"motor 2 \(det\) is not movable",
    ),
    # grids
    "grid_scan-num-zero": (
        lambda bl: grid_scan([bl.det], bl.x, 0, 1, 0, bl.y, 0, 1, 2),
        r"num of x must be an integer >= 1",
    ),
    "grid_scan-num-float": (
        lambda bl: grid_scan([bl.det], bl.x, 0, 1, 2, bl.y, 0, 1, 1.5),
        r"num of y",
    ),
    "grid_scan-args-not-in-fours": (
        lambda bl: grid_scan([bl.det], bl.x, 0, 1, 2, bl.y, 0, 1),
        r"groups of 4",
    ),
    "grid_scan-snake-slowest": (
        lambda bl: grid_scan([bl.det], bl.x, 0, 1, 2, bl.y, 0, 1, 2, snake_axes=[bl.x]),
        r"first \(slowest\) motor x cannot snake",
    ),
    "grid_scan-snake-not-a-motor": (
        lambda bl: grid_scan([bl.det], bl.x, 0, 1, 2, bl.y, 0, 1, 2, snake_axes=[bl.det]),
        r"snake_axes names det",
    ),
    "grid_scan-nan-stop": (
        lambda bl: grid_scan([bl.det], bl.x, 0, NAN, 2, bl.y, 0, 1, 2),
        r"stop of x",
    ),
    "grid_scan-outside-limits": (
        lambda bl: grid_scan([bl.det], bl.x, 0, 1, 2, bl.y, 0, 12, 2),
        r"grid_scan\(\): y cannot go to 12",
    ),
    "rel_grid_scan-outside-limits": (
        lambda bl: rel_grid_scan([bl.det], bl.x, -12, 0, 2, bl.y, 0, 1, 2),  # x down to -11
        r"rel_grid_scan\(\): x cannot go to -11",
    ),
    "rel_grid_scan-single-device": (
        lambda bl: rel_grid_scan(bl.det, bl.x, 0, 1, 2, bl.y, 0, 1, 2),  # pyright: ignore[reportArgumentType]
        r"detectors must be a list",
    ),
    # any trajectory
    "scan_nd-empty": (lambda bl: scan_nd([bl.det], []), r"no points"),
    "scan_nd-string": (lambda bl: scan_nd([bl.det], "x"), r"trajectory must be"),
    "scan_nd-not-a-mapping": (lambda bl: scan_nd([bl.det], [1, 2]), r"point 0 .*not a mapping"),
    "scan_nd-other-motors": (
        lambda bl: scan_nd([bl.det], [{bl.x: 1}, {bl.y: 2}]),
        r"point 1 moves \['y'\]",
    ),
    "scan_nd-detector-as-motor": (
        lambda bl: scan_nd([bl.det], [{bl.det: 1}]),
        r"motor 1 \(det\) is not movable",
    ),
    "scan_nd-nan": (lambda bl: scan_nd([bl.det], [{bl.x: NAN}]), r"point 0 of x"),
    "scan_nd-outside-limits": (
        lambda bl: scan_nd([bl.det], [{bl.x: 1}, {bl.x: 11}]),
        r"scan_nd\(\): x cannot go to 11",
    ),
    "scan_nd-single-device": (lambda bl: scan_nd(bl.det, [{bl.x: 1}]), r"detectors"),  # pyright: ignore[reportArgumentType]
}


@pytest.fixture(autouse=True)
async def start_positions(bl: SimBeamline) -> None:
    await asyncio.gather(bl.x.set(X0), bl.y.set(Y0))


async def positions(bl: SimBeamline, readback: Callable[[Motor], Any]) -> tuple[float, float]:
    return await readback(bl.x), await readback(bl.y)


@pytest.mark.parametrize(("make", "match"), BAD.values(), ids=list(BAD))
async def test_bad_argument_fails_before_anything_happens(
    make: Callable[[SimBeamline], Any],
    match: str,
    bl: SimBeamline,
    RE: RunEngine,
    checker: Any,
    recorder: Any,
    readback: Any,
) -> None:
    with pytest.raises(PlanError, match=match):
        await recorder(make(bl))
    assert checker.docs == []
    assert await positions(bl, readback) == (X0, Y0)
    acted = [m.command for m in recorder.msgs if m.command in ("stage", "trigger", "open_run")]
    assert acted == []
    assert RE.state is State.IDLE
    await RE(count([bl.det]))  # the engine is fine afterwards
    assert checker.names()[0] == "start"


@pytest.mark.parametrize(("make", "match"), BAD.values(), ids=list(BAD))
async def test_bad_argument_sends_no_set(
    make: Callable[[SimBeamline], Any], match: str, bl: SimBeamline, recorder: Any
) -> None:
    """Not even a move to where a motor already is (a real motor may still move then)."""
    with pytest.raises(PlanError, match=match):
        await recorder(make(bl))
    looked = {"await", "locate", "read"}  # where the motors are, what their limits allow
    assert [m for m in recorder.msgs if m.command not in looked] == []
