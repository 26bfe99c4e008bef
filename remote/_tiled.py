"""The Tiled sink: runs into a Tiled server's catalog, written by bluesky's TiledWriter.

The layout is bluesky's own (``bluesky.callbacks.tiled_writer.TiledWriter``: a
``BlueskyRun`` container keyed by the run's uid, holding the Start and Stop in its
metadata and one ``BlueskyEventStream`` composite container per stream, internal data in
an appendable table, external data such as HDF5 frames registered, not copied), because
the sink *uses* TiledWriter: it is the engine, this module only feeds it.

TiledWriter is synchronous (a blocking HTTP client): every call runs on the sink's one
worker thread, so the event loop never waits on Tiled, and calls stay in order.

Re-sent documents (the relay re-sends a batch after a failure or a restart) are made
idempotent *per run*. TiledWriter keeps each run's state in memory (nodes, consolidators),
and a half-written run on the server cannot be told from a whole one, so the sink never
trusts the server's copy of a run it has no live writer for:

* while its writer lives, the sink knows the number of the next document of each run
  (``Outgoing.index``); documents before it were written already and are skipped;
* a run's writer that raised is dropped; so is every writer when the process ends;
* a run that arrives without a live writer (its Start again, or a document mid-run after
  a failure or a restart) is *rewritten*: its container on the server, if any, is deleted,
  and a fresh writer is fed the run's earlier documents from the acq catalog (the
  journal the relay reads), then the batch.

So a document is written once per writer, and a run is on the server either as the
documents its writer was fed or not at all, however often the relay retries. With the
default ``batch_size=1`` every row is on the server when ``send`` returns; a larger one
makes fewer requests but holds rows of an open run in the writer until it has that many
or the run's Stop (a lost writer is rebuilt from the catalog, so they are delayed, not
lost).
"""

from __future__ import annotations

import asyncio
import copy
import importlib
import itertools
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol, cast

from ._sink import Outgoing, SinkError

__all__ = ["TiledSink"]

_FINISHED_KEPT = 10_000  # finished runs whose document count is remembered (re-sent Stops)

Writer = Callable[[str, dict[str, Any]], None]


class _Run(Protocol):
    def documents(self, start: int = 0) -> Any: ...


class RunSource(Protocol):
    """Where the sink reads a run's earlier documents: the acq ``Catalog``, by run uid."""

    def __getitem__(self, key: str) -> _Run: ...


class _RunState:
    """A run's live TiledWriter and the number of the next document it expects."""

    __slots__ = ("next", "writer")

    def __init__(self, writer: Writer) -> None:
        self.writer = writer
        self.next = 0


