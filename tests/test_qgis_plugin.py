"""Plugin load/unload through ``classFactory`` with pytest-qgis's iface, the dialog, metadata (the Qt5/Qt6 source rules are in test_qt_compat)."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib

import pytest
from qgis.core import Qgis, QgsApplication, QgsProject, QgsRasterLayer
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtWidgets import QPushButton
from qgis_helpers import crop

pytestmark = pytest.mark.qgis

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class RasterMenuRecorder:
    """Stands in for the Raster menu and toolbar of the real ``QgisInterface`` (absent from the stub)."""

    def __init__(self) -> None:
        self.menu: list[tuple[str, object]] = []
        self.toolbar: list[object] = []

    def install(self, iface, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(iface, "addPluginToRasterMenu", lambda name, action: self.menu.append((name, action)), raising=False)
        monkeypatch.setattr(iface, "removePluginRasterMenu", lambda name, action: self.menu.remove((name, action)), raising=False)
        monkeypatch.setattr(iface, "addRasterToolBarIcon", self.toolbar.append, raising=False)
        monkeypatch.setattr(iface, "removeRasterToolBarIcon", self.toolbar.remove, raising=False)


@pytest.fixture()
def recorder(qgis_iface, monkeypatch: pytest.MonkeyPatch) -> RasterMenuRecorder:
    recorder = RasterMenuRecorder()
    recorder.install(qgis_iface, monkeypatch)
    return recorder


def test_plugin_loads_and_unloads_cleanly(qgis_iface, qgis_processing, recorder, messages) -> None:
    import internal_sr

    registry = QgsApplication.processingRegistry()
    plugin = internal_sr.classFactory(qgis_iface)
    plugin.initProcessing()  # QGIS calls it for plugins with hasProcessingProvider=yes
    plugin.initGui()
    try:
        provider = registry.providerById("internal_sr")
        assert provider is not None and provider.name() == "Internal SR"
        assert sorted(a.id() for a in provider.algorithms()) == [
            "internal_sr:degrade", "internal_sr:dip", "internal_sr:evaluate", "internal_sr:guided_dip", "internal_sr:kernelgan",
            "internal_sr:knitwork",
        ]
        assert [name for name, _ in recorder.menu] == ["&Internal SR", "&Internal SR"]
        action, install_action = (action for _, action in recorder.menu)
        assert recorder.toolbar == [action] and not action.icon().isNull()
        assert install_action.text() == "Install dependencies…"
        assert messages[Qgis.MessageLevel.Warning] == []  # every dependency is installed here

        action.trigger()  # opens the dialog
        assert plugin.dialog is not None and plugin.dialog.isVisible()
        install_action.trigger()  # opens the installer, with nothing to install
        assert plugin.installer is not None and plugin.installer.isVisible()
        assert not plugin.installer.needed() and not plugin.installer.install_button.isEnabled()
    finally:
        plugin.unload()
    assert registry.providerById("internal_sr") is None
    assert recorder.menu == [] and recorder.toolbar == []
    assert plugin.action is None and plugin.dialog is None and plugin.provider is None
    assert plugin.install_action is None and plugin.installer is None


class WidgetBar:
    """Stands in for the stub message bar's missing ``pushWidget``/``popWidget``: the items shown, in order."""

    def __init__(self, qgis_iface, messages, monkeypatch: pytest.MonkeyPatch) -> None:
        self.shown: list[object] = []
        self.messages = messages
        bar = qgis_iface.messageBar()
        monkeypatch.setattr(bar, "pushWidget", self.push, raising=False)
        monkeypatch.setattr(bar, "popWidget", self.shown.remove, raising=False)

    def push(self, item, level, duration) -> None:
        self.shown.append(item)
        self.messages[level].append(item.text())


