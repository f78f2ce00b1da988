"""File-level operations: super-resolve or degrade a raster, end to end.

These are what the command line and the QGIS algorithms call. Every user error is an
``InputError`` raised before anything is written; outputs are written atomically
(``core.raster.AtomicGeoTIFF``), so a failure or a cancellation leaves nothing at the output path.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field, replace
from typing import Callable, Sequence

import numpy as np
import torch

from .config import (
    LEARNED_KERNEL, DIPConfig, IOOptions, KnitworkConfig, TileOptions, as_paths, check_scale, extent_words, refuse_smaller,
)
from .degradation import OBSERVATION_GAIN_LIMIT, degrade_valid, takes_width_test, width_keep, width_test
from .device import busy_cpus_line, describe, resolve_device, seeded
from .errors import InputError, NonFiniteLoss
from .grid import Grid, Window
from .kernels import (
    Kernel, band_note, check_kernel_fits, check_kernel_outputs, file_taps, kernel_files, kernel_origin, kernel_record_path, kernel_width,
    loading_notes, make_kernel, off_centre, save_kernel_file,
)
from .normalise import BandScaling, ZeroFloor, array_constants, exact_float, hold_constants, real_image
from .progress import DONE, NullProgress, Progress, Relay, check_cancelled
from .raster import (
    AtomicGeoTIFF,
    RasterInfo,
    StagedFiles,
    band_labels,
    check_raster_output,
    claimed,
    constant_bands,
    dataset_files,
    nodata_warnings,
    georeferencing_note,
    loss_curve_path,
    no_valid_pixels,
    open_info,
    output_dtype,
    read_window,
    same_file,
    staged,
    valid_mask,
)
from .tiling import (
    BatchSolver, ShrinkOnOutOfMemory, Solver, WarmStart, kernel_tiles, retry_minimum, run_tiles, solve_in_tiles, tiles_note,
    tiles_words,
)

#: Largest edge of the decimated read used to fit the per-band normalisation of a large raster.
SCALING_SAMPLE = 1024

#: Largest edge, in input pixels, of the window on which a run decides back-projection's width test once for all its
#: tiles (``back_projection_keep``): the raster's window with the most structure (``core.kernelgan.structured_window``)
#: where it is larger. Bounds the test's cost (20 back-projection steps on the window, on the CPU).
WIDTH_TEST_WINDOW = 512

#: The configuration of a tile-by-tile super-resolution method (``dip`` or ``knitwork``).
MethodConfig = DIPConfig | KnitworkConfig


@dataclass
class RunResult:
    """What a run produced: the output path, the device used, wall time, optimisation steps, notes.

    curves: the training loss of each optimised tile, one value per step (``core.optimise``), in tile order.
    loss_curve: the PNG of those curves written beside the output (``None``: none written).
    kernel_path: the kernel file kept beside the output (``core.kernelgan.estimated_kernel_path``): the kernel
    KernelGAN estimated (``--kernel estimate``) or Knitworks learnt (``learned``); ``None`` for the others.
    tiles: the tiles the run was solved in: the configuration's, grown where its kernel needed (``tiling.kernel_tiles``).
    """

    output_path: str
    device: str
    seconds: float
    steps: int
    messages: list[str] = field(default_factory=list)
    curves: list[np.ndarray] = field(default_factory=list)
    loss_curve: str | None = None
    kernel_path: str | None = None
    tiles: TileOptions | None = None


@dataclass(frozen=True)
class TileKernel:
    """The kernel one tile learnt (Knitworks ``learned``) as a kernel file holds it (odd size, ``kernels.file_taps``),
    and the tile's valid input values (pixels × bands): its weight in the run's kernel (``learned_kernel``)."""

    taps: np.ndarray
    weight: int


@dataclass(frozen=True)
class LearnedKernel:
    """A run's learned kernel for ``scale``: ``taps`` odd-size, summing to one; ``source`` says in words which
    tiles' kernel it is (the log line and the kernel file's record)."""

    taps: np.ndarray
    scale: int
    source: str

    def describe(self) -> str:
        """``13×13 taps, σ 0.82 × 0.67 input pixels, major axis at 40°``: the size and width (``kernels.kernel_width``),
        and how far its centre of mass is off the block centre where it is (``kernels.off_centre``)."""
        off = off_centre(self.taps, self.scale)
        return f"{self.taps.shape[0]}×{self.taps.shape[1]} taps, {kernel_width(self.taps, self.scale)}" + (f", {off}" if off else "")


def learned_kernel(tiles: list[TileKernel], scale: int) -> LearnedKernel:
    """The kernel a Knitworks ``learned`` run reports and keeps: its one tile's, or, where several tiles learnt
    their own (each starts from the prior, or warm-starts from the first tile's and goes on learning), their mean
    weighted by each tile's valid input values, the tiles' spread of widths said in ``source``."""
    if not tiles:
        raise InputError("no tile has valid pixels, so no kernel was learned")
    if len(tiles) == 1:
        return LearnedKernel(tiles[0].taps, scale, "learned by Neural Knitworks on one tile, the kernel its data term and back-projection applied")
    taps = np.average([tile.taps for tile in tiles], axis=0, weights=[tile.weight for tile in tiles])
    majors = [kernel_width(tile.taps, scale).major for tile in tiles]
    return LearnedKernel(
        taps, scale,
        f"learned by Neural Knitworks on {len(tiles)} tiles, each applying its own (major σ {min(majors):.2f} to "
        f"{max(majors):.2f} input pixels): their mean weighted by each tile's valid input pixels",
    )


def learned_kernel_path(output_path: str, config: MethodConfig) -> str | None:
    """Where a run of ``config`` into ``output_path`` keeps the kernel Knitworks learns (beside the output, as
    ``--kernel estimate`` keeps its kernel: ``core.kernelgan.estimated_kernel_path``); ``None`` for a fixed kernel."""
    from .kernelgan import estimated_kernel_path

    return estimated_kernel_path(output_path) if learns_kernel(config) else None


def check_learned_kernel_output(output_path: str, inputs: list[str], config: MethodConfig) -> None:
    """Refuse a run of ``config`` whose learned kernel's files (``learned_kernel_path``) would replace an input or a
    file no earlier kernel wrote (``kernels.check_kernel_outputs``; the folder is the output's, which its own check
    probes). Nothing to check for a fixed kernel. A one-line ``InputError``."""
    path = learned_kernel_path(output_path, config)
    if path is not None:
        check_kernel_outputs([path], inputs, probe=False)


class _Recorder(Relay):
    """Forwards to a progress sink and keeps the ``info`` messages, the tiles' loss curves and the kernels tiles
    learnt (``TileKernel``) for the result.

    With ``files``, a message naming one of that group's temporary files (a kernel KernelGAN estimated for
    this run, read before it is in place) names its target instead: the file the user will find.
    """

    def __init__(self, progress: Progress, files: StagedFiles | None = None) -> None:
        super().__init__(progress)
        self.files = files
        self.messages: list[str] = []
        self.curves: list[np.ndarray] = []
        self.kernels: list[TileKernel] = []
        #: the tiles the run is solved in, once its solver has them (chosen by the run's check: ``tiling.kernel_tiles``)
        self.tiles: TileOptions | None = None
        self.start = time.perf_counter()

    def add_curve(self, losses: np.ndarray) -> None:
        """Keep one tile's loss curve (its length is the tile's step count)."""
        self.curves.append(losses)

    def result(self, output_path: str, device: str) -> RunResult:
        """The ``RunResult`` of a run that started when this recorder was made."""
        steps = sum(len(c) for c in self.curves)
        return RunResult(output_path, device, time.perf_counter() - self.start, steps, self.messages, self.curves, tiles=self.tiles)

    def info(self, message: str) -> None:
        for target, temporary in (self.files.staged.items() if self.files is not None else ()):
            message = message.replace(temporary, target)
        self.messages.append(message)
        self.parent.info(message)

    def write_output(
        self,
        output_path: str,
        device: str,
        method: str | None,
        write: Callable[[StagedFiles], None],
        inputs: Sequence[str],
        kernels: Sequence[str] = (),
        files: StagedFiles | None = None,
    ) -> RunResult:
        """End a file run: ``write(group)`` the output into a staged group, draw the tiles' loss curves beside
        it (``figures.write_loss_curve``; not when ``method`` is ``None``; a failure to draw them is a warning,
        the output stands), move both into place together (with ``files``: when that group of the caller's
        run is committed), report completion and return the ``RunResult``. What an earlier run left beside the
        output and this one does not write again is removed as they move (``remove_earlier_side_files``, with the
        run's ``inputs`` and ``kernels``)."""
        from .figures import write_loss_curve

        with staged(files) as group:
            write(group)
            try:
                curve = write_loss_curve(output_path, self.curves, method, group) if method else None
            except OSError as error:  # the raster is written; a figure that cannot be must not undo that
                earlier = loss_curve_path(output_path)
                removed = f"; the earlier {earlier} is removed" if os.path.lexists(earlier) else ""
                self.info(f"warning: the training loss curve could not be written: {error}{removed}")
                curve = None
            remove_earlier_side_files(group, output_path, inputs, kernels)
        if curve:
            self.info(f"training loss curve: {curve}")
        self.report(1.0, DONE)
        return replace(self.result(output_path, device), loss_curve=curve)


def remove_earlier_side_files(group: StagedFiles, output_path: str, inputs: Sequence[str], kernels: Sequence[str] = ()) -> None:
    """Have ``group``'s commit remove the files an earlier run into ``output_path`` left beside it that this run does
    not write again (``StagedFiles.remove_at_commit``), as the GeoTIFF's stale sidecars are: its loss curve
    (``loss_curve_path``) and the files of the kernel kept for it (``kernelgan.estimated_kernel_path``: KernelGAN's estimate or Knitworks' learned kernel,
    the kernel, its scale record and preview, ``kernels.kernel_files``; only where the kernel and its record are both
    there, as ``save_kernel_file`` leaves them, else they may be another dataset's). A file this run reads stays: one
    of ``inputs`` (rasters, with the files GDAL reads for them) or ``kernels`` (kernel names or files); a kernel file
    given as the output's own, ``--kernel OUTPUT.tif.kernel.npy``, keeps its record and preview too."""
    from .kernelgan import estimated_kernel_path

    read = [*(file for path in inputs for file in dataset_files(path)), *kernels]

    def is_read(path: str) -> bool:
        return any(same_file(path, file) for file in read)

    kernel = estimated_kernel_path(output_path)
    earlier = [loss_curve_path(output_path)]
    if os.path.isfile(kernel) and os.path.isfile(kernel_record_path(kernel)) and not is_read(kernel):
        earlier += kernel_files(kernel)
    for path in earlier:
        if os.path.lexists(path) and path not in group.staged and not is_read(path):
            group.remove_at_commit(path)


def output_files(output_path: str) -> list[str]:
    """The files a run into the raster ``output_path`` claims as it starts (``raster.claimed``): the output, which names
    its loss curve beside it, and the kernel file kept beside it (``kernelgan.estimated_kernel_path``: written, or an
    earlier run's removed, ``remove_earlier_side_files``), which names its record and preview. Those side files are
    claimed too as the run stages or removes them (``raster.StagedFiles``)."""
    from .kernelgan import estimated_kernel_path

    return [output_path, estimated_kernel_path(output_path)]


def check_super_resolve(
    input_path: str, output_path: str | None, config: MethodConfig, io: IOOptions = IOOptions(), kernel: Kernel | None = None
) -> tuple[RasterInfo, TileOptions]:
    """Everything ``super_resolve`` checks before it starts, from metadata alone: the input, its bands and
    extent, the output path and the files of the kernel Knitworks learns beside it (unless ``None``), the input's
    size for the network and the kernel (a kernel file is read; the kernel must fit in the image, ``check_kernel_fits``,
    and in the tiles: ``tiling.kernel_tiles``). Returns the input and the tiles the run is solved in (``config.tiles``,
    grown where the kernel needs), which ``super_resolve`` hands its solver and front ends show before the run.
    ``kernel``: checked in place of the one ``config`` names, for a run whose kernel is not known yet (``--kernel
    estimate``: the widest KernelGAN can return, ``kernelgan.widest_kernel``). Raises a one-line ``InputError``;
    front ends call it to refuse bad settings before a run."""
    input_path, output_path = as_paths(input_path, output_path)
    info = open_info(input_path, io.bands, io.extent, 1, io.crs)
    if output_path is not None:
        check_raster_output(output_path, [input_path])
        check_learned_kernel_output(output_path, [input_path], config)
    config.check_input_size(info.grid.width, info.grid.height, info.window is not None)
    kernel = method_kernel(config) if kernel is None else kernel
    if kernel is not None:
        check_kernel_fits(kernel, info.grid.width, info.grid.height, info.window is not None)
    return info, kernel_tiles(config.tiles, tile_kernels(config, kernel), info.grid.width, info.grid.height)


def learns_kernel(config: MethodConfig) -> bool:
    """Whether ``config`` is Knitworks learning its kernel (``learned``)."""
    return isinstance(config, KnitworkConfig) and config.kernel == LEARNED_KERNEL


def method_kernel(config: MethodConfig) -> Kernel | None:
    """The fixed kernel ``config`` names (a kernel file is read and checked); ``None`` when Knitworks learns it."""
    if learns_kernel(config):
        return None
    return make_kernel(config.kernel, config.scale, accepted=config.KERNEL_NAMES)


def tile_kernels(config: MethodConfig, kernel: Kernel | None) -> list[Kernel]:
    """The kernel whose footprint ``config``'s tiles must hold (``tiling.kernel_tiles``): ``kernel``, its fixed one
    (``method_kernel``), or for a learned kernel (Knitworks ``learned``, ``kernel`` ``None``) a flat one of the
    learned kernel's taps (``KnitworkConfig.learned_taps``), which bound where it reads whatever it learns."""
    if kernel is not None:
        return [kernel]
    taps = config.learned_taps
    return [Kernel(LEARNED_KERNEL, config.scale, full=np.full((taps, taps), 1 / taps**2))]


def check_degrade(input_path: str, output_path: str | None, scale: int, kernel: str, io: IOOptions = IOOptions()) -> tuple[RasterInfo, Kernel]:
    """Everything ``degrade`` checks before it starts (as ``check_super_resolve``); returns the input and the kernel."""
    check_scale(scale, None)
    input_path, output_path = as_paths(input_path, output_path)
    info = open_info(input_path, io.bands, io.extent, scale, io.crs)
    if output_path is not None:
        check_raster_output(output_path, [input_path], loss_curve=False)
    width, height = info.grid.width, info.grid.height
    edge = min(width, height)  # under the scale, the largest scale whose one block fits
    refuse_smaller(width, height, info.window is not None, scale, f"too small to degrade by ×{scale}", "pixels (one block)",
                   fits=edge if edge >= 2 else None)
    return info, make_kernel(kernel, scale)


def _log_input(
    info: RasterInfo, progress: Progress, writes_raster: bool = True, block: int = 1, kernel: Kernel | None = None
) -> None:
    """Log what a run's user should know of its input: how it is georeferenced when that is not a geotransform
    with a CRS (``georeferencing_note``; only for a run that writes a raster, which the note is about), the pixels
    an extent selected (``extent_message``; ``block`` as there), what is read as nodata otherwise than declared
    (``log_nodata_warnings``), and that the run's ``kernel``, a file, was made on other bands (``kernels.band_note``)."""
    note = georeferencing_note(info) if writes_raster else None
    if note:
        progress.info(note)
    if info.window is not None:
        progress.info(extent_message(info, block))
    log_nodata_warnings(info, progress)
    if note := band_note(kernel, info.bands, info.path):
        progress.info(note)


def log_nodata_warnings(info: RasterInfo, progress: Progress) -> None:
    """Warn of a nodata value ``info``'s raster declares that its data type cannot hold, and, one line per band, of
    float fill values it holds without declaring them (``raster.nodata_warnings``: they are read as nodata). Reads
    the raster's area once."""
    for line in nodata_warnings(info):
        progress.info(line)


def extent_message(info: RasterInfo, block: int = 1) -> str:
    """The log line saying which pixels of the input the extent of ``info`` (``RasterInfo.extent``) selected
    (``info.window``), and, where the extent reaches past the raster, that it was clipped to the raster. ``block``: a
    decimation by it, which writes whole ``block × block`` blocks only: the pixels said are those, and a partial block
    at the raster's edge, which the window holds, is said to be left out."""
    window, extent, grid = info.window, info.extent, info.file_grid  # an extent's input (``open_info``): none is None
    whole = Window(window.col_off, window.row_off, window.width // block * block, window.height // block * block)
    line = f"extent: input {whole.describe()}"
    if whole != window:
        line += f", in whole {block}×{block} blocks (the partial block at the raster's edge is left out)"
    if grid.reaches_past(extent):
        line += f"; the extent {extent_words(extent)} reaches past the raster, which covers {extent_words(grid.bounds)}, and was clipped to it"
    return line


def scaling_sample(info: RasterInfo) -> tuple[np.ndarray, np.ndarray]:
    """At most ``SCALING_SAMPLE``² pixels of ``info``'s area (nearest-neighbour decimated read) and their validity."""
    factor = max(1, int(np.ceil(max(info.grid.width, info.grid.height) / SCALING_SAMPLE)))
    shape = (len(info.bands), max(1, info.grid.height // factor), max(1, info.grid.width // factor))
    return read_window(info, out_shape=shape)


def fit_scaling(info: RasterInfo) -> BandScaling:
    """Per-band normalisation fitted on at most ``SCALING_SAMPLE``² pixels (``scaling_sample``)."""
    data, valid = scaling_sample(info)
    if not valid.any():
        raise no_valid_pixels(info)
    return BandScaling.fit(data, valid)


def decimated_sample(image: np.ndarray, valid: np.ndarray) -> Callable[[int, int], tuple[np.ndarray, np.ndarray]]:
    """``sample(rows, cols)`` of ``core.kernelgan.structured_window`` for an in-memory ``(C, H, W)`` image and its validity:
    the nearest-neighbour decimation a file read with ``out_shape`` gives."""

    def sample(rows: int, cols: int) -> tuple[np.ndarray, np.ndarray]:
        r = (np.arange(rows) * image.shape[-2]) // rows
        c = (np.arange(cols) * image.shape[-1]) // cols
        return image[:, r][:, :, c], valid[:, r][:, :, c]

    return sample


def back_projection_keep(
    kernels: Kernel | list[Kernel] | None,
    width: int,
    height: int,
    sample: Callable[[int, int], tuple[np.ndarray, np.ndarray]],
    read: Callable[[Window], tuple[np.ndarray, ...]],
    scaling: BandScaling,
    progress: Progress,
    names: list[str] | None = None,
) -> np.ndarray | None:
    """Back-projection's width test (``core.degradation.back_project``) decided once for a run's whole
    ``width × height`` input, so that every tile decides alike: ``(C,)`` booleans, the bands back-projected, to
    give every tile as its ``keep``; ``None`` when no band's kernel takes the test (or Knitworks learns the kernel,
    which differs per tile: ``kernels`` ``None``), and the tiles decide nothing either.

    The observation gain (``core.degradation.width_test``) is measured on the input's window of at most
    ``WIDTH_TEST_WINDOW`` pixels each way with the most structure (``core.kernelgan.structured_window``;
    ``sample(rows, cols)`` reads the input decimated, ``read(window)`` its values and validity first), normalised
    by ``scaling`` as the tiles are. Each band that is not back-projected is said in one line through ``progress``
    (``names``: the bands' names; default ``band 1``, ``band 2``, …).
    """
    from .kernelgan import structured_window

    if kernels is None or not takes_width_test(kernels).any():  # no window to find or read
        return None
    window = structured_window(width, height, WIDTH_TEST_WINDOW, sample) or Window(0, 0, width, height)
    data, valid = read(window)[:2]
    gains = width_test(scaling.normalise(data), valid, kernels)
    if gains is None:
        return None
    keep = width_keep(gains)
    names = names or [f"band {band}" for band in range(1, len(gains) + 1)]
    where = "the input" if (window.width, window.height) == (width, height) else f"its {window.width}×{window.height} window with the most structure"
    for name, gain, kept in zip(names, gains, keep):
        if not kept:
            progress.info(
                f"{name}: not back-projected, for the whole raster: its observation gain {gain:.2f} is over the width test's "
                f"limit {OBSERVATION_GAIN_LIMIT:g} (measured on {where}): the kernel looks wider than the image's blur"
            )
    return keep


def method_name(config: MethodConfig) -> str:
    """The method a configuration runs, as logs and figures name it."""
    return "Neural Knitworks" if isinstance(config, KnitworkConfig) else "Deep Image Prior"


def _solver(
    config: MethodConfig,
    tiles: TileOptions,
    width: int,
    height: int,
    scaling: BandScaling,
    read: Callable[[Window], tuple[np.ndarray, np.ndarray]],
    progress: _Recorder,
    keep: np.ndarray | None = None,
) -> tuple[ShrinkOnOutOfMemory, str]:
    """The tile solver of a ``width × height`` input shared by file and array runs; returns it and the device name.

    The method follows the configuration's type: ``DIPConfig`` → ``core.dip``, ``KnitworkConfig`` →
    ``core.knitwork``; both solve one normalised tile with the same signature. ``tiles``: those the run's check
    chose (``check_super_resolve`` or ``array_tiles``: the configuration's, grown where the kernel needs,
    ``tiling.kernel_tiles``), said in the log where they differ from the configuration's (``tiling.tiles_note``) and
    kept as ``progress.tiles``; the solver's have the batch resolved for the device. ``keep``: every tile's
    back-projection width test,
    decided once for the run (``back_projection_keep``). DIP also solves tiles in batches
    (its ``many``). Running out of GPU memory shrinks the batch, then the tiles, then moves to the CPU.
    """
    if isinstance(config, KnitworkConfig):
        from .knitwork import super_resolve_tile
    else:
        from .dip import super_resolve_tile
    method = method_name(config)
    s = config.scale
    kernel = method_kernel(config)
    for note in loading_notes(kernel) if kernel is not None else []:
        progress.info(note)
    device = resolve_device(config.device)
    kernels = tile_kernels(config, kernel)
    progress.tiles = tiles
    if note := tiles_note(config.tiles, tiles, kernels):
        progress.info(note)
    progress.info(
        f"{method} on device {describe(device)}; ×{s}, kernel {config.kernel}, {config.steps_text()}, "
        f"{tiles_words(width, height, tiles)}, seed {config.seed}"
    )
    if note := busy_cpus_line(device):
        progress.info(note)
    warm = WarmStart(config.warm_start)

    def solve(window: Window, tile_progress: Progress, device: torch.device) -> tuple[np.ndarray, np.ndarray]:
        data, valid = read(window)
        up_valid = valid.repeat(s, axis=1).repeat(s, axis=2)
        if not valid.any():
            return np.zeros(up_valid.shape), up_valid
        with seeded(config.seed, device, tile_progress) as generator:
            tile = super_resolve_tile(scaling.normalise(data), valid, kernel, config, device, tile_progress, generator, start=warm.state, keep=keep)
        warm.keep(tile.state)
        progress.add_curve(tile.losses)
        if kernel is None:
            progress.kernels.append(TileKernel(file_taps(tile.kernel, s), int(valid.sum())))
        return scaling.denormalise(tile.image), up_valid

    def solve_many(windows: list[Window], tile_progress: Progress, device: torch.device) -> list[tuple[np.ndarray, np.ndarray]]:
        reads = [read(window) for window in windows]
        if not all(valid.any() for _, valid in reads):  # one by one, a tile without valid pixels among them
            solved: list[tuple[np.ndarray, np.ndarray]] = []
            for window in windows:
                try:
                    solved.append(solve(window, tile_progress, device))
                except NonFiniteLoss as error:  # solved alone: its index among ``windows``
                    raise error.among(len(solved)) from None
            return solved
        from .dip import super_resolve_tiles

        data, valid = np.stack([scaling.normalise(d) for d, _ in reads]), np.stack([v for _, v in reads])
        with seeded(config.seed, device, tile_progress) as generator:
            tiles = super_resolve_tiles(data, valid, kernel, config, device, tile_progress, generator, start=warm.state, keep=keep)
        for tile in tiles:
            progress.add_curve(tile.losses)
        return [(scaling.denormalise(t.image), v.repeat(s, axis=1).repeat(s, axis=2)) for t, v in zip(tiles, valid)]

    tiles = tiles.for_device(device.type, len(scaling.lo), s)
    minimum = retry_minimum(kernels, config.min_input_size)
    many = solve_many if isinstance(config, DIPConfig) and tiles.batch > 1 else None
    # the first trained tile is solved alone (lead), so batched and one-by-one runs warm-start alike; an automatic
    # batch is sized from the GPU memory that tile took (fit)
    solver = ShrinkOnOutOfMemory(solve, device, tiles, len(scaling.lo), s, progress, minimum, many,
                                 (progress.curves, progress.kernels), lead=lambda: warm.pending, fit=config.tiles.batch == 0)
    return solver, describe(device)


def write_tiled(
    output_path: str,
    info: RasterInfo,
    grid: Grid,
    io: IOOptions,
    width: int,
    height: int,
    scale: int,
    tiles: TileOptions,
    solve: Solver,
    progress: Progress,
    constants: np.ndarray,
    steps: int,
    solve_batch: BatchSolver | None = None,
    files: StagedFiles | None = None,
    floor: ZeroFloor | None = None,
) -> int:
    """Solve the tiles of a ``width × height`` input and write the blended ``grid`` atomically (with
    ``files``: moved into place when that group is committed); returns the number of valid values written
    (0: every output pixel is nodata). ``steps``: those of each tile not started yet, for the time left
    (``tiling.run_tiles``).

    The output has ``info``'s bands and metadata, in its dtype (or Float32 with ``io.float32``); a band constant over
    the whole input (``constants``: ``raster.constant_bands``) is written as its value (``normalise.hold_constants``),
    and negative values are raised to 0 in the bands a ``floor`` holds (``finish``).
    """
    dtype = output_dtype(info, io.float32)
    with AtomicGeoTIFF(output_path, info, grid, dtype, io.cog, files) as out:
        def write(window: Window, values: np.ndarray, valid: np.ndarray) -> None:
            out.write(window, finish(values, valid, constants, floor), valid)

        run_tiles(width, height, len(info.bands), scale, tiles, solve, write, progress, solve_batch, steps)
    for warning in out.clipping_warnings() + (floor.notes() if floor is not None else []):
        progress.info(warning)
    return int(out.written.sum())


def finish(values: np.ndarray, valid: np.ndarray, constants: np.ndarray, floor: ZeroFloor | None) -> np.ndarray:
    """Blended output ``values`` ``(C, h, w)`` float64 (``valid``: their validity) as a run writes them, in place: a band
    constant over the whole input (``constants``: ``normalise.constant_values``) holding its value
    (``normalise.hold_constants``), then, with a ``floor``, the negative values of the bands it holds raised to 0."""
    values = hold_constants(values, constants)
    return floor.apply(values, valid) if floor is not None else values


def collect_tiled(
    width: int, height: int, bands: int, scale: int, tiles: TileOptions, solve: Solver, progress: Progress,
    constants: np.ndarray, steps: int, solve_batch: BatchSolver | None = None, floor: ZeroFloor | None = None,
) -> np.ndarray:
    """Solve the tiles of a ``width × height`` input and return the blended ``(bands, s·h, s·w)`` float64 array
    ``finish``ed as a file run writes it (``constants``, ``steps``, ``floor``: as ``write_tiled``'s), logging what
    ``floor`` raised."""
    window = Window(0, 0, width, height)
    values, valid = solve_in_tiles(window, bands, scale, tiles, solve, progress, solve_batch, steps)
    values = finish(values, valid, constants, floor)
    for note in floor.notes() if floor is not None else []:
        progress.info(note)
    return values


def super_resolve(
    input_path: str,
    output_path: str,
    config: MethodConfig,
    io: IOOptions = IOOptions(),
    progress: Progress | None = None,
    files: StagedFiles | None = None,
) -> RunResult:
    """Super-resolve ``input_path`` by ``config.scale`` into a GeoTIFF with the method ``config`` configures.

    The GeoTIFF and its loss curve move into place together at the end (``core.raster.staged``; with
    ``files``, when that group of the caller's run is committed). A kernel Knitworks learnt (``learned``) is
    kept beside the output (``learned_kernel_path``: ``.npy``, scale record and preview, as ``--kernel estimate``
    keeps its kernel; ``learned_kernel`` says which tiles' it is) and moves into place with them. Paths may be
    ``str`` or ``os.PathLike``.
    """
    input_path, output_path = as_paths(input_path, output_path)
    recorder = _Recorder(progress or NullProgress(), files)
    info, tiles = check_super_resolve(input_path, output_path, config, io)
    with claimed(output_files(output_path)):
        kernel = method_kernel(config)
        _log_input(info, recorder, kernel=kernel)
        scaling, read = fit_scaling(info), (lambda w: read_window(info, w))
        sample = lambda rows, cols: read_window(info, out_shape=(len(info.bands), rows, cols))  # noqa: E731
        keep = back_projection_keep(kernel, info.grid.width, info.grid.height, sample, read, scaling, recorder, band_labels(info.bands, info.descriptions))
        solve, device = _solver(config, tiles, info.grid.width, info.grid.height, scaling, read, recorder, keep)
        grid, constants = info.grid.refined(config.scale), constant_bands(info)
        kernel_path = learned_kernel_path(output_path, config)

        def write(group: StagedFiles) -> None:
            write_tiled(output_path, info, grid, io, info.grid.width, info.grid.height, config.scale, solve.tiles,
                        solve, recorder, constants, config.later_steps, solve.many, group)
            if kernel_path is not None:
                learned = learned_kernel(recorder.kernels, config.scale)
                origin = kernel_origin(learned.source, input_path, info.bands, info.window, info.grid.width, info.grid.height)
                save_kernel_file(kernel_path, learned.taps, config.scale, files=group, origin=origin)
                recorder.info(f"learned kernel: {learned.describe()} → {kernel_path} ({learned.source})")

        result = recorder.write_output(output_path, device, method_name(config), write, [input_path], [config.kernel], files)
        return replace(result, kernel_path=kernel_path)


def array_tiles(config: MethodConfig, width: int, height: int) -> TileOptions:
    """The tiles ``super_resolve_array`` solves a ``width × height`` image in with ``config`` (``tiling.kernel_tiles``
    for its kernel, as ``check_super_resolve`` chooses a file's): a caller that checks first chooses them with this and
    passes them on (``evaluation.plan_evaluation``)."""
    return kernel_tiles(config.tiles, tile_kernels(config, method_kernel(config)), width, height)


def super_resolve_array(
    image: np.ndarray,
    config: MethodConfig,
    valid: np.ndarray | None = None,
    progress: Progress | None = None,
    tiles: TileOptions | None = None,
) -> tuple[np.ndarray, RunResult]:
    """In-memory variant of ``super_resolve``: ``(C, h, w)`` values → ``(C, s·h, s·w)`` float64 values.

    Used by evaluation and benchmarks; the same normalisation, tiling and solver as file runs. Values that are
    not finite or are fill values (``raster.valid_mask``) are invalid, besides those ``valid`` (booleans of the
    image's shape) marks so. Another shape, or values that are not real numbers, are a one-line ``InputError``.
    ``tiles``: those a caller's check chose for this image and ``config`` (``array_tiles``); ``None``: chosen here.
    """
    recorder = _Recorder(progress or NullProgress())
    image = real_image(image)  # int32 / uint32 / float64 values stay exact
    if valid is not None and np.shape(valid) != image.shape:
        raise InputError(f"valid must have the image's shape {image.shape} (bands, rows, cols), got {np.shape(valid)}")
    valid = valid_mask(image, None) if valid is None else valid & valid_mask(image, None)
    c, h, w = image.shape
    config.check_input_size(w, h)
    if not valid.any():
        raise InputError("the image has no valid pixels")
    if tiles is None:
        tiles = array_tiles(config, w, h)
    scaling = BandScaling.fit(image, valid)

    def read(win: Window) -> tuple[np.ndarray, np.ndarray]:
        return image[(slice(None), *win.slices)], valid[(slice(None), *win.slices)]

    keep = back_projection_keep(method_kernel(config), w, h, decimated_sample(image, valid), read, scaling, recorder)
    solve, device = _solver(config, tiles, w, h, scaling, read, recorder, keep)
    out = collect_tiled(w, h, c, config.scale, solve.tiles, solve, recorder, array_constants(image, valid), config.later_steps,
                        solve.many)
    if learns_kernel(config):
        learned = learned_kernel(recorder.kernels, config.scale)
        recorder.info(f"learned kernel: {learned.describe()} ({learned.source})")
    return out, recorder.result("", device)


#: Input values (pixels × bands) ``degrade`` reads at once: it works in strips of whole blocks of rows,
#: so its memory is bounded by the strip whatever the raster's size (64 MB of float32 per array; half as many
#: values for the rasters read as float64, ``normalise.exact_float``).
DEGRADE_STRIP_VALUES = 2**24


def degrade(
    input_path: str,
    output_path: str,
    scale: int,
    kernel: str = "bicubic",
    io: IOOptions = IOOptions(),
    progress: Progress | None = None,
) -> RunResult:
    """Blur with ``kernel`` and decimate by ``scale`` (the sensor model of ``core.degradation``).

    The output grid is the input grid coarsened by ``scale`` (trailing rows/columns that do not fill
    a whole block are dropped). A low-resolution pixel is nodata when any pixel under its kernel is.
    The raster is read in strips of rows with the kernel's reach of context on every side (clipped to the
    file's whole blocks, where the borders are reflected), which gives the pixels a whole-raster pass
    gives, on an extent (``io.extent``) too. Values float32 cannot hold (int32, uint32, float64) are degraded
    normalised by one scaling of the whole file (``degrade_array``), so strips and extents round alike and only
    the normalised values carry float32 rounding: a constant comes back exactly. Paths may be ``str`` or
    ``os.PathLike``.
    """
    input_path, output_path = as_paths(input_path, output_path)
    recorder = _Recorder(progress or NullProgress())
    info, k = check_degrade(input_path, output_path, scale, kernel, io)
    _log_input(info, recorder, block=scale, kernel=k)
    for note in loading_notes(k):
        recorder.info(note)
    grid = info.grid.coarsened(scale)
    # the file's pixels, read around the output's area: whole blocks as a whole-raster pass reads them
    whole = info.file_grid or info.grid
    area = info.window or Window(0, 0, whole.width, whole.height)
    file_info = replace(info, grid=whole, window=None, file_grid=None)
    right, lowest = whole.width // scale * scale, whole.height // scale * scale
    reach = -(-k.size // scale) * scale  # context on each side of a strip, in whole blocks
    height, width = grid.height * scale, grid.width * scale
    left, end = max(0, area.col_off - reach), min(right, area.col_off + width + reach)
    values = exact_float(info.dtype)
    strip_values = DEGRADE_STRIP_VALUES * 4 // values.itemsize
    rows = max(scale, strip_values // ((end - left) * len(info.bands)) // scale * scale)
    # float64 values: normalised in float64 by one scaling of the file before the float32 blur
    scaling = BandScaling.fit(*scaling_sample(file_info)) if values != np.float32 else None
    any_valid = False
    with claimed(output_files(output_path)), AtomicGeoTIFF(output_path, info, grid, output_dtype(info, io.float32), io.cog) as out:
        for top in range(0, height, rows):
            check_cancelled(recorder)
            bottom = min(top + rows, height)
            first, last = max(0, area.row_off + top - reach), min(lowest, area.row_off + bottom + reach)
            data, valid = read_window(file_info, Window(left, first, end - left, last - first))
            # the strip's output area in what was read, in input pixels (whole blocks)
            inside = Window(area.col_off - left, area.row_off + top - first, width, bottom - top)
            any_valid |= bool(valid[(slice(None), *inside.slices)].any())
            low, low_valid = degrade_valid(data, valid, k, scaling)  # every low-resolution pixel nodata reaches is nodata
            keep = (slice(None), *Window(inside.col_off // scale, inside.row_off // scale, grid.width, inside.height // scale).slices)
            out.write(Window(0, top // scale, grid.width, (bottom - top) // scale), low[keep], low_valid[keep])
            recorder.report(bottom / height, "degrading")
        if not any_valid:
            raise no_valid_pixels(info)
        remove_earlier_side_files(out.files, output_path, [input_path], [kernel])
    for warning in out.clipping_warnings():
        recorder.info(warning)
    recorder.report(1.0, DONE)
    return recorder.result(output_path, "cpu")
