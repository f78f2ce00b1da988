"""Speed paths that must not change results: out-of-memory retries and CPU fallback, batched tiles.

Running out of GPU memory is simulated on the CPU: the tile solver is replaced by one that raises
``torch.cuda.OutOfMemoryError`` (or, as cuBLAS and cuDNN do, a plain ``RuntimeError`` naming the failed
allocation) for tiles above a size on the "cuda" device and otherwise returns nearest-neighbour
upsampling, which the blending reproduces exactly whatever the tiling.
"""

import os
from dataclasses import replace

import numpy as np
import pytest
import torch

from internal_sr.core import device, dip, pipeline, tiling
from internal_sr.core.config import BATCH_HOST_BYTES, CUDA_BATCH, DIPConfig, GuidedDIPConfig, KnitworkConfig, TileOptions
from internal_sr.core.dip import TileResult
from internal_sr.core.progress import NullProgress


def _seeded_on_the_cpu(monkeypatch, module) -> None:
    """``module.seeded`` keeps the CPU's generators for a pretended "cuda" device (this machine has no CUDA to seed)."""
    monkeypatch.setattr(module, "seeded", lambda seed, run_device, progress: device.seeded(seed, torch.device("cpu"), progress))


def _fake_gpu(monkeypatch, fits: int, free: int = 2**40) -> list[tuple[str, int]]:
    """Pretend CUDA is there and holds tiles of edge ≤ ``fits``, each taking ``edge²`` KiB (``free`` bytes free);
    returns the (device, edge) of each solve."""
    calls: list[tuple[str, int]] = []
    peak = [0]

    def solve(observed, valid, kernel, config, device, progress, generator, start=None, keep=None):
        edge = max(observed.shape[-2:])
        calls.append((device.type, edge))
        if device.type == "cuda" and edge > fits:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        peak[0] = max(peak[0], edge**2 * 1024)
        s = config.scale
        return TileResult(observed.repeat(s, axis=1).repeat(s, axis=2), np.zeros(1), 1)

    def solve_together(observed, valid, *args, **kwargs):
        return [solve(o, v, *args, **kwargs) for o, v in zip(observed, valid)]

    def allocated(device):
        peak[0] = 0
        return 0

    monkeypatch.setattr(tiling, "gpu_allocated", allocated)
    monkeypatch.setattr(tiling, "gpu_peak_since", lambda device, base: peak[0])
    monkeypatch.setattr(tiling, "gpu_free", lambda device: free)
    _seeded_on_the_cpu(monkeypatch, pipeline)

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


def test_a_batch_out_of_gpu_memory_keeps_the_leading_tile_already_solved():
    """The first tile is solved alone (the others warm-start from it); when the batch of the rest runs out
    of GPU memory, only the rest is solved again one by one, never the first a second time."""
    from internal_sr.core.grid import Window
    from internal_sr.core.tiling import ShrinkOnOutOfMemory

    solved: list[Window] = []
    lead = [True]

    def solve(window, progress, device):
        solved.append(window)
        lead[0] = False
        return np.zeros((1, 2, 2)), np.ones((1, 2, 2), bool)

    def solve_many(windows, progress, device):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")

    windows = [Window(32 * k, 0, 32, 32) for k in range(3)]
    solver = ShrinkOnOutOfMemory(solve, torch.device("cuda"), TileOptions(32, 4), 1, 2, NullProgress(),
                                 solve_many=solve_many, lead=lambda: lead[0])
    assert len(solver.many(windows, NullProgress())) == 1  # the leading tile alone: the caller's next batch is whole
    assert len(solver.many(windows[1:], NullProgress())) == 2
    assert solved == windows  # each once, in order


#: What cuBLAS, cuDNN and CUDA raise when they cannot allocate: a plain RuntimeError, not OutOfMemoryError.
LIBRARY_OUT_OF_MEMORY = [
    "CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`",
    "cuDNN error: CUDNN_STATUS_ALLOC_FAILED",
    "cuDNN error: CUDNN_STATUS_NOT_ENOUGH_WORKSPACE",
    "CUDA error: out of memory\nCUDA kernel errors might be asynchronously reported at some other API call",
]


