"""Progress bars (tqdm) for runs and for moves that report their progress.

* :class:`ProgressBar` -- a subscriber: one bar per run, counting the events of a
  stream against the start document's ``num_points`` (a plain counter when the plan
  gives none).
* :class:`MoveProgress` / :func:`watch_progress` -- a watcher for statuses that report
  progress (ophyd-async's ``WatchableAsyncStatus``: motor moves, a flyer's
  ``complete()``): ``watch_progress(motor.set(5.0))``.

Bars redraw at most every ``min_interval`` seconds whatever the rate of points (each
update between redraws only adds to a counter), so a bar never slows a scan. In a
Jupyter kernel the bar is a widget (with ipywidgets installed; else the text bar, in
a display area of the cell), displayed once and left in its final state in the saved
notebook (:mod:`acq.callbacks._notebook_bars`); elsewhere it is text on stderr (or on
``file``).

A text bar is redrawn in place on its line, so text printed to the same terminal (stdout
and stderr count as one) must go around it: :func:`print_through_bars` clears the bars,
prints the line and redraws them (``LiveTable`` prints this way). Every draw, clear and
close happens under tqdm's one lock, as subscribers run in threads of their own.
"""

from __future__ import annotations

import importlib.util
import sys
from typing import IO, Any, Protocol

from event_model import DocumentRouter, Event, EventDescriptor, EventPage, RunStart, RunStop
from tqdm.std import tqdm as std_tqdm

__all__ = ["MoveProgress", "ProgressBar", "print_through_bars", "watch_progress"]


class _TerminalBar(std_tqdm):  # pyright: ignore[reportMissingTypeArgument]
    """tqdm's text bar without its monitor thread: a bar redraws only on updates."""

    monitor_interval = 0


def _in_kernel() -> bool:
    """True in a Jupyter kernel."""
    return "ipykernel.zmqshell" in sys.modules


def _has_widgets() -> bool:
    """True when ipywidgets can be imported."""
    return importlib.util.find_spec("ipywidgets") is not None


def print_through_bars(text: str, file: IO[str] | None = None) -> None:
    """Print a line without breaking the text progress bars on the same terminal.

    The bars drawn on ``file`` (default stdout), or on the other of stdout and stderr
    when ``file`` is one of them, are cleared, the line is written and flushed, and the
    bars are redrawn below it -- all under tqdm's lock, so that a bar redrawn by another
    thread cannot land in the middle of the line. With no bar open this is ``print``.

    Args:
        text: The line, without its newline.
        file: Where to print it (default: ``sys.stdout`` when called).
    """
    out = sys.stdout if file is None else file
    with std_tqdm.external_write_mode(file=out):  # takes tqdm's lock
        out.write(text + "\n")
        out.flush()  # on the screen before the bars come back


def _close(bar: Any) -> None:
    """Close ``bar`` under tqdm's lock.

    tqdm forgets a closing bar before taking its lock to draw it a last time; without
    the lock held throughout, a line printed by :func:`print_through_bars` in between
    would neither clear the bar nor see it redrawn, and would land on the bar's line.
    """
    with _tqdm_lock():
        bar.close()


def _tqdm_lock() -> Any:
    """The write lock all tqdm bars share (re-entrant), made on tqdm's base class."""
    return std_tqdm.get_lock()  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType]


def bar_options(
    min_interval: float, file: IO[str] | None, leave: bool, notebook: bool | None
) -> dict[str, Any]:
    """Check and keep the options every bar of a callback gets (see :func:`make_bar`)."""
    if min_interval < 0:
        raise ValueError(f"min_interval must be >= 0 seconds, got {min_interval}")
    return {"min_interval": min_interval, "file": file, "leave": leave, "notebook": notebook}


