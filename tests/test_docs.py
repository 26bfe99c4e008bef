"""Every ```python block in docs/ runs: each page's blocks in order, in one namespace.

Blocks may use top-level ``await`` (as in a Jupyter cell): each is compiled with
``ast.PyCF_ALLOW_TOP_LEVEL_AWAIT`` and awaited when that gives a coroutine, all on the
test's event loop. A block whose first line starts with ``# not-run`` is pseudo-code and
is skipped.
"""

from __future__ import annotations

import ast
import inspect
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"
SKIP_MARK = "# not-run"
_FENCE = re.compile(
    r"^(?P<indent>[ \t]*)```(?P<info>[^\n`]*)\n(?P<body>.*?)^(?P=indent)```[ \t]*$",
    re.DOTALL | re.MULTILINE,
)


@dataclass(frozen=True)
class Block:
    """One fenced python block of a page."""

    page: Path
    line: int  # 1-based line of the opening fence
    source: str

    @property
    def runnable(self) -> bool:
        first = self.source.lstrip("\n").split("\n", 1)[0].strip()
        return not first.startswith(SKIP_MARK)

    @property
    def where(self) -> str:
        page = self.page.relative_to(DOCS.parent) if self.page.is_relative_to(DOCS) else self.page
        return f"{page}:{self.line}"


def python_blocks(page: Path) -> list[Block]:
    """The page's fenced blocks whose info string is ``python`` (or ``py``)."""
    text = page.read_text(encoding="utf-8")
    blocks: list[Block] = []
    for match in _FENCE.finditer(text):
        language = match["info"].strip().split(" ", 1)[0].lower()
        if language not in ("python", "py"):
            continue
        indent = len(match["indent"])
        body = "\n".join(line[indent:] for line in match["body"].split("\n"))
        blocks.append(Block(page, text.count("\n", 0, match.start()) + 1, body))
    return blocks


PAGES = sorted(DOCS.rglob("*.md"))
PAGES_WITH_CODE = [p for p in PAGES if python_blocks(p)]


def _id(page: Path) -> str:
    return str(page.relative_to(DOCS))


async def run_blocks(blocks: list[Block], namespace: dict[str, Any]) -> None:
    """Run the runnable ``blocks`` in order in ``namespace``, awaiting top-level awaits."""
    for block in blocks:
        if not block.runnable:
            continue
        try:
            code = compile(block.source, block.where, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
            result = eval(code, namespace)  # the docs are ours
            if inspect.iscoroutine(result):
                await result
        except BaseException as exc:
            exc.add_note(f"in the python block at {block.where}")
            raise


def test_the_docs_have_pages_with_code() -> None:
    assert DOCS.is_dir(), DOCS
    assert PAGES_WITH_CODE, f"no ```python blocks under {DOCS}"


@pytest.mark.parametrize("page", sorted(DOCS.glob("tutorials/*.md")), ids=_id)
def test_every_tutorial_has_runnable_code(page: Path) -> None:
    assert any(b.runnable for b in python_blocks(page)), f"{page} has no runnable python block"


@pytest.mark.parametrize("page", PAGES_WITH_CODE, ids=_id)
async def test_the_python_blocks_of_a_page_run(page: Path) -> None:
    blocks = python_blocks(page)
    runnable = [b for b in blocks if b.runnable]
    assert runnable, f"every python block of {page} is marked {SKIP_MARK!r}"
    namespace: dict[str, Any] = {"__name__": f"docs.{page.stem.replace('-', '_')}"}
    await run_blocks(runnable, namespace)


def test_the_block_extractor_handles_fences_indents_and_the_skip_mark(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "# T\n\n```python\nx = 1\n```\n\n```text\nnot code\n```\n\n"
        "- item\n\n  ```python\n  y = x + 1\n  ```\n\n```python\n# not-run\nz = undefined\n```\n",
        encoding="utf-8",
    )
    blocks = python_blocks(page)
    assert [b.source for b in blocks] == ["x = 1\n", "y = x + 1\n", "# not-run\nz = undefined\n"]
    assert [b.runnable for b in blocks] == [True, True, False]
    assert [b.line for b in blocks] == [3, 13, 17]
