"""Run bluesky's own test files against acq and judge the outcome.

The files are those shipped in the installed bluesky (``bluesky/tests``); they are
copied to a temporary folder (without bluesky's ``conftest.py``) and run by pytest in a
subprocess with :mod:`bluesky_plugin`, whose ``RE`` fixture is acq's engine behind
bluesky's spellings (:mod:`sync_engine`). The subprocess has its own ini: warnings are
not errors, a 30 s timeout per test, no cache.

Two lists beside this file decide what the outcome means:

* ``excluded.toml`` -- tests of bluesky internals, never run (each with its reason);
* ``known_failures.txt`` -- applicable tests that fail with acq today, one nodeid a line
  with its cause. Strict: a listed test that passes is an error, so the list only shrinks.

By hand (see README.md)::

    .venv/bin/python tests/compat/suite.py                       # every file
    .venv/bin/python tests/compat/suite.py test_plans.py::test_x  # some tests, verbose
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
EXCLUDED = HERE / "excluded.toml"
KNOWN_FAILURES = HERE / "known_failures.txt"
PACKAGE = "bluesky_on_acq"  # the temporary package the copies live in

FILES = (
    "test_new_examples.py",
    "test_plans.py",
    "test_scans.py",
    "test_preprocessors.py",
    "test_plan_patterns.py",
    "test_snaking.py",
    "test_metadata.py",
    "test_documents.py",
    "test_multi_runs.py",
    "test_streams.py",
    "test_flyer.py",
    "test_external_assets_and_paging.py",
    "test_supplemental_data.py",
    "test_callbacks.py",
    "test_suspenders.py",
    "test_run_engine.py",
)
"""bluesky's test files that exercise a RunEngine with plans, devices and callbacks."""

PER_TEST_TIMEOUT = 30  # seconds; a test that hangs on acq is reported as failed
RUN_TIMEOUT = 1200  # seconds for the whole subprocess

_INI = f"""\
[pytest]
timeout = {PER_TEST_TIMEOUT}
timeout_method = signal
filterwarnings =
    default
python_files = test_*.py
"""

# bluesky's tests import `.utils` relatively: the copy's utils re-exports the installed one
_UTILS = """\
import bluesky.tests.utils as _installed

globals().update({k: v for k, v in vars(_installed).items() if not k.startswith("__")})
"""


def bluesky_tests_dir() -> Path:
    """The installed bluesky's tests folder."""
    import bluesky.tests

    return Path(bluesky.tests.__file__).parent


def load_known_failures(path: Path = KNOWN_FAILURES) -> dict[str, str]:
    """``known_failures.txt``: nodeid -> cause (``nodeid  # cause`` a line; ``#`` comments)."""
    known: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        nodeid, _, cause = line.partition(" # ")
        known[nodeid.strip()] = cause.strip()
    return known


def load_excluded(path: Path = EXCLUDED) -> dict[str, str]:
    """``excluded.toml``: nodeid (without ``[params]``: every param) -> reason."""
    import tomllib

    with path.open("rb") as f:
        return dict(tomllib.load(f)["excluded"])


def prepare(workdir: Path, files: tuple[str, ...] = FILES) -> Path:
    """Copy bluesky's test files into ``workdir/PACKAGE`` with this suite's ini."""
    source = bluesky_tests_dir()
    package = workdir / PACKAGE
    package.mkdir(parents=True, exist_ok=True)
    (package / "__init__.py").write_text("")
    (package / "utils.py").write_text(_UTILS)
    (package / "pytest.ini").write_text(_INI)
    for name in files:
        shutil.copyfile(source / name, package / name)
    return package


