"""Fixtures for acq's own tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support import DocChecker

from acq import RunEngine


@pytest.fixture
def checker() -> Iterator[DocChecker]:
    """Every document of the test, checked against event-model's schema and the rules."""
    c = DocChecker()
    yield c
    c.assert_clean()


@pytest.fixture
def RE(checker: DocChecker) -> RunEngine:
    """A fresh RunEngine whose documents all go through ``checker``."""
    engine = RunEngine()
    engine.subscribe(checker, thread=False)
    return engine
