"""One way to tell the user something: the QGIS message log always, the message bar when there is one."""

from __future__ import annotations

from typing import Any

from qgis.core import Qgis, QgsMessageLog

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
