"""The outbox relay: committed documents, in order, to a :class:`~acq.remote.Sink`.

The catalog is the outbox. A :class:`Relay` polls its database every ``poll`` seconds
(50 ms by default: one indexed query, ~0.3 ms on SQLite, so ~0.6 % of a core when idle) for
runs that have new document-log rows, reads their new documents from the position the
sink last acknowledged (``Run.adocuments(start)``), hands them to the sink in batches,
and records each acknowledgement in its table ``acq_relay_cursor`` (``_cursor.py``) in
one transaction. Runs go by ``runs.id``; a run still being written is followed as it
grows. The engine is never waited on: the relay only reads the catalog (run it as its own
process, ``acq relay``, or as a task on any loop; :meth:`Relay.wake` brings the next
poll forward).

Delivery: a document is recorded as delivered only after the sink acknowledged it, so
after a crash between the two the relay sends it again; the sink de-duplicates by
:attr:`Outgoing.msg_id`. A sink that fails is retried with the same documents, waiting
twice as long each time (``poll`` up to ``max_backoff``), each failure logged on the
``acq.remote`` logger with the sink's URL.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from typing import TYPE_CHECKING

from acq.catalog import Catalog, CatalogError, Location, Run

from ._cursor import Cursor, RunState
from ._sink import Outgoing, Sink, SinkError

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = ["Relay"]

logger = logging.getLogger("acq.remote")


class Relay:
    """Publish the documents of a catalog to a sink, in order, resuming where it stopped.

    Args:
        catalog: the catalog (a path, URL, :class:`~acq.catalog.Location` or
            :class:`~acq.catalog.Catalog`; it must exist).
        sink: where the documents go.
        name: the key of this sink's position in ``acq_relay_cursor`` (default: its URL).
        poll: seconds between looks at the catalog when nothing is new.
        batch_size: documents handed to the sink at most per ``send``.
        max_backoff: seconds between retries of a failing sink, at most.

    Attributes:
        delivered: documents acknowledged by the sink since this relay started.
    """

    def __init__(
        self,
        catalog: str | os.PathLike[str] | Location | Catalog,
        sink: Sink,
        *,
        name: str | None = None,
        poll: float = 0.05,
        batch_size: int = 1000,
        max_backoff: float = 5.0,
    ) -> None:
        if poll <= 0 or batch_size < 1 or max_backoff < poll:
            raise ValueError(
                f"Relay needs poll > 0, batch_size >= 1 and max_backoff >= poll; got "
                f"poll={poll}, batch_size={batch_size}, max_backoff={max_backoff}"
            )
        self.catalog = catalog if isinstance(catalog, Catalog) else Catalog(catalog)
        self.sink = sink
        self.poll = poll
        self.batch_size = batch_size
        self.max_backoff = max_backoff
        self.delivered = 0
        self._cursor = Cursor(self.catalog.location, name or sink.url)
        self._floor = 0
        self._states: dict[int, RunState] = {}
        self._runs: dict[int, Run] = {}
        self._wakeup: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def run(self) -> None:
        """Relay until cancelled: open the catalog and the sink, then poll and send."""
        self._loop = asyncio.get_running_loop()
        self._wakeup = asyncio.Event()
        await asyncio.to_thread(len, self.catalog)  # CatalogError if it does not exist
        await self._cursor.open()
        try:
            self._floor, self._states = await self._cursor.load()
            await self._open_sink()
            try:
                await self._relay_forever()
            finally:
                await self.sink.close()
        finally:
            await self._cursor.close()

    def wake(self) -> None:
        """Look at the catalog now rather than at the next poll (from any thread)."""
        loop, wakeup = self._loop, self._wakeup
        if loop is not None and wakeup is not None and not loop.is_closed():
            loop.call_soon_threadsafe(wakeup.set)

    async def _open_sink(self) -> None:
        delay = self.poll
        while True:
            try:
                await self.sink.open()
                logger.info("relay: connected to %s", self.sink.url)
                return
            except SinkError as exc:
                delay = self._backoff(delay)
                logger.warning("relay: %s; retrying in %.2g s", exc, delay)
                await asyncio.sleep(delay)

    async def _relay_forever(self) -> None:
        delay = self.poll
        while True:
            try:
                sent = await self.step()
            except SinkError as exc:  # its message names the URL
                delay = self._backoff(delay)
                logger.warning("relay: %s; retrying in %.2g s", exc, delay)
                await asyncio.sleep(delay)
                continue
            except CatalogError as exc:
                delay = self._backoff(delay)
                logger.warning("relay to %s: %s; retrying in %.2g s", self.sink.url, exc, delay)
                await asyncio.sleep(delay)
                continue
            delay = self.poll
            if sent < self.batch_size:
                await self._sleep()

    def _backoff(self, delay: float) -> float:
        return min(self.max_backoff, delay * 2)

    async def _sleep(self) -> None:
        assert self._wakeup is not None
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.poll):
                await self._wakeup.wait()
        self._wakeup.clear()

    async def step(self) -> int:
        """One look at the catalog: send what is new (one batch at most); how many were sent.

        Raises:
            SinkError: the sink did not take the batch (nothing is recorded).
            CatalogError: the catalog could not be read.
        """
        batch: list[Outgoing] = []
        read: dict[int, int] = {}  # run id -> its highest row, for runs read to the end
        for run_id, uid, last_seq in await self._cursor.changes(self._floor):
            state = self._states.get(run_id) or RunState(run_id, uid)
            self._states[run_id] = state
            if state.done or last_seq <= state.last_seq:
                continue
            if not await self._read(state, batch):
                break  # the batch is full: the rest of this run next time
            read[run_id] = last_seq
        if not batch:
            return 0
        await self.sink.send(batch)
        await self._acknowledge(batch, read)
        return len(batch)

    async def _read(self, state: RunState, batch: list[Outgoing]) -> bool:
        """Append the run's documents past ``state.sent``; False if the batch filled up."""
        run = self._runs.get(state.run_id)
        if run is None:
            run = self._runs[state.run_id] = await asyncio.to_thread(
                self.catalog.__getitem__, state.uid
            )
        index = state.sent
        async for name, doc in run.adocuments(index):
            if len(batch) >= self.batch_size:
                return False
            batch.append(Outgoing(state.uid, index, name, doc))
            index += 1
        return True

    async def _acknowledge(self, batch: list[Outgoing], read: dict[int, int]) -> None:
        by_uid = {state.uid: state for state in self._states.values()}
        touched: dict[int, RunState] = {}
        for out in batch:
            state = by_uid[out.run_uid]
            state.sent = out.index + 1
            state.done = state.done or out.name == "stop"
            touched[state.run_id] = state
        for run_id, last_seq in read.items():
            self._states[run_id].last_seq = last_seq
        await self._cursor.acknowledge(list(touched.values()))
        self.delivered += len(batch)
        self._forget(state for state in touched.values() if state.done)

    def _forget(self, finished: Iterable[RunState]) -> None:
        for state in finished:
            self._runs.pop(state.run_id, None)
        open_ids = [s.run_id for s in self._states.values() if not s.done]
        if open_ids:
            self._floor = min(open_ids) - 1
        elif self._states:
            self._floor = max(self._states)
        self._states = {k: s for k, s in self._states.items() if k > self._floor}


