"""Blur kernels of the degradation model, sampled on the high-resolution grid.

Pixel-centre convention (see ``core.grid``): low-resolution pixel i covers high-resolution pixels
[s·i, s·i+s), so its kernel is centred on the centre of that block, s·i + (s−1)/2 in pixel-index
coordinates. Built-in kernels are therefore sampled at offsets with the parity of ``s``: for even
``s`` the taps sit at ±½, ±3/2, … (an even number of taps, like bicubic with
``align_corners=False``); for odd ``s`` at 0, ±1, … (an odd number of taps).

Kernel names: ``bicubic`` (Keys, a = −½, as MATLAB ``imresize``), ``lanczos2``, ``lanczos3``,
``gaussian:SIGMA`` (SIGMA in low-resolution pixels), ``landsat`` (the Gaussian of ``core.landsat``), or
a path to a ``.npy`` file holding a 2-D kernel of odd size. A file kernel of odd size used at an even scale gets a zero row and column appended at
the bottom and right, so its centre of mass belongs half a pixel below-right of its central tap —
KernelGAN's centring convention (``file_kernel_centre``). A file kernel whose centre of mass is elsewhere
(e.g. a Gaussian centred on its central tap, used at ×2) is moved there on load by bilinear
interpolation, as ZSSR and KernelGAN shift their kernels, so a kernel file never shifts the output
(``Kernel.moved`` keeps the move and ``recentring_note`` words it for the log). Its taps are normalised to sum to 1
(``Kernel.given_sum`` keeps what they summed to, and ``loading_notes`` says so where that was not 1). A file may have a scale
record beside it (``kernel_record_path``, written by ``save_kernel_file``); a kernel recorded for
another scale is refused.

Half-pixel grids: where the fine grid's pixel edges sit half a fine pixel off the coarse grid's (the
standard Landsat pan/multispectral geometry, ``core.grid.nest``), low-resolution pixel i is centred
at s·i + (s−1)/2 + ½ instead. A kernel built with ``shift`` ½ on an axis is sampled at offsets of the
other parity on that axis and gets a zero tap prepended, so its centre sits half a pixel after its
array's centre and ``Degradation`` (unchanged) decimates on the shifted centres. Built-in kernels are
exact at any shift; a kernel file has one fixed sampling and is refused with a shift.
"""

from __future__ import annotations

import io
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from .config import FIXED_KERNELS, GAUSSIAN_TERM, SENTINEL2_KERNEL, area_name, either, recorded_path, size_remedy
from .errors import InputError
from .grid import Window

if TYPE_CHECKING:
    from .raster import StagedFiles


def _cubic(t: np.ndarray, a: float = -0.5) -> np.ndarray:
    t = np.abs(t)
    return np.where(
        t <= 1,
        (a + 2) * t**3 - (a + 3) * t**2 + 1,
        np.where(t < 2, a * t**3 - 5 * a * t**2 + 8 * a * t - 4 * a, 0.0),
    )


def _lanczos(t: np.ndarray, lobes: int) -> np.ndarray:
    return np.where(np.abs(t) < lobes, np.sinc(t) * np.sinc(t / lobes), 0.0)


def _gaussian(t: np.ndarray, sigma: float) -> np.ndarray:
    return np.exp(-0.5 * (t / sigma) ** 2)


