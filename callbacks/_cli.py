"""The ``acq`` command line.

* ``acq demo`` -- scan the simulated beamline: a live table, a progress bar, a saved
  plot, and the run stored in the catalog;
* ``acq runs [key=value ...]`` -- the newest runs in the catalog, optionally filtered;
* ``acq show <id>`` -- one run: metadata, streams and its primary data as a table;
* ``acq export <id> --format csv|nexus -o <path>`` -- one run to a file.
* ``acq relay --to nats://host:port --instrument NAME`` -- publish the catalog's documents,
  in order, to a NATS JetStream stream (until Ctrl-C; resumes where it stopped);
* ``acq tail <subject or run uid> --from nats://host:port`` -- print documents live.

``<id>`` is a scan_id (``42``), a position from the newest (``-1``) or a uid prefix.
``--catalog`` picks the catalog (a path or URL); by default the one ``RunEngine()``
writes to (``ACQ_CATALOG``, else the per-user data directory).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from acq.catalog import Catalog, Run

# Start-up: `acq --help` imports nothing heavy, `acq runs` only the catalog; the demo's
# plots, devices and plans (bokeh, ophyd-async) load in _demo (tests/benchmarks: startup).

__all__ = ["main"]


async def _demo(num: int, plot: Path | None) -> int:
    """A scan of the simulated beamline with a live table, a progress bar and a saved plot."""
    from acq.callbacks import LivePlot, LiveTable, ProgressBar
    from acq.devices.sim import sim_beamline
    from acq.plans import scan

    from acq import RunEngine
    from acq.catalog import data_dir

    RE = RunEngine()
    beamline = await sim_beamline(velocity=50.0, acquire_time=0.01, seed=0)
    live = LivePlot("det", x="x")
    result = await RE(
        scan([beamline.det], beamline.x, -3.0, 3.0, num=num),
        LiveTable(["x", "det"]),
        ProgressBar(),
        live,
        purpose="demo",
    )
    await live.wait_drawn()
    path = plot or data_dir() / "plots" / f"scan-{RE.md.get('scan_id')}.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    print(f"Plot of det against x: {live.save(path)} (open it in a browser)")
    if RE.catalog is not None:
        print(_how_to_get_back(RE.catalog, result.run_start_uids[0]))
    return 0 if result.exit_status == "success" else 1


def _how_to_get_back(catalog: Catalog, uid: str) -> str:
    run = catalog[uid]
    scan_id = run.scan_id if run.scan_id is not None else repr(uid[:8])
    return (
        f"Stored as scan_id {run.scan_id} (uid {uid[:8]}) in the catalog {catalog.location}\n"
        f"Get it back:  acq show {scan_id}    (acq runs lists the newest runs;\n"
        f"              acq export {scan_id} --format csv -o scan.csv writes a file)\n"
        f"In Python:    from acq.catalog import Catalog\n"
        f"              Catalog()[{scan_id}].primary.read()['det']"
    )


# -- the catalog: runs, show, export ------------------------------------------------------


def _open_catalog(where: str | Catalog | None) -> Catalog:
    """The catalog to read; it must exist (reading never creates one)."""
    from acq.catalog import Catalog
    from acq.catalog._config import check_location

    catalog = where if isinstance(where, Catalog) else Catalog(where)
    check_location(catalog.location, write=False)
    return catalog


def _lookup(catalog: Catalog, ident: str) -> Run:
    """A run by scan_id, position (-1) or uid prefix (digits too: "4711" may start a uid)."""
    try:
        number = int(ident)
    except ValueError:
        return catalog[ident]
    try:
        return catalog[number]
    except KeyError:
        if number <= 0:
            raise
        try:
            return catalog[ident]
        except KeyError:
            raise KeyError(f"no run with scan_id {number} or uid starting {ident!r}") from None


def _when(t: float | None) -> str:
    return "-" if t is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))


def _value(text: str) -> Any:
    """A command-line value: JSON when it parses (numbers, true, lists), else text."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def _runs(catalog: Catalog, limit: int, filters: list[str]) -> str:
    equals: dict[str, Any] = {}
    for item in filters:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"filters are key=value (e.g. sample.name=Si), got {item!r}")
        equals[key] = _value(value)
    results = catalog.search(**equals) if equals else catalog
    lines = [f"{'scan_id':>7}  {'uid':8}  {'start':19}  {'plan':14}  {'status':10}  events"]
    for run in results.page(1, size=limit):
        stop = run.stop or {}
        counts: dict[str, Any] = stop.get("num_events") or {}
        events = " ".join(f"{k}:{v}" for k, v in counts.items())
        lines.append(
            f"{run.scan_id!s:>7}  {run.uid[:8]}  {_when(run.start.get('time'))}  "
            f"{str(run.start.get('plan_name', '-'))[:14]:14}  {run.exit_status[:10]:10}  {events}"
        )
    if len(lines) == 1:
        lines.append("(no runs)")
    lines.append(f"catalog: {catalog.location}")
    return "\n".join(lines)


