"""GPU checks and figures (run on a machine with CUDA; ``make bench-gpu``; ``--parts`` picks some).

precision: DIP at default settings on the Wald crops of ``wald.py`` (×2, ×4) in float32 with TF32 off
    (plain float32 convolutions and matrix products, where PyTorch's default gives cuDNN TF32 convolutions)
    and with bf16 autocast (float32 losses; PyTorch's defaults otherwise), PSNR and seconds side by side:
    bf16 must match float32 quality. Each timed run follows a 2-step warm-up run of the same settings.
steps: seconds per optimisation step of one default tile (128² input at ×2; guided DIP: a 128² target
    tile of the 20 m bands with the 10 m guide) for DIP, Neural Knitworks and guided DIP, on the device
    and on the CPU.
batch: ×4 of a real strip of 80 × 592 input pixels, one row of 9 tiles of 80 px, solved one tile at a
    time against the automatic batch, both warm-started: wall time side by side, with the tiles each solver
    call took as measured (the first tile is solved alone, since the others warm-start from it and the
    automatic batch is sized from its GPU memory: calls of 1 and 8 tiles where 8 fit).
large: ×4 of a 512 × 512 real input (2048 × 2048 output) at the defaults (batched on CUDA,
    warm-started), wall time and peak memory; then ×2 of the same input, whose output pixels per second
    give the time a full Sentinel-2 band (10980², ×2) would take, extrapolated (not run).
graphs: DIP's steps replayed from CUDA graphs (``cuda_graphs``, ``core.graphs``) against eager steps, each
    with cuDNN's deterministic algorithms (the engine's choice) and autotuned ones, side by side: seconds per
    step of one 128² tile at ×2 and of ``GRAPH_TILES`` such tiles solved together, then default runs at ×2 and
    ×4 on the first Wald crop (eager deterministic, and both recorded variants), with PSNR (which must match)
    and seconds.

``--cuda-graphs`` runs every method with ``cuda_graphs`` in the other parts (their figures then say so).

Each part's figures are kept in ``gpu.json`` with the machine and date they were measured on; a run of
some parts leaves the others' as they were (those already in ``--out``). ``gpu.json`` and ``gpu.md`` (all
parts) are written after each part, and within a part after each of its runs (marked "unfinished"), so a
run stopped at a time limit keeps what it finished; a part that fails is reported and the others still
run (exit status 1). The data folder is ``wald.SHARED`` (``INTERNAL_SR_DATA`` names another); on a lent
GPU machine run ``benchmarks/gpu_device.sh``. ``--device cpu --quick`` runs every part with tiny sizes
and few steps, to check the script on a machine without a GPU (it writes under ``--out`` like a real
run: point it elsewhere). No figure peeks at the reference (PSNR is of the
final output).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from contextlib import contextmanager
from dataclasses import replace
from typing import Callable, Iterator

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from guided_tuning import NAMES10, NAMES20  # noqa: E402
from wald import CROPS, load_crop, machine  # noqa: E402

PARTS = ("precision", "steps", "batch", "large", "graphs")
SCENE = "s2_l1c_T33UUB_20170527_dsen2.npz"
#: Pixels of a full Sentinel-2 10 m band, the edge the large part extrapolates to.
FULL_BAND = 10980
#: Tiles the graphs part solves together (the large part's calls hold 4–5 tiles).
GRAPH_TILES = 5
#: ``cuda_graphs`` of the runs in the parts other than graphs (``--cuda-graphs``).
CUDA_GRAPHS = False


def dip_config(**settings):
    """``DIPConfig(**settings)`` with ``cuda_graphs`` as ``--cuda-graphs`` asks."""
    from internal_sr.core.config import DIPConfig

    return DIPConfig(cuda_graphs=CUDA_GRAPHS, **settings)


def synchronised(device: str, run: Callable[[], object]) -> tuple[object, float]:
    """``run()`` and its wall seconds, the device's queued work included."""
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    value = run()
    if device == "cuda":
        torch.cuda.synchronize()
    return value, time.perf_counter() - start


