"""Landsat's native pan/multispectral geometry (pixel centres coincide, pan edges half a pan pixel off the
multispectral edges): half-pixel kernels and interpolation, the nesting, a check of the convention on
the real Landsat 8 pair, and guided DIP and its evaluation on the native grids with nothing resampled."""

import os

import numpy as np
import pytest
import rasterio
from scipy.ndimage import fourier_shift
import torch
import torch.nn.functional as F

from internal_sr.core.cli import main as cli
from internal_sr.core.config import GuidedDIPConfig, IOOptions
from internal_sr.core.degradation import Degradation, interpolation_matrix, upsample
from internal_sr.core.errors import InputError
from internal_sr.core.evaluation import BICUBIC, BICUBIC_BP, evaluate
from internal_sr.core.grid import ALIGNMENT_TOLERANCE, Grid, Window, nest
from internal_sr.core.kernels import make_kernel, sigma_from_mtf
from internal_sr.core.raster import open_info

HERE = os.path.join(os.path.dirname(__file__), "data")
MS = os.path.join(HERE, "landsat8_LC80200392015216_ms30m_crop.tif")
PAN = os.path.join(HERE, "landsat8_LC80200392015216_pan15m_crop.tif")
FAST = GuidedDIPConfig(kernel="landsat", guide_kernel="landsat", iterations=2, width=8, layers=2)


def centre_of_mass(k: np.ndarray) -> tuple[float, float]:
    rows, cols = np.indices(k.shape)
    return float((rows * k).sum()), float((cols * k).sum())


@pytest.mark.parametrize("spec", ["bicubic", "lanczos3", "gaussian:0.7", "landsat"])
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_half_pixel_kernels_sit_half_a_pixel_after_the_block_centre(spec, scale):
    aligned, shifted = make_kernel(spec, scale), make_kernel(spec, scale, (0.5, 0.5))
    for k in (aligned, shifted):
        taps = k.as_2d
        assert taps.shape[0] % 2 == scale % 2 and taps.sum() == pytest.approx(1.0)
    centre = (shifted.size - 1) / 2 + 0.5
    assert centre_of_mass(shifted.as_2d) == pytest.approx((centre, centre), abs=1e-9)
    # the same profile, sampled half a pixel further on: the taps mirror about the shifted centre
    taps = shifted.separable[1:]
    assert np.allclose(taps, taps[::-1])
    assert shifted.at_shift((0.0, 0.0)).separable == pytest.approx(aligned.separable)


def test_a_shift_on_one_axis_gives_a_2d_kernel_shifted_on_that_axis_only():
    k = make_kernel("gaussian:0.6", 2, (0.5, 0.0))
    assert k.separable is None
    rows, cols = centre_of_mass(k.full)
    assert rows == pytest.approx((k.size - 1) / 2 + 0.5) and cols == pytest.approx((k.size - 1) / 2)


@pytest.mark.parametrize("scale", [2, 3])
def test_degradation_and_interpolation_use_the_same_shifted_centres(scale):
    n = 12 * scale
    ramp = torch.arange(n, dtype=torch.float64).expand(1, 1, n, n).contiguous()
    for shift in (0.0, 0.5):
        d = Degradation(make_kernel("gaussian:0.6", scale, (shift, shift))).double()
        low = d(ramp)[0, 0, 6]
        # low-resolution pixel i is centred on fine index s·i + (s − 1)/2 + shift (interior pixels)
        i = torch.arange(3, 9, dtype=torch.float64)
        assert torch.allclose(low[3:9], scale * i + (scale - 1) / 2 + shift, atol=1e-9)
        # interpolating a low-resolution ramp puts it on the same centres (exactly where a centre is a
        # fine pixel; bicubic with a = −0.75 is not exact for a ramp in between)
        coarse = torch.arange(12, dtype=torch.float64).expand(1, 1, 12, 12).contiguous()
        fine = upsample(coarse, scale, (shift, shift))[0, 0, 20]
        j = torch.arange(3 * scale, 9 * scale)
        position = (j.double() - (scale - 1) / 2 - shift) / scale
        assert torch.allclose(fine[j], position, atol=0.05) and (fine[j].diff() > 0).all()
        on_centres = position == position.round()
        assert torch.allclose(fine[j][on_centres], position[on_centres], atol=1e-9) and on_centres.any() == ((scale - 1) / 2 + shift).is_integer()


