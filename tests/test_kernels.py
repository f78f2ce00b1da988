"""Kernels and the degradation operator against independent computations."""

import json
import os
import re

import numpy as np
import pytest
import rasterio
import torch
import torch.nn.functional as F

from rasterio.windows import Window

from internal_sr.core.cli import main
from internal_sr.core.config import GuidedDIPConfig
from internal_sr.core.degradation import (
    NOISE_GAIN_LIMIT,
    OBSERVATION_GAIN_LIMIT,
    Degradation,
    back_project,
    degrade_array,
    noise_gain,
    observation_gain,
    upsample,
)
from internal_sr.core.errors import InputError
from internal_sr.core.kernels import (
    Kernel,
    angle_difference,
    anisotropic_gaussian,
    check_kernel_fits,
    file_kernel,
    isotropic_baseline,
    kernel_error,
    kernel_width,
    make_kernel,
    save_kernel_file,
)
from internal_sr.core.sentinel2 import ORDER
from internal_sr.core.sharpen import band_kernels
from helpers import S2_10M_256, write_raster


def test_bicubic_x2_matches_matlab_imresize_weights():
    # MATLAB imresize(…, 0.5, 'bicubic') weights, a = -0.5, taps at ±0.5 … ±3.5 HR pixels
    expected = np.array([-0.01171875, -0.03515625, 0.11328125, 0.43359375])
    taps = make_kernel("bicubic", 2).separable
    np.testing.assert_allclose(taps, np.r_[expected, expected[::-1]], atol=1e-8)


@pytest.mark.parametrize("name", ["bicubic", "lanczos2", "lanczos3", "gaussian:0.8"])
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_kernels_are_normalised_symmetric_with_scale_parity(name, scale):
    k = make_kernel(name, scale)
    assert k.separable.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(k.separable, k.separable[::-1])
    assert k.size % 2 == scale % 2


def test_gaussian_taps_match_closed_form():
    sigma, scale = 0.7, 2
    taps = make_kernel(f"gaussian:{sigma}", scale).separable
    offsets = np.arange(len(taps)) - (len(taps) - 1) / 2  # ±0.5, ±1.5 … HR pixels
    ref = np.exp(-0.5 * (offsets / (sigma * scale)) ** 2)
    np.testing.assert_allclose(taps, ref / ref.sum(), rtol=1e-12)


def test_lanczos3_x3_taps_match_closed_form():
    taps = make_kernel("lanczos3", 3).separable
    t = (np.arange(len(taps)) - (len(taps) - 1) / 2) / 3
    ref = np.sinc(t) * np.sinc(t / 3)
    np.testing.assert_allclose(taps, ref / ref.sum(), rtol=1e-12, atol=1e-15)


def test_degradation_matches_torch_antialiased_bicubic_in_the_interior():
    # torch's antialiased bicubic downscaling uses a = -0.5 and pixel-area alignment: an independent implementation
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    for s in (2, 4):
        ours = Degradation(make_kernel("bicubic", s))(x)
        ref = F.interpolate(x, scale_factor=1 / s, mode="bicubic", antialias=True, align_corners=False)
        m = 2
        torch.testing.assert_close(ours[..., m:-m, m:-m], ref[..., m:-m, m:-m], atol=1e-5, rtol=1e-5)


