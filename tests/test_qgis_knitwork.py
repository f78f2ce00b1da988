"""``internal_sr:knitwork`` run for real through ``processing.run`` in a headless QGIS (plumbing, not quality)."""

from __future__ import annotations

import pytest
from qgis.core import QgsProcessingException, QgsProcessingFeedback
from qgis_helpers import crop, grid_info, user_message

pytestmark = [pytest.mark.qgis, pytest.mark.usefixtures("internal_sr_provider")]


def run(parameters: dict, feedback: QgsProcessingFeedback | None = None) -> dict:
    import processing

    return processing.run("internal_sr:knitwork", parameters, feedback=feedback or QgsProcessingFeedback())


def test_knitwork_output_is_the_input_grid_refined(tmp_path) -> None:
    source = crop(str(tmp_path / "in.tif"), 32, 16, 16)
    out = str(tmp_path / "knitwork.tif")
    feedback = QgsProcessingFeedback()
    parameters = {"INPUT": source, "BANDS": [1, 4], "SCALE": 2, "ITERATIONS": 2, "KERNEL": "learned", "DEVICE": "cpu"}
    assert run({**parameters, "OUTPUT": out}, feedback)["OUTPUT"] == out
    src, dst = grid_info(source), grid_info(out)
    assert (dst.width, dst.height) == (64, 64) and dst.crs == src.crs and dst.dtype == "uint16"
    assert dst.transform[0] == src.transform[0] / 2 and (dst.transform[2], dst.transform[5]) == (src.transform[2], src.transform[5])
    log = feedback.textLog()
    assert "Neural Knitworks on device cpu" in log and "Kernel: learned" in log and "Iterations: 2" in log


def test_knitwork_errors_are_one_line_and_help_names_run_times(tmp_path) -> None:
    from qgis.core import QgsApplication

    source = crop(str(tmp_path / "in.tif"), 8)
    with pytest.raises(QgsProcessingException) as error:
        run({"INPUT": source, "SCALE": 2, "DEVICE": "cpu", "OUTPUT": str(tmp_path / "out.tif")})
    assert "at least 9×9 input pixels" in user_message(error.value) and "\n" not in user_message(error.value)
    algorithm = QgsApplication.processingRegistry().algorithmById("internal_sr:knitwork")
    assert algorithm.displayName() == "Super-resolve (Neural Knitworks)"
    help_text = algorithm.shortHelpString()
    assert "CPU" in help_text and "GPU" in help_text and "minutes" in help_text
