"""A catalog location that cannot work is one clear CatalogError, before anything runs.

``RunEngine(catalog=...)`` checks its location when the engine is made (a SQLite path
with the file system alone, a server by connecting with a short timeout); reading a
catalog -- ``Catalog(path)``, ``acq runs`` -- never creates one.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from acq.callbacks._cli import main

from acq import Msg, RunEngine
from acq.catalog import Catalog, CatalogError

# -- bad locations for a RunEngine: refused when it is made ------------------------------


def _refused(where: object) -> CatalogError:
    with pytest.raises(CatalogError) as info:
        RunEngine(catalog=where, handle_sigint=False)
    error = info.value
    assert error.__cause__ is None, "one error, not a chain of tracebacks"
    return error


def test_a_text_file_is_refused_naming_it(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("not a database\n")
    message = str(_refused(notes))
    assert str(notes) in message
    assert "not a catalog" in message
    assert notes.read_text() == "not a database\n"


def test_a_folder_is_refused_with_a_file_path_to_use_instead(tmp_path: Path) -> None:
    message = str(_refused(tmp_path))
    assert f"the catalog {tmp_path} is a folder" in message
    assert str(tmp_path / "catalog.db") in message


def test_a_file_where_the_folder_should_be_is_refused(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file")
    message = str(_refused(f"sqlite:///{blocker / 'catalog.db'}"))
    assert f"cannot create the folder of the catalog {blocker / 'catalog.db'}" in message
    assert f"{blocker} is a file" in message


@pytest.fixture
def read_only_folder(tmp_path: Path) -> Iterator[Path]:
    """A folder this process cannot write to (root writes anywhere but on a read-only mount)."""
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        if not os.access(folder, os.W_OK):
            yield folder
        elif Path("/proc/sys").is_dir() and not os.access("/proc/sys", os.W_OK):
            yield Path("/proc/sys")  # running as root: a read-only file system instead
        else:
            pytest.skip("this process can write to every folder (root, no read-only mount)")
    finally:
        folder.chmod(0o755)


def test_a_new_catalog_in_a_read_only_folder_is_refused(read_only_folder: Path) -> None:
    where = read_only_folder / "sub" / "catalog.db"
    message = str(_refused(where))
    assert f"cannot create the catalog {where}" in message
    assert f"the folder {read_only_folder} is read-only" in message
    assert "ACQ_CATALOG" in message  # what to do
    assert not (read_only_folder / "sub").exists()


def test_an_existing_catalog_in_a_read_only_folder_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "shared"
    folder.mkdir()
    made = RunEngine(catalog=folder / "catalog.db", handle_sigint=False)
    assert made.catalog is not None
    assert len(made.catalog) == 0  # the store's catalog: reading it creates it
    made.catalog.close()
    folder.chmod(0o555)
    if os.access(folder, os.W_OK):  # root writes anywhere: the file system says so
        real_access = os.access
        monkeypatch.setattr(
            os, "access", lambda p, mode: False if Path(p) == folder else real_access(p, mode)
        )
    try:
        message = str(_refused(folder / "catalog.db"))
        assert "read-only" in message
        assert str(folder) in message
    finally:
        folder.chmod(0o755)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_an_unreachable_postgresql_server_is_refused_without_its_password() -> None:
    url = f"postgresql://beamline:s3cret@127.0.0.1:{_closed_port()}/acq"
    message = str(_refused(url))
    assert "s3cret" not in message
    assert "beamline:***@127.0.0.1" in message
    assert "is the server running" in message
    assert "\n" not in message


def test_making_a_run_engine_with_the_default_catalog_imports_no_sqlalchemy(
    tmp_path: Path,
) -> None:
    code = (
        "import sys\n"
        "from acq import RunEngine\n"
        "RE = RunEngine(handle_sigint=False)\n"
        "assert RE.catalog is not None\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('sqlalchemy', 'aiosqlite')))\n"
    )
    env = {**os.environ, "ACQ_DATA_DIR": str(tmp_path / "data")}
    env.pop("ACQ_CATALOG", None)
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"
    assert not (tmp_path / "data").exists()  # nothing is created before the first run


# -- reading never creates a catalog --------------------------------------------------------


def test_reading_a_catalog_that_does_not_exist_says_so_and_creates_nothing(
    tmp_path: Path,
) -> None:
    where = tmp_path / "typo" / "catlog.db"
    catalog = Catalog(where)
    with pytest.raises(CatalogError, match=f"there is no catalog at {where}"):
        len(catalog)
    with pytest.raises(CatalogError, match="there is no catalog"):
        list(catalog.search(sample="Si"))
    assert list(tmp_path.iterdir()) == []


def test_acq_runs_on_a_mistyped_catalog_says_it_does_not_exist(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    where = tmp_path / "typo" / "catlog.db"
    assert main(["runs", "--catalog", str(where)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"acq runs: there is no catalog at {where}")
    assert err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


def test_acq_runs_on_a_text_file_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    assert main(["runs", "--catalog", str(notes)]) == 1
    err = capsys.readouterr().err
    assert err == f"acq runs: {notes} is not a catalog (not a SQLite database): " + (
        "give the path of a catalog, or of a file that does not exist yet\n"
    )


def test_acq_show_on_an_empty_catalog_says_there_are_no_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    where = tmp_path / "catalog.db"
    RE = RunEngine(catalog=where, handle_sigint=False)
    assert RE.catalog is not None
    assert len(RE.catalog) == 0  # an empty catalog, on disk
    RE.catalog.close()
    assert main(["show", "-1", "--catalog", str(where)]) == 1
    assert capsys.readouterr().err == f"acq show: there are no runs in the catalog {where}\n"


def test_a_position_past_the_oldest_run_says_how_many_there_are(tmp_path: Path) -> None:
    where = tmp_path / "catalog.db"
    RE = RunEngine(catalog=where, handle_sigint=False)
    assert RE.catalog is not None
    RE.catalog.store.write("start", {"uid": "only-run", "time": 1.0, "scan_id": 1})
    RE.catalog.store.flush()
    with pytest.raises(IndexError) as info:
        RE.catalog[-3]
    assert str(info.value) == (
        f"there is no run at position -3: the catalog {where} has only 1 run"
    )
    RE.catalog.close()


def test_acq_demo_on_a_bad_catalog_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ACQ_CATALOG", str(tmp_path))
    assert main(["demo", "--num", "2", "--plot", str(tmp_path / "plot.html")]) == 1
    captured = capsys.readouterr()
    assert captured.err == (
        f"acq demo: the catalog {tmp_path} is a folder, not a database file: give a file "
        f"path such as {tmp_path / 'catalog.db'}\n"
    )
    assert captured.out == ""


async def test_a_catalog_this_process_has_open_is_never_opened_again_to_check_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Closing any descriptor of a SQLite file drops this process's locks on it (POSIX):
    the location check must not open a database the process already writes to."""
    path = tmp_path / "catalog.db"
    first = RunEngine(catalog=path, handle_sigint=False)
    await first([Msg("open_run"), Msg("close_run")])  # the store has the database open
    opened: list[Path] = []
    real_open = Path.open

    def watched(self: Path, *args: Any, **kwargs: Any) -> Any:
        opened.append(self)
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", watched)
    second = RunEngine(catalog=path, handle_sigint=False)  # checks the location
    assert second.catalog is not None
    assert len(second.catalog) == 1  # reads it, through SQLite
    assert path not in opened
