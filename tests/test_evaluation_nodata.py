"""Wald's protocol on rasters with scattered invalid pixels (nodata, fill values): the simulated input's nodata, the
scored pixels, scores over them against hand-computed values, what every output says, and the refusal of too few.

It used to refuse any area holding one invalid value ("Wald's protocol needs complete pixels: choose an extent inside
the valid area"), which a raster whose nodata is scattered everywhere (saturated highlights, clouds, swath edges)
cannot follow."""

import html
import json
import math

import numpy as np
import pytest
from affine import Affine
from skimage.metrics import structural_similarity

from internal_sr.core import metrics, report
from internal_sr.core.cli import main
from internal_sr.core.config import DIPConfig, GuidedDIPConfig, KnitworkConfig, TileOptions
from internal_sr.core.degradation import degrade_array, degrade_valid
from internal_sr.core.errors import InputError
from internal_sr.core.evaluation import BICUBIC, BICUBIC_BP, HPF, HPF_BP, check_scored, evaluate, plan_evaluation
from internal_sr.core.figures import UNSCORED
from internal_sr.core.kernels import Kernel, make_kernel

from helpers import S2_10M, S2_20M_SAME_AREA, Log, read, write_raster

UTM = "EPSG:32633"
NAMES10, NAMES20 = ["B4", "B3", "B2", "B8"], ["B5", "B6", "B7", "B8A", "B11", "B12"]
#: the smallest DIP that still runs the whole formulation (as test_evaluation's)
TINY = dict(channels=8, depth=3, detail_layers=2, detail_channels=8, iterations=4, device="cpu", tiles=TileOptions(32, 8))
#: (row, col, band) of the nodata values (0) of ``scattered``: single pixels in one band or in all, a 2 × 3 patch, one
#: at a corner and one on an edge (the kernel's reflected border reads it twice)
HOLES = [(5, 9, 1), (20, 40, None), (33, 12, 3), (45, 50, 0), (60, 2, None), (0, 63, 2), (63, 30, None)]
PATCH = (slice(40, 42), slice(20, 23))


def scattered(tmp_path, name: str = "holes.tif", under: int | None = None) -> tuple[str, np.ndarray, np.ndarray]:
    """A 64 × 64 crop of the 10 m bands with nodata 0 at ``HOLES`` and ``PATCH`` (``under``: what the other bands hold
    at those pixels instead of their own values); returns the path, the complete crop and the valid pixels."""
    complete = read(S2_10M)[:, 16:80, 8:72]
    data = complete.copy()
    invalid = np.zeros(data.shape[1:], bool)
    for row, col, band in HOLES:
        invalid[row, col] = True
        if under is not None:
            data[:, row, col] = under
        data[slice(None) if band is None else band, row, col] = 0
    invalid[PATCH] = True
    if under is not None:
        data[(slice(None), *PATCH)] = under
    data[(1, *PATCH)] = 0
    return write_raster(str(tmp_path / name), data, crs=UTM, nodata=0, descriptions=NAMES10), complete, ~invalid


