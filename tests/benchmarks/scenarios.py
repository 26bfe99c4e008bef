"""The scenarios of issue #8 beyond the overhead table, each beside bluesky's RunEngine.

``python -m tests.benchmarks.scenarios [--quick]`` prints the table; :func:`run` returns
the rows (``name, unit, n, acq, bluesky, ratio, notes``, plus ``target`` and ``met``).

* ``count``/``scan`` on ophyd-async simulated devices (instant motor, Gaussian detector):
  µs per point, and the share of acq's time that the same device calls take alone;
* ``grid_scan`` 100 x 100 on the trivial in-memory devices of ``tests.benchmarks``;
* a subscriber taking 10 ms per document (sync in acq's thread worker, and ``async def``)
  on a scan of 20 ms points: the wall time it adds;
* 1 vs 10 no-op subscribers on a scan;
* a 1 000 000-point fly scan collected as Event Pages into a subscriber: points per second;
* ``import`` time and ``RunEngine()`` to the first Start document, in fresh interpreters;
* the wall time of whole processes: ``python -c pass`` (the floor), ``import acq``,
  ``acq --help`` and ``acq runs`` on a small catalog, each against its target.

Plans are the engines' own (``acq.plans`` and ``bluesky.plans``) on the same devices.
acq's engine and its devices live on an ``asyncio.Runner``'s loop; bluesky's RunEngine
runs its own loop in a thread, where its ophyd-async devices are connected. Per-point
figures are ``(T(N) - T(small)) / (N - small)`` with the best of ``repeat`` calls, so a
call's fixed cost (open and close the run, stage) is left out.

``ratio`` is how many times acq is better: bluesky/acq for times, acq/bluesky for rates.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import gc
import inspect
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import acq

from .__main__ import Detector, Motor, _best, _noop, _per_unit

Row = dict[str, Any]
PlanOf = Callable[[int], Any]

_ROOT = Path(__file__).resolve().parents[2]  # the repository: `tests` imports from here


@dataclass(frozen=True)
class Sizes:
    """How big each scenario is."""

    sim_points: int  # count and scan on ophyd-async sim devices
    grid_side: int  # grid_scan side x side
    slow_points: int  # points of 20 ms under a 10 ms-per-document subscriber
    subs_points: int  # scan with 1 and 10 subscribers
    fly_points: int  # fly scan (acq)
    fly_points_bluesky: int  # bluesky's rate is flat in N; it runs a fifth of the points
    repeat: int  # calls per figure (the best is kept)
    spawns: int  # fresh interpreters per start-up figure (the best is kept)


# 400 slow points (an 8-second scan): the 2-document tail (below), which comes after the
# last point whatever the scan's length, is then 0.25 % of it, not 1 % as at 100 points
FULL = Sizes(2_000, 100, 400, 5_000, 1_000_000, 200_000, 5, 5)
QUICK = Sizes(20, 10, 10, 50, 10_000, 10_000, 1, 1)
SMALL = 2  # points (per axis for the grid) of the call whose time is subtracted
POINT_S = 0.02  # a slow detector's exposure
DOC_S = 0.01  # a slow subscriber's time per document
PAGE_SIZE = 100_000  # fly scan: points per Event Page


def row(
    name: str,
    unit: str,
    n: int,
    acq_figure: float,
    bluesky_figure: float | None,
    notes: str,
    *,
    higher_is_better: bool = False,
    target: str | None = None,
    met: bool | None = None,
) -> Row:
    ratio = None
    if bluesky_figure is not None and acq_figure > 0 and bluesky_figure > 0:
        ratio = acq_figure / bluesky_figure if higher_is_better else bluesky_figure / acq_figure
    return {
        "name": name,
        "unit": unit,
        "n": n,
        "acq": acq_figure,
        "bluesky": bluesky_figure,
        "ratio": ratio,
        "notes": notes,
        "target": target,
        "met": met,
    }


# -- the two engines ---------------------------------------------------------------------------


@dataclass
class Side:
    """One engine, its plans, and a way to run coroutines on the loop its devices use."""

    name: str
    RE: Any
    plans: ModuleType
    msg: Callable[..., Any]
    call: Callable[[Coroutine[Any, Any, Any]], Any]  # run a coroutine on the engine's loop
    run_plan: Callable[[Any], Any]  # RE(plan) to completion, returning the run's result

    def wall(self, plan: Any) -> float:
        """Seconds taken by one successful ``RE(plan)``."""
        gc.collect()
        t0 = time.perf_counter()
        result = self.run_plan(plan)
        elapsed = time.perf_counter() - t0
        if result.exit_status != "success":
            raise RuntimeError(f"{self.name}: the plan ended with {result.exit_status}")
        return elapsed

    def per_point_us(
        self,
        plan_of: PlanOf,
        n: int,
        small: int,
        repeat: int,
        alongside: Callable[[], object] | None = None,
    ) -> float:
        """µs per point: ``(T(n) - T(small)) / (n - small)``, best of ``repeat`` each.

        ``alongside()`` is called after each pair of calls: a measurement interleaved
        with the engine's, so that a burst of load on the machine hits both alike.
        """
        self.wall(plan_of(small))  # warm up
        full: list[float] = []
        empty: list[float] = []
        for _ in range(repeat):
            empty.append(self.wall(plan_of(small)))
            full.append(self.wall(plan_of(n)))
            if alongside is not None:
                alongside()
        return _per_unit(full, empty, n - small)[0]


def acq_engine() -> acq.RunEngine:
    """acq's RunEngine without a document store, where the keyword exists."""
    if "catalog" in inspect.signature(acq.RunEngine).parameters:
        return acq.RunEngine(catalog=None)
    return acq.RunEngine()


