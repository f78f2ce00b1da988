"""Image quality metrics for Wald-protocol evaluation.

Arrays are ``(C, H, W)`` in the raster's own units (e.g. reflectance ×10⁴). PSNR (scikit-image) uses
the reference's dynamic range (max − min over all bands; per band: that band's) as peak; SSIM
(scikit-image's ``structural_similarity`` at its defaults, computed so that values large against their range
keep their precision: ``ssim_map``) is computed per band with that band's range and averaged; SAM is the mean spectral
angle in degrees; ERGAS follows Wald (2000): ``100/s · sqrt(mean_b (RMSE_b / μ_b)²)`` (per band: the
same with one band); SRE is per band ``10·log10(μ_b² / MSE_b)`` in dB and overall the mean of the bands'
SRE in dB, as the Sentinel-2 super-resolution literature reports it (Lanaras et al. 2018). The overall ERGAS
and SRE take the bands where the band's score is finite: a band of mean 0 (ERGAS +∞, SRE −∞; NaN when also
reproduced exactly) or, for SRE, reproduced exactly (+∞) is left out (``left_out`` names it) instead of making
the overall score infinite and hiding the others; when no band's is finite the overall score is the bands' own
(one band of mean 0: ERGAS +∞, SRE −∞ as the band's; NaN where they disagree or one is NaN).
Higher is better for PSNR, SSIM and SRE; lower for RMSE, SAM and ERGAS (``HIGHER_IS_BETTER``).
A perfect estimate scores infinite PSNR and SRE; SAM is NaN for a single band. A constant reference band has
no range, so its PSNR and SSIM are undefined (NaN; matched exactly: ∞ and 1) and the overall SSIM averages the
other bands' (every band constant: the mean of theirs, 1 when matched exactly). Undefined is always NaN, which
``core.report`` shows as a dash and writes as ``null``. Any NaN in the estimate makes every score NaN (SAM included).

Every metric takes an optional ``mask``, ``(H, W)`` booleans of the pixels to score (Wald's protocol on a raster with
nodata: ``core.evaluation``); the values elsewhere are never read. Every metric but SSIM takes pixels one by one and is
computed on the scored pixels' values as on an image of them alone (ranges, means and spectra included); SSIM averages
scikit-image's full map over the scored pixels whose whole window is scored (``ssim_map``). A mask of every pixel
scores to the bit as no mask.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.ndimage import minimum_filter, uniform_filter
from skimage.metrics import peak_signal_noise_ratio

#: Every metric ``all_metrics`` reports, and whether a larger value is better.
HIGHER_IS_BETTER = {"psnr": True, "ssim": True, "rmse": False, "sam": False, "ergas": False, "sre": True}
#: SSIM's window edge (pixels) and constants, scikit-image's defaults (Wang et al. 2004): ``C1 = (K1·L)²``,
#: ``C2 = (K2·L)²`` with ``L`` the band's range.
SSIM_WINDOW, SSIM_K1, SSIM_K2 = 7, 0.01, 0.03
#: The overall scores that pool the values of every band (PSNR's peak is the range over all bands, RMSE's mean and
#: SAM's spectra take every band's values): they mean something only when the bands share one unit.
POOLED_METRICS = ("psnr", "rmse", "sam")
#: The overall scores that leave out the bands whose own score is not finite (``left_out``).
LEFT_OUT_METRICS = ("ergas", "sre")


def _scored(mask: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray | None:
    """``mask`` (module docstring) checked against ``(C, H, W)`` images of ``shape``; ``None`` for every pixel (no mask,
    or one of every pixel, so that it scores to the bit as none). A mask of no pixel is a ``ValueError``."""
    if mask is None:
        return None
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != tuple(shape[-2:]):
        raise ValueError(f"mask {mask.shape} does not match images {shape}")
    if not mask.any():
        raise ValueError("the mask leaves no pixel to score")
    return None if mask.all() else mask


def _pair(estimate: np.ndarray, reference: np.ndarray, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``estimate`` and ``reference`` ``(C, H, W)`` as float64; with a ``mask`` (``_scored``), their values at its ``N``
    pixels as ``(C, N, 1)`` arrays, on which every metric that takes pixels one by one is computed as on an image."""
    if estimate.shape != reference.shape:
        raise ValueError(f"shape mismatch: {estimate.shape} vs {reference.shape}")
    e, r = estimate.astype(np.float64), reference.astype(np.float64)
    mask = _scored(mask, r.shape)
    return (e, r) if mask is None else (e[:, mask][..., None], r[:, mask][..., None])


