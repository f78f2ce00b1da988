"""``internal_sr:evaluate`` through ``processing.run`` in a headless QGIS: report, scores as outputs, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from qgis.core import QgsProcessingException, QgsProcessingFeedback
from qgis_helpers import crop, georeferenced_10m, landsat_pair, user_message

pytestmark = [pytest.mark.qgis, pytest.mark.usefixtures("internal_sr_provider")]


def run(parameters: dict, feedback: QgsProcessingFeedback | None = None) -> dict:
    import processing

    return processing.run("internal_sr:evaluate", parameters, feedback=feedback or QgsProcessingFeedback())


def test_dip_evaluation_writes_the_report_and_returns_the_scores(tmp_path) -> None:
    source = crop(str(tmp_path / "in.tif"), 64)
    report, scores = str(tmp_path / "eval.html"), str(tmp_path / "eval.json")
    feedback = QgsProcessingFeedback()
    result = run(
        {"INPUT": source, "METHOD": "dip", "SCALE": 2, "ITERATIONS": 2, "DEVICE": "cpu", "TILE_SIZE": 32, "OVERLAP": 8,
         "OUTPUT": report, "OUTPUT_JSON": scores},
        feedback,
    )
    assert result["OUTPUT"] == report and result["OUTPUT_JSON"] == scores
    saved = json.loads(Path(scores).read_text())
    rows = {s["label"]: s["overall"] for s in saved["scores"]}
    assert result["PSNR"] == pytest.approx(rows["Deep Image Prior"]["psnr"])
    assert result["PSNR_BICUBIC"] == pytest.approx(rows["bicubic"]["psnr"])
    assert result["PSNR_BICUBIC_BP"] > result["PSNR_BICUBIC"]
    assert result["PSNR_HPF_BP"] is None  # guided DIP's baseline only
    assert result["SCORED_FRACTION"] == 1.0  # no nodata: every pixel scored
    assert {"SSIM", "RMSE", "SAM", "ERGAS", "SRE"} <= set(result)
    page = Path(report).read_text(encoding="utf-8")
    assert "Wald's protocol evaluation" in page and "Deep Image Prior" in page
    assert "Method: dip" in feedback.textLog()


def test_the_report_is_optional_and_the_scores_are_outputs_without_it(tmp_path) -> None:
    """OUTPUT (the HTML report) was required: a script leaving it out got QGIS's "Incorrect parameter value for OUTPUT".
    It is optional, as ``--report`` on the command line: left out, no report is written and the scores are still
    outputs (with the JSON alone, OUTPUT does not name the JSON); the toolbox offers a temporary file for it."""
    from qgis.core import QgsApplication

    source = crop(str(tmp_path / "in.tif"), 32)
    feedback = QgsProcessingFeedback()
    result = run({"INPUT": source, "METHOD": "bicubic", "SCALE": 2}, feedback)
    assert result["OUTPUT"] is None and result["PSNR"] > 20 and result["SCORED_FRACTION"] == 1.0
    assert "Report: none" in feedback.textLog().splitlines()
    scores = str(tmp_path / "scores.json")
    result = run({"INPUT": source, "METHOD": "bicubic", "SCALE": 2, "OUTPUT_JSON": scores})
    assert result["OUTPUT"] is None and result["OUTPUT_JSON"] == scores
    assert sorted(path.name for path in tmp_path.iterdir() if not path.name.endswith(".aux.xml")) == ["in.tif", "scores.json"]
    report = QgsApplication.processingRegistry().algorithmById("internal_sr:evaluate").parameterDefinition("OUTPUT")
    assert report.createByDefault()  # the toolbox's default: a temporary file


def test_scattered_nodata_is_left_out_and_the_scored_fraction_is_an_output(tmp_path) -> None:
    """Nodata scattered over the raster was refused ("choose an extent inside the valid area", which it has none of):
    it is left out of the scores, and the log, the JSON and the SCORED_FRACTION output say how much was scored."""
    from helpers import S2_10M, read, write_raster

    data = read(S2_10M)[:, :48, :48]
    data[1, 5:7, 30] = data[:, 20, 11] = data[3, 40, 40] = 0
    source = write_raster(str(tmp_path / "holes.tif"), data, nodata=0)
    scores = str(tmp_path / "holes.json")
    feedback = QgsProcessingFeedback()
    result = run({"INPUT": source, "METHOD": "bicubic", "SCALE": 2, "OUTPUT": str(tmp_path / "holes.html"),
                  "OUTPUT_JSON": scores}, feedback)
    saved = json.loads(Path(scores).read_text())
    assert 0.5 < result["SCORED_FRACTION"] == saved["scored_fraction"] < 1
    assert feedback.textLog().count(saved["scored_note"]) == 1 and saved["valid_pixels"] == 48 * 48 - 4  # said once
    assert result["PSNR"] == pytest.approx(saved["scores"][0]["overall"]["psnr"])


def test_a_score_not_defined_is_none_as_a_baseline_not_scored(tmp_path) -> None:
    """SAM of one band was NaN as an output beside None for the baseline not scored (PSNR_HPF_BP): both are None
    now, as both are null in the JSON, which says why."""
    from helpers import S2_10M, read, write_raster

    source = write_raster(str(tmp_path / "one.tif"), read(S2_10M)[:1, :32, :32])
    scores = str(tmp_path / "one.json")
    result = run({"INPUT": source, "METHOD": "bicubic", "SCALE": 2, "OUTPUT": str(tmp_path / "one.html"),
                  "OUTPUT_JSON": scores})
    assert result["SAM"] is None and result["PSNR_HPF_BP"] is None and result["PSNR"] > 20
    saved = json.loads(Path(scores).read_text())
    assert saved["scores"][0]["overall"]["sam"] is None
    assert saved["undefined_notes"][0].startswith("Overall SAM is not defined for one band (—)")


def test_extent_picks_the_evaluated_pixels(tmp_path) -> None:
    import rasterio

    source = georeferenced_10m(str(tmp_path / "in10.tif"))
    with rasterio.open(source) as src:
        left, top = src.transform.c, src.transform.f
    extent = f"{left + 100},{left + 740},{top - 640},{top - 200} [EPSG:32633]"  # 64 × 44 pixels from column 10, row 20
    scores = str(tmp_path / "e.json")
    feedback = QgsProcessingFeedback()
    run({"INPUT": source, "METHOD": "bicubic", "SCALE": 2, "BANDS": [1, 3], "EXTENT": extent, "OUTPUT": str(tmp_path / "e.html"),
         "OUTPUT_JSON": scores}, feedback)
    window = json.loads(Path(scores).read_text())["window"]
    assert window == {"col_off": 10, "row_off": 20, "width": 64, "height": 44}
    # the settings and the engine's first lines say which area and bands were used, as every algorithm's do
    log = feedback.textLog()
    assert f"Extent: x {left + 100:.6g}–" in log and "Bands: 1, 3" in log
    assert "extent: input columns 10–73, rows 20–63 (64×44 pixels)" in log


def test_the_report_and_the_json_on_one_path_fail_the_check_before_the_run(tmp_path) -> None:
    """They passed checkParameterValues and failed only once the run had started (after the toolbox's dialog had
    switched to its log)."""
    from qgis.core import QgsApplication, QgsProcessingContext

    source = crop(str(tmp_path / "in.tif"), 32)
    report = str(tmp_path / "e.html")
    algorithm = QgsApplication.processingRegistry().createAlgorithmById("internal_sr:evaluate")
    parameters = {"INPUT": source, "METHOD": "bicubic", "SCALE": 2, "OUTPUT": report, "OUTPUT_JSON": report}
    assert algorithm.checkParameterValues(parameters, QgsProcessingContext()) == (
        False, f"the report and the JSON would both be {report}: choose two paths"
    )


def test_guided_without_a_guide_is_a_one_line_error(tmp_path) -> None:
    source = crop(str(tmp_path / "in.tif"), 32)
    with pytest.raises(QgsProcessingException) as error:
        run({"INPUT": source, "METHOD": "guided", "SCALE": 2, "OUTPUT": str(tmp_path / "e.html")})
    message = user_message(error.value)
    assert "needs a guide raster" in message and "\n" not in message
    assert not (tmp_path / "e.html").exists()


def test_an_empty_guide_is_no_guide_in_the_check_and_in_the_run(tmp_path) -> None:
    from qgis.core import QgsApplication, QgsProcessingContext

    source = crop(str(tmp_path / "in.tif"), 32)
    algorithm = QgsApplication.processingRegistry().createAlgorithmById("internal_sr:evaluate")
    scores = str(tmp_path / "e.json")
    parameters = {"INPUT": source, "METHOD": "bicubic", "SCALE": 2, "GUIDE": "", "OUTPUT": str(tmp_path / "e.html"),
                  "OUTPUT_JSON": scores}
    assert algorithm.checkParameterValues(parameters, QgsProcessingContext()) == (True, "")
    assert run(parameters)["OUTPUT_JSON"] == scores
    ok, message = algorithm.checkParameterValues({**parameters, "METHOD": "guided"}, QgsProcessingContext())
    assert not ok and message == "Method guided needs a guide raster (GUIDE)"


def test_auto_kernel_is_the_methods_own_default_as_on_the_command_line(tmp_path) -> None:
    """KERNEL 'auto' (the default): each band's Sentinel-2 MTF for guided DIP, bicubic for the others."""
    from affine import Affine

    from helpers import S2_10M, S2_20M_SAME_AREA, read, write_raster

    target = write_raster(str(tmp_path / "t20.tif"), read(S2_20M_SAME_AREA), transform=Affine(20.0, 0, 300000.0, 0, -20.0, 5800000.0),
                          descriptions=("B5", "B6", "B7", "B8A", "B11", "B12"))
    guide = write_raster(str(tmp_path / "g10.tif"), read(S2_10M), transform=Affine(10.0, 0, 300000.0, 0, -10.0, 5800000.0),
                         descriptions=("B4", "B3", "B2", "B8"))
    kernels = {}
    for method, extra in (("guided", {"GUIDE": guide}), ("bicubic", {})):
        scores = str(tmp_path / f"{method}.json")
        run({"INPUT": target, "METHOD": method, "SCALE": 2, "ITERATIONS": 2, "DEVICE": "cpu", **extra,
             "OUTPUT": str(tmp_path / f"{method}.html"), "OUTPUT_JSON": scores})
        kernels[method] = json.loads(Path(scores).read_text())["kernel"]
    assert kernels == {"guided": "sentinel2", "bicubic": "bicubic"}


def test_landsat_pair_is_evaluated_on_its_native_half_pixel_grids(tmp_path) -> None:
    ms, pan = landsat_pair(tmp_path)
    scores = str(tmp_path / "l8.json")
    result = run({"INPUT": ms, "BANDS": [2, 3, 4], "METHOD": "guided",
                  "SCALE": 2, "KERNEL": "landsat", "GUIDE": pan,
                  "GUIDE_KERNEL": "landsat", "ITERATIONS": 2, "DEVICE": "cpu", "OUTPUT": str(tmp_path / "l8.html"),
                  "OUTPUT_JSON": scores})
    saved = json.loads(Path(scores).read_text())
    assert saved["kernel"] == "landsat" and saved["window"]["width"] == 64
    assert result["PSNR_BICUBIC"] < result["PSNR"]
    # HPF injection + back-projection, the baseline to beat for guided DIP's back-projected output, is an output too
    rows = {s["label"]: s["overall"] for s in saved["scores"]}
    assert result["PSNR_HPF_BP"] == pytest.approx(rows["HPF injection + back-projection"]["psnr"])
