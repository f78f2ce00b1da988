"""Command line: ``internal-sr dip|knitwork|guided|sentinel2|degrade|kernelgan|evaluate ...``.

Any user error exits with status 2 and one line on stderr naming the problem; nothing is written at
OUTPUT then. Ctrl-C or SIGTERM cancels cleanly (status 130, no output); one that comes after the run's files
moved into place, while it ends, still exits 130 but names the files as written in full.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TextIO

from . import __version__
from .config import (
    CUDA_BATCH,
    DEFAULT_ITERATIONS,
    EVALUATION_METHODS,
    GUIDED_ITERATIONS,
    KNITWORK_ITERATIONS,
    MAX_SCALE,
    ORIENTATIONS,
    DIPConfig,
    GuidedDIPConfig,
    IOOptions,
    KernelGANConfig,
    KnitworkConfig,
    TileOptions,
    check_at_least,
    either,
)
from .errors import Cancelled, InputError, error_line


def _write(stream: TextIO | None, text: str) -> None:
    """Write ``text`` to ``stream`` (the command line's stdout or stderr: every line it prints goes through here)
    and flush it. Output that cannot be written is dropped and the run goes on, its exit status its own: no stream
    (Python's ``None`` for a descriptor closed at start, ``2>&-``), a pipe whose reader quit (``2>&1 | head``), a
    descriptor that fails. A stream that failed has its descriptor pointed at the null device, so that what is
    still buffered in it does not fail Python's flush at exit (exit status 120)."""
    if stream is None:
        return
    try:
        stream.write(text)
        stream.flush()
    except OSError:
        try:
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, stream.fileno())
            os.close(null)
        except (OSError, ValueError):  # no descriptor (a stream in memory)
            pass


#: When stderr is not a terminal (a log file, ``nohup``), the most seconds between two progress lines: a line is
#: written every 5 % of the run or every minute, whichever comes first (a run at the default steps takes hours, and
#: 5 % of it half an hour).
LOG_EVERY = 60.0
#: The share of the run between two progress lines when stderr is not a terminal (``LOG_EVERY``).
LOG_FRACTION = 0.05
#: The narrowest progress bar drawn on a terminal; narrower than that leaves the line to the message.
MIN_BAR = 10


class TerminalProgress:
    """A one-line progress bar on stderr, redrawn in place on a terminal; when stderr is not a terminal, plain lines,
    one every ``LOG_FRACTION`` of the run or ``LOG_EVERY`` seconds, whichever comes first, and the last; nothing
    without stderr. A line gives the bar (up to ``width`` characters, fewer or none where the terminal is narrow), the
    percentage, the seconds since the start and the engine's message. ``clock``: seconds, for tests to fake."""

    def __init__(self, stream: TextIO | None = None, width: int = 30, clock: Callable[[], float] = time.monotonic) -> None:
        self.stream = stream or sys.stderr
        self.width = width
        self.tty = self.stream is not None and self.stream.isatty()
        self.clock = clock
        self.start = clock()
        self.last = -1.0
        self.last_time = self.start

    def report(self, fraction: float, message: str = "") -> None:
        now = self.clock()
        if not self.tty and fraction - self.last < LOG_FRACTION and now - self.last_time < LOG_EVERY and fraction < 1.0:
            return
        self.last, self.last_time = fraction, now
        status = f"{100 * fraction:5.1f}% {now - self.start:6.0f}s {message}"
        if not self.tty:
            _write(self.stream, f"{self._bar(self.width, fraction)}{status}\n")
            return
        columns = self._columns() - 1  # a line redraws in place only while it fits on one row
        width = min(self.width, columns - len(status) - 3)
        line = (self._bar(width, fraction) if width >= MIN_BAR else "") + status
        _write(self.stream, "\r" + line[:columns].ljust(columns))

    def _columns(self) -> int:
        """The terminal's width (120 where it cannot be read)."""
        try:
            return os.get_terminal_size(self.stream.fileno()).columns
        except (OSError, ValueError, AttributeError):
            return 120

    @staticmethod
    def _bar(width: int, fraction: float) -> str:
        filled = int(round(width * fraction))
        return f"[{'#' * filled}{'.' * (width - filled)}] "

    def info(self, message: str) -> None:
        _write(self.stream, ("\n" if self.tty else "") + message + "\n")

    def cancelled(self) -> bool:
        return False

    def close(self) -> None:
        if self.tty:
            _write(self.stream, "\n")


#: Options only some commands take (the option → which), named when another command is given them.
OPTIONS_OF_SOME_COMMANDS = {"--batch": "dip and evaluate --method dip only: the other methods solve one tile at a time"}


class _Parser(argparse.ArgumentParser):
    """argparse, but usage errors are one line and exit with status 2; an option only some commands take
    (``OPTIONS_OF_SOME_COMMANDS``), given to another, is named with those that take it."""

    def error(self, message: str) -> None:  # type: ignore[override]
        if message.startswith("unrecognized arguments:"):
            given = message.split(":", 1)[1].split()
            message += "".join(f"; {option} applies to {commands}" for option, commands in OPTIONS_OF_SOME_COMMANDS.items()
                               if option in given or any(arg.startswith(f"{option}=") for arg in given))
        _write(sys.stderr, f"internal-sr: error: {message}\n")
        raise SystemExit(2)

    def _print_message(self, message: str, file: TextIO | None = None) -> None:
        """What argparse prints (``--help``, usage), through ``_write``."""
        if message:
            _write(file, message)


def _bands(text: str) -> tuple[int, ...]:
    try:
        bands = tuple(int(b) for b in text.split(",") if b.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"bands must be comma-separated integers, got {text!r}") from None
    if not bands:
        raise argparse.ArgumentTypeError("no band given")
    return bands


def _extent(text: str) -> tuple[float, float, float, float]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 4:
        raise argparse.ArgumentTypeError(f"extent must be XMIN,YMIN,XMAX,YMAX in the raster's CRS, got {text!r}")
    return values  # type: ignore[return-value]


EXTENT_HELP = "process only this area: XMIN,YMIN,XMAX,YMAX in the raster's CRS, snapped outward to whole input pixels"
#: The fixed kernels every command takes (``core.kernels.make_kernel``).
KERNEL_CHOICES = "bicubic | lanczos2 | lanczos3 | gaussian:SIGMA | landsat | PATH.npy"
#: The ``--kernel`` of dip and knitwork that estimates the kernel with KernelGAN first.
ESTIMATED_KERNEL = "estimate"
#: Options whose value may start with a minus sign (``--extent -74.9,…``), which argparse would take for an option.
NEGATIVE_VALUE_OPTIONS = ("--extent",)


def _attach_negative_values(argv: list[str]) -> list[str]:
    """``--extent -74.9,40.1,…`` → ``--extent=-74.9,40.1,…``, so west or south coordinates need no ``=``."""
    joined: list[str] = []
    for arg in argv:
        if joined and joined[-1] in NEGATIVE_VALUE_OPTIONS and re.match(r"-[0-9.]", arg):
            joined[-1] = f"{joined[-1]}={arg}"
        else:
            joined.append(arg)
    return joined


#: GDAL's largest raster edge (pixels): a larger scale leaves no whole block in any raster.
LARGEST_RASTER_EDGE = 2**31 - 1


def _scale(text: str) -> int:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"scale must be an integer ≥ 2, got {text!r}") from None
    if not math.isfinite(value) or value != int(value) or value < 2:
        raise argparse.ArgumentTypeError(f"scale must be an integer ≥ 2, got {text}")
    if value > LARGEST_RASTER_EDGE:
        raise argparse.ArgumentTypeError(f"scale must be at most {LARGEST_RASTER_EDGE}, the widest raster GDAL holds, got {text}")
    return int(value)


