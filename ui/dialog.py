"""The "Super-resolve raster" dialog: pick a raster and settings, start a background task.

Built in code with ``qgis.PyQt`` only and fully scoped enums, so it runs on Qt5 and Qt6 QGIS alike.
The job runs in a :class:`~.task.CoreJobTask` through the QGIS task manager; the dialog stays free.
"""

from __future__ import annotations

import os
from typing import Any

from qgis.core import Qgis, QgsApplication, QgsMapLayerProxyModel, QgsProviderRegistry, QgsRasterLayer
from qgis.gui import QgsCheckableComboBox, QgsCollapsibleGroupBox, QgsFileWidget, QgsMapLayerComboBox, QgsMessageBar
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

from ..algorithms.base import DEFAULT_SIGMA, ICON_PATH, KERNELS, kernel_spec
from ..core.config import DEFAULT_ITERATIONS, DIPConfig, IOOptions, TileOptions
from ..core.errors import InputError
from .task import CoreJobTask

DEVICES = ("auto", "cpu", "cuda", "mps")


def _raster_filter() -> Any:
    """The layer-combo filter for raster layers (moved to ``Qgis.LayerFilter`` in QGIS 3.34)."""
    filters = getattr(Qgis, "LayerFilter", None)
    return filters.RasterLayer if filters is not None else QgsMapLayerProxyModel.Filter.RasterLayer


