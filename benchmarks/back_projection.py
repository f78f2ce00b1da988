"""Back-projection with wide kernels: the width test against the former per-step guard and no guard (``make bench-bp``).

``core.degradation.back_project`` first tests each band whose kernel is wider than the built-in ones
(``noise_gain`` above ``NOISE_GAIN_LIMIT``) on its observation alone: at an ``observation_gain`` of at
most ``OBSERVATION_GAIN_LIMIT`` the band is back-projected in full, above it keeps its start. This
script measures that rule on a matrix of runs: Sentinel-2 10 m crops (B4, B3, B2, B8; the KernelGAN
benchmark's three 256² crops with their true anisotropic Gaussians, and the three 128² development
crops of ``tuning.py`` blurred with bicubic and with an isotropic Gaussian of σ 0.7 low-resolution
pixel), ×2 and ×4, back-projected (``BASELINE_BP_STEPS`` steps) with the true kernel, kernels 20, 40
and 70 % too wide and 20 % too narrow (for the bicubic blur: the isotropic Gaussian nearest to it, so
scaled, and gaussian:0.7 and 1.0), from three starts (bicubic, bicubic + back-projection with the
bicubic kernel, and the truth blurred by a Gaussian of σ ``START_BLUR`` low-resolution pixel).

Each run's PSNR (``core.metrics.psnr`` against the crop) is given for the start, for no guard (each band
stops at its last step that lowered its squared residual), for the former per-step guard (the rule of
``core.degradation`` before 2026-11-27: a wide kernel's band also stopped at the first step that did not
cut its residual RMS to ``FORMER_CONTRACTION`` of what it was) and for ``back_project`` as it is now
(called, not re-implemented). The first two are read off one trajectory of plain steps per run, the
band's estimate at its stop. Also the per-band observation gains by kernel family, on the matrix
crops and on held-out ones (``HELD_OUT``: ``wald.py``'s crops, 20 m bands and two more 10 m windows;
×2–×4; true kernels of σ up to 1.6 and kernels 20 % too wide). No figure is a best-over-iterations.
Writes ``back_projection.json`` (every run) and ``back_projection.md`` (the summaries) under ``--out``.

``--quick`` runs the committed crops instead (``tests/data``, so a plain clone and CI run it: ``QUICK_CROPS``),
at ×2 only (seconds), to check the script end to end; its default ``--out`` is ``out/back-projection-quick``.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from kernelgan import CASES, SIZE  # noqa: E402
from tuning import DEV  # noqa: E402
from wald import CROPS, committed_crop, load_crop, machine, write_results  # noqa: E402

#: The former rule's bound on a wide kernel's residual RMS after a step, relative to before it.
FORMER_CONTRACTION = 0.8
#: Kernels relative to the true one (factors on its standard deviations): too wide, then too narrow.
WIDER = (1.2, 1.4, 1.7)
NARROWER = (0.8,)
#: Gaussians (σ in low-resolution pixels) that back-project a bicubic blur, beside the scaled ones.
GAUSSIANS_ON_BICUBIC = ("gaussian:0.7", "gaussian:1.0")
#: σ (low-resolution pixels) of the Gaussian that blurs the truth into the near-truth start.
START_BLUR = 0.3
SCALES = (2, 4)
#: True kernels (major σ, minor σ in low-resolution pixels, angle °) of the held-out check, at ×2, ×3 and ×4.
HELD_OUT_KERNELS = ((0.6, 0.6, 0.0), (0.8, 0.8, 0.0), (1.0, 0.5, 30.0), (1.3, 0.8, 100.0), (1.6, 1.0, 60.0))
#: (label, DSen2 sample, (row, col), bands, size): crops outside the matrix on which the observation gains
#: of the true kernels and of kernels 20 % too wide are checked.
HELD_OUT = [(label, name, origin, "im10", 128) for label, name, origin in CROPS] + [
    ("T33UUB 20 m (100, 100)", "s2_l1c_T33UUB_20170527_dsen2.npz", (100, 100), "im20", 128),
    ("T49JGM 20 m (150, 20)", "s2_l1c_T49JGM_20171022_dsen2.npz", (150, 20), "im20", 128),
    ("T33UUB (400, 0)", "s2_l1c_T33UUB_20170527_dsen2.npz", (400, 0), "im10", 192),
    ("T49JGM (100, 400)", "s2_l1c_T49JGM_20171022_dsen2.npz", (100, 400), "im10", 192),
]
#: ``--quick``'s development and held-out crops: the committed 10 m crop (T33UUB B4 B3 B2 B8, 128²) and the 20 m crop
#: of the same area (B5–B12, 64²).
QUICK_CROPS = (("T33UUB 10 m (300, 160)", "s2_T33UUB_10m_B4-B3-B2-B8_crop.tif"), ("T33UUB 20 m (150, 80)", "s2_T33UUB_20m_B5-B12_crop.tif"))
#: Kernel names in the tables' order; the too-wide ones are those the worst-loss figures are over.
ORDER = ("true", "x0.8", "x1.2", "x1.4", "x1.7", *GAUSSIANS_ON_BICUBIC)
TOO_WIDE = ("x1.2", "x1.4", "x1.7", *GAUSSIANS_ON_BICUBIC)

Truth = tuple[float, float, float] | None  # an anisotropic Gaussian, or None for the bicubic kernel


def gaussian(width: tuple[float, float, float], scale: int):
    """The anisotropic Gaussian ``width`` (major σ, minor σ, angle °) as a kernel file would load it."""
    from internal_sr.core.kernels import anisotropic_gaussian, file_kernel

    return file_kernel(anisotropic_gaussian(*width, scale), scale, f"G{width[0]:.3g}x{width[1]:.3g}@{width[2]:g}")


def kernels_for(truth: Truth, scale: int) -> dict:
    """The true kernel and the others the matrix back-projects with, by ``ORDER`` name."""
    from internal_sr.core.kernels import isotropic_baseline, make_kernel

    if truth is None:
        true = make_kernel("bicubic", scale)
        sigma = isotropic_baseline(true)[0]
        base = (sigma, sigma, 0.0)
        extra = {name: make_kernel(name, scale) for name in GAUSSIANS_ON_BICUBIC}
    else:
        true, base, extra = gaussian(truth, scale), truth, {}
    scaled = {f"x{f}": gaussian((base[0] * f, base[1] * f, base[2]), scale) for f in WIDER + NARROWER}
    return {"true": true, **scaled, **extra}


def starts(reference: np.ndarray, y, scale: int) -> dict:
    """The estimates back-projection starts from, ``(1, C, sH, sW)`` float32 tensors."""
    import torch
    from scipy.ndimage import gaussian_filter

    from internal_sr.core.degradation import Degradation, back_project, upsample
    from internal_sr.core.evaluation import BASELINE_BP_STEPS
    from internal_sr.core.kernels import make_kernel

    bicubic = upsample(y, scale)
    near = np.stack([gaussian_filter(band, START_BLUR * scale, mode="reflect") for band in reference])
    return {
        "bicubic": bicubic,
        "bicubic + BP": back_project(bicubic, y, Degradation(make_kernel("bicubic", scale)), BASELINE_BP_STEPS),
        "near truth": torch.as_tensor(near, dtype=torch.float32)[None],
    }


def trajectory(x, y, degradation, steps: int):
    """Plain steps ``x ← x + U(y − D(x))``: the estimates ``(steps + 1, C, sH, sW)`` and squared residuals ``(steps + 1, C)``."""
    import torch

    from internal_sr.core.degradation import upsample

    images, norms = [], []
    with torch.no_grad():
        for step in range(steps + 1):
            if step:
                x = x + upsample(residual, degradation.scale, degradation.shift)
            residual = y - degradation(x)
            images.append(x[0])
            norms.append(residual[0].square().sum(dim=(-2, -1)))
    return torch.stack(images), torch.stack(norms)


def stops(norms: np.ndarray, factors: np.ndarray) -> list[int]:
    """Per band, the last step of a trajectory before the first that did not bring its squared residual
    below ``factors[band]`` times the one before (``norms``: ``(steps + 1, C)``)."""
    last = []
    for band in range(norms.shape[1]):
        step = 0
        while step + 1 < norms.shape[0] and norms[step + 1, band] < factors[band] * norms[step, band]:
            step += 1
        last.append(step)
    return last


def psnr_at(images, steps: list[int], reference: np.ndarray) -> float:
    """PSNR of the estimate made of each band's image at its step of ``images`` ``(steps + 1, C, sH, sW)``."""
    from internal_sr.core import metrics

    return metrics.psnr(np.stack([images[k, band].double().numpy() for band, k in enumerate(steps)]), reference)


