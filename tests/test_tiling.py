"""Tiling: coverage and seamless blending (an identity model gives exact nearest-neighbour output)."""

import numpy as np
import pytest
import torch

from internal_sr.core.config import MAX_SCALE, DIPConfig, GuidedDIPConfig, KnitworkConfig, TileOptions
from internal_sr.core.degradation import degrade_array
from internal_sr.core.errors import Cancelled, InputError, NonFiniteLoss
from internal_sr.core.grid import Window
from internal_sr.core.kernels import make_kernel
from internal_sr.core.pipeline import super_resolve_array, tile_kernels
from internal_sr.core.progress import NullProgress
from internal_sr.core.sentinel2 import ORDER, kernel_spec
from internal_sr.core.sharpen import sharpen_array
from internal_sr.core.tiling import ShrinkOnOutOfMemory, WarmStart, kernel_tiles, plan_tiles, run_tiles, tile_count, tile_offsets

from helpers import S2_10M_256, read, write_raster


@pytest.mark.parametrize("length,size,overlap", [(100, 32, 8), (33, 32, 4), (300, 64, 0), (64, 64, 16), (129, 40, 19)])
def test_tiles_cover_everything_with_the_asked_overlap(length, size, overlap):
    offsets = tile_offsets(length, size, overlap)
    assert offsets[0] == 0 and offsets[-1] + min(size, length) == length
    for a, b in zip(offsets, offsets[1:]):
        assert a + size - b >= overlap


def _nearest_neighbour_run(image: np.ndarray, scale: int, tiles: TileOptions) -> tuple[np.ndarray, list]:
    c, h, w = image.shape
    out = np.full((c, h * scale, w * scale), -1.0)
    written = []

    def solve(window, progress):
        tile = image[(slice(None), *window.slices)]
        up = tile.repeat(scale, axis=1).repeat(scale, axis=2)
        return up, np.ones(up.shape, dtype=bool)

    def write(window, values, valid):
        written.append(window)
        out[(slice(None), *window.slices)] = values

    run_tiles(w, h, c, scale, tiles, solve, write, NullProgress())
    return out, written


@pytest.mark.parametrize("overlap", [0, 1, 5, 16, 31])
@pytest.mark.parametrize("scale", [2, 3])
def test_identity_model_is_exact_across_tile_borders(overlap, scale):
    rng = np.random.default_rng(overlap)
    image = rng.integers(0, 10000, size=(2, 150, 137)).astype(np.float64)
    out, written = _nearest_neighbour_run(image, scale, TileOptions(64, overlap))
    expected = image.repeat(scale, axis=1).repeat(scale, axis=2)
    np.testing.assert_array_equal(np.rint(out), expected)
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-9)
    # every output pixel is written exactly once, in blocks no taller than a row of tiles
    times = np.zeros((150 * scale, 137 * scale), dtype=int)
    for w in written:
        times[w.slices] += 1
    assert (times == 1).all()
    assert max(w.height for w in written) <= 64 * scale


def test_batches_cross_rows_of_tiles_and_blend_as_one_by_one():
    """With ``tiles.batch`` 4 on 3 × 3 tiles, the calls take tiles 1–4, 5–8 and 9 in row order (a batch crosses
    rows of tiles: rows of 3 would otherwise make calls of 3); the blend is the identity model's, exactly."""
    image = np.random.default_rng(3).integers(0, 10000, size=(1, 150, 137)).astype(np.float64)
    out = np.full((1, 300, 274), -1.0)
    groups: list[list[Window]] = []

    def solve(window, progress):
        up = image[(slice(None), *window.slices)].repeat(2, axis=1).repeat(2, axis=2)
        return up, np.ones(up.shape, dtype=bool)

    def solve_batch(windows, progress):
        groups.append(windows)
        return [solve(window, progress) for window in windows]

    def write(window, values, valid):
        out[(slice(None), *window.slices)] = values

    tiles = TileOptions(64, 16, batch=4)
    assert run_tiles(137, 150, 1, 2, tiles, solve, write, NullProgress(), solve_batch) == 9
    flat = [window for row in plan_tiles(137, 150, tiles) for window in row]
    assert groups == [flat[0:4], flat[4:8]]  # the ninth alone, through ``solve``
    np.testing.assert_allclose(out, image.repeat(2, axis=1).repeat(2, axis=2), rtol=0, atol=1e-9)


