"""The engine's runtime requirements and a check of them that imports nothing heavy.

:data:`REQUIREMENTS` is the one list of supported version ranges: ``pyproject.toml`` states the same
ranges (a test compares them), the plugin checks them before loading the engine and its installer
asks pip for them.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Requirement:
    """A package the engine imports, with the lowest version it supports."""

    module: str  #: import name, e.g. ``skimage``
    name: str  #: distribution name as pip spells it, e.g. ``scikit-image``
    minimum: str  #: lowest supported release, e.g. ``0.20``

    @property
    def spec(self) -> str:
        """The pip requirement, e.g. ``scikit-image>=0.20``."""
        return f"{self.name}>={self.minimum}"


REQUIREMENTS: tuple[Requirement, ...] = (
    Requirement("torch", "torch", "2.3"),
    Requirement("numpy", "numpy", "1.23"),
    Requirement("rasterio", "rasterio", "1.3"),
    Requirement("skimage", "scikit-image", "0.20"),
)


def release(version: str) -> tuple[int, ...]:
    """The numeric release of a version string: ``"2.13.0+cpu"`` → ``(2, 13, 0)``, ``"1.4rc1"`` → ``(1, 4)``.

    Trailing zeros are dropped so that ``2.3`` and ``2.3.0`` compare equal; text without a leading
    number gives ``()``.
    """
    numbers: list[int] = []
    for part in version.split("+")[0].split("."):
        digits = re.match(r"\d+", part)
        if digits is None:
            break
        numbers.append(int(digits.group()))
        if digits.end() < len(part):
            break
    while numbers and numbers[-1] == 0:
        numbers.pop()
    return tuple(numbers)


def prerelease(version: str) -> bool:
    """Whether ``version`` is a pre-release (``2.3.0rc1``, ``2.3.0a0+git``, ``1.4.dev2``): the local part after ``+`` aside."""
    return re.search(r"(\d|\.)(a|b|c|rc|alpha|beta|pre|preview|dev)\d*", version.split("+")[0].lower()) is not None


def meets(version: str, minimum: str) -> bool:
    """Whether release ``version`` is ``minimum`` or later; a pre-release of ``minimum`` itself is earlier."""
    found, wanted = release(version), release(minimum)
    return found > wanted or (found == wanted and not prerelease(version))


@dataclass(frozen=True)
class DependencyStatus:
    """What the running Python has of one requirement."""

    requirement: Requirement
    found: str | None  #: installed version; None when the module cannot be imported; "" when it has no version record

    @property
    def ok(self) -> bool:
        """Importable and not older than the minimum (a module without a version record is taken as it is)."""
        if self.found is None:
            return False
        return not self.found or meets(self.found, self.requirement.minimum)


def check(requirement: Requirement) -> DependencyStatus:
    """Find ``requirement`` on ``sys.path`` without importing it; the version comes from its metadata."""
    if importlib.util.find_spec(requirement.module) is None:
        return DependencyStatus(requirement, None)
    try:
        return DependencyStatus(requirement, importlib.metadata.version(requirement.name))
    except importlib.metadata.PackageNotFoundError:
        return DependencyStatus(requirement, "")


def dependency_status(requirements: tuple[Requirement, ...] = REQUIREMENTS) -> list[DependencyStatus]:
    """The status of every requirement, in the order of ``requirements``."""
    return [check(requirement) for requirement in requirements]


def missing_dependencies() -> list[str]:
    """Names (as pip spells them) of the required packages that are missing or older than supported."""
    return [status.requirement.name for status in dependency_status() if not status.ok]


def install_hint(missing: list[str]) -> str:
    """One line telling the user how to install ``missing`` (pip names) into the Python that runs QGIS:
    with their lowest supported versions and ``--upgrade``, so that a package present but too old is
    replaced (pip leaves a bare name that is installed alone)."""
    specs = [f'"{r.spec}"' for r in REQUIREMENTS if r.name in missing]
    return (
        "internal_sr needs " + ", ".join(missing) + ": install them into the Python that runs QGIS, "
        "e.g. `python3 -m pip install --upgrade " + " ".join(specs) + "` (OSGeo4W Shell on Windows)."
    )
