"""Registration check of a guide against its target before guided sharpening.

Guided DIP trusts the georeferencing: the guide's pixels are taken to nest exactly in the target's
(``core.grid.nest``). A guide that is off by a pixel (a co-registration error, a resampled product, an
edited geotransform) still nests, and the sharpened output silently follows the guide's edges, so it lands
off its own georeferencing. This module estimates the residual shift from the pixels themselves, once per
run on a central area of at most ``MAX_EDGE`` target pixels (``central_window``), and words a warning when
it is large and trusted: the edges correlate well enough (``MIN_CORRELATION``) over enough pixels
(``MIN_PIXELS``; fewer, and the check is skipped with a note).

Estimate: the guide is degraded onto the target's grid by its own kernels (which carry the grids' phase,
so an aligned Landsat pan lands on the multispectral pixels), every band of both rasters is standardised
over its valid pixels, and each raster's *edge map* is the sum over its bands of the gradient magnitudes.
Edges, not values, are compared because the bands of target and guide may be correlated with either sign
(near infrared against visible bands). The shift is the peak of the cross-correlation of the two edge
maps (mean removed, Hann-windowed, invalid pixels zeroed), refined to ``1 / UPSAMPLE`` pixel by the
upsampled DFT of ``skimage.registration.phase_cross_correlation``; the peak's normalised correlation
says how far the estimate can be trusted.

Sign convention: ``dx``, ``dy`` in target pixels, positive when the guide's content lies to the right
(higher columns) and below (higher rows) of the same content in the target.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from skimage.registration import phase_cross_correlation

from .degradation import degrade_array
from .dip import fill_invalid
from .grid import Window
from .guided import degraded_valid
from .kernels import Kernel
from .normalise import exact_float
from .raster import valid_interior

#: Largest edge of the central area compared, in target pixels (one FFT of at most 256² pixels) and in guide
#: pixels (what is read and degraded: at most 1024² guide pixels per band).
MAX_EDGE = 256
MAX_GUIDE_EDGE = 1024
#: Sub-pixel resolution of the estimate: 1 / UPSAMPLE target pixel.
UPSAMPLE = 20
#: Shift (target pixels, Euclidean) above which the run warns: a third of a pixel already moves the
#: output's edges visibly (a guide one 10 m pixel off a 20 m target, 0.5 pixel, moved the output by
#: 0.78 output pixels and made it worse than bicubic).
WARN_SHIFT = 0.3
#: Smallest normalised correlation of the edge maps at the peak for the estimate to be trusted: on the
#: committed crops, the edges of target and guide of one scene correlate at 0.71–0.92 (Sentinel-2 10 m with
#: 20 m and 60 m bands, Landsat 8 pan with multispectral; aligned or shifted), those of another area at 0.21
#: and noise at 0.09.
MIN_CORRELATION = 0.5
#: Fewest target pixels compared (``compared_area``) for the estimate to be trusted; below it the check is skipped
#: with a note. On random windows (60 a size) of three real Sentinel-2 L1C scenes, their 20 m and 60 m bands
#: against their 10 m bands on the aligned grids, the estimate read a trusted shift above ``WARN_SHIFT`` in up to
#: 5 of 60 windows of 16² to 32² target pixels in T33UUB and T49JGM (up to 14 in T33UUU, lossy JPEG 2000 with
#: clouds), and in 0–1 of 60 from 48² (T33UUU: up to 10, most over clouds, which do move between bands); a real
#: shift of half a target pixel was named in 58–60 of 60 windows from 48² in T33UUB and T49JGM.
MIN_PIXELS = 48 * 48


@dataclass(frozen=True)
class Misregistration:
    """The estimated shift of the guide against the target (module docstring for the signs)."""

    dx: float  #: target pixels, positive: the guide's content lies at higher columns (east on north-up grids)
    dy: float  #: target pixels, positive: the guide's content lies at higher rows (south on north-up grids)
    correlation: float  #: normalised correlation of the edge maps at the peak, 0–1

    @property
    def distance(self) -> float:
        """The length of the shift, target pixels."""
        return float(np.hypot(self.dx, self.dy))


def central_window(width: int, height: int, scale: int) -> Window:
    """The central window of a ``width × height`` target whose edges are at most ``MAX_EDGE`` target pixels and
    ``MAX_GUIDE_EDGE`` guide pixels (``scale`` guide pixels per target pixel)."""
    edge = min(MAX_EDGE, MAX_GUIDE_EDGE // scale)
    w, h = min(width, edge), min(height, edge)
    return Window((width - w) // 2, (height - h) // 2, w, h)


def edge_map(image: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """``(C, h, w)`` values with their ``(h, w)`` validity → ``(h, w)`` sum over bands of the gradient magnitude
    of each band standardised over the valid pixels (central differences; invalid pixels must be filled)."""
    edges = np.zeros(image.shape[-2:])
    for band in image.astype(np.float64):
        spread = band[valid].std()
        if spread > 0:
            rows, cols = np.gradient(band / spread)
            edges += np.hypot(rows, cols)
    return edges


def estimate_shift(reference: np.ndarray, moving: np.ndarray, valid: np.ndarray) -> Misregistration:
    """The shift of ``moving`` against ``reference`` (both ``(h, w)`` edge maps) over the ``valid`` ``(h, w)`` pixels;
    correlation 0 (untrusted) when either has no edges there."""
    window = np.outer(np.hanning(reference.shape[0]), np.hanning(reference.shape[1])) * valid

    def prepared(edges: np.ndarray) -> np.ndarray:
        return (edges - edges[valid].mean()) * window

    reference, moving = prepared(reference), prepared(moving)
    if not (reference.any() and moving.any()):  # no edges in one of them (a featureless area): nothing to register
        return Misregistration(dx=0.0, dy=0.0, correlation=0.0)
    shift, error, _ = phase_cross_correlation(reference, moving, upsample_factor=UPSAMPLE, normalization=None)
    # skimage returns the shift that registers moving onto reference: the opposite of moving's offset (0.0 - 0.0
    # is 0.0 where -0.0 would print as "-0.00")
    dy, dx = (0.0 - float(v) for v in shift)
    return Misregistration(dx=dx, dy=dy, correlation=float(np.sqrt(max(0.0, 1.0 - error))))


def compared_area(target_valid: np.ndarray, guide_valid: np.ndarray, guide_kernels: list[Kernel]) -> np.ndarray:
    """The ``(h, w)`` target pixels whose edges are compared: valid in every target band (``(T, h, w)``), where the
    guide degraded by ``guide_kernels`` (``guide_valid``: ``(G, s·h, s·w)``) sees no invalid pixel, and whose
    central differences (``edge_map``) read no filled pixel of either (the valid pixels next to an invalid one are
    left out: their gradients would compare the two rasters' fills)."""
    with torch.no_grad():
        low_valid = degraded_valid(torch.as_tensor(guide_valid, dtype=torch.float32)[None], guide_kernels)[0, 0].numpy() > 0
    return valid_interior(target_valid.all(axis=0) & low_valid)


def guide_misregistration(
    target: np.ndarray, target_valid: np.ndarray, guide: np.ndarray, guide_valid: np.ndarray, guide_kernels: list[Kernel]
) -> Misregistration | None:
    """The guide's shift against the target (module docstring), or ``None`` when fewer than ``MIN_PIXELS`` target
    pixels can be compared (``compared_area``): too few to tell a shift of ``WARN_SHIFT`` from noise.

    target: ``(T, h, w)`` and its validity; guide: ``(G, s·h, s·w)`` on the nested grid and its validity;
    guide_kernels: one per guide band (``core.sharpen.band_kernels``, with the grids' phase). Raw values:
    every band is standardised here. Filled in the float type that holds the values (``normalise.exact_float``:
    float64 for int32, uint32 and float64, whose edges float32 would round away on a large offset) and degraded
    at that precision (``degrade_array``).
    """
    valid = compared_area(target_valid, guide_valid, guide_kernels)
    if min(valid.shape) < 8 or valid.sum() < MIN_PIXELS:
        return None

    def filled(values: np.ndarray, ok: np.ndarray) -> np.ndarray:
        x = torch.as_tensor(np.asarray(values, dtype=exact_float(values.dtype)))[None]
        return fill_invalid(x, torch.as_tensor(ok).to(x.dtype)[None])[0].numpy()

    with torch.no_grad():
        guide_low = degrade_array(filled(guide, guide_valid), guide_kernels)
        filled_target = filled(target, target_valid)
    return estimate_shift(edge_map(filled_target, valid), edge_map(guide_low, valid), valid)


def registration_warning(misregistration: Misregistration | None, roles: tuple[str, str] | None = None) -> str | None:
    """A one-line warning when the guide is trusted to be shifted by more than ``WARN_SHIFT`` target pixels.

    ``roles``: what the target and the guide are, in the front end's words (e.g. "the 60 m bands B1, B9, B10"),
    named beside them; ``None``: the target and the guide the user gave."""
    if misregistration is None or misregistration.correlation < MIN_CORRELATION or misregistration.distance <= WARN_SHIFT:
        return None
    m = misregistration
    target, guide = ("the target", "the guide") if roles is None else (f"the target ({roles[0]})", f"the guide ({roles[1]})")
    return (
        f"warning: {guide} looks shifted against {target} by {m.dx:+.2f} target pixels in x (columns) and "
        f"{m.dy:+.2f} in y (rows) (edge correlation {m.correlation:.2f}): the sharpened output follows the guide's "
        "edges and would be shifted too; co-register the guide to the target (e.g. gdalwarp or the QGIS "
        "Georeferencer) or check that both rasters are georeferenced alike (clouds move between bands taken "
        "seconds apart, as Sentinel-2's are, and look shifted too)"
    )


def skipped_note(roles: tuple[str, str] | None = None) -> str:
    """The log line when ``guide_misregistration`` has too few pixels to compare (``roles`` as ``registration_warning``)."""
    pair = "target and guide" if roles is None else f"{roles[0]} and {roles[1]}"
    return (f"the registration check of {pair} is skipped: fewer than {MIN_PIXELS} valid target pixels can be compared, "
            "too few to tell a shift of a third of a pixel from noise")