@contextlib.contextmanager
def acq_side() -> Iterator[Side]:
    """acq's engine on an ``asyncio.Runner`` loop that lives as long as the block."""
    import acq.plans

    with asyncio.Runner() as runner:
        RE = acq_engine()
        yield Side("acq", RE, acq.plans, acq.Msg, runner.run, lambda p: runner.run(RE(p)))


@contextlib.contextmanager
def bluesky_side() -> Iterator[Side]:
    """bluesky's RunEngine (its loop in its thread), stopped and closed after the block."""
    import bluesky.plans
    from bluesky import RunEngine as BlueskyRE
    from bluesky.run_engine import get_bluesky_event_loop, set_bluesky_event_loop
    from bluesky.utils import Msg as BlueskyMsg

    previous_loop = get_bluesky_event_loop()
    RE = BlueskyRE({}, call_returns_result=True)
    loop = RE.loop

    def call(coro: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout=60)

    try:
        yield Side("bluesky", RE, bluesky.plans, BlueskyMsg, call, RE)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        RE._th.join(timeout=10)  # pyright: ignore[reportPrivateUsage]
        if not loop.is_running():
            loop.close()
        set_bluesky_event_loop(previous_loop)


SIDES = (acq_side, bluesky_side)


# -- 4. count and scan on ophyd-async simulated devices ----------------------------------------


async def _devices_alone(motor: Any, det: Any, n: int, move: bool) -> float:
    """Seconds for the device calls of ``n`` points, made directly (no engine)."""
    t0 = time.perf_counter()
    for i in range(n):
        if move:
            await motor.set(-1.0 + 2.0 * i / max(n - 1, 1))
        await det.trigger()
        await det.read()
        if move:
            await motor.read()
    return time.perf_counter() - t0


def _time_alone(side: Side, motor: Any, det: Any, n: int, move: bool, out: list[float]) -> None:
    out.append(side.call(_devices_alone(motor, det, n, move)))


