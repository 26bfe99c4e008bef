"""Subscribers: every callback gets its own queue and worker, so none can hold up a plan.

* ``callback(name, doc)``, a plain function or ``async def``.
* A plain function runs in its own worker thread (``thread=True``, the default) so a
  slow one never blocks the event loop; pass ``thread=False`` to run a quick callback on
  the loop (in its own task) instead. An ``async def`` callback runs in its own task.
* Each worker sees its documents in order. Queues are bounded (``maxsize``); when one is
  full, the overflow policy decides: ``"block"`` (default: the engine waits for room, so
  nothing is lost) or ``"drop"`` (the document is dropped for that subscriber and
  counted on the result).
* A *critical* subscriber (storage) is called inline: the engine awaits it for each
  document, and if it raises, the run fails with :class:`SubscriberError` instead of
  losing data silently. A critical subscriber that does blocking I/O (an HTTP client,
  say) is subscribed with ``critical=True, thread=True``: each document is then handed
  to its own thread and the plan waits for it there, while the loop goes on (other
  tasks, Ctrl-C, the other subscribers).
* A callback the *plan* subscribes (``Msg('subscribe')``, bluesky's ``subs_wrapper``)
  is part of the plan's own logic (a ``PeakStats`` whose result the plan moves to, as
  apstools' ``lineup2`` computes before ``close_run``): it is called inline, like a
  critical one, so it has every document before the plan's next message, as in
  bluesky; its errors are reported like any non-critical subscriber's.
* An error in a non-critical callback is logged (logger ``acq.subscribers``) and
  recorded on the result; the callback keeps receiving later documents.

Workers live for one ``RE(...)`` call: started when the call begins (or when a
subscription is added during it), drained before the call returns, then shut down.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import logging
import queue
import threading
import time
import warnings
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias, cast

from ._errors import SubscriberError

__all__ = [
    "Callback",
    "CallbackError",
    "CancelGuard",
    "Dispatcher",
    "Subscription",
    "DOCUMENT_NAMES",
]

logger = logging.getLogger("acq.subscribers")

Callback: TypeAlias = Callable[[str, dict[str, Any]], Any]
Overflow: TypeAlias = Literal["block", "drop"]

DOCUMENT_NAMES = frozenset(
    {
        "all",
        "start",
        "descriptor",
        "event",
        "event_page",
        "stop",
        "resource",
        "datum",
        "datum_page",
        "stream_resource",
        "stream_datum",
    }
)


@dataclass(frozen=True)
class CallbackError:
    """A non-critical subscriber raised; the scan went on."""

    subscriber: str
    document: str
    error: BaseException


@dataclass(eq=False)
class Subscription:
    """One subscribed callback and how it is run."""

    callback: Callback
    name: str = "all"
    critical: bool = False
    thread: bool | None = None  # None: a thread unless critical or inline (see Dispatcher)
    inline: bool = False  # called before the plan goes on, errors only reported
    maxsize: int = 10_000
    overflow: Overflow = "block"
    token: int = 0
    is_async: bool = field(init=False)

    def __post_init__(self) -> None:
        if self.name not in DOCUMENT_NAMES:
            raise ValueError(
                f"cannot subscribe to {self.name!r}: choose one of {sorted(DOCUMENT_NAMES)}"
            )
        if not callable(self.callback):
            raise TypeError(f"a subscriber must be callable(name, doc), got {self.callback!r}")
        if self.overflow not in ("block", "drop"):
            raise ValueError(f"overflow must be 'block' or 'drop', got {self.overflow!r}")
        if self.maxsize < 1:
            raise ValueError(f"maxsize must be at least 1, got {self.maxsize}")
        self.is_async = inspect.iscoroutinefunction(self.callback) or (
            inspect.iscoroutinefunction(getattr(self.callback, "__call__", None))  # noqa: B004
        )
        if self.thread is None:
            self.thread = not (self.critical or self.inline)

    def wants(self, name: str) -> bool:
        """True if this subscription takes documents called ``name``."""
        return self.name == "all" or self.name == name

    @property
    def label(self) -> str:
        """A readable name for logs and errors."""
        cb = self.callback
        return getattr(cb, "__qualname__", None) or type(cb).__qualname__


_STOP: Any = object()
_BATCH = 256  # quick callbacks run this many documents per turn before letting others in
_HANDOFF = 512  # documents handed to a subscriber's thread at once, or...
_HANDOFF_DELAY = 0.02  # ...this many seconds after the first of them, whichever is first;
_SLOW_DOC = 0.0005  # but a callback slower than this per document gets each one at once


class _Worker:
    """Runs one subscription's callback over its queue of documents."""

    def __init__(self, sub: Subscription, errors: list[CallbackError]) -> None:
        self.sub = sub
        self.dropped = 0
        self._errors = errors
        self._loop = asyncio.get_running_loop()

    def _report(self, name: str, exc: Exception) -> None:
        _report_error(self._errors, self.sub, name, exc)

    def put_nowait(self, item: tuple[str, dict[str, Any]]) -> bool:  # pragma: no cover
        raise NotImplementedError

    async def put(self, item: tuple[str, dict[str, Any]]) -> None:  # pragma: no cover
        raise NotImplementedError

    async def drain(self) -> None:  # pragma: no cover
        raise NotImplementedError

    async def close(self) -> None:  # pragma: no cover
        raise NotImplementedError


