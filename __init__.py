"""internal_sr: super-resolution of satellite rasters by internal learning.

This folder is both the QGIS plugin (QGIS calls :func:`classFactory`) and the Python package
``internal_sr`` whose engine lives in :mod:`internal_sr.core`. Importing it must stay cheap and must
not need QGIS or torch: the QGIS side is imported only when QGIS asks for the plugin.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.2.0"


def classFactory(iface: Any) -> Any:  # noqa: N802 (name fixed by QGIS)
    """Entry point called by QGIS with its ``QgisInterface``; returns the plugin object."""
    from .plugin import InternalSRPlugin

    return InternalSRPlugin(iface)
