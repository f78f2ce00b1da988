"""The shared optimisation loop: EMA, stop rule, progress and cancellation."""

import numpy as np
import pytest
import torch

from internal_sr.core.errors import Cancelled, NonFiniteLoss
from internal_sr.core.optimise import CHECK_EVERY, StopRule, optimise
from internal_sr.core.progress import NullProgress, SubProgress


class Recorder(NullProgress):
    def __init__(self, cancel_at=None):
        self.fractions, self.infos, self.polls, self.cancel_at = [], [], 0, cancel_at

    def report(self, fraction, message=""):
        self.fractions.append(fraction)

    def info(self, message):
        self.infos.append(message)

    def cancelled(self):
        self.polls += 1
        return self.cancel_at is not None and self.polls > self.cancel_at


def test_ema_is_the_exponential_average_of_the_outputs():
    outputs = [torch.full((2,), float(v)) for v in range(10)]
    result = optimise(lambda i: (torch.tensor(1.0), outputs[i]), 10, NullProgress(), ema_decay=0.5)
    expected = 0.0
    for v in range(1, 10):
        expected = 0.5 * expected + 0.5 * v
    assert result.output.tolist() == pytest.approx([expected, expected])
    assert result.steps == 10 and len(result.losses) == 10


def test_stop_rule_ends_a_plateau_and_not_a_descent():
    falling = optimise(lambda i: (torch.tensor(1.0 / (i + 1)), torch.zeros(1)), 400, NullProgress(), stop=StopRule(100, 0.01))
    assert falling.steps == 400
    progress = Recorder()
    flat = optimise(lambda i: (torch.tensor(1.0), torch.zeros(1)), 1000, progress, stop=StopRule(100, 0.01))
    assert flat.steps == CHECK_EVERY + 100
    assert any("stopped improving" in m for m in progress.infos)


def test_progress_is_monotone_and_cancellation_stops_within_one_step():
    progress = Recorder(cancel_at=7)
    with pytest.raises(Cancelled):
        optimise(lambda i: (torch.tensor(1.0), torch.zeros(1)), 50, SubProgress(progress, 0.5, 1.0))
    assert progress.polls == 8
    assert len(progress.fractions) == 7
    assert np.all(np.diff(progress.fractions) > 0) and 0.5 < progress.fractions[0] < progress.fractions[-1] <= 1.0


def test_observe_sees_the_average_at_every_check_and_leaves_the_run_alone():
    seen = []
    result = optimise(lambda i: (torch.tensor(1.0), torch.full((1,), float(i))), 2 * CHECK_EVERY + 10, NullProgress(),
                      observe=lambda done, average: seen.append((done, float(average[0]))))
    assert seen == [(CHECK_EVERY, CHECK_EVERY - 1.0), (2 * CHECK_EVERY, 2 * CHECK_EVERY - 1.0), (2 * CHECK_EVERY + 10, 2 * CHECK_EVERY + 9.0)]
    assert float(result.output[0]) == 2 * CHECK_EVERY + 9.0


def test_a_non_finite_loss_stops_at_the_next_check_naming_the_tile():
    """An infinite or NaN loss (a network that diverged) raises at the first check that covers it, with the step
    and, among tiles optimised together, the first such tile; the steps after that check are not run."""
    calls = []

    def step(i):
        calls.append(i)
        return torch.tensor([1.0, float("inf") if i >= 3 else 1.0, float("nan")]), torch.zeros(3, 1)

    with pytest.raises(NonFiniteLoss) as error:
        optimise(step, 4 * CHECK_EVERY, NullProgress(), label="DIP")
    assert (error.value.step, error.value.index, len(calls)) == (CHECK_EVERY, 1, CHECK_EVERY)
    assert str(error.value).startswith(f"DIP: the training loss became infinite or NaN by step {CHECK_EVERY}; ")
    with pytest.raises(NonFiniteLoss) as error:  # a run shorter than a check is checked at its last step
        optimise(lambda i: (torch.tensor(float("nan")), torch.zeros(1)), 2, NullProgress(), label="KernelGAN")
    assert (error.value.step, error.value.index) == (2, 0)
