"""NeXus export checked with the NeXus tools: valid names, a default plot for every run kind.

Each run is made by real plans on the simulated beamline and read back from a real
catalog; the files are opened with ``nexusformat`` (NeXpy's library), whose validator
and default-plot lookup are what users' tools see.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
from acq.devices.sim import GaussianDetector, Motor, SimBeamline
from acq.plans import count, fly, grid_scan, list_grid_scan, scan
from acq.plans import stubs as bps
from nexusformat.nexus import nxload
from nexusformat.nexus.utils import is_valid_name

from acq import RunEngine
from acq.catalog import Run, export_nexus

# NXDL's validItemName (nxdl.xsd), at most 63 characters.
VALID_ITEM_NAME = re.compile(r"^[a-zA-Z0-9_]([a-zA-Z0-9_.]*[a-zA-Z0-9_])?$")


@pytest.fixture
def catalog_url(tmp_path: Path) -> str:
    """SQLite only: the export reads through the same Run API whatever the database."""
    return str(tmp_path / "catalog.db")


async def exported(RE: RunEngine, plan: Any, path: Path) -> tuple[Run, Any]:
    """Run ``plan``, export the run to ``path``, and open the file with nexusformat."""
    await RE(plan)
    assert RE.catalog is not None
    run = RE.catalog[-1]
    export_nexus(run, path)
    return run, nxload(str(path))


def assert_valid_nexus(path: Path, root: Any) -> None:
    """Every name is a NeXus name, every reference resolves, nexusformat finds no error."""
    problems: list[str] = []

    def visit(name: str, obj: Any) -> None:
        leaf = name.rsplit("/", 1)[-1]
        if not (VALID_ITEM_NAME.match(leaf) and is_valid_name(leaf) and len(leaf) <= 63):
            problems.append(f"name {name!r}")
        problems.extend(f"attribute {a!r} of {name!r}" for a in obj.attrs if not is_valid_name(a))
        if obj.attrs.get("NX_class") == "NXdata":
            refs = [obj.attrs["signal"], *obj.attrs.get("axes", [])]
            problems.extend(f"{name}: no field {r!r}" for r in refs if r != "." and r not in obj)
        if "default" in obj.attrs and obj.attrs["default"] not in obj:
            problems.append(f"{name}@default")

    with h5py.File(path, "r") as f:
        f.visititems(visit)
    assert problems == []
    _warnings, errors = root.check(level="error")
    assert errors == 0


def default_plot(root: Any) -> Any:
    """The NXdata nexusformat plots for the file and for its entry (they must agree)."""
    data = root.plottable_data
    assert data is not None
    assert data.nxclass == "NXdata"
    assert root.entry.plottable_data.nxpath == data.nxpath
    return data


async def connected_detector(beamline: SimBeamline, name: str) -> GaussianDetector:
    det = GaussianDetector(beamline.x, name=name)
    await det.connect()
    return det


async def test_ophyd_async_keys_get_nexus_names_that_keep_the_data_key(
    RE: RunEngine, beamline: SimBeamline, tmp_path: Path
) -> None:
    bl = beamline
    # "det-a" and "det_a" both become det_a; "I0:diode" loses its colon; "2theta" its digit start.
    extra = [await connected_detector(bl, n) for n in ("det-a", "det_a", "I0:diode", "2theta")]

    async def plan() -> Any:
        yield bps.open_run({"plan_name": "custom", "motors": ["x"]})
        for position in (-1.0, 1.0):
            yield bps.mv(bl.x, position)
            yield bps.trigger_and_read([bl.det, bl.area_detector, *extra, bl.x])
        yield bps.trigger_and_read([bl.det], name="dark-field")
        yield bps.close_run()

    path = tmp_path / "names.nxs"
    run, root = await exported(RE, plan(), path)
    assert_valid_nexus(path, root)
    primary, dark = root.entry.primary, root.entry.dark_field
    names = {primary[n].attrs["data_key"]: n for n in primary if "data_key" in primary[n].attrs}
    assert names == {
        "det": "det",
        "area_detector": "area_detector",
        "area_detector-sum": "area_detector_sum",
        "det-a": "det_a",
        "det_a": "det_a_1",
        "I0:diode": "I0_diode",
        "2theta": "_2theta",
        "x": "x",
    }
    assert primary["area_detector_sum"].attrs["long_name"] == "area_detector-sum"
    data = run.primary.read()
    for key, name in names.items():
        np.testing.assert_array_equal(primary[name].nxdata, np.asarray(data[key]))
    assert dark.attrs["stream_name"] == "dark-field"
    assert dark.det.nxdata.tolist() == run["dark-field"].read()["det"].tolist()
    assert root.entry.attrs["default"] == "primary"
    assert default_plot(root).nxsignal.nxname == "det"


async def test_long_keys_are_cut_to_63_characters_and_stay_unique(
    RE: RunEngine, beamline: SimBeamline, tmp_path: Path
) -> None:
    keys = ["d" * 70 + "-1", "d" * 70 + "-2"]
    detectors = [await connected_detector(beamline, k) for k in keys]
    path = tmp_path / "long.nxs"
    _run, root = await exported(RE, count(detectors, 2), path)
    assert_valid_nexus(path, root)
    primary = root.entry.primary
    names = {primary[n].attrs["data_key"]: n for n in primary if "data_key" in primary[n].attrs}
    assert names == {keys[0]: "d" * 63, keys[1]: "d" * 61 + "_1"}


async def test_fly_scan_has_a_default_nxdata_whatever_its_stream_is_called(
    RE: RunEngine, beamline: SimBeamline, tmp_path: Path
) -> None:
    path = tmp_path / "fly.nxs"
    run, root = await exported(RE, fly([beamline.flyer]), path)
    assert run.streams == ["flyer"]
    assert_valid_nexus(path, root)
    assert root.entry.attrs["default"] == "flyer"
    data = default_plot(root)
    assert data.nxpath == "/entry/flyer"
    assert data.nxsignal.nxname in ("flyer_position", "flyer_intensity")
    assert data.nxsignal.attrs["data_key"] in ("flyer-position", "flyer-intensity")
    assert data.nxsignal.shape == (1000,)
    # no axis is known: the points are plotted against their sequence number
    assert [a.nxname for a in data.nxaxes] == ["seq_num"]
    assert data.seq_num.nxdata.tolist() == list(range(1, 1001))


async def test_fly_scan_plots_against_the_axis_its_hints_name(
    RE: RunEngine, beamline: SimBeamline, tmp_path: Path
) -> None:
    hints = {"dimensions": [[["flyer-position"], "flyer"]]}
    path = tmp_path / "fly.nxs"
    run, root = await exported(RE, fly([beamline.flyer], md={"hints": hints}), path)
    assert_valid_nexus(path, root)
    data = default_plot(root)
    assert data.nxsignal.nxname == "flyer_intensity"
    assert [a.nxname for a in data.nxaxes] == ["flyer_position"]
    assert data.attrs["flyer_position_indices"] == 0
    stored = run.flyer.read()
    np.testing.assert_array_equal(data.flyer_intensity.nxdata, stored["flyer-intensity"])
    np.testing.assert_array_equal(data.flyer_position.nxdata, stored["flyer-position"])


async def test_one_dimensional_scan_keeps_one_axis(
    RE: RunEngine, beamline: SimBeamline, tmp_path: Path
) -> None:
    bl = beamline
    path = tmp_path / "scan.nxs"
    run, root = await exported(RE, scan([bl.det, bl.area_detector], bl.x, -2, 2, 5), path)
    assert_valid_nexus(path, root)
    data = default_plot(root)
    assert data.nxpath == "/entry/primary"
    assert data.nxsignal.nxname == "det"
    assert [a.nxname for a in data.nxaxes] == ["x"]
    assert data.attrs["x_indices"] == 0
    assert data.plot_shape == (5,)
    assert data.x.nxdata.tolist() == [-2.0, -1.0, 0.0, 1.0, 2.0]
    assert data.det.nxdata.tolist() == run.primary.read()["det"].tolist()
    assert data.x.attrs["long_name"] == "x"
    assert data.x.attrs["units"] == "mm"
    assert "grid" not in root.entry


def check_grid(run: Run, grid: Any, shape: tuple[int, ...], axes: list[str]) -> None:
    """Each cell of the grid holds the event measured at that cell's motor positions."""
    stored = run.primary.read()
    assert grid.nxsignal.nxname == "det2d"
    assert grid.nxsignal.shape == shape
    assert [a.nxname for a in grid.nxaxes] == axes
    for dim, axis in enumerate(axes):
        assert grid.attrs[f"{axis}_indices"] == dim
        assert grid[axis].attrs["data_key"] == axis
        assert grid[axis].attrs["units"] == "mm"
    seq_nums = grid.seq_num.nxdata
    assert sorted(seq_nums.ravel().tolist()) == stored.seq_num.tolist()
    for cell in np.ndindex(*shape):
        row = int(seq_nums[cell]) - 1
        assert grid.det2d.nxdata[cell] == stored["det2d"][row]
        for dim, axis in enumerate(axes):
            assert grid[axis].nxdata[cell[dim]] == pytest.approx(stored[axis][row])


