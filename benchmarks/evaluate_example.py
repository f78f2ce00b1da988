"""The README's ``internal-sr evaluate`` example, run for real (``make bench-evaluate``, about 1.5 minutes).

Guided DIP at its defaults, scored by Wald's protocol on the committed T33UUB crops (Contains modified
Copernicus Sentinel data 2017): the 20 m bands B5–B12 are the target and the 10 m bands B4, B3, B2, B8
the guide. The committed crops carry no georeference, so copies on a UTM 33N grid (both starting at
(300000, 5800000), band names set) are written first to ``results/tmp``. The command runs on one CPU
thread; its printed table and wall time go to ``results/evaluate_example.log`` and between the README's
``bench:evaluate`` markers.
"""

from __future__ import annotations

import contextlib
import io
import os
import shlex
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "tests", "data")
RESULTS = os.path.join(HERE, "results")
#: (committed crop, pixel size in metres, band names) of the target and the guide.
RASTERS = {
    "target": ("s2_T33UUB_20m_B5-B12_crop.tif", 20.0, ("B5", "B6", "B7", "B8A", "B11", "B12")),
    "guide": ("s2_T33UUB_10m_B4-B3-B2-B8_crop.tif", 10.0, ("B4", "B3", "B2", "B8")),
}


def georeferenced(name: str, pixel: float, bands: tuple[str, ...], folder: str) -> str:
    """A copy of the committed crop ``name`` on a UTM 33N grid of ``pixel`` metres, with ``bands`` as band names."""
    import rasterio
    from affine import Affine

    path = os.path.join(folder, name)
    with rasterio.open(os.path.join(DATA, name)) as src:
        profile, data = src.profile, src.read()
    profile.update(crs="EPSG:32633", transform=Affine(pixel, 0.0, 300000.0, 0.0, -pixel, 5800000.0))
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
        for index, band in enumerate(bands, start=1):
            dst.set_band_description(index, band)
    return path


def main() -> int:
    import torch

    from internal_sr.core.cli import main as cli

    sys.path.insert(0, HERE)
    from wald import machine, update_readme

    torch.set_num_threads(1)
    folder = os.path.join(RESULTS, "tmp")
    os.makedirs(folder, exist_ok=True)
    paths = {role: georeferenced(*spec, folder) for role, spec in RASTERS.items()}
    argv = ["evaluate", paths["target"], "--scale", "2", "--method", "guided", "--guide", paths["guide"], "--device", "cpu",
            "--json", os.path.join(folder, "evaluate_example.json")]
    printed = io.StringIO()
    start = time.perf_counter()
    with contextlib.redirect_stdout(printed):
        status = cli(argv)
    seconds = time.perf_counter() - start
    if status != 0:
        return status
    shown = " ".join(shlex.quote(os.path.relpath(a, RESULTS) if os.path.isabs(a) else a) for a in argv)
    table = "".join(line for line in printed.getvalue().splitlines(keepends=True) if not line.startswith("wrote "))
    log = (f"Machine: {machine()}; measured {time.strftime('%Y-%m-%d')}.\n"
           f"Command (from benchmarks/results): internal-sr {shown}\nWall time: {seconds:.0f} s\n\n{table}")
    with open(os.path.join(RESULTS, "evaluate_example.log"), "w", encoding="utf-8") as f:
        f.write(log)
    update_readme(
        f"Measured {time.strftime('%Y-%m-%d')}, {seconds:.0f} s on one CPU thread of this machine "
        f"(`make bench-evaluate`, log in `benchmarks/results/evaluate_example.log`):\n\n```\n{table}```\n",
        "evaluate",
    )
    print(log)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
