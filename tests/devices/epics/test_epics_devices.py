"""EPICS devices against a real IOC, over Channel Access and PV Access.

One IOC (softioc, on 127.0.0.1 and ports of this process) serves the whole module.
Every test that needs it gets devices connected over each protocol; a test that kills
the IOC leaves it to the next test's fixture to start it again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import aioca
import pytest
from acq.devices.epics import Motor, Scaler, SimIoc, start_test_ioc
from bluesky.protocols import Configurable, Locatable, Movable, Readable, Stoppable, Triggerable
from ophyd_async.core import wait_for_value
from support import DocChecker

from acq import Msg, RunEngine

pytestmark = pytest.mark.ioc

TIMEOUT = 2.0  # seconds for each PV read/write: a dead IOC is reported after this long
CONNECT_TIMEOUT = 10.0
FAST = 50.0  # mm/s: moves of a few mm take well under a second


@pytest.fixture(scope="module")
def ioc() -> Iterator[SimIoc]:
    with start_test_ioc() as ioc:
        yield ioc


@pytest.fixture(autouse=True)
async def running_ioc(ioc: SimIoc) -> AsyncIterator[SimIoc]:
    """The module's IOC, started again if a test killed it; aioca's channels purged after.

    aioca caches channels per event loop; each test has its own loop, so the cache is
    purged while the test's loop still runs (else closed-loop warnings follow).
    """
    if not ioc.running:
        await asyncio.to_thread(ioc.start)
    yield ioc
    aioca.purge_channel_caches()


@pytest.fixture(params=["ca", "pva"])
def protocol(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def m1(ioc: SimIoc, protocol: str) -> Motor:
    """Motor m1, fast and at 0 (the IOC keeps the state earlier tests left)."""
    motor = Motor(ioc.pv_prefix("m1", protocol), name="m1", timeout=TIMEOUT)
    await motor.connect(timeout=CONNECT_TIMEOUT)
    await motor.velocity.set(FAST)
    await motor.set(0.0)
    return motor


@pytest.fixture
async def sc(ioc: SimIoc, protocol: str) -> Scaler:
    scaler = Scaler(ioc.pv_prefix("sc", protocol), name="sc", timeout=TIMEOUT)
    await scaler.connect(timeout=CONNECT_TIMEOUT)
    await scaler.preset_time.set(0.1)
    return scaler


# -- devices ------------------------------------------------------------------------------


async def test_devices_follow_the_bluesky_protocols(m1: Motor, sc: Scaler) -> None:
    for protocol in (Readable, Movable, Stoppable, Locatable, Configurable):
        assert isinstance(m1, protocol)
    for protocol in (Readable, Triggerable, Configurable):
        assert isinstance(sc, protocol)


async def test_motor_reads_its_readback_under_its_own_name(
    ioc: SimIoc, m1: Motor, protocol: str
) -> None:
    data_keys = await m1.describe()
    assert list(data_keys) == ["m1"]
    data_key = data_keys["m1"]
    assert data_key["source"] == f"{protocol}://{ioc.prefix}m1:RBV"
    assert data_key["units"] == "mm"
    assert data_key["precision"] == 3
    assert (await m1.read())["m1"]["value"] == 0.0
    assert (await m1.read_configuration())["m1-velocity"]["value"] == FAST
    assert m1.hints == {"fields": ["m1"]}


async def test_motor_moves_to_the_setpoint_and_reports_done(m1: Motor) -> None:
    await m1.velocity.set(5.0)  # 0.3 s: readback updates on the way
    updates: list[float] = []
    status = m1.set(1.5)
    status.watch(lambda current, **_: updates.append(current))
    await status
    assert status.success
    assert await m1.user_readback.get_value() == 1.5
    assert await m1.motor_done_move.get_value() == 1
    assert await m1.locate() == {"setpoint": 1.5, "readback": 1.5}
    assert updates[-1] == 1.5
    assert any(0.0 < u < 1.5 for u in updates)  # progress while moving


async def test_stop_mid_move_leaves_the_motor_short_of_its_target(m1: Motor) -> None:
    await m1.velocity.set(2.0)
    status = m1.set(2.0)
    await asyncio.sleep(0.3)
    assert await m1.motor_done_move.get_value() == 0
    await m1.stop()
    with pytest.raises(RuntimeError, match="m1 was stopped"):
        await status
    await wait_for_value(m1.motor_done_move, 1, timeout=TIMEOUT)  # the IOC has settled
    position = await m1.user_readback.get_value()
    assert 0.0 < position < 2.0
    assert await m1.motor_done_move.get_value() == 1
    assert await m1.user_setpoint.get_value() == position  # VAL follows RBV, as a motor record
    await m1.stop()  # stopping a motor at rest writes nothing and is harmless
    assert await m1.user_readback.get_value() == position


async def test_stop_with_success_completes_the_move_status(m1: Motor) -> None:
    await m1.velocity.set(2.0)
    status = m1.set(2.0)
    await asyncio.sleep(0.2)
    await m1.stop(success=True)
    await status
    assert status.success
    assert await m1.user_readback.get_value() < 2.0


async def test_zero_velocity_is_refused_before_moving(m1: Motor) -> None:
    await m1.velocity.set(0.0)
    with pytest.raises(ValueError, match="velocity is 0"):
        await m1.set(1.0)
    assert await m1.user_readback.get_value() == 0.0


async def test_scaler_counts_for_the_preset_time(m1: Motor, sc: Scaler) -> None:
    await sc.preset_time.set(0.2)
    start = time.monotonic()
    await sc.trigger()
    assert time.monotonic() - start >= 0.2
    reading = await sc.read()
    assert set(reading) == {f"sc-channels-{n}" for n in (1, 2, 3, 4)} | {"sc-elapsed_time"}
    assert reading["sc-elapsed_time"]["value"] == pytest.approx(0.2)
    assert reading["sc-channels-1"]["value"] == 2_000_000  # the 10 MHz clock
    assert reading["sc-channels-2"]["value"] == 2_000  # the 10 kHz monitor
    assert reading["sc-channels-3"]["value"] == 20_000  # the peak: m1 is at 0
    assert not await sc.count.get_value()
    assert sc.hints == {"fields": [f"sc-channels-{n}" for n in (1, 2, 3, 4)]}
    assert (await sc.read_configuration())["sc-preset_time"]["value"] == 0.2


async def test_scaler_counts_depend_on_the_motor_position(m1: Motor, sc: Scaler) -> None:
    await m1.set(1.0)
    await sc.trigger()
    counts = (await sc.read())["sc-channels-3"]["value"]
    assert counts == pytest.approx(10_000 * 0.6065, rel=0.01)  # exp(-1/2) of the peak


async def test_scaler_reads_integers_and_describes_their_source(sc: Scaler, protocol: str) -> None:
    data_keys = await sc.describe()
    assert data_keys["sc-channels-1"]["dtype"] == "integer"
    assert data_keys["sc-channels-1"]["source"].startswith(f"{protocol}://")
    assert data_keys["sc-channels-1"]["source"].endswith(":sc:S1")
    assert data_keys["sc-elapsed_time"]["units"] == "s"


# -- plans on the engine ------------------------------------------------------------------


async def count_plan(detectors: list[Any], num: int) -> AsyncIterator[Msg]:
    """count(): trigger and read the detectors ``num`` times."""
    yield Msg("open_run", plan_name="count", num_points=num)
    for _ in range(num):
        yield Msg("checkpoint")
        for det in detectors:
            yield Msg("trigger", det, group="trigger")
        yield Msg("wait", None, group="trigger")
        yield Msg("create", None, name="primary")
        for det in detectors:
            yield Msg("read", det)
        yield Msg("save")
    yield Msg("close_run")


async def scan_plan(
    detectors: list[Any],
    motor: Any,
    positions: list[float],
    at_point: Callable[[int], Any] | None = None,
) -> AsyncIterator[Msg]:
    """scan(): at each position, move, then trigger and read the detectors and the motor.

    ``at_point(i)`` is called once the move to point ``i`` has started.
    """
    yield Msg("open_run", plan_name="scan", num_points=len(positions))
    for i, position in enumerate(positions):
        yield Msg("checkpoint")
        yield Msg("set", motor, position, group="move")
        if at_point is not None:
            yield Msg("sleep", None, 0.05)
            at_point(i)
        yield Msg("wait", None, group="move")
        for det in detectors:
            yield Msg("trigger", det, group="trigger")
        yield Msg("wait", None, group="trigger")
        yield Msg("create", None, name="primary")
        for obj in [*detectors, motor]:
            yield Msg("read", obj)
        yield Msg("save")
    yield Msg("close_run")


async def test_count_plan_makes_valid_documents(
    RE: RunEngine, checker: DocChecker, sc: Scaler, protocol: str
) -> None:
    async with asyncio.timeout(30):
        result = await RE(count_plan([sc], 3))
    assert result.exit_status == "success"
    assert checker.names() == ["start", "descriptor", "event", "event", "event", "stop"]
    (descriptor,) = checker.of("descriptor")
    assert descriptor["data_keys"]["sc-channels-1"]["source"].startswith(f"{protocol}://")
    assert descriptor["configuration"]["sc"]["data"]["sc-preset_time"] == 0.1
    assert descriptor["hints"]["sc"]["fields"][0] == "sc-channels-1"
    for event in checker.of("event"):
        assert event["data"]["sc-channels-1"] == 1_000_000
        assert event["data"]["sc-elapsed_time"] == pytest.approx(0.1)
    (stop,) = checker.of("stop")
    assert stop["exit_status"] == "success"
    assert stop["num_events"] == {"primary": 3}


async def test_scan_plan_moves_the_motor_and_finds_the_peak(
    RE: RunEngine, checker: DocChecker, m1: Motor, sc: Scaler
) -> None:
    await sc.preset_time.set(0.05)
    positions = [-2.0, -1.0, 0.0, 1.0, 2.0]
    async with asyncio.timeout(30):
        result = await RE(scan_plan([sc], m1, positions))
    assert result.exit_status == "success"
    events = checker.of("event")
    assert [e["data"]["m1"] for e in events] == positions
    peak = [e["data"]["sc-channels-3"] for e in events]
    assert max(peak) == peak[2] == 5_000
    assert peak[0] < peak[1] < peak[2] > peak[3] > peak[4]
    (descriptor,) = checker.of("descriptor")
    assert descriptor["data_keys"]["m1"]["units"] == "mm"
    assert descriptor["object_keys"]["m1"] == ["m1"]
    assert checker.of("stop")[0]["num_events"] == {"primary": 5}


async def test_ioc_death_mid_scan_fails_the_run_with_a_reason(
    RE: RunEngine, checker: DocChecker, ioc: SimIoc, m1: Motor, sc: Scaler, protocol: str
) -> None:
    """SIGKILL while the motor moves: the run fails within the timeouts, naming m1."""
    await m1.velocity.set(0.5)  # 0.4 s per step: the IOC dies mid-move
    await sc.preset_time.set(0.02)
    positions = [0.2 * i for i in range(1, 21)]

    def kill_at_third_point(i: int) -> None:
        if i == 2:
            ioc.kill()

    start = time.monotonic()
    async with asyncio.timeout(30):
        # Which error depends on when the client notices: mostly a PV read or put that
        # times out, over CA sometimes a request cut short by the disconnection.
        with pytest.raises(Exception) as raised:  # noqa: PT011 -- checked below
            await RE(scan_plan([sc], m1, positions, at_point=kill_at_third_point))
    elapsed = time.monotonic() - start
    assert not ioc.running
    (stop,) = checker.of("stop")
    assert stop["exit_status"] == "fail"
    reason = stop["reason"]
    assert reason.startswith(f"{type(raised.value).__name__}: {raised.value}"), reason
    assert "the status of 'set' on m1 failed" in reason, reason
    assert "raised by the 'wait' message" in reason, reason
    if isinstance(raised.value, TimeoutError):
        assert f"{protocol}://{ioc.prefix}m1:" in reason, reason  # the PV that did not answer
    assert stop["num_events"] == {"primary": 2}
    # the move's put or the done-moving read, then stopping m1: two timeouts and a move
    assert elapsed < 4 * TIMEOUT + 2.0