def make_bar(
    *,
    total: float | None,
    desc: str | None,
    min_interval: float,
    file: IO[str] | None,
    leave: bool,
    notebook: bool | None,
    **options: Any,
) -> Any:
    """A tqdm bar: a notebook's bar when ``notebook`` (default: in Jupyter), else text.

    In a kernel the notebook's bar is the widget when ipywidgets is installed, else the
    text bar drawn in a display area; both end in the saved notebook as they were
    closed. ``notebook=True`` outside a kernel gives tqdm's widget bar.

    Returns:
        The bar (a ``tqdm.std.tqdm`` or ``tqdm.notebook.tqdm``).
    """
    bar_class: Any = _TerminalBar
    if (_in_kernel() if notebook is None else notebook) and file is None:
        if _in_kernel():
            from ._notebook_bars import DisplayBar, WidgetBar

            bar_class = WidgetBar if _has_widgets() else DisplayBar
        else:
            from tqdm.notebook import tqdm as notebook_tqdm

            bar_class = notebook_tqdm
    _tqdm_lock()  # made on the base class before a bar makes one on its own class
    # miniters=0: every update checks the clock (about 0.1 µs) and redraws once
    # min_interval has passed, so a slow phase after a fast one is never shown stale.
    return bar_class(
        total=total,
        desc=desc,
        mininterval=min_interval,
        miniters=0,
        file=file,
        leave=leave,
        **options,
    )


class ProgressBar(DocumentRouter):
    """Show each run's progress: its events counted against ``num_points``.

    The bar of a run opens at its start document (``num_points`` from the plan's
    metadata is the total; without it the bar just counts), advances by one per event
    (and by the page size per Event Page) of ``stream``, and closes at the stop
    document with the exit status written after it.

    Args:
        stream: The stream whose events count.
        min_interval: Redraw at most this often, in seconds.
        file: Where the text bar goes (default stderr; giving one forces the text bar).
        leave: Keep the finished bar on screen.
        notebook: Use the Jupyter widget (default: when running in Jupyter).
    """

    def __init__(
        self,
        *,
        stream: str = "primary",
        min_interval: float = 0.1,
        file: IO[str] | None = None,
        leave: bool = True,
        notebook: bool | None = None,
    ) -> None:
        super().__init__()  # pyright: ignore[reportUnknownMemberType]
        self._stream = stream
        self._options = bar_options(min_interval, file, leave, notebook)
        self._bars: dict[str, Any] = {}  # run uid -> its bar
        self._runs: dict[str, str] = {}  # descriptor uid -> run uid

    def start(self, doc: RunStart) -> None:
        """Open the run's bar."""
        total = doc.get("num_points")
        desc = f"{doc.get('plan_name', 'run')} {doc.get('scan_id', '')}".strip()
        self._bars[doc["uid"]] = make_bar(
            total=total if isinstance(total, int) and total > 0 else None,
            desc=desc,
            unit="pt",
            **self._options,
        )

    def descriptor(self, doc: EventDescriptor) -> None:
        """Count the events of this descriptor if it is the chosen stream's."""
        if doc.get("name") == self._stream and doc["run_start"] in self._bars:
            self._runs[doc["uid"]] = doc["run_start"]

    def event(self, doc: Event) -> Event:
        """Advance by one."""
        run = self._runs.get(doc["descriptor"])
        if run is not None:
            self._bars[run].update(1)
        return doc

    def event_page(self, doc: EventPage) -> EventPage:
        """Advance by the number of events in the page."""
        run = self._runs.get(doc["descriptor"])
        if run is not None:
            self._bars[run].update(len(doc["seq_num"]))
        return doc

    def stop(self, doc: RunStop) -> None:
        """Close the run's bar, showing its exit status."""
        bar = self._bars.pop(doc["run_start"], None)
        self._runs = {d: r for d, r in self._runs.items() if r != doc["run_start"]}
        if bar is not None:
            bar.set_postfix_str(f"exit_status={doc['exit_status']}", refresh=False)
            _close(bar)


