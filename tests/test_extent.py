"""An extent, end to end: the engine reads the window of whole pixels covering it and writes that window's
grid refined by the scale, through the core, the command line and ``processing.run``.

The committed 20 m crop (96 × 96, EPSG:32618, origin (443720, 4171420)) is the input; extents are given
with fractional pixel insets so that snapping outward to whole pixels is exercised.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import warnings

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.control import GroundControlPoint
from rasterio.crs import CRS
from rasterio.errors import NotGeoreferencedWarning

from bad_inputs import GCPS, assert_rpcs_moved, rpc_model
from helpers import S2_10M, S2_20M, S2_20M_SAME_AREA, read, write_raster
from internal_sr.core import pipeline
from internal_sr.core.cli import main as cli
from internal_sr.core.config import DIPConfig, GuidedDIPConfig, IOOptions
from internal_sr.core.errors import InputError
from internal_sr.core.grid import Grid, Window
from internal_sr.core.guided import MIN_TARGET_SIZE
from internal_sr.core.pipeline import degrade, super_resolve
from internal_sr.core.sharpen import sharpen
from qgis_helpers import recording_feedback

X0, Y0, PIXEL = 443720.0, 4171420.0, 20.0
#: the window the extents below snap to: columns 10–41, rows 20–51 (32 × 32 input pixels)
WINDOW = Window(10, 20, 32, 32)
#: xmin, ymin, xmax, ymax inside WINDOW's outer pixels by 0.3, 0.1, 0.4 and 0.25 of a pixel
EXTENT = (X0 + 10.3 * PIXEL, Y0 - 51.9 * PIXEL, X0 + 41.6 * PIXEL, Y0 - 20.25 * PIXEL)
TINY_DIP = DIPConfig(iterations=2, device="cpu", seed=3, channels=16, detail_channels=8, back_projection_steps=2)


def expected_transform(scale: int) -> Affine:
    """The window's origin, with the pixel size divided by ``scale``."""
    return Affine(PIXEL / scale, 0.0, X0 + WINDOW.col_off * PIXEL, 0.0, -PIXEL / scale, Y0 - WINDOW.row_off * PIXEL)


def test_extent_window_snaps_outward_and_clips_to_the_grid() -> None:
    grid = Grid(96, 96, Affine(PIXEL, 0, X0, 0, -PIXEL, Y0))
    on_edges = (X0 + 10 * PIXEL, Y0 - 52 * PIXEL, X0 + 42 * PIXEL, Y0 - 20 * PIXEL)
    assert grid.extent_window(on_edges) == WINDOW  # edges exactly on pixel edges: no extra pixel
    assert grid.extent_window(EXTENT) == WINDOW  # fractional insets: enlarged to the same whole pixels
    half_outside = (X0 - 500.0, Y0 - 3.5 * PIXEL, X0 + 5.2 * PIXEL, Y0 + 700.0)
    assert grid.extent_window(half_outside) == Window(0, 0, 6, 4)
    assert grid.extent_window((X0 - 500.0, Y0 - 100.0, X0 - 1.0, Y0)) is None  # left of the raster
    assert grid.extent_window((X0 + 96 * PIXEL, Y0 - 100.0, X0 + 99 * PIXEL, Y0)) is None  # touches the right edge only


def ring(xmin: float, ymin: float, xmax: float, ymax: float, n: int = 8) -> tuple[list[float], list[float]]:
    """A box's boundary, ``n`` points per edge in order round it, its longitudes brought into [−180°, 180°) as
    a transformation into a geographic CRS gives them."""
    t = [i / n for i in range(n)]
    points = ([(xmin + (xmax - xmin) * f, ymin) for f in t] + [(xmax, ymin + (ymax - ymin) * f) for f in t]
              + [(xmax - (xmax - xmin) * f, ymax) for f in t] + [(xmin, ymax - (ymax - ymin) * f) for f in t])
    return [(x + 180.0) % 360.0 - 180.0 for x, _ in points], [y for _, y in points]


@pytest.mark.parametrize(
    "raster, placed",
    [
        ((179.99, -16.52, 180.01, -16.5), (179.9905, 180.0095)),  # the raster runs past 180°: the area east of it too
        ((-180.01, -16.52, -179.99, -16.5), (-180.0095, -179.9905)),  # past −180°
        ((0.0, -90.0, 360.0, 90.0), (179.9905, 180.0095)),  # longitudes 0–360°
        ((100.0, -20.0, 180.0, 0.0), (179.9905, 180.0095)),  # ends at 180°: the engine clips to it, as to any edge
        ((10.0, 40.0, 11.0, 41.0), (179.9905, 180.0095)),  # nowhere near: left for the engine's "does not overlap"
    ],
)
def test_an_area_across_the_antimeridian_is_placed_where_the_raster_has_it(raster, placed) -> None:
    from internal_sr.core.extent import ROUND_ANGLE, boundary_extent

    xs, ys = ring(179.9905, -16.5195, 180.0095, -16.5005)
    assert max(xs) - min(xs) > 359  # as a box, the transformed boundary spans every longitude: what QGIS made of it
    box = boundary_extent(xs, ys, raster, "fiji.tif", ROUND_ANGLE)
    assert box == pytest.approx((placed[0], -16.5195, placed[1], -16.5005), abs=1e-9)


