"""The service's live feeds: documents, status changes, progress and log lines.

One :class:`EventHub` per service. It is subscribed to the engine as a critical
subscriber -- called inline, right after the catalog's store, so that it sees every
document in the order the catalog numbers them -- and its call only routes and counts:
a dict lookup and an increment per document when no client listens (~0.6 us), an
append to each listening client's :class:`Feed` when one does (~2 us with one). It never
raises. Nothing is encoded, awaited or sent on the engine's path: each client's task
(``_ws.py``) takes what its feed holds, at most every 20 ms, encodes it (once per
document, shared by all clients) and sends it as one message.

Numbering: a run's documents count from 0 (the Start) in the order emitted, one per
document (an Event Page is one), as ``RE.catalog[uid].documents(n)`` counts them. A
client that asks for a run still being written registers its feed first, then flushes
the catalog's writer and replays the run's documents numbered below the count at
registration (they are committed by then: the store queued each before the hub saw it)
and then what its feed holds: no gap and no duplicate at the seam.

Bounds: a feed holds at most ``limit`` items. A client that falls that far behind is
dropped -- its feed stops taking documents at once and its task closes the socket with
code 1013 and the number to resume from -- so a slow client never slows the scan nor
grows memory without bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import logging
import threading
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any, Final

from acq import RunEngine, State

__all__ = ["END", "DocumentEntry", "EventHub", "Feed", "LogHandler", "encode"]

logger = logging.getLogger("acq.service")

END: Final[Any] = object()
"""Put in a run's feeds after its Stop: the client is closed with code 1000."""

FEED_LIMIT = 10_000  # items a client may fall behind before it is dropped
LOG_LINES = 200  # log lines kept and replayed to a client on connect
_EVENTS = ("event", "event_page")
_OWNED_BY = {"descriptor": "run_start", "resource": "run_start", "stream_resource": "run_start"}
_BELONGS_TO = {"datum": "resource", "datum_page": "resource", "stream_datum": "stream_resource"}


def _plain(value: Any) -> Any:
    """JSON for numpy values (as lists or numbers) and enums (their value)."""
    tolist = getattr(value, "tolist", None)
    if callable(tolist):
        return tolist()
    if isinstance(value, enum.Enum):
        return value.value
    raise TypeError(f"{type(value).__qualname__} {value!r:.80} is not JSON data")


encode: Callable[[Any], str] = json.JSONEncoder(default=_plain, separators=(",", ":")).encode
"""JSON text of a message (numpy values as lists)."""


class DocumentEntry:
    """One document of one run, numbered, as clients receive it; encoded once, on demand."""

    __slots__ = ("_text", "doc", "index", "name", "run_uid")

    def __init__(self, run_uid: str, index: int, name: str, doc: Mapping[str, Any]) -> None:
        self.run_uid = run_uid
        self.index = index
        self.name = name
        self.doc = doc
        self._text: str | None = None

    def text(self) -> str:
        """The message: ``{"run_uid", "index", "name", "doc"}`` as JSON text."""
        if self._text is None:
            self._text = encode(
                {"run_uid": self.run_uid, "index": self.index, "name": self.name, "doc": self.doc}
            )
        return self._text


class Feed:
    """What one client has still to be sent: a bounded queue, ended when it overflows.

    Args:
        limit: items it may hold; one more ends the feed (the client is dropped).
    """

    def __init__(self, limit: int = FEED_LIMIT) -> None:
        self.items: deque[Any] = deque()
        self.limit = limit
        self.ended: tuple[int, str] | None = None
        """The close code and reason once the feed was ended at once (None: it was not):
        1013 (the client fell ``limit`` items behind) or 1001 (the service stops)."""
        self.ended_event = asyncio.Event()
        """Set when the feed ends at once (see :attr:`ended`)."""
        self._waiter: asyncio.Future[None] | None = None

    def put(self, item: Any) -> None:
        """Add ``item`` (never waits); past the limit, the feed ends instead (1013)."""
        if self.ended is not None:
            return
        if len(self.items) >= self.limit:
            self.end(1013, f"too slow: {self.limit} items waited to be sent")
            return
        self.items.append(item)
        self._wake()

    def end(self, code: int, reason: str) -> None:
        """End the feed now: what it holds is dropped, its client closed with ``code``."""
        if self.ended is None:
            self.ended = (code, reason)
            self.items.clear()
            self.ended_event.set()
            self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    async def wait(self) -> None:
        """Return once the feed holds something or has ended."""
        while not self.items and self.ended is None:
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter

    def take(self) -> list[Any]:
        """Everything held now, oldest first."""
        items = list(self.items)
        self.items.clear()
        return items


