"""The elongation and direction of an image's blur, read from its power spectrum.

A Gaussian blur of covariance ``Σ`` (low-resolution pixels²) multiplies the image's power spectrum by
``exp(−4π² fᵀΣf)`` (``f`` in cycles per pixel). Writing ``f`` in polar form (radius ``r``, angle
``φ``) and ``Σ`` by its mean variance ``m`` and elongation ``e = (σ_major² − σ_minor²) / 2`` along the
major axis at angle ``θ``::

    log P(r, φ) = scene(r, φ) − 4π² r² (m + e · cos 2(φ − θ))

The scene's own spectrum falls with ``r`` (a power law, ``log r``) and may be directional (a
coastline, a field pattern), but that directionality hardly changes with scale (an edge has the same
spectral direction at every radius), while the blur's grows with ``r²``. Fitting, over the ring
``RING`` of radii::

    log P ≈ a + b log r + r² (c cos 2φ + s sin 2φ) + c₀ cos 2φ + s₀ sin 2φ

separates the two: ``e = √(c² + s²) / 4π²`` and ``θ = ½ atan2(−s, −c)``. The mean width ``m`` cannot be
told from the scene's fall-off this way, so it comes from KernelGAN (``oriented_width``).

Measured on Sentinel-2 10 m crops (256², bands B4 B3 B2 B8) blurred by known Gaussians from
σ 0.6 × 0.5 to 1.2 × 0.4 low-resolution pixels at ×2 and ×4: the direction within 3° in 13 of 14
cases (20° for the nearly round 0.6 × 0.5 at ×4), including a coast whose own direction lies across the
blur's, where the fit without the scene terms was 69–87° off; the elongation within about 25 % (low
for the most elongated kernels). An isotropic blur reads as ``e`` ≈ 0.07–0.09 px², the noise floor.

Conventions: images ``(C, H, W)``; the power is averaged (Welch) over ``PATCH × PATCH`` windows without
nodata on a grid of half a window, each band of each window standardised and Hann-windowed; angles in
degrees anticlockwise from the column axis as the image is displayed (``core.kernels.KernelWidth``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .config import GAUSSIAN_TERM, KERNEL_FILE_TERM
from .errors import InputError
from .kernels import KernelWidth

#: Edge of the windows whose spectra are averaged (KernelGAN's crop size, so any image it accepts has one).
PATCH = 64
#: Radii fitted, in cycles per pixel: above the lowest frequencies a 64-pixel window resolves, below Nyquist.
RING = (0.05, 0.45)
#: At most this many windows are averaged (a regular subset of a large image's).
MAX_WINDOWS = 1024


@dataclass(frozen=True)
class SpectralAnisotropy:
    """A blur's elongation ``(σ_major² − σ_minor²) / 2`` in low-resolution pixels² and its major axis in degrees.

    windows: how many ``PATCH``² windows (times bands) the spectrum was averaged over.
    """

    elongation: float
    angle: float
    windows: int

    def __str__(self) -> str:
        return f"spectrum: elongation {self.elongation:.2f} px², major axis at {self.angle:.0f}°"


def window_sums(a: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """Sums of ``a`` ``(H, W)`` over every ``size × size`` window (``size`` ``(h, w)``: every ``h × w`` window):
    ``(H − h + 1, W − w + 1)`` by top-left."""
    h, w = (size, size) if isinstance(size, int) else size
    s = np.pad(a.astype(np.float64), ((1, 0), (1, 0))).cumsum(0).cumsum(1)
    return s[h:, w:] - s[:-h, w:] - s[h:, :-w] + s[:-h, :-w]


def clean_windows(valid: np.ndarray, size: int, purpose: str) -> np.ndarray:
    """Which ``size × size`` windows of ``valid`` ``(H, W)`` hold no invalid pixel: ``(H − size + 1, W − size + 1)`` by top-left.

    None at all → a one-line ``InputError`` saying that ``purpose`` needs one.
    """
    clean = window_sums(~valid, size) == 0
    if not clean.any():
        raise InputError(
            f"{purpose} needs a {size}×{size} window without nodata and there is none: use a larger raster or an extent "
            f"with fewer nodata pixels, or a known kernel ({GAUSSIAN_TERM}, {KERNEL_FILE_TERM}) instead of estimating one"
        )
    return clean


def varied_windows(band: np.ndarray, size: int) -> np.ndarray:
    """Which ``size × size`` windows of ``band`` ``(H, W)`` hold more than one value: ``(H − size + 1, W − size + 1)``
    by top-left. Exact (no variance rounding): a window holds one value when no two neighbouring pixels in it differ."""
    across = band[:, 1:] != band[:, :-1]
    down = band[1:] != band[:-1]
    return (window_sums(across, (size, size - 1)) > 0) | (window_sums(down, (size - 1, size)) > 0)


def window_origins(valid: np.ndarray, size: int = PATCH) -> list[tuple[int, int]]:
    """Top-left corners of ``size``² windows of ``valid`` ``(H, W)`` without invalid pixels, on a grid of ``size // 2``.

    When no window on the grid is clean, the first clean window anywhere; none at all → ``InputError``.
    """
    h, w = valid.shape
    if min(h, w) < size:
        raise InputError(f"image {w}×{h} is too small to read its blur from the spectrum: at least {size}×{size} pixels")
    clean = clean_windows(valid, size, "reading the blur from the spectrum")
    step = size // 2
    rows = sorted(set(range(0, h - size + 1, step)) | {h - size})
    cols = sorted(set(range(0, w - size + 1, step)) | {w - size})
    origins = [(r, c) for r in rows for c in cols if clean[r, c]] or [tuple(int(v) for v in np.argwhere(clean)[0])]
    if len(origins) > MAX_WINDOWS:
        origins = [origins[i] for i in np.linspace(0, len(origins) - 1, MAX_WINDOWS).astype(int)]
    return origins


def average_power(image: np.ndarray, valid: np.ndarray, size: int = PATCH) -> tuple[np.ndarray, int]:
    """Welch's average power spectrum ``(size, size)`` (``np.fft`` order) of ``image`` ``(C, H, W)`` and the windows used.

    Each band of each clean window is standardised (flat ones are skipped) and Hann-windowed.
    """
    taper = np.outer(np.hanning(size), np.hanning(size))
    power = np.zeros((size, size))
    count = 0
    for r, c in window_origins(valid, size):
        for band in image[:, r : r + size, c : c + size].astype(np.float64):
            spread = band.std()
            if spread > 0:
                power += np.abs(np.fft.fft2((band - band.mean()) / spread * taper)) ** 2
                count += 1
    if not count:
        raise InputError("the image is flat: its blur cannot be read from the spectrum")
    return power / count, count


def spectral_anisotropy(image: np.ndarray, valid: np.ndarray) -> SpectralAnisotropy:
    """The blur's elongation and direction from ``image`` ``(C, H, W)``; ``valid`` ``(H, W)`` marks data."""
    power, count = average_power(image, valid)
    f = np.fft.fftfreq(PATCH)
    fx, fy = np.meshgrid(f, -f)  # y up, as displayed (rows point down)
    r, phi = np.hypot(fx, fy), np.arctan2(fy, fx)
    ring = (r > RING[0]) & (r < RING[1])
    r, phi = r[ring], phi[ring]
    design = np.stack(
        [np.ones_like(r), np.log(r), r**2 * np.cos(2 * phi), r**2 * np.sin(2 * phi), np.cos(2 * phi), np.sin(2 * phi)], 1
    )
    coef, *_ = np.linalg.lstsq(design, np.log(power[ring] + 1e-12), rcond=None)
    c, s = coef[2], coef[3]
    angle = 0.5 * math.degrees(math.atan2(-s, -c)) % 180.0
    return SpectralAnisotropy(math.hypot(c, s) / (4 * math.pi**2), angle, count)


def oriented_width(width: KernelWidth, anisotropy: SpectralAnisotropy) -> KernelWidth:
    """The Gaussian with ``width``'s area (``major · minor``) and ``anisotropy``'s elongation and direction.

    Solves ``σ₁ σ₂ = major · minor`` and ``(σ₁² − σ₂²) / 2 = elongation``: the area is what KernelGAN
    finds best, the shape what the spectrum does (see the module docstring).
    """
    area = width.major * width.minor
    e = anisotropy.elongation
    root = math.hypot(e, area)
    return KernelWidth(math.sqrt(root + e), math.sqrt(max(root - e, 0.0)), anisotropy.angle)