def test_gpu_out_of_memory_is_told_from_other_runtime_errors():
    from internal_sr.core.tiling import is_gpu_out_of_memory

    assert is_gpu_out_of_memory(torch.cuda.OutOfMemoryError("simulated"))
    assert all(is_gpu_out_of_memory(RuntimeError(message)) for message in LIBRARY_OUT_OF_MEMORY)
    assert not is_gpu_out_of_memory(RuntimeError("CUDA error: an illegal memory access was encountered"))
    assert not is_gpu_out_of_memory(RuntimeError("cuDNN error: CUDNN_STATUS_BAD_PARAM"))
    assert not is_gpu_out_of_memory(ValueError("out of memory"))  # not what PyTorch raises


def test_an_error_raised_from_or_while_handling_running_out_of_gpu_memory_is_told_as_such():
    """A library may raise its own error from the allocator's, or while handling it (as ``torch.cuda.graph`` does
    when ending a capture fails after running out of memory inside it)."""
    from internal_sr.core.tiling import is_gpu_out_of_memory

    def raised(outer: Exception, inner: Exception, explicit: bool) -> Exception:
        try:
            try:
                raise inner
            except type(inner) as error:
                if explicit:
                    raise outer from error
                raise outer
        except type(outer) as error:
            return error

    for explicit in (True, False):
        assert is_gpu_out_of_memory(raised(RuntimeError("recording failed"), torch.cuda.OutOfMemoryError("simulated"), explicit))
        assert not is_gpu_out_of_memory(raised(RuntimeError("recording failed"), RuntimeError("CUDNN_STATUS_BAD_PARAM"), explicit))


@pytest.mark.parametrize("message", LIBRARY_OUT_OF_MEMORY)
def test_a_cublas_or_cudnn_allocation_failure_shrinks_the_tiles_like_out_of_memory(monkeypatch, image, message):
    calls = _fake_gpu(monkeypatch, fits=40)
    solve = dip.super_resolve_tile

    def library_fails(observed, *args, **kwargs):
        try:
            return solve(observed, *args, **kwargs)
        except torch.cuda.OutOfMemoryError:
            raise RuntimeError(message) from None

    monkeypatch.setattr(dip, "super_resolve_tile", library_fails)
    out, messages = _run(image, TileOptions(128, 16))
    np.testing.assert_allclose(out, image.repeat(2, axis=1).repeat(2, axis=2), rtol=1e-6, atol=1e-3)
    assert [m for m in messages if "out of GPU memory" in m] == [
        "out of GPU memory: retrying with tiles of 64 px", "out of GPU memory: retrying with tiles of 32 px"
    ]
    assert all(device == "cuda" for device, _ in calls) and calls[-1][1] <= 32


def test_a_batch_failing_in_cudnn_for_memory_is_solved_one_by_one():
    from internal_sr.core.grid import Window
    from internal_sr.core.tiling import ShrinkOnOutOfMemory

    solved: list[Window] = []
    progress = NullProgress()

    def solve(window, progress, device):
        solved.append(window)
        return np.zeros((1, 2, 2)), np.ones((1, 2, 2), bool)

    def solve_many(windows, progress, device):
        raise RuntimeError("cuDNN error: CUDNN_STATUS_NOT_ENOUGH_WORKSPACE")

    windows = [Window(32 * k, 0, 32, 32) for k in range(3)]
    solver = ShrinkOnOutOfMemory(solve, torch.device("cuda"), TileOptions(32, 4), 1, 2, progress, solve_many=solve_many)
    assert len(solver.many(windows, progress)) == 3
    assert solved == windows and solver.batch == 1


