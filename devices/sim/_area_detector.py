"""A simulated area detector that writes frames to HDF5 and streams them as assets.

Built from ophyd-async's pieces: a :class:`~ophyd_async.core.StandardDetector` with a
trigger, an acquire and a data logic, and ophyd-async's own
:class:`~ophyd_async.sim.PatternGenerator` writing the HDF5 file (with h5py): each
frame is a Gaussian blob whose peak is ``PEAK_RATE * exposure * pattern(x, y)``
counts (``pattern`` in 0..1; ``x``, ``y`` are the readbacks of the motors given to
the detector, taken when the acquisition starts): with the beamline's motors at 0
and its 10 ms exposure, a peak of about 2 900 counts. Pixels saturate at 65 535, as
on a 16-bit detector; ``noise="poisson"`` draws each pixel from counting statistics.
The file's frames are announced by Stream Resource / Stream Datum documents from
``collect_asset_docs()`` (:class:`~ophyd_async.core.StreamResourceDataProvider`).

The file has two datasets: ``/entry/data/data`` (frames, ``(n, height, width)``
uint16, data key ``<name>``) and ``/entry/sum`` (each frame's sum, ``(n,)`` int64,
data key ``<name>-sum``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path, PurePath
from typing import Any

import h5py
import numpy as np
from bluesky.protocols import Locatable
from ophyd_async.core import (
    DetectorAcquireLogic,
    DetectorDataLogic,
    DetectorTriggerLogic,
    PathProvider,
    SignalR,
    SignalRW,
    StandardDetector,
    StaticPathProvider,
    StreamableDataProvider,
    StreamResourceDataProvider,
    StreamResourceInfo,
    TriggerInfo,
    UUIDFilenameProvider,
    soft_signal_rw,
)
from ophyd_async.sim import PatternGenerator

# The dataset paths PatternGenerator writes, its file and its blob; no public names.
from ophyd_async.sim._pattern_generator import (
    DATA_PATH,
    SUM_PATH,
    PatternFile,
    generate_gaussian_blob,
)

from ._point_detectors import Noise
from ._positions import read_position

__all__ = ["AreaDetector"]

PEAK_RATE = 1e6
"""Counts per second in the brightest pixel when the pattern is at its brightest (1)."""

_FRAME_DTYPE = np.uint16
_SATURATION = int(np.iinfo(_FRAME_DTYPE).max)


class _CountingFile(PatternFile):
    """PatternFile's datasets with 16-bit frames of ``PEAK_RATE``-scaled counts.

    ``PatternFile.__init__`` fixes the frames' dtype at uint8 (255 counts at most), so
    this makes the same datasets itself, with uint16, and does not call it.
    """

    def __init__(
        self, path: PurePath, width: int, height: int, generator: _MotorPatternGenerator
    ) -> None:
        self.file = h5py.File(path, "w", libver="latest")
        self.data = self.file.create_dataset(
            name=DATA_PATH,
            shape=(0, height, width),
            dtype=_FRAME_DTYPE,
            maxshape=(None, height, width),
            chunks=(1, height, width),
        )
        self.sum = self.file.create_dataset(
            name=SUM_PATH, shape=(0,), dtype=np.int64, maxshape=(None,), chunks=(1024,)
        )
        self.file.swmr_mode = True  # readers may follow the file while it is written
        self.blob = generate_gaussian_blob(height, width) * PEAK_RATE
        self.image_counter = 0
        self._generator = generator

    def write_image_to_file(self, intensity: float) -> None:
        """Append a frame of ``blob * intensity`` counts (noisy, saturating) and its sum."""
        counts = self._generator.add_noise(self.blob * intensity)
        frame = np.clip(np.floor(counts), 0, _SATURATION).astype(_FRAME_DTYPE)
        for dataset, value in ((self.data, frame), (self.sum, frame.sum(dtype=np.int64))):
            dataset.resize(self.image_counter + 1, axis=0)
            dataset[self.image_counter] = value
            dataset.flush()
        self.image_counter += 1


class _MotorPatternGenerator(PatternGenerator):
    """ophyd-async's pattern generator, told the motors' positions before each batch."""

    def __init__(
        self,
        x: Locatable[float] | None,
        y: Locatable[float] | None,
        noise: Noise,
        seed: int | None,
    ) -> None:
        super().__init__()
        self._x_motor = x
        self._y_motor = y
        self._noise = noise
        self._rng = np.random.default_rng(seed)

    def open_file(self, path: PurePath, width: int, height: int) -> None:
        """Open a file of 16-bit frames (ophyd-async's has 8-bit ones)."""
        self._file = _CountingFile(path, width, height, self)
        self._update_images_written(0)

    def add_noise(self, counts: np.ndarray[Any, np.dtype[np.float64]]) -> np.ndarray[Any, Any]:
        """Return ``counts`` with the detector's noise (as the point detectors add it)."""
        match self._noise:
            case Noise.POISSON:
                return self._rng.poisson(counts)
            case Noise.UNIFORM:
                return counts + self._rng.uniform(-1.0, 1.0, counts.shape)
            case _:
                return counts

    async def write_images_to_file(self) -> None:
        """Take the motors' readbacks, then write the batch of frames."""
        if self._x_motor is not None:
            self.set_x(await read_position(self._x_motor))
        if self._y_motor is not None:
            self.set_y(await read_position(self._y_motor))
        await super().write_images_to_file()


class _TriggerLogic(DetectorTriggerLogic):
    """Internal triggering only; exposure from ``livetime`` or ``acquire_time``."""

    def __init__(self, generator: PatternGenerator, acquire_time: SignalRW[float]) -> None:
        self._generator = generator
        self._acquire_time = acquire_time

    def config_sigs(self) -> set[SignalR]:
        """``acquire_time`` belongs in the descriptor's configuration."""
        return {self._acquire_time}

    async def prepare_internal(self, num: int, livetime: float, deadtime: float) -> None:
        """Set up ``num`` frames of ``livetime`` (or ``acquire_time``) each."""
        if livetime:
            await self._acquire_time.set(livetime)
        exposure = await self._acquire_time.get_value()
        if exposure <= 0:
            raise ValueError(
                f"{self._acquire_time.name} must be > 0 for the simulated area detector, "
                f"got {exposure}"
            )
        self._generator.setup_acquisition_parameters(
            exposure=exposure, period=exposure + deadtime, number_of_frames=num
        )

    async def default_trigger_info(self) -> TriggerInfo:
        """One frame of the current ``acquire_time``."""
        return TriggerInfo()


class _AcquireLogic(DetectorAcquireLogic):
    """Runs the generator's frame-writing loop as a task this logic owns."""

    def __init__(self, generator: PatternGenerator) -> None:
        self._generator = generator
        self._task: asyncio.Task[None] | None = None

    async def start_acquiring(self) -> None:
        """Start writing the prepared number of frames in the background."""
        await self.ensure_stopped()
        self._task = asyncio.create_task(self._generator.write_images_to_file())

    async def wait_for_idle(self) -> None:
        """Wait until the batch of frames is written (re-raising its error)."""
        if self._task is not None:
            await self._task

    async def ensure_stopped(self) -> None:
        """Cancel an unfinished batch and wait for it to end."""
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            # Wait for the task without taking on its CancelledError: only our own
            # cancellation may propagate from here.
            await asyncio.wait([task])


class _DataLogic(DetectorDataLogic):
    """Opens one HDF5 file per prepare and describes its two datasets."""

    def __init__(
        self, path_provider: PathProvider, generator: PatternGenerator, shape: tuple[int, int]
    ) -> None:
        self._path_provider = path_provider
        self._generator = generator
        self._height, self._width = shape

    async def prepare_unbounded(self, datakey_name: str) -> StreamableDataProvider:
        """Open a new file and return the provider of its stream documents."""
        path_info = self._path_provider(datakey_name)
        filename = f"{path_info.filename}.h5"
        self._generator.open_file(path_info.directory_path / filename, self._width, self._height)
        frames = StreamResourceInfo(
            data_key=datakey_name,
            shape=(self._height, self._width),
            chunk_shape=(1, self._height, self._width),
            dtype_numpy=np.dtype(_FRAME_DTYPE).str,
            parameters={"dataset": DATA_PATH},
        )
        sums = StreamResourceInfo(
            data_key=f"{datakey_name}-sum",
            shape=(),
            chunk_shape=(1024,),
            dtype_numpy=np.dtype(np.int64).str,
            parameters={"dataset": SUM_PATH},
        )
        return StreamResourceDataProvider(
            uri=f"{path_info.directory_uri}{filename}",
            resources=[frames, sums],
            mimetype="application/x-hdf5",
            collections_written_signal=self._generator.images_written,
        )

    async def stop(self) -> None:
        """Close the file (unstage, or a new prepare)."""
        self._generator.close_file()

    def get_hinted_fields(self, datakey_name: str) -> Sequence[str]:
        """The frames' sum is the field worth plotting."""
        return [f"{datakey_name}-sum"]


class AreaDetector(StandardDetector):
    """A 2D detector writing HDF5 frames whose brightness depends on two motors.

    Works in step scans (``stage``, ``trigger``, ``read``, ``collect_asset_docs``,
    ``unstage``) and fly scans (``prepare(TriggerInfo(number_of_events=n))``,
    ``kickoff``, ``complete``). Each prepare after a stage writes a new file named by
    a UUID in the provider's directory; ``unstage`` closes it.

    Args:
        path_provider: Where to write: an ophyd-async ``PathProvider``, or a
            directory (files get UUID names).
        x: Motor whose readback is the pattern's ``x`` (optional).
        y: Motor whose readback is the pattern's ``y`` (optional).
        acquire_time: Exposure per frame in seconds, > 0 (configuration); the peak
            is ``PEAK_RATE * acquire_time * pattern(x, y)`` counts (pattern in 0..1).
        shape: Frame shape ``(height, width)`` in pixels.
        noise: Noise on each pixel: none, poisson (counting statistics) or uniform
            (plus a uniform draw in [-1, 1) counts).
        seed: Seed of the noise; ``None`` for fresh entropy.
        name: Device name; the frames' data key, ``<name>-sum`` the sums'.
    """

    def __init__(
        self,
        path_provider: PathProvider | str | PurePath,
        x: Locatable[float] | None = None,
        y: Locatable[float] | None = None,
        *,
        acquire_time: float = 0.1,
        shape: tuple[int, int] = (240, 320),
        noise: Noise | str = Noise.NONE,
        seed: int | None = None,
        name: str = "",
    ) -> None:
        if acquire_time <= 0:
            raise ValueError(f"acquire_time must be > 0, got {acquire_time}")
        if isinstance(path_provider, str | PurePath):
            path_provider = StaticPathProvider(
                UUIDFilenameProvider(), Path(path_provider).absolute()
            )
        self.pattern_generator = _MotorPatternGenerator(x, y, Noise(noise), seed)
        self.acquire_time = soft_signal_rw(float, acquire_time, units="s")
        self.add_detector_logics(
            _TriggerLogic(self.pattern_generator, self.acquire_time),
            _AcquireLogic(self.pattern_generator),
            _DataLogic(path_provider, self.pattern_generator, shape),
        )
        super().__init__(name=name)
