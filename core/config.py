"""Configuration value types. Processing parameters, CLI flags and tests all map onto these.

Units: ``scale`` is the integer refinement factor between the input grid and the output grid;
tile sizes and overlaps are in *input* pixels; learning rates are Adam step sizes on images
normalised per band (see ``core.normalise``).
"""

from __future__ import annotations

import math
import numbers
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

from .errors import InputError

#: The guided kernel that picks each Sentinel-2 band's MTF Gaussian from its name (``core.sentinel2``).
SENTINEL2_KERNEL = "sentinel2"
#: How messages name a Gaussian kernel and a kernel file: as the command line's ``--kernel`` takes them. A front
#: end whose settings name them otherwise rewords these phrases (``core.errors.error_line``'s ``terms``:
#: ``algorithms.base.PROCESSING_TERMS``, ``ui.task.DIALOG_TERMS``), so every message naming them uses these.
GAUSSIAN_TERM, KERNEL_FILE_TERM = "gaussian:SIGMA", "a .npy file"
#: How messages name the tile size and tile overlap settings: as the command line's options (reworded alike).
TILE_TERM, OVERLAP_TERM = "--tile", "--overlap"
#: How messages name the target's and the guide's kernel settings of guided DIP: as the command line's options
#: (reworded alike).
KERNEL_TERM, GUIDE_KERNEL_TERM = "--kernel", "--guide-kernel"
#: The fixed kernels every super-resolution and a degradation may name (``core.kernels.make_kernel``), as messages
#: name them; a method may take others too (its configuration's ``KERNEL_NAMES``).
FIXED_KERNELS = ("bicubic", "lanczos2", "lanczos3", GAUSSIAN_TERM, "landsat", KERNEL_FILE_TERM)


def either(names: Sequence[str]) -> str:
    """``names`` as a message offers them: ``a, b or c``."""
    return " or ".join(filter(None, (", ".join(names[:-1]), names[-1])))


#: The fixed kernels as messages list them.
KERNEL_CHOICES = either(FIXED_KERNELS)
#: Names a raster output may end in: outputs are always written as GeoTIFF.
GEOTIFF_EXTENSIONS = (".tif", ".tiff")
#: Default optimisation steps per scale, chosen on development crops (never the benchmark crops).
DEFAULT_ITERATIONS = {2: 600, 3: 600, 4: 600}


def check_device(device: str) -> None:
    """Raise a one-line ``InputError`` unless ``device`` is auto, cpu, cuda or mps."""
    if device not in ("auto", "cpu", "cuda", "mps"):
        raise InputError(f"device must be auto, cpu, cuda or mps, got {device!r}")


#: The largest refinement factor of every super-resolution method (DIP, Knitworks, guided DIP, whose scale is the
#: grids' ratio) and of every method ``evaluate`` scores, bicubic included (as the dialog and Processing offer):
#: beyond it an output tile outgrows memory long before the result means anything. ``check_scale`` applies it.
MAX_SCALE = 16


def check_scale(scale: int, maximum: int | None = MAX_SCALE, subject: str = "scale", remedy: str | None = None) -> None:
    """Raise a one-line ``InputError`` unless ``scale`` is an integer factor from 2 to ``maximum`` (``None``: no
    bound; ``degrade`` takes any whole number of pixels per block), worded ``{subject} must be an integer from 2 to
    16, got 17`` and ``; {remedy}`` when given (where the scale is not a setting, e.g. guided DIP's grids' ratio)."""
    if not is_integer(scale) or scale < 2 or (maximum is not None and scale > maximum):
        bounds = "≥ 2" if maximum is None else f"from 2 to {maximum}"
        raise InputError(f"{subject} must be an integer {bounds}, got {scale!r}{f'; {remedy}' if remedy else ''}")


def is_integer(value: object) -> bool:
    """Whether ``value`` is a whole number of an integer type (Python's or NumPy's; not ``bool``)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def as_paths(*paths: str | os.PathLike[str] | None) -> tuple[Any, ...]:
    """The paths given to a public entry point as ``str``: ``pathlib.Path`` and any other ``os.PathLike`` are accepted
    where a path is taken; ``None`` (an optional path not given) stays ``None``. Anything else is a ``TypeError``
    naming its type."""
    return tuple(None if path is None else os.fsdecode(path) for path in paths)


def recorded_path(path: str) -> str:
    """``path`` as a record names a dataset read (a kernel file's record, the evaluation's JSON and report): a file's
    absolute path, so that the record still names it read from elsewhere; any other GDAL dataset name (``/vsizip/…``,
    ``NETCDF:a.nc:var``) as given."""
    return os.path.abspath(path) if os.path.isfile(path) else path


#: The largest integer QGIS's integer parameters (read as a C ``int``) and Qt's spin boxes hold: the front ends'
#: integer settings stay within it, and a seed, which every front end takes, is refused beyond it.
INT32_MAX = 2**31 - 1


def check_seed(seed: int) -> None:
    """Raise a one-line ``InputError`` unless ``seed`` is an integer from 0 to ``INT32_MAX``, the seeds every front
    end takes (the command line, Processing and the dialog)."""
    if not isinstance(seed, numbers.Integral) or isinstance(seed, bool) or not 0 <= seed <= INT32_MAX:
        raise InputError(f"seed must be an integer from 0 to {INT32_MAX}, got {seed}")


def is_named_pipe(path: str) -> bool:
    """Whether ``path`` is a named pipe (FIFO): GDAL opening it, or QGIS loading it as a layer, would wait
    for a writer for ever. Only ``os`` is asked, so the Processing algorithms call it before QGIS opens
    their input, with or without the engine's dependencies; ``core.raster.open_info`` refuses it."""
    return os.path.exists(path) and stat.S_ISFIFO(os.stat(path).st_mode)


