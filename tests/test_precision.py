"""Rasters whose values float32 cannot hold (int32, uint32, float64) keep their precision end to end.

float32's 24-bit significand holds neither 123456789 (it reads as 123456792), 2000000123, 4000000001 nor 1e10 + 0.5,
and a ramp of 2000 on an offset of 2e9 falls into steps of 128. The values are read in float64 and normalised in
float64 (``core.normalise``); only the normalised values go through float32 (the networks, the degradation,
bicubic interpolation, back-projection), and the offset and span are applied again in float64 after the cast
back. So a constant comes back exactly, and a ramp on a large offset with float32's rounding of the ramp's own
range only: the bounds below are derived from that, not measured.
"""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
import torch
from affine import Affine

from internal_sr.core.cli import main
from internal_sr.core.degradation import blur_decimate, degrade_array, interpolation_matrix
from internal_sr.core.evaluation import BICUBIC, BICUBIC_BP, bicubic, evaluate
from internal_sr.core.kernels import make_kernel

from helpers import read, write_raster

#: float32's unit roundoff: a value rounded to float32 is within U of itself, relatively.
U = 2.0**-24
#: Values float32 rounds (above 2**24, or with a fraction below its resolution there), one per type it cannot hold.
CONSTANTS = [("int32", 123456789), ("int32", 2000000123), ("uint32", 4000000001), ("float64", 1e10 + 0.5)]
#: Large offsets a small ramp sits on.
OFFSETS = [("int32", 2_000_000_000), ("uint32", 4_000_000_000), ("float64", 1e10 + 0.5)]


def _rounding(dtype: str, magnitude: float) -> float:
    """How far a value written in ``dtype`` may lie from the exact one computed in float64: half a unit for an
    integer type (rounded, not truncated), two float64 roundings at ``magnitude`` (the output's and the reference's)
    for float64."""
    return 0.5 if np.issubdtype(np.dtype(dtype), np.integer) else 2 * float(np.spacing(magnitude))


def ramp(n: int = 40) -> np.ndarray:
    """``(1, n, n)`` float64 integer values in [0, 2000]: a ramp with a ripple along both axes, whose least and greatest
    values fill the first and the last column: each holds 1/n > 0.5 % of the pixels, so the normalisation's 0.5
    and 99.5 percentiles are those values exactly, on an offset as without (``BandScaling.fit``)."""
    rows, cols = np.mgrid[0:n, 0:n].astype(np.float64)
    values = np.round(40 * cols + 3 * rows + 7 * np.sin(rows * cols / 9.0)) + 20
    values[:, 0], values[:, -1] = 0, 2000
    return values[None]


def _run(method: str, tmp_path, name: str, data: np.ndarray, dtype: str, *extra: str) -> np.ndarray:
    source = write_raster(str(tmp_path / f"{name}.tif"), data.astype(dtype))
    out = str(tmp_path / f"{name}_{method}.tif")
    device = () if method == "degrade" else ("--device", "cpu")
    assert main([method, source, out, "--scale", "2", *device, *extra]) == 0
    with rasterio.open(out) as dst:
        assert dst.dtypes[0] == dtype
    return read(out).astype(np.float64)  # exact: float64 holds every int32 and uint32 value


@pytest.mark.parametrize("dtype, value", CONSTANTS)
@pytest.mark.parametrize("method, extra", [
    ("degrade", ()), ("degrade", ("--kernel", "gaussian:0.8")), ("degrade", ("--kernel", "lanczos3")), ("dip", ("--iterations", "3")),
    ("knitwork", ("--iterations", "3")),
])
def test_a_constant_comes_back_exactly(tmp_path, dtype, value, method, extra):
    """Degrading a constant by a normalised kernel gives the constant; DIP and Knitworks of a constant too: a band
    constant over the input is written as its value (``core.normalise.hold_constants``; Knitworks' network, unlike
    DIP's zero-initialised head, does not output an exact constant)."""
    out = _run(method, tmp_path, "constant", np.full((1, 40, 40), value, dtype=dtype), dtype, *extra)
    assert out.shape == ((1, 20, 20) if method == "degrade" else (1, 80, 80))
    assert np.unique(out).tolist() == [value]


@pytest.mark.parametrize("dtype, offset", OFFSETS)
@pytest.mark.parametrize("kernel", ["bicubic", "gaussian:0.8"])
def test_degrade_of_a_ramp_on_a_large_offset_rounds_only_the_ramp(tmp_path, dtype, offset, kernel):
    """``degrade`` of offset + ramp against the exact degradation (float64 taps on the ramp alone, plus the offset).

    Bound: the normalised values are rounded to float32 once (≤ U of them), the taps too (≤ U of each), and a
    float32 dot product of n terms rounds by at most n·U of the sum of their magnitudes (first order): the
    separable blur is two passes of L taps (n = L each), a 2-D one one pass of L² taps. With the values at most
    the ramp's range R from the normalisation's offset (which lies in the data's range) and A = Σ|taps| (2-D),
    that is (terms + 2)·U·A·R in raw units, plus the written type's rounding (half a unit for an integer type).
    The offset itself goes in and out in float64. The old float32 path rounded the values themselves to steps of
    128 (int32 near 2e9), 256 (uint32 near 4e9) and 1024 (float64 near 1e10).
    """
    k = make_kernel(kernel, 2)
    data = ramp() + offset
    out = _run("degrade", tmp_path, "ramp", data, dtype, "--kernel", kernel)[0]
    with torch.no_grad():
        exact = blur_decimate(torch.as_tensor(ramp())[None], torch.as_tensor(k.as_2d), 2)[0, 0].numpy() + offset
    terms = 2 * k.separable.size if k.separable is not None else k.as_2d.size
    bound = (terms + 2) * U * np.abs(k.as_2d).sum() * np.ptp(ramp()) + _rounding(dtype, offset + 4000)
    assert bound < 0.52  # what the test can tell: well under a unit of the ramp
    assert np.abs(out - exact).max() <= bound


