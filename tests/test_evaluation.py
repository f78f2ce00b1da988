"""Evaluation by Wald's protocol on a user's raster: metrics against hand-computed values, the scores,
the HTML/JSON report and the one-line errors (core and command line)."""

import html
import json
import math
import os
import re
from fractions import Fraction

import numpy as np
import pytest
import rasterio
from affine import Affine

from internal_sr.core import metrics, report
from internal_sr.core.cli import main
from internal_sr.core.config import DIPConfig, GuidedDIPConfig, IOOptions, TileOptions
from internal_sr.core.errors import InputError
from internal_sr.core.degradation import degrade_array
from internal_sr.core.evaluation import (
    BASELINE_BP_STEPS, BICUBIC, BICUBIC_BP, HPF, HPF_BP, bicubic, evaluate, hpf_injection, plan_evaluation, wald_pair,
)
from internal_sr.core.figures import loss_curve
from internal_sr.core.kernels import make_kernel

from helpers import S2_10M, S2_20M_SAME_AREA, Log, read, write_raster

#: the smallest DIP that still runs the whole formulation (tiny, for speed; quality is tested elsewhere)
TINY = dict(channels=8, depth=3, detail_layers=2, detail_channels=8, iterations=4, device="cpu", tiles=TileOptions(32, 8))
NAMES10, NAMES20 = ["B4", "B3", "B2", "B8"], ["B5", "B6", "B7", "B8A", "B11", "B12"]
UTM = "EPSG:32633"


def test_metrics_match_hand_computed_values():
    reference = np.array([[[1.0, 2.0], [3.0, 4.0]], [[2.0, 2.0], [2.0, 2.0]]])
    estimate = reference + np.array([1.0, 0.5])[:, None, None]  # band 1 off by 1, band 2 by 0.5
    assert metrics.rmse(estimate, reference) == pytest.approx(math.sqrt((4 * 1 + 4 * 0.25) / 8))
    assert metrics.psnr(estimate, reference) == pytest.approx(10 * math.log10(3.0**2 / (5 / 8)))  # peak 4 − 1
    spectra_r = [(1, 2), (2, 2), (3, 2), (4, 2)]
    spectra_e = [(2, 2.5), (3, 2.5), (4, 2.5), (5, 2.5)]
    angles = [abs(math.atan2(r[1], r[0]) - math.atan2(e[1], e[0])) for r, e in zip(spectra_r, spectra_e)]
    assert metrics.sam(estimate, reference) == pytest.approx(math.degrees(sum(angles) / 4))
    per_band = 100 / 2 * np.array([1 / 2.5, 0.5 / 2.0])  # 100/s · RMSE_b / μ_b
    assert metrics.ergas_per_band(estimate, reference, 2) == pytest.approx(per_band)
    assert metrics.ergas(estimate, reference, 2) == pytest.approx(math.sqrt((per_band**2).mean()))
    assert metrics.sre_per_band(estimate, reference) == pytest.approx([10 * math.log10(2.5**2 / 1), 10 * math.log10(4 / 0.25)])
    # band 2 is constant: no range to serve as the peak, so its PSNR is undefined
    assert metrics.psnr_per_band(estimate, reference)[0] == pytest.approx(10 * math.log10(9 / 1))
    assert np.isnan(metrics.psnr_per_band(estimate, reference)[1])


def test_a_band_reproduced_exactly_leaves_the_overall_sre_to_the_others():
    """Band 2 reproduced exactly has SRE +∞; the overall SRE (the mean over bands, as the literature reports it)
    was +∞ too, hiding bands 1 and 3: it is now their mean, and band 2 is named as left out."""
    reference = np.array([[[1.0, 2.0], [3.0, 4.0]], [[5.0, 6.0], [7.0, 8.0]], [[2.0, 2.0], [2.0, 2.0]]])
    estimate = reference + np.array([1.0, 0.0, 0.5])[:, None, None]  # band 1 off by 1 (μ 2.5), band 3 by 0.5 (μ 2)
    band_1, band_3 = 10 * math.log10(2.5**2 / 1), 10 * math.log10(2.0**2 / 0.25)
    per_band = metrics.sre_per_band(estimate, reference)
    assert per_band[[0, 2]] == pytest.approx([band_1, band_3]) and per_band[1] == math.inf
    assert metrics.sre(estimate, reference) == pytest.approx((band_1 + band_3) / 2)
    assert metrics.left_out(per_band) == [1]
    zero_mean = np.stack([reference[0], reference[1] - 6.5])  # band 2 of mean 0 with an error: SRE −∞, left out
    assert metrics.sre(zero_mean + 1.0, zero_mean) == pytest.approx(band_1) and metrics.left_out(
        metrics.sre_per_band(zero_mean + 1.0, zero_mean)) == [1]
    assert metrics.sre(reference, reference) == math.inf and metrics.left_out([math.inf] * 3) == []  # all exact
    broken = estimate.copy()
    broken[0, 0, 0] = np.nan  # a NaN in the estimate still makes the score NaN, not a mean of the other bands
    assert math.isnan(metrics.sre(broken, reference))


def exact_ssim(estimate: np.ndarray, reference: np.ndarray) -> float:
    """SSIM of two 7 × 7 integer bands (one window: the only one wholly inside them) in exact fractions: sample
    (co)variances, ``C1 = (0.01·L)²``, ``C2 = (0.03·L)²`` with ``L`` the reference's range (scikit-image's defaults)."""
    x, y = [int(v) for v in estimate.ravel()], [int(v) for v in reference.ravel()]
    n = len(x)
    mx, my = Fraction(sum(x), n), Fraction(sum(y), n)
    vx = (sum(a * a for a in x) - n * mx * mx) / (n - 1)
    vy = (sum(b * b for b in y) - n * my * my) / (n - 1)
    vxy = (sum(a * b for a, b in zip(x, y)) - n * mx * my) / (n - 1)
    c1, c2 = (Fraction(1, 100) * (max(y) - min(y))) ** 2, (Fraction(3, 100) * (max(y) - min(y))) ** 2
    return float((2 * mx * my + c1) * (2 * vxy + c2) / ((mx * mx + my * my + c1) * (vx + vy + c2)))


@pytest.mark.parametrize("offset", [0, 2**32 - 100, -(2**31), 10**12])
def test_ssim_keeps_its_precision_on_values_large_against_their_range(offset):
    """The same bands near 2³² (uint32), near −2³¹ (int32) or offset by 10¹² (float64) scored SSIM 0.75, 0.92 and
    −1363 on a crop that scores 0.94 as it is (scikit-image takes variances as E[x²] − E[x]², losing every digit):
    SSIM now matches its exact value, computed in fractions, whatever the offset."""
    rng = np.random.default_rng(0)
    reference = rng.integers(0, 100, (7, 7)) + offset
    estimate = reference + rng.integers(-20, 21, (7, 7))
    expected = exact_ssim(estimate, reference)
    assert metrics.ssim_per_band(estimate[None].astype(np.float64), reference[None].astype(np.float64))[0] == pytest.approx(expected, rel=1e-9)


def test_ssim_is_scikit_images_on_values_it_handles():
    """On values of ordinary magnitude the SSIM is scikit-image's ``structural_similarity`` at its defaults (with the
    reference's range), band by band, on sizes that are not multiples of the window."""
    from skimage.metrics import structural_similarity

    rng = np.random.default_rng(1)
    reference = rng.normal(500.0, 80.0, (3, 23, 31)).cumsum(axis=2)
    estimate = reference + rng.normal(0.0, 40.0, reference.shape)
    expected = [structural_similarity(e, r, data_range=float(r.max() - r.min())) for e, r in zip(estimate, reference)]
    assert metrics.ssim_per_band(estimate, reference) == pytest.approx(expected, rel=1e-10)