def test_a_batch_out_of_gpu_memory_is_halved_and_the_halved_batch_kept():
    """Tiles solved together that run out of GPU memory are solved again half as many at a time (not one by one
    for the rest of the run), and the next call starts at the batch that fitted. Here more than 2 do not fit."""
    from internal_sr.core.grid import Window
    from internal_sr.core.tiling import ShrinkOnOutOfMemory

    calls: list[int] = []  # tiles per attempt
    messages: list[str] = []
    solved: list[Window] = []

    class Messages(NullProgress):
        def info(self, message: str) -> None:
            messages.append(message)

    def solve_many(windows, progress, device):
        calls.append(len(windows))
        if len(windows) > 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        solved.extend(windows)
        return [(np.zeros((1, 2, 2)), np.ones((1, 2, 2), bool)) for _ in windows]

    def solve(window, progress, device):
        return solve_many([window], progress, device)[0]

    windows = [Window(32 * k, 0, 32, 32) for k in range(8)]
    solver = ShrinkOnOutOfMemory(solve, torch.device("cuda"), TileOptions(32, 4), 1, 2, Messages(), solve_many=solve_many)
    assert len(solver.many(windows, NullProgress())) == 8
    assert calls == [8, 4, 2, 2, 2, 2] and solved == windows  # each once, in order
    assert messages == ["out of GPU memory with 8 tiles at once: retrying 4 at a time",
                        "out of GPU memory with 4 tiles at once: retrying 2 at a time"]
    assert len(solver.many(windows[:3], NullProgress())) == 3
    assert calls[6:] == [2, 1] and solved[8:] == windows[:3]  # the next row: 2 together, then the last alone


def test_an_automatic_batch_is_sized_from_the_gpu_memory_the_first_tile_took(monkeypatch, image):
    """Batch 0 on CUDA: the first tile alone (even with cold tiles: it is measured), then as many tiles at once as
    half the free GPU memory holds at the first tile's peak (here 3 of 32² px at 1 MiB each in 6 MiB free), across
    rows of tiles; the output is exact."""
    _fake_gpu(monkeypatch, fits=1000, free=6 * 2**20)
    sizes, together = [], dip.super_resolve_tiles

    def spy(observed, *args, **kwargs):
        sizes.append(len(observed))
        return together(observed, *args, **kwargs)

    monkeypatch.setattr(dip, "super_resolve_tiles", spy)
    config = DIPConfig(scale=2, device="cuda", tiles=TileOptions(32, 4), warm_start=False)
    out, result = pipeline.super_resolve_array(image, config)  # 4 × 4 tiles: the first alone, then 3, 3, 3, 3, 3
    np.testing.assert_allclose(out, image.repeat(2, axis=1).repeat(2, axis=2), rtol=1e-6, atol=1e-3)
    assert sizes == [3] * 5
    assert "tiles solved together on the GPU: up to 3 (the first tile took 1 MiB of GPU memory, 0.0 GiB free after it)" in result.messages


def test_an_automatic_batch_holds_the_waiting_outputs_within_the_host_budget():
    assert TileOptions(128, 16).for_device("cuda", 1, 2).batch == CUDA_BATCH
    assert TileOptions(128, 16).for_device("cuda", 13, 4).batch == BATCH_HOST_BYTES // (13 * 512**2 * 9) < CUDA_BATCH
    assert TileOptions(128, 16).for_device("cpu", 1, 2).batch == TileOptions(128, 16).for_device("mps", 1, 2).batch == 1
    assert TileOptions(128, 16, batch=5).for_device("cuda", 13, 4).batch == 5


def test_other_runtime_errors_on_the_gpu_are_not_taken_for_out_of_memory(monkeypatch, image):
    _fake_gpu(monkeypatch, fits=1000)

    def broken(*args, **kwargs):
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    monkeypatch.setattr(dip, "super_resolve_tile", broken)
    with pytest.raises(RuntimeError, match="illegal memory access"):
        _run(image, TileOptions(64, 8))


def test_out_of_memory_at_the_smallest_tile_falls_back_to_the_cpu(monkeypatch, image):
    calls = _fake_gpu(monkeypatch, fits=0)
    out, messages = _run(image, TileOptions(64, 8))
    np.testing.assert_allclose(out, image.repeat(2, axis=1).repeat(2, axis=2), rtol=1e-6, atol=1e-3)
    # the first tile (solved alone, the others warm-start from it) already moves the run to the CPU
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