@dataclass(frozen=True)
class Kernel:
    """A normalised blur kernel on the high-resolution grid for decimation by ``scale``.

    Exactly one of ``separable`` (1-D taps applied along rows then columns) and ``full`` (2-D taps)
    is set. Tap counts have the parity of ``scale`` (see the module docstring). ``shift`` is (rows,
    columns) in high-resolution pixels, each 0 or ½: how far the kernel's centre sits after the block
    centre. ``spec`` is what ``make_kernel`` built it from (empty for kernels made otherwise). ``moved``
    (rows, columns), fine pixels: how far a file kernel's centre of mass was moved on load to sit on the
    block centre (module docstring); (0, 0) for every other kernel. ``given_size``: the side of the odd-size array a
    file kernel (or ``file_kernel``) was given as, before that move and the zero row and column of even scales
    (``prepared_taps``) widened it to ``size``; 0 for built-in kernels. ``given_sum``: what a file kernel's taps sum to
    as the file holds them (it is normalised to sum to 1 on load: ``loading_notes``); 1 for every other kernel.
    """

    name: str
    scale: int
    separable: np.ndarray | None = None
    full: np.ndarray | None = None
    shift: tuple[float, float] = (0.0, 0.0)
    spec: str = ""
    moved: tuple[float, float] = (0.0, 0.0)
    given_size: int = 0
    given_sum: float = 1.0

    @property
    def as_2d(self) -> np.ndarray:
        """The kernel as a 2-D array (outer product for separable kernels), float64, summing to 1."""
        if self.full is not None:
            return self.full
        return np.outer(self.separable, self.separable)

    @property
    def size(self) -> int:
        return self.as_2d.shape[0]

    @property
    def words(self) -> str:
        """How messages name the kernel: ``kernel file PATH`` for one read from a file, else ``kernel SPEC``."""
        return f"kernel file {self.spec}" if names_file(self.spec) else f"kernel {self.spec or self.name}"

    def footprint(self) -> "Kernel":
        """The same support with non-negative weights (|taps|, normalised): where the kernel reads."""
        if self.separable is not None:
            taps = np.abs(self.separable)
            return replace(self, separable=taps / taps.sum())
        taps = np.abs(self.full)
        return replace(self, full=taps / taps.sum())

    def at_shift(self, shift: tuple[float, float]) -> "Kernel":
        """The same kernel built for ``shift`` (module docstring); itself when the shift is already that."""
        if tuple(shift) == tuple(self.shift):
            return self
        if not self.spec:
            raise InputError(f"kernel {self.name} cannot be moved to another pixel phase")
        return make_kernel(self.spec, self.scale, shift)


def sample_1d(profile, support: float, scale: int, shift: float = 0.0) -> np.ndarray:
    """Sample ``profile(t)`` (t in low-resolution pixels, |t| < ``support``) at the HR tap offsets.

    ``shift`` 0 or ½: with ½ the taps are centred half a pixel after the array's centre (module docstring).
    """
    on_pixels = (scale % 2 == 1) != bool(shift)
    half = math.ceil(support * scale - (0.0 if on_pixels else 0.5))
    offsets = np.arange(-half, half + 1, dtype=float) if on_pixels else np.arange(-half, half) + 0.5
    taps = profile(offsets / scale)
    while taps.size > 2 and taps[0] == 0 and taps[-1] == 0:
        taps = taps[1:-1]
    taps = taps / taps.sum()
    return np.concatenate([[0.0], taps]) if shift else taps


