"""The "Super-resolve raster" dialog: pick a method, rasters and settings, start a background task.

Methods: Deep Image Prior and Neural Knitworks (one raster refined by a scale) and guided DIP (target
bands sharpened onto the grid of a finer guide raster). An optional extent (the map canvas extent, a
layer's or a rectangle drawn on the map) limits the run to an area of interest. A quality preset picks
the steps per tile (``core.config.QUALITY_PRESETS``); the run time is estimated before starting from
the measured figures of ``algorithms.run_times``. The last choices are remembered in ``QgsSettings``.

Built in code with ``qgis.PyQt`` only and fully scoped enums, so it runs on Qt5 and Qt6 QGIS alike.
The job runs in a :class:`~.task.CoreJobTask` through the QGIS task manager; the dialog stays free.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any

from qgis.core import (
    Qgis,
    QgsApplication,
    QgsCoordinateReferenceSystem,
    QgsMapLayerProxyModel,
    QgsProject,
    QgsProviderRegistry,
    QgsRasterLayer,
    QgsRectangle,
    QgsSettings,
)
from qgis.gui import (
    QgsCheckableComboBox,
    QgsCollapsibleGroupBox,
    QgsExtentGroupBox,
    QgsFileWidget,
    QgsMapLayerComboBox,
    QgsMessageBar,
)
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtGui import QIcon
from qgis.PyQt.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QLabel,
    QSizePolicy,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ..algorithms.base import (
    DEFAULT_SIGMA,
    DEVICES,
    GUIDED_KERNELS,
    ICON_PATH,
    KERNELS,
    MAX_THREADS,
    assigned_crs,
    dataset_file,
    engine_refusal,
    gdal_dataset_name,
    kernel_spec,
    layer_extent,
    open_in_project,
)
from ..algorithms.run_times import duration, estimate_seconds, presets_text, run_steps
from ..core.config import (
    GEOTIFF_EXTENSIONS,
    INT32_MAX,
    LEARNED_KERNEL,
    MAX_SCALE,
    QUALITIES,
    QUALITY_PRESETS,
    DIPConfig,
    GuidedDIPConfig,
    IOOptions,
    KnitworkConfig,
    TileOptions,
    warm_step_count,
)
from ..core.errors import InputError
from .messages import notify
from .task import CoreJobTask, dialog_line, output_key, outputs_being_written

#: (key, label) of each method; the key indexes ``QUALITY_PRESETS`` and ``run_times.STEP_SECONDS``.
METHODS = (("dip", "Deep Image Prior"), ("guided", "Guided DIP: sharpen with finer bands"), ("knitwork", "Neural Knitworks"))
#: The engine configuration of each method (its defaults, warm start included, are the dialog's).
METHOD_CONFIGS = {"dip": DIPConfig, "knitwork": KnitworkConfig, "guided": GuidedDIPConfig}
#: Kernel names offered per method, the first being the default.
METHOD_KERNELS = {"dip": KERNELS, "knitwork": (*KERNELS, LEARNED_KERNEL), "guided": GUIDED_KERNELS}
#: Where the dialog keeps the last choices in ``QgsSettings``.
SETTINGS_GROUP = "internal_sr/dialog"
#: How the quality presets are shown (with their steps per tile).
QUALITY_LABELS = {"fast": "Fast", "balanced": "Balanced", "best": "Best"}
#: Estimated run times above this (seconds) come with advice to shorten the run.
LONG_RUN_SECONDS = 24 * 3600


@dataclass
class RunPlan:
    """The checked settings of one run (``SuperResolveDialog.plan``): what ``build_task`` starts.

    width, height: the input (target) pixels processed, the extent applied; scale: the refinement factor
    (for guided DIP, the grids' ratio); tiles: those the run is solved in (the engine's check: ``config.tiles``,
    grown where the kernel reaches past a tile's overlap, ``core.tiling.kernel_tiles``); guide, guide_io: ``None``
    unless guided DIP.
    """

    layer: QgsRasterLayer
    output: str
    config: Any
    io: IOOptions
    width: int
    height: int
    scale: int
    tiles: TileOptions
    guide: QgsRasterLayer | None = None
    guide_io: IOOptions | None = None


def _raster_filter() -> Any:
    """The layer-combo filter for raster layers (moved to ``Qgis.LayerFilter`` in QGIS 3.34)."""
    filters = getattr(Qgis, "LayerFilter", None)
    return filters.RasterLayer if filters is not None else QgsMapLayerProxyModel.Filter.RasterLayer


def remembered(settings: QgsSettings, key: str, default: Any) -> Any:
    """The choice remembered under ``key`` (in ``SETTINGS_GROUP``) as a value of ``default``'s type, or
    ``default`` when there is none or it does not convert: a hand edit or another version's format (a scale
    ``"x2"``, a sigma ``"0,7"``, an empty number) must not keep the dialog from opening."""
    try:
        value = settings.value(f"{SETTINGS_GROUP}/{key}", default, type=type(default))
    except TypeError:
        return default
    return value if isinstance(value, type(default)) else default  # a list stays a list whatever the type


def remembered_area(settings: QgsSettings) -> tuple[QgsRectangle, QgsCoordinateReferenceSystem] | None:
    """The ticked extent remembered by ``SuperResolveDialog.save_settings``: its area (``extent_area``:
    ``xmin,ymin,xmax,ymax``) in its CRS (``extent_crs``: WKT, empty for a raster without georeferencing);
    ``None`` when it was not ticked, or the area is missing, damaged or empty."""
    if not remembered(settings, "extent", False):
        return None
    try:
        area = QgsRectangle(*(float(edge) for edge in remembered(settings, "extent_area", "").split(",")))
    except (TypeError, ValueError):
        return None
    if area.isEmpty():
        return None
    return area, QgsCoordinateReferenceSystem.fromWkt(remembered(settings, "extent_crs", ""))


def output_base(layer: QgsRasterLayer) -> str:
    """Where an output made from ``layer`` goes by default, as a path without extension: beside the file the
    layer reads, after its name (``/data/a.zip`` for ``/vsizip//data/a.zip/b.tif``: ``/data/a``); for a dataset
    with no file on disk (``/vsicurl/…``), in the project's folder (else the home folder) after the layer's name."""
    file = dataset_file(layer.source())
    if file is not None:
        return os.path.splitext(file)[0]
    folder = QgsProject.instance().homePath() or os.path.expanduser("~")
    return os.path.join(folder, re.sub(r'[\\/:*?"<>|]+', "_", layer.name()))


def import_engine() -> None:
    """Import the engine modules the dialog uses, torch among them, before any widget is made: a package
    that is installed but fails to import raises here (``ImportError``, ``OSError``)."""
    from ..core import device, grid, tiling  # noqa: F401


class SuperResolveDialog(QDialog):
    """Settings for one run; **Run** starts it as a background task.

    :attr:`tasks` keeps the started tasks alive until the task manager is done with them.
    """

    def __init__(self, iface: Any | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.iface = iface
        self.tasks: list[CoreJobTask] = []
        self._suggested_output = ""
        self._devices: dict[str, str] | None = None
        self._filled_for: dict[str, str] = {}  # band combo name → id of the layer its bands are
        #: The extent remembered ticked (``remembered_area``), until ``_extent_for`` applies it to the first input.
        self._remembered_area: tuple[QgsRectangle, QgsCoordinateReferenceSystem] | None = None
        self.setWindowTitle(self.tr("Internal SR: super-resolve raster"))
        self.setWindowIcon(QIcon(ICON_PATH))
        self._build()
        self.device_label.setText(self.tr("Detected: {}").format("; ".join(self.devices().values())))
        self.restore_settings()
        self._method_changed()

    # -- layout -----------------------------------------------------------------------------

    def _raster_combo(self) -> QgsMapLayerComboBox:
        combo = QgsMapLayerComboBox(self)
        combo.setFilters(_raster_filter())
        combo.setExcludedProviders([key for key in QgsProviderRegistry.instance().providerList() if key != "gdal"])
        return combo

    def _bands_combo(self, tooltip: str) -> QgsCheckableComboBox:
        combo = QgsCheckableComboBox(self)
        if hasattr(combo, "setDefaultText"):
            combo.setDefaultText(self.tr("All bands"))
        combo.setToolTip(tooltip)
        return combo

    def _build(self) -> None:
        self.message_bar = QgsMessageBar(self)
        self.message_bar.setSizePolicy(QSizePolicy.Policy.Minimum, QSizePolicy.Policy.Fixed)

        self.method_combo = QComboBox(self)
        for key, label in METHODS:
            self.method_combo.addItem(self.tr(label), key)
        self.method_combo.setToolTip(
            self.tr("Deep Image Prior and Neural Knitworks refine one raster by the scale; guided DIP sharpens "
                    "low-resolution bands with finer bands of the same scene (e.g. Sentinel-2 20 m with 10 m).")
        )
        self.method_combo.currentIndexChanged.connect(self._method_changed)

        self.layer_combo = self._raster_combo()
        self.layer_combo.setToolTip(self.tr("The raster to super-resolve (guided DIP: the low-resolution target bands)."))
        self.layer_combo.layerChanged.connect(self._layer_changed)
        self.bands_combo = self._bands_combo(self.tr("Bands to process; none ticked means every band."))
        self.guide_combo = self._raster_combo()
        self.guide_combo.setToolTip(self.tr("Finer bands of the same scene, at least twice as fine (e.g. Sentinel-2 10 m)."))
        self.guide_combo.layerChanged.connect(self._guide_changed)
        self.guide_bands_combo = self._bands_combo(self.tr("Guide bands to use; none ticked means every band."))

        self.scale_spin = QSpinBox(self)
        self.scale_spin.setRange(2, MAX_SCALE)
        self.scale_spin.setValue(2)
        self.scale_spin.setPrefix("×")
        self.scale_spin.setToolTip(self.tr("How many times finer the output grid is: ×2 halves the pixel size."))
        self.scale_spin.valueChanged.connect(self._settings_changed)

        self.extent_box = QgsExtentGroupBox(self)
        self.extent_box.setTitleBase(self.tr("Extent: process only this area"))
        self.extent_box.setCheckable(True)
        self.extent_box.setChecked(False)
        if self.iface is not None and self.iface.mapCanvas() is not None:
            self.extent_box.setMapCanvas(self.iface.mapCanvas())
        self.extent_box.setToolTip(
            self.tr("Unticked: the whole raster. Ticked: the map canvas extent, a layer's extent or a rectangle drawn "
                    "on the map, enlarged to whole input pixels.")
        )
        self.extent_box.extentChanged.connect(self._settings_changed)
        self.extent_box.toggled.connect(self._settings_changed)

        self.quality_combo = QComboBox(self)
        for quality in QUALITIES:
            self.quality_combo.addItem(quality, quality)  # labelled with the method's steps by _method_changed
        self.quality_combo.setCurrentIndex(QUALITIES.index("balanced"))  # every method's default
        self.quality_combo.currentIndexChanged.connect(self._settings_changed)

        self.kernel_combo = QComboBox(self)
        self.kernel_combo.setToolTip(
            self.tr("How the sensor blurs the scene before sampling it: bicubic suits most resampled products; "
                    "gaussian models an optical sensor (sigma below); sentinel2 uses each band's MTF.")
        )
        self.kernel_combo.currentTextChanged.connect(self._kernel_changed)
        self.guide_kernel_combo = QComboBox(self)
        self.guide_kernel_combo.addItems(list(GUIDED_KERNELS))
        self.guide_kernel_combo.setToolTip(self.tr("How the sensor blurs the guide bands."))
        self.guide_kernel_combo.currentTextChanged.connect(self._kernel_changed)
        self.sigma_spin = QDoubleSpinBox(self)
        self.sigma_spin.setRange(0.05, 10.0)
        self.sigma_spin.setSingleStep(0.05)
        self.sigma_spin.setValue(DEFAULT_SIGMA)
        self.sigma_spin.setToolTip(self.tr("Gaussian standard deviation, in input pixels"))

        self.device_combo = QComboBox(self)
        self.device_combo.addItems(list(DEVICES))
        self.device_combo.setToolTip(self.tr("auto: the GPU when there is one, else the CPU."))
        self.device_combo.currentIndexChanged.connect(self._settings_changed)
        self.device_label = QLabel(self)
        self.device_label.setWordWrap(True)
        self.float32_check = QCheckBox(self.tr("Write Float32 (otherwise keep the input data type)"), self)
        self.float32_check.setToolTip(self.tr("Integer inputs are otherwise rounded and clipped to their type's range."))

        self.output_widget = QgsFileWidget(self)
        self.output_widget.setStorageMode(QgsFileWidget.StorageMode.SaveFile)
        self.output_widget.setFilter(self.tr("GeoTIFF (*.tif *.tiff)"))
        self.output_widget.setDialogTitle(self.tr("Super-resolved raster"))
        self.output_widget.setToolTip(self.tr("The GeoTIFF to write (a full path; .tif is added when there is no extension)."))
        self.output_widget.fileChanged.connect(self._update_summary)

        self.kernel_file_widget = QgsFileWidget(self)
        self.kernel_file_widget.setStorageMode(QgsFileWidget.StorageMode.GetFile)
        self.kernel_file_widget.setFilter(self.tr("NumPy kernel (*.npy)"))
        self.kernel_file_widget.setToolTip(
            self.tr("Optional 2-D kernel of odd size (e.g. estimated by KernelGAN); replaces the blur kernel")
        )
        self.kernel_file_widget.fileChanged.connect(self._update_summary)
        self.iterations_spin = QSpinBox(self)
        self.iterations_spin.setRange(0, 100000)
        self.iterations_spin.setSingleStep(100)
        self.iterations_spin.setSpecialValueText(self.tr("from the quality preset"))
        self.iterations_spin.setToolTip(self.tr("Optimisation steps per tile; any value but 0 overrides the quality preset."))
        self.iterations_spin.valueChanged.connect(self._settings_changed)
        self.seed_spin = QSpinBox(self)
        self.seed_spin.setRange(0, INT32_MAX)
        self.seed_spin.setToolTip(self.tr("The same seed on the same device gives the same output."))
        self.tile_spin = QSpinBox(self)
        self.tile_spin.setRange(16, 4096)
        self.tile_spin.setValue(TileOptions().size)
        self.tile_spin.setToolTip(self.tr("Input pixels per tile edge: smaller tiles need less memory. 128, the default, "
                                          "grows where a wide blur kernel needs, typed or not; another size too small "
                                          "for it is refused."))
        self.tile_spin.valueChanged.connect(self._settings_changed)
        self.overlap_spin = QSpinBox(self)
        self.overlap_spin.setRange(0, 2048)
        self.overlap_spin.setValue(TileOptions().overlap)
        self.overlap_spin.setToolTip(self.tr("Input pixels shared by neighbouring tiles, blended to hide seams; raised to "
                                             "twice a wide blur kernel's reach past a tile's side where less, whatever "
                                             "value is set."))
        self.overlap_spin.valueChanged.connect(self._settings_changed)
        self.threads_spin = QSpinBox(self)
        self.threads_spin.setRange(0, MAX_THREADS)
        self.threads_spin.setSpecialValueText(self.tr("automatic (PyTorch's choice)"))
        self.threads_spin.setToolTip(self.tr(
            "PyTorch's CPU threads for the run. Automatic: PyTorch's own choice (OMP_NUM_THREADS, else the cores), the "
            "same on every run of this machine. On a machine busy with other work use 1, or as many as cores are idle: "
            "threads that share a core with other work wait for each other and can make a run many times slower (the "
            "log warns when the CPUs look busy). The same seed with the same thread count gives the same output."))
        self.threads_spin.valueChanged.connect(self._settings_changed)
        advanced = QgsCollapsibleGroupBox(self.tr("Advanced"), self)
        advanced.setCollapsed(True)
        advanced_form = QFormLayout(advanced)
        advanced_form.addRow(self.tr("Kernel file (.npy)"), self.kernel_file_widget)
        advanced_form.addRow(self.tr("Iterations"), self.iterations_spin)
        advanced_form.addRow(self.tr("Random seed"), self.seed_spin)
        advanced_form.addRow(self.tr("Tile size (input pixels)"), self.tile_spin)
        advanced_form.addRow(self.tr("Tile overlap (input pixels)"), self.overlap_spin)
        advanced_form.addRow(self.tr("CPU threads"), self.threads_spin)

        self.summary_label = QLabel(self)
        self.summary_label.setWordWrap(True)
        self.summary_label.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)

        self.form = QFormLayout()
        self.form.setLabelAlignment(Qt.AlignmentFlag.AlignLeft)
        self.form.addRow(self.tr("Method"), self.method_combo)
        self.form.addRow(self.tr("Input raster"), self.layer_combo)
        self.form.addRow(self.tr("Bands"), self.bands_combo)
        self.form.addRow(self.tr("Guide raster"), self.guide_combo)
        self.form.addRow(self.tr("Guide bands"), self.guide_bands_combo)
        self.form.addRow(self.tr("Scale factor"), self.scale_spin)
        self.form.addRow(self.tr("Quality"), self.quality_combo)
        self.form.addRow(self.tr("Blur kernel"), self.kernel_combo)
        self.form.addRow(self.tr("Guide blur kernel"), self.guide_kernel_combo)
        self.form.addRow(self.tr("Gaussian sigma"), self.sigma_spin)
        self.form.addRow(self.tr("Device"), self.device_combo)
        self.form.addRow("", self.device_label)
        self.form.addRow("", self.float32_check)
        self.form.addRow(self.tr("Output GeoTIFF"), self.output_widget)

        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        self.run_button = self.buttons.addButton(self.tr("Run"), QDialogButtonBox.ButtonRole.AcceptRole)
        self.run_button.setToolTip(self.tr("Start the run in the background; progress is in the task manager."))
        self.buttons.accepted.connect(self.start)
        self.buttons.rejected.connect(self.reject)
        self.finished.connect(self.save_settings)
        QgsProject.instance().layersRemoved.connect(self._layers_removed)
        QgsProject.instance().layersAdded.connect(self._settings_changed)
        for combo in (self.bands_combo, self.guide_bands_combo):
            combo.checkedItemsChanged.connect(self._settings_changed)
        self.sigma_spin.valueChanged.connect(self._settings_changed)

        layout = QVBoxLayout(self)
        layout.addWidget(self.message_bar)
        layout.addLayout(self.form)
        layout.addWidget(self.extent_box)
        layout.addWidget(advanced)
        layout.addWidget(self.summary_label)
        layout.addWidget(self.buttons)

    def _set_row_visible(self, field: QWidget, visible: bool) -> None:
        """Show or hide a form row (``QFormLayout.setRowVisible`` exists only from Qt 6.4)."""
        field.setVisible(visible)
        label = self.form.labelForField(field)
        if label is not None:
            label.setVisible(visible)

    # -- state ------------------------------------------------------------------------------

    def method(self) -> str:
        """The selected method's key: ``dip``, ``guided`` or ``knitwork``."""
        return self.method_combo.currentData()

    def quality(self) -> str:
        return self.quality_combo.currentData()

    def iterations(self) -> int:
        """Steps per tile: the Advanced override, else the quality preset's for the method."""
        return self.iterations_spin.value() or QUALITY_PRESETS[self.method()][self.quality()]

    def selected_bands(self, combo: QgsCheckableComboBox | None = None) -> tuple[int, ...] | None:
        """The ticked bands (1-based) of ``combo`` (default: the input's), or ``None`` for every band."""
        bands = tuple(int(band) for band in (combo or self.bands_combo).checkedItemsData())
        return tuple(sorted(bands)) or None

    def extent(self) -> tuple[float, float, float, float] | None:
        """The ticked extent in the input (target) raster's CRS as (xmin, ymin, xmax, ymax), else ``None``."""
        if not self.extent_box.isChecked():
            return None
        rect = self.extent_box.outputExtent()
        layer = self.layer_combo.currentLayer()
        if rect.isNull() or rect.isEmpty() or layer is None:
            return None
        return layer_extent(layer, rect)  # transformed by the box out of sight: a wrapped box is refused

    def devices(self) -> dict[str, str]:
        """What PyTorch can use here (``core.device.detected_devices``), asked once."""
        if self._devices is None:
            from ..core.device import detected_devices  # imports torch: only when the dialog is built

            self._devices = detected_devices()
        return self._devices

    def threads(self) -> int | None:
        """The CPU threads the run sets (Advanced), ``None``: automatic."""
        return self.threads_spin.value() or None

    def run_threads(self) -> int:
        """The CPU threads the run will use: Advanced's count, else PyTorch's own (automatic)."""
        import torch

        return self.threads() or torch.get_num_threads()

    # -- settings ---------------------------------------------------------------------------

    def save_settings(self, *_result: int) -> None:
        """Remember the current choices (layers by id) in ``QgsSettings``; done whenever the dialog closes."""
        settings = QgsSettings()
        area = self.extent_box.outputExtent()
        values = {
            "method": self.method(),
            "quality": self.quality(),
            "scale": self.scale_spin.value(),
            "kernel": self.kernel_combo.currentText(),
            "guide_kernel": self.guide_kernel_combo.currentText(),
            "sigma": self.sigma_spin.value(),
            "device": self.device_combo.currentText(),
            "float32": self.float32_check.isChecked(),
            "iterations": self.iterations_spin.value(),
            "seed": self.seed_spin.value(),
            "tile": self.tile_spin.value(),
            "overlap": self.overlap_spin.value(),
            "threads": self.threads_spin.value(),
            "extent": self.extent_box.isChecked(),
            "extent_area": ",".join(repr(edge) for edge in (area.xMinimum(), area.yMinimum(), area.xMaximum(), area.yMaximum())),
            "extent_crs": self.extent_box.outputCrs().toWkt(),
            "layer": self.layer_combo.currentLayer().id() if self.layer_combo.currentLayer() else "",
            "guide": self.guide_combo.currentLayer().id() if self.guide_combo.currentLayer() else "",
        }
        for key, value in values.items():
            settings.setValue(f"{SETTINGS_GROUP}/{key}", value)

    def restore_settings(self) -> None:
        """Apply the choices remembered by :meth:`save_settings` (absent or damaged ones keep the defaults)."""
        settings = QgsSettings()

        def value(key: str, default: Any) -> Any:
            return remembered(settings, key, default)

        for combo, key in ((self.method_combo, "method"), (self.quality_combo, "quality")):
            index = combo.findData(value(key, combo.currentData()))
            if index >= 0:
                combo.setCurrentIndex(index)
        self._fill_kernels()
        self.scale_spin.setValue(value("scale", self.scale_spin.value()))
        self.kernel_combo.setCurrentText(value("kernel", self.kernel_combo.currentText()))
        self.guide_kernel_combo.setCurrentText(value("guide_kernel", self.guide_kernel_combo.currentText()))
        self.sigma_spin.setValue(value("sigma", self.sigma_spin.value()))
        self.device_combo.setCurrentText(value("device", self.device_combo.currentText()))
        self.float32_check.setChecked(value("float32", False))
        self.iterations_spin.setValue(value("iterations", 0))
        self.seed_spin.setValue(value("seed", 0))
        self.tile_spin.setValue(value("tile", self.tile_spin.value()))
        self.overlap_spin.setValue(value("overlap", self.overlap_spin.value()))
        self.threads_spin.setValue(value("threads", 0))
        self._remembered_area = remembered_area(settings)
        self.extent_box.setChecked(self._remembered_area is not None)  # applied to the input by _extent_for
        for combo, key in ((self.layer_combo, "layer"), (self.guide_combo, "guide")):
            layer = QgsProject.instance().mapLayer(value(key, ""))
            if isinstance(layer, QgsRasterLayer):
                combo.setLayer(layer)

    # -- reactions --------------------------------------------------------------------------

    def _fill_kernels(self) -> None:
        """Offer the kernels of the selected method, keeping the current one when it is among them."""
        current = self.kernel_combo.currentText()
        options = METHOD_KERNELS[self.method()]
        self.kernel_combo.blockSignals(True)
        self.kernel_combo.clear()
        self.kernel_combo.addItems(list(options))
        self.kernel_combo.setCurrentText(current if current in options else options[0])
        self.kernel_combo.blockSignals(False)

    def _method_changed(self) -> None:
        guided = self.method() == "guided"
        for field in (self.guide_combo, self.guide_bands_combo, self.guide_kernel_combo):
            self._set_row_visible(field, guided)
        self._set_row_visible(self.scale_spin, not guided)
        self.form.labelForField(self.layer_combo).setText(self.tr("Target raster") if guided else self.tr("Input raster"))
        self.quality_combo.setToolTip(self.tr("Optimisation steps per tile: {}").format(presets_text(self.method())))
        for index, quality in enumerate(QUALITIES):
            self.quality_combo.setItemText(index, self.tr("{} ({} steps per tile)").format(
                self.tr(QUALITY_LABELS[quality]), QUALITY_PRESETS[self.method()][quality]))
        self._fill_kernels()
        self._kernel_changed()
        self._guide_changed(self.guide_combo.currentLayer())
        self._layer_changed(self.layer_combo.currentLayer())

    def _layer_changed(self, layer: Any) -> None:
        if self._fill_bands("bands", self.bands_combo, layer):
            self.output_widget.setFilePath("")  # another input: a fresh suggestion, not the last input's path
            if isinstance(layer, QgsRasterLayer):
                self._extent_for(layer)
        self._settings_changed()

    def _extent_for(self, layer: QgsRasterLayer) -> None:
        """Make the extent box ``layer``'s: its extent and CRS. A ticked extent stays ticked, transformed into
        ``layer``'s CRS, or becomes ``layer``'s whole extent when it does not overlap ``layer`` (said in the
        message bar, unless it is the extent remembered from the last session, ``_remembered_area``, which the
        dialog opens with). ``QgsExtentGroupBox.setOutputCrs`` alone unticked and emptied it on a change of CRS:
        the box's inner widget still took the extent for unset when the box had been ticked since."""
        box = self.extent_box
        remembered, self._remembered_area = self._remembered_area, None
        ticked = box.isChecked()
        area, crs = remembered or (box.outputExtent(), box.outputCrs())
        box.setOriginalExtent(layer.extent(), layer.crs())
        box.setCurrentExtent(layer.extent(), layer.crs())
        box.setOutputCrs(layer.crs())
        if not ticked:
            return
        box.setChecked(True)
        box.setOutputExtentFromUser(area, crs)  # transformed into the output CRS, the layer's
        if not box.outputExtent().intersects(layer.extent()):
            box.setOutputExtentFromOriginal()
            if remembered is not None:
                return
            self.message_bar.pushMessage(
                self.tr("Extent"),
                self.tr("The extent does not overlap {}: it is now that raster's whole extent.").format(layer.name()),
                Qgis.MessageLevel.Info,
                5,
            )

    def _guide_changed(self, layer: Any) -> None:
        self._fill_bands("guide bands", self.guide_bands_combo, layer)
        self._settings_changed()

    def _layers_removed(self, _ids: list[str]) -> None:
        """A removed layer may have been selected: the combos then show another one without saying so."""
        self._guide_changed(self.guide_combo.currentLayer())
        self._layer_changed(self.layer_combo.currentLayer())

    def _fill_bands(self, name: str, combo: QgsCheckableComboBox, layer: Any) -> bool:
        """List ``layer``'s bands in ``combo`` unless they are listed already; whether they were (re)filled."""
        layer_id = layer.id() if isinstance(layer, QgsRasterLayer) else ""
        if self._filled_for.get(name) == layer_id and name in self._filled_for:
            return False
        self._filled_for[name] = layer_id
        combo.clear()
        if isinstance(layer, QgsRasterLayer):
            for band in range(1, layer.bandCount() + 1):
                combo.addItemWithCheckState(layer.bandName(band), Qt.CheckState.Unchecked, band)
        return True

    def _kernel_changed(self, _name: str = "") -> None:
        self.sigma_spin.setEnabled("gaussian" in (self.kernel_combo.currentText(), self.guide_kernel_combo.currentText()))
        self._settings_changed()

    def _settings_changed(self, *_args: Any) -> None:
        self.quality_combo.setEnabled(self.iterations_spin.value() == 0)
        self._refresh_output()
        self._update_summary()

    def _refresh_output(self) -> None:
        """Suggest an output path unless the user has chosen one."""
        layer = self.layer_combo.currentLayer()
        output = self.output_widget.filePath()
        if isinstance(layer, QgsRasterLayer) and (not output or output == self._suggested_output):
            self._suggested_output = self._suggest_output(layer)
            self.output_widget.setFilePath(self._suggested_output)

    def _suggest_output(self, layer: QgsRasterLayer) -> str:
        """``<input folder>/<input name>_<method>_x<scale>.tif`` (:func:`output_base`) for rasters GDAL opens by
        name (``_2``, ``_3``, … added while that file exists or is taken, so a suggestion never replaces an
        earlier result), else empty."""
        if not gdal_dataset_name(layer.source()):
            return ""
        stem = f"{output_base(layer)}_{self.method()}_x{self.scale() or ''}"
        path, number = f"{stem}.tif", 1
        while os.path.exists(path) or self._taken(path, ()):
            number += 1
            path = f"{stem}_{number}.tif"
        return path

    def guide_scale(self) -> int | None:
        """The ratio of the target's to the guide's pixel size, rounded (``None`` without both layers)."""
        target, guide = self.layer_combo.currentLayer(), self.guide_combo.currentLayer()
        if not isinstance(target, QgsRasterLayer) or not isinstance(guide, QgsRasterLayer) or guide.rasterUnitsPerPixelX() <= 0:
            return None
        return round(target.rasterUnitsPerPixelX() / guide.rasterUnitsPerPixelX())

    def scale(self) -> int | None:
        """The refinement factor: the scale box, or for guided DIP the grids' ratio (``None`` unless the
        guide's pixels are at least twice as fine as the target's)."""
        if self.method() != "guided":
            return self.scale_spin.value()
        scale = self.guide_scale()
        return scale if scale is not None and scale >= 2 else None

    def estimate(self, plan: RunPlan) -> tuple[int, int, int, int]:
        """(output width, output height, tiles, output pixels per tile) of ``plan``, in the tiles the run uses."""
        from ..core.tiling import tile_count

        tiles = plan.tiles
        count = tile_count(plan.width, plan.height, tiles)
        tile_pixels = min(tiles.size, plan.width) * min(tiles.size, plan.height) * plan.scale**2
        return plan.width * plan.scale, plan.height * plan.scale, count, tile_pixels

    def _update_summary(self, *_args: Any) -> None:
        """Show the run-time estimate, or what to change first (then **Run** is disabled)."""
        try:
            plan = self.plan(probe=False)
        except Exception as error:  # InputError, or anything unforeseen: one line, never an error dialog per keystroke
            self.run_button.setEnabled(False)
            self.summary_label.setText(dialog_line(error))
            return
        self.run_button.setEnabled(True)
        self.summary_label.setText(self._estimate_text(plan))

    def showEvent(self, event: Any) -> None:  # noqa: N802
        """Reopened after a run: suggest a fresh output (the last one is now a result) and check again."""
        super().showEvent(event)
        self._settings_changed()

    def _taken(self, path: str, inputs: tuple[QgsRasterLayer, ...]) -> str | None:
        """Why ``path`` cannot be an output although no engine check refuses it: a running task writes it, or
        a project layer other than ``inputs`` (which the engine names itself) reads it or the loss curve beside it;
        ``None`` when free."""
        from ..core.raster import loss_curve_path

        if output_key(path) in outputs_being_written():
            return self.tr("A running Internal SR task is writing {}: wait for it or choose another output.").format(path)
        return open_in_project([path, loss_curve_path(path)], QgsProject.instance(), [layer.source() for layer in inputs])

    def _output_path(self, inputs: tuple[QgsRasterLayer, ...]) -> str:
        """The output field as an absolute GeoTIFF path (``~`` expanded, ``.tif`` added unless the name ends
        in an extension such as ``.png``), refused with a one-line ``InputError`` when it is a folder,
        relative, of another format or taken (``_taken``); ``inputs``: the run's layers."""
        text = self.output_widget.filePath().strip()
        if not text:
            raise InputError(self.tr("Choose the output GeoTIFF."))
        path = os.path.expanduser(text)
        if text.endswith(("/", os.sep)) or os.path.isdir(path):
            raise InputError(self.tr("Output {} is a folder: give the output file's path.").format(text))
        if not os.path.isabs(path):
            raise InputError(self.tr("Give the output's full path (e.g. {}), not {}.").format(
                os.path.join(os.path.dirname(output_base(inputs[0])), text), text))
        extension = os.path.splitext(path)[1].lower()
        if extension[1:2].isalpha() and extension not in GEOTIFF_EXTENSIONS:
            raise InputError(self.tr("The output is written as GeoTIFF: end its name in .tif, not {}.").format(extension))
        if extension not in GEOTIFF_EXTENSIONS:
            path += ".tif"  # no extension, or a dotted name such as scene_2024.01.05
        reason = self._taken(path, inputs)
        if reason:
            raise InputError(reason)
        return path

    def plan(self, probe: bool = True) -> RunPlan:
        """The current settings checked as the run will check them (the engine's checks, on metadata only:
        bands, extent, grids, sizes, kernel file, output path); a one-line ``InputError`` says what to change.

        ``probe``: also create and remove a temporary file in the output folder, as the run will (the
        summary, refreshed on every change, leaves that to *Run*).
        """
        guided = self.method() == "guided"
        layer = self._checked_layer(self.layer_combo, self.tr("target raster") if guided else self.tr("input raster"))
        guide = self._checked_layer(self.guide_combo, self.tr("guide raster")) if guided else None
        if guide is not None and not self.scale() and guide.crs() == layer.crs():  # other CRSs: the engine says so
            raise InputError(self.tr("Choose a finer guide: its pixels must be at least twice as fine as the target's "
                                     "(e.g. the 10 m bands for 20 m target bands)."))
        device = self.device_combo.currentText()
        if device != "auto" and device not in self.devices():
            raise InputError(self.tr("Device {} is not available here (detected: {}): choose auto or cpu.").format(
                device, ", ".join(self.devices())))
        inputs = (layer,) if guide is None else (layer, guide)
        output = self._output_path(inputs)
        sigma = self.sigma_spin.value()
        kernel = kernel_spec(self.kernel_combo.currentText(), sigma, self.kernel_file_widget.filePath().strip())
        common = dict(
            iterations=self.iterations(),
            seed=self.seed_spin.value(),
            device=device,
            tiles=TileOptions(size=self.tile_spin.value(), overlap=self.overlap_spin.value()),
        )
        io = IOOptions(
            bands=self.selected_bands(), float32=self.float32_check.isChecked(), extent=self.extent(), crs=assigned_crs(layer)
        )
        if guide is not None:
            from ..core.sharpen import check_inputs

            config = GuidedDIPConfig(kernel=kernel, guide_kernel=kernel_spec(self.guide_kernel_combo.currentText(), sigma), **common)
            guide_io = IOOptions(bands=self.selected_bands(self.guide_bands_combo), crs=assigned_crs(guide))
            checked = check_inputs(layer.source(), guide.source(), None, config, io, guide_io)
            target = checked.nesting.target
            plan = RunPlan(layer, output, config, io, target.width, target.height, checked.nesting.scale, checked.tiles, guide, guide_io)
        else:
            from ..core.pipeline import check_super_resolve

            config = METHOD_CONFIGS[self.method()](scale=self.scale_spin.value(), kernel=kernel, **common)
            info, tiles = check_super_resolve(layer.source(), None, config, io)
            plan = RunPlan(layer, output, config, io, info.grid.width, info.grid.height, config.scale, tiles)
        from ..core.pipeline import check_learned_kernel_output
        from ..core.raster import check_raster_output

        check_raster_output(output, [i.source() for i in inputs], probe=probe)
        if guide is None:
            check_learned_kernel_output(output, [layer.source()], config)
        return plan

    def _estimate_text(self, plan: RunPlan) -> str:
        """The output size, the steps and the estimated time of ``plan``."""
        devices = self.devices()
        width, height, tiles, tile_pixels = self.estimate(plan)
        steps = self.iterations()
        device = self.device_combo.currentText()
        gpu = device == "cuda" or (device == "auto" and "cuda" in devices)
        config = METHOD_CONFIGS[self.method()]
        warm = config.warm_steps if config.warm_start else None
        seconds = estimate_seconds(self.method(), tiles, steps, tile_pixels, gpu, warm)
        threads = self.run_threads()
        if gpu or threads == 1:
            where = devices.get("cuda", "cuda") if gpu else self.tr("cpu (1 thread)")
            time_text = self.tr("about {} on {} (measured on idle machines; a busy one takes longer)").format(duration(seconds), where)
        else:  # the CPU figures are one thread's (``run_times``): none was measured for more
            time_text = self.tr(
                "about {} with one CPU thread on an idle machine; this run's {} threads are faster on idle cores, slower "
                "on busy ones"
            ).format(duration(seconds), threads)
        steps_text = (
            self.tr("{} tiles, {} steps in all: {} for the first, {} for each other (warm-started from it)").format(
                tiles, run_steps(tiles, steps, warm), steps, warm_step_count(steps, warm)
            )
            if warm is not None and tiles > 1
            else self.tr("{} tile(s) × {} steps").format(tiles, steps)
        )
        text = self.tr(
            "Output: {} × {} pixels; {}. Estimated time: {}. The job runs in the background (progress in the task "
            "manager)."
        ).format(width, height, steps_text, time_text)
        if seconds > LONG_RUN_SECONDS:
            shorter = self.tr("a smaller extent") if self.extent_box.isChecked() else self.tr("tick Extent to process an area of interest")
            text += " " + self.tr("That is very long: {}, or use a GPU.").format(shorter)
        if os.path.exists(plan.output):
            text += " " + self.tr("The output file exists and will be replaced.")
        return text

    # -- running ----------------------------------------------------------------------------

    def _checked_layer(self, combo: QgsMapLayerComboBox, what: str) -> QgsRasterLayer:
        layer = combo.currentLayer()
        if not isinstance(layer, QgsRasterLayer):
            if combo is self.layer_combo:
                raise InputError(self.tr("Add a raster file (GeoTIFF, JP2, …) to the project to start."))
            raise InputError(self.tr("Choose the {}.").format(what))
        refusal = engine_refusal(layer, what)  # as Processing's read_source judges it
        if refusal is not None:
            raise InputError(refusal)
        return layer

    def build_task(self) -> CoreJobTask:
        """A task for the current settings (``plan``); raises ``InputError`` with a one-line reason if they do not fit."""
        plan = self.plan()
        layer = plan.layer
        renderer = layer.renderer()
        if plan.guide is not None:
            return CoreJobTask.sharpen(
                layer.source(), plan.guide.source(), plan.output, plan.config, plan.io, plan.guide_io, layer.name(),
                plan.scale, self.iface, renderer, self.threads(),
            )
        return CoreJobTask.super_resolve(
            layer.source(), plan.output, plan.config, plan.io, layer.name(), self.iface, renderer, self.threads()
        )

    def start(self) -> CoreJobTask | None:
        """Start the job in the task manager and close (the choices are remembered); show the reason if it cannot start."""
        try:
            task = self.build_task()
        except InputError as error:
            self.message_bar.pushMessage(self.tr("Cannot run"), dialog_line(error), Qgis.MessageLevel.Warning, 5)
            return None
        self.tasks = [t for t in self.tasks if not _is_deleted(t)]
        self.tasks.append(task)
        QgsApplication.taskManager().addTask(task)
        notify(self.iface, self.tr("{}: started; progress is in the task manager (bottom right)").format(task.title))
        self.accept()
        return task

    def cancel_tasks(self) -> None:
        """Cancel the jobs started from this dialog that the task manager still holds, as the plugin unloads:
        none of them adds a layer or shows a message afterwards, even one that has just completed
        (``CoreJobTask.abandon``)."""
        for task in self.tasks:
            if not _is_deleted(task):
                task.abandon()
        self.tasks = []


def _is_deleted(task: CoreJobTask) -> bool:
    """Whether the task manager has already deleted the task's C++ object."""
    from qgis.PyQt import sip

    return sip.isdeleted(task)
