"""GPU checks and figures for DIP (run on a machine with CUDA; ``make bench-gpu``).

1. Mixed precision against float32: DIP at default settings on the Wald crops of ``wald.py`` (×2, ×4),
   once with ``mixed_precision=False`` and once with it on (bfloat16 autocast, float32 losses);
   PSNR and seconds side by side, so bf16 must match float32 quality on the same run.
2. Seconds per optimisation step of one default tile (128² input) on the CPU and on the GPU.
3. A large job: ×4 super-resolution of a 512 × 512 real input (2048 × 2048 output) with the
   default tiling, wall time end to end.

Writes ``gpu.json`` and ``gpu.md`` under ``--out``. No figure peeks at the reference (the PSNR is
of the final output).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from wald import CROPS, SHARED, load_crop, machine, write_results  # noqa: E402


def step_seconds(device: str, steps: int) -> float:
    """Mean seconds per step of a default-config DIP tile (128² input, ×2) on ``device``."""
    from internal_sr.core.config import DIPConfig
    from internal_sr.core.pipeline import super_resolve_array

    low = load_crop(CROPS[0][1], CROPS[0][2])
    config = DIPConfig(scale=2, iterations=steps, early_stop=False, device=device)
    super_resolve_array(low, DIPConfig(scale=2, iterations=2, device=device))  # warm-up (cuDNN, allocator)
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    super_resolve_array(low, config)
    if device == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / steps


def main() -> int:
    from internal_sr.core import metrics
    from internal_sr.core.config import DIPConfig
    from internal_sr.core.evaluation import wald_pair
    from internal_sr.core.kernels import make_kernel
    from internal_sr.core.pipeline import super_resolve_array

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join(HERE, "results"))
    parser.add_argument("--cpu-steps", type=int, default=10)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA GPU: nothing to measure", file=sys.stderr)
        return 1
    os.makedirs(args.out, exist_ok=True)
    rows = []
    for label, name, origin in CROPS:
        for scale in (2, 4):
            reference, low = wald_pair(load_crop(name, origin), make_kernel("bicubic", scale))
            for mixed in (False, True):
                start = time.perf_counter()
                out, result = super_resolve_array(low, DIPConfig(scale=scale, device="cuda", mixed_precision=mixed))
                seconds = time.perf_counter() - start
                row = dict(crop=label, scale=scale, precision="bf16 autocast" if mixed else "float32",
                           steps=result.steps, seconds=seconds, **metrics.all_metrics(out, reference, scale))
                rows.append(row)
                print(f"{label} ×{scale} {row['precision']}: PSNR {row['psnr']:.3f} dB, {seconds:.1f} s", flush=True)
    per_step = {"cuda": step_seconds("cuda", 100), "cpu": step_seconds("cpu", args.cpu_steps)}
    print(f"seconds per step: {per_step}", flush=True)
    big = np.load(os.path.join(SHARED, "s2_l1c_T33UUB_20170527_dsen2.npz"))["im10"][:, :512, :512].astype(np.float64)
    start = time.perf_counter()
    out, result = super_resolve_array(big, DIPConfig(scale=4, device="cuda"))
    torch.cuda.synchronize()
    large = dict(input="512 × 512 × 4 bands", output=f"{out.shape[2]} × {out.shape[1]}", seconds=time.perf_counter() - start,
                 steps=result.steps, peak_gpu_gib=torch.cuda.max_memory_allocated() / 2**30)
    print(f"×4 of 512²: {large}", flush=True)
    info = machine()
    lines = [f"Machine: {info}.", "", "| crop | scale | precision | PSNR (dB) | SSIM | steps | seconds |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['crop']} | ×{r['scale']} | {r['precision']} | {r['psnr']:.2f} | {r['ssim']:.4f} | {r['steps']} | {r['seconds']:.1f} |" for r in rows]
    lines += ["", f"Seconds per DIP step (128² input tile, ×2): GPU {per_step['cuda']:.4f}, CPU {per_step['cpu']:.3f} "
              f"({per_step['cpu'] / per_step['cuda']:.0f}× faster on the GPU).", "",
              f"×4 of a {large['input']} input ({large['output']} output): {large['seconds']:.1f} s, "
              f"{large['steps']} steps over all tiles, peak GPU memory {large['peak_gpu_gib']:.2f} GiB."]
    write_results(args.out, "gpu", {"precision": rows, "seconds_per_step": per_step, "large": large}, "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
