"""A simulated beamline built on ophyd-async, for tutorials, tests and benchmarks.

Every device is an ordinary ophyd-async device following ``bluesky.protocols``, so
acq's RunEngine (or bluesky's) drives it like hardware. Motion and exposures run on
the event loop's clock, so the devices also work on virtual time.

* :class:`Motor` -- velocity, acceleration, soft limits, readback moving over time
* :class:`GaussianDetector`, :class:`EdgeDetector`, :class:`Gaussian2DDetector` --
  point detectors whose value depends on motor readbacks (:class:`PointDetector` is
  their base)
* :class:`AreaDetector` -- HDF5 frames announced by Stream Resource / Stream Datum
* :class:`Flyer` -- a fly scan yielding event pages of numpy arrays
* :class:`BeamCurrent`, :class:`Shutter` -- the beam
* :func:`sim_beamline` -- all of the above, named and connected
"""

from __future__ import annotations

from ._area_detector import AreaDetector
from ._beam import BeamCurrent, Shutter, ShutterState
from ._beamline import SimBeamline, sim_beamline
from ._flyer import Flyer
from ._motor import Motor, MotorLimitsError
from ._point_detectors import (
    EdgeDetector,
    Gaussian2DDetector,
    GaussianDetector,
    Noise,
    PointDetector,
)

__all__ = [
    # motion
    "Motor",
    "MotorLimitsError",
    # point detectors
    "PointDetector",
    "GaussianDetector",
    "EdgeDetector",
    "Gaussian2DDetector",
    "Noise",
    # area detector and fly scans
    "AreaDetector",
    "Flyer",
    # beam
    "BeamCurrent",
    "Shutter",
    "ShutterState",
    # the whole beamline
    "SimBeamline",
    "sim_beamline",
]
