"""Documents become rows: a batch of queued documents, one transaction.

Runs in the catalog's I/O thread (``_writer.py`` takes the batches off the queue).
:class:`Batcher` turns a batch of queued documents into rows -- numbering each run's
documents, packing consecutive Events of one stream into one row, and moving large
arrays to HDF5 (``_external.py``), the numbers of pages into column chunks
(``_columns.py``) -- and :func:`commit` writes them in one transaction.
A document that cannot be stored fails its run only; a failed transaction fails every
run that had documents in it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from event_model import pack_event_page
from sqlalchemy import insert, update

from ._codec import describe_unstorable, dumps, index_copy
from ._columns import encode
from ._config import CatalogError
from ._database import Database
from ._external import ExternalFiles
from ._schema import PACKED_EVENTS, documents, runs

__all__ = ["Batch", "Batcher", "Item", "commit"]

# (run uid, document name, document, waiter): a waiter is resolved once committed
Item = tuple[str | None, str, Any, Any]


@dataclass
class Batch:
    """What one transaction writes, and who waits for it."""

    starts: list[dict[str, Any]] = field(default_factory=list[dict[str, Any]])
    rows: list[dict[str, Any]] = field(default_factory=list[dict[str, Any]])
    stops: list[tuple[str, dict[str, Any]]] = field(
        default_factory=list[tuple[str, dict[str, Any]]]
    )
    waiters: list[tuple[str | None, Any]] = field(default_factory=list[tuple[str | None, Any]])
    runs: set[str] = field(default_factory=set[str])
    stopped: set[str] = field(default_factory=set[str])
    failures: dict[str, BaseException] = field(default_factory=dict[str, BaseException])


class _RunLog:
    """What the writer keeps for one open run."""

    def __init__(self, uid: str, files: ExternalFiles) -> None:
        self.uid = uid
        self.seq = 0
        self.files = files


class Batcher:
    """Turns queued documents into rows, run by run, in order."""

    def __init__(self, files_dir: Path, inline_limit: int) -> None:
        self.files_dir = files_dir
        self.inline_limit = inline_limit
        self.runs: dict[str, _RunLog] = {}

    def prepare(self, items: Iterable[Item], failed: dict[str, BaseException]) -> Batch:
        """Rows for ``items``; documents of runs in ``failed`` are skipped."""
        batch = Batch()
        packs: dict[str, list[dict[str, Any]]] = {}  # run -> Events of one stream, waiting
        for run, name, doc, waiter in items:
            if waiter is not None:
                batch.waiters.append((run, waiter))
            if run is None:
                continue
            if run in failed or run in batch.failures:
                batch.failures.setdefault(run, failed.get(run) or batch.failures[run])
                if name == "stop":
                    batch.stopped.add(run)
                continue
            batch.runs.add(run)
            try:
                if name == "event":
                    pack = packs.get(run)
                    if pack is not None and pack[0]["descriptor"] == doc["descriptor"]:
                        pack.append(doc)
                        continue
                    if pack is not None:
                        self._events(run, pack, batch)
                    packs[run] = [doc]
                    continue
                pack = packs.pop(run, None)
                if pack is not None:
                    self._events(run, pack, batch)
                self._document(run, name, doc, batch)
            except Exception as exc:  # noqa: BLE001 -- fails this run, not the batch
                packs.pop(run, None)
                batch.failures[run] = exc
        for run, pack in packs.items():
            try:
                self._events(run, pack, batch)
            except Exception as exc:  # noqa: BLE001 -- fails this run, not the batch
                batch.failures[run] = exc
        for run in batch.runs - batch.stopped:
            log = self.runs.get(run)
            if log is not None:
                log.files.flush()
        return batch

    def forget(self, run: str) -> None:
        """Drop what is kept for ``run`` (after it failed), closing its files."""
        log = self.runs.pop(run, None)
        if log is not None:
            log.files.close()

    def _log(self, run: str, name: str) -> _RunLog:
        log = self.runs.get(run)
        if log is None:
            raise CatalogError(f"a {name!r} document of run {run!r}, whose Start was not stored")
        return log

    def _row(
        self,
        log: _RunLog,
        name: str,
        doc: Any,
        descriptor: str | None,
        batch: Batch,
        blob: bytes | None = None,
    ) -> None:
        try:
            body = dumps(doc)
        except (TypeError, ValueError):
            raise CatalogError(describe_unstorable(name, doc)) from None
        batch.rows.append(
            {
                "run_uid": log.uid,
                "seq": log.seq,
                "name": name,
                "descriptor": descriptor,
                "body": body,
                "columns": blob,
            }
        )
        log.seq += 1

    def _page_row(
        self, log: _RunLog, name: str, page: dict[str, Any], descriptor: str, batch: Batch
    ) -> None:
        """An Event Page (or packed Events) as column chunks (``_columns.py``)."""
        header, blob = encode(page)
        self._row(log, name, header, descriptor, batch, blob or None)

    def _document(self, run: str, name: str, doc: dict[str, Any], batch: Batch) -> None:
        if name == "start":
            if run in self.runs:
                raise CatalogError(f"a second Start for run {run!r}")
            log = self.runs[run] = _RunLog(
                run, ExternalFiles(self.files_dir, run, self.inline_limit)
            )
            scan_id = doc.get("scan_id")
            batch.starts.append(
                {
                    "uid": run,
                    "scan_id": scan_id if type(scan_id) is int else None,
                    "time": float(doc["time"]),
                    "plan_name": doc.get("plan_name")
                    if isinstance(doc.get("plan_name"), str)
                    else None,
                    "start": index_copy(doc),
                }
            )
            self._row(log, name, doc, None, batch)
            return
        log = self._log(run, name)
        if name == "descriptor":
            self._row(log, name, log.files.descriptor(doc), doc["uid"], batch)
        elif name == "event_page":
            page = self._external_page(log, doc, batch)
            self._page_row(log, name, page, doc["descriptor"], batch)
        elif name == "stop":
            self._row(log, name, doc, None, batch)
            stop = index_copy(doc)
            batch.stops.append(
                (
                    run,
                    {
                        "stop": stop,
                        "stop_time": float(doc["time"]),
                        "exit_status": str(doc.get("exit_status"))[:32],
                    },
                )
            )
            batch.stopped.add(run)
            self.runs.pop(run)
            log.files.close()
        else:
            self._row(log, name, doc, doc.get("descriptor"), batch)

    def _events(self, run: str, events: list[dict[str, Any]], batch: Batch) -> None:
        log = self._log(run, "event")
        descriptor = events[0]["descriptor"]
        keys = log.files.keys.get(descriptor)
        if keys:
            for key in sorted(keys):
                having = [e for e in events if key in e["data"]]
                seq_nums = [e["seq_num"] for e in having]
                values = [e["data"][key] for e in having]
                for name, doc in log.files.write(descriptor, key, seq_nums, values):
                    self._row(log, name, doc, doc.get("descriptor"), batch)
            events = [
                {**e, "data": {k: v for k, v in e["data"].items() if k not in keys}} for e in events
            ]
        if len(events) == 1:
            self._row(log, "event", events[0], descriptor, batch)
        else:
            page = cast(dict[str, Any], pack_event_page(*events))  # type: ignore[arg-type]
            self._page_row(log, PACKED_EVENTS, page, descriptor, batch)

    def _external_page(self, log: _RunLog, page: dict[str, Any], batch: Batch) -> dict[str, Any]:
        descriptor = page["descriptor"]
        keys = log.files.keys.get(descriptor)
        if not keys:
            return page
        seq_nums = list(page["seq_num"])
        for key in sorted(keys):
            values = page["data"].get(key)
            if values is None:
                continue
            for name, doc in log.files.write(descriptor, key, seq_nums, list(values)):
                self._row(log, name, doc, doc.get("descriptor"), batch)
        return {**page, "data": {k: v for k, v in page["data"].items() if k not in keys}}


async def commit(db: Database, batch: Batch) -> None:
    """Write ``batch`` in one transaction (on the I/O loop)."""
    if not (batch.starts or batch.rows or batch.stops):
        return
    engine = await db.engine(writer=True)
    async with engine.begin() as conn:
        if batch.starts:
            await conn.execute(insert(runs), batch.starts)
        if batch.rows:
            await conn.execute(insert(documents), batch.rows)
        for uid, values in batch.stops:
            await conn.execute(update(runs).where(runs.c.uid == uid).values(**values))