class _LoopWorker(_Worker):
    """A task on the loop: for ``async def`` callbacks and ``thread=False`` ones."""

    def __init__(self, sub: Subscription, errors: list[CallbackError]) -> None:
        super().__init__(sub, errors)
        self._queue: deque[tuple[str, dict[str, Any]]] = deque()
        self._wakeup: asyncio.Future[None] | None = None
        self._room: list[asyncio.Future[None]] = []
        self._idle: asyncio.Future[None] | None = None
        self._busy = False
        self._task = asyncio.create_task(self._run(), name=f"acq subscriber {sub.label}")

    def put_nowait(self, item: tuple[str, dict[str, Any]]) -> bool:
        if len(self._queue) >= self.sub.maxsize:
            return False
        self._queue.append(item)
        wakeup = self._wakeup
        if wakeup is not None and not wakeup.done():
            wakeup.set_result(None)
        return True

    async def put(self, item: tuple[str, dict[str, Any]]) -> None:
        while not self.put_nowait(item):
            if self.sub.overflow == "drop":
                self.dropped += 1
                return
            if self._task.done():
                return
            room: asyncio.Future[None] = self._loop.create_future()
            self._room.append(room)
            await room

    async def _run(self) -> None:
        callback = self.sub.callback
        is_async = self.sub.is_async
        q = self._queue
        batch = 0
        while True:
            if not q:
                batch = 0
                self._busy = False
                if self._idle is not None and not self._idle.done():
                    self._idle.set_result(None)
                self._wakeup = self._loop.create_future()
                await self._wakeup
                self._wakeup = None
                continue
            self._busy = True
            name, doc = q.popleft()
            if self._room:
                for room in self._room:
                    if not room.done():
                        room.set_result(None)
                self._room.clear()
            if doc is _STOP:
                return
            try:
                if is_async:
                    await callback(name, doc)
                else:
                    callback(name, doc)
            except Exception as exc:  # noqa: BLE001 -- reported, never breaks the plan
                self._report(name, exc)
            if not is_async:
                batch += 1
                if batch >= _BATCH and q:
                    batch = 0
                    await asyncio.sleep(0)  # let the plan run between batches

    async def drain(self) -> None:
        while (self._queue or self._busy) and not self._task.done():
            self._idle = self._loop.create_future()
            await asyncio.wait([self._idle, self._task], return_when=asyncio.FIRST_COMPLETED)

    async def close(self) -> None:
        self._queue.append(("", _STOP))
        if self._wakeup is not None and not self._wakeup.done():
            self._wakeup.set_result(None)
        try:
            await self._task
        except asyncio.CancelledError:
            if not self._task.cancelled():
                raise


