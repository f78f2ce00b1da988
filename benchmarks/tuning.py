"""How DIP's and Neural Knitworks' defaults are chosen: variants on the development crops only (never the benchmark's).

Wald's protocol on 128 × 128 windows of the 10 m bands of the DSen2 samples (``DEV``: T33UUB at
rows/cols (0, 0) and (200, 200), the crops DIP's defaults were chosen on, and an arid-coast window of
T49JGM; all disjoint from ``wald.py``'s) degraded with
the bicubic kernel and super-resolved back. Each variant (keyword overrides of ``--method``'s
configuration, ``DIPConfig`` or ``KnitworkConfig``)
prints the PSNR of the output a stop would return every ``--every`` steps, and of its blend with
bicubic + back-projection ``B + blend·(output − B)`` (a curve to read, never a pick: the last figure is
the variant's result), with bicubic + back-projection beside it and, with
``--dip``, DIP at its defaults on the same pixels (the target); ``--out`` also writes the rows as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from wald import load_crop  # noqa: E402

#: (label, DSen2 sample, (row, col) of a 128 × 128 window of its 10 m bands); the arid-coast window
#: (added 2026-11-26) lies outside ``wald.py``'s T49JGM crop, so variants also meet a second scene.
DEV = [
    ("T33UUB (0, 0)", "s2_l1c_T33UUB_20170527_dsen2.npz", (0, 0)),
    ("T33UUB (200, 200)", "s2_l1c_T33UUB_20170527_dsen2.npz", (200, 200)),
    ("T49JGM (440, 0)", "s2_l1c_T49JGM_20171022_dsen2.npz", (440, 0)),
]


def variants(texts: list[str]) -> list[tuple[str, dict]]:
    """The variants named on the command line as ``(label, keyword overrides of the configuration)``: the text
    ``"iterations=300, width=128"`` gives ``{"iterations": 300, "width": 128}``; none named: ``[("defaults", {})]``."""
    return [(text or "defaults", eval(f"dict({text})")) for text in texts or [""]]


def save_rows(path: str | None, rows: list[dict]) -> None:
    """Write ``rows`` as JSON at ``path`` (``--out``), when one is given."""
    if path:
        with open(path, "w") as f:
            json.dump(rows, f, indent=1)


def main() -> int:
    import torch

    from internal_sr.core import metrics
    from internal_sr.core.config import DIPConfig, KnitworkConfig
    from internal_sr.core.device import seed_everything
    from internal_sr.core.evaluation import bicubic_back_projected, wald_pair
    from internal_sr.core.kernels import make_kernel
    from internal_sr.core import dip, knitwork
    from internal_sr.core.normalise import BandScaling
    from internal_sr.core.pipeline import super_resolve_array
    from internal_sr.core.progress import NullProgress

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", choices=("dip", "knitwork"), default="knitwork")
    parser.add_argument("--out")
    parser.add_argument("--scales", default="2,4")
    parser.add_argument("--crops", default="0,1", help="indices into the development crops")
    parser.add_argument("--every", type=int, default=100, help="print the curve every this many steps")
    parser.add_argument("--blend", type=float, default=0.5, help="the curve also scores B + blend·(output − B), B = BP")
    parser.add_argument("--dip", action="store_true", help="also run DIP at its defaults on each crop and scale")
    parser.add_argument("variants", nargs="*", help="keyword overrides, e.g. \"iterations=300, width=128\"")
    args = parser.parse_args()
    module, Config = (dip, DIPConfig) if args.method == "dip" else (knitwork, KnitworkConfig)
    rows = []
    for index in (int(i) for i in args.crops.split(",")):
        label, name, origin = DEV[index]
        for scale in (int(s) for s in args.scales.split(",")):
            kernel = make_kernel("bicubic", scale)
            reference, low = wald_pair(load_crop(name, origin), kernel)
            base = bicubic_back_projected(low, kernel)
            bp = metrics.psnr(base, reference)
            valid = np.ones(low.shape, bool)
            scaling = BandScaling.fit(low.astype(np.float32), valid)
            if args.dip:
                start = time.perf_counter()
                out, _ = super_resolve_array(low, DIPConfig(scale=scale, device="cpu"))
                dip = metrics.psnr(out, reference)
                rows.append(dict(crop=label, scale=scale, variant="DIP defaults", psnr=dip, bp=bp, seconds=time.perf_counter() - start))
                print(f"{label} ×{scale} {'DIP defaults':40s} PSNR {dip:.2f} (BP {bp:.2f}) {rows[-1]['seconds']:.0f} s", flush=True)
            for variant, overrides in variants(args.variants):
                config = Config(scale=scale, device="cpu", **overrides)
                curve: list[tuple[int, float, float]] = []

                def observe(done: int, image: np.ndarray) -> None:
                    if done % args.every == 0:
                        out = scaling.denormalise(image)
                        curve.append((done, metrics.psnr(out, reference), metrics.psnr(base + args.blend * (out - base), reference)))

                start = time.perf_counter()
                tile = module.super_resolve_tile(scaling.normalise(low), valid, kernel, config, torch.device("cpu"),
                                                 NullProgress(), seed_everything(config.seed), observe)
                seconds = time.perf_counter() - start
                final = metrics.psnr(scaling.denormalise(tile.image), reference)
                rows.append(dict(crop=label, scale=scale, variant=variant, psnr=final, bp=bp,
                                 steps=tile.steps, seconds=seconds, curve=curve))
                trace = " ".join(f"{d}:{p:.2f}/{b:.2f}" for d, p, b in curve)
                print(f"{label} ×{scale} {variant:40s} PSNR {final:.2f} (BP {bp:.2f}) steps {tile.steps} "
                      f"{seconds:.0f} s | {trace}", flush=True)
    save_rows(args.out, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
