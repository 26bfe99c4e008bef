"""Documents: composing one run's Start, Descriptors, Events, Pages, assets and Stop.

A :class:`RunBundler` owns everything about one open run: its Start, its streams (each
with a descriptor and a ``seq_num`` counter that starts at 1), the bundle of readings
between ``create`` and ``save``, the describe cache (filled on a device's first read in
the run), the configuration cache (per stream, as bluesky: read when a device first
enters a stream's descriptor, again after ``configure``), the flyers kicked off and not
yet collected, monitors, and the Stop. It hands each finished document to the engine's
``emit`` coroutine, which validates it with event-model's pydantic models and passes it
to subscribers.

As in bluesky, a device is described once per stream it is read into (its
``describe()`` is cached per stream, until ``configure`` drops it), and a stream's
descriptor stands for the *set* of objects read: reading them in another order than they
were declared or first read in makes no new descriptor.

Compatibility with bluesky's document consumers and classic (v1) ophyd devices: every
data key names its device (``object_name``); ``collect_asset_docs`` gets an index only
if it takes one (ophyd-async) and none otherwise (ophyd v1); a flyer collected without a
declared stream gets the streams its ``describe_collect()`` names (where bluesky asks for
a ``declare_stream`` first); a StreamResource in event-model's pre-1.20 form
(``root``/``resource_path``/``spec``/``resource_kwargs``) is translated into the current
one (``uri``/``mimetype``/``parameters``, see :func:`current_stream_resource`), never
emitted as it is.

Why one module of ~950 lines: every part (bundles, descriptors, flyer pages, assets,
monitors, the Stop) reads and advances the same per-stream state (descriptor uid,
seq_num counter, data keys, configuration); split up, that state would have to be passed
between modules on the hot path. (The translation of pre-1.20 StreamResources shares no
state and could live in a module of its own.)

Validation: every document is checked against event-model's own models before it leaves
the engine (:func:`validate_document`), with two shortcuts that keep the check from
dominating the hot path without letting an invalid document through:

* Events: the first event of each descriptor is validated in full. Later events of that
  descriptor are built by the same code from the same parts (a fresh uid, a float time,
  an int seq_num, the descriptor's uid) and their data keys are checked against the
  descriptor's on every save; what the model could still reject cannot differ.
* Event Pages are checked on a one-row projection plus equal column lengths, so that a
  million-row page costs O(columns), not O(rows).

Event uids are a per-stream random prefix plus a counter that never goes back (so a
replay after a rewind never repeats one): unique like uuid4, at a fraction of the cost.
"""

from __future__ import annotations

import copy
import inspect
import re
import time
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Coroutine,
    Iterable,
    Mapping,
)
from pathlib import PurePosixPath, PureWindowsPath
from typing import Any, cast
from urllib.parse import quote

import event_model.basemodels as em
from pydantic import BaseModel, ValidationError

from ._errors import (
    AcqInternalError,
    DataKeyCollisionError,
    DeviceError,
    IllegalMessageSequence,
    UnsupportedMessageError,
)
from ._status import device_name
from ._uid import EventUids, new_uid

__all__ = [
    "Emit",
    "Publish",
    "RunBundler",
    "call_maybe_async",
    "current_stream_resource",
    "iterate_maybe_async",
    "spec_mimetype",
    "validate_document",
]

Emit = Callable[[str, dict[str, Any]], Awaitable[None]]
"""Validate a document, then hand it to the subscribers."""
Publish = Callable[[str, dict[str, Any]], Coroutine[Any, Any, None] | None]
"""Hand a document to the subscribers; an awaitable if that takes waiting."""

_MODELS: Mapping[str, type[BaseModel]] = {
    "start": em.RunStart,
    "descriptor": em.EventDescriptor,
    "event": em.Event,
    "event_page": em.EventPage,
    "stop": em.RunStop,
    "resource": em.Resource,
    "datum": em.Datum,
    "datum_page": em.DatumPage,
    "stream_resource": em.StreamResource,
    "stream_datum": em.StreamDatum,
}


def validation_problems(error: ValidationError) -> str:
    """One line per problem: the field path and what is wrong with it."""
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or '<document>'}: {e['msg']}" for e in error.errors()
    )


def validate_document(name: str, doc: Mapping[str, Any]) -> None:
    """Check ``doc`` against event-model's model for ``name``.

    Raises:
        AcqInternalError: the document is invalid; the message names each bad field.
    """
    model = _MODELS.get(name)
    if model is None:
        raise AcqInternalError(f"acq tried to emit a document of unknown kind {name!r}")
    if name == "event_page":
        doc = _page_projection(doc)
    elif name not in ("event", "stop"):
        # event-model's models with extra keys rewrite nested dicts in place: check a copy
        doc = copy.deepcopy(doc)
    try:
        model.model_validate(doc)
    except ValidationError as err:
        raise AcqInternalError(
            f"acq built an invalid {name} document ({validation_problems(err)}); "
            "this is a bug in acq or in a device's describe()/read(); please report it"
        ) from None


