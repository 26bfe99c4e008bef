"""The Kafka sink: documents as bluesky-kafka publishes them, for NSLS-II's consumers.

What NSLS-II's consumers (``bluesky_kafka.BlueskyConsumer``, ``RemoteDispatcher``,
``MongoConsumer``) expect, and this sink sends:

* topic ``<beamline>.bluesky.runengine.documents`` (``nslsii.configure_kafka_publisher``);
* each message's value is the msgpack array ``[name, doc]``, as ``bluesky_kafka.Publisher``
  packs its ``(name, doc)`` tuple (their deserializer is ``msgpack.loads``); the relay's
  documents come from the catalog as plain JSON data, and any numpy array left in one is
  sent as a list, as a JSON consumer would see it;
* every message has the same key (the beamline's name; bluesky-kafka's Publisher has one
  key per session), so all documents go to one partition, in the relay's order.

The producer is confluent-kafka's (librdkafka), idempotent (``enable.idempotence``: acks
from all in-sync replicas, no duplicates or reordering from its own retries). ``send``
returns once the broker acknowledged every message of the batch.

Re-sent documents: each message carries its ``msg_id`` in the ``acq-msg-id`` header, and
the sink remembers, per run, the number of the last document the broker acknowledged: a
re-sent batch publishes only what was not acknowledged. Kafka itself has no broker-side
de-duplication by id (NATS JetStream has), so a sink *restarted* between the broker's
acknowledgement and the relay's cursor write may publish that one batch again; consumers
that must be exact drop repeats by the header.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from collections.abc import Mapping
from typing import Any, cast

from ._sink import Outgoing, SinkError

__all__ = ["KafkaSink"]

MSG_ID_HEADER = "acq-msg-id"
_log = logging.getLogger("acq.remote.kafka")
_RUNS_KEPT = 10_000  # runs whose last acknowledged document is remembered


def topic_for(beamline: str) -> str:
    """bluesky-kafka's topic of a beamline: ``<beamline>.bluesky.runengine.documents``."""
    return f"{beamline}.bluesky.runengine.documents"


def _plain(obj: Any) -> Any:
    if hasattr(obj, "tolist"):  # numpy arrays and scalars
        return obj.tolist()
    raise TypeError(f"cannot send a {type(obj).__name__} in a document: {obj!r}")


def pack(name: str, doc: Mapping[str, Any]) -> bytes:
    """The message value bluesky-kafka's consumers read: msgpack ``[name, doc]``."""
    msgpack = cast(Any, importlib.import_module("msgpack"))  # untyped
    return cast(bytes, msgpack.packb([name, doc], default=_plain))


class KafkaSink:
    """Publishes documents to a Kafka topic the way bluesky-kafka's Publisher does.

    Args:
        url: ``kafka://host:port`` (several brokers: ``kafka://h1:9092,h2:9092``).
        beamline: the beamline's name; the topic is ``<beamline>.bluesky.runengine.documents``.
        producer_config: more librdkafka settings (e.g. security); they override the sink's.
        timeout: seconds the broker has to acknowledge a batch (and to answer ``open``).

    Raises:
        SinkError: from ``open``/``send``, naming the URL, when the broker cannot be reached
            or does not acknowledge the batch in time.
        ValueError: for a URL that is not ``kafka://host:port`` or an empty beamline name.
    """

    def __init__(
        self,
        url: str,
        *,
        beamline: str,
        producer_config: Mapping[str, Any] | None = None,
        timeout: float = 10.0,
    ) -> None:
        servers = url.removeprefix("kafka://")
        if not url.startswith("kafka://") or not servers or "/" in servers:
            raise ValueError(f"a Kafka URL is kafka://host:port[,host:port...], not {url!r}")
        if not beamline or "." in beamline or "/" in beamline:
            raise ValueError(f"the beamline name is one word without dots, not {beamline!r}")
        self.url = url
        self.topic = topic_for(beamline)
        self._key = beamline.encode()
        self._timeout = timeout
        self._config: dict[str, Any] = {
            "bootstrap.servers": servers,
            "enable.idempotence": True,
            "message.timeout.ms": int(timeout * 1000),
            "client.id": f"acq-{beamline}",
            "logger": _log,  # librdkafka's own log, not on stderr
        }
        self._config.update(producer_config or {})
        self._producer: Any = None
        self._acked: dict[str, int] = {}  # run uid -> number of its last acknowledged document

    async def open(self) -> None:
        """Connect; raises SinkError naming the URL if no broker answers in time."""
        if self._producer is None:
            kafka = cast(Any, importlib.import_module("confluent_kafka"))  # untyped
            self._producer = kafka.Producer(self._config)
        try:
            await asyncio.to_thread(self._producer.list_topics, timeout=self._timeout)
        except Exception as exc:
            raise SinkError(f"Kafka at {self.url} could not be reached: {exc}") from exc

    async def send(self, batch: list[Outgoing]) -> None:
        """Publish the batch's documents not yet acknowledged; return once all are."""
        if self._producer is None:
            await self.open()
        producer: Any = self._producer
        failures: list[str] = []
        pending = 0
        left = 0
        try:
            for out in batch:
                if self._acked.get(out.run_uid, -1) >= out.index:
                    continue  # the broker has it already
                self._produce(out, failures)
                pending += 1
            if pending:
                left = await asyncio.to_thread(producer.flush, self._timeout)
        except Exception as exc:  # a fatal producer error, a full queue, an unpackable doc
            self._discard(producer)
            raise SinkError(f"Kafka at {self.url} did not take the documents: {exc}") from exc
        if failures or left:
            self._discard(producer)
            detail = failures[0] if failures else f"{left} documents not acknowledged"
            raise SinkError(
                f"Kafka at {self.url} did not take the documents (topic {self.topic}): {detail}"
            )

    def _discard(self, producer: Any) -> None:
        """Drop a producer that failed: the next ``send`` connects a fresh one.

        An idempotent producer can be left in a fatal state (e.g. a broker restarted empty
        no longer knows its producer id), and what it still queues must not go out behind
        the relay's retry.
        """
        self._producer = None
        try:
            producer.purge()
        except Exception:  # noqa: BLE001 -- a fatal producer may refuse even this; dropped anyway
            _log.debug("purging a failed Kafka producer for %s failed", self.url, exc_info=True)

    async def close(self) -> None:
        """Deliver what is queued (up to the timeout), then drop the producer."""
        producer, self._producer = self._producer, None
        if producer is not None:
            await asyncio.to_thread(producer.flush, self._timeout)

    def _produce(self, out: Outgoing, failures: list[str]) -> None:
        def delivered(error: Any, _message: Any) -> None:
            if error is not None:
                failures.append(str(error))
            elif self._acked.get(out.run_uid, -1) < out.index:
                self._acked.pop(out.run_uid, None)  # newest last: the oldest run is forgotten
                self._acked[out.run_uid] = out.index
                if len(self._acked) > _RUNS_KEPT:
                    del self._acked[next(iter(self._acked))]

        self._producer.produce(
            self.topic,
            key=self._key,
            value=pack(out.name, out.doc),
            headers={MSG_ID_HEADER: out.msg_id.encode()},
            on_delivery=delivered,
        )