def run(
    workdir: Path,
    selection: tuple[str, ...] = (),
    *,
    files: tuple[str, ...] = FILES,
    extra_args: tuple[str, ...] = (),
    log: Path | None = None,
) -> list[dict[str, Any]]:
    """Run the copies in a pytest subprocess; return one record per test.

    Args:
        workdir: an empty temporary folder.
        selection: nodeids (``test_plans.py::test_x``) to run instead of every file.
        files: which of bluesky's files to copy.
        extra_args: more pytest arguments (``-x``, ``-vv``, ...).
        log: where the subprocess's output goes (default: inherited).
    """
    package = prepare(workdir, files)
    results = workdir / "results.jsonl"
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS"}
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["ACQ_COMPAT_RESULTS"] = str(results)
    env["ACQ_COMPAT_EXCLUDED"] = str(EXCLUDED)
    env.setdefault("MPLBACKEND", "Agg")
    base = [
        sys.executable, "-m", "pytest",
        "-c", str(package / "pytest.ini"), "--rootdir", str(package),
        "-p", "no:cacheprovider", "-p", "bluesky_plugin",
        # acq's own plugins stay out of bluesky's tests
        "-p", "no:acq", "-p", "no:asyncio",
        "-p", "no:looptime_plugin", "-p", "no:looptime_chronometers",
        "-p", "no:looptime_timeproxies",
        "-q", "-rN", "--tb=short", "--color=no",
        *extra_args,
    ]  # fmt: skip
    targets: list[str] = list(selection or files)
    records: dict[str, dict[str, Any]] = {}
    with open(log, "w") if log is not None else _inherit() as out:
        while True:
            code = subprocess.run(
                [*base, *targets], cwd=package, env=env, stdout=out, stderr=subprocess.STDOUT,
                timeout=RUN_TIMEOUT, check=False,
            ).returncode  # fmt: skip
            collected = _read(results, records)
            left = [n for n in collected if n not in records]
            if code in (0, 1, 5) or not left:
                break
            # pytest itself crashed (INTERNALERROR, a fatal signal): blame the test that
            # was running, record it as failed, and go on with the tests after it
            records[left[0]] = {
                "nodeid": left[0],
                "outcome": "failed",
                "detail": f"the pytest session crashed (exit code {code}) during this test; "
                "see the log of the compat run",
            }
            targets = left[1:]
            if not targets:
                break
            if out is not None:
                out.write(f"\n*** pytest exited with {code}: going on after {left[0]}\n")
                out.flush()
    return list(records.values())


def _read(results: Path, records: dict[str, dict[str, Any]]) -> list[str]:
    """Add the results file's outcomes to ``records``; return the collected nodeids."""
    collected: list[str] = []
    if results.exists():
        for line in results.read_text().splitlines():
            record = json.loads(line)
            if record["outcome"] == "collected":
                collected.append(record["nodeid"])
            else:
                records[record["nodeid"]] = record
        results.unlink()
    return list(dict.fromkeys(collected))


class _inherit:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