#: ``evaluate``'s options that only some methods use (the argument's name → those methods): given with another
#: method they change nothing, and the run says so (``_ignored_options``).
EVALUATE_METHOD_OPTIONS = {
    **dict.fromkeys(("iterations", "seed", "device", "tile", "overlap", "cold_tiles"), ("dip", "knitwork", "guided")),
    "batch": ("dip",),
    "guide_bands": ("guided",),
    "guide_kernel": ("guided",),
}


def _ignored_options(args: argparse.Namespace) -> list[str]:
    """A warning for each of ``evaluate``'s options (``EVALUATE_METHOD_OPTIONS``) given a value other than its
    default while ``args.method`` does not use it."""
    warnings = []
    for name, methods in EVALUATE_METHOD_OPTIONS.items():
        if args.method not in methods and getattr(args, name) != args.method_option_defaults[name]:
            warnings.append(f"warning: --{name.replace('_', '-')} is ignored: it applies with --method {either(methods)}")
    return warnings


def _by_scale(values: dict[int, int]) -> str:
    """``{2: 600, 3: 600, 4: 600}`` → ``"600"``; differing values → ``"×2: 600, ×3: 500, …"``."""
    if len(set(values.values())) == 1:
        return str(next(iter(values.values())))
    return ", ".join(f"×{scale}: {value}" for scale, value in sorted(values.items()))


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="internal-sr", description="Super-resolution of rasters by internal learning.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def common(p: argparse.ArgumentParser, kernel_help: str = "", scale_help: str = f"integer factor from 2 to {MAX_SCALE}") -> None:
        p.add_argument("input", help="input raster (any GDAL format)")
        p.add_argument("output", help="output GeoTIFF (.tif or .tiff; an existing file is replaced)")
        p.add_argument("--scale", type=_scale, required=True, help=scale_help)
        p.add_argument("--bands", type=_bands, help="1-based bands, e.g. 1,2,3 (default: all)")
        p.add_argument("--extent", type=_extent, help=EXTENT_HELP)
        p.add_argument("--kernel", default="bicubic", help=f"{KERNEL_CHOICES}{kernel_help} (default bicubic; gaussian's "
                       "SIGMA in low-resolution pixels)")
        p.add_argument("--float32", action="store_true", help="write Float32 instead of the input data type")
        p.add_argument("--cog", action="store_true", help="write a Cloud Optimized GeoTIFF")

    def device_and_seed(p: argparse.ArgumentParser) -> None:
        p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"],
                       help="where to optimise (default auto: the GPU when PyTorch finds one, else the CPU)")
        p.add_argument("--seed", type=int, default=0, help="random seed (default 0): the same seed on the same device with "
                       "the same CPU thread count (--threads) gives the same output")
        threads(p)

    def threads(p: argparse.ArgumentParser) -> None:
        p.add_argument("--threads", type=int, help="CPU threads PyTorch uses (default: its own choice, OMP_NUM_THREADS "
                       "or the cores; on a busy machine 1 is often faster)")

    def batch(p: argparse.ArgumentParser, when: str, default: int | None) -> None:
        p.add_argument("--batch", type=int, default=default,
                       help=f"{when}: tiles optimised together (0: automatic: 1 on the CPU; on CUDA sized from the GPU memory the first "
                       f"tile took, at most {CUDA_BATCH}; halved "
                       f"on running out of GPU memory; default {TileOptions.batch}); the other methods solve one tile at a time")

    def optimisation(p: argparse.ArgumentParser, grid: str) -> None:
        device_and_seed(p)
        p.add_argument("--tile", type=int,
                       help=f"tile edge in {grid} pixels (default {TileOptions.size}, grown where a wide kernel needs: the log "
                       f"says so; a size given, {TileOptions.size} too, is used as it is, and refused when too small for the "
                       "kernel)")
        p.add_argument("--overlap", type=int,
                       help=f"tile overlap in {grid} pixels (default {TileOptions.overlap}, raised to twice a kernel's reach "
                       "past a tile's side where less; an overlap given is used as it is, and refused when less)")
        p.add_argument("--cold-tiles", action="store_true",
                       help="start every tile from fresh networks (default: tiles after the first start from the first "
                       "tile's trained networks and run three quarters of the steps)")

    def allow_negative(p: argparse.ArgumentParser) -> None:
        p.add_argument("--allow-negative", action="store_true",
                       help="keep negative output values in bands whose input holds none (default: raised to 0, and the "
                       "log says how many pixels of which band)")

    window = KernelGANConfig.max_window
    where = (f"on the whole input, or on its {window} × {window} window with the most structure when it is larger "
             "(the log names the window)")
    estimate = f"; also 'estimate' (KernelGAN first, {where}; the kernel is kept as OUTPUT.tif.kernel.npy)"
    dip = sub.add_parser("dip", help="super-resolve with Deep Image Prior")
    common(dip, estimate)
    dip.add_argument("--iterations", type=int, help=f"optimisation steps per tile (default {_by_scale(DEFAULT_ITERATIONS)})")

    knitwork = sub.add_parser("knitwork", help="super-resolve with Neural Knitworks (a patch-predicting coordinate MLP)")
    common(knitwork, f"{estimate} or 'learned' (learnt jointly, starting from bicubic; kept as OUTPUT.tif.kernel.npy too)")
    knitwork.add_argument("--iterations", type=int, help=f"optimisation steps per tile (default {KNITWORK_ITERATIONS})")
    for method, config_class in ((dip, DIPConfig), (knitwork, KnitworkConfig)):
        method.add_argument("--step-window", type=float, default=config_class.step_window,
                            help="each step optimises a random window of this fraction of the tile's height and width "
                            f"(0.5: a quarter of the pixels, about a quarter of the time per step); default {config_class.step_window:g} "
                            "(1: the whole tile)")
        optimisation(method, "input")
        method.add_argument("--kernelgan-iterations", type=int,
                            help=f"KernelGAN steps with --kernel estimate (default {KernelGANConfig.iterations})")
    batch(dip, "DIP only", TileOptions.batch)

    degrade = sub.add_parser("degrade", help="blur and decimate (the sensor model)")
    common(degrade, scale_help="integer factor ≥ 2: one output pixel per scale × scale block")
    threads(degrade)

    kernelgan = sub.add_parser("kernelgan", help="estimate the image's blur kernel (KernelGAN) into a .npy file",
                               description=f"Estimate the image's blur kernel (KernelGAN) {where}.")
    kernelgan.add_argument("input", help="input raster (any GDAL format)")
    kernelgan.add_argument("output", help="kernel file to write (.npy; a .png preview and a .npy.json scale record are written beside it)")
    kernelgan.add_argument("--scale", type=_scale, required=True, help="2 or 4 (×4: the ×2 kernel composed with itself)")
    kernelgan.add_argument("--bands", type=_bands, help="1-based bands, e.g. 1,2,3 (default: all)")
    kernelgan.add_argument("--extent", type=_extent, help=EXTENT_HELP)
    kernelgan.add_argument("--per-band", action="store_true", help="one kernel per band: OUTPUT_bandN.npy")
    kernelgan.add_argument("--orientation", choices=ORIENTATIONS, default=ORIENTATIONS[0],
                           help="where the kernel's elongation and direction come from: the image's power spectrum "
                           "(default; a Gaussian of KernelGAN's size) or KernelGAN's own kernel")
    kernelgan.add_argument("--iterations", type=int, default=KernelGANConfig.iterations,
                           help=f"training steps (default {KernelGANConfig.iterations}, the paper's)")
    device_and_seed(kernelgan)
    guided = sub.add_parser("guided", help="sharpen low-resolution bands with finer bands of the same scene (guided DIP)")
    guided.add_argument("target", help="low-resolution raster to sharpen (e.g. Sentinel-2 20 m bands)")
    guided.add_argument("guide", help="finer raster of the same scene: same CRS, pixel size an integer fraction, aligned")
    guided.add_argument("output", help="output GeoTIFF, on the guide's grid over the overlap")
    guided.add_argument("--target-bands", type=_bands, help="1-based target bands (default: all)")
    guided.add_argument("--guide-bands", type=_bands, help="1-based guide bands (default: all)")
    guided.add_argument("--extent", type=_extent, help="process only this area: XMIN,YMIN,XMAX,YMAX in the rasters' "
                        "CRS, snapped outward to whole target pixels (the output is on the guide's grid)")
    guided.add_argument("--iterations", type=int, help=f"optimisation steps per tile (default {GUIDED_ITERATIONS})")
    guided.add_argument("--kernel", default="sentinel2",
                        help=f"target blur: sentinel2 (default: each band's MTF, from the band names) | {KERNEL_CHOICES}")
    guided.add_argument("--guide-kernel", default="sentinel2", help="guide blur, same choices (default sentinel2)")
    guided.add_argument("--float32", action="store_true", help="write Float32 instead of the target's data type")
    guided.add_argument("--cog", action="store_true", help="write a Cloud Optimized GeoTIFF")
    optimisation(guided, "target")
    allow_negative(guided)
    product = sub.add_parser("sentinel2", help="all Sentinel-2 bands at 10 m: sharpen the 20 m and 60 m bands with the 10 m bands")
    product.add_argument("inputs", nargs="+", help="folders (e.g. a .SAFE product) and/or band files")
    product.add_argument("output", help="output GeoTIFF: the bands in order B1 … B12 on the 10 m grid")
    product.add_argument("--iterations", type=int, help=f"optimisation steps per tile (default {GUIDED_ITERATIONS})")
    product.add_argument("--float32", action="store_true", help="write Float32 instead of the 10 m bands' data type "
                         "(needed when the resolutions' data types differ)")
    optimisation(product, "target")
    allow_negative(product)

    evaluate = sub.add_parser(
        "evaluate", help="score a method by Wald's protocol on your own raster: degrade it, super-resolve it back, compare"
    )
    evaluate.add_argument("input", help="raster to evaluate on (guided: the low-resolution target)")
    evaluate.add_argument("--scale", type=_scale, required=True, help=f"integer factor from 2 to {MAX_SCALE} (guided: the guide/target grid ratio)")
    evaluate.add_argument("--method", choices=EVALUATION_METHODS, default="dip", help="method scored beside bicubic and bicubic + back-projection")
    evaluate.add_argument("--bands", type=_bands, help="1-based bands, e.g. 1,2,3 (default: all)")
    evaluate.add_argument("--extent", type=_extent, help="evaluate only this area: XMIN,YMIN,XMAX,YMAX in the raster's CRS")
    evaluate.add_argument("--kernel", help=f"degradation kernel, which the method is also told: {KERNEL_CHOICES} (default "
                          "bicubic); guided: sentinel2 (default, per band) or any of these")
    evaluate.add_argument("--guide", help="guided: the finer raster of the same scene")
    evaluate.add_argument("--guide-bands", type=_bands, help="guided: 1-based guide bands (default: all)")
    evaluate.add_argument("--guide-kernel", default="sentinel2",
                          help="guided: the guide's blur, same choices as --kernel (default sentinel2)")
    evaluate.add_argument("--iterations", type=int, help="optimisation steps per tile (default: the method's)")
    evaluate.add_argument("--json", help="write every score and setting to this JSON file")
    evaluate.add_argument("--report", help="write the HTML report (scores, image crops, error maps, loss curve) here")
    optimisation(evaluate, "low-resolution")
    batch(evaluate, "DIP only, with --method dip", None)
    evaluate.set_defaults(method_option_defaults={name: evaluate.get_default(name) for name in EVALUATE_METHOD_OPTIONS})
    return parser


