"""KernelGAN benchmark: known blur kernels on real Sentinel-2 crops, DIP with each kernel (``make bench-kernelgan``).

For each case (a 256 × 256 crop of the 10 m bands B4, B3, B2, B8 and a known anisotropic Gaussian)
and scale: degrade the crop by ``s`` with the known kernel, estimate the kernel of the low-resolution
image with KernelGAN at its defaults (one kernel shared by the bands), and super-resolve the central
``DIP_SIZE``² of the crop back with DIP at its defaults given the bicubic kernel, KernelGAN's own
kernel, the estimate (KernelGAN's area, the spectrum's elongation and direction: the default) and the
true kernel (the upper bound). DIP runs on the matching window of the whole low-resolution image (so
nothing is degraded twice), on 128² to keep a CPU run to about 20 minutes a row. Reports the kernel
error ‖k − k_true‖ / ‖k_true‖ of each kernel and of the best isotropic Gaussian (what knowing the width
alone is worth), the fitted widths, the angle between the estimated and the true major axes, and
PSNR/SSIM against the crop's window. The crops are disjoint from the test crops and from DIP's
development crops (see ``wald.py``); no figure is a best-over-iterations. Writes ``kernelgan.json`` and
``kernelgan.md`` after every row (a run cut short keeps its rows) and, once all cases and scales
are done, refreshes the README table between the ``bench:kernelgan`` markers.

``--quick`` runs one case with a few steps on the CPU in about a minute, to check the script end to
end; it writes under ``out/`` and leaves the README alone, as does a run of some cases or scales only.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from wald import load_crop, machine, write_results  # noqa: E402

#: (label, npz file, (row, col) of a SIZE² window, true kernel (major σ, minor σ in low-resolution pixels, angle °))
CASES = [
    ("T33UUB fields/forest", "s2_l1c_T33UUB_20170527_dsen2.npz", (344, 344), (1.0, 0.5, 30.0)),
    ("T49JGM arid coast", "s2_l1c_T49JGM_20171022_dsen2.npz", (0, 0), (0.8, 0.4, 120.0)),
    ("T49JGM arid coast", "s2_l1c_T49JGM_20171022_dsen2.npz", (344, 344), (1.2, 0.7, 75.0)),
]
SIZE = 256  # ×4 leaves 64 × 64 low-resolution pixels, KernelGAN's smallest input
DIP_SIZE = 128  # the central window DIP super-resolves and is scored on (high-resolution pixels)
#: DIP's kernels, in the table's order
KERNELS = ("bicubic", "KernelGAN", "estimated", "true")


def run_case(reference: np.ndarray, truth: tuple[float, float, float], scale: int, quick: bool, device: str, folder: str) -> dict:
    """One case at one scale: kernel errors and widths, and DIP's scores with each kernel."""
    from dataclasses import replace

    from internal_sr.core import metrics
    from internal_sr.core.config import DIPConfig, KernelGANConfig
    from internal_sr.core.degradation import degrade_array
    from internal_sr.core.kernelgan import estimate_kernels
    from internal_sr.core.kernels import (
        angle_difference,
        anisotropic_gaussian,
        isotropic_baseline,
        kernel_error,
        kernel_width,
        make_kernel,
        save_kernel_file,
    )
    from internal_sr.core.pipeline import super_resolve_array

    kernelgan = KernelGANConfig(scale=scale, device=device)
    dip = DIPConfig(scale=scale, device=device)
    if quick:
        kernelgan, dip = replace(kernelgan, iterations=50), replace(dip, iterations=5, channels=16, detail_channels=16)
    paths = {"bicubic": "bicubic", **{name: os.path.join(folder, f"{name}.npy") for name in KERNELS[1:]}}
    save_kernel_file(paths["true"], anisotropic_gaussian(*truth, scale), scale)
    low = degrade_array(reference, make_kernel(paths["true"], scale))
    start = time.perf_counter()
    (estimate,) = estimate_kernels(low, np.ones(low.shape, bool), kernelgan)
    kernelgan_seconds = time.perf_counter() - start
    save_kernel_file(paths["estimated"], estimate.kernel, scale)
    save_kernel_file(paths["KernelGAN"], estimate.kernelgan, scale)
    kernels = {name: make_kernel(path, scale) for name, path in paths.items()}
    isotropic_sigma, error_isotropic = isotropic_baseline(kernels["true"])
    own_width = kernel_width(estimate.kernelgan, scale)
    row = dict(
        truth=truth, scale=scale, kernelgan_steps=estimate.steps, kernelgan_seconds=kernelgan_seconds,
        estimated_width=vars(estimate.width), kernelgan_width=vars(own_width),
        true_width=vars(kernel_width(kernels["true"].as_2d, scale)), spectrum=vars(estimate.anisotropy),
        error_estimated=kernel_error(kernels["estimated"], kernels["true"]),
        error_kernelgan=kernel_error(kernels["KernelGAN"], kernels["true"]),
        error_bicubic=kernel_error(kernels["bicubic"], kernels["true"]),
        error_isotropic=error_isotropic, isotropic_sigma=isotropic_sigma,
        angle_error=angle_difference(estimate.width.angle, truth[2]),
        kernelgan_angle_error=angle_difference(own_width.angle, truth[2]),
    )
    first = (reference.shape[-1] - DIP_SIZE) // 2
    window = slice(first, first + DIP_SIZE)
    low_window = low[:, first // scale : (first + DIP_SIZE) // scale, first // scale : (first + DIP_SIZE) // scale]
    for name in KERNELS:
        out, result = super_resolve_array(low_window, replace(dip, kernel=paths[name]))
        row[name] = dict(steps=result.steps, seconds=result.seconds, **metrics.all_metrics(out, reference[:, window, window], scale))
    return row


def width_text(width: dict) -> str:
    """A fitted width (``KernelWidth`` fields) as ``major × minor (angle°)``, σ in low-resolution pixels."""
    return f"{width['major']:.2f} × {width['minor']:.2f} ({width['angle']:.0f}°)"


def markdown(rows: list[dict], info: str) -> str:
    """The README table: one line per case and scale."""
    lines = [
        f"Machine: {info}.",
        "",
        "| crop | true kernel σ (°) | scale | KernelGAN's own σ (°) | estimate σ (°) | axis error (°): own / estimate "
        "| kernel error: own / estimate / best isotropic / bicubic | DIP PSNR (dB): bicubic / KernelGAN's own / "
        "estimate / true kernel | SSIM: bicubic / own / estimate / true | seconds: KernelGAN / DIP |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        major, minor, angle = r["truth"]
        psnr = " / ".join(f"{r[k]['psnr']:.2f}" for k in KERNELS)
        ssim = " / ".join(f"{r[k]['ssim']:.4f}" for k in KERNELS)
        lines.append(
            f"| {r['crop']} | {major:.1f} × {minor:.1f} ({angle:.0f}°) | ×{r['scale']} | "
            f"{width_text(r['kernelgan_width'])} | {width_text(r['estimated_width'])} | "
            f"{r['kernelgan_angle_error']:.0f} / {r['angle_error']:.0f} | "
            f"{r['error_kernelgan']:.2f} / {r['error_estimated']:.2f} / {r['error_isotropic']:.2f} / {r['error_bicubic']:.2f} | "
            f"{psnr} | {ssim} | {r['kernelgan_seconds']:.0f} / {r['estimated']['seconds']:.0f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    from internal_sr.core.device import describe, resolve_device

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="results folder (default: benchmarks/results, or out/kernelgan-quick with --quick)")
    parser.add_argument("--scales", default="2,4")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    parser.add_argument("--cases", help="case numbers from 1, e.g. 1,3 (default: all); a subset leaves the README alone")
    parser.add_argument("--quick", action="store_true", help="one case, a few steps: checks the script, measures nothing")
    args = parser.parse_args()
    device = resolve_device(args.device)
    out = args.out or (os.path.join(HERE, "..", "out", "kernelgan-quick") if args.quick else os.path.join(HERE, "results"))
    os.makedirs(out, exist_ok=True)
    print(f"device {describe(device)}", flush=True)
    start = time.perf_counter()
    rows = []
    chosen = [CASES[int(c) - 1] for c in args.cases.split(",")] if args.cases else CASES
    complete = not args.quick and chosen == CASES and args.scales == "2,4"
    for label, name, origin, truth in chosen[:1] if args.quick else chosen:
        reference = load_crop(name, origin, SIZE)
        for scale in (int(s) for s in args.scales.split(",")):
            with tempfile.TemporaryDirectory() as folder:
                row = dict(crop=label, origin=origin, **run_case(reference, truth, scale, args.quick, device.type, folder))
            rows.append(row)
            print(
                f"{label} {truth} ×{scale}: KernelGAN's own {width_text(row['kernelgan_width'])} (axis {row['kernelgan_angle_error']:.0f}° off), "
                f"estimate {width_text(row['estimated_width'])} (axis {row['angle_error']:.0f}° off), kernel error own "
                f"{row['error_kernelgan']:.2f}, estimate {row['error_estimated']:.2f} (best isotropic {row['error_isotropic']:.2f}, "
                f"bicubic {row['error_bicubic']:.2f}); DIP PSNR " + ", ".join(f"{k} {row[k]['psnr']:.2f}" for k in KERNELS)
                + f" dB; {time.perf_counter() - start:.0f} s so far",
                flush=True,
            )
            # the files are rewritten after every row, so a run cut short still leaves its rows
            done = complete and len(rows) == len(chosen) * len(args.scales.split(","))
            info = f"{machine()}; device {describe(device)}; {'total' if done else 'partial run, so far'} {time.perf_counter() - start:.0f} s"
            results = {"device": info, "quick": args.quick, "complete": done, "rows": rows}
            write_results(out, "kernelgan", results, markdown(rows, info), "kernelgan" if done else None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
