"""One code base for Qt5 (QGIS 3) and Qt6 (QGIS 4): a static check of every Python file of the plugin,
its tests and benchmarks.

* Qt is imported only through ``qgis.PyQt``: a bare ``PyQt5``/``PyQt6``/``PySide``/``sip`` import
  works on one of the two only.
* Enums are fully scoped (``Qt.AlignmentFlag.AlignLeft``, ``Qgis.MessageLevel.Info``): Qt6 and
  QGIS 4 dropped the unscoped spellings (``Qt.AlignLeft``, ``Qgis.Info``).

The sources are parsed with ``ast``; names imported from ``qgis`` are resolved in the installed QGIS
(Qt5) to tell an enum member (``Qt.AlignLeft``) from a class, method or constant of the same shape.
"""

from __future__ import annotations

import ast
import enum
import importlib
import os

import pytest

pytestmark = pytest.mark.qgis

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: What is scanned: the plugin as packaged (``make package``), its tests and benchmarks.
SOURCES = ("__init__.py", "plugin.py", "algorithms", "ui", "core", "tests", "benchmarks")
#: Top-level modules that tie code to one Qt major version (``qgis.PyQt`` picks the right one), and
#: ``osgeo.gdal_array`` (rasters are read through rasterio only).
FORBIDDEN_IMPORTS = ("PyQt5", "PyQt6", "PySide2", "PySide6", "sip", "osgeo.gdal_array")


def python_files() -> list[str]:
    files = []
    for entry in SOURCES:
        path = os.path.join(ROOT, entry)
        if os.path.isfile(path):
            files.append(path)
        for folder, _, names in os.walk(path):
            files += [os.path.join(folder, name) for name in sorted(names) if name.endswith(".py")]
    return files


def forbidden_imports(tree: ast.AST) -> list[str]:
    """``import X`` / ``from X import …`` of a ``FORBIDDEN_IMPORTS`` module, as ``X (line N)``."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules = [node.module]
        else:
            continue
        for module in modules:
            if any(module == bad or module.startswith(bad + ".") for bad in FORBIDDEN_IMPORTS):
                found.append(f"{module} (line {node.lineno})")
    return found


def qgis_names(tree: ast.AST) -> dict[str, object]:
    """Local name → object for every name the file imports from ``qgis`` (in any scope)."""
    names: dict[str, object] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == "qgis":
            module = importlib.import_module(node.module)
            for alias in node.names:
                value = getattr(module, alias.name, None)
                if value is None and hasattr(module, "__path__"):  # a submodule: from qgis.PyQt import QtCore
                    value = importlib.import_module(f"{node.module}.{alias.name}")
                if value is not None:  # else a name of a later QGIS or Qt, imported under a guard
                    names[alias.asname or alias.name] = value
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "qgis":
                    module = importlib.import_module(alias.name)
                    names[alias.asname] = module if alias.asname else importlib.import_module("qgis")
    return names


def resolve(node: ast.expr, names: dict[str, object]) -> object | None:
    """The object a ``Name`` or dotted ``Attribute`` chain stands for, or ``None`` if unknown."""
    if isinstance(node, ast.Name):
        return names.get(node.id)
    if isinstance(node, ast.Attribute):
        owner = resolve(node.value, names)
        return None if owner is None else getattr(owner, node.attr, None)
    return None


def is_enum_type(value: object) -> bool:
    """An enum class: sip's enum type under Qt5, Python's ``enum`` under Qt6 (and for some QGIS enums)."""
    from qgis.PyQt.QtCore import Qt

    return isinstance(value, type(Qt.AlignmentFlag)) or (isinstance(value, type) and issubclass(value, enum.Enum))


def unscoped_enums(tree: ast.AST) -> list[str]:
    """``Class.Member`` where ``Member`` is an enum member of ``Class`` rather than of an enum type,
    as ``Class.Member (line N): use Class.Enum.Member``."""
    names = qgis_names(tree)
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute):
            continue
        holder = resolve(node.value, names)
        if not isinstance(holder, type) or is_enum_type(holder):
            continue
        member = getattr(holder, node.attr, None)
        if is_enum_type(type(member)):
            owner = ast.unparse(node.value)
            found.append(f"{owner}.{node.attr} (line {node.lineno}): use {owner}.{type(member).__name__}.{node.attr}")
    return found


def test_the_rules_catch_bare_qt_imports_and_unscoped_enums() -> None:
    tree = ast.parse(
        "from PyQt5.QtCore import QTimer\n"
        "import PyQt6.QtWidgets\n"
        "from qgis.PyQt.QtCore import Qt\n"
        "from qgis.PyQt import QtWidgets\n"
        "from qgis.core import Qgis, QgsProcessing, QgsTask\n"
        "def f(label, iface):\n"
        "    label.setAlignment(Qt.AlignLeft | Qt.AlignmentFlag.AlignTop)\n"
        "    iface.messageBar().pushMessage('x', Qgis.Warning, QgsProcessing.TEMPORARY_OUTPUT)\n"
        "    return QtWidgets.QMessageBox.Ok, QgsTask.Flag.CanCancel, Qt.CheckState.Checked, QgsTask.fromFunction\n"
    )
    assert forbidden_imports(tree) == ["PyQt5.QtCore (line 1)", "PyQt6.QtWidgets (line 2)"]
    assert sorted(unscoped_enums(tree)) == [
        "Qgis.Warning (line 8): use Qgis.MessageLevel.Warning",
        "Qt.AlignLeft (line 7): use Qt.AlignmentFlag.AlignLeft",
        "QtWidgets.QMessageBox.Ok (line 9): use QtWidgets.QMessageBox.StandardButton.Ok",
    ]


def test_qt_only_through_qgis_pyqt_and_every_enum_scoped() -> None:
    files = python_files()
    assert {"plugin.py", "dialog.py", "base.py"} <= {os.path.basename(f) for f in files}
    problems = []
    for path in files:
        with open(path, encoding="utf-8") as handle:
            tree = ast.parse(handle.read(), path)
        where = os.path.relpath(path, ROOT)
        problems += [f"{where}: imports {use}" for use in forbidden_imports(tree)]
        problems += [f"{where}: unscoped {use}" for use in unscoped_enums(tree)]
    assert problems == []
