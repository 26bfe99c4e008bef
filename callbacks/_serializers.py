"""Document files: a JSON Lines or msgpack file per run, and readers that replay them.

::

    RE.subscribe(JSONLinesWriter("~/data/docs"), critical=True)
    ...
    for name, doc in read_jsonl(f"~/data/docs/{uid}.jsonl"):
        table(name, doc)

A writer is an ordinary subscriber. Each run's documents go to ``<start uid>.jsonl``
(or ``.msgpack``) in the writer's directory, in the order they came, every document
type included (start, descriptor, event, event_page, stop, resource, datum,
datum_page, stream_resource, stream_datum). The file is flushed after each document,
so a crash loses at most the document being written; the readers skip such a cut-off
last record. Subscribe a writer with ``critical=True`` to make the run fail, rather
than go on unrecorded, if the disk does.

Formats:

* **JSON Lines**: one line per document, the JSON array ``["name", {...}]``. numpy
  arrays are written as (nested) lists and read back as lists; numpy scalars as plain
  numbers; tuples as lists. Non-finite floats are written as ``NaN``/``Infinity``,
  which Python's :mod:`json` reads back (strict JSON parsers do not).
* **msgpack**: a sequence of msgpack arrays ``[name, {...}]``. numpy arrays round-trip
  exactly (dtype, byte order and shape): each is msgpack extension type 1 whose
  payload is the msgpack array ``[descr, shape, data]`` (``descr`` as in
  :func:`numpy.lib.format.dtype_to_descr`, ``data`` the raw bytes in C order).
  Object arrays become lists; numpy scalars plain numbers; tuples lists.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, Self, cast

import msgpack  # pyright: ignore[reportMissingTypeStubs]
import numpy as np
from event_model import DocumentNames
from numpy.lib.format import descr_to_dtype, dtype_to_descr

__all__ = [
    "DocumentFileWriter",
    "JSONLinesWriter",
    "MsgpackWriter",
    "read_jsonl",
    "read_msgpack",
    "to_msgpack",
    "from_msgpack",
]

_NDARRAY_EXT = 1  # msgpack extension type code of a numpy array
_msgpack: Any = msgpack  # the package has no type information

Document = dict[str, Any]


class DocumentFileWriter:
    """Write each run's documents to a file of their own (base of the writers).

    Args:
        directory: Where the files go (created if missing).
        fsync: Also ask the operating system to put each document on disk (slower;
            without it a crash of the process loses nothing, a power cut may).

    Attributes:
        suffix: The file name's ending (``.jsonl``, ``.msgpack``).
    """

    suffix = ""

    def __init__(self, directory: str | os.PathLike[str], *, fsync: bool = False) -> None:
        self.directory = Path(directory).expanduser()
        self._fsync = fsync
        self._files: dict[str, IO[bytes]] = {}  # open run uid -> its file
        self._owner: dict[str, str] = {}  # descriptor/resource uid -> run uid
        self._owned: dict[str, list[str]] = {}  # run uid -> the keys it owns
        self._paths: dict[str, Path] = {}

    @property
    def paths(self) -> dict[str, Path]:
        """The file of every run written so far, by start uid."""
        return dict(self._paths)

    def encode(self, name: str, doc: Document) -> bytes:
        """One document as the bytes of one record."""
        raise NotImplementedError(type(self).__name__)

    def __call__(self, name: str, doc: Document) -> None:
        """Write one document to the file of its run."""
        run = self._open(doc["uid"]) if name == "start" else self._run_of(name, doc)
        file = self._files[run]
        file.write(self.encode(name, doc))
        file.flush()
        if self._fsync:
            os.fsync(file.fileno())
        if name in ("descriptor", "resource", "stream_resource"):
            self._owner[doc["uid"]] = run
            self._owned[run].append(doc["uid"])
        elif name == "stop":
            self._close(run)

    def close(self) -> None:
        """Close the files of runs still open (e.g. after the process was interrupted)."""
        for run in list(self._files):
            self._close(run)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _open(self, run: str) -> str:
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"{run}{self.suffix}"
        try:
            self._files[run] = open(path, "xb")  # noqa: SIM115 -- open until the run's stop
        except FileExistsError:
            raise FileExistsError(
                f"{type(self).__name__}: {path} exists; a run's file is never overwritten"
            ) from None
        self._owned[run] = []
        self._paths[run] = path
        return run

    def _close(self, run: str) -> None:
        self._files.pop(run).close()
        for key in self._owned.pop(run):
            self._owner.pop(key, None)

    def _run_of(self, name: str, doc: Document) -> str:
        """The open run a (non-start) document belongs to."""
        if name in ("stop", "descriptor"):
            return self._known_run(name, "run_start", doc["run_start"])
        if name in ("event", "event_page"):
            return self._lookup(name, "descriptor", doc["descriptor"])
        if name in ("datum", "datum_page"):
            return self._lookup(name, "resource", doc["resource"])
        if name == "stream_datum":
            return self._lookup(name, "stream_resource", doc["stream_resource"])
        if name in ("resource", "stream_resource"):
            if doc.get("run_start"):
                return self._known_run(name, "run_start", doc["run_start"])
            if len(self._files) == 1:  # run_start is optional in these documents
                return next(iter(self._files))
            raise ValueError(
                f"{type(self).__name__}: a {name} document without run_start arrived while "
                f"{len(self._files)} runs are open; cannot tell which run's file it belongs to"
            )
        raise ValueError(f"{type(self).__name__}: unknown document name {name!r}")

    def _known_run(self, name: str, field: str, run: str) -> str:
        if run not in self._files:
            raise ValueError(
                f"{type(self).__name__}: a {name} document's {field} {run!r} is not an open "
                "run (its start document was not written by this writer, or it has stopped)"
            )
        return run

    def _lookup(self, name: str, field: str, key: str) -> str:
        run = self._owner.get(key)
        if run is None:
            raise ValueError(
                f"{type(self).__name__}: a {name} document's {field} {key!r} is not a "
                "document of a run this writer has open"
            )
        return run


# -- JSON Lines ---------------------------------------------------------------------------
def _json_default(value: object) -> object:
    if isinstance(value, np.ndarray):
        return cast(object, value.tolist())
    if isinstance(value, np.generic):
        return cast(object, value.item())
    raise TypeError(f"{type(value).__name__} {value!r} has no JSON form")


class JSONLinesWriter(DocumentFileWriter):
    """Write each run to ``<directory>/<start uid>.jsonl``, one document per line.

    numpy arrays are written as lists (see the module docstring). Read the file back
    with :func:`read_jsonl`.
    """

    suffix = ".jsonl"

    def encode(self, name: str, doc: Document) -> bytes:
        """``["name", {...}]`` and a newline."""
        return (json.dumps([name, doc], default=_json_default) + "\n").encode()


def read_jsonl(path: str | os.PathLike[str]) -> Iterator[tuple[str, Document]]:
    """Yield the ``(name, doc)`` pairs of a JSON Lines document file, in order.

    A last line cut off mid-write (a crash) is skipped.

    Raises:
        ValueError: A line is not a document record (names the file and line).
    """
    path = Path(path).expanduser()
    with path.open("rb") as file:
        for number, line in enumerate(file, 1):
            try:
                record = json.loads(line)
            except ValueError as exc:
                if not line.endswith(b"\n"):
                    return  # the line being written when the writer stopped
                raise ValueError(f"{path}:{number}: not a JSON document record: {exc}") from None
            yield _checked(record, f"{path}:{number}")


# -- msgpack ------------------------------------------------------------------------------
def _own_msgpack() -> Any:
    """Msgpack's own Packer, Unpacker and unpackb.

    ``msgpack_numpy.patch()`` -- bluesky-kafka calls it when imported -- replaces the
    package's names with versions that turn numpy arrays into maps of their own before
    acq's ``default`` sees them: a file or message written after that import would read
    back differently. The module msgpack takes its names from is left alone.
    """
    try:
        from msgpack import _cmsgpack as implementation  # pyright: ignore
    except ImportError:  # a pure-Python msgpack
        from msgpack import fallback as implementation  # pyright: ignore
    return implementation


_impl = _own_msgpack()


def _msgpack_default(value: object) -> object:
    if isinstance(value, np.ndarray):
        array = cast(np.ndarray[Any, np.dtype[Any]], value)
        if array.dtype.hasobject:
            return cast(object, array.tolist())
        header = [dtype_to_descr(array.dtype), list(array.shape)]
        payload = cast(bytes, _impl.Packer().pack([*header, np.ascontiguousarray(array).tobytes()]))
        return _msgpack.ExtType(_NDARRAY_EXT, payload)
    if isinstance(value, np.generic):
        return cast(object, value.item())
    raise TypeError(f"{type(value).__name__} {value!r} has no msgpack form")


def _msgpack_ext(code: int, data: bytes) -> object:
    if code != _NDARRAY_EXT:
        return _msgpack.ExtType(code, data)
    descr, shape, raw = cast(tuple[Any, list[int], bytes], _impl.unpackb(data, raw=False))
    return np.frombuffer(bytearray(raw), dtype=descr_to_dtype(descr)).reshape(shape)


class MsgpackWriter(DocumentFileWriter):
    """Write each run to ``<directory>/<start uid>.msgpack``, one record per document.

    numpy arrays round-trip exactly (see the module docstring). Read the file back with
    :func:`read_msgpack`.
    """

    suffix = ".msgpack"

    def encode(self, name: str, doc: Document) -> bytes:
        """The msgpack array ``[name, {...}]``."""
        return to_msgpack(name, doc)


def to_msgpack(name: str, doc: Document) -> bytes:
    """One document as the msgpack record ``[name, {...}]`` of acq's files and messages.

    numpy arrays round-trip exactly (see the module docstring); :func:`from_msgpack`
    reads it back.
    """
    packer = _impl.Packer(default=_msgpack_default, use_bin_type=True)
    return cast(bytes, packer.pack([name, doc]))


def from_msgpack(data: bytes) -> tuple[str, Document]:
    """The ``(name, doc)`` of a record made by :func:`to_msgpack`.

    Raises:
        ValueError: ``data`` is not such a record (says what it found).
    """
    try:
        record: object = _impl.unpackb(data, raw=False, ext_hook=_msgpack_ext, strict_map_key=False)
    except Exception as exc:  # noqa: BLE001 -- msgpack raises many kinds; all mean "not ours"
        raise ValueError(f"not msgpack: {exc}") from None
    return _checked(record, "message")


def read_msgpack(path: str | os.PathLike[str]) -> Iterator[tuple[str, Document]]:
    """Yield the ``(name, doc)`` pairs of a msgpack document file, in order.

    A last record cut off mid-write (a crash) is skipped.

    Raises:
        ValueError: A record is not a document record (names the file and record).
    """
    path = Path(path).expanduser()
    with path.open("rb") as file:
        unpacker = _impl.Unpacker(
            file, raw=False, ext_hook=_msgpack_ext, max_buffer_size=0, strict_map_key=False
        )
        for number, record in enumerate(cast(Iterator[object], unpacker), 1):
            yield _checked(record, f"{path}: record {number}")


def _checked(record: object, where: str) -> tuple[str, Document]:
    if isinstance(record, list) and len(cast(list[object], record)) == 2:
        name, doc = cast(list[object], record)
        if isinstance(name, str) and name in DocumentNames.__members__ and isinstance(doc, dict):
            return name, cast(Document, doc)
    raise ValueError(f"{where}: not a [name, document] record: {repr(cast(object, record))[:80]}")