def _direct(image: np.ndarray, k2: np.ndarray, s: int) -> np.ndarray:
    """Loop implementation: LR (i, j) = Σ k[a, b] · x[s·i + (s−1)/2 − (L−1)/2 + a, …] with reflection."""
    h, w = image.shape
    size = k2.shape[0]
    pad = (size - s) // 2
    padded = np.pad(image, pad, mode="reflect")
    out = np.zeros((h // s, w // s))
    for i in range(h // s):
        for j in range(w // s):
            out[i, j] = (padded[s * i : s * i + size, s * j : s * j + size] * k2).sum()
    return out


def test_separable_and_file_kernels_match_a_direct_loop(tmp_path):
    rng = np.random.default_rng(0)
    image = rng.random((2, 24, 24))
    for s in (2, 3):
        k = make_kernel("lanczos2", s)
        got = degrade_array(image, k)
        for band in range(2):
            np.testing.assert_allclose(got[band], _direct(image[band], k.as_2d, s), atol=1e-5)
    # an anisotropic odd-size file kernel at an odd scale: taps used as they are
    yy, xx = np.mgrid[-3:4, -3:4]
    kernel = np.exp(-(xx**2 / 4.0 + yy**2 / 1.0 + 0.5 * xx * yy))
    np.save(tmp_path / "k.npy", kernel)
    k = make_kernel(str(tmp_path / "k.npy"), 3)
    np.testing.assert_allclose(degrade_array(image, k)[0], _direct(image[0], kernel / kernel.sum(), 3), atol=1e-5)


def test_block_centre_convention_on_a_ramp():
    # LR pixel i covers HR [s·i, s·i+s): a symmetric kernel on a linear ramp returns the block centre
    for s in (2, 3, 4):
        ramp = np.tile(np.arange(64, dtype=float), (64, 1))[None]
        low = degrade_array(ramp, make_kernel("gaussian:0.5", s))[0]
        centres = s * np.arange(64 // s) + (s - 1) / 2
        np.testing.assert_allclose(low[10, 3:-3], centres[3:-3], atol=1e-4)


def test_kernel_angle_is_anticlockwise_from_the_column_axis_as_displayed():
    """The angle convention shared by ``anisotropic_gaussian`` and ``kernel_width``, pinned to the array.

    Rows point down on screen, so a major axis at +30° runs up-right: the row index falls as the column
    rises. Array transforms move the fitted angle as they move the picture: a transpose mirrors it to
    90° − θ, a row flip to −θ, a quarter turn anticlockwise (``np.rot90``) adds 90°. The degraded
    image of a point is elongated as the kernel, not mirrored (the blur is a correlation, which turns
    a kernel by 180° and so keeps the orientation of a centred one).
    """
    k = anisotropic_gaussian(1.0, 0.3, 30.0, 2)
    c = (k.shape[0] - 1) // 2
    assert k[c - 2, c + 4] > 10 * k[c - 2, c - 4]  # up-right ≫ up-left
    for taps, angle in ((k, 30.0), (k.T, 60.0), (k[::-1], 150.0), (np.rot90(k), 120.0)):
        assert kernel_width(taps, 2).angle == pytest.approx(angle, abs=1.0)
    point = np.zeros((1, 64, 64))
    point[0, 32, 32] = 1.0
    response = degrade_array(point, Kernel("k", 2, full=np.pad(k, ((0, 1), (0, 1)))))[0]
    assert kernel_width(response, 1).angle == pytest.approx(30.0, abs=3.0)


def test_isotropic_baseline_knows_the_width_and_not_the_orientation():
    sigma, error = isotropic_baseline(file_kernel(anisotropic_gaussian(0.7, 0.7, 0.0, 2), 2))
    assert sigma == pytest.approx(0.7, abs=0.006) and error < 1e-6
    truth = file_kernel(anisotropic_gaussian(1.0, 0.5, 30.0, 2), 2)
    sigma, error = isotropic_baseline(truth)
    assert 0.5 < sigma < 1.0 and 0.1 < error < kernel_error(make_kernel("bicubic", 2), truth)
    # the truth's widths at a wrong orientation are worth less than the width alone
    assert kernel_error(file_kernel(anisotropic_gaussian(1.0, 0.5, 120.0, 2), 2), truth) > error
    assert kernel_error(file_kernel(anisotropic_gaussian(1.0, 0.5, 40.0, 2), 2), truth) < error
    assert angle_difference(170.0, 10.0) == pytest.approx(20.0) and angle_difference(30.0, 120.0) == pytest.approx(90.0)


def test_odd_file_kernel_at_even_scale_uses_kernelgan_centring(tmp_path):
    """At ×2 a 2×2 box below-right of a 5×5 kernel's central tap is in KernelGAN's convention and is taken
    as it is: it averages each low-resolution pixel's block. A delta on the central tap is half a pixel
    off that centre and is moved onto it on load, which makes it the same box."""
    box, delta = np.zeros((5, 5)), np.zeros((5, 5))
    box[2:4, 2:4] = 0.25
    delta[2, 2] = 1.0
    image = np.arange(36.0).reshape(1, 6, 6)
    block_means = image[0].reshape(3, 2, 3, 2).mean(axis=(1, 3))
    for name, taps, moved in (("box", box, (0.0, 0.0)), ("delta", delta, (0.5, 0.5))):
        np.save(tmp_path / f"{name}.npy", taps)
        kernel = make_kernel(str(tmp_path / f"{name}.npy"), 2)
        assert kernel.moved == moved
        np.testing.assert_allclose(degrade_array(image, kernel)[0], block_means)


def test_back_projection_makes_the_estimate_consistent():
    torch.manual_seed(0)
    y = torch.rand(1, 2, 16, 16)
    degradation = Degradation(make_kernel("bicubic", 2))
    start = upsample(y, 2)
    before = (degradation(start) - y).abs().mean()
    after = (degradation(back_project(start, y, degradation, 30)) - y).abs().mean()
    assert after < 0.05 * before


@pytest.mark.parametrize("spec", ["cubic", "gaussian", "gaussian:abc", "gaussian:0", "missing.npy"])
def test_bad_kernel_specs_are_clear_errors(spec):
    with pytest.raises(InputError):
        make_kernel(spec, 2)


def test_bad_kernel_files(tmp_path):
    np.save(tmp_path / "even.npy", np.ones((4, 4)))
    np.save(tmp_path / "flat.npy", np.ones(5))
    for name in ("even.npy", "flat.npy"):
        with pytest.raises(InputError, match="odd size"):
            make_kernel(str(tmp_path / name), 2)


def bad_kernel(tmp_path, name: str, taps: np.ndarray) -> str:
    path = str(tmp_path / name)
    np.save(path, taps)
    return path


def test_every_bad_kernel_file_is_one_line_naming_the_file_and_the_problem(tmp_path, capsys):
    """Taps whose positive and negative values nearly cancel used to fail as "unexpected ValueError: array is too big"
    (the centre of mass 10¹³ taps away); a kernel wider than the image ran (or crashed in Knitworks); every one is now
    refused in one line that names the file and what is wrong with it."""
    cancelling = np.zeros((5, 5))
    cancelling[0, 0], cancelling[4, 4] = 1 + 1e-13, -1.0
    cases = [
        ("even.npy", np.ones((4, 4)), "must hold a square 2-D array of odd size, got shape (4, 4)"),
        ("cube.npy", np.ones((3, 3, 3)), "must hold a square 2-D array of odd size, got shape (3, 3, 3)"),
        ("empty.npy", np.zeros((0, 0)), "must hold a square 2-D array of odd size, got shape (0, 0)"),
        ("nan.npy", np.full((3, 3), np.nan), "must be finite with a positive sum: it holds infinite or NaN taps"),
        ("zero.npy", np.zeros((3, 3)), "must be finite with a positive sum: all its taps are 0"),
        ("negative.npy", -np.ones((3, 3)), "must be finite with a positive sum: its taps sum to 0 or less"),
        ("cancelling.npy", cancelling, "has its centre of mass outside its 5×5 taps (row -4e+13, column -4e+13): its "
         "negative taps nearly cancel its positive ones; give a blur kernel, whose taps are mostly positive"),
        ("wide.npy", np.ones((41, 41)), "spans 41×41 pixels at the fine resolution (×3), wider than the image there "
         "(39×39): use a larger raster, or a narrower kernel"),
    ]
    image = write_raster(str(tmp_path / "image.tif"), np.ones((1, 13, 13), np.float32))
    for name, taps, problem in cases:
        path = bad_kernel(tmp_path, name, taps)
        out = str(tmp_path / f"{name}.tif")
        assert main(["knitwork", image, out, "--scale", "3", "--kernel", path]) == 2, name
        assert capsys.readouterr().err == f"internal-sr: error: kernel file {path} {problem}\n"
        assert not os.path.exists(out)


def test_a_kernel_file_too_wide_is_named_by_its_own_size_and_the_size_it_spans_once_centred(tmp_path):
    """A 41 × 41 file at ×2 was refused as "spans 44×44": loading moves it onto the block centre and appends a zero
    row and column. The line now names the file's own 41×41 as well; built-in kernels, and files loaded as they are
    (odd scales, centred on their central tap), keep the one size."""
    path = bad_kernel(tmp_path, "wide.npy", np.ones((41, 41)))
    with pytest.raises(InputError) as error:
        check_kernel_fits(make_kernel(path, 2), 20, 20)
    assert str(error.value) == (f"kernel file {path} holds 41×41 taps, which span 44×44 pixels at the fine resolution (×2) "
                                "once centred on the block centre, wider than the image there (40×40): use a larger raster, "
                                "or a narrower kernel")
    with pytest.raises(InputError, match=rf"^kernel file {re.escape(path)} spans 41×41 pixels at the fine resolution \(×3\), wider"):
        check_kernel_fits(make_kernel(path, 3), 13, 13)
    with pytest.raises(InputError, match=r"^kernel lanczos3 spans 24×24 pixels at the fine resolution \(×4\), wider"):
        check_kernel_fits(make_kernel("lanczos3", 4), 5, 5)


def test_a_kernel_file_of_huge_taps_is_the_same_kernel_normalised(tmp_path):
    """Finite taps of up to 8 × 10³⁰⁷ summed to infinity, so the kernel became all zeros (and the output nonsense,
    without a word). The taps are brought to their own scale before they are summed."""
    taps = np.array([[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]])
    expected = make_kernel(bad_kernel(tmp_path, "plain.npy", taps), 3).full
    np.testing.assert_allclose(make_kernel(bad_kernel(tmp_path, "huge.npy", taps * 2e307), 3).full, expected, rtol=1e-12)


def test_back_projection_never_worsens_the_fit_even_when_plain_updates_diverge():
    """A kernel far off the block centre makes the plain Irani–Peleg update diverge; the guarded one
    stops each band at its last improvement. (Built directly: a kernel file would be moved onto the
    block centre on load.)"""

    k = np.zeros((9, 9))
    k[1:4, 5:8] = 1.0 / 9  # all the mass up and to the right of the centre
    d = Degradation(Kernel("shifted", 2, full=np.pad(k, ((0, 1), (0, 1)))))
    y = torch.as_tensor(np.random.default_rng(3).random((1, 2, 24, 24)), dtype=torch.float32).cumsum(-1)
    x0 = upsample(y, 2)

    def misfit(x):
        return float((y - d(x)).square().sum())

    plain = x0
    for _ in range(20):
        plain = plain + upsample(y - d(plain), 2)
    guarded = back_project(x0, y, d, 20)
    assert misfit(plain) > 10 * misfit(x0)  # the plain update diverges here
    assert misfit(guarded) <= misfit(x0) and torch.isfinite(guarded).all()
    bicubic = Degradation(make_kernel("bicubic", 2))
    assert float((y - bicubic(back_project(x0, y, bicubic, 20))).abs().max()) < 1e-3  # still converges as before


def test_back_projection_is_guarded_only_for_kernels_wider_than_the_built_in_ones():
    built_in = [make_kernel(spec, s) for spec in ("bicubic", "lanczos2", "lanczos3", "landsat") for s in (2, 3, 4)]
    sentinel2 = [Degradation(band_kernels("sentinel2", ORDER, s, "target")) for s in (2, 6)]
    gains = [float(noise_gain(Degradation(k))[0]) for k in built_in] + [float(g) for d in sentinel2 for g in noise_gain(d)]
    assert max(gains) < NOISE_GAIN_LIMIT  # their back-projection is as before
    assert float(noise_gain(Degradation(make_kernel("gaussian:0.7", 2)))[0]) > NOISE_GAIN_LIMIT


def _s2_crop() -> torch.Tensor:
    """``(1, 3, 96, 96)``: B4 B3 B2 of a real Sentinel-2 crop, float32 DN."""
    with rasterio.open(S2_10M_256) as src:
        return torch.as_tensor(src.read([1, 2, 3], window=Window(0, 0, 96, 96)).astype(np.float32))[None]


def _plain_back_projection(x: torch.Tensor, y: torch.Tensor, d: Degradation, steps: int) -> torch.Tensor:
    for _ in range(steps):
        x = x + upsample(y - d(x), d.scale)
    return x


def _rmse(x: torch.Tensor, truth: torch.Tensor) -> float:
    return float((x - truth).square().mean().sqrt())


@pytest.mark.parametrize("wide", ["gaussian:1.0", "gaussian:0.7"])
def test_back_projection_with_a_kernel_wider_than_the_blur_does_not_amplify(wide):
    """A real crop blurred with bicubic and back-projected with a wider kernel: the plain update drives
    the residual down slowly while the image overshoots (below zero); the guarded one does not."""
    truth = _s2_crop()
    y = Degradation(make_kernel("bicubic", 2))(truth)
    x0 = upsample(y, 2)
    d = Degradation(make_kernel(wide, 2))
    plain = _plain_back_projection(x0, y, d, 20)
    guarded = back_project(x0, y, d, 20)
    low, span = float(y.min()), float(y.max() - y.min())
    assert _rmse(plain, truth) > 3 * _rmse(x0, truth) and float(plain.min()) < low - span / 2  # what the unguarded update does here
    assert _rmse(guarded, truth) < 1.6 * _rmse(x0, truth) and float(guarded.min()) > low - span / 3


@pytest.mark.parametrize("wide", ["gaussian:1.0", "gaussian:0.7"])
def test_back_projection_with_a_kernel_wider_than_the_blur_keeps_a_start_near_the_truth(wide):
    """What DIP's final back-projection sees: a start already near the truth (here bicubic + back-projection
    with the true, bicubic, kernel). Even the first steps with a wider kernel, which cut the residual
    fast, overshoot from there; the band keeps its start."""
    truth = _s2_crop()
    bicubic = Degradation(make_kernel("bicubic", 2))
    y = bicubic(truth)
    start = back_project(upsample(y, 2), y, bicubic, 20)
    d = Degradation(make_kernel(wide, 2))
    assert _rmse(_plain_back_projection(start, y, d, 1), truth) > 1.2 * _rmse(start, truth)  # one plain step already hurts
    assert _rmse(back_project(start, y, d, 20), truth) <= _rmse(start, truth)


def test_back_projection_with_the_true_wide_kernel_gains_as_the_plain_update_does():
    """A real crop blurred with a Gaussian of σ 0.7 (a kernel the width test examines) and back-projected
    with that same kernel: the full 20 steps, as without any guard."""
    truth = _s2_crop()
    d = Degradation(make_kernel("gaussian:0.7", 2))
    assert float(noise_gain(d)[0]) > NOISE_GAIN_LIMIT
    y = d(truth)
    x0 = upsample(y, 2)
    plain = _rmse(_plain_back_projection(x0, y, d, 20), truth)
    assert plain < 0.7 * _rmse(x0, truth)  # what plain back-projection gains here
    assert _rmse(back_project(x0, y, d, 20), truth) <= 1.001 * plain


def test_the_width_test_decides_each_band_on_its_observation():
    """Bands 0–1 of a real crop blurred with a Gaussian of σ 0.7, band 2 with bicubic, all back-projected with
    the σ 0.7 kernel: for bands 0–1 it is the true kernel (observation gain within the limit: back-projected),
    for band 2 one much wider than its blur (above the limit: it keeps its start exactly)."""
    truth = _s2_crop()
    d = Degradation(make_kernel("gaussian:0.7", 2))
    y = torch.cat([d(truth[:, :2]), Degradation(make_kernel("bicubic", 2))(truth[:, 2:])], dim=1)
    gain = observation_gain(y, d)[0, :, 0, 0]
    assert bool((gain[:2] <= OBSERVATION_GAIN_LIMIT).all()) and float(gain[2]) > OBSERVATION_GAIN_LIMIT
    x0 = upsample(y, 2)
    out = back_project(x0, y, d, 20)
    assert torch.equal(out[:, 2], x0[:, 2])
    for band in (0, 1):
        assert _rmse(out[:, band], truth[:, band]) < 0.8 * _rmse(x0[:, band], truth[:, band])


def test_a_band_with_no_observed_pixel_has_observation_gain_zero():
    y = _s2_crop()[:, :, :32, :32]
    valid = torch.ones_like(y)
    valid[:, 1] = 0
    gain = observation_gain(y, Degradation(make_kernel("gaussian:0.7", 2)), valid)[0, :, 0, 0]
    assert float(gain[1]) == 0.0 and bool(torch.isfinite(gain).all()) and bool((gain[[0, 2]] > 0).all())


def test_the_sentinel2_kernel_outside_guided_dip_says_where_it_belongs():
    with pytest.raises(InputError, match="sentinel2 .* is for guided DIP only"):
        make_kernel("sentinel2", 2)


def _gaussian_on_its_central_tap(half: int = 3) -> np.ndarray:
    offsets = np.arange(-half, half + 1)
    return np.exp(-(offsets[:, None] ** 2 + offsets[None, :] ** 2) / 2.0)


def test_a_kernel_file_not_summing_to_one_is_normalised_and_said_in_the_log(tmp_path, capsys):
    """``np.ones((5, 5))`` (taps summing to 25) was divided by 25 on load without a word, where a move of its
    centre was logged: the log says it was normalised, in every run that reads a kernel file (once each), and a
    kernel summing to 1 is loaded without that line."""
    from helpers import S2_20M, read, write_raster

    from internal_sr.core import pipeline

    ones, unit = str(tmp_path / "ones.npy"), str(tmp_path / "unit.npy")
    np.save(ones, np.ones((5, 5)))
    np.save(unit, np.full((5, 5), 1 / 25, dtype=np.float32))
    normalised = f"kernel file {ones}: its taps sum to 25, not 1, and were divided by that sum"
    assert make_kernel(ones, 3).given_sum == pytest.approx(25) and make_kernel(unit, 3).given_sum == pytest.approx(1)
    image = write_raster(str(tmp_path / "in.tif"), read(S2_20M)[:1, :48, :48])
    result = pipeline.degrade(image, str(tmp_path / "lr.tif"), 3, ones)
    assert sum(m.startswith(normalised) for m in result.messages) == 1
    result = pipeline.degrade(image, str(tmp_path / "lr.tif"), 2, ones)  # moved onto the block centre too: both said
    assert [m.split(":")[1].strip()[:20] for m in result.messages if m.startswith(f"kernel file {ones}")] == [
        "its taps sum to 25, ", "its centre of mass w"]
    assert not any("kernel file" in m for m in pipeline.degrade(image, str(tmp_path / "lr.tif"), 3, unit).messages)
    assert main(["evaluate", image, "--scale", "3", "--method", "bicubic", "--kernel", ones]) == 0
    assert capsys.readouterr().err.count(normalised) == 1
    assert main(["dip", image, str(tmp_path / "sr.tif"), "--scale", "3", "--kernel", ones, "--iterations", "1"]) == 0
    assert capsys.readouterr().err.count(normalised) == 1


def test_a_kernel_file_off_the_block_centre_is_moved_onto_it_and_said_in_the_log(tmp_path):
    """A Gaussian centred on its central tap, used at ×2, is half a fine pixel off the block centre: it is
    moved onto it on load, so a ramp degrades to its block centres (it came back half a pixel off before);
    at ×3, in KernelGAN's convention and for built-ins nothing moves."""
    from helpers import S2_20M, read, write_raster

    from internal_sr.core import pipeline
    from internal_sr.core.kernels import recentring_note

    np.save(tmp_path / "centred.npy", _gaussian_on_its_central_tap())
    np.save(tmp_path / "convention.npy", anisotropic_gaussian(0.5, 0.5, 0.0, 2))
    moved = make_kernel(str(tmp_path / "centred.npy"), 2)
    assert moved.moved == pytest.approx((0.5, 0.5))
    assert "was -0.50, -0.50 fine pixels (rows, columns) off the block centre" in recentring_note(moved)
    rows, cols = np.indices(moved.full.shape)
    block_centre = (moved.full.shape[0] - 1) / 2
    assert ((rows * moved.full).sum(), (cols * moved.full).sum()) == pytest.approx((block_centre, block_centre), abs=1e-12)
    ramp = np.tile(np.arange(64, dtype=float), (64, 1))[None]
    np.testing.assert_allclose(degrade_array(ramp, moved)[0, 10, 8:-8], (2 * np.arange(32) + 0.5)[8:-8], atol=1e-4)
    for unmoved in (make_kernel(str(tmp_path / "centred.npy"), 3), make_kernel(str(tmp_path / "convention.npy"), 2), make_kernel("bicubic", 2)):
        assert unmoved.moved == (0.0, 0.0) and recentring_note(unmoved) is None
    image = write_raster(str(tmp_path / "in.tif"), read(S2_20M)[:1, :32, :32])
    result = pipeline.degrade(image, str(tmp_path / "lr.tif"), 2, str(tmp_path / "centred.npy"))
    assert sum("centred.npy: its centre of mass was" in m for m in result.messages) == 1


def test_guided_runs_say_which_band_kernel_files_were_moved(tmp_path):
    from helpers import S2_10M, S2_20M, read

    from internal_sr.core.sharpen import sharpen_array

    np.save(tmp_path / "centred.npy", _gaussian_on_its_central_tap())
    target, guide = read(S2_20M)[:2, :24, :24].astype(float), read(S2_10M)[:2, :48, :48].astype(float)
    config = GuidedDIPConfig(iterations=1, width=8, layers=2, kernel=str(tmp_path / "centred.npy"), guide_kernel="bicubic")
    _, result = sharpen_array(target, guide, config, ["B5", "B6"], ["B4", "B8"])
    assert sum("centred.npy: its centre of mass was" in m for m in result.messages) == 1


def test_kernel_files_keep_their_scale_and_refuse_another(tmp_path):
    """``save_kernel_file`` records the scale beside the file; a kernel made for ×2 is refused by a ×4 run,
    a file without a record is taken at any scale, and a record that cannot be read is named."""
    path = str(tmp_path / "k.npy")
    save_kernel_file(path, anisotropic_gaussian(0.6, 0.6, 0.0, 2), 2)
    with open(path + ".json") as f:
        assert json.load(f)["scale"] == 2
    assert make_kernel(path, 2).moved == (0.0, 0.0)
    with pytest.raises(InputError, match=r"k.npy was made for ×2 \(its record k.npy.json says so\), not ×4: estimate one"):
        make_kernel(path, 4)
    with pytest.raises(InputError, match=r"not ×3: KernelGAN estimates ×2 and ×4 kernels only, so give a parametric"):
        make_kernel(path, 3)  # it suggested "internal-sr kernelgan --scale 3", which refuses ×3
    os.remove(path + ".json")
    assert make_kernel(path, 4).scale == 4
    with open(path + ".json", "w") as f:
        f.write("{not json")
    with pytest.raises(InputError, match="cannot read .*k.npy.json, the scale record of kernel file"):
        make_kernel(path, 2)




def test_a_kernel_preview_says_how_wide_the_blur_is():
    """The preview drew the taps alone: a 57-tap ×4 kernel drew each tap 3 px wide with nothing saying what a tap is.
    It is now captioned (text under the taps) with a bar one input pixel long: ``scale`` taps."""
    from internal_sr.core.kernels import anisotropic_gaussian, kernel_preview

    taps = anisotropic_gaussian(1.0, 0.5, 30.0, 4)
    block = 208 // taps.shape[0]
    picture = kernel_preview(taps, 4)
    grey = picture[: taps.shape[0] * block, : taps.shape[1] * block, 0]
    assert grey.max() == 255 and (grey[::block, ::block] == np.rint(255 * taps / taps.max())).all()
    strip = picture[taps.shape[0] * block :]
    assert strip.shape[0] > 30 and (strip == 0).any()  # the caption's text is drawn under the taps
    bar = [row for row in strip[..., 0] if (row[: 4 * block] == 0).all() and (row[4 * block : 4 * block + 8] == 255).all()]
    assert bar, "a black bar of exactly one input pixel (4 taps) under the caption"
