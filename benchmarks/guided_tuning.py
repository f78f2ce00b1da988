"""How guided DIP's defaults were chosen: variants on the development crops only (never the benchmark's).

Wald's protocol at 20 m on 96 × 96 windows (20 m grid) at rows/cols (0, 0) of both DSen2 samples:
the 10 m guide and the 20 m target are degraded by 2 with the Sentinel-2 MTF kernels, the target is
sharpened back to 20 m and compared with the real 20 m bands. Prints RMSE (reflectance ×10⁴), SAM
(degrees) and seconds per variant; ``--out`` also writes them as JSON.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from tuning import save_rows, variants  # noqa: E402
from wald import load_crop  # noqa: E402

DEV = [("T33UUB", "s2_l1c_T33UUB_20170527_dsen2.npz", (0, 0)), ("T49JGM", "s2_l1c_T49JGM_20171022_dsen2.npz", (0, 0))]
NAMES10, NAMES20 = ("B4", "B3", "B2", "B8"), ("B5", "B6", "B7", "B8A", "B11", "B12")


def degrade(image: np.ndarray, names, scale: int) -> np.ndarray:
    """Degrade ``(C, H, W)`` Sentinel-2 bands ``names`` by ``scale`` with their MTF kernels (float64 out)."""
    from internal_sr.core.degradation import degrade_array
    from internal_sr.core.sharpen import band_kernels

    return degrade_array(image, band_kernels("sentinel2", names, scale, "band")).astype(np.float64)


def wald_20m(name: str, origin: tuple[int, int], size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(target at 40 m, guide at 20 m, reference at 20 m) for a ``size``² window of the 20 m grid."""
    r, c = origin
    im10, im20 = load_crop(name, (2 * r, 2 * c), 2 * size), load_crop(name, origin, size, "im20")
    return degrade(im20, NAMES20, 2), degrade(im10, NAMES10, 2), im20


def main() -> int:
    from internal_sr.core import metrics
    from internal_sr.core.config import GuidedDIPConfig
    from internal_sr.core.sharpen import sharpen_array

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out")
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("variants", nargs="*", help="keyword overrides, e.g. \"iterations=200, base='injection'\"")
    args = parser.parse_args()
    rows = []
    for label, name, origin in DEV:
        target, guide, reference = wald_20m(name, origin, args.size)
        for variant, overrides in variants(args.variants):
            start = time.perf_counter()
            out, result = sharpen_array(target, guide, GuidedDIPConfig(**overrides), NAMES20, NAMES10)
            row = dict(crop=label, variant=variant, steps=result.steps, seconds=time.perf_counter() - start,
                       rmse=metrics.rmse(out, reference), sam=metrics.sam(out, reference))
            rows.append(row)
            print(f"{label} {row['variant']:60s} RMSE {row['rmse']:7.2f} SAM {row['sam']:.3f} steps {row['steps']} {row['seconds']:.1f} s", flush=True)
    save_rows(args.out, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
