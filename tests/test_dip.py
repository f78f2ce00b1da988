"""Deep Image Prior on a real Sentinel-2 crop under Wald's protocol, in a small configuration."""

import os

import numpy as np
import pytest
import torch

from internal_sr.core import metrics
from internal_sr.core.cli import main as cli
from internal_sr.core.config import DIPConfig, TileOptions
from internal_sr.core.degradation import Degradation, upsample
from internal_sr.core.dip import cross_scale_pairs, fill_invalid
from internal_sr.core.windows import interior, random_window, window_edges, window_weight
from internal_sr.core.errors import InputError
from internal_sr.core.evaluation import bicubic, bicubic_back_projected, wald_pair
from internal_sr.core.kernels import make_kernel
from internal_sr.core.networks import Hourglass, parameter_count
from internal_sr.core.pipeline import super_resolve_array

from helpers import S2_10M, input_layouts, read, write_raster

#: small but complete formulation: the reference topology at reduced width and depth
SMALL = dict(channels=32, depth=4, iterations=120)


@pytest.fixture(scope="module")
def wald_x2():
    reference, low = wald_pair(read(S2_10M).astype(np.float64), make_kernel("bicubic", 2))
    return reference, low


@pytest.mark.slow
@pytest.mark.parametrize("window", [1, 0.5])
def test_dip_beats_bicubic_and_back_projection_on_a_real_crop(wald_x2, window):
    """With the whole tile each step, and with a quarter of it (``step_window``)."""
    reference, low = wald_x2
    torch.set_num_threads(2)
    out, result = super_resolve_array(low, DIPConfig(scale=2, step_window=window, **SMALL))
    dip = metrics.psnr(out, reference)
    plain = metrics.psnr(bicubic(low, 2), reference)
    bp = metrics.psnr(bicubic_back_projected(low, make_kernel("bicubic", 2)), reference)
    print(f"bicubic {plain:.3f} dB, bicubic+BP {bp:.3f} dB, DIP {dip:.3f} dB ({result.steps} steps)")
    assert dip > bp > plain
    assert metrics.ssim(out, reference) > metrics.ssim(bicubic(low, 2), reference)


def test_same_seed_same_output_other_seed_other_output(wald_x2):
    """Exact repeats on the CPU (CUDA repeats only up to float rounding, see ``core.device``)."""
    _, low = wald_x2
    config = dict(scale=2, channels=8, depth=3, iterations=3, device="cpu")
    a, _ = super_resolve_array(low[:, :32, :32], DIPConfig(seed=1, **config))
    b, _ = super_resolve_array(low[:, :32, :32], DIPConfig(seed=1, **config))
    c, _ = super_resolve_array(low[:, :32, :32], DIPConfig(seed=2, **config))
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).max() > 0


def test_default_network_is_the_reference_architecture_at_half_width():
    config = DIPConfig()
    assert (config.depth, config.channels, config.skip_channels, config.noise_channels) == (5, 64, 4, 32)
    assert (config.detail_layers, config.detail_channels) == (4, 32)
    reference = Hourglass(config.noise_channels + 4, 4)  # the network's own default width is the reference's
    assert 2.0e6 < parameter_count(reference) < 2.5e6  # the reference skip net for SR has ~2.2 M parameters
    net = Hourglass(config.noise_channels + 4, 4, config.depth, config.channels, config.skip_channels)
    assert 0.5e6 < parameter_count(net) < 0.65e6  # a quarter of the weights at half the width
    assert torch.isfinite(net(torch.rand(1, 36, 64, 64))).all()


