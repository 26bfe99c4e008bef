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
from collections.abc import AsyncIterator, Iterator

import pytest
from benchmarks.postgres import PostgresServer
from playwright.async_api import Browser, async_playwright
from support import CHROMIUM, DocChecker

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


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL server for the session (fsync off: the tests kill clients, not it).

    The machine's server binaries, else the ``pgserver`` wheel of the [test] extra
    (``benchmarks/postgres.py``); each test makes a database of its own on it.
    """
    try:
        server = PostgresServer(fsync=False)
    except RuntimeError as exc:  # no binaries, or root without a 'postgres' user
        pytest.skip(f"no PostgreSQL server can run here: {exc}")
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    """Debian's chromium, headless, driven by Playwright (the browser tests)."""
    if not os.access(CHROMIUM, os.X_OK):  # one stat, before any loop work
        pytest.skip(f"Debian's chromium ({CHROMIUM}) is missing: apt-get install chromium")
    args = ["--no-sandbox"] if os.geteuid() == 0 else []  # chromium refuses root otherwise
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=CHROMIUM, args=args)
        try:
            yield chromium
        finally:
            await chromium.close()
