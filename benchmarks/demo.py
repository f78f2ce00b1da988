"""``make demo``: super-resolve a real Sentinel-2 crop shipped with the project and draw a comparison.

Wald's protocol on ``tests/data/s2_T33UUB_10m_B4-B3-B2-B8_crop.tif`` (Contains modified Copernicus
Sentinel data 2017): the 10 m crop is degraded to 20 m, brought back to 10 m with Deep Image Prior (the
engine's calls behind ``internal-sr degrade`` and ``internal-sr dip``), and shown as low-resolution | bicubic |
DIP | reference (true colour B4, B3, B2) in a PNG beside the GeoTIFF.

The crop has no georeferencing: it is cut from the DSen2 sample of tile T33UUB, which gives pixels without a map
position (``tests/data/README.md``). The demo says so once, up front, instead of the engine's warning about each
raster it reads.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from internal_sr.core.progress import Progress

HERE = os.path.dirname(os.path.abspath(__file__))
CROP = os.path.join(HERE, "..", "tests", "data", "s2_T33UUB_10m_B4-B3-B2-B8_crop.tif")
#: What the demo says first: its sample, so its outputs, have no map position.
NO_GEOREFERENCING = ("The sample is a 128 × 128 pixel crop of Sentinel-2 tile T33UUB without georeferencing (the DSen2 "
                     "sample it is cut from gives no map position): the demo's rasters have none either.")
#: How the engine's warning that the CPUs are busy names the demo's thread setting (``core.device.cpu_threads``).
THREADS_SETTING = "make demo's THREADS (demo.py's --threads)"


class WithoutNotes:
    """A run's progress passed on to ``progress``, but for the log lines in ``known`` (what the demo said itself)."""

    def __init__(self, progress: Progress, known: set[str | None]) -> None:
        self.progress = progress
        self.known = known

    def report(self, fraction: float, message: str = "") -> None:
        self.progress.report(fraction, message)

    def info(self, message: str) -> None:
        if message not in self.known:
            self.progress.info(message)

    def cancelled(self) -> bool:
        return self.progress.cancelled()


def comparison(panels: list[tuple[str, np.ndarray]], limits: tuple[np.ndarray, np.ndarray], title: str) -> np.ndarray:
    """``(C, H, W)`` images side by side as true colour (bands 1-3 stretched by ``limits``), each captioned
    above, under one ``title``; ``(H', W', 3)`` uint8, images shown at twice their size."""
    from PIL import Image, ImageDraw

    from internal_sr.core.figures import enlarge, to_rgb

    tiles = [enlarge(to_rgb(image, (0, 1, 2), limits), 2) for _, image in panels]
    height, width = tiles[0].shape[:2]
    gap, title_row, caption_row = 8, 22, 18
    canvas = Image.new("RGB", (len(tiles) * (width + gap) + gap, title_row + caption_row + height + gap), "white")
    draw = ImageDraw.Draw(canvas)
    draw.text((gap, 6), title, fill="black")
    for n, ((caption, _), tile) in enumerate(zip(panels, tiles)):
        x = gap + n * (width + gap)
        draw.text((x, title_row + 2), caption, fill="black")
        canvas.paste(Image.fromarray(tile, "RGB"), (x, title_row + caption_row))
    return np.asarray(canvas)


def run(out: str, scale: int, iterations: int | None, threads: int | None) -> tuple[str, str]:
    """Degrade the crop into ``out`` and super-resolve it back with ``iterations`` DIP steps (``None``: DIP's
    default) on ``threads`` CPU threads (``None``: PyTorch's own choice); returns the two rasters' paths."""
    from internal_sr.core.cli import TerminalProgress
    from internal_sr.core.config import DIPConfig, IOOptions, check_at_least
    from internal_sr.core.device import cpu_threads
    from internal_sr.core.pipeline import degrade, super_resolve
    from internal_sr.core.raster import georeferencing_note, open_info

    low_path, sr_path = os.path.join(out, "s2_20m_wald.tif"), os.path.join(out, "s2_10m_dip.tif")
    if threads is not None:
        check_at_least("--threads", threads, 1, "PyTorch's own choice")
    print(NO_GEOREFERENCING, flush=True)
    terminal = TerminalProgress()

    def quiet(path: str) -> WithoutNotes:
        """The terminal's progress without the engine's warning that the raster at ``path`` has no georeferencing."""
        return WithoutNotes(terminal, {georeferencing_note(open_info(path))})

    with cpu_threads(threads, THREADS_SETTING):
        low = degrade(CROP, low_path, scale, "bicubic", IOOptions(), quiet(CROP))
        terminal.close()
        print(f"wrote {low.output_path} ({low.device}, {low.seconds:.1f} s)", flush=True)
        sr = super_resolve(low_path, sr_path, DIPConfig(scale=scale, iterations=iterations), IOOptions(), quiet(low_path))
        terminal.close()
        print(f"wrote {sr.output_path} ({sr.device}, {sr.seconds:.1f} s)", flush=True)
    return low_path, sr_path


def main() -> int:
    from internal_sr.core import metrics
    from internal_sr.core.errors import Cancelled, InputError
    from internal_sr.core.evaluation import bicubic
    from internal_sr.core.figures import write_png
    from internal_sr.core.raster import open_raster

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="out/demo")
    parser.add_argument("--scale", type=int, default=2)
    parser.add_argument("--iterations", type=int, help="DIP steps (default: DIP's own default for the scale)")
    parser.add_argument("--threads", type=int, help="PyTorch's CPU threads (default: its own choice, OMP_NUM_THREADS, "
                        "else the cores; on a busy machine 1: README, Run times)")
    args = parser.parse_args()
    try:
        os.makedirs(args.out, exist_ok=True)
        low_path, sr_path = run(args.out, args.scale, args.iterations, args.threads)
    except (InputError, OSError) as error:
        print(f"demo: error: {error}", file=sys.stderr)
        return 2
    except (Cancelled, KeyboardInterrupt):
        print("demo: cancelled", file=sys.stderr)
        return 130
    with open_raster(CROP) as a, open_raster(low_path) as b, open_raster(sr_path) as c:
        reference, low, sr = a.read().astype(float), b.read().astype(float), c.read().astype(float)
    interpolated = bicubic(low, args.scale)
    limits = tuple(np.percentile(reference[:3], (1, 99), axis=(1, 2)))
    panels = [
        ("low resolution (nearest)", low.repeat(args.scale, 1).repeat(args.scale, 2)),
        (f"bicubic  {metrics.psnr(interpolated, reference):.2f} dB", interpolated),
        (f"DIP  {metrics.psnr(sr, reference):.2f} dB", sr),
        ("reference 10 m", reference),
    ]
    title = f"Sentinel-2 B4/B3/B2, Wald's protocol x{args.scale} (contains modified Copernicus Sentinel data 2017)"
    png = os.path.join(args.out, "comparison.png")
    write_png(png, comparison(panels, limits, title))
    print(f"wrote {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