@pytest.mark.parametrize("dtype, offset", OFFSETS)
@pytest.mark.parametrize("method", ["dip", "knitwork", "guided"])
def test_a_ramp_on_a_large_offset_gives_the_run_without_it(tmp_path, dtype, offset, method):
    """DIP, Knitworks and guided DIP of offset + ramp give offset + what they give of the ramp alone.

    The ramp's percentiles are exact values (``ramp``), so the normalised values, and with one seed everything the
    networks do with them, are the same bits with the offset and without: the runs differ only where the offset
    goes back on in float64, by a float64 rounding at the offset's magnitude, which an integer output rounds away
    but at a tie (one unit). The plain runs are int32 (float64 for float64), which holds the ramp and its overshoot.
    The old float32 reading rounded offset + ramp to steps of 128 (int32), 256 (uint32) and 1024 (float64).
    Guided DIP runs with negative values allowed: the ramp alone starts at 0, so by default its overshoot below 0 is
    raised to 0 (``core.normalise.ZeroFloor``), which the offset ramp's is not.
    """
    plain_dtype = "float64" if dtype == "float64" else "int32"
    bound = 1.0 if plain_dtype == "int32" else 2 * float(np.spacing(offset + 1e4))
    if method == "guided":
        target, guide = ramp(20), ramp(40)
        outs = []
        for name, value, kind in (("plain", 0, plain_dtype), ("offset", offset, dtype)):
            t = write_raster(str(tmp_path / f"t_{name}.tif"), (target + value).astype(kind),
                             transform=Affine(20.0, 0.0, 300000.0, 0.0, -20.0, 5800000.0))
            g = write_raster(str(tmp_path / f"g_{name}.tif"), (guide + value).astype(kind))
            out = str(tmp_path / f"{name}_guided.tif")
            assert main(["guided", t, g, out, "--iterations", "2", "--kernel", "bicubic", "--guide-kernel", "bicubic",
                         "--device", "cpu", "--allow-negative"]) == 0
            outs.append(read(out).astype(np.float64) - value)
        plain, shifted = outs
    else:
        plain = _run(method, tmp_path, "plain", ramp(), plain_dtype, "--iterations", "2")
        shifted = _run(method, tmp_path, "offset", ramp() + offset, dtype, "--iterations", "2") - offset
    assert plain.shape == shifted.shape == ((1, 40, 40) if method == "guided" else (1, 80, 80))
    assert np.abs(shifted - plain).max() <= bound


@pytest.mark.parametrize("dtype, value", CONSTANTS)
def test_evaluation_baselines_of_a_constant_are_the_constant(tmp_path, dtype, value):
    """Wald's protocol on a constant: its degraded copy, bicubic and bicubic + back-projection are the constant."""
    source = write_raster(str(tmp_path / "constant.tif"), np.full((1, 40, 40), value, dtype=dtype))
    e = evaluate(source, "bicubic", 2, "bicubic")
    assert np.unique(e.low).tolist() == [value]
    for label in (BICUBIC, BICUBIC_BP):
        assert np.unique(e.estimates[label]).tolist() == [value], label


@pytest.mark.parametrize("offset", [2e9, 1e10 + 0.5])
def test_bicubic_and_degradation_of_float64_arrays_round_only_the_ramp(offset):
    """In memory (evaluation's baselines): ``degrade_array`` and ``bicubic`` of offset + ramp against float64 on
    the ramp alone, plus the offset. Bounds as in the ``degrade`` test: (terms + 2)·U·Σ|weights|·R for each
    operator (separable bicubic: two passes of 4 weights; its greatest row of weights in absolute value, squared),
    and the float64 rounding of the offset going back on."""
    k = make_kernel("bicubic", 2)
    reference = ramp() + offset
    low = degrade_array(reference, k)
    with torch.no_grad():
        exact_low = blur_decimate(torch.as_tensor(ramp())[None], torch.as_tensor(k.as_2d), 2)[0].numpy()
    r = np.ptp(ramp())
    tol = (2 * k.separable.size + 2) * U * np.abs(k.as_2d).sum() * r + 2 * float(np.spacing(offset + 4000))
    assert np.abs(low - offset - exact_low).max() <= tol and low.dtype == np.float64
    # bicubic of the exact low-resolution values, offset or not
    rows = interpolation_matrix(20, 2, 0.0, torch.float64, torch.device("cpu"))
    weights = float(rows.abs().sum(dim=1).max())
    exact_up = np.einsum("ih,chw,jw->cij", rows.numpy(), exact_low, rows.numpy())
    r_low = np.ptp(exact_low)
    tol_up = (2 * 4 + 2) * U * weights**2 * r_low + 2 * float(np.spacing(offset + 4000))
    assert np.abs(bicubic(exact_low + offset, 2) - offset - exact_up).max() <= tol_up
