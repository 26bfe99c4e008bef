"""The README's python block runs as written, and docs pages print the same on every run.

``tests/test_docs.py`` runs the python blocks of ``docs/``; the README's snippet is run
here the same way. A page whose comments promise an output (``print(len(ours))  # 3``)
must keep that promise when run a second time against the same default catalog.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from test_docs import DOCS, python_blocks, run_blocks

README = DOCS.parent / "README.md"


async def test_the_readme_snippet_runs_and_gets_the_scan_back() -> None:
    blocks = python_blocks(README)
    assert len(blocks) == 1, [b.where for b in blocks]
    namespace: dict[str, Any] = {"__name__": "docs.readme"}
    await run_blocks(blocks, namespace)
    result, RE = namespace["result"], namespace["RE"]
    assert result.exit_status == "success"
    run = RE.catalog[-1]
    assert run.uid == result.run_start_uids[0]
    assert run.start["sample"] == "Si"
    assert run.start["proposal_id"] == 123456
    assert len(run.primary.read()["det"]) == 11


async def run_page(page: Path) -> dict[str, Any]:
    namespace: dict[str, Any] = {"__name__": f"docs.{page.stem.replace('-', '_')}"}
    await run_blocks([b for b in python_blocks(page) if b.runnable], namespace)
    return namespace


async def test_find_and_load_prints_what_its_comments_say_on_a_second_run_too() -> None:
    page = DOCS / "how-to" / "find-and-load-your-data.md"
    for _ in range(2):  # the second run sees the default catalog the first one wrote to
        ns = await run_page(page)
        assert len(ns["ours"]) == 3
        assert [r.start["purpose"] for r in ns["silicon"]] == ["map", "frames"]
        assert [r.start["purpose"] for r in ns["either"]] == ["map", "calibration"]
        assert (ns["RE"].md["scan_id"], ns["catalog"][-1].scan_id) == (1002, 1002)
        assert dict(ns["RE_tomorrow"].md) == {
            "operator": "ada",
            "sample": {"name": "Si", "temperature": 300},
            "scan_id": 1002,
        }
