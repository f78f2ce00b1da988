"""Tell the user which Python packages the engine misses and how to install them."""

from __future__ import annotations

from typing import Any

from qgis.core import Qgis

from ..core import deps
from .messages import notify


def report_missing_dependencies(iface: Any | None) -> list[str]:
    """Check the engine's packages; if some are missing, say which and how to install them.

    The warning goes to the message log and stays in the message bar until closed. Returns the pip
    names of the missing packages (empty when everything is installed).
    """
    missing = deps.missing_dependencies()
    if missing:
        notify(iface, deps.install_hint(missing), Qgis.MessageLevel.Warning, 0)
    return missing
