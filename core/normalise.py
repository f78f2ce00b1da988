"""Per-band normalisation with an exact inverse.

Each band is mapped linearly so that its robust low and high percentiles (over valid pixels only)
become 0 and 1: ``n = (x − lo) / (hi − lo)``. Values beyond the percentiles are kept (not clipped),
so ``denormalise(normalise(x)) == x`` up to float rounding. Nothing assumes 8-bit input.

Precision: the offset and the span are applied in float64, before the cast to float32 and after the cast back,
so whatever works in float32 on normalised values (the networks, the degradation, bicubic interpolation,
back-projection) rounds only the normalised residual: about 1e-7 of a band's span, not of its values. Raw values
are held in ``exact_float`` of their type: float32 cannot hold int32, uint32 or float64 values (123456789 reads as
123456792, 1e10 + 0.5 as 1e10).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def exact_float(dtype: np.dtype | type | str) -> np.dtype:
    """The float type that holds every value of ``dtype`` exactly, in which its raw values are held and computed
    on: float32 for 8- and 16-bit integers and float32 itself, float64 for the others (int32, uint32, float64),
    whose values float32's 24-bit significand does not hold."""
    return np.dtype(np.float32) if np.can_cast(dtype, np.float32) else np.dtype(np.float64)


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
        """``(C, H, W)`` raw values → float32 normalised values (computed in float64: give the raw values in
        ``exact_float`` of their type, not rounded to float32 first)."""
        return ((image - self.lo[:, None, None]) / self.span[:, None, None]).astype(np.float32)

    def denormalise(self, image: np.ndarray) -> np.ndarray:
        """Inverse of ``normalise``; returns float64."""
        return image.astype(np.float64) * self.span[:, None, None] + self.lo[:, None, None]