def area_name(on_extent: bool, overlap: str | None = None) -> str:
    """How messages name the area a run is on: ``the image``, ``the chosen extent`` with ``on_extent`` (the window of
    whole pixels an extent chose), and with ``overlap`` (another raster, e.g. "guide", covering only part of the image
    or extent) ``the image's overlap with the guide`` (or ``the chosen extent's``)."""
    area = "the chosen extent" if on_extent else "the image"
    return area if overlap is None else f"{area}'s overlap with the {overlap}"


def size_subject(width: int, height: int, on_extent: bool, overlap: str | None = None) -> str:
    """How a refusal of a ``width × height`` input names it, up to the verb's complement: ``image W×H is``,
    or with ``on_extent`` (the run is on the window of whole pixels an extent chose)
    ``the chosen extent is W×H pixels,``, so that the user knows the extent is what to enlarge. With ``overlap``
    (another raster, e.g. "guide", covering only part of the image or extent) the size is of the overlap with it:
    ``the image's overlap with the guide is W×H pixels,`` (or ``the chosen extent's``): ``area_name``."""
    if overlap is not None or on_extent:
        return f"{area_name(on_extent, overlap)} is {width}×{height} pixels,"
    return f"image {width}×{height} is"


def size_remedy(on_extent: bool, overlap: str | None = None, fits: int | None = None) -> str:
    """What to do about an input ``size_subject`` (same arguments) names as too small: ``use a larger raster``,
    ``choose a larger extent``, or with ``overlap`` ``give a guide that covers more of the image`` (or ``extent``);
    with ``fits``, the largest smaller scale at which the input is large enough, `` or a smaller scale (×N fits)``."""
    if overlap is not None:
        remedy = f"give a {overlap} that covers more of the {'extent' if on_extent else 'image'}"
    else:
        remedy = "choose a larger extent" if on_extent else "use a larger raster"
    return remedy if fits is None else f"{remedy} or a smaller scale (×{fits} fits)"


def refuse_smaller(
    width: int, height: int, on_extent: bool, minimum: int, shortfall: str, pixels: str, overlap: str | None = None,
    fits: int | None = None,
) -> None:
    """Raise a one-line ``InputError`` when a ``width × height`` input is under ``minimum × minimum``, worded
    ``{size_subject} {shortfall}: at least {minimum}×{minimum} {pixels}; {size_remedy}`` (``on_extent``: it is the
    window an extent chose; ``overlap``: it is the part another raster covers; the message says so; ``fits``: a smaller
    scale that the input is large enough for, which the remedy offers), e.g.
    ``image 20×20 is too small for KernelGAN: at least 64×64 pixels; use a larger raster``."""
    if min(width, height) < minimum:
        raise InputError(
            f"{size_subject(width, height, on_extent, overlap)} {shortfall}: at least {minimum}×{minimum} {pixels}; "
            f"{size_remedy(on_extent, overlap, fits)}"
        )


def collapsed_size(layers: tuple[int, ...]) -> int:
    """Edge of the one kernel that a chain of bias-free convolutions of sizes ``layers`` collapses to
    (``core.kernelgan.LinearGenerator``): 13 for KernelGAN's 7, 5, 3, 1, 1, 1."""
    return sum(layers) - len(layers) + 1


def check_at_least(name: str, value: int, minimum: int, default: int | str | None = None) -> None:
    """Raise a one-line ``InputError`` unless the setting ``name`` is at least ``minimum``, worded ``{name} must be ≥
    {minimum}, got {value}`` and, for a setting that may be left out, ``: give {minimum} or more, or leave it out for
    {default}`` (an integer: ``the default, N``)."""
    if value < minimum:
        remedy = "" if default is None else f": give {minimum} or more, or leave it out for " + (
            f"the default, {default}" if is_integer(default) else str(default))
        raise InputError(f"{name} must be ≥ {minimum}, got {value}{remedy}")


