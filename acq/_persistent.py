"""PersistentDict: a metadata mapping that survives sessions and crashes.

Use it as the RunEngine's stashed metadata::

    RE.md = PersistentDict("~/.local/share/acq/md")

The contents live in one JSON file, ``metadata.json``, inside the given directory: a JSON
object whose members are the mapping's items, in insertion order. It is plain, indented
JSON (non-ASCII characters escaped), so it can be read by any tool and edited by hand
while no session is using it.

Durability: every mutation rewrites the whole file before the call returns, atomically.
The new contents go to a temporary file in the same directory, which is flushed and
fsync'd, then ``os.replace``'d over ``metadata.json``; the directory is fsync'd last. A
process killed at any moment leaves either the old or the new contents on disk, never a
truncated or empty file (at worst a stray ``.metadata-*.tmp`` file, which is ignored).

Memory follows disk: the mapping is changed only after the write succeeded, so a value
that cannot be stored, or a failed write (disk full, permissions), leaves both the file
and the mapping as they were.

Only JSON data can be stored: ``str``, ``int``, ``float``, ``bool``, ``None``, lists and
tuples, and dicts (any ``Mapping``) with ``str`` keys, nested freely. Numpy scalars and
arrays are converted to plain Python. Non-finite floats are written as ``NaN`` and
``Infinity``, the JSON extension Python's :mod:`json` reads back. Values are stored as
their JSON form, a copy: a tuple is stored, and read back, as a list; later changes to
the object you assigned do not reach the mapping.

Nested in-place mutation is not tracked: ``md["sample"]["temperature"] = 300`` changes
the value in memory but writes nothing. Reassign the top-level key, or call
:meth:`PersistentDict.flush` afterwards.

Writes are serialized by a lock, so threads may share one instance. Two instances on the
same directory do not see each other's changes (until :meth:`PersistentDict.reload`);
the last one to write wins.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import threading
from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, cast

import numpy as np

from ._errors import MetadataError

if TYPE_CHECKING:
    from _typeshed import SupportsKeysAndGetItem

__all__ = ["PersistentDict"]

_FILENAME: Final = "metadata.json"
_TMP_PREFIX: Final = ".metadata-"
_TMP_SUFFIX: Final = ".tmp"
_ALLOWED: Final = (
    "str, int, float, bool, None, list, tuple, dict with str keys, numpy scalars and arrays"
)


class PersistentDict(MutableMapping[str, Any]):
    """A ``dict`` of metadata kept in sync with a JSON file in ``directory``.

    Reads come from memory. Every mutation (``md[k] = v``, ``del md[k]``, ``update``,
    ``pop``, ``popitem``, ``setdefault``, ``clear``) is written to disk atomically before
    it returns; see the module docstring for the file format and the guarantees.

    Args:
        directory: Where the data file lives. ``~`` is expanded, a relative path is made
            absolute now, and the directory (with its parents) is created if missing.

    Raises:
        MetadataError: The data file exists but cannot be read or is not a JSON object.
            Nothing is overwritten; fix or move the file away.
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self._directory = Path(directory).expanduser().absolute()
        self._directory.mkdir(parents=True, exist_ok=True)
        self._file = self._directory / _FILENAME
        self._lock = threading.RLock()
        self._data: dict[str, Any] = self._load()

    @property
    def directory(self) -> Path:
        """The directory holding the data file (absolute, ``~`` expanded)."""
        return self._directory

    @property
    def file(self) -> Path:
        """The JSON file holding the contents, ``directory / "metadata.json"``."""
        return self._file

    # -- reading: memory only ---------------------------------------------------------

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self._directory)!r}, {self._data!r})"

    # -- mutating: each one is one atomic write ---------------------------------------

    def __setitem__(self, key: str, value: Any) -> None:
        _check_key(key)
        plain = _to_plain(value, _where(key))
        with self._lock:
            new = dict(self._data)
            new[key] = plain
            self._commit(new)

    def __delitem__(self, key: str) -> None:
        with self._lock:
            new = dict(self._data)
            del new[key]
            self._commit(new)

    def clear(self) -> None:
        """Remove every item, in one write."""
        with self._lock:
            self._commit({})

    def update(
        self,
        other: SupportsKeysAndGetItem[str, Any] | Iterable[tuple[str, Any]] = (),
        /,
        **kwargs: Any,
    ) -> None:
        """Update from a mapping and/or key-value pairs and keywords, like ``dict.update``.

        All or nothing: every key and value is checked first, then everything is written
        at once.

        Raises:
            TypeError: A key is not a ``str`` or a value cannot be stored; nothing changed.
        """
        items: list[tuple[Any, Any]]
        if hasattr(other, "keys"):
            mapping = cast("SupportsKeysAndGetItem[str, Any]", other)
            # Like dict.update: a .keys() method is what makes ``other`` a mapping.
            items = [(key, mapping[key]) for key in mapping.keys()]  # noqa: SIM118
        else:
            items = list(cast("Iterable[tuple[str, Any]]", other))
        items.extend(kwargs.items())
        checked: list[tuple[str, Any]] = []
        for key, value in items:
            _check_key(key)
            checked.append((key, _to_plain(value, _where(key))))
        if not checked:
            return
        with self._lock:
            new = dict(self._data)
            new.update(checked)
            self._commit(new)

    def setdefault(self, key: str, default: Any = None) -> Any:
        """Return ``self[key]``, first storing ``default`` there if ``key`` is missing.

        What is returned is the stored value (its JSON form: a tuple comes back a list).
        """
        with self._lock:
            if key not in self._data:
                self[key] = default
            return self._data[key]

    # -- explicit disk operations -----------------------------------------------------

    def flush(self) -> None:
        """Write the current contents to disk.

        Needed only after mutating a nested value in place (``md["a"]["b"] = 1``), which
        is not tracked. The in-memory objects are left as they are.

        Raises:
            TypeError: Something mutated in place cannot be stored; nothing was written.
        """
        with self._lock:
            self._commit(self._data)

    def reload(self) -> None:
        """Discard the in-memory contents and read the file again.

        Raises:
            MetadataError: The data file cannot be read or is not a JSON object; the
                in-memory contents are kept.
        """
        with self._lock:
            self._data = self._load()

    # -- internals --------------------------------------------------------------------

    def _load(self) -> dict[str, Any]:
        try:
            raw = self._file.read_bytes()
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise MetadataError(
                f"cannot read persistent metadata file {str(self._file)!r}: {exc}"
            ) from exc
        try:
            data: object = json.loads(raw)
        except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
            raise MetadataError(
                f"persistent metadata file {str(self._file)!r} is not valid JSON ({exc}); "
                "acq will not overwrite it: repair it, or move it away to start empty"
            ) from exc
        if not isinstance(data, dict):
            raise MetadataError(
                f"persistent metadata file {str(self._file)!r} holds a JSON "
                f"{type(data).__name__}, not an object; acq will not overwrite it: "
                "repair it, or move it away to start empty"
            )
        return cast("dict[str, Any]", data)

    def _commit(self, new: dict[str, Any]) -> None:
        """Write ``new`` to disk atomically, then make it the contents. Hold the lock."""
        plain = {key: _to_plain(value, _where(key)) for key, value in new.items()}
        text = json.dumps(plain, indent=2, ensure_ascii=True) + "\n"
        _atomic_write(self._file, text.encode("ascii"))
        self._data = new


