"""Peak memory of a tile-by-tile run against the raster's size (``make bench-memory``).

For each edge N (``--sizes``), a synthetic one-band uint16 N × N GeoTIFF (a smooth field plus
noise, written strip by strip so the parent stays small) is super-resolved ×2 by the file pipeline
(``core.pipeline.super_resolve``) in a fresh process, which reports its peak resident memory
(``resource`` ``ru_maxrss``) and the peak of the arrays Python allocated (``tracemalloc``; numpy
buffers are counted, torch's are not). The run is deliberately cheap, since it is the pipeline's
memory that is measured, not the method: DIP with 1 step per tile, 8 maps per scale, no detail branch,
no cross-scale term, 1 back-projection step, tiles of ``--tile`` input pixels. Memory that stays flat
as N grows is bounded by the tile (and the strip of tiles being blended), not by the raster.

Writes ``memory.json`` and ``memory.md`` under ``--out``; the README quotes the table.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import resource
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from wald import machine, merged, write_results  # noqa: E402

STRIP = 512  # rows written at a time when making the synthetic raster


def make_raster(path: str, size: int) -> None:
    """A ``size × size`` uint16 GeoTIFF (10 m pixels, UTM 33N), written ``STRIP`` rows at a time."""
    import rasterio
    from rasterio.transform import from_origin

    rng = np.random.default_rng(size)
    cols = np.arange(size)
    profile = dict(driver="GTiff", width=size, height=size, count=1, dtype="uint16", crs="EPSG:32633",
                   transform=from_origin(300000, 5000000, 10, 10), tiled=True, blockxsize=256, blockysize=256)
    with rasterio.open(path, "w", **profile) as dst:
        for top in range(0, size, STRIP):
            rows = np.arange(top, min(top + STRIP, size))[:, None]
            field = 2000 + 800 * np.sin(rows / 37.0) * np.cos(cols / 53.0) + rng.normal(0, 60, (len(rows), size))
            dst.write(field.clip(0, 65535).astype("uint16")[None], window=((top, top + len(rows)), (0, size)))


def _child(source: str, target: str, tile: int, queue) -> None:
    import tracemalloc

    import torch

    from internal_sr.core.config import DIPConfig, TileOptions
    from internal_sr.core.pipeline import super_resolve

    torch.set_num_threads(1)
    config = DIPConfig(
        scale=2, iterations=1, channels=8, noise_channels=8, detail_layers=0, cross_scale_weight=0.0,
        back_projection_steps=1, device="cpu", tiles=TileOptions(tile, 16),
    )
    tracemalloc.start()
    start = time.perf_counter()
    super_resolve(source, target, config)
    seconds = time.perf_counter() - start
    traced = tracemalloc.get_traced_memory()[1] / 2**20
    queue.put((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, traced, seconds))


def measure(size: int, tile: int, folder: str) -> dict:
    """Peak memory of one run on a fresh ``size``² raster, in its own process."""
    from internal_sr.core.config import TileOptions
    from internal_sr.core.tiling import tile_count

    source, target = os.path.join(folder, f"in_{size}.tif"), os.path.join(folder, f"out_{size}.tif")
    make_raster(source, size)
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(source, target, tile, queue))
    proc.start()
    rss, traced, seconds = queue.get()
    proc.join()
    tiles = tile_count(size, size, TileOptions(tile, 16))
    for path in (source, target):
        os.remove(path)
    return dict(size=size, tiles=tiles, peak_rss_mb=rss, peak_traced_mb=traced, seconds=seconds)


def markdown(rows: list[dict], info: str, tile: int, gdal_cache: int | None) -> str:
    cache = "GDAL's default block cache (5 % of RAM)" if gdal_cache is None else f"GDAL's block cache capped at {gdal_cache} MB"
    lines = [
        f"Machine: {info}. One band, ×2, tiles of {tile} input pixels with 16 px overlap, a deliberately cheap DIP "
        f"(1 step per tile) so that the pipeline's memory is what is measured; {cache}.",
        "",
        "| input (pixels) | output (pixels) | tiles | peak RSS (MB) | peak numpy/Python (MB, tracemalloc) | seconds |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        n = r["size"]
        lines.append(f"| {n} × {n} | {2 * n} × {2 * n} | {r['tiles']} | {r['peak_rss_mb']:.0f} | {r['peak_traced_mb']:.1f} | {r['seconds']:.0f} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join(HERE, "results"))
    parser.add_argument("--sizes", default="512,1024,2048,4096", help="raster edges; add 10980 for a full Sentinel-2 band")
    parser.add_argument("--tile", type=int, default=256, help="tile edge in input pixels")
    parser.add_argument("--gdal-cache", type=int, help="cap GDAL's block cache at this many MB (GDAL_CACHEMAX; default: GDAL's, 5 %% of RAM); "
                        "results go to memory_gdalMB.json/.md")
    parser.add_argument("--merge", action="store_true", help="keep the other sizes' rows of the existing results (same tile and GDAL cache)")
    args = parser.parse_args()
    name = "memory" if args.gdal_cache is None else f"memory_gdal{args.gdal_cache}"
    if args.gdal_cache is not None:
        os.environ["GDAL_CACHEMAX"] = str(args.gdal_cache)  # read by GDAL in each fresh child process
    os.makedirs(args.out, exist_ok=True)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for size in (int(s) for s in args.sizes.split(",")):
            rows.append(measure(size, args.tile, folder))
            print(rows[-1], flush=True)
    if args.merge:
        path = os.path.join(args.out, f"{name}.json")
        with open(path) as f:
            earlier = json.load(f)
        if (earlier["tile"], earlier.get("gdal_cache_mb")) != (args.tile, args.gdal_cache):
            raise SystemExit(f"{path} was measured with another tile size or GDAL cache: rerun every size")
        rows = merged(path, rows, lambda r: (r["size"],))
    table = markdown(rows, machine(), args.tile, args.gdal_cache)
    write_results(args.out, name, {"tile": args.tile, "gdal_cache_mb": args.gdal_cache, "rows": rows}, table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
