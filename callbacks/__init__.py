"""acq.callbacks.

Each name loads its module on first use (PEP 562): the plots pull in bokeh and tornado
(~0.5 s), which ``acq --help``, ``acq runs`` and a table-only script never need.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from acq._lazy import lazy_names

if TYPE_CHECKING:
    from ._best_effort import BestEffort
    from ._grid import LiveGrid
    from ._live_figure import LiveFigure
    from ._peaks import GaussianFit, PeakStatistics, PeakStats, fit_gaussian, peak_stats
    from ._plots import LivePlot, LiveScatter
    from ._progress import MoveProgress, ProgressBar, watch_progress
    from ._serializers import (
        DocumentFileWriter,
        JSONLinesWriter,
        MsgpackWriter,
        from_msgpack,
        read_jsonl,
        read_msgpack,
        to_msgpack,
    )
    from ._table import LiveTable

__all__: list[str] = [
    "LivePlot",
    "LiveGrid",
    "LiveScatter",
    "LiveFigure",
    "BestEffort",
    # table, peak statistics, progress
    "LiveTable",
    "PeakStats",
    "PeakStatistics",
    "GaussianFit",
    "peak_stats",
    "fit_gaussian",
    "ProgressBar",
    "MoveProgress",
    "watch_progress",
    # document files
    "DocumentFileWriter",
    "JSONLinesWriter",
    "MsgpackWriter",
    "read_jsonl",
    "read_msgpack",
    "to_msgpack",
    "from_msgpack",
]

_MODULE_OF: dict[str, str] = {
    "BestEffort": "_best_effort",
    "LiveGrid": "_grid",
    "LiveFigure": "_live_figure",
    "GaussianFit": "_peaks",
    "PeakStatistics": "_peaks",
    "PeakStats": "_peaks",
    "fit_gaussian": "_peaks",
    "peak_stats": "_peaks",
    "LivePlot": "_plots",
    "LiveScatter": "_plots",
    "MoveProgress": "_progress",
    "ProgressBar": "_progress",
    "watch_progress": "_progress",
    "DocumentFileWriter": "_serializers",
    "JSONLinesWriter": "_serializers",
    "MsgpackWriter": "_serializers",
    "read_jsonl": "_serializers",
    "read_msgpack": "_serializers",
    "to_msgpack": "_serializers",
    "from_msgpack": "_serializers",
    "LiveTable": "_table",
}


__getattr__, __dir__ = lazy_names(__name__, _MODULE_OF)