class _ThreadWorker(_Worker):
    """A worker thread: for plain-function callbacks, so slow ones never block the loop.

    Documents cross to the thread in batches: the loop side appends to a list and hands
    the list over when it holds ``_HANDOFF`` (512) documents or ``_HANDOFF_DELAY`` seconds
    after its first document, whichever comes first (and at once on drain or close).
    Waking a sleeping thread per document cost ~2 µs of the engine's time per event on
    fast scans and ~20-45 µs per point on device-bound ones, where every point spans
    many loop turns (a futex wake and a GIL hand-back). Every 2 ms it still cost an
    ophyd-async scan (~0.6 ms a point, ~80 loop turns each) ~50-100 µs per point; every
    20 ms it is lost in the noise, and a live table or plot 20 ms behind is still live.
    A slow callback (``_SLOW_DOC``, 0.5 ms a document or more, as the worker measures
    each batch) gets each document at once instead: next to its own time the wake-up
    is nothing, and a document held back would only lengthen the wait at the end.
    The queue is a ``SimpleQueue`` (a lock-free C put); the bound is kept with two
    counters, each written by one thread only: documents put (loop) and taken (worker).
    """

    def __init__(self, sub: Subscription, errors: list[CallbackError]) -> None:
        super().__init__(sub, errors)
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._batch: list[tuple[str, Any]] = []
        self._put = 0
        self._taken = 0
        self._slow = False  # set by the worker: its callback takes _SLOW_DOC or more
        self._thread = threading.Thread(
            target=self._run, name=f"acq subscriber {sub.label}", daemon=True
        )
        self._thread.start()

    def put_nowait(self, item: tuple[str, dict[str, Any]]) -> bool:
        if self._put - self._taken >= self.sub.maxsize:
            return False
        self._put += 1
        batch = self._batch
        batch.append(item)
        if len(batch) >= _HANDOFF or self._slow:
            self._hand_over()
        elif len(batch) == 1:
            self._loop.call_later(_HANDOFF_DELAY, self._hand_over)
        return True

    def _hand_over(self) -> None:
        if self._batch:
            self._queue.put(self._batch)
            self._batch = []

    async def put(self, item: tuple[str, dict[str, Any]]) -> None:
        delay = 0.0005
        self._hand_over()  # what is waiting goes first, so the thread can make room
        while not self.put_nowait(item):
            if self.sub.overflow == "drop":
                self.dropped += 1
                return
            if not self._thread.is_alive():
                return
            await asyncio.sleep(delay)  # rare: the subscriber is maxsize documents behind
            delay = min(delay * 2, 0.05)

    def _run(self) -> None:
        callback = self.sub.callback
        get = self._queue.get
        while True:
            batch = get()
            if isinstance(batch, threading.Event):
                batch.set()
                return
            if isinstance(batch, asyncio.Future):
                self._loop.call_soon_threadsafe(_set_done, cast("asyncio.Future[None]", batch))
                continue
            started = time.perf_counter()
            for name, doc in batch:
                try:
                    callback(name, doc)
                except Exception as exc:  # noqa: BLE001 -- reported, never breaks the plan
                    self._loop.call_soon_threadsafe(self._report, name, exc)
                self._taken += 1
            self._slow = time.perf_counter() - started >= _SLOW_DOC * len(batch)

    async def drain(self) -> None:
        done: asyncio.Future[None] = self._loop.create_future()
        self._hand_over()
        self._queue.put(done)  # markers do not count against the bound
        await done

    async def close(self) -> None:
        finished = threading.Event()
        self._hand_over()
        self._queue.put(finished)
        await asyncio.to_thread(self._thread.join)


class CancelGuard:
    """Lets an ending (a cleanup, the subscribers' shutdown) finish when cancelled again.

    :meth:`reraise` then hands the cancellation on to the caller.

    ``await guard.essential(aw)`` runs ``aw`` to its end whatever cancellations arrive
    (a run's Stop reaching a critical subscriber); ``await guard.optional(aw)`` lets a
    cancellation cut ``aw`` short (a device's ``stop()`` that hangs), and the ending goes on.
    """

    def __init__(self) -> None:
        self.cancelled = False

    async def essential(self, aw: Awaitable[Any]) -> Any:
        """Await ``aw`` to its end; a cancellation meanwhile is only recorded."""
        task = asyncio.ensure_future(aw)
        while True:
            try:
                return await asyncio.shield(task)
            except asyncio.CancelledError:
                self.cancelled = True
                if task.done():
                    return None if task.cancelled() else task.result()

    async def optional(self, aw: Awaitable[Any]) -> Any:
        """Await ``aw``; a cancellation cuts it short (recorded) and gives None."""
        try:
            return await aw
        except asyncio.CancelledError:
            self.cancelled = True
            return None

    def reraise(self) -> None:
        """Raise ``CancelledError`` if the task was cancelled while the guard held it."""
        if self.cancelled:
            raise asyncio.CancelledError


