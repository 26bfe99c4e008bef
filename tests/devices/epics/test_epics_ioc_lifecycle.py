"""The test IOC's lifecycle: it serves on loopback, stops cleanly and leaves no orphan.

These IOCs serve on ports of their own (not this process's), so they never meet the
IOC of test_epics_devices.py; no client connects to them.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

import pytest
from acq.devices.epics import LoopbackPorts, SimIoc, loopback_ports, start_test_ioc

EXIT_WITHIN = 10.0


@pytest.fixture
def ioc() -> Iterator[SimIoc]:
    ioc = SimIoc(ports=LoopbackPorts.free())
    yield ioc
    ioc.kill()


def process_of(ioc: SimIoc) -> subprocess.Popen[str]:
    process = ioc._process  # private: the test plays the parent that dies
    assert process is not None
    return process


def test_loopback_ports_are_chosen_once_and_exported() -> None:
    ports = loopback_ports()
    assert loopback_ports() == ports
    assert ports.ca != ports.pva
    for key, value in ports.environ().items():
        assert os.environ[key] == value
    assert os.environ["EPICS_CA_ADDR_LIST"] == f"127.0.0.1:{ports.ca}"
    assert os.environ["EPICS_PVA_ADDR_LIST"] == f"127.0.0.1:{ports.pva}"


def test_other_ports_are_refused_once_the_process_has_its_own() -> None:
    ports = loopback_ports()
    assert loopback_ports(ports.ca, ports.pva) == ports
    with pytest.raises(ValueError, match="already look for test IOCs"):
        loopback_ports(ports.ca + 1, ports.pva)
    with pytest.raises(ValueError, match="give both"):
        start_test_ioc(ca_port=ports.ca)


def test_pv_prefix_names_the_protocol_and_the_device() -> None:
    ioc = SimIoc("pre:", ports=LoopbackPorts(ca=1, pva=2))
    assert ioc.pv_prefix("m1") == "ca://pre:m1:"
    assert ioc.pv_prefix("sc", "pva") == "pva://pre:sc:"
    with pytest.raises(ValueError, match="'ca' or 'pva'"):
        ioc.pv_prefix("m1", "tcp")
    assert not ioc.running
    assert "stopped" in repr(ioc)


@pytest.mark.ioc
def test_ioc_stops_cleanly_when_asked(ioc: SimIoc) -> None:
    with ioc:
        assert ioc.running
        assert "acq-sim-ioc: serving" in ioc.output
        process = process_of(ioc)
    assert not ioc.running
    assert process.returncode == 0


@pytest.mark.ioc
def test_ioc_exits_when_its_stdin_closes_so_no_orphan_is_left(ioc: SimIoc) -> None:
    ioc.start()
    process = process_of(ioc)
    assert process.stdin is not None
    process.stdin.close()  # what the parent's death does to the pipe
    assert process.wait(timeout=EXIT_WITHIN) == 0


@pytest.mark.ioc
def test_ioc_exits_on_sigterm(ioc: SimIoc) -> None:
    ioc.start()
    process = process_of(ioc)
    process.terminate()
    assert process.wait(timeout=EXIT_WITHIN) == 0


@pytest.mark.ioc
async def test_async_with_starts_and_stops_it_off_the_loop(ioc: SimIoc) -> None:
    async with ioc:
        assert ioc.running
    assert not ioc.running
