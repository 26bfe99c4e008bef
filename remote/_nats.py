"""NATS JetStream: a :class:`~acq.remote.Sink` for the relay, and subscribers.

One stream per instrument, ``acq_<instrument>``, holding the subjects
``acq.<instrument>.run.<run uid>.<document name>``; each message is acq's msgpack record
``[name, doc]`` (``acq.callbacks.to_msgpack``) with the header
``Nats-Msg-Id: <run uid>:<index>``, by which the stream drops a document it already
holds (within ``duplicate_window``). The stream is kept in files for ``max_age``
seconds, on ``replicas`` servers.

:class:`NatsSink` publishes a batch pipelined (every message sent, then the acks awaited
in order). :func:`subscribe` feeds a callback ``(name, doc)`` -- any acq or bluesky
callback -- from the live stream: a durable consumer (named: it resumes where it was
acknowledged, for analysis) or an ordered one (for viewers). :func:`replay` feeds one
stored run. Both deliver each run's documents in order and once, holding back one that
arrives before the one it follows (by the index in its id); a message that is not a
document is logged and skipped.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import re
from collections.abc import Callable
from typing import Any, cast

import nats
import nats.errors
import nats.js.errors
from acq.callbacks import from_msgpack, to_msgpack
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext, api

from ._sink import Outgoing, SinkError

__all__ = [
    "NatsSink",
    "Subscription",
    "replay",
    "stream_name",
    "subject",
    "subscribe",
    "subscribe_subject",
]

logger = logging.getLogger("acq.remote")

Callback = Callable[[str, dict[str, Any]], Any]

_INSTRUMENT = re.compile(r"[A-Za-z0-9_-]+")
_NATS_ERRORS = (nats.errors.Error, OSError, TimeoutError)
_nats: Any = nats  # nats-py's keyword options are untyped


def _jetstream(client: Client, timeout: float = 5.0) -> JetStreamContext:
    return cast(Any, client).jetstream(timeout=timeout)


def _checked(instrument: str) -> str:
    if not _INSTRUMENT.fullmatch(instrument):
        raise ValueError(
            f"instrument name {instrument!r}: use letters, digits, '_' and '-' only "
            "(it is a NATS subject token and part of the stream's name)"
        )
    return instrument


def stream_name(instrument: str) -> str:
    """The JetStream stream of an instrument: ``acq_<instrument>``."""
    return f"acq_{_checked(instrument)}"


def subject(instrument: str, run_uid: str = "*", name: str = "*") -> str:
    """``acq.<instrument>.run.<run_uid>.<name>`` (wildcards by default)."""
    return f"acq.{_checked(instrument)}.run.{run_uid}.{name}"


async def _connect(url: str, connect_timeout: float) -> Client:
    """A client that reconnects forever once connected; SinkError naming ``url`` if not."""

    async def error(exc: Exception) -> None:
        logger.debug("NATS %s: %s", url, exc)

    async def disconnected() -> None:
        if made and not (made[0].is_closed or made[0].is_draining):  # not our own close()
            logger.warning("NATS %s: disconnected; reconnecting", url)

    async def reconnected() -> None:
        logger.info("NATS %s: reconnected", url)

    made: list[Client] = []
    try:
        client: Client = await _nats.connect(
            servers=[s.strip() for s in url.split(",")],
            connect_timeout=max(1, round(connect_timeout)),
            max_reconnect_attempts=1,  # for the first connection; forever afterwards
            reconnect_time_wait=0.25,  # pyright: ignore[reportArgumentType]
            error_cb=error,
            disconnected_cb=disconnected,
            reconnected_cb=reconnected,
        )
    except (*_NATS_ERRORS, ValueError) as exc:
        raise SinkError(
            f"cannot connect to the NATS server {url}: {exc or type(exc).__name__}"
        ) from None
    client.options["max_reconnect_attempts"] = -1
    made.append(client)
    return client


class NatsSink:
    """Publish documents to an instrument's JetStream stream (creating or updating it).

    Args:
        url: ``nats://host:port`` (several, comma-separated, for a cluster).
        instrument: names the stream and the subjects.
        max_age: seconds a document is kept in the stream.
        duplicate_window: seconds within which a document sent again is dropped.
        replicas: servers holding the stream (3 in a cluster); None: as the stream
            already is (an administrator's choice is kept), 1 for a new one.
        ack_timeout: seconds a batch's acknowledgements may take.
    """

    def __init__(
        self,
        url: str,
        instrument: str,
        *,
        max_age: float = 7 * 86400.0,
        duplicate_window: float = 600.0,
        replicas: int | None = None,
        ack_timeout: float = 10.0,
    ) -> None:
        if duplicate_window > max_age:
            raise ValueError(
                f"duplicate_window ({duplicate_window} s) must not exceed max_age ({max_age} s)"
            )
        self.url = url
        self.instrument = instrument
        self.stream = stream_name(instrument)
        self.config = api.StreamConfig(
            name=self.stream,
            subjects=[subject(instrument, "*", "*")],
            storage=api.StorageType.FILE,
            max_age=max_age,
            duplicate_window=duplicate_window,
            num_replicas=replicas or 1,
        )
        self.replicas = replicas
        self.ack_timeout = ack_timeout
        self._client: Client | None = None
        self._js: JetStreamContext | None = None

    async def open(self) -> None:
        """Connect and make sure the stream exists with this configuration."""
        client = await _connect(self.url, 2.0)
        js = _jetstream(client, self.ack_timeout)
        try:
            try:
                await cast(Any, js).add_stream(self.config)
            except nats.js.errors.BadRequestError:  # it exists with another configuration
                if self.replicas is None:
                    info = await cast(Any, js).stream_info(self.stream)
                    self.config.num_replicas = info.config.num_replicas
                await cast(Any, js).update_stream(self.config)
        except _NATS_ERRORS as exc:
            await client.close()
            raise SinkError(
                f"NATS {self.url}: cannot set up the stream {self.stream}: {exc}"
            ) from None
        self._client, self._js = client, js

    async def send(self, batch: list[Outgoing]) -> None:
        """Publish every document of ``batch``, then wait for every acknowledgement."""
        js = self._js
        if js is None:
            raise SinkError(f"NATS {self.url}: the sink is not open")
        prefix = f"acq.{self.instrument}.run."
        futures: list[asyncio.Future[api.PubAck]] = []
        try:
            async with asyncio.timeout(self.ack_timeout):
                for out in batch:
                    futures.append(
                        await cast(Any, js).publish_async(
                            f"{prefix}{out.run_uid}.{out.name}",
                            to_msgpack(out.name, out.doc),
                            headers={api.Header.MSG_ID: out.msg_id},
                        )
                    )
                for future in futures:
                    await future
        except _NATS_ERRORS as exc:
            raise SinkError(
                f"NATS {self.url}: {len(batch)} documents not acknowledged by the stream "
                f"{self.stream}: {exc or type(exc).__name__}"
            ) from None
        finally:
            for future in futures:
                future.cancel()

    async def close(self) -> None:
        """Disconnect."""
        client, self._client, self._js = self._client, None, None
        if client is not None:
            await client.close()


async def _call(callback: Callback, name: str, doc: dict[str, Any]) -> None:
    result = callback(name, doc)
    if inspect.isawaitable(result):
        await result


class _InOrder:
    """Deliver each run's documents in index order, once; skip what is not a document."""

    def __init__(self, url: str, callback: Callback) -> None:
        self.url = url
        self.callback = callback
        self.delivered = 0
        self._next: dict[str, int] = {}  # run uid -> the index it waits for
        self._held: dict[str, dict[int, tuple[str, dict[str, Any]]]] = {}

    async def __call__(self, msg: Msg) -> None:
        """Take one message (nats-py calls this coroutine for each)."""
        try:
            uid, index = _position(msg)
            name, doc = from_msgpack(msg.data)
        except ValueError as exc:
            logger.warning("NATS %s: skipped a message on %s: %s", self.url, msg.subject, exc)
            return
        expected = self._next.setdefault(uid, index)  # a run joined midway starts here
        if index < expected:
            return  # delivered already (a consumer's redelivery)
        held = self._held.setdefault(uid, {})
        held[index] = (name, doc)
        while expected in held:
            name, doc = held.pop(expected)
            expected += 1
            self._next[uid] = expected
            try:
                await _call(self.callback, name, doc)
            except Exception:
                logger.exception("NATS %s: the callback failed on a %s document", self.url, name)
            self.delivered += 1
        if not held:
            del self._held[uid]


def _position(msg: Msg) -> tuple[str, int]:
    msg_id = (msg.headers or {}).get(api.Header.MSG_ID.value)
    uid, _, index = (msg_id or "").rpartition(":")
    if not uid or not index.isdigit():
        raise ValueError(f"no Nats-Msg-Id '<run uid>:<index>' header (got {msg_id!r})")
    return uid, int(index)


class Subscription:
    """A live subscription (:func:`subscribe`); ``async with`` it, or :meth:`close` it.

    Attributes:
        delivered: documents handed to the callback so far.
    """

    def __init__(self, client: Client, sub: JetStreamContext.PushSubscription, feed: _InOrder):
        self._client = client
        self._sub = sub
        self._feed = feed

    @property
    def delivered(self) -> int:
        """Documents handed to the callback so far."""
        return self._feed.delivered

    async def close(self) -> None:
        """Stop (a durable consumer keeps its position on the server) and disconnect."""
        await self._client.close()

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


async def subscribe(
    url: str,
    instrument: str,
    callback: Callback,
    durable: str | None = None,
    run_uid: str | None = None,
) -> Subscription:
    """Feed ``callback(name, doc)`` from an instrument's stream, live.

    Args:
        url: the NATS server(s), ``nats://host:port``.
        instrument: whose stream.
        callback: any acq or bluesky callback (a coroutine function is awaited).
        durable: a durable consumer's name: it starts at the stream's first document and
            resumes after its last acknowledged one (analysis); None for an ordered
            consumer starting at new documents (viewers), or at the run's first one when
            ``run_uid`` is given.
        run_uid: only this run's documents.

    Raises:
        SinkError: the server cannot be reached (names ``url``) or has no such stream.
    """
    where = subject(instrument, run_uid or "*", "*")
    first = bool(durable or run_uid)
    return await subscribe_subject(url, where, callback, durable=durable, from_start=first)


async def subscribe_subject(
    url: str,
    where: str,
    callback: Callback,
    *,
    durable: str | None = None,
    from_start: bool = False,
) -> Subscription:
    """:func:`subscribe` to any subject of an acq stream (``acq.<instrument>.run.>``...).

    ``from_start``: begin at the first document the stream holds, not at new ones.

    Raises:
        ValueError: ``where`` is not an acq subject.
        SinkError: the server cannot be reached (names ``url``) or has no such stream.
    """
    tokens = where.split(".")
    if len(tokens) < 3 or tokens[0] != "acq" or tokens[2] not in ("run", "*", ">"):
        raise ValueError(f"{where!r} is not an acq subject: acq.<instrument>.run.<uid>.<name>")
    client = await _connect(url, 2.0)
    feed = _InOrder(url, callback)
    try:
        sub = await _jetstream(client).subscribe(
            where,
            cb=feed.__call__,
            durable=durable,
            stream=stream_name(tokens[1]),
            ordered_consumer=durable is None,
            deliver_policy=api.DeliverPolicy.ALL if from_start else api.DeliverPolicy.NEW,
        )
    except _NATS_ERRORS as exc:
        await client.close()
        raise SinkError(f"NATS {url}: cannot subscribe to {where}: {exc}") from None
    return Subscription(client, sub, feed)


async def replay(
    url: str, instrument: str, run_uid: str, callback: Callback, *, within: float = 30.0
) -> int:
    """Feed ``callback`` every document of one run the stream holds; how many it was.

    Raises:
        KeyError: the stream holds no document of ``run_uid``.
        SinkError: the server cannot be reached or stops answering (names ``url``).
    """
    client = await _connect(url, 2.0)
    try:
        return await _replay(client, url, instrument, run_uid, _InOrder(url, callback), within)
    except _NATS_ERRORS as exc:
        raise SinkError(f"NATS {url}: replay of run {run_uid} failed: {exc}") from None
    finally:
        await client.close()


async def _replay(
    client: Client, url: str, instrument: str, run_uid: str, feed: _InOrder, within: float
) -> int:
    js = _jetstream(client)
    where = subject(instrument, run_uid, ">")
    info = await js.stream_info(stream_name(instrument), subjects_filter=where)
    total = sum((info.state.subjects or {}).values())
    if total == 0:
        raise KeyError(f"the stream {stream_name(instrument)} on {url} has no run {run_uid}")
    done = asyncio.Event()

    async def count(msg: Msg) -> None:
        await feed(msg)
        counted[0] += 1
        if counted[0] >= total:
            done.set()

    counted = [0]
    sub = await js.subscribe(
        where,
        cb=count,
        stream=stream_name(instrument),
        ordered_consumer=True,
        deliver_policy=api.DeliverPolicy.ALL,
    )
    try:
        async with asyncio.timeout(within):
            await done.wait()
    finally:
        await sub.unsubscribe()
    return feed.delivered