def test_a_band_of_mean_0_leaves_the_overall_ergas_to_the_others():
    """A band of mean 0 (a signed band: a difference, an anomaly) has ERGAS +∞: the overall ERGAS was +∞ too for
    every method, hiding the other bands; it is now over the other bands, and that band is named as left out."""
    reference = np.array([[[1.0, 2.0], [3.0, 4.0]], [[-1.0, 1.0], [1.0, -1.0]], [[2.0, 2.0], [2.0, 2.0]]])
    estimate = reference + np.array([1.0, 1.0, 0.5])[:, None, None]  # μ 2.5, 0 and 2
    band_1, band_3 = 100 / 2 * 1 / 2.5, 100 / 2 * 0.5 / 2  # 100/s · RMSE_b / μ_b
    per_band = metrics.ergas_per_band(estimate, reference, 2)
    assert per_band[[0, 2]] == pytest.approx([band_1, band_3]) and per_band[1] == math.inf
    assert metrics.ergas(estimate, reference, 2) == pytest.approx(math.sqrt((band_1**2 + band_3**2) / 2))
    assert metrics.left_out(per_band) == [1]
    assert metrics.ergas(estimate[1:2], reference[1:2], 2) == math.inf  # no band to keep: infinite, not a mean of none
    broken = estimate.copy()
    broken[0, 0, 0] = np.nan  # a NaN in the estimate makes the score NaN, not a score of the other bands
    assert math.isnan(metrics.ergas(broken, reference, 2))


def geo_10m(tmp_path, data=None, nodata=None) -> str:
    """The committed 10 m crop (B4, B3, B2, B8) on a UTM grid at (300000, 5800000)."""
    data = read(S2_10M) if data is None else data
    return write_raster(str(tmp_path / "in10.tif"), data, crs=UTM, nodata=nodata, descriptions=NAMES10)


def test_dip_evaluation_scores_every_method_on_the_same_pixels(tmp_path):
    path = geo_10m(tmp_path)
    # a 64 × 48 pixel extent starting at column 8, row 16 of the crop
    extent = (300000.0 + 80, 5800000.0 - 160 - 480, 300000.0 + 80 + 640, 5800000.0 - 160)
    e = evaluate(path, "dip", 2, "bicubic", DIPConfig(scale=2, **TINY), IOOptions(extent=extent))
    assert (e.window.col_off, e.window.row_off, e.window.width, e.window.height) == (8, 16, 64, 48)
    reference = read(S2_10M)[:, 16:64, 8:72].astype(np.float64)
    np.testing.assert_array_equal(e.reference, reference)
    assert [s.label for s in e.scores] == [BICUBIC, BICUBIC_BP, "Deep Image Prior"]
    _, low = wald_pair(reference, make_kernel("bicubic", 2))
    assert e.score(BICUBIC).overall["psnr"] == pytest.approx(metrics.psnr(bicubic(low, 2), reference))
    assert e.score(BICUBIC_BP).overall["psnr"] > e.score(BICUBIC).overall["psnr"]
    for score in e.scores:
        assert set(score.overall) == set(metrics.HIGHER_IS_BETTER)
        assert all(len(v) == 4 for v in score.per_band.values())
    assert e.run is not None and e.run.steps == sum(len(c) for c in e.run.curves) > 0


@pytest.mark.parametrize("names, channels, words", [
    (["B02", "B03", "B04", "B08"], (2, 1, 0), "true colour"),
    (["B05", "B06", "B07", "B8A", "B11", "B12"], (5, 3, 0), "B12, B8A, B5 as red, green, blue (Sentinel-2's short-wave infrared"),
    (["B11", "B12", "B06"], (0, 1, 2), "B11, B12, B06 as red, green, blue"),
    (["band 1"], (0,), "band 1 in grey"),
])
def test_report_panels_show_a_composite_that_reads(names, channels, words):
    """Sentinel-2's 20 m bands are shown as its SWIR false colour (B12, B8A, B5), not B05, B06, B07 (three
    red-edge bands, nearly grey); true colour comes first where B4, B3, B2 are there."""
    shown, how = report.display_bands(names)
    assert shown == channels and words in how


def test_report_and_json_show_the_scores_images_and_loss_curve(tmp_path):
    e = evaluate(geo_10m(tmp_path), "dip", 2, "gaussian:0.6", DIPConfig(scale=2, kernel="gaussian:0.6", **TINY))
    html_path, json_path = str(tmp_path / "r.html"), str(tmp_path / "r.json")
    report.write_html(e, html_path)
    report.write_json(e, json_path)
    page = open(html_path).read()
    for text in ("Deep Image Prior", BICUBIC_BP, "PSNR (dB)", "SAM (°)", "ERGAS", "SRE (dB)", "B8", "true colour", "gaussian:0.6"):
        assert text in page
    # low resolution, bicubic, bicubic + BP, DIP, reference; the error maps of bicubic, of the strongest
    # baseline (here bicubic + BP) and of DIP; the loss curve
    assert len(re.findall(r'<img src="data:image/png;base64,', page)) == 9
    assert f"<figcaption>|{BICUBIC_BP} − reference|</figcaption>" in page
    bicubic_psnr = f"{e.score(BICUBIC).overall['psnr']:.2f}"
    assert bicubic_psnr in page
    saved = json.loads((tmp_path / "r.json").read_text())
    assert saved["scale"] == 2 and saved["bands"] == NAMES10
    assert [s["label"] for s in saved["scores"]] == [BICUBIC, BICUBIC_BP, "Deep Image Prior"]
    assert len(saved["loss_curves"][0]) == e.run.curves[0].size


def test_loss_curve_plots_every_tile():
    falling = [np.geomspace(1.0, 1e-3, 100), np.geomspace(0.5, 1e-2, 60)]
    image = loss_curve(falling, "test")
    dark_blue = (image[..., 2] > 120) & (image[..., 0] < 60)
    assert image.shape == (400, 720, 3) and dark_blue.sum() > 200
    blank = loss_curve([], "nothing")
    assert not ((blank[..., 2] > 120) & (blank[..., 0] < 60)).any()


def test_the_report_and_json_name_the_raster_wherever_they_are_read_and_its_columns_and_rows(tmp_path, monkeypatch):
    """``internal-sr evaluate in10.tif … --json out/r.json`` recorded ``"input": "in10.tif"``, which names nothing
    once the JSON is read from elsewhere, and the page gave the area as "pixels 40–103 × 0–63" without saying which
    range were columns. Both now name a file by its absolute path, and the page says columns and rows."""
    path = geo_10m(tmp_path)
    monkeypatch.chdir(tmp_path)
    extent = (300000.0 + 400, 5800000.0 - 480, 300000.0 + 400 + 640, 5800000.0)  # columns 40–103, rows 0–47
    e = evaluate(os.path.basename(path), "bicubic", 2, "bicubic", io=IOOptions(extent=extent))
    assert report.write_json(e, "r.json") is None and json.loads((tmp_path / "r.json").read_text())["input"] == path
    assert f"<b>{path}</b>, columns 40–103, rows 0–47\n(64 × 48 pixels)" in report.render_html(e)