def sink_for(
    url: str,
    *,
    instrument: str | None = None,
    catalog: Catalog | None = None,
    api_key: str | None = None,
    replicas: int | None = None,
) -> Sink:
    """The sink a destination URL names.

    ``nats://host:port`` (comma-separated for a cluster) and ``kafka://host:port`` need
    ``instrument`` (the NATS stream ``acq_<instrument>``; the Kafka topic
    ``<instrument>.bluesky.runengine.documents``); ``http(s)://`` is a Tiled server, fed
    from ``catalog`` (with ``api_key``). ``replicas``: of a NATS stream (None: a stream
    that exists keeps its own).

    Raises:
        ValueError: an unknown scheme, or what the destination needs is missing.
    """
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme in ("nats", "tls", "kafka") and not instrument:
        raise ValueError(f"a {scheme} destination ({url}) needs an instrument name")
    if scheme in ("nats", "tls"):
        from ._nats import NatsSink

        return NatsSink(url, str(instrument), replicas=replicas)
    if scheme == "kafka":
        from ._kafka import KafkaSink

        return KafkaSink(url, beamline=str(instrument))
    if scheme in ("http", "https"):
        if catalog is None:
            raise ValueError(f"a Tiled destination ({url}) needs the catalog it is fed from")
        from ._tiled import TiledSink

        return TiledSink(url, catalog, api_key=api_key)
    raise ValueError(
        f"unknown destination {url!r}: give nats://host:port, kafka://host:port or "
        "http(s):// (Tiled)"
    )
