"""pytest plugin for running bluesky's own test files against acq (``-p bluesky_plugin``).

Loaded by :mod:`suite` into a pytest subprocess that runs copies of bluesky's test files
(bluesky's ``conftest.py`` is not copied). It provides bluesky's fixtures, with ``RE``
replaced by :class:`sync_engine.BlueskyStyleRunEngine` (acq's engine behind bluesky's
spellings), deselects the tests listed in ``excluded.toml``, and records every test's
outcome as JSON lines for :mod:`suite` to judge.

Environment: ``ACQ_COMPAT_EXCLUDED`` (path of excluded.toml), ``ACQ_COMPAT_RESULTS``
(path of the JSON-lines file to write).
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# bluesky's own fixtures, unchanged: hw (ophyd.sim), db (skips without databroker), ...
from bluesky.tests.conftest import (  # noqa: F401 -- fixtures, registered by import
    cleanup_any_figures,
    db,
    deterministic_sigint,
    hw,
)
from sync_engine import BlueskyStyleRunEngine


@pytest.fixture
def RE() -> Iterator[BlueskyStyleRunEngine]:
    """bluesky's ``RE`` fixture, replaced: acq's engine behind bluesky's spellings.

    bluesky parametrizes its fixture over ``call_returns_result`` False/True; acq always
    returns a result, so one engine with ``call_returns_result=True`` (the False variant
    would only test the adapter's ``tuple(result.run_start_uids)``).
    """
    engine = BlueskyStyleRunEngine({}, call_returns_result=True)
    yield engine
    engine.close()


def load_excluded(path: Path) -> dict[str, str]:
    """``excluded.toml``'s entries: nodeid (or nodeid without ``[params]``) -> reason."""
    with path.open("rb") as f:
        return dict(tomllib.load(f)["excluded"])


def excluded_reason(nodeid: str, excluded: dict[str, str]) -> str | None:
    """The reason ``nodeid`` is excluded (an entry without ``[...]`` covers every param)."""
    return excluded.get(nodeid) or excluded.get(nodeid.split("[", 1)[0])


class _Recorder:
    def __init__(self, path: Path, excluded: dict[str, str]) -> None:
        self.path = path
        self.excluded = excluded
        self.current: dict[str, dict[str, Any]] = {}

    def write(self, record: dict[str, Any]) -> None:
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(
        self, session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
    ) -> None:
        kept: list[pytest.Item] = []
        dropped: list[pytest.Item] = []
        for item in items:
            reason = excluded_reason(item.nodeid, self.excluded)
            if reason is None:
                kept.append(item)
            else:
                dropped.append(item)
                self.write({"nodeid": item.nodeid, "outcome": "excluded", "detail": reason})
        if dropped:
            config.hook.pytest_deselected(items=dropped)
            items[:] = kept
        for item in kept:
            self.write({"nodeid": item.nodeid, "outcome": "collected", "detail": ""})

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        record = self.current.setdefault(
            report.nodeid, {"nodeid": report.nodeid, "outcome": "passed", "detail": ""}
        )
        if report.failed and _missing_package(report):
            record["outcome"] = "skipped"
            record["detail"] = "missing optional package: " + _missing_package(report)
        elif report.failed and record["outcome"] != "failed":
            text = report.longreprtext
            timeout = "from pytest-timeout" in text
            record["outcome"] = "failed"
            record["phase"] = report.when
            record["detail"] = ("TIMEOUT " if timeout else "") + _short(text)
            record["duration"] = report.duration
        elif report.skipped and record["outcome"] == "passed":
            if hasattr(report, "wasxfail"):
                record["outcome"] = "xfailed"
                record["detail"] = str(getattr(report, "wasxfail", ""))
            else:
                record["outcome"] = "skipped"
                longrepr = report.longrepr
                reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
                record["detail"] = reason
        if report.when == "teardown":
            self.write(self.current.pop(report.nodeid))


_MISSING = (
    "ModuleNotFoundError: No module named ",
    "ImportError: Failed to import any of the following Qt binding modules",
)


def _missing_package(report: pytest.TestReport) -> str:
    """The missing optional package a test needed (bluesky does not skip all of them)."""
    for line in report.longreprtext.splitlines():
        line = line.removeprefix("E").strip()
        if line.startswith(_MISSING):
            return line
    return ""


def _short(text: str, limit: int = 4000) -> str:
    """The end of a failure report: the assertion or exception and where it arose."""
    return text if len(text) <= limit else "...\n" + text[-limit:]


def pytest_configure(config: pytest.Config) -> None:
    """Install the recorder when the runner asked for it."""
    results = os.environ.get("ACQ_COMPAT_RESULTS")
    excluded_path = os.environ.get("ACQ_COMPAT_EXCLUDED")
    excluded = load_excluded(Path(excluded_path)) if excluded_path else {}
    if results:
        config.pluginmanager.register(_Recorder(Path(results), excluded), "acq_compat_recorder")
