"""acq's pytest plugin: fixtures for testing your own plans, and virtual time.

Installing acq registers this module with pytest (entry point ``pytest11``, name
``acq``), so a downstream test suite gets, with no import and no ``conftest.py``:

* ``RE`` -- a fresh :class:`~acq.RunEngine` per test, its documents recorded in
  ``documents`` (Ctrl-C is left to pytest: ``handle_sigint=False``). It stores its
  runs, as in production, in a catalog of its own in ``tmp_path``
  (``RE.catalog[-1].primary.read()``): a document the catalog cannot store fails the
  test's run as it would fail a real one, and the user's catalog is never touched.
* ``documents`` -- the :class:`DocumentRecorder` of that engine: every document, in
  order, with helpers to pick them by name, stream and data key.
* ``sim_beamline`` -- a connected :func:`acq.devices.sim.sim_beamline` (async
  fixture); ``@pytest.mark.acq_sim_beamline(**kwargs)`` passes keyword arguments to
  it (velocity, acquire_time, noise, seed, ...). Its HDF5 files go to ``tmp_path``.
* ``epics_ioc`` -- a session-scoped test IOC from ``acq.devices.epics.start_test_ioc``
  on free loopback ports, torn down at the end of the session; tests that use it are
  marked ``acq_ioc`` and stay on the real clock (the IOC answers in real time), virtual
  time or not. Skipped, saying why, when that helper is not available.
* Virtual time: ``@pytest.mark.acq_virtual_time`` (or ``--acq-virtual-time`` for every
  test) runs a test on looptime's fast-forwarding event-loop clock, so sleeps, motor
  moves and exposures take no wall time while ``loop.time()`` advances as if they had.
  Keyword arguments go to looptime (e.g. ``end=120``, ``noop_cycles=42``);
  ``acq_virtual_time(False)`` opts a test out of ``--acq-virtual-time``. Fixtures run
  on the real clock (looptime's rule: only the test function is fast-forwarded).

Two hooks keep real suites clean: after a test that uses ``epics_ioc``, its Channel
Access channels are closed before its event loop is; and looptime is kept from leaking
an event loop around sync tests (see :func:`pytest_pyfunc_call`).

The plugin imports neither the engine, ophyd-async nor looptime until a fixture or
marker needs them, so a suite that does not use it pays nothing for loading it;
looptime and pytest-asyncio are optional (``acq-daq[test]`` installs both).
"""

from __future__ import annotations

import importlib
import inspect
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import pytest

if TYPE_CHECKING:
    from acq.devices.sim import SimBeamline

    from acq import RunEngine

try:
    from pytest_asyncio import fixture as _async_fixture
except ImportError:  # pragma: no cover -- pytest then says the async fixture is unsupported
    _async_fixture = pytest.fixture

__all__ = ["DocumentRecorder", "EPICS_IOC_HELPER"]

EPICS_IOC_HELPER = "acq.devices.epics.start_test_ioc"
"""The context manager the ``epics_ioc`` fixture enters (module path, then name)."""

_VIRTUAL_TIME = "acq_virtual_time"
_SIM_BEAMLINE = "acq_sim_beamline"
_IOC = "acq_ioc"
_EVENT_LOOP_POLICY = "event_loop_policy"