def test_plugin_names_missing_packages_and_offers_the_installer(qgis_iface, qgis_processing, recorder, messages, monkeypatch) -> None:
    import internal_sr
    from internal_sr.core import deps
    from internal_sr.ui.pip_install import target_folder

    monkeypatch.setattr(deps, "missing_dependencies", lambda: ["torch", "rasterio"])
    monkeypatch.setattr(sys, "path", [folder for folder in sys.path if folder != target_folder()])
    bar = WidgetBar(qgis_iface, messages, monkeypatch)
    plugin = internal_sr.classFactory(qgis_iface)
    assert sys.path[0] == target_folder()  # installed packages are found before the check
    plugin.initGui()
    try:
        assert QgsApplication.processingRegistry().providerById("internal_sr") is not None
        warnings = messages[Qgis.MessageLevel.Warning]
        assert len(warnings) == 1
        assert "torch, rasterio" in warnings[0] and 'pip install --upgrade "torch>=2.3" "rasterio>=1.3"' in warnings[0]
        first = bar.shown[0]
        recorder.menu[0][1].trigger()  # the dialog does not open; the message is repeated, replacing the first
        recorder.menu[0][1].trigger()
        assert plugin.dialog is None and len(warnings) == 3
        (item,) = bar.shown
        assert item is not first
        button = item.findChild(QPushButton)
        assert button.text() == "Install dependencies…"
        button.click()
        assert plugin.installer is not None and plugin.installer.isVisible()
    finally:
        plugin.unload()
    assert recorder.menu == [] and recorder.toolbar == [] and plugin.installer is None
    assert bar.shown == []  # no item, and no button connected to the unloaded plugin, is left behind


def test_an_engine_that_fails_to_import_is_one_line_not_a_python_error(qgis_iface, qgis_processing, recorder, messages,
                                                                        monkeypatch) -> None:
    """Installed (the check passes) but not importable, e.g. a torch whose DLLs do not load."""
    import internal_sr
    from internal_sr.ui import dialog

    failures = [OSError('[WinError 126] The specified module could not be found. Error loading "c10.dll" or one of its\n'
                        "dependencies.")]

    def import_engine() -> None:
        if failures:
            raise failures[0]

    monkeypatch.setattr(dialog, "import_engine", import_engine)
    bar = WidgetBar(qgis_iface, messages, monkeypatch)
    plugin = internal_sr.classFactory(qgis_iface)
    plugin.initGui()
    try:
        recorder.menu[0][1].trigger()
        recorder.menu[0][1].trigger()
        assert plugin.dialog is None and len(messages[Qgis.MessageLevel.Critical]) == 2
        (item,) = bar.shown  # the second replaced the first
        text = item.text()
        assert "\n" not in text and "OSError: [WinError 126]" in text and "c10.dll" in text and 'pip install --upgrade "torch>=2.3"' in text
        failures.clear()  # the user repairs the install: the dialog opens and the message goes
        recorder.menu[0][1].trigger()
        assert plugin.dialog is not None and plugin.dialog.isVisible() and bar.shown == []
    finally:
        plugin.unload()


def test_a_dialog_that_fails_to_open_is_one_line_not_a_python_error(qgis_iface, qgis_processing, recorder, messages,
                                                                     monkeypatch) -> None:
    """An unforeseen error while the dialog opens (a defect) reaches the user as one line, its traceback the log."""
    import internal_sr
    from internal_sr.ui import dialog
    from qgis_helpers import LogRecorder

    failures = [TypeError("unable to convert a QVariant of type 10\nto a QMetaType of type 2")]
    restore_settings = dialog.SuperResolveDialog.restore_settings

    def failing_restore_settings(self) -> None:
        if failures:
            raise failures[0]
        restore_settings(self)

    monkeypatch.setattr(dialog.SuperResolveDialog, "restore_settings", failing_restore_settings)
    bar = WidgetBar(qgis_iface, messages, monkeypatch)
    plugin = internal_sr.classFactory(qgis_iface)
    plugin.initGui()
    try:
        with LogRecorder() as log:
            recorder.menu[0][1].trigger()
        assert plugin.dialog is None
        (item,) = bar.shown
        assert item.text() == ("The dialog failed to open (TypeError: unable to convert a QVariant of type 10 to a "
                               "QMetaType of type 2): please report it, with the traceback from the message log (tab "
                               "Internal SR).")
        assert any("Traceback" in message and "in failing_restore_settings" in message for message in log.messages)
        failures.clear()  # once fixed, the dialog opens and the message goes
        recorder.menu[0][1].trigger()
        assert plugin.dialog is not None and plugin.dialog.isVisible() and bar.shown == []
    finally:
        plugin.unload()


