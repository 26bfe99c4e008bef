"""acq.callbacks."""

from __future__ import annotations

from ._peaks import GaussianFit, PeakStatistics, PeakStats, fit_gaussian, peak_stats
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
