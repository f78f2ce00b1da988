"""The multi-method dialog in a real headless QGIS: each method's form, remembered settings, the run time
estimate, and a run through the task manager that adds a layer named and styled like its input over the
chosen extent. Runs are tiny (2 steps): they test the plumbing, not the result's quality."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
import rasterio
from affine import Affine
from qgis.core import (
    Qgis,
    QgsApplication,
    QgsContrastEnhancement,
    QgsCoordinateTransform,
    QgsMultiBandColorRenderer,
    QgsProject,
    QgsRasterLayer,
    QgsRectangle,
    QgsSettings,
)
from qgis.PyQt.QtCore import Qt
from qgis_helpers import crop

from helpers import S2_10M, S2_20M_SAME_AREA, read, write_raster
from internal_sr.core.config import QUALITY_PRESETS, TileOptions
from internal_sr.core.errors import InputError
from internal_sr.ui.dialog import SETTINGS_GROUP, SuperResolveDialog

pytestmark = pytest.mark.qgis


@pytest.fixture()
def clean_settings():
    """No remembered choices before the test, none left after it (other tests expect the defaults)."""
    QgsSettings().remove(SETTINGS_GROUP)
    yield
    QgsSettings().remove(SETTINGS_GROUP)


@pytest.fixture()
def dialog(qgis_iface, empty_project, clean_settings):
    made = SuperResolveDialog(qgis_iface)
    yield made
    made.deleteLater()


def add_layer(path: str, name: str) -> QgsRasterLayer:
    layer = QgsRasterLayer(path, name, "gdal")
    assert layer.isValid()
    return QgsProject.instance().addMapLayer(layer)


def geo_pair(folder) -> tuple[QgsRasterLayer, QgsRasterLayer]:
    """The committed 20 m target (64 × 64) and 10 m guide (128 × 128) on one UTM grid origin."""
    target = write_raster(str(folder / "t20.tif"), read(S2_20M_SAME_AREA), transform=Affine(20.0, 0, 300000.0, 0, -20.0, 5800000.0),
                          descriptions=("B5", "B6", "B7", "B8A", "B11", "B12"))
    guide = write_raster(str(folder / "g10.tif"), read(S2_10M), transform=Affine(10.0, 0, 300000.0, 0, -10.0, 5800000.0),
                         descriptions=("B4", "B3", "B2", "B8"))
    return add_layer(target, "t20"), add_layer(guide, "g10")


def select_method(dialog: SuperResolveDialog, key: str) -> None:
    dialog.method_combo.setCurrentIndex(dialog.method_combo.findData(key))


def wait_for(task, timeout: float = 120.0) -> None:
    """Process events until the task manager has run the task and called ``finished``."""
    deadline = time.monotonic() + timeout
    while task.result is None and task.error is None and time.monotonic() < deadline:
        QgsApplication.processEvents()
        time.sleep(0.02)
    for _ in range(20):  # finished() runs on the main thread after the task completes
        QgsApplication.processEvents()
        time.sleep(0.01)
    assert task.error is None and task.layer is not None, task.error


@pytest.mark.parametrize(("method", "label", "kernels", "suffix"), [
    ("dip", "DIP", "bicubic", "_dip_x2.tif"),
    ("knitwork", "Knitworks", "learned", "_knitwork_x2.tif"),
    ("guided", "guided DIP", "sentinel2", "_guided_x2.tif"),
])
def test_dialog_for_each_method(dialog, tmp_path, method, label, kernels, suffix) -> None:
    target, guide = geo_pair(tmp_path)
    dialog.layer_combo.setLayer(target)
    dialog.guide_combo.setLayer(guide)
    select_method(dialog, method)
    guided = method == "guided"
    assert dialog.guide_combo.isVisibleTo(dialog) == guided and dialog.guide_kernel_combo.isVisibleTo(dialog) == guided
    assert dialog.scale_spin.isVisibleTo(dialog) == (not guided)  # guided: the scale is the grids' ratio
    assert kernels in [dialog.kernel_combo.itemText(i) for i in range(dialog.kernel_combo.count())]
    assert dialog.output_widget.filePath() == str(tmp_path / ("t20" + suffix))
    assert str(QUALITY_PRESETS[method]["best"]) in dialog.quality_combo.toolTip()
    task = dialog.build_task()
    assert task.layer_name == f"t20 {label} ×2"
    assert "Estimated time: about" in dialog.summary_label.text()


def test_guided_asks_for_a_finer_guide_before_estimating(dialog, tmp_path) -> None:
    """The guide combo starts on the first layer, here the target itself (ratio ×1): no estimate, no Run."""
    target, guide = geo_pair(tmp_path)
    select_method(dialog, "guided")
    dialog.layer_combo.setLayer(target)
    dialog.guide_combo.setLayer(target)
    assert dialog.summary_label.text().startswith("Choose a finer guide") and not dialog.run_button.isEnabled()
    assert dialog.output_widget.filePath() == str(tmp_path / "t20_guided_x.tif")  # no "_x1" name
    dialog.guide_combo.setLayer(guide)
    assert "Estimated time" in dialog.summary_label.text() and dialog.run_button.isEnabled()
    assert dialog.output_widget.filePath() == str(tmp_path / "t20_guided_x2.tif")


@pytest.mark.parametrize("method", ["dip", "guided"])
def test_output_paths_the_engine_refuses_are_refused_before_the_run(dialog, tmp_path, method) -> None:
    """The dialog uses the engine's output check: the input itself, a folder and a name whose sidecar another
    dataset may own are refused by name."""
    target, guide = geo_pair(tmp_path)
    dialog.layer_combo.setLayer(target)
    dialog.guide_combo.setLayer(guide)
    select_method(dialog, method)
    folder = tmp_path / "folder.tif"
    folder.mkdir()
    (tmp_path / "ortho.png").write_bytes(b"\x89PNG\r\n\x1a\n")  # another raster named ortho, and its world file
    (tmp_path / "ortho.wld").write_text("20\n0\n0\n-20\n443730\n4171410\n")
    refused = [
        (target.source(), "is the input"),
        (str(folder), "is a folder"),
        (str(tmp_path / "ortho.tif"), "ortho.wld beside it as its own, and that file may belong to .*ortho.png"),
    ]
    if method == "guided":
        refused.append((guide.source(), "is the input"))
    for output, reason in refused:
        dialog.output_widget.setFilePath(output)
        with pytest.raises(InputError, match=reason):
            dialog.build_task()
    assert os.path.isdir(folder) and not dialog.tasks


def test_a_remembered_device_that_is_not_here_stops_the_run(qgis_iface, empty_project, clean_settings, tmp_path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    QgsSettings().setValue(f"{SETTINGS_GROUP}/device", "cuda")
    add_layer(crop(str(tmp_path / "scene.tif"), 48), "scene")
    dialog = SuperResolveDialog(qgis_iface)
    try:
        assert dialog.device_combo.currentText() == "cuda"
        assert dialog.summary_label.text().startswith("Device cuda is not available here") and not dialog.run_button.isEnabled()
        assert dialog.start() is None and not dialog.tasks  # the one-line reason goes to the dialog's message bar
        with pytest.raises(InputError, match="Device cuda is not available here"):
            dialog.build_task()
        dialog.device_combo.setCurrentText("auto")
        assert "Estimated time: about" in dialog.summary_label.text() and dialog.run_button.isEnabled()
    finally:
        dialog.deleteLater()


def test_settings_round_trip_through_qgssettings(qgis_iface, empty_project, clean_settings, tmp_path) -> None:
    target, guide = geo_pair(tmp_path)
    first = SuperResolveDialog(qgis_iface)
    try:
        first.layer_combo.setLayer(guide)
        first.guide_combo.setLayer(target)
        select_method(first, "knitwork")
        first.quality_combo.setCurrentIndex(first.quality_combo.findData("best"))
        first.scale_spin.setValue(3)
        first.kernel_combo.setCurrentText("gaussian")
        first.sigma_spin.setValue(0.65)
        first.device_combo.setCurrentText("cpu")
        first.float32_check.setChecked(True)
        first.iterations_spin.setValue(7)
        first.seed_spin.setValue(11)
        first.tile_spin.setValue(96)
        first.overlap_spin.setValue(8)
        first.threads_spin.setValue(1)
        first.extent_box.setChecked(True)
        first.save_settings()
    finally:
        first.deleteLater()
    second = SuperResolveDialog(qgis_iface)
    try:
        assert second.method() == "knitwork" and second.quality() == "best"
        assert second.scale_spin.value() == 3 and second.kernel_combo.currentText() == "gaussian"
        assert second.sigma_spin.value() == pytest.approx(0.65) and second.sigma_spin.isEnabled()
        assert second.device_combo.currentText() == "cpu" and second.float32_check.isChecked()
        assert (second.iterations_spin.value(), second.seed_spin.value()) == (7, 11)
        assert (second.tile_spin.value(), second.overlap_spin.value()) == (96, 8)
        assert second.threads_spin.value() == 1
        assert second.extent_box.isChecked()
        assert second.layer_combo.currentLayer() is guide and second.guide_combo.currentLayer() is target
    finally:
        second.deleteLater()


def test_a_remembered_extent_reopens_with_its_area_and_no_message(qgis_iface, empty_project, clean_settings, tmp_path) -> None:
    """Only the tick used to be remembered: reopened, the dialog said "The extent does not overlap" and took the
    whole raster. The area comes back in its CRS where it overlaps the input, else the input's whole extent,
    silently; a tick remembered without an area (an earlier version's) reopens unticked."""
    from osgeo import gdal

    target, _ = geo_pair(tmp_path)  # EPSG:32633
    mercator = add_layer(gdal.Warp(str(tmp_path / "t3857.tif"), target.source(), dstSRS="EPSG:3857").GetDescription(), "t3857")
    elsewhere = add_layer(crop(str(tmp_path / "elsewhere.tif"), 48), "elsewhere")  # EPSG:32618, far from both
    x0, y0 = target.extent().xMinimum(), target.extent().yMaximum()
    area = QgsRectangle(x0 + 200, y0 - 800, x0 + 1000, y0 - 200)
    first = SuperResolveDialog(qgis_iface)
    try:
        first.layer_combo.setLayer(target)
        first.extent_box.setChecked(True)
        first.extent_box.setOutputExtentFromUser(area, target.crs())
        assert first.extent() == pytest.approx((area.xMinimum(), area.yMinimum(), area.xMaximum(), area.yMaximum()))
        first.save_settings()
    finally:
        first.deleteLater()

    def reopened(layer: QgsRasterLayer) -> tuple[bool, tuple[float, float, float, float] | None]:
        QgsSettings().setValue(f"{SETTINGS_GROUP}/layer", layer.id())
        dialog = SuperResolveDialog(qgis_iface)
        try:
            assert dialog.layer_combo.currentLayer() is layer and dialog.message_bar.currentItem() is None
            return dialog.extent_box.isChecked(), dialog.extent()
        finally:
            dialog.deleteLater()

    assert reopened(target) == (True, pytest.approx((area.xMinimum(), area.yMinimum(), area.xMaximum(), area.yMaximum())))
    moved = QgsCoordinateTransform(target.crs(), mercator.crs(), QgsProject.instance()).transformBoundingBox(area)
    assert reopened(mercator) == (True, pytest.approx((moved.xMinimum(), moved.yMinimum(), moved.xMaximum(), moved.yMaximum()), abs=1e-3))
    whole = elsewhere.extent()
    assert reopened(elsewhere) == (True, pytest.approx((whole.xMinimum(), whole.yMinimum(), whole.xMaximum(), whole.yMaximum())))
    QgsSettings().remove(f"{SETTINGS_GROUP}/extent_area")
    assert reopened(target) == (False, None)


def test_damaged_remembered_settings_fall_back_to_the_defaults(qgis_iface, empty_project, clean_settings) -> None:
    """Values that do not convert (a hand edit, another version's format) are ignored; the others still apply."""
    settings = QgsSettings()
    damaged = {"scale": "x2", "sigma": "0,7", "iterations": "", "tile": ["96"], "quality": 5, "layer": 5}
    for key, value in {**damaged, "seed": "11", "overlap": 8, "device": "cpu"}.items():
        settings.setValue(f"{SETTINGS_GROUP}/{key}", value)
    opened = SuperResolveDialog(qgis_iface)
    try:
        assert (opened.scale_spin.value(), opened.sigma_spin.value(), opened.iterations_spin.value()) == (2, 0.5, 0)
        assert (opened.tile_spin.value(), opened.quality()) == (128, "balanced")
        assert (opened.seed_spin.value(), opened.overlap_spin.value(), opened.device_combo.currentText()) == (11, 8, "cpu")
    finally:
        opened.deleteLater()


def test_estimate_follows_quality_and_extent(dialog, tmp_path) -> None:
    source = crop(str(tmp_path / "scene.tif"), 96)
    layer = add_layer(source, "scene")
    dialog.layer_combo.setLayer(layer)
    dialog.device_combo.setCurrentText("cpu")
    dialog.tile_spin.setValue(64)
    assert dialog.estimate(dialog.plan()) == (192, 192, 4, 128 * 128)  # 96 px in 64 px tiles with 16 px overlap: 2 × 2 tiles
    texts = {}
    for quality in ("fast", "best"):
        dialog.quality_combo.setCurrentIndex(dialog.quality_combo.findData(quality))
        texts[quality] = dialog.summary_label.text()
        steps = QUALITY_PRESETS["dip"][quality]
        warm = round(0.75 * steps)  # tiles after the first are warm-started with three quarters of the steps
        assert f"4 tiles, {steps + 3 * warm} steps in all: {steps} for the first, {warm} for each other" in texts[quality]
    assert texts["fast"] != texts["best"]
    x0, y0 = layer.extent().xMinimum(), layer.extent().yMaximum()
    dialog.extent_box.setChecked(True)
    dialog.extent_box.setOutputExtentFromUser(QgsRectangle(x0 + 205, y0 - 790, x0 + 1190, y0 - 5), layer.crs())
    assert dialog.estimate(dialog.plan()) == (2 * 50, 2 * 40, 1, 100 * 80)  # columns 10–59, rows 0–39: one tile


def test_cpu_threads_reach_the_task_and_the_estimate(dialog, tmp_path) -> None:
    """The dialog ran torch on all cores and offered no setting, though on a busy machine fewer threads run many times
    faster: Advanced ▸ CPU threads (automatic: PyTorch's choice) goes to the task, which sets it for its job
    (``test_qgis_task``), and the estimate says that its figure is one thread's when the run uses more."""
    import torch

    dialog.layer_combo.setLayer(add_layer(crop(str(tmp_path / "scene.tif"), 48), "scene"))
    dialog.device_combo.setCurrentText("cpu")
    automatic = torch.get_num_threads()
    assert dialog.threads_spin.value() == 0 and dialog.threads_spin.text() == "automatic (PyTorch's choice)"
    assert dialog.build_task().threads is None
    dialog.threads_spin.setValue(1)
    assert "on cpu (1 thread) (measured on idle machines" in dialog.summary_label.text()
    dialog.threads_spin.setValue(automatic + 1)
    task = dialog.build_task()
    assert task.threads == automatic + 1
    # the figures are one thread's: the estimate said "on cpu (3 threads)" for them
    assert (f"with one CPU thread on an idle machine; this run's {automatic + 1} threads are faster on idle cores"
            in dialog.summary_label.text())
    dialog.threads_spin.setValue(0)
    text = dialog.summary_label.text()
    assert ("on cpu (1 thread)" in text) if automatic == 1 else (f"this run's {automatic} threads" in text)


def test_estimate_counts_the_tiles_a_wide_kernel_grows(dialog, tmp_path) -> None:
    """gaussian:6 at ×2 reaches 18 input pixels past a tile's side, so a run on 140 × 140 pixels grows the default
    128 px tile with 16 px overlap to 144 px with 36 px (``core.tiling.kernel_tiles``): one tile, not 2 × 2. The
    summary counted the tiles asked; the default kernel's tiles are as asked."""
    dialog.layer_combo.setLayer(add_layer(crop(str(tmp_path / "scene.tif"), 140), "scene"))
    dialog.device_combo.setCurrentText("cpu")
    dialog.iterations_spin.setValue(50)
    assert dialog.estimate(dialog.plan()) == (280, 280, 4, 256 * 256) and "4 tiles, " in dialog.summary_label.text()
    dialog.kernel_combo.setCurrentText("gaussian")
    dialog.sigma_spin.setValue(6.0)
    assert "Output: 280 × 280 pixels; 1 tile(s) × 50 steps." in dialog.summary_label.text()
    assert dialog.estimate(dialog.plan()) == (280, 280, 1, 280 * 280)
    assert dialog.plan().tiles == TileOptions(size=144, overlap=36)


def test_a_ticked_extent_follows_the_input_into_another_crs(dialog, tmp_path) -> None:
    """Another input in another CRS used to untick and empty the extent (the run then took the whole raster):
    it stays ticked, transformed into the new CRS, or becomes the new raster's whole extent if they do not meet."""
    from osgeo import gdal

    target, _ = geo_pair(tmp_path)  # EPSG:32633
    mercator = add_layer(gdal.Warp(str(tmp_path / "t3857.tif"), target.source(), dstSRS="EPSG:3857").GetDescription(), "t3857")
    elsewhere = add_layer(crop(str(tmp_path / "elsewhere.tif"), 48), "elsewhere")  # EPSG:32618, far from both
    box = dialog.extent_box

    def transformed(rect: QgsRectangle, source: QgsRasterLayer, destination: QgsRasterLayer) -> list[float]:
        moved = QgsCoordinateTransform(source.crs(), destination.crs(), QgsProject.instance()).transformBoundingBox(rect)
        return [moved.xMinimum(), moved.yMinimum(), moved.xMaximum(), moved.yMaximum()]

    dialog.layer_combo.setLayer(target)
    dialog.device_combo.setCurrentText("cpu")
    box.setChecked(True)  # the whole raster, untouched, as a click on the box leaves it
    dialog.layer_combo.setLayer(mercator)
    assert box.isChecked() and box.outputCrs() == mercator.crs()
    assert list(dialog.extent()) == pytest.approx(transformed(target.extent(), target, mercator), abs=1e-3)
    x0, y0 = target.extent().xMinimum(), target.extent().yMaximum()
    box.setOutputExtentFromUser(QgsRectangle(x0 + 200, y0 - 800, x0 + 1000, y0 - 200), target.crs())
    area = box.outputExtent()
    dialog.layer_combo.setLayer(target)
    assert box.isChecked() and list(dialog.extent()) == pytest.approx(transformed(area, mercator, target), abs=1e-3)
    assert dialog.message_bar.currentItem() is None

    dialog.layer_combo.setLayer(elsewhere)
    assert box.isChecked() and box.outputCrs() == elsewhere.crs() and box.outputExtent() == elsewhere.extent()
    assert "does not overlap elsewhere: it is now that raster's whole extent" in dialog.message_bar.currentItem().text()
    assert dialog.run_button.isEnabled() and "Output: 96 × 96 pixels" in dialog.summary_label.text()


def test_run_adds_a_layer_named_and_styled_like_the_input_over_the_extent(dialog, tmp_path) -> None:
    source = crop(str(tmp_path / "scene.tif"), 48)
    layer = add_layer(source, "scene")
    renderer = QgsMultiBandColorRenderer(layer.dataProvider(), 4, 3, 2)
    for band, setter, low in ((4, renderer.setRedContrastEnhancement, 300.0), (3, renderer.setGreenContrastEnhancement, 400.0),
                              (2, renderer.setBlueContrastEnhancement, 500.0)):
        enhancement = QgsContrastEnhancement(layer.dataProvider().dataType(band))
        enhancement.setContrastEnhancementAlgorithm(QgsContrastEnhancement.ContrastEnhancementAlgorithm.StretchToMinimumMaximum)
        enhancement.setMinimumValue(low)
        enhancement.setMaximumValue(low + 2000.0)
        setter(enhancement)
    layer.setRenderer(renderer)
    dialog.layer_combo.setLayer(layer)
    for band in (2, 3, 4):
        dialog.bands_combo.setItemCheckState(band - 1, Qt.CheckState.Checked)
    x0, y0 = layer.extent().xMinimum(), layer.extent().yMaximum()
    dialog.extent_box.setChecked(True)  # columns 8–39, rows 10–41 of the 20 m grid, drawn with insets
    dialog.extent_box.setOutputExtentFromUser(QgsRectangle(x0 + 8.5 * 20, y0 - 41.7 * 20, x0 + 39.2 * 20, y0 - 10.1 * 20), layer.crs())
    dialog.iterations_spin.setValue(2)
    dialog.device_combo.setCurrentText("cpu")
    task = dialog.start()
    assert task is not None
    wait_for(task)

    result = task.layer
    assert result.name() == "scene DIP ×2" and QgsProject.instance().mapLayersByName("scene DIP ×2") == [result]
    style = result.renderer()
    assert isinstance(style, QgsMultiBandColorRenderer)
    assert (style.redBand(), style.greenBand(), style.blueBand()) == (3, 2, 1)  # input bands 4, 3, 2 of (2, 3, 4)
    enhancements = (style.redContrastEnhancement(), style.greenContrastEnhancement(), style.blueContrastEnhancement())
    assert [(e.minimumValue(), e.maximumValue()) for e in enhancements] == [(300.0, 2300.0), (400.0, 2400.0), (500.0, 2500.0)]
    with rasterio.open(result.source()) as out, rasterio.open(source) as src:
        assert out.count == 3 and (out.width, out.height) == (64, 64)
        assert out.transform == src.transform * Affine.translation(8, 10) * Affine.scale(0.5)
    assert QgsSettings().value(f"{SETTINGS_GROUP}/iterations", 0, type=int) == 2  # a started run is remembered


def test_guided_run_from_the_dialog_honours_the_extent(dialog, tmp_path) -> None:
    target, guide = geo_pair(tmp_path)
    select_method(dialog, "guided")
    dialog.layer_combo.setLayer(target)
    dialog.guide_combo.setLayer(guide)
    dialog.bands_combo.setItemCheckState(0, Qt.CheckState.Checked)
    dialog.extent_box.setChecked(True)  # target columns 20–31, rows 24–35: the output starts on a target pixel edge
    dialog.extent_box.setOutputExtentFromUser(QgsRectangle(300415.0, 5799283.0, 300624.0, 5799509.0), target.crs())
    dialog.iterations_spin.setValue(2)
    dialog.device_combo.setCurrentText("cpu")
    task = dialog.build_task()
    task.finished(task.run())  # as the task manager would, without waiting for it
    assert task.error is None and task.layer.name() == "t20 guided DIP ×2"
    with rasterio.open(task.layer.source()) as out:
        assert out.transform == Affine(10.0, 0, 300400.0, 0, -10.0, 5799520.0) and (out.width, out.height) == (24, 24)


def test_removing_the_selected_layer_refreshes_bands_and_output(dialog, tmp_path) -> None:
    """With three rasters the combo moves to another layer without signalling it; the bands and the suggested
    output used to stay the removed layer's, and Run wrote the next layer into the old name."""
    six = add_layer(crop(str(tmp_path / "six.tif"), 32), "six")
    singles = [add_layer(write_raster(str(tmp_path / f"one{i}.tif"), read(S2_10M)[:1, :32, :32]), f"one{i}") for i in range(2)]
    dialog.layer_combo.setLayer(six)
    assert dialog.bands_combo.count() == 6
    QgsProject.instance().removeMapLayer(six.id())
    shown = dialog.layer_combo.currentLayer()
    assert shown in singles and dialog.bands_combo.count() == 1
    assert dialog.output_widget.filePath() == os.path.splitext(shown.source())[0] + "_dip_x2.tif"


def test_a_remembered_guide_lists_its_bands_when_the_dialog_opens(qgis_iface, empty_project, clean_settings, tmp_path) -> None:
    target, guide = geo_pair(tmp_path)
    for key, value in (("method", "guided"), ("layer", target.id()), ("guide", guide.id())):
        QgsSettings().setValue(f"{SETTINGS_GROUP}/{key}", value)
    opened = SuperResolveDialog(qgis_iface)
    try:
        assert opened.guide_combo.currentLayer() is guide and opened.guide_bands_combo.count() == 4
        assert opened.bands_combo.count() == 6
    finally:
        opened.deleteLater()


def test_a_learned_kernel_whose_files_would_replace_another_file_is_refused_before_the_run(dialog, tmp_path) -> None:
    """Knitworks keeps its learned kernel beside the output (``OUT.tif.kernel.npy``, its record and preview): a preview
    that would replace a file no earlier kernel wrote is refused by the dialog, as by the engine, before any task; a
    fixed kernel writes no kernel file and is not."""
    layer = add_layer(crop(str(tmp_path / "scene.tif"), 48), "scene")
    dialog.layer_combo.setLayer(layer)
    select_method(dialog, "knitwork")
    dialog.kernel_combo.setCurrentText("learned")
    output = tmp_path / "scene_sr.tif"
    (tmp_path / "scene_sr.tif.kernel.png").write_bytes(b"a photo")
    dialog.output_widget.setFilePath(str(output))
    with pytest.raises(InputError, match="scene_sr.tif.kernel.png of kernel file .* would replace an existing file"):
        dialog.build_task()
    dialog.kernel_combo.setCurrentText("bicubic")
    assert dialog.build_task().output_path == str(output)


def test_the_summary_refuses_what_the_run_would_refuse(dialog, tmp_path) -> None:
    """Run is disabled, with the engine's reason, for settings the run would refuse (they used to show an
    estimate and fail after Run or in the task); a fixed setting (here the overlap) enables it again."""
    layer = add_layer(crop(str(tmp_path / "scene.tif"), 48), "scene")
    dialog.layer_combo.setLayer(layer)
    dialog.device_combo.setCurrentText("cpu")
    assert dialog.run_button.isEnabled()

    def refused(reason: str) -> None:
        assert not dialog.run_button.isEnabled() and reason in dialog.summary_label.text(), dialog.summary_label.text()

    dialog.overlap_spin.setValue(4)
    dialog.tile_spin.setValue(16)
    refused("tile size 16 is too small for Deep Image Prior (DIP)")
    dialog.tile_spin.setValue(32)
    dialog.overlap_spin.setValue(16)
    refused("tile size 32 is too small for the tile overlap of 16 pixels, the default, which must be less than half the tile: "
            "lower it with tile overlap (Advanced) to 15 or less, or use tile size (Advanced) 33 or more")
    dialog.overlap_spin.setValue(4)  # the overlap box alone used to leave the old refusal in place
    assert dialog.run_button.isEnabled()
    np.save(tmp_path / "even.npy", np.ones((4, 4)))
    dialog.kernel_file_widget.setFilePath(str(tmp_path / "even.npy"))
    refused("must hold a square 2-D array of odd size")
    dialog.kernel_file_widget.setFilePath("")
    x0, y0 = layer.extent().xMinimum(), layer.extent().yMaximum()
    dialog.extent_box.setChecked(True)
    dialog.extent_box.setOutputExtentFromUser(QgsRectangle(x0 - 5000, y0 + 1000, x0 - 4000, y0 + 2000), layer.crs())
    refused("does not overlap")
    dialog.extent_box.setOutputExtentFromUser(QgsRectangle(x0, y0 - 200, x0 + 200, y0), layer.crs())
    refused("the chosen extent is 10×10 pixels, too small for Deep Image Prior (DIP)")
    dialog.extent_box.setChecked(False)
    assert dialog.run_button.isEnabled() and "Output: 96 × 96 pixels" in dialog.summary_label.text()


def test_an_extent_across_the_antimeridian_transformed_by_the_box_is_refused(dialog, tmp_path) -> None:
    """The extent box transforms an area into the raster's CRS as one box: across 180°, from EPSG:3832 onto a
    raster of longitudes 179.99–180.01, it became −179.9997–179.9997, and the run covered the raster west of 180°
    only. The box no longer says where the area came from, so the dialog refuses that shape and says to give the
    extent in the raster's CRS, which then runs on the whole area."""
    from pyproj import Transformer
    from qgis.core import QgsCoordinateReferenceSystem

    data = np.random.default_rng(0).integers(0, 3000, (1, 40, 40)).astype("uint16")
    layer = add_layer(write_raster(str(tmp_path / "fiji.tif"), data, crs="EPSG:4326",
                                   transform=Affine(0.0005, 0, 179.99, 0, -0.0005, -16.5)), "fiji")
    dialog.layer_combo.setLayer(layer)
    dialog.device_combo.setCurrentText("cpu")
    to_pdc = Transformer.from_crs(4326, 3832, always_xy=True)
    (x0, y0), (x1, y1) = to_pdc.transform(179.9905, -16.5195), to_pdc.transform(180.0095, -16.5005)
    dialog.extent_box.setChecked(True)
    dialog.extent_box.setOutputExtentFromUser(QgsRectangle(x0, y0, x1, y1), QgsCoordinateReferenceSystem("EPSG:3832"))
    assert dialog.extent_box.outputExtent().width() > 359  # what the box made of it
    with pytest.raises(InputError, match="spans nearly every longitude but stops short of ±180°"):
        dialog.extent()
    assert not dialog.run_button.isEnabled() and "spans nearly every longitude" in dialog.summary_label.text()
    dialog.extent_box.setOutputExtentFromUser(QgsRectangle(179.9905, -16.5195, 180.0095, -16.5005), layer.crs())
    assert list(dialog.extent()) == pytest.approx([179.9905, -16.5195, 180.0095, -16.5005])
    assert "spans nearly every longitude" not in dialog.summary_label.text()


def test_rasters_gdal_opens_by_name_are_inputs_as_in_processing(dialog, tmp_path) -> None:
    """A raster read from a zip (``/vsizip/…``, as QGIS opens a dropped .zip) was said to be missing; the output
    is suggested beside the zip. A dataset with no file on disk (``/vsimem/…``) gets one in the home folder."""
    import zipfile

    from osgeo import gdal

    from internal_sr.core.raster import engine_opens

    scene = crop(str(tmp_path / "scene.tif"), 48)
    with zipfile.ZipFile(tmp_path / "archive.zip", "w") as archive:
        archive.write(scene, "scene.tif")
    zipped = add_layer(f"/vsizip/{tmp_path / 'archive.zip'}/scene.tif", "scene (zip)")
    dialog.layer_combo.setLayer(zipped)
    dialog.device_combo.setCurrentText("cpu")
    assert dialog.run_button.isEnabled() and "Output: 96 × 96 pixels" in dialog.summary_label.text()
    assert dialog.output_widget.filePath() == str(tmp_path / "archive_dip_x2.tif")
    dialog.output_widget.setFilePath("relative.tif")
    assert f"(e.g. {tmp_path / 'relative.tif'})" in dialog.summary_label.text()

    gdal.Translate("/vsimem/memory.tif", scene)
    try:
        in_memory = add_layer("/vsimem/memory.tif", "in memory")
        dialog.layer_combo.setLayer(in_memory)
        assert dialog.output_widget.filePath() == os.path.join(os.path.expanduser("~"), "in memory_dip_x2.tif")
        if not engine_opens("/vsimem/memory.tif"):  # rasterio's wheels bring a GDAL with a /vsimem/ of its own
            assert "in-memory dataset of QGIS" in dialog.summary_label.text() and not dialog.run_button.isEnabled()
    finally:
        gdal.Unlink("/vsimem/memory.tif")
    gone = add_layer(scene, "gone")
    with_options = add_layer(scene + "|option:NUM_THREADS=2", "gone with options")
    os.remove(scene)  # a file deleted since it was added is still said to be missing
    for layer in (gone, with_options):  # with open options it was said to need adding without them
        dialog.layer_combo.setLayer(layer)
        expected = f"The input raster {layer.name()} does not exist (any more): its file {scene} is missing."
        assert dialog.summary_label.text() == expected and not dialog.run_button.isEnabled()


def test_output_paths_are_normalised_or_refused_by_name(dialog, tmp_path) -> None:
    layer = add_layer(crop(str(tmp_path / "scene.tif"), 48), "scene")
    dialog.layer_combo.setLayer(layer)
    dialog.device_combo.setCurrentText("cpu")
    (tmp_path / "folder").mkdir()
    refused = {
        str(tmp_path / "folder") + os.sep: "is a folder",
        "relative.tif": "Give the output's full path",
        str(tmp_path / "out.png"): "end its name in .tif, not .png",
        str(layer.source()): "is the input",
    }
    for text, reason in refused.items():
        dialog.output_widget.setFilePath(text)
        assert not dialog.run_button.isEnabled() and reason in dialog.summary_label.text(), (text, dialog.summary_label.text())
    dialog.output_widget.setFilePath(str(tmp_path / "no_extension"))
    assert dialog.plan().output == str(tmp_path / "no_extension.tif")
    dialog.output_widget.setFilePath("~/internal_sr_dialog_test.tif")
    assert dialog.plan().output == os.path.expanduser("~/internal_sr_dialog_test.tif")


def test_earlier_results_are_neither_suggested_nor_overwritten_while_open(dialog, tmp_path) -> None:
    """The suggestion skips existing files; a typed existing file is named in the summary; a file open in the
    project or being written by a running task is refused."""
    from internal_sr.ui import dialog as dialog_module

    layer = add_layer(crop(str(tmp_path / "scene.tif"), 48), "scene")
    first = str(tmp_path / "scene_dip_x2.tif")
    write_raster(first, read(S2_10M)[:1, :96, :96])
    dialog.layer_combo.setLayer(layer)
    dialog.device_combo.setCurrentText("cpu")
    assert dialog.output_widget.filePath() == str(tmp_path / "scene_dip_x2_2.tif")
    dialog.output_widget.setFilePath(first)
    assert dialog.run_button.isEnabled() and "exists and will be replaced" in dialog.summary_label.text()
    add_layer(first, "scene DIP ×2")  # the summary follows the project
    assert "is open in the project as layer scene DIP ×2" in dialog.summary_label.text() and not dialog.run_button.isEnabled()
    busy = str(tmp_path / "busy.tif")
    (tmp_path / "link").symlink_to(tmp_path, target_is_directory=True)
    original = dialog_module.outputs_being_written
    dialog_module.outputs_being_written = lambda: {dialog_module.output_key(busy)}
    try:
        dialog.output_widget.setFilePath(busy)
        assert "A running Internal SR task is writing" in dialog.summary_label.text()
        dialog.output_widget.setFilePath(str(tmp_path / "link" / "busy.tif"))  # the same file, not yet written
        assert "A running Internal SR task is writing" in dialog.summary_label.text()
    finally:
        dialog_module.outputs_being_written = original



def test_an_output_whose_loss_curve_is_open_in_the_project_is_refused(dialog, tmp_path) -> None:
    """The run replaces the loss curve beside its output: one the user had opened on the map was replaced too."""
    from osgeo import gdal

    source = crop(str(tmp_path / "scene.tif"), 48)
    add_layer(source, "scene")
    dialog.device_combo.setCurrentText("cpu")
    out = str(tmp_path / "result.tif")
    dialog.output_widget.setFilePath(out)
    assert dialog.run_button.isEnabled()
    gdal.Translate(out + ".loss.png", source, format="PNG", bandList=[1], outputType=gdal.GDT_Byte).FlushCache()
    add_layer(out + ".loss.png", "loss curve")
    assert f"{out}.loss.png is open in the project as layer loss curve" in dialog.summary_label.text()
    assert not dialog.run_button.isEnabled()

def test_quality_labels_show_steps_and_an_iterations_override_disables_them(dialog, tmp_path) -> None:
    add_layer(crop(str(tmp_path / "scene.tif"), 48), "scene")
    labels = [dialog.quality_combo.itemText(i) for i in range(dialog.quality_combo.count())]
    assert labels == [f"{name} ({QUALITY_PRESETS['dip'][key]} steps per tile)" for key, name in
                      (("fast", "Fast"), ("balanced", "Balanced"), ("best", "Best"))]
    dialog.iterations_spin.setValue(50)
    assert not dialog.quality_combo.isEnabled() and "× 50 steps" in dialog.summary_label.text()
    dialog.iterations_spin.setValue(0)
    assert dialog.quality_combo.isEnabled()


def test_closing_remembers_the_choices_and_start_is_said_in_the_main_message_bar(dialog, qgis_iface, messages, tmp_path) -> None:
    dialog.scale_spin.setValue(4)
    dialog.reject()
    assert QgsSettings().value(f"{SETTINGS_GROUP}/scale", 0, type=int) == 4
    layer = add_layer(crop(str(tmp_path / "scene.tif"), 48), "scene")
    dialog.layer_combo.setLayer(layer)
    dialog.device_combo.setCurrentText("cpu")
    dialog.iterations_spin.setValue(1)
    task = dialog.start()
    assert task is not None
    wait_for(task)
    assert any("started; progress is in the task manager" in m for m in messages[Qgis.MessageLevel.Info])


def test_kernel_choices_and_guide_crs_are_judged_as_the_run_would(dialog, tmp_path) -> None:
    """Guided DIP with bands that carry no Sentinel-2 names is refused under the sentinel2 kernels and runs
    once gaussian ones are chosen (the kernel boxes used to leave the old verdict); a guide in another CRS is
    named as such, not as a guide that is not finer."""
    from helpers import S2_20M_SAME_AREA

    target = add_layer(write_raster(str(tmp_path / "t.tif"), read(S2_20M_SAME_AREA), transform=Affine(20.0, 0, 300000.0, 0, -20.0, 5800000.0)), "t")
    guide = add_layer(write_raster(str(tmp_path / "g.tif"), read(S2_10M)), "g")
    select_method(dialog, "guided")
    dialog.layer_combo.setLayer(target)
    dialog.guide_combo.setLayer(guide)
    dialog.device_combo.setCurrentText("cpu")
    assert "needs Sentinel-2 band names" in dialog.summary_label.text() and not dialog.run_button.isEnabled()
    assert dialog.summary_label.text().endswith(  # the guide's bands are unnamed: its own setting is named
        "set the Guide blur kernel to another kernel, such as bicubic or the gaussian Blur kernel with its Gaussian sigma")
    dialog.kernel_combo.setCurrentText("gaussian")
    assert "Guide blur kernel" in dialog.summary_label.text() and not dialog.run_button.isEnabled()
    dialog.guide_kernel_combo.setCurrentText("gaussian")
    assert dialog.run_button.isEnabled(), dialog.summary_label.text()
    wgs84 = add_layer(write_raster(str(tmp_path / "g4326.tif"), read(S2_10M), crs="EPSG:4326",
                                   transform=Affine(0.0001, 0, 15.0, 0, -0.0001, 52.0)), "g4326")
    dialog.guide_combo.setLayer(wgs84)
    assert "differ: reproject one onto the other" in dialog.summary_label.text() and not dialog.run_button.isEnabled()


def test_a_layer_left_in_the_hidden_guide_box_is_not_overwritten(dialog, tmp_path) -> None:
    """In DIP mode the guide box is hidden but keeps a layer: typing that layer's file as the output is refused
    like any file open in the project (it used to pass as if it were an input the engine would name)."""
    target, guide = geo_pair(tmp_path)
    dialog.layer_combo.setLayer(target)
    dialog.guide_combo.setLayer(guide)
    dialog.device_combo.setCurrentText("cpu")
    dialog.output_widget.setFilePath(guide.source())
    assert "is open in the project as layer g10" in dialog.summary_label.text() and not dialog.run_button.isEnabled()


def test_engine_advice_names_the_dialogs_settings(dialog, tmp_path) -> None:
    """A KernelGAN ×2 kernel file at ×3: the summary and the refused start word the engine's advice in the dialog's
    settings (``ui.task.DIALOG_TERMS``); they showed the command line's gaussian:SIGMA, which no box takes."""
    from internal_sr.core.kernels import save_kernel_file

    layer = add_layer(crop(str(tmp_path / "scene.tif"), 48), "scene")
    kernel = str(tmp_path / "k2.npy")
    save_kernel_file(kernel, np.outer([1.0, 2.0, 1.0], [1.0, 2.0, 1.0]), 2)
    dialog.layer_combo.setLayer(layer)
    dialog.device_combo.setCurrentText("cpu")
    dialog.kernel_file_widget.setFilePath(kernel)
    dialog.scale_spin.setValue(3)
    advice = "give a parametric kernel for ×3 (e.g. the gaussian Blur kernel with its Gaussian sigma)"
    assert advice in dialog.summary_label.text() and not dialog.run_button.isEnabled()
    assert dialog.start() is None and advice in dialog.message_bar.currentItem().text()