def test_plan_for_small_image_is_one_tile():
    plan = plan_tiles(40, 30, TileOptions(128, 16))
    assert len(plan) == 1 and len(plan[0]) == 1 and (plan[0][0].width, plan[0][0].height) == (40, 30)


def test_bad_tile_options():
    """A tile's size is checked by the method it is for (``TileOptions.check_size``), its batch and overlap alone."""
    for tiles in (TileOptions(8, 2), TileOptions(64, 32)):
        with pytest.raises(InputError):
            KnitworkConfig(tiles=tiles)
    with pytest.raises(InputError):
        TileOptions(64, -1)
    with pytest.raises(InputError):
        TileOptions(64, 16, batch=-1)


def test_cancellation_between_tiles():
    class CancelAfterOne(NullProgress):
        calls = 0

        def cancelled(self):
            self.calls += 1
            return self.calls > 1

    with pytest.raises(Cancelled):
        run_tiles(100, 100, 1, 2, TileOptions(32, 4), lambda w, p: (np.zeros((1, 64, 64)), np.ones((1, 64, 64), bool)), lambda *a: None, CancelAfterOne())


def test_memory_is_bounded_by_the_tile_not_the_strip():
    """Blending buffers hold a tile's neighbourhood and an overlap-high band, not a strip of tiles."""
    import tracemalloc

    size, scale, width = 64, 2, 1024  # tiles every 60 pixels: overlaps of exactly 4
    tile_out = np.ones((1, size * scale, size * scale))
    tile_valid = np.ones(tile_out.shape, dtype=bool)
    tracemalloc.start()
    run_tiles(width, 184, 1, scale, TileOptions(size, 4), lambda w, p: (tile_out, tile_valid), lambda *a: None, NullProgress())
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    strip = size * scale * width * scale * 17  # float64 sums + float64 weights + bool validity of one strip of tiles
    assert peak < strip / 3


@pytest.mark.parametrize("width,height,size", [(96, 96, 64), (1000, 700, 128), (40, 30, 48), (129, 16, 32)])
def test_tile_count_is_the_plans_without_listing_it(width, height, size):
    tiles = TileOptions(size, 8)
    assert tile_count(width, height, tiles) == sum(len(row) for row in plan_tiles(width, height, tiles))


def test_a_tile_whose_loss_diverged_ends_the_run_naming_it_among_tiles_solved_together():
    """``NonFiniteLoss`` from the third tile of a run (the second of a batch, after a leading tile solved alone)
    is one ``InputError`` naming that tile; no later tile is solved and nothing is written after the leading tile's
    final block."""
    solved, written = [], []

    def solve(window, progress, device):
        solved.append(window)
        return np.zeros((1, 2 * window.height, 2 * window.width)), np.ones((1, 2 * window.height, 2 * window.width), bool)

    def solve_many(windows, progress, device):
        raise NonFiniteLoss("DIP", 25, index=1)  # the second of the windows given: the group's third

    solver = ShrinkOnOutOfMemory(solve, torch.device("cpu"), TileOptions(32, 8, batch=4), 1, 2, NullProgress(),
                                 solve_many=solve_many, lead=lambda: not solved)
    with pytest.raises(InputError) as error:
        run_tiles(100, 60, 1, 2, TileOptions(32, 8, batch=4), solver, lambda *a: written.append(a), NullProgress(), solver.many)
    assert str(error.value).startswith("tile 3 of 12 (columns 45–76, rows 0–31 of the tiled area): DIP: the training loss")
    assert type(error.value) is InputError and len(solved) == 1
    assert [window for window, *_ in written] == [Window(0, 0, 46, 28)]  # up to the second tile and the second row


def test_a_tile_that_diverged_one_by_one_after_its_batch_ran_out_of_gpu_memory_is_the_one_named():
    """A batch that ran out of GPU memory is solved again in smaller groups (here one by one): ``NonFiniteLoss`` from
    its third tile names that tile, not the first of the batch (it was 1 of 12)."""
    solved = []

    def solve(window, progress, device):
        if len(solved) == 2:
            raise NonFiniteLoss("DIP", 25)
        solved.append(window)
        return np.zeros((1, 2 * window.height, 2 * window.width)), np.ones((1, 2 * window.height, 2 * window.width), bool)

    def solve_many(windows, progress, device):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")

    solver = ShrinkOnOutOfMemory(solve, torch.device("cuda"), TileOptions(32, 8, batch=4), 1, 2, NullProgress(), solve_many=solve_many)
    with pytest.raises(InputError, match="^tile 3 of 12 \\(columns 45–76, rows 0–31 of the tiled area\\): DIP"):
        run_tiles(100, 60, 1, 2, TileOptions(32, 8, batch=4), solver, lambda *a: None, NullProgress(), solver.many)


