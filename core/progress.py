"""Progress and cancellation protocol shared by the engine and its front ends.

The engine calls ``report(fraction, message)`` with ``fraction`` in [0, 1], ``info(message)`` for
warnings and settings worth logging, and polls ``cancelled()`` once per optimisation step.
Adapters wrap a terminal progress bar (``core.cli``), ``QgsProcessingFeedback`` and ``QgsTask``.
"""

from __future__ import annotations

from typing import Protocol

from .errors import Cancelled


class Progress(Protocol):
    def report(self, fraction: float, message: str = "") -> None: ...

    def info(self, message: str) -> None: ...

    def cancelled(self) -> bool: ...


class NullProgress:
    """Progress sink that ignores everything and is never cancelled."""

    def report(self, fraction: float, message: str = "") -> None:
        pass

    def info(self, message: str) -> None:
        pass

    def cancelled(self) -> bool:
        return False


#: The message of a run's last report (``report(1.0, DONE)``).
DONE = "done"


class SubProgress:
    """Maps fractions of a sub-task onto the range [start, stop] of a parent progress.

    ``done``: what the sub-task's last report (``DONE``) says in the parent instead, where the sub-task's end is
    not the parent's (``None``: passed on as it is)."""

    def __init__(self, parent: Progress, start: float, stop: float, done: str | None = None) -> None:
        self.parent = parent
        self.start = start
        self.stop = stop
        self.done = done

    def report(self, fraction: float, message: str = "") -> None:
        fraction = min(max(fraction, 0.0), 1.0)
        if message == DONE and self.done is not None:
            message = self.done
        self.parent.report(self.start + (self.stop - self.start) * fraction, message)

    def info(self, message: str) -> None:
        self.parent.info(message)

    def cancelled(self) -> bool:
        return self.parent.cancelled()


def check_cancelled(progress: Progress) -> None:
    """Raise ``Cancelled`` when the user asked to stop."""
    if progress.cancelled():
        raise Cancelled()
