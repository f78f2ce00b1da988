"""Blur kernels of the degradation model, sampled on the high-resolution grid.

Pixel-centre convention (see ``core.grid``): low-resolution pixel i covers high-resolution pixels
[s·i, s·i+s), so its kernel is centred on the centre of that block, s·i + (s−1)/2 in pixel-index
coordinates. Built-in kernels are therefore sampled at offsets with the parity of ``s``: for even
``s`` the taps sit at ±½, ±3/2, … (an even number of taps, like bicubic with
``align_corners=False``); for odd ``s`` at 0, ±1, … (an odd number of taps).

Kernel names: ``bicubic`` (Keys, a = −½, as MATLAB ``imresize``), ``lanczos2``, ``lanczos3``,
``gaussian:SIGMA`` (SIGMA in low-resolution pixels), or a path to a ``.npy`` file holding a 2-D kernel
of odd size. A file kernel of odd size used at an even scale gets a zero row and column appended at
the bottom and right, so its centre of mass is expected half a pixel below-right of its central tap —
KernelGAN's centring convention.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np

from .errors import InputError

BUILTIN = ("bicubic", "lanczos2", "lanczos3")


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
    is set. Tap counts have the parity of ``scale`` (see the module docstring).
    """

    name: str
    scale: int
    separable: np.ndarray | None = None
    full: np.ndarray | None = None

    @property
    def as_2d(self) -> np.ndarray:
        """The kernel as a 2-D array (outer product for separable kernels), float64, summing to 1."""
        if self.full is not None:
            return self.full
        return np.outer(self.separable, self.separable)

    @property
    def size(self) -> int:
        return self.as_2d.shape[0]

    def footprint(self) -> "Kernel":
        """The same support with non-negative weights (|taps|, normalised): where the kernel reads."""
        if self.separable is not None:
            taps = np.abs(self.separable)
            return Kernel(self.name, self.scale, separable=taps / taps.sum())
        taps = np.abs(self.full)
        return Kernel(self.name, self.scale, full=taps / taps.sum())


def sample_1d(profile, support: float, scale: int) -> np.ndarray:
    """Sample ``profile(t)`` (t in low-resolution pixels, |t| < ``support``) at the HR tap offsets."""
    half = math.ceil(support * scale - (0.5 if scale % 2 == 0 else 0.0))
    offsets = (np.arange(-half, half) + 0.5) if scale % 2 == 0 else np.arange(-half, half + 1, dtype=float)
    taps = profile(offsets / scale)
    while taps.size > 2 and taps[0] == 0 and taps[-1] == 0:
        taps = taps[1:-1]
    return taps / taps.sum()


def load_kernel_file(path: str, scale: int) -> np.ndarray:
    """Read a 2-D ``.npy`` kernel, check it, normalise it to sum 1 and fix its parity for ``scale``."""
    try:
        k = np.load(path)
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read kernel file {path}: {exc}".splitlines()[0]) from None
    if k.ndim != 2 or k.shape[0] != k.shape[1] or k.shape[0] % 2 == 0:
        raise InputError(f"kernel file {path} must hold a square 2-D array of odd size, got shape {k.shape}")
    k = k.astype(np.float64)
    if not np.all(np.isfinite(k)) or k.sum() <= 0:
        raise InputError(f"kernel file {path} must be finite with a positive sum")
    k = k / k.sum()
    if scale % 2 == 0:
        k = np.pad(k, ((0, 1), (0, 1)))
    return k


def make_kernel(spec: str, scale: int) -> Kernel:
    """Build the kernel named by ``spec`` (see the module docstring) for decimation by ``scale``."""
    spec = spec.strip()
    if spec == "bicubic":
        return Kernel(spec, scale, separable=sample_1d(_cubic, 2.0, scale))
    if spec in ("lanczos2", "lanczos3"):
        lobes = int(spec[-1])
        return Kernel(spec, scale, separable=sample_1d(lambda t: _lanczos(t, lobes), float(lobes), scale))
    if spec.endswith(".npy") or os.path.exists(spec):
        if not os.path.isfile(spec):
            raise InputError(f"kernel file {spec} does not exist")
        return Kernel(os.path.basename(spec), scale, full=load_kernel_file(spec, scale))
    if spec.startswith("gaussian"):
        try:
            sigma = float(spec.split(":", 1)[1])
        except (IndexError, ValueError):
            raise InputError(f"kernel {spec!r}: write gaussian:SIGMA with SIGMA in low-resolution pixels, e.g. gaussian:0.5") from None
        if not 0.05 <= sigma <= 10:
            raise InputError(f"kernel {spec!r}: SIGMA must be between 0.05 and 10 low-resolution pixels")
        return Kernel(spec, scale, separable=sample_1d(lambda t: _gaussian(t, sigma), max(3.0 * sigma, 1.0), scale))
    raise InputError(f"unknown kernel {spec!r}: use bicubic, lanczos2, lanczos3, gaussian:SIGMA or a .npy file")
