"""Speed paths that must not change results: out-of-memory retries and CPU fallback, batched tiles.

Running out of GPU memory is simulated on the CPU: the tile solver is replaced by one that raises
``torch.cuda.OutOfMemoryError`` for tiles above a size on the "cuda" device and otherwise returns
nearest-neighbour upsampling, which the blending reproduces exactly whatever the tiling.
"""

from dataclasses import replace

import numpy as np
import pytest
import torch

from internal_sr.core import dip, pipeline
from internal_sr.core.config import DIPConfig, GuidedDIPConfig, TileOptions
from internal_sr.core.dip import TileResult


def _fake_gpu(monkeypatch, fits: int) -> list[tuple[str, int]]:
    """Pretend CUDA is there and holds tiles of edge ≤ ``fits``; returns the (device, edge) of each solve."""
    calls: list[tuple[str, int]] = []

    def solve(observed, valid, kernel, config, device, progress, generator, start=None):
        edge = max(observed.shape[-2:])
        calls.append((device.type, edge))
        if device.type == "cuda" and edge > fits:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        s = config.scale
        return TileResult(observed.repeat(s, axis=1).repeat(s, axis=2), np.zeros(1), 1)

    def solve_together(observed, valid, *args, **kwargs):
        return [solve(o, v, *args, **kwargs) for o, v in zip(observed, valid)]

    monkeypatch.setattr(dip, "super_resolve_tile", solve)
    monkeypatch.setattr(dip, "super_resolve_tiles", solve_together)
    monkeypatch.setattr(pipeline, "resolve_device", lambda name: torch.device(name if name != "auto" else "cpu"))
    monkeypatch.setattr(pipeline, "describe", lambda device: device.type)
    return calls


def _run(image: np.ndarray, tiles: TileOptions) -> tuple[np.ndarray, list[str]]:
    out, result = pipeline.super_resolve_array(image, DIPConfig(scale=2, device="cuda", tiles=tiles))
    return out, result.messages


@pytest.fixture
def image() -> np.ndarray:
    return np.random.default_rng(0).uniform(0, 1000, size=(2, 100, 90)).astype(np.float32)


def test_out_of_memory_retries_with_halved_tiles_and_keeps_the_output(monkeypatch, image):
    calls = _fake_gpu(monkeypatch, fits=40)
    out, messages = _run(image, TileOptions(128, 16))
    np.testing.assert_allclose(out, image.repeat(2, axis=1).repeat(2, axis=2), rtol=1e-6, atol=1e-3)
    assert [m for m in messages if "out of GPU memory" in m] == [
        "out of GPU memory: retrying with tiles of 64 px", "out of GPU memory: retrying with tiles of 32 px"
    ]
    assert all(device == "cuda" for device, _ in calls) and calls[-1][1] <= 32


def test_a_window_solved_again_after_running_out_of_memory_counts_its_tiles_once(monkeypatch, image):
    """Out of memory partway through a window (after some of its smaller tiles were solved): the whole
    window is solved again with smaller tiles, and only that attempt's loss curves are kept."""
    calls = _fake_gpu(monkeypatch, fits=64)
    solve = dip.super_resolve_tile
    attempts: list[bool] = []

    def second_tile_fails_once(observed, *args, **kwargs):
        attempts.append(True)
        if len(attempts) == 3:  # 1: the whole image (too big), 2: its first 64 px tile, 3: its second
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return solve(observed, *args, **kwargs)

    monkeypatch.setattr(dip, "super_resolve_tile", second_tile_fails_once)
    out, result = pipeline.super_resolve_array(image, DIPConfig(scale=2, device="cuda", tiles=TileOptions(128, 16)))
    np.testing.assert_allclose(out, image.repeat(2, axis=1).repeat(2, axis=2), rtol=1e-6, atol=1e-3)
    assert [edge for _, edge in calls][:2] == [100, 64] and max(edge for _, edge in calls[2:]) <= 32
    assert len(result.curves) == len(calls) - 2  # the 32 px tiles of the last attempt, not the 64 px one before


