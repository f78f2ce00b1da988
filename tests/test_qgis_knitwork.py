"""``internal_sr:knitwork`` run for real through ``processing.run`` in a headless QGIS (plumbing, not quality)."""

from __future__ import annotations

import os

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
    results = run({**parameters, "OUTPUT": out}, feedback)
    assert results["OUTPUT"] == out
    src, dst = grid_info(source), grid_info(out)
    assert (dst.width, dst.height) == (64, 64) and dst.crs == src.crs and dst.dtype == "uint16"
    assert dst.transform[0] == src.transform[0] / 2 and (dst.transform[2], dst.transform[5]) == (src.transform[2], src.transform[5])
    log = feedback.textLog()
    assert "Neural Knitworks on device cpu" in log and "Kernel: learned" in log and "Iterations: 2" in log
    # the kernel it learnt is kept beside the output, as the command line keeps it, and is an output of its own
    assert results["LEARNED_KERNEL"] == out + ".kernel.npy"
    assert all(os.path.isfile(out + suffix) for suffix in (".kernel.npy", ".kernel.npy.json", ".kernel.png"))
    assert "learned kernel: 13×13 taps, σ " in log and f"→ {out}.kernel.npy" in log


def test_a_fixed_kernel_keeps_no_kernel_file_and_a_learned_one_is_refused_where_its_files_would_replace_another(tmp_path) -> None:
    """LEARNED_KERNEL is empty with a fixed kernel; a learned kernel whose preview would replace a file no earlier
    kernel wrote (a picture named like it) is refused before the run, in one line, as on the command line."""
    source = crop(str(tmp_path / "in.tif"), 32)
    out = str(tmp_path / "fixed.tif")
    parameters = {"INPUT": source, "BANDS": [1], "SCALE": 2, "ITERATIONS": 1, "DEVICE": "cpu"}
    assert run({**parameters, "OUTPUT": out})["LEARNED_KERNEL"] == ""
    assert not os.path.exists(out + ".kernel.npy")
    picture = tmp_path / "learned.tif.kernel.png"
    picture.write_bytes(b"a photo")
    with pytest.raises(QgsProcessingException) as error:
        run({**parameters, "KERNEL": "learned", "OUTPUT": str(tmp_path / "learned.tif")})
    message = user_message(error.value)
    assert f"the preview {picture} of kernel file {tmp_path / 'learned.tif.kernel.npy'} would replace an existing file" in message
    assert "\n" not in message and picture.read_bytes() == b"a photo" and not (tmp_path / "learned.tif").exists()


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