def sim_devices(sizes: Sizes) -> list[Row]:
    """count and scan on an instant sim motor and a Gaussian detector (soft signals)."""
    from acq.devices.sim import GaussianDetector
    from acq.devices.sim import Motor as SimMotor

    n, repeat = sizes.sim_points, sizes.repeat
    us: dict[tuple[str, str], float] = {}
    alone_us: dict[str, float] = {}
    for make_side in SIDES:
        with make_side() as side:
            motor = SimMotor("motor", instant=True)
            det = GaussianDetector(motor, name="det")
            side.call(motor.connect())
            side.call(det.connect())
            side.RE.subscribe(_noop)
            plans: dict[str, PlanOf] = {
                "count": functools.partial(side.plans.count, [det]),
                "scan": functools.partial(side.plans.scan, [det], motor, -1, 1),
            }
            for name, plan_of in plans.items():
                alone: list[float] = []
                alongside = None
                if side.name == "acq":
                    move = name == "scan"
                    alongside = functools.partial(_time_alone, side, motor, det, n, move, alone)
                us[side.name, name] = side.per_point_us(plan_of, n, SMALL, repeat, alongside)
                if alone:
                    alone_us[name] = _best(alone) / n * 1e6
    rows: list[Row] = []
    for name in ("count", "scan"):
        a, b, device = us["acq", name], us["bluesky", name], alone_us[name]
        calls = "set+await, trigger+await, read x2" if name == "scan" else "trigger+await, read"
        rows.append(
            row(
                f"{name} (ophyd-async sim)",
                "µs/point",
                n,
                a,
                b,
                f"ophyd-async alone {device:.0f} µs/point ({calls}, awaited in a tight loop) "
                f"= {100 * device / a:.0f} % of acq's time; acq beyond it {a - device:.0f} µs",
                target="≥ 3x bluesky's points/s",
                met=b / a >= 3,
            )
        )
    return rows


# -- 5. grid_scan ------------------------------------------------------------------------------


def _grid_plan(side: Side, det: Detector, m1: Motor, m2: Motor, k: int) -> Any:
    return side.plans.grid_scan([det], m1, -1, 1, k, m2, -1, 1, k)


def grid(sizes: Sizes) -> list[Row]:
    """grid_scan side x side on the trivial devices, one no-op subscriber."""
    side_len = sizes.grid_side
    us: dict[str, float] = {}
    for make_side in SIDES:
        with make_side() as side:
            m1, m2 = Motor("m1"), Motor("m2")
            det = Detector("det", m1)
            side.RE.subscribe(_noop)

            plan_of = functools.partial(_grid_plan, side, det, m1, m2)
            repeat = sizes.repeat if side.name == "acq" else 1  # bluesky: ~60x, 15 s a call
            full = [side.wall(plan_of(side_len)) for _ in range(repeat)]
            small = [side.wall(plan_of(SMALL)) for _ in range(repeat)]
            us[side.name] = _per_unit(full, small, side_len**2 - SMALL**2)[0]
    return [
        row(
            f"grid_scan {side_len}x{side_len}",
            "µs/point",
            side_len**2,
            us["acq"],
            us["bluesky"],
            "trivial in-memory devices, 1 no-op subscriber",
        )
    ]


# -- 6. a subscriber taking 10 ms per document -------------------------------------------------


class LaterStatus:
    """A ``bluesky.protocols.Status`` finished ``delay`` s after creation by a timer thread.

    Like hardware, it finishes on its own clock: a loop timer (``call_later``) would be
    rounded to the loop's wake-ups, so anything else on the loop (an async subscriber's
    own timers) would stretch every point by a fraction of a millisecond.
    """

    def __init__(self, delay: float) -> None:
        self._lock = threading.Lock()
        self.done = False
        self.success = False
        self._callbacks: list[Callable[[LaterStatus], None]] = []
        timer = threading.Timer(delay, self._finish)
        timer.daemon = True
        timer.start()

    def _finish(self) -> None:
        with self._lock:
            self.done = self.success = True
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback(self)

    def add_callback(self, callback: Callable[[LaterStatus], None]) -> None:
        with self._lock:
            if not self.done:
                self._callbacks.append(callback)
                return
        callback(self)

    def exception(self, timeout: float | None = 0.0) -> BaseException | None:
        return None


class SlowDetector(Detector):
    """A trivial detector whose ``trigger`` takes ``POINT_S`` of loop time."""

    def trigger(self) -> LaterStatus:  # type: ignore[override]
        super().trigger()
        return LaterStatus(POINT_S)


def _sleepy(name: str, doc: dict[str, Any]) -> None:
    time.sleep(DOC_S)


async def _asleep(name: str, doc: dict[str, Any]) -> None:
    await asyncio.sleep(DOC_S)


