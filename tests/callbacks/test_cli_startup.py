"""The acq command imports only what the command needs (start-up time, issue #16).

Each command runs in a fresh interpreter, exactly as the ``acq`` script runs it, and
reports the modules it loaded; the times themselves are benchmark rows
(``tests/benchmarks/scenarios.py``, "process: ..."), not assertions.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from acq.catalog import DocumentStore

ROOT = Path(__file__).resolve().parents[2]

_RUN = """
import json, sys
from acq.callbacks._cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exit:
    code = exit.code
heavy = ("bokeh", "tornado", "ophyd_async", "sqlalchemy", "h5py", "pandas", "xarray")
loaded = sorted({m.split(".")[0] for m in sys.modules} & set(heavy))
print(json.dumps({"code": code, "loaded": loaded}))
"""


def _acq(*args: str) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-c", _RUN, *args], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_acq_help_imports_no_plots_devices_or_database() -> None:
    assert _acq("--help") == {"code": 0, "loaded": []}


@pytest.fixture
def small_catalog(tmp_path: Path) -> Path:
    where = tmp_path / "catalog.db"
    store = DocumentStore(where)
    store.write("start", {"uid": "a-run", "time": 1.0, "scan_id": 1, "plan_name": "count"})
    store.write("stop", {"uid": "a-stop", "run_start": "a-run", "time": 2.0})
    store.close()
    return where


def test_acq_runs_imports_the_database_but_no_plots_or_devices(small_catalog: Path) -> None:
    assert _acq("runs", "--catalog", str(small_catalog)) == {"code": 0, "loaded": ["sqlalchemy"]}


def test_acq_callbacks_loads_a_module_when_one_of_its_names_is_used() -> None:
    code = (
        "import sys\n"
        "import acq.callbacks as callbacks\n"
        "assert 'bokeh' not in sys.modules, 'import acq.callbacks loaded bokeh'\n"
        "from acq.callbacks import LiveTable\n"
        "assert LiveTable.__module__ == 'acq.callbacks._table'\n"
        "assert 'bokeh' not in sys.modules, 'LiveTable loaded bokeh'\n"
        "assert callbacks.LivePlot.__module__ == 'acq.callbacks._plots'\n"
        "assert 'bokeh' in sys.modules\n"
        "assert set(callbacks.__all__) <= set(dir(callbacks))\n"
        "try:\n"
        "    callbacks.NoSuchThing\n"
        "except AttributeError as exc:\n"
        "    assert 'NoSuchThing' in str(exc)\n"
        "else:\n"
        "    raise AssertionError('no AttributeError')\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)
