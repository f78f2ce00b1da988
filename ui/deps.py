"""Tell the user which Python packages the engine misses, and offer the installer."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from qgis.core import Qgis

from ..core import deps
from .messages import notify_with_button


def report_missing_dependencies(iface: Any | None, on_install: Callable[[], Any]) -> list[str]:
    """Check the engine's packages; if some are missing or too old, say which and offer to install them.

    The warning goes to the message log and stays in the message bar until closed, with an
    *Install dependencies…* button that calls ``on_install``. Returns the pip names of the packages
    that are missing or too old (empty when every requirement is met).
    """
    missing = deps.missing_dependencies()
    if missing:
        text = deps.install_hint(missing) + " Or use Install dependencies… in the Raster ▸ Internal SR menu."
        notify_with_button(iface, text, "Install dependencies…", on_install, Qgis.MessageLevel.Warning)
    return missing
