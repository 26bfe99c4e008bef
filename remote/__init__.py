"""acq.remote: documents beyond one machine.

The catalog is the source of truth; a relay publishes its committed documents, in
order, to a bus (NATS JetStream, Kafka) or a data service (Tiled), resuming after a
restart from the last one the destination acknowledged.
"""

from __future__ import annotations

from ._sink import Outgoing, Sink, SinkError

__all__ = ["Outgoing", "Sink", "SinkError"]
