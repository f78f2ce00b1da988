"""Per-band normalisation with an exact inverse.

Each band is mapped linearly so that its robust low and high percentiles (over valid pixels only)
become 0 and 1: ``n = (x − lo) / (hi − lo)``. Values beyond the percentiles are kept (not clipped),
so ``denormalise(normalise(x)) == x`` up to float rounding. Nothing assumes 8-bit input.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class BandScaling:
    """Per-band offsets ``lo`` and spans ``hi − lo`` (float64 arrays of shape ``(C,)``)."""

    lo: np.ndarray
    span: np.ndarray

    @classmethod
    def fit(cls, image: np.ndarray, valid: np.ndarray, percentiles: tuple[float, float] = (0.5, 99.5)) -> "BandScaling":
        """Fit to ``image`` ``(C, H, W)`` using only pixels where ``valid`` ``(C, H, W)`` is true."""
        lo = np.zeros(image.shape[0])
        span = np.ones(image.shape[0])
        for band in range(image.shape[0]):
            values = image[band][valid[band]]
            if values.size:
                low, high = np.percentile(values.astype(np.float64), percentiles)
                lo[band] = low
                span[band] = high - low if high > low else max(abs(low), 1.0)
        return cls(lo, span)

    def normalise(self, image: np.ndarray) -> np.ndarray:
        """``(C, H, W)`` raw values → float32 normalised values."""
        return ((image - self.lo[:, None, None]) / self.span[:, None, None]).astype(np.float32)

    def denormalise(self, image: np.ndarray) -> np.ndarray:
        """Inverse of ``normalise``; returns float64."""
        return image.astype(np.float64) * self.span[:, None, None] + self.lo[:, None, None]