def test_an_area_at_both_ends_of_the_raster_or_across_a_projected_crs_edge_is_refused_in_one_line() -> None:
    from internal_sr.core.extent import ROUND_ANGLE, boundary_extent

    xs, ys = ring(179.9905, -16.5195, 180.0095, -16.5005)
    with pytest.raises(InputError, match=r"^extent x -180.0095–-179.9905, .* crosses the antimeridian \(±180°\) where "
                                         r"world.tif \(which covers x -180–180, y -90–90 in its CRS\) has its two edges.*"
                                         r"run once for each side of 180°") as error:
        boundary_extent(xs, ys, (-180.0, -90.0, 180.0, 90.0), "world.tif", ROUND_ANGLE)
    assert "\n" not in str(error.value)
    metres = [x * 111319.49 for x in xs]  # the same boundary in a projected CRS whose x jumps at 180°, as EPSG:3857's
    with pytest.raises(InputError, match=r"crosses the edge of m.tif's CRS .* jump from 2003.* to -2003.*give the extent in"):
        boundary_extent(metres, ys, (0.0, 0.0, 2.1e7, 1.0), "m.tif")
    # an area that does not cross: QGIS's box stands
    assert boundary_extent(*ring(170.0, 10.0, 175.0, 12.0), (-180.0, -90.0, 180.0, 90.0), "w", ROUND_ANGLE) is None
    # nor does one that encloses a pole, which runs once round every longitude: no box of longitudes is better
    lon = [i * 10.0 - 180.0 for i in range(36)]
    assert boundary_extent(lon, [80.0] * 36, (-180.0, -90.0, 180.0, 90.0), "w", ROUND_ANGLE) is None


@pytest.mark.parametrize(
    "box, raster, refused",
    [
        ((-179.9997, -16.52, 179.9997, -16.5), (179.99, -16.52, 180.01, -16.5), True),  # the tester's: half dropped
        ((-179.9997, -16.52, 180.0, -16.5), (179.99, -16.52, 180.01, -16.5), True),  # a sample on 180° exactly
        ((-179.9997, -16.52, 179.9997, -16.5), (-180.0, -90.0, 180.0, 90.0), True),  # almost all of a global raster
        ((-179.9997, -16.52, 179.9997, -16.5), (10.0, -17.0, 11.0, -16.0), False),  # inside: nothing dropped
        ((-180.0, -90.0, 180.0, 90.0), (179.99, -16.52, 180.01, -16.5), False),  # a world box reaches ±180°
        ((-170.0, -16.52, 170.0, -16.5), (-180.0, -90.0, 180.0, 90.0), False),  # stops 10° short: meant
        ((179.98, -16.52, 179.995, -16.5), (179.99, -16.52, 180.01, -16.5), False),  # an ordinary box
    ],
)
def test_a_box_transformed_across_the_antimeridian_out_of_sight_is_refused(box, raster, refused) -> None:
    from internal_sr.core.extent import check_not_wrapped

    if not refused:
        check_not_wrapped(box, raster, "fiji")
        return
    with pytest.raises(InputError, match=r"spans nearly every longitude but stops short of ±180°.*give the extent in the "
                                         r"raster's CRS, with longitudes past 180° as the raster has them"):
        check_not_wrapped(box, raster, "fiji")


def test_dip_on_an_extent_is_dip_on_that_window_with_exact_georeferencing(tmp_path) -> None:
    out = str(tmp_path / "extent.tif")
    result = super_resolve(S2_20M, out, TINY_DIP, IOOptions(bands=(1, 4), extent=EXTENT))
    with rasterio.open(out) as dst:
        assert dst.transform == expected_transform(2)
        assert (dst.width, dst.height) == (2 * WINDOW.width, 2 * WINDOW.height)
        assert dst.crs.to_epsg() == 32618 and dst.descriptions == ("B05", "B8A")
        on_extent = dst.read()
    assert any("columns 10–41, rows 20–51" in m for m in result.messages)

    # the same run on a file holding only that window gives the same pixels: nothing outside was used
    with rasterio.open(S2_20M) as src:
        profile = src.profile | {"width": 32, "height": 32, "transform": src.window_transform(rasterio.windows.Window(10, 20, 32, 32))}
        window = src.read(window=rasterio.windows.Window(10, 20, 32, 32))
    cut = write_raster(str(tmp_path / "cut.tif"), window, crs=profile["crs"].to_string(), transform=profile["transform"])
    super_resolve(cut, str(tmp_path / "cut_x2.tif"), TINY_DIP, IOOptions(bands=(1, 4)))
    assert np.array_equal(on_extent, read(str(tmp_path / "cut_x2.tif")))


def test_extent_outside_the_raster_is_a_one_line_error_and_writes_nothing(tmp_path) -> None:
    out = str(tmp_path / "never.tif")
    with pytest.raises(InputError, match="does not overlap") as error:
        super_resolve(S2_20M, out, TINY_DIP, IOOptions(extent=(0.0, 0.0, 1000.0, 1000.0)))
    assert "\n" not in str(error.value) and str(error.value).startswith(  # it gives the raster's bounds, as x and y ranges
        f"extent x 0–1000, y 0–1000 does not overlap {S2_20M} (which covers x 443720–445640, y 4169500–4171420 in its CRS)")
    with pytest.raises(InputError, match="XMIN < XMAX"):
        IOOptions(extent=(10.0, 0.0, 5.0, 1.0))
    assert os.listdir(tmp_path) == []


