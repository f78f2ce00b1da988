"""Guided (multi-modal) DIP: quality under Wald's protocol on real Sentinel-2 bands, georeferencing on the
guide's grid, nodata, the classic baseline, and the clear errors for grids that do not nest."""

import os
import re
from dataclasses import replace

import numpy as np
import pytest
import rasterio
import torch
from affine import Affine

from internal_sr.core import metrics
from internal_sr.core.cli import main as cli
from internal_sr.core.config import GuidedDIPConfig, IOOptions, TileOptions
from internal_sr.core.degradation import Degradation
from internal_sr.core.errors import InputError
from internal_sr.core.evaluation import bicubic, hpf_injection
from internal_sr.core.grid import (
    ALIGNMENT_TOLERANCE, FLOAT_NOISE, Grid, NotAligned, Window, alignment_note, misplacement, nest, north_up,
    rotation_drift,
)
from internal_sr.core.kernels import make_kernel
from internal_sr.core.raster import CLAIM_SUFFIX
from internal_sr.core.sentinel2 import RESOLUTION, band_name, kernel_spec, sigma_from_mtf
from internal_sr.core.sharpen import band_kernels, check_inputs, sharpen, sharpen_array

from helpers import S2_10M, S2_20M, S2_20M_SAME_AREA, S2_60M_SAME_AREA, SHARED, Log, input_layouts, read, write_raster

NAMES10, NAMES20, NAMES60 = ("B4", "B3", "B2", "B8"), ("B5", "B6", "B7", "B8A", "B11", "B12"), ("B1", "B9")
#: a tiny configuration for grid and I/O tests (quality is tested separately)
FAST = GuidedDIPConfig(iterations=2, width=8, layers=2)
UTM = "EPSG:32633"


def degrade(image: np.ndarray, names, scale: int) -> np.ndarray:
    with torch.no_grad():
        d = Degradation(band_kernels("sentinel2", names, scale, "band"))
        return d(torch.as_tensor(image, dtype=torch.float32)[None])[0].double().numpy()


@pytest.fixture(scope="module")
def wald_20m():
    """Wald's protocol: 10 m guide → 20 m, 20 m target → 40 m; the real 20 m bands are the reference."""
    reference = read(S2_20M_SAME_AREA).astype(np.float64)
    return degrade(reference, NAMES20, 2), degrade(read(S2_10M).astype(np.float64), NAMES10, 2), reference


@pytest.mark.slow
def test_guided_dip_beats_bicubic_and_pansharpening_clearly(wald_20m):
    target, guide, reference = wald_20m
    torch.set_num_threads(2)
    out, result = sharpen_array(target, guide, GuidedDIPConfig(device="cpu"), NAMES20, NAMES10)  # its default 500 steps
    kernels = band_kernels("sentinel2", NAMES20, 2, "t"), band_kernels("sentinel2", NAMES10, 2, "g")
    scores = {
        "bicubic": bicubic(target, 2),
        "HPF injection + BP": hpf_injection(target, guide, *kernels, back_projection_steps=20),
        "guided DIP": out,
    }
    rmse = {k: metrics.rmse(v, reference) for k, v in scores.items()}
    sam = {k: metrics.sam(v, reference) for k, v in scores.items()}
    print({k: f"RMSE {rmse[k]:.1f}, SAM {sam[k]:.3f}" for k in scores}, f"{result.steps} steps")
    assert rmse["guided DIP"] < 0.5 * rmse["bicubic"]
    assert sam["guided DIP"] < 0.75 * sam["bicubic"]
    # the network's own contribution over its base's baseline (63.3). A run moves with its seed as much as with
    # float rounding (AVX2 against AVX-512 kernels): seeds 0-3 gave 53.2, 52.1, 54.0 and 58.6 at the default 500
    # steps (57.3-61.7 at 300; one thread, AVX-512, 2026-11-27), so the test asks for a gain all of them reach
    assert rmse["guided DIP"] < 0.95 * rmse["HPF injection + BP"]