def groups(quick: bool) -> list[tuple[str, np.ndarray, Truth]]:
    """(label, reference crop, true kernel) of the matrix."""
    if quick:
        development = [(QUICK_CROPS[0][0], committed_crop(QUICK_CROPS[0][1]))]
    else:
        development = [(label, load_crop(name, origin)) for label, name, origin in DEV]
    matrix = [] if quick else [(f"KernelGAN {label[:6]} {origin}", load_crop(name, origin, SIZE), truth) for label, name, origin, truth in CASES]
    for label, reference in development:
        matrix += [(f"development {label}", reference, None), (f"development {label}", reference, (0.7, 0.7, 0.0))]
    return matrix


def matrix_runs(quick: bool) -> tuple[list[dict], list[dict]]:
    """Every run of the matrix (one row per crop, scale, kernel and start) and the per-band observation gains
    (one row per crop, scale and kernel that the width test examines)."""
    import torch

    from internal_sr.core import metrics
    from internal_sr.core.degradation import (
        NOISE_GAIN_LIMIT,
        Degradation,
        back_project,
        degrade_array,
        noise_gain,
        observation_gain,
    )
    from internal_sr.core.evaluation import BASELINE_BP_STEPS

    runs, gains = [], []
    for label, crop, truth in groups(quick):
        for scale in SCALES[:1] if quick else SCALES:
            kernels = kernels_for(truth, scale)
            size = crop.shape[-1] // scale * scale
            reference = crop[:, :size, :size]
            y = torch.as_tensor(degrade_array(reference, kernels["true"]), dtype=torch.float32)[None]
            begin = starts(reference, y, scale)
            blur = "bicubic" if truth is None else kernels["true"].name
            for name, kernel in kernels.items():
                degradation = Degradation(kernel)
                wide = np.broadcast_to(noise_gain(degradation).numpy() > NOISE_GAIN_LIMIT, y.shape[1])  # per band
                case = dict(crop=label, blur=blur, scale=scale, kernel=name, noise_gain=float(noise_gain(degradation).max()), wide=bool(wide.any()))
                if wide.any():
                    gains.append(dict(case, observation_gain=observation_gain(y, degradation)[0, :, 0, 0].tolist()))
                factors = {"no_guard": np.ones(len(wide)), "former_guard": np.where(wide, FORMER_CONTRACTION**2, 1.0)}
                for start, x in begin.items():
                    images, norms = trajectory(x, y, degradation, BASELINE_BP_STEPS)
                    row = dict(case, start=start, psnr_start=metrics.psnr(x[0].double().numpy(), reference))
                    for rule, factor in factors.items():
                        row[f"steps_{rule}"] = stops(norms.double().numpy(), factor)
                        row[f"psnr_{rule}"] = psnr_at(images, row[f"steps_{rule}"], reference)
                    row["psnr_now"] = metrics.psnr(back_project(x, y, degradation, BASELINE_BP_STEPS)[0].double().numpy(), reference)
                    runs.append(row)
            print(f"{label} {blur} ×{scale}: done", flush=True)
    return runs, gains


