"""Wald-protocol benchmark of DIP super-resolution on real Sentinel-2 crops (``make bench``).

For each crop and scale: degrade the 10 m reference by ``s`` with the bicubic kernel, then
super-resolve it back with bicubic interpolation, bicubic + back-projection and DIP at its default
settings, and score against the reference (PSNR, SSIM, RMSE in reflectance ×10⁴). Each method runs
in its own process so its peak resident memory is measured. The crops are disjoint from the test
crop and from the development crops used to choose DIP's defaults (128 × 128 windows of the DSen2
sample T33UUB at rows/cols (0, 0) and (200, 200)); no figure is a best-over-iterations. Writes JSON and a Markdown table, and refreshes the
table in README.md between the ``bench:dip`` markers.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import resource
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.path.normpath(os.path.join(HERE, "..", "..", "shared", "data"))
CROPS = [
    # (label, npz file, (row, col)) — 128 × 128 windows of the 10 m bands B4, B3, B2, B8
    ("T33UUB fields/forest", "s2_l1c_T33UUB_20170527_dsen2.npz", (400, 320)),
    ("T49JGM arid coast", "s2_l1c_T49JGM_20171022_dsen2.npz", (240, 240)),
]
SIZE = 128


def load_crop(name: str, origin: tuple[int, int], size: int = SIZE) -> np.ndarray:
    """The ``(4, size, size)`` window at ``origin`` (row, col) of a DSen2 sample's 10 m bands, float64."""
    data = np.load(os.path.join(SHARED, name))["im10"]
    r, c = origin
    return data[:, r : r + size, c : c + size].astype(np.float64)


def _child(method: str, low: np.ndarray, scale: int, queue) -> None:
    import torch

    from internal_sr.core.config import DIPConfig
    from internal_sr.core.evaluation import bicubic, bicubic_back_projected, BASELINE_BP_STEPS
    from internal_sr.core.kernels import make_kernel
    from internal_sr.core.pipeline import super_resolve_array

    torch.set_num_threads(os.cpu_count() or 1)
    start = time.perf_counter()
    if method == "bicubic":
        out, steps = bicubic(low, scale), 0
    elif method == "bicubic + BP":
        out, steps = bicubic_back_projected(low, make_kernel("bicubic", scale)), BASELINE_BP_STEPS
    else:
        out, result = super_resolve_array(low, DIPConfig(scale=scale))
        steps = result.steps
    seconds = time.perf_counter() - start
    queue.put((out, steps, seconds, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))


def run_method(method: str, low: np.ndarray, scale: int) -> tuple[np.ndarray, int, float, float]:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(method, low, scale, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def machine() -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{cpu}, {os.cpu_count()} cores, {gpu}; torch {torch.__version__}, Python {platform.python_version()}"


def markdown(rows: list[dict], info: str) -> str:
    lines = [
        f"Machine: {info}.",
        "",
        "| crop | scale | method | PSNR (dB) | SSIM | RMSE | steps | seconds | peak RSS (MB) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['crop']} | ×{r['scale']} | {r['method']} | {r['psnr']:.2f} | {r['ssim']:.4f} | {r['rmse']:.1f} | "
            f"{r['steps']} | {r['seconds']:.1f} | {r['peak_rss_mb']:.0f} |"
        )
    return "\n".join(lines) + "\n"


def update_readme(table: str, name: str = "dip") -> None:
    """Replace the README's text between the ``bench:NAME`` markers by ``table``."""
    path = os.path.join(HERE, "..", "README.md")
    if not os.path.exists(path):
        return
    text = open(path, encoding="utf-8").read()
    start, end = f"<!-- bench:{name}:start -->", f"<!-- bench:{name}:end -->"
    if start in text and end in text:
        head, rest = text.split(start, 1)
        _, tail = rest.split(end, 1)
        open(path, "w", encoding="utf-8").write(f"{head}{start}\n{table}{end}{tail}")


def main() -> int:
    from internal_sr.core import metrics
    from internal_sr.core.evaluation import wald_pair
    from internal_sr.core.kernels import make_kernel

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join(HERE, "results"))
    parser.add_argument("--scales", default="2,4")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    rows = []
    for label, name, origin in CROPS:
        for scale in (int(s) for s in args.scales.split(",")):
            reference, low = wald_pair(load_crop(name, origin), make_kernel("bicubic", scale))
            for method in ("bicubic", "bicubic + BP", "DIP"):
                out, steps, seconds, rss = run_method(method, low, scale)
                row = dict(crop=label, scale=scale, method=method, steps=steps, seconds=seconds, peak_rss_mb=rss,
                           **metrics.all_metrics(out, reference, scale))
                rows.append(row)
                print(f"{label} ×{scale} {method}: PSNR {row['psnr']:.2f} dB, SSIM {row['ssim']:.4f}, {seconds:.1f} s", flush=True)
    info = machine()
    with open(os.path.join(args.out, "wald.json"), "w") as f:
        json.dump({"machine": info, "date": time.strftime("%Y-%m-%d"), "rows": rows}, f, indent=1)
    table = markdown(rows, info)
    with open(os.path.join(args.out, "wald.md"), "w") as f:
        f.write(table)
    update_readme(table)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
