"""docs/reference/plans.md is what docs/reference/generate.py writes from the docstrings."""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path
from types import ModuleType

import pytest
from support import load_script

GENERATOR = Path(__file__).resolve().parent.parent / "docs" / "reference" / "generate.py"


@pytest.fixture(scope="module")
def generate() -> ModuleType:
    return load_script(GENERATOR, "docs_reference_generate")


def test_the_plans_reference_page_is_up_to_date(generate: ModuleType) -> None:
    committed = generate.PAGE.read_text(encoding="utf-8")
    assert committed == generate.render(), (
        f"{generate.PAGE} is stale (a docstring or an __all__ changed): regenerate it with "
        "`python docs/reference/generate.py` and commit the result"
    )


def test_every_public_name_has_a_section_with_its_docstring(generate: ModuleType) -> None:
    text = generate.render()
    for modname in generate.MODULES:
        module = importlib.import_module(modname)
        for name in generate.public(module):
            assert f'<a id="{modname}.{name}"></a>' in text, f"{modname}.{name} is missing"
    assert "*(no docstring)*" not in text
    assert " at 0x" not in text  # no object address: the page must not change run to run


def test_google_docstrings_become_markdown(generate: ModuleType) -> None:
    page = generate.Page([])
    doc = """Move things.

    Use it like this::

        yield mv(m, 1)

    Args:
        motor: the motor, see :func:`acq.plans.scan`
            or ``mv``.
        *args: more.

    Returns:
        The status.

    >>> 1 + 1
    2
    """
    assert generate.markdown(doc, page, "m") == (
        "Move things.\n\n"
        "Use it like this:\n\n"
        "```\nyield mv(m, 1)\n```\n\n"
        "**Args:**\n\n"
        "- `motor`: the motor, see `acq.plans.scan` or `mv`.\n"
        "- `*args`: more.\n\n"
        "**Returns:**\n\n"
        "The status.\n\n"
        "```\n>>> 1 + 1\n2\n```"
    )
