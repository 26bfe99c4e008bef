"""The engine core stays readable: no function in ``acq/`` longer than a screen.

Complexity is ruff's (C901, max 15, in pyproject.toml); this checks length, which ruff
does not: a function body (its docstring left out) of at most 50 lines, unless its
``def`` line carries a ``# long:`` comment saying why.
"""

from __future__ import annotations

import ast
from pathlib import Path

ACQ = Path(__file__).resolve().parents[1] / "acq"
MAX_LINES = 50


def _long_functions(path: Path, root: Path = ACQ.parent) -> list[str]:
    source = path.read_text()
    lines = source.splitlines()
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        body = node.body
        first = body[0]
        if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and body[1:]:
            first = body[1]  # the docstring does not count
        length = (node.end_lineno or node.lineno) - first.lineno + 1
        if length > MAX_LINES and "# long:" not in lines[node.lineno - 1]:
            found.append(f"{path.relative_to(root)}:{node.lineno} {node.name} ({length})")
    return found


def test_no_function_in_acq_is_longer_than_50_lines() -> None:
    too_long = [f for path in sorted(ACQ.rglob("*.py")) for f in _long_functions(path)]
    assert not too_long, f"split these, or say why on the def line (# long: ...): {too_long}"


def test_the_length_check_sees_a_long_function(tmp_path: Path) -> None:
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_LINES + 1))
    short = "\n".join(f"    y{i} = {i}" for i in range(MAX_LINES))
    (tmp_path / "m.py").write_text(f"def long():\n{body}\n\ndef short():\n{short}\n")
    assert [f.split()[1] for f in _long_functions(tmp_path / "m.py", tmp_path)] == ["long"]
