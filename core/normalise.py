"""Per-band normalisation with an exact inverse.

Each band is mapped linearly so that its robust low and high percentiles (over valid pixels only)
become 0 and 1: ``n = (x − lo) / (hi − lo)``. Values beyond the percentiles are kept (not clipped),
so ``denormalise(normalise(x)) == x`` up to float rounding. Nothing assumes 8-bit input.

Precision: the offset and the span are applied in float64, before the cast to float32 and after the cast back,
so whatever works in float32 on normalised values (the networks, the degradation, bicubic interpolation,
back-projection) rounds only the normalised residual: about 1e-7 of a band's span, not of its values. Raw values
are held in ``exact_float`` of their type: float32 cannot hold int32, uint32 or float64 values (123456789 reads as
123456792, 1e10 + 0.5 as 1e10).

A band whose valid pixels all hold one value over the whole input a run processes is written as exactly that value
(``array_constants``, or ``core.raster.constant_bands`` for a file; ``hold_constants``), whatever the method: the
span of such a band is a stand-in (``BandScaling.fit``) and no network outputs an exact constant.

Guided DIP raises negative output values to 0 in the bands whose valid input holds no negative value (``ZeroFloor``):
the high-pass detail it injects from the guide can undershoot far below any input value over dark areas.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .errors import InputError


def exact_float(dtype: np.dtype | type | str) -> np.dtype:
    """The float type that holds every value of ``dtype`` exactly, in which its raw values are held and computed
    on: float32 for 8- and 16-bit integers and float32 itself, float64 for the others (int32, uint32, float64),
    whose values float32's 24-bit significand does not hold."""
    return np.dtype(np.float32) if np.can_cast(dtype, np.float32) else np.dtype(np.float64)


def real_image(image: np.ndarray, name: str = "image") -> np.ndarray:
    """``image`` as a ``(bands, rows, cols)`` array of real values in the float type that holds them exactly
    (``exact_float``); another number of dimensions, or complex, text or object values, are a one-line ``InputError``
    naming ``name`` (the in-memory entry points' argument)."""
    array = np.asarray(image)
    if array.ndim != 3:
        raise InputError(f"{name} must be a (bands, rows, cols) array, got one of shape {array.shape}")
    if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        raise InputError(f"{name} must hold real numbers (integers or floats), got {array.dtype}")
    return array.astype(exact_float(array.dtype), copy=False)


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


def band_extremes(values: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The smallest and the largest valid value of each band of ``values`` ``(C, H, W)`` (any dtype; ``valid``
    ``(C, H, W)`` bool): two float64 ``(C,)`` arrays, exact for every supported dtype; ``+inf`` and ``−inf`` for a
    band without a valid pixel."""
    low, high = np.full(values.shape[0], np.inf), np.full(values.shape[0], -np.inf)
    for band in np.flatnonzero(valid.any(axis=(1, 2))):
        taken = values[band][valid[band]]
        low[band], high[band] = taken.min(), taken.max()
    return low, high


def constant_values(low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """``(C,)`` float64: each band's one value where its valid values span nothing (``low == high``, from
    ``band_extremes`` over a run's whole input), NaN for a band that varies or has no valid pixel."""
    return np.where(low == high, low, np.nan)


def array_constants(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """``constant_values`` of a whole in-memory input ``(C, H, W)`` and its validity."""
    return constant_values(*band_extremes(values, valid))


def hold_constants(values: np.ndarray, constants: np.ndarray) -> np.ndarray:
    """``values`` ``(C, H, W)`` float64 with each band that ``constants`` (``constant_values``) gives a value for set
    to that value, in place: what a run writes for a band that is constant over its input (validity is unchanged:
    its nodata pixels stay nodata)."""
    bands = np.flatnonzero(~np.isnan(constants))
    values[bands] = constants[bands, None, None]
    return values


@dataclass
class ZeroFloor:
    """Negative output values raised to 0 in the bands whose valid input holds no negative value (guided DIP's
    default, ``GuidedDIPConfig.non_negative``): such a band measures a quantity that is never negative (reflectance,
    digital numbers), while the guide's high-pass detail injected over a dark area can take the estimate far below
    any input value (B11 of a lossy Sentinel-2 crop down to −417 over water, input minimum 384). Under Wald's
    protocol on real crops it changed nothing where the output held no negative value and improved every score
    where it did, while clamping to the input band's range cut real values (``benchmarks/guided_bounds.py``).

    ``held``: ``(C,)`` bool, the bands kept non-negative; ``names``: the bands as log lines name them. ``apply``
    counts, per band, the valid pixels it saw and raised and the least value among those raised, for ``notes``.
    """

    held: np.ndarray
    names: list[str]
    seen: np.ndarray = field(init=False)
    raised: np.ndarray = field(init=False)
    lowest: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.seen, self.raised = np.zeros(len(self.held), np.int64), np.zeros(len(self.held), np.int64)
        self.lowest = np.full(len(self.held), np.inf)

    @classmethod
    def of_input(cls, low: np.ndarray, names: list[str]) -> "ZeroFloor":
        """The floor of bands whose least valid input value (``low``: ``band_extremes`` over a run's whole input;
        ``+inf`` for a band without a valid pixel, which has no valid output pixel either) is at least 0."""
        return cls(low >= 0, names)

    def apply(self, values: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """``values`` ``(C, H, W)`` float64 with the held bands' negative valid values set to 0, in place (returned);
        ``valid``: ``(C, H, W)`` bool, the output's validity."""
        below = (values < 0) & valid & self.held[:, None, None]
        self.seen += valid.sum(axis=(1, 2))
        self.raised += below.sum(axis=(1, 2))
        self.lowest = np.minimum(self.lowest, np.where(below, values, np.inf).min(axis=(1, 2)))
        values[below] = 0.0
        return values

    def notes(self) -> list[str]:
        """One log line per band with values raised: how many of its valid output pixels, and down to what."""
        return [
            f"{name}: {raised} output pixels ({100.0 * raised / max(int(seen), 1):.3g} %) came out negative, down to "
            f"{lowest:.6g}, and were raised to 0: the input band holds no negative value (a run allowing negative values "
            "keeps them)"
            for name, raised, seen, lowest in zip(self.names, self.raised, self.seen, self.lowest) if raised
        ]
