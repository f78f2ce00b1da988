"""The ``internal-sr`` command line: outputs, progress, one-line errors with status 2, nothing written on error
(the table of bad and odd inputs shared with Processing is in test_robustness)."""

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import rasterio
from affine import Affine

from internal_sr.core.cli import main

from helpers import S2_20M

FAST = ["--iterations", "2"]


def two_raster_tables(folder) -> str:
    """A GeoPackage holding two raster tables: a container of subdatasets, with no band of its own."""
    path = str(folder / "two.gpkg")
    for table, append in (("first", "NO"), ("second", "YES")):
        with rasterio.open(path, "w", driver="GPKG", width=8, height=8, count=1, dtype="uint8", crs="EPSG:32633",
                           transform=Affine(10, 0, 0, 0, -10, 80), RASTER_TABLE=table, APPEND_SUBDATASET=append) as dst:
            dst.write(np.ones((1, 8, 8), np.uint8))
    return path


def test_degrade_then_dip_round_trip(tmp_path, capsys):
    low, high = tmp_path / "low.tif", tmp_path / "high.tif"
    assert main(["degrade", S2_20M, str(low), "--scale", "2", "--kernel", "lanczos3"]) == 0
    assert main(["dip", str(low), str(high), "--scale", "2", "--bands", "1,3", "--seed", "3", "--tile", "32", "--overlap", "4", *FAST]) == 0
    with rasterio.open(S2_20M) as src, rasterio.open(high) as dst:
        assert (dst.width, dst.height, dst.count) == (96, 96, 2)
        assert dst.transform == src.transform and dst.crs == src.crs
        assert dst.descriptions == ("B05", "B07")
    err = capsys.readouterr().err
    assert "100.0%" in err and "device cpu" in err


def test_dip_on_step_windows(tmp_path):
    """``--step-window`` reaches the configuration: the run differs from whole-tile steps, on the same grid."""
    outputs = {}
    for window in ("1", "0.5"):
        outputs[window] = tmp_path / f"w{window}.tif"
        args = ["dip", S2_20M, str(outputs[window]), "--scale", "2", "--bands", "1", "--tile", "64", "--step-window", window]
        assert main([*args, "--iterations", "3"]) == 0
    with rasterio.open(outputs["1"]) as whole, rasterio.open(outputs["0.5"]) as part:
        assert (part.width, part.height, part.transform) == (whole.width, whole.height, whole.transform)
        assert (part.read() != whole.read()).any()


def test_console_script_is_installed_and_reports_errors_on_one_line(tmp_path):
    exe = shutil.which("internal-sr") or os.path.join(os.path.dirname(sys.executable), "internal-sr")
    out = tmp_path / "o.tif"
    proc = subprocess.run([exe, "dip", S2_20M, str(out), "--scale", "2", "--bands", "9"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == ["internal-sr: error: band 9 is out of range: " + S2_20M + " has 6 band(s)"]
    assert not out.exists()


@pytest.mark.parametrize(
    "make_input,args,message",
    [
        (lambda p: S2_20M, ["--scale", "2", "--kernel", "box"], "unknown kernel"),
        (lambda p: S2_20M, ["--scale", "2", "--tile", "32", "--overlap", "16"], "overlap"),
        (lambda p: S2_20M, ["--scale", "2", "--step-window", "1.5"], "step window is a fraction"),
        (lambda p: S2_20M, ["--scale", "inf"], "scale must be an integer ≥ 2, got inf"),
        (lambda p: S2_20M, ["--scale", "1e400"], "scale must be an integer ≥ 2, got 1e400"),
        (two_raster_tables, ["--scale", "2"], r"two.gpkg holds no raster bands itself: open one of its subdatasets \(GPKG:.*two.gpkg:first; "),
    ],
)
def test_bad_input_exits_2_with_one_line(tmp_path, capsys, make_input, args, message):
    src = make_input(tmp_path)
    out = tmp_path / "out" / "sr.tif"
    out.parent.mkdir()
    assert main(["dip", src, str(out), *args, *FAST]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("internal-sr: error: ")
    assert __import__("re").search(message, err[0])
    assert os.listdir(out.parent) == []