def gcp_raster(folder) -> str:
    """A 32 × 32 raster georeferenced by ground control points only (``bad_inputs.GCPS``, WGS 84), as a
    Sentinel-1 GRD is: no geotransform, so its grid is in pixel coordinates."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        path = write_raster(str(folder / "gcps.tif"), read(S2_20M)[:, :32, :32], crs=None, transform=Affine.identity())
        with rasterio.open(path, "r+") as dataset:
            dataset.gcps = ([GroundControlPoint(row, col, x, y) for row, col, x, y in GCPS], CRS.from_epsg(4326))
    return path


def rpc_raster(folder) -> str:
    """A 32 × 32 raster georeferenced by an RPC model only (``bad_inputs.rpc_model``, the area of ``GCPS``),
    as a satellite's level-1 product is: no geotransform, so its grid is in pixel coordinates."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        path = write_raster(str(folder / "rpc.tif"), read(S2_20M)[:, :32, :32], crs=None, transform=Affine.identity())
        with rasterio.open(path, "r+") as dataset:
            dataset.rpcs = rpc_model()
    return path


#: The rasters georeferenced by points only, and how the refusal of an extent names what they have.
POINTS_ONLY = [(gcp_raster, "ground control points only"), (rpc_raster, "an RPC model (rational polynomial coefficients) only")]


@pytest.mark.parametrize("make,by", POINTS_ONLY, ids=["gcps", "rpcs"])
def test_an_extent_on_a_raster_georeferenced_by_points_only_is_refused(tmp_path, capsys, make, by) -> None:
    # an extent in pixel coordinates inside the raster used to select pixels; one in WGS 84 was said not to
    # overlap "bounds 0,0,32,32": neither is what the user meant, and no grid exists to place it on
    source, out = make(tmp_path), str(tmp_path / "never.tif")
    for extent in ("2,2,20,20", "12.501,41.891,12.509,41.899"):
        assert cli(["degrade", source, out, "--scale", "2", "--extent", extent]) == 2
        (line,) = capsys.readouterr().err.strip().splitlines()
        assert f"{os.path.basename(source)} is georeferenced by {by}" in line and "gdalwarp" in line
    with pytest.raises(InputError, match=f"georeferenced by {re.escape(by)}"):
        super_resolve(source, out, TINY_DIP, IOOptions(extent=(2.0, 2.0, 20.0, 20.0)))
    assert sorted(os.listdir(tmp_path)) == [os.path.basename(source)]


def points_only_refusal(role: str, path: str, by: str) -> str:
    """The refusal of a target or guide georeferenced by points only (``by``: as ``POINTS_ONLY`` names them)."""
    other = "guide" if role == "target" else "target"
    return (f"the {role} {path} is georeferenced by {by} (no geotransform), so its pixels cannot be matched with the "
            f"{other}'s: warp it to a map grid first (gdalwarp)")


@pytest.mark.parametrize("make,by", POINTS_ONLY, ids=["gcps", "rpcs"])
def test_guided_names_a_target_or_guide_georeferenced_by_points_only(tmp_path, capsys, make, by) -> None:
    """A guide georeferenced by ground control points only was said to have no CRS, to be assigned with gdal_edit
    -a_srs (which changes nothing: the points carry it); both such rasters were said to be of one pixel size.
    guided and evaluate --method guided now refuse either as an extent on it is refused, naming which one,
    in one line and before anything is written."""
    points, grid = make(tmp_path), S2_20M
    out = str(tmp_path / "never.tif")
    kernels = ["--kernel", "bicubic", "--guide-kernel", "bicubic", "--iterations", "2"]
    for target, guide, role in ((grid, points, "guide"), (points, grid, "target"), (points, points, "target")):
        expected = [f"internal-sr: error: {points_only_refusal(role, points, by)}"]
        assert cli(["guided", target, guide, out, *kernels]) == 2
        assert capsys.readouterr().err.strip().splitlines() == expected
        assert cli(["evaluate", target, "--scale", "2", "--method", "guided", "--guide", guide, *kernels]) == 2
        assert capsys.readouterr().err.strip().splitlines() == expected
    assert os.listdir(tmp_path) == [os.path.basename(points)]


