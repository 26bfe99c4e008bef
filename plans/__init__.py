"""acq.plans: the built-in plans, their stubs and preprocessors.

Plans are functions that check their arguments (a bad one raises
:class:`acq.PlanError` naming it, before anything moves) and return an async generator
of messages for ``RE(...)``::

    from acq.plans import scan
    await RE(scan([det], motor, -1, 1, num=11))

``acq.plans.stubs`` has one small plan per message and the building blocks (mv,
trigger_and_read, ...); ``acq.plans.preprocessors`` the wrappers (baseline,
relative_set, finalize, ...); ``acq.plans.patterns`` the trajectories recorded in the
Start documents.
"""

from __future__ import annotations

from . import patterns, preprocessors, stubs, tools
from ._special import (
    adaptive_scan,
    fly,
    ramp_plan,
    rel_adaptive_scan,
    rel_spiral,
    rel_spiral_fermat,
    rel_spiral_square,
    spiral,
    spiral_fermat,
    spiral_square,
    tune_centroid,
)
from ._step import (
    count,
    grid_scan,
    inner_product_scan,
    list_grid_scan,
    list_scan,
    log_scan,
    rel_grid_scan,
    rel_list_grid_scan,
    rel_list_scan,
    rel_log_scan,
    rel_scan,
    relative_inner_product_scan,
    scan,
    scan_nd,
    step_scan,
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
    "count",
    "grid_scan",
    "inner_product_scan",
    "list_grid_scan",
    "list_scan",
    "log_scan",
    "patterns",
    "preprocessors",
    "rel_grid_scan",
    "rel_list_grid_scan",
    "rel_list_scan",
    "rel_log_scan",
    "rel_scan",
    "relative_inner_product_scan",
    "scan",
    "scan_nd",
    "step_scan",
    "stubs",
    "tools",
]
