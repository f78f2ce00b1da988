"""File-level guided super-resolution: sharpen a target raster with a finer guide raster.

The scale is the integer ratio of the two grids and the output covers their overlap on the guide's
grid (``core.grid.nest``); nothing is reprojected or resampled. Grids whose pixel edges sit half a
guide pixel apart (Landsat pan and multispectral bands) are used as they are: the kernels carry the
half-pixel phase (``core.kernels``). The output keeps the target's bands,
descriptions, dtype and nodata; a band whose valid target values are all at least 0 gets no negative value
(``GuidedDIPConfig.non_negative``, ``core.normalise.ZeroFloor``). A pixel is nodata in the output when its
target pixel or any guide band at it is nodata or masked (under an internal mask when the output has no nodata value: an integer
target without one); a pair with no output pixel valid is refused and nothing is written. Writes are
atomic (``core.raster.AtomicGeoTIFF``). Before the run, a guide whose pixels look shifted against the
target's by a fraction of a pixel is named in a warning (``core.registration``).

An extent (``target_io.extent``, in the shared CRS) selects the area of the output: it is snapped
outward to whole *target* pixels, i.e. to whole blocks of ``s × s`` guide pixels, so the output grid
still nests in the target's as the whole guide does; the guide is read over the same area (``guide_io.extent`` is not used).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import Callable, Sequence

import numpy as np
import torch

from .config import (
    GAUSSIAN_TERM,
    GUIDE_KERNEL_TERM,
    KERNEL_TERM,
    MAX_SCALE,
    SENTINEL2_KERNEL,
    GuidedDIPConfig,
    IOOptions,
    TileOptions,
    as_paths,
    check_scale,
    extent_words,
    refuse_smaller,
)
from .device import busy_cpus_line, describe, resolve_device, seeded
from .errors import InputError
from .grid import Nesting, NoOverlap, Window, log_alignment, nest
from .guided import MIN_TARGET_SIZE
from .kernels import Kernel, band_note, check_kernel_fits, loading_notes, make_kernel
from .normalise import BandScaling, ZeroFloor, band_extremes, constant_values, real_image
from .pipeline import (
    RunResult, _Recorder, back_projection_keep, collect_tiled, decimated_sample, extent_message, fit_scaling,
    log_nodata_warnings, output_files, write_tiled,
)
from .progress import NullProgress, Progress
from .raster import (
    RasterInfo, StagedFiles, band_labels, band_ranges, check_geotransform, check_raster_output, claimed, file_window,
    georeferencing_note, may_be_invalid, open_info, read_window, same_file, valid_mask,
)
from .registration import central_window, guide_misregistration, registration_warning, skipped_note
from .sentinel2 import band_name, band_names, kernel_spec
from .tiling import ShrinkOnOutOfMemory, WarmStart, kernel_tiles, retry_minimum, tiles_note, tiles_words

#: The method's name in logs and figures.
GUIDED_METHOD = "guided DIP"
#: read(window on the target grid) -> (target values, target valid, guide values, guide valid)
Reader = Callable[[Window], tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]


def band_kernels(
    spec: str, names: Sequence[str | None], scale: int, role: str, shift: tuple[float, float] = (0.0, 0.0)
) -> list[Kernel]:
    """One kernel per band: ``sentinel2`` picks each band's MTF Gaussian from its name, else ``spec`` for all.

    ``shift``: the grids' half-pixel phase (``core.grid.Nesting``); ``role``: "target" or "guide", which the
    refusal of unnamed bands names, with the setting to change (``KERNEL_TERM``, ``GUIDE_KERNEL_TERM``).
    """
    if spec != SENTINEL2_KERNEL:
        return [make_kernel(spec, scale, shift, GuidedDIPConfig.KERNEL_NAMES)] * len(names)
    kernels = []
    for index, name in enumerate(names, start=1):
        band = band_name(name)
        if band is None:
            option = GUIDE_KERNEL_TERM if role == "guide" else KERNEL_TERM
            raise InputError(
                f"kernel sentinel2 needs Sentinel-2 band names (B2, B8A, …) in the {role}'s band descriptions or file name, "
                f"but band {index} is {name or 'unnamed'}: set {option} to another kernel, such as bicubic or {GAUSSIAN_TERM}"
            )
        kernels.append(make_kernel(kernel_spec(band), scale, shift))
    return kernels


def kernel_names(info: RasterInfo, spec: str, role: str, progress: Progress | None) -> list[str | None]:
    """The names ``band_kernels`` reads for ``info``'s selected bands: their descriptions, or, for the ``sentinel2``
    kernel where those do not all name a Sentinel-2 band, the names in the file name by the ``sentinel2``
    command's rule (``core.sentinel2.band_names``; ESA's JPEG 2000 band files carry no descriptions), said in the
    log through ``progress`` (the ``role``, e.g. "target", names the raster)."""
    if spec != SENTINEL2_KERNEL or all(map(band_name, info.descriptions)):
        return list(info.descriptions)
    whole = band_names(info.path, open_info(info.path).descriptions)
    taken = [whole[band - 1] for band in info.bands]
    if not all(taken):
        return list(info.descriptions)
    if progress is not None:
        progress.info(f"the {role}'s band{'s are' if len(taken) > 1 else ' is'} taken as {', '.join(map(str, taken))} from its "
                      f"file name {os.path.basename(info.path)}: its band descriptions name no Sentinel-2 band")
    return taken


@dataclass(frozen=True)
class GuidedInputs:
    """Target and guide checked against each other: their metadata, how they nest, each band's kernel, and the tiles
    the run is solved in (``config.tiles``, grown where the kernels need: ``tiling.kernel_tiles``)."""

    target: RasterInfo
    guide: RasterInfo
    nesting: Nesting
    target_kernels: list[Kernel]
    guide_kernels: list[Kernel]
    tiles: TileOptions


def check_kernels_fit_grids(config: GuidedDIPConfig, nesting: Nesting) -> None:
    """Refuse the sentinel2 kernels on grids half a guide pixel apart: that is Landsat's multispectral/pan
    geometry, never Sentinel-2's, and Landsat band names (B1–B9) would pick Sentinel-2 MTFs without a word. On
    Sentinel-2 bands it means a georeferencing half a pixel off, which the message names first."""
    if any(nesting.shift) and SENTINEL2_KERNEL in (config.kernel, config.guide_kernel):
        raise InputError(
            "target and guide pixels sit half a guide pixel apart, which Sentinel-2's bands never do: for Sentinel-2 data "
            "one raster's georeferencing is most likely half a pixel off (e.g. a PixelIsPoint GeoTIFF whose pixel centres "
            "another tool took for corners): correct it (gdal_edit -a_ullr) and run again; for Landsat's multispectral "
            "and pan bands, which do sit so, the sentinel2 kernels (Sentinel-2 MTFs picked by band name) do not apply: "
            "choose the landsat kernels for target and guide (or a gaussian)"
        )


def target_tiles(
    tiles: TileOptions, kernels: Sequence[Kernel], width: int, height: int, on_extent: bool, partly: bool
) -> TileOptions:
    """The tiles guided DIP solves a target of ``width × height`` pixels in (``tiling.kernel_tiles`` of ``tiles``),
    after ``check_kernel_fits`` of each of the target's and the guide's band ``kernels`` (one scale) on it, as plain
    DIP's kernel on its image: both blur the fine grid over the target, which guided DIP estimates. ``on_extent``: the
    target is the window an extent chose; ``partly``: it is the part the guide covers (the message names either and
    asks for more of it). Raises a one-line ``InputError``."""
    for kernel in kernels:
        check_kernel_fits(kernel, width, height, on_extent, "guide" if partly else None)
    return kernel_tiles(tiles, kernels, width, height, "target")


def nest_rasters(
    target: RasterInfo, guide: RasterInfo, progress: Progress | None = None, roles: tuple[str, str] | None = None
) -> Nesting:
    """``core.grid.nest`` of the target's and the guide's grids, each refused first when it has no geotransform
    (``core.raster.check_geotransform``: ground control points or an RPC model only, or no georeferencing at all),
    naming which of the two, then the two refused when they are one file. A target
    extent that misses the guide while the whole target does not is refused naming the part the guide covers, and a
    guide more than ``MAX_SCALE`` times finer than the target (``check_scale``). Grids accepted although not exactly
    aligned are said so through ``progress`` (``core.grid.alignment_note``, ``roles`` as there)."""
    for info, role, other in ((target, "target", "guide"), (guide, "guide", "target")):
        check_geotransform(info, f"the {role} {info.path}", f"its pixels cannot be matched with the {other}'s")
    if same_file(target.path, guide.path):  # one grid: no band of it can be finer than another
        raise InputError(f"the guide is the target itself ({guide.path}): give a raster of finer bands of the same scene as the guide")
    try:
        nesting = nest(target.grid, guide.grid)
    except NoOverlap:
        if target.file_grid is None:
            raise
        cover = nest(target.file_grid, guide.grid).target  # NoOverlap too when the guide misses the whole target
        raise InputError(
            f"the extent ({extent_words(target.grid.bounds)} in whole target pixels) lies outside the part of the target "
            f"that the guide covers: {extent_words(target.file_grid.window_grid(cover).bounds)}, target {cover.describe()}; "
            "choose an extent inside it"
        ) from None
    check_scale(nesting.scale, subject="the scale (how many times finer the guide's pixels are than the target's)",
                remedy=f"resample the guide to at most {MAX_SCALE} times finer than the target")
    log_alignment(progress, nesting, roles)
    return nesting


def check_inputs(
    target_path: str,
    guide_path: str,
    output_path: str | None,
    config: GuidedDIPConfig,
    target_io: IOOptions = IOOptions(),
    guide_io: IOOptions = IOOptions(),
    progress: Progress | None = None,
    roles: tuple[str, str] | None = None,
) -> GuidedInputs:
    """Open and check both rasters, the output path (unless ``None``), the grids, the kernels and the tiles for them
    (``tiling.kernel_tiles``).

    Raises a one-line ``InputError``. Reads metadata only, so front ends call it to report bad input
    before a run starts. ``progress`` is told what the checks note (``roles``: as ``nest_rasters``).
    """
    target = open_info(target_path, target_io.bands, target_io.extent, crs=target_io.crs)
    guide = open_info(guide_path, guide_io.bands, crs=guide_io.crs)
    if output_path is not None:
        check_raster_output(output_path, [target_path, guide_path])
    nesting = nest_rasters(target, guide, progress, roles)  # first: a raster refused for its georeferencing gets no note on it
    notes = [georeferencing_note(target), georeferencing_note(guide) if guide.assigned_crs else None]
    for note in filter(None, notes if progress is not None else []):
        progress.info(note)
    if target.window is not None and progress is not None:
        progress.info(extent_message(target))
    check_kernels_fit_grids(config, nesting)
    s = nesting.scale
    width, height = nesting.target.width, nesting.target.height
    partly = (width, height) != (target.grid.width, target.grid.height)  # the guide covers part of the target
    refuse_smaller(width, height, target.window is not None, MIN_TARGET_SIZE, "too small for guided DIP", "target pixels",
                   "guide" if partly else None)
    target_kernels = band_kernels(config.kernel, kernel_names(target, config.kernel, "target", progress), s, "target", nesting.shift)
    guide_kernels = band_kernels(config.guide_kernel, kernel_names(guide, config.guide_kernel, "guide", progress), s, "guide",
                                 nesting.shift)
    tiles = target_tiles(config.tiles, [*target_kernels, *guide_kernels], width, height, target.window is not None, partly)
    return GuidedInputs(target, guide, nesting, target_kernels, guide_kernels, tiles)


def check_registration(
    read: Reader, width: int, height: int, guide_kernels: list[Kernel], progress: Progress, roles: tuple[str, str] | None = None
) -> None:
    """Warn (one line through ``progress.info``) when the guide looks shifted against the target by a fraction of a
    pixel or more (``core.registration``), judged on the central area of the ``width × height`` target pixels
    that ``read`` reads; a note instead when that area has too few pixels to tell. A warning only: the run goes
    on, on the grids as georeferenced. ``roles``: as ``core.registration.registration_warning``."""
    target, target_valid, guide, guide_valid = read(central_window(width, height, guide_kernels[0].scale))
    misregistration = guide_misregistration(target, target_valid, guide, guide_valid, guide_kernels)
    line = skipped_note(roles) if misregistration is None else registration_warning(misregistration, roles)
    if line is not None:
        progress.info(line)


def _solver(
    config: GuidedDIPConfig,
    tiles: TileOptions,
    width: int,
    height: int,
    target_kernels: list[Kernel],
    guide_kernels: list[Kernel],
    target_scaling: BandScaling,
    guide_scaling: BandScaling,
    read: Reader,
    progress: _Recorder,
    keep: np.ndarray | None = None,
) -> tuple[ShrinkOnOutOfMemory, str]:
    """The tile solver of a target of ``width × height`` pixels shared by file and array runs; returns it and the
    device name. ``tiles``: those the run's check chose (``target_tiles``: the configuration's, grown where the
    target's and the guide's kernels need, ``tiling.kernel_tiles``), said in the log where they differ from the
    configuration's (``tiling.tiles_note``) and kept as ``progress.tiles``. ``keep``: every tile's
    back-projection width test, decided once for the run's target (``pipeline.back_projection_keep``).

    Running out of GPU memory shrinks the tiles, then moves to the CPU (``tiling.ShrinkOnOutOfMemory``).
    """
    from .guided import sharpen_tile

    scale = target_kernels[0].scale
    device = resolve_device(config.device)
    kernels = [*target_kernels, *guide_kernels]
    progress.tiles = tiles
    if note := tiles_note(config.tiles, tiles, kernels, "target"):
        progress.info(note)
    progress.info(
        f"device {describe(device)}; guided ×{scale}, {len(target_kernels)} target and {len(guide_kernels)} guide band(s), "
        f"kernels {config.kernel}/{config.guide_kernel}, {config.steps_text()}, "
        f"{tiles_words(width, height, tiles)}, seed {config.seed}"
    )
    if note := busy_cpus_line(device):
        progress.info(note)
    for note in dict.fromkeys(note for kernel in kernels for note in loading_notes(kernel)):
        progress.info(note)
    warm = WarmStart(config.warm_start)

    def solve(window: Window, tile_progress: Progress, device: torch.device) -> tuple[np.ndarray, np.ndarray]:
        target, target_valid, guide, guide_valid = read(window)
        out_valid = target_valid.repeat(scale, axis=1).repeat(scale, axis=2) & guide_valid.all(axis=0)
        if not out_valid.any():
            return np.zeros(out_valid.shape), out_valid
        with seeded(config.seed, device, tile_progress) as generator:
            tile = sharpen_tile(
                target_scaling.normalise(target), target_valid, guide_scaling.normalise(guide), guide_valid,
                target_kernels, guide_kernels, config, device, tile_progress, generator, start=warm.state, keep=keep,
            )
        warm.keep(tile.state)
        progress.add_curve(tile.losses)
        return target_scaling.denormalise(tile.image), out_valid

    minimum = retry_minimum(kernels, MIN_TARGET_SIZE)
    return ShrinkOnOutOfMemory(solve, device, progress.tiles, len(target_kernels), scale, progress, minimum, records=(progress.curves,)), describe(device)


def zero_floor(config: GuidedDIPConfig, low: np.ndarray, names: list[str]) -> ZeroFloor | None:
    """The run's ``normalise.ZeroFloor`` (``config.non_negative``; ``None``: off) for a target whose bands, named
    ``names`` in the log, have the least valid values ``low`` over the whole input."""
    return ZeroFloor.of_input(low, names) if config.non_negative else None


def sharpen(
    target_path: str,
    guide_path: str,
    output_path: str,
    config: GuidedDIPConfig,
    target_io: IOOptions = IOOptions(),
    guide_io: IOOptions = IOOptions(),
    progress: Progress | None = None,
    loss_curve: bool = True,
    roles: tuple[str, str] | None = None,
) -> RunResult:
    """Sharpen ``target_path`` with ``guide_path`` into a GeoTIFF on the guide's grid (module docstring).

    With ``loss_curve`` the tiles' training-loss curves are drawn beside the output (``OUTPUT.tif.loss.png``).
    ``roles``: what target and guide are in the caller's words, for the log lines on their alignment
    (``core.grid.alignment_note``) and registration (``core.registration.registration_warning``).
    """
    target_path, guide_path, output_path = as_paths(target_path, guide_path, output_path)
    recorder = _Recorder(progress or NullProgress())
    inputs = check_inputs(target_path, guide_path, output_path, config, target_io, guide_io, recorder, roles)
    with claimed(output_files(output_path)):
        target, guide, nesting = inputs.target, inputs.guide, inputs.nesting
        for info, kernels in ((target, inputs.target_kernels), (guide, inputs.guide_kernels)):
            log_nodata_warnings(info, recorder)
            if note := band_note(kernels[0], info.bands, info.path):  # a kernel file (one for all bands) made on others
                recorder.info(note)
        s = nesting.scale
        if nesting.target.width < target.grid.width or nesting.target.height < target.grid.height:
            recorder.info(f"the guide covers {nesting.target.width}×{nesting.target.height} of the target's "
                          f"{target.grid.width}×{target.grid.height} pixels: the output covers that overlap")

        def read(window: Window):
            fine = window.scaled(s).translated(nesting.guide.col_off, nesting.guide.row_off)
            return (*read_window(target, window.translated(nesting.target.col_off, nesting.target.row_off)), *read_window(guide, fine))

        check_registration(read, nesting.target.width, nesting.target.height, inputs.guide_kernels, recorder, roles)
        target_scaling = fit_scaling(target)
        keep = back_projection_keep(
            inputs.target_kernels, nesting.target.width, nesting.target.height,
            lambda rows, cols: read_window(target, nesting.target, out_shape=(len(target.bands), rows, cols)),
            lambda window: read_window(target, window.translated(nesting.target.col_off, nesting.target.row_off)),
            target_scaling, recorder, band_labels(target.bands, target.descriptions),
        )
        solve, device = _solver(
            config, inputs.tiles, nesting.target.width, nesting.target.height, inputs.target_kernels, inputs.guide_kernels,
            target_scaling, fit_scaling(guide), read, recorder, keep,
        )
        grid = guide.grid.window_grid(nesting.guide)
        # the guide's invalid pixels are invalid in the output too: under a mask where the output has no nodata value
        written = replace(target, masked=target.masked or may_be_invalid(guide))
        low, high = band_ranges(target, nesting.target)
        constants = constant_values(low, high)
        floor = zero_floor(config, low, band_labels(target.bands, target.descriptions))

        def write(group: StagedFiles) -> None:
            """The output into ``group``, refused when every pixel of it is nodata (a tile with no pixel valid in both
            rasters is not trained, so that costs no more than reading them): each raster may hold valid pixels, but
            not where the other does over their overlap (``fit_scaling`` only refuses a raster with none at all)."""
            if not write_tiled(output_path, written, grid, target_io, nesting.target.width, nesting.target.height, s,
                               solve.tiles, solve, recorder, constants, config.later_steps, files=group, floor=floor):
                raise InputError(
                    f"{target_path} and {guide_path} have no valid pixel in common where they overlap, the target's "
                    f"{file_window(target, nesting.target).describe()}: every output pixel would be nodata; nothing written"
                )

        return recorder.write_output(output_path, device, GUIDED_METHOD if loss_curve else None, write, [target_path, guide_path],
                                     [config.kernel, config.guide_kernel])


def sharpen_array(
    target: np.ndarray,
    guide: np.ndarray,
    config: GuidedDIPConfig,
    target_names: Sequence[str | None],
    guide_names: Sequence[str | None],
    progress: Progress | None = None,
    tiles: TileOptions | None = None,
) -> tuple[np.ndarray, RunResult]:
    """In-memory ``sharpen``: target ``(T, h, w)`` and guide ``(G, s·h, s·w)`` → ``(T, s·h, s·w)`` float64.

    Values that are not finite or are fill values (``raster.valid_mask``) are invalid. Used by evaluation and
    benchmarks (same solver as file runs). ``tiles``: those a caller's check chose for this target and ``config``
    (``target_tiles``, as ``evaluation.plan_evaluation`` does); ``None``: chosen here (``tiling.kernel_tiles``).
    """
    recorder = _Recorder(progress or NullProgress())
    # int32 / uint32 / float64 values stay exact (normalised in float64 per tile)
    target, guide = real_image(target, "target"), real_image(guide, "guide")
    (_, h, w), (gh, gw) = target.shape, guide.shape[-2:]
    if gh % h or gw % w or gh // h != gw // w or gh // h < 2:
        raise InputError(f"guide {gw}×{gh} is not an integer multiple ≥ 2 of the target {w}×{h}")
    s = gh // h
    t_valid, g_valid = valid_mask(target, None), valid_mask(guide, None)
    if not t_valid.any() or not g_valid.any():
        raise InputError("the target or the guide has no valid pixels")

    def read(window: Window):
        g = (slice(None), *window.scaled(s).slices)
        t = (slice(None), *window.slices)
        return target[t], t_valid[t], guide[g], g_valid[g]

    kernels = band_kernels(config.kernel, target_names, s, "target"), band_kernels(config.guide_kernel, guide_names, s, "guide")
    if tiles is None:
        tiles = kernel_tiles(config.tiles, [*kernels[0], *kernels[1]], w, h, "target")
    check_registration(read, w, h, kernels[1], recorder)
    target_scaling = BandScaling.fit(target, t_valid)
    labels = band_labels(range(1, len(target_names) + 1), target_names)
    keep = back_projection_keep(kernels[0], w, h, decimated_sample(target, t_valid), read, target_scaling, recorder, labels)
    solve, device = _solver(config, tiles, w, h, *kernels, target_scaling, BandScaling.fit(guide, g_valid), read, recorder, keep)
    low, high = band_extremes(target, t_valid)
    out = collect_tiled(w, h, target.shape[0], s, solve.tiles, solve, recorder, constant_values(low, high), config.later_steps,
                        floor=zero_floor(config, low, labels))
    return out, recorder.result("", device)
