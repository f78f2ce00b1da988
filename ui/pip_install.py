"""What the dependency installer runs: the plugin's private package folder, a real Python for pip, the pip commands.

The packages go into a folder private to the plugin, ``<QGIS profile>/python/internal_sr_deps/pythonX.Y``
(e.g. ``~/.local/share/QGIS/QGIS3/profiles/default/python/internal_sr_deps/python3.11`` on Linux,
``%APPDATA%\\QGIS\\QGIS3\\profiles\\default\\python\\internal_sr_deps\\python3.12`` on Windows): outside
the plugin's own folder, so that updating the plugin keeps them, and per Python version, because torch's
wheels are built for one. The plugin puts that folder first on ``sys.path`` when it starts, so a package
installed there is found before an older copy in QGIS's own Python.

Nothing here needs a running QGIS except :func:`target_folder` without an explicit profile folder.
"""

from __future__ import annotations

import importlib
import os
import shlex
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum

from ..core.deps import DependencyStatus, release

#: Name of the plugin's package folder inside ``<profile>/python``.
DEPS_FOLDER = "internal_sr_deps"
#: Import names of the requirements that depend on numpy (torch does not).
NUMPY_USERS = ("rasterio", "skimage")


def target_folder(profile_folder: str | None = None, version: tuple[int, int] = sys.version_info[:2]) -> str:
    """The private package folder for this QGIS profile and Python version (it may not exist yet)."""
    if profile_folder is None:
        from qgis.core import QgsApplication

        profile_folder = QgsApplication.qgisSettingsDirPath()
    return os.path.join(profile_folder, "python", DEPS_FOLDER, f"python{version[0]}.{version[1]}")


def activate_target_folder(folder: str) -> None:
    """Put ``folder`` first on ``sys.path`` (once) and forget what the import system cached about it.

    Safe before the folder exists; call it again after an install so the new packages are found.
    """
    if folder not in sys.path:
        sys.path.insert(0, folder)
    sys.path_importer_cache.pop(folder, None)
    importlib.invalidate_caches()


def python_names(platform: str, version: tuple[int, int]) -> tuple[str, ...]:
    """File names a Python interpreter has on ``platform``, most specific first."""
    if platform == "win32":
        return ("python.exe", "python3.exe", f"python{version[0]}.{version[1]}.exe")
    return (f"python{version[0]}.{version[1]}", "python3", "python")


def is_within(path: str, folder: str) -> bool:
    """Whether ``path`` lies inside ``folder`` (compared as absolute, case-normalised paths)."""
    path, folder = (os.path.normcase(os.path.abspath(p)) for p in (path, folder))
    return path.startswith(folder.rstrip(os.sep) + os.sep)


def find_python(
    executable: str | None = sys.executable,
    exec_prefix: str = sys.exec_prefix,
    platform: str = sys.platform,
    version: tuple[int, int] = sys.version_info[:2],
    is_file: Callable[[str], bool] = os.path.isfile,
) -> str | None:
    """The interpreter that runs pip for the Python QGIS embeds, or None when none is found.

    ``sys.executable`` when it is a Python inside ``sys.exec_prefix``. Inside QGIS it may be QGIS
    itself (``qgis-bin.exe`` on Windows, ``QGIS.app/Contents/MacOS/QGIS`` on macOS), or, where Python
    derived it from ``PATH``, another Python that comes first there. Then the interpreter is looked
    for in ``sys.exec_prefix`` (OSGeo4W: ``apps\\Python312\\python.exe``), its ``bin`` folder, and the
    executable's folder and its ``bin`` (macOS bundle: ``Contents/MacOS/bin/python3``).
    """
    executable = executable or ""  # sys.executable may be empty (or None) in an embedded Python
    names = python_names(platform, version)
    python_named = os.path.basename(executable).lower() in names
    if python_named and is_within(executable, exec_prefix) and is_file(executable):
        return executable
    folders = [exec_prefix, os.path.join(exec_prefix, "bin")]
    if executable:
        folders += [os.path.dirname(executable), os.path.join(os.path.dirname(executable), "bin")]
    for folder in folders:
        for name in names:
            candidate = os.path.join(folder, name)
            if is_file(candidate):
                return candidate
    return None


