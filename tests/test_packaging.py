"""The package's shape: one namespace, the public API, the core's import rules, CI = README."""

from __future__ import annotations

import ast
import importlib.metadata
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import acq

ROOT = Path(__file__).resolve().parent.parent

PUBLIC_API = {
    "RunEngine",
    "Msg",
    "Return",
    "Plan",
    "PlanStack",
    "PlanFinished",
    "as_plan",
    "RunResult",
    "State",
    "Subscription",
    "CallbackError",
    "EventUids",
    "PersistentDict",
    "AcqError",
    "AcqInternalError",
    "DeviceError",
    "FailedStatus",
    "IllegalMessageSequence",
    "MetadataError",
    "PlanError",
    "RunEngineInterrupted",
    "RunAborted",
    "RequestStop",
    "RequestAbort",
    "StateError",
    "SubscriberError",
    "UnknownCommandError",
    "WaitTimeoutError",
}


def test_public_api_is_pinned() -> None:
    assert set(acq.__all__) == PUBLIC_API
    for name in acq.__all__:
        assert getattr(acq, name) is not None


@pytest.mark.parametrize(
    "name", ["acq.devices", "acq.plans", "acq.callbacks", "acq.service", "acq.remote"]
)
def test_subpackages_import_under_the_acq_namespace(name: str) -> None:
    module = __import__(name, fromlist=["_"])
    folder = name.split(".")[1]
    assert Path(module.__file__).parent == ROOT / folder


@pytest.mark.parametrize("name", ["devices", "plans", "callbacks", "service", "remote"])
def test_nothing_named_like_a_subpackage_is_importable_on_its_own(
    name: str, tmp_path: Path
) -> None:
    result = subprocess.run(
        [sys.executable, "-c", f"import {name}"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0
    assert "ModuleNotFoundError" in result.stderr


def _core_modules() -> list[Path]:
    """Every module of the core, subpackages (acq/catalog/) included."""
    return sorted((ROOT / "acq").rglob("*.py"))


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


FORBIDDEN_IN_CORE = (
    "acq.devices",
    "acq.plans",
    "acq.callbacks",
    "acq.service",
    "acq.remote",
    "ophyd_async",
    "bluesky.run_engine",
    "bluesky.bundlers",
    "bluesky.utils",
)


@pytest.mark.parametrize("path", _core_modules(), ids=lambda p: _module_name(p))
def test_engine_core_imports_no_devices_plans_callbacks_or_ophyd_async(path: Path) -> None:
    tree = ast.parse(path.read_text())
    imported: list[str] = []
    for node in ast.walk(tree):  # lazy imports inside functions count too
        if isinstance(node, ast.Import):
            imported += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            imported.append(node.module)
        elif isinstance(node, ast.ImportFrom) and node.level >= 1 and node.module:
            package = _module_name(path).split(".")
            if path.name != "__init__.py":
                package = package[:-1]
            base = package[: len(package) - node.level + 1]
            imported.append(".".join([*base, node.module]))
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and node.value.startswith(FORBIDDEN_IN_CORE)
        ):
            imported.append(node.value)  # importlib.import_module("acq.devices...")
    bad = [m for m in imported if m.startswith(FORBIDDEN_IN_CORE)]
    if path.name == "_errors.py":  # SPEC: bluesky's exception classes, which acq's subclass
        bad = [m for m in bad if m not in ("bluesky.utils", "bluesky.run_engine")]
    assert not bad, f"{path.name} imports {bad}"


def test_import_linter_contract_lists_every_core_module() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    bluesky, engine_side, catalog_side = config["tool"]["importlinter"]["contracts"]
    present = {_module_name(p) for p in _core_modules()} - {"acq"}
    catalog = {m for m in present if m.startswith("acq.catalog")}
    assert set(bluesky["source_modules"]) == present
    assert set(engine_side["source_modules"]) == present - catalog
    assert set(catalog_side["source_modules"]) == catalog
    assert set(catalog_side["forbidden_modules"]) == {
        m for m in present - catalog if m.startswith("acq._")
    }


def test_ci_runs_exactly_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text().splitlines()
    blocks = [i for i, line in enumerate(readme) if line.startswith("```bash")]
    assert len(blocks) >= 2, "README must open with two commands (demo, tests)"
    demo_command, test_command = readme[blocks[0] + 1], readme[blocks[1] + 1]
    assert "acq demo" in demo_command
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert ci[-1] == test_command


def test_demo_prints_a_table_and_a_progress_bar_and_writes_the_plot(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from acq.callbacks._cli import main

    plot = tmp_path / "demo.html"
    assert main(["demo", "--num", "3", "--plot", str(plot)]) == 0
    captured = capsys.readouterr()
    rows = [line for line in captured.out.splitlines() if line.startswith("|")]
    assert len(rows) == 4  # the heading and three points
    assert "exit_status=success" in captured.out
    assert "3/3" in captured.err  # the progress bar reached the end
    assert str(plot) in captured.out
    page = plot.read_text()
    assert "det vs x" in page  # the figure's title, in a standalone page
    assert "<script" in page


def test_every_subpackage_folder_is_listed_for_installation() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    found = {"acq"}
    for name, folder in config["package-dir"].items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder).parts
            found.add(".".join((name, *rel)))
    assert found == listed


@pytest.mark.parametrize(("no_skips", "code"), [("1", 1), ("", 0)])
def test_ci_fails_on_a_skipped_test_and_a_machine_without_ci_does_not(
    tmp_path: Path, no_skips: str, code: int
) -> None:
    (tmp_path / "test_one.py").write_text(
        "import pytest\n\n"
        "def test_needs_a_widget():\n    pytest.skip('no widget: apt-get install widget')\n\n"
        "def test_passes():\n    pass\n"
    )
    env = {**os.environ, "ACQ_NO_SKIPS": no_skips, "PYTHONPATH": str(ROOT / "tests")}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no_skips", "-p", "no:cacheprovider", "-q",
         "--rootdir", str(tmp_path), "-c", os.devnull, str(tmp_path)],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == code, result.stdout + result.stderr
    if code:
        assert "test_needs_a_widget: Skipped: no widget" in result.stdout


def test_docs_install_acq_under_its_distribution_name() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["name"]
    assert project != "acq", "'acq' on PyPI is an unrelated project"
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    wrong = [
        f"{page.relative_to(ROOT)}: {line.strip()}"
        for page in pages
        for line in page.read_text().splitlines()
        if re.search(r"pip install [\"']?acq(?![-\w])", line)
    ]
    assert not wrong, f"install {project}, not acq: {wrong}"
    assert acq.RunEngine(catalog=None).md["versions"]["acq"] == importlib.metadata.version(project)