def test_bicubic_only_scores_the_two_baselines(tmp_path):
    e = evaluate(geo_10m(tmp_path), "bicubic", 4, "bicubic")
    assert [s.label for s in e.scores] == [BICUBIC, BICUBIC_BP] and e.run is None
    assert e.low.shape == (4, 32, 32)
    # every estimate is shown under its own name; the error maps are of bicubic and the strongest baseline
    captions = [html.unescape(c) for c in re.findall(r"<figcaption>(.*?)</figcaption>", report.render_html(e))]
    assert captions == ["low resolution (×4 coarser)", BICUBIC, BICUBIC_BP, "reference", f"|{BICUBIC} − reference|",
                        f"|{BICUBIC_BP} − reference|"]


def test_the_method_must_assume_the_kernel_the_image_is_degraded_with(tmp_path):
    with pytest.raises(InputError, match="degraded with kernel gaussian:0.8 but the method's configuration assumes bicubic"):
        evaluate(geo_10m(tmp_path), "dip", 2, "gaussian:0.8", DIPConfig(scale=2, iterations=1))


def geo_pair(tmp_path):
    t = write_raster(str(tmp_path / "t20.tif"), read(S2_20M_SAME_AREA), crs=UTM,
                     transform=Affine(20.0, 0, 300000.0, 0, -20.0, 5800000.0), descriptions=NAMES20)
    g = write_raster(str(tmp_path / "g10.tif"), read(S2_10M), crs=UTM,
                     transform=Affine(10.0, 0, 300000.0, 0, -10.0, 5800000.0), descriptions=NAMES10)
    return t, g


def test_guided_evaluation_adds_the_pansharpening_baseline(tmp_path):
    t, g = geo_pair(tmp_path)
    config = GuidedDIPConfig(iterations=3, device="cpu", tiles=TileOptions(32, 8))
    e = evaluate(t, "guided", 2, config.kernel, config, guide_path=g)
    assert [s.label for s in e.scores] == [BICUBIC, BICUBIC_BP, HPF, HPF_BP, "guided DIP"]
    assert e.reference.shape == (6, 64, 64) and e.low.shape == (6, 32, 32)
    # the pansharpening baseline uses the guide's detail: it must beat plain bicubic
    assert e.score(HPF).overall["rmse"] < e.score(BICUBIC).overall["rmse"]
    # guided DIP's output is back-projected, so HPF is also scored back-projected, as benchmarks/guided.py scores it:
    # without that row the back-projection's gain over HPF was credited to the network
    plan = plan_evaluation(t, "guided", 2, config.kernel, config, guide_path=g)
    low_guide = degrade_array(read(S2_10M).astype(np.float64), plan.guide_on_target)
    expected = hpf_injection(e.low, low_guide, plan.kernels, plan.guide_kernels, BASELINE_BP_STEPS)
    np.testing.assert_array_equal(e.estimates[HPF_BP], expected)
    assert e.score(HPF_BP).overall["rmse"] < e.score(HPF).overall["rmse"]
    assert HPF_BP in report.render_html(e) and HPF_BP in [s["label"] for s in e.as_dict()["scores"]]
    with pytest.raises(InputError, match="scale must be 2, got 4"):
        evaluate(t, "guided", 4, config.kernel, config, guide_path=g)
    with pytest.raises(InputError, match="needs a guide raster"):
        evaluate(t, "guided", 2, config.kernel, config)
    with pytest.raises(InputError, match="a guide raster is given, but method bicubic uses none"):
        evaluate(t, "bicubic", 2, "bicubic", guide_path=g)  # it used to be ignored without a word


def test_guided_evaluation_reads_band_names_from_esa_file_names_as_guided_does(tmp_path):
    """Rasters without band descriptions, named as the sentinel2 command names its outputs (ESA's JPEG 2000 band
    files carry none): the sentinel2 kernels take the bands from the file names, as ``guided`` does."""
    t = write_raster(str(tmp_path / "T33UUB_20m_B05-B06-B07-B8A-B11-B12.tif"), read(S2_20M_SAME_AREA), crs=UTM,
                     transform=Affine(20.0, 0, 300000.0, 0, -20.0, 5800000.0))
    g = write_raster(str(tmp_path / "T33UUB_10m_B04-B03-B02-B08.tif"), read(S2_10M), crs=UTM,
                     transform=Affine(10.0, 0, 300000.0, 0, -10.0, 5800000.0))
    config = GuidedDIPConfig(iterations=1, device="cpu", tiles=TileOptions(32, 8))
    log = Log()
    e = evaluate(t, "guided", 2, config.kernel, config, guide_path=g, progress=log)
    assert [s.label for s in e.scores] == [BICUBIC, BICUBIC_BP, HPF, HPF_BP, "guided DIP"]
    assert any("taken as B5, B6, B7, B8A, B11, B12 from its file name" in line for line in log.lines)
    # the same kernels as from band descriptions: the pansharpening baseline, which depends on nothing else, agrees
    target, guide = geo_pair(tmp_path)
    described = evaluate(target, "guided", 2, config.kernel, config, guide_path=guide)
    assert e.score(HPF).overall == described.score(HPF).overall


def test_an_undeclared_fill_value_inside_the_area_is_named_and_left_out(tmp_path, capsys):
    """One −3.4028235e38 (ArcGIS's float fill, no nodata value declared) in band 2: a warning naming the band and
    the count, and that pixel left out of the scores like nodata (``test_evaluation_nodata``), not scores computed
    over it."""
    data = read(S2_10M).astype(np.float32)
    data[1, 5, 5] = np.finfo(np.float32).min
    path = geo_10m(tmp_path, data)
    assert main(["evaluate", path, "--scale", "2", "--method", "bicubic", "--json", str(tmp_path / "e.json")]) == 0
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[0].startswith(f"warning: band 2 of {path}: 1 pixel(s) hold the fill value -3.4028235e+38, but the raster")
    saved = json.loads((tmp_path / "e.json").read_text())
    assert saved["valid_pixels"] == 128 * 128 - 1 and saved["scored_pixels"] < saved["valid_pixels"]
    assert all(all(v is not None for v in s["overall"].values()) for s in saved["scores"])


def test_evaluate_writes_no_raster_so_it_says_nothing_of_an_outputs_georeferencing(tmp_path, capsys):
    """The committed crop has no georeferencing: a raster run warns that its output has none either, but
    evaluate writes only its report and scores, so it has nothing to say of it."""
    assert main(["evaluate", S2_10M, "--scale", "2", "--method", "bicubic", "--json", str(tmp_path / "e.json")]) == 0
    assert "georeferencing" not in capsys.readouterr().err and os.listdir(tmp_path) == ["e.json"]


def test_an_area_too_large_to_hold_in_memory_asks_for_an_extent(tmp_path, monkeypatch):
    from internal_sr.core import evaluation

    monkeypatch.setattr(evaluation, "MAX_EVALUATION_VALUES", 100 * 100 * 4)
    with pytest.raises(InputError, match=r"128×128 pixels of 4 band\(s\);.*extent of at most 100×100 pixels"):
        evaluate(geo_10m(tmp_path), "bicubic", 2, "bicubic")


def test_command_line_writes_json_and_report(tmp_path, capsys):
    path = geo_10m(tmp_path)
    out_json, out_html = tmp_path / "e.json", tmp_path / "e.html"
    code = main(["evaluate", path, "--scale", "2", "--method", "bicubic", "--json", str(out_json), "--report", str(out_html)])
    printed = capsys.readouterr().out
    assert code == 0 and out_html.exists()
    assert BICUBIC_BP in printed and "PSNR" in printed
    assert json.loads(out_json.read_text())["scores"][1]["label"] == BICUBIC_BP


