"""Progress and cancellation protocol shared by the engine and its front ends.

The engine calls ``report(fraction, message)`` with ``fraction`` in [0, 1], ``info(message)`` for
warnings and settings worth logging, and polls ``cancelled()`` once per optimisation step.
Adapters wrap a terminal progress bar (``core.cli``), ``QgsProcessingFeedback`` and ``QgsTask``.

Optimisation steps travel as ``Step`` reports (``report_step``) through the engine's own wrappers (``Relay``s):
``tiling.run_tiles`` adds which tile a step is on (``Part``), ``Timed`` the time left measured so far, and the
first sink that is no ``Relay`` (a front end's, or any object with the three methods above) receives the step as
one line of text (``Step.text``), e.g. ``DIP: tile 3/98, step 450/600, loss 0.0123, about 25 minutes left``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
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


def duration(seconds: float) -> str:
    """``seconds`` rounded for people: ``40 s``, ``3 minutes``, ``2.5 hours``, ``3.2 days``; never below ``1 s``
    (an estimate under 1.5 s reads ``1 s``: "about 0 s" said a run takes no time, but reading, starting and
    writing alone take about that)."""
    if seconds < 90:
        return f"{max(seconds, 1.0):.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} minutes"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} hours"
    return f"{seconds / 86400:.1f} days"


@dataclass(frozen=True)
class Part:
    """Which of a run's parts a step is on: ``count`` of them (solved together) from the ``first`` (1-based) of
    ``total``; ``noun`` names one part ("tile", KernelGAN's "band")."""

    noun: str
    first: int
    count: int
    total: int

    def within(self, outer: Part) -> Part:
        """This part, numbered among the ``count`` parts of ``outer``, numbered among ``outer``'s ``total`` instead."""
        return Part(outer.noun, outer.first + self.first - 1, self.count, outer.total)

    @property
    def after(self) -> int:
        """The parts after these, not started yet."""
        return self.total - (self.first - 1 + self.count)

    def text(self) -> str:
        """``tile 3/98``, or ``tiles 3–10/98`` for several solved together."""
        if self.count == 1:
            return f"{self.noun} {self.first}/{self.total}"
        return f"{self.noun}s {self.first}–{self.first + self.count - 1}/{self.total}"


@dataclass(frozen=True)
class Step:
    """One optimisation step, as ``core.optimise`` reports it (``label``, ``done`` of at most ``steps``, the mean
    training ``loss`` of its latest check, ``None`` before the first) and the ``Relay``s it passes complete it:
    the ``part`` of the run it is on (``None``: the run has one) and the seconds ``left`` (``None``: not measured yet)."""

    label: str
    done: int
    steps: int
    loss: float | None = None
    part: Part | None = None
    left: float | None = None

    def text(self) -> str:
        """The step as a sink shows it: ``DIP: tile 3/98, step 450/600, loss 0.0123, about 25 minutes left``
        (the part where the run has several, the loss and the time left where known)."""
        where = f"{self.part.text()}, " if self.part is not None and self.part.total > 1 else ""
        loss = f", loss {self.loss:.3g}" if self.loss is not None else ""
        left = f", about {duration(self.left)} left" if self.left is not None else ""
        return f"{self.label}: {where}step {self.done}/{self.steps}{loss}{left}"


class Relay:
    """A wrapper of the engine's between its work and a sink: passes everything on to ``parent``, and ``Step``
    reports as steps (``report_step``), so that the wrappers above can complete them. Subclasses change what they
    pass on."""

    def __init__(self, parent: Progress) -> None:
        self.parent = parent

    def report(self, fraction: float, message: str = "") -> None:
        self.parent.report(fraction, message)

    def step(self, fraction: float, step: Step) -> None:
        report_step(self.parent, fraction, step)

    def info(self, message: str) -> None:
        self.parent.info(message)

    def cancelled(self) -> bool:
        return self.parent.cancelled()


def report_step(progress: Progress, fraction: float, step: Step) -> None:
    """Report ``step`` at ``fraction`` to ``progress``: as a step to a ``Relay``, as its text to any other sink."""
    if isinstance(progress, Relay):
        progress.step(fraction, step)
    else:
        progress.report(fraction, step.text())


class SubProgress(Relay):
    """Maps fractions of a sub-task onto the range [start, stop] of a parent progress.

    ``done``: what the sub-task's last report (``DONE``) says in the parent instead, where the sub-task's end is
    not the parent's (``None``: passed on as it is). ``part``: which of the parent's parts the sub-task is: its
    steps are on it (a step already on a part of its own is on that part numbered among ``part``'s, ``Part.within``)."""

    def __init__(self, parent: Progress, start: float, stop: float, done: str | None = None, part: Part | None = None) -> None:
        super().__init__(parent)
        self.start = start
        self.stop = stop
        self.done = done
        self.part = part

    def _fraction(self, fraction: float) -> float:
        return self.start + (self.stop - self.start) * min(max(fraction, 0.0), 1.0)

    def report(self, fraction: float, message: str = "") -> None:
        if message == DONE and self.done is not None:
            message = self.done
        self.parent.report(self._fraction(fraction), message)

    def step(self, fraction: float, step: Step) -> None:
        if self.part is not None:
            step = replace(step, part=step.part.within(self.part) if step.part is not None else self.part)
        report_step(self.parent, self._fraction(fraction), step)


#: Step reports a run's time left waits for after its first (whose time also holds building its networks and
#: reading its first tile, and starts the clock): a figure from fewer would be a guess.
TIMED_STEPS = 3


class Timed(Relay):
    """Adds the time left to the steps of a run of parts (tiles, KernelGAN's bands) solved one after another.

    The time left is the seconds per step measured since the run's first step (all the time that passed, reading
    and writing tiles included, over the steps of every tile those steps took: tiles solved together count one step
    each) times the steps left: the rest of the current part's, plus ``later`` for each part not started yet (a
    warm-started tile's: ``InternalLearningConfig.later_steps``). Given only once ``TIMED_STEPS`` steps were timed.
    A part the stop rule ends early shortens what is left as it ends. ``clock``: seconds, for tests to fake."""

    def __init__(self, parent: Progress, later: int, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(parent)
        self.later = later
        self.clock = clock
        self.started: float | None = None
        self.timed = 0  # steps (of each tile) since the clock started
        self.samples = 0  # step reports since the clock started
        self.last: Step | None = None

    def step(self, fraction: float, step: Step) -> None:
        now = self.clock()
        last, self.last = self.last, step
        count = step.part.count if step.part is not None else 1
        if self.started is None:
            self.started = now
        else:
            same = last is not None and (last.label, last.part) == (step.label, step.part) and step.done > last.done
            self.timed += (step.done - last.done if same else step.done) * count
            self.samples += 1
        left = None
        if self.samples >= TIMED_STEPS:
            after = step.part.after if step.part is not None else 0
            left = (now - self.started) / self.timed * ((step.steps - step.done) * count + self.later * after)
        super().step(fraction, replace(step, left=left))


def check_cancelled(progress: Progress) -> None:
    """Raise ``Cancelled`` when the user asked to stop."""
    if progress.cancelled():
        raise Cancelled()
