"""bluesky's own plans run on acq's engine and give the documents acq's plans give.

Each case runs a plan from ``bluesky.plans`` (wrapped by ``bluesky.preprocessors``
where stated) and acq's plan of the same name with the same arguments on the same
simulated beamline, then compares the documents key by key. The only keys allowed to
differ are listed in ``ACQ_OWN``: where each project names its pattern module and how
it refers to devices in recorded arguments.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import bluesky.plans as bp
import bluesky.preprocessors as bluesky_pp
import pytest
from acq.devices.sim import SimBeamline, sim_beamline
from acq.plans import (
    adaptive_scan,
    count,
    grid_scan,
    inner_product_scan,
    list_scan,
    log_scan,
    rel_log_scan,
    rel_scan,
    scan,
    spiral_square,
)
from acq.plans import preprocessors as bpp
from support import DocChecker

from acq import RunEngine

# Start keys where acq deliberately differs: bluesky records devices by repr and points
# at its own pattern module; acq records motors by name and at acq.plans.patterns;
# plan_type (inferred) says async_generator for acq's plans, generator for bluesky's.
ACQ_OWN = {"uid", "time", "scan_id", "plan_pattern_module", "plan_pattern_args", "plan_type"}
# Per-document keys that are unique per run by definition.
UNIQUE = {"uid", "time", "run_start", "descriptor", "timestamps"}


async def _documents(RE: RunEngine, plan: Any) -> list[tuple[str, dict[str, Any]]]:
    checker = DocChecker()
    docs: list[tuple[str, dict[str, Any]]] = []
    await RE(plan, checker, lambda name, doc: docs.append((name, doc)))
    checker.assert_clean()
    return docs


def _stripped(doc: dict[str, Any], drop: set[str]) -> dict[str, Any]:
    # compared as JSON, as every consumer sees them: a tuple (bluesky's plans write some
    # of their hints as tuples) and a list of the same items are the same document
    out = json.loads(json.dumps({k: v for k, v in doc.items() if k not in drop}))
    if "configuration" in out:  # configuration readings carry timestamps
        out["configuration"] = {
            dev: {k: v for k, v in conf.items() if k != "timestamps"}
            for dev, conf in out["configuration"].items()
        }
    return out


def _same_call(ours: dict[str, Any], theirs: dict[str, Any]) -> None:
    """Bring plan_args to one spelling where the two record the same call differently.

    bluesky's grid_scan appends snake_axes to ``args`` (its older calling form); acq
    keeps it as its own keyword. acq records every argument of the call; bluesky leaves
    out adaptive_scan's target_field and count's per_shot.
    """
    if "snake_axes" in ours and "args" in theirs and len(theirs["args"]) > len(ours["args"]):
        ours["args"] = [*ours["args"], ours.pop("snake_axes")]
    for key in ("target_field", "per_shot"):
        if key in ours and key not in theirs:
            ours.pop(key)


def _assert_equivalent(
    ours: list[tuple[str, dict[str, Any]]], theirs: list[tuple[str, dict[str, Any]]]
) -> None:
    _same_call(ours[0][1].get("plan_args", {}), theirs[0][1].get("plan_args", {}))
    assert [n for n, _ in ours] == [n for n, _ in theirs]
    for (name, mine), (_, other) in zip(ours, theirs, strict=True):
        drop = UNIQUE | (ACQ_OWN if name == "start" else set())
        a, b = _stripped(mine, drop), _stripped(other, drop)
        assert a.keys() == b.keys(), f"{name}: keys differ: {a.keys() ^ b.keys()}"
        if name == "start" and "motors" in a:  # bluesky's come from a cycler's keys: a set
            assert sorted(a.pop("motors")) == sorted(b.pop("motors"))
        for key in a:
            assert a[key] == b[key], f"{name}[{key!r}]: acq {a[key]!r} != bluesky {b[key]!r}"
        if name == "start" and "plan_pattern" in mine:  # same trajectory, named differently
            assert mine["plan_pattern"] == other["plan_pattern"]


Case = tuple[str, Callable[[SimBeamline], Any], Callable[[SimBeamline], Any]]
CASES: list[Case] = [
    (
        "scan",
        lambda b: scan([b.det], b.x, -2, 2, num=9),
        lambda b: bp.scan([b.det], b.x, -2, 2, num=9),
    ),
    (
        "scan with two motors, baseline",
        lambda b: bpp.baseline_wrapper(scan([b.det2d], b.x, -1, 1, b.y, 0, 2, num=5), [b.shutter]),
        lambda b: bluesky_pp.baseline_wrapper(
            bp.scan([b.det2d], b.x, -1, 1, b.y, 0, 2, num=5), [b.shutter]
        ),
    ),
    (
        "grid_scan snaking, inject_md",
        lambda b: bpp.inject_md_wrapper(
            grid_scan([b.det2d], b.x, -1, 1, 3, b.y, -1, 1, 4, snake_axes=True), {"sample": "Si"}
        ),
        lambda b: bluesky_pp.inject_md_wrapper(
            bp.grid_scan([b.det2d], b.x, -1, 1, 3, b.y, -1, 1, 4, snake_axes=True),
            {"sample": "Si"},
        ),
    ),
    (
        "count",
        lambda b: count([b.det, b.edge], 3),
        lambda b: bp.count([b.det, b.edge], 3),
    ),
    (
        "count with a delay, stage_wrapper",
        lambda b: bpp.stage_wrapper(count([b.det], 2, 0.001), [b.x]),
        lambda b: bluesky_pp.stage_wrapper(bp.count([b.det], 2, 0.001), [b.x]),
    ),
    (
        "inner_product_scan",
        lambda b: inner_product_scan([b.det2d], 3, b.x, -1, 1, b.y, 1, 0),
        lambda b: bp.inner_product_scan([b.det2d], 3, b.x, -1, 1, b.y, 1, 0),
    ),
    (
        "log_scan",
        lambda b: log_scan([b.det], b.x, -1, 0.5, 4),
        lambda b: bp.log_scan([b.det], b.x, -1, 0.5, 4),
    ),
    (
        "rel_log_scan",
        lambda b: rel_log_scan([b.det], b.x, -1, 0.5, 4),
        lambda b: bp.rel_log_scan([b.det], b.x, -1, 0.5, 4),
    ),
    (
        "list_scan",
        lambda b: list_scan([b.det2d], b.x, [1, 0, 2], b.y, [0, 1, 1]),
        # bluesky annotates *args as (motor, positions) pairs, though it takes them flat
        lambda b: bp.list_scan([b.det2d], b.x, [1, 0, 2], b.y, [0, 1, 1]),  # pyright: ignore[reportArgumentType]
    ),
    (
        "spiral_square",
        lambda b: spiral_square([b.det2d], b.x, b.y, 0, 0, 2, 2, 3, 3),
        lambda b: bp.spiral_square([b.det2d], b.x, b.y, 0, 0, 2, 2, 3, 3),
    ),
    (
        "adaptive_scan",
        lambda b: adaptive_scan([b.det], "det", b.x, -3, 3, 0.1, 1.0, 0.05, True),
        lambda b: bp.adaptive_scan([b.det], "det", b.x, -3, 3, 0.1, 1.0, 0.05, True),
    ),
    (
        "rel_scan with relative_set and reset_positions",
        lambda b: rel_scan([b.det], b.x, -1, 1, num=5),
        lambda b: bluesky_pp.reset_positions_wrapper(
            bluesky_pp.relative_set_wrapper(bp.scan([b.det], b.x, -1, 1, num=5))
        ),
    ),
]


@pytest.mark.parametrize(("label", "ours", "theirs"), CASES, ids=[c[0] for c in CASES])
async def test_bluesky_plan_on_acq_gives_acq_plans_documents(
    label: str, ours: Callable[[SimBeamline], Any], theirs: Callable[[SimBeamline], Any]
) -> None:
    beamline = await sim_beamline(instant=True)
    RE = RunEngine()
    runs = []
    for make in (ours, theirs):
        await beamline.x.set(0.5)
        runs.append(await _documents(RE, make(beamline)))
    mine, other = runs
    if label.startswith("rel_scan"):  # bluesky's wrappers keep the absolute plan's name
        assert await beamline.x.user_readback.get_value() == 0.5
        assert mine[0][1]["plan_name"] == "rel_scan"
        for doc in (mine[0][1], other[0][1]):
            doc.pop("plan_name")
            doc.pop("plan_args")
            doc.pop("plan_pattern_args", None)
    _assert_equivalent(mine, other)