def _show(run: Run, rows: int) -> str:
    start, stop = run.start, run.stop
    lines = [
        f"Run {run.uid}  scan_id {run.scan_id}  plan {start.get('plan_name', '-')}  "
        f"{run.exit_status}",
        f"start {_when(start.get('time'))}   stop {_when(stop.get('time') if stop else None)}",
    ]
    if stop and stop.get("reason"):
        lines.append(f"reason: {stop['reason']}")
    lines.append("metadata:")
    skip = {"uid", "time", "scan_id", "plan_name", "versions", "plan_args", "hints"}
    lines += [f"  {k}: {v!r}" for k, v in start.items() if k not in skip]
    lines.append("streams:")
    for name in run.streams:
        stream = run[name]
        keys = ", ".join(
            f"{k} [{dk['units']}]" if dk.get("units") else k for k, dk in stream.data_keys.items()
        )
        lines.append(f"  {name}: {keys}")
    if "primary" in run.streams and rows > 0:
        import numpy as np

        data = run.primary.read()
        keys = [k for k in data if getattr(data[k], "ndim", 1) == 1]
        lines.append(f"primary ({len(data.seq_num)} events):")
        lines.append("  " + "  ".join(f"{k:>12}" for k in ["seq_num", *keys]))
        columns = [np.asarray(data[k]) for k in keys]
        for i in range(min(rows, len(data.seq_num))):
            cells = [f"{data.seq_num[i]:>12}", *(_cell(c[i]) for c in columns)]
            lines.append("  " + "  ".join(cells))
        if len(data.seq_num) > rows:
            lines.append(f"  ... ({len(data.seq_num) - rows} more; acq export writes them all)")
    return "\n".join(lines)


def _cell(value: Any) -> str:
    import numpy as np

    if isinstance(value, float | np.floating):
        return f"{float(cast(float, value)):>12.6g}"
    return f"{str(value)[:12]:>12}"


def _export(run: Run, fmt: str, output: Path, stream: str) -> Path:
    from acq.catalog import export_csv, export_nexus

    if fmt == "csv":
        return export_csv(run, output, stream)
    return export_nexus(run, output)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="acq", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser(
        "demo", help="scan the simulated beamline: table, progress bar, plot, catalog"
    )
    demo.add_argument("--num", type=int, default=11, help="number of points (default 11)")
    demo.add_argument(
        "--plot", type=Path, help="where to write the plot (default: <data dir>/plots/scan-N.html)"
    )
    where = argparse.ArgumentParser(add_help=False)
    where.add_argument("--catalog", help="catalog path or URL (default: the RunEngine default)")
    runs = commands.add_parser("runs", parents=[where], help="list the newest runs")
    runs.add_argument("filters", nargs="*", help="key=value metadata filters (sample.name=Si)")
    runs.add_argument("--limit", type=int, default=20, help="runs to list (default 20)")
    show = commands.add_parser("show", parents=[where], help="print one run")
    show.add_argument("id", help="scan_id, -1 for the newest, or a uid prefix")
    show.add_argument("--rows", type=int, default=20, help="primary rows to print (default 20)")
    export = commands.add_parser("export", parents=[where], help="write one run to a file")
    export.add_argument("id", help="scan_id, -1 for the newest, or a uid prefix")
    export.add_argument("--format", choices=("csv", "nexus"), required=True)
    export.add_argument("-o", "--output", type=Path, required=True, help="the file to write")
    export.add_argument("--stream", default="primary", help="stream for csv (default primary)")
    serve = commands.add_parser("serve", help="run the engine as a network service (HTTP API)")
    serve.add_argument("--config", required=True, help="Python file or module defining 'config'")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default local)")
    serve.add_argument("--port", type=int, default=60610, help="port (default 60610)")
    _remote_parsers(commands, where)
    return parser