def test_a_run_that_completes_as_the_plugin_unloads_adds_nothing(qgis_iface, qgis_processing, recorder, empty_project,
                                                                  messages, tmp_path) -> None:
    """The worker has finished, the main thread has not yet called ``finished()`` when the plugin is unloaded:
    the result used to be added to the project and announced by a plugin that was gone."""
    import internal_sr
    from qgis.core import QgsSettings
    from qgis_helpers import LogRecorder

    from internal_sr.ui.dialog import SETTINGS_GROUP

    layer = QgsProject.instance().addMapLayer(QgsRasterLayer(crop(str(tmp_path / "scene.tif"), 48), "scene", "gdal"))
    plugin = internal_sr.classFactory(qgis_iface)
    plugin.initGui()
    try:
        recorder.menu[0][1].trigger()
        dialog = plugin.dialog
        dialog.layer_combo.setLayer(layer)
        dialog.bands_combo.setItemCheckState(0, Qt.CheckState.Checked)
        dialog.iterations_spin.setValue(2)
        dialog.device_combo.setCurrentText("cpu")
        task = dialog.build_task()
        dialog.tasks.append(task)  # as start() does; run() and finished() are called below as the task manager would
        result = task.run()  # the worker completes ...
        plugin.unload()  # ... and the plugin goes before the main thread calls finished()
        with LogRecorder() as log:
            task.finished(result)
        assert result and os.path.isfile(task.result.output_path) and task.layer is None
        assert list(QgsProject.instance().mapLayers().values()) == [layer]
        assert messages[Qgis.MessageLevel.Success] == [] and messages[Qgis.MessageLevel.Info] == []
        assert log.messages == [f"{task.title}: {task.result.output_path} was written as the plugin was unloaded; it is "
                                "not added to the map"]
    finally:
        plugin.unload()
        QgsSettings().remove(SETTINGS_GROUP)


def test_dialog_suggests_an_output_and_refuses_to_start_without_one(qgis_iface, empty_project, tmp_path) -> None:
    from internal_sr.ui.dialog import SuperResolveDialog

    source = crop(str(tmp_path / "scene.tif"), 48)
    layer = QgsProject.instance().addMapLayer(QgsRasterLayer(source, "scene", "gdal"))
    dialog = SuperResolveDialog(qgis_iface)
    try:
        dialog.layer_combo.setLayer(layer)
        assert dialog.bands_combo.count() == 6 and dialog.selected_bands() is None  # nothing ticked: all bands
        assert dialog.output_widget.filePath() == str(tmp_path / "scene_dip_x2.tif")
        dialog.scale_spin.setValue(3)
        assert dialog.output_widget.filePath() == str(tmp_path / "scene_dip_x3.tif")
        assert dialog.build_task().layer_name == "scene DIP ×3"
        assert not dialog.sigma_spin.isEnabled()  # only the gaussian kernel has a sigma

        dialog.output_widget.setFilePath("")
        assert dialog.start() is None and not dialog.tasks  # the reason is shown, nothing starts
        assert QgsApplication.taskManager().count() == 0
    finally:
        dialog.deleteLater()


