"""The dependency installer: a dialog that runs pip in the background into the plugin's private folder.

The dialog lists the engine's requirements with the version found and the one required, says where
the packages go (:func:`.pip_install.target_folder`) and which Python runs pip, offers the CPU or CUDA
build of torch where the platform has both, and runs the pip commands of :func:`.pip_install.pip_commands`
one after the other in a :class:`QProcess`, streaming their output into a read-only text area. QGIS
stays responsive; *Cancel* kills pip and keeps the dialog open; the last line says what happened, with
pip's own error on failure.
"""

from __future__ import annotations

import codecs
import sys
from collections.abc import Sequence
from typing import Any

from qgis.PyQt.QtCore import QObject, QProcess, QProcessEnvironment, Qt, pyqtSignal
from qgis.PyQt.QtGui import QIcon, QTextCursor
from qgis.PyQt.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QGroupBox,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QProgressBar,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ..algorithms.base import ICON_PATH
from ..core.deps import REQUIREMENTS, DependencyStatus, Requirement, dependency_status, install_hint
from ..core.errors import InputError
from .pip_install import (
    PipCommand,
    TorchBuild,
    activate_target_folder,
    default_torch_build,
    find_python,
    pip_commands,
    split_options,
    target_folder,
    torch_index_problem,
)


def last_error(output: str) -> str:
    """pip's last ``ERROR:`` line in ``output``, else its last non-empty line, else a note that there was none."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("ERROR:")]
    return (errors or lines or ["no output"])[-1]


class PipRunner(QObject):
    """Runs pip commands one after the other in a :class:`QProcess`, never blocking the event loop.

    ``output`` carries the commands' merged stdout and stderr as it arrives (decoded as UTF-8), each
    command preceded by a ``$ command`` line. ``done`` comes once: ``(True, "")`` when every command
    exited with status 0, else ``(False, reason)`` with pip's error line, and the remaining commands
    are not run.
    """

    output = pyqtSignal(str)
    done = pyqtSignal(bool, str)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.process = QProcess(self)
        self.process.setProcessChannelMode(QProcess.ProcessChannelMode.MergedChannels)
        environment = QProcessEnvironment.systemEnvironment()
        environment.insert("PYTHONIOENCODING", "utf-8")
        environment.insert("PYTHONUNBUFFERED", "1")
        self.process.setProcessEnvironment(environment)
        self.process.readyReadStandardOutput.connect(self._read)
        self.process.finished.connect(self._finished)
        self.process.errorOccurred.connect(self._error)
        self._queue: list[PipCommand] = []
        self._current: PipCommand | None = None
        self._text = ""
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._cancelled = False

    def is_running(self) -> bool:
        """Whether a command is running or waiting to run."""
        return self._current is not None

    def start(self, commands: Sequence[PipCommand]) -> None:
        """Run ``commands`` in order; returns at once."""
        if self.is_running():
            raise RuntimeError("pip is already running")
        self._queue = list(commands)
        self._cancelled = False
        self._next()

    def cancel(self) -> None:
        """Kill the running command; ``done`` follows with a cancellation message."""
        if self.is_running():
            self._cancelled = True
            self._queue = []
            self.process.kill()

    def _next(self) -> None:
        if not self._queue:
            self._finish(True, "")
            return
        self._current = self._queue.pop(0)
        self._text = ""
        self._decoder.reset()
        self.output.emit(f"$ {self._current.display()}\n")
        self.process.start(self._current.program, list(self._current.arguments))

    def _read(self) -> None:
        text = self._decoder.decode(bytes(self.process.readAllStandardOutput()))
        if text:
            self._text += text
            self.output.emit(text)

    def _finished(self, *_: Any) -> None:
        if self._current is None:  # already reported (the process failed to start)
            return
        self._read()
        tail = self._decoder.decode(b"", final=True)
        if tail:
            self._text += tail
            self.output.emit(tail)
        if self._cancelled:
            self._finish(False, "Cancelled: pip was stopped; run the installer again to complete the install.")
        elif self.process.exitStatus() != QProcess.ExitStatus.NormalExit:
            self._finish(False, f"pip crashed: {last_error(self._text)}")
        elif self.process.exitCode() != 0:
            self._finish(False, f"pip failed (exit code {self.process.exitCode()}): {last_error(self._text)}")
        else:
            self._next()

    def _error(self, error: Any) -> None:
        if error == QProcess.ProcessError.FailedToStart and self._current is not None:
            program = self._current.program
            self._finish(False, f"Could not start {program}: {self.process.errorString()}")

    def _finish(self, ok: bool, message: str) -> None:
        self._current = None
        self._queue = []
        self.done.emit(ok, message)


class InstallerDialog(QDialog):
    """Shows what is missing, where it goes and the pip commands; *Install* runs them in the background.

    ``requirements``, ``target`` and ``python`` default to the engine's requirements, the private
    folder of the current profile and :func:`.pip_install.find_python`.
    """

    def __init__(
        self,
        parent: QWidget | None = None,
        requirements: Sequence[Requirement] = REQUIREMENTS,
        target: str | None = None,
        python: str | None = None,
        platform: str = sys.platform,
    ) -> None:
        super().__init__(parent)
        self.requirements = tuple(requirements)
        self.target = target if target is not None else target_folder()
        self.python = python if python is not None else find_python()
        self.platform = platform
        self.statuses: list[DependencyStatus] = []
        self.runner = PipRunner(self)
        self.runner.output.connect(self._append)
        self.runner.done.connect(self._done)
        self.setWindowTitle(self.tr("Internal SR: install dependencies"))
        self.setWindowIcon(QIcon(ICON_PATH))
        self.resize(760, 720)
        self._build()
        self.refresh()

    # -- layout -----------------------------------------------------------------------------

    def _build(self) -> None:
        intro = QLabel(
            self.tr(
                "The super-resolution engine needs these Python packages. The installer runs pip in the "
                "background and puts them in a folder private to the plugin, which the plugin adds to "
                "Python's search path when QGIS starts."
            ),
            self,
        )
        intro.setWordWrap(True)

        self.table = QTableWidget(0, 4, self)
        self.table.setHorizontalHeaderLabels([self.tr("Package"), self.tr("Required"), self.tr("Found"), self.tr("Action")])
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setStretchLastSection(True)

        self.target_label = QLabel(self.target, self)
        self.python_label = QLabel(self.python or self.tr("none found next to QGIS"), self)
        for label in (self.target_label, self.python_label):
            label.setWordWrap(True)
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        self.build_combo = QComboBox(self)
        self.build_combo.addItem(self.tr("CPU"), TorchBuild.CPU)
        self.build_combo.addItem(self.tr("CUDA (NVIDIA GPU)"), TorchBuild.CUDA)
        default = default_torch_build(self.platform)
        if default is not None:
            self.build_combo.setCurrentIndex(self.build_combo.findData(default))
        self.index_edit = QLineEdit(self)
        self.index_edit.setPlaceholderText(self.tr("empty: pip's default index"))
        self.build_hint = QLabel(self)
        self.build_hint.setWordWrap(True)
        self.torch_box = QGroupBox(self.tr("torch build"), self)
        torch_form = QFormLayout()
        torch_form.addRow(self.tr("Build"), self.build_combo)
        torch_form.addRow(self.tr("Index URL (pip --index-url)"), self.index_edit)
        torch_layout = QVBoxLayout(self.torch_box)
        torch_layout.addLayout(torch_form)
        torch_layout.addWidget(self.build_hint)

        self.options_edit = QLineEdit(self)
        self.options_edit.setPlaceholderText(self.tr("e.g. --proxy or --find-links, as on pip's command line"))

        form = QFormLayout()
        form.addRow(self.tr("Install into"), self.target_label)
        form.addRow(self.tr("Python running pip"), self.python_label)
        form.addRow(self.tr("Extra pip options"), self.options_edit)

        self.output = QPlainTextEdit(self)
        self.output.setReadOnly(True)
        self.output.setMinimumHeight(120)
        self.progress = QProgressBar(self)
        self.progress.setRange(0, 0)
        self.progress.setVisible(False)
        self.result_label = QLabel(self)
        self.result_label.setWordWrap(True)

        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        self.install_button = self.buttons.addButton(self.tr("Install"), QDialogButtonBox.ButtonRole.ActionRole)
        # ActionRole, not Cancel's RejectRole: stopping pip keeps the dialog open, with the "Cancelled: …" line in view
        self.cancel_button = self.buttons.addButton(self.tr("Cancel"), QDialogButtonBox.ButtonRole.ActionRole)
        self.install_button.clicked.connect(self.install)
        self.cancel_button.clicked.connect(self.runner.cancel)
        self.buttons.rejected.connect(self.reject)

        for signal in (self.build_combo.currentIndexChanged, self.index_edit.textChanged, self.options_edit.textChanged):
            signal.connect(self._preview)

        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addWidget(self.table)
        layout.addLayout(form)
        layout.addWidget(self.torch_box)
        layout.addWidget(self.output, 1)
        layout.addWidget(self.progress)
        layout.addWidget(self.result_label)
        layout.addWidget(self.buttons)

    # -- state ------------------------------------------------------------------------------

    def refresh(self) -> None:
        """Check the requirements again and show them, with the commands that would install what is missing."""
        self._check()
        self._preview()

    def _check(self) -> None:
        self.statuses = dependency_status(self.requirements)
        self.table.setRowCount(len(self.statuses))
        for row, status in enumerate(self.statuses):
            found = self.tr("missing") if status.found is None else (status.found or self.tr("unknown version"))
            action = self.tr("OK") if status.ok else (self.tr("install") if status.found is None else self.tr("upgrade"))
            cells = (status.requirement.name, f">= {status.requirement.minimum}", found, action)
            for column, text in enumerate(cells):
                self.table.setItem(row, column, QTableWidgetItem(text))
        self.table.resizeColumnsToContents()
        self.table.resizeRowsToContents()
        header = self.table.horizontalHeader()
        rows = self.table.verticalHeader().length()
        self.table.setFixedHeight(header.sizeHint().height() + rows + 2 * self.table.frameWidth())
        torch_needed = any(s.requirement.module == "torch" and not s.ok for s in self.statuses)
        self.torch_box.setVisible(torch_needed and default_torch_build(self.platform) is not None)
        self._set_running(False)

    def needed(self) -> list[DependencyStatus]:
        """The requirements that are missing or too old."""
        return [status for status in self.statuses if not status.ok]

    def torch_build(self) -> TorchBuild:
        """The torch build chosen in the dialog."""
        return self.build_combo.currentData()

    def commands(self) -> list[PipCommand]:
        """The pip commands for the settings shown; :class:`InputError` with one line when they cannot work."""
        if self.python is None:
            names = [status.requirement.name for status in self.needed()]
            raise InputError(f"No Python interpreter found next to QGIS ({sys.executable}): " + install_hint(names))
        index_url = ""
        if not self.torch_box.isHidden():
            index_url = self.index_edit.text().strip()
            problem = torch_index_problem(self.platform, self.torch_build(), index_url)
            if problem:
                raise InputError(problem)
        try:
            options = split_options(self.options_edit.text(), self.platform)
        except ValueError as error:
            raise InputError(f"Extra pip options cannot be read: {error}") from None
        return pip_commands(self.python, self.target, self.statuses, index_url, options)

    # -- actions ----------------------------------------------------------------------------

    def install(self) -> bool:
        """Start pip in the background; False (with the reason shown) when nothing can start."""
        if self.runner.is_running() or not self.needed():
            return False
        try:
            commands = self.commands()
        except InputError:
            self._preview()  # the reason, where the commands would be
            return False
        self.output.clear()
        self.result_label.setText(self.tr("Installing into {}…").format(self.target))
        self._set_running(True)
        self.runner.start(commands)
        return True

    def _preview(self, *_: Any) -> None:
        if self.runner.is_running():
            return
        if not self.needed():
            self.output.setPlainText(self.tr("Every requirement is met: nothing to install."))
            return
        if not self.torch_box.isHidden():
            self.build_hint.setText(self._build_hint())
        try:
            text = self.tr("Will run:\n") + "\n".join(command.display() for command in self.commands())
            ready = True
        except InputError as error:
            text = self.tr("Cannot install yet: {}").format(error)
            ready = False
        self.output.setPlainText(text)
        self.install_button.setEnabled(ready)

    def _build_hint(self) -> str:
        build = self.torch_build()
        if build == default_torch_build(self.platform):
            return self.tr(
                "pip's default index has the {} build of torch for this platform: leave the URL empty."
            ).format(build.value)
        ending = "/whl/cpu" if build == TorchBuild.CPU else "/whl/cu126 or another CUDA version"
        return self.tr(
            "Paste the URL given after --index-url in PyTorch's install instructions (it ends in {})."
        ).format(ending)

    def _append(self, text: str) -> None:
        self.output.moveCursor(QTextCursor.MoveOperation.End)
        self.output.insertPlainText(text)
        self.output.ensureCursorVisible()

    def _done(self, ok: bool, message: str) -> None:
        loaded = [s.requirement.name for s in self.needed() if s.requirement.module in sys.modules]
        activate_target_folder(self.target)
        self._check()  # the table only: pip's output stays in view
        if not ok:
            self.result_label.setText(message)
        elif self.needed():
            left = ", ".join(f"{s.requirement.name} (found {s.found or 'nothing'})" for s in self.needed())
            self.result_label.setText(self.tr("pip succeeded, but these are still not usable: {}").format(left))
        elif loaded:
            self.result_label.setText(
                self.tr("Installed into {}; restart QGIS to load the new {}.").format(self.target, ", ".join(loaded))
            )
        else:
            self.result_label.setText(self.tr("Installed into {}: every requirement is met.").format(self.target))

    def _set_running(self, running: bool) -> None:
        self.install_button.setEnabled(not running and bool(self.needed()))
        self.cancel_button.setEnabled(running)
        self.buttons.button(QDialogButtonBox.StandardButton.Close).setEnabled(not running)
        for widget in (self.build_combo, self.index_edit, self.options_edit):
            widget.setEnabled(not running)
        self.progress.setVisible(running)

    def reject(self) -> None:
        """Closing the dialog (Close, Escape, the window's close button) stops pip rather than leaving it unseen."""
        if self.runner.is_running():
            self.runner.cancel()
            self.runner.process.waitForFinished(3000)
        super().reject()
