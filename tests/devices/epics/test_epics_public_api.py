"""The public API of acq.devices.epics is pinned."""

from __future__ import annotations

import acq.devices.epics as epics

PUBLIC = {
    "Motor",
    "MotorMoveError",
    "Scaler",
    "ScalerCountError",
    "SimIoc",
    "start_test_ioc",
    "LoopbackPorts",
    "loopback_ports",
    "random_pv_prefix",
}


def test_all_is_pinned() -> None:
    assert set(epics.__all__) == PUBLIC
    assert len(epics.__all__) == len(PUBLIC)


def test_every_public_name_exists_and_is_documented() -> None:
    for name in epics.__all__:
        obj = getattr(epics, name)
        assert obj.__doc__, name