def test_dialog_settings_reach_the_engine(qgis_iface, empty_project, tmp_path, monkeypatch) -> None:
    """The job the dialog builds calls ``super_resolve`` with the settings shown in the dialog."""
    from internal_sr.core import pipeline
    from internal_sr.ui.dialog import SuperResolveDialog

    calls = []
    monkeypatch.setattr(pipeline, "super_resolve", lambda *args: calls.append(args))
    source = crop(str(tmp_path / "scene.tif"), 48)
    layer = QgsProject.instance().addMapLayer(QgsRasterLayer(source, "scene", "gdal"))
    dialog = SuperResolveDialog(qgis_iface)
    try:
        dialog.layer_combo.setLayer(layer)
        dialog.bands_combo.setItemCheckState(4, Qt.CheckState.Checked)
        dialog.bands_combo.setItemCheckState(1, Qt.CheckState.Checked)
        dialog.kernel_combo.setCurrentText("gaussian")
        dialog.sigma_spin.setValue(0.7)
        dialog.iterations_spin.setValue(300)
        dialog.device_combo.setCurrentText("cpu")
        dialog.build_task().job("progress")
    finally:
        dialog.deleteLater()
    (input_path, output_path, config, io, progress), = calls
    assert (input_path, output_path, progress) == (source, str(tmp_path / "scene_dip_x2.tif"), "progress")
    assert (config.scale, config.kernel, config.iterations, config.device) == (2, "gaussian:0.7", 300, "cpu")
    assert io.bands == (2, 5) and not io.float32


def test_root_package_imports_neither_qgis_nor_torch() -> None:
    code = "import sys, internal_sr; assert callable(internal_sr.classFactory); print(sorted(m for m in ('qgis', 'torch', 'rasterio') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd="/")
    assert result.stdout.strip() == "[]"


BLOCK_ENGINE = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('torch', 'rasterio', 'skimage'):
            raise ImportError('blocked: ' + name)
sys.meta_path.insert(0, Block())
import internal_sr.plugin, internal_sr.ui.dialog, internal_sr.ui.task, internal_sr.algorithms.provider
from internal_sr.core.deps import missing_dependencies
print('loaded')
"""


def test_qgis_side_loads_without_the_engine_packages() -> None:
    """torch, rasterio and scikit-image are imported only when a job runs."""
    result = subprocess.run([sys.executable, "-c", BLOCK_ENGINE], capture_output=True, text=True, cwd="/")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "loaded"


REQUIRED_METADATA = ("name", "qgisMinimumVersion", "description", "about", "version", "author", "email", "repository", "tracker")


def test_metadata_as_qgis_reads_it(tmp_path) -> None:
    """QGIS's own plugin finder reads metadata.txt with every field the official repository requires."""
    import qgis.utils

    import internal_sr
    from internal_sr.core import __version__ as engine_version

    (tmp_path / "internal_sr").symlink_to(ROOT, target_is_directory=True)
    ((name, parser),) = list(qgis.utils.findPlugins(str(tmp_path)))
    assert name == "internal_sr" and parser is not None
    general = parser["general"]
    assert all(general.get(field, "").strip() for field in REQUIRED_METADATA)
    assert general["name"] == "Internal SR" and general["qgisMinimumVersion"] == "3.22"
    assert general["version"] == internal_sr.__version__ == engine_version
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:  # the version pip installs the engine as
        assert tomllib.load(f)["project"]["version"] == general["version"]
    assert general["tracker"] == general["repository"] + "/issues"
    assert general["hasProcessingProvider"] == "yes" and general["category"] == "Raster"
    assert parser.getboolean("general", "experimental") in (True, False)
    assert os.path.isfile(os.path.join(ROOT, general["icon"])) and os.path.isfile(os.path.join(ROOT, "LICENSE"))


def test_metadata_speed_matches_the_measured_figures() -> None:
    """The plugin manager's speed line gives the figures the README and the help give (DIP, one tile, default steps)."""
    import configparser

    from internal_sr.algorithms.run_times import STEP_SECONDS, duration
    from internal_sr.core.config import DEFAULT_ITERATIONS

    parser = configparser.ConfigParser(interpolation=None)
    parser.read(os.path.join(ROOT, "metadata.txt"), encoding="utf-8")
    (speed,) = [line for line in parser["general"]["about"].splitlines() if line.startswith("Speed:")]
    steps, times = DEFAULT_ITERATIONS[2], STEP_SECONDS["dip"]
    assert f"default {steps} steps" in speed and "128 × 128 input tile at ×2" in speed
    assert f"about {duration(steps * times.cpu)} on one CPU core" in speed  # about 7 minutes
    assert f"about {duration(steps * times.gpu)} on a CUDA GPU" in speed  # about 29 s