def test_negative_values_are_raised_to_zero_only_in_bands_whose_input_holds_none():
    """Dark water under a guide with strong fine texture (a checkerboard the target's grid cannot see): the injected
    high-pass detail takes the estimate far below any input value (−219 against an input minimum of 5). A band whose
    input holds no negative value is raised to 0 where it went negative, and nowhere else; a band whose input holds
    negative values is left as the network made it; the log names each band raised and how many of its pixels."""
    h = w = 16
    rows, cols = np.mgrid[0 : 2 * h, 0 : 2 * w]
    guide = (100.0 + 20 * cols + np.where(cols >= w, 300.0 * (-1.0) ** (rows + cols), 0.0))[None]
    land = guide[0].reshape(h, 2, w, 2).mean(axis=(1, 3))
    dark = np.where(np.arange(w) >= w // 2, 5.0, land)
    target = np.stack([dark, dark - 50.0])  # the second band holds negative values
    config = replace(FAST, kernel="bicubic", guide_kernel="bicubic")
    unbounded, _ = sharpen_array(target, guide, replace(config, non_negative=False), ["B11", "B12"], [None])
    log = Log()
    out, _ = sharpen_array(target, guide, config, ["B11", "B12"], [None], log)
    negative = int((unbounded[0] < 0).sum())
    assert negative > 100 and unbounded[0].min() < -100  # the case undershoots
    np.testing.assert_array_equal(out[0], np.maximum(unbounded[0], 0.0))
    np.testing.assert_array_equal(out[1], unbounded[1])
    assert unbounded[1].min() < target[1].min() - 100  # not floored: its input is not non-negative
    raised = [line for line in log.lines if "raised to 0" in line]
    assert len(raised) == 1 and raised[0].startswith(f"band 1 (B11): {negative} output pixels (")


def test_a_float32_output_holds_no_negative_value_unless_allowed(tmp_path, capsys):
    """The committed 20 m / 10 m crops at native resolution, 2 steps: the Float32 output went down to −325 (B8A) in 17
    pixels of five bands, written as they were (a uint16 output clipped them at writing, with a warning). By default
    such values are raised to 0 and the log says how many per band; ``--allow-negative`` keeps them."""
    t, g = geo_pair(tmp_path)
    outputs, logs = {}, {}
    for allow in (False, True):
        path = str(tmp_path / f"sharp_{allow}.tif")
        assert cli(["guided", t, g, path, "--float32", "--iterations", "2", *(["--allow-negative"] if allow else [])]) == 0
        outputs[allow], logs[allow] = read(path), capsys.readouterr().err
    allowed = outputs[True]
    assert allowed.min() < -100
    np.testing.assert_array_equal(outputs[False], np.maximum(allowed, 0))
    said = re.finditer(r"band (\d) \(B\w+\): (\d+) output pixels \([^)]*\) came out negative", logs[False])
    negative = (allowed < 0).sum(axis=(1, 2))
    assert {int(m[1]): int(m[2]) for m in said} == {band: int(n) for band, n in enumerate(negative, start=1) if n}
    assert "came out negative" not in logs[True]


def test_injection_is_exact_when_the_target_is_a_blurred_combination_of_the_guide():
    guide = read(S2_10M)[:, :64, :64].astype(np.float64)
    kernels = [make_kernel("gaussian:0.5", 2)] * 4
    truth = 0.3 * guide[:2] + 0.5 * guide[3:] + 100.0  # two bands, each an affine combination
    low = degrade_with(truth, kernels[:2])
    out = hpf_injection(low, guide, kernels[:2], kernels)
    np.testing.assert_allclose(out, truth, rtol=0, atol=1e-6 * truth.max())


def test_injection_takes_a_rank_deficient_guide():
    """A guide band that is constant over the tile and a band given twice make the pseudo-pan design rank
    deficient: the fit still injects the detail exactly. (This runs on the CPU; on CUDA the fit is moved to
    the CPU's SVD driver because CUDA's own refuses such designs: not exercised without a GPU.)"""
    band = read(S2_10M)[:1, :64, :64].astype(np.float64)
    guide = np.concatenate([band, band, np.full_like(band, 0.3)])  # a duplicate band and a constant one
    kernels = [make_kernel("gaussian:0.5", 2)] * 3
    truth = 0.3 * band + 100.0
    out = hpf_injection(degrade_with(truth, kernels[:1]), guide, kernels[:1], kernels)
    np.testing.assert_allclose(out, truth, rtol=0, atol=1e-6 * truth.max())


def test_the_pseudo_pan_fit_leaves_out_guide_nodata():
    """A hole in the guide (nodata, filled before degrading) must not bend the regression: fitted where
    the target is valid and the degraded guide saw no fill (as ``sharpen_tile`` now fits), the injection
    stays exact away from the hole; fitted where only the target is valid (as it was), it does not."""
    from internal_sr.core.guided import degraded_valid, fill_invalid, inject_detail

    guide = torch.as_tensor(read(S2_10M)[:, :64, :64].astype(np.float64))[None]
    kernels = [make_kernel("gaussian:0.5", 2)] * 4
    truth = 0.3 * guide[:, :2] + 0.5 * guide[:, 3:] + 100.0
    d_t, d_g = Degradation(kernels[:2]).double(), Degradation(kernels).double()
    low = d_t(truth)
    m_g = torch.ones_like(guide)
    m_g[..., 8:24, 8:24] = 0.0
    filled = fill_invalid(guide, m_g)
    m_t = torch.ones_like(low)
    far = (slice(None), slice(None), slice(40, 60), slice(40, 60))  # fine pixels far from the hole
    with torch.no_grad():
        fitted = inject_detail(low, filled, d_t, d_g, m_t * degraded_valid(m_g, kernels))
        target_only = inject_detail(low, filled, d_t, d_g, m_t)
    tolerance = 1e-6 * float(truth.max())
    assert float((fitted - truth)[far].abs().max()) < tolerance
    assert float((target_only - truth)[far].abs().max()) > 100 * tolerance


def test_a_coarse_pixel_whose_footprint_reaches_nodata_only_through_a_tiny_tap_is_invalid_as_degrade_makes_it():
    """lanczos3 at ×4 has taps below 10⁻⁶ of its sum: guided DIP's mask of the degraded guide kept a coarse pixel whose
    footprint reached an invalid fine pixel only through one (its tolerance was 10⁻⁶), though ``degrade`` and evaluate
    (``degradation.degrade_valid``) make it nodata; both now decide by one exact test (``degradation.footprint_valid``)."""
    from internal_sr.core.degradation import degrade_valid
    from internal_sr.core.guided import degraded_valid

    kernel = make_kernel("lanczos3", 4)
    footprint = kernel.footprint().as_2d
    row, col = np.argwhere((footprint > 0) & (footprint < 1e-6))[0]
    pad = (footprint.shape[0] - 4) // 2
    valid = np.ones((2, 48, 48), bool)
    valid[1, 4 * 5 - pad + row, 4 * 6 - pad + col] = False  # coarse pixel (5, 6) reads it through that tap alone
    guided = degraded_valid(torch.as_tensor(valid, dtype=torch.float32)[None], [kernel] * 2)[0, 0].numpy()
    _, by_band = degrade_valid(np.ones(valid.shape, np.float32), valid, kernel)
    assert guided[5, 6] == 0 and guided.sum() < guided.size
    np.testing.assert_array_equal(guided, by_band.all(axis=0))


def degrade_with(image: np.ndarray, kernels) -> np.ndarray:
    with torch.no_grad():
        return Degradation(kernels).double()(torch.as_tensor(image)[None])[0].numpy()


def test_sentinel2_band_names_and_mtf_kernels():
    assert [band_name(t) for t in ("B05", "b8a", "T33UUB_20170527T100031_B8A.jp2", "B12_20m", "B1", "NIR", None)] == [
        "B5", "B8A", "B8A", "B12", "B1", None, None]
    sigma = sigma_from_mtf(0.3)
    assert np.exp(-2 * np.pi**2 * sigma**2 * 0.25) == pytest.approx(0.3)  # MTF of the Gaussian at Nyquist
    widths = [make_kernel(k.name, 2).separable.size for k in band_kernels("sentinel2", NAMES20, 2, "t")]
    assert len(widths) == 6
    with pytest.raises(InputError, match="band 2 is unnamed: set --kernel to another kernel, such as bicubic"):
        band_kernels("sentinel2", ["B5", None], 2, "target")
    with pytest.raises(InputError, match="guide's band descriptions .* band 1 is unnamed: set --guide-kernel to"):
        band_kernels("sentinel2", [None], 2, "guide")


def geo_pair(tmp_path, guide_origin=(300000.0, 5800000.0), target_origin=(300000.0, 5800000.0), guide_pixel=10.0,
             target_crs=UTM, guide_crs=UTM, target=None):
    """The committed 20 m / 10 m crops written with a UTM georeference (the originals carry none)."""
    t = write_raster(str(tmp_path / "t20.tif"), read(S2_20M_SAME_AREA) if target is None else target, crs=target_crs,
                     transform=Affine(20.0, 0, target_origin[0], 0, -20.0, target_origin[1]), descriptions=NAMES20)
    g = write_raster(str(tmp_path / "g10.tif"), read(S2_10M), crs=guide_crs,
                     transform=Affine(guide_pixel, 0, guide_origin[0], 0, -guide_pixel, guide_origin[1]), descriptions=NAMES10)
    return t, g


@pytest.mark.parametrize("command", ["guided", "evaluate"])
@pytest.mark.parametrize("unreferenced", [("target",), ("guide",), ("target", "guide")])
def test_a_raster_without_georeferencing_is_named_with_what_to_do(tmp_path, capsys, command, unreferenced):
    """A target or guide with no geotransform (the committed crops as they are): the target alone was told to be given
    a CRS (gdal_edit -a_srs, which gives it no geotransform), both were compared in "units per pixel" (1 and 1, though
    the guide has twice the pixels); now one line names the first raster without georeferencing and what to do."""
    import warnings

    from rasterio.errors import NotGeoreferencedWarning

    paths = dict(zip(("target", "guide"), geo_pair(tmp_path)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        for role in unreferenced:
            write_raster(paths[role], read(paths[role]), crs=None, transform=Affine.identity())
    out = tmp_path / "never.tif"
    args = (["guided", paths["target"], paths["guide"], str(out), "--iterations", "1"] if command == "guided" else
            ["evaluate", paths["target"], "--method", "guided", "--guide", paths["guide"], "--scale", "2", "--json", str(out)])
    assert cli(args) == 2
    role = unreferenced[0]
    other = "guide" if role == "target" else "target"
    assert capsys.readouterr().err.strip().splitlines() == [
        f"internal-sr: error: the {role} {paths[role]} has no georeferencing (no geotransform), so its pixels cannot be "
        f"matched with the {other}'s: give it its map position first (gdal_edit -a_ullr ULX ULY LRX LRY -a_srs CRS)"
    ]
    assert not out.exists()


def test_output_is_on_the_guide_grid_over_the_overlap(tmp_path):
    # the guide starts 3 target pixels right and 2 down of the target: the overlap is 61 × 62 target pixels
    t, g = geo_pair(tmp_path, guide_origin=(300060.0, 5799960.0))
    out = str(tmp_path / "sharp.tif")
    result = sharpen(t, g, out, FAST, IOOptions(bands=(1, 4, 6)))
    with rasterio.open(out) as dst, rasterio.open(g) as guide:
        assert dst.crs == guide.crs
        assert dst.transform == guide.transform
        assert (dst.width, dst.height) == (122, 124)  # 61 × 62 target pixels, ×2
        assert dst.dtypes == ("uint16",) * 3
        assert dst.descriptions == ("B5", "B8A", "B12")
    assert any("overlap" in m for m in result.messages)


def test_guide_larger_than_the_target_is_cut_to_the_target(tmp_path):
    # the guide starts one target pixel up-left of the target: the output starts at the target's corner
    # and covers the 63 × 63 target pixels that the guide's 128 × 128 10 m pixels still reach
    t, g = geo_pair(tmp_path, guide_origin=(299980.0, 5800020.0))
    out = str(tmp_path / "sharp.tif")
    sharpen(t, g, out, FAST, IOOptions(bands=(1,)))
    with rasterio.open(out) as dst, rasterio.open(t) as target:
        assert (dst.transform.c, dst.transform.f) == (target.transform.c, target.transform.f)
        assert dst.transform.a == 10.0 and (dst.width, dst.height) == (2 * 63, 2 * 63)


def test_sixty_metre_bands_sharpened_six_times_onto_the_10m_grid(tmp_path):
    # the 60 m crop starts at 10 m row 0, column 2 of the 10 m crop
    t = write_raster(str(tmp_path / "t60.tif"), read(S2_60M_SAME_AREA), crs=UTM,
                     transform=Affine(60.0, 0, 300020.0, 0, -60.0, 5800000.0), descriptions=NAMES60)
    _, g = geo_pair(tmp_path)
    out = str(tmp_path / "sharp60.tif")
    sharpen(t, g, out, FAST)
    with rasterio.open(out) as dst:
        assert dst.transform == Affine(10.0, 0, 300020.0, 0, -10.0, 5800000.0)
        assert (dst.width, dst.height) == (120, 120) and dst.descriptions == NAMES60
        values = dst.read()
    low = read(S2_60M_SAME_AREA).astype(np.float64)
    # consistent with its input: block means of the output stay close to the observed 60 m values
    means = values.reshape(2, 20, 6, 20, 6).mean(axis=(2, 4))
    assert np.abs(means - low).mean() < 0.02 * low.mean()


def test_nodata_in_target_or_guide_comes_out_as_nodata(tmp_path):
    target = read(S2_20M_SAME_AREA).copy()
    target[:, 10:20, 10:20] = 0
    t, g = geo_pair(tmp_path, target=target)
    with rasterio.open(t, "r+") as ds:
        ds.nodata = 0
    with rasterio.open(g, "r+") as ds:
        guide = ds.read()
        guide[2, 100:110, 30:40] = 0
        ds.write(guide)
        ds.nodata = 0
    out = str(tmp_path / "sharp.tif")
    sharpen(t, g, out, FAST)
    with rasterio.open(out) as dst:
        values = dst.read()
        assert dst.nodata == 0
    assert (values[:, 20:40, 20:40] == 0).all()
    assert (values[:, 100:110, 30:40] == 0).all()
    assert (values[:, 60:100, 60:100] != 0).all()


@pytest.mark.parametrize("empty", ["guide", "target"])
def test_no_valid_pixel_in_common_over_the_overlap_is_refused_and_nothing_written(tmp_path, capsys, empty):
    """Each raster holds valid pixels, so neither is refused as all nodata, but one has none where the other lies:
    a larger guide with nodata exactly over the target, or a target with a hole where a small guide lies. The run
    wrote an all-nodata raster and exited 0; it is now a one-line refusal that writes nothing."""
    rng = np.random.default_rng(0)
    target = (1000 + rng.integers(0, 500, (2, 16, 16))).astype(np.uint16)
    guide = (1000 + rng.integers(0, 500, (1, 64, 64))).astype(np.uint16)
    if empty == "guide":
        guide[:, :32, :32] = 0  # under the target's 16 × 16 pixels
    else:
        target[:, :8, :8] = 0
        guide = guide[:, :16, :16]  # over the target's hole only
    t = write_raster(str(tmp_path / "t.tif"), target, nodata=0 if empty == "target" else None,
                     transform=Affine(20.0, 0, 300000.0, 0, -20.0, 5800000.0))
    g = write_raster(str(tmp_path / "g.tif"), guide, nodata=0 if empty == "guide" else None)
    out = tmp_path / "never.tif"
    assert cli(["guided", t, g, str(out), "--iterations", "1", "--kernel", "gaussian:0.5", "--guide-kernel", "gaussian:0.5"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    covered = "columns 0–15, rows 0–15 (16×16 pixels)" if empty == "guide" else "columns 0–7, rows 0–7 (8×8 pixels)"
    assert err[-1] == (f"internal-sr: error: {t} and {g} have no valid pixel in common where they overlap, the target's "
                       f"{covered}: every output pixel would be nodata; nothing written")
    assert sorted(os.listdir(tmp_path)) == ["g.tif", "t.tif"]


@pytest.mark.parametrize("guide_pixel", [(10.0, -20.0), (10.0, -5.0), (10.0, -8.0)])
def test_a_guide_refining_the_target_by_two_factors_is_named_so(guide_pixel):
    """A guide of 10 × 20 m pixels on a 20 m target (ratios 2 and 1, or 2 and 4): the error said 'non-integer scale'
    of integer ratios; it now says that the ratio differs between x and y, and gives both."""
    target = Grid(16, 16, Affine(20.0, 0, 300000.0, 0, -20.0, 5800000.0), UTM)
    guide = Grid(32, 32, Affine(guide_pixel[0], 0, 300000.0, 0, guide_pixel[1], 5800000.0), UTM)
    with pytest.raises(InputError) as error:
        nest(target, guide)
    ratio_y = 20.0 / -guide_pixel[1]
    assert str(error.value).startswith("the guide refines the target by different factors along x and y: target pixels are "
                                       f"20 × 20, guide pixels 10 × {-guide_pixel[1]:g} (ratio 2 in x, {ratio_y:.4g} in y)")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(guide_pixel=15.0), "non-integer scale between grids"),
        (dict(guide_pixel=20.0), "at least twice as fine"),
        (dict(guide_origin=(400000.0, 5800000.0)), "do not overlap"),
        (dict(guide_origin=(400003.0, 5800000.0)), "do not overlap"),  # a guide off the target's edges and beside it
        (dict(guide_origin=(300003.0, 5800000.0)), "not aligned"),
        (dict(guide_crs="EPSG:32632"), "CRS"),
        (dict(guide_crs=None), "the guide has no CRS and the other raster has EPSG:32633"),
        (dict(guide_pixel=40.0), "the guide's pixels (40 units) are coarser than the target's (20): the guide is the finer raster"),
        (dict(guide_pixel=-10.0), "run in opposite directions (one is south-up)"),
    ],
)
def test_grids_that_do_not_nest_give_one_line_errors_and_write_nothing(tmp_path, capsys, kwargs, message):
    t, g = geo_pair(tmp_path, **kwargs)
    out = tmp_path / "never.tif"
    assert cli(["guided", t, g, str(out), "--iterations", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not out.exists() and sorted(os.listdir(tmp_path)) == ["g10.tif", "t20.tif"]


def wide_kernel(tmp_path) -> str:
    """A 41 × 41 kernel file: 44 fine pixels as applied at ×2 (its centre moved onto the block centre, a zero row and
    column appended), wider than 20 target pixels there."""
    path = str(tmp_path / "wide.npy")
    np.save(path, np.ones((41, 41)))
    return path


@pytest.mark.parametrize("option", ["--kernel", "--guide-kernel"])
@pytest.mark.parametrize("command", ["guided", "evaluate"])
def test_a_kernel_file_wider_than_the_target_is_refused_as_plain_dips(tmp_path, capsys, command, option):
    """Guided DIP ran with a target or guide kernel wider than the fine grid over the target (plain DIP refuses it:
    nearly all its taps fall on the border's padding); it is now refused in plain DIP's line, before any work. The
    evaluation's target (40 × 40, 20 × 20 once degraded) is refused alike."""
    kernel = wide_kernel(tmp_path)
    kernels = {"--kernel": "gaussian:0.5", "--guide-kernel": "gaussian:0.5", option: kernel}
    if command == "guided":
        t = write_raster(str(tmp_path / "t.tif"), read(S2_20M_SAME_AREA)[:, :20, :20], crs=UTM,
                         transform=Affine(20.0, 0, 300000.0, 0, -20.0, 5800000.0))
        g = write_raster(str(tmp_path / "g.tif"), read(S2_10M)[:, :40, :40], crs=UTM)
        args = ["guided", t, g, str(tmp_path / "never.tif")]
    else:
        t = write_raster(str(tmp_path / "t.tif"), read(S2_20M_SAME_AREA)[:, :40, :40], crs=UTM,
                         transform=Affine(20.0, 0, 300000.0, 0, -20.0, 5800000.0))
        g = write_raster(str(tmp_path / "g.tif"), read(S2_10M)[:, :80, :80], crs=UTM)
        args = ["evaluate", t, "--scale", "2", "--method", "guided", "--guide", g, "--json", str(tmp_path / "never.json")]
    assert cli([*args, "--iterations", "1", *(item for pair in kernels.items() for item in pair)]) == 2
    assert capsys.readouterr().err == (f"internal-sr: error: kernel file {kernel} holds 41×41 taps, which span 44×44 pixels at "
                                       "the fine resolution (×2) once centred on the block centre, wider than the image there "
                                       "(40×40): use a larger raster, or a narrower kernel\n")
    assert sorted(os.listdir(tmp_path)) == ["g.tif", "t.tif", "wide.npy"]


def test_a_kernel_wider_than_the_guides_cover_asks_for_a_guide_covering_more(tmp_path):
    """Over a 64 × 64 target the guide covers 20 × 20 target pixels: that is what the kernel must fit, and the line
    asks for a guide that covers more, as the size refusal does."""
    t, _ = geo_pair(tmp_path)
    g = write_raster(str(tmp_path / "g.tif"), read(S2_10M)[:, :40, :40], crs=UTM, descriptions=NAMES10)
    config = GuidedDIPConfig(kernel=wide_kernel(tmp_path), guide_kernel="gaussian:0.5")
    with pytest.raises(InputError) as error:
        check_inputs(t, g, None, config)
    assert str(error.value).endswith("wider than the image's overlap with the guide there (40×40): give a guide that covers "
                                     "more of the image, or a narrower kernel")


def test_an_extent_inside_the_target_but_outside_the_guide_names_the_guides_cover(tmp_path):
    """The guide covers target pixels 0–19 of 32 each way; an extent over pixels 24–31 was refused as "target and
    guide do not overlap", though they do (the pair runs without the extent)."""
    rng = np.random.default_rng(0)
    t = write_raster(str(tmp_path / "t.tif"), rng.integers(1000, 1500, (1, 32, 32)).astype(np.uint16),
                     transform=Affine(20.0, 0, 0.0, 0, -20.0, 640.0))
    g = write_raster(str(tmp_path / "g.tif"), rng.integers(1000, 1500, (1, 40, 40)).astype(np.uint16),
                     transform=Affine(10.0, 0, 0.0, 0, -10.0, 640.0))
    config = GuidedDIPConfig(kernel="gaussian:0.5", guide_kernel="gaussian:0.5")
    assert check_inputs(t, g, None, config).nesting.target == Window(0, 0, 20, 20)
    with pytest.raises(InputError) as error:
        check_inputs(t, g, None, config, IOOptions(extent=(480.0, 0.0, 640.0, 160.0)))
    assert str(error.value) == ("the extent (x 480–640, y 0–160 in whole target pixels) lies outside the part of the target "
                                "that the guide covers: x 0–400, y 240–640, target columns 0–19, rows 0–19 (20×20 pixels); "
                                "choose an extent inside it")
    far = write_raster(str(tmp_path / "far.tif"), rng.integers(1000, 1500, (1, 40, 40)).astype(np.uint16),
                       transform=Affine(10.0, 0, 10000.0, 0, -10.0, 640.0))
    with pytest.raises(InputError, match="^target and guide do not overlap"):  # a guide beside the whole target
        check_inputs(t, far, None, config, IOOptions(extent=(480.0, 0.0, 640.0, 160.0)))


def test_sentinel2_bands_half_a_pixel_apart_are_told_their_georeferencing_is_likely_off_first(tmp_path):
    """Sentinel-2 bands whose guide is georeferenced half a 10 m pixel off (a PixelIsPoint mix-up in another tool)
    were told only to choose the landsat kernels, which runs them as Landsat geometry on the shifted grid."""
    t, g = geo_pair(tmp_path, guide_origin=(300005.0, 5799995.0))
    with pytest.raises(InputError) as error:
        check_inputs(t, g, None, GuidedDIPConfig())
    message = str(error.value)
    cause = message.index("for Sentinel-2 data one raster's georeferencing is most likely half a pixel off (e.g. a PixelIsPoint")
    assert "\n" not in message and cause < message.index("choose the landsat kernels for target and guide")


def test_rotated_grid_is_refused():
    rotated = Grid(10, 10, Affine.translation(0, 0) * Affine.rotation(10) * Affine.scale(20, -20))
    with pytest.raises(InputError, match="rotated"):
        nest(rotated, Grid(20, 20, Affine.scale(10, -10)))


@pytest.mark.parametrize("which", ["target", "guide", "both"])
def test_floating_point_noise_in_the_rotation_terms_is_north_up(which):
    # some writers leave 1e-12 m per pixel in the rotation terms of a north-up grid: it moves no pixel edge by a
    # measurable fraction of a pixel, and the pair nests as with exact zeros (it used to be refused as rotated), with
    # no word of a misalignment
    def grid(width, pixel, noise):
        return Grid(width, width, Affine(pixel, noise, 300000.0, noise, -pixel, 5700000.0), UTM)

    exact = nest(grid(32, 10.0, 0.0), grid(64, 5.0, 0.0))
    noisy = nest(grid(32, 10.0, 1e-12 if which != "guide" else 0.0), grid(64, 5.0, 1e-12 if which != "target" else 0.0))
    assert replace(noisy, offset=exact.offset, drift=exact.drift) == exact
    assert max(map(abs, (*noisy.offset, *noisy.drift))) < FLOAT_NOISE and alignment_note(noisy) is None


def test_guided_runs_on_files_whose_rotation_terms_are_floating_point_noise(tmp_path):
    # the tester's case: both GeoTIFFs carry 1e-12 in their rotation terms (5 m guide pixels)
    image = np.random.default_rng(0).integers(0, 3000, (1, 32, 32)).astype("uint16")
    fine = Affine(5.0, 1e-12, 300000.0, 1e-12, -5.0, 5700000.0)
    g = write_raster(str(tmp_path / "g.tif"), image, crs=UTM, transform=fine)
    t = write_raster(str(tmp_path / "t.tif"), image[:, ::2, ::2].copy(), crs=UTM, transform=fine * Affine.scale(2))
    out = tmp_path / "o.tif"
    assert cli(["guided", t, g, str(out), "--iterations", "1", "--kernel", "bicubic", "--guide-kernel", "bicubic"]) == 0
    with rasterio.open(out) as dst:
        assert (dst.width, dst.height) == (32, 32) and dst.transform.almost_equals(fine, precision=1e-9)


@pytest.mark.parametrize("which", ["target", "guide"])
def test_rotation_terms_are_measured_in_guide_pixels_across_the_raster(which):
    # 32 target pixels of 10 m over 64 guide pixels of 5 m: a term b moves the column edges by b·32 m from the
    # target's top row to its bottom row, b·64 m down the guide, i.e. b·32/5 or b·64/5 guide pixels; the bound is
    # the alignment tolerance (0.05 guide pixels), as for misaligned pixel edges
    rows = 32 if which == "target" else 64
    for drift, accepted in ((0.98 * ALIGNMENT_TOLERANCE, True), (1.02 * ALIGNMENT_TOLERANCE, False)):
        b = drift * 5.0 / rows
        t = Grid(32, 32, Affine(10.0, b if which == "target" else 0.0, 300000.0, 0.0, -10.0, 5700000.0), UTM)
        g = Grid(64, 64, Affine(5.0, b if which == "guide" else 0.0, 300000.0, 0.0, -5.0, 5700000.0), UTM)
        assert rotation_drift(t, g) + rotation_drift(g) == pytest.approx(drift)
        if accepted:
            assert nest(t, g).target == Window(0, 0, 32, 32)
        else:
            with pytest.raises(InputError, match=r"rotated .* by 0\.051 guide pixels across the raster, at most 0\.05 is"):
                nest(t, g)


def test_rotation_drift():
    assert rotation_drift(Grid(10, 20, Affine(2.0, 0.0, 0.0, 0.0, -4.0, 0.0))) == 0.0
    # b = 0.01 per row over 20 rows: 0.2 units = 0.1 of a 2-unit column; d = 0.08 per column over 10 columns: 0.2 rows
    assert rotation_drift(Grid(10, 20, Affine(2.0, 0.01, 0.0, 0.0, -4.0, 0.0))) == pytest.approx(0.1)
    assert rotation_drift(Grid(10, 20, Affine(2.0, 0.01, 0.0, 0.08, -4.0, 0.0))) == pytest.approx(0.2)
    # measured in the pixels of another grid (a finer guide): twice as many
    assert rotation_drift(Grid(10, 20, Affine(2.0, 0.01, 0.0, 0.0, -4.0, 0.0)), Grid(20, 40, Affine.scale(1.0, -2.0))) == pytest.approx(0.2)
    assert rotation_drift(Grid(10, 10, Affine(0.0, 2.0, 0.0, 2.0, 0.0, 0.0))) == float("inf")  # turned by 90°
    assert not north_up(Grid(10, 10, Affine.rotation(10) * Affine.scale(20, -20)))


@pytest.mark.parametrize(
    "guide_origin, target_window, guide_window",
    [
        ((0.0, 0.0), Window(0, 0, 10, 10), Window(0, 0, 20, 20)),
        ((-20.0, 20.0), Window(0, 0, 10, 10), Window(2, 2, 20, 20)),  # guide extends beyond the target
        ((10.0, -10.0), Window(1, 1, 9, 9), Window(1, 1, 18, 18)),  # guide starts inside a target pixel
        ((100.0, 0.0), Window(5, 0, 5, 10), Window(0, 0, 10, 20)),  # guide covers the right half only
    ],
)
def test_nesting_finds_whole_target_pixels_inside_the_guide(guide_origin, target_window, guide_window):
    target = Grid(10, 10, Affine(20, 0, 0, 0, -20, 0), UTM)
    guide = Grid(30, 30, Affine(10, 0, guide_origin[0], 0, -10, guide_origin[1]), UTM)
    nesting = nest(target, guide)
    assert (nesting.scale, nesting.target, nesting.guide) == (2, target_window, guide_window)
    # the two windows describe the same ground
    assert target.window_grid(nesting.target).refined(2).transform == guide.window_grid(nesting.guide).transform


def test_tiled_run_matches_the_tile_plan(tmp_path):
    t, g = geo_pair(tmp_path)
    out = str(tmp_path / "tiled.tif")
    config = GuidedDIPConfig(iterations=2, width=8, layers=2, tiles=TileOptions(size=24, overlap=4))
    sharpen(t, g, out, config, IOOptions(bands=(2,)))
    with rasterio.open(out) as dst:
        values = dst.read(1).astype(np.float64)
    low = read(S2_20M_SAME_AREA)[1].astype(np.float64)
    assert values.shape == (128, 128)
    means = values.reshape(64, 2, 64, 2).mean(axis=(1, 3))
    assert np.abs(means - low).mean() < 0.02 * low.mean()  # no seams or offsets between tiles


def product_metadata(level: str = "L1C", baseline: str = "02.05", offsets: dict[int, str] | None = None,
                     quantification: str | None = "10000") -> str:
    """A product metadata file's text (``MTD_MSIL1C.xml``, ``MTD_MSIL2A.xml``) with the elements the radiometry is read
    from, in a namespace as ESA's: ``quantification`` (``None``: none), ``offsets`` by band_id (``None``: −1000 for
    every band from processing baseline 04.00 on, none before)."""
    from internal_sr.core.sentinel2 import ORDER

    if offsets is None:
        offsets = {band_id: "-1000" for band_id in range(len(ORDER))} if float(baseline) >= 4 else {}
    quantity, offset, offset_list = {"L1C": ("QUANTIFICATION_VALUE", "RADIO_ADD_OFFSET", "Radiometric_Offset_List"),
                                     "L2A": ("BOA_QUANTIFICATION_VALUE", "BOA_ADD_OFFSET", "BOA_ADD_OFFSET_VALUES_LIST")}[level]
    value = f'<{quantity} unit="none">{quantification}</{quantity}>' if quantification is not None else ""
    if level == "L2A":  # the aerosol and water vapour layers' own quantification values beside the reflectance's
        value = (f'<QUANTIFICATION_VALUES_LIST>{value}<AOT_QUANTIFICATION_VALUE unit="none">1000.0</AOT_QUANTIFICATION_VALUE>'
                 '<WVP_QUANTIFICATION_VALUE unit="cm">1000.0</WVP_QUANTIFICATION_VALUE></QUANTIFICATION_VALUES_LIST>')
    listed = "".join(f'<{offset} band_id="{band_id}">{v}</{offset}>' for band_id, v in offsets.items())
    spectral = "".join(f'<Spectral_Information bandId="{i}" physicalBand="{band}"/>' for i, band in enumerate(ORDER))
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<p:Level-{level[1:]}_User_Product xmlns:p="urn:test:{level}">'
            f"<p:General_Info><Product_Info><PROCESSING_LEVEL>Level-{level[1:]}</PROCESSING_LEVEL>"
            f"<PROCESSING_BASELINE>{baseline}</PROCESSING_BASELINE></Product_Info><Product_Image_Characteristics>{value}"
            f"{f'<{offset_list}>{listed}</{offset_list}>' if offsets else ''}"
            f"<Spectral_Information_List>{spectral}</Spectral_Information_List></Product_Image_Characteristics>"
            f"</p:General_Info></p:Level-{level[1:]}_User_Product>\n")


def product_folder(folder, east20: float = 0.0, east60: float = 0.0, offset: int = 0, level: str | None = "L1C",
                   metadata: str | None = None, granule: str | None = None) -> str:
    """A Sentinel-2-like folder from the committed crops: one file per 10 m and 60 m band, one 20 m stack
    whose band names are only in its file name, all georeferenced on one UTM origin (the 20 m and 60 m files
    moved ``east20`` and ``east60`` metres east of it). With ``offset`` the bands are int32, ``offset`` + the crops'
    values. The files lie in ``IMG_DATA``, or with ``granule`` in ``GRANULE/granule/IMG_DATA/R10m`` (R20m, R60m) as
    in a Level-2A product; the product metadata file ``MTD_MSI{level}.xml`` (``level`` ``None``: none) holds
    ``metadata``, by default ``product_metadata(level)`` (processing baseline 02.05, no offset)."""

    def values(path: str) -> np.ndarray:
        return read(path) if not offset else read(path).astype(np.int32) + np.int32(offset)

    def place(resolution: int, name: str) -> str:
        data = folder / "GRANULE" / granule / "IMG_DATA" / f"R{resolution}m" if granule else folder / "IMG_DATA"
        os.makedirs(data, exist_ok=True)
        return str(data / name)

    for index, band in enumerate(("B04", "B03", "B02", "B08")):
        write_raster(place(10, f"T33UUB_20170527T100031_{band}.tif"), values(S2_10M)[index : index + 1],
                     transform=Affine(10.0, 0, 300000.0, 0, -10.0, 5800000.0))
    write_raster(place(20, "T33UUB_20m_B05-B06-B07-B8A-B11-B12.tif"), values(S2_20M_SAME_AREA),
                 transform=Affine(20.0, 0, 300000.0 + east20, 0, -20.0, 5800000.0))
    for index, band in enumerate(("B01", "B09")):
        write_raster(place(60, f"T33UUB_20170527T100031_{band}.tif"), values(S2_60M_SAME_AREA)[index : index + 1],
                     transform=Affine(60.0, 0, 300020.0 + east60, 0, -60.0, 5800000.0))
    if level is not None:
        (folder / f"MTD_MSI{level}.xml").write_text(metadata if metadata is not None else product_metadata(level))
    return str(folder)


def test_a_products_loss_figure_tells_its_stages_tiles_apart(tmp_path, monkeypatch):
    """The 20 m and 60 m stages' curves share one figure: its title says how many tiles each stage had."""
    from internal_sr.core import figures
    from internal_sr.core.sentinel2_product import sharpen_product

    titles = []
    draw = figures.loss_curve
    monkeypatch.setattr(figures, "loss_curve", lambda curves, method, *a, **k: titles.append((len(curves), method)) or draw(curves, method, *a, **k))
    config = replace(FAST, tiles=TileOptions(24, 4))
    sharpen_product([product_folder(tmp_path / "S2A.SAFE")], str(tmp_path / "all10m.tif"), config)
    (count, title), = titles
    stages = re.fullmatch(r"guided DIP \(tiles: 20 m bands (\d+), 60 m bands (\d+)\)", title)
    assert stages and int(stages[1]) > 1 and int(stages[1]) + int(stages[2]) == count


def test_a_product_folder_becomes_all_bands_at_10m(tmp_path):
    from internal_sr.core.sentinel2_product import find_bands, sharpen_product

    folder = product_folder(tmp_path / "S2A.SAFE")
    found = find_bands([folder])
    assert sorted(found) == sorted(["B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B11", "B12"])
    assert found["B8A"].index == 4 and found["B8A"].path.endswith("B05-B06-B07-B8A-B11-B12.tif")
    out = str(tmp_path / "all10m.tif")
    result = sharpen_product([folder], out, FAST)
    # the log says which file each band came from
    data = os.path.join(folder, "IMG_DATA")
    assert f"B5, B6, B7, B8A, B11, B12 from {data}/T33UUB_20m_B05-B06-B07-B8A-B11-B12.tif" in result.messages
    assert f"B1 from {data}/T33UUB_20170527T100031_B01.tif" in result.messages
    # the registration check of each step names its bands: 20 × 20 60 m pixels are too few to judge
    assert "the registration check of the 60 m bands B1, B9 and the 10 m bands B2, B3, B4, B8 is skipped" in "\n".join(result.messages)
    with rasterio.open(out) as dst:
        assert dst.descriptions == ("B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B11", "B12")
        # the 10 m bands' whole grid: the 60 m bands, which cover 10 m rows 0–119 and columns 2–121 only, have no
        # data elsewhere (the output was cut to that area, dropping the other bands' pixels, without a word)
        assert dst.transform == Affine(10.0, 0, 300000.0, 0, -10.0, 5800000.0)
        assert (dst.width, dst.height) == (128, 128) and dst.dtypes[0] == "uint16" and dst.crs.to_epsg() == 32633
        assert dst.nodata == 0
        values = dst.read()
    assert ("the 60 m bands (B1, B9) cover 10 m columns 2–121, rows 0–119 of the 128×128 10 m pixels: they have no data "
            "elsewhere") in result.messages
    np.testing.assert_array_equal(values[[3, 2, 1, 7]], read(S2_10M))  # B4, B3, B2, B8 pass through untouched
    covered = sixty_cover(dst)
    assert (values[[0, 9]][:, ~covered] == 0).all() and (values[[0, 9]][:, covered] != 0).all()
    assert (values[[4, 5, 6, 8, 10, 11]] != 0).all()  # the 20 m bands cover the 10 m grid
    assert [n for n in os.listdir(tmp_path) if n.startswith(".internal_sr-")] == []


def test_a_product_band_file_georeferenced_by_points_only_is_named(tmp_path, capsys):
    """A band file without a geotransform, placed by ground control points in the product's CRS: it was said to be
    in no CRS, to be reprojected; now the one-line refusal guided and an extent give, naming the file."""
    import warnings

    from rasterio.control import GroundControlPoint
    from rasterio.errors import NotGeoreferencedWarning

    folder = product_folder(tmp_path / "S2A.SAFE")
    path = str(tmp_path / "S2A.SAFE" / "IMG_DATA" / "T33UUB_20170527T100031_B08.tif")
    corners = [(row, col, 300000.0 + 10 * col, 5800000.0 - 10 * row) for row in (0, 128) for col in (0, 128)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        write_raster(path, read(S2_10M)[3:4], crs=None, transform=Affine.identity())
        with rasterio.open(path, "r+") as dataset:
            dataset.gcps = ([GroundControlPoint(*corner) for corner in corners], rasterio.crs.CRS.from_epsg(32633))
    out = str(tmp_path / "all10m.tif")
    assert cli(["sentinel2", folder, out, "--iterations", "2"]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1:] == [
        f"internal-sr: error: {path} is georeferenced by ground control points only (no geotransform), so its pixels "
        "cannot be matched with the other resolutions' bands: warp it to a map grid first (gdalwarp)"
    ]
    assert not os.path.exists(out)


def test_int32_bands_on_a_large_offset_pass_through_exactly(tmp_path):
    """The product's bands are assembled in the float type that holds their values (float64 for int32): the 10 m
    bands on an offset of 2e9 pass through untouched (float32 rounded them to steps of 128), and the sharpened
    bands stay within the 20 m and 60 m bands' own range (not thrown off by such steps)."""
    from internal_sr.core.sentinel2_product import sharpen_product

    offset = 2_000_000_000
    out = str(tmp_path / "all10m.tif")
    sharpen_product([product_folder(tmp_path / "S2A.SAFE", offset=offset)], out, FAST)
    with rasterio.open(out) as dst:
        assert dst.dtypes[0] == "int32"
        values = dst.read().astype(np.int64) - offset
    np.testing.assert_array_equal(values[[3, 2, 1, 7]], read(S2_10M))
    twenty = read(S2_20M_SAME_AREA).astype(np.int64)
    low, high = twenty.min(axis=(1, 2)), twenty.max(axis=(1, 2))
    span = high - low
    sharpened = values[[4, 5, 6, 8, 10, 11]]  # B5, B6, B7, B8A, B11, B12
    assert np.all(sharpened.min(axis=(1, 2)) > low - span) and np.all(sharpened.max(axis=(1, 2)) < high + span)


def test_each_product_band_keeps_its_scale_offset_unit_and_metadata_items(tmp_path):
    """Each band's scale/offset (a processing baseline 04.00 offset of −1000 digital numbers and ×10⁻⁴ among
    them), unit and band metadata items reach the output, so its values read as the same physical values: the
    stacks sharpened and the assembled output had dropped them (the values then read as digital numbers)."""
    from internal_sr.core.sentinel2_product import find_bands, sharpen_product

    folder = product_folder(tmp_path / "S2A.SAFE")
    for k, source in enumerate(sorted({s.path for s in find_bands([folder]).values()})):
        with rasterio.open(source, "r+") as dataset:
            dataset.scales = [1e-4 * (k + 1)] * dataset.count
            dataset.offsets = [-1000e-4 * (k + 1) - b for b in range(dataset.count)]
            dataset.units = [f"unit {k} {b}" for b in range(dataset.count)]
            for b in range(1, dataset.count + 1):
                dataset.update_tags(b, SOURCE=f"{os.path.basename(source)} band {b}")
    found = find_bands([folder])
    out = str(tmp_path / "all10m.tif")
    result = sharpen_product([folder], out, FAST)
    with rasterio.open(out) as dst:
        for index, name in enumerate(dst.descriptions, start=1):
            with rasterio.open(found[name].path) as src:
                b = found[name].index
                expected = (src.scales[b - 1], src.offsets[b - 1], src.units[b - 1], src.tags(b))
            assert (dst.scales[index - 1], dst.offsets[index - 1], dst.units[index - 1], dst.tags(index)) == expected
    # they disagree with the product metadata file's (scale 1/10000, offset 0 at processing baseline 02.05): the log says so
    assert (f"band B1 in {found['B1'].path} declares scale 0.0001 and offset -0.1, but {folder}/MTD_MSIL1C.xml gives "
            "0.0001 and 0: the band file's are kept") in result.messages
    assert sum(" the band file's are kept" in m for m in result.messages) == 12


@pytest.mark.parametrize("level, baseline, added", [("L1C", "02.05", 0), ("L1C", "04.00", -1000), ("L2A", "02.14", 0),
                                                    ("L2A", "04.00", -1000)])
def test_a_products_radiometry_in_its_metadata_file_is_declared_on_each_band(tmp_path, level, baseline, added):
    """ESA's band files declare no scale/offset: the product's radiometry is in its MTD_MSIL1C.xml / MTD_MSIL2A.xml
    (reflectance = (DN + offset) / quantification, offset −1000 from processing baseline 04.00 on). The output held
    the digital numbers with no declared radiometry (1000 too high from 04.00 on once divided by hand); now each band
    declares scale 1/10000 and offset offset/10000 over its untouched digital numbers, so that physical values read
    as evaluate reads them are reflectance. The Level-2A bands lie four folders below the .SAFE root."""
    from internal_sr.core.evaluation import physical_values
    from internal_sr.core.raster import open_info
    from internal_sr.core.sentinel2_product import sharpen_product

    granule = "L2A_T33UUB_A010151_20170527T100031" if level == "L2A" else None
    folder = product_folder(tmp_path / f"S2A_MSI{level}.SAFE", level=level, metadata=product_metadata(level, baseline),
                            granule=granule)
    out = str(tmp_path / "all10m.tif")
    result = sharpen_product([folder], out, FAST)
    with rasterio.open(out) as dst:
        assert dst.scales == (1 / 10000,) * 12 and dst.offsets == (added / 10000,) * 12
        stored = dst.read()
    np.testing.assert_array_equal(stored[[3, 2, 1, 7]], read(S2_10M))  # the digital numbers are kept
    physical = physical_values(stored.astype(np.float64), open_info(out))
    np.testing.assert_allclose(physical[[3, 2, 1, 7]], (read(S2_10M).astype(np.float64) + added) / 10000, rtol=1e-12)
    assert (f"radiometry from {folder}/MTD_MSI{level}.xml (processing baseline {baseline}): reflectance = (DN + offset) "
            f"/ 10000, offset {added}: B1, B2, B3, B4, B5, B6, B7, B8, B8A, B9, B11, B12 declare scale and offset so that "
            "their stored digital numbers read as reflectance") in result.messages


def test_the_offsets_band_id_is_the_bands_index_with_b8a_after_b8(tmp_path):
    """An offset's band_id is the band's index in B1 … B8, B8A, B9 … B12 (B8A is 8; the file's Band_List puts it
    last): each band gets its own offset."""
    from internal_sr.core.sentinel2 import ORDER
    from internal_sr.core.sentinel2_radiometry import read_radiometry

    path = tmp_path / "MTD_MSIL2A.xml"
    path.write_text(product_metadata("L2A", "05.09", {band_id: str(-1000 - band_id) for band_id in range(len(ORDER))}))
    radiometry = read_radiometry(str(path))
    for band in ("B8", "B8A", "B9", "B12"):
        assert radiometry.scale_offset(band) == pytest.approx((1 / 10000, (-1000 - ORDER.index(band)) / 10000), rel=1e-12)


def test_older_level_2a_products_quantification_value_is_read_too(tmp_path):
    """Older Level-2A metadata files name the quantification value L2A_BOA_QUANTIFICATION_VALUE."""
    from internal_sr.core.sentinel2_radiometry import read_radiometry

    path = tmp_path / "MTD_MSIL2A.xml"
    path.write_text(product_metadata("L2A", "02.07", quantification="1000").replace("BOA_QUANTIFICATION_VALUE",
                                                                                    "L2A_BOA_QUANTIFICATION_VALUE"))
    assert read_radiometry(str(path)).scale_offset("B8A") == (1 / 1000, 0)


ALL_BAND_IDS = dict.fromkeys(range(13), "-1000")


@pytest.mark.parametrize(
    "level, metadata, message",
    [
        ("L1C", product_metadata("L1C", "04.00", quantification=None), "gives no one positive QUANTIFICATION_VALUE (found: none)"),
        ("L2A", product_metadata("L2A", "04.00", quantification="0"), "gives no one positive BOA_QUANTIFICATION_VALUE or L2A_BOA_QUANTIFICATION_VALUE (found: 0)"),
        ("L2A", product_metadata("L2A", "04.00", {**ALL_BAND_IDS, 13: "-1000"}),
         "gives BOA_ADD_OFFSET band_id '13', none of 0 … 12 (B1 … B12)"),
        ("L1C", product_metadata("L1C", "04.00", {}),
         "names processing baseline 04.00, from which every band has an additive offset, but lists no RADIO_ADD_OFFSET"),
        ("L1C", product_metadata("L1C", "04.00", {k: v for k, v in ALL_BAND_IDS.items() if k != 8}),
         "lists no RADIO_ADD_OFFSET for band B8A (band_id 8)"),
        ("L1C", product_metadata("L1C", "04.00", {**ALL_BAND_IDS, 3: "-1e3x"}), "gives RADIO_ADD_OFFSET of band B4 '-1e3x', no number"),
        ("L1C", product_metadata("L1C", "04.00").replace('physicalBand="B8A"', 'physicalBand="B12"'),
         "pairs bandId 8 with B12, not B8A as ESA numbers the bands (B1, B2, B3, B4, B5, B6, B7, B8, B8A, B9, B10, B11, B12)"),
        ("L1C", "<metadata/", "cannot be read as XML (unclosed token: line 1, column 0)"),
    ],
    ids=["no quantification", "quantification 0", "band_id 13", "no offset at 04.00", "no offset for B8A", "offset no number",
         "bandId numbered otherwise", "not XML"],
)
def test_a_product_metadata_file_without_the_bands_radiometry_is_refused_in_one_line(tmp_path, capsys, level, metadata,
                                                                                    message):
    """A product metadata file that does not give the bands' radiometry (no quantification value, a band_id out of
    range or numbered otherwise, no offset from processing baseline 04.00 on, not XML) was not read: the output held
    digital numbers with no declared radiometry. It is refused in one line, before any work, naming the file and
    what it lacks: the product's digital numbers would otherwise be written without the radiometry it declares."""
    folder = product_folder(tmp_path / "p.SAFE", level=level, metadata=metadata)
    out = tmp_path / "o.tif"
    assert cli(["sentinel2", folder, str(out), "--iterations", "1"]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1:] == [
        f"internal-sr: error: the product metadata {folder}/MTD_MSI{level}.xml {message}, so the bands' radiometry "
        "(reflectance = (DN + offset) / quantification) is unknown: download the product again, or give copies of its "
        "band files outside it to write digital numbers with no declared radiometry"]
    assert not out.exists()


def test_band_files_of_two_products_metadata_files_are_refused(tmp_path, capsys):
    """Band files below two product metadata files (a 60 m band taken from another product, whose file names do not
    tell acquisitions apart) would be given one product's radiometry: refused naming a file of each and both products."""
    folder = product_folder(tmp_path / "A.SAFE", metadata=product_metadata("L1C", "04.00"))
    other = product_folder(tmp_path / "B.SAFE")
    os.remove(os.path.join(folder, "IMG_DATA", "T33UUB_20170527T100031_B01.tif"))
    b1 = os.path.join(other, "IMG_DATA", "T33UUB_20170527T100031_B01.tif")
    out = tmp_path / "o.tif"
    assert cli(["sentinel2", os.path.join(folder, "IMG_DATA"), b1, str(out), "--iterations", "1"]) == 2
    b2 = os.path.join(folder, "IMG_DATA", "T33UUB_20170527T100031_B02.tif")
    assert capsys.readouterr().err.strip().splitlines()[-1:] == [
        f"internal-sr: error: the band files lie in two products: {b2} in the one of {folder}/MTD_MSIL1C.xml but {b1} in "
        f"the one of {other}/MTD_MSIL1C.xml: give the band files of one product"]
    assert not out.exists()


#: The product part of ESA's names before the compact naming of December 2016 (folder ``S2A_OPER_PRD_MSIL1C_…``)
OLD_PRODUCT = "PDMC_20160112T195936_R004_V20160112T155142_20160112T155142"


def old_format_product(folder, level: str = "L1C", tiles=("T33UUB",)) -> str:
    """A product in ESA's format before December 2016, from the committed crops, in ``folder``: at its root the product
    metadata file ``S2A_OPER_MTD_SAFL1C_….xml`` (``product_metadata`` at processing baseline 02.01; Level-2A made by
    Sen2Cor: ``S2A_USER_MTD_SAFL2A_….xml``, quantification value ``L2A_BOA_QUANTIFICATION_VALUE``); for each of
    ``tiles`` a granule folder ``GRANULE/S2A_OPER_MSI_L1C_TL_SGS__…_T33UUB_N02.01`` with its own metadata file (geometry
    only: read as the product's, it would be refused) and one file per band named after the granule,
    ``IMG_DATA/…_T33UUB_B01.tif`` (Level-2A: ``IMG_DATA/R60m/…_T33UUB_B01_60m.tif``, and a resampled copy of B2 in
    ``R20m`` as Sen2Cor writes), on the UTM origin of ``product_folder``."""
    kind = {"L1C": "OPER", "L2A": "USER"}[level]
    root = folder / f"S2A_{kind}_PRD_MSI{level}_{OLD_PRODUCT}.SAFE"
    root.mkdir(parents=True)
    metadata = product_metadata(level, "02.01")
    if level == "L2A":
        metadata = metadata.replace("BOA_QUANTIFICATION_VALUE", "L2A_BOA_QUANTIFICATION_VALUE")
    (root / f"S2A_{kind}_MTD_SAF{level}_{OLD_PRODUCT}.xml").write_text(metadata)
    bands = {10: ("B04", "B03", "B02", "B08"), 20: ("B05", "B06", "B07", "B8A", "B11", "B12"), 60: ("B01", "B09")}
    images = {10: read(S2_10M), 20: read(S2_20M_SAME_AREA), 60: read(S2_60M_SAME_AREA)}
    west = {10: 300000.0, 20: 300000.0, 60: 300020.0}
    for tile in tiles:
        granule = f"S2A_{kind}_MSI_{level}_TL_SGS__20160112T195936_A002865_{tile}"
        data = root / "GRANULE" / f"{granule}_N02.01"
        os.makedirs(data / "IMG_DATA")
        (data / f"S2A_{kind}_MTD_{level}_TL_SGS__20160112T195936_A002865_{tile}.xml").write_text(
            f'<?xml version="1.0" encoding="UTF-8"?>\n<n1:Level-{level[1:]}_Tile_ID xmlns:n1="urn:test:tile"><n1:Geometric_Info>'
            f"<Tile_Geocoding><HORIZONTAL_CS_CODE>EPSG:32633</HORIZONTAL_CS_CODE></Tile_Geocoding></n1:Geometric_Info>"
            f"</n1:Level-{level[1:]}_Tile_ID>\n")
        for res, names in bands.items():
            place = data / "IMG_DATA" / (f"R{res}m" if level == "L2A" else "")
            os.makedirs(place, exist_ok=True)
            suffix = f"_{res}m" if level == "L2A" else ""
            for index, band in enumerate(names):
                write_raster(str(place / f"{granule}_{band}{suffix}.tif"), images[res][index : index + 1],
                             transform=Affine(float(res), 0, west[res], 0, -float(res), 5800000.0))
        if level == "L2A":
            write_raster(str(data / "IMG_DATA" / "R20m" / f"{granule}_B02_20m.tif"), images[10][2:3, ::2, ::2].copy(),
                         transform=Affine(20.0, 0, 300000.0, 0, -20.0, 5800000.0))
    return str(root)


@pytest.mark.parametrize("level", ["L1C", "L2A"])
def test_an_old_format_products_radiometry_is_read_from_its_product_metadata_file(tmp_path, level):
    """A product in ESA's format before December 2016 names its metadata file after the product
    (``S2A_OPER_MTD_SAFL1C_….xml``, ``S2A_USER_MTD_SAFL2A_….xml``) and its band files after their granule: the bands
    were found but not the metadata file, and the output held digital numbers with no declared radiometry. Now each
    band declares the product's (1/10000, no offset before baseline 04.00), read from the file at the product root and
    not from the granule's own metadata file, which lies nearer the band files; Level-2A bands come from their native
    resolution's folder."""
    from internal_sr.core.sentinel2_product import sharpen_product

    root = old_format_product(tmp_path, level)
    out = str(tmp_path / "all10m.tif")
    result = sharpen_product([root], out, FAST)
    with rasterio.open(out) as dst:
        assert dst.descriptions == ("B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B11", "B12")
        assert dst.scales == (1 / 10000,) * 12 and dst.offsets == (0.0,) * 12
        np.testing.assert_array_equal(dst.read()[[3, 2, 1, 7]], read(S2_10M))  # B4, B3, B2, B8: the digital numbers kept
    kind = {"L1C": "OPER", "L2A": "USER"}[level]
    assert (f"radiometry from {root}/S2A_{kind}_MTD_SAF{level}_{OLD_PRODUCT}.xml (processing baseline 02.01): reflectance "
            "= (DN + offset) / 10000, offset 0: B1, B2, B3, B4, B5, B6, B7, B8, B8A, B9, B11, B12 declare scale and offset "
            "so that their stored digital numbers read as reflectance") in result.messages


def test_an_old_format_product_of_two_tiles_is_sharpened_one_granule_folder_at_a_time(tmp_path, capsys):
    """An old-format product may hold many tiles: given whole, it is refused in one line that says to give one tile's
    granule folder; given that folder, the run takes the radiometry of the product metadata file above it."""
    root = old_format_product(tmp_path, tiles=("T33UUB", "T33UUC"))
    out = tmp_path / "o.tif"
    assert cli(["sentinel2", root, str(out), "--iterations", "1"]) == 2
    granule = "S2A_OPER_MSI_L1C_TL_SGS__20160112T195936_A002865_{}"
    first, second = (os.path.join(root, "GRANULE", f"{granule.format(t)}_N02.01", "IMG_DATA", f"{granule.format(t)}_B01.tif")
                     for t in ("T33UUB", "T33UUC"))
    assert capsys.readouterr().err.strip().splitlines() == [
        f"internal-sr: error: the band files are of two acquisitions: {first} names tile T33UUB but {second} T33UUC: give "
        "the band files of one product (of a product holding several tiles, one tile's granule folder)"]
    assert not out.exists()
    assert cli(["sentinel2", os.path.dirname(os.path.dirname(second)), str(out), "--iterations", "1"]) == 0
    with rasterio.open(out) as dst:
        assert dst.scales == (1 / 10000,) * 12 and dst.offsets == (0.0,) * 12


def test_a_folder_holding_two_product_metadata_files_is_refused(tmp_path, capsys):
    """Two old-format products' root files unpacked into one folder: matched by their pattern, either could be the
    bands' product metadata file, so the run is refused naming both rather than taking one's radiometry."""
    root = old_format_product(tmp_path)
    other = f"S2A_OPER_MTD_SAFL1C_{OLD_PRODUCT.replace('R004', 'R047')}.xml"
    with open(os.path.join(root, other), "w") as file:
        file.write(product_metadata("L1C", "02.01", quantification="1000"))
    out = tmp_path / "o.tif"
    assert cli(["sentinel2", root, str(out), "--iterations", "1"]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith(
        f"internal-sr: error: {root} holds two product metadata files, S2A_OPER_MTD_SAFL1C_{OLD_PRODUCT}.xml and {other}, "
        "so the product of ")
    assert last.endswith(": keep each product's files in its own folder")
    assert not out.exists()


@pytest.mark.parametrize("sidecar", [".aux.xml", ".bak.xml"])
def test_a_sidecar_named_after_the_product_metadata_file_is_no_second_metadata_file(tmp_path, sidecar):
    """QGIS opens an old-format product by its metadata file (GDAL's SENTINEL2 driver) and GDAL keeps what it computes
    there in ``S2A_OPER_MTD_SAFL1C_….xml.aux.xml`` beside it: the old-format name's pattern took that for a second
    product metadata file and refused the product as two. A product name holds no dot, so such a sidecar is none."""
    from internal_sr.core.sentinel2_radiometry import metadata_file

    root = tmp_path / f"S2A_OPER_PRD_MSIL1C_{OLD_PRODUCT}.SAFE"
    img_data = root / "GRANULE" / "S2A_OPER_MSI_L1C_TL_SGS__20160112T195936_A002865_T18SVG_N02.01" / "IMG_DATA"
    img_data.mkdir(parents=True)
    metadata = root / f"S2A_OPER_MTD_SAFL1C_{OLD_PRODUCT}.xml"
    metadata.write_text(product_metadata("L1C", "02.01"))
    (root / f"{metadata.name}{sidecar}").write_text("<PAMDataset/>\n")
    assert metadata_file(str(img_data / "S2A_OPER_MSI_L1C_TL_SGS__20160112T195936_A002865_T18SVG_B01.jp2")) == str(metadata)


def test_band_files_outside_a_product_are_said_to_hold_digital_numbers(tmp_path):
    """Band files with no product metadata file above them and no scale/offset of their own (a B1 copied out of its
    product, beside a product whose metadata file gives the other bands' radiometry): the log says which bands the
    output holds as digital numbers with no declared radiometry, and those declare none."""
    from internal_sr.core.sentinel2_product import sharpen_product

    folder = product_folder(tmp_path / "S2A.SAFE", metadata=product_metadata("L1C", "04.00"))
    loose = tmp_path / "loose"
    loose.mkdir()
    b1 = os.path.join(loose, "T33UUB_20170527T100031_B01.tif")
    os.rename(os.path.join(folder, "IMG_DATA", "T33UUB_20170527T100031_B01.tif"), b1)
    out = str(tmp_path / "all10m.tif")
    result = sharpen_product([folder, b1], out, FAST)
    assert ("B1 declare no scale/offset and lie in no product with a metadata file (MTD_MSIL1C.xml, "
            "S2A_OPER_MTD_SAFL1C_….xml, MTD_MSIL2A.xml, S2A_USER_MTD_SAFL2A_….xml): "
            "the output holds their digital numbers with no declared radiometry") in result.messages
    with rasterio.open(out) as dst:
        assert (dst.scales[0], dst.offsets[0]) == (1, 0) and dst.scales[1:] == (1 / 10000,) * 11
        assert dst.offsets[1:] == (-0.1,) * 11


def test_a_level_2a_product_takes_each_band_at_its_own_resolution(tmp_path):
    """L2A folders hold resampled copies (R20m/…_B01_20m, R60m/…_B05_60m) that sort before the native
    files: each band comes from the file at its own resolution, so B1 and B9 share the 60 m grid."""
    from internal_sr.core.sentinel2_product import find_bands

    folder = tmp_path / "S2A_MSIL2A.SAFE"
    for resolution in (10, 20, 60):
        os.makedirs(folder / f"R{resolution}m")
    utm = {r: Affine(float(r), 0, 300000.0, 0, -float(r), 5800000.0) for r in (10, 20, 60)}
    for index, band in enumerate(("B04", "B03", "B02", "B08")):
        write_raster(str(folder / "R10m" / f"T33UUB_{band}_10m.tif"), read(S2_10M)[index : index + 1], transform=utm[10])
    twenty = read(S2_20M_SAME_AREA)
    for index, band in enumerate(("B05", "B06", "B07", "B8A", "B11", "B12")):
        write_raster(str(folder / "R20m" / f"T33UUB_{band}_20m.tif"), twenty[index : index + 1], transform=utm[20])
        write_raster(str(folder / "R60m" / f"T33UUB_{band}_60m.tif"), twenty[index : index + 1, :20, :20], transform=utm[60])
    write_raster(str(folder / "R20m" / "T33UUB_B01_20m.tif"), twenty[:1], transform=utm[20])
    for index, band in enumerate(("B01", "B09")):
        write_raster(str(folder / "R60m" / f"T33UUB_{band}_60m.tif"), read(S2_60M_SAME_AREA)[index : index + 1], transform=utm[60])
    found = find_bands([str(folder)])
    expected = {"B1": "R60m", "B9": "R60m", "B5": "R20m", "B8A": "R20m", "B12": "R20m", "B2": "R10m"}
    assert {band: os.path.basename(os.path.dirname(found[band].path)) for band in expected} == expected


@pytest.mark.parametrize(
    "renamed, message",
    [
        ("T33UUB_20171101T101009_20m_B05-B06-B07-B8A-B11-B12.tif",
         "{data}/T33UUB_20170527T100031_B01.tif names sensing time 2017-05-27 10:00:31 but {data}/{renamed} 2017-11-01 10:10:09: "
         "give the band files of one product"),
        ("T33UUC_20m_B05-B06-B07-B8A-B11-B12.tif",
         "{data}/T33UUB_20170527T100031_B01.tif names tile T33UUB but {data}/{renamed} T33UUC: give the band files of one "
         "product (of a product holding several tiles, one tile's granule folder)"),
    ],
)
def test_band_files_of_two_acquisitions_are_refused_naming_both(tmp_path, capsys, renamed, message):
    """20 m bands of another date (or tile) were sharpened with the 10 m bands silently: refused in one line that
    names a file of each acquisition and what differs, before any work; two tiles may be one old-format product's
    granules, so that line says to give one granule folder."""
    folder = product_folder(tmp_path / "p")
    data = os.path.join(folder, "IMG_DATA")
    os.rename(os.path.join(data, "T33UUB_20m_B05-B06-B07-B8A-B11-B12.tif"), os.path.join(data, renamed))
    out = tmp_path / "o.tif"
    assert cli(["sentinel2", folder, str(out), "--iterations", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"internal-sr: error: the band files are of two acquisitions: {message.format(data=data, renamed=renamed)}"]
    assert not out.exists()


def test_a_band_in_two_files_is_refused_naming_both(tmp_path, capsys):
    """Two files of one band at its own resolution (two products' files without dates in their names, a copy): the
    first in path order was taken silently; now refused naming both files."""
    folder = product_folder(tmp_path / "p")
    b4 = os.path.join(folder, "IMG_DATA", "T33UUB_20170527T100031_B04.tif")
    copy = write_raster(str(tmp_path / "p" / "A_B04.tif"), read(S2_10M)[:1])
    assert cli(["sentinel2", folder, str(tmp_path / "o.tif"), "--iterations", "1"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"internal-sr: error: band B4 is in two files, {copy} and {b4}: give each band once (the band files of one product)"]


def test_a_band_file_reached_twice_is_one_file(tmp_path, monkeypatch):
    """The product folder given twice by two spellings (``p`` and ``./p``), or with its band folder: each band file
    was found under both paths and refused as 'in two files', the same file named twice. A file is now listed once,
    by the path it was first reached by."""
    from internal_sr.core.sentinel2_product import find_bands

    product_folder(tmp_path / "p")
    monkeypatch.chdir(tmp_path)
    expected = find_bands(["p"])
    assert find_bands(["p", "./p"]) == expected
    assert find_bands(["p", os.path.join("p", "IMG_DATA")]) == expected
    b2 = expected["B2"].path
    assert find_bands(["p", os.path.abspath(b2)]) == expected


def test_a_staging_folder_left_by_a_killed_run_is_skipped(tmp_path, capsys):
    """A run killed outright leaves its staging folder (band stacks named by their bands) beside its output: with the
    output inside the product folder, every later run found each 10 m band there too and was refused ('band B2 is in
    two files'). The folder scan now skips such folders and names them in the log."""
    from internal_sr.core.raster import PARTIAL_PREFIX, PARTIAL_SUFFIX
    from internal_sr.core.sentinel2_product import _write_stack, find_bands

    folder = product_folder(tmp_path / "p")
    expected = find_bands([folder])
    staging = os.path.join(folder, f"{PARTIAL_PREFIX}killed{PARTIAL_SUFFIX}")
    os.makedirs(staging)
    _write_stack([expected[b] for b in ("B2", "B3", "B4", "B8")], os.path.join(staging, "10m.tif"), {})
    out = os.path.join(folder, "all.tif")
    assert cli(["sentinel2", folder, out, "--iterations", "1"]) == 0
    assert f"{staging} (the staging folder of a run killed outright: remove it)" in capsys.readouterr().err
    assert find_bands([folder]) == expected


def test_an_output_written_into_the_product_folder_is_no_band_file_of_the_next_run(tmp_path, capsys):
    """sentinel2 run twice into the folder it reads: the second run was refused ('output … is the input'), and with
    another output name it read the first output's bands instead of the band files. Folder scans now skip the
    output and earlier outputs (marked by ``PRODUCT_TAG``), and say so; other commands do not carry the mark."""
    folder = product_folder(tmp_path / "p")
    first, second = (os.path.join(folder, "IMG_DATA", name) for name in ("S2_all.tif", "A_all.tif"))  # before T33UUB_…
    for out in (first, first, second):
        assert cli(["sentinel2", folder, out, "--iterations", "1"]) == 0
        err = capsys.readouterr().err
    from internal_sr.core.sentinel2_product import PRODUCT_TAG

    assert f"{first} (written by internal-sr sentinel2)" in err
    assert f"B2, B3, B4, B8 from {folder}/IMG_DATA/T33UUB_20170527T100031_B02.tif" not in err  # one line per file
    assert f"B2 from {folder}/IMG_DATA/T33UUB_20170527T100031_B02.tif" in err
    with rasterio.open(second) as dst:
        assert dst.tags()[PRODUCT_TAG] == "sentinel2"
        np.testing.assert_array_equal(dst.read(2), read(S2_10M)[2])
    degraded = str(tmp_path / "degraded.tif")
    assert cli(["degrade", second, degraded, "--scale", "2"]) == 0
    with rasterio.open(degraded) as dst:
        assert PRODUCT_TAG not in dst.tags()


def test_a_band_file_of_the_folder_given_as_output_is_refused_not_overwritten(tmp_path, capsys):
    """The output named like a band file of the folder read (the 20 m stack): it was skipped as 'the output', the
    20 m bands left out without an error, and the band file overwritten by the other bands. Only an earlier output
    of this command (``PRODUCT_TAG``) is skipped; a band file is refused as the output, as when named itself."""
    folder = product_folder(tmp_path / "p")
    stack = os.path.join(folder, "IMG_DATA", "T33UUB_20m_B05-B06-B07-B8A-B11-B12.tif")
    before = read(stack)
    assert cli(["sentinel2", folder, stack, "--iterations", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"internal-sr: error: output {stack} ") and "input" in err[0]
    np.testing.assert_array_equal(read(stack), before)


def test_a_file_named_for_sentinel2_must_name_its_bands_and_folder_files_skipped_are_named(tmp_path, capsys):
    """A 20 m stack without band descriptions named on the command line was skipped silently (the 10 m bands were
    written as they are); now a one-line error says how to name its bands. In a folder, such a file is skipped
    and named in the log."""
    folder = product_folder(tmp_path / "p")
    stack = write_raster(str(tmp_path / "s2_20m.tif"), read(S2_20M_SAME_AREA),
                         transform=Affine(20.0, 0, 300000.0, 0, -20.0, 5800000.0))
    ten = [os.path.join(folder, "IMG_DATA", f"T33UUB_20170527T100031_{b}.tif") for b in ("B02", "B03", "B04", "B08")]
    out = str(tmp_path / "o.tif")
    assert cli(["sentinel2", *ten, stack, out, "--iterations", "1"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"internal-sr: error: {stack}: neither its band descriptions nor its file name name a Sentinel-2 band for each "
        "of its 6 band(s): give its bands descriptions (B5, B6, …) or list them in its file name, one per band "
        "(…_B05-B06-B07-B8A-B11-B12.tif)"]
    assert not os.path.exists(out)
    os.rename(stack, os.path.join(folder, "s2_20m.tif"))
    preview = os.path.join(folder, "preview.jp2")
    with open(preview, "w") as file:
        file.write("not a raster")
    assert cli(["sentinel2", folder, out, "--iterations", "1"]) == 0
    assert (f"skipped 2 file(s) that are no band files: {preview} (not a raster); {folder}/s2_20m.tif (names no "
            "Sentinel-2 band)") in capsys.readouterr().err


def test_a_truncated_band_file_is_said_to_be_damaged(tmp_path, capsys):
    """A band file cut short (a failed download) kept its geotransform but lost its CRS, and sentinel2 asked to
    reproject it; now it says what degrade and dip say of it."""
    folder = product_folder(tmp_path / "p")
    b1 = os.path.join(folder, "IMG_DATA", "T33UUB_20170527T100031_B01.tif")
    with open(b1, "rb") as file:
        head = file.read(300)
    with open(b1, "wb") as file:
        file.write(head)
    assert cli(["sentinel2", folder, str(tmp_path / "o.tif"), "--iterations", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"internal-sr: error: {b1} cannot be read, the file may be damaged or truncated")


def test_sentinel2_reports_done_once(tmp_path, capsys):
    """The last stage's end was reported as the run's ('100.0% … done' twice, around the loss curve's line): now
    the stages' ends say which bands are sharpened, and only the end of the run says done, at 100 %."""
    assert cli(["sentinel2", product_folder(tmp_path / "p"), str(tmp_path / "o.tif"), "--iterations", "1"]) == 0
    bars = [line for line in capsys.readouterr().err.splitlines() if line.startswith("[")]
    assert [line for line in bars if line.endswith(" done")] == bars[-1:] and " 100.0% " in bars[-1]


def test_sentinel2_stages_its_band_stacks_in_a_part_folder(tmp_path, monkeypatch):
    """A run killed outright leaves its staging folder beside the output: it was a hidden '.internal_sr-XXXX' folder
    of full band stacks, where the README promises at most hidden '.internal_sr-*.part' files; now it is named so."""
    from internal_sr.core import sentinel2_product

    sharpen_part, seen = sentinel2_product.sharpen, []
    monkeypatch.setattr(sentinel2_product, "sharpen", lambda *a, **k: seen.append(os.listdir(tmp_path / "out")) or sharpen_part(*a, **k))
    (tmp_path / "out").mkdir()
    assert cli(["sentinel2", product_folder(tmp_path / "p"), str(tmp_path / "out" / "all.tif"), "--iterations", "1"]) == 0
    staged = [[name for name in names if not name.endswith(CLAIM_SUFFIX)] for names in seen]  # less the run's claims
    assert len(staged) == 2 and all(len(names) == 1 and re.fullmatch(r"\.internal_sr-.+\.part", names[0]) for names in staged)


def test_a_folder_without_10m_bands_is_a_clear_error(tmp_path, capsys):
    folder = product_folder(tmp_path / "p")
    os.remove(os.path.join(folder, "IMG_DATA", "T33UUB_20170527T100031_B08.tif"))
    assert cli(["sentinel2", folder, str(tmp_path / "o.tif"), "--iterations", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no Sentinel-2 10 m band B8 found" in err[0]


def test_bands_at_other_sensors_pixel_sizes_are_not_taken_for_sentinel2(tmp_path, capsys):
    """Landsat files carry the same band names (B2, B3, B4, B8): at 30 m they are named, not stacked as 10 m."""
    folder = tmp_path / "landsat"
    folder.mkdir()
    for index, band in enumerate(("B02", "B03", "B04", "B08")):
        write_raster(str(folder / f"scene_{band}.tif"), read(S2_10M)[index : index + 1], transform=Affine(30.0, 0, 300000.0, 0, -30.0, 5800000.0))
    assert cli(["sentinel2", str(folder), str(tmp_path / "o.tif"), "--iterations", "1"]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("internal-sr: error: ") and "has 30 m pixels, none of Sentinel-2's (10, 20, 60 m, within 5 %)" in last


def test_bands_in_two_crs_name_both_files(tmp_path, capsys):
    """A 60 m band from another UTM zone is named with its file, not reported as a temporary stack's CRS."""
    folder = product_folder(tmp_path / "p")
    b9 = os.path.join(folder, "IMG_DATA", "T33UUB_20170527T100031_B09.tif")
    with rasterio.open(b9, "r+") as dst:
        dst.crs = "EPSG:32634"
    assert cli(["sentinel2", folder, str(tmp_path / "o.tif"), "--iterations", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == (
        f"internal-sr: error: band B9 in {b9} is in EPSG:32634 but band B2 in "
        f"{os.path.join(folder, 'IMG_DATA', 'T33UUB_20170527T100031_B02.tif')} is in EPSG:32633: reproject the bands onto one CRS first"
    )


#: UTM zone 33N on the WGS 84 ellipsoid without the WGS 84 datum: it identifies as EPSG:32633 but is not that CRS
UTM_WITHOUT_DATUM = "+proj=utm +zone=33 +ellps=WGS84 +units=m +no_defs"


def test_a_crs_that_identifies_as_the_others_code_is_refused_naming_how_they_differ(tmp_path, capsys):
    """A guide whose CRS lacks the datum: refused as 'target CRS EPSG:32633 and guide CRS EPSG:32633 differ', which
    tells nothing; the message now gives the PROJ strings, which differ, and the remedy that resamples nothing."""
    t, g = geo_pair(tmp_path, guide_crs=UTM_WITHOUT_DATUM)
    assert cli(["guided", t, g, str(tmp_path / "never.tif"), "--iterations", "1"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "internal-sr: error: target CRS +proj=utm +zone=33 +datum=WGS84 +units=m +no_defs and guide CRS +proj=utm "
        "+zone=33 +ellps=WGS84 +units=m +no_defs differ: where both mean EPSG:32633, assign it to both (gdal_edit -a_srs "
        "EPSG:32633), nothing is resampled; else reproject one onto the other first"]


def test_a_band_in_a_crs_that_identifies_as_the_others_code_is_named_before_any_work(tmp_path, capsys, monkeypatch):
    """A 20 m stack whose CRS lacks the datum passed sentinel2's CRS check (compared as text, both 'EPSG:32633'), the
    10 m bands were staged, and the run ended on 'the 20 m bands … cannot be sharpened …: target CRS EPSG:32633 and
    guide CRS EPSG:32633 differ'. Bands are now compared as CRSs before any work, and the file is named."""
    from internal_sr.core import sentinel2_product

    folder = product_folder(tmp_path / "p")
    stack = os.path.join(folder, "IMG_DATA", "T33UUB_20m_B05-B06-B07-B8A-B11-B12.tif")
    with rasterio.open(stack, "r+") as dst:
        dst.crs = UTM_WITHOUT_DATUM
    staged = []
    monkeypatch.setattr(sentinel2_product, "_write_stack", lambda *a: staged.append(a))
    assert cli(["sentinel2", folder, str(tmp_path / "o.tif"), "--iterations", "1"]) == 2
    b2 = os.path.join(folder, "IMG_DATA", "T33UUB_20170527T100031_B02.tif")
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"internal-sr: error: band B5 in {stack} is in +proj=utm +zone=33 +ellps=WGS84 +units=m +no_defs but band B2 "
        f"in {b2} is in +proj=utm +zone=33 +datum=WGS84 +units=m +no_defs: reproject the bands onto one CRS first")
    assert staged == []


def test_sentinel2_takes_zero_as_no_data_when_the_files_declare_none(tmp_path, capsys):
    """ESA's JPEG 2000 band files declare no nodata value but mark no data by 0: a block of zeros in the 20 m
    bands (outside the swath) comes out as nodata under the output's nodata value 0, not sharpened as dark."""
    folder = product_folder(tmp_path / "p")
    stack = os.path.join(folder, "IMG_DATA", "T33UUB_20m_B05-B06-B07-B8A-B11-B12.tif")
    twenty = read(S2_20M_SAME_AREA)
    twenty[:, 4:8, 4:8] = 0
    write_raster(stack, twenty, transform=Affine(20.0, 0, 300000.0, 0, -20.0, 5800000.0))
    out = str(tmp_path / "all.tif")
    assert cli(["sentinel2", folder, out, "--iterations", "1"]) == 0
    assert "12 of the 12 bands declare no nodata value: 0 is no data there, as in Sentinel-2 products" in capsys.readouterr().err
    with rasterio.open(out) as dst:
        assert dst.nodata == 0 and dst.descriptions[4] == "B5"
        b5 = dst.read(5)
        hole = hole_at_10m(dst)
        assert hole.sum() == 64 and (b5[hole] == 0).all()
        assert (b5[~hole] > 0).mean() > 0.9  # the rest is sharpened data (pixels whose kernels reach the hole are nodata too)


def test_sentinel2_marks_the_holes_of_lower_resolutions_when_integer_10m_bands_declare_no_nodata(tmp_path, capsys):
    """int16 10 m bands without a nodata value (nothing marks no data there) beside 20 m bands whose own nodata
    leaves a hole: the output had no nodata value and no mask, so the hole read as 0, a valid-looking value.
    Now a value no valid pixel holds (int16's least) is the output's nodata, and the hole is marked by it."""
    folder = product_folder(tmp_path / "p")
    data = os.path.join(folder, "IMG_DATA")
    for name in os.listdir(data):
        with rasterio.open(os.path.join(data, name)) as src:
            values, transform = src.read().astype(np.int16), src.transform
        nodata = None
        if "_20m_" in name:
            values[:, 4:8, 4:8] = -9999
            nodata = -9999
        write_raster(os.path.join(data, name), values, transform=transform, nodata=nodata)
    out = str(tmp_path / "all.tif")
    assert cli(["sentinel2", folder, out, "--iterations", "1"]) == 0
    assert ("the 10 m bands declare no nodata value, and B1, B5, B6, B7, B8A, B9, B11, B12 have no data in places: the "
            "output marks it by -32768, a value no valid pixel of the output holds") in capsys.readouterr().err
    with rasterio.open(out) as dst:
        assert dst.dtypes[0] == "int16" and dst.nodata == -32768
        b5, hole = dst.read(5), hole_at_10m(dst)
        np.testing.assert_array_equal(dst.read(2), read(S2_10M)[2])  # B2 passes through, exact
        assert (b5[hole] == dst.nodata).all() and (b5[~hole] != dst.nodata).mean() > 0.9
        assert (dst.read([2, 3, 4, 8]) != dst.nodata).all()  # the 10 m bands have no hole
        sixty = dst.read([1, 10])
        assert (sixty[:, sixty_cover(dst)] != dst.nodata).all() and (sixty[:, ~sixty_cover(dst)] == dst.nodata).all()


def test_the_nodata_value_chosen_for_holes_is_held_by_no_valid_pixel():
    """``free_nodata`` on blocks like ``_assemble``'s: the type's least value, else its greatest, else the least
    unused one; none without holes; a refusal when every value is held."""
    from internal_sr.core.sentinel2_product import free_nodata

    def blocks(*bands):
        values = np.array(bands, dtype=np.float32)[:, None, :]
        return [(Window(0, 0, values.shape[2], 1), values, values >= 0)]  # negative: no data

    assert free_nodata(blocks([1, 2], [3, 4]), "int16", ["B5", "B6"]) == ([], None)
    assert free_nodata(blocks([1, 2], [-1, 4]), "int16", ["B5", "B6"]) == (["B6"], -32768)
    assert free_nodata(blocks([0, 2], [-1, 4]), "uint8", ["B5", "B6"]) == (["B6"], 255)
    every_byte = np.arange(256, dtype=np.float32)
    assert free_nodata(blocks(np.delete(every_byte, 7), np.full(255, -1.0)), "uint8", ["B5", "B6"]) == (["B6"], 7)
    with pytest.raises(InputError, match="every uint8 value is held by a valid pixel.*--float32"):
        free_nodata(blocks(every_byte, np.full(256, -1.0)), "uint8", ["B5", "B6"])


def sixty_cover(dst) -> np.ndarray:
    """The output pixels ``product_folder``'s 60 m bands cover (10 m rows 0–119, columns 2–121), as a mask of ``dst``'s shape."""
    covered = np.zeros((dst.height, dst.width), dtype=bool)
    covered[:120, 2:122] = True
    return covered


def hole_at_10m(dst) -> np.ndarray:
    """The output pixels of ``product_folder``'s 20 m pixels at rows and columns 4–7, as a mask of ``dst``'s shape."""
    rows, cols = np.meshgrid(np.arange(dst.height), np.arange(dst.width), indexing="ij")
    xs, ys = (np.array(v) for v in rasterio.transform.xy(dst.transform, rows.ravel(), cols.ravel()))
    return ((xs > 300080) & (xs < 300160) & (ys < 5799920) & (ys > 5799840)).reshape(dst.height, dst.width)


def test_float32_20m_bands_beside_uint16_10m_bands_are_sharpened_into_a_float32_output(tmp_path, capsys):
    """Float32 reflectance 20 m bands beside uint16 10 m bands were refused even with --float32, whose output
    holds both: now each resolution is sharpened in its own type, its own no data (NaN in the 20 m bands, 0 in
    the 10 m and 60 m ones) comes out as the output's no data, and the rest keeps its units. Without --float32
    the uint16 output would round reflectance to 0 and 1: refused, saying why and what to do."""
    folder = product_folder(tmp_path / "p")
    twenty = read(S2_20M_SAME_AREA) / np.float32(1e4)
    twenty[:, 4:8, 4:8] = np.nan
    write_raster(os.path.join(folder, "IMG_DATA", "T33UUB_20m_B05-B06-B07-B8A-B11-B12.tif"), twenty, nodata=float("nan"),
                 transform=Affine(20.0, 0, 300000.0, 0, -20.0, 5800000.0))
    out = str(tmp_path / "all.tif")
    assert cli(["sentinel2", folder, out, "--iterations", "1"]) == 2
    assert ("is uint16, and the output is written in the 10 m bands' data type, which may not hold the other values: "
            "write Float32 (--float32)") in capsys.readouterr().err.strip().splitlines()[-1]
    assert not os.path.exists(out)
    assert cli(["sentinel2", folder, out, "--iterations", "1", "--float32"]) == 0
    with rasterio.open(out) as dst:
        assert dst.dtypes == ("float32",) * 12 and dst.nodata == 0 and dst.descriptions[4] == "B5"
        b5, hole = dst.read(5), hole_at_10m(dst)
        np.testing.assert_array_equal(dst.read(2), read(S2_10M)[2])  # B2 passes through, exact
        assert dst.read(1).max() > 100  # B1 (60 m, uint16) stays in digital numbers
    assert (b5[hole] == 0).all() and (b5[~hole] != 0).mean() > 0.9
    # reflectance stays reflectance, neither rounded to integers nor scaled
    assert np.median(b5[~hole & (b5 != 0)]) == pytest.approx(np.nanmedian(twenty[0]), rel=0.05)


@pytest.mark.parametrize("command", ["guided", "sentinel2"])
def test_ctrl_c_while_the_loss_curve_is_drawn_leaves_nothing(tmp_path, capsys, monkeypatch, command):
    """The sharpened raster and its loss curve move into place together: a Ctrl-C while the curve is drawn
    (after every tile is written) leaves neither, as the CLI says."""
    from internal_sr.core import figures

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(figures, "loss_curve", interrupted)
    out = tmp_path / "out" / "sharp.tif"
    out.parent.mkdir()
    if command == "guided":
        t, g = geo_pair(tmp_path)
        arguments = ["guided", t, g, str(out), "--target-bands", "1", "--kernel", "gaussian:0.5", "--guide-kernel", "gaussian:0.5"]
    else:
        arguments = ["sentinel2", product_folder(tmp_path / "p"), str(out)]
    assert cli([*arguments, "--iterations", "1"]) == 130
    assert capsys.readouterr().err.strip().splitlines()[-1] == "internal-sr: cancelled, nothing written"
    assert os.listdir(out.parent) == []


@pytest.mark.parametrize(
    "edit, message",
    [
        ("float_b06", "band B6 in {b06} is float32 but band B5 in {b05} is uint16"),
        ("nodata_b09", "band B9 in {b09} has nodata 65535 but band B1 in {b01} has nodata 0"),
        ("shifted_b09", "band B9 in {b09} is not on the grid of band B1 in {b01}"),
        ("resampled_b01", "band B9 in {b09} has 60 m pixels but band B1 in {b01} has 20 m, and they are sharpened together: give band B1 at its own 60 m"),
    ],
)
def test_bands_sharpened_together_must_share_grid_type_and_nodata_before_any_work(tmp_path, capsys, edit, message):
    """The bands of one resolution are stacked and sharpened together: a float band among uint16 ones was cast
    (0.1 reflectance → 0 → nodata), another band's nodata applied to all, and a grid mismatch in the 60 m
    bands was found only after the 20 m bands had been sharpened. Now each is one line before any work."""
    folder = product_folder(tmp_path / "p")
    data = os.path.join(folder, "IMG_DATA")
    stack, b01, b09 = (os.path.join(data, n) for n in ("T33UUB_20m_B05-B06-B07-B8A-B11-B12.tif", "T33UUB_20170527T100031_B01.tif",
                                                     "T33UUB_20170527T100031_B09.tif"))  # the 20 m stack: bands named in its file name
    sixty = Affine(60.0, 0, 300020.0, 0, -60.0, 5800000.0)
    if edit == "float_b06":
        os.remove(stack)
        twenty = read(S2_20M_SAME_AREA)
        for index, band in enumerate(("B05", "B06", "B07", "B8A", "B11", "B12")):
            values = twenty[index : index + 1]
            write_raster(os.path.join(data, f"T33UUB_{band}.tif"), (values / 1e4).astype(np.float32) if band == "B06" else values,
                         transform=Affine(20.0, 0, 300000.0, 0, -20.0, 5800000.0))  # a reflectance copy of B06
    elif edit == "nodata_b09":
        write_raster(b09, read(S2_60M_SAME_AREA)[1:2], transform=sixty, nodata=65535)
    elif edit == "shifted_b09":
        write_raster(b09, read(S2_60M_SAME_AREA)[1:2], transform=sixty * Affine.translation(1, 0))
    else:
        write_raster(b01, read(S2_20M_SAME_AREA)[:1], transform=Affine(20.0, 0, 300000.0, 0, -20.0, 5800000.0))
    out = str(tmp_path / "all.tif")
    assert cli(["sentinel2", folder, out, "--iterations", "1"]) == 2
    expected = message.format(b01=b01, b09=b09, b05=os.path.join(data, "T33UUB_B05.tif"), b06=os.path.join(data, "T33UUB_B06.tif"))
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith(f"internal-sr: error: {expected}"), last
    assert not os.path.exists(out)


def test_a_float_product_with_nan_nodata_passes_and_a_float_resolution_among_uint16_ones_is_refused(tmp_path):
    """NaN nodata is one value for every band (it was refused as 'nodata nan but … nan'); 20 m bands in float
    beside uint16 10 m bands were written into the uint16 output as 1s."""
    from internal_sr.core.sentinel2_product import check_stacks, find_bands

    floats = tmp_path / "floats"
    floats.mkdir()
    utm = {r: Affine(float(r), 0, 300000.0, 0, -float(r), 5800000.0) for r in (10, 20)}
    for index, band in enumerate(("B04", "B03", "B02", "B08")):
        write_raster(str(floats / f"T_{band}.tif"), (read(S2_10M)[index : index + 1] / 1e4).astype(np.float32), transform=utm[10],
                     nodata=float("nan"))
    for index, band in enumerate(("B05", "B06")):
        write_raster(str(floats / f"T_{band}.tif"), (read(S2_20M_SAME_AREA)[index : index + 1] / 1e4).astype(np.float32),
                     transform=utm[20], nodata=float("nan"))
    groups = {res: [s for s in find_bands([str(floats)]).values() if RESOLUTION[s.band] == res] for res in (10, 20, 60)}
    check_stacks(groups)
    for index, band in enumerate(("B04", "B03", "B02", "B08")):
        write_raster(str(floats / f"T_{band}.tif"), read(S2_10M)[index : index + 1], transform=utm[10])
    groups = {res: [s for s in find_bands([str(floats)]).values() if RESOLUTION[s.band] == res] for res in (10, 20, 60)}
    with pytest.raises(InputError, match=r"band B5 in .*T_B05.tif is float32 but band B\d in .*T_B0\d.tif is uint16, .*--float32"):
        check_stacks(groups)
    check_stacks(groups, float32=True)  # a Float32 output holds both


def test_a_signal_after_the_20m_part_is_written_still_cancels_sentinel2(tmp_path, capsys, monkeypatch):
    """sentinel2 writes each resolution's sharpened part (a commit into its temporary folder) before the next:
    a SIGTERM during the 60 m part must still cancel the run, as the signal is only held while files move."""
    import signal

    from internal_sr.core import sentinel2_product

    sharpen_part = sentinel2_product.sharpen
    calls = []

    def terminated_at_the_second(*args, **kwargs):
        calls.append(args[2])
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGTERM)
        return sharpen_part(*args, **kwargs)

    monkeypatch.setattr(sentinel2_product, "sharpen", terminated_at_the_second)
    out = tmp_path / "out" / "all.tif"
    out.parent.mkdir()
    assert cli(["sentinel2", product_folder(tmp_path / "p"), str(out), "--iterations", "1"]) == 130
    assert capsys.readouterr().err.strip().splitlines()[-1] == "internal-sr: cancelled, nothing written"
    assert len(calls) == 2 and os.listdir(out.parent) == []


@pytest.mark.parametrize("pixel, taken", [(10.3, True), (10.6, False)])
def test_a_bands_pixel_size_is_sentinel2s_by_the_rule_that_stacks_it(tmp_path, pixel, taken):
    """``find_bands`` took a pixel size within 1 % of 10, 20 or 60 m for Sentinel-2's while ``check_stacks`` takes sizes
    within 5 % (``ALIGNMENT_TOLERANCE``) for one: B8 in 10.3 m pixels was refused as no Sentinel-2 size, though stacked
    with the 10 m bands it would have been taken as 10 m. One rule now (``_other_size``): 10.3 m is B8's own 10 m, stacked
    and judged by how far its edges drift off the other bands' (``same_grid``); 10.6 m is another size for both."""
    from internal_sr.core.sentinel2_product import _other_size, check_stacks, find_bands

    for index, band in enumerate(("B04", "B03", "B02", "B08")):
        size = pixel if band == "B08" else 10.0
        write_raster(str(tmp_path / f"T_{band}.tif"), read(S2_10M)[index : index + 1],
                     transform=Affine(size, 0, 300000.0, 0, -size, 5800000.0))
    assert _other_size(pixel, 10.0) is not taken
    if not taken:
        with pytest.raises(InputError, match=rf"^band B8 in .*T_B08\.tif has {pixel:g} m pixels, none of Sentinel-2's \(10, 20, "
                                             r"60 m, within 5 %\): the sentinel2 command"):
            find_bands([str(tmp_path)])
        return
    found = find_bands([str(tmp_path)])
    groups = {10: [found[band] for band in ("B2", "B3", "B4", "B8")], 20: [], 60: []}
    with pytest.raises(InputError, match=r"^band B8 in .*T_B08\.tif is not on the grid of band B2 in .*; its pixel edges fall up to "):
        check_stacks(groups)


def test_bands_a_rounding_error_apart_share_a_grid(tmp_path):
    """Origins that differ by 1e-9 m (float rounding in a product's metadata) are one grid, not 'not on the grid'."""
    from internal_sr.core.sentinel2_product import BandSource, check_stacks

    paths = []
    for index, (band, x0) in enumerate((("B05", 300000.0), ("B06", 300000.0 + 1e-9))):
        paths.append(write_raster(str(tmp_path / f"T_{band}.tif"), read(S2_20M_SAME_AREA)[index : index + 1],
                                  transform=Affine(20.0, 0, x0, 0, -20.0, 5800000.0)))
    guide = write_raster(str(tmp_path / "T_B02.tif"), read(S2_10M)[:1])
    check_stacks({10: [BandSource("B2", guide, 1)], 20: [BandSource("B5", paths[0], 1), BandSource("B6", paths[1], 1)], 60: []})


def test_bands_on_a_grid_turned_by_90_degrees_are_refused_in_one_line_not_by_a_division_by_zero(tmp_path):
    """A geotransform turned by 90° has no x pixel size in its term ``a`` (0): comparing the bands' pixel sizes as a
    ratio to it divided by zero, an "unexpected ZeroDivisionError" instead of the one-line refusal of rotated grids."""
    from internal_sr.core.sentinel2_product import BandSource, check_grids, check_stacks

    guide = write_raster(str(tmp_path / "T_B02.tif"), read(S2_10M)[:1], crs=UTM)
    turned = Affine(0.0, 20.0, 300000.0, 20.0, 0.0, 5800000.0)
    paths = [write_raster(str(tmp_path / f"T_{band}.tif"), read(S2_20M_SAME_AREA)[index : index + 1], crs=UTM,
                          transform=turned) for index, band in enumerate(("B05", "B06"))]
    groups = {10: [BandSource("B2", guide, 1)], 20: [BandSource("B5", paths[0], 1), BandSource("B6", paths[1], 1)], 60: []}
    check_stacks(groups)  # one grid for both: they stack
    with pytest.raises(InputError, match="rotated") as error:
        check_grids(groups)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("kind", ["drift", "offset"])
def test_bands_of_one_resolution_stack_within_the_alignment_tolerance_as_guided_pairs_nest(tmp_path, kind):
    """Bands of one resolution had to lie within 0.001 pixel of each other (and their pixel sizes within 10⁻⁶), while
    guided pairs nest within ``ALIGNMENT_TOLERANCE``: B6's pixel edges 0.049 pixel off B5's (at its corner, or drifted
    there across its 64 pixels) were refused, a drift even as a resampled copy. They now stack, with ``nest``'s log line
    (``alignment_note``, one wording), and 0.051 off is refused in one line saying by how much and against what bound."""
    from internal_sr.core.sentinel2_product import BandSource, check_stacks

    guide = write_raster(str(tmp_path / "T_B02.tif"), read(S2_10M)[:1])

    def stacked(off: float) -> tuple[list[str], list[str]]:
        pixel = 20.0 * (1 + off / 64) if kind == "drift" else 20.0
        x0, y0 = (300000.0, 5800000.0) if kind == "drift" else (300000.0 + 20 * off, 5800000.0 - 20 * off)
        paths = [write_raster(str(tmp_path / f"T_{band}.tif"), read(S2_20M_SAME_AREA)[index : index + 1],
                              transform=transform) for index, (band, transform) in enumerate(
            (("B05", Affine(20.0, 0, 300000.0, 0, -20.0, 5800000.0)), ("B06", Affine(pixel, 0, x0, 0, -pixel, y0)))
        )]
        lines = Log()
        check_stacks({10: [BandSource("B2", guide, 1)], 20: [BandSource("B5", paths[0], 1), BandSource("B6", paths[1], 1)],
                      60: []}, progress=lines)
        return paths, lines.lines

    (b5, b6), lines = stacked(0.98 * ALIGNMENT_TOLERANCE)
    corner = "+0, +0" if kind == "drift" else "+0.049, +0.049"
    assert lines == [
        f"the pixels of the band B6 ({b6}) and the band B5 ({b5}) are not exactly aligned: at a corner of the overlap "
        f"(64 × 64 band B6 pixels) the band B6's pixel edges fall up to +0.049, +0.049 band B5 pixels (x, y) off the band B5's "
        f"({corner} at the band B6's corner), within the 0.05 band B5 pixel taken as aligned: the band B6 is taken as lying "
        "on the band B5's grid"
    ]
    with pytest.raises(InputError, match=r"^band B6 in .*T_B06.tif is not on the grid of band B5 in .*T_B05.tif \(origin .*; its "
                       r"pixel edges fall up to 0\.051, 0\.051 pixels \(x, y\) off the other's, at most 0\.05 is taken as "
                       r"aligned\): cut the files of one resolution to the same area, on one grid$"):
        stacked(1.02 * ALIGNMENT_TOLERANCE)


@pytest.mark.parametrize("east", [3.0, -3.0])
def test_the_misalignment_named_is_the_distance_to_the_nearest_guide_pixel_edge(east):
    """A 10 m guide 3 m east or west of its 20 m target is 0.3 guide pixel off either way (not 0.7 one way)."""
    target = Grid(48, 48, Affine(20, 0, 336000, 0, -20, 5819040), UTM)
    guide = Grid(96, 96, Affine(10, 0, 336000 + east, 0, -10, 5819040), UTM)
    with pytest.raises(NotAligned, match=r"the target's corner falls 0\.3, 0 guide pixels off") as error:
        nest(target, guide)
    assert error.value.offsets == pytest.approx((0.3, 0.0))


def test_pixel_sizes_nearly_in_ratio_are_refused_for_the_drift_they_accumulate_with_or_without_an_extent():
    """10.009 m guide pixels against 20 m target pixels (the ratio 0.09 % off 2) drift 1.38 guide pixels apart across
    768 target pixels: refused for the whole raster as for an extent at its east edge; a ratio off by rounding is not."""
    target = Grid(768, 384, Affine(20, 0, 330000, 0, -20, 5822040), UTM)
    guide = Grid(1536, 768, Affine(10.009, 0, 330000, 0, -10.009, 5822040), UTM)
    with pytest.raises(NotAligned, match=r"drift apart: .* fall up to -1\.38, -0\.691 guide pixels off the guide's .* -tr 10 10 -te"):
        nest(target, guide)
    with pytest.raises(NotAligned, match="not aligned"):
        nest(target.window_grid(Window(720, 0, 48, 48)), guide)
    rounded = Grid(1536, 768, Affine(10 + 1e-9, 0, 330000, 0, -10 - 1e-9, 5822040), UTM)
    assert nest(target, rounded).target == Window(0, 0, 768, 384)


def nearly_nested(kind: str, off: float) -> tuple[Grid, Grid]:
    """A 48 × 48 target of 20 m pixels and a guide of about 10 m pixels whose pixel edges fall ``off`` guide pixels
    (down and right) off the target's: growing to its far corner, the guide's pixels a little small (``drift``), or
    everywhere, the guide's origin moved (``offset``), or moved from the half-pixel phase of Landsat's grids (``half``)."""
    target = Grid(48, 48, Affine(20, 0, 336000, 0, -20, 5819040), UTM)
    pixel = 10.0 / (1 + off / 96) if kind == "drift" else 10.0
    moved = {"drift": 0.0, "offset": off, "half": 0.5 + off}[kind] * pixel
    return target, Grid(97, 97, Affine(pixel, 0, 336000 - moved, 0, -pixel, 5819040 + moved), UTM)


@pytest.mark.parametrize("kind", ["drift", "offset", "half"])
def test_pixel_edges_within_the_alignment_tolerance_nest_and_beyond_it_are_refused(kind):
    """Pixel edges 0.049 guide pixels off (the SpaceNet Rotterdam pair drifts 0.037 across its 300 multispectral
    pixels) were refused beyond 0.001; now they nest, as exactly aligned grids do, with how far off they are kept;
    0.051 off is still refused, in one line that says by how much and what to do."""
    target, guide = nearly_nested(kind, 0.98 * ALIGNMENT_TOLERANCE)
    nesting = nest(target, guide)
    assert (nesting.scale, nesting.target) == (2, Window(0, 0, 48, 48))
    assert nesting.guide == Window(0, 0, 96, 96)
    assert nesting.shift == ((0.5, 0.5) if kind == "half" else (0.0, 0.0))
    assert nesting.drift == pytest.approx((0.049, 0.049))
    assert nesting.offset == pytest.approx((0.0, 0.0) if kind == "drift" else (0.049, 0.049))
    refused = {
        "drift": r"drift apart: at a corner of the overlap \(48 × 48 target pixels\) the target's pixel edges fall up to "
                 r"\+0\.051, \+0\.051 guide pixels off the guide's \(at most 0\.05 is taken as aligned\), moved by pixel sizes "
                 r"not exactly in the ratio 2 \(the target's 20 × 20, the guide's 9\.99\d+ × 9\.99\d+\); resample",
        "offset": r"not aligned: the target's corner falls 0\.051, 0\.051 guide pixels off .* \(0 or ½ is supported, within 0\.05\)",
        "half": r"not aligned: the target's corner falls 0\.449, 0\.449 guide pixels off",
    }[kind]
    with pytest.raises(NotAligned, match=refused) as error:
        nest(*nearly_nested(kind, 1.02 * ALIGNMENT_TOLERANCE))
    assert "\n" not in str(error.value) and "gdalwarp" in str(error.value)


def turned_against_a_drift(axis: str, off: float) -> tuple[Grid, Grid]:
    """A 48 × 48 target of 20 m pixels over a guide of 96 × 96 pixels of about 10 m, of one corner, whose pixel edges
    drift apart along one ``axis`` ("x": columns, "y": rows): the guide's pixels a little large there move the
    target's edges by −2·``off`` guide pixels across the raster, and the target's rotation term (``b`` for x, ``d``
    for y, north-up within ``ALIGNMENT_TOLERANCE`` for ``off`` below it) by +``off`` the other way across it, so they
    fall −2·``off`` off at one side corner of the overlap, (48, 0) for x or (0, 48) for y, +``off`` at the other and
    only −``off`` at the far corner (48, 48)."""
    pixel = 20 / (2 - 2 * off / 48)
    turn = off * pixel / 48
    if axis == "x":
        return (Grid(48, 48, Affine(20, turn, 336000, 0, -20, 5819040), UTM),
                Grid(96, 96, Affine(pixel, 0, 336000, 0, -10, 5819040), UTM))
    return (Grid(48, 48, Affine(20, 0, 336000, -turn, -20, 5819040), UTM),
            Grid(96, 96, Affine(10, 0, 336000, 0, -pixel, 5819040), UTM))


@pytest.mark.parametrize("axis", ["x", "y"])
def test_pixel_edges_are_judged_at_every_corner_of_the_overlap_not_only_at_the_far_one(axis):
    """A rotation term and a drift of pixel sizes of opposite signs cancel at the far corner of the overlap and add at
    the other two: edges 0.08 guide pixel off at (48, 0) or (0, 48) and 0.04 at the far corner were accepted, as
    nesting, for the check at the far corner alone. Now the worst corner is judged, and kept as ``Nesting.drift``."""
    within = nest(*turned_against_a_drift(axis, 0.02))
    assert within.target == Window(0, 0, 48, 48)
    assert within.drift == pytest.approx((-0.04, 0.0) if axis == "x" else (0.0, -0.04))
    assert re.search(r"fall up to (-0\.04, \+0|\+0, -0\.04) guide pixels \(x, y\)", alignment_note(within))
    beyond = r"-0\.08, \+0" if axis == "x" else r"\+0, -0\.08"
    with pytest.raises(NotAligned, match=rf"^target and guide pixels drift apart: at a corner of the overlap \(48 × 48 target "
                       rf"pixels\) the target's pixel edges fall up to {beyond} guide pixels off the guide's \(at most 0\.05 .* "
                       r"or by the rotation terms of the geotransforms; resample the guide .* gdalwarp") as error:
        nest(*turned_against_a_drift(axis, 0.04))
    assert error.value.offsets == pytest.approx((0.08, 0.0) if axis == "x" else (0.0, 0.08))


def test_pixel_edges_are_judged_over_an_overlap_that_starts_inside_a_larger_target():
    """The guide covers only the last 16 of a 64 × 48 target's columns: the overlap's near corner (48, 0) is not the
    target's corner. The target's corner falls +0.04 guide pixel off, pixel sizes a little off the ratio move the
    edges by −0.1 across its first 48 columns and its rotation term by +0.045 down its rows, so the overlap's near
    corner falls −0.06 off (its corner (64, 0) −0.093) while the target's corner and the overlap's far corner, −0.048,
    are within the bound that was checked there alone. Refused, at the overlap's near corner, which sets the phase (the
    target's corner lies outside the overlap); with half the drift, nested, the misplacement kept at that corner (−0.01)
    and at the worst one."""

    def inside(drift: float) -> tuple[Grid, Grid]:
        pixel = 20 / (2 - drift / 48)
        return (Grid(64, 48, Affine(20, 0.045 * pixel / 48, 336000, 0, -20, 5819040), UTM),
                Grid(32, 96, Affine(pixel, 0, 336000 + (96 - 0.04) * pixel, 0, -10, 5819040), UTM))

    target, guide = inside(0.1)
    near, far = (misplacement(target, guide, 2, (-96.0, 0.0), col, row)[0] for col, row in ((48, 0), (64, 48)))
    assert near == pytest.approx(-0.06) and far == pytest.approx(-0.0483, abs=1e-4)
    with pytest.raises(NotAligned, match=r"not aligned: the overlap's corner \(the target's pixel corner at column 48, row 0\) "
                                         r"falls 0\.06, 0 guide pixels off"):
        nest(target, guide)
    within = nest(*inside(0.05))
    assert (within.target, within.guide) == (Window(48, 0, 16, 48), Window(0, 0, 32, 96))
    assert within.offset == pytest.approx((-0.01, 0.0)) and within.drift == pytest.approx((0.035, 0.0))


@pytest.mark.parametrize("phase", [0.0, 0.5])
def test_a_target_far_larger_than_the_guide_takes_its_phase_inside_the_overlap(phase):
    """A 4000 × 48 target of 20 m pixels and a 96 × 96 guide of 10.001 m pixels that starts 0.02 guide pixel after
    the target's column 3000 (with ``phase`` ½, Landsat's half-pixel phase, half a guide pixel before it): the overlap,
    columns 3000–3047 (with the phase ½ columns 3000–3046, the guide ending half a guide pixel before column 3047 does:
    the target pixels it covers wholly), nests within 0.03 guide pixel, but across the 3000 columns before it the pixel
    sizes move the target's own corner 0.6 guide pixel, where neither phase fits. The phase was read there and the pair
    refused; it is now read at the overlap's first corner, and the overlap's four corners are judged against it."""
    pixel = 10 * 1.0001
    target = Grid(4000, 48, Affine(20, 0, 300000, 0, -20, 5800000), UTM)
    guide = Grid(96, 96, Affine(pixel, 0, 300000 + 20 * 3000 + (0.02 - phase) * pixel, 0, -10, 5800000), UTM)
    nesting = nest(target, guide)
    columns = 48 if phase == 0 else 47
    assert (nesting.scale, nesting.target, nesting.guide) == (2, Window(3000, 0, columns, 48), Window(0, 0, 2 * columns, 96))
    assert nesting.shift == (0.0, phase)
    assert nesting.offset == pytest.approx((-0.02, 0.0))
    assert nesting.drift == pytest.approx((-0.02 - 2 * columns * (1 - 1 / 1.0001), 0.0))  # at the overlap's far column
    assert ("off the guide's (-0.02, +0 at the overlap's corner (the target's pixel corner at column 3000, row 0)), within "
            "the 0.05 guide pixel") in alignment_note(nesting)


def test_the_resampling_remedy_gives_the_overlap_on_the_targets_pixel_edges_not_widened_by_rotation_terms():
    """The gdalwarp line of a refusal gave the target's bounds as ``-te``: widened by its rotation term (its ``b`` times
    its height, 0.024 m and 0.4 m here), so no whole number of target pixels wide, and over all the target, where the
    resampled guide would hold fill outside its own data. It now gives the target pixels the guide covers wholly, on
    the target's grid taken north-up; ``sentinel2``'s line for a 20 m file drops the 10 m grid's rotation terms alike."""
    from internal_sr.core.sentinel2_product import _align_hint

    target = Grid(48, 48, Affine(20, 0.0005, 336000, 0, -20, 5819040), UTM)
    guide = Grid(40, 96, Affine(10, 0, 336203, 0, -10, 5819040), UTM)  # 0.3 guide pixel off; x 336203–336603
    with pytest.raises(NotAligned, match="not aligned") as error:
        nest(target, guide)
    assert str(error.value).endswith("gdalwarp -r cubic -tr 10 10 -te 336220 5818080 336600 5819040 GUIDE ALIGNED_GUIDE")
    with pytest.raises(NotAligned, match="drift apart") as error:  # the guide covers all the target
        nest(*turned_against_a_drift("x", 0.04))
    assert str(error.value).endswith("gdalwarp -r cubic -tr 10 10 -te 336000 5818080 336960 5819040 GUIDE ALIGNED_GUIDE")
    ten = Grid(96, 96, Affine(10, 0.0005, 300000, 0, -10, 5800000), UTM)
    hint = _align_hint(Grid(48, 48, Affine(20, 0, 300003, 0, -20, 5800000), UTM), ten, 2, "B.tif")
    assert hint.endswith("gdalwarp -r cubic -tr 20 20 -te 300000 5799040 300960 5800000 B.tif ALIGNED.tif")


def test_on_half_pixel_grids_the_overlap_is_what_the_resampling_remedy_gives(tmp_path):
    """Landsat-like grids: the pan's pixel edges half a pan pixel off the multispectral ones, 20 pan pixels of 15 m from
    half a pan pixel before a 10-pixel multispectral row and column, so that the pan ends 7.5 m before the last
    multispectral pixel does (as the shared Landsat 8 sample's 1254 pan columns do for 627). ``nest`` took that last
    pixel into the overlap, its pan pixels there but its footprint reaching half a pan pixel past the pan, while the
    ``gdalwarp`` line of a refusal (pan pixels drifting off the ratio) gave ``-te`` over the target pixels the pan
    covers wholly: the guide it resampled nested over 9 × 9 target pixels where the refusal said 10 × 10 (and a ``-te``
    over 10 would put the 10th pixel's last fine column on the pan's edge, where gdalwarp writes 0). The overlap is now
    the target pixels the guide covers wholly, on both sides, and the remedy, run, gives a guide nesting over those."""
    import shutil
    import subprocess

    from internal_sr.core.raster import open_info

    target = Grid(10, 10, Affine(30, 0, 300000, 0, -30, 5000300), UTM)
    flush = Grid(20, 20, Affine(15, 0, 300000 - 7.5, 0, -15, 5000300 + 7.5), UTM)
    nesting = nest(target, flush)
    assert (nesting.target, nesting.guide, nesting.shift) == (Window(0, 0, 9, 9), Window(0, 0, 18, 18), (0.5, 0.5))
    assert nest(target, replace(flush, width=21, height=21)).target == Window(0, 0, 10, 10)  # covered wholly: kept

    pixel = 15 / (1 + 0.06 / 20)  # the target's edges drift 0.054 pan pixel off by the overlap's far corner
    drifting = write_raster(str(tmp_path / "pan.tif"), np.full((1, 20, 20), 100, np.uint16), UTM,
                            transform=Affine(pixel, 0, 300000 - pixel / 2, 0, -pixel, 5000300 + pixel / 2))
    with pytest.raises(NotAligned, match=r"drift apart: at a corner of the overlap \(9 × 9 target pixels\)") as error:
        nest(target, open_info(drifting).grid)
    remedy = re.search(r"gdalwarp (.*) GUIDE ALIGNED_GUIDE$", str(error.value))
    assert remedy.group(1) == "-r cubic -tr 15 15 -te 300000 5000030 300270 5000300"
    if shutil.which("gdalwarp") is None:
        pytest.skip("gdalwarp (GDAL's command line tools, installed with QGIS) is not on the PATH")
    aligned = str(tmp_path / "aligned.tif")
    subprocess.run(["gdalwarp", "-q", *remedy.group(1).split(), drifting, aligned], check=True)
    resampled = nest(target, open_info(aligned).grid)
    assert (resampled.target, resampled.shift) == (Window(0, 0, 9, 9), (0.0, 0.0))
    assert (read(aligned) == 100).all()  # no fill


def test_the_alignment_tolerance_stays_far_below_what_the_registration_check_sees_and_far_from_half_a_pixel():
    """The bound's reasons (``core.grid.ALIGNMENT_TOLERANCE``), kept true if either module's constants change: at every
    scale it is below the registration estimate's resolution and at most a twelfth of the shift it warns about (both
    in guide pixels), it leaves the phases 0 and ½ at least 0.4 guide pixel apart, and it is far above float noise."""
    from internal_sr.core.config import MAX_SCALE
    from internal_sr.core.registration import UPSAMPLE, WARN_SHIFT

    for scale in range(2, MAX_SCALE + 1):
        assert ALIGNMENT_TOLERANCE < scale / UPSAMPLE and round(WARN_SHIFT * scale / ALIGNMENT_TOLERANCE, 9) >= 12
    assert 0.5 - 2 * ALIGNMENT_TOLERANCE >= 0.4 and FLOAT_NOISE <= ALIGNMENT_TOLERANCE / 1000


def test_grids_nested_but_not_exactly_are_said_so_in_one_line():
    nesting = nest(*nearly_nested("drift", 0.98 * ALIGNMENT_TOLERANCE))
    assert alignment_note(nesting) == (
        "the pixels of the target and the guide are not exactly aligned: at a corner of the overlap (48 × 48 target "
        "pixels) the target's pixel edges fall up to +0.049, +0.049 guide pixels (x, y) off the guide's (+0, +0 at the target's "
        "corner), within the 0.05 guide pixel taken as aligned: the target is taken as nesting on the guide's grid"
    )
    roles = ("the 20 m bands B5, B6", "the 10 m bands B2, B3, B4, B8")
    assert alignment_note(nesting, roles).startswith(
        "the pixels of the target (the 20 m bands B5, B6) and the guide (the 10 m bands B2, B3, B4, B8) are not exactly aligned:")
    assert alignment_note(nest(*nearly_nested("offset", 0.0))) is None
    assert alignment_note(nest(*nearly_nested("half", 0.0))) is None


@pytest.mark.parametrize("east", [0.49, -0.49])
def test_guided_and_evaluate_accept_a_guide_within_the_tolerance_and_say_so(tmp_path, east):
    """The committed crops with the 10 m guide 0.49 m (0.049 guide pixel) east or west of the 20 m target: the checks
    of ``guided`` (which Processing and the dialog call too) and of ``evaluate --method guided`` accept the pair, and
    the log says how far off it is; 0.51 m off is refused by both."""
    from internal_sr.core.evaluation import plan_evaluation

    t, g = geo_pair(tmp_path, guide_origin=(300000.0 + east, 5800000.0))
    config = replace(FAST, kernel="sentinel2", guide_kernel="sentinel2")
    note = f"the target's pixel edges fall up to {-east / 10:+.3g}, +0 guide pixels (x, y) off the guide's ({-east / 10:+.3g}, +0 at"
    for check in (lambda lines: check_inputs(t, g, None, config, progress=lines).nesting.target,
                  lambda lines: plan_evaluation(t, "guided", 2, "sentinel2", config, guide_path=g, progress=lines).area):
        lines = Log()
        assert check(lines) == Window(0, 0, 64, 64)
        assert sum(note in line for line in lines.lines) == 1, lines.lines
    (tmp_path / "beyond").mkdir()
    t, g = geo_pair(tmp_path / "beyond", guide_origin=(300000.0 + east * 51 / 49, 5800000.0))
    for refuse in (lambda: check_inputs(t, g, None, config), lambda: plan_evaluation(t, "guided", 2, "sentinel2", config, guide_path=g)):
        with pytest.raises(NotAligned, match=r"not aligned: the target's corner falls 0\.051, 0 guide pixels off"):
            refuse()


SPACENET_MS = os.path.join(SHARED, "vhr", "spacenet_rotterdam_ms1m_ms1_uint16.tif")
SPACENET_PAN = os.path.join(SHARED, "vhr", "spacenet_rotterdam_pan50cm_pan1.tif")


@pytest.mark.skipif(not os.path.exists(SPACENET_MS), reason="needs ../shared/data/vhr (licence unclear: not committed)")
def test_the_real_spacenet_pair_runs_on_the_guides_grid(tmp_path):
    """The user's pair: 1.0000483 m multispectral pixels over 0.4999935 m pan pixels of one origin drift apart by
    0.037 pan pixel across the 300 multispectral pixels, and were refused beyond 0.001. On the image's last 32 × 32
    multispectral pixels (0.033 pan pixel off at their corner, 0.037 at the far one) ``guided`` now writes the pan's
    own pixels over that area and says how far off the grids are; ``evaluate --method guided`` plans the same area."""
    from internal_sr.core.evaluation import plan_evaluation
    from internal_sr.core.raster import open_info

    extent = IOOptions(extent=open_info(SPACENET_MS).grid.window_grid(Window(268, 268, 32, 32)).bounds)
    config = replace(FAST, kernel="bicubic", guide_kernel="bicubic")
    out = tmp_path / "sharp.tif"
    messages = sharpen(SPACENET_MS, SPACENET_PAN, str(out), config, extent, loss_curve=False).messages
    with rasterio.open(SPACENET_PAN) as pan, rasterio.open(out) as result:
        assert result.transform == pan.transform * Affine.translation(536, 536) and result.crs == pan.crs
        assert (result.width, result.height, result.count) == (64, 64, 4)
    note = (r"not exactly aligned: at a corner of the overlap \(32 × 32 target pixels\) the target's pixel edges fall up to "
            r"\+0\.0368, \+0\.0368 guide pixels \(x, y\) off the guide's \(\+0\.0329, \+0\.0329 at the target's corner\)")
    assert sum(bool(re.search(note, line)) for line in messages) == 1, messages
    lines = Log()
    plan = plan_evaluation(SPACENET_MS, "guided", 2, "bicubic", config, extent, SPACENET_PAN, progress=lines)
    assert plan.area == Window(0, 0, 32, 32) and plan.guide_offset == (536, 536)
    assert sum(bool(re.search(note, line)) for line in lines.lines) == 1


def test_sentinel2_accepts_bands_within_the_tolerance_of_the_10m_grid_as_guided_does(tmp_path):
    """The ``sentinel2`` command's check of each resolution against the 10 m grid is ``nest``'s: a 20 m stack 0.49 m
    (0.049 10 m pixel) east of the 10 m bands passes it, 0.51 m is refused in the command's words."""
    from internal_sr.core.sentinel2_product import BandSource, check_grids

    for east, refused in ((0.49, False), (0.51, True)):
        data = os.path.join(product_folder(tmp_path / f"{east}.SAFE", east20=east), "IMG_DATA")
        groups = {10: [BandSource("B2", os.path.join(data, "T33UUB_20170527T100031_B02.tif"), 1)],
                  20: [BandSource("B5", os.path.join(data, "T33UUB_20m_B05-B06-B07-B8A-B11-B12.tif"), 1)], 60: []}
        if not refused:
            check_grids(groups)
            continue
        with pytest.raises(InputError, match=r"the 20 m bands \(B5; .*their grid is not nested in the 10 m grid .* its pixel "
                                             r"edges fall up to 0\.051, 0 10 m pixels off the 10 m pixel edges; use the product's"):
            check_grids(groups)


@pytest.mark.parametrize(
    "east20, east60, message",
    [
        (5.0, 0.0, "the 20 m bands (B5, B6, B7, B8A, B11, B12; {folder}/IMG_DATA/T33UUB_20m_B05-B06-B07-B8A-B11-B12.tif): their grid "
                   "is not nested in the 10 m grid ({folder}/IMG_DATA/T33UUB_20170527T100031_B02.tif), it lies half a 10 m pixel off it"),
        (0.0, 3.0, "the 60 m bands (B1, B9; {folder}/IMG_DATA/T33UUB_20170527T100031_B01.tif): their grid is not nested in the 10 m "
                   "grid ({folder}/IMG_DATA/T33UUB_20170527T100031_B02.tif), its pixel edges fall up to 0.3, 0 10 m pixels off"),
        (0.0, 900.0, "the 60 m bands (B1, B9; {folder}/IMG_DATA/T33UUB_20170527T100031_B01.tif) overlap the 10 m bands "
                     "({folder}/IMG_DATA/T33UUB_20170527T100031_B02.tif) on 6×20 60 m pixels: too few for guided DIP"),
    ],
)
def test_sentinel2_checks_every_resolution_against_the_10m_grid_before_any_work(tmp_path, capsys, east20, east60, message):
    """In the command's words (bands, files, the 10 m grid), before the 20 m bands are sharpened."""
    folder = product_folder(tmp_path / "S2A.SAFE", east20, east60)
    out = tmp_path / "all10m.tif"
    assert cli(["sentinel2", folder, str(out), "--iterations", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    print(err[-1])
    assert message.format(folder=folder) in err[-1] and "landsat" not in err[-1] and "target" not in err[-1]
    assert not [line for line in err if line.startswith("device")] and not out.exists()


def test_guided_takes_sentinel2_band_names_from_esa_file_names(tmp_path):
    """ESA's single-band files carry no band descriptions: the sentinel2 kernels read the band from the file name,
    as the sentinel2 command does, and the log says so."""
    t = write_raster(str(tmp_path / "T33UUB_20170527T100031_B05.tif"), read(S2_20M_SAME_AREA)[:1],
                     transform=Affine(20.0, 0, 300000.0, 0, -20.0, 5800000.0))
    g = write_raster(str(tmp_path / "T33UUB_20170527T100031_B04.tif"), read(S2_10M)[:1])
    inputs = check_inputs(t, g, None, FAST)
    assert [k.name for k in inputs.target_kernels] == [kernel_spec("B5")]
    assert [k.name for k in inputs.guide_kernels] == [kernel_spec("B4")]
    result = sharpen(t, g, str(tmp_path / "out.tif"), FAST)
    assert ("the target's band is taken as B5 from its file name T33UUB_20170527T100031_B05.tif: its band descriptions name "
            "no Sentinel-2 band") in result.messages


def test_on_the_cpu_the_multimodal_net_runs_channels_last_and_gives_what_the_default_layout_gives(monkeypatch):
    """As DIP's generator (``core.device.conv_layout``): guided DIP's network gets channels-last inputs on the CPU
    (one CPU thread, the speed benchmark's crop: 0.31–0.33 → 0.27–0.28 s per step in four alternating runs), and the output
    equals that of the default layout up to float rounding."""
    from internal_sr.core import guided
    from internal_sr.core.device import seed_everything
    from internal_sr.core.networks import MultiModalNet
    from internal_sr.core.progress import NullProgress

    layouts = input_layouts(monkeypatch, MultiModalNet)
    rng = np.random.default_rng(4)
    target, guide = rng.random((2, 24, 24), dtype=np.float32), rng.random((3, 48, 48), dtype=np.float32)
    kernel = make_kernel("bicubic", 2)

    def run() -> np.ndarray:
        config = GuidedDIPConfig(iterations=6, width=8, layers=2, early_stop=False, device="cpu")
        return guided.sharpen_tile(target, np.ones_like(target), guide, np.ones_like(guide), [kernel] * 2, [kernel] * 3, config,
                                   torch.device("cpu"), NullProgress(), seed_everything(0)).image

    channels_last = run()
    assert layouts and all(layouts)
    layouts.clear()
    monkeypatch.setattr(guided, "conv_layout", lambda device: torch.contiguous_format)
    contiguous = run()
    assert layouts and not any(layouts)
    np.testing.assert_allclose(channels_last, contiguous, rtol=0, atol=1e-4)


def test_a_target_given_as_its_own_guide_is_named_so(tmp_path, capsys):
    """The same file (under two spellings) as target and guide was refused as a guide 'not twice as fine'."""
    spelled = os.path.join(os.path.dirname(S2_20M), ".", os.path.basename(S2_20M))
    assert cli(["guided", S2_20M, spelled, str(tmp_path / "out.tif")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "the guide is the target itself" in err
    assert not (tmp_path / "out.tif").exists()
