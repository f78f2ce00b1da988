"""Speed against the reference Deep Image Prior recipe, side by side on one machine (``make bench-speed``).

The baseline is the reference DIP super-resolution recipe of Ulyanov et al., written out plainly
here so that nothing of ``core`` speeds it up: the "skip" hourglass (5 scales of 128 maps, 4-map
skips, stride-2 convs down, bilinear up, reflection padding, batch norm, LeakyReLU, sigmoid output)
on 32 maps of uniform noise ×0.1, the noise perturbed by N(0, 1/30²) every step, a dense strided
downsampler (a full C×C convolution whose weights are the blur kernel on the diagonal and zeros
elsewhere), Adam at 0.01, float32, a fixed number of steps, no early stop, no averaging.

On the same real Sentinel-2 10 m crop under Wald's protocol (degraded by the scale with the
bicubic kernel, which both methods use as their sensor model), it measures

* seconds per step of the baseline and of our DIP and Neural Knitworks at their default settings,
  and of our DIP on step windows and Knitworks on whole-tile steps (``RUNS``) (median over the run's steps), and their ratios;
* the baseline's PSNR after its ``--reference-steps`` steps (2000, as the reference code runs; its image
  min-max scaled into the [0, 1] of its sigmoid output, ``UNIT_MARGIN``), and the wall time each of our methods
  needs to reach that PSNR: the run's output-so-far (averaged, back-projected, blended: what it would
  return if it stopped there) is scored every ``core.optimise.CHECK_EVERY`` steps with the scoring
  time taken out of the clock. This scoring only times the run; it never picks the output. Their
  final PSNR too;
* seconds per step of guided DIP (20 m bands onto the 10 m grid of the same area) at its defaults;
* seconds per step of the baseline and of our runs on one default tile (``tile_step_seconds``).

Clock: the process's CPU time with one torch thread (``--threads``), which on an otherwise idle
machine is the wall time, and on a shared one is not inflated by other people's jobs. Our runs keep
freed memory in the heap as every run of the product does (``core.device.reused_heap``, entered by
``core.device.seeded``); the baseline, a plain script, runs with the C library's defaults (the README
gives what the same setting does for it).

Writes ``speed.json`` and ``speed.md`` under ``--out`` and, for a run at the defaults, the README's
table between the ``bench:speed`` markers.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from guided_tuning import NAMES10, NAMES20  # noqa: E402
from wald import CROPS, SIZE, load_crop, machine, write_results  # noqa: E402


class StepClock:
    """A progress sink that stamps the CPU time of every step report (``core.optimise`` reports once per step)."""

    def __init__(self) -> None:
        self.stamps: list[float] = []
        self.paused = 0.0  # seconds spent outside the method (scoring), taken out of the stamps

    def report(self, fraction: float, message: str = "") -> None:
        self.stamps.append(time.process_time() - self.paused)

    def info(self, message: str) -> None:
        pass

    def cancelled(self) -> bool:
        return False

    def seconds_per_step(self) -> float:
        """Median duration of one step (the first step, with its one-off costs, left out)."""
        return statistics.median(np.diff(self.stamps[1:]))


# --- the reference recipe, written out plainly ------------------------------------------------------


def _conv(cin: int, cout: int, size: int, stride: int = 1) -> list[nn.Module]:
    pad = [nn.ReflectionPad2d((size - 1) // 2)] if size > 1 else []
    return [*pad, nn.Conv2d(cin, cout, size, stride), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2, inplace=True)]


class _Concat(nn.Module):
    def __init__(self, skip: nn.Module, deep: nn.Module) -> None:
        super().__init__()
        self.skip, self.deep = skip, deep

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.skip(x), self.deep(x)], 1)


def reference_skip(cin: int, cout: int, channels: int = 128, skip: int = 4, depth: int = 5) -> nn.Module:
    """The reference "skip" hourglass, built inside out as the reference code does."""
    inner: nn.Module | None = None
    for level in reversed(range(depth)):
        width = cin if level == 0 else channels
        down = [*_conv(width, channels, 3, 2), *_conv(channels, channels, 3)]
        deep = nn.Sequential(*down, *([inner] if inner is not None else []), nn.Upsample(scale_factor=2, mode="bilinear"))
        inner = nn.Sequential(
            _Concat(nn.Sequential(*_conv(width, skip, 1)), deep),
            nn.BatchNorm2d(skip + channels), *_conv(skip + channels, channels, 3), *_conv(channels, channels, 1),
        )
    return nn.Sequential(inner, nn.Conv2d(channels, cout, 1), nn.Sigmoid())


class DiagonalDownsampler(nn.Module):
    """The reference downsampler: one dense ``C × C`` strided conv, the kernel on its diagonal."""

    def __init__(self, bands: int, taps: np.ndarray, scale: int) -> None:
        super().__init__()
        length = taps.shape[-1]
        self.conv = nn.Conv2d(bands, bands, length, stride=scale, bias=False)
        self.conv.weight.data.zero_()
        for band in range(bands):
            self.conv.weight.data[band, band] = torch.as_tensor(taps, dtype=torch.float32)
        self.conv.weight.requires_grad_(False)
        self.pad = (length - scale) // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, (self.pad,) * 4, mode="replicate"))


def reference_dip(
    low: np.ndarray, scale: int, steps: int, clock: StepClock, score: Callable[[np.ndarray], float]
) -> list[tuple[int, float, float]]:
    """Run the reference recipe on a ``(C, h, w)`` image scaled into [0, 1]; returns (step, seconds, PSNR) at the end."""
    from internal_sr.core.kernels import make_kernel

    torch.manual_seed(0)
    bands, h, w = low.shape
    y = torch.as_tensor(low)[None]
    net = reference_skip(32, bands)
    down = DiagonalDownsampler(bands, make_kernel("bicubic", scale).as_2d, scale)
    noise = torch.rand(1, 32, h * scale, w * scale) * 0.1
    optimiser = torch.optim.Adam(net.parameters(), lr=0.01)
    start = time.process_time()
    for _ in range(steps):
        optimiser.zero_grad()
        out = net(noise + torch.randn_like(noise) / 30)
        loss = F.mse_loss(down(out), y)
        loss.backward()
        optimiser.step()
        clock.report(0.0)
    seconds = clock.stamps[-1] - start
    with torch.no_grad():
        final = net(noise)[0].numpy()  # the reference's output: the network on the unperturbed noise
    return [(steps, seconds, score(final))]


#: Margin, as a fraction of each band's range, around the low-resolution image's values when they are
#: scaled into the baseline's [0, 1] (the reference code's images lie in it): room for the sharper
#: image's extremes.
UNIT_MARGIN = 0.05


# --- the methods of this project, at their defaults -----------------------------------------------------


#: Our runs: (key, label, method, settings other than the defaults). The second row of DIP shows what
#: its optional step windows (``step_window``) change, that of Knitworks what its default ones do, side by side.
RUNS = (
    ("dip", "our DIP (defaults)", "dip", {}),
    ("dip_windows", "our DIP on step windows (step_window 0.5, a quarter of the tile per step)", "dip", {"step_window": 0.5}),
    ("knitwork", "Neural Knitworks (defaults: step windows of 0.7, 450 steps)", "knitwork", {}),
    ("knitwork_whole", "Neural Knitworks on whole-tile steps (step_window 1, 300 steps: the former defaults)", "knitwork",
     {"step_window": 1, "iterations": 300}),
)


def our_method(
    method: str, low: np.ndarray, scale: int, settings: dict, clock: StepClock, score: Callable[[np.ndarray], float]
) -> tuple[list, float]:
    """Our ``dip`` or ``knitwork`` with ``settings`` (configuration overrides) on a normalised image:
    (step, seconds, PSNR) at each check, and the final PSNR."""
    from internal_sr.core import dip, knitwork
    from internal_sr.core.config import DIPConfig, KnitworkConfig
    from internal_sr.core.device import reused_heap, seed_everything
    from internal_sr.core.kernels import make_kernel

    config_class, solve = {"dip": (DIPConfig, dip.super_resolve_tile), "knitwork": (KnitworkConfig, knitwork.super_resolve_tile)}[method]
    config = config_class(scale=scale, device="cpu", **settings)
    curve = []
    start = time.process_time()

    def observe(done: int, image: np.ndarray) -> None:
        entered = time.process_time()
        curve.append((done, entered - clock.paused - start, score(image)))
        clock.paused += time.process_time() - entered

    valid = np.ones(low.shape, dtype=bool)
    with reused_heap():
        tile = solve(low, valid, make_kernel("bicubic", scale), config, torch.device("cpu"), clock, seed_everything(0), observe)
    return curve, score(tile.image)


def guided_clock(name: str, origin: tuple[int, int], size: int, steps: int) -> StepClock:
    """Guided DIP sharpening the six 20 m bands of the crop's area with its four 10 m bands (×2)."""
    from internal_sr.core.config import GuidedDIPConfig
    from internal_sr.core.device import reused_heap, seed_everything
    from internal_sr.core.guided import sharpen_tile
    from internal_sr.core.normalise import BandScaling
    from internal_sr.core.sharpen import band_kernels

    r, c = origin[0] // 2, origin[1] // 2
    target = load_crop(name, (r, c), size // 2, "im20").astype(np.float32)
    guide = load_crop(name, (2 * r, 2 * c), size).astype(np.float32)
    t_valid, g_valid = np.ones(target.shape, bool), np.ones(guide.shape, bool)
    clock = StepClock()
    with reused_heap():
        sharpen_tile(
            BandScaling.fit(target, t_valid).normalise(target), t_valid, BandScaling.fit(guide, g_valid).normalise(guide), g_valid,
            band_kernels("sentinel2", NAMES20, 2, "target"), band_kernels("sentinel2", NAMES10, 2, "guide"),
            GuidedDIPConfig(device="cpu", iterations=steps), torch.device("cpu"), clock, seed_everything(0),
        )
    return clock


def tile_step_seconds(name: str, origin: tuple[int, int], scale: int, steps: int) -> dict[str, float]:
    """Seconds per step of the baseline and of each of ``RUNS`` on one default tile: a
    ``TileOptions.size``² input, from the window of the sample that ends where the crop ``origin`` ends
    (the benchmark crop is smaller than a tile, which keeps the cross-scale pass of DIP's step windows
    whole there). ``steps`` steps each, timed only."""
    from internal_sr.core.config import TileOptions
    from internal_sr.core.evaluation import wald_pair
    from internal_sr.core.kernels import make_kernel
    from internal_sr.core.normalise import BandScaling

    size = TileOptions.size * scale
    corner = tuple(max(0, o + SIZE - size) for o in origin)  # the window that ends where the crop ends
    _, low = wald_pair(load_crop(name, corner, size), make_kernel("bicubic", scale))
    low = BandScaling.fit(low, np.ones(low.shape, bool)).normalise(low)
    times = {}
    for key, method, settings in [("reference", None, {}), *((key, method, settings) for key, _, method, settings in RUNS)]:
        clock = StepClock()
        if method is None:
            reference_dip(low, scale, steps, clock, lambda image: float("nan"))
        else:
            our_method(method, low, scale, {**settings, "iterations": steps}, clock, lambda image: float("nan"))
        times[key] = clock.seconds_per_step()
    return times


def time_to(curve: list[tuple[int, float, float]], psnr: float) -> tuple[int, float] | None:
    """(step, seconds) of the first check whose PSNR reaches ``psnr``; ``None`` if none does."""
    return next(((step, seconds) for step, seconds, value in curve if value >= psnr), None)


def reach(run: dict, ref: dict) -> str:
    """When ``run`` reached the baseline's final PSNR: seconds, step and fraction of the baseline's time."""
    reached = run["reached"]
    if not reached:
        return "not reached"
    return f"{reached['seconds']:.1f} s (step {reached['step']}; {reached['seconds'] / ref['seconds']:.2f} of the baseline's time)"


def markdown(result: dict, info: str) -> str:
    ref, tile = result["reference"], result["tile"]["seconds_per_step"]
    lines = [
        f"Machine: {info}; {result['threads']} torch thread(s), times in CPU seconds. Crop: {result['crop']}, {result['size']}² at 10 m, ×{result['scale']} "
        f"(Wald: degraded with the bicubic kernel, brought back); baseline {ref['steps']} steps, ours at its defaults.",
        "",
        "| method | seconds / step | steps | time (s) | final PSNR (dB) |",
        "|---|---|---|---|---|",
        f"| reference DIP recipe (baseline: dense diagonal downsampler, Adam 0.01, fp32, no early stop) | "
        f"{ref['seconds_per_step']:.3f} | {ref['steps']} | {ref['seconds']:.1f} | {ref['psnr']:.2f} |",
    ]
    runs = [(label, result[key]) for key, label, _, _ in RUNS if key in result]
    lines += [f"| {label} | {run['seconds_per_step']:.3f} | {run['steps']} | {run['seconds']:.1f} | {run['psnr']:.2f} |" for label, run in runs]
    lines += [
        f"| guided DIP (defaults; 6 bands at 20 m with the 10 m bands, same area) | {result['guided']['seconds_per_step']:.3f} | — | — | — |",
        "",
        f"On one default tile ({result['tile']['size']}² input, {result['tile']['steps']} steps timed): the baseline "
        f"{tile['reference']:.3f} s per step; "
        + "; ".join(f"{label} {tile[key]:.3f} s ({tile[key] / tile['reference']:.2f}×)" for key, label, _, _ in RUNS)
        + ".",
        "",
        "Per step on the crop, against the baseline's time (target: ≤ 0.5×): "
        + "; ".join(f"{label} {run['seconds_per_step'] / ref['seconds_per_step']:.2f}×" for label, run in runs)
        + f". Time to reach the baseline's final PSNR ({ref['psnr']:.2f} dB) (target: ≤ 1/3): "
        + "; ".join(f"{label} {reach(run, ref)}" for label, run in runs)
        + f". Bicubic: {result['bicubic_psnr']:.2f} dB.",
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    from internal_sr.core import metrics
    from internal_sr.core.config import TileOptions
    from internal_sr.core.evaluation import bicubic, wald_pair
    from internal_sr.core.kernels import make_kernel
    from internal_sr.core.normalise import BandScaling
    from internal_sr.core.optimise import CHECK_EVERY

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join(HERE, "results"))
    parser.add_argument("--scale", type=int, default=2)
    parser.add_argument("--size", type=int, default=128, help="crop edge at 10 m (the output size)")
    parser.add_argument("--reference-steps", type=int, default=2000, help="baseline steps (2000: the reference code's)")
    parser.add_argument("--timing-steps", type=int, default=2 * CHECK_EVERY, help="steps timed for guided DIP")
    parser.add_argument("--tile-steps", type=int, default=30, help="steps timed on one default tile for each method")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: CPU time is then a fair clock on a shared machine)")
    parser.add_argument("--quick", action="store_true", help="a check that the script runs: few steps, README untouched")
    args = parser.parse_args()
    if args.quick:
        args.reference_steps, args.timing_steps, args.tile_steps, args.size = 5, 3, 3, 64
    torch.set_num_threads(args.threads)
    label, name, origin = CROPS[0]
    reference, low = wald_pair(load_crop(name, origin, args.size), make_kernel("bicubic", args.scale))
    scaling = BandScaling.fit(low, np.ones(low.shape, bool))
    normalised = scaling.normalise(low)

    def score(image: np.ndarray) -> float:
        return metrics.psnr(scaling.denormalise(image), reference)

    # the baseline's sigmoid output spans [0, 1]: it gets the image min-max scaled into it, with a margin
    lowest, highest = low.min(axis=(1, 2), keepdims=True), low.max(axis=(1, 2), keepdims=True)
    margin = UNIT_MARGIN * (highest - lowest)
    lowest, span = lowest - margin, highest - lowest + 2 * margin

    def score_unit(image: np.ndarray) -> float:
        return metrics.psnr(image * span + lowest, reference)

    clock = StepClock()
    ref_curve = reference_dip((low - lowest) / span, args.scale, args.reference_steps, clock, score_unit)
    _, ref_seconds, ref_psnr = ref_curve[-1]
    ref = dict(steps=args.reference_steps, seconds=ref_seconds, psnr=ref_psnr, seconds_per_step=clock.seconds_per_step())
    print(f"reference: {ref}", flush=True)

    ours = {}
    for key, _, method, settings in RUNS:
        clock = StepClock()
        steps = dict(iterations=2 * CHECK_EVERY) if args.quick else {}
        curve, final = our_method(method, normalised, args.scale, {**settings, **steps}, clock, score)
        reached = time_to(curve, ref_psnr)
        ours[key] = dict(steps=curve[-1][0], seconds=curve[-1][1], psnr=final, seconds_per_step=clock.seconds_per_step(),
                            curve=curve, reached=dict(step=reached[0], seconds=reached[1]) if reached else None)
        print(f"our {key}: {ours[key]}", flush=True)
    guided = guided_clock(name, origin, args.size, args.timing_steps).seconds_per_step()
    tile = dict(size=TileOptions.size, steps=args.tile_steps,
                seconds_per_step=tile_step_seconds(name, origin, args.scale, args.tile_steps))
    print(f"one default tile: {tile}", flush=True)
    result = dict(crop=label, size=args.size, scale=args.scale, threads=args.threads, reference=ref, **ours,
                  guided=dict(seconds_per_step=guided, steps_timed=args.timing_steps), tile=tile,
                  bicubic_psnr=metrics.psnr(bicubic(low, args.scale), reference))
    table = markdown(result, machine())
    out = os.path.join(HERE, "..", "out", "speed-quick") if args.quick else args.out
    os.makedirs(out, exist_ok=True)
    write_results(out, "speed", result, table, None if args.quick else "speed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