def reach(invalid: np.ndarray, kernel: Kernel) -> np.ndarray:
    """The low-resolution pixels whose kernel reads an invalid pixel, pixel by pixel: low-resolution pixel (i, j) reads
    the ``L × L`` high-resolution pixels from (s·i − pad, s·j − pad), pad = (L − s) / 2, borders reflected, at each
    non-zero tap."""
    s, taps = kernel.scale, kernel.as_2d != 0
    length = taps.shape[0]
    padded = np.pad(invalid, (length - s) // 2, mode="reflect")
    h, w = invalid.shape[0] // s, invalid.shape[1] // s
    return np.array([[(padded[s * i : s * i + length, s * j : s * j + length] & taps).any() for j in range(w)] for i in range(h)])


def hand_scores(estimate: np.ndarray, reference: np.ndarray, mask: np.ndarray, scale: int) -> dict[str, float]:
    """Every overall score over the pixels of ``mask``, written out: SSIM is scikit-image's full map averaged over the
    scored pixels whose whole 7 × 7 window is scored, per band, then over bands (0 elsewhere: a run's estimate may
    hold NaN at its nodata, which scikit-image's filters would carry along the rows)."""
    estimate, reference = np.where(mask, estimate, 0.0), np.where(mask, reference, 0.0)
    e, r = estimate[:, mask], reference[:, mask]
    squared = (e - r) ** 2
    mse_b, mean_b = squared.mean(axis=1), r.mean(axis=1)
    cosines = (e * r).sum(axis=0) / (np.linalg.norm(e, axis=0) * np.linalg.norm(r, axis=0))
    windows = np.lib.stride_tricks.sliding_window_view(mask, (7, 7)).all(axis=(2, 3))  # centred at (i + 3, j + 3)
    ssims = []
    for eb, rb, band in zip(estimate, reference, r):
        full = structural_similarity(eb, rb, data_range=float(band.max() - band.min()), full=True)[1]
        ssims.append(full[3:-3, 3:-3][windows].mean())
    return {
        "psnr": 10 * math.log10(float(r.max() - r.min()) ** 2 / squared.mean()),
        "ssim": float(np.mean(ssims)),
        "rmse": math.sqrt(squared.mean()),
        "sam": float(np.degrees(np.arccos(np.clip(cosines, -1, 1))).mean()),
        "ergas": 100 / scale * math.sqrt(float(((np.sqrt(mse_b) / mean_b) ** 2).mean())),
        "sre": float((10 * np.log10(mean_b**2 / mse_b)).mean()),
    }


def test_metrics_over_a_mask_are_the_metrics_of_its_pixels_alone():
    rng = np.random.default_rng(3)
    reference = rng.normal(800.0, 90.0, (3, 30, 34)).cumsum(axis=2)
    estimate = reference + rng.normal(0.0, 30.0, reference.shape)
    mask = np.ones((30, 34), bool)
    mask[4:9, 6:15] = mask[20, :] = mask[:, 30] = False
    expected = hand_scores(estimate, reference, mask, 2)
    scores = metrics.all_metrics(estimate, reference, 2, mask)
    assert scores == pytest.approx(expected, rel=1e-10)
    per_band = metrics.band_metrics(estimate, reference, 2, mask)
    assert per_band["rmse"] == pytest.approx(np.sqrt(((estimate - reference)[:, mask] ** 2).mean(axis=1)), rel=1e-12)
    # what the unscored pixels hold is never read: NaN there in the estimate, anything in the reference
    broken_e, broken_r = estimate.copy(), reference.copy()
    broken_e[:, ~mask], broken_r[:, ~mask] = np.nan, 1e9
    assert metrics.all_metrics(broken_e, broken_r, 2, mask) == scores
    assert metrics.band_metrics(broken_e, broken_r, 2, mask) == per_band
    # a mask of every pixel scores to the bit as none
    everything = np.ones_like(mask)
    assert metrics.all_metrics(estimate, reference, 2, everything) == metrics.all_metrics(estimate, reference, 2)
    assert metrics.band_metrics(estimate, reference, 2, everything) == metrics.band_metrics(estimate, reference, 2)


@pytest.mark.parametrize("spec, scale", [("bicubic", 2), ("bicubic", 6), ("gaussian:0.6", 3), ("lanczos3", 4)])
def test_the_fill_never_reaches_a_valid_low_resolution_pixel(spec, scale):
    """``degrade_valid``: nodata exactly where a kernel's footprint reaches an invalid value (several kernels have
    taps below 10⁻⁶ of their sum, which ``degrade``'s former tolerance of 10⁻⁶ missed: lanczos3 ×4 here), and each
    valid low-resolution value that of the complete image, whatever the invalid pixels hold."""
    kernel = make_kernel(spec, scale)
    rng = np.random.default_rng(4)
    size = 12 * scale
    complete = rng.uniform(100.0, 2000.0, (2, size, size)).astype(np.float32)
    valid = np.ones_like(complete, bool)
    valid[0, 3, 4] = valid[0, size - 1, 2 * scale] = valid[1, size // 2, size // 2 + 1] = False
    low, low_valid = degrade_valid(complete, valid, kernel)
    for band in range(2):
        np.testing.assert_array_equal(low_valid[band], ~reach(~valid[band], kernel))
    assert (~low_valid).any() and low_valid.any()
    expected = degrade_array(complete, kernel)
    for under in (0.0, 1e6, np.nan):
        image = np.where(valid, complete, np.float32(under))
        low, again = degrade_valid(image, valid, kernel)
        np.testing.assert_array_equal(again, low_valid)
        np.testing.assert_array_equal(low[low_valid], expected[low_valid])


def test_scattered_nodata_is_scored_over_the_valid_pixels_by_hand(tmp_path):
    """Nodata in one band or in all, a patch, a corner and an edge: the simulated input is nodata (NaN) exactly where
    the kernel reaches an invalid pixel, its other values are the complete crop's degraded, the scored pixels are the
    valid ones of a valid low-resolution pixel, and every row's scores are the hand-computed ones over them."""
    path, complete, valid = scattered(tmp_path)
    kernel = make_kernel("bicubic", 2)
    e = evaluate(path, "bicubic", 2, "bicubic")
    low_valid = ~reach(~valid, kernel)
    np.testing.assert_array_equal(np.isfinite(e.low).all(axis=0), low_valid)
    np.testing.assert_array_equal(np.isnan(e.low).all(axis=0), ~low_valid)
    np.testing.assert_array_equal(e.low[:, low_valid], degrade_array(complete.astype(np.float64), kernel)[:, low_valid])
    scored = valid & low_valid.repeat(2, axis=0).repeat(2, axis=1)
    np.testing.assert_array_equal(e.valid, valid)
    np.testing.assert_array_equal(e.scored, scored)
    assert 0.5 < e.scored_fraction < 0.9 and e.scored_pixels == scored.sum()
    assert [s.label for s in e.scores] == [BICUBIC, BICUBIC_BP]
    for s in e.scores:
        assert s.overall == pytest.approx(hand_scores(e.estimates[s.label], complete.astype(np.float64), scored, 2), rel=1e-10)
        assert all(np.isfinite(v).all() for v in s.per_band.values())


def test_values_under_nodata_change_no_score(tmp_path):
    """The same crop with other values under its nodata (in the bands that are not nodata there): the same scores
    and the same estimates at the scored pixels, to the bit, for the baselines and for DIP."""
    config = DIPConfig(scale=2, **TINY)
    runs = [evaluate(scattered(tmp_path, name, under)[0], "dip", 2, "bicubic", config) for name, under in
            (("own.tif", None), ("high.tif", 65535))]
    first = runs[0]
    assert first.scored_fraction < 1 and [s.label for s in first.scores] == [BICUBIC, BICUBIC_BP, "Deep Image Prior"]
    for other in runs[1:]:
        assert [(s.overall, s.per_band) for s in other.scores] == [(s.overall, s.per_band) for s in first.scores]
        np.testing.assert_array_equal(other.scored, first.scored)
        for label, image in first.estimates.items():
            np.testing.assert_array_equal(other.estimates[label][:, first.scored], image[:, first.scored])
    dip = first.score("Deep Image Prior").overall
    assert dip == pytest.approx(hand_scores(first.estimates["Deep Image Prior"], first.reference, first.scored, 2), rel=1e-10)


def test_knitworks_read_the_simulated_nodata_as_nodata(tmp_path):
    path, complete, valid = scattered(tmp_path)
    e = evaluate(path, "knitwork", 2, "bicubic", KnitworkConfig(scale=2, iterations=3, device="cpu", tiles=TileOptions(32, 8)))
    assert e.scored_fraction < 1 and e.run is not None and e.run.steps > 0
    label = "Neural Knitworks"
    assert e.score(label).overall == pytest.approx(hand_scores(e.estimates[label], complete.astype(np.float64), e.scored, 2), rel=1e-10)
    assert np.isfinite(e.estimates[label][:, e.scored]).all()


def guided_pair(tmp_path, target_holes: bool, under: int | None = None, name: str = "g.tif") -> tuple[str, str, np.ndarray]:
    """The 20 m target (nodata 0 at two pixels when ``target_holes``) and the 10 m guide with nodata 0 at a few
    pixels (``under``: what its other bands hold there); returns both paths and the guide's valid pixels."""
    target = read(S2_20M_SAME_AREA)
    if target_holes:
        target[2, 10, 10] = target[:, 50, 33] = 0
    t = write_raster(str(tmp_path / "t.tif"), target, crs=UTM, transform=Affine(20.0, 0, 300000.0, 0, -20.0, 5800000.0),
                     nodata=0, descriptions=NAMES20)
    guide = read(S2_10M)
    invalid = np.zeros(guide.shape[1:], bool)
    for row, col in ((7, 100), (64, 64), (64, 65), (120, 3)):
        invalid[row, col] = True
        if under is not None:
            guide[:, row, col] = under
        guide[row % 4, row, col] = 0
    g = write_raster(str(tmp_path / name), guide, crs=UTM, transform=Affine(10.0, 0, 300000.0, 0, -10.0, 5800000.0),
                     nodata=0, descriptions=NAMES10)
    return t, g, ~invalid


def test_guided_scores_leave_out_the_guides_own_nodata(tmp_path):
    """Nodata in the guide: the target pixels where the guide degraded onto them reaches it are nodata in a run's
    output, so they are not scored, for guided DIP and every baseline alike; what the guide holds there changes
    nothing."""
    config = GuidedDIPConfig(iterations=1, device="cpu", tiles=TileOptions(32, 8))
    t, g, guide_valid = guided_pair(tmp_path, target_holes=True)
    e = evaluate(t, "guided", 2, config.kernel, config, guide_path=g)
    plan = plan_evaluation(t, "guided", 2, config.kernel, config, guide_path=g)
    target_valid = (read(t) != 0).all(axis=0)
    low_valid = ~np.any([reach(~target_valid, k) for k in plan.kernels], axis=0)
    guide_on_target = ~np.any([reach(~guide_valid, k) for k in plan.guide_on_target], axis=0)
    expected = target_valid & low_valid.repeat(2, axis=0).repeat(2, axis=1) & guide_on_target
    np.testing.assert_array_equal(e.scored, expected)
    assert (target_valid & ~guide_on_target).any()  # some valid target pixels are left out for the guide alone
    assert "where the guide degraded onto them is valid too" in e.scored_note
    # the report's images say why those pixels are blue too (the guide's nodata, not the reference's nor the input's)
    assert "or where the guide degraded onto them is nodata" in report._panels(e)[1]
    assert [s.label for s in e.scores] == [BICUBIC, BICUBIC_BP, HPF, HPF_BP, "guided DIP"]
    for s in e.scores:
        assert s.overall == pytest.approx(hand_scores(e.estimates[s.label], e.reference, expected, 2), rel=1e-10)
    assert e.score(HPF).overall["rmse"] < e.score(BICUBIC).overall["rmse"]  # the guide's detail still helps
    other = evaluate(t, "guided", 2, config.kernel, config, guide_path=guided_pair(tmp_path, True, 9999, "g2.tif")[1])
    assert [s.overall for s in other.scores] == [s.overall for s in e.scores]


def test_every_output_says_how_many_pixels_were_scored(tmp_path, capsys):
    """The log, the printed table, the JSON and the report say how many reference pixels were scored out of how
    many; the report's error maps (and images) show the others in blue, not as zero error."""
    path, _, valid = scattered(tmp_path)
    out_json, out_html = tmp_path / "e.json", tmp_path / "e.html"
    assert main(["evaluate", path, "--scale", "2", "--method", "bicubic", "--json", str(out_json), "--report", str(out_html)]) == 0
    captured = capsys.readouterr()
    saved = json.loads(out_json.read_text())
    scored, total = saved["scored_pixels"], saved["reference_pixels"]
    assert total == 64 * 64 and saved["valid_pixels"] == valid.sum() and 0 < scored < valid.sum()
    assert saved["scored_fraction"] == scored / total
    note = (f"Scored: {scored} of the {total} reference pixels ({100 * scored / total:.1f} %), the same for every row: "
            f"those valid in every band ({valid.sum()}) whose low-resolution pixel is valid too (its kernel reaches no "
            "invalid pixel); no score reads the others")
    assert saved["scored_note"] == note
    # once, under the printed table: the command line no longer logs it too
    assert note not in captured.err and captured.out.splitlines().count(f"{note}.") == 1
    page = out_html.read_text(encoding="utf-8")
    assert html.escape(note) in page and "Blue: the pixels no score takes" in page

    e = evaluate(path, "bicubic", 2, "bicubic")
    panels = dict(report._panels(e)[0])
    factor = panels["reference"].shape[0] // 64
    blue = np.all(panels[f"|{BICUBIC} − reference|"][::factor, ::factor] == UNSCORED, axis=-1)
    np.testing.assert_array_equal(blue, ~e.scored)
    low = panels["low resolution (×2 coarser)"][:: 2 * factor, :: 2 * factor]
    np.testing.assert_array_equal(np.all(low == UNSCORED, axis=-1), np.isnan(e.low).any(axis=0))

    complete = write_raster(str(tmp_path / "complete.tif"), read(S2_10M)[:, :64, :64], crs=UTM, descriptions=NAMES10)
    whole = evaluate(complete, "bicubic", 2, "bicubic")
    assert whole.as_dict()["scored_fraction"] == 1.0 and whole.scored_note == "Scored: all 4096 reference pixels, every one valid"
    assert not any(np.all(rgb == UNSCORED, axis=-1).any() for _, rgb in report._panels(whole)[0])


def test_too_few_pixels_to_score_is_refused_in_one_line(tmp_path, capsys):
    """Nodata on every 6th row and column leaves scored pixels (at ×2) in no 8 × 8 square, the least Wald's protocol
    scores at ×2: refused in one line naming the valid and the scorable pixels and what to do, before any method runs,
    and nothing is written."""
    data = read(S2_10M)[:, :64, :64]
    data[:, ::6, :] = 0
    data[:, :, ::6] = 0
    path = write_raster(str(tmp_path / "grid.tif"), data, crs=UTM, nodata=0, descriptions=NAMES10)
    with pytest.raises(InputError) as error:
        evaluate(path, "dip", 2, "bicubic", DIPConfig(scale=2, **TINY), progress=Log())
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: {(data != 0).all(axis=0).sum()} of the 4096 evaluated pixels are valid")
    assert "they hold no 8×8 square, the least Wald's protocol scores at ×2; choose an extent with fewer nodata" in message
    assert message.endswith("clear it (gdal_translate -a_nodata none)")
    out_json = tmp_path / "e.json"
    assert main(["evaluate", path, "--scale", "2", "--method", "bicubic", "--json", str(out_json)]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == f"internal-sr: error: {message}"
    assert not out_json.exists()
    empty = write_raster(str(tmp_path / "empty.tif"), np.zeros((4, 32, 32), np.uint16), crs=UTM, nodata=0)
    with pytest.raises(InputError, match=r"^\S+: 0 of the 1024 evaluated pixels are valid .* and 0 can be scored"):
        evaluate(empty, "bicubic", 2, "bicubic")


#: The overall scores of main's code (before nodata was scored) on ``test_a_complete_crop_scores_as_before``'s crop,
#: as float.hex: bicubic, then bicubic + back-projection.
BEFORE = [
    {"psnr": "0x1.2dc53db200a13p+5", "ssim": "0x1.e35673f8ba13ep-1", "rmse": "0x1.0032e4e0f7991p+6",
     "sam": "0x1.6f7cc2fdfed07p-1", "ergas": "0x1.58b71b21dd07ep+0", "sre": "0x1.fffb7eb09b980p+4"},
    {"psnr": "0x1.368033e315916p+5", "ssim": "0x1.e8fbdb2e4cce3p-1", "rmse": "0x1.c3e6781a58797p+5",
     "sam": "0x1.4a29c9fb69d56p-1", "ergas": "0x1.2f8db75ef910cp+0", "sre": "0x1.08b1fcb2ded10p+5"},
]


def test_a_complete_crop_scores_as_before(tmp_path):
    """A crop without nodata scores as before (the numbers main's code gave, to 1e-9), and every row's scores are,
    to the bit, the metrics' without a mask."""
    path = write_raster(str(tmp_path / "in.tif"), read(S2_10M)[:, 16:80, 8:72], crs=UTM, descriptions=NAMES10)
    e = evaluate(path, "bicubic", 2, "bicubic")
    assert e.scored.all() and e.scored_fraction == 1.0
    # to 1e-9: another CPU's vector kernels may round the last bits differently; any change of method shows far above
    assert [s.overall for s in e.scores] == [
        {m: pytest.approx(float.fromhex(v), rel=1e-9) for m, v in row.items()} for row in BEFORE]
    for s in e.scores:
        assert s.overall == metrics.all_metrics(e.estimates[s.label], e.reference, 2)
        assert s.per_band == metrics.band_metrics(e.estimates[s.label], e.reference, 2)
    np.testing.assert_array_equal(e.low, degrade_array(e.reference, make_kernel("bicubic", 2)))


@pytest.mark.parametrize("scale, guided, smaller", [(2, False, False), (4, True, False), (4, False, True)])
def test_the_refusal_of_too_few_pixels_offers_a_smaller_scale_only_where_one_can_be_chosen(scale, guided, smaller):
    """``check_scored`` asked for "a smaller scale" at ×2, the least there is, and for guided DIP, whose scale is the
    grids' ratio (any other is refused: "the scale must be 2"): a remedy that cannot be followed. It is offered only
    above ×2 and without a guide."""
    scored = np.zeros((32, 32), bool)
    scored[::3, ::3] = True
    with pytest.raises(InputError) as error:
        check_scored(scored, np.ones_like(scored), scale, "in.tif", guided)
    message = str(error.value)
    assert "choose an extent with fewer nodata pixels" in message and "\n" not in message
    assert ("smaller scale" in message) == smaller, message


def test_guided_evaluation_with_too_few_pixels_to_score_asks_for_no_other_scale(tmp_path):
    """Through ``evaluate``: a target whose nodata leaves no 8 × 8 square to score, with its guide at ×2."""
    config = GuidedDIPConfig(iterations=1, device="cpu", tiles=TileOptions(32, 8))
    t, g, _ = guided_pair(tmp_path, target_holes=False)
    target = read(t)
    target[:, ::5, :] = 0
    t = write_raster(str(tmp_path / "t_holes.tif"), target, crs=UTM,
                     transform=Affine(20.0, 0, 300000.0, 0, -20.0, 5800000.0), nodata=0, descriptions=NAMES20)
    with pytest.raises(InputError, match="they hold no 8×8 square") as error:
        evaluate(t, "guided", 2, config.kernel, config, guide_path=g)
    assert "smaller scale" not in str(error.value)