@pytest.mark.parametrize(
    "args,message",
    [
        (["--method", "guided"], "needs a guide raster"),
        (["--method", "dip", "--scale", "1"], "scale"),
        (["--method", "bicubic", "--report", "/nonexistent/r.html"], "does not exist"),
    ],
)
def test_command_line_errors_are_one_line(tmp_path, capsys, args, message):
    path = geo_10m(tmp_path)
    argv = ["evaluate", path, *(args if "--scale" in args else [*args, "--scale", "2"])]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err


def strict_json(text: str) -> dict:
    """Parse JSON as a strict parser (a browser's, jq) would: NaN and Infinity are not JSON."""
    def refuse(name: str) -> None:
        raise ValueError(f"{name} is not JSON")
    return json.loads(text, parse_constant=refuse)


def undefined_everywhere_alike(e, log: Log, json_path) -> dict:
    """Check that ``e``'s undefined scores (NaN) are ``null`` in the JSON, named in neither ``infinite`` list, and a
    dash in the printed table, and that the log, the JSON, the table and the page give each ``undefined_notes``
    sentence in the same words; returns the JSON."""
    report.write_json(e, str(json_path))
    saved = strict_json(json_path.read_text())
    table, page = report.text_table(e).splitlines(), report.render_html(e)
    assert saved["undefined_notes"] == e.undefined_notes
    for note in e.undefined_notes:
        assert f"{note}." in log.lines and f"{note}." in table and f"<p>{html.escape(note)}.</p>" in page
    for s, row, line in zip(e.scores, saved["scores"], table[1:]):
        cells = line.removeprefix(s.label).split()
        for (metric, value), cell in zip(s.overall.items(), cells):
            if math.isnan(value):
                assert row["overall"][metric] is None and cell == "—" and metric not in row["infinite"] + row["minus_infinite"]
        for metric, values in s.per_band.items():
            for band, value in enumerate(values, start=1):
                if math.isnan(value):
                    assert row["per_band"][metric][band - 1] is None
                    assert f"{metric}[{band}]" not in row["infinite"] + row["minus_infinite"]
    return saved


def test_single_band_has_no_spectral_angle_and_the_report_says_so(tmp_path):
    """SAM of one band is a dash in the tables and null in the JSON, and the log, the JSON, the printed table and the
    page say why in one sentence (they gave the dash and the null without a word)."""
    path = write_raster(str(tmp_path / "one.tif"), read(S2_10M)[:1, :32, :32], crs=UTM)
    log = Log()
    e = evaluate(path, "bicubic", 2, "bicubic", progress=log)
    assert all(math.isnan(s.overall["sam"]) for s in e.scores)
    note = "Overall SAM is not defined for one band (—): the angle between one-band spectra is 0° or 180° whatever the error"
    assert e.undefined_notes == [note]
    saved = undefined_everywhere_alike(e, log, tmp_path / "one.json")
    assert saved["scores"][0]["overall"]["sam"] is None and "sam" not in saved["scores"][0]["infinite"]  # undefined
    sam_cells = [row.split("</td><td>")[3] for row in report.render_html(e).split("<tr><th>")[2:4]]
    assert sam_cells == ["—", "—"]


def test_a_constant_band_has_no_psnr_or_ssim_and_every_output_says_why(tmp_path):
    """A constant reference band has no range: its PSNR and SSIM are a dash or, reproduced exactly, ∞ and 1; the
    log, the JSON, the printed table and the page say so and name the band (they said nothing)."""
    data = read(S2_10M)[:2, :32, :32]
    data[1] = 1234
    log = Log()
    e = evaluate(write_raster(str(tmp_path / "c.tif"), data, crs=UTM, descriptions=["B4", "B3"]), "bicubic", 2, "bicubic",
                 progress=log)
    assert e.undefined_notes == ["PSNR and SSIM are not defined for a band whose reference is constant, having no range "
                                 "(—; ∞ and 1 where an estimate reproduces it exactly): B3; the overall SSIM averages the "
                                 "other bands"]
    undefined_everywhere_alike(e, log, tmp_path / "c.json")


def test_an_overall_score_of_bands_without_a_finite_one_is_theirs_not_undefined(tmp_path):
    """With no band whose SRE is finite, the overall SRE is the bands' own: one band of mean 0 has SRE −∞ (−∞ in the
    per-band table) and ERGAS ∞, but its overall SRE was undefined (a dash, null named nowhere) beside the overall ERGAS
    ∞. Every band constant and reproduced exactly has SSIM 1, but its overall SSIM was undefined."""
    signed = read(S2_10M)[:1, :32, :32].astype(np.int16)
    half = signed[0, :, :16] - 1500
    signed[0] = np.concatenate([half, -half[:, ::-1]], axis=1)  # a varying band of mean exactly 0
    assert metrics.sre(signed + 1.0, signed) == -math.inf == metrics.sre_per_band(signed + 1.0, signed)[0]
    e = evaluate(write_raster(str(tmp_path / "signed.tif"), signed, crs=UTM), "bicubic", 2, "bicubic")
    report.write_json(e, str(tmp_path / "signed.json"))
    for s, row, line in zip(e.scores, strict_json((tmp_path / "signed.json").read_text())["scores"], report.text_table(e).splitlines()[1:]):
        assert s.overall["sre"] == -math.inf and row["minus_infinite"] == ["sre", "sre[1]"] and line.endswith("−∞")
    flat = np.stack([np.full((16, 16), 7, np.uint16), np.full((16, 16), 9, np.uint16)])
    log = Log()
    e = evaluate(write_raster(str(tmp_path / "flat.tif"), flat, crs=UTM), "bicubic", 2, "bicubic", progress=log)
    assert all(s.overall["ssim"] == 1.0 and s.per_band["ssim"] == [1.0, 1.0] for s in e.scores)
    assert e.undefined_notes[0].endswith(": band 1, band 2; so is the overall SSIM")
    undefined_everywhere_alike(e, log, tmp_path / "flat.json")
    log = Log()
    e = evaluate(write_raster(str(tmp_path / "zero.tif"), flat * 0, crs=UTM), "bicubic", 2, "bicubic", progress=log)
    assert all(math.isnan(s.overall["sam"]) for s in e.scores) and e.undefined_notes[0] == (
        "Overall SAM is not defined (—): every spectrum of the reference is zero")
    assert e.undefined_notes[1].endswith(": band 1, band 2; so are the overall PSNR and SSIM")
    undefined_everywhere_alike(e, log, tmp_path / "zero.json")


def test_a_constant_image_writes_valid_json(tmp_path):
    path = write_raster(str(tmp_path / "flat.tif"), np.full((3, 16, 16), 100, np.uint16), crs=UTM)
    e = evaluate(path, "bicubic", 2, "bicubic")
    report.write_json(e, str(tmp_path / "flat.json"))
    saved = strict_json((tmp_path / "flat.json").read_text())
    assert saved["scores"][0]["overall"]["psnr"] is None and saved["scores"][0]["overall"]["rmse"] == 0.0
    # null here means infinite, not undefined: overall, and per band (1-based)
    assert saved["scores"][0]["infinite"] == ["psnr", "sre", "psnr[1]", "psnr[2]", "psnr[3]", "sre[1]", "sre[2]", "sre[3]"]
    # a perfect estimate's PSNR is infinite: ∞ in the tables, not "inf"
    assert "∞" in report.text_table(e) and "inf" not in report.text_table(e) and "<td><b>∞</b></td>" in report.render_html(e)