def _set_done(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class Dispatcher:
    """The engine's subscriptions, and their workers while a plan runs."""

    def __init__(self) -> None:
        self._subs: dict[int, Subscription] = {}
        self._tokens = itertools.count(0)  # as bluesky's: the first token is 0
        self._workers: dict[int, _Worker] = {}
        self._critical_by_name: dict[str, tuple[tuple[Subscription, Callback], ...]] = {}
        self._offloaders: dict[int, ThreadPoolExecutor] = {}  # critical, thread=True
        self._by_name: dict[str, tuple[_Worker, ...]] = {}
        self.errors: list[CallbackError] = []
        self._retired: list[_Worker] = []
        self.active = False
        self._rebuild()

    # -- subscriptions ------------------------------------------------------------------
    def subscribe(self, sub: Subscription) -> int:
        """Add ``sub``; return its token. During a plan its worker starts at once."""
        sub.token = next(self._tokens)
        self._subs[sub.token] = sub
        if self.active:
            self._start(sub)
        self._rebuild()
        return sub.token

    async def unsubscribe(self, token: int) -> None:
        """Remove a subscription; its worker first takes what is already queued."""
        sub = self._subs.pop(token, None)
        if sub is None:
            return
        worker = self._workers.pop(token, None)
        self._retire_offloader(token)
        self._rebuild()
        if worker is not None:
            await worker.drain()
            await worker.close()

    def unsubscribe_nowait(self, token: int) -> None:
        """Remove a subscription from synchronous code; its worker closes at the end."""
        sub = self._subs.pop(token, None)
        if sub is not None and token in self._workers:
            self._retired.append(self._workers.pop(token))
        self._retire_offloader(token)
        self._rebuild()

    def has(self, token: int) -> bool:
        """True if ``token`` names a current subscription."""
        return token in self._subs

    @property
    def dropped(self) -> dict[str, int]:
        """Documents dropped per subscriber (overflow policy "drop") in this call."""
        return {w.sub.label: w.dropped for w in self._workers.values() if w.dropped}

    # -- the life of a call -------------------------------------------------------------
    def start(self) -> None:
        """Start a worker for every subscription (at the beginning of ``RE(...)``)."""
        self.errors = []
        self._retired: list[_Worker] = []
        self.active = True
        for sub in self._subs.values():
            self._start(sub)
        self._rebuild()

    def _start(self, sub: Subscription) -> None:
        if sub.critical or sub.inline:
            if sub.thread and not sub.is_async:
                self._offloaders[sub.token] = ThreadPoolExecutor(
                    1, thread_name_prefix=f"acq critical subscriber {sub.label}"
                )
            return
        cls = _LoopWorker if sub.is_async or not sub.thread else _ThreadWorker
        self._workers[sub.token] = cls(sub, self.errors)

    async def drain(self) -> None:
        """Wait until every worker has called back with every document handed over so far.

        ``close_run`` waits for this, so that when it returns to the plan every
        subscriber has seen the run through its Stop, as in bluesky (a plan may read a
        ``PeakStats`` right after its scan). A slow subscriber delays the end of a run,
        never a point.
        """
        for worker in [*self._workers.values(), *self._retired]:
            await worker.drain()

    async def finish(self) -> None:
        """Wait until every worker has taken every document, then stop them."""
        workers = list(self._workers.values()) + self._retired
        guard = CancelGuard()
        for worker in workers:  # cancelled: close() still hands each worker its queue
            await guard.optional(worker.drain())
        self.active = False
        self._workers.clear()
        self._retired = []
        for token in list(self._offloaders):
            self._retire_offloader(token)
        self._rebuild()
        for worker in workers:  # cancelled: the worker still ends, at its stop marker
            await guard.optional(worker.close())
        guard.reraise()

    def _report(self, sub: Subscription, name: str, exc: Exception) -> None:
        _report_error(self.errors, sub, name, exc)

    def _retire_offloader(self, token: int) -> None:
        executor = self._offloaders.pop(token, None)
        if executor is not None:
            executor.shutdown(wait=False)  # its documents were all awaited

    def _critical_call(self, sub: Subscription) -> Callback:
        """How a critical subscriber is called: inline, or in its own thread."""
        executor = self._offloaders.get(sub.token)
        if executor is None:
            return sub.callback
        submit = executor.submit
        callback = sub.callback

        def offloaded(name: str, doc: dict[str, Any]) -> Any:
            return asyncio.wrap_future(submit(callback, name, doc))

        return offloaded

    def _rebuild(self) -> None:
        self._critical_by_name = {
            name: tuple(
                (s, self._critical_call(s))
                for s in self._subs.values()
                if (s.critical or s.inline) and s.wants(name)
            )
            for name in DOCUMENT_NAMES
        }
        self._by_name = {
            name: tuple(w for w in self._workers.values() if w.sub.wants(name))
            for name in DOCUMENT_NAMES
        }

    # -- publishing ---------------------------------------------------------------------
    def publish_nowait(self, name: str, doc: dict[str, Any]) -> Coroutine[Any, Any, None] | None:
        """Hand ``doc`` to every subscriber of ``name``, as far as that takes no waiting.

        Critical subscribers are called first (in subscription order), then the document
        is queued for every other one. Returns None when that was all; otherwise a
        coroutine that the caller must await to finish the job: a critical subscriber
        returned an awaitable (a catalog's commit of a Start), a queue was full (its
        overflow policy applies), or a critical subscriber raised (the coroutine raises
        :class:`SubscriberError` once every subscriber has the document).
        """
        failure: SubscriberError | None = None
        awaited: list[tuple[Subscription, Any]] | None = None
        for sub, call in self._critical_by_name[name]:
            try:
                result = call(name, doc)
            except Exception as exc:  # noqa: BLE001 -- raised once everyone has the document
                if sub.critical:
                    failure = failure or _critical_error(sub, name, exc)
                else:
                    self._report(sub, name, exc)
            else:
                if result is not None:
                    if awaited is None:
                        awaited = []
                    awaited.append((sub, result))
        item = (name, doc)
        workers = self._by_name[name]
        for worker in workers:
            if not worker.put_nowait(item):
                rest = workers[workers.index(worker) :]
                return self._publish_rest(name, item, awaited, rest, failure)
        if awaited is not None or failure is not None:
            return self._publish_rest(name, item, awaited, (), failure)
        return None

    async def publish(self, name: str, doc: dict[str, Any]) -> None:
        """Hand ``doc`` to every subscriber of ``name``; critical ones are awaited.

        Raises:
            SubscriberError: a critical subscriber failed (after every other subscriber
                was given the document).
        """
        rest = self.publish_nowait(name, doc)
        if rest is not None:
            await rest

    async def _publish_rest(
        self,
        name: str,
        item: tuple[str, dict[str, Any]],
        awaited: list[tuple[Subscription, Any]] | None,
        workers: tuple[_Worker, ...],
        failure: SubscriberError | None,
    ) -> None:
        for sub, result in awaited or ():
            try:
                if isinstance(result, Awaitable):
                    await result
            except Exception as exc:  # noqa: BLE001 -- raised once everyone has the document
                if sub.critical:
                    failure = failure or _critical_error(sub, name, exc)
                else:
                    self._report(sub, name, exc)
        for worker in workers:
            if not worker.put_nowait(item):
                await worker.put(item)
        if failure is not None:
            raise failure


def _report_error(
    errors: list[CallbackError], sub: Subscription, name: str, exc: Exception
) -> None:
    logger.error("subscriber %s raised on a %r document: %r", sub.label, name, exc, exc_info=exc)
    errors.append(CallbackError(sub.label, name, exc))


def _critical_error(sub: Subscription, name: str, exc: Exception) -> SubscriberError:
    error = SubscriberError(
        f"critical subscriber {sub.label} failed on a {name!r} document: {exc!r}"
    )
    error.__cause__ = exc
    return error


def make_subscription(
    callback: Callback | Awaitable[Any] | Callable[..., Awaitable[Any]],
    name: str = "all",
    **options: Any,
) -> Subscription:
    """Build a :class:`Subscription`, accepting bluesky's ``(name, callback)`` order too."""
    if isinstance(callback, str) and callable(name):
        warnings.warn(
            f"subscribe({callback!r}, callback) is bluesky's old argument order: write "
            f"subscribe(callback, {callback!r}); the old order still works",
            UserWarning,
            stacklevel=3,
        )
        callback, name = name, callback
    return Subscription(callback, name, **options)  # type: ignore[arg-type]


def call_subscriptions(items: Iterable[Any]) -> list[Subscription]:
    """Per-call subscriptions: ``cb``, ``(name, cb)`` or bluesky's ``{name: cb or [cb]}``."""
    subs: list[Subscription] = []
    for item in items:
        if isinstance(item, Mapping):
            for name, callbacks in cast(Mapping[str, Any], item).items():
                many = isinstance(callbacks, list | tuple)
                for cb in cast(list[Any], callbacks) if many else [callbacks]:
                    subs.append(make_subscription(cb, name))
        elif isinstance(item, tuple):
            name, cb = cast(tuple[str, Any], item)
            subs.append(make_subscription(cb, name))
        else:
            subs.append(make_subscription(item))
    return subs