def slow_subscriber(sizes: Sizes) -> list[Row]:
    """Wall time of a scan of 20 ms points without and with a 10 ms-per-document subscriber."""
    n = sizes.slow_points
    walls: dict[tuple[str, str], float] = {}
    for make_side in SIDES:
        with make_side() as side:
            motor = Motor("motor")
            det = SlowDetector("det", motor)
            kinds: dict[str, Any] = {"none": None, "sync": _sleepy}
            if side.name == "acq":
                kinds["async"] = _asleep
            # bluesky's cost is 10 ms per document, far above noise: one call is enough;
            # acq's calls are 8 s each: three of each kind
            repeat = min(sizes.repeat, 3) if side.name == "acq" else 1
            times: dict[str, list[float]] = {kind: [] for kind in kinds}
            for _ in range(repeat):  # the kinds interleaved: a burst of load hits all alike
                for kind, callback in kinds.items():
                    token = None if callback is None else side.RE.subscribe(callback)
                    times[kind].append(side.wall(side.plans.scan([det], motor, 0, 1, n)))
                    if token is not None:
                        side.RE.unsubscribe(token)
            for kind, walls_of_kind in times.items():
                walls[side.name, kind] = _best(walls_of_kind)

    def added(engine: str, kind: str) -> float:
        return 100 * (walls[engine, kind] / walls[engine, "none"] - 1)

    def ms(engine: str, kind: str) -> str:
        return f"{walls[engine, kind] * 1e3:.0f} ms"

    # The last event and the stop come after the last point; awaiting RE waits for them.
    tail_ms = 2 * DOC_S * 1e3
    tail = (
        f"the last event and the stop reach the subscriber after the last point: expect "
        f"~{tail_ms:.0f} ms ({100 * tail_ms / (walls['acq', 'none'] * 1e3):.1f} %), "
        "give or take the points' own jitter"
    )
    rows: list[Row] = []
    for kind, bluesky_pct in (("sync", added("bluesky", "sync")), ("async", None)):
        pct = added("acq", kind)
        if kind == "sync":
            notes = (
                f"time.sleep in acq's default thread worker; acq {ms('acq', 'none')} -> "
                f"{ms('acq', kind)}, bluesky {ms('bluesky', 'none')} -> {ms('bluesky', kind)} "
                f"(bluesky calls subscribers inline); {tail}"
            )
        else:
            notes = (
                f"await asyncio.sleep in its own task; acq {ms('acq', 'none')} -> "
                f"{ms('acq', kind)}; bluesky never awaits an async def subscriber; {tail}"
            )
        rows.append(
            row(
                f"{DOC_S * 1e3:.0f} ms/doc subscriber, {kind}",
                "% wall added",
                n,
                pct,
                bluesky_pct,
                notes,
                target="< 1 %",
                met=pct < 1,
            )
        )
    return rows


# -- 7. ten subscribers vs one -----------------------------------------------------------------


def many_subscribers(sizes: Sizes) -> list[Row]:
    """scan on the trivial devices with 1 and with 10 no-op subscribers."""
    n = sizes.subs_points
    us: dict[tuple[str, int], float] = {}
    for make_side in SIDES:
        for count in (1, 10):
            with make_side() as side:
                motor = Motor("motor")
                det = Detector("det", motor)
                for _ in range(count):  # distinct callables: bluesky merges equal ones
                    side.RE.subscribe(functools.partial(_noop))

                plan_of = functools.partial(side.plans.scan, [det], motor, -1, 1)
                repeat = sizes.repeat if side.name == "acq" else 1  # bluesky: far off (~60x)
                us[side.name, count] = side.per_point_us(plan_of, n, SMALL, repeat)
    return [
        row(
            f"scan, {count} no-op subscriber{'s' if count > 1 else ''}",
            "µs/point",
            n,
            us["acq", count],
            us["bluesky", count],
            "acq: each in its own thread worker (the default); bluesky: inline"
            + (f"; 10 vs 1: acq {us['acq', 10] - us['acq', 1]:+.1f} µs" if count > 1 else ""),
        )
        for count in (1, 10)
    ]


# -- 8. a fly scan collected as Event Pages ------------------------------------------------------


class PageCounter:
    """The one subscriber of the fly scan: counts the points of every page it gets."""

    def __init__(self) -> None:
        self.points = 0

    def __call__(self, name: str, doc: dict[str, Any]) -> None:
        if name == "event_page":
            self.points += len(doc["time"])
        elif name == "event":
            self.points += 1