@dataclass
class Verdict:
    """What a run of bluesky's tests on acq says, against the two lists."""

    passed: list[str] = field(default_factory=list[str])
    known: dict[str, str] = field(default_factory=dict[str, str])  # still failing, listed
    new_failures: dict[str, str] = field(default_factory=dict[str, str])  # nodeid -> detail
    fixed: list[str] = field(default_factory=list[str])  # listed, but passes now
    stale_known: list[str] = field(default_factory=list[str])  # listed, not run
    stale_excluded: list[str] = field(default_factory=list[str])  # matched no test
    excluded: list[str] = field(default_factory=list[str])
    skipped: dict[str, str] = field(default_factory=dict[str, str])  # nodeid -> reason
    xfailed: list[str] = field(default_factory=list[str])

    @property
    def applicable(self) -> int:
        """Tests collected, minus excluded, skipped and bluesky's own xfails."""
        return len(self.passed) + len(self.known) + len(self.new_failures) + len(self.fixed)

    @property
    def ok(self) -> bool:
        """True when the outcome matches the lists exactly."""
        return not (self.new_failures or self.fixed or self.stale_known or self.stale_excluded)

    def for_file(self, name: str) -> Verdict:
        """The part of this verdict about one bluesky file."""

        def mine(nodeid: str) -> bool:
            return nodeid.split("::", 1)[0] == name

        return Verdict(
            passed=[n for n in self.passed if mine(n)],
            known={n: c for n, c in self.known.items() if mine(n)},
            new_failures={n: d for n, d in self.new_failures.items() if mine(n)},
            fixed=[n for n in self.fixed if mine(n)],
            stale_known=[n for n in self.stale_known if mine(n)],
            stale_excluded=[n for n in self.stale_excluded if mine(n)],
            excluded=[n for n in self.excluded if mine(n)],
            skipped={n: r for n, r in self.skipped.items() if mine(n)},
            xfailed=[n for n in self.xfailed if mine(n)],
        )

    def summary(self) -> str:
        """``acq passes P of A applicable bluesky tests`` and what else happened."""
        lines = [
            f"acq passes {len(self.passed)} of {self.applicable} applicable bluesky tests "
            f"({len(self.known)} known failures, {len(self.new_failures)} new failures, "
            f"{len(self.fixed)} known failures now passing; {len(self.excluded)} excluded, "
            f"{len(self.skipped)} skipped, {len(self.xfailed)} xfailed by bluesky)"
        ]
        reasons = Counter(self.skipped.values())
        for reason, n in reasons.most_common():
            lines.append(f"  skipped {n}: {reason}")
        return "\n".join(lines)

    def problems(self) -> str:
        """Everything that makes the verdict not ok, readable in CI output."""
        out: list[str] = []
        for nodeid, detail in self.new_failures.items():
            out.append(f"NEW FAILURE {nodeid}\n{_indent(detail)}")
        for nodeid in self.fixed:
            out.append(f"NOW PASSES {nodeid}: delete its line from known_failures.txt")
        for nodeid in self.stale_known:
            out.append(f"NOT RUN {nodeid}: listed in known_failures.txt but not collected")
        for entry in self.stale_excluded:
            out.append(f"STALE EXCLUSION {entry}: excluded.toml entry matches no test")
        return "\n\n".join(out)


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines())


def judge(
    records: list[dict[str, Any]],
    known: dict[str, str],
    excluded: dict[str, str],
    files: tuple[str, ...] = FILES,
) -> Verdict:
    """Compare a run's records with the known failures and exclusions."""
    verdict = Verdict()
    seen: set[str] = set()
    for record in records:
        nodeid, outcome, detail = record["nodeid"], record["outcome"], record["detail"]
        seen.add(nodeid)
        if outcome == "excluded":
            verdict.excluded.append(nodeid)
        elif outcome == "skipped":
            verdict.skipped[nodeid] = detail
        elif outcome == "xfailed":
            verdict.xfailed.append(nodeid)
        elif outcome == "passed":
            (verdict.fixed if nodeid in known else verdict.passed).append(nodeid)
        elif nodeid in known:
            verdict.known[nodeid] = known[nodeid]
        else:
            verdict.new_failures[nodeid] = detail
    ran_files = {n.split("::", 1)[0] for n in seen}
    for nodeid in known:
        if nodeid not in seen and nodeid.split("::", 1)[0] in files:
            verdict.stale_known.append(nodeid)
    excluded_seen = set(verdict.excluded) | {n.split("[", 1)[0] for n in verdict.excluded}
    for entry in excluded:
        if entry.split("::", 1)[0] in ran_files and entry not in excluded_seen:
            verdict.stale_excluded.append(entry)
    return verdict


def main(argv: list[str]) -> int:
    """Run some or all of bluesky's tests on acq, print the verdict; 0 if it is ok."""
    selection = tuple(a for a in argv if not a.startswith("-"))
    extra = tuple(a for a in argv if a.startswith("-"))
    files = tuple(sorted({s.split("::", 1)[0] for s in selection})) if selection else FILES
    with tempfile.TemporaryDirectory(prefix="acq-compat-") as tmp:
        records = run(Path(tmp), selection, files=files, extra_args=extra or ("-vv",))
    known = load_known_failures()
    if selection:
        known = {n: c for n, c in known.items() if any(n.startswith(s) for s in selection)}
    verdict = judge(records, known, load_excluded(), files)
    if selection:  # a hand-picked run: stale entries elsewhere are not its business
        verdict.stale_known.clear()
        verdict.stale_excluded.clear()
    print()
    print(verdict.summary())
    problems = verdict.problems()
    if problems:
        print()
        print(problems)
    return 0 if verdict.ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
