"""The bluesky compatibility suite: bluesky's own tests, run against acq (marker ``compat``).

The run happens once per session (:func:`bluesky_verdict`, a pytest subprocess over copies
of bluesky's test files); its totals line is printed at the end of the session.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
import suite

_VERDICTS: list[suite.Verdict] = []


@pytest.fixture(scope="session")
def bluesky_verdict() -> suite.Verdict:
    """Run every listed bluesky test file against acq once; judge against the two lists."""
    with tempfile.TemporaryDirectory(prefix="acq-compat-") as tmp:
        log = Path(tmp) / "pytest-output.txt"
        records = suite.run(Path(tmp), log=log)
        if not records:
            pytest.fail(f"the compat run recorded no test; its output:\n{log.read_text()[-6000:]}")
        verdict = suite.judge(records, suite.load_known_failures(), suite.load_excluded())
    _VERDICTS.append(verdict)
    return verdict


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print ``acq passes P of A applicable bluesky tests`` when the suite ran."""
    for verdict in _VERDICTS:
        terminalreporter.section("bluesky compatibility")
        terminalreporter.write_line(verdict.summary())
