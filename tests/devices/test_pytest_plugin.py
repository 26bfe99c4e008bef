"""acq's pytest plugin, as a downstream test suite sees it: each test runs an inner pytest
session (pytester, in a subprocess: asyncio plugins leave event loops behind when run
in-process) whose tests use the fixtures, markers and options.

No test here measures time against a bound: virtual time is shown by the loop clock
advancing over a minute while the inner session ends within the outer test's timeout.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
from pathlib import Path

import pytest
from acq.devices.pytest_plugin import DocumentRecorder
from event_model import pack_event_page

pytest_plugins = ["pytester"]

PLUGIN = "acq.devices.pytest_plugin"
ROOT = Path(__file__).resolve().parents[2]
HOW_TO = ROOT / "docs" / "how-to" / "test-your-plans.md"
EXAMPLE = ROOT / "docs" / "examples" / "test_downstream_example.py"
NO_LOOPTIME = ["-p", "no:looptime_plugin", "-p", "no:looptime_chronometers"]
NO_LOOPTIME += ["-p", "no:looptime_timeproxies"]

# A downstream project's pytest configuration (acq's docs recommend it).
INNER_INI = """
[pytest]
asyncio_mode = auto
asyncio_default_fixture_loop_scope = function
filterwarnings = error
addopts = --strict-markers -p no:cacheprovider
timeout = 50
"""

# A plan of the downstream project, used by several inner tests.
PLAN = """
from acq import Msg


async def step_scan(det, motor, positions):
    yield Msg("open_run", plan_name="step_scan")
    for position in positions:
        yield Msg("checkpoint")
        yield Msg("set", motor, position, group="move")
        yield Msg("wait", group="move")
        yield Msg("trigger", det, group="det")
        yield Msg("wait", group="det")
        yield Msg("create", name="primary")
        yield Msg("read", motor)
        yield Msg("read", det)
        yield Msg("save")
    yield Msg("close_run")