class DocumentRecorder:
    """Keeps every document an engine emits, in order (a ``callback(name, doc)``).

    Example:
        >>> recorder = DocumentRecorder()
        >>> recorder("start", {"uid": "a"})
        >>> recorder.names()
        ['start']
    """

    def __init__(self) -> None:
        self.docs: list[tuple[str, dict[str, Any]]] = []
        """Every ``(name, document)`` pair received, in order."""

    def __call__(self, name: str, doc: dict[str, Any]) -> None:
        """Record one document."""
        self.docs.append((name, doc))

    def __len__(self) -> int:
        return len(self.docs)

    def __iter__(self) -> Iterator[tuple[str, dict[str, Any]]]:
        return iter(self.docs)

    def clear(self) -> None:
        """Forget every document recorded so far."""
        self.docs.clear()

    def names(self) -> list[str]:
        """Return the name of every document, in order (``["start", "descriptor", ...]``)."""
        return [name for name, _ in self.docs]

    def of(self, name: str) -> list[dict[str, Any]]:
        """Return the documents called ``name`` (``"start"``, ``"event"``, ...), in order."""
        return [doc for doc_name, doc in self.docs if doc_name == name]

    def last(self, name: str) -> dict[str, Any]:
        """Return the last document called ``name``.

        Raises:
            LookupError: No document of that name was recorded.
        """
        for doc_name, doc in reversed(self.docs):
            if doc_name == name:
                return doc
        raise LookupError(f"no {name!r} document recorded; got {sorted(set(self.names()))}")

    def events(self, stream: str = "primary") -> list[dict[str, Any]]:
        """Return the events of ``stream`` in every recorded run, event pages unpacked.

        Args:
            stream: The stream (descriptor) name.
        """
        from event_model import unpack_event_page

        descriptors = {doc["uid"] for doc in self.of("descriptor") if doc.get("name") == stream}
        events: list[dict[str, Any]] = []
        for name, doc in self.docs:
            if doc.get("descriptor") not in descriptors:
                continue
            if name == "event":
                events.append(doc)
            elif name == "event_page":
                events.extend(dict(event) for event in unpack_event_page(cast(Any, doc)))
        return events

    def data(self, key: str, stream: str = "primary") -> list[Any]:
        """Return the values of data key ``key`` in the events of ``stream``, in order.

        Raises:
            KeyError: An event of the stream has no such data key (the message lists
                the keys it has).
        """
        values: list[Any] = []
        for event in self.events(stream):
            if key not in event["data"]:
                known = sorted(event["data"])
                raise KeyError(f"{key!r} is not a data key of stream {stream!r}; it has {known}")
            values.append(event["data"][key])
        return values


# -- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(name="documents")
def _documents() -> DocumentRecorder:
    """Every document the ``RE`` fixture's engine emits during the test."""
    return DocumentRecorder()


@pytest.fixture(name="RE")
def _run_engine(documents: DocumentRecorder, tmp_path: Path) -> Iterator[RunEngine]:
    """A fresh RunEngine whose documents are recorded in ``documents``.

    Its catalog is a SQLite file in ``tmp_path``, closed after the test.
    """
    from acq import RunEngine

    engine = RunEngine(handle_sigint=False, catalog=tmp_path / "catalog.db")
    engine.subscribe(documents, thread=False)
    yield engine
    if engine.catalog is not None:
        engine.catalog.close()


@_async_fixture(name="sim_beamline")
async def _sim_beamline(request: pytest.FixtureRequest, tmp_path: Path) -> SimBeamline:
    """A connected simulated beamline; ``@pytest.mark.acq_sim_beamline(...)`` configures it."""
    from acq.devices.sim import sim_beamline

    kwargs: dict[str, Any] = {"data_dir": tmp_path}
    for marker in reversed(list(request.node.iter_markers(_SIM_BEAMLINE))):
        if marker.args:
            raise pytest.UsageError(
                f"@pytest.mark.{_SIM_BEAMLINE} takes keyword arguments of "
                f"acq.devices.sim.sim_beamline() only, got positional {marker.args!r}"
            )
        kwargs.update(marker.kwargs)
    return await sim_beamline(**kwargs)


@pytest.fixture(name="epics_ioc", scope="session")
def _epics_ioc() -> Iterator[Any]:
    """A test IOC for the whole session (``acq.devices.epics.start_test_ioc()``).

    Skips the test, saying why, when ``acq.devices.epics`` or its helper is missing.
    """
    module_name, helper_name = EPICS_IOC_HELPER.rsplit(".", 1)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        pytest.skip(
            f"epics_ioc needs {module_name}, which cannot be imported ({exc}); "
            "install acq's EPICS support to run this test"
        )
    start_test_ioc = getattr(module, helper_name, None)
    if start_test_ioc is None:
        pytest.skip(f"epics_ioc needs {EPICS_IOC_HELPER}(), which this acq does not have")
    with start_test_ioc() as ioc:
        yield ioc


# -- hooks ------------------------------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add ``--acq-virtual-time``."""
    group = parser.getgroup("acq", "acq: testing plans")
    group.addoption(
        "--acq-virtual-time",
        action="store_true",
        default=False,
        help="run every test on virtual (looptime) event-loop time, as if marked "
        f"@pytest.mark.{_VIRTUAL_TIME}",
    )