def test_infinite_per_band_scores_are_named_in_the_json(tmp_path):
    """A constant band that bicubic reproduces exactly has infinite PSNR and SRE: null in the JSON, so its
    score's ``infinite`` names them (it named the overall metrics only). The overall SRE is the other band's
    (it was +∞, null in the JSON), and the JSON, the report and the printed table say the band was left out."""
    data = read(S2_10M)[:2, :32, :32]
    data[1] = 1234
    e = evaluate(write_raster(str(tmp_path / "c.tif"), data, crs=UTM), "bicubic", 2, "bicubic")
    report.write_json(e, str(tmp_path / "c.json"))
    bicubic = strict_json((tmp_path / "c.json").read_text())["scores"][0]
    assert bicubic["per_band"]["psnr"][1] is None and bicubic["per_band"]["psnr"][0] > 20
    assert bicubic["infinite"] == ["psnr[2]", "sre[2]"] and bicubic["sre_left_out"] == [2]
    assert bicubic["overall"]["sre"] == pytest.approx(bicubic["per_band"]["sre"][0])
    note = "Overall SRE: the mean over the bands whose SRE is finite; left out (∞: reproduced exactly; −∞ or —: reference mean 0): "
    expected = note + "; ".join(f"{label}: band 2 (∞)" for label in (BICUBIC, BICUBIC_BP)) + "."
    assert report.text_table(e).splitlines()[-1] == expected and html.escape(expected) in report.render_html(e)


def test_a_band_of_mean_0_is_told_apart_from_an_undefined_score_in_the_json(tmp_path):
    """A varying band of mean 0 beside a normal band: its SRE is −∞ and its ERGAS +∞. The JSON wrote the −∞ as
    null and named it nowhere, so a reader took it for undefined, and the overall ERGAS was ∞ for every method;
    now ``minus_infinite`` names the −∞, the overall ERGAS is the other band's, and the JSON, the report and the
    printed table name the band left out of it (as of the overall SRE)."""
    data = read(S2_10M)[:2, :32, :32].astype(np.int16)
    half = data[1, :, :16] - 1500
    data[1] = np.concatenate([half, -half[:, ::-1]], axis=1)  # a varying band of mean exactly 0
    e = evaluate(write_raster(str(tmp_path / "signed.tif"), data, crs=UTM), "bicubic", 2, "bicubic")
    report.write_json(e, str(tmp_path / "signed.json"))
    bicubic = strict_json((tmp_path / "signed.json").read_text())["scores"][0]
    assert bicubic["per_band"]["sre"][1] is None and bicubic["per_band"]["ergas"][1] is None
    assert bicubic["minus_infinite"] == ["sre[2]"] and bicubic["infinite"] == ["ergas[2]"]
    assert bicubic["ergas_left_out"] == bicubic["sre_left_out"] == [2]
    assert bicubic["overall"]["ergas"] == pytest.approx(bicubic["per_band"]["ergas"][0])
    notes = ["Overall ERGAS: over the bands whose ERGAS is finite; left out (∞ or —: reference mean 0): "
             + "; ".join(f"{label}: band 2 (∞)" for label in (BICUBIC, BICUBIC_BP)) + ".",
             "Overall SRE: the mean over the bands whose SRE is finite; left out (∞: reproduced exactly; −∞ or —: "
             "reference mean 0): " + "; ".join(f"{label}: band 2 (−∞)" for label in (BICUBIC, BICUBIC_BP)) + "."]
    assert report.text_table(e).splitlines()[-2:] == notes
    assert all(html.escape(note) in report.render_html(e) for note in notes)


@pytest.mark.parametrize("size,scale", [(5, 2), (3, 4), (7, 4), (7, 7), (8, 8), (8, 4), (12, 4), (14, 4), (27, 7)])
def test_an_area_too_small_for_the_protocol_is_a_one_line_error(tmp_path, size, scale):
    """Bicubic accepted any area whose whole blocks covered SSIM's 7 × 7 window: a 7 × 7 raster at ×7 or an 8 × 8
    one at ×8 degraded to 1 × 1 (every estimate a constant, back-projection changing nothing), at ×4 an 8 × 8 or
    12 × 12 one to 2 × 2 or 3 × 3, fewer pixels than bicubic's 4-pixel support. It refuses them as the methods do."""
    path = write_raster(str(tmp_path / "tiny.tif"), read(S2_10M)[:, :size, :size], crs=UTM)
    with pytest.raises(InputError, match=f"^image {size}×{size} is too small for Wald's protocol at ×{scale} with bicubic: "
                       f"it needs at least {4 * scale}×{4 * scale} pixels, which degrade to the 4×4 input pixels bicubic "
                       "needs; use a larger raster") as error:
        evaluate(path, "bicubic", scale, "bicubic")
    assert "\n" not in str(error.value)


def test_bicubics_support_is_the_least_area_it_takes_and_covers_ssims_window(tmp_path):
    """The least area bicubic takes at ×s degrades to 4 × 4 pixels, bicubic's support, and is taken; its 4·s pixels
    cover SSIM's window at every scale, so the scores need no more."""
    from internal_sr.core.evaluation import BICUBIC_SUPPORT

    assert 2 * BICUBIC_SUPPORT >= metrics.SSIM_WINDOW
    for scale in (2, 3, 4):
        size = 4 * scale
        path = write_raster(str(tmp_path / f"least{scale}.tif"), read(S2_10M)[:, :size, :size], crs=UTM)
        e = evaluate(path, "bicubic", scale, "bicubic")
        assert e.low.shape[-2:] == (4, 4) and np.isfinite(e.method_scores.overall["ssim"])
        assert not np.array_equal(e.estimates[BICUBIC], e.estimates[BICUBIC_BP])  # back-projection has a residual to fit


def test_the_bicubic_baselines_beside_a_method_need_their_support_too(tmp_path):
    """A DIP of depth 3 runs on 2 × 2 pixels at ×8, so a 24 × 24 raster (3 × 3 degraded) was taken and its
    bicubic baselines were scored on fewer pixels than their support; the line says it is they that need more."""
    path = write_raster(str(tmp_path / "small.tif"), read(S2_10M)[:1, :24, :24], crs=UTM)
    with pytest.raises(InputError) as error:
        evaluate(path, "dip", 8, "bicubic", DIPConfig(scale=8, **TINY))
    assert str(error.value) == (
        "image 24×24 is too small for Wald's protocol at ×8 with Deep Image Prior: it needs at least 32×32 pixels, which "
        "degrade to the 4×4 input pixels the bicubic baselines need; use a larger raster or a smaller scale (×6 fits)"
    )


def test_a_bicubic_evaluation_refuses_a_kernel_wider_than_the_image_as_the_methods_do(tmp_path):
    """The kernel degrades the reference and back-projects bicubic: wider than the image, it would fit border padding."""
    path = write_raster(str(tmp_path / "small.tif"), read(S2_10M)[:1, :16, :16], crs=UTM)
    with pytest.raises(InputError, match=r"^kernel lanczos3 spans 24×24 pixels at the fine resolution \(×4\), wider than "
                       r"the image there \(16×16\): use a larger raster, or a narrower kernel$"):
        evaluate(path, "bicubic", 4, "lanczos3")


