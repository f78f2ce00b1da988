"""Wald-protocol benchmark of guided DIP on real Sentinel-2 data (``make bench-guided``).

20 m bands: on 96 × 96 windows of the 20 m grid (disjoint from the development windows of
``guided_tuning.py``), the 10 m guide and the 20 m bands are degraded by 2 with the Sentinel-2 MTF
kernels (``core.sentinel2``); the 40 m bands are sharpened back to 20 m with the 20 m guide and
compared with the real 20 m bands.

60 m bands: on the whole 600 × 600 10 m scenes, every band is degraded by 6; the 360 m B1/B9 are
sharpened to 60 m either directly (×6, guide: the 10 m bands at 60 m) or in two steps (×3 with the
20 m bands at 120 m as guide, then ×2 with the 10 m bands at 60 m), and compared with the real 60 m
bands. The 60 m defaults were not tuned (the whole scenes include the 20 m development windows).

Landsat 8 (``--landsat``): on the sample's cloud-free rows 472–599 and columns 0–511 of the 30 m
grid, the 15 m pan is degraded onto the 30 m grid with the grids' half-pixel phase and B2–B7 by 2 with
the ``landsat`` kernel, both on their native grids; the 60 m bands are sharpened back to 30 m with the
30 m pan and compared with the real B2–B7 (DN).

Methods side by side on the same pixels: bicubic, bicubic + back-projection, high-pass injection of a
regressed pseudo-pan (``core.guided.inject_detail``, an MTF-GLP-style classic) without and with the
same back-projection, and guided DIP at its defaults. Metrics (``core.metrics``): RMSE in reflectance ×10⁴, SRE (dB), SAM (°), ERGAS, SSIM,
per band and overall; never a best-over-iterations. Writes ``guided.json`` and ``guided.md`` and
refreshes the README table between the ``bench:guided`` markers.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from guided_tuning import NAMES10, NAMES20, degrade, wald_20m  # noqa: E402
from wald import SHARED, machine, write_results  # noqa: E402

SCENES = [("T33UUB fields/forest", "s2_l1c_T33UUB_20170527_dsen2.npz", (200, 200)),
          ("T49JGM arid coast", "s2_l1c_T49JGM_20171022_dsen2.npz", (100, 100))]
NAMES60 = ("B1", "B9")
SIZE = 96


LANDSAT = "landsat8_LC80200392015216LGN00_sattestdata"
LANDSAT_BANDS = ("B2", "B3", "B4", "B5", "B6", "B7")


def landsat_wald() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(60 m target B2–B7, 30 m pan guide, 30 m reference) from the Landsat 8 sample (module docstring)."""
    import rasterio

    from internal_sr.core.degradation import degrade_array
    from internal_sr.core.kernels import make_kernel

    rows, cols = slice(472, 600), slice(0, 512)
    folder = os.path.join(SHARED, LANDSAT)
    with rasterio.open(os.path.join(folder, "L8_2015216_ms30m_B1-B2-B3-B4-B5-B6-B7-B9.tif")) as ds:
        reference = ds.read([ds.descriptions.index(b) + 1 for b in LANDSAT_BANDS]).astype(np.float64)[:, rows, cols]
    with rasterio.open(os.path.join(folder, "L8_2015216_pan15m_B8.tif")) as ds:
        pan = ds.read().astype(np.float64)[:, 2 * rows.start:2 * rows.stop, 2 * cols.start:2 * cols.stop]
    guide = degrade_array(pan, make_kernel("landsat", 2, (0.5, 0.5))).astype(np.float64)
    return degrade_array(reference, make_kernel("landsat", 2)).astype(np.float64), guide, reference


def methods(
    target: np.ndarray, guide: np.ndarray, t_names, g_names, iterations: int | None, kernel: str = "sentinel2"
) -> dict[str, tuple[np.ndarray, float]]:
    """Each method's output and seconds for one sharpening problem (``kernel``: target and guide blur)."""
    from internal_sr.core.config import GuidedDIPConfig
    from internal_sr.core.evaluation import BASELINE_BP_STEPS, bicubic, bicubic_back_projected, hpf_injection
    from internal_sr.core.sharpen import band_kernels, sharpen_array

    s = guide.shape[-1] // target.shape[-1]
    t_kernels = band_kernels(kernel, t_names, s, "target")
    g_kernels = band_kernels(kernel, g_names, s, "guide")
    config = GuidedDIPConfig(iterations=iterations, kernel=kernel, guide_kernel=kernel)
    runs = {
        "bicubic": lambda: bicubic(target, s),
        "bicubic + BP": lambda: bicubic_back_projected(target, t_kernels),
        "HPF injection": lambda: hpf_injection(target, guide, t_kernels, g_kernels),
        "HPF injection + BP": lambda: hpf_injection(target, guide, t_kernels, g_kernels, BASELINE_BP_STEPS),
        "guided DIP": lambda: sharpen_array(target, guide, config, t_names, g_names)[0],
    }
    out = {}
    for name, run in runs.items():
        start = time.perf_counter()
        result = run()
        out[name] = (result, time.perf_counter() - start)
    return out