class _Run:
    """A run the hub has seen open and not yet close."""

    __slots__ = ("count", "done", "item_uid", "listeners", "plan_name", "total", "uid")

    def __init__(self, start: Mapping[str, Any]) -> None:
        self.uid: str = start["uid"]
        self.count = 0
        self.listeners: list[Feed] = []
        self.done = 0
        total = start.get("num_points")
        self.total = total if isinstance(total, int) and not isinstance(total, bool) else None
        self.plan_name = start.get("plan_name")
        self.item_uid = start.get("queue_item_uid")


class EventHub:
    """The service's live feeds: documents, status changes, progress, log lines.

    Numbers every run's documents and hands them to the clients listening (see the
    module docstring).

    Args:
        RE: the engine whose documents and state are followed.
        limit: the bound of each client's feed.
    """

    def __init__(self, RE: RunEngine, limit: int = FEED_LIMIT) -> None:
        self.RE = RE
        self.limit = limit
        self.live: dict[str, _Run] = {}
        """The runs open now, by uid."""
        self._owner: dict[str, _Run] = {}  # descriptor/resource uid -> its run
        self._primary: set[str] = set()  # descriptors of primary streams (progress)
        self._all: list[Feed] = []  # clients of every run's documents
        self._token: int | None = None
        self._handler: LogHandler | None = None
        self.logs: deque[dict[str, Any]] = deque(maxlen=LOG_LINES)
        """The last log lines, replayed to a client on connect."""
        self._log_feeds: list[Feed] = []
        self._signals: dict[str, asyncio.Future[None]] = {}
        self._current: _Run | None = None  # the run progress is about
        self.progress_version = 0
        """Counts progress changes (a client sends when it differs from what it sent)."""
        RE.observe_state(self._state_changed)  # a no-op while detached

    # -- attach / detach ------------------------------------------------------------------
    @property
    def attached(self) -> bool:
        """True between :meth:`attach` and :meth:`detach`."""
        return self._token is not None

    def attach(self) -> None:
        """Subscribe to the engine and install the log handler on the ``acq`` logger."""
        if self._token is not None:
            return
        self._token = self.RE.subscribe(self, critical=True)  # inline, never raises
        self._handler = LogHandler(self._log_line, asyncio.get_running_loop())
        logging.getLogger("acq").addHandler(self._handler)

    def detach(self) -> None:
        """Undo :meth:`attach`; every client's feed is ended (closed with code 1001)."""
        if self._token is not None:
            self.RE.unsubscribe(self._token)
            self._token = None
        if self._handler is not None:
            logging.getLogger("acq").removeHandler(self._handler)
            self._handler = None
        for feed in self.feeds():
            feed.end(1001, "the service is shutting down")
        self._all.clear()
        self._log_feeds.clear()
        self._signal("status")
        self._signal("progress")

    # -- the engine's side: called inline for every document ----------------------------
    def __call__(self, name: str, doc: dict[str, Any]) -> None:
        """Number ``doc`` and hand it to the clients listening (never raises)."""
        try:
            run = self._route(name, doc)
        except (KeyError, TypeError):  # a run opened before attach(): not followed
            logger.debug("document %s %s of a run this hub never saw open", name, doc.get("uid"))
            return
        try:
            self._publish(run, name, doc)
        except Exception:  # a feed's failure must never fail the run
            logger.exception("the WebSocket feeds failed on a %r document", name)

    def _publish(self, run: _Run, name: str, doc: dict[str, Any]) -> None:
        index = run.count
        run.count = index + 1
        if name in _EVENTS and doc["descriptor"] in self._primary:
            run.done += 1 if name == "event" else len(doc["seq_num"])
            self._progressed(run)
        if run.listeners or self._all:
            entry = DocumentEntry(run.uid, index, name, doc)
            for feed in run.listeners:
                feed.put(entry)
            for feed in self._all:
                feed.put(entry)
        if name == "start" or name == "stop":
            if name == "stop":
                self._close_run(run)
            self._progressed(run)
            self._signal("status")

    def _route(self, name: str, doc: Mapping[str, Any]) -> _Run:
        if name in _EVENTS:
            return self._owner[doc["descriptor"]]
        if name == "start":
            run = self.live[doc["uid"]] = _Run(doc)
            return run
        if name == "stop":
            return self.live[doc["run_start"]]
        field = _OWNED_BY.get(name)
        if field is not None:
            run = self.live[doc[field]]
            self._owner[doc["uid"]] = run
            if name == "descriptor" and doc.get("name") == "primary":
                self._primary.add(doc["uid"])
            return run
        if name == "stream_datum" and doc.get("descriptor") in self._owner:
            return self._owner[doc["descriptor"]]
        return self._owner[doc[_BELONGS_TO[name]]]

    def _close_run(self, run: _Run) -> None:
        del self.live[run.uid]
        for key in [k for k, r in self._owner.items() if r is run]:
            del self._owner[key]
            self._primary.discard(key)
        for feed in run.listeners:
            feed.put(END)
        run.listeners.clear()

    def _progressed(self, run: _Run) -> None:
        self._current = run
        self.progress_version += 1
        if "progress" in self._signals:
            self._signal("progress")

    # -- clients ------------------------------------------------------------------------
    def listen(self, run_uid: str | None) -> tuple[Feed, dict[str, int]]:
        """A feed of one open run's live documents (``run_uid``) or every run's (None).

        With it, per run open now, the count of its documents so far.

        A client replays from the catalog what it needs below those counts, then sends
        what its feed holds (a run's feed ends with :data:`END` after its Stop).
        """
        if run_uid is None:
            feed = Feed(self.limit)
            self._all.append(feed)
            counts = {uid: run.count for uid, run in self.live.items()}
        else:
            run = self.live[run_uid]
            feed = Feed(self.limit)
            run.listeners.append(feed)
            counts = {run_uid: run.count}
        return feed, counts

    def feeds(self) -> list[Feed]:
        """Every feed the hub hands something to now."""
        runs = [feed for run in self.live.values() for feed in run.listeners]
        return [*self._all, *self._log_feeds, *runs]

    def forget(self, feed: Feed) -> None:
        """Stop feeding ``feed`` (its client left)."""
        for feeds in (self._all, self._log_feeds, *(r.listeners for r in self.live.values())):
            with contextlib.suppress(ValueError):
                feeds.remove(feed)

    def listen_logs(self) -> Feed:
        """A feed of log lines, holding the last ones already."""
        feed = Feed(self.limit)
        for line in self.logs:
            feed.put(line)
        self._log_feeds.append(feed)
        return feed

    # -- status, progress and log lines -------------------------------------------------
    def progress_message(self) -> dict[str, Any] | None:
        """The current (or last) run's progress: ``item_uid, plan_name, run_uid, done, total``."""
        run = self._current
        if run is None:
            return None
        return {"item_uid": run.item_uid, "plan_name": run.plan_name, "run_uid": run.uid,
                "done": run.done, "total": run.total}  # fmt: skip

    def changed(self, what: str) -> asyncio.Future[None]:
        """A future done at the next change of ``what`` ("status" or "progress")."""
        signal = self._signals.get(what)
        if signal is None or signal.done():
            signal = self._signals[what] = asyncio.get_running_loop().create_future()
        return signal

    def _signal(self, what: str) -> None:
        signal = self._signals.pop(what, None)
        if signal is not None and not signal.done():
            signal.set_result(None)

    def _state_changed(self, old: State, new: State) -> None:
        if self._token is not None:
            self._signal("status")

    def _log_line(self, line: dict[str, Any]) -> None:
        self.logs.append(line)
        for feed in self._log_feeds:
            feed.put(line)


class LogHandler(logging.Handler):
    """Hands each log record, as a line, to ``sink`` on ``loop`` (from any thread)."""

    def __init__(
        self, sink: Callable[[dict[str, Any]], None], loop: asyncio.AbstractEventLoop
    ) -> None:
        super().__init__()
        self.sink = sink
        self.loop = loop
        self._thread = threading.get_ident()

    def emit(self, record: logging.LogRecord) -> None:
        """Send the record as ``{"time", "level", "logger", "message"}``."""
        try:
            message = record.getMessage()
            if record.exc_info:
                message = f"{message}\n{self.formatException(record.exc_info)}"
            line = {"time": record.created, "level": record.levelname,
                    "logger": record.name, "message": message}  # fmt: skip
            if threading.get_ident() == self._thread:
                self.sink(line)
            elif not self.loop.is_closed():
                self.loop.call_soon_threadsafe(self.sink, line)
        except Exception:  # noqa: BLE001 -- logging must never raise
            self.handleError(record)

    def formatException(self, ei: Any) -> str:
        """The traceback's text."""
        return logging.Formatter().formatException(ei)
