"""Tell the user which Python packages the engine misses or cannot import, and offer the installer."""

from __future__ import annotations

from qgis.core import Qgis

from ..core import deps
from .messages import PinnedMessage, report_error


def report_missing_dependencies(message: PinnedMessage) -> list[str]:
    """Check the engine's packages; if some are missing or too old, say which and offer to install them.

    The warning goes to the message log and stays in the message bar until closed, as ``message``
    (whose button opens the installer) in place of the one shown before; when nothing is missing that
    one is removed. Returns the pip names of the packages that are missing or too old (empty when
    every requirement is met).
    """
    missing = deps.missing_dependencies()
    if missing:
        message.show(
            deps.install_hint(missing) + " Or use Install dependencies… in the Raster ▸ Internal SR menu.",
            Qgis.MessageLevel.Warning,
        )
    else:
        message.clear()
    return missing


def report_broken_engine(message: PinnedMessage, error: ImportError | OSError) -> None:
    """Say in one line, as ``message``, that an installed engine package fails to import (a library that
    does not load, NumPy built for another ABI), with the install hint; the traceback goes to the log."""
    names = [requirement.name for requirement in deps.REQUIREMENTS]
    report_error(
        message,
        f"The engine's packages are installed but fail to import ({type(error).__name__}: {error}). "
        + deps.install_hint(names),
        error,
    )