@pytest.mark.parametrize("window", [1, 0.5])
def test_batched_tiles_equal_tiles_solved_one_by_one(window):
    """Two real 16 × 16 tiles (one with nodata) optimised together give what each gives alone, stop rule
    included; with windows (``step_window``) every tile of a batch steps on the same window."""
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
                       detail_layers=2, detail_channels=8, stop_patience=25, stop_tolerance=0.3, device="cpu",
                       step_window=window)
    kernel, cpu = make_kernel("bicubic", 2), torch.device("cpu")
    alone = [dip.super_resolve_tile(t, v, kernel, config, cpu, NullProgress(), seed_everything(0)) for t, v in zip(tiles, valid)]
    together = dip.super_resolve_tiles(tiles, valid, kernel, config, cpu, NullProgress(), seed_everything(0))
    for a, b in zip(alone, together):
        assert a.steps == b.steps
        # float32 rounding differs between a batched and a lone convolution, and Adam amplifies it step by step
        np.testing.assert_allclose(b.losses[:20], a.losses[:20], rtol=2e-2)
        np.testing.assert_allclose(b.image, a.image, rtol=0, atol=1e-3)  # normalised units
    assert np.abs(alone[0].image - alone[1].image).max() > 0.1  # the tiles really differ


def test_pipeline_batches_tiles_across_rows_and_blends_them_as_one_by_one(monkeypatch):
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
    # the first tile alone (the others warm-start from it), then the second tile of the first row with the first
    # of the second row in one call (a batch crosses rows of tiles), then the last tile
    assert sizes == [1, 2, 1]
    # float rounding only (measured: 2.4e-4 of a DN on a std of 242): a batching mistake moves pixels by DNs
    np.testing.assert_allclose(batched, one, rtol=0, atol=1e-4 * image.std())


def test_guided_dip_out_of_memory_falls_back_like_dip(monkeypatch):
    """Guided DIP's tiles shrink on a GPU that runs out of memory, then move to the CPU; the output is the same."""
    from internal_sr.core import guided, sharpen

    calls: list[tuple[str, int]] = []

    def solve(target, target_valid, guide, guide_valid, target_kernels, guide_kernels, config, device, progress, generator, start=None, keep=None):
        calls.append((device.type, max(target.shape[-2:])))
        if device.type == "cuda":
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return TileResult(target.repeat(2, axis=1).repeat(2, axis=2), np.zeros(1), 1)

    monkeypatch.setattr(guided, "sharpen_tile", solve)
    monkeypatch.setattr(sharpen, "resolve_device", lambda name: torch.device(name))
    monkeypatch.setattr(sharpen, "describe", lambda device: device.type)
    _seeded_on_the_cpu(monkeypatch, sharpen)
    rng = np.random.default_rng(1)
    target, guide = rng.uniform(0, 1000, (2, 70, 70)), rng.uniform(0, 1000, (3, 140, 140))
    config = GuidedDIPConfig(kernel="bicubic", guide_kernel="bicubic", device="cuda", tiles=TileOptions(64, 16))
    out, result = sharpen.sharpen_array(target, guide, config, [None, None], [None] * 3)
    np.testing.assert_allclose(out, target.repeat(2, axis=1).repeat(2, axis=2), rtol=1e-6, atol=1e-3)
    assert [m for m in result.messages if "out of GPU memory" in m] == [
        "out of GPU memory: retrying with tiles of 32 px", "out of GPU memory even with tiles of 32 px: continuing on the CPU"
    ]
    assert {edge for device, edge in calls if device == "cpu"} == {64}


#: Each method's tile-by-tile configuration, shrunk for speed (20 steps, no early stop, on the CPU).
TINY = {
    "dip": DIPConfig(scale=2, iterations=20, depth=3, channels=8, skip_channels=2, noise_channels=4, detail_layers=2,
                     detail_channels=8, early_stop=False, device="cpu"),
    "knitwork": KnitworkConfig(scale=2, iterations=20, width=16, layers=2, fourier_features=8, discriminator_layers=(8,),
                               adversarial_patches=64, early_stop=False, device="cpu"),
    "guided": GuidedDIPConfig(iterations=20, width=8, layers=2, kernel="bicubic", guide_kernel="bicubic", early_stop=False,
                              device="cpu"),
}