def score(rows: list[dict], scene: str, bands: str, names, outputs: dict, reference: np.ndarray, scale: int) -> None:
    from internal_sr.core import metrics

    for method, (out, seconds) in outputs.items():
        row = dict(scene=scene, bands=bands, method=method, seconds=seconds, **metrics.all_metrics(out, reference, scale),
                   per_band={n: dict(rmse=float(r), sre=float(e), ssim=float(q)) for n, r, e, q in zip(
                       names, metrics.rmse_per_band(out, reference), metrics.sre_per_band(out, reference),
                       metrics.ssim_per_band(out, reference))})
        rows.append(row)
        print(f"{scene} {bands} {method}: RMSE {row['rmse']:.1f}, SAM {row['sam']:.3f}, SRE {row['sre']:.2f}, {seconds:.1f} s", flush=True)


def markdown(rows: list[dict], info: str) -> str:
    lines = [f"Machine: {info}.", "",
             "| scene | bands | method | RMSE | SRE (dB) | SAM (°) | ERGAS | SSIM | RMSE / bicubic | seconds |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        base = next(b["rmse"] for b in rows if b["scene"] == r["scene"] and b["bands"] == r["bands"] and b["method"] == "bicubic")
        lines.append(f"| {r['scene']} | {r['bands']} | {r['method']} | {r['rmse']:.1f} | {r['sre']:.2f} | {r['sam']:.3f} | "
                     f"{r['ergas']:.3f} | {r['ssim']:.4f} | {r['rmse'] / base:.2f} | {r['seconds']:.1f} |")
    lines += ["", "Per band RMSE (guided DIP / bicubic):", ""]
    for r in rows:
        if r["method"] == "guided DIP":
            base = next(b for b in rows if b["scene"] == r["scene"] and b["bands"] == r["bands"] and b["method"] == "bicubic")
            cells = ", ".join(f"{n} {v['rmse']:.1f} / {base['per_band'][n]['rmse']:.1f}" for n, v in r["per_band"].items())
            lines.append(f"- {r['scene']}, {r['bands']}: {cells}")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join(HERE, "results"))
    parser.add_argument("--iterations", type=int, help="guided DIP steps (default: its own default)")
    parser.add_argument("--skip-60m", action="store_true")
    parser.add_argument("--landsat", action="store_true", help="only the Landsat 8 problem")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    rows: list[dict] = []
    if args.landsat:
        target, guide, reference = landsat_wald()
        outputs = methods(target, guide, LANDSAT_BANDS, ("B8",), args.iterations, "landsat")
        score(rows, "L8 Mississippi", "30 m", LANDSAT_BANDS, outputs, reference, 2)
        write_results(args.out, "guided_landsat", {"rows": rows}, markdown(rows, machine()))
        return 0
    for scene, name, (r, c) in SCENES:
        data = np.load(os.path.join(SHARED, name))
        im10, im20, im60 = (data[k].astype(np.float64) for k in ("im10", "im20", "im60"))
        target, guide, ref20 = wald_20m(name, (r, c), SIZE)
        score(rows, scene, "20 m", NAMES20, methods(target, guide, NAMES20, NAMES10, args.iterations), ref20, 2)
        if args.skip_60m:
            continue
        n = (im60.shape[-1] // 6) * 6  # whole 6 × 6 blocks of the 60 m grid
        ref60 = im60[:, :n, :n]
        t360, g60 = degrade(ref60, NAMES60, 6), degrade(im10[:, : 6 * n, : 6 * n], NAMES10, 6)
        outputs = methods(t360, g60, NAMES60, NAMES10, args.iterations)
        # two steps: ×3 with the 20 m bands at 120 m, then ×2 with the 10 m bands at 60 m
        from internal_sr.core.config import GuidedDIPConfig
        from internal_sr.core.sharpen import sharpen_array

        start = time.perf_counter()
        g120 = degrade(im20[:, : 3 * n, : 3 * n], NAMES20, 6)
        config = GuidedDIPConfig(iterations=args.iterations)
        mid = sharpen_array(t360, g120, config, NAMES60, NAMES20)[0]
        two = sharpen_array(mid, g60, config, NAMES60, NAMES10)[0]
        outputs["guided DIP, two steps (×3 then ×2)"] = (two, time.perf_counter() - start)
        score(rows, scene, "60 m", NAMES60, outputs, ref60, 6)
    table = markdown(rows, machine())
    full = args.iterations is None and not args.skip_60m  # only a full default run replaces the README's table
    write_results(args.out, "guided", {"rows": rows}, table, "guided" if full else None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
