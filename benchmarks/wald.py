"""Wald-protocol benchmark of DIP and Neural Knitworks on real Sentinel-2 crops (``make bench``).

For each crop and scale: degrade the 10 m reference by ``s`` with the bicubic kernel, then
super-resolve it back with bicubic interpolation, bicubic + back-projection, DIP and Knitworks at
their default settings (``--methods`` picks some, ``--device`` where the networks run), and score against the reference (PSNR, SSIM, RMSE in reflectance ×10⁴). Each method runs
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
from typing import Callable

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
#: The data folder (``shared/data`` beside the checkout); ``INTERNAL_SR_DATA`` names another, e.g. the copy
#: carried to a lent GPU machine, where only the repository travels (``benchmarks/gpu_device.sh``).
SHARED = os.path.normpath(os.environ.get("INTERNAL_SR_DATA") or os.path.join(HERE, "..", "..", "shared", "data"))
CROPS = [
    # (label, npz file, (row, col)) — 128 × 128 windows of the 10 m bands B4, B3, B2, B8
    ("T33UUB fields/forest", "s2_l1c_T33UUB_20170527_dsen2.npz", (400, 320)),
    ("T49JGM arid coast", "s2_l1c_T49JGM_20171022_dsen2.npz", (240, 240)),
]
SIZE = 128


def load_crop(name: str, origin: tuple[int, int], size: int = SIZE, bands: str = "im10") -> np.ndarray:
    """The ``size × size`` window at ``origin`` (row, col, on that grid) of a DSen2 sample's ``bands``,
    float64: ``im10`` (B4 B3 B2 B8 at 10 m), ``im20`` (B5 B6 B7 B8A B11 B12 at 20 m) or ``im60``."""
    data = np.load(os.path.join(SHARED, name))[bands]
    r, c = origin
    if r < 0 or c < 0 or r + size > data.shape[1] or c + size > data.shape[2]:
        raise ValueError(f"a {size}² window at {origin} does not fit in {name}'s {bands} ({data.shape[1]} × {data.shape[2]})")
    return data[:, r : r + size, c : c + size].astype(np.float64)


#: The crops committed with the tests (``tests/data``, sources in its README): what a ``--quick`` run may use, so that a
#: plain clone (CI) checks the script end to end without ``shared/data``.
COMMITTED = os.path.join(HERE, "..", "tests", "data")


def committed_crop(name: str) -> np.ndarray:
    """The committed crop ``name`` (a file of ``COMMITTED``), all its bands, float64 ``(C, H, W)``."""
    from internal_sr.core.raster import open_raster

    with open_raster(os.path.join(COMMITTED, name)) as src:
        return src.read().astype(np.float64)


#: Method ids for ``--methods`` → the names in the table.
METHODS = {"bicubic": "bicubic", "bp": "bicubic + BP", "dip": "DIP", "knitwork": "Knitworks"}


def generator_parameters(config, bands: int) -> int:
    """Trained parameters of the network that represents the image (DIP: hourglass + detail branch;
    Knitworks: the patch MLP; its discriminator and learned kernel net are training aids, not counted)."""
    import torch

    from internal_sr.core.config import DIPConfig
    from internal_sr.core.networks import DetailNet, Hourglass, parameter_count

    if isinstance(config, DIPConfig):
        inputs = config.noise_channels + (bands if config.guide_input else 0)
        count = parameter_count(Hourglass(inputs, bands, config.depth, config.channels, config.skip_channels))
        return count + (parameter_count(DetailNet(bands, bands, config.detail_channels, config.detail_layers)) if config.detail_layers else 0)
    from internal_sr.core.knitwork import PatchMLP

    return parameter_count(PatchMLP(bands, config, torch.Generator()))


def _child(method: str, low: np.ndarray, scale: int, device: str, iterations: int | None, queue) -> None:
    import torch

    from internal_sr.core.config import DIPConfig, KnitworkConfig
    from internal_sr.core.evaluation import bicubic, bicubic_back_projected, BASELINE_BP_STEPS
    from internal_sr.core.kernels import make_kernel
    from internal_sr.core.pipeline import super_resolve_array

    torch.set_num_threads(os.cpu_count() or 1)
    start = time.perf_counter()
    parameters = 0
    if method == "bicubic":
        out, steps = bicubic(low, scale), 0
    elif method == "bp":
        out, steps = bicubic_back_projected(low, make_kernel("bicubic", scale)), BASELINE_BP_STEPS
    else:
        config = (DIPConfig if method == "dip" else KnitworkConfig)(scale=scale, device=device, iterations=iterations)
        out, result = super_resolve_array(low, config)
        steps, parameters = result.steps, generator_parameters(config, low.shape[0])
    seconds = time.perf_counter() - start
    gpu = torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else 0.0
    queue.put((out, steps, seconds, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, gpu, parameters))


def run_method(
    method: str, low: np.ndarray, scale: int, device: str = "auto", iterations: int | None = None
) -> tuple[np.ndarray, int, float, float, float, int]:
    """Run one method in its own process: (output, steps, seconds, peak RSS MB, peak GPU MB, parameters)."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(method, low, scale, device, iterations, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def machine() -> str:
    """The machine a benchmark ran on, with the CPU threads torch uses (a benchmark sets them first)."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    threads = torch.get_num_threads()
    return (f"{cpu}, {os.cpu_count()} cores, {gpu}; torch {torch.__version__} ({threads} CPU thread{'s' * (threads != 1)}), "
            f"Python {platform.python_version()}")


def markdown(rows: list[dict], info: str) -> str:
    lines = [
        f"Machine: {info}.",
        "",
        "| crop | scale | method | PSNR (dB) | SSIM | RMSE | parameters | steps | seconds | peak RSS (MB) | peak GPU (MB) | measured |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['crop']} | ×{r['scale']} | {r['method']} | {r['psnr']:.2f} | {r['ssim']:.4f} | {r['rmse']:.1f} | "
            f"{r['parameters'] / 1e6:.2f} M | {r['steps']} | {r['seconds']:.1f} | {r['peak_rss_mb']:.0f} | "
            f"{r['peak_gpu_mb']:.0f} | {r['date']} |"
        )
    return "\n".join(lines) + "\n"


def write_results(folder: str, name: str, results: dict, table: str, readme: str | None = None) -> None:
    """Write ``NAME.json`` (the machine, the date and ``results``) and ``NAME.md`` (``table``) in ``folder``,
    print ``table``, and with ``readme`` put it between the README's ``bench:README`` markers."""
    with open(os.path.join(folder, f"{name}.json"), "w") as f:
        json.dump({"machine": machine(), "date": time.strftime("%Y-%m-%d"), **results}, f, indent=1)
    with open(os.path.join(folder, f"{name}.md"), "w") as f:
        f.write(table)
    if readme:
        update_readme(table, readme)
    print(table)


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