def test_out_of_memory_at_the_smallest_tile_falls_back_to_the_cpu(monkeypatch, image):
    calls = _fake_gpu(monkeypatch, fits=0)
    out, messages = _run(image, TileOptions(64, 8))
    np.testing.assert_allclose(out, image.repeat(2, axis=1).repeat(2, axis=2), rtol=1e-6, atol=1e-3)
    assert any("tiles at once: solving them one by one" in m for m in messages)  # a GPU run batches tiles
    assert any("continuing on the CPU" in m for m in messages)
    first_cpu = [device for device, _ in calls].index("cpu")
    assert all(device == "cpu" for device, _ in calls[first_cpu:])  # later tiles stay on the CPU
    assert max(edge for device, edge in calls if device == "cpu") == 64  # with the original tile size


def test_out_of_memory_on_the_cpu_is_not_caught(monkeypatch, image):
    def solve(*args, **kwargs):
        raise torch.cuda.OutOfMemoryError("simulated")

    monkeypatch.setattr(dip, "super_resolve_tile", solve)
    with pytest.raises(torch.cuda.OutOfMemoryError):
        pipeline.super_resolve_array(image, DIPConfig(scale=2, device="cpu"))


def test_batched_tiles_equal_tiles_solved_one_by_one():
    """Two real 16 × 16 tiles (one with nodata) optimised together give what each gives alone, stop rule included."""
    from helpers import S2_10M, read

    from internal_sr.core.device import seed_everything
    from internal_sr.core.kernels import make_kernel
    from internal_sr.core.normalise import BandScaling
    from internal_sr.core.progress import NullProgress

    image = read(S2_10M).astype(np.float32)[:2]
    tiles = np.stack([image[:, :16, :16], image[:, 40:56, 60:76]])
    valid = np.ones(tiles.shape, dtype=bool)
    valid[1, :, :5, :7] = False
    scaling = BandScaling.fit(image, np.ones(image.shape, bool))
    tiles = np.stack([scaling.normalise(tile) for tile in tiles])
    config = DIPConfig(scale=2, iterations=60, depth=3, channels=8, skip_channels=2, noise_channels=4,
                       detail_layers=2, detail_channels=8, stop_patience=25, stop_tolerance=0.3, device="cpu")
    kernel, cpu = make_kernel("bicubic", 2), torch.device("cpu")
    alone = [dip.super_resolve_tile(t, v, kernel, config, cpu, NullProgress(), seed_everything(0)) for t, v in zip(tiles, valid)]
    together = dip.super_resolve_tiles(tiles, valid, kernel, config, cpu, NullProgress(), seed_everything(0))
    for a, b in zip(alone, together):
        assert a.steps == b.steps
        # float32 rounding differs between a batched and a lone convolution, and Adam amplifies it step by step
        np.testing.assert_allclose(b.losses[:20], a.losses[:20], rtol=2e-2)
        np.testing.assert_allclose(b.image, a.image, rtol=0, atol=1e-3)  # normalised units
    assert np.abs(alone[0].image - alone[1].image).max() > 0.1  # the tiles really differ


def test_pipeline_batches_tiles_of_a_row_and_blends_them_as_one_by_one(monkeypatch):
    from helpers import S2_10M, read

    image = read(S2_10M).astype(np.float32)[:2, :40, :60]  # 2 × 2 tiles of 32 pixels
    config = dict(scale=2, iterations=10, depth=3, channels=8, skip_channels=2, noise_channels=4, detail_layers=1,
                  detail_channels=8, device="cpu")
    one, _ = pipeline.super_resolve_array(image, DIPConfig(**config, tiles=TileOptions(32, 4, batch=1)))
    sizes, together = [], dip.super_resolve_tiles

    def spy(observed, *args, **kwargs):
        sizes.append(len(observed))
        return together(observed, *args, **kwargs)

    monkeypatch.setattr(dip, "super_resolve_tiles", spy)
    batched, _ = pipeline.super_resolve_array(image, DIPConfig(**config, tiles=TileOptions(32, 4, batch=2)))
    assert sizes == [1, 1, 2]  # the first tile alone (the others warm-start from it), then a row's tiles in one call
    np.testing.assert_allclose(batched, one, rtol=0, atol=0.02 * image.std())


