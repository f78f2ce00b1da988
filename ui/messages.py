"""One way to tell the user something: the QGIS message log always, the message bar when there is one."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from qgis.core import Qgis, QgsMessageLog
from qgis.gui import QgsMessageBar
from qgis.PyQt.QtWidgets import QPushButton

#: Tab of the QGIS "Log Messages" panel where the plugin writes.
LOG_TAG = "Internal SR"
TITLE = "Internal SR"


def notify(iface: Any | None, text: str, level: Any = Qgis.MessageLevel.Info, duration: int = 5) -> None:
    """Log ``text`` and, with an ``iface``, show it in the message bar (``duration`` 0: until closed).

    Message bar calls belong to the main thread; the log may be written from any thread.
    """
    QgsMessageLog.logMessage(text, LOG_TAG, level)
    if iface is not None:
        iface.messageBar().pushMessage(TITLE, text, level, duration)


def notify_with_button(
    iface: Any | None, text: str, button_text: str, on_click: Callable[[], Any], level: Any = Qgis.MessageLevel.Info
) -> None:
    """Like :func:`notify` (message bar item kept until closed), with a button that calls ``on_click``."""
    QgsMessageLog.logMessage(text, LOG_TAG, level)
    if iface is not None:
        item = QgsMessageBar.createMessage(TITLE, text)
        button = QPushButton(button_text, item)  # owned by the item, which the bar owns
        button.clicked.connect(on_click)
        item.layout().addWidget(button)
        iface.messageBar().pushWidget(item, level, 0)