def _tiled_run(method: str, config, image: np.ndarray) -> pipeline.RunResult:
    """``image`` ``(C, H, W)`` super-resolved ×2 by ``method`` through the array pipeline; guided DIP sharpens
    its first two bands, degraded ×2, with the other two as the guide."""
    if method != "guided":
        return pipeline.super_resolve_array(image, config)[1]
    from internal_sr.core.degradation import degrade_array
    from internal_sr.core.kernels import make_kernel
    from internal_sr.core.sharpen import sharpen_array

    target = degrade_array(image[:2], make_kernel("bicubic", 2)).astype(np.float32)
    return sharpen_array(target, image[2:, : 2 * target.shape[1], : 2 * target.shape[2]], config, [None] * 2, [None] * 2)[1]


@pytest.mark.parametrize("method", TINY)
def test_every_method_warm_starts_the_tiles_after_the_first(method):
    """Warm start: the first trained tile runs all its steps, every other tile starts from its trained networks
    and runs warm_steps of them; cold tiles all run every step."""
    from helpers import S2_10M, read

    image = read(S2_10M).astype(np.float32)[:, :40, :60]  # 2 × 2 tiles of 32 input pixels (guided: 2 × 3 of 16 target pixels)
    tiles = TileOptions(16, 4) if method == "guided" else TileOptions(32, 4)
    cold, warm = (_tiled_run(method, replace(TINY[method], warm_start=w, tiles=tiles), image).curves for w in (False, True))
    assert len(cold) == len(warm) >= 4
    assert [len(c) for c in cold] == [20] * len(cold) and [len(c) for c in warm] == [20] + [15] * (len(warm) - 1)


def test_dip_warm_starts_alike_one_by_one_and_batched():
    """Batched DIP solves the first trained tile alone too, so batched and one-by-one runs give the same image."""
    from helpers import S2_10M, read

    image = read(S2_10M).astype(np.float32)[:2, :40, :60]
    runs = {batch: pipeline.super_resolve_array(image, replace(TINY["dip"], tiles=TileOptions(32, 4, batch))) for batch in (1, 2)}
    assert [len(c) for c in runs[2][1].curves] == [20, 15, 15, 15]
    np.testing.assert_allclose(runs[2][0], runs[1][0], rtol=0, atol=2.0)  # reflectance units


def _solve_tile(method: str, config, tile: np.ndarray, start=None) -> TileResult:
    """One normalised tile ``(4, h, w)`` solved ×2 by ``method`` (guided: bands 1–2 degraded, guided by bands 3–4)."""
    from internal_sr.core import guided, knitwork
    from internal_sr.core.degradation import degrade_array
    from internal_sr.core.device import seed_everything
    from internal_sr.core.kernels import make_kernel
    from internal_sr.core.progress import NullProgress

    kernel, cpu, generator = make_kernel("bicubic", 2), torch.device("cpu"), seed_everything(0)
    if method == "guided":
        target = degrade_array(tile[:2], kernel).astype(np.float32)
        ones = np.ones(target.shape, bool), np.ones(tile[2:].shape, bool)
        return guided.sharpen_tile(target, ones[0], tile[2:], ones[1], [kernel] * 2, [kernel] * 2, config, cpu, NullProgress(),
                                   generator, start=start)
    module = dip if method == "dip" else knitwork
    return module.super_resolve_tile(tile, np.ones(tile.shape, bool), kernel, config, cpu, NullProgress(), generator, start=start)


@pytest.mark.parametrize("method", TINY)
def test_a_warm_started_tile_starts_from_the_given_networks(method):
    """One step from a trained tile's networks stays next to them (Adam moves each weight by about the learning
    rate); one step from fresh networks does not."""
    from helpers import S2_10M, read

    image = read(S2_10M).astype(np.float32) / 3000
    first, second = image[:, :24, :24], image[:, 40:64, 60:84]
    config = TINY[method]

    def run(tile, steps, start=None):
        return _solve_tile(method, replace(config, iterations=steps, warm_steps=1 / steps if start else 1.0), tile, start)

    trained = run(first, 40)
    warm, cold = run(second, 40, trained.state), run(second, 1)
    assert warm.steps == 1 and cold.steps == 1

    def distance(state):  # over the weights (batch-norm running statistics move fast by design)
        weights = [k for k in trained.state if state[k].is_floating_point() and "running_" not in k]
        return max(float((state[k] - trained.state[k]).abs().max()) for k in weights)

    assert distance(warm.state) <= 1.5 * config.learning_rate < 0.1 * distance(cold.state)