class TiledSink:
    """Puts runs into a Tiled server's catalog, in the layout of bluesky's TiledWriter.

    Args:
        url: the Tiled server (``http://host:port`` or ``https://...``, a path inside the
            server's tree may follow); runs are written as containers under it.
        catalog: the acq catalog the relay reads (``RE.catalog``): where the sink reads a
            run's earlier documents when it must rewrite the run (see the module).
        api_key: the API key of a Tiled user allowed to write there.
        batch_size: rows (Events, frames) TiledWriter gathers before writing; 1 writes
            each at once, so ``send`` returns with everything on the server.
        timeout: seconds for each HTTP request before the sink gives up.

    Raises:
        SinkError: from ``open``/``send``, naming the URL, when Tiled cannot be reached
            or refuses a document.
        ValueError: for a URL that is not http(s) or a batch size below 1.
    """

    def __init__(
        self,
        url: str,
        catalog: RunSource,
        *,
        api_key: str | None = None,
        batch_size: int = 1,
        timeout: float = 10.0,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"a Tiled URL is http:// or https://, not {url!r}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.url = url.rstrip("/")
        self._catalog = catalog
        self._api_key = api_key
        self._batch_size = batch_size
        self._timeout = timeout
        self._client: Any = None
        self._executor: ThreadPoolExecutor | None = None
        self._runs: dict[str, _RunState] = {}
        self._finished: OrderedDict[str, int] = OrderedDict()

    async def open(self) -> None:
        """Connect to the server; raises SinkError naming the URL if it does not answer."""
        if self._client is not None:
            return
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="acq-tiled-sink")
        await self._call(self._connect, "could not be reached")

    async def send(self, batch: list[Outgoing]) -> None:
        """Write ``batch`` into Tiled; documents already written are skipped (see module)."""
        if self._client is None:
            await self.open()
        await self._call(lambda: self._write(batch), "did not take the documents")

    async def close(self) -> None:
        """Close the connection and the worker thread (unfinished runs are dropped)."""
        executor, self._executor = self._executor, None
        if executor is None:
            return
        if self._client is not None:
            client, self._client = self._client, None
            await asyncio.get_running_loop().run_in_executor(executor, client.context.close)
        await asyncio.to_thread(executor.shutdown)
        self._runs.clear()

    async def _call(self, work: Callable[[], None], failure: str) -> None:
        """Run ``work`` on the worker thread; its errors become a SinkError naming the URL."""
        if self._executor is None:
            raise SinkError(f"the Tiled sink for {self.url} is closed; open it first")
        try:
            await asyncio.get_running_loop().run_in_executor(self._executor, work)
        except SinkError:
            raise
        except Exception as exc:
            raise SinkError(f"Tiled at {self.url} {failure}: {type(exc).__name__}: {exc}") from exc

    # -- on the worker thread ------------------------------------------------------------

    def _connect(self) -> None:
        import httpx

        tiled = cast(Any, importlib.import_module("tiled.client"))  # untyped; optional extra
        Context, from_context = tiled.context.Context, tiled.constructors.from_context
        # One plain request first: tiled's client retries a refused connection for ~45 s,
        # but the relay does its own retrying and must hear "unreachable" at once.
        # Any answer will do here (an API key's rights are checked just below).
        httpx.get(f"{self.url}/", timeout=self._timeout)
        context, path = Context.from_any_uri(self.url, api_key=self._api_key, timeout=self._timeout)
        try:
            self._client = from_context(context, node_path_parts=path, remember_me=False)
        except BaseException:
            context.close()
            raise

    def _write(self, batch: list[Outgoing]) -> None:
        for out in batch:
            if self._finished.get(out.run_uid, -1) > out.index:
                continue  # a finished run's document, re-sent
            state = self._runs.get(out.run_uid)
            if state is not None and out.index < state.next:
                continue  # written already by this writer
            if state is None or out.index > state.next:
                state = self._rewrite(out.run_uid, out.index)
            try:
                state.writer(out.name, copy.deepcopy(out.doc))
            except Exception:
                del self._runs[out.run_uid]  # its state is unknown: rewrite it next time
                raise
            state.next = out.index + 1
            if out.name == "stop":
                self._finish(out.run_uid, state.next)

    def _rewrite(self, run_uid: str, upto: int) -> _RunState:
        """A fresh writer for the run, fed its documents before ``upto`` from the catalog."""
        from bluesky.callbacks.tiled_writer import TiledWriter

        self._runs.pop(run_uid, None)
        self._finished.pop(run_uid, None)
        if run_uid in self._client:
            self._client.delete_contents(run_uid, recursive=True, external_only=False)
        state = _RunState(TiledWriter(self._client, batch_size=self._batch_size))
        if upto > 0:
            try:
                run = self._catalog[run_uid]
            except (KeyError, LookupError) as exc:
                raise SinkError(
                    f"Tiled at {self.url}: run {run_uid} resumes at document {upto} but the "
                    f"catalog has no such run to rewrite it from"
                ) from exc
            for name, doc in itertools.islice(run.documents(), upto):
                state.writer(name, doc)
                state.next += 1
            if state.next < upto:
                raise SinkError(
                    f"Tiled at {self.url}: run {run_uid} resumes at document {upto} but the "
                    f"catalog holds only {state.next} of its documents"
                )
        self._runs[run_uid] = state
        return state

    def _finish(self, run_uid: str, count: int) -> None:
        del self._runs[run_uid]
        self._finished[run_uid] = count
        while len(self._finished) > _FINISHED_KEPT:
            self._finished.popitem(last=False)