async def test_grid_scan_nxdata_has_both_axes_and_the_signal_on_the_grid(
    RE: RunEngine, beamline: SimBeamline, tmp_path: Path
) -> None:
    bl = beamline
    path = tmp_path / "grid.nxs"
    plan = grid_scan([bl.det2d], bl.y, -1, 1, 3, bl.x, -2, 2, 4)
    run, root = await exported(RE, plan, path)
    assert_valid_nexus(path, root)
    assert root.entry.attrs["default"] == "grid"
    data = default_plot(root)
    assert data.nxpath == "/entry/grid"
    assert data.plot_shape == (3, 4)
    check_grid(run, data, (3, 4), ["y", "x"])
    np.testing.assert_allclose(data.y.nxdata, [-1.0, 0.0, 1.0])
    np.testing.assert_allclose(data.x.nxdata, [-2.0, -2 / 3, 2 / 3, 2.0])
    assert data.seq_num.nxdata.tolist() == [[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12]]
    # the stream itself stays as measured, one row per event
    assert root.entry.primary.det2d.shape == (12,)


async def test_snaked_grid_scan_is_unsnaked_onto_the_grid(
    RE: RunEngine, beamline: SimBeamline, tmp_path: Path
) -> None:
    bl = beamline
    path = tmp_path / "snake.nxs"
    plan = grid_scan([bl.det2d], bl.y, -1, 1, 3, bl.x, -2, 2, 4, snake_axes=True)
    run, root = await exported(RE, plan, path)
    assert_valid_nexus(path, root)
    data = default_plot(root)
    check_grid(run, data, (3, 4), ["y", "x"])
    np.testing.assert_allclose(data.x.nxdata, [-2.0, -2 / 3, 2 / 3, 2.0])
    # the middle row was measured right to left
    assert data.seq_num.nxdata.tolist() == [[1, 2, 3, 4], [8, 7, 6, 5], [9, 10, 11, 12]]
    assert data.attrs["unsnaked"] == 1


