"""``core.graphs``: a step replayed from recorded graphs computes what the eager step does.

No CUDA here, so ``Recorded`` stands in for ``torch.cuda.CUDAGraph``: recording runs nothing, and a replay
runs ``compute`` again on the fixed input buffers, writing into the same output tensors, as a graph
would. A method whose ``compute`` read anything but its inputs (a window chosen outside them), or a
caller that kept a graph's outputs past the next replay, would give other numbers than the eager run.
"""

import numpy as np
import pytest
import torch

from internal_sr.core import dip, graphs, guided
from internal_sr.core.config import DIPConfig, GuidedDIPConfig
from internal_sr.core.device import seed_everything
from internal_sr.core.kernels import make_kernel
from internal_sr.core.progress import NullProgress


class Recorded(graphs.GraphedStep):
    """``GraphedStep`` with its CUDA parts simulated on the CPU; counts the eager calls and replays per key."""

    log: list[tuple[str, int]] = []

    def __init__(self, compute, device, enabled) -> None:
        super().__init__(compute, torch.device("cpu"), False)
        self.enabled = enabled

    def _on_side_stream(self, run):
        Recorded.log.append(("eager", self.current))
        return run()

    def __call__(self, key, *inputs):
        self.current = key
        return super().__call__(key, *inputs)

    def _record(self, key) -> None:
        outputs: list[torch.Tensor] = []
        buffers = self.buffers

        class Graph:
            def replay(_) -> None:
                Recorded.log.append(("replay", key))
                fresh = self.compute(key, *buffers)
                if not outputs:
                    outputs.extend(torch.empty_like(t) for t in fresh)
                for kept, new in zip(outputs, fresh):
                    kept.copy_(new)

        self.graphs[key] = Graph(), outputs


@pytest.mark.parametrize("tiles, window", [(1, 1.0), (1, 0.6), (2, 0.7)])
def test_dip_replayed_from_graphs_equals_the_eager_run(monkeypatch, tiles, window) -> None:
    rng = np.random.default_rng(3)
    observed = rng.random((tiles, 3, 32, 40), dtype=np.float32)
    valid = np.ones((tiles, 1, 32, 40), np.float32)
    valid[-1, :, 4:9, 6:12] = 0
    kernel, cpu = make_kernel("bicubic", 2), torch.device("cpu")

    def run(cuda_graphs: bool) -> list:
        config = DIPConfig(scale=2, iterations=20, early_stop=False, device="cpu", step_window=window, cuda_graphs=cuda_graphs)
        return dip.super_resolve_tiles(observed, valid, kernel, config, cpu, NullProgress(), seed_everything(0))

    monkeypatch.setattr(dip, "GraphedStep", Recorded)
    eager = run(False)
    Recorded.log = []
    replayed = run(True)
    for a, b in zip(eager, replayed):
        np.testing.assert_array_equal(a.image, b.image)
        np.testing.assert_array_equal(a.losses, b.losses)
    # warm-up: the first WARMUP_STEPS steps and each dihedral element's first step run eagerly, the rest replay
    kinds = [kind for kind, _ in Recorded.log]
    assert kinds == ["eager"] * 8 + ["replay"] * 12
    assert [key for _, key in Recorded.log] == [i % 8 for i in range(20)]


def test_guided_dip_replayed_from_graphs_equals_the_eager_run(monkeypatch) -> None:
    rng = np.random.default_rng(4)
    target, guide = rng.random((2, 24, 24), dtype=np.float32), rng.random((3, 48, 48), dtype=np.float32)
    target_valid, guide_valid = np.ones_like(target), np.ones_like(guide)
    target_valid[:, 3:6, 4:9] = 0
    kernels = [make_kernel("bicubic", 2)] * 2, [make_kernel("bicubic", 2)] * 3

    def run(cuda_graphs: bool):
        config = GuidedDIPConfig(iterations=14, early_stop=False, device="cpu", cuda_graphs=cuda_graphs)
        return guided.sharpen_tile(target, target_valid, guide, guide_valid, *kernels, config, torch.device("cpu"), NullProgress(), seed_everything(0))

    monkeypatch.setattr(guided, "GraphedStep", Recorded)
    eager = run(False)
    Recorded.log = []
    replayed = run(True)
    np.testing.assert_array_equal(eager.image, replayed.image)
    np.testing.assert_array_equal(eager.losses, replayed.losses)
    assert [kind for kind, _ in Recorded.log] == ["eager"] * 8 + ["replay"] * 6


def test_graphs_are_off_the_cpu() -> None:
    step = graphs.GraphedStep(lambda key, x: (x * 2,), torch.device("cpu"), True)
    assert not step.enabled
    (out,) = step(0, torch.ones(2))
    assert torch.equal(out, torch.full((2,), 2.0))
