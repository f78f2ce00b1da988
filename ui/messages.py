"""One way to tell the user something: the QGIS message log always, the message bar when there is one."""

from __future__ import annotations

import traceback
from collections.abc import Callable
from typing import Any

from qgis.core import Qgis, QgsMessageLog
from qgis.gui import QgsMessageBar, QgsMessageBarItem
from qgis.PyQt import sip
from qgis.PyQt.QtWidgets import QPushButton

from ..algorithms.base import LOG_TAG

TITLE = "Internal SR"


def notify(iface: Any | None, text: str, level: Any = Qgis.MessageLevel.Info, duration: int = 5) -> None:
    """Log ``text`` and, with an ``iface``, show it in the message bar (``duration`` 0: until closed).

    Message bar calls belong to the main thread; the log may be written from any thread.
    """
    QgsMessageLog.logMessage(text, LOG_TAG, level)
    if iface is not None:
        iface.messageBar().pushMessage(TITLE, text, level, duration)


class PinnedMessage:
    """A message-bar item kept until closed, at most one at a time, optionally with a button calling ``on_click``.

    :meth:`show` logs the text and replaces the item shown before (if the user has not closed it) instead
    of stacking another; :meth:`clear` removes it, as the plugin's ``unload`` must, so that no item (and
    no button connected to the plugin) outlives the plugin.
    """

    def __init__(self, iface: Any | None, button_text: str = "", on_click: Callable[[], Any] | None = None) -> None:
        self.iface = iface
        self.button_text = button_text
        self.on_click = on_click
        self.item: QgsMessageBarItem | None = None

    def show(self, text: str, level: Any = Qgis.MessageLevel.Info) -> None:
        """Log ``text`` and show it in the message bar (with the button), in place of the earlier item."""
        QgsMessageLog.logMessage(text, LOG_TAG, level)
        self.clear()
        if self.iface is None:
            return
        item = QgsMessageBar.createMessage(TITLE, text)
        if self.on_click is not None:
            button = QPushButton(self.button_text, item)  # owned by the item, which the bar owns
            button.clicked.connect(self.on_click)
            item.layout().addWidget(button)
        self.iface.messageBar().pushWidget(item, level, 0)
        self.item = item

    def clear(self) -> None:
        """Remove the item from the message bar, unless the user has closed it already."""
        item, self.item = self.item, None
        if item is None or sip.isdeleted(item):
            return
        for button in item.findChildren(QPushButton):
            button.clicked.disconnect()
        self.iface.messageBar().popWidget(item)


def report_error(message: PinnedMessage, text: str, error: BaseException) -> None:
    """Show ``text`` on one line as ``message`` (critical) and write ``error``'s traceback to the message log."""
    QgsMessageLog.logMessage("".join(traceback.format_exception(error)), LOG_TAG, Qgis.MessageLevel.Critical)
    message.show(" ".join(text.split()), Qgis.MessageLevel.Critical)