def _run_options(args: argparse.Namespace, batch: int | None = None) -> dict:
    """The ``InternalLearningConfig`` fields set by ``--iterations`` and the options ``optimisation`` adds, with
    ``batch`` (DIP's ``--batch``; ``None``: the default) as the tiles' batch. ``--tile`` and ``--overlap`` given are
    the user's own (``TileOptions.size_given``, ``overlap_given``), even at the default value; left out, they are the
    defaults, which grow where a wide kernel needs (``core.tiling.kernel_tiles``)."""
    tiles = TileOptions(
        TileOptions.size if args.tile is None else args.tile, TileOptions.overlap if args.overlap is None else args.overlap,
        TileOptions.batch if batch is None else batch, size_given=args.tile is not None, overlap_given=args.overlap is not None,
    )
    return dict(iterations=args.iterations, device=args.device, seed=args.seed, tiles=tiles, warm_start=not args.cold_tiles)


#: How the engine's warning that the CPUs are busy names the command line's thread setting (``core.device.cpu_threads``).
THREADS_OPTION = "--threads"


@contextmanager
def _threads(count: int | None) -> Iterator[None]:
    """PyTorch's CPU threads set to ``count`` (``--threads``; ``None``: left as they are) inside the block, its
    intra-op count restored afterwards (``core.device.cpu_threads``, for a script or test calling ``main``), and the
    engine's warning that the CPUs are busy, which a run gives once it has passed its checks, naming ``--threads``.
    The inter-op pool is sized too where PyTorch still allows it (before its first parallel work; it cannot be changed
    back)."""
    import torch

    from .device import cpu_threads

    if count is not None:
        check_at_least(THREADS_OPTION, count, 1, "PyTorch's own choice")
    with cpu_threads(count, THREADS_OPTION):
        if count is not None:
            try:
                torch.set_num_interop_threads(count)
            except RuntimeError:  # already started, or set once before
                pass
        yield