def test_guided_evaluates_the_area_the_guide_covers(tmp_path, monkeypatch):
    # the target reaches 5 columns and 3 rows beyond the guide, with nodata there; the guide covers
    # 63 × 63 target pixels, of which 62 × 62 (a multiple of the scale) are evaluated; the size limit
    # applies to that area, not to the whole target
    from internal_sr.core import evaluation

    target = np.zeros((6, 67, 69), np.float32)
    target[:, :64, :64] = read(S2_20M_SAME_AREA)
    t = write_raster(str(tmp_path / "t.tif"), target, crs=UTM, transform=Affine(20.0, 0, 300000.0, 0, -20.0, 5800000.0),
                     nodata=0, descriptions=NAMES20)
    g = write_raster(str(tmp_path / "g.tif"), read(S2_10M)[:, :126, :126], crs=UTM,
                     transform=Affine(10.0, 0, 300000.0, 0, -10.0, 5800000.0), descriptions=NAMES10)
    whole = evaluate(t, "bicubic", 2, "bicubic")  # the raster as a whole: its nodata beyond the guide is not scored
    assert whole.scored.shape == (66, 68) and whole.scored[:60, :60].all() and not whole.scored[64:, :].any()
    monkeypatch.setattr(evaluation, "MAX_EVALUATION_VALUES", 63 * 63 * (6 + 4 * 2**2))  # the guide's pixels count
    config = GuidedDIPConfig(iterations=1, device="cpu", tiles=TileOptions(32, 8))
    log = Log()
    e = evaluate(t, "guided", 2, config.kernel, config, guide_path=g, progress=log)
    assert (e.window.col_off, e.window.row_off, e.window.width, e.window.height) == (0, 0, 62, 62)
    # the run says so (only the JSON's window did), in the raster's pixels when an extent moved the area
    assert "scored: the part the guide covers, in whole 2×2 blocks, input columns 0–61, rows 0–61 (62×62 pixels)" in log.lines
    log = Log()
    moved = evaluate(t, "bicubic", 2, "bicubic", io=IOOptions(extent=(300000.0 + 200, 5800000.0 - 20 * 41, 300000.0 + 20 * 51,
                                                                      5800000.0 - 80)), progress=log)
    assert (moved.window.col_off, moved.window.row_off, moved.window.width, moved.window.height) == (10, 4, 40, 36)
    assert "scored: in whole 2×2 blocks, input columns 10–49, rows 4–39 (40×36 pixels)" in log.lines
    np.testing.assert_array_equal(e.reference, read(S2_20M_SAME_AREA)[:, :62, :62])


def test_guided_scoring_names_the_guides_cover_only_when_the_guide_leaves_part_of_the_target_out(tmp_path):
    """A guide over the whole 63 × 63 target: only the crop to whole 2 × 2 blocks makes the area smaller, and the log
    said "the part the guide covers" all the same."""
    t = write_raster(str(tmp_path / "t.tif"), read(S2_20M_SAME_AREA)[:, :63, :63], crs=UTM,
                     transform=Affine(20.0, 0, 300000.0, 0, -20.0, 5800000.0), descriptions=NAMES20)
    g = write_raster(str(tmp_path / "g.tif"), read(S2_10M)[:, :126, :126], crs=UTM,
                     transform=Affine(10.0, 0, 300000.0, 0, -10.0, 5800000.0), descriptions=NAMES10)
    config = GuidedDIPConfig(iterations=1, device="cpu", tiles=TileOptions(32, 8))
    log = Log()
    evaluate(t, "guided", 2, config.kernel, config, guide_path=g, progress=log)
    assert [line for line in log.lines if line.startswith("scored")] == [
        "scored: in whole 2×2 blocks, input columns 0–61, rows 0–61 (62×62 pixels)"]


@pytest.mark.parametrize("guide_rows, message", [
    (6, "the image's overlap with the guide is 64×3 pixels, too small for Wald's protocol at ×2 with guided DIP: it needs "
        "at least 16×16 pixels, which degrade to the 8×8 input pixels guided DIP needs; give a guide that covers more of "
        "the image"),
    (24, "the image's overlap with the guide is 64×12 pixels, too small for Wald's protocol at ×2 with guided DIP"),
])
def test_a_guide_covering_too_little_of_the_target_is_named_not_the_extent(tmp_path, guide_rows, message):
    """A guide of a few rows over a 64 × 64 target, no extent given: the error said that 'the evaluated area' was too
    small and to 'choose a larger extent', which cannot help; it now names the guide's cover and asks for more of it."""
    t = write_raster(str(tmp_path / "t.tif"), read(S2_20M_SAME_AREA), crs=UTM,
                     transform=Affine(20.0, 0, 300000.0, 0, -20.0, 5800000.0), descriptions=NAMES20)
    g = write_raster(str(tmp_path / "g.tif"), read(S2_10M)[:, :guide_rows], crs=UTM,
                     transform=Affine(10.0, 0, 300000.0, 0, -10.0, 5800000.0), descriptions=NAMES10)
    config = GuidedDIPConfig(iterations=1, device="cpu")
    with pytest.raises(InputError) as error:
        evaluate(t, "guided", 2, config.kernel, config, guide_path=g)
    assert str(error.value).startswith(message) and "\n" not in str(error.value)


def test_loss_curve_of_a_tile_with_zero_loss_draws_the_others_without_warnings():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        image = loss_curve([np.zeros(30), np.geomspace(1.0, 1e-2, 30)], "test")
    assert ((image[..., 2] > 120) & (image[..., 0] < 60)).sum() > 100


def dark(image: np.ndarray) -> np.ndarray:
    """Where a loss figure is drawn in black (text, ticks, frame)."""
    return image.max(axis=-1) < 128


def test_the_loss_axis_is_labelled_when_the_losses_span_less_than_one_round_step():
    """Losses from 0.00581 down to 0.00536 (a short run, or a loss that levelled off) hold no 1, 2 or 5 × 10ⁿ
    value: the axis gets finer round values instead of none, each label distinct."""
    image = loss_curve([np.geomspace(0.00581, 0.00536, 5)], "test")
    labels = dark(image)[44:354, 16:80]  # left of the frame, right of the axis's name, between the legend and the step labels
    rows = np.flatnonzero(labels.any(axis=1))
    assert len(rows) and len(np.flatnonzero(np.diff(rows) > 1)) + 1 >= 2  # at least two separate labels


@pytest.mark.parametrize("steps", [2, 3, 4])
def test_the_step_axis_has_whole_steps_only(steps):
    """A run of 2 to 4 steps has a tick at each step, not half steps labelled "0 0 1 1 2"."""
    image = loss_curve([np.geomspace(1.0, 0.1, steps)], "test")
    ticks = np.flatnonzero(dark(image)[356, 70:701])  # the tick marks below the frame (y = 354), above their labels
    assert len(ticks) == steps


def test_a_loss_figure_counts_steps_from_1_and_names_its_axis_and_curves(monkeypatch):
    """A 10-step run was drawn on steps 0–9, its last tick labelled 8, so the figure read as fewer steps than the log
    gave; nothing said what the light and the dark curves were, nor what the y axis held. Steps now run 1–N (the last
    point on the tick N at the frame's right edge) and the figure names its y axis and both curves."""
    from PIL import ImageDraw

    from internal_sr.core.figures import LOSS_AXIS

    texts: list[tuple[float, str]] = []
    draw_text = ImageDraw.ImageDraw.text
    monkeypatch.setattr(ImageDraw.ImageDraw, "text", lambda self, xy, text, *a, **k: (texts.append((xy[0], text)), draw_text(self, xy, text, *a, **k)))
    image = loss_curve([np.geomspace(1.0, 0.1, 10)], "test")
    drawn = [text for _, text in texts]
    assert {"loss at each step", "mean of the last 25 steps", LOSS_AXIS} <= set(drawn)
    steps = {text: x + 8 for x, text in texts if text.isdigit() and x > 60}  # 8 px left of its tick, right of the loss labels
    assert "0" not in steps and steps["10"] == pytest.approx(image.shape[1] - 20) and min(map(int, steps)) == 2