def _bluesky_fly(msg: Callable[..., Any], flyer: Any) -> Iterator[Any]:
    """bluesky.plans.fly with the stream declared, which bluesky's collect requires."""
    yield msg("open_run", plan_name="fly")
    yield msg("kickoff", flyer, group="kickoff")
    yield msg("wait", None, group="kickoff")
    yield msg("complete", flyer, group="complete")
    yield msg("wait", None, group="complete")
    yield msg("declare_stream", None, flyer, name="primary", collect=True)
    yield msg("collect", flyer, name="primary")
    yield msg("close_run")


def fly_pages(sizes: Sizes) -> list[Row]:
    """A fly scan of the sim Flyer (every point at kickoff) into one page-counting subscriber."""
    from acq.devices.sim import Flyer

    rates: dict[str, float] = {}
    for make_side in SIDES:
        with make_side() as side:
            is_acq = side.name == "acq"
            n = sizes.fly_points if is_acq else sizes.fly_points_bluesky
            flyer = Flyer("flyer", num_points=n, page_size=PAGE_SIZE, points_per_second=0)
            side.call(flyer.connect())
            times: list[float] = []
            for _ in range(sizes.repeat if is_acq else 1):
                counter = PageCounter()
                token = side.RE.subscribe(counter)
                plan = side.plans.fly([flyer]) if is_acq else _bluesky_fly(side.msg, flyer)
                times.append(side.wall(plan))
                side.RE.unsubscribe(token)
                if counter.points != n:
                    raise RuntimeError(f"{side.name}: the subscriber got {counter.points} of {n}")
            rates[side.name] = n / _best(times)
    return [
        row(
            "fly scan, Event Pages",
            "points/s",
            sizes.fly_points,
            rates["acq"],
            rates["bluesky"],
            f"pages of {PAGE_SIZE} numpy points, 1 subscriber counting every page; "
            f"bluesky ran {sizes.fly_points_bluesky} points of a Msg list (bluesky.plans.fly "
            "has no declare_stream, which bluesky's collect requires)",
            higher_is_better=True,
            target="≥ 1 M points/s",
            met=rates["acq"] >= 1e6,
        )
    ]


# -- 10. start-up: import, and RunEngine() to the first Start document --------------------------

_IMPORT = "import time; t0 = time.perf_counter(); import {module}; print(time.perf_counter() - t0)"

_FIRST_START = """
import asyncio, sys, time
from tests.benchmarks.__main__ import Detector, Motor
from tests.benchmarks.scenarios import acq_engine
engine = sys.argv[1]
first = []

def on_start(name, doc):
    if name == "start" and not first:
        first.append(time.perf_counter())

det = Detector("det", Motor("motor"))
if engine == "bluesky":
    from bluesky import RunEngine
    from bluesky.plans import count
    t0 = time.perf_counter()
    RE = RunEngine({}, call_returns_result=True)
    RE.subscribe(on_start)
    RE(count([det], 1))
else:
    import acq
    from acq.plans import count

    async def main():
        t0 = time.perf_counter()
        RE = acq.RunEngine() if engine == "acq-catalog" else acq_engine()
        RE.subscribe(on_start)
        await RE(count([det], 1))
        return t0

    t0 = asyncio.run(main())
print(first[0] - t0)
"""


def _spawn_best(args: list[str], spawns: int, env: dict[str, str] | None = None) -> float:
    """The best of ``spawns`` fresh interpreters' printed seconds."""
    times: list[float] = []
    for _ in range(spawns):
        out = subprocess.run(
            [sys.executable, *args],
            cwd=_ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        )
        times.append(float(out.stdout.strip().splitlines()[-1]))
    return _best(times)


