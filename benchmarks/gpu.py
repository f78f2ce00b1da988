"""GPU checks and figures (run on a machine with CUDA; ``make bench-gpu``; ``--parts`` picks some).

precision: DIP at default settings on the Wald crops of ``wald.py`` (×2, ×4) in float32 and with bf16
    autocast (float32 losses), PSNR and seconds side by side: bf16 must match float32 quality.
steps: seconds per optimisation step of one default tile (128² input at ×2; guided DIP: a 128² target
    tile of the 20 m bands with the 10 m guide) for DIP, Neural Knitworks and guided DIP, on the device
    and on the CPU.
batch: ×4 of a 256 × 256 real input (3 × 3 tiles) solved one tile at a time against ``CUDA_BATCH``
    tiles together, both warm-started: wall time side by side.
large: ×4 of a 512 × 512 real input (2048 × 2048 output) at the defaults (batched on CUDA,
    warm-started), wall time and peak memory; then ×2 of the same input, whose output pixels per second
    give the time a full Sentinel-2 band (10980², ×2) would take, extrapolated (not run).

Each part's figures are kept in ``gpu.json`` with the machine and date they were measured on; a run of
some parts leaves the others' as they were. ``gpu.md`` shows them all. ``--device cpu --quick`` runs
every part with tiny sizes and few steps, to check the script on a machine without a GPU (it writes
under ``--out`` like a real run: point it elsewhere). No figure peeks at the reference (PSNR is of the
final output).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Callable

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from guided_tuning import NAMES10, NAMES20  # noqa: E402
from wald import CROPS, load_crop, machine, write_results  # noqa: E402

PARTS = ("precision", "steps", "batch", "large")
SCENE = "s2_l1c_T33UUB_20170527_dsen2.npz"
#: Pixels of a full Sentinel-2 10 m band, the edge the large part extrapolates to.
FULL_BAND = 10980


def synchronised(device: str, run: Callable[[], object]) -> tuple[object, float]:
    """``run()`` and its wall seconds, the device's queued work included."""
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    value = run()
    if device == "cuda":
        torch.cuda.synchronize()
    return value, time.perf_counter() - start


def precision(device: str, quick: bool) -> dict:
    from internal_sr.core import metrics
    from internal_sr.core.config import DIPConfig
    from internal_sr.core.evaluation import wald_pair
    from internal_sr.core.kernels import make_kernel
    from internal_sr.core.pipeline import super_resolve_array

    rows = []
    for label, name, origin in CROPS[:1] if quick else CROPS:
        for scale in (2, 4):
            reference, low = wald_pair(load_crop(name, origin, 64 if quick else 128), make_kernel("bicubic", scale))
            for mixed in (False, True):
                config = DIPConfig(scale=scale, device=device, mixed_precision=mixed, iterations=2 if quick else None)
                (out, result), seconds = synchronised(device, lambda: super_resolve_array(low, config))
                row = dict(crop=label, scale=scale, precision="bf16 autocast" if mixed else "float32",
                           steps=result.steps, seconds=seconds, **metrics.all_metrics(out, reference, scale))
                rows.append(row)
                print(f"{label} ×{scale} {row['precision']}: PSNR {row['psnr']:.3f} dB, {seconds:.1f} s", flush=True)
    return {"rows": rows}


def steps(device: str, quick: bool) -> dict:
    """Seconds per step of one default tile of each method, on ``device`` and on the CPU (all its threads):
    the difference between a short and a long run over their difference in steps, so that what a run
    does once (setup, the final back-projection) is not counted; after a short warm-up run, so cuDNN's
    choices and the allocator are settled."""
    from internal_sr.core.config import DIPConfig, GuidedDIPConfig, KnitworkConfig
    from internal_sr.core.pipeline import super_resolve_array
    from internal_sr.core.sharpen import sharpen_array

    size = 32 if quick else 128
    low, target, guide = load_crop(SCENE, (0, 0), size), load_crop(SCENE, (0, 0), size, "im20"), load_crop(SCENE, (0, 0), 2 * size)

    def run(method: str, where: str, count: int):
        if method == "guided":
            config = GuidedDIPConfig(iterations=count, early_stop=False, device=where)
            return lambda: sharpen_array(target, guide, config, NAMES20, NAMES10)
        config = (DIPConfig if method == "dip" else KnitworkConfig)(scale=2, iterations=count, early_stop=False, device=where)
        return lambda: super_resolve_array(low, config)

    counts = {device: (3, 6) if quick else (50, 150), "cpu": (2, 4) if quick else (5, 15)}
    figures: dict[str, dict[str, float]] = {}
    for method in ("dip", "knitwork", "guided"):
        for where in dict.fromkeys((device, "cpu")):
            run(method, where, 2)()
            short, long = counts[where]
            _, short_seconds = synchronised(where, run(method, where, short))
            _, long_seconds = synchronised(where, run(method, where, long))
            figures.setdefault(method, {})[where] = (long_seconds - short_seconds) / (long - short)
        print(f"{method}: seconds per step {figures[method]}", flush=True)
    return {"tile": f"{size}² input (guided: {size}² target)", "cpu_threads": torch.get_num_threads(),
            "seconds_per_step": figures}