class TorchBuild(Enum):
    """The torch build to install."""

    CPU = "CPU"
    CUDA = "CUDA"


def default_torch_build(platform: str) -> TorchBuild | None:
    """The build pip's default index gives on ``platform``; None where there is only one (macOS)."""
    return {"linux": TorchBuild.CUDA, "win32": TorchBuild.CPU}.get(platform)


def torch_index_problem(platform: str, build: TorchBuild, index_url: str) -> str | None:
    """Why the torch index settings cannot give ``build``, in one line; None when they can."""
    default = default_torch_build(platform)
    if default is None or build == default or index_url.strip():
        return None
    return (
        f"The {build.value} build of torch is not on pip's default index for this platform: paste the "
        f"index URL that PyTorch's install instructions give for it (pip's --index-url)."
    )


def split_options(text: str, platform: str = sys.platform) -> list[str]:
    """Split extra pip options as a shell of ``platform`` would; ValueError for an unclosed quote.

    On Windows, as its command lines are split: backslashes stay (they separate folders), double quotes
    group what they enclose, also inside a word (``--find-links="C:\\My Wheels"``), and are removed.
    """
    if platform != "win32":
        return shlex.split(text)
    words: list[str] = []
    word: list[str] | None = None  # None: between words
    quoted = False
    for char in text:
        if char in " \t" and not quoted:
            if word is not None:
                words.append("".join(word))
            word = None
            continue
        word = [] if word is None else word
        if char == '"':
            quoted = not quoted
        else:
            word.append(char)
    if quoted:
        raise ValueError("No closing quotation")
    return words if word is None else [*words, "".join(word)]


@dataclass(frozen=True)
class PipCommand:
    """One pip run: ``program`` with ``arguments``."""

    program: str
    arguments: tuple[str, ...]

    def display(self) -> str:
        """The command as a user would type it in a shell of this platform."""
        words = [self.program, *self.arguments]
        return subprocess.list2cmdline(words) if sys.platform == "win32" else shlex.join(words)


def pip_commands(
    python: str,
    target: str,
    statuses: Sequence[DependencyStatus],
    torch_index_url: str = "",
    extra_options: Sequence[str] = (),
) -> list[PipCommand]:
    """The pip runs that install every requirement of ``statuses`` that is not met into ``target``.

    torch comes from ``torch_index_url`` (pip's ``--index-url``) when one is given, in a run of its own
    since that index has torch and its dependencies but not rasterio or scikit-image; the rest comes
    from pip's configured index. ``--target`` installs every dependency again, so where numpy is already present and new
    enough it is pinned to that version: the copy in ``target`` then matches the numpy that QGIS's own
    compiled modules were built against; a numpy 1.x too old is upgraded within 1.x (``numpy<2``). ``extra_options`` (e.g. ``--proxy``, ``--find-links``) go to
    every run.
    """
    needed = [status.requirement for status in statuses if not status.ok]
    base = (
        "-m", "pip", "install", "--upgrade", "--target", target,
        "--disable-pip-version-check", "--no-input", "--progress-bar", "off", *extra_options,
    )
    index_url = torch_index_url.strip()
    commands = []
    rest = needed
    if index_url and any(requirement.module == "torch" for requirement in needed):
        torch_spec = next(requirement.spec for requirement in needed if requirement.module == "torch")
        commands.append(PipCommand(python, (*base, "--index-url", index_url, torch_spec)))
        rest = [requirement for requirement in needed if requirement.module != "torch"]
    if rest:
        pins = []
        if any(requirement.module in NUMPY_USERS for requirement in rest):
            pins = [f"numpy=={s.found}" for s in statuses if s.requirement.module == "numpy" and s.ok and s.found]
        if any(s.requirement.module == "numpy" and not s.ok and s.found and release(s.found)[:1] == (1,) for s in statuses):
            pins = ["numpy<2"]  # numpy 1.x too old: stay on 1.x, which QGIS's own compiled modules were built for
        commands.append(PipCommand(python, (*base, *(requirement.spec for requirement in rest), *pins)))
    return commands