@pytest.mark.parametrize("method", ["dip", "degrade", "guided"])
def test_an_rpc_model_is_moved_to_the_pixels_of_an_extents_output(tmp_path, method) -> None:
    # a georeferenced raster that also carries its sensor's RPC model (a level-1 product with a rough grid):
    # its outputs lost the model; now a ground point lands on the same spot of the output's pixels
    target = write_raster(str(tmp_path / "in.tif"), read(S2_20M), crs="EPSG:32618", transform=Affine(PIXEL, 0, X0, 0, -PIXEL, Y0))
    with rasterio.open(target, "r+") as dataset:
        dataset.rpcs = rpc_model(96)
    out = str(tmp_path / "out.tif")
    if method == "dip":
        super_resolve(target, out, TINY_DIP, IOOptions(bands=(1,), extent=EXTENT))
    elif method == "degrade":
        degrade(target, out, 2, io=IOOptions(extent=EXTENT))
    else:  # the output lies on the guide's grid, 10 m on the same origin
        guide = write_raster(str(tmp_path / "g10.tif"), read(S2_10M)[:, :96, :96], crs="EPSG:32618",
                             transform=Affine(PIXEL / 2, 0, X0, 0, -PIXEL / 2, Y0))
        sharpen(target, guide, out, GuidedDIPConfig(kernel="bicubic", guide_kernel="bicubic", iterations=2, width=8, layers=2, device="cpu"),
                IOOptions(bands=(1,), extent=EXTENT))
    with rasterio.open(out) as dst:
        to_source = ~Affine(PIXEL, 0, X0, 0, -PIXEL, Y0) * dst.transform
    scale = {"dip": 0.5, "degrade": 2.0, "guided": 0.5}[method]
    assert to_source.almost_equals(Affine.translation(WINDOW.col_off, WINDOW.row_off) * Affine.scale(scale))
    assert_rpcs_moved(target, out, to_source)


def pixel_extent(col: int, row: int, width: int, height: int) -> str:
    """The ``--extent`` text of the whole input pixels ``width × height`` from column ``col``, row ``row``."""
    return f"{X0 + col * PIXEL},{Y0 - (row + height) * PIXEL},{X0 + (col + width) * PIXEL},{Y0 - row * PIXEL}"


