"""Where a catalog lives: database URLs, the per-user default and the files directory.

The default catalog of a :class:`~acq.RunEngine` is chosen, first match wins, by

1. ``RunEngine(catalog=...)``: a URL, a path, a store or a catalog (``None``: no store);
2. the environment variable ``ACQ_CATALOG``: a URL or a path to a SQLite file;
3. the environment variable ``ACQ_DATA_DIR``: ``<dir>/catalog.db``;
4. the per-user data directory (``platformdirs``), e.g. ``~/.local/share/acq/catalog.db``.

URLs: ``sqlite:///path`` (or a plain path) becomes ``sqlite+aiosqlite:///path``;
``postgresql://user@host/db`` becomes ``postgresql+asyncpg://...``. Large arrays the
store takes out of the documents go to the *files directory*: ``<db folder>/files``
for SQLite, ``<data dir>/files`` for PostgreSQL (``DocumentStore(files_dir=...)``).

Nothing here imports SQLAlchemy: choosing a location costs nothing at ``import acq``,
and :func:`check_location` looks at a SQLite location with the file system alone (a
``RunEngine`` checks its catalog when it is made, before any device moves).
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Generic, TypeVar

from acq import AcqError

__all__ = [
    "CatalogError",
    "ENV_CATALOG",
    "ENV_DATA_DIR",
    "Location",
    "PerLocation",
    "check_location",
    "data_dir",
    "default_location",
    "location",
]

ENV_CATALOG = "ACQ_CATALOG"
ENV_DATA_DIR = "ACQ_DATA_DIR"
DB_FILE = "catalog.db"
FILES = "files"

_SQLITE = "sqlite+aiosqlite"
_POSTGRES = "postgresql+asyncpg"
_SCHEMES = {
    "sqlite": _SQLITE,
    _SQLITE: _SQLITE,
    "postgresql": _POSTGRES,
    "postgres": _POSTGRES,
    _POSTGRES: _POSTGRES,
}
_SQLITE_HEADER = b"SQLite format 3\x00"
_ELSEWHERE = "give another location (RunEngine(catalog=...), acq --catalog or ACQ_CATALOG)"
T = TypeVar("T")
_PASSWORD = re.compile(r"(?<=://)([^/:@]*):[^/@]*@")


class CatalogError(AcqError):
    """The catalog cannot store or find something; the message says what and where."""


class PerLocation(Generic[T]):
    """One object per location in this process, made on first use (thread-safe)."""

    def __init__(self, make: Callable[[Location], T]) -> None:
        self._make = make
        self._made: dict[Location, T] = {}
        self._lock = threading.Lock()

    def __call__(self, where: Location) -> T:
        with self._lock:
            made = self._made.get(where)
            if made is None:
                made = self._made[where] = self._make(where)
            return made

    def __contains__(self, where: object) -> bool:
        with self._lock:
            return where in self._made

    def values(self) -> list[T]:
        """Everything made so far."""
        with self._lock:
            return list(self._made.values())


class Location:
    """A resolved catalog location: its SQLAlchemy URL and its files directory."""

    def __init__(self, url: str, files_dir: Path) -> None:
        self.url = url
        self.files_dir = files_dir
        self.dialect = url.split("+", 1)[0].split(":", 1)[0]

    @property
    def path(self) -> Path | None:
        """The SQLite database file, or None for a server."""
        if self.dialect != "sqlite":
            return None
        return Path(self.url.split(":///", 1)[1])

    def __str__(self) -> str:
        """The file path for SQLite, the URL without its password for a server."""
        path = self.path
        return str(path) if path is not None else _masked(self.url)

    def __repr__(self) -> str:
        return f"Location({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Location) and other.url == self.url

    def __hash__(self) -> int:
        return hash(self.url)


def data_dir() -> Path:
    """``ACQ_DATA_DIR`` if set, else the per-user data directory of acq."""
    env = os.environ.get(ENV_DATA_DIR)
    if env:
        return Path(env).expanduser().absolute()
    import platformdirs

    return Path(platformdirs.user_data_dir("acq", appauthor=False))


def default_location() -> Location:
    """The catalog a RunEngine gets when told nothing (see the module docstring)."""
    env = os.environ.get(ENV_CATALOG)
    if env:
        return location(env)
    return location(data_dir() / DB_FILE)


def location(
    spec: str | os.PathLike[str], files_dir: str | os.PathLike[str] | None = None
) -> Location:
    """Resolve a URL or a SQLite path into a :class:`Location`.

    Raises:
        CatalogError: an unsupported database, or an in-memory SQLite database (the
            writer and the readers need to share it: use a file).
    """
    text = os.fspath(spec)
    if "://" in text:
        scheme, rest = text.split("://", 1)
        driver = _SCHEMES.get(scheme.lower())
        if driver is None:
            raise CatalogError(
                f"unsupported catalog URL {_masked(text)!r}: use "
                "sqlite:///path/to/file.db (or just a path) or postgresql://user@host/db"
            )
        if driver == _SQLITE:
            path_text = rest[1:] if rest.startswith("/") else rest
            if path_text in ("", ":memory:") or "mode=memory" in path_text:
                raise CatalogError(
                    f"an in-memory SQLite catalog ({text!r}) cannot be shared by the writer "
                    "and the readers: give a file (a temporary directory will do) or "
                    "catalog=None for no catalog"
                )
            return _sqlite(Path(path_text), files_dir)
        url = f"{driver}://{rest}"
        folder = Path(files_dir) if files_dir is not None else data_dir() / FILES
        return Location(url, folder.expanduser().absolute())
    if not text:
        raise CatalogError("the catalog location is empty: give a path or a URL")
    return _sqlite(Path(text), files_dir)


def _masked(url: str) -> str:
    return _PASSWORD.sub(r"\1:***@", url)


def _sqlite(path: Path, files_dir: str | os.PathLike[str] | None) -> Location:
    path = path.expanduser().absolute()
    folder = (
        Path(files_dir).expanduser().absolute() if files_dir is not None else path.parent / FILES
    )
    return Location(f"{_SQLITE}:///{path}", folder)


def check_location(where: Location, *, write: bool, opened: bool = False) -> None:
    """Raise one clear :class:`CatalogError` when a SQLite ``where`` cannot be a catalog.

    File system checks only (no database is opened, nothing is created): the path is a
    folder, a file that is not a SQLite database, unreadable, or -- with ``write`` --
    read-only, or in a folder that cannot be written or created. Reading (``write``
    False), the file must exist. A server (PostgreSQL) is not checked here.

    ``opened``: this process already has the database open (``where in database``): it
    is a catalog, and its file must not be opened again here -- closing any descriptor of
    a file drops every POSIX lock this process holds on it, SQLite's included, and two
    writers then corrupt it (sqlite.org, "How To Corrupt An SQLite Database File", 2.2).

    Raises:
        CatalogError: naming the path, what is wrong and what to do.
    """
    path = where.path
    if path is None or opened:
        return
    if path.is_dir():
        raise CatalogError(
            f"the catalog {path} is a folder, not a database file: give a file path such "
            f"as {path / DB_FILE}"
        )
    if path.exists():
        _check_file(path, write)
    elif write:
        _check_creatable(path)
    else:
        raise CatalogError(
            f"there is no catalog at {path}: check the path (a RunEngine creates the "
            "catalog with its first run; reading never does)"
        )


def _check_file(path: Path, write: bool) -> None:
    try:
        with path.open("rb") as file:
            header = file.read(len(_SQLITE_HEADER))
    except OSError as exc:
        raise CatalogError(f"cannot read the catalog {path}: {exc.strerror}") from None
    if header and header != _SQLITE_HEADER:
        raise CatalogError(
            f"{path} is not a catalog (not a SQLite database): give the path of a catalog, "
            "or of a file that does not exist yet"
        )
    if not write:
        return
    if not os.access(path, os.W_OK):
        raise CatalogError(f"the catalog {path} is read-only: make it writable or {_ELSEWHERE}")
    if not os.access(path.parent, os.W_OK | os.X_OK):
        raise CatalogError(
            f"the folder of the catalog {path} is read-only (SQLite writes its journal "
            f"beside the database): make {path.parent} writable or {_ELSEWHERE}"
        )


def _check_creatable(path: Path) -> None:
    existing = path.parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise CatalogError(
            f"cannot create the folder of the catalog {path}: {existing} is a file; {_ELSEWHERE}"
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise CatalogError(
            f"cannot create the catalog {path}: the folder {existing} is read-only; {_ELSEWHERE}"
        )