"""


def plugin_args() -> list[str]:
    """Load the plugin in the inner session, unless its entry point already does."""
    installed = any(ep.value == PLUGIN for ep in importlib.metadata.entry_points(group="pytest11"))
    return (
        [] if installed and not os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD") else ["-p", PLUGIN]
    )


@pytest.fixture
def inner(pytester: pytest.Pytester) -> pytest.Pytester:
    """A downstream project: its ini and its plan module ``myplans``."""
    pytester.makeini(INNER_INI)
    pytester.makepyfile(myplans=PLAN)
    return pytester


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess(*plugin_args(), "-rA", *args)


def hide_module(pytester: pytest.Pytester, name: str, replacement: str = "None") -> None:
    """Make ``import name`` fail (or give ``replacement``) in the inner session."""
    pytester.makeconftest(f"import sys\nimport types\n\nsys.modules[{name!r}] = {replacement}\n")


# -- RE, documents, sim_beamline --------------------------------------------------------------


def test_RE_is_a_fresh_engine_per_test_that_records_its_documents(inner: pytest.Pytester) -> None:
    inner.makepyfile(
        """
        import pytest
        from myplans import step_scan

        @pytest.mark.parametrize("attempt", [1, 2])
        async def test_scan(RE, documents, sim_beamline, attempt):
            bl = sim_beamline
            result = await RE(step_scan(bl.det, bl.x, [-1.0, 0.0, 1.0]))
            assert result.exit_status == "success"
            assert documents.names() == ["start", "descriptor", "event", "event", "event", "stop"]
            assert documents.last("start")["scan_id"] == 1  # a fresh RE.md in every test
            assert documents.data("x") == [-1.0, 0.0, 1.0]
            assert documents.data("det")[1] == 1.0
            assert len(documents.events()) == 3
        """
    )
    run(inner).assert_outcomes(passed=2)


def test_sim_beamline_is_connected_and_writes_files_under_tmp_path(
    inner: pytest.Pytester,
) -> None:
    inner.makepyfile(
        """
        async def test_area_detector(sim_beamline, tmp_path):
            bl = sim_beamline
            assert [device.name for device in bl][:3] == ["x", "y", "det"]
            await bl.area_detector.stage()
            await bl.area_detector.trigger()
            await bl.area_detector.unstage()
            assert list(tmp_path.glob("*.h5"))
        """
    )
    run(inner).assert_outcomes(passed=1)


def test_acq_sim_beamline_marker_passes_keyword_arguments(inner: pytest.Pytester) -> None:
    inner.makepyfile(
        """
        import pytest

        pytestmark = pytest.mark.acq_sim_beamline(velocity=2.5, acquire_time=0.5)

        @pytest.mark.acq_sim_beamline(acquire_time=0.25, seed=3)
        async def test_closest_marker_wins(sim_beamline):
            assert await sim_beamline.x.velocity.get_value() == 2.5
            assert await sim_beamline.det.acquire_time.get_value() == 0.25

        @pytest.mark.acq_sim_beamline(instant=True)
        async def test_instant(sim_beamline):
            assert await sim_beamline.x.velocity.get_value() == 0.0
        """
    )
    run(inner).assert_outcomes(passed=2)


def test_acq_sim_beamline_marker_refuses_positional_arguments(inner: pytest.Pytester) -> None:
    inner.makepyfile(
        """
        import pytest

        @pytest.mark.acq_sim_beamline(2.5)
        async def test_it(sim_beamline):
            pass
        """
    )
    result = run(inner)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*acq_sim_beamline takes keyword arguments*only*"])


def test_fixtures_work_in_strict_asyncio_mode(inner: pytest.Pytester) -> None:
    inner.makeini(INNER_INI.replace("asyncio_mode = auto", "asyncio_mode = strict"))
    inner.makepyfile(
        """
        import pytest
        from myplans import step_scan

        @pytest.mark.asyncio
        async def test_scan(RE, documents, sim_beamline):
            await RE(step_scan(sim_beamline.det, sim_beamline.x, [0.5]))
            assert documents.data("x") == [0.5]
        """
    )
    run(inner).assert_outcomes(passed=1)


def test_acq_suites_own_fixtures_override_the_plugins(inner: pytest.Pytester) -> None:
    inner.makeconftest(
        """
        import pytest

        @pytest.fixture
        def RE():
            return "the project's own"
        """
    )
    inner.makepyfile(
        """
        def test_it(RE, documents):
            assert RE == "the project's own"
            assert len(documents) == 0
        """
    )
    run(inner).assert_outcomes(passed=1)


def test_a_sync_test_before_an_async_one_leaks_no_event_loop(inner: pytest.Pytester) -> None:
    # looptime 0.9 alone makes the sync test's policy create a loop nobody closes
    inner.makepyfile(
        """
        import asyncio

        def test_sync():
            pass

        async def test_async():
            await asyncio.sleep(0)
        """
    )
    run(inner).assert_outcomes(passed=2)


# -- virtual time ------------------------------------------------------------------------------

MINUTE_LONG_SCAN = """
import asyncio
import time

import pytest
from myplans import step_scan


@pytest.mark.acq_virtual_time
@pytest.mark.acq_sim_beamline(velocity=1.0, acquire_time=1.0)  # 1 mm/s, 1 s exposures
async def test_minute_long_scan(RE, documents, sim_beamline):
    loop = asyncio.get_running_loop()
    loop_start, wall_start = loop.time(), time.perf_counter()
    positions = [-3.0 + 6.0 * i / 59 for i in range(60)]
    result = await RE(step_scan(sim_beamline.det, sim_beamline.x, positions))
    elapsed = loop.time() - loop_start
    print(f"VIRTUAL {elapsed:.3f} s of loop time in {time.perf_counter() - wall_start:.3f} s")
    assert result.exit_status == "success"
    assert elapsed >= 60.0
    assert documents.data("x") == pytest.approx(positions)