def _atomic_write(path: Path, data: bytes) -> None:
    """Replace ``path``'s contents with ``data`` so that a crash leaves old or new."""
    fd, tmp = tempfile.mkstemp(prefix=_TMP_PREFIX, suffix=_TMP_SUFFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_directory(path.parent)


def _fsync_directory(directory: Path) -> None:
    """Make the rename durable. Best effort: the new contents are already in place."""
    if os.name != "posix":  # Windows cannot open a directory; NTFS journals renames
        return
    with contextlib.suppress(OSError):  # some filesystems refuse fsync on a directory
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _check_key(key: object) -> None:
    if not isinstance(key, str):
        raise TypeError(
            f"persistent metadata keys must be str; got {key!r} of type {type(key).__name__}"
        )


def _where(key: str) -> str:
    return f"md[{key!r}]"


def _to_plain(value: object, where: str, _seen: frozenset[int] = frozenset()) -> Any:
    """Return ``value`` as fresh JSON data (dict, list, str, int, float, bool, None).

    Args:
        value: What to convert.
        where: How to name ``value`` in an error, e.g. ``md['sample']['size'][0]``.
        _seen: Ids of the containers enclosing ``value``, to detect reference cycles.

    Raises:
        TypeError: ``value`` or something inside it cannot be stored; the message names it.
    """
    if value is None or type(value) in (str, int, float, bool):
        return value  # the common case, exact types, no copy needed
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int(value)  # IntEnum and other subclasses: store the number
    if isinstance(value, float):
        return float(value)  # includes numpy.float64
    if isinstance(value, str):
        return str.__str__(value)  # StrEnum and other subclasses: store the text
    if isinstance(value, np.ndarray):
        return _to_plain(cast("object", value.tolist()), where, _seen)
    if isinstance(value, np.generic):
        return _to_plain(cast("object", value.item()), where, _seen)
    if isinstance(value, Mapping | list | tuple):
        container = cast("Mapping[object, object] | list[object] | tuple[object, ...]", value)
        if id(container) in _seen:
            raise TypeError(
                f"cannot store {where}: it contains itself (a reference cycle); "
                "persistent metadata must be a tree"
            )
        seen = _seen | {id(container)}
        if isinstance(container, Mapping):
            result: dict[str, Any] = {}
            for key, item in container.items():
                if not isinstance(key, str):
                    raise TypeError(
                        f"cannot store {where}: dict keys must be str; got {key!r} "
                        f"of type {type(key).__name__}"
                    )
                result[key] = _to_plain(item, f"{where}[{key!r}]", seen)
            return result
        return [_to_plain(item, f"{where}[{i}]", seen) for i, item in enumerate(container)]
    raise _cannot_store(value, where)


def _cannot_store(value: object, where: str) -> TypeError:
    cls = type(value)
    name = (
        cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
    )
    return TypeError(
        f"cannot store {where}: a value of type {name} is not allowed in persistent "
        f"metadata (allowed: {_ALLOWED})"
    )