def run(args: argparse.Namespace, progress: TerminalProgress) -> list[str]:
    """Run the command; returns the lines to print once its files are in place."""
    with _threads(getattr(args, "threads", None)):
        return _run(args, progress)


def _run(args: argparse.Namespace, progress: TerminalProgress) -> list[str]:
    """``run`` with PyTorch's threads set."""
    from . import pipeline

    if args.command == "kernelgan":
        from .kernelgan import estimate_kernel_file

        config = KernelGANConfig(
            scale=args.scale, iterations=args.iterations, per_band=args.per_band, orientation=args.orientation,
            seed=args.seed, device=args.device,
        )
        result = estimate_kernel_file(args.input, args.output, config, IOOptions(bands=args.bands, extent=args.extent), progress)
        progress.close()
        return [f"wrote {', '.join(result.kernel_paths)} ({result.device}, {result.seconds:.1f} s)"]
    if args.command == "evaluate":
        from .evaluation import default_kernel, method_config
        from .report import evaluate_to_files, text_table

        kernel = args.kernel or default_kernel(args.method)
        for warning in _ignored_options(args):
            progress.info(warning)
        batch = args.batch if args.method == "dip" else None
        config = method_config(args.method, args.scale, kernel, args.guide_kernel, **_run_options(args, batch))
        run = evaluate_to_files(
            args.input, args.method, args.scale, kernel, config, IOOptions(bands=args.bands, extent=args.extent),
            args.guide, IOOptions(bands=args.guide_bands), args.report, args.json, progress, log_notes=False,
        )  # the table printed below ends with the notes: said once
        progress.close()
        return [text_table(run.evaluation), *(f"wrote {path}" for path in (args.report, args.json) if path)]
    if args.command == "guided":
        from .sharpen import sharpen

        config = GuidedDIPConfig(kernel=args.kernel, guide_kernel=args.guide_kernel, non_negative=not args.allow_negative,
                                 **_run_options(args))
        io = IOOptions(bands=args.target_bands, float32=args.float32, cog=args.cog, extent=args.extent)
        result = sharpen(args.target, args.guide, args.output, config, io, IOOptions(bands=args.guide_bands), progress)
    elif args.command == "sentinel2":
        from .sentinel2_product import sharpen_product

        config = GuidedDIPConfig(non_negative=not args.allow_negative, **_run_options(args))
        result = sharpen_product(args.inputs, args.output, config, args.float32, progress)
    elif args.command in ("dip", "knitwork"):
        io = IOOptions(bands=args.bands, float32=args.float32, cog=args.cog, extent=args.extent)
        method = DIPConfig if args.command == "dip" else KnitworkConfig
        batch = args.batch if args.command == "dip" else None
        config = method(scale=args.scale, kernel=args.kernel, step_window=args.step_window, **_run_options(args, batch))
        if args.kernelgan_iterations is not None:
            check_at_least("--kernelgan-iterations", args.kernelgan_iterations, 1, KernelGANConfig.iterations)
        if args.kernel != ESTIMATED_KERNEL and args.kernelgan_iterations is not None:
            progress.info(f"warning: --kernelgan-iterations is ignored: it applies with --kernel {ESTIMATED_KERNEL}")
        if args.kernel == ESTIMATED_KERNEL:
            from .kernelgan import super_resolve_with_estimated_kernel

            steps = {} if args.kernelgan_iterations is None else {"iterations": args.kernelgan_iterations}
            kernelgan = KernelGANConfig(scale=args.scale, seed=args.seed, device=args.device, **steps)
            result = super_resolve_with_estimated_kernel(args.input, args.output, config, kernelgan, io, progress)
        else:
            from .kernels import UnknownKernel

            try:
                result = pipeline.super_resolve(args.input, args.output, config, io, progress)
            except UnknownKernel as error:  # the command line takes estimate too
                raise error.extended(ESTIMATED_KERNEL) from None
    else:
        io = IOOptions(bands=args.bands, float32=args.float32, cog=args.cog, extent=args.extent)
        result = pipeline.degrade(args.input, args.output, args.scale, args.kernel, io, progress)
    progress.close()
    return [f"wrote {result.output_path} ({result.device}, {result.seconds:.1f} s)"]


