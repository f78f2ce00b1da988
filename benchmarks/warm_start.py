"""Does a tile warm-started from a trained neighbour need fewer steps? (``InternalLearningConfig.warm_start``)

On development tiles of the DSen2 samples T33UUB and T49JGM (never a benchmark crop): tile A is solved fresh at
the method's defaults and its trained networks kept; tile B is then solved fresh, and warm-started
from A with each fraction of the steps in ``--fractions`` (each a complete run of that many steps, so
step-dependent schedules such as Knitworks' ramps are spread over it as in a real run). DIP and
Knitworks: 128 × 128 windows of the 10 m bands degraded by ``--scale`` with the bicubic kernel (Wald's
protocol). Guided DIP: 96 × 96 windows of the 20 m grid, the 20 m bands and the 10 m guide degraded
by 2 with the Sentinel-2 MTF kernels and the 40 m bands sharpened back to 20 m. Both tiles are
normalised with one scaling, as tiles of one raster are. Pairs: a neighbour sharing 32 output pixels
(the default tile overlap) and a tile far away. The figures are PSNRs (dB) of tile B's final output,
never picked from a curve. Writes ``warm_start.json`` and ``warm_start.md`` and refreshes the README
table between the ``bench:warm`` markers.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from wald import load_crop, machine, merged, write_results  # noqa: E402

T33UUB, T49JGM = "s2_l1c_T33UUB_20170527_dsen2.npz", "s2_l1c_T49JGM_20171022_dsen2.npz"
#: (label, scene, tile A's origin, tile B's origin) in rows/cols of the 10 m grid (DIP, Knitworks: 128²
#: windows) or of the 20 m grid (guided: 96² windows, T33UUB only); none overlaps a Wald or guided
#: benchmark crop.
PAIRS = {
    "single": [
        ("neighbour", T33UUB, (0, 0), (0, 96)),
        ("200 px away", T33UUB, (0, 0), (200, 200)),
        ("T49JGM neighbour", T49JGM, (0, 0), (0, 96)),
        ("T49JGM 440 px away", T49JGM, (0, 0), (440, 0)),
    ],
    "guided": [("neighbour", T33UUB, (0, 0), (0, 64)), ("100 px away", T33UUB, (0, 0), (100, 100))],
}
GUIDED_SIZE = 96


def tile_pair(method: str, scale: int, scene: str, origins: tuple[tuple[int, int], tuple[int, int]]):
    """Tiles A and B of one method on ``scene`` (a file of ``shared/data``): ``solve(index, config, start) →
    (TileResult, seconds)``, ``score(tile) → PSNR`` of tile B's output (dB), and bicubic + back-projection's
    PSNR on tile B."""
    import torch

    from guided_tuning import NAMES10, NAMES20, wald_20m
    from internal_sr.core import dip, guided, knitwork, metrics
    from internal_sr.core.device import seed_everything
    from internal_sr.core.evaluation import bicubic_back_projected, wald_pair
    from internal_sr.core.kernels import make_kernel
    from internal_sr.core.normalise import BandScaling
    from internal_sr.core.progress import NullProgress
    from internal_sr.core.sharpen import band_kernels

    def fitted(images: list[np.ndarray]) -> BandScaling:
        """One scaling for both tiles, as one raster's tiles share it."""
        both = np.concatenate(images, axis=2).astype(np.float32)
        return BandScaling.fit(both, np.ones(both.shape, bool))

    if method == "guided":
        (t_a, g_a, _), (t_b, g_b, reference) = (wald_20m(scene, o, GUIDED_SIZE) for o in origins)
        kernels = band_kernels("sentinel2", NAMES20, scale, "target"), band_kernels("sentinel2", NAMES10, scale, "guide")
        scaling, guide_scaling = fitted([t_a, t_b]), fitted([g_a, g_b])
        lows, inputs = [t_a, t_b], [(t_a, g_a), (t_b, g_b)]

        def run(index: int, config, generator, start):
            target, guide = inputs[index]
            ones = np.ones(target.shape, bool), np.ones(guide.shape, bool)
            return guided.sharpen_tile(scaling.normalise(target), ones[0], guide_scaling.normalise(guide), ones[1],
                                       *kernels, config, torch.device("cpu"), NullProgress(), generator, start=start)

        bp_kernel = kernels[0]
    else:
        kernel = make_kernel("bicubic", scale)
        (_, low_a), (reference, low_b) = (wald_pair(load_crop(scene, o), kernel) for o in origins)
        scaling, lows = fitted([low_a, low_b]), [low_a, low_b]
        module = dip if method == "dip" else knitwork

        def run(index: int, config, generator, start):
            low = lows[index]
            return module.super_resolve_tile(scaling.normalise(low), np.ones(low.shape, bool), kernel, config,
                                             torch.device("cpu"), NullProgress(), generator, start=start)

        bp_kernel = kernel

    def solve(index: int, config, start=None):
        begin = time.perf_counter()
        tile = run(index, config, seed_everything(config.seed), start)
        return tile, time.perf_counter() - begin

    def score(tile) -> float:
        return metrics.psnr(scaling.denormalise(tile.image), reference)

    return solve, score, metrics.psnr(bicubic_back_projected(lows[1], bp_kernel), reference)


