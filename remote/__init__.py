"""acq.remote: documents beyond one machine.

The catalog is the source of truth; a relay publishes its committed documents, in
order, to a bus (NATS JetStream, Kafka) or a data service (Tiled), resuming after a
restart from the last one the destination acknowledged.

Each name loads its module on first use (PEP 562): a destination's client library
(nats-py, ...) is imported only by those who use it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from acq._lazy import lazy_names

from ._sink import Outgoing, Sink, SinkError

if TYPE_CHECKING:
    from ._kafka import KafkaSink
    from ._nats import (
        NatsSink,
        Subscription,
        replay,
        stream_name,
        subject,
        subscribe,
        subscribe_subject,
    )
    from ._relay import Relay, sink_for
    from ._tiled import TiledSink

__all__ = [
    # the outbox
    "Relay",
    "sink_for",
    "Outgoing",
    "Sink",
    "SinkError",
    # NATS JetStream
    "NatsSink",
    "subscribe",
    "subscribe_subject",
    "replay",
    "Subscription",
    "stream_name",
    "subject",
    # Tiled and Kafka
    "TiledSink",
    "KafkaSink",
]

_MODULE_OF: dict[str, str] = {
    "Relay": "_relay",
    "sink_for": "_relay",
    "NatsSink": "_nats",
    "subscribe": "_nats",
    "subscribe_subject": "_nats",
    "replay": "_nats",
    "Subscription": "_nats",
    "stream_name": "_nats",
    "subject": "_nats",
    "TiledSink": "_tiled",
    "KafkaSink": "_kafka",
}


__getattr__, __dir__ = lazy_names(__name__, _MODULE_OF)