def startup(sizes: Sizes) -> list[Row]:
    """import time, and RunEngine() to the first Start reaching a subscriber (fresh processes)."""
    spawns = sizes.spawns
    imports = {m: _spawn_best(["-c", _IMPORT.format(module=m)], spawns) for m in ("acq", "bluesky")}
    first = {e: _spawn_best(["-c", _FIRST_START, e], spawns) for e in ("acq", "bluesky")}
    has_catalog = "catalog" in inspect.signature(acq.RunEngine).parameters
    rows = [
        row(
            "import",
            "ms",
            spawns,
            imports["acq"] * 1e3,
            imports["bluesky"] * 1e3,
            f"perf_counter around `import acq` / `import bluesky`, best of {spawns} processes",
        ),
        row(
            "RunEngine() -> first Start",
            "ms",
            spawns,
            first["acq"] * 1e3,
            first["bluesky"] * 1e3,
            "construct, subscribe, count([det], 1) until the Start reaches the subscriber; "
            + ("acq catalog=None" if has_catalog else "acq has no catalog keyword"),
        ),
    ]
    if has_catalog:
        with tempfile.TemporaryDirectory() as tmp:
            env = {**os.environ, "ACQ_CATALOG": str(Path(tmp) / "catalog.db")}
            with_catalog = _spawn_best(["-c", _FIRST_START, "acq-catalog"], spawns, env)
        rows.append(
            row(
                "RunEngine() -> first Start, catalog",
                "ms",
                spawns,
                with_catalog * 1e3,
                first["bluesky"] * 1e3,
                "acq's default catalog on a temporary SQLite file (ACQ_CATALOG), created by "
                "the first process; bluesky (no catalog) as above",
            )
        )
    return rows


# -- 11. start-up of whole processes: python -c pass, import acq, acq --help, acq runs -------

_ACQ_COMMAND = "import sys; from acq.callbacks._cli import main; sys.exit(main())"  # = bin/acq
_SMALL_CATALOG = """
import sys
from acq.catalog import DocumentStore
store = DocumentStore(sys.argv[1])
for i in range(5):
    uid = f"run-{i}"
    store.write("start", {"uid": uid, "time": 1.0 + i, "scan_id": i + 1, "plan_name": "count"})
    store.write("stop", {"uid": f"stop-{i}", "run_start": uid, "time": 1.5 + i,
                         "exit_status": "success", "num_events": {"primary": 3}})
store.close()
"""


def _process_best(args: list[str], spawns: int) -> float:
    """The best wall time, in seconds, of ``spawns`` fresh ``python *args`` processes."""
    times: list[float] = []
    for _ in range(spawns):
        t0 = time.perf_counter()
        subprocess.run(
            [sys.executable, *args],
            cwd=_ROOT,
            capture_output=True,
            check=True,
            timeout=120,
        )
        times.append(time.perf_counter() - t0)
    return _best(times)


def process_startup(sizes: Sizes) -> list[Row]:
    """Whole processes, wall time, best of a few, beside ``python -c pass`` (issue #16)."""
    spawns = max(sizes.spawns, 3)  # a process's wall time is noisy: never just one
    with tempfile.TemporaryDirectory() as tmp:
        catalog = str(Path(tmp) / "catalog.db")
        subprocess.run([sys.executable, "-c", _SMALL_CATALOG, catalog], cwd=_ROOT, check=True)
        commands: list[tuple[str, list[str], float | None, str]] = [
            ("python -c pass", ["-c", "pass"], None, "the interpreter alone: the floor"),
            ("import acq", ["-c", "import acq"], 0.25, "python -c 'import acq'"),
            ("acq --help", ["-c", _ACQ_COMMAND, "--help"], 0.3, "the acq command's help"),
            (
                "acq runs",
                ["-c", _ACQ_COMMAND, "runs", "--catalog", catalog],
                0.6,
                "acq runs on a SQLite catalog of 5 runs",
            ),
        ]
        walls = {name: _process_best(args, spawns) for name, args, _, _ in commands}
    floor = walls["python -c pass"]
    others = {  # the same start-up on bluesky's side, where it has one
        "python -c pass": floor,
        "import acq": _process_best(["-c", "import bluesky"], spawns),
    }
    rows: list[Row] = []
    for name, _, target_s, what in commands:
        wall = walls[name]
        other = others.get(name)
        versus = "bluesky: python -c 'import bluesky'" if name == "import acq" else ""
        if other is None:
            versus = "bluesky has no command line"
        rows.append(
            row(
                f"process: {name}",
                "ms",
                spawns,
                wall * 1e3,
                None if other is None else other * 1e3,
                f"{what}: wall time of a fresh process, best of {spawns}; python -c pass "
                f"{floor * 1e3:.0f} ms" + (f"; {versus}" if versus else ""),
                target=None if target_s is None else f"<= {target_s * 1e3:.0f} ms",
                met=None if target_s is None else wall <= target_s,
            )
        )
    return rows


# -- virtual time ------------------------------------------------------------------------------