@pytest.mark.parametrize("threads, text", [(1, "cpu (1 thread)"), (2, "cpu (2 threads)")])
def test_cpu_description_counts_threads(threads, text):
    """The dialog and the logs name the CPU with PyTorch's thread count, in the right number."""
    from internal_sr.core.device import describe

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        assert describe(torch.device("cpu")) == text
    finally:
        torch.set_num_threads(before)
    assert describe(torch.device("cpu"), threads) == text  # the count a run will set, whatever PyTorch's now


def test_cpu_threads_of_overlapping_runs_on_two_threads_give_the_count_back():
    """QGIS runs jobs on worker threads of one process and ``torch.set_num_threads`` is process-wide: two runs whose
    thread settings overlap (two QGIS tasks), ending in the order they started, left the count of the first to end's
    "previous", i.e. the other run's. Each sees its own count, and the process's count comes back either way."""
    import threading

    from internal_sr.core.device import cpu_threads

    before = torch.get_num_threads()
    for first_to_end in ("a", "b"):
        entered = {name: threading.Event() for name in "ab"}
        leave = {name: threading.Event() for name in "ab"}
        seen: dict[str, int] = {}

        def run(name: str, count: int) -> None:
            with cpu_threads(count):
                seen[name] = torch.get_num_threads()
                entered[name].set()
                leave[name].wait(10)

        a = threading.Thread(target=run, args=("a", 1))
        b = threading.Thread(target=run, args=("b", before + 2))
        a.start()
        entered["a"].wait(10)
        b.start()
        entered["b"].wait(10)
        second = "b" if first_to_end == "a" else "a"
        for name in (first_to_end, second):
            leave[name].set()
            (a if name == "a" else b).join(10)
        assert seen == {"a": 1, "b": before + 2}
        assert torch.get_num_threads() == before
        fresh: list[int] = []
        later = threading.Thread(target=lambda: fresh.append(torch.get_num_threads()))
        later.start()
        later.join(10)
        assert fresh == [before]  # a thread started afterwards (another plugin's task) finds the count as it was
    with cpu_threads(None):
        assert torch.get_num_threads() == before  # automatic: PyTorch's own count, untouched


def _load(monkeypatch, load: float | None, cores: int) -> None:
    """The machine's 1-minute load average reads ``load`` (``None``: unknown, as on Windows) on ``cores`` cores."""
    import os

    def load_average() -> tuple[float, float, float]:
        if load is None:
            raise OSError("no load average here")
        return (load, load, load)

    monkeypatch.setattr(os, "getloadavg", load_average)
    monkeypatch.setattr(os, "cpu_count", lambda: cores)


@pytest.mark.parametrize(
    ("load", "cores", "threads", "idle", "suggested"),
    [(0.6, 2, 2, None, None), (0.99, 2, 2, None, None), (1.0, 2, 2, "1 idle core", 1), (3.3, 2, 2, "no idle core", 1),
     (3.3, 2, 1, None, None), (None, 2, 2, None, None), (0.0, 2, 4, "2 idle cores", 2), (2.5, 8, 6, None, None),
     (2.5, 8, 7, "6 idle cores", 6)],
)
def test_busy_cpus_are_warned_of_when_the_load_takes_a_whole_core_from_the_run(monkeypatch, load, cores, threads, idle,
                                                                               suggested):
    """The warning came at any load above 0.5 with as many threads as cores (load 0.6 on 2 cores: most desktop runs).
    The load's whole cores (``floor(load)``) are taken from the run; a run whose threads outnumber the cores left idle
    is warned of, suggesting the idle cores (at least 1); not with one thread, not where the load is unknown (Windows).
    More threads than cores share cores even on an idle machine."""
    from internal_sr.core.device import busy_cpus_note

    _load(monkeypatch, load, cores)
    note = busy_cpus_note(threads, "--threads")
    if idle is None:
        assert note is None
    else:
        assert note == (f"warning: {threads} PyTorch threads but {idle} (load {load:.1f} on {cores} cores): threads that "
                        "share a core with other work wait for each other and can make the run many times slower; if it is "
                        f"slow, set --threads to {suggested}")


