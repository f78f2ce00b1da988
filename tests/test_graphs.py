"""``core.graphs``: a step replayed from recorded graphs computes what the eager step does.

Without CUDA, ``Recorded`` stands in for ``torch.cuda.CUDAGraph``: recording runs nothing, and a replay
runs ``compute`` again on the fixed input buffers, writing into the same output tensors. That checks the
split of each method's step (what varies reaches ``compute`` through its inputs, copied into the buffers),
the warm-up and the keys, and that callers keep copies of a graph's outputs, not the outputs themselves.
It cannot see what only a real recording does: a Python value read inside ``compute`` that changes from
step to step (a real graph keeps the recorded one; the simulation reads it afresh), a sync with the host,
or memory shared between graphs. The last test does, where a CUDA GPU is present.
"""

import contextlib

import numpy as np
import pytest
import torch

from internal_sr.core import dip, graphs, guided, knitwork
from internal_sr.core.config import DIPConfig, GuidedDIPConfig, KnitworkConfig
from internal_sr.core.device import seed_everything
from internal_sr.core.kernels import make_kernel
from internal_sr.core.progress import NullProgress


class Recorded(graphs.GraphedStep):
    """``GraphedStep`` with its CUDA parts simulated on the CPU; counts the eager calls and replays per key."""

    log: list[tuple[str, int]] = []

    def __init__(self, compute, device, enabled, progress) -> None:
        super().__init__(compute, torch.device("cpu"), False, progress)
        self.enabled = enabled

    def _on_side_stream(self, run):
        Recorded.log.append(("eager", self.current))
        return run()

    def __call__(self, key, *inputs):
        self.current = key
        return super().__call__(key, *inputs)

    def _record(self, key) -> bool:
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
        return True


def eager_and_replayed(monkeypatch, module, run):
    """``run(cuda_graphs)`` eagerly, then with ``module``'s steps replayed from simulated recordings (its log
    reset in between, so it holds the second run's calls alone)."""
    monkeypatch.setattr(module, "GraphedStep", Recorded)
    eager = run(False)
    Recorded.log = []
    return eager, run(True)


def assert_same_results(eager, replayed) -> None:
    for a, b in zip(eager if isinstance(eager, list) else [eager], replayed if isinstance(replayed, list) else [replayed]):
        np.testing.assert_array_equal(a.image, b.image)
        np.testing.assert_array_equal(a.losses, b.losses)


@pytest.mark.parametrize("tiles, window", [(1, 1.0), (1, 0.6), (2, 0.7)])
def test_dip_replayed_from_graphs_equals_the_eager_run(monkeypatch, tiles, window) -> None:
    rng = np.random.default_rng(3)
    observed = rng.random((tiles, 3, 32, 40), dtype=np.float32)
    valid = np.ones((tiles, 1, 32, 40), np.float32)
    valid[-1, :, 4:9, 6:12] = 0
    kernel, cpu = make_kernel("bicubic", 2), torch.device("cpu")

    def run(cuda_graphs: bool) -> list:
        config = DIPConfig(scale=2, iterations=12, early_stop=False, device="cpu", step_window=window, cuda_graphs=cuda_graphs)
        return dip.super_resolve_tiles(observed, valid, kernel, config, cpu, NullProgress(), seed_everything(0))

    assert_same_results(*eager_and_replayed(monkeypatch, dip, run))
    # warm-up: the first WARMUP_STEPS steps and each dihedral element's first step run eagerly, the rest replay
    kinds = [kind for kind, _ in Recorded.log]
    assert kinds == ["eager"] * 8 + ["replay"] * 4
    assert [key for _, key in Recorded.log] == [i % 8 for i in range(12)]


def test_guided_dip_replayed_from_graphs_equals_the_eager_run(monkeypatch) -> None:
    rng = np.random.default_rng(4)
    target, guide = rng.random((2, 24, 24), dtype=np.float32), rng.random((3, 48, 48), dtype=np.float32)
    target_valid, guide_valid = np.ones_like(target), np.ones_like(guide)
    target_valid[:, 3:6, 4:9] = 0
    kernels = [make_kernel("bicubic", 2)] * 2, [make_kernel("bicubic", 2)] * 3

    def run(cuda_graphs: bool):
        config = GuidedDIPConfig(iterations=14, early_stop=False, device="cpu", cuda_graphs=cuda_graphs)
        return guided.sharpen_tile(target, target_valid, guide, guide_valid, *kernels, config, torch.device("cpu"), NullProgress(), seed_everything(0))

    assert_same_results(*eager_and_replayed(monkeypatch, guided, run))
    assert [kind for kind, _ in Recorded.log] == ["eager"] * 8 + ["replay"] * 6


@pytest.mark.parametrize("learned", [False, True])
def test_knitworks_replayed_from_graphs_equals_the_eager_run(monkeypatch, learned) -> None:
    """Knitworks' loss weights and the learned kernel's step size change every step: they reach the recorded
    step as tensors (both terms are on from the first step at the defaults: one graph)."""
    rng = np.random.default_rng(5)
    observed = rng.random((3, 24, 28), dtype=np.float32)
    valid = np.ones_like(observed)
    valid[:, 4:8, 5:9] = 0
    kernel = None if learned else make_kernel("bicubic", 2)

    def run(cuda_graphs: bool):
        config = KnitworkConfig(scale=2, iterations=12, early_stop=False, device="cpu", kernel="learned" if learned else "bicubic",
                                cuda_graphs=cuda_graphs)
        return knitwork.super_resolve_tile(observed, valid, kernel, config, torch.device("cpu"), NullProgress(), seed_everything(0))

    eager, replayed = eager_and_replayed(monkeypatch, knitwork, run)
    assert_same_results(eager, replayed)
    np.testing.assert_array_equal(eager.kernel, replayed.kernel)
    assert [kind for kind, _ in Recorded.log] == ["eager"] * graphs.WARMUP_STEPS + ["replay"] * (12 - graphs.WARMUP_STEPS)


