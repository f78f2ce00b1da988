"""``internal_sr:guided_dip`` through ``processing.run`` in a headless QGIS: the output on the guide's grid,
one-line errors for grids that do not nest, and help for analysts (plumbing only: quality is in test_guided)."""

from __future__ import annotations

import os

import pytest
import rasterio
from affine import Affine
from qgis.core import (
    QgsApplication,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingOutputLayerDefinition,
)

from helpers import S2_10M, S2_20M_SAME_AREA, read, write_raster
from qgis_helpers import landsat_pair, user_message

pytestmark = [pytest.mark.qgis, pytest.mark.usefixtures("internal_sr_provider")]

FAST = {"ITERATIONS": 2, "DEVICE": "cpu", "SEED": 1}


def pair(folder, guide_pixel: float = 10.0, guide_origin: tuple[float, float] = (300040.0, 5799960.0)) -> tuple[str, str]:
    target = write_raster(str(folder / "t20.tif"), read(S2_20M_SAME_AREA), transform=Affine(20.0, 0, 300000.0, 0, -20.0, 5800000.0),
                          descriptions=("B5", "B6", "B7", "B8A", "B11", "B12"))
    guide = write_raster(str(folder / "g10.tif"), read(S2_10M), transform=Affine(guide_pixel, 0, guide_origin[0], 0, -guide_pixel, guide_origin[1]),
                         descriptions=("B4", "B3", "B2", "B8"))
    return target, guide


def run(parameters: dict, feedback: QgsProcessingFeedback | None = None) -> dict:
    import processing

    return processing.run("internal_sr:guided_dip", parameters, feedback=feedback or QgsProcessingFeedback())


def test_landsat_is_sharpened_on_the_native_pan_pixels(tmp_path) -> None:
    """Landsat's pan sits half a pan pixel off the multispectral edges: accepted as it is, output on the pan grid."""
    ms, pan = landsat_pair(tmp_path)
    kernels = {"KERNEL": "landsat", "GUIDE_KERNEL": "landsat"}
    out = str(tmp_path / "landsat_15m.tif")
    run({"INPUT": ms, "BANDS": [4, 3, 2], "GUIDE": pan, **kernels, **FAST, "OUTPUT": out})
    with rasterio.open(pan) as guide, rasterio.open(out) as dst:
        assert dst.transform == guide.transform and dst.crs == guide.crs
        assert (dst.width, dst.height) == (128, 128) and dst.descriptions == ("B4", "B3", "B2")


def test_guided_output_is_on_the_guide_grid(tmp_path) -> None:
    target, guide = pair(tmp_path)
    out = str(tmp_path / "sharp.tif")
    result = run({"INPUT": target, "BANDS": [1, 6], "GUIDE": guide, "GUIDE_BANDS": [1, 2, 4], **FAST, "OUTPUT": out})
    assert result["OUTPUT"] == out and result["LOSS_CURVE"] == str(tmp_path / "sharp.tif.loss.png")
    with rasterio.open(out) as dst:
        # the guide starts 2 target pixels right and down: 62 × 62 target pixels overlap, on the 10 m grid
        assert dst.transform == Affine(10.0, 0, 300040.0, 0, -10.0, 5799960.0)
        assert (dst.width, dst.height, dst.count) == (124, 124, 2)
        assert dst.descriptions == ("B5", "B12") and dst.crs.to_epsg() == 32633


def test_negative_values_of_non_negative_bands_are_raised_to_zero_unless_switched_off(tmp_path) -> None:
    """NON_NEGATIVE (on by default): a Float32 output's negative values in bands whose input holds none are raised to 0
    and the log names the bands; off, they are written as the network made them."""
    target, guide = pair(tmp_path, guide_origin=(300000.0, 5800000.0))
    outputs, logs = {}, {}
    for keep in (True, False):
        feedback, out = QgsProcessingFeedback(), str(tmp_path / f"sharp_{keep}.tif")
        run({"INPUT": target, "GUIDE": guide, **FAST, "SEED": 0, "FLOAT32": True, "NON_NEGATIVE": keep, "OUTPUT": out}, feedback)
        outputs[keep], logs[keep] = read(out), feedback.textLog()
    assert outputs[False].min() < -100
    assert (outputs[True] == outputs[False].clip(min=0)).all()
    raised = [line for line in logs[True].splitlines() if "raised to 0" in line]
    assert len(raised) == int(((outputs[False] < 0).sum(axis=(1, 2)) > 0).sum()) and "raised to 0" not in logs[False]


def test_a_guide_within_the_alignment_tolerance_runs_on_its_grid_and_the_log_says_how_far_off(tmp_path) -> None:
    """A 10 m guide 0.49 m (0.049 guide pixel) east of the 20 m target's pixel edges, within the 0.05 taken as aligned:
    sharpened on the guide's own pixels, and the log says how far off the grids are."""
    target, guide = pair(tmp_path, guide_origin=(300040.49, 5799960.0))
    out = str(tmp_path / "sharp.tif")
    feedback = QgsProcessingFeedback()
    run({"INPUT": target, "BANDS": [1], "GUIDE": guide, "GUIDE_BANDS": [1], **FAST, "OUTPUT": out}, feedback)
    with rasterio.open(out) as dst:
        assert dst.transform == Affine(10.0, 0, 300040.49, 0, -10.0, 5799960.0) and (dst.width, dst.height) == (124, 124)
    notes = [line for line in feedback.textLog().splitlines() if "not exactly aligned" in line]
    assert len(notes) == 1 and ("guide pixels (x, y) off the guide's (-0.049, +0 at the overlap's corner (the target's pixel "
                               "corner at column 2, row 2))") in notes[0], notes


