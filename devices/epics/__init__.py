"""Devices on EPICS, over Channel Access or PV Access, built on ophyd-async's backends.

Each device's PVs are an EPICS record's field names appended to a prefix; a prefix
starting with ``ca://`` or ``pva://`` picks the protocol (Channel Access if none),
as everywhere in ophyd-async. A real record is addressed with a prefix ending in a
dot (``"BL:MOT1."``); the test IOC serves records named ``{prefix}m1:VAL`` etc.

* :class:`Motor` -- setpoint, readback, velocity, done-moving, stop (motor record)
* :class:`Scaler` -- count for a preset time, read the channels (scaler record)
* :func:`start_test_ioc`, :class:`SimIoc` -- a real IOC (softioc) serving two
  simulated motors and a scaler on 127.0.0.1, for tests, tutorials and demos;
  :func:`loopback_ports` and :class:`LoopbackPorts` say where it serves
"""

from __future__ import annotations

from ._ioc import LoopbackPorts, SimIoc, loopback_ports, random_pv_prefix, start_test_ioc
from ._motor import Motor, MotorMoveError
from ._scaler import Scaler, ScalerCountError

__all__ = [
    # devices
    "Motor",
    "MotorMoveError",
    "Scaler",
    "ScalerCountError",
    # the test IOC
    "SimIoc",
    "start_test_ioc",
    "LoopbackPorts",
    "loopback_ports",
    "random_pv_prefix",
]
