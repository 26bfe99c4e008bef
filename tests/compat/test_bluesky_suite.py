"""bluesky's own test files, run against acq's engine (see README.md beside this file).

One test per bluesky file: it fails on a test that fails and is not in
known_failures.txt, and on a listed one that now passes (delete its line).
"""

from __future__ import annotations

import pytest
import suite

pytestmark = [pytest.mark.compat, pytest.mark.timeout(suite.RUN_TIMEOUT + 60)]


@pytest.mark.parametrize("filename", suite.FILES)
def test_bluesky_file_runs_on_acq_as_listed(bluesky_verdict: suite.Verdict, filename: str) -> None:
    verdict = bluesky_verdict.for_file(filename)
    assert verdict.ok, f"{verdict.summary()}\n\n{verdict.problems()}"
    assert verdict.applicable + len(verdict.excluded) + len(verdict.skipped) > 0, (
        f"no test of {filename} was collected"
    )


def test_excluded_and_known_failure_lists_name_collected_tests(
    bluesky_verdict: suite.Verdict,
) -> None:
    stale = bluesky_verdict.stale_known + bluesky_verdict.stale_excluded
    assert not stale, "entries that match no collected test:\n" + "\n".join(stale)


def test_known_failures_are_not_excluded() -> None:
    excluded = suite.load_excluded()
    both = [n for n in suite.load_known_failures() if n in excluded or n.split("[")[0] in excluded]
    assert not both, f"listed both as excluded and as known failures: {both}"


def test_every_known_failure_and_exclusion_gives_its_reason() -> None:
    missing = [n for n, c in suite.load_known_failures().items() if not c]
    missing += [n for n, r in suite.load_excluded().items() if not r.strip()]
    assert not missing, f"entries without a reason: {missing}"