@contextmanager
def tf32(enabled: bool) -> Iterator[None]:
    """With ``enabled`` False, float32 matrix products and cuDNN convolutions run in plain float32 (not TF32)
    inside the block; PyTorch's defaults (TF32 convolutions, float32 matrix products) are put back after."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    if not enabled:
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


@contextmanager
def tile_calls() -> Iterator[list[int]]:
    """The number of tiles of each call of DIP's tile solvers from outside them (``super_resolve_tile``: 1,
    ``super_resolve_tiles``: as many as it was given), in order, while the block runs. A call inside
    another (``super_resolve_tile`` solves its tile through ``super_resolve_tiles``) is not counted again."""
    from internal_sr.core import dip

    calls: list[int] = []
    depth = [0]
    one, many = dip.super_resolve_tile, dip.super_resolve_tiles

    def counted(solver: Callable, tiles: int, *args, **kwargs):
        if not depth[0]:
            calls.append(tiles)
        depth[0] += 1
        try:
            return solver(*args, **kwargs)
        finally:
            depth[0] -= 1

    def spy_one(*args, **kwargs):
        return counted(one, 1, *args, **kwargs)

    def spy_many(observed, *args, **kwargs):
        return counted(many, len(observed), observed, *args, **kwargs)

    dip.super_resolve_tile, dip.super_resolve_tiles = spy_one, spy_many
    try:
        yield calls
    finally:
        dip.super_resolve_tile, dip.super_resolve_tiles = one, many


#: keep(the figures of a part so far, with a "note" saying what is missing): saved at once, so that a run
#: stopped at a time limit keeps them; the part's return value replaces them.
Keep = Callable[[dict], None]


def precision(device: str, quick: bool, keep: Keep) -> dict:
    from internal_sr.core import metrics
    from internal_sr.core.evaluation import wald_pair
    from internal_sr.core.kernels import make_kernel
    from internal_sr.core.pipeline import super_resolve_array

    rows: list[dict] = []
    crops = CROPS[:1] if quick else CROPS
    for label, name, origin in crops:
        for scale in (2, 4):
            reference, low = wald_pair(load_crop(name, origin, 64 if quick else 128), make_kernel("bicubic", scale))
            for mixed in (False, True):
                config = dip_config(scale=scale, device=device, mixed_precision=mixed, iterations=2 if quick else None)
                with tf32(mixed):  # the float32 reference without TF32; bf16 with PyTorch's defaults
                    super_resolve_array(low, replace(config, iterations=2))  # warm-up: kernels, handles, allocator
                    convolutions_tf32 = torch.backends.cudnn.allow_tf32
                    (out, result), seconds = synchronised(device, lambda: super_resolve_array(low, config))
                row = dict(crop=label, scale=scale, precision="bf16 autocast" if mixed else "float32 (TF32 off)",
                           tf32_convolutions=convolutions_tf32, steps=result.steps, seconds=seconds,
                           **metrics.all_metrics(out, reference, scale))
                rows.append(row)
                print(f"{label} ×{scale} {row['precision']}: PSNR {row['psnr']:.3f} dB, {seconds:.1f} s", flush=True)
                keep({"rows": rows, "note": f"unfinished: {len(rows)} of {4 * len(crops)} rows"})
    return {"rows": rows}


def steps(device: str, quick: bool, keep: Keep) -> dict:
    """Seconds per step of one default tile of each method, on ``device`` and on the CPU (all its threads):
    the difference between a short and a long run over their difference in steps, so that what a run
    does once (setup, the final back-projection) is not counted; after a short warm-up run, so cuDNN's
    choices and the allocator are settled."""
    from internal_sr.core.config import GuidedDIPConfig, KnitworkConfig
    from internal_sr.core.pipeline import super_resolve_array
    from internal_sr.core.sharpen import sharpen_array

    size = 32 if quick else 128
    low, target, guide = load_crop(SCENE, (0, 0), size), load_crop(SCENE, (0, 0), size, "im20"), load_crop(SCENE, (0, 0), 2 * size)

    def run(method: str, where: str, count: int):
        if method == "guided":
            config = GuidedDIPConfig(iterations=count, early_stop=False, device=where, cuda_graphs=CUDA_GRAPHS)
            return lambda: sharpen_array(target, guide, config, NAMES20, NAMES10)
        if method == "knitwork":
            config = KnitworkConfig(scale=2, iterations=count, early_stop=False, device=where, cuda_graphs=CUDA_GRAPHS)
        else:
            config = dip_config(scale=2, iterations=count, early_stop=False, device=where)
        return lambda: super_resolve_array(low, config)

    def described(figures: dict) -> dict:
        return {"tile": f"{size}² input (guided: {size}² target)", "cpu_threads": torch.get_num_threads(),
                "seconds_per_step": figures}

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
        keep({**described(figures), "note": f"unfinished: {', '.join(figures)} only"})
    return described(figures)


#: Tiles in the batch part's one row: the first tile is solved alone (the others warm-start from it), then the
#: other 8 together where the GPU holds them.
BATCH_ROW = 9


def batch(device: str, quick: bool, keep: Keep) -> dict:
    """×4 of a real strip that is one row of ``BATCH_ROW`` tiles, one at a time against the automatic batch
    (warm-started), with the tiles each solver call took."""
    from internal_sr.core.config import TileOptions
    from internal_sr.core.pipeline import super_resolve_array
    from internal_sr.core.tiling import plan_tiles

    height, width, tile, overlap = (32, 224, 32, 8) if quick else (80, 592, 80, 16)
    low = load_crop(SCENE, (0, 0), width)[:, :height]
    plan = plan_tiles(width, height, TileOptions(tile, overlap))
    if [len(row) for row in plan] != [BATCH_ROW]:
        raise RuntimeError(f"the batch part's input should be one row of {BATCH_ROW} tiles, not {[len(r) for r in plan]}")
    runs: dict[str, dict] = {}
    described = f"{height} × {width} × 4 bands, one row of {BATCH_ROW} tiles of {tile} px"
    for together in (1, 0):
        config = dip_config(scale=4, device=device, iterations=2 if quick else None, tiles=TileOptions(tile, overlap, together))
        with tile_calls() as calls:
            (_, result), seconds = synchronised(device, lambda: super_resolve_array(low, config))
        name = str(together) if together else "automatic"
        runs[name] = dict(seconds=seconds, steps=result.steps, tiles=len(result.curves), calls=calls)
        print(f"×4 of {height} × {width}, tiles at a time: {name}: {seconds:.1f} s, {result.steps} steps, "
              f"tiles per call {calls}", flush=True)
        keep({"input": described, "runs": runs, "note": f"unfinished: {' and '.join(runs)} at a time only"})
    return {"input": described, "runs": runs}


def large(device: str, quick: bool, keep: Keep) -> dict:
    """×4 of a 512² input at the defaults, then ×2 of it for the throughput a full band is extrapolated from."""
    from internal_sr.core.pipeline import super_resolve_array

    size = 64 if quick else 512
    big = load_crop(SCENE, (0, 0), size)
    figures = {}
    for scale in (4, 2):
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()  # reset again by the run at its first tile (measured to size the
            # automatic batch), before which it holds no network: the peak read below is the run's
        config = dip_config(scale=scale, device=device, iterations=2 if quick else None)
        with tile_calls() as calls:
            (out, result), seconds = synchronised(device, lambda: super_resolve_array(big, config))
        figures[f"x{scale}"] = dict(
            input=f"{size} × {size} × 4 bands", output=f"{out.shape[2]} × {out.shape[1]}", seconds=seconds, steps=result.steps,
            calls=calls,
            peak_gpu_gib=torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else 0.0,
            output_megapixels_per_second=out.shape[1] * out.shape[2] / seconds / 1e6,
        )
        print(f"×{scale} of {size}²: {figures[f'x{scale}']}", flush=True)
        keep({**figures, "note": "unfinished: ×4 only"})
    full = (FULL_BAND * 2) ** 2 / 1e6 / figures["x2"]["output_megapixels_per_second"]
    figures["full_band_x2_hours_extrapolated"] = full / 3600
    return figures


#: The graphs part's variants: (steps replayed from CUDA graphs, cuDNN autotuned); the engine's own choice is
#: cuDNN's deterministic algorithms (``core.device.seed_everything``).
GRAPH_VARIANTS = ((False, False), (False, True), (True, False), (True, True))


def variant_name(recorded: bool, tuned: bool) -> str:
    return f"{'graphs' if recorded else 'eager'}, cuDNN {'autotuned' if tuned else 'deterministic'}"


@contextmanager
def cudnn_autotuned(enabled: bool) -> Iterator[None]:
    """With ``enabled``, each seeding inside the block (``core.device.seed_everything``) leaves cuDNN choosing its
    convolution algorithms by timing them (``benchmark``) instead of the engine's deterministic ones."""
    from internal_sr.core import device as devices

    plain = devices.seed_everything

    def tuned(seed: int, device: torch.device = torch.device("cpu")) -> torch.Generator:
        generator = plain(seed, device)
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = False, True
        return generator

    devices.seed_everything = tuned if enabled else plain
    try:
        with devices.cudnn_flags_kept():
            yield
    finally:
        devices.seed_everything = plain