def held_out_gains(quick: bool) -> list[dict]:
    """Per-band observation gains of the true kernel and of one 20 % too wide on ``HELD_OUT`` (wide kernels only)."""
    import torch

    from internal_sr.core.degradation import NOISE_GAIN_LIMIT, Degradation, degrade_array, noise_gain, observation_gain

    if quick:
        crops = [(QUICK_CROPS[1][0], committed_crop(QUICK_CROPS[1][1]))]
    else:
        crops = [(label, load_crop(name, origin, size, bands)) for label, name, origin, bands, size in HELD_OUT]
    rows = []
    for label, crop in crops:
        size = min(crop.shape[-2:])
        for scale in (2,) if quick else (2, 3, 4):
            reference = crop[:, : size // scale * scale, : size // scale * scale]
            for width in HELD_OUT_KERNELS:
                true = gaussian(width, scale)
                if float(noise_gain(Degradation(true))[0]) <= NOISE_GAIN_LIMIT:
                    continue
                y = torch.as_tensor(degrade_array(reference, true), dtype=torch.float32)[None]
                wider = gaussian((width[0] * 1.2, width[1] * 1.2, width[2]), scale)
                rows += [dict(crop=label, scale=scale, blur=true.name, kernel=kernel, observation_gain=observation_gain(y, Degradation(k))[0, :, 0, 0].tolist())
                         for kernel, k in (("true", true), ("x1.2", wider))]
    return rows


def spread(values: list[float]) -> str:
    return f"{min(values):.2f}–{max(values):.2f}"


def summary(runs: list[dict], gains: list[dict], held_out: list[dict], info: str) -> str:
    """The Markdown summaries: gain ranges, the KernelGAN crops with the true kernel, per kernel and start, worst losses."""
    from internal_sr.core.degradation import OBSERVATION_GAIN_LIMIT

    rules = (("no guard", "psnr_no_guard"), ("former per-step guard", "psnr_former_guard"), ("width test (now)", "psnr_now"))
    examined = [r for r in runs if r["wide"]]
    lines = [f"Machine: {info}.", "", f"**Per-band observation gain** (width test: back-projected where ≤ {OBSERVATION_GAIN_LIMIT:g}), kernels the test examines:", "",
             "| kernel | matrix crops | bands | held-out crops | bands |", "|---|---|---|---|---|"]
    for name in ORDER:
        matrix = [g for row in gains if row["kernel"] == name for g in row["observation_gain"]]
        other = [g for row in held_out if row["kernel"] == name for g in row["observation_gain"]]
        if matrix or other:
            lines.append(f"| {name} | {spread(matrix) if matrix else '–'} | {len(matrix)} | {spread(other) if other else '–'} | {len(other)} |")
    kernelgan = [r for r in examined if r["crop"].startswith("KernelGAN") and r["kernel"] == "true" and r["start"] == "bicubic"]
    if kernelgan:
        lines += ["", "**KernelGAN benchmark crops, bicubic start, true kernel** (PSNR dB; the steps each band took under the former guard):", "",
                  "| crop | blur | scale | start | " + " | ".join(name for name, _ in rules) + " | former guard's steps |", "|---|---|---|---|---|---|---|---|"]
    for r in kernelgan:
        lines.append(f"| {r['crop']} | {r['blur']} | ×{r['scale']} | {r['psnr_start']:.2f} | " + " | ".join(f"{r[key]:.2f}" for _, key in rules)
                     + f" | {min(r['steps_former_guard'])}–{max(r['steps_former_guard'])} |")
    lines += ["", f"**The {len(examined)} runs the width test examines** (of {len(runs)}), PSNR dB, mean [min] over crops and scales:", "",
              "| kernel | start | runs | start | " + " | ".join(name for name, _ in rules) + " |", "|---|---|---|---|---|---|---|"]
    for name in ORDER:
        for start in dict.fromkeys(r["start"] for r in runs):
            cell = [r for r in examined if r["kernel"] == name and r["start"] == start]
            if cell:
                figures = [f"{np.mean([r[key] for r in cell]):.2f} [{min(r[key] for r in cell):.2f}]" for key in ("psnr_start", *(key for _, key in rules))]
                lines.append(f"| {name} | {start} | {len(cell)} | " + " | ".join(figures) + " |")
    lines += ["", "**Worst loss** (dB) against the better of the start and no guard, and shortfall against no guard:", "",
              "| rule | too-wide kernels: worst loss | all examined runs: worst loss | true and 20 %-too-narrow: mean / worst shortfall |", "|---|---|---|---|"]
    for name, key in rules:
        wide = worst_loss(examined, key, lambda r: r["kernel"] in TOO_WIDE)
        short = [r["psnr_no_guard"] - r[key] for r in examined if r["kernel"] in ("true", "x0.8")]
        lines.append(f"| {name} | {wide:.2f} | {worst_loss(examined, key, lambda r: True):.2f} | {np.mean(short):.2f} / {max(short):.2f} |")
    plain = [abs(r["psnr_now"] - r["psnr_no_guard"]) for r in runs if not r["wide"]]
    lines += ["", f"Kernels the test does not examine ({len(plain)} runs): `back_project` against no guard, largest difference {max(plain, default=0.0):.3f} dB."]
    return "\n".join(lines) + "\n"


def worst_loss(runs: list[dict], key: str, which: Callable[[dict], bool]) -> float:
    """The largest ``max(start, no guard) − key`` PSNR over the ``runs`` that ``which`` picks."""
    return max(max(r["psnr_start"], r["psnr_no_guard"]) - r[key] for r in runs if which(r))


def main() -> int:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="results folder (default: benchmarks/results, or out/back-projection-quick with --quick)")
    parser.add_argument("--quick", action="store_true", help="the committed crops at ×2: checks the script, measures little")
    args = parser.parse_args()
    torch.set_num_threads(1)
    out = args.out or (os.path.join(HERE, "..", "out", "back-projection-quick") if args.quick else os.path.join(HERE, "results"))
    os.makedirs(out, exist_ok=True)
    runs, gains = matrix_runs(args.quick)
    held_out = held_out_gains(args.quick)
    info = machine()
    write_results(out, "back_projection", {"runs": runs, "observation_gains": gains, "held_out_gains": held_out}, summary(runs, gains, held_out, info))
    return 0


if __name__ == "__main__":
    sys.exit(main())