def test_a_loss_figure_says_steps_ran_when_none_can_be_drawn():
    """Steps whose losses are all infinite or NaN, or all 0, are said to have run (the figure used to say that
    no optimisation step was run), and differently from a run without steps."""
    none, diverged, flat = (loss_curve([c], "test") for c in (np.zeros(0), np.full(5, np.nan), np.zeros(5)))
    assert (none != diverged).any() and (none != flat).any() and (diverged != flat).any()


def test_report_and_json_at_one_path_is_a_one_line_error(tmp_path):
    path = str(tmp_path / "same.out")
    with pytest.raises(InputError, match="report and the JSON"):
        report.evaluate_to_files(geo_10m(tmp_path), "bicubic", 2, "bicubic", None, IOOptions(), None, None, path, path)
    assert not (tmp_path / "same.out").exists()


def test_an_area_too_small_for_the_network_once_degraded_names_the_area_to_choose(tmp_path):
    path = write_raster(str(tmp_path / "small.tif"), read(S2_10M)[:, :40, :40], crs=UTM)
    config = DIPConfig(scale=2, **{**TINY, "depth": 5})  # needs 32 × 32 input pixels: the 40 × 40 area degrades to 20 × 20
    with pytest.raises(InputError) as error:
        evaluate(path, "dip", 2, "bicubic", config)
    assert str(error.value) == (
        "image 40×40 is too small for Wald's protocol at ×2 with Deep Image Prior: it needs at least 64×64 pixels, which "
        "degrade to the 32×32 input pixels Deep Image Prior needs; use a larger raster"
    )
    x0, y0 = 300000.0, 5800000.0  # write_raster's corner, 10 m pixels
    with pytest.raises(InputError, match=r"^the chosen extent is 30×20 pixels, .* at least 64×64 pixels.*; choose a larger extent$"):
        evaluate(path, "dip", 2, "bicubic", config, IOOptions(extent=(x0, y0 - 200, x0 + 300, y0)))


@pytest.mark.parametrize("method, scale, size, message", [
    # a 100-pixel raster at ×16 is 96 × 96 pixels of whole blocks and 6 × 6 degraded: the line gave those, not the
    # raster's own size, and asked for "a larger extent" of a run that had none
    ("knitwork", 16, 100, "image 100×100 is too small for Wald's protocol at ×16 with Neural Knitworks: it needs at least "
     "144×144 pixels, which degrade to the 9×9 input pixels Neural Knitworks needs; use a larger raster or a smaller scale "
     "(×11 fits)"),
    ("bicubic", 5, 9, "image 9×9 is too small for Wald's protocol at ×5 with bicubic: it needs at least 20×20 pixels, "
     "which degrade to the 4×4 input pixels bicubic needs; use a larger raster or a smaller scale (×2 fits)"),
    ("bicubic", 2, 5, "image 5×5 is too small for Wald's protocol at ×2 with bicubic: it needs at least 8×8 pixels, "
     "which degrade to the 4×4 input pixels bicubic needs; use a larger raster"),
])
def test_a_raster_too_small_for_walds_protocol_gives_its_own_size_and_asks_for_a_larger_one(
    tmp_path, capsys, method, scale, size, message
):
    path = write_raster(str(tmp_path / "small.tif"), read(S2_10M)[:1, :size, :size], crs=UTM)
    assert main(["evaluate", path, "--scale", str(scale), "--method", method]) == 2
    assert capsys.readouterr().err == f"internal-sr: error: {message}\n"


def test_undefined_scores_are_nan_not_made_up():
    """A constant reference band has no range: its PSNR and SSIM are undefined (they used to be computed with
    a range of 1, e.g. −13 dB and SSIM 5e-5, dragging the overall SSIM to 0.5); a band of negative mean has a
    positive ERGAS; a NaN in the estimate makes the spectral angle NaN like every other score."""
    rng = np.random.default_rng(0)
    reference = np.stack([np.full((16, 16), 100.0), rng.random((16, 16)) * 50 + 10])
    estimate = reference + rng.normal(0, 5, reference.shape)
    assert np.isnan(metrics.psnr_per_band(estimate, reference)[0]) and np.isnan(metrics.ssim_per_band(estimate, reference)[0])
    assert metrics.ssim(estimate, reference) == pytest.approx(metrics.ssim_per_band(estimate, reference)[1])
    exact = estimate.copy()
    exact[0] = reference[0]  # the constant band matched exactly: SSIM 1 there, but the overall averages the same bands
    assert metrics.ssim_per_band(exact, reference)[0] == 1.0 and metrics.ssim(exact, reference) == metrics.ssim(estimate, reference)
    exact[1, 2, 2] = np.inf
    assert np.isnan(metrics.ssim(exact, reference))
    assert np.isnan(metrics.psnr(estimate[:1], reference[:1]))
    negative = -reference[1:]
    assert metrics.ergas_per_band(negative + 1.0, negative, 2)[0] == pytest.approx(50.0 / abs(negative.mean()))
    broken = estimate.copy()
    broken[1, 3, 3] = np.nan
    assert np.isnan(metrics.sam(broken, reference)) and np.isnan(metrics.ssim(broken, reference))


def test_the_best_score_is_bold_as_printed_in_every_table():
    """Ties to the printed digit are all bold, a NaN first row does not hide the best, and the per-band
    tables mark their best too."""
    from internal_sr.core.evaluation import Scores
    from internal_sr.core.report import _band_tables, _overall_table

    def make_scores(label, psnr, sam):
        overall = {"psnr": psnr, "ssim": 0.9, "rmse": 1.0, "sam": sam, "ergas": 1.0, "sre": 20.0}
        return Scores(label, overall, {"psnr": [psnr, psnr - 1]})

    class Table:
        band_names = ["B4", "B8"]
        scores = [make_scores("a", 36.77230, float("nan")), make_scores("b", 36.77233, 2.0), make_scores("c", 30.0, 1.5)]

    overall = _overall_table(Table)
    assert overall.count("<b>36.77</b>") == 2 and "<b>1.5000</b>" in overall and "<b>—</b>" not in overall
    assert _band_tables(Table).count("<b>35.77</b>") == 2