def graphs(device: str, quick: bool, keep: Keep) -> dict:
    """DIP's steps eager against replayed from CUDA graphs, each with cuDNN deterministic and autotuned: seconds
    per step (one tile, ``GRAPH_TILES`` together), then default runs' PSNR and seconds at ×2 and ×4 (eager as the
    engine runs it, and the recorded variants), side by side."""
    from internal_sr.core import device as devices
    from internal_sr.core import dip, metrics
    from internal_sr.core.config import DIPConfig
    from internal_sr.core.evaluation import wald_pair
    from internal_sr.core.kernels import make_kernel
    from internal_sr.core.pipeline import super_resolve_array
    from internal_sr.core.progress import NullProgress

    size = 32 if quick else 128
    origins = [(size * (k // 4), size * (k % 4)) for k in range(GRAPH_TILES)]  # four to a row of the 600² scene
    scene = np.stack([load_crop(SCENE, origin, size) for origin in origins]).astype(np.float32) / 10000
    short, long = (3, 12) if quick else (50, 150)
    figures: dict = {"tile": f"{size}² input at ×2", "seconds_per_step": {}, "runs": []}

    def solve(tiles: int, steps: int, recorded: bool) -> Callable[[], object]:
        config = DIPConfig(scale=2, iterations=steps, early_stop=False, device=device, cuda_graphs=recorded)
        observed, valid = scene[:tiles], np.ones((tiles, 1, size, size), np.float32)
        where = torch.device(device)
        return lambda: dip.super_resolve_tiles(
            observed, valid, make_kernel("bicubic", 2), config, where, NullProgress(), devices.seed_everything(0))

    for tiles in (1, GRAPH_TILES):
        for recorded, tuned in GRAPH_VARIANTS:
            with cudnn_autotuned(tuned):
                solve(tiles, 2, recorded)()
                _, first = synchronised(device, solve(tiles, short, recorded))
                _, second = synchronised(device, solve(tiles, long, recorded))
            figures["seconds_per_step"][f"{tiles} tile(s), {variant_name(recorded, tuned)}"] = (second - first) / (long - short)
        print(f"{tiles} tile(s): seconds per step {figures['seconds_per_step']}", flush=True)
        keep({**figures, "note": "unfinished: seconds per step only"})
    label, name, origin = CROPS[0]
    variants = [v for v in GRAPH_VARIANTS if v[0] or not v[1]]  # the engine's eager runs, and both recorded ones
    for scale in (2, 4):
        reference, low = wald_pair(load_crop(name, origin, 64 if quick else 128), make_kernel("bicubic", scale))
        for recorded, tuned in variants:
            config = DIPConfig(scale=scale, device=device, iterations=2 if quick else None, cuda_graphs=recorded)
            with cudnn_autotuned(tuned):
                (out, result), seconds = synchronised(device, lambda: super_resolve_array(low, config))
            row = dict(crop=label, scale=scale, steps=variant_name(recorded, tuned), seconds=seconds, iterations=result.steps,
                       **metrics.all_metrics(out, reference, scale))
            figures["runs"].append(row)
            print(f"{label} ×{scale} {row['steps']}: PSNR {row['psnr']:.3f} dB, {seconds:.1f} s", flush=True)
            keep({**figures, "note": f"unfinished: {len(figures['runs'])} of {2 * len(variants)} runs"})
    return figures


def heading(title: str, part: dict) -> str:
    """A part's title with the machine and date it was measured on (and its note, when it has one)."""
    note = f"; {part['note']}" if part.get("note") else ""
    graphed = "; on the GPU, steps replayed from CUDA graphs" if part.get("cuda_graphs") else ""
    return f"{title} ({part['machine']}, {part['date']}{graphed}{note}):"


def calls_text(run: dict) -> str:
    """`` (tiles per solver call: 1, 4, 5, …)`` for a run whose solver calls were counted, else nothing."""
    return f" (tiles per solver call: {', '.join(map(str, run['calls']))})" if run.get("calls") else ""


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
                  "| tiles at a time (at most) | tiles per solver call (measured) | seconds | steps | tiles |",
                  "|---|---|---|---|---|"]
        lines += [f"| {k} | {', '.join(map(str, r['calls']))} | {r['seconds']:.1f} | {r['steps']} | {r['tiles']} |"
                  for k, r in part["runs"].items()]
        lines.append("")
    if "large" in results:
        part = results["large"]
        lines += [heading("Large inputs at the defaults", part), ""]
        lines += [f"- ×{k[1:]} of {r['input']} ({r['output']} output): {r['seconds']:.1f} s, {r['steps']} steps over all "
                  f"tiles{calls_text(r)}, peak GPU memory {r['peak_gpu_gib']:.2f} GiB, "
                  f"{r['output_megapixels_per_second']:.3f} output Mpx/s."
                  for k, r in part.items() if k.startswith("x")]
        if "full_band_x2_hours_extrapolated" in part:
            lines.append(f"- A full Sentinel-2 band ({FULL_BAND}², ×2) at that ×2 throughput: about "
                         f"{part['full_band_x2_hours_extrapolated']:.1f} hours (extrapolated, not run).")
        lines.append("")
    if "graphs" in results:
        part = results["graphs"]
        lines += [heading(f"CUDA graphs against eager steps, DIP, {part['tile']}", part), "",
                  "| steps | s/step |", "|---|---|"]
        lines += [f"| {k} | {v:.4f} |" for k, v in part["seconds_per_step"].items()]
        lines += ["", "| crop | scale | steps | PSNR (dB) | SSIM | iterations | seconds |", "|---|---|---|---|---|---|---|"]
        lines += [f"| {r['crop']} | ×{r['scale']} | {r['steps']} | {r['psnr']:.2f} | {r['ssim']:.4f} | {r['iterations']} | {r['seconds']:.1f} |"
                  for r in part["runs"]]
        lines.append("")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="results folder (default: benchmarks/results, or out/gpu-quick with --quick)")
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated, of {', '.join(PARTS)}")
    parser.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    parser.add_argument("--quick", action="store_true", help="tiny sizes and few steps: checks the script, measures nothing")
    parser.add_argument("--cuda-graphs", action="store_true", help="the runs of the parts other than graphs replay CUDA graphs")
    args = parser.parse_args()
    global CUDA_GRAPHS
    CUDA_GRAPHS = args.cuda_graphs
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
    functions = {"precision": precision, "steps": steps, "batch": batch, "large": large, "graphs": graphs}
    info, date = machine(), time.strftime("%Y-%m-%d")
    failed = []

    def save(part: str, figures: dict) -> None:
        """gpu.json and gpu.md with ``part``'s figures, each written whole (a kill never leaves half a file)."""
        graphed = {"cuda_graphs": True} if CUDA_GRAPHS and part != "graphs" else {}
        results[part] = dict(machine=info, date=date, **graphed, **figures)
        texts = {"gpu.json": json.dumps({"machine": info, "date": date, **results}, indent=1), "gpu.md": markdown(results)}
        for name, text in texts.items():
            with open(os.path.join(out, f".{name}.tmp"), "w", encoding="utf-8") as f:
                f.write(text)
            os.replace(os.path.join(out, f".{name}.tmp"), os.path.join(out, name))

    for part in parts:
        print(f"== {part}", flush=True)
        try:
            figures = functions[part](args.device, args.quick, lambda partial: save(part, partial))
        except Exception:  # noqa: BLE001 (a lent GPU session is short: report it, keep the other parts)
            traceback.print_exc()
            failed.append(part)
            continue
        save(part, figures)  # after each part (and its steps, keep): a time limit keeps what finished
    print(markdown(results))
    if failed:
        print(f"failed parts: {', '.join(failed)} (the others are in {path})", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
