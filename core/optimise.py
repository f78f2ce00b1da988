"""The optimisation loop shared by the internal-learning methods.

One loop owns what every method needs: progress and cancellation once per step, an exponential
moving average (EMA) of the output, a loss history kept on the device (read back every
``CHECK_EVERY`` steps, so there is no host/device sync per step), and a stopping rule that needs no
ground truth: stop when the mean training loss of the last ``CHECK_EVERY`` steps has not improved by
a relative ``tolerance`` for ``patience`` steps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from .progress import Progress, check_cancelled

CHECK_EVERY = 25


@dataclass(frozen=True)
class StopRule:
    patience: int
    tolerance: float


@dataclass
class Optimised:
    """Result of ``optimise``: the (averaged) output, the loss per step, the steps run."""

    output: torch.Tensor
    losses: np.ndarray
    steps: int


def optimise(
    step: Callable[[int], tuple[torch.Tensor, torch.Tensor]],
    steps: int,
    progress: Progress,
    ema_decay: float = 0.0,
    stop: StopRule | None = None,
    label: str = "optimising",
    observe: Callable[[int, torch.Tensor], None] | None = None,
) -> Optimised:
    """Run ``step(i) -> (loss, output)`` up to ``steps`` times and average the outputs.

    ``step`` performs one optimiser update and returns the scalar loss (float32) and the current
    output (detached). The EMA starts at the first output, so its weights always sum to one.
    ``observe(steps done, EMA)``, when given, sees the average at every check (each ``CHECK_EVERY``
    steps and the last one); it is for benchmarks and must not change the run.
    """
    history: list[torch.Tensor] = []
    ema: torch.Tensor | None = None
    best = float("inf")
    best_at = 0
    done = 0
    for i in range(steps):
        check_cancelled(progress)
        loss, output = step(i)
        history.append(loss.detach())
        if ema is None or ema_decay <= 0:
            ema = output.float().clone()
        else:
            ema.mul_(ema_decay).add_(output.float(), alpha=1 - ema_decay)
        done = i + 1
        if done % CHECK_EVERY and done != steps:
            progress.report(done / steps, f"{label}: step {done}/{steps}")
        else:
            recent = float(torch.stack(history[-CHECK_EVERY:]).mean())  # the only host/device sync
            progress.report(done / steps, f"{label}: step {done}/{steps}, loss {recent:.3g}")
            if observe is not None:
                observe(done, ema)
            if recent < best * (1 - (stop.tolerance if stop else 0)):
                best, best_at = recent, done
            elif stop is not None and done - best_at >= stop.patience:
                progress.info(f"{label}: loss stopped improving, stopping at step {done} of {steps}")
                break
    return Optimised(ema, torch.stack(history).float().cpu().numpy(), done)