def merged(path: str, new: list[dict], key: Callable[[dict], tuple]) -> list[dict]:
    """The rows of the results file at ``path`` with those of ``new`` put in place (rows with an equal ``key``), in ``key`` order."""
    with open(path) as f:
        rows = {key(r): r for r in json.load(f)["rows"]}
    rows.update({key(r): r for r in new})
    return [rows[k] for k in sorted(rows)]


def main() -> int:
    from internal_sr.core import metrics
    from internal_sr.core.evaluation import wald_pair
    from internal_sr.core.kernels import make_kernel

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join(HERE, "results"))
    parser.add_argument("--scales", default="2,4")
    parser.add_argument("--methods", default=",".join(METHODS), help=f"comma-separated, of {', '.join(METHODS)}")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"], help="for DIP and Knitworks")
    parser.add_argument("--iterations", type=int, help="steps for DIP and Knitworks (a quick check: the README is left alone)")
    parser.add_argument("--merge", action="store_true",
                        help="replace only the rows this run makes in the existing wald.json (e.g. one method rerun after a change)")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    rows = []
    for label, name, origin in CROPS:
        for scale in (int(s) for s in args.scales.split(",")):
            reference, low = wald_pair(load_crop(name, origin), make_kernel("bicubic", scale))
            for method in args.methods.split(","):
                if method not in METHODS:
                    parser.error(f"unknown method {method!r}: use {', '.join(METHODS)}")
                out, steps, seconds, rss, gpu, parameters = run_method(method, low, scale, args.device, args.iterations)
                row = dict(crop=label, scale=scale, method=METHODS[method], date=time.strftime("%Y-%m-%d"), steps=steps, seconds=seconds, peak_rss_mb=rss,
                           peak_gpu_mb=gpu, parameters=parameters, **metrics.all_metrics(out, reference, scale))
                rows.append(row)
                print(f"{label} ×{scale} {method}: PSNR {row['psnr']:.2f} dB, SSIM {row['ssim']:.4f}, {seconds:.1f} s", flush=True)
    if args.merge:
        crops, methods = [c[0] for c in CROPS], list(METHODS.values())
        rows = merged(os.path.join(args.out, "wald.json"), rows, lambda r: (crops.index(r["crop"]), r["scale"], methods.index(r["method"])))
    table = markdown(rows, machine())
    write_results(args.out, "wald", {"rows": rows}, table, "dip" if args.iterations is None else None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