def _remote_parsers(commands: Any, where: argparse.ArgumentParser) -> None:
    """``acq relay`` and ``acq tail``."""
    relay = commands.add_parser(
        "relay", parents=[where], help="publish the catalog's documents to a message bus"
    )
    relay.add_argument(
        "--to",
        required=True,
        help="nats://host:port[,...], kafka://host:port or http(s):// (Tiled)",
    )
    relay.add_argument(
        "--instrument", help="the instrument (NATS stream acq_<instrument>, Kafka beamline)"
    )
    relay.add_argument(
        "--api-key",
        default=os.environ.get("TILED_API_KEY"),
        help="Tiled's API key ($TILED_API_KEY)",
    )
    relay.add_argument(
        "--replicas", type=int, help="NATS stream replicas (3 in a cluster; default: as it is)"
    )
    relay.add_argument("--name", help="the relay's position key (default: the URL)")
    relay.add_argument("--poll", type=float, default=0.05, help="seconds between polls (0.05)")
    tail = commands.add_parser("tail", help="print documents from a message bus, live")
    tail.add_argument("what", help="a subject (acq.<instrument>.run.>) or a run uid")
    tail.add_argument("--from", dest="source", required=True, help="nats://host:port")
    tail.add_argument("--instrument", help="the instrument, when WHAT is a run uid")


def _relay(args: argparse.Namespace) -> int:
    """``acq relay``: the outbox relay on this process's loop until Ctrl-C or SIGTERM."""
    import asyncio
    import contextlib
    import logging
    import signal

    from acq.remote import Relay, sink_for

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    from acq.catalog import Catalog

    catalog = Catalog(args.catalog)  # opened below: a bad destination is said first
    sink = sink_for(
        args.to,
        instrument=args.instrument,
        catalog=catalog,
        api_key=args.api_key,
        replicas=args.replicas,
    )
    relay = Relay(_open_catalog(catalog), sink, name=args.name, poll=args.poll)

    async def run() -> None:
        task = asyncio.current_task()
        assert task is not None
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
        await relay.run()

    with contextlib.suppress(KeyboardInterrupt, asyncio.CancelledError):
        asyncio.run(run())
    return 0


def _tail(args: argparse.Namespace) -> int:
    """``acq tail``: print each document as one line ``name {json}``; a run's ends at its Stop."""
    import asyncio
    import contextlib

    from acq.remote import subject, subscribe_subject

    run_uid = None
    if args.what.startswith("acq."):
        where = args.what
        tokens = where.split(".")
        if len(tokens) > 3 and tokens[3] not in ("*", ">"):
            run_uid = tokens[3]  # one run's subject: from its first document to its Stop
    elif args.instrument:
        where, run_uid = subject(args.instrument, args.what, "*"), args.what
    else:
        raise ValueError("acq tail <run uid> needs --instrument (or give a subject)")

    async def run() -> None:
        stopped = asyncio.Event()

        def show(name: str, doc: dict[str, Any]) -> None:
            print(name, json.dumps(doc, default=_plain), flush=True)
            if run_uid is not None and name == "stop":
                stopped.set()

        async with await subscribe_subject(
            args.source, where, show, from_start=run_uid is not None
        ):
            await stopped.wait()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())
    return 0


def _plain(value: Any) -> Any:
    tolist = getattr(value, "tolist", None)  # numpy arrays and scalars
    if tolist is None:
        raise TypeError(f"{type(value).__name__} is not JSON data")
    return tolist()


def _serve(args: argparse.Namespace) -> int:
    """``acq serve``: the queue service on this loop until SIGTERM (then a clean exit 0)."""
    import asyncio
    import logging

    from acq.service import load_config, serve

    async def run() -> None:
        config = await load_config(args.config)
        logging.basicConfig(
            level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s"
        )
        await serve(config, args.host, args.port)  # returns after SIGTERM's clean shutdown

    asyncio.run(run())
    return 0


def _read(args: argparse.Namespace) -> None:
    """``acq runs``, ``acq show`` or ``acq export``: print what was asked for."""
    catalog = _open_catalog(args.catalog)
    try:
        if args.command == "runs":
            print(_runs(catalog, max(args.limit, 1), args.filters))
        elif args.command == "show":
            print(_show(_lookup(catalog, args.id), args.rows))
        else:
            path = _export(_lookup(catalog, args.id), args.format, args.output, args.stream)
            print(f"wrote {path}")
    finally:
        catalog.close()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``acq`` command."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "demo" and args.num < 1:
        parser.error(f"--num must be at least 1, got {args.num}")
    from acq import AcqError  # CatalogError, and the service's ServiceError
    from acq.catalog import CatalogError

    try:
        if args.command == "demo":
            import asyncio

            return asyncio.run(_demo(args.num, args.plot))
        if args.command == "serve":
            return _serve(args)
        if args.command == "relay":
            return _relay(args)
        if args.command == "tail":
            return _tail(args)
        _read(args)
    except (KeyError, IndexError, ValueError, AcqError) as exc:
        if args.command == "demo" and not isinstance(exc, CatalogError):
            raise
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"acq {args.command}: {message}", file=sys.stderr)
        return 1
    return 0
