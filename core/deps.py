"""Dependency check that imports nothing heavy (used by the plugin before loading the engine)."""

from __future__ import annotations

import importlib.util

REQUIRED = {"torch": "torch", "rasterio": "rasterio", "skimage": "scikit-image", "numpy": "numpy"}


def missing_dependencies() -> list[str]:
    """Names (as pip spells them) of the required packages that cannot be found."""
    return [pip_name for module, pip_name in REQUIRED.items() if importlib.util.find_spec(module) is None]


def install_hint(missing: list[str]) -> str:
    """One line telling the user how to install ``missing`` into the Python that runs QGIS."""
    return (
        "internal_sr needs " + ", ".join(missing) + ": install them into the Python that runs QGIS, "
        "e.g. `python3 -m pip install " + " ".join(missing) + "` (OSGeo4W Shell on Windows)."
    )