async def test_snaked_list_grid_scan_is_unsnaked_from_its_pattern_args(
    RE: RunEngine, beamline: SimBeamline, tmp_path: Path
) -> None:
    bl = beamline
    path = tmp_path / "list_grid.nxs"
    plan = list_grid_scan([bl.det2d], bl.y, [0, 1], bl.x, [-1, 0.5, 2], snake_axes=[bl.x])
    run, root = await exported(RE, plan, path)
    assert "snaking" not in run.start  # as bluesky's list_grid_scan: only snake_axes says it
    assert_valid_nexus(path, root)
    data = default_plot(root)
    check_grid(run, data, (2, 3), ["y", "x"])
    assert data.x.nxdata.tolist() == [-1.0, 0.5, 2.0]
    assert data.seq_num.nxdata.tolist() == [[1, 2, 3], [6, 5, 4]]


async def test_three_dimensional_grid_with_two_snaking_axes(
    RE: RunEngine, beamline: SimBeamline, tmp_path: Path
) -> None:
    bl = beamline
    z = Motor("z", instant=True)
    await z.connect()
    path = tmp_path / "grid3.nxs"
    plan = grid_scan([bl.det2d], z, 0, 1, 2, bl.y, -1, 1, 3, bl.x, -1, 1, 2, snake_axes=True)
    run, root = await exported(RE, plan, path)
    assert_valid_nexus(path, root)
    data = default_plot(root)
    assert data.nxpath == "/entry/grid"
    stored = run.primary.read()
    assert data.nxsignal.shape == (2, 3, 2)
    assert [a.nxname for a in data.nxaxes] == ["z", "y", "x"]
    seq_nums = data.seq_num.nxdata
    for cell in np.ndindex(2, 3, 2):
        row = int(seq_nums[cell]) - 1
        assert data.det2d.nxdata[cell] == stored["det2d"][row]
        for dim, axis in enumerate(("z", "y", "x")):
            assert data[axis].nxdata[cell[dim]] == pytest.approx(stored[axis][row])


async def test_count_without_motors_plots_against_seq_num(
    RE: RunEngine, beamline: SimBeamline, tmp_path: Path
) -> None:
    path = tmp_path / "count.nxs"
    _run, root = await exported(RE, count([beamline.det, beamline.area_detector], 3), path)
    assert_valid_nexus(path, root)
    data = default_plot(root)
    assert data.nxsignal.nxname == "det"
    assert [a.nxname for a in data.nxaxes] == ["seq_num"]
    assert data.attrs["seq_num_indices"] == 0


async def test_grid_cut_short_is_padded_with_nan(
    RE: RunEngine, beamline: SimBeamline, tmp_path: Path
) -> None:
    bl = beamline
    steps = 0

    def per_step(detectors: Any, step: Any, pos_cache: Any) -> Any:
        nonlocal steps
        steps += 1
        if steps > 5:
            raise RuntimeError("beam lost")
        return bps.one_nd_step(detectors, step, pos_cache)

    with pytest.raises(RuntimeError, match="beam lost"):
        await RE(grid_scan([bl.det2d], bl.y, -1, 1, 3, bl.x, -1, 1, 3, per_step=per_step))
    assert RE.catalog is not None
    run = RE.catalog[-1]
    assert run.exit_status == "fail"
    path = export_nexus(run, tmp_path / "short.nxs")
    root: Any = nxload(str(path))
    assert_valid_nexus(path, root)
    data = default_plot(root)
    assert data.nxpath == "/entry/grid"
    signal = data.det2d.nxdata
    assert signal.shape == (3, 3)
    assert np.isnan(signal.ravel()[5:]).all()
    assert signal.ravel()[:5].tolist() == run.primary.read()["det2d"].tolist()
    assert data.seq_num.nxdata.ravel().tolist() == [1, 2, 3, 4, 5, 0, 0, 0, 0]
    np.testing.assert_allclose(data.y.nxdata, [-1.0, 0.0, np.nan])
    np.testing.assert_allclose(data.x.nxdata, [-1.0, 0.0, 1.0])
