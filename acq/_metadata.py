"""Metadata: the four sources of a Start document, merged and checked (reference/001).

Precedence, highest first:

1. keywords given to ``RE(plan, **md)`` (this call only, every run of the plan);
2. the plan's own metadata (``Msg('open_run', **md)``; built-in plans' ``md=``);
3. inferred: ``plan_name`` (the plan function's name), ``plan_type`` (e.g.
   ``'generator'``), and the ``versions`` of acq and the libraries it runs with;
4. ``RE.md``, the stash kept for every run (any mutable mapping, e.g. a PersistentDict).

``uid`` and ``time`` are reserved. ``scan_id`` increments from ``RE.md['scan_id']``
(1 after ``RE.md.clear()``) and is written back only when the run really opens -- with
``catalog=None``; an engine with a catalog takes it from the catalog (one more than any
it handed out or stored, or than ``RE.md['scan_id']``; ``acq/catalog/_scan_ids.py``), and
a ``scan_id_source`` given to the engine wins over both.
``owner``, ``group``, ``project`` must be strings when not blank; ``plan_name`` a string
(``RE.md``'s is never used, the inferred one wins, so it is not checked); ``sample`` a
string or a dict; values are strings, numbers, booleans, None, lists/tuples and (nested)
dicts.
Every violation is a :class:`MetadataError` naming the key, raised before any document of
the run is emitted; then ``RE.md_validator`` runs, then event-model's RunStart model.
``RE.md`` and the ``RE(...)`` keywords are checked already when ``RE(...)`` is called
(:func:`check_metadata`), before the plan's first message moves anything.
"""

from __future__ import annotations

import copy
import functools
import importlib.metadata
import platform
from collections.abc import Callable, Mapping
from typing import Any, cast

import event_model.basemodels as em
from pydantic import ValidationError

from ._errors import MetadataError

__all__ = [
    "RESERVED_KEYS",
    "build_start",
    "check_metadata",
    "library_versions",
    "next_scan_id",
]

RESERVED_KEYS = frozenset({"uid", "time"})
_STRING_KEYS = ("owner", "group", "project")
_INFERRED_KEYS = frozenset({"plan_name", "plan_type"})  # always inferred: RE.md's never count
DISTRIBUTION = "acq-daq"  # acq's name on PyPI ("acq" there is another project); import acq
_VERSIONED = {  # key in RE.md['versions'] -> distribution
    "acq": DISTRIBUTION,
    **{d.replace("-", "_"): d for d in ("bluesky", "event-model", "ophyd-async", "ophyd")},
    "numpy": "numpy",
    "pydantic": "pydantic",
}


@functools.cache
def library_versions() -> dict[str, str]:
    """Versions of acq and of the device/document libraries installed (read, not imported)."""
    versions = {"python": platform.python_version()}
    for key, dist in _VERSIONED.items():
        try:
            versions[key] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def next_scan_id(stash: Mapping[str, Any]) -> int:
    """The scan_id of the next run: one more than the stash's (1 if it has none)."""
    previous = stash.get("scan_id", 0)
    if isinstance(previous, bool) or not isinstance(previous, int):
        raise MetadataError(
            f"RE.md['scan_id'] is {previous!r} ({type(previous).__name__}); it must be an "
            "integer (delete it to start again at 1)"
        )
    return previous + 1


def _plain(value: Any, path: str) -> Any:
    """``value`` as plain JSON-able data; MetadataError naming ``path`` if impossible."""
    if type(value).__module__ == "numpy":  # numpy scalars (np.float64 is a float) and arrays
        return _plain(value.tolist(), path)
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for k, v in cast(Mapping[Any, Any], value).items():
            if not isinstance(k, str):
                raise MetadataError(f"metadata key {path}[{k!r}] must be a string")
            out[k] = _plain(v, f"{path}.{k}")
        return out
    if isinstance(value, tuple):  # kept a tuple, as bluesky keeps the plan's tuples
        return tuple(_plain(v, f"{path}[{i}]") for i, v in enumerate(cast(tuple[Any, ...], value)))
    if isinstance(value, list):
        return [_plain(v, f"{path}[{i}]") for i, v in enumerate(cast(list[Any], value))]
    raise MetadataError(
        f"metadata {path!r} is a {type(value).__name__} ({value!r}); metadata values must be "
        "strings, numbers, booleans, None, lists/tuples or (nested) dicts"
    )


def _check_source(md: Mapping[str, Any], source: str) -> None:
    for key in md:
        if not isinstance(key, str):  # pyright: ignore[reportUnnecessaryIsInstance]
            raise MetadataError(f"metadata key {key!r} from {source} must be a string")
        if key in RESERVED_KEYS:
            raise MetadataError(
                f"metadata key {key!r} (from {source}) is reserved: acq sets 'uid' and 'time' "
                "itself; rename your key"
            )


