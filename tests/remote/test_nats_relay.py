"""The outbox relay to a real nats-server: nothing lost, nothing twice, order kept."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from acq.devices.sim import SimBeamline
from acq.plans import count
from acq.remote import NatsSink, Relay, subscribe
from benchmarks.postgres import PostgresServer
from benchmarks.remote import NatsServer, free_port, nats_cluster, relay_process, wait_jetstream
from nats import connect
from nats.aio.client import Client
from nats_checks import (
    assert_delivered_once_in_order,
    catalog_docs,
    stream_count,
    until,
)
from sqlalchemy import create_engine, text

from acq import RunEngine


def last_uid(RE: RunEngine) -> str:
    assert RE.catalog is not None
    return RE.catalog[-1].uid


async def relaying(relay: Relay) -> asyncio.Task[None]:
    return asyncio.create_task(relay.run())


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_scan_relayed_live_reaches_a_subscriber_whole_in_order_once(
    RE: RunEngine, beamline: SimBeamline, catalog: Path, nats: NatsServer
) -> None:
    await RE(count([beamline.det], 1))  # the catalog exists before the relay opens it
    first = last_uid(RE)
    relay = Relay(catalog, NatsSink(nats.url, "live"))
    task = await relaying(relay)
    try:
        await until(lambda: relay.delivered == len(catalog_docs(catalog, first)))
        live: list[tuple[str, dict[str, Any]]] = []
        analysis: list[tuple[str, dict[str, Any]]] = []
        viewer = await subscribe(nats.url, "live", lambda n, d: live.append((n, d)))
        durable = await subscribe(
            nats.url, "live", lambda n, d: analysis.append((n, d)), durable="analysis"
        )
        await RE(count([beamline.det, beamline.x], 200, delay=0.001))
        uid = last_uid(RE)
        expected = catalog_docs(catalog, uid)
        await until(lambda: len(live) >= len(expected) and len(analysis) >= 2 + len(expected))
        await viewer.close()
        await durable.close()
        assert [(n, d["uid"]) for n, d in live] == expected
        assert [(n, d["uid"]) for n, d in analysis] == catalog_docs(catalog, first) + expected
        await assert_delivered_once_in_order(nats.url, "live", catalog, uid)
    finally:
        await stop(task)


async def test_documents_sent_again_after_a_lost_cursor_are_dropped_by_the_stream(
    RE: RunEngine, beamline: SimBeamline, catalog: Path, nats: NatsServer
) -> None:
    await RE(count([beamline.det], 30))
    uid = last_uid(RE)
    n = len(catalog_docs(catalog, uid))
    for attempt in range(2):  # the second relay finds no position: it sends everything again
        relay = Relay(catalog, NatsSink(nats.url, "again"))
        task = await relaying(relay)
        await until(lambda: relay.delivered == n)  # noqa: B023 -- awaited in the loop
        await stop(task)
        if attempt == 0:
            engine = create_engine(f"sqlite:///{catalog}")
            with engine.begin() as conn:
                assert conn.execute(text("SELECT count(*) FROM acq_relay_cursor")).scalar() == 1
                conn.execute(text("DELETE FROM acq_relay_cursor"))
            engine.dispose()
    assert await stream_count(nats.url, "again", uid) == n
    await assert_delivered_once_in_order(nats.url, "again", catalog, uid)


@pytest.mark.database
async def test_a_postgresql_catalog_is_relayed_like_a_sqlite_one(
    beamline: SimBeamline, postgres: PostgresServer, nats: NatsServer
) -> None:
    url = postgres.create_database()
    RE = RunEngine(catalog=url, handle_sigint=False)
    await RE(count([beamline.det], 3))
    first = last_uid(RE)
    relay = Relay(url, NatsSink(nats.url, "pg"))
    task = await relaying(relay)
    try:
        await RE(count([beamline.det, beamline.x], 50))
        uid = last_uid(RE)
        expected = catalog_docs(url, first) + catalog_docs(url, uid)
        await until(lambda: relay.delivered == len(expected))
        for run in (first, uid):
            await assert_delivered_once_in_order(nats.url, "pg", url, run)
    finally:
        await stop(task)
        assert RE.catalog is not None
        RE.catalog.close()


@pytest.mark.timeout(120)
async def test_relay_killed_mid_scan_and_restarted_loses_and_repeats_nothing(
    RE: RunEngine, beamline: SimBeamline, catalog: Path, nats: NatsServer, tmp_path: Path
) -> None:
    await RE(count([beamline.det], 1))
    first = last_uid(RE)
    log = tmp_path / "relay.log"
    relay = relay_process(catalog, nats.url, "kill", log)
    try:
        n_first = len(catalog_docs(catalog, first))

        async def first_run_there() -> bool:
            return await stream_count(nats.url, "kill", first) == n_first

        await until(first_run_there)
        scan = asyncio.create_task(RE(count([beamline.det], 600, delay=0.005)))
        await until(lambda: last_uid(RE) != first)
        uid = last_uid(RE)

        async def some_there() -> bool:
            return await stream_count(nats.url, "kill", uid) >= 20

        await until(some_there)
        assert not scan.done(), "the scan ended before the relay was killed"
        relay.kill()
        relay.wait()
        relay = relay_process(catalog, nats.url, "kill", log)
        await scan
        await assert_delivered_once_in_order(nats.url, "kill", catalog, uid, within=60)
        await assert_delivered_once_in_order(nats.url, "kill", catalog, first)
    finally:
        relay.kill()
        relay.wait()


@pytest.mark.timeout(120)
async def test_broker_killed_mid_scan_the_scan_goes_on_and_the_relay_catches_up(
    RE: RunEngine, beamline: SimBeamline, catalog: Path, nats: NatsServer
) -> None:
    await RE(count([beamline.det], 1))
    relay = Relay(catalog, NatsSink(nats.url, "outage", ack_timeout=2.0), max_backoff=0.5)
    task = await relaying(relay)
    try:
        await until(lambda: relay.delivered > 0)
        scan = asyncio.create_task(RE(count([beamline.det], 600, delay=0.005)))
        await until(lambda: last_uid(RE) != "" and relay.delivered > 20)
        nats.kill()
        delivered = relay.delivered
        await asyncio.sleep(0.3)  # the scan runs on while the broker is down
        nats.start()
        await scan
        uid = last_uid(RE)
        assert RE.catalog is not None
        assert RE.catalog[-1].exit_status == "success"
        await assert_delivered_once_in_order(nats.url, "outage", catalog, uid, within=60)
        assert relay.delivered > delivered
    finally:
        await stop(task)


async def test_broker_unreachable_at_start_is_logged_with_its_url_and_retried(
    RE: RunEngine,
    beamline: SimBeamline,
    catalog: Path,
    tmp_path: Path,
    nats_binary: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await RE(count([beamline.det], 5))
    uid = last_uid(RE)
    port = free_port()
    url = f"nats://127.0.0.1:{port}"
    caplog.set_level(logging.WARNING, logger="acq.remote")
    task = await relaying(Relay(catalog, NatsSink(url, "late"), max_backoff=0.2))
    server = NatsServer(tmp_path / "late", port=port)
    try:
        await until(lambda: any(url in r.getMessage() for r in caplog.records))
        assert not task.done()
        server.start()
        await wait_jetstream(url)
        await assert_delivered_once_in_order(url, "late", catalog, uid)
    finally:
        await stop(task)
        server.stop()


async def test_a_malformed_message_on_the_subject_is_logged_and_skipped(
    RE: RunEngine,
    beamline: SimBeamline,
    catalog: Path,
    nats: NatsServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await RE(count([beamline.det], 1))
    relay = Relay(catalog, NatsSink(nats.url, "bad"))
    task = await relaying(relay)
    caplog.set_level(logging.WARNING, logger="acq.remote")
    try:
        await until(lambda: relay.delivered > 0)
        got: list[tuple[str, dict[str, Any]]] = []
        sub = await subscribe(nats.url, "bad", lambda n, d: got.append((n, d)))
        client = await _client(nats.url)
        js = client.jetstream()
        await js.publish("acq.bad.run.x.event", b"\xc1 not msgpack", headers={"Nats-Msg-Id": "x:0"})
        await js.publish("acq.bad.run.y.start", b"\x93\x01\x02\x03")  # no id, not a record
        await client.close()
        await RE(count([beamline.det], 10))
        uid = last_uid(RE)
        expected = catalog_docs(catalog, uid)
        await until(lambda: len(got) >= len(expected))
        await sub.close()
        assert [(n, d["uid"]) for n, d in got] == expected
        skipped = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
        assert any("acq.bad.run.x.event" in m and nats.url in m for m in skipped), skipped
        assert any("acq.bad.run.y.start" in m for m in skipped), skipped
    finally:
        await stop(task)


async def _client(url: str) -> Client:
    return await connect(url.split(","))


@pytest.mark.timeout(180)
async def test_a_three_node_cluster_losing_its_stream_leader_mid_scan_loses_nothing(
    RE: RunEngine, beamline: SimBeamline, catalog: Path, tmp_path: Path, nats_binary: str
) -> None:
    await RE(count([beamline.det], 1))
    with nats_cluster(tmp_path / "cluster") as servers:
        url = ",".join(s.url for s in servers)
        await wait_jetstream(servers[0].url, within=30)
        sink = NatsSink(url, "ha", replicas=3, ack_timeout=2.0)
        relay = Relay(catalog, sink, max_backoff=0.5)
        task = await relaying(relay)
        try:
            await until(lambda: relay.delivered > 0, within=30)
            client = await _client(url)
            info = await client.jetstream().stream_info("acq_ha")
            await client.close()
            assert info.cluster is not None
            assert info.cluster.replicas is not None
            assert len(info.cluster.replicas) == 2
            leader = next(s for s in servers if s.name == info.cluster.leader)
            scan = asyncio.create_task(RE(count([beamline.det], 600, delay=0.005)))
            await until(lambda: last_uid(RE) != "" and relay.delivered > 30)
            leader.kill()
            await scan
            uid = last_uid(RE)
            survivor = next(s for s in servers if s is not leader)
            await assert_delivered_once_in_order(survivor.url, "ha", catalog, uid, within=90)
            again = NatsSink(survivor.url, "ha")  # a relay not told the replicas (acq relay)
            await again.open()  # keeps the stream's 3 rather than setting it back to 1
            await again.close()
            assert again.config.num_replicas == 3
        finally:
            await stop(task)


def acq_command(*args: str) -> subprocess.CompletedProcess[str]:
    acq = Path(sys.executable).parent / "acq"
    return subprocess.run([str(acq), *args], capture_output=True, text=True, timeout=50)


async def test_acq_tail_prints_a_run_as_it_was_relayed_and_ends_at_its_stop(
    RE: RunEngine, beamline: SimBeamline, catalog: Path, nats: NatsServer
) -> None:
    await RE(count([beamline.det], 5))
    uid = last_uid(RE)
    task = await relaying(Relay(catalog, NatsSink(nats.url, "tail")))
    try:
        await assert_delivered_once_in_order(nats.url, "tail", catalog, uid)
        done = await asyncio.to_thread(
            acq_command, "tail", uid, "--from", nats.url, "--instrument", "tail"
        )
    finally:
        await stop(task)
    assert done.returncode == 0, done.stderr
    printed = [line.split(" ", 1) for line in done.stdout.splitlines()]
    assert [(name, json.loads(body)["uid"]) for name, body in printed] == catalog_docs(catalog, uid)
    by_subject = await asyncio.to_thread(
        acq_command, "tail", f"acq.tail.run.{uid}.*", "--from", nats.url
    )
    assert by_subject.stdout == done.stdout


def test_acq_relay_and_tail_refuse_bad_input_naming_it(catalog: Path, tmp_path: Path) -> None:
    no_instrument = acq_command("relay", "--catalog", str(catalog), "--to", "nats://h:1")
    assert no_instrument.returncode == 1
    assert "nats://h:1" in no_instrument.stderr
    assert "instrument" in no_instrument.stderr
    scheme = acq_command(
        "relay", "--catalog", str(catalog), "--to", "amqp://h:1", "--instrument", "x"
    )
    assert scheme.returncode == 1
    assert "amqp://h:1" in scheme.stderr
    missing = acq_command(
        "relay", "--catalog", str(tmp_path / "none.db"), "--to", "nats://h:1", "--instrument", "x"
    )
    assert missing.returncode == 1
    assert "none.db" in missing.stderr
    tail = acq_command("tail", "0123abcd", "--from", "nats://127.0.0.1:1")
    assert tail.returncode == 1
    assert "--instrument" in tail.stderr
    bad_name = acq_command("tail", "x", "--from", "nats://127.0.0.1:1", "--instrument", "a.b")
    assert bad_name.returncode == 1
    assert "'a.b'" in bad_name.stderr
    unreachable = acq_command("tail", "x", "--from", "nats://127.0.0.1:1", "--instrument", "a")
    assert unreachable.returncode == 1
    assert "nats://127.0.0.1:1" in unreachable.stderr


@pytest.mark.timeout(120)
async def test_acq_relay_replicas_option_makes_the_stream_on_that_many_servers(
    RE: RunEngine, beamline: SimBeamline, catalog: Path, tmp_path: Path, nats_binary: str
) -> None:
    await RE(count([beamline.det], 3))
    with nats_cluster(tmp_path / "cluster") as servers:
        url = ",".join(s.url for s in servers)
        await wait_jetstream(servers[0].url, within=30)
        relay = relay_process(catalog, url, "three", tmp_path / "relay.log", "--replicas", "3")
        try:
            uid = last_uid(RE)
            await assert_delivered_once_in_order(servers[0].url, "three", catalog, uid, within=60)
        finally:
            relay.kill()
            relay.wait()
        client = await _client(url)
        info = await client.jetstream().stream_info("acq_three")
        await client.close()
        assert info.config.num_replicas == 3


async def test_a_consumer_that_falls_behind_slows_no_scan_and_gets_everything_later(
    RE: RunEngine, beamline: SimBeamline, catalog: Path, nats: NatsServer
) -> None:
    await RE(count([beamline.det], 1))
    before = catalog_docs(catalog, last_uid(RE))
    relay = Relay(catalog, NatsSink(nats.url, "slow"))
    task = await relaying(relay)
    got: list[tuple[str, str]] = []
    behind = asyncio.Event()

    async def analysis(name: str, doc: dict[str, Any]) -> None:
        got.append((name, doc["uid"]))
        await behind.wait()  # an analysis that cannot keep up until the scan is over

    try:
        await until(lambda: relay.delivered == len(before))  # the stream exists
        slow = await subscribe(nats.url, "slow", analysis, durable="slow-analysis")
        done = await RE(count([beamline.det], 300))
        expected = catalog_docs(catalog, last_uid(RE))
        assert done.exit_status == "success"
        await until(lambda: relay.delivered == len(before) + len(expected))  # all published
        assert len(got) <= 1  # meanwhile the consumer is still on its first document
        behind.set()
        await until(lambda: len(got) >= len(before) + len(expected))
        await slow.close()
        assert got == before + expected  # whole, in order, once
    finally:
        await stop(task)