def test_graphs_are_off_the_cpu() -> None:
    step = graphs.GraphedStep(lambda key, x: (x * 2,), torch.device("cpu"), True, NullProgress())
    assert not step.enabled
    (out,) = step(0, torch.ones(2))
    assert torch.equal(out, torch.full((2,), 2.0))


def test_a_failed_recording_gives_the_stream_back_and_the_steps_run_eagerly(monkeypatch) -> None:
    """``torch.cuda.graph`` ends a capture before leaving its stream, so when ending it raises, the side stream stays
    current. Faked here (streams, graph, capture): after the failure the caller's stream is current again, that
    step and the later ones run eagerly on it, nothing more is recorded, and the log says so. It raised before,
    leaving the side stream current."""
    class Stream:
        def __init__(self, device=None) -> None:
            self.device = device

        def wait_stream(self, other) -> None:
            pass

    main = Stream()
    now = {"stream": main}
    captures: list[int] = []
    ran_on: list[str] = []
    messages: list[str] = []

    class Log(NullProgress):
        def info(self, message: str) -> None:
            messages.append(message)

    @contextlib.contextmanager
    def on(stream):
        before, now["stream"] = now["stream"], stream
        yield
        now["stream"] = before

    class FailingCapture:
        """As ``torch.cuda.graph``: enters its stream, and ends the capture (here raising) before leaving it."""

        def __init__(self, graph, pool=None, stream=None, capture_error_mode="global") -> None:
            self.stream = on(stream)

        def __enter__(self) -> None:
            captures.append(1)
            self.stream.__enter__()

        def __exit__(self, *error) -> None:
            raise RuntimeError("CUDA error: operation failed due to a previous error during capture")

    monkeypatch.setattr(torch.cuda, "Stream", Stream)
    monkeypatch.setattr(torch.cuda, "current_stream", lambda device=None: now["stream"])
    monkeypatch.setattr(torch.cuda, "set_stream", lambda stream: now.update(stream=stream))
    monkeypatch.setattr(torch.cuda, "stream", on)
    monkeypatch.setattr(torch.cuda, "graph", FailingCapture)
    monkeypatch.setattr(torch.cuda, "CUDAGraph", lambda: None)
    monkeypatch.setattr(torch.Tensor, "record_stream", lambda self, stream: None)

    def compute(key, x):
        ran_on.append(now["stream"])
        return (x * 2,)

    step = graphs.GraphedStep(compute, torch.device("cuda"), True, Log())
    side = step.stream
    results = [step(0, torch.full((2,), float(i))) for i in range(graphs.WARMUP_STEPS + 3)]
    for i, (out,) in enumerate(results):
        assert torch.equal(out, torch.full((2,), 2.0 * i))
    assert now["stream"] == main and captures == [1] and not step.enabled
    # warm-up on the side stream, the capture (on it too), then every step eagerly on the caller's stream
    assert ran_on == [side] * (graphs.WARMUP_STEPS + 1) + [main] * 3
    assert messages == ["recording a step in a CUDA graph failed (CUDA error: operation failed due to a previous error "
                        "during capture): the remaining steps run eagerly"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (the simulation above runs everywhere)")
@pytest.mark.parametrize("method", ["dip", "dip, 3 tiles", "guided", "knitwork"])
def test_on_a_gpu_recorded_steps_follow_the_eager_ones(method) -> None:
    """The same run with ``cuda_graphs`` off and on, on CUDA: the losses agree up to float rounding (CUDA runs
    repeat only that far)."""
    rng = np.random.default_rng(6)
    cuda = torch.device("cuda")

    def run(cuda_graphs: bool) -> np.ndarray:
        if method == "guided":
            target, guide = rng.random((2, 24, 24), dtype=np.float32), rng.random((3, 48, 48), dtype=np.float32)
            config = GuidedDIPConfig(iterations=20, early_stop=False, device="cuda", cuda_graphs=cuda_graphs)
            kernels = [make_kernel("bicubic", 2)] * 2, [make_kernel("bicubic", 2)] * 3
            return guided.sharpen_tile(target, np.ones_like(target), guide, np.ones_like(guide), *kernels, config, cuda,
                                       NullProgress(), seed_everything(0)).losses
        if method == "knitwork":
            observed = rng.random((3, 24, 28), dtype=np.float32)
            config = KnitworkConfig(scale=2, iterations=20, early_stop=False, device="cuda", cuda_graphs=cuda_graphs)
            return knitwork.super_resolve_tile(observed, np.ones_like(observed), make_kernel("bicubic", 2), config, cuda,
                                               NullProgress(), seed_everything(0)).losses
        tiles = 3 if "3" in method else 1
        observed = rng.random((tiles, 3, 32, 40), dtype=np.float32)
        config = DIPConfig(scale=2, iterations=20, early_stop=False, device="cuda", cuda_graphs=cuda_graphs)
        results = dip.super_resolve_tiles(observed, np.ones((tiles, 1, 32, 40), np.float32), make_kernel("bicubic", 2), config,
                                          cuda, NullProgress(), seed_everything(0))
        return np.stack([r.losses for r in results])

    state = rng.bit_generator.state
    eager = run(False)
    rng.bit_generator.state = state
    recorded = run(True)
    np.testing.assert_allclose(recorded, eager, rtol=0.05)