class _Status(Protocol):
    """What :func:`watch_progress` needs of a status (ophyd-async's watchable ones)."""

    def watch(self, watcher: Any) -> None: ...

    def add_callback(self, callback: Any) -> None: ...


class MoveProgress:
    """A watcher drawing one bar for a status that reports progress.

    Pass it to ``status.watch(...)``: each update gives ``current``, ``initial`` and
    ``target`` (and maybe ``fraction``, ``unit``, ``precision``, ``name``); the bar shows
    the fraction done and ``current/target unit``. Call :meth:`finish` when the status
    is done (:func:`watch_progress` arranges both).

    Args:
        desc: Label of the bar (default: the ``name`` the updates carry).
        min_interval: Redraw at most this often, in seconds.
        file: Where the text bar goes (default stderr; giving one forces the text bar).
        leave: Keep the finished bar on screen.
        notebook: Use the Jupyter widget (default: when running in Jupyter).
    """

    _FORMAT = "{desc}: {percentage:3.0f}%|{bar}| [{elapsed}<{remaining}{postfix}]"

    def __init__(
        self,
        *,
        desc: str | None = None,
        min_interval: float = 0.1,
        file: IO[str] | None = None,
        leave: bool = True,
        notebook: bool | None = None,
    ) -> None:
        self._desc = desc
        self._options = bar_options(min_interval, file, leave, notebook)
        self._bar: Any = None
        self._finished = False

    def __call__(
        self,
        *,
        current: Any,
        initial: Any,
        target: Any,
        name: str | None = None,
        unit: str | None = None,
        precision: float | None = None,
        fraction: float | None = None,
        time_elapsed: float | None = None,
        time_remaining: float | None = None,
    ) -> None:
        """Take one progress update (the ``Watcher`` protocol of ``bluesky.protocols``)."""
        if self._finished:
            return
        if fraction is None:
            fraction = _fraction(current, initial, target)
        if fraction is None:
            return  # not numbers: nothing to draw
        if self._bar is None:
            self._bar = make_bar(
                total=1.0,
                desc=self._desc or name or "move",
                bar_format=self._FORMAT,
                **self._options,
            )
        digits = 3 if precision is None else max(int(precision), 0)
        if isinstance(current, int | float) and isinstance(target, int | float):
            text = f"{current:.{digits}f}/{target:.{digits}f}"
            self._bar.set_postfix_str(f"{text} {unit}" if unit else text, refresh=False)
        self._move_to(min(max(fraction, 0.0), 1.0))

    def _move_to(self, fraction: float) -> None:
        self._bar.update(fraction - self._bar.n)

    def finish(self, status: Any = None) -> None:
        """Close the bar: full when ``status`` succeeded (or is not given), else as is."""
        if self._finished:
            return
        self._finished = True
        if self._bar is None:
            return
        success = getattr(status, "success", True)
        if success:
            self._move_to(1.0)
        else:
            self._bar.set_postfix_str("failed", refresh=False)
        _close(self._bar)


def _fraction(current: Any, initial: Any, target: Any) -> float | None:
    if not all(isinstance(v, int | float) for v in (current, initial, target)):
        return None
    if target == initial:
        return 1.0
    return float((current - initial) / (target - initial))


def watch_progress(status: _Status, **options: Any) -> MoveProgress:
    """Show ``status``'s progress in a bar that closes when the status is done.

    ``watch_progress(motor.set(5.0))``, or inside a plan before waiting on the status.

    Args:
        status: A status with ``watch`` and ``add_callback`` (e.g. ophyd-async's
            ``WatchableAsyncStatus``).
        **options: Passed to :class:`MoveProgress` (``desc``, ``min_interval``,
            ``file``, ``leave``, ``notebook``).

    Returns:
        The watcher drawing the bar.
    """
    watcher = MoveProgress(**options)
    status.watch(watcher)
    status.add_callback(watcher.finish)
    return watcher