"""


def test_virtual_time_runs_a_minute_long_scan_in_the_outer_timeout(
    inner: pytest.Pytester,
) -> None:
    inner.makepyfile(MINUTE_LONG_SCAN)
    result = run(inner, "-s")
    result.assert_outcomes(passed=1)
    (line,) = [line for line in result.outlines if "VIRTUAL" in line]
    print(line)  # the wall time, for the record (no assertion on it)
    loop_seconds = float(re.search(r"VIRTUAL ([\d.]+) s", line)[1])  # type: ignore[index]
    assert loop_seconds >= 60.0


def test_virtual_time_marker_forwards_looptime_options(inner: pytest.Pytester) -> None:
    inner.makepyfile(
        """
        import asyncio
        import looptime
        import pytest

        @pytest.mark.acq_virtual_time(end=5.0, start=lambda: None)
        async def test_end_of_time():
            with pytest.raises(looptime.LoopTimeoutError):
                await asyncio.sleep(3600)
        """
    )
    run(inner).assert_outcomes(passed=1)


def test_acq_virtual_time_option_covers_every_test_but_those_opted_out(
    inner: pytest.Pytester,
) -> None:
    inner.makepyfile(
        test_option="""
        import asyncio
        import pytest

        async def test_an_hour_of_sleep():
            loop = asyncio.get_running_loop()
            start = loop.time()
            await asyncio.sleep(3600)
            assert loop.time() - start >= 3600
            assert loop.looptime_on

        @pytest.mark.acq_virtual_time(False)
        async def test_opted_out():
            assert not getattr(asyncio.get_running_loop(), "looptime_on", False)

        async def test_unmarked_without_the_option():
            pass
        """
    )
    run(inner, "--acq-virtual-time").assert_outcomes(passed=3)
    # without the option, only marked tests get virtual time: the hour would be real
    run(inner, "-k", "opted_out or unmarked").assert_outcomes(passed=2, deselected=1)


def test_virtual_time_without_looptime_skips_saying_why(inner: pytest.Pytester) -> None:
    hide_module(inner, "looptime")  # as if not installed
    inner.makepyfile(
        """
        import pytest

        @pytest.mark.acq_virtual_time
        async def test_marked():
            pass

        async def test_unmarked(RE):
            pass
        """
    )
    result = run(inner, *NO_LOOPTIME)
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(["*acq_virtual_time: virtual time needs the looptime package*"])


def test_acq_virtual_time_option_without_looptime_is_a_usage_error(
    inner: pytest.Pytester,
) -> None:
    hide_module(inner, "looptime")
    inner.makepyfile("def test_it(): pass")
    result = run(inner, *NO_LOOPTIME, "--acq-virtual-time")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--acq-virtual-time: virtual time needs the looptime package*"])


def test_virtual_time_with_looptimes_plugin_disabled_skips_saying_why(
    inner: pytest.Pytester,
) -> None:
    inner.makepyfile(
        """
        import pytest

        @pytest.mark.acq_virtual_time
        async def test_marked():
            pass
        """
    )
    result = run(inner, "-p", "no:looptime_plugin")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*looptime is installed but its pytest plugin is not loaded*"])


# -- epics_ioc ---------------------------------------------------------------------------------

USES_IOC = """
def test_it(epics_ioc):
    pass
