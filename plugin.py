"""The QGIS plugin object: Processing provider, Raster menu entry and toolbar button.

QGIS creates :class:`InternalSRPlugin` through ``classFactory`` and calls ``initProcessing`` (for
``qgis_process``), ``initGui`` and, when the plugin is disabled or reloaded, ``unload``, which removes
everything ``initGui`` added. The engine's heavy packages (torch, rasterio, scikit-image) are not needed
to load the plugin; if any is missing or too old the user is told which, with a button (and a menu entry,
*Install dependencies…*) opening the installer, which puts them in the plugin's private package folder.
That folder goes first on ``sys.path`` as soon as the plugin is created, before anything is checked.
A package that is installed but fails to import (a library that does not load) is reported in one line
when the dialog is opened. Each message-bar item is replaced, not stacked, and removed by ``unload``.
"""

from __future__ import annotations

from typing import Any

from qgis.core import QgsApplication
from qgis.PyQt.QtGui import QIcon

try:  # Qt6 (QGIS 4) moved QAction to QtGui
    from qgis.PyQt.QtGui import QAction
except ImportError:  # Qt5
    from qgis.PyQt.QtWidgets import QAction

from .algorithms.base import ICON_PATH, LOG_TAG
from .algorithms.provider import InternalSRProvider
from .ui.deps import report_broken_engine, report_missing_dependencies
from .ui.messages import PinnedMessage, report_error
from .ui.pip_install import activate_target_folder, target_folder

MENU = "&Internal SR"


class InternalSRPlugin:
    """Wires the plugin into QGIS; ``unload`` undoes ``initGui`` exactly."""

    def __init__(self, iface: Any) -> None:
        self.iface = iface
        self.provider: InternalSRProvider | None = None
        self.action: QAction | None = None
        self.install_action: QAction | None = None
        self.dialog: Any | None = None
        self.installer: Any | None = None
        self.missing: list[str] = []
        self.install_message = PinnedMessage(iface, "Install dependencies…", self.show_installer)
        self.engine_message = PinnedMessage(iface)
        activate_target_folder(target_folder())

    def initProcessing(self) -> None:  # noqa: N802 (name fixed by QGIS)
        """Register the Processing provider ``internal_sr`` (once)."""
        if self.provider is None:
            self.provider = InternalSRProvider()
            QgsApplication.processingRegistry().addProvider(self.provider)

    def initGui(self) -> None:  # noqa: N802 (name fixed by QGIS)
        """Add the provider, the Raster ▸ Internal SR menu entry and the toolbar button."""
        self.initProcessing()
        self.action = QAction(QIcon(ICON_PATH), "Super-resolve raster…", self.iface.mainWindow())
        self.action.setObjectName("internal_sr_super_resolve")
        self.action.setToolTip("Internal SR: super-resolve a raster (Deep Image Prior, guided DIP, Neural Knitworks)")
        self.action.triggered.connect(self.show_dialog)
        self.iface.addPluginToRasterMenu(MENU, self.action)
        self.iface.addRasterToolBarIcon(self.action)
        self.install_action = QAction("Install dependencies…", self.iface.mainWindow())
        self.install_action.setObjectName("internal_sr_install_dependencies")
        self.install_action.triggered.connect(self.show_installer)
        self.iface.addPluginToRasterMenu(MENU, self.install_action)
        self.missing = report_missing_dependencies(self.install_message)

    def unload(self) -> None:
        """Remove the menu entries, the toolbar button, the message-bar items, the dialogs (cancelling jobs
        and pip) and the provider."""
        self.install_message.clear()
        self.engine_message.clear()
        if self.install_action is not None:
            self.iface.removePluginRasterMenu(MENU, self.install_action)
            self.install_action.triggered.disconnect(self.show_installer)
            self.install_action.deleteLater()
            self.install_action = None
        if self.installer is not None:
            self.installer.reject()  # stops a running pip
            self.installer.deleteLater()
            self.installer = None
        if self.action is not None:
            self.iface.removePluginRasterMenu(MENU, self.action)
            self.iface.removeRasterToolBarIcon(self.action)
            self.action.triggered.disconnect(self.show_dialog)
            self.action.deleteLater()
            self.action = None
        if self.dialog is not None:
            self.dialog.cancel_tasks()  # finishing after this, they add no layer and show nothing
            self.dialog.close()
            self.dialog.deleteLater()
            self.dialog = None
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None

    def show_dialog(self) -> None:
        """Open the super-resolution dialog, or repeat what is missing to run it (or what fails to import, or
        in one line what else kept the dialog from opening)."""
        self.missing = report_missing_dependencies(self.install_message)
        if self.missing:
            return
        try:
            if self.dialog is None:
                from .ui.dialog import SuperResolveDialog, import_engine

                import_engine()  # installed, yet it may not import (a DLL that does not load, a NumPy ABI mismatch)
                self.dialog = SuperResolveDialog(self.iface, self.iface.mainWindow())
            self.dialog.show()
            self.dialog.raise_()
            self.dialog.activateWindow()
        except (ImportError, OSError) as error:
            report_broken_engine(self.engine_message, error)
            return
        except Exception as error:  # noqa: BLE001 (a defect: one line for the user, the traceback in the log)
            report_error(
                self.engine_message,
                f"The dialog failed to open ({type(error).__name__}: {error}): please report it, with the traceback "
                f"from the message log (tab {LOG_TAG}).",
                error,
            )
            return
        self.engine_message.clear()

    def show_installer(self) -> None:
        """Open the dependency installer (one window; it re-checks the packages each time it is shown)."""
        if self.installer is None:
            from .ui.installer import InstallerDialog

            self.installer = InstallerDialog(self.iface.mainWindow())
        if not self.installer.runner.is_running():
            self.installer.refresh()
        self.installer.show()
        self.installer.raise_()
        self.installer.activateWindow()
