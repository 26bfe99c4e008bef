"""acq.callbacks."""

from __future__ import annotations

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
    read_jsonl,
    read_msgpack,
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
]