def test_unshifted_interpolation_matrix_is_pytorchs_bicubic():
    y = torch.rand(1, 2, 7, 9, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    for scale in (2, 3, 4):
        rows, cols = (interpolation_matrix(n, scale, 0.0, y.dtype, y.device) for n in (7, 9))
        ours = torch.einsum("ih,nchw,jw->ncij", rows, y, cols)
        assert torch.allclose(ours, F.interpolate(y, scale_factor=scale, mode="bicubic", align_corners=False), atol=1e-12)


def test_landsat_kernel_is_the_documented_gaussian():
    assert sigma_from_mtf(0.3) == pytest.approx(0.4939, abs=1e-4)
    assert np.allclose(make_kernel("landsat", 2).as_2d, make_kernel("gaussian:0.4939", 2).as_2d)
    assert make_kernel("landsat", 2, (0.5, 0.5)).at_shift((0.0, 0.0)).name == "landsat"


def test_kernel_files_are_refused_on_half_pixel_grids(tmp_path):
    path = str(tmp_path / "k.npy")
    np.save(path, np.ones((5, 5)))
    make_kernel(path, 2)
    with pytest.raises(InputError, match="half a pixel"):
        make_kernel(path, 2, (0.5, 0.5))


def test_the_real_landsat_pair_nests_with_a_half_pixel_shift():
    nesting = nest(open_info(MS).grid, open_info(PAN).grid)
    assert nesting.scale == 2 and nesting.shift == (0.5, 0.5)
    assert nesting.target == Window(0, 0, 64, 64) and nesting.guide == Window(0, 0, 128, 128)


@pytest.mark.parametrize("offset, message", [(0.3, "not aligned"), (0.25, "not aligned")])
def test_offsets_other_than_half_a_pixel_are_refused(offset, message):
    ms = open_info(MS).grid
    moved = Grid(129, 129, open_info(PAN).grid.transform * rasterio.Affine.translation(offset, 0), ms.crs)
    with pytest.raises(InputError, match=message):
        nest(ms, moved)


def pan_residual(shift: float, offset: int, moved: float = 0.0) -> np.ndarray:
    """The RMSE (DN) of B2 and B4 of the real pair fitted (gain and offset) by the pan degraded with the phase
    ``shift`` (0 or ½ pan pixel) from pan pixel ``offset`` on, its content moved first by ``moved`` pan pixels
    down and right (a Fourier shift; 0: the pan as it is)."""
    with rasterio.open(MS) as ds:
        ms = ds.read([2, 4]).astype(np.float64)
    with rasterio.open(PAN) as ds:
        pan = ds.read(1).astype(np.float64)
    if moved:
        pan = np.fft.ifft2(fourier_shift(np.fft.fft2(pan), (moved, moved))).real
    d = Degradation(make_kernel("landsat", 2, (shift, shift))).double()
    low = d(torch.as_tensor(pan[offset:offset + 128, offset:offset + 128])[None, None])[0, 0, 2:-2, 2:-2].numpy().ravel()
    design = np.stack([low, np.ones_like(low)], 1)
    out = []
    for band in ms:
        y = band[2:-2, 2:-2].ravel()
        coef = np.linalg.lstsq(design, y, rcond=None)[0]
        out.append(np.sqrt(np.mean((design @ coef - y) ** 2)))
    return np.array(out)


def test_the_half_pixel_phase_explains_the_real_pan_best():
    """The convention checked on real data: the pan degraded with the ½-pixel phase fits B2 and B4 better
    than degraded pixel-aligned (½ pixel too early) or a whole pan pixel later (½ too late)."""
    native, early, late = pan_residual(0.5, 0), pan_residual(0.0, 0), pan_residual(0.0, 1)
    print(f"B2, B4 residual RMSE: native {native}, ½ early {early}, ½ late {late}")
    assert (native < 0.97 * early).all() and (native < 0.97 * late).all()


def test_a_misplacement_within_the_alignment_tolerance_costs_a_small_fraction_of_half_a_pixel():
    """What ``core.grid.ALIGNMENT_TOLERANCE`` lets through, measured on the real pair: the pan moved by that many pan
    pixels (either way) explains B2 and B4 with a residual at most 2 % larger (0.6–1.6 %), moved by ½ at least 50 %
    larger (62–81 %)."""
    native = pan_residual(0.5, 0)
    for moved in (ALIGNMENT_TOLERANCE, -ALIGNMENT_TOLERANCE):
        assert (pan_residual(0.5, 0, moved) < 1.02 * native).all()
    for moved in (0.5, -0.5):
        assert (pan_residual(0.5, 0, moved) > 1.5 * native).all()


def test_guided_sharpens_landsat_on_the_native_pan_grid(tmp_path, capsys):
    out = tmp_path / "sharp.tif"
    assert cli(["guided", MS, PAN, str(out), "--target-bands", "2,3,4", "--kernel", "landsat",
                "--guide-kernel", "landsat", "--iterations", "3"]) == 0
    with rasterio.open(PAN) as pan, rasterio.open(out) as result:
        assert result.crs == pan.crs and result.transform == pan.transform  # the pan's own pixels, not resampled
        assert (result.width, result.height, result.count) == (128, 128, 3)
        assert result.descriptions == ("B2", "B3", "B4") and result.dtypes[0] == "uint16"
        assert result.read().min() > 0


def test_a_kernel_file_on_landsat_grids_is_a_one_line_error(tmp_path, capsys):
    kernel = str(tmp_path / "k.npy")
    np.save(kernel, np.ones((5, 5)))
    out = tmp_path / "never.tif"
    assert cli(["guided", MS, PAN, str(out), "--kernel", kernel, "--guide-kernel", "landsat", "--iterations", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "half a pixel" in err[0], err
    assert not out.exists()


def test_wald_evaluation_on_native_landsat_grids_scores_guided_dip_above_bicubic():
    config = GuidedDIPConfig(kernel="landsat", guide_kernel="landsat", iterations=150, seed=0, device="cpu")
    e = evaluate(MS, "guided", 2, "landsat", config, IOOptions(bands=[2, 3, 4]), guide_path=PAN)
    rmse = {s.label: s.overall["rmse"] for s in e.scores}
    print(rmse)
    assert e.reference.shape == (3, 64, 64)
    assert rmse["guided DIP"] < 0.5 * rmse[BICUBIC] and rmse["guided DIP"] < rmse[BICUBIC_BP]


def test_sentinel2_kernels_on_a_half_pixel_pair_are_refused(tmp_path, capsys):
    """Landsat band names (B1–B9) read as Sentinel-2 names, so the default sentinel2 kernels used to give the
    Landsat bands Sentinel-2 MTFs without a word; grids half a pixel apart are never Sentinel-2's."""
    out = tmp_path / "never.tif"
    assert cli(["guided", MS, PAN, str(out), "--iterations", "1"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "sit half a guide pixel apart" in line and "choose the landsat kernels" in line and not out.exists()


def test_evaluate_refuses_sentinel2_kernels_on_the_landsat_pair_too():
    with pytest.raises(InputError, match="sit half a guide pixel apart"):
        evaluate(MS, "guided", 2, "sentinel2", GuidedDIPConfig(iterations=1), guide_path=PAN)