def pytest_configure(config: pytest.Config) -> None:
    """Register the markers; refuse ``--acq-virtual-time`` when looptime is missing."""
    config.addinivalue_line(
        "markers",
        f"{_VIRTUAL_TIME}(enabled=True, **looptime_options): run the test on virtual "
        "event-loop time (looptime): sleeps and simulated motion take no wall time",
    )
    config.addinivalue_line(
        "markers",
        f"{_SIM_BEAMLINE}(**kwargs): keyword arguments for the sim_beamline fixture "
        "(those of acq.devices.sim.sim_beamline)",
    )
    config.addinivalue_line("markers", f"{_IOC}: uses the epics_ioc fixture (a real EPICS IOC)")
    if config.getoption("acq_virtual_time"):
        problem = _looptime_problem(config)
        if problem is not None:
            raise pytest.UsageError(f"--acq-virtual-time: {problem}")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Turn ``acq_virtual_time`` into looptime's marker; mark tests that use an IOC.

    A test that uses ``epics_ioc`` is marked ``acq_ioc`` and always runs on the real
    clock, even under ``--acq-virtual-time`` or its own ``acq_virtual_time`` marker.
    """
    everywhere = bool(config.getoption("acq_virtual_time"))
    problem: str | None = None
    checked = False
    for item in items:
        if "epics_ioc" in getattr(item, "fixturenames", ()):
            item.add_marker(_IOC)
            # The IOC answers in real time: on virtual time a connect timeout would
            # pass before its first reply. Such a test stays on the real clock.
            continue
        options = _virtual_time_options(item, everywhere)
        if options is None:
            continue
        if not checked:
            problem, checked = _looptime_problem(config), True
        if problem is not None:
            item.add_marker(pytest.mark.skip(reason=f"{_VIRTUAL_TIME}: {problem}"))
        else:
            item.add_marker(pytest.mark.looptime(True, **options))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Iterator[None]:
    """Close a test's Channel Access channels before its event loop closes.

    aioca caches channels per event loop and process-wide: left alone, the channels of
    a finished test's (closed) loop raise "Event loop is closed" from CA's callbacks.
    """
    aioca = sys.modules.get("aioca")
    if aioca is not None and "epics_ioc" in getattr(item, "fixturenames", ()):
        aioca.purge_channel_caches()
    return (yield)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> Iterator[object]:
    """Keep looptime from creating an event loop that nobody closes, for a sync test.

    looptime (0.9) asks the test's ``event_loop_policy`` for its loop before every test;
    pytest-asyncio (1.x) gives every test that fixture, so for a sync test before any
    async one the policy creates a loop, which is then leaked ("unclosed event loop").
    Hiding the fixture from looptime for sync tests that do not ask for it avoids that.
    """
    funcargs = pyfuncitem.funcargs
    if (
        _EVENT_LOOP_POLICY not in funcargs
        or _is_async_test(pyfuncitem)
        or _EVENT_LOOP_POLICY in inspect.signature(pyfuncitem.obj).parameters
        or not pyfuncitem.config.pluginmanager.has_plugin("looptime_plugin")
    ):
        return (yield)
    policy = funcargs.pop(_EVENT_LOOP_POLICY)
    try:
        return (yield)
    finally:
        funcargs[_EVENT_LOOP_POLICY] = policy


def _is_async_test(item: pytest.Item) -> bool:
    try:
        from pytest_asyncio import is_async_test
    except ImportError:  # pragma: no cover
        return False
    return is_async_test(item)


def _virtual_time_options(item: pytest.Item, everywhere: bool) -> dict[str, Any] | None:
    """The looptime options of ``item``, or None when it runs on the real clock."""
    enabled = everywhere
    options: dict[str, Any] = {}
    for marker in reversed(list(item.iter_markers(_VIRTUAL_TIME))):  # farthest first
        enabled = bool(marker.args[0]) if marker.args else True
        options.update(marker.kwargs)
    return options if enabled else None


def _looptime_problem(config: pytest.Config) -> str | None:
    """Why virtual time is unavailable in this session, or None when it is available."""
    try:
        import looptime  # noqa: F401  # pyright: ignore[reportUnusedImport]
    except ImportError:
        return (
            "virtual time needs the looptime package, which is not installed "
            "(pip install looptime, or install acq-daq[test])"
        )
    if not config.pluginmanager.has_plugin("looptime_plugin"):
        return (
            "looptime is installed but its pytest plugin is not loaded "
            "(plugin autoloading disabled? add -p looptime_plugin)"
        )
    return None
