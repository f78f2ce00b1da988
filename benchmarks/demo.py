"""``make demo``: super-resolve a real Sentinel-2 crop shipped with the project and draw a comparison.

Wald's protocol on ``tests/data/s2_T33UUB_10m_B4-B3-B2-B8_crop.tif`` (Contains modified Copernicus
Sentinel data 2017): the 10 m crop is degraded to 20 m with ``internal-sr degrade``, brought back
to 10 m with ``internal-sr dip``, and shown as low-resolution | bicubic | DIP | reference (true colour
B4, B3, B2) in a PNG beside the GeoTIFF.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
CROP = os.path.join(HERE, "..", "tests", "data", "s2_T33UUB_10m_B4-B3-B2-B8_crop.tif")


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


def main() -> int:
    from internal_sr.core import metrics
    from internal_sr.core.cli import main as cli
    from internal_sr.core.evaluation import bicubic
    from internal_sr.core.figures import write_png
    from internal_sr.core.raster import open_raster

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="out/demo")
    parser.add_argument("--scale", type=int, default=2)
    parser.add_argument("--iterations", type=int, help="DIP steps (default: DIP's own default for the scale)")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    low_path = os.path.join(args.out, "s2_20m_wald.tif")
    sr_path = os.path.join(args.out, "s2_10m_dip.tif")
    extra = ["--iterations", str(args.iterations)] if args.iterations else []
    for argv in (["degrade", CROP, low_path, "--scale", str(args.scale)], ["dip", low_path, sr_path, "--scale", str(args.scale), *extra]):
        if cli(argv) != 0:
            return 1
    # the committed crop, so its degraded and sharpened copies, has no georeferencing (open_raster says nothing of it)
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
    print(f"wrote {sr_path} and {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