"""


def test_epics_ioc_skips_when_acq_has_no_epics_support(inner: pytest.Pytester) -> None:
    hide_module(inner, "acq.devices.epics")  # as if it could not be imported
    inner.makepyfile(USES_IOC)
    result = run(inner)
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*epics_ioc needs acq.devices.epics, which cannot be imported*"])


def test_epics_ioc_skips_when_the_ioc_helper_is_missing(inner: pytest.Pytester) -> None:
    hide_module(inner, "acq.devices.epics", "types.ModuleType('acq.devices.epics')")
    inner.makepyfile(USES_IOC)
    result = run(inner)
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*epics_ioc needs acq.devices.epics.start_test_ioc()*"])


def test_tests_that_use_epics_ioc_are_marked_acq_ioc(inner: pytest.Pytester) -> None:
    inner.makepyfile(USES_IOC + "\n\ndef test_other():\n    pass\n")
    result = run(inner, "--collect-only", "-q", "-m", "acq_ioc")
    result.stdout.fnmatch_lines(["*::test_it", "*1/2 tests collected (1 deselected)*"])


@pytest.mark.ioc
def test_epics_ioc_serves_the_whole_session_on_loopback_and_stops(
    inner: pytest.Pytester,
) -> None:
    pytest.importorskip("softioc")
    pids = inner.path / "pids.txt"
    inner.makepyfile(
        f"""
        import os
        import pytest
        from acq.devices.epics import Motor

        @pytest.mark.parametrize("protocol", ["ca", "pva", "ca"])
        async def test_motor(epics_ioc, protocol, RE):
            with open({str(pids)!r}, "a") as f:
                f.write(f"{{epics_ioc.pid}}\\n")
            assert os.environ["EPICS_CA_ADDR_LIST"].startswith("127.0.0.1:")
            motor = Motor(epics_ioc.pv_prefix("m1", protocol), name="m1")
            await motor.connect(timeout=10)
            await motor.set(0.01)
            assert abs(await motor.user_readback.get_value() - 0.01) < 1e-9
        """
    )
    run(inner).assert_outcomes(passed=3)
    (pid,) = set(pids.read_text().split())  # one IOC for the session
    with pytest.raises(ProcessLookupError):  # and it is gone (reaped) at the end
        os.kill(int(pid), 0)


@pytest.mark.ioc
def test_epics_ioc_tests_stay_on_real_time_under_the_virtual_time_option(
    inner: pytest.Pytester,
) -> None:
    # The IOC answers in real time: on virtual time the connect timeout passes at once.
    pytest.importorskip("softioc")
    inner.makepyfile(
        """
        import asyncio
        import pytest
        from acq.devices.epics import Motor

        @pytest.mark.acq_virtual_time  # asked for, and still refused: the IOC is real
        async def test_motor(epics_ioc):
            assert not getattr(asyncio.get_running_loop(), "looptime_on", False)
            motor = Motor(epics_ioc.pv_prefix("m1", "ca"), name="m1")
            await motor.connect(timeout=10)
            await motor.set(0.01)
            assert abs(await motor.user_readback.get_value() - 0.01) < 1e-9

        async def test_an_hour_of_sleep_beside_it():
            await asyncio.sleep(3600)
            assert asyncio.get_running_loop().looptime_on
        """
    )
    run(inner, "--acq-virtual-time").assert_outcomes(passed=2)


# -- DocumentRecorder, and the how-to --------------------------------------------------------


def test_document_recorder_picks_documents_by_name_stream_and_key() -> None:
    recorder = DocumentRecorder()
    primary = {"uid": "d1", "name": "primary", "run_start": "s"}
    baseline = {"uid": "d2", "name": "baseline", "run_start": "s"}
    events = [
        {
            "descriptor": "d1",
            "uid": f"e{i}",
            "seq_num": i,
            "time": 0.0,
            "data": {"x": float(i)},
            "timestamps": {"x": 0.0},
            "filled": {},
        }
        for i in (1, 2, 3)
    ]
    for name, doc in [
        ("start", {"uid": "s"}),
        ("descriptor", primary),
        ("descriptor", baseline),
        ("event", events[0]),
        ("event", {**events[0], "descriptor": "d2", "uid": "b1", "data": {"y": 7.0}}),
        ("event_page", dict(pack_event_page(*events[1:]))),  # type: ignore[arg-type]
        ("stop", {"uid": "t", "run_start": "s"}),
    ]:
        recorder(name, doc)

    assert len(recorder) == 7
    assert recorder.names()[:3] == ["start", "descriptor", "descriptor"]
    assert recorder.of("descriptor") == [primary, baseline]
    assert recorder.last("stop")["uid"] == "t"
    assert [e["seq_num"] for e in recorder.events()] == [1, 2, 3]
    assert recorder.data("x") == [1.0, 2.0, 3.0]
    assert recorder.data("y", stream="baseline") == [7.0]
    with pytest.raises(KeyError, match=r"'z' is not a data key of stream 'primary'.*\['x'\]"):
        recorder.data("z")
    with pytest.raises(LookupError, match="no 'resource' document recorded"):
        recorder.last("resource")
    recorder.clear()
    assert list(recorder) == []


def test_the_how_to_shows_the_sample_test_file_verbatim() -> None:
    example = EXAMPLE.read_text(encoding="utf-8")
    fence = re.compile(r"^```python\n(.*?)^```$", re.DOTALL | re.MULTILINE)
    excerpts = [
        block.split("\n", 1)[1]
        for block in fence.findall(HOW_TO.read_text(encoding="utf-8"))
        if EXAMPLE.name in block.split("\n", 1)[0]
    ]
    assert len(excerpts) >= 2
    for excerpt in excerpts:
        assert excerpt in example, f"not in {EXAMPLE.name}:\n{excerpt}"