def batch(device: str, quick: bool) -> dict:
    """×4 of a real input in 3 × 3 tiles, one at a time against ``CUDA_BATCH`` together (warm-started)."""
    from internal_sr.core.config import CUDA_BATCH, DIPConfig, TileOptions
    from internal_sr.core.pipeline import super_resolve_array

    size, tile, overlap = (80, 32, 8) if quick else (256, 96, 16)
    low = load_crop(SCENE, (0, 0), size)
    runs = {}
    for together in (1, CUDA_BATCH):
        config = DIPConfig(scale=4, device=device, iterations=2 if quick else None, tiles=TileOptions(tile, overlap, together))
        (_, result), seconds = synchronised(device, lambda: super_resolve_array(low, config))
        runs[str(together)] = dict(seconds=seconds, steps=result.steps, tiles=len(result.curves))
        print(f"×4 of {size}², {together} tile(s) at a time: {seconds:.1f} s, {result.steps} steps", flush=True)
    return {"input": f"{size} × {size} × 4 bands, tiles of {tile} px", "runs": runs}


def large(device: str, quick: bool) -> dict:
    """×4 of a 512² input at the defaults, then ×2 of it for the throughput a full band is extrapolated from."""
    from internal_sr.core.config import DIPConfig
    from internal_sr.core.pipeline import super_resolve_array

    size = 64 if quick else 512
    big = load_crop(SCENE, (0, 0), size)
    figures = {}
    for scale in (4, 2):
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        config = DIPConfig(scale=scale, device=device, iterations=2 if quick else None)
        (out, result), seconds = synchronised(device, lambda: super_resolve_array(big, config))
        figures[f"x{scale}"] = dict(
            input=f"{size} × {size} × 4 bands", output=f"{out.shape[2]} × {out.shape[1]}", seconds=seconds, steps=result.steps,
            peak_gpu_gib=torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else 0.0,
            output_megapixels_per_second=out.shape[1] * out.shape[2] / seconds / 1e6,
        )
        print(f"×{scale} of {size}²: {figures[f'x{scale}']}", flush=True)
    full = (FULL_BAND * 2) ** 2 / 1e6 / figures["x2"]["output_megapixels_per_second"]
    figures["full_band_x2_hours_extrapolated"] = full / 3600
    return figures


def heading(title: str, part: dict) -> str:
    """A part's title with the machine and date it was measured on (and its note, when it has one)."""
    note = f"; {part['note']}" if part.get("note") else ""
    return f"{title} ({part['machine']}, {part['date']}{note}):"


def markdown(results: dict) -> str:
    lines: list[str] = []
    if "precision" in results:
        part = results["precision"]
        lines += [heading("Precision", part), "",
                  "| crop | scale | precision | PSNR (dB) | SSIM | steps | seconds |", "|---|---|---|---|---|---|---|"]
        lines += [f"| {r['crop']} | ×{r['scale']} | {r['precision']} | {r['psnr']:.2f} | {r['ssim']:.4f} | {r['steps']} | {r['seconds']:.1f} |"
                  for r in part["rows"]]
        lines.append("")
    if "steps" in results:
        part = results["steps"]
        lines += [heading(f"Seconds per step, one tile of {part['tile']} at ×2", part), "",
                  "| method | s/step on the device | s/step on the CPU | CPU / device |", "|---|---|---|---|"]
        for method, figures in part["seconds_per_step"].items():
            device = next((v for k, v in figures.items() if k != "cpu"), figures["cpu"])
            lines.append(f"| {method} | {device:.4f} | {figures['cpu']:.3f} | {figures['cpu'] / device:.0f}× |")
        lines.append("")
    if "batch" in results:
        part = results["batch"]
        lines += [heading(f"Batched tiles, ×4 of {part['input']}", part), "",
                  "| tiles at a time | seconds | steps | tiles |", "|---|---|---|---|"]
        lines += [f"| {k} | {r['seconds']:.1f} | {r['steps']} | {r['tiles']} |" for k, r in part["runs"].items()]
        lines.append("")
    if "large" in results:
        part = results["large"]
        lines += [heading("Large inputs at the defaults", part), ""]
        lines += [f"- ×{k[1:]} of {r['input']} ({r['output']} output): {r['seconds']:.1f} s, {r['steps']} steps over all "
                  f"tiles, peak GPU memory {r['peak_gpu_gib']:.2f} GiB, {r['output_megapixels_per_second']:.3f} output Mpx/s."
                  for k, r in part.items() if k.startswith("x")]
        if "full_band_x2_hours_extrapolated" in part:
            lines.append(f"- A full Sentinel-2 band ({FULL_BAND}², ×2) at that ×2 throughput: about "
                         f"{part['full_band_x2_hours_extrapolated']:.1f} hours (extrapolated, not run).")
        lines.append("")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="results folder (default: benchmarks/results, or out/gpu-quick with --quick)")
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated, of {', '.join(PARTS)}")
    parser.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    parser.add_argument("--quick", action="store_true", help="tiny sizes and few steps: checks the script, measures nothing")
    args = parser.parse_args()
    parts = [p for p in args.parts.split(",") if p]
    if unknown := set(parts) - set(PARTS):
        print(f"unknown parts {sorted(unknown)}: choose from {', '.join(PARTS)}", file=sys.stderr)
        return 2
    if args.device == "cuda" and not torch.cuda.is_available():
        print("no CUDA GPU: nothing to measure (--device cpu --quick checks the script)", file=sys.stderr)
        return 1
    default = os.path.join(HERE, "..", "out", "gpu-quick") if args.quick else os.path.join(HERE, "results")
    out = args.out or default
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, "gpu.json")
    results = {}
    if os.path.exists(path):
        with open(path) as f:
            results = {k: v for k, v in json.load(f).items() if k in PARTS}
    functions = {"precision": precision, "steps": steps, "batch": batch, "large": large}
    info, date = machine(), time.strftime("%Y-%m-%d")
    for part in parts:
        results[part] = dict(machine=info, date=date, **functions[part](args.device, args.quick))
    write_results(out, "gpu", results, markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
