"""The public API of acq.devices.sim is pinned."""

from __future__ import annotations

import acq.devices.sim as sim

PUBLIC = {
    "Motor",
    "MotorLimitsError",
    "PointDetector",
    "GaussianDetector",
    "EdgeDetector",
    "Gaussian2DDetector",
    "Noise",
    "AreaDetector",
    "Flyer",
    "BeamCurrent",
    "Shutter",
    "ShutterState",
    "SimBeamline",
    "sim_beamline",
}


def test_all_is_pinned() -> None:
    assert set(sim.__all__) == PUBLIC
    assert len(sim.__all__) == len(PUBLIC)


def test_every_public_name_exists_and_is_documented() -> None:
    for name in sim.__all__:
        obj = getattr(sim, name)
        assert obj.__doc__, name