def test_the_hourglass_normalises_by_batch_statistics_and_keeps_no_running_ones():
    """The network is optimised on one image and never switched to evaluation: running statistics would never be
    read, so it keeps none (no buffer to update each step); a batch norm normalises its input by its own statistics."""
    net = Hourglass(6, 2, depth=3, channels=8, skip_channels=2)
    assert not list(net.buffers())
    x = torch.rand(1, 6, 32, 32)
    norm = net.body.merge[0]
    features = torch.randn(1, norm.num_features, 8, 8) * 3 + 1
    expected = (features - features.mean((0, 2, 3), keepdim=True)) / (features.var((0, 2, 3), unbiased=False, keepdim=True) + norm.eps).sqrt()
    torch.testing.assert_close(norm(features), expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(net.eval()(x), net.train()(x))  # the same in either mode


def test_on_the_cpu_the_generator_runs_channels_last_and_gives_what_the_default_layout_gives(monkeypatch):
    """oneDNN's CPU convolutions run faster on channels-last inputs (``core.device.conv_layout``): the DIP generator
    gets them there, and its output equals that of the default layout up to float rounding."""
    from internal_sr.core import dip

    layouts = input_layouts(monkeypatch, Hourglass)
    low = np.random.default_rng(0).uniform(0, 1, (3, 32, 32)).astype(np.float32)
    config = DIPConfig(scale=2, channels=8, depth=3, detail_channels=4, iterations=4, device="cpu")
    channels_last, _ = super_resolve_array(low, config)
    assert layouts and all(layouts)
    layouts.clear()
    monkeypatch.setattr(dip, "conv_layout", lambda device: torch.contiguous_format)
    contiguous, _ = super_resolve_array(low, config)
    assert layouts and not any(layouts)
    np.testing.assert_allclose(channels_last, contiguous, rtol=0, atol=1e-4)


@pytest.mark.parametrize("scale,size", [(2, 31), (4, 15)])
def test_too_small_image_names_the_minimum(scale, size):
    with pytest.raises(InputError, match=f"at least {DIPConfig(scale=scale).min_input_size}"):
        super_resolve_array(np.ones((1, size, size)), DIPConfig(scale=scale, iterations=1))


def test_a_raster_too_small_for_dip_names_the_method_its_minimum_and_the_remedy(tmp_path, capsys):
    """A 5 × 5 raster at ×2 was refused as "smaller than the network needs": which network, and what to do, was left
    to guess. The line names DIP, its least input in input pixels at the scale, and asks for a larger raster."""
    path = write_raster(str(tmp_path / "tiny.tif"), read(S2_10M)[:1, :5, :5])
    assert cli(["dip", path, str(tmp_path / "out.tif"), "--scale", "2", "--device", "cpu"]) == 2
    assert capsys.readouterr().err == (
        "internal-sr: error: image 5×5 is too small for Deep Image Prior (DIP): at least 32×32 input pixels at ×2 "
        "with depth 5; use a larger raster\n"
    )
    assert sorted(os.listdir(tmp_path)) == ["tiny.tif"]


@pytest.mark.parametrize(
    "settings,message",
    [
        (dict(scale=2.5), "scale must be an integer from 2 to 16, got 2.5"),
        (dict(scale=1000), "scale must be an integer from 2 to 16, got 1000"),
        (dict(depth=0), "depth must be ≥ 1, got 0"),
        (dict(channels=0), "channels must be ≥ 1, got 0"),
        (dict(detail_layers=-1), "detail_layers must be ≥ 0, got -1"),
        (dict(guide_input=False, noise_channels=0), "noise_channels must be ≥ 1"),
        (dict(blend=1.5), r"blend must be in \[0, 1\]"),
        (dict(ema_decay=1.0), r"ema_decay must be in \[0, 1\)"),
        (dict(stop_tolerance=1.0), "stop_tolerance is a relative improvement"),
        (dict(stop_patience=0), "stop_patience must be ≥ 1, got 0"),
        (dict(tiles=TileOptions(16, 4)), r"tile size 16 is too small for Deep Image Prior \(DIP\): use at least 32 input pixels at ×2 with depth 5$"),
    ],
)
def test_settings_out_of_range_are_one_line_errors_before_anything_runs(settings, message):
    """Settings that used to crash deep inside (depth 0, no input at all) or run wrongly (an EMA of 1 keeps the
    first step, a tile smaller than the network blamed the image) are refused when the configuration is made."""
    with pytest.raises(InputError, match=message) as error:
        DIPConfig(**settings)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("scale,size", [(2, 33), (2, 48), (2, 70), (3, 40), (3, 64), (4, 17)])
def test_any_size_above_the_minimum_works(scale, size):
    image = np.random.default_rng(0).random((2, size, size + 5))
    out, _ = super_resolve_array(image, DIPConfig(scale=scale, channels=8, iterations=2))
    assert out.shape == (2, scale * size, scale * (size + 5)) and np.isfinite(out).all()


@pytest.mark.parametrize("phases", [True, False])
def test_cross_scale_pairs_are_the_observation_seen_again_at_each_sampling_phase(phases):
    """Pair (dy, dx) is the observation cropped to whole s × s blocks from (dy, dx), observed once more
    by the same sensor and interpolated back; all pairs share one shape, their padding invalid."""
    s, height, width = 3, 40, 43
    y = torch.rand(1, 2, height, width, generator=torch.Generator().manual_seed(0))
    degradation = Degradation(make_kernel("bicubic", s))
    config = DIPConfig(scale=s, depth=3, cross_scale_phases=phases)
    pairs = cross_scale_pairs(y, torch.ones_like(y), degradation, config)
    offsets = [(dy, dx) for dy in range(s) for dx in range(s)] if phases else [(0, 0)]
    assert len(pairs) == len(offsets) and len({coarse.shape for coarse, _, _ in pairs}) == 1
    assert pairs[0][0].shape[-2:] == (40, 48)  # 39 × 42 rows/cols of whole blocks, padded to multiples of 8
    for (dy, dx), (coarse, target, valid) in zip(offsets, pairs):
        rows, cols = (height - dy) // s * s, (width - dx) // s * s
        crop = y[..., dy : dy + rows, dx : dx + cols]
        torch.testing.assert_close(target[..., :rows, :cols], crop)
        torch.testing.assert_close(coarse[..., :rows, :cols], upsample(degradation(crop), s))
        assert valid[..., :rows, :cols].all() and valid.sum() == crop.numel()


def test_step_windows_are_aligned_whole_cells_inside_the_image_and_reach_every_offset():
    shape, cell = (80, 48), 16
    assert window_edges(shape, 0.5, cell) == (32, 32)  # 40 and 24 rounded down to whole cells, two at least
    assert window_edges(shape, 0.1, cell) == (32, 32)
    assert window_edges(shape, 0.9, cell) == (64, 32)
    assert window_edges(shape, 1, cell) == shape
    generator, seen = torch.Generator().manual_seed(0), set()
    for _ in range(200):
        rows, cols = random_window(shape, (32, 32), cell, generator)
        assert (rows.stop - rows.start, cols.stop - cols.start) == (32, 32) and rows.stop <= 80 and cols.stop <= 48
        seen.add((rows.start, cols.start))
    assert seen == {(r, c) for r in (0, 16, 32, 48) for c in (0, 16)}


def test_window_interior_and_weight_drop_a_margin_on_the_sides_inside_the_image_only():
    valid = torch.ones(1, 2, 8, 8)
    valid[..., 1, 3] = 0
    weight = window_weight(valid, (slice(0, 4), slice(2, 6)), (8, 8), 1)
    expected = torch.ones(4, 4)
    expected[1, 1] = 0  # invalid in the image
    expected[-1, :] = expected[:, 0] = expected[:, -1] = 0  # bottom, left, right lie inside the image; the top is its edge
    assert weight.shape == (1, 2, 4, 4) and (weight == expected).all()
    assert (valid[..., 1, 3] == 0).all() and valid.sum() == 2 * 63  # the mask itself is untouched
    assert interior((slice(0, 4), slice(2, 6)), (8, 8), 1) == (slice(0, 3), slice(3, 5))
    assert interior((slice(0, 8), slice(0, 8)), (8, 8), 2) == (slice(0, 8), slice(0, 8))  # the whole image has no cut side


def test_a_margin_wider_than_the_window_leaves_an_empty_interior_not_a_wrapped_one():
    """A kernel reaching further than a step window is wide (Knitworks, gaussian:10 at ×2 on 32-pixel tiles: 30 input
    pixels on 22-pixel windows) made the interior's end negative, which slicing counts from the image's end: the run
    failed with "unexpected RuntimeError: The expanded size of the tensor (14) must match the existing size (24)"."""
    valid = torch.ones(1, 1, 32, 32)
    for window in ((slice(0, 22), slice(5, 27)), (slice(10, 32), slice(0, 22))):
        rows, cols = interior(window, (32, 32), 30)
        assert all(window[i].start <= cut.start == cut.stop <= window[i].stop for i, cut in enumerate((rows, cols)))
        weight = window_weight(valid, window, (32, 32), 30)
        assert weight.shape == (1, 1, 22, 22) and not weight.any()


def test_dip_step_windows_keep_pixels_for_the_data_term_of_a_wide_kernel(wald_x2):
    """DIP's windows share Knitworks' rule (``window_edges``): at depth 3 and ×2, windows of a quarter of a 32-pixel
    tile were 8 pixels, fewer than gaussian:2's 6-pixel reach on both sides, and steps on windows cut on both sides
    fitted nothing (a loss of 0). They are now 16 (13 rounded up to the hourglass's 4-pixel cells): every step fits."""
    from internal_sr.core.dip import super_resolve_tile
    from internal_sr.core.progress import NullProgress

    assert window_edges((32, 32), 0.25, 4, margin=6) == (16, 16)
    assert window_edges((32, 32), 0.25, 4, margin=30) == (32, 32)  # wider than the tile: the whole tile, no cut side
    _, low = wald_x2
    observed = (low[:1, :32, :32] - low[:1].min()) / np.ptp(low[:1])
    config = DIPConfig(scale=2, channels=8, depth=3, iterations=12, step_window=0.25, cross_scale_weight=0.0,
                       augment=False, early_stop=False, device="cpu")
    torch.manual_seed(0)
    tile = super_resolve_tile(observed.astype(np.float32), np.ones_like(observed, bool), make_kernel("gaussian:2", 2), config,
                              torch.device("cpu"), NullProgress(), torch.Generator().manual_seed(0))
    assert len(tile.losses) == 12 and (tile.losses > 0).all()


def test_steps_on_windows_give_a_whole_valid_image_of_their_own(wald_x2):
    _, low = wald_x2
    config = dict(scale=2, channels=8, depth=3, iterations=4, device="cpu")
    crop = low[:, :48, :45]
    whole, _ = super_resolve_array(crop, DIPConfig(step_window=1, **config))
    part, _ = super_resolve_array(crop, DIPConfig(step_window=0.5, **config))
    assert part.shape == whole.shape == (low.shape[0], 96, 90) and np.isfinite(part).all()
    assert np.abs(part - whole).max() > 0
    for bad in (0, 1.5):
        with pytest.raises(InputError, match="step window"):
            DIPConfig(step_window=bad)


def test_the_step_count_in_the_log_names_warm_starts_only_when_they_run_fewer_steps():
    assert DIPConfig().steps_text() == "up to 600 steps per tile (450 when warm-started)"
    assert DIPConfig(iterations=2).steps_text() == "up to 2 steps per tile"  # it said "(2 when warm-started)"
    assert DIPConfig(warm_start=False).steps_text() == "up to 600 steps per tile"
    assert DIPConfig(iterations=1).steps_text() == "up to 1 step per tile"  # it said "up to 1 steps"


def tilted_plane(n: int, ripple: float = 0.0) -> np.ndarray:
    """A smooth ``(n, n)`` float64 image in DN: 40 DN per column, 15 per row, plus a gentle ripple of ``ripple`` DN."""
    rows, cols = np.mgrid[0:n, 0:n].astype(np.float64)
    return 1000 + 40 * cols + 15 * rows + ripple * np.sin(rows / 3) * np.cos(cols / 4)


def test_holes_are_filled_from_their_rims_and_valid_pixels_are_kept_to_the_bit():
    """A 4 × 4 and a 16 × 16 hole in a plane are filled close to the plane (the band mean, the former fill,
    was off by hundreds of DN); a band without valid pixels gets 0; a few valid pixels fill the rest within
    their range; values at invalid pixels (NaN) are never read."""
    plane = tilted_plane(48)
    valid = np.ones((1, 3, 48, 48), bool)
    valid[0, 0, 20:24, 9:13] = False
    valid[0, 0, 24:40, 26:42] = False
    valid[0, 1] = False
    valid[0, 2] = False
    valid[0, 2, [5, 40, 30], [7, 12, 44]] = True
    y = torch.as_tensor(np.where(valid, plane, np.nan))
    filled = fill_invalid(y, torch.as_tensor(valid, dtype=torch.float64)).numpy()
    assert np.array_equal(filled[valid], y.numpy()[valid])
    small, large = (np.abs(filled[0, 0] - plane)[rows, cols].max() for rows, cols in ((np.s_[20:24], np.s_[9:13]), (np.s_[24:40], np.s_[26:42])))
    mean_fill = np.abs(plane[valid[0, 0]].mean() - plane[~valid[0, 0]]).max()
    print(f"max error in the 4 × 4 hole {small:.2f} DN, in the 16 × 16 hole {large:.2f} DN; band-mean fill {mean_fill:.0f} DN")
    assert small < 5 and large < 40 and mean_fill > 300  # 40 DN: one column of the plane
    assert np.all(filled[0, 1] == 0)
    few = plane[valid[0, 2]]
    assert np.all((filled[0, 2] >= few.min()) & (filled[0, 2] <= few.max())) and len(np.unique(filled[0, 2])) > 100
    everything = torch.ones_like(y)
    assert torch.equal(fill_invalid(torch.as_tensor(plane)[None, None], everything[:, :1]), torch.as_tensor(plane)[None, None])


def test_a_nodata_hole_barely_moves_the_valid_output_pixels_around_it():
    """The fill reaches valid pixels through the bicubic input and back-projection: with the band-mean fill
    the output 1–4 pixels from a 4 × 4 hole in a smooth image moved by 44 DN against the run without the
    hole; filled from the rim, by 2.5 DN."""
    image = tilted_plane(32, ripple=100.0).astype(np.float32)[None]
    valid = np.ones_like(image, bool)
    valid[:, 12:16, 20:24] = False
    config = DIPConfig(scale=2, channels=8, depth=3, iterations=2, device="cpu")
    whole, _ = super_resolve_array(image, config)
    holed, _ = super_resolve_array(np.where(valid, image, np.nan), config, valid=valid)
    rows, cols = np.mgrid[0:64, 0:64]
    distance = np.maximum(np.maximum(24 - rows, rows - 31), np.maximum(40 - cols, cols - 47))  # chessboard, 0 inside
    near = (distance >= 1) & (distance <= 4)
    moved = np.abs(holed[0] - whole[0])[near].max()
    print(f"largest change 1–4 output pixels from the hole: {moved:.2f} DN")
    assert moved < 10
