"""Notebooks for tests: run one in a real kernel, read back what its outputs show.

Used by tests/callbacks/test_notebook_offline.py.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import nbformat
from bokeh_docs import named_sources
from kernels import start_kernel
from nbclient import NotebookClient
from nbformat import NotebookNode

CELL_TIMEOUT = 60  # seconds for one cell

_DOCS_JSON = re.compile(r"const docs_json = (\{.*?\});\n", re.S)


def execute_notebook(cells: Sequence[str], tmp: Path) -> NotebookNode:
    """A notebook of ``cells`` as executed by nbclient in a real kernel, then saved and read back.

    Saving and reading back keeps only what a notebook file keeps.
    """
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    with start_kernel(tmp) as kernel:
        client = NotebookClient(nb, km=kernel.manager, timeout=CELL_TIMEOUT)
        try:
            client.execute()
        finally:
            if client.kc is not None:  # the kernel's own client is start_kernel's to stop
                client.kc.stop_channels()
    path = tmp / "executed.ipynb"
    nbformat.write(nb, path)
    return nbformat.read(path, as_version=4)


def figures(cell: NotebookNode) -> list[dict[str, Any]]:
    """The named data sources of each bokeh figure a cell's outputs embed, in order.

    Each figure is ``{source name: {column: array}}``, from the document JSON of its
    ``embed_document`` script.
    """
    found: list[dict[str, Any]] = []
    for output in cell.outputs:
        script = output.get("data", {}).get("application/javascript", "")
        for match in _DOCS_JSON.finditer(script):
            found.append(named_sources(json.loads(match[1])))
    return found


def shown_text(output: NotebookNode) -> str:
    """The text an output shows: a stream's text after carriage returns, else text/plain."""
    if output.output_type == "stream":
        return "\n".join(line.rsplit("\r", 1)[-1] for line in output.text.split("\n"))
    return str(output.get("data", {}).get("text/plain", ""))


def texts(nb: NotebookNode) -> Iterator[str]:
    """Every text and script of every output of the notebook."""
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            if output.output_type == "stream":
                yield output.text
            for value in output.get("data", {}).values():
                yield value if isinstance(value, str) else json.dumps(value)
