"""A pytest plugin: with ``ACQ_NO_SKIPS=1`` (set by CI), a skipped test fails the session.

Tests that need a system component the machine lacks skip with a reason naming it; CI
installs every component, so there a skip means something is missing from CI itself.
"""

from __future__ import annotations

import os

import pytest

_skipped: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Note every skipped test (an expected failure is not a skip)."""
    if report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[-1] if isinstance(report.longrepr, tuple) else report.longrepr
        _skipped.append(f"{report.nodeid}: {reason}")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """With ``ACQ_NO_SKIPS=1`` (CI), a skipped test fails the session."""
    if os.environ.get("ACQ_NO_SKIPS") == "1" and _skipped and exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Say why the session failed when it did only because tests were skipped."""
    if os.environ.get("ACQ_NO_SKIPS") == "1" and _skipped:
        terminalreporter.section("skipped tests fail this run (ACQ_NO_SKIPS=1)")
        for line in _skipped:
            terminalreporter.write_line(line)