@pytest.mark.parametrize(
    "command,output,options,message",
    [
        ("dip", "sr.tif", ["--scale", "2", "--extent", pixel_extent(10, 20, 30, 20)],
         "the chosen extent is 30×20 pixels, too small for Deep Image Prior (DIP): at least 32×32 input pixels at ×2 with "
         "depth 5; choose a larger extent"),
        ("knitwork", "sr.tif", ["--scale", "2", "--extent", pixel_extent(0, 0, 8, 40)],
         "the chosen extent is 8×40 pixels, too small for Neural Knitworks: at least 9×9 input pixels with patch scales "
         "(1, 2, 4); choose a larger extent"),
        ("kernelgan", "k.npy", ["--scale", "2", "--extent", pixel_extent(0, 0, 40, 40)],
         "the chosen extent is 40×40 pixels, too small for KernelGAN: at least 64×64 pixels; choose a larger extent"),
        # whole 5 × 5 blocks from the corner: the 96-pixel raster's last block is column 95 alone
        ("degrade", "lr.tif", ["--scale", "5", "--extent", pixel_extent(95, 0, 1, 10)],
         "the chosen extent is 1×10 pixels, too small to degrade by ×5: at least 5×5 pixels (one block); choose a larger "
         "extent"),
    ],
)
def test_an_extent_too_small_for_the_method_is_named_as_the_cause(tmp_path, capsys, command, output, options, message) -> None:
    # the refusal used to say "image 30×20 is smaller than the network needs" of a 96 × 96 raster
    assert cli([command, S2_20M, str(tmp_path / output), *options]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert message in line and os.listdir(tmp_path) == []


def test_guided_extent_too_small_is_named_as_the_cause(tmp_path) -> None:
    transform20, transform10 = (Affine(s, 0, 300000.0, 0, -s, 5800000.0) for s in (20.0, 10.0))
    target = write_raster(str(tmp_path / "t20.tif"), read(S2_20M_SAME_AREA), transform=transform20)
    guide = write_raster(str(tmp_path / "g10.tif"), read(S2_10M), transform=transform10)
    extent = (300000.0, 5800000.0 - 4 * 20, 300000.0 + 4 * 20, 5800000.0)  # 4 × 4 target pixels
    # worded as every method's size refusal (config.size_subject), not inline: "the overlap of the chosen extent
    # of the target and guide is 4×4 target pixels: guided DIP needs at least 8×8"
    with pytest.raises(InputError) as refused:
        sharpen(target, guide, str(tmp_path / "never.tif"), GuidedDIPConfig(device="cpu"), IOOptions(extent=extent))
    assert str(refused.value) == (
        f"the chosen extent is 4×4 pixels, too small for guided DIP: at least {MIN_TARGET_SIZE}×{MIN_TARGET_SIZE} target pixels; "
        "choose a larger extent"
    )
    narrow = write_raster(str(tmp_path / "g10_narrow.tif"), read(S2_10M)[:, :, :8], transform=transform10)  # 4 target columns
    wide = (300000.0, 5800000.0 - 40 * 20, 300000.0 + 40 * 20, 5800000.0)
    for io, subject in ((IOOptions(), "the image's"), (IOOptions(extent=wide), "the chosen extent's")):
        with pytest.raises(InputError) as refused:
            sharpen(target, narrow, str(tmp_path / "never.tif"), GuidedDIPConfig(device="cpu"), io)
        assert str(refused.value) == (
            f"{subject} overlap with the guide is 4×{40 if io.extent else 64} pixels, too small for guided DIP: at least "
            f"{MIN_TARGET_SIZE}×{MIN_TARGET_SIZE} target pixels; give a guide that covers more of the {'extent' if io.extent else 'image'}"
        )
    assert sorted(os.listdir(tmp_path)) == ["g10.tif", "g10_narrow.tif", "t20.tif"]


def test_cli_extent_for_dip_and_degrade(tmp_path, capsys) -> None:
    text = ",".join(f"{v:.10g}" for v in EXTENT)
    out = str(tmp_path / "dip.tif")
    assert cli(["dip", S2_20M, out, "--scale", "2", "--bands", "2", "--iterations", "2", "--device", "cpu", "--extent", text]) == 0
    with rasterio.open(out) as dst:
        assert dst.transform == expected_transform(2) and (dst.width, dst.height) == (64, 64)
    low = str(tmp_path / "low.tif")
    assert cli(["degrade", S2_20M, low, "--scale", "2", "--extent", text]) == 0
    with rasterio.open(low) as dst:
        assert dst.transform == Affine(2 * PIXEL, 0, X0 + 10 * PIXEL, 0, -2 * PIXEL, Y0 - 20 * PIXEL)
        assert (dst.width, dst.height) == (16, 16)
    capsys.readouterr()

    never = str(tmp_path / "never.tif")
    assert cli(["degrade", S2_20M, never, "--scale", "2", "--extent", "0,0,1000,1000"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "does not overlap" in line and not os.path.exists(never)
    assert cli(["degrade", S2_20M, never, "--scale", "2", "--extent", "1,2,3"]) == 2
    assert "XMIN,YMIN,XMAX,YMAX" in capsys.readouterr().err


def test_an_extent_reaching_past_the_raster_is_logged_as_clipped_and_degrade_logs_the_blocks_it_writes(tmp_path, capsys) -> None:
    """``dip --extent`` reaching past the raster logged only the columns and rows it kept, so a user could not tell
    their area was clipped; ``degrade --scale 5`` logged rows 30–63 and wrote rows 30–59, the partial block at the
    raster's edge left out. The log now says the extent was clipped to the raster, and what degrade writes."""
    source = write_raster(str(tmp_path / "in.tif"), read(S2_20M)[:1, :64, :64],
                          transform=Affine(20.0, 0, 331360.0, 0, -20.0, 5820040.0))  # x 331360–332640, y 5818760–5820040
    clipped = ("the extent x 331960–333000, y 5818000–5819440 reaches past the raster, which covers x 331360–332640, "
               "y 5818760–5820040, and was clipped to it")
    extent = ["--extent", "331960,5818000,333000,5819440"]
    assert cli(["dip", source, str(tmp_path / "sr.tif"), "--scale", "3", "--iterations", "1", *extent]) == 0
    assert f"extent: input columns 30–63, rows 30–63 (34×34 pixels); {clipped}\n" in capsys.readouterr().err
    low = str(tmp_path / "low.tif")
    assert cli(["degrade", source, low, "--scale", "5", *extent]) == 0
    assert (f"extent: input columns 30–59, rows 30–59 (30×30 pixels), in whole 5×5 blocks (the partial block at the "
            f"raster's edge is left out); {clipped}\n") in capsys.readouterr().err
    with rasterio.open(low) as dst:
        assert (dst.width, dst.height) == (6, 6) and dst.transform == Affine(100.0, 0, 331960.0, 0, -100.0, 5819440.0)
    inside = "332000,5819000,332200,5819200"  # inside the raster, snapped outward to whole blocks: nothing to add
    assert cli(["degrade", source, str(tmp_path / "inside.tif"), "--scale", "5", "--extent", inside]) == 0
    assert "extent: input columns 30–44, rows 40–54 (15×15 pixels)\n" in capsys.readouterr().err


def test_degrade_extent_snaps_to_the_low_resolution_pixels_of_a_whole_raster_run(tmp_path) -> None:
    # the extent's whole pixels are columns 11–42, rows 21–52: odd offsets, inside 2 × 2 blocks of the
    # whole raster's decimation, so the output starts at column 10, row 20 and mosaics with other runs
    shifted = (EXTENT[0] + PIXEL, EXTENT[1] - PIXEL, EXTENT[2] + PIXEL, EXTENT[3] - PIXEL)
    whole, part = str(tmp_path / "whole.tif"), str(tmp_path / "part.tif")
    assert cli(["degrade", S2_20M, whole, "--scale", "2"]) == 0
    assert cli(["degrade", S2_20M, part, "--scale", "2", "--extent", ",".join(f"{v:.10g}" for v in shifted)]) == 0
    with rasterio.open(whole) as full, rasterio.open(part) as dst:
        assert dst.transform == Affine(2 * PIXEL, 0, X0 + 10 * PIXEL, 0, -2 * PIXEL, Y0 - 20 * PIXEL)
        assert (dst.width, dst.height) == (17, 17)
        inside = full.read(window=rasterio.windows.Window(5, 10, 17, 17))
        cut = dst.read()
    # to the window's edge (the kernel reads the pixels around it) the pixels are the whole run's
    np.testing.assert_array_equal(cut, inside)


@pytest.mark.parametrize("kernel", ["bicubic", "gaussian:2"])
def test_degrade_extents_at_the_raster_border_and_around_nodata_give_the_whole_raster_run_pixels(tmp_path, monkeypatch, kernel) -> None:
    # 46 × 40 pixels with a nodata block near an extent's edge: at ×3 the whole run keeps 15 × 13 blocks and
    # reflects its borders at the last whole block; an extent there reads the same context and the same border,
    # and marks the same pixels nodata (0)
    data = read(S2_20M)[:2, :40, :46].copy()
    data[:, 20:23, 30:32] = 0
    source = write_raster(str(tmp_path / "in.tif"), data, crs="EPSG:32618", transform=Affine(PIXEL, 0, X0, 0, -PIXEL, Y0), nodata=0)
    whole = str(tmp_path / "whole.tif")
    assert cli(["degrade", source, whole, "--scale", "3", "--kernel", kernel]) == 0
    with rasterio.open(whole) as full:
        expected, to_pixels = full.read(), ~full.transform
    monkeypatch.setattr(pipeline, "DEGRADE_STRIP_VALUES", 3 * 30 * 2)  # the extents in strips of 3 rows
    for name, (c0, r0, c1, r1) in {"corner": (0, 0, 10, 8), "inner": (13, 10, 29, 19), "far": (26, 22, 46, 40)}.items():
        part = str(tmp_path / f"{name}.tif")
        extent = (X0 + c0 * PIXEL, Y0 - r1 * PIXEL, X0 + c1 * PIXEL, Y0 - r0 * PIXEL)
        assert cli(["degrade", source, part, "--scale", "3", "--kernel", kernel, "--extent",
                    ",".join(f"{v:.10g}" for v in extent)]) == 0
        with rasterio.open(part) as dst:
            col, row = (round(v) for v in to_pixels * (dst.transform.c, dst.transform.f))
            np.testing.assert_array_equal(dst.read(), expected[:, row : row + dst.height, col : col + dst.width], err_msg=name)
            assert name != "inner" or (dst.read() == 0).any()  # the nodata block reaches it from outside


def test_guided_extent_snaps_to_whole_target_pixels_on_the_guide_grid(tmp_path) -> None:
    # target 64 × 64 at 20 m and guide 128 × 128 at 10 m, both from (300000, 5800000); the extent cuts
    # guide pixels and target pixels: the output must start on a target pixel edge (target columns
    # 20–31, rows 24–35) so that every output block of 2 × 2 guide pixels is one target pixel
    transform20, transform10 = (Affine(s, 0, 300000.0, 0, -s, 5800000.0) for s in (20.0, 10.0))
    target = write_raster(str(tmp_path / "t20.tif"), read(S2_20M_SAME_AREA), transform=transform20,
                          descriptions=("B5", "B6", "B7", "B8A", "B11", "B12"))
    guide = write_raster(str(tmp_path / "g10.tif"), read(S2_10M), transform=transform10, descriptions=("B4", "B3", "B2", "B8"))
    extent = (300000.0 + 20 * 20 + 15, 5800000.0 - 36 * 20 + 3, 300000.0 + 31 * 20 + 4, 5800000.0 - 24 * 20 - 11)
    out, cli_out = str(tmp_path / "sharp.tif"), str(tmp_path / "cli.tif")
    sharpen(target, guide, out, GuidedDIPConfig(iterations=2, width=8, layers=2, device="cpu"), IOOptions(bands=(1,), extent=extent))
    args = ["guided", target, guide, cli_out, "--target-bands", "1", "--iterations", "2", "--device", "cpu",
            "--extent", ",".join(map(str, extent))]
    assert cli(args) == 0
    for path in (out, cli_out):
        with rasterio.open(path) as dst:
            assert dst.transform == Affine(10.0, 0, 300000.0 + 20 * 20, 0, -10.0, 5800000.0 - 24 * 20)
            assert (dst.width, dst.height) == (24, 24)


def processing_run(algorithm: str, parameters: dict, feedback=None) -> dict:
    import processing

    return processing.run(f"internal_sr:{algorithm}", parameters, feedback=feedback or recording_feedback())


@pytest.mark.qgis
@pytest.mark.usefixtures("internal_sr_provider")
def test_processing_extent_in_the_raster_crs_and_in_another_crs(tmp_path) -> None:
    from qgis.core import QgsCoordinateReferenceSystem, QgsCoordinateTransform, QgsProject, QgsRectangle

    source = str(tmp_path / "s2_20m.tif")  # a copy: QGIS writes .aux.xml statistics beside what it opens
    shutil.copy(S2_20M, source)
    xmin, ymin, xmax, ymax = EXTENT
    out = str(tmp_path / "dip.tif")
    feedback = recording_feedback()
    parameters = {"INPUT": source, "BANDS": [3], "SCALE": 2, "ITERATIONS": 2, "DEVICE": "cpu", "OUTPUT": out}
    processing_run("dip", {**parameters, "EXTENT": f"{xmin},{xmax},{ymin},{ymax} [EPSG:32618]"}, feedback)
    with rasterio.open(out) as dst:
        assert dst.transform == expected_transform(2) and (dst.width, dst.height) == (64, 64)
    # the device and the settings reach the Processing log: the engine's line and the algorithm's
    assert any(line.startswith("Deep Image Prior on device cpu") for line in feedback.lines)
    assert any(line.startswith("Extent: ") and "443926" in line for line in feedback.lines)

    # the same area given in geographic coordinates is transformed to the raster's CRS first
    wgs84, utm = QgsCoordinateReferenceSystem("EPSG:4326"), QgsCoordinateReferenceSystem("EPSG:32618")
    to_wgs84 = QgsCoordinateTransform(utm, wgs84, QgsProject.instance())
    geographic = to_wgs84.transformBoundingBox(QgsRectangle(*EXTENT))
    back = QgsCoordinateTransform(wgs84, utm, QgsProject.instance()).transformBoundingBox(geographic)
    col, row = int((back.xMinimum() - X0) // PIXEL), int((Y0 - back.yMaximum()) // PIXEL)
    out = str(tmp_path / "dip_wgs84.tif")
    extent = f"{geographic.xMinimum()},{geographic.xMaximum()},{geographic.yMinimum()},{geographic.yMaximum()} [EPSG:4326]"
    processing_run("degrade", {"INPUT": source, "SCALE": 2, "EXTENT": extent, "OUTPUT": out})
    with rasterio.open(out) as dst:
        assert (dst.transform.c, dst.transform.f) == (X0 + col * PIXEL, Y0 - row * PIXEL)
        assert dst.width == (math.ceil((back.xMaximum() - X0) / PIXEL) - col) // 2  # degrade drops a last half block


@pytest.mark.qgis
@pytest.mark.usefixtures("internal_sr_provider")
@pytest.mark.parametrize("make,by", POINTS_ONLY, ids=["gcps", "rpcs"])
def test_processing_extent_on_a_raster_georeferenced_by_points_only_is_refused(tmp_path, make, by) -> None:
    from qgis.core import QgsProcessingException

    source, out = make(tmp_path), str(tmp_path / "never.tif")
    with pytest.raises(QgsProcessingException) as error:  # QGIS shows the layer warped by its GCPs or RPCs, in WGS 84
        processing_run("degrade", {"INPUT": source, "SCALE": 2, "EXTENT": "12.501,12.509,41.891,41.899 [EPSG:4326]", "OUTPUT": out})
    lines = [line for line in str(error.value).strip().splitlines() if f"georeferenced by {by}" in line]
    assert len(lines) == 1 and not os.path.exists(out)


@pytest.mark.qgis
@pytest.mark.usefixtures("internal_sr_provider")
@pytest.mark.parametrize("make,by", POINTS_ONLY, ids=["gcps", "rpcs"])
def test_processing_guided_names_a_guide_georeferenced_by_points_only(tmp_path, make, by) -> None:
    """Processing takes the layer's CRS, which QGIS gives a raster from its points: the refusal is the same."""
    from qgis.core import QgsProcessingException

    guide, target, out = make(tmp_path), str(tmp_path / "s2_20m.tif"), str(tmp_path / "never.tif")
    shutil.copy(S2_20M, target)
    kernels = {"KERNEL": "bicubic", "GUIDE_KERNEL": "bicubic", "ITERATIONS": 2}
    with pytest.raises(QgsProcessingException) as error:
        processing_run("guided_dip", {"INPUT": target, "GUIDE": guide, **kernels, "OUTPUT": out})
    lines = [line for line in str(error.value).strip().splitlines() if "georeferenced by" in line]
    assert lines == [points_only_refusal("guide", guide, by)] and not os.path.exists(out)


@pytest.mark.qgis
@pytest.mark.usefixtures("internal_sr_provider")
def test_processing_extent_outside_the_raster_is_a_one_line_error(tmp_path) -> None:
    from qgis.core import QgsProcessingException

    out, source = str(tmp_path / "never.tif"), str(tmp_path / "s2_20m.tif")
    shutil.copy(S2_20M, source)
    with pytest.raises(QgsProcessingException) as error:
        processing_run("dip", {"INPUT": source, "SCALE": 2, "EXTENT": "0,1000,0,1000 [EPSG:32618]", "OUTPUT": out})
    lines = [line for line in str(error.value).strip().splitlines() if "does not overlap" in line]
    assert len(lines) == 1 and not os.path.exists(out)


@pytest.mark.qgis
@pytest.mark.usefixtures("internal_sr_provider")
def test_processing_extent_outside_a_raster_without_georeferencing_is_refused_as_qgis_draws_it(tmp_path) -> None:
    """QGIS draws the 128 × 128 crop at y −128..0; an extent at y 40..88 is off it. The refusal gave the extent
    flipped into rows (y −88–−40) and the bounds in rows (y 0–128), so the extent looked inside them."""
    from qgis.core import QgsProcessingException

    source, out = shutil.copy(S2_10M, str(tmp_path / "photo.tif")), str(tmp_path / "never.tif")
    with pytest.raises(QgsProcessingException) as error:
        processing_run("degrade", {"INPUT": source, "SCALE": 2, "EXTENT": "40,88,40,88", "OUTPUT": out})
    lines = [line for line in str(error.value).strip().splitlines() if "does not overlap" in line]
    assert lines == [f"extent x 40–88, y 40–88 does not overlap {source} (which covers x 0–128, y -128–0 as QGIS "
                     "draws it without georeferencing, y = −row)"]
    assert not os.path.exists(out)


def lonlat_raster(path: str, west: float, width: int, height: int, pixel: float, north: float = -16.5) -> str:
    data = np.random.default_rng(0).integers(0, 3000, (1, height, width)).astype("uint16")
    return write_raster(path, data, crs="EPSG:4326", transform=Affine(pixel, 0, west, 0, -pixel, north))


def pdc_mercator(west: float, south: float, east: float, north: float) -> str:
    """A longitude/latitude box as a Processing extent in EPSG:3832 (PDC Mercator, continuous across 180°)."""
    from pyproj import Transformer

    to_pdc = Transformer.from_crs(4326, 3832, always_xy=True)
    (x0, y0), (x1, y1) = to_pdc.transform(west, south), to_pdc.transform(east, north)
    return f"{x0},{x1},{y0},{y1} [EPSG:3832]"


@pytest.mark.qgis
@pytest.mark.usefixtures("internal_sr_provider")
@pytest.mark.parametrize("west", [179.99, -180.01], ids=["past_180", "past_minus_180"])
def test_processing_extent_across_the_antimeridian_covers_the_whole_area(tmp_path, west) -> None:
    """The tester's case: a 40 × 40 raster of 0.0005° across 180° and an extent in EPSG:3832 covering all of it
    but a margin. QGIS turns the extent into longitudes −179.9997–179.9997, and the output covered only the 20
    columns west of 180° (10 × 20 pixels); it covers the whole raster, whichever side of ±180° it is written on."""
    source, out = lonlat_raster(str(tmp_path / "fiji.tif"), west, 40, 40, 0.0005), str(tmp_path / "fiji_lr.tif")
    processing_run("degrade", {"INPUT": source, "SCALE": 2, "EXTENT": pdc_mercator(179.9905, -16.5195, 180.0095, -16.5005),
                               "OUTPUT": out})
    with rasterio.open(out) as dst:
        assert (dst.width, dst.height) == (20, 20)
        assert dst.bounds.left == pytest.approx(west) and dst.bounds.right == pytest.approx(west + 0.02)


@pytest.mark.qgis
@pytest.mark.usefixtures("internal_sr_provider")
def test_processing_extent_across_the_edges_of_a_global_raster_is_refused_in_one_line(tmp_path) -> None:
    from qgis.core import QgsProcessingException

    source, out = lonlat_raster(str(tmp_path / "world.tif"), -180.0, 36, 18, 10.0, north=90.0), str(tmp_path / "never.tif")
    with pytest.raises(QgsProcessingException) as error:
        processing_run("degrade", {"INPUT": source, "SCALE": 2, "EXTENT": pdc_mercator(175.0, -20.0, 185.0, -10.0), "OUTPUT": out})
    lines = [line for line in str(error.value).strip().splitlines() if "crosses the antimeridian" in line]
    assert len(lines) == 1 and "has its two edges" in lines[0] and not os.path.exists(out)


@pytest.mark.qgis
@pytest.mark.usefixtures("internal_sr_provider")
def test_processing_extent_on_a_raster_without_georeferencing_is_the_area_qgis_shows(tmp_path) -> None:
    """QGIS draws a raster with no geotransform upright at y = −row (its layer's extent says so): an extent taken
    there selects the rows under it, not their mirror image. Columns 8–23 and rows 20–27 of a 48 × 40 raster
    (y from −28 to −20, with fractional insets) give the block of the whole raster's degraded pixels at rows 10–13,
    columns 4–11, as the command line's y = row extent does."""
    from qgis.core import QgsRasterLayer

    data = read(S2_20M)[:2, :40, :48]
    source = str(tmp_path / "photo.tif")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(source, "w", driver="GTiff", width=48, height=40, count=2, dtype=data.dtype) as dst:
            dst.write(data)  # no transform given: the file has no geotransform (an explicit identity is south-up)
    shown = QgsRasterLayer(source, "photo").extent()
    assert (shown.xMinimum(), shown.yMinimum(), shown.xMaximum(), shown.yMaximum()) == (0, -40, 48, 0)
    from_qgis, from_cli, whole = (str(tmp_path / name) for name in ("qgis.tif", "cli.tif", "whole.tif"))
    processing_run("degrade", {"INPUT": source, "SCALE": 2, "EXTENT": "8.2,23.7,-27.9,-20.1", "OUTPUT": from_qgis})
    assert cli(["degrade", source, from_cli, "--scale", "2", "--extent", "8.2,20.1,23.7,27.9"]) == 0
    assert cli(["degrade", source, whole, "--scale", "2"]) == 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(from_qgis) as qgis_run, rasterio.open(from_cli) as cli_run, rasterio.open(whole) as whole_run:
            assert (qgis_run.width, qgis_run.height) == (8, 4)
            rows = whole_run.read()[:, 10:14, 4:12]
            assert (rows != whole_run.read()[:, 6:10, 4:12]).any()  # the mirrored rows would show
            np.testing.assert_array_equal(qgis_run.read(), rows)
            np.testing.assert_array_equal(cli_run.read(), rows)