def _check_values(doc: dict[str, Any]) -> None:
    """Check the keys with a required type in plain merged metadata (blank ones dropped)."""
    for key in _STRING_KEYS:
        value = doc.get(key)
        if value is None or value == "":
            doc.pop(key, None)  # blank: allowed, and left out
        elif not isinstance(value, str):
            raise MetadataError(
                f"metadata {key!r} must be a string (it is searched on), got "
                f"{value!r} ({type(value).__name__})"
            )
    if "plan_name" in doc and not isinstance(doc["plan_name"], str):
        raise MetadataError(
            f"metadata 'plan_name' must be a string (it names the plan and is searched on), "
            f"got {doc['plan_name']!r} ({type(doc['plan_name']).__name__})"
        )
    if "sample" in doc and not isinstance(doc["sample"], str | dict):
        raise MetadataError(
            f"metadata 'sample' must be a string or a dict, e.g. sample='Si' or "
            f"sample={{'name': 'Si', 'thickness': 1}}; got {doc['sample']!r}"
        )


def check_metadata(
    *,
    stash: Mapping[str, Any],
    call_md: Mapping[str, Any],
    scan_id_from_stash: bool = True,
    normalizer: Callable[[dict[str, Any]], Any] | None = None,
) -> None:
    """Check the metadata known when ``RE(...)`` is called, before the plan's first message.

    ``RE.md`` and the call's keywords (which take precedence) get the checks of
    :func:`build_start`, so that bad metadata is refused before any device acts. The
    plan's own metadata is only known at its open_run, where :func:`build_start` checks
    the whole again; ``RE.md_validator`` runs there only, as it may require keys that the
    plan gives. With a ``normalizer`` (``RE.md_normalizer``), which may rewrite anything,
    only the keys are checked here.

    Raises:
        MetadataError: naming the key and what is wrong.
    """
    _check_source(stash, "RE.md")
    _check_source(call_md, "RE(...) keywords")
    if scan_id_from_stash:
        next_scan_id(stash)
    if normalizer is None:
        # RE.md's plan_name and plan_type are always replaced by the inferred ones
        merged = {k: v for k, v in stash.items() if k not in _INFERRED_KEYS} | dict(call_md)
        _check_values({key: _plain(value, key) for key, value in merged.items()})


def build_start(
    *,
    uid: str,
    time: float,
    stash: Mapping[str, Any],
    inferred: Mapping[str, Any],
    plan_md: Mapping[str, Any],
    call_md: Mapping[str, Any],
    validator: Callable[[dict[str, Any]], Any] | None,
    normalizer: Callable[[dict[str, Any]], Any] | None = None,
    scan_id: int | None = None,
) -> tuple[dict[str, Any], int]:
    """Merge and check the four sources; return the Start document and the new scan_id.

    ``normalizer`` (``RE.md_normalizer``) may rewrite the merged metadata before it is
    checked; ``scan_id`` (from ``RE.scan_id_source``) replaces the stash's next one.

    Raises:
        MetadataError: naming the key and what is wrong, before anything is emitted.
    """
    _check_source(stash, "RE.md")
    _check_source(plan_md, "the plan (open_run)")
    _check_source(call_md, "RE(...) keywords")
    if scan_id is None:
        scan_id = next_scan_id(stash)
    merged: dict[str, Any] = {**stash, "scan_id": scan_id, **inferred, **plan_md, **call_md}
    if normalizer is not None:
        try:
            merged = dict(normalizer(merged))
        except Exception as exc:
            raise MetadataError(f"RE.md_normalizer rejected the metadata: {exc}") from exc
        _check_source(merged, "RE.md_normalizer")
    doc = {key: _plain(value, key) for key, value in merged.items()}
    if isinstance(doc["scan_id"], bool) or not isinstance(doc["scan_id"], int):
        raise MetadataError(f"metadata 'scan_id' must be an integer, got {doc['scan_id']!r}")
    _check_values(doc)
    if validator is not None:
        try:
            validator(dict(doc))
        except Exception as exc:
            raise MetadataError(f"RE.md_validator rejected the metadata: {exc}") from exc
    doc["uid"] = uid
    doc["time"] = time
    try:
        em.RunStart.model_validate(copy.deepcopy(doc))  # the model rewrites nested dicts
    except ValidationError as err:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors()
        )
        raise MetadataError(f"metadata does not fit the Start document: {problems}") from None
    return doc, scan_id