VIRTUAL_MOTION_S = 60.0  # seconds of loop time a slow motor moves (1 mm/s over 60 mm)
VIRTUAL_MOTION_TARGET_S = 0.5  # wall seconds that minute may cost


def _virtual_motion_wall(make_motor: Callable[[], Any]) -> float:
    """Wall seconds for one ``set`` of VIRTUAL_MOTION_S s, on a fresh looptime loop."""
    import looptime

    async def move() -> float:
        motor = make_motor()
        await motor.connect()
        loop = asyncio.get_running_loop()
        started, t0 = loop.time(), time.perf_counter()
        await motor.set(VIRTUAL_MOTION_S)
        wall = time.perf_counter() - t0
        if loop.time() - started < VIRTUAL_MOTION_S:
            raise RuntimeError(f"the move took {loop.time() - started} s of loop time")
        return wall

    loop = looptime.new_event_loop(start=0.0)
    try:
        return loop.run_until_complete(move())
    finally:
        loop.close()


def virtual_time_motion(sizes: Sizes) -> list[Row]:
    """Wall time of a minute of simulated motion on virtual (looptime) time."""
    from acq.devices.sim import Motor as AcqSimMotor
    from ophyd_async.sim import SimMotor

    repeat = sizes.repeat
    acq_wall = min(
        _virtual_motion_wall(lambda: AcqSimMotor("m", velocity=1.0)) for _ in range(repeat)
    )
    # ophyd-async's own sim motor (1 mm/s by default) in the other column
    ophyd_wall = min(
        _virtual_motion_wall(lambda: SimMotor("m", instant=False)) for _ in range(repeat)
    )
    return [
        row(
            "60 s of sim motion, virtual time",
            "ms wall",
            repeat,
            acq_wall * 1e3,
            ophyd_wall * 1e3,
            f"acq.devices.sim.Motor(velocity=1).set(60) on looptime's clock, best of "
            f"{repeat}; 'bluesky' column: ophyd-async's SimMotor, same move and clock",
            target=f"< {VIRTUAL_MOTION_TARGET_S * 1e3:.0f} ms",
            met=acq_wall < VIRTUAL_MOTION_TARGET_S,
        )
    ]


# -- the run -----------------------------------------------------------------------------------

SCENARIOS = (
    sim_devices,
    grid,
    slow_subscriber,
    many_subscribers,
    fly_pages,
    startup,
    process_startup,
    virtual_time_motion,
)


def run(quick: bool) -> list[Row]:
    """Run every scenario (tiny sizes if ``quick``); return the rows."""
    sizes = QUICK if quick else FULL
    rows: list[Row] = []
    for scenario in SCENARIOS:
        rows += scenario(sizes)
    return rows


def _figure(value: float | None) -> str:
    if value is None:
        return "-"
    if abs(value) >= 1e5:
        return f"{value:.3g}"
    return f"{value:.1f}" if abs(value) < 1000 else f"{value:.0f}"


RATIO_NOTE = "ratio: how many times acq is better (bluesky/acq for times, acq/bluesky for rates)"


def format_rows(rows: list[Row], title: str = "scenario", footer: str = RATIO_NOTE) -> str:
    """The rows as a fixed-width table, each row's notes indented under it."""
    head = f"{title:<36} {'unit':<12} {'N':>8} {'acq':>9} {'bluesky':>9} {'ratio':>7}  target"
    lines = [head, "-" * len(head)]
    for r in rows:
        ratio = "-" if r["ratio"] is None else f"{r['ratio']:.1f}x"
        target = "" if r["target"] is None else f"{r['target']}: {'met' if r['met'] else 'MISSED'}"
        lines.append(
            f"{r['name']:<36} {r['unit']:<12} {r['n']:>8} {_figure(r['acq']):>9} "
            f"{_figure(r['bluesky']):>9} {ratio:>7}  {target}"
        )
        lines.append(f"    {r['notes']}")
    lines.append(footer)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the scenarios and print the table."""
    parser = argparse.ArgumentParser(
        prog="python -m tests.benchmarks.scenarios", description=__doc__
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    rows = run(args.quick)
    print(format_rows(rows))
    print(f"({time.perf_counter() - t0:.1f} s; load average {os.getloadavg()[0]:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
