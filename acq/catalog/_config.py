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

Nothing here imports SQLAlchemy: choosing a location costs nothing at ``import acq``.
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