class SuperResolveDialog(QDialog):
    """Settings for one Deep Image Prior run; **Run** starts it as a background task.

    :attr:`tasks` keeps the started tasks alive until the task manager is done with them.
    """

    def __init__(self, iface: Any | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.iface = iface
        self.tasks: list[CoreJobTask] = []
        self._suggested_output = ""
        self.setWindowTitle(self.tr("Internal SR: super-resolve raster (Deep Image Prior)"))
        self.setWindowIcon(QIcon(ICON_PATH))
        self._build()
        self._layer_changed(self.layer_combo.currentLayer())

    # -- layout -----------------------------------------------------------------------------

    def _build(self) -> None:
        self.message_bar = QgsMessageBar(self)
        self.message_bar.setSizePolicy(QSizePolicy.Policy.Minimum, QSizePolicy.Policy.Fixed)

        self.layer_combo = QgsMapLayerComboBox(self)
        self.layer_combo.setFilters(_raster_filter())
        others = [key for key in QgsProviderRegistry.instance().providerList() if key != "gdal"]
        self.layer_combo.setExcludedProviders(others)
        self.layer_combo.layerChanged.connect(self._layer_changed)

        self.bands_combo = QgsCheckableComboBox(self)
        if hasattr(self.bands_combo, "setDefaultText"):
            self.bands_combo.setDefaultText(self.tr("All bands"))
        self.bands_combo.setToolTip(self.tr("Bands to process; none ticked means every band."))

        self.scale_spin = QSpinBox(self)
        self.scale_spin.setRange(2, 16)
        self.scale_spin.setValue(2)
        self.scale_spin.setPrefix("×")
        self.scale_spin.valueChanged.connect(self._scale_changed)

        self.iterations_spin = QSpinBox(self)
        self.iterations_spin.setRange(0, 100000)
        self.iterations_spin.setSingleStep(100)
        self.iterations_spin.setSpecialValueText(self.tr("automatic"))
        self.iterations_spin.setToolTip(
            self.tr("Optimisation steps per tile; automatic: ")
            + ", ".join(f"×{s}: {n}" for s, n in DEFAULT_ITERATIONS.items())
        )

        self.kernel_combo = QComboBox(self)
        self.kernel_combo.addItems(list(KERNELS))
        self.kernel_combo.currentTextChanged.connect(self._kernel_changed)
        self.sigma_spin = QDoubleSpinBox(self)
        self.sigma_spin.setRange(0.05, 10.0)
        self.sigma_spin.setSingleStep(0.05)
        self.sigma_spin.setValue(DEFAULT_SIGMA)
        self.sigma_spin.setToolTip(self.tr("Gaussian standard deviation, in input pixels"))
        self._kernel_changed(self.kernel_combo.currentText())

        self.kernel_file_widget = QgsFileWidget(self)
        self.kernel_file_widget.setStorageMode(QgsFileWidget.StorageMode.GetFile)
        self.kernel_file_widget.setFilter(self.tr("NumPy kernel (*.npy)"))
        self.kernel_file_widget.setToolTip(
            self.tr("Optional 2-D kernel of odd size (e.g. estimated by KernelGAN); replaces the blur kernel")
        )

        self.device_combo = QComboBox(self)
        self.device_combo.addItems(list(DEVICES))
        self.float32_check = QCheckBox(self.tr("Write Float32 (otherwise keep the input data type)"), self)

        self.output_widget = QgsFileWidget(self)
        self.output_widget.setStorageMode(QgsFileWidget.StorageMode.SaveFile)
        self.output_widget.setFilter(self.tr("GeoTIFF (*.tif *.tiff)"))
        self.output_widget.setDialogTitle(self.tr("Super-resolved raster"))

        self.seed_spin = QSpinBox(self)
        self.seed_spin.setRange(0, 2**31 - 1)
        self.tile_spin = QSpinBox(self)
        self.tile_spin.setRange(16, 4096)
        self.tile_spin.setValue(TileOptions().size)
        self.overlap_spin = QSpinBox(self)
        self.overlap_spin.setRange(0, 2048)
        self.overlap_spin.setValue(TileOptions().overlap)
        advanced = QgsCollapsibleGroupBox(self.tr("Advanced"), self)
        advanced.setCollapsed(True)
        advanced_form = QFormLayout(advanced)
        advanced_form.addRow(self.tr("Kernel file (.npy)"), self.kernel_file_widget)
        advanced_form.addRow(self.tr("Random seed"), self.seed_spin)
        advanced_form.addRow(self.tr("Tile size (input pixels)"), self.tile_spin)
        advanced_form.addRow(self.tr("Tile overlap (input pixels)"), self.overlap_spin)

        self.summary_label = QLabel(self)
        self.summary_label.setWordWrap(True)
        self.summary_label.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)

        form = QFormLayout()
        form.setLabelAlignment(Qt.AlignmentFlag.AlignLeft)
        form.addRow(self.tr("Input raster"), self.layer_combo)
        form.addRow(self.tr("Bands"), self.bands_combo)
        form.addRow(self.tr("Scale factor"), self.scale_spin)
        form.addRow(self.tr("Iterations"), self.iterations_spin)
        form.addRow(self.tr("Blur kernel"), self.kernel_combo)
        form.addRow(self.tr("Gaussian sigma"), self.sigma_spin)
        form.addRow(self.tr("Device"), self.device_combo)
        form.addRow("", self.float32_check)
        form.addRow(self.tr("Output GeoTIFF"), self.output_widget)

        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        self.run_button = self.buttons.addButton(self.tr("Run"), QDialogButtonBox.ButtonRole.AcceptRole)
        self.buttons.accepted.connect(self.start)
        self.buttons.rejected.connect(self.reject)

        layout = QVBoxLayout(self)
        layout.addWidget(self.message_bar)
        layout.addLayout(form)
        layout.addWidget(advanced)
        layout.addWidget(self.summary_label)
        layout.addWidget(self.buttons)

    # -- reactions --------------------------------------------------------------------------

    def _layer_changed(self, layer: Any) -> None:
        self.bands_combo.clear()
        if isinstance(layer, QgsRasterLayer):
            for band in range(1, layer.bandCount() + 1):
                self.bands_combo.addItemWithCheckState(layer.bandName(band), Qt.CheckState.Unchecked, band)
        self._refresh_output()
        self._update_summary()

    def _scale_changed(self, _scale: int) -> None:
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
        """``<input folder>/<input name>_dip_x<scale>.tif`` for file rasters, else empty."""
        if not os.path.isfile(layer.source()):
            return ""
        stem = os.path.splitext(layer.source())[0]
        return f"{stem}_dip_x{self.scale_spin.value()}.tif"

    def _kernel_changed(self, name: str) -> None:
        self.sigma_spin.setEnabled(name == "gaussian")

    def _update_summary(self) -> None:
        layer = self.layer_combo.currentLayer()
        if not isinstance(layer, QgsRasterLayer):
            self.summary_label.setText(self.tr("Add a raster file (GeoTIFF, JP2, …) to the project to start."))
            return
        scale = self.scale_spin.value()
        self.summary_label.setText(
            self.tr("Output: {} × {} pixels. Each 128 × 128 input tile takes a few minutes on a CPU at the "
                    "automatic iterations, seconds on a CUDA GPU; the job runs in the background.").format(
                layer.width() * scale, layer.height() * scale
            )
        )

    # -- running ----------------------------------------------------------------------------

    def selected_bands(self) -> tuple[int, ...] | None:
        """The ticked bands (1-based), or ``None`` for every band."""
        bands = tuple(int(band) for band in self.bands_combo.checkedItemsData())
        return tuple(sorted(bands)) or None

    def build_task(self) -> CoreJobTask:
        """A task for the current settings; raises ``InputError`` with a one-line reason if they do not fit."""
        layer = self.layer_combo.currentLayer()
        if not isinstance(layer, QgsRasterLayer) or not layer.isValid():
            raise InputError(self.tr("Choose an input raster"))
        if layer.providerType() != "gdal":
            raise InputError(self.tr("The input must be a raster file read by GDAL (e.g. GeoTIFF)"))
        output = self.output_widget.filePath().strip()
        if not output:
            raise InputError(self.tr("Choose the output GeoTIFF"))
        if not output.lower().endswith((".tif", ".tiff")):
            output += ".tif"
        if os.path.abspath(output) == os.path.abspath(layer.source()):
            raise InputError(self.tr("The output must not overwrite the input"))
        config = DIPConfig(
            scale=self.scale_spin.value(),
            kernel=kernel_spec(
                self.kernel_combo.currentText(), self.sigma_spin.value(), self.kernel_file_widget.filePath().strip()
            ),
            iterations=self.iterations_spin.value() or None,
            seed=self.seed_spin.value(),
            device=self.device_combo.currentText(),
            tiles=TileOptions(size=self.tile_spin.value(), overlap=self.overlap_spin.value()),
        )
        io = IOOptions(bands=self.selected_bands(), float32=self.float32_check.isChecked())
        return CoreJobTask.super_resolve(layer.source(), output, config, io, layer.name(), self.iface)

    def start(self) -> CoreJobTask | None:
        """Start the job in the task manager and close the dialog; show the reason if it cannot start."""
        try:
            task = self.build_task()
        except InputError as error:
            self.message_bar.pushMessage(self.tr("Cannot run"), str(error), Qgis.MessageLevel.Warning, 5)
            return None
        self.tasks = [t for t in self.tasks if not _is_deleted(t)]
        self.tasks.append(task)
        QgsApplication.taskManager().addTask(task)
        self.message_bar.pushMessage(
            self.tr("Started"), self.tr("progress is in the task manager (bottom right)"), Qgis.MessageLevel.Info, 3
        )
        self.accept()
        return task

    def cancel_tasks(self) -> None:
        """Cancel the jobs started from this dialog that are still queued or running."""
        for task in self.tasks:
            if not _is_deleted(task):
                task.cancel()
        self.tasks = []


def _is_deleted(task: CoreJobTask) -> bool:
    """Whether the task manager has already deleted the task's C++ object."""
    from qgis.PyQt import sip

    return sip.isdeleted(task)