def _page_projection(page: Mapping[str, Any]) -> dict[str, Any]:
    lengths = {len(page.get("seq_num", ())), len(page.get("time", ())), len(page.get("uid", ()))}
    for column in ("data", "timestamps", "filled"):
        lengths.update(len(v) for v in page.get(column, {}).values())
    if len(lengths) > 1:
        raise AcqInternalError(f"event_page columns have different lengths: {sorted(lengths)}")
    projection = dict(page)
    for column in ("seq_num", "time", "uid"):
        projection[column] = list(page.get(column, ())[:1])
    for column in ("data", "timestamps", "filled"):
        if column in page:
            projection[column] = {k: list(v[:1]) for k, v in page[column].items()}
    return projection


# -- StreamResource: event-model's pre-1.20 form ----------------------------------------------
# Before event-model 1.20 a StreamResource said where its data was as a handler registry
# did for a Resource: root + resource_path, a spec naming the handler, resource_kwargs.
# Since then it has a uri, a mimetype and parameters; event-model offers no converter, so
# acq translates what older devices still emit (older ophyd-async releases, bluesky's
# test devices) before validating it. The mapping is the one bluesky's TiledWriter applies to
# such documents: uri ``file://localhost/<root>/<resource_path>`` (as ophyd-async writes
# file URIs), mimetype from the spec, parameters from resource_kwargs.

_LEGACY_STREAM_RESOURCE_KEYS = ("root", "resource_path", "spec", "resource_kwargs")
_HDF5 = "application/x-hdf5"
_SPEC_MIMETYPES: Mapping[str, str] = {
    "AD_TIFF": "multipart/related;type=image/tiff",
    "NPY_SEQ": "multipart/related;type=application/x-npy",
    "PANDA": _HDF5,
}
_NOT_IN_A_MIME_SUBTYPE = re.compile(r"[^a-z0-9!#$&^_.+-]+")


def spec_mimetype(spec: str) -> str:
    """The MIME type of data a pre-1.20 StreamResource's (or a Resource's) ``spec`` names.

    ``application/x-hdf5`` for every spec naming HDF5 (``AD_HDF5_SWMR_STREAM``,
    ``ADHDF5_SWMR``, ``HDF5``, ``TPX_HDF5``, ...) and for Xspress3's (``XSP3...``) and
    PandA's, which write HDF5; TIFF and NumPy file sequences as ``multipart/related``.
    Any other spec: ``application/x-<spec lowercased>``, each run of characters a MIME
    subtype cannot hold replaced by ``-`` (``MY_FORMAT`` -> ``application/x-my_format``),
    so that the spec can still be read from the document.
    """
    upper = spec.upper()
    if "HDF5" in upper or upper.startswith("XSP3"):
        return _HDF5
    known = _SPEC_MIMETYPES.get(upper)
    if known is not None:
        return known
    return "application/x-" + _NOT_IN_A_MIME_SUBTYPE.sub("-", spec.lower())


def _file_uri(root: str, resource_path: str, windows: bool) -> str:
    """``file://localhost/...`` for ``resource_path`` below ``root`` (percent-encoded)."""
    path_type = PureWindowsPath if windows else PurePosixPath
    path = path_type(root or "/") / resource_path.lstrip("/\\")
    return "file://localhost/" + quote(path.as_posix().lstrip("/"), safe="/:")