def test_a_diverged_network_is_not_kept_to_warm_start_the_next_tiles():
    warm = WarmStart(True)
    warm.keep({"weight": torch.tensor([1.0, float("nan")]), "count": torch.tensor(3)})
    assert warm.pending and warm.state is None
    trained = {"weight": torch.tensor([1.0, 2.0]), "count": torch.tensor(3)}
    warm.keep(trained)
    assert warm.state is trained and not warm.pending


def test_the_default_tiles_are_unchanged_with_every_built_in_kernel():
    """Tiles change only for a kernel reaching past a tile's side by more than half the overlap: the built-in kernels,
    at every scale and pixel phase, the sentinel2 bands' MTFs and a learned kernel's support leave the default tiles,
    and so default runs, as they were, without a word in the log (``tiling.tiles_note`` says only tiles that differ)."""
    specs = ["bicubic", "lanczos2", "lanczos3", "landsat", *(kernel_spec(band) for band in ORDER)]
    for scale in range(2, MAX_SCALE + 1):
        kernels = [make_kernel(spec, scale, shift) for spec in specs for shift in ((0.0, 0.0), (0.5, 0.5))]
        kernels += tile_kernels(KnitworkConfig(scale=scale, kernel="learned"), None)
        for kernel in kernels:
            assert kernel_tiles(TileOptions(), [kernel], 4096, 4096) == TileOptions(), (scale, kernel.name)


#: Reaches 18 input pixels past a tile's side at ×2: tiles overlapping by 36, the default tile grown to 144.
WIDE = "gaussian:6"


@pytest.mark.parametrize("method", ["dip", "knitwork", "guided"])
def test_a_wide_kernel_grows_the_default_tiles_and_the_log_says_so(method):
    """A kernel reaching 18 input pixels past a tile's side, more than the default overlap of 16 covers, was used with
    the tiles as asked: each tile fitted its sides to an observation blurred over pixels it does not hold, against its
    padding, and blended seams saw nothing else. The overlap now grows to twice the reach and the default tile to four
    times that, said in one line, and the run (DIP, Knitworks, guided DIP) uses them."""
    image = np.pad(read(S2_10M_256).astype(np.float32)[:, :80], ((0, 0), (0, 0), (0, 44)), mode="reflect")  # 80 × 300
    fast = dict(iterations=1, early_stop=False, back_projection_steps=0, device="cpu", kernel=WIDE)
    pixels = "input"
    if method == "guided":
        target = degrade_array(image[:2], make_kernel(WIDE, 2)).astype(np.float32)  # 40 × 150
        config = GuidedDIPConfig(width=8, layers=2, guide_kernel=WIDE, **fast)
        run = sharpen_array(target, image[2:], config, [None] * 2, [None] * 2)[1]
        pixels = "target"
    elif method == "dip":
        config = DIPConfig(scale=2, depth=3, channels=8, skip_channels=2, noise_channels=4, detail_channels=8, **fast)
        run = super_resolve_array(image[:1, ::2, ::2], config)[1]
    else:
        config = KnitworkConfig(scale=2, width=16, layers=2, fourier_features=8, discriminator_layers=(8,), adversarial_patches=64, **fast)
        run = super_resolve_array(image[:1, ::2, ::2], config)[1]
    assert run.tiles == TileOptions(144, 36) and len(run.curves) == 2
    assert (
        f"tiles of 128 px with 16 px overlap asked, 144 px with 36 px used: kernel {WIDE} reaches 18 {pixels} pixels past a "
        "tile's side, so the overlap grows to twice that, for blended seams to see the image, not a tile's padding, and "
        "the default tile to 4 times the overlap"
    ) in run.messages
    assert sum("2 tiles of 144 px with 36 px overlap" in message for message in run.messages) == 1