def test_guided_dip_out_of_memory_falls_back_like_dip(monkeypatch):
    """Guided DIP's tiles shrink on a GPU that runs out of memory, then move to the CPU; the output is the same."""
    from internal_sr.core import guided, sharpen

    calls: list[tuple[str, int]] = []

    def solve(target, target_valid, guide, guide_valid, target_kernels, guide_kernels, config, device, progress, generator):
        calls.append((device.type, max(target.shape[-2:])))
        if device.type == "cuda":
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return TileResult(target.repeat(2, axis=1).repeat(2, axis=2), np.zeros(1), 1)

    monkeypatch.setattr(guided, "sharpen_tile", solve)
    monkeypatch.setattr(sharpen, "resolve_device", lambda name: torch.device(name))
    monkeypatch.setattr(sharpen, "describe", lambda device: device.type)
    rng = np.random.default_rng(1)
    target, guide = rng.uniform(0, 1000, (2, 70, 70)), rng.uniform(0, 1000, (3, 140, 140))
    config = GuidedDIPConfig(kernel="bicubic", guide_kernel="bicubic", device="cuda", tiles=TileOptions(64, 16))
    out, result = sharpen.sharpen_array(target, guide, config, [None, None], [None] * 3)
    np.testing.assert_allclose(out, target.repeat(2, axis=1).repeat(2, axis=2), rtol=1e-6, atol=1e-3)
    assert [m for m in result.messages if "out of GPU memory" in m] == [
        "out of GPU memory: retrying with tiles of 32 px", "out of GPU memory even with tiles of 32 px: continuing on the CPU"
    ]
    assert {edge for device, edge in calls if device == "cpu"} == {64}


def test_tiles_after_the_first_warm_start_from_it_alike_one_by_one_and_batched():
    """Warm start: the first trained tile runs all its steps, every other tile starts from its trained network
    and runs warm_steps of them, whether tiles are solved one by one or batched."""
    from helpers import S2_10M, read

    image = read(S2_10M).astype(np.float32)[:2, :40, :60]  # 2 × 2 tiles of 32 pixels
    config = DIPConfig(scale=2, iterations=20, depth=3, channels=8, skip_channels=2, noise_channels=4, detail_layers=2,
                       detail_channels=8, early_stop=False, device="cpu", tiles=TileOptions(32, 4))
    runs = {
        name: pipeline.super_resolve_array(image, replace(config, warm_start=warm, tiles=TileOptions(32, 4, batch)))
        for name, warm, batch in (("cold", False, 1), ("warm", True, 1), ("warm, batched", True, 2))
    }
    assert [len(c) for c in runs["cold"][1].curves] == [20] * 4
    assert [len(c) for c in runs["warm"][1].curves] == [20, 15, 15, 15]
    assert [len(c) for c in runs["warm, batched"][1].curves] == [20, 15, 15, 15]
    np.testing.assert_allclose(runs["warm, batched"][0], runs["warm"][0], rtol=0, atol=2.0)  # reflectance units


def test_a_warm_started_tile_starts_from_the_given_network():
    """One step from a trained tile's network stays next to it (Adam moves each weight by about the learning
    rate); one step from a fresh network does not."""
    from helpers import S2_10M, read

    from internal_sr.core.device import seed_everything
    from internal_sr.core.kernels import make_kernel
    from internal_sr.core.progress import NullProgress

    image = read(S2_10M).astype(np.float32)[:2] / 3000
    first, second = image[:, :24, :24], image[:, 40:64, 60:84]
    valid = np.ones(first.shape, bool)
    config = DIPConfig(scale=2, iterations=40, depth=3, channels=8, skip_channels=2, noise_channels=4, detail_layers=2,
                       detail_channels=8, early_stop=False, device="cpu")
    kernel, cpu = make_kernel("bicubic", 2), torch.device("cpu")

    def run(tile, steps, start=None):
        return dip.super_resolve_tile(tile, valid, kernel, replace(config, iterations=steps, warm_steps=1 / steps if start else 1.0),
                                      cpu, NullProgress(), seed_everything(0), start=start)

    trained = run(first, 40)
    warm, cold = run(second, 40, trained.state), run(second, 1)
    assert warm.steps == 1 and cold.steps == 1

    def distance(state):  # over the weights (batch-norm running statistics move fast by design)
        weights = [k for k in trained.state if state[k].is_floating_point() and "running_" not in k]
        return max(float((state[k] - trained.state[k]).abs().max()) for k in weights)

    assert distance(warm.state) <= 1.5 * config.learning_rate < 0.1 * distance(cold.state)