def count_words(count: int, noun: str) -> str:
    """``count`` ``noun``s as a log line says them: ``1 step``, ``600 steps``."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def extent_words(extent: tuple[float, float, float, float]) -> str:
    """An extent ``(xmin, ymin, xmax, ymax)`` as messages show it, in a form no order of the four numbers can
    confuse (the command line takes xmin,ymin,xmax,ymax, QGIS xmin,xmax,ymin,ymax): ``x 0–10, y 0–20``."""
    xmin, ymin, xmax, ymax = extent
    return f"x {xmin:.10g}–{xmax:.10g}, y {ymin:.10g}–{ymax:.10g}"


@dataclass(frozen=True)
class IOOptions:
    """How a raster is read and written.

    bands: 1-based band indices to process (``None``: all bands).
    float32: write Float32 instead of keeping the input dtype.
    cog: write a Cloud Optimized GeoTIFF layout (tiled, overviews) instead of a plain tiled GeoTIFF.
    extent: the area to process, ``(xmin, ymin, xmax, ymax)`` in the raster's CRS units (``None``: the
    whole raster). It is snapped outward to whole input pixels (``core.grid.Grid.extent_window``) and
    the output grid is that window's grid refined by the scale.
    crs: a CRS to assign instead of the file's (``core.raster.open_info``), e.g. the CRS a QGIS layer was
    given in QGIS (``None``: the file's own).
    """

    bands: tuple[int, ...] | None = None
    float32: bool = False
    cog: bool = False
    extent: tuple[float, float, float, float] | None = None
    crs: str | None = None

    def __post_init__(self) -> None:
        if self.bands is not None:
            if not isinstance(self.bands, (tuple, list)) or not all(is_integer(b) for b in self.bands):
                raise InputError(f"bands must be a tuple or list of 1-based band numbers (integers), got {self.bands!r}")
            object.__setattr__(self, "bands", tuple(self.bands))
        if self.extent is None:
            return
        if (not isinstance(self.extent, (tuple, list)) or len(self.extent) != 4
                or not all(isinstance(v, numbers.Real) and math.isfinite(v) for v in self.extent)):
            raise InputError(f"extent must be four finite numbers XMIN,YMIN,XMAX,YMAX, got {self.extent}")
        xmin, ymin, xmax, ymax = self.extent
        if xmin >= xmax or ymin >= ymax:
            raise InputError(f"extent must be XMIN,YMIN,XMAX,YMAX with XMIN < XMAX and YMIN < YMAX, got {xmin:.12g},{ymin:.12g},{xmax:.12g},{ymax:.12g}")


#: The least tile edge of every method (input pixels); a method whose network needs more says so
#: (``InternalLearningConfig.min_input_size``).
MIN_TILE = 16

#: Most tiles optimised together on CUDA when ``TileOptions.batch`` is 0 (automatic); within it the number is sized
#: from the GPU memory the leading tile took (``core.tiling.ShrinkOnOutOfMemory``) and from ``BATCH_HOST_BYTES``.
CUDA_BATCH = 32

#: Host memory the outputs of tiles solved together may take while they wait for the blend (float64 values and
#: bool validity, ``bands × (s·size)²`` each): an automatic batch is no larger.
BATCH_HOST_BYTES = 512 * 2**20


@dataclass(frozen=True)
class TileOptions:
    """Tiling of large rasters, in input pixels.

    size: tile edge (the optimisation runs on ``size × size`` input pixels at a time); the default grows, and any other
    size is refused, where a wide kernel needs more (``automatic``, ``core.tiling.kernel_tiles``). It must be more than
    twice the overlap and at least the method's least tile: the method's configuration checks both in one rule
    (``check_size``, called by ``InternalLearningConfig``), so that a refusal names a tile that works for that method.
    overlap: pixels shared by neighbouring tiles, blended with a smooth ramp; grown where a wide kernel needs more,
    unless ``overlap_given`` (then refused).
    batch: DIP only: most tiles optimised together (vectorised networks, each tile its own; the next tiles in row
    order, across rows of tiles); 0 (automatic) picks 1 on the CPU and MPS (no gain there) and on CUDA up to
    ``CUDA_BATCH`` tiles whose outputs fit in ``BATCH_HOST_BYTES``, as many as half the GPU memory free after
    the first tile holds at that tile's peak; on CUDA a batch that runs out of memory is halved, down to 1. The
    other methods solve one tile at a time whatever it says (the command line offers ``--batch`` for DIP only).
    size_given, overlap_given: the user typed the size, the overlap (the command line's ``--tile``, ``--overlap``), so
    it is their own even at the default value: used as it is, or refused where a wide kernel needs more. Processing and
    the dialog always pass both and cannot tell a typed default from an untouched one: they leave these ``False``.
    """

    size: int = 128
    overlap: int = 16
    batch: int = 0
    size_given: bool = False
    overlap_given: bool = False

    def __post_init__(self) -> None:
        if self.batch < 0:
            raise InputError(f"tile batch must be ≥ 0 (0: automatic), got {self.batch}")
        if self.overlap < 0:
            raise InputError(f"tile overlap must be ≥ 0 ({OVERLAP_TERM}), got {self.overlap}")

    def check_size(self, minimum: int, shortfall: str, pixels: str) -> None:
        """Raise a one-line ``InputError`` unless the tile is at least ``smallest_tile`` (``minimum``: the method's least
        tile edge, which ``shortfall`` and ``pixels`` word as ``refuse_smaller`` does), naming the smallest tile that
        works, so that every remedy offered works when followed: lowering the overlap is offered only where the tile
        is large enough for the method. The method's configuration calls it (``InternalLearningConfig``): a tile is
        checked against the method it is for, not on its own."""
        smallest = self.smallest_tile(minimum)
        if self.size >= smallest:
            return
        default = ", the default" if self.overlap == TileOptions.overlap and not self.overlap_given else ""
        overlap_rule = f"the tile overlap of {self.overlap} pixels{default}, which must be less than half the tile"
        if self.size >= minimum:
            raise InputError(
                f"tile size {self.size} is too small for {overlap_rule}: lower it with {OVERLAP_TERM} to "
                f"{(self.size - 1) // 2} or less, or use {TILE_TERM} {smallest} or more"
            )
        if smallest == minimum:
            raise InputError(f"tile size {self.size} is {shortfall}: use at least {minimum} {pixels}")
        raise InputError(
            f"tile size {self.size} is {shortfall} (at least {minimum} {pixels}) and for {overlap_rule}: use "
            f"{TILE_TERM} {smallest} or more"
        )

    def smallest_tile(self, minimum: int) -> int:
        """The smallest tile edge that works with this overlap for a method whose least tile edge is ``minimum``: at
        least ``minimum`` and more than twice the overlap."""
        return max(minimum, 2 * self.overlap + 1)

    @property
    def automatic(self) -> bool:
        """Whether the size is the default left to the engine, which grows to hold a wide kernel's footprint
        (``core.tiling.kernel_tiles``): the default value not typed (``size_given``). Any other size is the user's own,
        used as it is or refused. (Processing and the dialog always pass a size, so there the default value counts as
        left to the engine; the command line's ``--tile 128`` typed is the user's own.)"""
        return self.size == TileOptions.size and not self.size_given

    def for_device(self, device_type: str, bands: int, scale: int) -> "TileOptions":
        """These options with an automatic ``batch`` (0) resolved for a ``cpu``, ``cuda`` or ``mps`` device, for
        tiles of ``bands`` bands super-resolved ×``scale``: on CUDA the most tiles the run may solve together
        (``CUDA_BATCH``, fewer when their outputs would pass ``BATCH_HOST_BYTES``)."""
        if self.batch:
            return self
        if device_type != "cuda":
            return replace(self, batch=1)
        tile_bytes = bands * (self.size * scale) ** 2 * 9  # float64 values and bool validity
        return replace(self, batch=max(1, min(CUDA_BATCH, BATCH_HOST_BYTES // tile_bytes)))


def check_step_window(fraction: float) -> None:
    """Raise a one-line ``InputError`` unless ``fraction`` (a method's ``step_window``) lies in (0, 1]."""
    if not 0 < fraction <= 1:
        raise InputError(f"step window is a fraction of the tile's edge in (0, 1], got {fraction}")


def warm_step_count(steps: int, fraction: float) -> int:
    """The steps of a tile warm-started with ``fraction`` of a fresh tile's ``steps`` (at least one)."""
    return max(1, round(steps * fraction))


def later_steps(steps: int, warm: float | None) -> int:
    """The steps of each tile after a run's first trained one: ``warm_step_count`` of ``steps`` when tiles are
    warm-started with the fraction ``warm``, else (``None``) all ``steps``."""
    return steps if warm is None else warm_step_count(steps, warm)


@dataclass(frozen=True)
class InternalLearningConfig:
    """What every tile-by-tile internal-learning method shares (``DIPConfig``, ``KnitworkConfig``,
    ``GuidedDIPConfig``): steps, output averaging, stopping, final back-projection, seed, device,
    precision and tiling. Each method documents how it uses them.
    """

    #: The kernels the method takes, as messages list them (``core.kernels.UnknownKernel``).
    KERNEL_NAMES: ClassVar[tuple[str, ...]] = FIXED_KERNELS
    #: Adam steps per tile; ``None`` picks the method's tested default (its ``steps``).
    iterations: int | None = None
    #: Exponential moving average of the output over steps (0 disables it).
    ema_decay: float = 0.99
    #: Stop when the training loss has not improved by ``stop_tolerance`` (relative) in ``stop_patience``
    #: steps (no ground truth involved; ``core.optimise``).
    early_stop: bool = True
    stop_patience: int = 300
    stop_tolerance: float = 0.01
    #: Final back-projection (Irani–Peleg) steps making the output consistent with the input.
    back_projection_steps: int = 20
    seed: int = 0
    #: ``auto`` (CUDA, then Apple MPS, then CPU), ``cpu``, ``cuda`` or ``mps``.
    device: str = "auto"
    #: bfloat16 (float16 on older GPUs) autocast of the network on CUDA, losses in float32; ignored elsewhere.
    mixed_precision: bool = True
    #: On CUDA, replay each optimisation step from CUDA graphs (``core.graphs``; not with float16 autocast,
    #: whose loss scaling reads back to the host); ignored elsewhere. Off until measured on a GPU (README, *GPU*).
    cuda_graphs: bool = False
    #: Tiles, in input pixels (the target's pixels for guided DIP).
    tiles: TileOptions = field(default_factory=TileOptions)
    #: Warm start: every tile after the first trained one starts from that tile's trained networks and
    #: runs ``warm_steps`` of the steps (``benchmarks/warm_start.py`` measures it per method; README).
    warm_start: bool = True
    warm_steps: float = 0.75

    def __post_init__(self) -> None:
        if self.iterations is not None:
            check_at_least("iterations", self.iterations, 1, "the method's default")
        if not 0 < self.warm_steps <= 1:
            raise InputError(f"warm_steps is a fraction of the steps in (0, 1], got {self.warm_steps}")
        if not 0 <= self.ema_decay < 1:
            raise InputError(f"ema_decay must be in [0, 1) (0: no averaging), got {self.ema_decay}")
        if not 0 <= self.stop_tolerance < 1:
            raise InputError(f"stop_tolerance is a relative improvement in [0, 1), got {self.stop_tolerance}")
        check_at_least("stop_patience", self.stop_patience, 1)
        check_at_least("back_projection_steps", self.back_projection_steps, 0)
        check_seed(self.seed)
        if self.min_input_size > MIN_TILE:
            self.tiles.check_size(self.min_input_size, *self.size_reason)
        else:
            self.tiles.check_size(MIN_TILE, "too small", "input pixels")
        check_device(self.device)

    @property
    def min_input_size(self) -> int:
        """Smallest input edge (pixels) the method's network takes (each method sets its own)."""
        return 1

    def min_input_size_at(self, scale: int) -> int:
        """``min_input_size`` were the scale ``scale`` (the same as it for a method whose network does not depend on
        the scale): ``core.evaluation`` asks it to tell whether a smaller scale would fit an image."""
        return self.min_input_size

    @property
    def size_reason(self) -> tuple[str, str]:
        """How a refusal of a too small input words the method's need (``refuse_smaller``'s ``shortfall`` and
        ``pixels``; each method may say more)."""
        return "smaller than the network needs", "input pixels"

    def check_input_size(self, width: int, height: int, on_extent: bool = False) -> None:
        """Raise a one-line ``InputError`` when a ``width × height`` input is smaller than ``min_input_size``
        each way, giving the method's ``size_reason`` (``on_extent``: it is the window an extent chose, and the
        message says so)."""
        refuse_smaller(width, height, on_extent, self.min_input_size, *self.size_reason)

    @property
    def steps(self) -> int:
        """The number of optimisation steps this configuration runs at most (each method's own)."""
        raise NotImplementedError

    @property
    def warm_step_count(self) -> int:
        """The steps of a warm-started tile."""
        return warm_step_count(self.steps, self.warm_steps)

    @property
    def later_steps(self) -> int:
        """The steps of each tile after the first trained one (``later_steps``)."""
        return later_steps(self.steps, self.warm_steps if self.warm_start else None)

    def steps_text(self) -> str:
        """The steps per tile as the run's log states them, e.g. ``up to 300 steps per tile (225 when warm-started)``."""
        warm = f" ({self.warm_step_count} when warm-started)" if self.warm_start and self.warm_step_count < self.steps else ""
        return f"up to {count_words(self.steps, 'step')} per tile{warm}"


@dataclass(frozen=True)
class DIPConfig(InternalLearningConfig):
    """Deep Image Prior super-resolution (Ulyanov, Vedaldi, Lempitsky 2018) and our practical additions.

    Architecture (reference "skip" hourglass, at half its width by default: 64 maps instead of 128, which
    on the development crops scored as well or better with 600 steps at a third of a step's cost):
    ``depth`` scales, ``channels`` feature maps per scale,
    ``skip_channels`` per skip connection, bilinear upsampling, reflection padding, LeakyReLU(0.2).
    The network input is ``noise_channels`` of uniform noise scaled by 0.1, perturbed every step by
    Gaussian noise of std ``noise_perturbation``; with ``guide_input`` the interpolated low-resolution
    image is fed beside the noise.
    """

    scale: int = 2
    kernel: str = "bicubic"
    learning_rate: float = 0.001
    depth: int = 5
    channels: int = 64
    skip_channels: int = 4
    noise_channels: int = 32
    noise_perturbation: float = 0.0
    guide_input: bool = True
    #: Weight of the cross-scale term: the same network must also turn ``U(D(y))`` into ``y``
    #: (requires ``guide_input``; 0 disables it).
    cross_scale_weight: float = 1.0
    #: Take the cross-scale examples at all ``s²`` sampling phases of ``D`` (one per step in turn) instead
    #: of the phase ``(0, 0)`` alone: ``s²`` times as many internal examples for the same cost per step.
    cross_scale_phases: bool = True
    #: Full-resolution detail branch on the interpolated image (``guide_input`` only): ``detail_layers``
    #: 3×3 convs of ``detail_channels`` maps whose output is added to the hourglass's (0 disables it).
    detail_layers: int = 4
    detail_channels: int = 32
    #: Feed each step a random flip/rotation of the inputs (and undo it on the output): the output
    #: average then becomes a self-ensemble over the 8 dihedral transforms.
    augment: bool = True
    #: Start the predicted correction at zero (zero-initialised output head) when ``guide_input``.
    zero_init: bool = True
    #: Output averaging: the result is ``B + blend·(P − B)`` with ``P`` the back-projected DIP output
    #: and ``B`` the back-projected bicubic image (1 keeps the DIP output alone).
    blend: float = 0.5
    #: Each step optimises a random window of the tile, ``step_window`` of its height and width (rounded
    #: down to whole cells of the hourglass's grid; at least one input pixel more than the kernel reaches on both
    #: sides, ``core.windows.window_edges``), instead of the whole tile: a step then costs about
    #: ``step_window²`` of a whole-tile step. The cross-scale pass takes the same share of its image; a
    #: step's output covers its window, the average the whole tile. 1 optimises the whole tile every step.
    step_window: float = 1.0

    def __post_init__(self) -> None:
        check_scale(self.scale)
        check_step_window(self.step_window)
        for name, minimum in (("depth", 1), ("channels", 1), ("skip_channels", 0), ("noise_channels", 0),
                              ("detail_layers", 0), ("detail_channels", 1)):
            check_at_least(name, getattr(self, name), minimum)
        if not self.guide_input and self.noise_channels == 0:
            raise InputError("without guide_input the network's only input is its noise: noise_channels must be ≥ 1")
        if not 0 <= self.blend <= 1:
            raise InputError(f"blend must be in [0, 1], got {self.blend}")
        super().__post_init__()

    @property
    def steps(self) -> int:
        """The number of optimisation steps this configuration runs at most."""
        if self.iterations is not None:
            return self.iterations
        return DEFAULT_ITERATIONS.get(self.scale, DEFAULT_ITERATIONS[4])

    @property
    def min_input_size(self) -> int:
        """Smallest input edge (pixels): the output must still be 2 pixels wide after ``depth`` halvings."""
        return self.min_input_size_at(self.scale)

    def min_input_size_at(self, scale: int) -> int:
        return -(-(2 ** (self.depth + 1)) // scale)

    @property
    def size_reason(self) -> tuple[str, str]:
        return "too small for Deep Image Prior (DIP)", f"input pixels at ×{self.scale} with depth {self.depth}"


#: Values of ``KernelGANConfig.orientation``, each with the kernel it writes in words (a kernel file's record).
ORIENTATION_WORDS = {
    "spectrum": "the Gaussian of KernelGAN's size elongated and turned as the image's power spectrum reads",
    "kernelgan": "KernelGAN's own kernel",
}
ORIENTATIONS = tuple(ORIENTATION_WORDS)


@dataclass(frozen=True)
class KernelGANConfig:
    """KernelGAN blur-kernel estimation (Bell-Kligler, Shocher, Irani 2019); defaults from the reference code.

    Generator: a deep *linear* network (convolutions of sizes ``generator_layers``, ``generator_channels``
    maps, no bias, no activation, stride 2 in the last layer) whose collapsed map is one 13 × 13 kernel
    followed by decimation by 2. Discriminator: fully convolutional, a ``discriminator_kernel`` conv then
    1 × 1 convs (``discriminator_layers`` in all, ``discriminator_channels`` maps, spectral normalisation,
    batch norm, ReLU, sigmoid output), so each output judges one 7 × 7 patch. Each step takes one
    ``crop_size`` crop for the generator and one real crop of the generator's output size for the
    discriminator, both drawn where the image has structure. Images are normalised per band to [−1, 1].

    Loss weights (generator): GAN (L1 to the "real" label) + ``sum_weight`` · |1 − Σk| +
    ``boundary_weight`` · boundary penalty + ``centre_weight`` · centre-of-mass distance² +
    ``sparse_weight`` · mean |k|^0.2 + a bicubic prior (MSE to the bicubic downscaling of the same crop)
    weighted ``prior_weights[i]`` during stage ``i`` of ``prior_stage`` steps and released (0) after the
    last stage. The centring and sparsity terms join at step ``constraints_from``. Learning rates are
    divided by 10 every ``lr_decay_every`` steps. Post-processing keeps the values above 0.75 × the
    ``keep_largest``-th largest tap and re-centres the kernel (``core.kernelgan``).

    scale: 2, or 4 (the ×2 kernel composed with itself, as the paper). Units of sizes: pixels of the
    image the kernel is estimated on (the low-resolution input of a super-resolution).
    """

    scale: int = 2
    iterations: int = 3000
    #: One kernel per band instead of one shared by the bands (which are then a batch of grey images).
    per_band: bool = False
    crop_size: int = 64
    generator_layers: tuple[int, ...] = (7, 5, 3, 1, 1, 1)
    generator_channels: int = 64
    discriminator_layers: int = 7
    discriminator_kernel: int = 7
    discriminator_channels: int = 64
    learning_rate: float = 2e-4
    beta1: float = 0.5
    lr_decay_every: int = 750
    sum_weight: float = 0.5
    boundary_weight: float = 0.5
    centre_weight: float = 1.0
    sparse_weight: float = 5.0
    prior_weights: tuple[float, ...] = (5.0, 0.05, 5e-4)
    prior_stage: int = 200
    constraints_from: int = 400
    #: Standard deviation of the noise added to the discriminator's inputs (normalised units, [−1, 1]).
    discriminator_noise: float = 2 / 255
    keep_largest: int = 40
    #: Where the kernel's elongation and direction come from: ``spectrum`` (default) keeps the area of
    #: KernelGAN's kernel (σ_major · σ_minor) and takes its shape from the image's power spectrum, as a
    #: Gaussian (``core.anisotropy``); ``kernelgan`` keeps KernelGAN's own kernel, whose direction is
    #: unreliable (README, KernelGAN, Kernel shape).
    orientation: str = "spectrum"
    seed: int = 0
    device: str = "auto"
    #: Edge of the largest window the kernel is estimated on (pixels): a raster wider or taller is estimated
    #: on its ``max_window``-pixel window with the most structure (``core.kernelgan.estimation_window``), so
    #: memory does not grow with the raster; KernelGAN only trains on ``crop_size`` crops of it.
    max_window: int = 1024

    def __post_init__(self) -> None:
        if self.orientation not in ORIENTATIONS:
            raise InputError(f"orientation must be one of {', '.join(ORIENTATIONS)}, got {self.orientation!r}")
        if self.scale not in (2, 4):
            raise InputError(f"KernelGAN estimates ×2 kernels (×4 by composition): scale must be 2 or 4, got {self.scale}")
        check_at_least("iterations", self.iterations, 1, KernelGANConfig.iterations)
        check_at_least("max_window", self.max_window, self.crop_size)
        check_seed(self.seed)
        check_device(self.device)

    @property
    def kernel_size(self) -> int:
        """Edge of the generator's collapsed kernel (13 for the reference layers 7, 5, 3, 1, 1, 1)."""
        return collapsed_size(self.generator_layers)

    def check_input_size(self, width: int, height: int, on_extent: bool = False) -> None:
        """Raise a one-line ``InputError`` when a ``width × height`` image is smaller than one crop
        (``on_extent``: it is the window an extent chose, and the message says so)."""
        refuse_smaller(width, height, on_extent, self.crop_size, "too small for KernelGAN", "pixels")


#: The ``kernel`` value that makes Neural Knitworks learn the blur kernel jointly with the image.
LEARNED_KERNEL = "learned"
#: Default optimisation steps of Neural Knitworks per tile, chosen on the development crops (README): on
#: whole-tile steps the averaged output peaks between 200 and 400 steps and declines after that at ×4; on the
#: default step windows (``KnitworkConfig.step_window`` 0.7, about half a whole-tile step's cost) 450 steps
#: scored as well as or better than 300 whole-tile ones on every development crop and scale.
KNITWORK_ITERATIONS = 450


@dataclass(frozen=True)
class Ramp:
    """A weight (of a loss term, or a step size) that grows along a logistic curve over the run.

    The reference code ramps its patch-consistency weight this way.

    ``weight(t) = final / (1 + exp(−10 · (t/T − middle) / width))`` at step ``t`` of a ``T``-step run:
    half of ``final`` at ``middle`` (a fraction of the run) and rising from ≈1 % to ≈99 % of it over
    ``width`` (a fraction of the run). ``width = 0`` is a step from 0 to ``final`` at ``middle``; the
    default (``middle = 0``, ``width = 0``) is the constant ``final``.
    """

    final: float
    middle: float = 0.0
    width: float = 0.0

    def at(self, step: int, steps: int) -> float:
        """The weight at 0-based ``step`` of a ``steps``-step run."""
        t = step / max(steps, 1) - self.middle
        if self.width <= 0:
            return self.final if t >= 0 else 0.0
        return self.final / (1.0 + math.exp(-10.0 * t / self.width))


@dataclass(frozen=True)
class KnitworkConfig(InternalLearningConfig):
    """Neural Knitworks super-resolution (Czerkawski et al., Pattern Recognition 2024); ``core.knitwork``.

    Defaults after the paper and its reference code unless marked *ours*. Units: frequencies in
    cycles per input (low-resolution) pixel (coordinates are the output pixels' centres in input
    pixels); patch sizes and scales in high-resolution pixels; steps are Adam steps per tile; loss
    weights multiply means over elements of images normalised per band (``core.normalise``).
    """

    KERNEL_NAMES: ClassVar[tuple[str, ...]] = (*FIXED_KERNELS, LEARNED_KERNEL)
    scale: int = 2
    #: A fixed kernel for ``core.kernels.make_kernel`` (bicubic, lanczos2/3, gaussian:SIGMA, a .npy path),
    #: or ``learned``: a deep linear downsampler learnt jointly, regularised to sum to one (the README
    #: says why bicubic, not learned, is the default).
    kernel: str = "bicubic"
    #: Adam step size of the patch MLP and the discriminator (the reference's; the learned kernel: ``kernel_rate``).
    learning_rate: float = 0.001
    #: Random Fourier features of the coordinates: ``fourier_features`` frequencies drawn from
    #: N(0, ``fourier_sigma``²) cycles per input pixel, encoded as their sines and cosines. The paper's
    #: σ = 10 cycles per image edge, taken over the development crops' 64-pixel input at ×2 (ours: per
    #: input pixel, so that tile size, tile shape and scale leave the bandwidth relative to the
    #: observation's sampling unchanged; at ×4 it beat σ per output pixel by 0.02–0.07 dB, README).
    fourier_features: int = 256
    fourier_sigma: float = 10 / 64
    #: Patch MLP: ``layers`` linear layers (ReLU between them), ``width`` units each, linear output
    #: (ours: the reference's sigmoid would clip normalised values outside [0, 1]).
    width: int = 256
    layers: int = 4
    #: Each pixel predicts a ``patch_size`` × ``patch_size`` patch (odd) at each of ``patch_scales``:
    #: at scale ``s`` the patch's taps are ``s`` pixels apart on the image antialiased for ``s``
    #: (Gaussian of σ = ``s`` pixels over 2s − 1 taps, as the reference's real patches).
    patch_size: int = 3
    patch_scales: tuple[int, ...] = (1, 2, 4)
    #: Patch consistency (every patch value agrees with the pixel it covers in the reconstructed image
    #: at its scale). The reference weighs a sum over its 27 offsets and scales against an MSE summed
    #: over 3 colours by 10⁻²; with means on both sides that is ≈ 0.1, from half of it at the first step
    #: to all of it by a quarter of the run.
    consistency: Ramp = Ramp(0.1, 0.0, 0.5)
    #: Adversarial patch loss (non-saturating, softplus), 10⁻² against a 3-colour summed MSE in the reference ≈ 0.003 here.
    adversarial: Ramp = Ramp(0.003)
    #: Hidden widths of the MLP patch discriminator (LeakyReLU 0.2), fed flattened patch stacks.
    discriminator_layers: tuple[int, ...] = (256, 256, 128, 64, 32, 16)
    #: Patch stacks drawn per step, with replacement, for each side of the adversarial game (ours; the
    #: reference uses every pixel of the output). On the CPU a stack drawn several times is judged once,
    #: weighted by its count (``core.knitwork.draw``).
    adversarial_patches: int = 4096
    #: Learned kernel: KernelGAN's deep linear generator (``core.kernelgan.LinearGenerator``), conv
    #: sizes ``kernel_layers`` with ``kernel_channels`` maps, collapsed to one kernel; its sum is held to
    #: one with weight ``kernel_sum_weight`` (the reference) and its centre of mass on the block centre
    #: with ``kernel_centre_weight`` (ours: it pins the output to its georeferencing).
    kernel_layers: tuple[int, ...] = (7, 5, 3, 1, 1, 1)
    kernel_channels: int = 64
    kernel_sum_weight: float = 1.0
    kernel_centre_weight: float = 1.0
    #: The learned kernel starts as this kernel (``LearnedDegradation.start_at``; ours: from the
    #: reference's random start the joint fit drifted to flat or vanishing kernels on our crops).
    kernel_prior: str = "bicubic"
    #: Adam step size of the learned kernel over the run (ours: held at 0 for the first quarter, while
    #: the image is fitted to the prior, then 10⁻⁴, a tenth of the reference's 10⁻³, at which it drifted
    #: away, learnt from the start as there).
    kernel_rate: Ramp = Ramp(0.0001, 0.25)
    #: Coordinates per chunk of the patch MLP; when a tile has more output pixels, chunks are recomputed in
    #: the backward pass (activation checkpointing), so memory grows with the chunk, not the tile. 2¹⁸ holds a
    #: default tile (128²) at ×4 in one chunk: on one CPU core a ×4 step took 11.0 s and peaked at 2.6 GB,
    #: against 16.2 s and 1.4 GB in chunks of 2¹⁶ (2026-11-27).
    chunk: int = 262144
    #: Each step evaluates the patch MLP on a random window of the tile, ``step_window`` of its height and
    #: width (in input pixels, rounded down; at least ``min_input_size``, and wide enough that a window cut on both
    #: sides keeps an input pixel whose blur lies inside it: ``core.windows.window_edges``), instead of the whole tile, a step
    #: then costing about ``step_window²`` of a whole-tile one: the window is reconstructed, checked for
    #: patch consistency and drawn from for the adversarial term as a tile of its own; the data term leaves
    #: out the input pixels whose blur reaches past its cut sides; its output, less one input pixel along
    #: the cut sides, is written into the image of the whole tile that the average follows
    #: (``core.windows``). Offsets are spread evenly, at most half a window apart. 1 is the whole tile.
    #: Ours: 0.7 (half the pixels, 0.53 of a whole-tile step's time) with 450 steps instead of 300 whole-tile
    #: ones, chosen on the development crops (README).
    step_window: float = 0.7

    def __post_init__(self) -> None:
        check_scale(self.scale)
        check_step_window(self.step_window)
        if self.patch_size < 3 or self.patch_size % 2 == 0:
            raise InputError(f"patch size must be odd and ≥ 3, got {self.patch_size}")
        if not self.patch_scales or self.patch_scales[0] != 1 or any(s < 1 for s in self.patch_scales):
            raise InputError(f"patch scales must start with 1 and be positive, got {self.patch_scales}")
        for name in ("fourier_features", "width", "layers", "chunk"):
            check_at_least(name, getattr(self, name), 1)
        super().__post_init__()

    @property
    def steps(self) -> int:
        """The number of optimisation steps this configuration runs at most."""
        return KNITWORK_ITERATIONS if self.iterations is None else self.iterations

    @property
    def min_input_size(self) -> int:
        """Smallest input edge (pixels): one patch at the largest scale must fit in the observation."""
        return (self.patch_size - 1) * max(self.patch_scales) + 1

    @property
    def size_reason(self) -> tuple[str, str]:
        return "too small for Neural Knitworks", f"input pixels with patch scales {self.patch_scales}"

    @property
    def learned_taps(self) -> int:
        """Taps per axis of the learned kernel as ``kernel learned`` applies it (``core.knitwork.LearnedDegradation``):
        the collapsed size of ``kernel_layers``, one more at even scales (a zero row and column, the file-kernel
        convention)."""
        return collapsed_size(self.kernel_layers) + (self.scale % 2 == 0)


#: Default optimisation steps of guided DIP, chosen on a development crop (never the benchmark crops).
GUIDED_ITERATIONS = 500

#: Quality presets: optimisation steps per tile of each method (``dip``, ``knitwork``, ``guided``);
#: ``balanced`` is each method's default. DIP: on the development crops its output gains 0.03–0.11 dB
#: from 300 to 600 steps and is still rising slowly at 600 on four of six crop-scale pairs, so ``fast``
#: (200) keeps part of the gain over bicubic + back-projection and ``best`` (1200) continues the climb
#: (not measured beyond 600). Knitworks (on its default step windows), read off the curves of its
#: 450-step runs on the development crops (a run of another length ramps its losses differently, so
#: indicative only): at step 250 the output is 0.08–0.11 dB below step 450 at ×2 and 0.02–0.05 dB at ×4;
#: it still rises by 0.01–0.02 dB per 50 steps at 450 on five of six crop-scale pairs, so ``best`` (600)
#: continues the climb (not measured beyond 450).
#: Guided DIP: 1000 steps instead of 400 lowered the development RMSE (README), hence ``best``.
QUALITY_PRESETS: dict[str, dict[str, int]] = {
    "dip": {"fast": 200, "balanced": DEFAULT_ITERATIONS[2], "best": 1200},
    "knitwork": {"fast": 250, "balanced": KNITWORK_ITERATIONS, "best": 600},
    "guided": {"fast": 200, "balanced": GUIDED_ITERATIONS, "best": 1000},
}
#: Preset names, fastest first.
QUALITIES = ("fast", "balanced", "best")


@dataclass(frozen=True)
class GuidedDIPConfig(InternalLearningConfig):
    """Guided (multi-modal) Deep Image Prior: sharpen target bands with finer guide bands.

    The scale is not configured: it is the integer ratio of the two grids (``core.grid.nest``).
    Generator (``core.networks.MultiModalNet``): the guide bands and the bicubic-interpolated target
    bands (plus ``noise_channels`` of fixed uniform noise) go through a shared trunk of ``layers`` 3×3
    convs of ``width`` maps; one head per modality (target, guide) with local adjustment heads. The
    target is predicted as a correction of its ``base`` image. Loss (all terms masked to valid pixels;
    ``core.guided``): target term ``‖D_t(x_t) − y‖²`` + ``guide_weight`` · guide term ``‖x_g − g‖²`` +
    ``cycle_weight`` · ``‖D_g(x_g) − D_g(g)‖²`` + ``cross_scale_weight`` · the same network mapping the
    guide and target degraded once more back to the observed target.

    kernel: the target bands' blur (``sentinel2``: per band from the Sentinel-2 MTF, recognised from
    the band descriptions; or any ``core.kernels`` name/path, shared by all bands).
    guide_kernel: the guide bands' blur, used to bring the guide to the target grid (same choices).
    """

    KERNEL_NAMES: ClassVar[tuple[str, ...]] = (SENTINEL2_KERNEL, *FIXED_KERNELS)
    kernel: str = SENTINEL2_KERNEL
    guide_kernel: str = SENTINEL2_KERNEL
    learning_rate: float = 0.001
    width: int = 64
    layers: int = 6
    noise_channels: int = 0
    #: What the network corrects: ``interpolation`` (bicubic) or ``injection`` (bicubic plus the
    #: high-pass detail of a regressed pseudo-pan, ``core.guided.inject_detail``).
    base: str = "injection"
    #: Per-modality local adjustment heads (gain and offset on the low-resolution grid).
    adjustment: bool = True
    guide_weight: float = 0.001
    cycle_weight: float = 0.001
    cross_scale_weight: float = 3.0
    augment: bool = True
    #: Raise negative output values to 0 in each band whose valid input holds no negative value (the log says how
    #: many pixels of which band; ``core.normalise.ZeroFloor``); ``False`` writes them as the network made them.
    non_negative: bool = True

    def __post_init__(self) -> None:
        if self.base not in ("interpolation", "injection"):
            raise InputError(f"base must be interpolation or injection, got {self.base!r}")
        super().__post_init__()

    @property
    def steps(self) -> int:
        return GUIDED_ITERATIONS if self.iterations is None else self.iterations


#: Methods ``internal-sr evaluate`` and ``internal_sr:evaluate`` score (``bicubic``: the baselines alone).
EVALUATION_METHODS = ("dip", "knitwork", "guided", "bicubic")
