"""Fixtures for acq's own tests.

Every ``RunEngine()`` stores its runs in the default catalog; for the whole test session
(subprocesses included) that is a temporary directory, never the user's data directory
(``ACQ_CATALOG`` / ``ACQ_DATA_DIR`` are set in :func:`pytest_configure`).

Tests that need a system component the machine lacks (Debian's chromium for the browser
tests; PostgreSQL when neither the ``pgserver`` wheel nor the machine's server can run)
skip, with a reason naming it and how to get it. CI installs every component and sets
``ACQ_NO_SKIPS=1``: then a skipped test fails the session (``no_skips.py``).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator

import pytest
from support import DocChecker

from acq import RunEngine

pytest_plugins = ["no_skips"]

_CATALOG_DIR = tempfile.mkdtemp(prefix="acq-test-catalog-")


def pytest_configure(config: pytest.Config) -> None:
    """Send the default catalog of every engine to a temporary directory."""
    os.environ["ACQ_DATA_DIR"] = _CATALOG_DIR
    os.environ["ACQ_CATALOG"] = os.path.join(_CATALOG_DIR, "catalog.db")


def pytest_unconfigure(config: pytest.Config) -> None:
    """Remove the session's catalog."""
    shutil.rmtree(_CATALOG_DIR, ignore_errors=True)


@pytest.fixture
def checker() -> Iterator[DocChecker]:
    """Every document of the test, checked against event-model's schema and the rules."""
    c = DocChecker()
    yield c
    c.assert_clean()


@pytest.fixture
def bare_RE(checker: DocChecker) -> RunEngine:
    """An engine without a catalog (nothing else slows a run), documents through ``checker``."""
    engine = RunEngine(catalog=None)
    engine.subscribe(checker, thread=False)
    return engine


@pytest.fixture
def RE(checker: DocChecker) -> RunEngine:
    """A fresh RunEngine whose documents all go through ``checker``."""
    engine = RunEngine()
    engine.subscribe(checker, thread=False)
    return engine
