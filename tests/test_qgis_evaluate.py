"""``internal_sr:evaluate`` through ``processing.run`` in a headless QGIS: report, scores as outputs, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from qgis.core import QgsProcessingException, QgsProcessingFeedback
from qgis_helpers import crop, georeferenced_10m, user_message

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
    assert {"SSIM", "RMSE", "SAM", "ERGAS", "SRE"} <= set(result)
    page = Path(report).read_text(encoding="utf-8")
    assert "Wald's protocol evaluation" in page and "Deep Image Prior" in page
    assert "Method: dip" in feedback.textLog()


def test_extent_picks_the_evaluated_pixels(tmp_path) -> None:
    import rasterio

    source = georeferenced_10m(str(tmp_path / "in10.tif"))
    with rasterio.open(source) as src:
        left, top = src.transform.c, src.transform.f
    extent = f"{left + 100},{left + 740},{top - 640},{top - 200} [EPSG:32633]"  # 64 × 44 pixels from column 10, row 20
    scores = str(tmp_path / "e.json")
    run({"INPUT": source, "METHOD": "bicubic", "SCALE": 2, "EXTENT": extent, "OUTPUT": str(tmp_path / "e.html"),
         "OUTPUT_JSON": scores})
    window = json.loads(Path(scores).read_text())["window"]
    assert window == {"col_off": 10, "row_off": 20, "width": 64, "height": 44}


def test_guided_without_a_guide_is_a_one_line_error(tmp_path) -> None:
    source = crop(str(tmp_path / "in.tif"), 32)
    with pytest.raises(QgsProcessingException) as error:
        run({"INPUT": source, "METHOD": "guided", "SCALE": 2, "OUTPUT": str(tmp_path / "e.html")})
    message = user_message(error.value)
    assert "needs a guide raster" in message and "\n" not in message
    assert not (tmp_path / "e.html").exists()
