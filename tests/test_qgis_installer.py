"""The dependency installer: version checks, the Python that runs pip, pip's command lines, real pip runs.

The pip runs install a wheel built here (no network: ``--no-index --find-links``) into a temporary
folder through the dialog, the way a user's click does, and wait for the QProcess in an event loop.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import os
import sys
import tomllib
import zipfile

import pytest
from qgis.PyQt.QtCore import QEventLoop, QTimer

from internal_sr.core.deps import REQUIREMENTS, DependencyStatus, Requirement, check, meets, release
from internal_sr.core.errors import InputError
from internal_sr.ui.installer import InstallerDialog
from internal_sr.ui.pip_install import (
    TorchBuild,
    find_python,
    pip_commands,
    split_options,
    target_folder,
    torch_index_problem,
)

pytestmark = pytest.mark.qgis

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TORCH, NUMPY, RASTERIO, SKIMAGE = REQUIREMENTS
PIP_RUN_SECONDS = 60


def test_pyproject_states_the_plugins_requirement_ranges() -> None:
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as handle:
        dependencies = tomllib.load(handle)["project"]["dependencies"]
    assert sorted(dependencies) == sorted(requirement.spec for requirement in REQUIREMENTS)


def test_versions_compare_by_release_numbers() -> None:
    assert release("2.13.0+cpu") == (2, 13) and release("2.3") == release("2.3.0")
    assert release("1.10") > release("1.9") and release("0.19.3") < release("0.20")
    # a pre-release of the minimum is not the minimum; one of a later release is later
    assert not meets("2.3.0rc1", "2.3") and not meets("2.3.0a0+git", "2.3") and not meets("2.3.0.dev2", "2.3")
    assert meets("2.4.0rc1", "2.3") and meets("2.13.0+cpu", "2.3") and meets("2.3", "2.3") and not meets("2.2.9", "2.3")
    assert DependencyStatus(TORCH, "2.13.0+cu130").ok and DependencyStatus(TORCH, "2.3.0").ok
    assert not DependencyStatus(TORCH, "2.2.2").ok and not DependencyStatus(SKIMAGE, "0.19.3").ok
    assert not DependencyStatus(TORCH, None).ok


def test_check_finds_missing_too_old_ok_and_unversioned_modules(tmp_path, monkeypatch) -> None:
    installed = check(NUMPY).found
    assert installed and check(NUMPY).ok  # the test venv has numpy
    assert check(Requirement("no_such_module_isr", "no-such-module-isr", "1.0")) == DependencyStatus(
        Requirement("no_such_module_isr", "no-such-module-isr", "1.0"), None
    )
    too_old = check(Requirement("numpy", "numpy", "999"))
    assert too_old.found == installed and not too_old.ok
    (tmp_path / "bare_module_isr.py").write_text("")
    monkeypatch.setattr(sys, "path", [str(tmp_path), *sys.path])
    bare = check(Requirement("bare_module_isr", "bare-module-isr", "1.0"))
    assert bare.found == "" and bare.ok  # importable without a version record: taken as it is


def touch(path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("")
    return str(path)


def test_find_python_uses_a_python_executable_as_it_is(tmp_path) -> None:
    python = touch(tmp_path / "venv" / "bin" / "python3")
    assert find_python(python, str(tmp_path / "venv"), "linux", (3, 11), os.path.isfile) == python


def test_find_python_skips_another_python_first_on_path(tmp_path) -> None:
    other = touch(tmp_path / "conda" / "bin" / "python3")  # what PATH gave, not QGIS's Python
    own = touch(tmp_path / "usr" / "bin" / "python3.11")
    assert find_python(other, str(tmp_path / "usr"), "linux", (3, 11), os.path.isfile) == own


def test_find_python_looks_next_to_qgis_on_windows(tmp_path) -> None:
    qgis = touch(tmp_path / "OSGeo4W" / "bin" / "qgis-bin.exe")
    prefix = tmp_path / "OSGeo4W" / "apps" / "Python312"
    prefix.mkdir(parents=True)
    assert find_python(qgis, str(prefix), "win32", (3, 12), os.path.isfile) is None
    python3 = touch(prefix / "python3.exe")
    assert find_python(qgis, str(prefix), "win32", (3, 12), os.path.isfile) == python3
    python = touch(prefix / "python.exe")
    assert find_python(qgis, str(prefix), "win32", (3, 12), os.path.isfile) == python


def test_find_python_finds_the_bundled_python_on_macos(tmp_path) -> None:
    macos = tmp_path / "QGIS.app" / "Contents" / "MacOS"
    qgis = touch(macos / "QGIS")
    prefix = tmp_path / "QGIS.app" / "Contents" / "Frameworks"
    prefix.mkdir()
    python = touch(macos / "bin" / "python3")
    assert find_python(qgis, str(prefix), "darwin", (3, 9), os.path.isfile) == python
    missing = str(macos / "bin" / "python3.9")  # named like Python but absent: looked for elsewhere
    assert find_python(missing, str(prefix), "darwin", (3, 9), os.path.isfile) == python


def test_target_folder_is_per_profile_and_python_version() -> None:
    folder = target_folder(os.path.join("profiles", "default"), (3, 12))
    assert folder == os.path.join("profiles", "default", "python", "internal_sr_deps", "python3.12")


STATUSES = [
    DependencyStatus(TORCH, None),
    DependencyStatus(NUMPY, "1.24.2"),
    DependencyStatus(RASTERIO, "1.2.10"),
    DependencyStatus(SKIMAGE, "0.25.2"),
]
COMMON = ["-m", "pip", "install", "--upgrade", "--target", "/deps"]


def test_pip_commands_for_the_default_index_and_for_a_torch_index() -> None:
    (default,) = pip_commands("/py", "/deps", STATUSES)
    assert default.program == "/py" and list(default.arguments[:6]) == COMMON
    assert default.arguments[-3:] == ("torch>=2.3", "rasterio>=1.3", "numpy==1.24.2")  # numpy kept at QGIS's version
    assert "--index-url" not in default.arguments

    torch, rest = pip_commands("/py", "/deps", STATUSES, " https://torch.index/whl/cu126 ", ["--proxy", "p:8080"])
    assert list(torch.arguments[:6]) == COMMON and torch.arguments[-3:] == ("--index-url", "https://torch.index/whl/cu126", "torch>=2.3")
    assert rest.arguments[-2:] == ("rasterio>=1.3", "numpy==1.24.2") and "--index-url" not in rest.arguments
    for command in (torch, rest):
        proxy = command.arguments.index("--proxy")
        assert command.arguments[proxy + 1] == "p:8080"

    torch_only = [DependencyStatus(TORCH, "2.1.0"), DependencyStatus(NUMPY, "1.24.2")]
    (command,) = pip_commands("/py", "/deps", torch_only, "https://torch.index/whl/cpu")
    assert command.arguments[-1] == "torch>=2.3" and "numpy==1.24.2" not in command.arguments  # torch needs no numpy
    assert pip_commands("/py", "/deps", [DependencyStatus(TORCH, "2.3.1")], "https://torch.index/whl/cpu") == []

    # a numpy 1.x too old (Ubuntu 22.04's 1.21.5) is upgraded within 1.x: QGIS's compiled modules need 1.x
    (command,) = pip_commands("/py", "/deps", [DependencyStatus(NUMPY, "1.21.5"), DependencyStatus(RASTERIO, None)])
    assert command.arguments[-3:] == ("numpy>=1.23", "rasterio>=1.3", "numpy<2")


def test_extra_options_split_as_the_platforms_shell_does() -> None:
    assert split_options("--proxy 'http://u:p@proxy:8080' --find-links /my\\ wheels", "linux") == [
        "--proxy", "http://u:p@proxy:8080", "--find-links", "/my wheels"
    ]
    assert split_options('--find-links "C:\\My Wheels" --no-index', "win32") == ["--find-links", "C:\\My Wheels", "--no-index"]
    assert split_options('--find-links="C:\\My Wheels"  --proxy ""', "win32") == ["--find-links=C:\\My Wheels", "--proxy", ""]
    with pytest.raises(ValueError):
        split_options('--find-links "C:\\My Wheels', "win32")
    with pytest.raises(ValueError):
        split_options("--proxy 'unclosed", "linux")


def test_torch_index_needed_only_for_the_build_the_default_index_lacks() -> None:
    assert torch_index_problem("linux", TorchBuild.CUDA, "") is None
    assert "CPU build" in torch_index_problem("linux", TorchBuild.CPU, "")
    assert torch_index_problem("linux", TorchBuild.CPU, "https://torch.index/whl/cpu") is None
    assert torch_index_problem("win32", TorchBuild.CPU, "") is None
    assert "CUDA build" in torch_index_problem("win32", TorchBuild.CUDA, " ")
    assert torch_index_problem("darwin", TorchBuild.CPU, "") is None


def test_dialog_offers_the_torch_build_where_there_are_two(qgis_app, tmp_path) -> None:
    needs_torch = (Requirement("torch", "torch", "999"), NUMPY)
    windows = InstallerDialog(requirements=needs_torch, target=str(tmp_path), python="/py", platform="win32")
    macos = InstallerDialog(requirements=needs_torch, target=str(tmp_path), python="/py", platform="darwin")
    try:
        assert not windows.torch_box.isHidden() and macos.torch_box.isHidden()
        assert windows.torch_build() == TorchBuild.CPU and len(windows.commands()) == 1
        windows.build_combo.setCurrentIndex(windows.build_combo.findData(TorchBuild.CUDA))
        with pytest.raises(InputError, match="CUDA build"):
            windows.commands()
        assert "Cannot install yet" in windows.output.toPlainText() and not windows.install_button.isEnabled()
        assert not windows.install() and "Cannot install yet" in windows.output.toPlainText()
        windows.index_edit.setText("https://torch.index/whl/cu126")
        assert windows.install_button.isEnabled() and not windows.result_label.text()  # no stale refusal left
        windows.options_edit.setText('--proxy "unterminated')
        assert "cannot be read" in windows.output.toPlainText() and not windows.install_button.isEnabled()
        windows.options_edit.setText("")
        (command,) = windows.commands()
        assert command.arguments[-3:] == ("--index-url", "https://torch.index/whl/cu126", "torch>=999")
        assert "--index-url" in windows.output.toPlainText()  # the preview shows what will run
        assert [windows.table.item(0, column).text() for column in range(4)][1:] == [">= 999", check(TORCH).found, "upgrade"]
    finally:
        windows.deleteLater()
        macos.deleteLater()


def build_wheel(folder, name: str, version: str) -> str:
    """A minimal pure-Python wheel of package ``name`` (whose ``VERSION`` is ``version``) in ``folder``."""
    module = name.replace("-", "_")
    info = f"{module}-{version}.dist-info"
    files = {
        f"{module}/__init__.py": f"VERSION = {version!r}\n",
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(text.encode())}")
    files[f"{info}/RECORD"] = "\n".join([*record, f"{info}/RECORD,,"]) + "\n"
    wheel = os.path.join(folder, f"{module}-{version}-py3-none-any.whl")
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, text in files.items():
            archive.writestr(path, text)
    return wheel


def run_to_end(dialog: InstallerDialog, cancel: bool = False) -> list[tuple[str, object]]:
    """Click Install (then Cancel, with ``cancel``) and wait, in an event loop, until the runner is done.

    Returns the runner's signals in order.
    """
    events: list[tuple[str, object]] = []
    loop = QEventLoop()
    dialog.runner.output.connect(lambda text: events.append(("output", text)))
    dialog.runner.done.connect(lambda ok, message: (events.append(("done", (ok, message))), loop.quit()))
    assert dialog.install()
    assert dialog.runner.is_running() and not dialog.install_button.isEnabled()  # returned at once
    if cancel:
        dialog.cancel_button.click()
    if not dialog.runner.is_running():  # a kill before the process ran ends it at once
        return events
    QTimer.singleShot(PIP_RUN_SECONDS * 1000, loop.quit)
    loop.exec()
    assert events and events[-1][0] == "done", "pip did not finish in time"
    return events


def test_installs_in_the_background_streaming_pip_output(qgis_app, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(sys, "path", list(sys.path))  # the dialog puts the target folder first
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    build_wheel(str(wheels), "tinypkg-isr", "1.2")
    target = tmp_path / "deps"
    requirement = Requirement("tinypkg_isr", "tinypkg-isr", "1.1")
    dialog = InstallerDialog(requirements=(requirement,), target=str(target))
    try:
        assert [dialog.table.item(0, column).text() for column in range(4)] == ["tinypkg-isr", ">= 1.1", "missing", "install"]
        dialog.options_edit.setText(f"--no-index --find-links {wheels}")
        assert str(target) in dialog.output.toPlainText() and "tinypkg-isr>=1.1" in dialog.output.toPlainText()
        events = run_to_end(dialog)
        streamed = "".join(text for kind, text in events if kind == "output")
        assert events[0][1].startswith("$ ") and "tinypkg-isr>=1.1" in events[0][1]
        assert "Successfully installed tinypkg-isr-1.2" in streamed
        assert events[-1][1] == (True, "")
        assert "Successfully installed tinypkg-isr-1.2" in dialog.output.toPlainText()
        assert dialog.result_label.text() == f"Installed into {target}: every requirement is met."
        assert [dialog.table.item(0, column).text() for column in (2, 3)] == ["1.2", "OK"]
        spec = importlib.util.find_spec("tinypkg_isr")  # found now, from the target folder
        assert spec is not None and spec.origin == str(target / "tinypkg_isr" / "__init__.py")
        assert not dialog.install_button.isEnabled() and not dialog.cancel_button.isEnabled()
    finally:
        dialog.deleteLater()


def test_failed_install_reports_pips_error(qgis_app, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(sys, "path", list(sys.path))
    target = tmp_path / "deps"
    requirement = Requirement("nonexistent_isr_pkg", "nonexistent-isr-pkg", "1.0")
    dialog = InstallerDialog(requirements=(requirement,), target=str(target))
    try:
        dialog.options_edit.setText("--no-index")
        events = run_to_end(dialog)
        ok, message = events[-1][1]
        assert not ok
        assert message == "pip failed (exit code 1): ERROR: No matching distribution found for nonexistent-isr-pkg>=1.0"
        assert dialog.result_label.text() == message and "\n" not in message
        assert dialog.install_button.isEnabled()  # one can try again
        assert not target.exists() or not any(target.iterdir())
    finally:
        dialog.deleteLater()


def test_cancel_and_a_python_that_does_not_start_are_reported(qgis_app, tmp_path) -> None:
    requirement = Requirement("nonexistent_isr_pkg", "nonexistent-isr-pkg", "1.0")
    broken = InstallerDialog(requirements=(requirement,), target=str(tmp_path), python=str(tmp_path / "no-python"))
    cancelled = InstallerDialog(requirements=(requirement,), target=str(tmp_path))
    try:
        events = run_to_end(broken)
        ok, message = events[-1][1]
        assert not ok and message.startswith(f"Could not start {tmp_path / 'no-python'}")

        cancelled.options_edit.setText("--no-index")
        cancelled.show()
        ok, message = run_to_end(cancelled, cancel=True)[-1][1]
        assert not ok and message.startswith("Cancelled") and cancelled.result_label.text() == message
        assert cancelled.isVisible()  # Cancel stops pip; the dialog stays open to show the line above
        assert cancelled.install_button.isEnabled() and not cancelled.cancel_button.isEnabled()
    finally:
        broken.deleteLater()
        cancelled.deleteLater()