@contextmanager
def _terminate_cancels() -> Iterator[None]:
    """Ctrl-C (SIGINT), SIGTERM (``kill``, a batch system's time limit) and SIGHUP (the terminal closed; not on
    Windows) cancel the run, so the temporary files are removed; while a group of files is moving into place
    (``core.raster.committing``) the signal is too late for it and is ignored. One after the run's files are in
    place still cancels what is left (printing), and ``_cancelled_line`` names the files. A signal the process
    was started ignoring stays ignored: ``nohup`` ignores SIGHUP so that logging out does not end the run, and a
    shell script's background job (``&``) starts with SIGINT ignored. The previous handlers are restored
    afterwards. Only the main thread can do this."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    from .raster import committing

    def cancel(signum: int, frame: object) -> None:
        if not committing():
            raise Cancelled("terminated")

    signals = [signal.SIGINT, signal.SIGTERM] + ([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])
    previous = {number: signal.signal(number, cancel) for number in signals if signal.getsignal(number) is not signal.SIG_IGN}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def _cancelled_line(written: list[str]) -> str:
    """What a cancelled run says: nothing written, or, for a signal that came after files moved into place (the
    run's one group of files is committed as it ends, ``core.raster.StagedFiles``), those of them still there."""
    kept = [path for path in dict.fromkeys(written) if os.path.exists(path)]
    return f"cancelled after writing {', '.join(kept)} in full" if kept else "cancelled, nothing written"


@contextmanager
def _escaping_output() -> Iterator[None]:
    """Inside the block stdout and stderr escape the characters their encoding lacks (``backslashreplace``: a
    CJK path on cp1252); afterwards each stream's own error handling is back, for the script or test that
    called ``main`` as a function. Streams without ``reconfigure`` (an ``io.StringIO``) are left as they are."""
    changed = [(stream, stream.errors) for stream in (sys.stdout, sys.stderr) if hasattr(stream, "reconfigure")]
    for stream, _ in changed:
        stream.reconfigure(errors="backslashreplace")
    try:
        yield
    finally:
        for stream, errors in changed:
            try:  # reconfiguring flushes what is still buffered: a closed pipe (``_write``) or stream refuses that
                stream.reconfigure(errors=errors)
            except (OSError, ValueError):
                pass


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status. Printing never fails a run whose files are written:
    characters the terminal's encoding lacks (a CJK path on cp1252) are escaped, a closed pipe is ignored.
    stdout and stderr are given back as they were (``_escaping_output``), so scripts and tests may call it.
    Output that cannot be written at all (a closed stream, a pipe whose reader quit) is dropped (``_write``)."""
    with _escaping_output():
        return _main(argv)


def _main(argv: list[str] | None) -> int:
    """``main`` inside ``_escaping_output``."""
    try:
        args = build_parser().parse_args(_attach_negative_values(sys.argv[1:] if argv is None else argv))
    except SystemExit as exc:  # usage errors (status 2) and --help (status 0)
        return int(exc.code or 0)
    from .raster import recording_commits

    progress = TerminalProgress()
    written: list[str] = []
    try:
        with recording_commits(written), _terminate_cancels():
            lines = run(args, progress)
    except InputError as exc:
        progress.close()
        _write(sys.stderr, f"internal-sr: error: {exc}\n")
        return 2
    except (Cancelled, KeyboardInterrupt):
        progress.close()
        _write(sys.stderr, f"internal-sr: {_cancelled_line(written)}\n")
        return 130
    except Exception as exc:  # MemoryError included: never a traceback in the user's face; the output was not written
        progress.close()
        _write(sys.stderr, f"internal-sr: error: {error_line(exc)}\n")
        return 1
    for line in lines:
        _write(sys.stdout, line + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