def test_scores_are_on_physical_values_whatever_the_storage(tmp_path):
    """One scene's reflectances stored as int16 digital numbers with scale 1e-4 and offset −0.1 (Sentinel-2 L2A since
    baseline 04.00) and as float32 get the same scores: SAM, ERGAS and SRE differed by about 48 % (they were computed
    on the stored numbers), and RMSE is in reflectance, which the JSON, the report and the log say."""
    dn = read(S2_10M)[:3, :32, :32].astype(np.int16)
    reflectance = (dn * 1e-4 - 0.1).astype(np.float32)
    stored = write_raster(str(tmp_path / "dn.tif"), dn, crs=UTM)
    with rasterio.open(stored, "r+") as dst:
        dst.scales, dst.offsets, dst.units = (1e-4,) * 3, (-0.1,) * 3, ("reflectance",) * 3
    log = Log()
    scaled = evaluate(stored, "bicubic", 2, "bicubic", progress=log)
    plain = evaluate(write_raster(str(tmp_path / "refl.tif"), reflectance, crs=UTM), "bicubic", 2, "bicubic")
    for a, b in zip(scaled.scores, plain.scores):
        for metric in metrics.HIGHER_IS_BETTER:
            assert a.overall[metric] == pytest.approx(b.overall[metric], rel=1e-4), metric
    assert scaled.as_dict()["rmse_unit"] == "reflectance" and scaled.as_dict()["band_offsets"] == [-0.1] * 3
    assert plain.as_dict()["rmse_unit"] == "the raster's units (none declared)" and plain.scaling_note is None
    note = "Scores are on physical values: stored value × 0.0001 − 0.1, as the bands declare them"
    page = report.render_html(scaled)
    assert f"{note}; RMSE in reflectance" in log.lines and html.escape(note) in page and page.count("RMSE in reflectance") == 1


def test_bands_of_different_units_get_no_overall_score_that_would_mix_them(tmp_path):
    """Bands declaring different units (reflectance beside a band declaring none): the overall PSNR, RMSE and SAM
    pooled both bands' values, so they are not given (NaN, ``null`` in the JSON) and the JSON, the report, the
    printed table and the log say why, and the report's strongest baseline is the one of lowest ERGAS; the per-band scores, and the overall scores that mix no units, are those of
    the bands declaring one unit."""
    dn = read(S2_10M)[:2, :32, :32]
    paths = []
    for units in (("reflectance", None), ("reflectance", "reflectance")):
        path = write_raster(str(tmp_path / f"{len(set(units))}.tif"), dn, crs=UTM)
        with rasterio.open(path, "r+") as dst:
            dst.units = tuple(u or "" for u in units)
        paths.append(path)
    log = Log()
    mixed, one = evaluate(paths[0], "bicubic", 2, "bicubic", progress=log), evaluate(paths[1], "bicubic", 2, "bicubic")
    note = ("Overall PSNR, RMSE and SAM are not given (—): the bands declare different units (band 1: reflectance, band "
            "2: none declared), which they would mix; the per-band scores are each in their band's unit")
    for a, b in zip(mixed.scores, one.scores):
        assert a.per_band == b.per_band
        for metric in metrics.HIGHER_IS_BETTER:
            if metric in metrics.POOLED_METRICS:
                assert math.isnan(a.overall[metric]) and math.isfinite(b.overall[metric]), metric
            else:
                assert a.overall[metric] == b.overall[metric], metric
    report.write_json(mixed, str(tmp_path / "mixed.json"))
    with open(tmp_path / "mixed.json") as f:
        saved = json.load(f)
    assert saved["mixed_units"] is True and saved["mixed_units_note"] == note
    assert all(s["overall"][m] is None and m not in s["infinite"] for s in saved["scores"] for m in metrics.POOLED_METRICS)
    assert one.as_dict()["mixed_units"] is False and one.as_dict()["mixed_units_note"] is None
    page = report.render_html(mixed)
    assert f"{note}." in log.lines and html.escape(note) in page and f"{note}." in report.text_table(mixed)
    assert "strongest baseline (lowest ERGAS)" in page  # not by the RMSE not given
    assert "not given" not in report.text_table(one) and "not given" not in report.render_html(one)


def test_error_maps_of_bands_in_different_units_are_relative_to_each_bands_range(tmp_path):
    """The error maps pooled the absolute errors of every band, so where the bands declare different units a band of
    large numbers drew the map alone; each band's error is now divided by its range in the reference, and the
    captions say so: a band's values 1000 times larger (another unit) leave the maps as they are."""
    from internal_sr.core.figures import error_map

    dn = read(S2_10M)[:2, :32, :32].astype(np.float32)
    maps, notes = [], []
    for factor in (1, 1000):
        path = write_raster(str(tmp_path / f"x{factor}.tif"), dn * np.float32([1, factor])[:, None, None], crs=UTM)
        with rasterio.open(path, "r+") as dst:
            dst.units = ("reflectance", "")
        e = evaluate(path, "bicubic", 2, "bicubic")
        panels, note = report._panels(e)
        maps.append([rgb for caption, rgb in panels if caption.endswith("− reference| ÷ band range")])
        notes.append(note)
    assert len(maps[0]) == len(maps[1]) == 2  # bicubic and bicubic + back-projection
    assert all(np.abs(a.astype(int) - b).max() <= 1 for a, b in zip(*maps))  # up to rounding to 8 bits
    assert "each band's absolute error divided by that band's range in the reference" in notes[0] and notes[0] == notes[1]
    reference = np.stack([np.arange(16.0).reshape(4, 4), np.full((4, 4), 5.0)])  # band 2 has no range
    estimate = reference + np.array([1.0, 3.0])[:, None, None]
    span = np.subtract(*np.percentile(reference[0], [98, 2]))
    np.testing.assert_allclose(error_map(estimate, reference, relative=True), np.full((4, 4), 1 / span / 2))
    np.testing.assert_allclose(error_map(estimate, reference, relative=False), np.full((4, 4), 2.0))


def test_tiny_and_huge_scores_keep_significant_digits_and_the_columns_stay_apart():
    """RMSEs of 3.7e-05 and 3.58e-05 (a raster of values below 1e-3) both read 0.0000, and one of 2.1e+08 (an int32
    raster) ran into the SSIM column; now each shows 4 significant digits, and every column keeps two blanks."""
    from internal_sr.core.evaluation import Scores
    from internal_sr.core.report import _overall_table

    def make_scores(label, rmse):
        overall = {"psnr": 35.123, "ssim": 0.8678147872552, "rmse": rmse, "sam": 1.5, "ergas": 1.0, "sre": 20.0}
        return Scores(label, overall, {m: [v] for m, v in overall.items()})

    class Table:
        band_names = ["B1"]
        undefined_notes: list[str] = []
        scored_note = "Scored: all 1 reference pixels, every one valid"
        scores = [make_scores("a", 3.70123e-05), make_scores("b", 3.58321e-05), make_scores("c", 2.12345e8)]

    lines = report.text_table(Table).splitlines()[:4]
    assert [line.split()[3] for line in lines[1:]] == ["3.701e-05", "3.583e-05", "2.123e+08"]
    assert all(len(line.split()) == 7 and line.split()[2] == "0.8678" for line in lines[1:])
    assert "<td><b>3.583e-05</b></td>" in _overall_table(Table) and "<td>2.123e+08</td>" in _overall_table(Table)


def test_a_failure_writing_the_json_leaves_no_report_and_the_earlier_files(tmp_path, capsys, monkeypatch):
    """The report was renamed into place before the JSON failed, under "nothing written"; both are one run's."""
    path = geo_10m(tmp_path)
    out_json, out_html = tmp_path / "e.json", tmp_path / "e.html"
    out_json.write_text("earlier"), out_html.write_text("earlier")

    def full_disk(*args) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(report, "write_json", full_disk)
    code = main(["evaluate", path, "--scale", "2", "--method", "bicubic", "--json", str(out_json), "--report", str(out_html)])
    assert code == 1 and capsys.readouterr().err.strip().splitlines()[-1].endswith("no space left on device (nothing written)")
    assert out_json.read_text() == out_html.read_text() == "earlier"
    assert not [name for name in os.listdir(tmp_path) if name.startswith(".internal_sr-")]