def current_stream_resource(doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` in event-model's current StreamResource form (``doc`` itself if it is).

    A pre-1.20 document (``root``, ``resource_path``, ``spec``, ``resource_kwargs``,
    optionally ``path_semantics``; no ``uri``) becomes ``uri`` (see above), ``mimetype``
    (:func:`spec_mimetype`) and ``parameters`` (``resource_kwargs``; for HDF5 also
    ``dataset``, from ``path``, the name current readers look for); the legacy keys are
    dropped, any other key is kept.

    Raises:
        DeviceError: a pre-1.20 document without ``resource_path`` or ``spec``.
    """
    if "uri" in doc or not any(k in doc for k in _LEGACY_STREAM_RESOURCE_KEYS):
        return doc
    missing = [k for k in ("resource_path", "spec") if not isinstance(doc.get(k), str)]
    if missing:
        raise DeviceError(
            f"stream_resource {doc.get('uid')!r} is in event-model's pre-1.20 form (root, "
            f"resource_path, spec, resource_kwargs) but has no {' or '.join(map(repr, missing))}"
            ": acq cannot translate it into the current form (uri, mimetype, parameters)"
        )
    mimetype = spec_mimetype(doc["spec"])
    parameters = dict(doc.get("resource_kwargs") or {})
    if mimetype == _HDF5 and "dataset" not in parameters and "path" in parameters:
        parameters["dataset"] = parameters["path"]
    current = {
        k: v
        for k, v in doc.items()
        if k not in _LEGACY_STREAM_RESOURCE_KEYS and k != "path_semantics"
    }
    current["uri"] = _file_uri(
        doc.get("root") or "", doc["resource_path"], doc.get("path_semantics") == "windows"
    )
    current["mimetype"] = mimetype
    current["parameters"] = parameters
    return current


async def call_maybe_async(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call ``func``; await the result if it is awaitable (devices may be sync or async)."""
    result = func(*args, **kwargs)
    if hasattr(result, "__await__"):
        return await result
    return result


async def iterate_maybe_async(items: Any) -> AsyncIterator[Any]:
    """Iterate a sync or async iterable (or an awaitable giving one)."""
    if hasattr(items, "__await__"):
        items = await items
    if hasattr(items, "__aiter__"):
        async for item in items:
            yield item
    else:
        for item in items:
            yield item


INTERRUPTIONS = "interruptions"
"""The stream that records pauses, resumes and suspensions (``record_interruptions``)."""

_NO_CONFIGURATION: Mapping[str, Any] = {"data": {}, "timestamps": {}, "data_keys": {}}


class _ObjInfo:
    """What a run knows about one device: describe(), hints, whether it writes assets.

    For a flyer, ``data_keys`` are one stream's part of its describe_collect().
    """

    __slots__ = ("data_keys", "hints", "name", "obj", "read_keys", "writes_assets")

    def __init__(self, obj: Any, data_keys: dict[str, Any]) -> None:
        self.obj = obj
        self.name = device_name(obj)
        self.data_keys = data_keys
        self.read_keys: Any = frozenset(
            k for k, dk in data_keys.items() if dk.get("external") != "STREAM:"
        )
        hints: Any = getattr(obj, "hints", None)
        self.hints: dict[str, Any] | None = (
            dict(cast(Mapping[str, Any], hints)) if isinstance(hints, Mapping) else None
        )
        self.writes_assets = callable(getattr(obj, "collect_asset_docs", None))


class _Stream:
    """One named stream of a run: its current descriptor and its seq_num counter.

    It also keeps each device's configuration as first read into this stream.
    """

    __slots__ = (
        "checked",
        "configs",
        "data_keys",
        "event_keys",
        "filled",
        "infos",
        "name",
        "seq",
        "uid",
        "uids",
    )

    def __init__(self, name: str) -> None:
        self.name = name
        self.uid = ""
        self.infos: tuple[_ObjInfo, ...] = ()
        self.data_keys: dict[str, Any] = {}
        self.event_keys: frozenset[str] = frozenset()  # data_keys an event carries
        self.filled: dict[str, bool] = {}
        # id(obj) -> (obj, configuration): read on the device's first descriptor in this
        # stream and again after 'configure' (RunBundler.forget), as bluesky does
        self.configs: dict[int, tuple[Any, Mapping[str, Any]]] = {}
        self.seq = 1  # the seq_num of the next event
        self.checked = False  # has an event of the current descriptor been validated?
        self.uids = EventUids()


async def _describe(obj: Any, collect: bool = False) -> dict[str, Any]:
    method = getattr(obj, "describe_collect" if collect else "describe", None)
    if method is None:
        what = "describe_collect()" if collect else "describe()"
        raise DeviceError(f"{device_name(obj)} has no {what}; it cannot be read into a run")
    described = await call_maybe_async(method)
    if not isinstance(described, Mapping):
        raise DeviceError(f"{device_name(obj)}.describe() returned {described!r}, not a dict")
    return dict(cast(Mapping[str, Any], described))


async def _configuration(obj: Any) -> Mapping[str, Any]:
    read_conf = getattr(obj, "read_configuration", None)
    describe_conf = getattr(obj, "describe_configuration", None)
    if read_conf is None or describe_conf is None:
        return _NO_CONFIGURATION
    data_keys = dict(await call_maybe_async(describe_conf))
    readings = dict(await call_maybe_async(read_conf))
    return {
        "data": {k: v["value"] for k, v in readings.items()},
        "timestamps": {k: v["timestamp"] for k, v in readings.items()},
        "data_keys": data_keys,
    }


def _asset_docs_take_index(obj: Any) -> bool:
    """Does ``obj.collect_asset_docs`` take an index?

    ophyd-async's detectors (``WritesStreamAssets``) take one; classic ophyd's
    (``WritesExternalAssets``) take no argument. Decided from the method's signature, so
    that a TypeError raised inside a device is never mistaken for the answer. Where the
    signature cannot be read, bluesky's rule: an object with ``get_index()`` takes one.
    """
    try:
        parameters = inspect.signature(obj.collect_asset_docs).parameters.values()
    except (TypeError, ValueError):
        return callable(getattr(obj, "get_index", None))
    positional = (
        inspect.Parameter.POSITIONAL_ONLY,
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
        inspect.Parameter.VAR_POSITIONAL,
    )
    return any(p.kind in positional for p in parameters)


class RunBundler:
    """Everything about one open run; see the module docstring."""

    def __init__(self, start: dict[str, Any], emit: Emit, publish: Publish) -> None:
        self.start = start
        self.uid: str = start["uid"]
        self._emit = emit  # validates, then publishes
        self._publish = publish  # publishes (events after the first of their descriptor)
        # stream name -> id(obj) -> what obj.describe() said when first read into it
        self._described: dict[str, dict[int, _ObjInfo]] = {}
        self._bundle_described: dict[int, _ObjInfo] = {}  # the open bundle's stream's
        self._streams: dict[str, _Stream] = {}
        self._bundle_name: str | None = None
        self.bundling = False
        """True between ``create`` and ``save``/``drop`` (an attribute: read per message)."""
        self._bundle_infos: list[_ObjInfo] = []
        self._bundle_readings: list[Mapping[str, Any]] = []
        self._bundle_assets: list[tuple[str, dict[str, Any]]] = []
        self._stream_resources: dict[str, str] = {}  # stream_resource uid -> data_key
        # declare_stream's objects -> the names of the streams declared for them
        self._declared: dict[frozenset[int], list[str]] = {}
        # id(flyer) -> (flyer, its streams) for describe_collect() naming the streams
        self._legacy_streams: dict[int, tuple[Any, tuple[_Stream, ...]]] = {}
        self._takes_index: dict[int, tuple[Any, bool]] = {}  # id(obj) -> (obj, answer)
        self._uncollected: dict[int, Any] = {}  # kicked off in this run, not yet collected
        self.closed = False

    # -- bundling: create / read / save / drop -------------------------------------
    def create(self, name: str) -> None:
        """Open an event bundle for stream ``name``."""
        if self._bundle_name is not None:
            raise IllegalMessageSequence(
                f"'create' for stream {name!r} while the bundle for stream "
                f"{self._bundle_name!r} is still open: 'save' or 'drop' it first"
            )
        if not isinstance(name, str) or not name:  # pyright: ignore[reportUnnecessaryIsInstance]
            raise IllegalMessageSequence(f"'create' needs a stream name, got {name!r}")
        self._bundle_name = name
        described = self._described.get(name)  # inline: once per point
        self._bundle_described = described if described is not None else self._described_in(name)
        self.bundling = True

    def add_known(self, obj: Any, reading: Mapping[str, Any]) -> bool:
        """Add a reading of an ``obj`` this run has described, if that is all it takes.

        Returns False, having added nothing, when :meth:`add_reading` must do it: ``obj``
        is new to the run, writes assets, or was already read into this bundle.
        """
        info = self._bundle_described.get(id(obj))
        if info is None or info.obj is not obj or info.writes_assets or info in self._bundle_infos:
            return False
        self._bundle_infos.append(info)
        self._bundle_readings.append(reading)
        return True

    async def add_reading(self, obj: Any, reading: Mapping[str, Any]) -> None:
        """Add ``obj``'s reading to the open bundle (describing it on first sight)."""
        info = await self._info(obj, self._bundle_described)
        if info in self._bundle_infos:
            raise IllegalMessageSequence(
                f"{info.name} was read twice between 'create' and 'save' of stream "
                f"{self._bundle_name!r}"
            )
        self._bundle_infos.append(info)
        self._bundle_readings.append(reading)
        if info.writes_assets:
            async for item in iterate_maybe_async(self._asset_docs(obj, None)):
                self._bundle_assets.append((item[0], dict(item[1])))

    def _asset_docs(self, obj: Any, index: int | None) -> Any:
        """``obj.collect_asset_docs(index)``, or without the index if it takes none."""
        known = self._takes_index.get(id(obj))
        if known is None or known[0] is not obj:
            known = self._takes_index[id(obj)] = (obj, _asset_docs_take_index(obj))
        return obj.collect_asset_docs(index) if known[1] else obj.collect_asset_docs()

    def drop(self) -> None:
        """Discard the open bundle."""
        if self._bundle_name is None:
            raise IllegalMessageSequence("'drop' without an open bundle: send 'create' first")
        self._reset_bundle()

    def _reset_bundle(self) -> None:
        self._bundle_name = None
        self.bundling = False
        self._bundle_infos = []
        self._bundle_readings = []
        self._bundle_assets = []

    def save(self) -> Coroutine[Any, Any, None] | None:
        """Emit the open bundle as an Event (with a Descriptor first if needed).

        The usual event (same devices and keys as the stream's descriptor, no assets)
        is built and handed over here; None means it is done. Otherwise the reply is a
        coroutine that the caller awaits: a descriptor to emit, a subscriber to wait for.
        """
        name = self._bundle_name
        if name is None:
            raise IllegalMessageSequence("'save' without an open bundle: send 'create' first")
        infos = tuple(self._bundle_infos)
        readings = self._bundle_readings
        assets = self._bundle_assets
        self._reset_bundle()
        if not infos:
            return None  # nothing read: no empty events
        stream = self._streams.get(name)
        if stream is None or stream.infos != infos or assets or not stream.checked:
            return self._save(name, infos, readings, assets)
        for info, reading in zip(infos, readings):  # noqa: B905 -- built in step
            if reading.keys() != info.read_keys:
                return self._save(name, infos, readings, assets)
        return self._publish("event", self._event(stream, readings))

    async def _save(
        self,
        name: str,
        infos: tuple[_ObjInfo, ...],
        readings: list[Mapping[str, Any]],
        assets: list[tuple[str, dict[str, Any]]],
    ) -> None:
        for i, (info, reading) in enumerate(zip(infos, readings, strict=True)):
            if reading.keys() != info.read_keys:
                infos = await self._relearn(name, infos, i, reading)
        stream = self._streams.get(name)
        if stream is None or len(stream.infos) != len(infos) or set(stream.infos) != set(infos):
            stream = await self._new_descriptor(name, infos)
        elif stream.infos != infos:
            # the same objects read in another order: the same descriptor, and save()'s
            # quick check expects this order from now on
            stream.infos = infos
        if assets:
            await self._emit_assets(assets, stream, 1)
        event = self._event(stream, readings)
        if stream.checked:
            rest = self._publish("event", event)
            if rest is not None:
                await rest
        else:
            await self._emit("event", event)
            stream.checked = True

    @staticmethod
    def _event(stream: _Stream, readings: list[Mapping[str, Any]]) -> dict[str, Any]:
        """The next Event of ``stream`` from ``readings`` (its seq_num taken)."""
        data: dict[str, Any] = {}
        timestamps: dict[str, Any] = {}
        for reading in readings:
            for key, value in reading.items():
                data[key] = value["value"]
                timestamps[key] = value["timestamp"]
        seq = stream.seq
        stream.seq = seq + 1
        return {
            "uid": next(stream.uids),
            "time": time.time(),
            "descriptor": stream.uid,
            "seq_num": seq,
            "data": data,
            "timestamps": timestamps,
            "filled": dict(stream.filled),
        }

    # -- descriptors --------------------------------------------------------------------
    def _described_in(self, stream: str) -> dict[int, _ObjInfo]:
        """What the devices read into ``stream`` said of themselves (id(obj) -> info)."""
        described = self._described.get(stream)
        if described is None:
            described = self._described[stream] = {}
        return described

    @staticmethod
    async def _info(obj: Any, described: dict[int, _ObjInfo]) -> _ObjInfo:
        """``obj``'s entry in a stream's ``described``, calling describe() on first sight."""
        info = described.get(id(obj))
        if info is None or info.obj is not obj:
            info = described[id(obj)] = _ObjInfo(obj, await _describe(obj))
        return info

    async def _relearn(
        self, stream: str, infos: tuple[_ObjInfo, ...], index: int, reading: Mapping[str, Any]
    ) -> tuple[_ObjInfo, ...]:
        described = self._described_in(stream)
        described.pop(id(infos[index].obj), None)
        info = await self._info(infos[index].obj, described)
        if reading.keys() != info.read_keys:
            raise DeviceError(
                f"{info.name}.read() returned keys {sorted(reading)} but its describe() "
                f"promises {sorted(info.read_keys)}"
            )
        return (*infos[:index], info, *infos[index + 1 :])

    def forget(self, obj: Any) -> None:
        """Drop what the run knows of ``obj`` (after ``configure``): re-describe next read."""
        for described in self._described.values():
            described.pop(id(obj), None)
        for stream in self._streams.values():
            stream.configs.pop(id(obj), None)

    async def _stream_configuration(self, stream: _Stream, obj: Any) -> Mapping[str, Any]:
        known = stream.configs.get(id(obj))
        if known is None or known[0] is not obj:
            known = stream.configs[id(obj)] = (obj, await _configuration(obj))
        return known[1]

    async def _new_descriptor(self, name: str, infos: tuple[_ObjInfo, ...]) -> _Stream:
        """Emit a descriptor for stream ``name`` made of ``infos``.

        Each data key names the object that produced it (``object_name``, as bluesky's
        descriptors do: suitcase-specfile needs it).
        """
        stream = self._streams.get(name)
        if stream is None:
            stream = self._streams[name] = _Stream(name)
        data_keys: dict[str, Any] = {}
        object_keys: dict[str, list[str]] = {}
        configuration: dict[str, Any] = {}
        hints: dict[str, Any] = {}
        for info in infos:
            for key, data_key in info.data_keys.items():
                if key in data_keys:
                    raise DeviceError(
                        f"data key {key!r} of {info.name} collides with the same key of "
                        f"{data_keys[key]['object_name']} in stream {name!r}: every key of a "
                        "stream must be unique"
                    )
                data_keys[key] = {**data_key, "object_name": info.name}
            object_keys[info.name] = list(info.data_keys)
            configuration[info.name] = await self._stream_configuration(stream, info.obj)
            if info.hints is not None:
                hints[info.name] = info.hints
        doc: dict[str, Any] = {
            "uid": new_uid(),
            "time": time.time(),
            "run_start": self.uid,
            "name": name,
            "data_keys": data_keys,
            "object_keys": object_keys,
            "configuration": configuration,
            "hints": hints,
        }
        stream.uid = doc["uid"]
        stream.checked = False
        stream.infos = infos
        stream.data_keys = data_keys
        stream.event_keys = frozenset(
            k for k, dk in data_keys.items() if dk.get("external") != "STREAM:"
        )
        stream.filled = {
            k: False
            for k, dk in data_keys.items()
            if dk.get("external") is not None and dk.get("external") != "STREAM:"
        }
        await self._emit("descriptor", doc)
        return stream

    async def declare_stream(self, name: str, objs: Iterable[Any], collect: bool) -> str:
        """Emit the descriptor of stream ``name`` ahead of its data; return its uid.

        With or without ``collect``, a later ``collect`` of exactly these objects that
        names no stream goes into this one (as in bluesky).
        """
        infos: list[_ObjInfo] = []
        for obj in objs:
            if collect:
                described = await _describe(obj, collect=True)
                info = _ObjInfo(obj, _flat_collect_keys(described, name, obj))
            else:
                info = await self._info(obj, self._described_in(name))
            infos.append(info)
        declared = self._declared.setdefault(frozenset(id(i.obj) for i in infos), [])
        if name not in declared:
            declared.append(name)
        stream = await self._new_descriptor(name, tuple(infos))
        return stream.uid

    # -- flyers: kickoff and collect -------------------------------------------------------
    def kicked_off(self, obj: Any) -> None:
        """Note a flyer kicked off in this run: collected at the end if the plan does not.

        Only objects that can be collected (``describe_collect()``) are noted: a flyer
        that merely drives others (ophyd-async's StandardFlyer) has nothing to collect.
        """
        if callable(getattr(obj, "describe_collect", None)):
            self._uncollected[id(obj)] = obj

    @property
    def uncollected(self) -> list[Any]:
        """The flyers kicked off in this run and not collected since, in kickoff order."""
        return list(self._uncollected.values())

    async def collect(
        self, objs: list[Any], name: str | None, return_payload: bool, stream: bool = False
    ) -> Any:
        """Collect what flyers have gathered: event pages, events or assets.

        The stream is ``name``, else the stream declared for exactly these objects (if
        one was; several is ambiguous), else what a single flyer's ``describe_collect()``
        says: its keys name the streams when it is nested (``{stream: {key: DataKey}}``, as
        bluesky reads ophyd v1 flyers), the flyer's name when it is flat. A stream named
        but not declared is declared for a single flyer. (bluesky insists on a
        ``declare_stream`` in both of these cases; acq's ``fly`` relies on them.)
        ``stream=True`` (bluesky's old per-event collect) is refused, as bluesky refuses it.

        The stream's seq_num counter advances by the events or page rows collected, or,
        when there are only stream datums, once by the frames they cover (every object's
        datums start at the same seq_num).
        """
        if stream:
            raise UnsupportedMessageError(
                f"'collect' of {', '.join(map(device_name, objs))} with stream=True: "
                "Collect now emits EventPages (stream=False), so emitting Events "
                "(stream=True) is no longer supported; leave stream= out"
            )
        for obj in objs:
            self._uncollected.pop(id(obj), None)
        if name is None:
            declared = self._declared.get(frozenset(id(o) for o in objs), [])
            if len(declared) > 1:
                raise IllegalMessageSequence(
                    f"'collect' of {', '.join(map(device_name, objs))} names no stream, and "
                    f"streams {sorted(declared)} were declared for these objects: say which "
                    "with name=..."
                )
            name = declared[0] if declared else None
        if name is not None:
            if name not in self._streams:
                if len(objs) != 1:
                    raise IllegalMessageSequence(
                        f"collecting several objects into stream {name!r} needs the stream "
                        "declared for all of them first "
                        "(Msg('declare_stream', None, *objs, name=..., collect=True))"
                    )
                await self.declare_stream(name, objs, collect=True)
            targets: tuple[_Stream, ...] = (self._streams[name],)
        elif len(objs) != 1:
            raise IllegalMessageSequence(
                "collecting several objects needs a stream declared for all of them first "
                "(Msg('declare_stream', None, *objs, name=..., collect=True))"
            )
        else:
            targets = await self._undeclared_streams(objs[0])
        payload: list[dict[str, Any]] | None = [] if return_payload else None
        first = targets[0].seq
        frames = 0
        for obj in objs:
            frames = max(frames, await self._collect_one(obj, len(objs) > 1, targets, payload))
        if targets[0].seq == first:
            # only stream datums: they stand for the events (bluesky's rule); with event
            # pages too, the pages' rows are those events and have advanced the counter
            targets[0].seq = first + frames
        return payload

    async def _undeclared_streams(self, obj: Any) -> tuple[_Stream, ...]:
        """The streams of a flyer collected without a declared stream (described once)."""
        known = self._legacy_streams.get(id(obj))
        if known is not None and known[0] is obj:
            return known[1]
        described = await _describe(obj, collect=True)
        nested = {device_name(obj): described} if _is_flat(described) else described
        streams: dict[str, dict[str, Any]] = {}
        owner: dict[str, str] = {}  # data key -> the first stream that names it
        for stream_name, keys in nested.items():
            if not isinstance(keys, Mapping):
                raise DeviceError(
                    f"{device_name(obj)}.describe_collect() gave {keys!r} for stream "
                    f"{stream_name!r}, not a dict of data keys"
                )
            streams[stream_name] = dict(cast(Mapping[str, Any], keys))
            for key in streams[stream_name]:
                first = owner.setdefault(key, stream_name)
                if first != stream_name:
                    raise DataKeyCollisionError(
                        f"{device_name(obj)}.describe_collect() names data key {key!r} in "
                        f"streams {first!r} and {stream_name!r}: Can't use identical data "
                        "keys in multiple streams; each key must belong to one stream"
                    )
        targets: list[_Stream] = []
        for stream_name, keys in streams.items():
            targets.append(await self._new_descriptor(stream_name, (_ObjInfo(obj, keys),)))
        self._legacy_streams[id(obj)] = (obj, tuple(targets))
        return tuple(targets)

    async def _collect_one(
        self, obj: Any, several: bool, targets: tuple[_Stream, ...], payload: list[Any] | None
    ) -> int:
        """Emit one flyer's assets, then its event pages or events (bluesky's order).

        Returns how many frames its stream datums cover (each starts at the stream's
        seq_num counter, which the caller advances once for all the objects collected).
        """
        collected = False
        frames = 0
        if callable(getattr(obj, "collect_asset_docs", None)):
            index = None
            get_index = getattr(obj, "get_index", None)
            if several and callable(get_index):
                index = await call_maybe_async(get_index)
            assets = [
                (item[0], dict(item[1]))
                async for item in iterate_maybe_async(self._asset_docs(obj, index))
            ]
            frames = await self._emit_assets(assets, targets[0], None)
            collected = True
        if callable(getattr(obj, "collect_pages", None)):
            async for page in iterate_maybe_async(obj.collect_pages()):
                await self._emit_page(_route(targets, page["data"], obj), page)
                if payload is not None:
                    payload.append(page)
        elif callable(getattr(obj, "collect", None)):
            groups: dict[frozenset[str], list[dict[str, Any]]] = {}
            async for item in iterate_maybe_async(obj.collect()):
                event = dict(item)
                groups.setdefault(frozenset(event["data"]), []).append(event)
                if payload is not None:
                    payload.append(event)
            now = time.time()  # for partial events without a time, as bluesky
            for keys, events in groups.items():  # one page per set of keys, as bluesky
                page = {
                    "time": [e.get("time", now) for e in events],
                    "data": {k: [e["data"][k] for e in events] for k in events[0]["data"]},
                    "timestamps": {
                        k: [e["timestamps"][k] for e in events] for k in events[0]["data"]
                    },
                }
                await self._emit_page(_route(targets, keys, obj), page)
        elif not collected:
            raise DeviceError(
                f"{device_name(obj)} cannot be collected: it has none of collect(), "
                "collect_pages(), collect_asset_docs()"
            )
        return frames

    async def _emit_page(self, stream: _Stream, page: Mapping[str, Any]) -> None:
        times = _as_list(page["time"])
        n = len(times)
        if n == 0:
            return
        first = stream.seq
        stream.seq = first + n
        doc = {
            "uid": stream.uids.take(n),
            "time": times,
            "descriptor": stream.uid,
            "seq_num": list(range(first, first + n)),
            "data": {k: _as_list(v) for k, v in page["data"].items()},
            "timestamps": {k: _as_list(v) for k, v in page["timestamps"].items()},
            "filled": {k: [False] * n for k in stream.filled},
        }
        await self._emit("event_page", doc)

    async def _emit_assets(
        self, assets: list[tuple[str, dict[str, Any]]], stream: _Stream, width: int | None
    ) -> int:
        """Emit Resource/Datum/StreamResource/StreamDatum docs, filling in the links.

        A stream datum's ``seq_nums`` start at the stream's counter and span ``width``
        (1 for an event's), or when ``width`` is None (collect) the datum's number of
        indices. Returns the largest such number; the counter is the caller's to advance.
        """
        advance = 0
        for kind, doc in assets:
            if kind in ("resource", "stream_resource"):
                if kind == "stream_resource":
                    doc = current_stream_resource(doc)
                doc["run_start"] = self.uid
                if kind == "stream_resource":
                    if doc["data_key"] not in stream.data_keys:
                        raise DeviceError(
                            f"stream_resource for data key {doc['data_key']!r} but stream "
                            f"{stream.name!r} has no such key"
                        )
                    self._stream_resources[doc["uid"]] = doc["data_key"]
            elif kind == "stream_datum":
                if doc["stream_resource"] not in self._stream_resources:
                    raise DeviceError(
                        f"stream_datum {doc.get('uid')!r} refers to an unknown stream_resource "
                        f"{doc['stream_resource']!r}"
                    )
                n = doc["indices"]["stop"] - doc["indices"]["start"]
                doc["descriptor"] = stream.uid
                doc["seq_nums"] = {"start": stream.seq, "stop": stream.seq + (width or n)}
                advance = max(advance, n)
            elif kind not in ("datum", "datum_page"):
                raise DeviceError(f"a device produced an asset document of unknown kind {kind!r}")
            await self._emit(kind, doc)
        return advance

    # -- the end ----------------------------------------------------------------------------
    def stop_document(self, exit_status: str, reason: str) -> dict[str, Any]:
        """The Stop for this run (the caller emits it)."""
        self.closed = True
        return {
            "uid": new_uid(),
            "time": time.time(),
            "run_start": self.uid,
            "exit_status": exit_status,
            "reason": reason,
            "num_events": {name: s.seq - 1 for name, s in self._streams.items()},
        }

    # -- interruptions ---------------------------------------------------------------------
    async def record_interruption(self, kind: str) -> None:
        """An event in the run's ``interruptions`` stream: pause, resume, suspend."""
        stream = self._streams.get(INTERRUPTIONS)
        if stream is None:
            stream = self._streams[INTERRUPTIONS] = _Stream(INTERRUPTIONS)
            data_keys: dict[str, Any] = {
                "interruption": {"dtype": "string", "shape": [], "source": "RunEngine"}
            }
            doc: dict[str, Any] = {
                "uid": new_uid(),
                "time": time.time(),
                "run_start": self.uid,
                "name": INTERRUPTIONS,
                "data_keys": data_keys,
                "object_keys": {"RunEngine": ["interruption"]},
                "configuration": {},
                "hints": {},
            }
            stream.uid = doc["uid"]
            stream.data_keys = data_keys
            await self._emit("descriptor", doc)
        seq = stream.seq
        stream.seq = seq + 1
        now = time.time()
        await self._emit(
            "event",
            {
                "uid": next(stream.uids),
                "time": now,
                "descriptor": stream.uid,
                "seq_num": seq,
                "data": {"interruption": kind},
                "timestamps": {"interruption": now},
                "filled": {},
            },
        )

    # -- monitors ---------------------------------------------------------------------------
    async def monitor_descriptor(self, obj: Any, name: str) -> _Stream:
        """Describe ``obj`` as the single source of stream ``name`` (for ``monitor``)."""
        info = await self._info(obj, self._described_in(name))
        return await self._new_descriptor(name, (info,))

    async def monitor_event(self, stream: _Stream, reading: Mapping[str, Any]) -> None:
        """Emit one monitor update as an event of ``stream``."""
        seq = stream.seq
        stream.seq = seq + 1
        await self._emit(
            "event",
            {
                "uid": next(stream.uids),
                "time": time.time(),
                "descriptor": stream.uid,
                "seq_num": seq,
                "data": {k: v["value"] for k, v in reading.items()},
                "timestamps": {k: v["timestamp"] for k, v in reading.items()},
                "filled": dict(stream.filled),
            },
        )


def _as_list(values: Any) -> list[Any]:
    tolist = getattr(values, "tolist", None)
    return cast(list[Any], tolist()) if callable(tolist) else list(values)


def _is_flat(described: Mapping[str, Any]) -> bool:
    """Is a describe_collect() flat ({key: DataKey}) rather than nested ({stream: {...}})?"""
    return all(isinstance(v, Mapping) and "dtype" in v for v in described.values())


def _flat_collect_keys(described: dict[str, Any], name: str, obj: Any) -> dict[str, Any]:
    """The data keys of stream ``name`` in a flat or nested describe_collect()."""
    if _is_flat(described):
        return described
    if name in described:
        return dict(described[name])
    if len(described) == 1:
        return dict(next(iter(described.values())))
    raise DeviceError(
        f"{device_name(obj)}.describe_collect() describes streams {sorted(described)}, "
        f"none named {name!r}"
    )


def _route(targets: tuple[_Stream, ...], keys: Iterable[str], obj: Any) -> _Stream:
    """The stream, of a flyer's ``targets``, whose events carry exactly ``keys``."""
    if len(targets) == 1:
        return targets[0]
    wanted = frozenset(keys)
    for stream in targets:
        if stream.event_keys == wanted:
            return stream
    streams = ", ".join(f"{s.name!r} {sorted(s.event_keys)}" for s in targets)
    raise DeviceError(
        f"{device_name(obj)} collected data with keys {sorted(wanted)}, which match none of "
        f"the streams its describe_collect() names: {streams}"
    )
