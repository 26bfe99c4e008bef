"""Statuses and wait groups, on asyncio.

A device's ``set``/``trigger``/``kickoff``/``complete``/``prepare``/``stage`` returns a
status: an ophyd-async ``AsyncStatus`` (awaitable, backed by a task), anything that
follows ``bluesky.protocols.Status`` (``done``, ``success``, ``add_callback``; callbacks
possibly from another thread), or ``None`` for "already done". Statuses are filed under
the message's ``group`` and a ``wait`` message waits for a whole group.

Finished successful statuses are never filed (nothing to wait for), so a plan that never
waits does not grow memory, and the hot path for instant devices is one attribute read.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Hashable, Iterable
from types import CoroutineType
from typing import Any, TypeAlias, cast

from ._errors import FailedStatus, WaitTimeoutError

__all__ = [
    "StatusGroups",
    "WatchedStatusGroups",
    "as_status",
    "await_status",
    "device_name",
    "status_exception",
    "status_future",
]


def device_name(obj: object) -> str:
    """The name to show for a device in messages: its ``name``, else its repr."""
    name = getattr(obj, "name", None)
    return name if isinstance(name, str) and name else repr(obj)


def _is_done(status: Any) -> bool:
    done = status.done
    return bool(done() if callable(done) else done)


def _future_of(status: Any) -> asyncio.Future[Any] | None:
    """The asyncio future behind a status: the status itself, or its ``task``."""
    if isinstance(status, asyncio.Future):
        return cast("asyncio.Future[Any]", status)
    task = getattr(status, "task", None)
    return cast("asyncio.Future[Any]", task) if isinstance(task, asyncio.Future) else None


def as_status(result: Any) -> Any:
    """What a device method returned, as a status: a bare coroutine becomes a task."""
    if type(result) is CoroutineType:
        return asyncio.ensure_future(cast(Coroutine[Any, Any, Any], result))
    return result


def status_exception(status: Any) -> BaseException | None:
    """The failure of a finished status, or None if it succeeded."""
    task = _future_of(status)
    if task is not None:
        if task.cancelled():
            return asyncio.CancelledError()
        return task.exception()
    success = getattr(status, "success", True)
    if success:
        return None
    exc_getter = getattr(status, "exception", None)
    exc: object = None
    if callable(exc_getter):
        try:
            exc = exc_getter(0)
        except TypeError:
            exc = exc_getter()
        except Exception as err:  # noqa: BLE001 -- the status's own failure
            exc = err
    return exc if isinstance(exc, BaseException) else FailedStatus(f"{status!r} failed", status)


def status_future(status: Any, loop: asyncio.AbstractEventLoop) -> asyncio.Future[Any]:
    """A future that finishes when ``status`` does; it never cancels the status itself."""
    task = _future_of(status)
    if task is not None:
        return task
    fut: asyncio.Future[Any] = loop.create_future()
    loop_thread = threading.get_ident()

    def _finish(_: object = None) -> None:
        if not fut.done():
            fut.set_result(status)

    def _callback(_: object) -> None:
        if threading.get_ident() == loop_thread:
            _finish()
        else:
            loop.call_soon_threadsafe(_finish)

    status.add_callback(_callback)
    return fut


_Entry: TypeAlias = tuple[str, Any, Any]  # (command, device, status) filed in a group


class StatusGroups:
    """Pending statuses by group, for ``wait``."""

    __slots__ = ("_futures", "_groups")

    def __init__(self) -> None:
        self._groups: dict[Hashable, list[_Entry]] = {}
        # the future of each protocol status being waited for or watched, made once: a
        # status watched by every wait of a scan gets one callback, not one per wait
        self._futures: dict[int, tuple[Any, asyncio.Future[Any]]] = {}

    def add(self, group: Hashable, command: str, obj: Any, status: Any) -> bool:
        """File ``status`` (from ``command`` on ``obj``) under ``group``.

        A status that has already finished successfully is not kept; a failed one is,
        so that the ``wait`` for its group raises.

        Returns:
            True if the status was filed (it is still running, or it failed).
        """
        if status is None:
            return False
        try:  # the protocol's attributes: one read each for a finished status
            if status.done is True and status.success is True:
                return False
        except AttributeError:
            pass
        if _is_done(status) and status_exception(status) is None:
            return False
        entries = self._groups.get(group)
        if entries is None:
            self._groups[group] = [(command, obj, status)]
        else:
            entries.append((command, obj, status))
        return True

    def has(self, group: Hashable) -> bool:
        """True if anything is filed under ``group`` (a ``wait`` for it may have to wait)."""
        return group in self._groups

    def statuses(self, group: Hashable) -> set[Any]:
        """The statuses filed under ``group`` (what a ``wait`` for it waits for)."""
        return {entry[2] for entry in self._groups.get(group, ())}

    def pending(self) -> list[tuple[str, Any, Any]]:
        """Every filed status that has not finished, all groups."""
        return [e for entries in self._groups.values() for e in entries if not _is_done(e[2])]

    def raise_unwaited_failure(self) -> None:
        """Raise :class:`FailedStatus` for a filed status that failed, if any.

        At the end of a plan: a move that failed while nobody waited for it fails the
        plan, as in bluesky, instead of passing unnoticed.
        """
        for entries in self._groups.values():
            for entry in entries:
                if not _is_done(entry[2]):
                    continue
                exc = status_exception(entry[2])
                if (
                    exc is not None
                    and not isinstance(exc, asyncio.CancelledError)
                    and not getattr(exc, "_acq_reported", False)
                ):
                    _raise_if_failed(entry)

    def clear(self) -> None:
        """Forget every filed status (their failures, e.g. "stopped", are retrieved)."""
        loop = asyncio.get_running_loop()
        for entries in self._groups.values():
            for _, _, status in entries:
                if not _is_done(status):
                    status_future(status, loop).add_done_callback(_retrieve)
        self._groups.clear()
        self._futures.clear()

    async def wait(
        self,
        group: Hashable,
        timeout: float | None = None,  # noqa: ASYNC109 -- the 'wait' message's own
        error_on_timeout: bool = True,
        watch: Iterable[Hashable] = (),
    ) -> bool:
        """Wait for every status of ``group``; the first failure ends the wait at once.

        A failure in a ``watch`` group ends the wait too (as in bluesky: the status of a
        fly scan watched while the plan steps); a watched status that succeeds does not.
        Watched statuses stay filed in their groups.

        Returns:
            True once all are done; False when ``timeout`` passed first and
            ``error_on_timeout`` is False.

        Raises:
            FailedStatus: a status of the group failed (as soon as it did: the others
                are not waited for, as in bluesky), or one of a watched group did (the
                group's unfinished statuses then stay filed); the device's error is its
                cause.
            WaitTimeoutError: ``timeout`` passed with statuses unfinished (they stay in
                the group, unless ``error_on_timeout`` is False, in which case the wait
                just returns and they stay filed).
        """
        entries = self._groups.pop(group, None)
        if not entries:
            return True
        for entry in entries:
            if _is_done(entry[2]):
                _raise_if_failed(entry)
        unfinished = [e for e in entries if not _is_done(e[2])]
        if not unfinished:
            return True
        watched = [(w, e) for w in watch for e in self._groups.get(w, ())]
        for watched_group, entry in watched:
            if _is_done(entry[2]):
                self._raise_if_watched_failed(group, unfinished, watched_group, entry)
        loop = asyncio.get_running_loop()
        futures = {self._future(e[2], loop): e for e in unfinished}
        watching = {self._future(e[2], loop): (w, e) for w, e in watched if not _is_done(e[2])}
        pending: set[asyncio.Future[Any]] = {*futures, *watching}
        deadline = None if timeout is None else loop.time() + timeout
        try:
            while not pending.isdisjoint(futures):
                left = None if deadline is None else max(0.0, deadline - loop.time())
                done, pending = await asyncio.wait(
                    pending, timeout=left, return_when=asyncio.FIRST_COMPLETED
                )
                if not done:
                    break  # timed out
                self._raise_on_failure(group, done, pending, futures, watching)
        except asyncio.CancelledError:
            self._groups.setdefault(group, []).extend(entries)  # interrupted: keep them
            raise
        return self._timed_out(group, [futures[f] for f in pending if f in futures], timeout,
                               error_on_timeout)  # fmt: skip

    def _raise_on_failure(
        self,
        group: Hashable,
        done: set[asyncio.Future[Any]],
        pending: set[asyncio.Future[Any]],
        futures: dict[asyncio.Future[Any], _Entry],
        watching: dict[asyncio.Future[Any], tuple[Hashable, _Entry]],
    ) -> None:
        """End a wait when a status just done failed: the group's own first, then watched."""
        for fut in done:
            entry = futures.get(fut)
            if entry is not None and status_exception(entry[2]) is not None:
                for other in pending.intersection(futures):  # nobody waits now
                    other.add_done_callback(_retrieve)
                _raise_if_failed(entry)
        for fut in done:
            if fut in watching:
                keep = [futures[f] for f in pending if f in futures]
                self._raise_if_watched_failed(group, keep, *watching[fut])

    def _timed_out(
        self, group: Hashable, waiting: list[_Entry], timeout: float | None, error: bool
    ) -> bool:
        """A wait's end: True if nothing is left; else unfinished statuses stay filed."""
        if not waiting:
            return True
        self._groups.setdefault(group, []).extend(waiting)
        if error:
            names = ", ".join(f"{cmd} {device_name(obj)}" for cmd, obj, _ in waiting)
            raise WaitTimeoutError(
                f"wait for group {group!r} timed out after {timeout} s; still waiting for: {names}"
            )
        return False

    def _future(self, status: Any, loop: asyncio.AbstractEventLoop) -> asyncio.Future[Any]:
        """:func:`status_future` of ``status``, made once while the status runs."""
        task = _future_of(status)
        if task is not None:
            return task
        key = id(status)
        known = self._futures.get(key)
        if known is not None and known[0] is status:
            return known[1]
        fut = status_future(status, loop)
        if not fut.done():
            self._futures[key] = (status, fut)  # holding the status keeps its id its own
            fut.add_done_callback(lambda _: self._futures.pop(key, None))
        return fut

    def _raise_if_watched_failed(
        self,
        group: Hashable,
        keep: list[tuple[str, Any, Any]],
        watched_group: Hashable,
        entry: tuple[str, Any, Any],
    ) -> None:
        """If watched ``entry`` failed, file ``keep`` back under ``group`` and raise.

        The failed status leaves its own group: its failure reaches the plan once.
        """
        if status_exception(entry[2]) is None:
            return
        if keep:
            self._groups.setdefault(group, []).extend(keep)
        others = [e for e in self._groups.get(watched_group, ()) if e is not entry]
        if others:
            self._groups[watched_group] = others
        else:
            self._groups.pop(watched_group, None)
        try:
            _raise_if_failed(entry)
        except FailedStatus as exc:
            exc.add_note(
                f"acq: a status of watched group {watched_group!r} failed "
                f"while waiting for group {group!r}"
            )
            raise


class WatchedStatusGroups(StatusGroups):
    """Status groups that also file finished statuses, for ``RE.waiting_hook``.

    Used only when a hook is set, so that it sees every status a ``wait`` covers, as
    bluesky's does; the usual groups skip finished statuses (nothing to wait for).
    """

    __slots__ = ()

    def add(self, group: Hashable, command: str, obj: Any, status: Any) -> bool:
        """File ``status``; True if it is still running or failed (see the base class)."""
        if status is None:
            return False
        running = super().add(group, command, obj, status)
        if not running:
            self._groups.setdefault(group, []).append((command, obj, status))
        return running


def _retrieve(fut: asyncio.Future[Any]) -> None:
    """Mark a forgotten status's outcome as seen (no 'exception never retrieved')."""
    if not fut.cancelled():
        fut.exception()


def _raise_if_failed(entry: tuple[str, Any, Any]) -> None:
    """Raise :class:`FailedStatus` (the device's error as its cause) if ``entry`` failed."""
    command, obj, status = entry
    exc = status_exception(status)
    if exc is None:
        return
    what = f"the status of {command!r} on {device_name(obj)}"
    if isinstance(exc, asyncio.CancelledError):
        raise FailedStatus(f"{what} was cancelled", status)
    exc._acq_reported = True  # type: ignore[attr-defined] -- raised into a plan: never twice
    if isinstance(exc, FailedStatus):
        exc.add_note(f"acq: {what} failed")
        raise exc
    raise FailedStatus(f"{what} failed: {type(exc).__name__}: {exc}", status) from exc


async def await_status(status: Any) -> None:
    """Wait for what a device method returned: a status, an awaitable, a list, or None.

    Raises:
        BaseException: the status's own failure.
    """
    if status is None:
        return
    if hasattr(status, "__await__"):
        await status
        return
    if isinstance(status, list | tuple):
        for item in cast(list[Any], status):
            await await_status(item)
        return
    if not callable(getattr(status, "add_callback", None)):
        return  # not a status (ophyd v1's unstage() returns the devices it unstaged)
    await status_future(status, asyncio.get_running_loop())
    exc = status_exception(status)
    if exc is not None:
        raise exc