def test_the_engines_busy_cpus_line_names_the_front_ends_setting_once_a_job(monkeypatch):
    """The engine gives the warning after its device line, for a run on the CPU: named as the front end of the job
    running in this thread names its setting (``cpu_threads``), once a job (KernelGAN, then the run it serves), and
    for a script with no front end as PyTorch's own setting."""
    from internal_sr.core.device import LIBRARY_SETTING, busy_cpus_line, cpu_threads

    _load(monkeypatch, 3.3, 2)
    cpu = torch.device("cpu")
    with cpu_threads(2, "--threads"):
        assert busy_cpus_line(torch.device("cuda")) is None
        first = busy_cpus_line(cpu)
        assert first is not None and first.endswith("set --threads to 1") and busy_cpus_line(cpu) is None
        with cpu_threads(None, "CPU threads (THREADS)"):  # a job of its own
            assert busy_cpus_line(cpu).endswith("set CPU threads (THREADS) to 1")
    with cpu_threads(2):
        assert busy_cpus_line(cpu).endswith(f"set {LIBRARY_SETTING} to 1")
    with cpu_threads(1, "--threads"):
        assert busy_cpus_line(cpu) is None


def _steady_faults(block_mb: int, repeats: int = 16) -> int:
    """Minor page faults over the last quarter of ``repeats`` allocations, fills and frees of a ``block_mb`` MB block
    (glibc reaches its steady state within the first ones)."""
    import resource

    for _ in range(repeats - repeats // 4):
        torch.ones(block_mb << 18)  # float32: block_mb MB
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(repeats // 4):
        torch.ones(block_mb << 18)
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


def _resident_mb() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096 >> 20


def _main_thread_faults() -> dict[str, float]:
    """Steady page faults of 64 MB blocks on the main thread, outside and inside ``reused_heap``, and the MB
    given back to the system when the run ends."""
    faults = {"outside": _steady_faults(64)}
    with device.reused_heap():
        with device.reused_heap():
            pass  # the inner exit keeps the run's setting
        faults["inside"] = _steady_faults(64)
        held = _resident_mb()
    faults["given_back_mb"] = held - _resident_mb()
    return faults


def _in_fresh_process(measure: str) -> dict[str, float]:
    """What this module's function ``measure`` returns, run in a fresh Python process: glibc's heap settings
    and arenas are per process, and what earlier tests (or a QGIS task still winding down on a worker
    thread) left there would decide the outcome, not ``reused_heap``."""
    import json
    import subprocess
    import sys

    code = (
        f"import json, sys; sys.path.insert(0, {os.path.dirname(__file__)!r}); "
        f"import test_speed_paths as t; print(json.dumps(t.{measure}()))"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(run.stdout.splitlines()[-1])


@pytest.mark.skipif(device._LIBC is None, reason="glibc's mallopt is what reused_heap sets")
def test_reused_heap_reuses_large_blocks_during_a_run_and_gives_them_back_after():
    faults = _in_fresh_process("_main_thread_faults")
    touched = 4 * (64 << 20) // 4096  # pages of four 64 MB blocks
    assert faults["outside"] > touched // 2  # outside a run glibc maps each block afresh: every page faults
    assert faults["inside"] < touched // 20
    assert faults["given_back_mb"] > 48  # the freed blocks went back to the system at the end of the run


def _worker_faults() -> dict[str, int]:
    """Steady page faults of 48 MB blocks on a worker thread, outside and inside ``reused_heap``."""
    import threading

    faults: dict[str, int] = {}

    def measure(key: str) -> None:
        faults[key] = _steady_faults(48)

    def on_worker(key: str) -> None:
        worker = threading.Thread(target=measure, args=(key,))
        worker.start()
        worker.join()

    on_worker("outside")
    with device.reused_heap():
        on_worker("inside")
    return faults


@pytest.mark.skipif(device._LIBC is None, reason="glibc's mallopt is what reused_heap sets")
def test_reused_heap_reuses_blocks_under_an_arena_on_worker_threads():
    """QGIS runs tasks on worker threads, whose glibc arenas hold up to 64 MiB: 48 MB blocks are reused there."""
    faults = _in_fresh_process("_worker_faults")
    touched = 4 * (48 << 20) // 4096
    assert faults["outside"] > touched // 2 and faults["inside"] < touched // 20