def _analytic(name: str, scale: int, profile, support: float, shift: tuple[float, float]) -> Kernel:
    """A separable kernel from a symmetric ``profile``; 2-D when the two axes have different shifts."""
    rows, cols = (sample_1d(profile, support, scale, s) for s in shift)
    if shift[0] == shift[1]:
        return Kernel(name, scale, separable=rows, shift=shift, spec=name)
    length = max(rows.size, cols.size)
    rows, cols = (np.pad(t, (length - t.size) // 2) for t in (rows, cols))
    return Kernel(name, scale, full=np.outer(rows, cols), shift=shift, spec=name)


def file_kernel_centre(size: int, scale: int) -> float:
    """Where an odd-``size`` file kernel's centre of mass must sit (row = column index) for ``scale``.

    The central tap ``(size − 1) / 2`` at odd scales; half a pixel below-right of it at even scales,
    because ``load_kernel_file`` appends a zero row and column there (the module docstring).
    """
    return (size - 1) / 2 + (0.5 if scale % 2 == 0 else 0.0)


#: Centre-of-mass offsets (fine pixels) up to this are left as they are on load: they shift the output by less.
RECENTRE_TOLERANCE = 0.01


def shift_taps(k: np.ndarray, dy: float, dx: float) -> np.ndarray:
    """Move a kernel by (``dy``, ``dx``) taps with bilinear interpolation, padding so nothing is lost.

    The sum is kept and the centre of mass moves by exactly (``dy``, ``dx``); a fractional move widens
    the kernel a little (a two-tap average along that axis at ½).
    """
    pad = int(math.ceil(max(abs(dy), abs(dx)))) + 1
    k = np.pad(k, pad)
    for axis, d in ((0, dy), (1, dx)):
        whole = math.floor(d)
        frac = d - whole
        k = (1 - frac) * np.roll(k, whole, axis) + frac * np.roll(k, whole + 1, axis)
    return k


def trim(k: np.ndarray) -> np.ndarray:
    """Drop all-zero outer rings of a square kernel (keeps its centre and odd size)."""
    while k.shape[0] > 1 and not (k[0].any() or k[-1].any() or k[:, 0].any() or k[:, -1].any()):
        k = k[1:-1, 1:-1]
    return k


def centre_offset(k: np.ndarray, scale: int) -> tuple[float, float]:
    """(rows, columns) in taps from ``file_kernel_centre`` to the centre of mass of an odd-size kernel."""
    rows, cols = np.indices(k.shape)
    centre = file_kernel_centre(k.shape[0], scale)
    return float((rows * k).sum() / k.sum()) - centre, float((cols * k).sum() / k.sum()) - centre


def off_centre(k: np.ndarray, scale: int) -> str | None:
    """Where an odd-size kernel's centre of mass sits when it is more than ``RECENTRE_TOLERANCE`` off
    ``file_kernel_centre``, e.g. ``centre of mass -0.05, +0.04 fine pixels (rows, columns) off the block centre``
    (what loading it as a kernel file moves it by, reversed); ``None`` when it is on it."""
    dy, dx = centre_offset(np.asarray(k, dtype=np.float64), scale)
    if max(abs(dy), abs(dx)) <= RECENTRE_TOLERANCE:
        return None
    return f"centre of mass {dy:+.2f}, {dx:+.2f} fine pixels (rows, columns) off the block centre"


def recentre(k: np.ndarray, scale: int) -> np.ndarray:
    """Shift an odd-size kernel so its centre of mass sits at ``file_kernel_centre`` for ``scale``; sums to 1."""
    k = k / k.sum()
    dy, dx = centre_offset(k, scale)
    moved = shift_taps(k, -dy, -dx)
    # padding is symmetric, so the wanted centre is again the file-kernel centre of the padded size
    moved = trim(np.where(np.abs(moved) > 1e-12, moved, 0.0))
    return moved / moved.sum()


def kernel_record_path(path: str) -> str:
    """The scale record beside the kernel file ``path``: ``k.npy`` → ``k.npy.json``."""
    return path + ".json"


def kernel_files(path: str) -> tuple[str, str, str]:
    """The files ``save_kernel_file`` writes for the kernel ``path``: the kernel, its scale record, its preview."""
    return path, kernel_record_path(path), kernel_preview_path(path)


def foreign_side_file(path: str) -> str | None:
    """A side file of the kernel file ``path`` (its scale record or its preview, ``kernel_files``) that exists and that
    no earlier ``save_kernel_file`` at ``path`` may have written; ``None`` when there is none. That function writes
    the three files together and nothing else writes a scale record, so existing side files are an earlier kernel's
    only when the kernel and its record are both there; otherwise they may be another dataset's, e.g. a picture
    ``k.png`` beside a new ``k.npy``, or the loss curve ``out.tif.loss.png`` beside a kernel named ``out.tif.loss.npy``."""
    kernel, record, preview = kernel_files(path)
    if os.path.isfile(kernel) and os.path.isfile(record):
        return None
    return next((side for side in (record, preview) if os.path.lexists(side)), None)


def check_kernel_outputs(paths: Sequence[str], inputs: Sequence[str], probe: bool = True) -> None:
    """Refuse to write the kernel files ``paths`` (each with its scale record and preview, ``kernel_files``) over an
    input or a file it reads (``raster.check_output_paths``; ``probe``: as there), or where a record or preview would
    replace a file no earlier kernel wrote (``foreign_side_file``). Raises a one-line ``InputError``."""
    from .raster import check_output_paths

    written = [file for path in paths for file in kernel_files(path)]
    labels = {}
    for path in paths:
        _, record, preview = kernel_files(path)
        labels[record] = f"the scale record {record} of kernel file {path}"
        labels[preview] = f"the preview {preview} of kernel file {path}"
    check_output_paths(written, list(inputs), probe, labels)
    for path in paths:
        if (side := foreign_side_file(path)) is not None:
            raise InputError(
                f"{labels[side]} would replace an existing file that no earlier kernel {os.path.basename(path)} wrote "
                "(that kernel and its scale record are not both there), perhaps another dataset's: choose another kernel file name"
            )


def kernel_record(path: str) -> dict[str, object]:
    """What the record beside the kernel file ``path`` says (``kernel_record_path``, as ``save_kernel_file`` writes it):
    ``scale`` (an ``int``), ``centre`` and, for a kernel estimated or learnt, ``kernel_origin``'s keys; empty without a
    record. A record that is not a JSON object with a scale is a one-line ``InputError``."""
    record = kernel_record_path(path)
    if not os.path.isfile(record):
        return {}
    try:
        with open(record, encoding="utf-8") as f:
            content = json.load(f)
        return {**content, "scale": int(content["scale"])}
    except (OSError, ValueError, KeyError, TypeError):
        raise InputError(f"cannot read {record}, the scale record of kernel file {path}: delete it if it is not that kernel's") from None


def recorded_scale(path: str) -> int | None:
    """The scale the kernel file ``path`` was made for, from its record (``None`` without one)."""
    return kernel_record(path).get("scale")


def band_note(kernel: Kernel | None, bands: Sequence[int], input_path: str) -> str | None:
    """The log line warning that a run on raster bands ``bands`` (1-based) of ``input_path`` blurs some of them with a
    kernel file made on other bands: its record lists the bands it was estimated or learnt on (``kernel_origin``), e.g.
    band 3 alone for KernelGAN's per-band ``k_band3.npy``. The run goes on (the kernel is the user's choice: one kernel
    file blurs every band of a run); the line names both sets of bands and how to have a kernel per band. ``None`` for
    ``None``, a built-in kernel, a file without such a record, and a run on bands the kernel was made on."""
    if kernel is None or not names_file(kernel.spec):
        return None
    record = kernel_record(kernel.spec)
    made_on = record.get("bands")
    if not isinstance(made_on, list) or not all(isinstance(band, int) for band in made_on) or set(bands) <= set(made_on):
        return None
    origin = record.get("input") or "its raster"
    return (
        f"warning: kernel file {kernel.spec} was made on {_band_numbers(made_on)} of {origin} (its record "
        f"{os.path.basename(kernel_record_path(kernel.spec))} says so), and this run blurs {_band_numbers(bands)} of "
        f"{input_path} with it, as a run blurs all its bands with its one kernel: for a kernel per band, estimate one "
        "per band with KernelGAN and run each band alone with its own file"
    )


def _band_numbers(bands: Sequence[int]) -> str:
    """``band 3``, ``bands 1, 2, 4``: 1-based raster bands in a message."""
    return f"band{'s' if len(bands) > 1 else ''} {', '.join(map(str, bands))}"


def load_kernel_file(path: str, scale: int) -> tuple[np.ndarray, float]:
    """Read a 2-D ``.npy`` kernel for ``scale``: checked (odd size, finite, positive sum, centre of mass inside its
    taps, made for ``scale`` if its record says), as the file holds it, on its taps' own scale (largest |tap| 1), and
    what its taps sum to in the file (``Kernel.given_sum``; infinite where that overflows); ``file_kernel`` prepares
    it for ``Degradation``."""
    try:
        k = np.load(path)
    except (ValueError, EOFError):
        if _holds_objects(path):
            raise InputError(f"kernel file {path} must hold real numbers, got object") from None
        raise InputError(f"kernel file {path} is not a NumPy array file (.npy as numpy.save writes)") from None
    except OSError as error:
        raise InputError(f"cannot read kernel file {path}: {error.strerror or error}") from None
    if not isinstance(k, np.ndarray):  # an .npz archive
        k.close()
        raise InputError(f"kernel file {path} is an archive of arrays (.npz): save the kernel alone with numpy.save")
    if not np.issubdtype(k.dtype, np.number) or np.iscomplexobj(k):
        raise InputError(f"kernel file {path} must hold real numbers, got {getattr(k, 'dtype', type(k).__name__)}")
    if k.ndim != 2 or k.shape[0] != k.shape[1] or k.shape[0] % 2 == 0:
        raise InputError(f"kernel file {path} must hold a square 2-D array of odd size, got shape {k.shape}")
    k = k.astype(np.float64)
    if not np.all(np.isfinite(k)):
        raise InputError(f"kernel file {path} must be finite with a positive sum: it holds infinite or NaN taps")
    if not k.any():
        raise InputError(f"kernel file {path} must be finite with a positive sum: all its taps are 0")
    peak = np.abs(k).max()
    k = k / peak  # on the taps' own scale, so that the sum of huge (finite) taps does not overflow
    if k.sum() <= 0:
        raise InputError(f"kernel file {path} must be finite with a positive sum: its taps sum to 0 or less")
    rows, cols = np.indices(k.shape)
    centre = ((rows * k).sum() / k.sum(), (cols * k).sum() / k.sum())
    if not all(0 <= c <= k.shape[0] - 1 for c in centre):
        raise InputError(
            f"kernel file {path} has its centre of mass outside its {k.shape[0]}×{k.shape[0]} taps (row {centre[0]:.3g}, "
            f"column {centre[1]:.3g}): its negative taps nearly cancel its positive ones; give a blur kernel, whose taps are "
            "mostly positive"
        )
    recorded = recorded_scale(path)
    if recorded is not None and recorded != scale:
        raise InputError(
            f"kernel file {path} was made for ×{recorded} (its record {os.path.basename(kernel_record_path(path))} "
            f"says so), not ×{scale}: {_kernel_for(scale)}, or delete the record if it is not this kernel's"
        )
    with np.errstate(over="ignore"):
        return k, float(k.sum() * peak)


def _holds_objects(path: str) -> bool:
    """Whether ``path`` is a ``.npy`` file of Python objects (dtype object), which only unpickling could read:
    its header says so; ``False`` for any file that has no readable ``.npy`` header."""
    try:
        with open(path, "rb") as f:
            major, _ = np.lib.format.read_magic(f)
            read_header = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
            return read_header(f)[2].hasobject
    except (OSError, ValueError, EOFError):
        return False


def _kernel_for(scale: int) -> str:
    """What to do for a kernel at ``scale``: KernelGAN estimates ×2 and ×4 kernels only."""
    if scale in (2, 4):
        return f"estimate one for ×{scale} with KernelGAN at scale {scale}"
    return f"KernelGAN estimates ×2 and ×4 kernels only, so give a parametric kernel for ×{scale} (e.g. {GAUSSIAN_TERM})"


def prepared_taps(k: np.ndarray, scale: int) -> tuple[np.ndarray, tuple[float, float]]:
    """An odd-size kernel as ``Degradation`` uses it for ``scale``, and the move that recentred it.

    Normalised to sum 1; moved onto ``file_kernel_centre`` when its centre of mass is more than
    ``RECENTRE_TOLERANCE`` off (the move is (rows, columns), fine pixels); at even scales a zero row and
    column are appended.
    """
    k = np.asarray(k, dtype=np.float64)
    k = k / k.sum()
    dy, dx = centre_offset(k, scale)
    moved = (0.0, 0.0)
    if max(abs(dy), abs(dx)) > RECENTRE_TOLERANCE:
        k, moved = recentre(k, scale), (-dy, -dx)
    if scale % 2 == 0:
        k = np.pad(k, ((0, 1), (0, 1)))
    return k, moved


def file_taps(taps: np.ndarray, scale: int) -> np.ndarray:
    """A kernel as ``Degradation`` applies a file kernel (``prepared_taps``) → as the file holds it: the odd-size kernel,
    without the zero row and column appended at even scales."""
    return taps[:-1, :-1] if scale % 2 == 0 else taps


#: A file kernel whose taps sum to 1 within this (relative) is said to be normalised already (float32 rounding).
SUM_TOLERANCE = 1e-4


def loading_notes(kernel: Kernel) -> list[str]:
    """The log lines of what loading a file kernel changed: its taps normalised to sum to 1 (``Kernel.given_sum``),
    its centre of mass moved onto the block centre (``recentring_note``); empty for the other kernels."""
    notes = []
    if abs(kernel.given_sum - 1) > SUM_TOLERANCE:
        notes.append(
            f"kernel file {kernel.spec}: its taps sum to {kernel.given_sum:.6g}, not 1, and were divided by that sum, "
            "so that the blur keeps the image's mean (a kernel is a weighted average)"
        )
    return notes + list(filter(None, [recentring_note(kernel)]))


def recentring_note(kernel: Kernel) -> str | None:
    """The log line for a file kernel that was moved onto the block centre on load; ``None`` for the others."""
    if kernel.moved == (0.0, 0.0):
        return None
    dy, dx = kernel.moved
    return (
        f"kernel file {kernel.spec}: its centre of mass was {-dy:+.2f}, {-dx:+.2f} fine pixels (rows, columns) "
        f"off the block centre and was moved onto it, so the output is not shifted (at an even scale an odd "
        f"kernel's centre belongs half a pixel below-right of its central tap: KernelGAN's convention, as "
        f"internal-sr kernelgan writes)"
    )


def sigma_from_mtf(mtf: float) -> float:
    """Standard deviation (low-resolution pixels) of the Gaussian whose MTF at Nyquist is ``mtf``.

    A Gaussian of σ pixels has MTF(f) = exp(−2π²σ²f²), and Nyquist is f = ½ cycle per pixel.
    """
    return math.sqrt(-2.0 * math.log(mtf)) / math.pi


def names_file(spec: str) -> bool:
    """Whether the kernel ``spec`` names a kernel file (``make_kernel``): it ends in ``.npy`` or is a path that exists."""
    return spec.lower().endswith(".npy") or os.path.exists(spec)


def check_kernel_fits(kernel: Kernel, width: int, height: int, on_extent: bool = False, overlap: str | None = None) -> None:
    """Raise a one-line ``InputError`` when ``kernel`` is wider than the high-resolution image a super-resolution of a
    ``width × height`` image estimates (``kernel.scale`` times as many pixels each way; ``on_extent``: the image is the
    window an extent chose; ``overlap``: it is the part another raster, e.g. "guide", covers; the message says so,
    ``config.area_name``, and asks for more of it, ``config.size_remedy``): nearly all its taps would fall on the
    border's padding, the loss would fit padding. (``degrade`` takes any kernel: an extent reads its context from the
    raster around it, and a blur wider than a small raster is the replicated border's, ``core.degradation``.) The size
    compared is the kernel's as applied; where that is not the size it was given as (``Kernel.given_size``: a file
    kernel moved onto the block centre, or at an even scale), the message names both."""
    s, n = kernel.scale, kernel.size
    if n > s * min(width, height):
        spans = f"spans {n}×{n} pixels at the fine resolution (×{s})"
        if kernel.given_size not in (0, n):
            given = kernel.given_size
            spans = (f"holds {given}×{given} taps, which span {n}×{n} pixels at the fine resolution (×{s}) once centred on the "
                     "block centre")
        raise InputError(
            f"{kernel.words} {spans}, wider than "
            f"{area_name(on_extent, overlap)} there ({s * width}×{s * height}): {size_remedy(on_extent, overlap)}, "
            "or a narrower kernel"
        )


class UnknownKernel(InputError):
    """A kernel ``spec`` that ``make_kernel`` does not build: its message offers ``accepted``, the kernels of the
    method it was given to (a configuration's ``KERNEL_NAMES``; a front end may add its own, e.g. the command line's
    ``estimate``: ``extended``). ``sentinel2`` is named as guided DIP's alone."""

    def __init__(self, spec: str, accepted: Sequence[str]) -> None:
        self.spec, self.accepted = spec, tuple(accepted)
        what = (f"kernel {SENTINEL2_KERNEL} (each band's MTF) is for guided DIP only" if spec == SENTINEL2_KERNEL
                else f"unknown kernel {spec!r}")
        super().__init__(f"{what}: use {either(self.accepted)}")

    def extended(self, *names: str) -> "UnknownKernel":
        """This refusal offering ``names`` too."""
        return UnknownKernel(self.spec, (*self.accepted, *names))


def make_kernel(
    spec: str, scale: int, shift: tuple[float, float] = (0.0, 0.0), accepted: Sequence[str] = FIXED_KERNELS
) -> Kernel:
    """Build the kernel named by ``spec`` (see the module docstring) for decimation by ``scale``.

    ``shift`` (rows, columns), each 0 or ½ high-resolution pixel: for half-pixel grids (module docstring).
    ``accepted``: the kernels of the method ``spec`` was given to, which an ``UnknownKernel`` refusal offers.
    """
    spec = spec.strip()
    shift = (float(shift[0]), float(shift[1]))
    if any(s not in (0.0, 0.5) for s in shift):
        raise ValueError(f"kernel shifts are 0 or ½ pixel, got {shift}")
    if spec == "bicubic":
        return _analytic(spec, scale, _cubic, 2.0, shift)
    if spec == "landsat":
        from .landsat import MTF

        return replace(make_kernel(f"gaussian:{sigma_from_mtf(MTF):.4f}", scale, shift), name=spec, spec=spec)
    if spec in ("lanczos2", "lanczos3"):
        lobes = int(spec[-1])
        return _analytic(spec, scale, lambda t: _lanczos(t, lobes), float(lobes), shift)
    if names_file(spec):
        if not os.path.isfile(spec):
            raise InputError(f"kernel file {spec} does not exist")
        if any(shift):
            raise InputError(f"kernel file {spec} is sampled for pixel-aligned grids, but these grids sit half a pixel "
                             f"apart (Landsat pan geometry): use a named kernel such as {GAUSSIAN_TERM}")
        taps, given_sum = load_kernel_file(spec, scale)
        return replace(file_kernel(taps, scale, os.path.basename(spec)), spec=spec, given_sum=given_sum)
    if spec.startswith("gaussian"):
        try:
            sigma = float(spec.split(":", 1)[1])
        except (IndexError, ValueError):
            raise InputError(f"kernel {spec!r}: write gaussian:SIGMA with SIGMA in low-resolution pixels, e.g. gaussian:0.5") from None
        if not 0.05 <= sigma <= 10:
            raise InputError(f"kernel {spec!r}: SIGMA must be between 0.05 and 10 low-resolution pixels")
        return _analytic(spec, scale, lambda t: _gaussian(t, sigma), max(3.0 * sigma, 1.0), shift)
    raise UnknownKernel(spec, accepted)


def anisotropic_gaussian(major: float, minor: float, angle: float, scale: int) -> np.ndarray:
    """An odd-size file kernel (see ``file_kernel_centre``): a Gaussian with the given ``KernelWidth``.

    major, minor: standard deviations in low-resolution pixels; angle: major axis in degrees,
    anticlockwise from the column axis as displayed. Taps reach at least 3 standard deviations (at
    least 1 low-resolution pixel) from the centre, as far on every side, so the centre of mass is the
    file convention's exactly (at even scales the first row and column, which have no mirror taps,
    are zero); the result sums to 1. A known kernel for evaluations, and the shape of estimates.
    """
    even = scale % 2 == 0
    half = math.ceil(max(3 * major, 1.0) * scale + (0.5 if even else 0.0))
    size = 2 * half + 1
    rows, cols = np.indices((size, size)).astype(float)
    centre = file_kernel_centre(size, scale)
    x, y = cols - centre, -(rows - centre)
    t = math.radians(angle)
    u, v = x * math.cos(t) + y * math.sin(t), -x * math.sin(t) + y * math.cos(t)
    k = np.exp(-0.5 * ((u / (major * scale)) ** 2 + (v / (minor * scale)) ** 2))
    if even:
        k[0, :] = k[:, 0] = 0.0
    return k / k.sum()


def kernel_preview_path(path: str) -> str:
    """The PNG preview written beside the kernel file ``path``: ``k.npy`` → ``k.png``."""
    return os.path.splitext(path)[0] + ".png"


def kernel_origin(source: str, input_path: str, bands: Sequence[int], window: Window | None, width: int, height: int) -> dict[str, object]:
    """What a kernel file's record says of where an estimated or learned kernel comes from (``save_kernel_file``):
    ``source`` (in words, how it was made), ``input`` (the raster: ``config.recorded_path``), ``bands`` (1-based raster bands)
    and ``window`` (the file pixels it was made on: ``col_off``, ``row_off``, ``width``, ``height``; ``window``
    ``None``: the whole ``width × height`` raster)."""
    area = window if window is not None else Window(0, 0, width, height)
    return {"source": source, "input": recorded_path(input_path), "bands": [int(b) for b in bands], "window": area.as_dict()}


def save_kernel_file(
    path: str, kernel: np.ndarray, scale: int, preview_pixels: int = 208, files: StagedFiles | None = None,
    origin: dict[str, object] | None = None,
) -> str:
    """Save a 2-D kernel for ``scale`` as a float32 ``.npy`` summing to 1, its scale record and a PNG preview.

    Returns the preview's path. The ``.npy``, the record (``kernel_record_path``: JSON with ``scale``, ``centre``
    (on the block centre, or how far off it: ``off_centre``) and, when given, ``origin`` (``kernel_origin``: how
    the kernel was made, from which raster, bands and pixels) and the preview (``path`` with ``.png``: the kernel's non-negative taps, white = the
    largest, each tap a square block, about ``preview_pixels`` wide) are written to temporary files and moved into
    place together, with the run's other files when ``files`` (``core.raster.StagedFiles``) is given.
    """
    k = np.asarray(kernel, dtype=np.float64)
    if k.ndim != 2 or k.shape[0] != k.shape[1] or k.shape[0] % 2 == 0 or not k.sum() > 0:
        raise InputError(f"a kernel file holds a square 2-D kernel of odd size with a positive sum, got shape {k.shape}")
    from .figures import png_bytes
    from .raster import staged

    buffer = io.BytesIO()
    np.save(buffer, (k / k.sum()).astype(np.float32))
    off = off_centre(k, scale)
    centre = f"{off}: moved onto it when loaded" if off else "centre of mass on the block centre"
    record = {"scale": int(scale), "centre": f"{centre} (core.kernels.file_kernel_centre)", **(origin or {})}
    png = kernel_preview_path(path)
    with staged(files) as group:
        group.write(path, buffer.getvalue())
        group.write(kernel_record_path(path), (json.dumps(record, indent=1, ensure_ascii=False) + "\n").encode())
        group.write(png, png_bytes(kernel_preview(k, scale, preview_pixels)))
    return png


def kernel_preview(kernel: np.ndarray, scale: int, pixels: int = 208) -> np.ndarray:
    """A 2-D kernel's picture ``(H, W, 3)`` uint8 for ``scale``: its non-negative taps, white = the largest, each tap a
    square block, about ``pixels`` wide, captioned (``figures.captioned``) with its size in taps, what a tap is (one
    high-resolution pixel: 1/``scale`` input pixel), its fitted Gaussian (``kernel_width``) and a bar one input pixel
    long, so that the picture says how wide the blur is without the file's record."""
    from .figures import captioned

    positive = np.clip(np.asarray(kernel, dtype=np.float64), 0, None)
    block = max(1, pixels // positive.shape[0])
    grey = np.rint(255 * positive / positive.max()).astype(np.uint8).repeat(block, 0).repeat(block, 1)
    rows, cols = positive.shape
    width = kernel_width(positive, scale)
    lines = [f"{rows} x {cols} taps at scale {scale}: a tap is 1/{scale} input pixel",  # the bitmap font has no × nor σ
             f"Gaussian fit: sigma {width.major:.2f} x {width.minor:.2f} input pixels, major axis at {width.angle:.0f}°"]
    return captioned(np.repeat(grey[..., None], 3, axis=2), lines, (scale * block, "1 input pixel"))


@dataclass(frozen=True)
class KernelWidth:
    """The Gaussian with the second moments of a kernel's non-negative taps, in low-resolution pixels.

    major, minor: standard deviations along the principal axes (the unit of ``gaussian:SIGMA``);
    angle: direction of the major axis in degrees, anticlockwise from the column axis as the image is
    displayed (rows pointing down), in [0, 180).
    """

    major: float
    minor: float
    angle: float

    def __str__(self) -> str:
        return f"σ {self.major:.2f} × {self.minor:.2f} input pixels, major axis at {self.angle:.0f}°"


def kernel_width(kernel: np.ndarray, scale: int) -> KernelWidth:
    """Fit a Gaussian to the 2-D ``kernel`` (taps on the high-resolution grid of ``scale``) by its moments."""
    w = np.clip(np.asarray(kernel, dtype=np.float64), 0, None)
    w = w / w.sum()
    rows, cols = np.indices(w.shape)
    x, y = cols.astype(float), -rows.astype(float)  # y up, as displayed
    mx, my = (w * x).sum(), (w * y).sum()
    cov = np.array(
        [[(w * (x - mx) ** 2).sum(), (w * (x - mx) * (y - my)).sum()],
         [(w * (x - mx) * (y - my)).sum(), (w * (y - my) ** 2).sum()]]
    )
    values, vectors = np.linalg.eigh(cov)
    angle = math.degrees(math.atan2(vectors[1, 1], vectors[0, 1])) % 180.0
    major, minor = (math.sqrt(max(v, 0.0)) / scale for v in values[::-1])
    return KernelWidth(major, minor, angle)


def centred_pad(kernel: np.ndarray, size: int) -> np.ndarray:
    """Zero-pad a square 2-D kernel evenly on all sides to ``size`` (same parity), keeping its centre."""
    pad = (size - kernel.shape[0]) // 2
    if pad < 0 or (size - kernel.shape[0]) % 2:
        raise ValueError(f"cannot pad a {kernel.shape[0]}-tap kernel to {size} taps around its centre")
    return np.pad(kernel, pad)


def kernel_error(estimate: Kernel, truth: Kernel) -> float:
    """Relative L2 distance ‖estimate − truth‖ / ‖truth‖ of two kernels of one scale, on a common grid."""
    a, b = estimate.as_2d, truth.as_2d
    size = max(a.shape[0], b.shape[0])
    a, b = centred_pad(a, size), centred_pad(b, size)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def file_kernel(kernel: np.ndarray, scale: int, name: str = "kernel") -> Kernel:
    """An odd-size 2-D kernel as ``make_kernel`` loads it from a file (``prepared_taps``; ``Kernel.given_size`` is its
    side); ``make_kernel`` adds the file's path as ``spec``."""
    taps, moved = prepared_taps(kernel, scale)
    return Kernel(name, scale, full=taps, moved=moved, given_size=np.shape(kernel)[0])


def angle_difference(a: float, b: float) -> float:
    """Angle in degrees between two axes at ``a`` and ``b`` degrees (axes, so modulo 180°): in [0, 90]."""
    d = abs(a - b) % 180.0
    return min(d, 180.0 - d)


def isotropic_baseline(truth: Kernel) -> tuple[float, float]:
    """The isotropic Gaussian closest to ``truth`` by ``kernel_error``: (its σ in low-resolution pixels, its error).

    What knowing a kernel's width alone is worth: an estimate that also knows the elongation and
    orientation of an anisotropic kernel has a lower error. σ is searched from 0.2 to 3 by 0.01.
    """
    error, sigma = min(
        (kernel_error(file_kernel(anisotropic_gaussian(s, s, 0.0, truth.scale), truth.scale), truth), s)
        for s in np.arange(0.2, 3.0, 0.01)
    )
    return float(sigma), error