@pytest.mark.parametrize(
    "guide_pixel, guide_origin, expected",
    [
        (15.0, (300000.0, 5800000.0), "non-integer scale between grids"),
        (10.0, (500000.0, 5800000.0), "do not overlap"),
        (10.0, (300003.0, 5800000.0), "not aligned"),
        (10.0, (300040.51, 5799960.0), "the overlap's corner (the target's pixel corner at column 2, row 2) falls 0.051, 0 guide pixels off"),
    ],
)
def test_grids_that_do_not_nest_are_refused_before_the_run(tmp_path, guide_pixel, guide_origin, expected) -> None:
    target, guide = pair(tmp_path, guide_pixel, guide_origin)
    out = str(tmp_path / "never.tif")
    with pytest.raises(QgsProcessingException) as error:
        run({"INPUT": target, "GUIDE": guide, **FAST, "OUTPUT": out})
    message = user_message(error.value)
    assert "\n" not in message and expected in message
    assert sorted(os.listdir(tmp_path)) == ["g10.tif", "t20.tif"]


def test_output_is_checked_before_the_run_as_the_toolbox_passes_it(tmp_path) -> None:
    target, guide = pair(tmp_path)
    algorithm = QgsApplication.processingRegistry().createAlgorithmById("internal_sr:guided_dip")
    for output, expected in (
        (str(tmp_path / "missing" / "sharp.tif"), f"output folder {tmp_path / 'missing'} does not exist: create it, or choose another folder"),
        (guide, f"output {guide} is the input: choose another output path"),
    ):
        parameters = {"INPUT": target, "GUIDE": guide, **FAST, "OUTPUT": QgsProcessingOutputLayerDefinition(output)}
        assert algorithm.checkParameterValues(parameters, QgsProcessingContext()) == (False, expected)


def test_unnamed_bands_need_a_kernel_choice(tmp_path) -> None:
    target = write_raster(str(tmp_path / "t.tif"), read(S2_20M_SAME_AREA), transform=Affine(20.0, 0, 300000.0, 0, -20.0, 5800000.0))
    _, guide = pair(tmp_path)
    with pytest.raises(QgsProcessingException) as error:
        run({"INPUT": target, "GUIDE": guide, **FAST, "OUTPUT": str(tmp_path / "o.tif")})
    assert "kernel sentinel2 needs Sentinel-2 band names" in user_message(error.value)
    assert user_message(error.value).endswith("set Blur kernel (KERNEL) to another kernel, such as bicubic or gaussian (with SIGMA)")
    out = str(tmp_path / "o.tif")
    run({"INPUT": target, "GUIDE": guide, "KERNEL": "gaussian", "SIGMA": 0.45, **FAST, "OUTPUT": out})
    assert os.path.exists(out)


def test_a_kernel_file_wider_than_the_target_is_refused_before_the_run(tmp_path) -> None:
    """KERNEL_FILE wider than the fine grid over the target ran; it is refused in plain DIP's line, writing nothing."""
    import numpy as np

    target = write_raster(str(tmp_path / "t20.tif"), read(S2_20M_SAME_AREA)[:, :20, :20],
                          transform=Affine(20.0, 0, 300000.0, 0, -20.0, 5800000.0))
    guide = write_raster(str(tmp_path / "g10.tif"), read(S2_10M)[:, :40, :40])
    kernel = str(tmp_path / "wide.npy")
    np.save(kernel, np.ones((41, 41)))
    with pytest.raises(QgsProcessingException) as error:
        run({"INPUT": target, "GUIDE": guide, "KERNEL_FILE": kernel, "GUIDE_KERNEL": "gaussian", **FAST,
             "OUTPUT": str(tmp_path / "never.tif")})
    assert user_message(error.value) == (f"kernel file {kernel} holds 41×41 taps, which span 44×44 pixels at the fine "
                                         "resolution (×2) once centred on the block centre, wider than the image there "
                                         "(40×40): use a larger raster, or a narrower kernel")
    assert sorted(os.listdir(tmp_path)) == ["g10.tif", "t20.tif", "wide.npy"]


def test_help_names_the_sentinel2_and_landsat_guides() -> None:
    from qgis.core import QgsApplication

    algorithm = QgsApplication.processingRegistry().algorithmById("internal_sr:guided_dip")
    help_text = algorithm.shortHelpString()
    for words in ("B8A", "B2, B3, B4, B8", "Landsat", "panchromatic", "GPU", "CPU"):
        assert words in help_text
    for parameter in algorithm.parameterDefinitions():
        assert parameter.description() in help_text