def rmse_per_band(estimate: np.ndarray, reference: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    e, r = _pair(estimate, reference, mask)
    return np.sqrt(((e - r) ** 2).mean(axis=(1, 2)))


def rmse(estimate: np.ndarray, reference: np.ndarray, mask: np.ndarray | None = None) -> float:
    e, r = _pair(estimate, reference, mask)
    return float(np.sqrt(((e - r) ** 2).mean()))


def psnr(estimate: np.ndarray, reference: np.ndarray, mask: np.ndarray | None = None) -> float:
    e, r = _pair(estimate, reference, mask)
    span = float(r.max() - r.min())
    if span == 0:  # no range to be a peak: only a perfect estimate has a meaningful (infinite) PSNR
        return float("inf") if np.array_equal(e, r) else float("nan")
    with np.errstate(divide="ignore"):
        return float(peak_signal_noise_ratio(r, e, data_range=span))


def psnr_per_band(estimate: np.ndarray, reference: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    return np.array([psnr(eb[None], rb[None]) for eb, rb in zip(*_pair(estimate, reference, mask))])


def ssim_per_band(estimate: np.ndarray, reference: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    e, r = _pair(estimate, reference)
    scored = _scored(mask, r.shape)
    return np.array([_band_ssim(eb, rb, scored) for eb, rb in zip(e, r)])


def _band_ssim(e: np.ndarray, r: np.ndarray, mask: np.ndarray | None = None) -> float:
    """SSIM of one band with its reference's range over the ``mask`` (``_scored``: ``None`` for every pixel); for a
    constant reference 1 when matched exactly, else NaN; NaN when no window is wholly scored (``scored_windows``)."""
    scored_e, scored_r = (e, r) if mask is None else (e[mask], r[mask])
    span = float(scored_r.max() - scored_r.min())
    if span == 0:
        return 1.0 if np.array_equal(scored_e, scored_r) else float("nan")
    windows = ssim_map(e, r, span, mask)
    if mask is not None:
        windows = windows[scored_windows(mask)]
    return float(windows.mean()) if windows.size else float("nan")


def scored_windows(mask: np.ndarray) -> np.ndarray:
    """``(H − 6, W − 6)`` booleans over ``ssim_map``'s windows: those whose every pixel ``mask`` ``(H, W)`` scores."""
    pad = SSIM_WINDOW // 2
    return minimum_filter(mask.astype(np.uint8), SSIM_WINDOW)[pad:-pad, pad:-pad] > 0


def ssim_map(e: np.ndarray, r: np.ndarray, span: float, mask: np.ndarray | None = None) -> np.ndarray:
    """The SSIM of each ``SSIM_WINDOW``-pixel window wholly inside the ``(H, W)`` bands ``e`` and ``r`` (an
    ``(H − 6, W − 6)`` map), ``span`` being the reference's range: scikit-image's ``structural_similarity`` with
    its defaults (uniform windows, sample covariance), whose mean is the band's SSIM. Unlike it, the variances and
    the covariance are taken of both bands less the reference's mean, and the luminance term is written
    ``1 − (μe − μr)² / (μe² + μr² + C1)``: computed as ``E[x²] − E[x]²`` on the values themselves they lost every
    digit on rasters whose values are large against their range (uint32 near 2³², float64 offset by 10¹²).

    With a ``mask`` ``(H, W)`` of the scored pixels the mean is that of the scored values, and both bands read 0
    (that mean) elsewhere, so that the values there are never read; only the windows ``scored_windows`` keeps, which
    such a value does not reach, are scikit-image's (its full map at their centres)."""
    offset = r.mean() if mask is None else r[mask].mean()
    x, y = e - offset, r - offset
    if mask is not None:
        x, y = np.where(mask, x, 0.0), np.where(mask, y, 0.0)
    cov_norm = SSIM_WINDOW**2 / (SSIM_WINDOW**2 - 1)
    mx, my = uniform_filter(x, SSIM_WINDOW), uniform_filter(y, SSIM_WINDOW)
    vx = cov_norm * (uniform_filter(x * x, SSIM_WINDOW) - mx * mx)
    vy = cov_norm * (uniform_filter(y * y, SSIM_WINDOW) - my * my)
    vxy = cov_norm * (uniform_filter(x * y, SSIM_WINDOW) - mx * my)
    c1, c2 = (SSIM_K1 * span) ** 2, (SSIM_K2 * span) ** 2
    luminance = 1 - (mx - my) ** 2 / ((mx + offset) ** 2 + (my + offset) ** 2 + c1)
    structure = (2 * vxy + c2) / (vx + vy + c2)
    pad = SSIM_WINDOW // 2
    return (luminance * structure)[pad:-pad, pad:-pad]


def ssim(estimate: np.ndarray, reference: np.ndarray, mask: np.ndarray | None = None) -> float:
    """The mean SSIM of the bands whose reference is not constant (the same bands for every estimate of one
    reference); when every band is constant, the mean of theirs (1 when each is matched exactly, else NaN, as
    ``ssim_per_band``); NaN when the estimate holds a non-finite value (each over the ``mask``)."""
    scored_e, scored_r = _pair(estimate, reference, mask)
    if not np.isfinite(scored_e).all():
        return float("nan")
    varying = np.array([rb.max() > rb.min() for rb in scored_r])
    kept = varying if varying.any() else ~varying
    return float(ssim_per_band(np.asarray(estimate)[kept], np.asarray(reference)[kept], mask).mean())


def sam(estimate: np.ndarray, reference: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean spectral angle (degrees) between per-pixel spectra; pixels with a zero spectrum are skipped.

    NaN (undefined) for a single band, where every angle is 0° or 180° whatever the error, and when no
    pixel has a non-zero spectrum.
    """
    e, r = _pair(estimate, reference, mask)
    dot = (e * r).sum(axis=0)
    norms = np.linalg.norm(e, axis=0) * np.linalg.norm(r, axis=0)
    ok = norms > 0
    if e.shape[0] < 2 or not ok.any() or not (np.isfinite(e).all() and np.isfinite(r).all()):
        return float("nan")
    angles = np.arccos(np.clip(dot[ok] / norms[ok], -1.0, 1.0))
    return float(np.degrees(angles).mean())


def ergas(estimate: np.ndarray, reference: np.ndarray, scale: int, mask: np.ndarray | None = None) -> float:
    """The overall ERGAS, ``100/s · sqrt(mean_b (RMSE_b / μ_b)²)`` over the bands where the band's ERGAS is
    finite (``left_out`` names the others: a band of mean 0); +∞ or NaN when no band's is (``finite_bands``)."""
    e, r = _pair(estimate, reference, mask)
    kept = finite_bands(ergas_per_band(e, r, scale), e, r)
    return float(np.sqrt((kept**2).mean()))


def ergas_per_band(estimate: np.ndarray, reference: np.ndarray, scale: int, mask: np.ndarray | None = None) -> np.ndarray:
    """ERGAS of each band alone: ``100/s · RMSE_b / |μ_b|`` (never negative: a band of negative mean counts by size)."""
    e, r = _pair(estimate, reference, mask)
    with np.errstate(divide="ignore", invalid="ignore"):
        return 100.0 / scale * rmse_per_band(e, r) / np.abs(r.mean(axis=(1, 2)))


def sre_per_band(estimate: np.ndarray, reference: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Each band's ``10·log10(μ_b² / MSE_b)`` (dB): +∞ when reproduced exactly, −∞ (NaN if exact) when μ_b is 0."""
    e, r = _pair(estimate, reference, mask)
    mse = ((e - r) ** 2).mean(axis=(1, 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        return 10 * np.log10(r.mean(axis=(1, 2)) ** 2 / mse)


def left_out(per_band: Sequence[float]) -> list[int]:
    """The bands (0-based) an overall ERGAS or SRE leaves out: those whose score (``ergas_per_band``,
    ``sre_per_band``) is not finite, when at least one band's is; none otherwise (the overall score is then
    not finite either)."""
    values = np.asarray(per_band, dtype=np.float64)
    finite = np.isfinite(values)
    return np.flatnonzero(~finite).tolist() if finite.any() else []


def finite_bands(per_band: np.ndarray, estimate: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """The per-band scores an overall score combines: ``per_band`` less the bands ``left_out`` names; ``[NaN]``
    when the estimate or the reference holds a non-finite value (every score is then NaN, not a score of the
    other bands)."""
    if not (np.isfinite(estimate).all() and np.isfinite(reference).all()):
        return np.array([np.nan])
    return np.delete(per_band, left_out(per_band))


def sre(estimate: np.ndarray, reference: np.ndarray, mask: np.ndarray | None = None) -> float:
    """The overall SRE (dB): the mean of the bands' SRE over the bands where it is finite (``left_out`` names
    the others). When no band's is finite, the mean of them all: +∞ when every band is reproduced exactly, −∞
    when every band's mean is 0 (one band: its own SRE), NaN otherwise; NaN when the estimate or the reference
    holds a non-finite value."""
    e, r = _pair(estimate, reference, mask)
    kept = finite_bands(sre_per_band(e, r), e, r)
    with np.errstate(invalid="ignore"):  # +∞ beside −∞
        return float(kept.mean())


def all_metrics(estimate: np.ndarray, reference: np.ndarray, scale: int, mask: np.ndarray | None = None) -> dict[str, float]:
    """PSNR (dB), SSIM, RMSE, SAM (°), ERGAS and SRE (dB; the mean over bands of ``sre``) of ``estimate`` against
    ``reference``, over the ``mask`` (module docstring)."""
    return {
        "psnr": psnr(estimate, reference, mask),
        "ssim": ssim(estimate, reference, mask),
        "rmse": rmse(estimate, reference, mask),
        "sam": sam(estimate, reference, mask),
        "ergas": ergas(estimate, reference, scale, mask),
        "sre": sre(estimate, reference, mask),
    }


def band_metrics(estimate: np.ndarray, reference: np.ndarray, scale: int, mask: np.ndarray | None = None) -> dict[str, list[float]]:
    """Per band: PSNR (the band's range as peak), SSIM, RMSE, ERGAS and SRE (SAM needs several bands), over the ``mask``."""
    return {
        "psnr": psnr_per_band(estimate, reference, mask).tolist(),
        "ssim": ssim_per_band(estimate, reference, mask).tolist(),
        "rmse": rmse_per_band(estimate, reference, mask).tolist(),
        "ergas": ergas_per_band(estimate, reference, scale, mask).tolist(),
        "sre": sre_per_band(estimate, reference, mask).tolist(),
    }