@pytest.mark.parametrize("run", ["dip", "guided", "evaluate dip", "evaluate guided"])
def test_a_run_chooses_its_tiles_once_and_says_so_once(tmp_path, monkeypatch, run):
    """The tiles were chosen twice per run: by the check before it (``check_super_resolve``, ``sharpen.check_inputs``,
    evaluate's plan) and again by the solver, which said so in the log. The check's choice now serves the run: one
    call of ``kernel_tiles`` per run, its line once in the log, and the tiles kept on the run's result."""
    from affine import Affine

    from internal_sr.core import evaluation, pipeline, sharpen, tiling

    calls = []
    choose = tiling.kernel_tiles

    def counting(*args, **kwargs):
        calls.append(args)
        return choose(*args, **kwargs)

    for module in (tiling, pipeline, sharpen, evaluation):
        if hasattr(module, "kernel_tiles"):
            monkeypatch.setattr(module, "kernel_tiles", counting)
    image = np.pad(read(S2_10M_256).astype(np.float32)[:, :160], ((0, 0), (0, 0), (0, 344)), mode="symmetric")  # 160 × 600
    fast = dict(iterations=1, early_stop=False, back_projection_steps=0, device="cpu", kernel=WIDE)
    dip = DIPConfig(scale=2, depth=3, channels=8, skip_channels=2, noise_channels=4, detail_channels=8, **fast)
    guided = GuidedDIPConfig(width=8, layers=2, guide_kernel=WIDE, **fast)

    def raster(name: str, data: np.ndarray, metres: float) -> str:
        return write_raster(str(tmp_path / name), data.copy(), transform=Affine(metres, 0, 300000.0, 0, -metres, 5800000.0))

    fine = image[:, ::2, ::2]  # 80 × 300: 150 × 40 target pixels for the runs, evaluate's degraded images
    out = str(tmp_path / "out.tif")
    if run == "dip":
        result = pipeline.super_resolve(raster("in.tif", fine[:1, ::2, ::2], 20.0), out, dip)
    elif run == "guided":
        result = sharpen.sharpen(raster("t.tif", fine[:2, ::2, ::2], 20.0), raster("g.tif", fine[2:], 10.0), out, guided)
    elif run == "evaluate dip":
        result = evaluation.evaluate(raster("in.tif", fine[:1], 10.0), "dip", 2, WIDE, dip).run
    else:
        target, guide = raster("t.tif", fine[:2], 20.0), raster("g.tif", image[2:], 10.0)
        result = evaluation.evaluate(target, "guided", 2, WIDE, guided, guide_path=guide).run
    assert len(calls) == 1
    assert result.tiles == TileOptions(144, 36) and len(result.curves) == 2
    grown = "tiles of 128 px with 16 px overlap asked, 144 px with 36 px used"
    assert sum(line.startswith(grown) for line in result.messages) == 1


def test_a_wide_kernel_raises_the_overlap_of_the_users_tile_and_refuses_one_too_small():
    """A tile size of the user's own is kept: the overlap grows where the kernel needs, and a tile not more than twice
    that is refused naming the reach, the size asked and the smallest that works: one tile over the input's longer edge
    where that is less. An input one tile covers has no seams and keeps its tiles."""
    lanczos3, wide = [make_kernel("lanczos3", 2)], [make_kernel("gaussian:4", 2)]  # reaching 3 and 12 input pixels
    assert kernel_tiles(TileOptions(64, 4), lanczos3, 100, 100) == TileOptions(64, 6)
    assert kernel_tiles(TileOptions(64, 30), wide, 100, 100) == TileOptions(64, 30)
    assert kernel_tiles(TileOptions(32, 4), wide, 32, 32) == TileOptions(32, 4)
    for (width, height), smallest in (((100, 60), 49), ((40, 48), 48)):
        with pytest.raises(InputError) as error:
            kernel_tiles(TileOptions(32, 4), wide, width, height)
        assert str(error.value) == (
            "--tile 32 is too small for kernel gaussian:4, which reaches 12 input pixels past a tile's side: tiles must "
            "overlap by twice that (24 pixels, --overlap raised to it) for blended seams to see the image, not a tile's "
            f"padding, and a tile must be more than twice its overlap: use --tile {smallest} or more, or the default 128, "
            "which grows to fit the kernel"
        )