def main() -> int:
    import torch

    from internal_sr.core.config import DIPConfig, GuidedDIPConfig, KnitworkConfig

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", choices=("dip", "knitwork", "guided"), default="knitwork")
    parser.add_argument("--scale", type=int, default=2, help="DIP and Knitworks (guided: 2, 20 m from 40 m)")
    parser.add_argument("--fractions", default="0.5,0.75", help="warm runs with these fractions of the steps")
    parser.add_argument("--pairs", default="0,1", help="indices into the tile pairs (DIP, Knitworks: 0–3; guided: 0–1)")
    parser.add_argument("--out", default=os.path.join(HERE, "results"), help="folder for warm_start.json and .md")
    parser.add_argument("--merge", action="store_true", help="keep the other methods' and pairs' rows of an earlier run")
    args = parser.parse_args()
    scale = 2 if args.method == "guided" else args.scale

    def config(**fields):
        if args.method == "guided":
            return GuidedDIPConfig(device="cpu", **fields)
        return (DIPConfig if args.method == "dip" else KnitworkConfig)(scale=scale, device="cpu", **fields)

    rows = []
    pairs = PAIRS["guided" if args.method == "guided" else "single"]
    for label, scene, origin_a, origin_b in (pairs[int(i)] for i in args.pairs.split(",")):
        solve, score, bp = tile_pair(args.method, scale, scene, (origin_a, origin_b))
        trained, _ = solve(0, config())
        fresh, seconds = solve(1, config())
        row = dict(method=args.method, date=time.strftime("%Y-%m-%d"), threads=torch.get_num_threads(), pair=label,
                   a=origin_a, b=origin_b, scale=scale,
                   steps=fresh.steps, seconds=seconds, bp=bp, fresh=score(fresh), warm={})
        for fraction in (float(f) for f in args.fractions.split(",")):
            warm, seconds = solve(1, config(warm_steps=fraction), trained.state)
            row["warm"][str(fraction)] = dict(steps=warm.steps, seconds=seconds, psnr=score(warm))
        rows.append(row)
        warm_text = ", ".join(f"{f}: {w['psnr']:.2f} dB ({w['steps']} steps)" for f, w in row["warm"].items())
        print(f"{args.method} ×{scale} {label}: BP {bp:.2f}, fresh {row['fresh']:.2f} dB ({row['steps']} steps, {row['seconds']:.0f} s); warm {warm_text}", flush=True)
    path = os.path.join(args.out, "warm_start.json")
    if args.merge and os.path.exists(path):
        rows = merged(path, rows, lambda r: (r["method"], r["scale"], r["pair"]))
    write_results(args.out, "warm_start", {"rows": rows}, table(rows, machine()), readme="warm")
    return 0


def table(rows: list[dict], info: str) -> str:
    """The Markdown table: one row per method, scale and pair; PSNR (dB) of tile B fresh and warm-started."""
    fractions = " / ".join(f"{float(f):.0%}" for f in rows[0]["warm"])
    lines = [
        f"Machine: {info}. PSNR (dB) of tile B at each method's defaults; warm: started from tile A's trained networks.",
        "",
        f"| method | scale | pair (tile A → tile B, row/col) | bicubic + BP | fresh (steps, s) | warm, {fractions} of the steps (steps, s) | torch threads | measured |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        warm = " / ".join(f"{w['psnr']:.2f} ({w['steps']}, {w['seconds']:.0f})" for w in r["warm"].values())
        lines.append(
            f"| {r['method']} | ×{r['scale']} | {r['pair']}: {tuple(r['a'])} → {tuple(r['b'])} | {r['bp']:.2f} | "
            f"{r['fresh']:.2f} ({r['steps']}, {r['seconds']:.0f}) | {warm} | {r['threads']} | {r['date']} |"
        )
    return "\n".join(lines) + "\n"

if __name__ == "__main__":
    sys.exit(main())
