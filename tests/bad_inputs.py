"""One table of bad and odd inputs, run through the command line (``test_robustness``) and through
``processing.run`` (``test_qgis_robustness``).

Each ``Case`` says how to build its input raster(s) in a folder, which method runs with which scale and
bands, where the output goes, and what must come out: either a one-line error matching ``error``
(case-insensitive regular expression, worded so the command line's and Processing's messages both
match) with nothing written, or a successful run whose output ``check`` verifies. Odd-but-valid inputs
run one optimisation step on 32 × 32 pixels: they test grids, CRS, dtype and nodata, not quality.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import warnings
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
import rasterio.shutil
from affine import Affine
from rasterio.control import GroundControlPoint
from rasterio.crs import CRS
from rasterio.enums import ColorInterp
from rasterio.errors import NotGeoreferencedWarning
from rasterio.rpc import RPC
from rasterio.transform import RPCTransformer

from internal_sr.core.raster import loss_curve_path

from helpers import S2_10M, S2_20M, S2_20M_SAME_AREA, read, write_raster

#: Paths of the input raster(s) a case built: ``(input,)`` or, for guided cases, ``(target, guide)``.
Inputs = tuple[str, ...]
#: Optimisation steps of the odd-but-valid runs.
ITERATIONS = 1
#: Edge of the odd-but-valid inputs: the smallest a depth-5 DIP takes at ×2.
EDGE = 32
#: A 20 m UTM grid (EPSG:32618, as the committed crop) used unless a case says otherwise.
UTM_20M = Affine(20.0, 0.0, 443720.0, 0.0, -20.0, 4171420.0)
#: A rotated-pole CRS (the grids of CORDEX and COSMO climate models) that GeoTIFF keys cannot hold: GDAL keeps it in
#: the file's PAM sidecar ``name.tif.aux.xml``.
ROTATED_POLE = "+proj=ob_tran +o_proj=longlat +o_lon_p=-162 +o_lat_p=39.25 +lon_0=180 +datum=WGS84 +no_defs"
#: A 0.11° grid (EURO-CORDEX's) in ``ROTATED_POLE``'s rotated longitude and latitude.
ROTATED_POLE_GRID = Affine(0.11, 0.0, -28.375, 0.0, -0.11, 26.675)
#: Band names of a Sentinel-2 L1C product, in file order.
S2_L1C_BANDS = ("B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B10", "B11", "B12")


@dataclass(frozen=True)
class Case:
    """A bad or odd input: how to build it, what runs, what must come out.

    build: writes the input raster(s) into the given folder and returns their paths.
    method: ``dip`` (scale and bands apply) or ``guided`` (target and guide; the grids set the scale).
    scale: as typed by the user (``2.5`` is a user error, not ``2``).
    output: the output path from the inputs and an empty output folder (default: ``sr.tif`` in it).
    error: what the one-line error must say; ``None`` when the run must succeed.
    check: assertions on a successful run's output, given the inputs and the output path.
    pam: the output keeps what GeoTIFF tags cannot hold in its PAM sidecar (``sr.tif.aux.xml``), written beside it.
    """

    id: str
    build: Callable[[Path], Inputs]
    method: str = "dip"
    scale: float = 2
    bands: tuple[int, ...] | None = None
    output: Callable[[Inputs, Path], str] = lambda inputs, folder: str(folder / "sr.tif")
    error: str | None = None
    check: Callable[[Inputs, str], None] | None = None
    pam: bool = False


# -- building inputs --------------------------------------------------------------------------


def s2_pixels(size: int = EDGE, bands: slice = slice(None), row: int = 16, col: int = 16) -> np.ndarray:
    """``(C, size, size)`` uint16 pixels of the committed 20 m Sentinel-2 crop (96 × 96, 6 bands)."""
    return read(S2_20M)[bands, row : row + size, col : col + size]


def _write(name: str, data: np.ndarray | None = None, **georeferencing) -> Callable[[Path], Inputs]:
    """A builder writing ``data`` (default: ``s2_pixels()``) on the UTM 20 m grid unless overridden."""

    def build(folder: Path) -> Inputs:
        values = s2_pixels() if data is None else data
        options = {"crs": "EPSG:32618", "transform": UTM_20M, **georeferencing}
        return (write_raster(str(folder / name), values, **options),)

    return build


def _file(name: str, content: Callable[[], bytes]) -> Callable[[Path], Inputs]:
    def build(folder: Path) -> Inputs:
        path = folder / name
        path.write_bytes(content())
        return (str(path),)

    return build


def _truncated(header_first: bool) -> Callable[[Path], Inputs]:
    """The committed crop cut at a third of its bytes, as an interrupted copy or download leaves it.

    ``header_first``: laid out with its header (image directory) at the start, so the file still opens
    and its pixel data ends early; else as committed, with the directory at the end, now lost.
    """

    def build(folder: Path) -> Inputs:
        path = folder / "truncated.tif"
        if header_first:
            rasterio.shutil.copy(S2_20M, str(path), driver="GTiff")
        else:
            shutil.copy(S2_20M, path)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 3])
        return (str(path),)

    return build


def _thirteen_bands() -> np.ndarray:
    """13 real bands (three 32 × 32 windows of the committed crop stacked), like a full L1C product."""
    return np.concatenate([s2_pixels(row=0), s2_pixels(row=32), s2_pixels(bands=slice(0, 1), row=64)])


def _float_with_non_finite() -> np.ndarray:
    """Float32 reflectance with NaN, +Inf and −Inf pixels (no nodata value declared)."""
    data = s2_pixels().astype(np.float32) / 10000
    data[0, 3, 5] = np.nan
    data[1, 10:12, 20] = np.inf
    data[2, 30, 0] = -np.inf
    return data


def _float_with_fill_values() -> np.ndarray:
    """Float32 reflectance holding common float fill values (no nodata value declared): ArcGIS's −3.4028235e38 in
    band 1, −1e30 and +3.4028235e38 in band 2."""
    data = s2_pixels().astype(np.float32) / 10000
    data[0, 3, 3] = np.finfo(np.float32).min
    data[1, 10:12, 20] = -1e30
    data[1, 30, 0] = np.finfo(np.float32).max
    return data


def _all_nodata() -> np.ndarray:
    return np.zeros((2, EDGE, EDGE), np.uint16)


#: GDAL's names of the data types the ``_stacked`` VRTs use.
GDAL_TYPES = {"uint16": "UInt16", "float32": "Float32"}


def _stacked(*bands: tuple[np.ndarray, float | None]) -> Callable[[Path], Inputs]:
    """A VRT stacking one single-band GeoTIFF per ``(pixels (H, W), nodata)``, each band with its own data type
    and nodata value, as ``gdalbuildvrt -separate`` makes it; read from a zip file (``/vsizip/…/stack.vrt``), as
    QGIS would otherwise write its statistics into the VRT when it opens it as a layer."""

    def build(folder: Path) -> Inputs:
        height, width = bands[0][0].shape
        parts = []
        for index, (pixels, nodata) in enumerate(bands, start=1):
            name = f"band{index}.tif"
            write_raster(str(folder / name), pixels[None], crs="EPSG:32618", transform=UTM_20M, nodata=nodata)
            parts.append(
                f'<VRTRasterBand dataType="{GDAL_TYPES[pixels.dtype.name]}" band="{index}">'
                + ("" if nodata is None else f"<NoDataValue>{nodata:g}</NoDataValue>")
                + f'<SimpleSource><SourceFilename relativeToVRT="1">{name}</SourceFilename><SourceBand>1</SourceBand>'
                f'<SrcRect xOff="0" yOff="0" xSize="{width}" ySize="{height}"/><DstRect xOff="0" yOff="0" xSize="{width}" ySize="{height}"/>'
                "</SimpleSource></VRTRasterBand>"
            )
        transform = ", ".join(f"{v!r}" for v in UTM_20M.to_gdal())
        vrt = (
            f'<VRTDataset rasterXSize="{width}" rasterYSize="{height}"><SRS>EPSG:32618</SRS>'
            f"<GeoTransform>{transform}</GeoTransform>{''.join(parts)}</VRTDataset>"
        )
        archive = folder / "stack.zip"
        with zipfile.ZipFile(archive, "w") as zipped:
            zipped.writestr("stack.vrt", vrt)
            for index in range(1, len(bands) + 1):
                zipped.write(folder / f"band{index}.tif", f"band{index}.tif")
                os.remove(folder / f"band{index}.tif")
        return (f"/vsizip/{archive}/stack.vrt",)

    return build


def _band_with_own_nodata() -> np.ndarray:
    """Band 2 of the committed crop with a 4 × 4 block of its nodata value 65535 (rows and columns 4–7) and a
    4 × 4 block of valid zeros (rows and columns 20–23): band 1's nodata value, 0, must not apply to it."""
    pixels = s2_pixels()[1].copy()
    pixels[4:8, 4:8] = 65535
    pixels[20:24, 20:24] = 0
    return pixels


def _check_own_nodata(inputs: Inputs, output: str) -> None:
    """The output of band 2 alone has band 2's nodata: its 65535 block is nodata, its zeros are data."""
    with rasterio.open(output) as dst:
        assert dst.nodata == 65535 and dst.count == 1
        nodata = dst.read(1) == 65535
    assert nodata[8:16, 8:16].all() and nodata.sum() == 64


#: Guide rows and columns set to nodata (0) in the ``guide_nodata_only`` case.
GUIDE_HOLE = slice(40, 44)


def _guided_pair(guide_pixel: float = 10.0, guide_origin: tuple[float, float] = (300040.0, 5799960.0), guide_crs: str = "EPSG:32633",
                 hole: bool = False, fill: bool = False):
    """A 20 m target (64 × 64, no nodata value) and a 10 m guide (128 × 128) of one area; the guide's grid as
    given. ``hole``: the guide declares nodata 0 and holds it at rows and columns ``GUIDE_HOLE``; ``fill``: the
    guide is float32 and holds ArcGIS's fill value −3.4028235e38 there instead, declaring no nodata value."""

    def build(folder: Path) -> Inputs:
        with warnings.catch_warnings():  # the committed crops carry no georeferencing
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            target_pixels, guide_pixels = read(S2_20M_SAME_AREA), read(S2_10M)
        target = write_raster(
            str(folder / "target_20m.tif"), target_pixels, crs="EPSG:32633",
            transform=Affine(20.0, 0, 300000.0, 0, -20.0, 5800000.0),
        )
        transform = Affine(guide_pixel, 0, guide_origin[0], 0, -guide_pixel, guide_origin[1])
        if hole:
            guide_pixels[:, GUIDE_HOLE, GUIDE_HOLE] = 0
        if fill:
            guide_pixels = guide_pixels.astype(np.float32)
            guide_pixels[:, GUIDE_HOLE, GUIDE_HOLE] = np.finfo(np.float32).min
        guide = write_raster(str(folder / "guide_10m.tif"), guide_pixels, crs=guide_crs, transform=transform,
                             nodata=0 if hole else None)
        return target, guide

    return build


def _edited(name: str, edit: Callable[[rasterio.io.DatasetWriter], None], data: np.ndarray | None = None,
            **georeferencing) -> Callable[[Path], Inputs]:
    """``_write(name, data, **georeferencing)``, then ``edit`` applied to the file opened for update."""
    write = _write(name, data, **georeferencing)

    def build(folder: Path) -> Inputs:
        (path,) = write(folder)
        with warnings.catch_warnings(), rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True):
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.open(path, "r+") as dataset:
                edit(dataset)
        return (path,)

    return build


#: Columns hidden by the internal mask of the ``internal_mask`` case (their pixels hold a wild value).
MASKED_COLUMNS = 8


def _mask_columns(dataset) -> None:
    data = dataset.read()
    data[:, :, :MASKED_COLUMNS] = 65535
    dataset.write(data)
    mask = np.ones((dataset.height, dataset.width), dtype=bool)
    mask[:, :MASKED_COLUMNS] = False
    dataset.write_mask(mask)


#: Rows transparent in the alpha band of the ``alpha_band`` case.
TRANSPARENT_ROWS = 6


def _rgba() -> np.ndarray:
    """8-bit red, green, blue and alpha (0 on the first ``TRANSPARENT_ROWS`` rows) from the committed crop."""
    rgb = s2_pixels(bands=slice(0, 3)).astype(np.float64)
    rgb = np.clip(rgb / rgb.max() * 255, 0, 255).astype(np.uint8)
    alpha = np.full((1, EDGE, EDGE), 255, np.uint8)
    alpha[:, :TRANSPARENT_ROWS] = 0
    return np.concatenate([rgb, alpha])


def _set_rgba(dataset) -> None:
    dataset.colorinterp = [ColorInterp.red, ColorInterp.green, ColorInterp.blue, ColorInterp.alpha]


#: Ground control points (row, col, x, y) of the ``ground_control_points`` case, in WGS 84.
GCPS = ((0.0, 0.0, 12.50, 41.90), (0.0, 32.0, 12.51, 41.90), (32.0, 0.0, 12.50, 41.89), (32.0, 32.0, 12.51, 41.89))


def _set_gcps(dataset) -> None:
    points = [GroundControlPoint(row, col, x, y) for row, col, x, y in GCPS]
    dataset.gcps = (points, CRS.from_epsg(4326))


def _terms(**named: float) -> list[float]:
    """The 20 coefficients of an RPC polynomial (GDAL's term order) from the named ones, the rest 0."""
    order = ("one", "L", "P", "H", "LP", "LH", "PH", "LL", "PP", "HH")
    return [named.get(term, 0.0) for term in order] + [0.0] * 10


def rpc_model(size: int = EDGE) -> RPC:
    """An RPC model of ``size × size`` pixels, about 1 km square near Rome (WGS 84, heights in metres):
    samples follow the longitude L and lines the latitude P (rows run south), with height, cross and
    quadratic terms and denominators that vary, so that it is no affine map in disguise."""
    return RPC(
        height_off=50.0, height_scale=500.0, lat_off=41.895, lat_scale=0.005, long_off=12.505, long_scale=0.006,
        line_off=(size - 1) / 2, line_scale=size / 2, samp_off=(size - 1) / 2, samp_scale=size / 2,
        samp_num_coeff=_terms(one=0.001, L=1.0, P=0.02, H=0.01, LP=0.03, LL=0.02),
        samp_den_coeff=_terms(one=1.0, L=0.01, P=0.005),
        line_num_coeff=_terms(one=-0.002, L=0.03, P=-1.0, H=0.02, PH=0.01, PP=0.02),
        line_den_coeff=_terms(one=1.0, P=0.01),
        err_bias=-1.0, err_rand=-1.0,
    )


def _set_rpcs(dataset) -> None:
    dataset.rpcs = rpc_model()


def assert_rpcs_moved(source: str, output: str, to_source: Affine) -> None:
    """``output``'s RPC model puts ground points (the model's area at two heights) where ``source``'s does,
    moved to ``output``'s pixels: pixel coordinates (corner convention) map to ``source``'s by
    ``to_source``, within 0.001 output pixel."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(source) as src, rasterio.open(output) as dst:
            before, after = src.rpcs, dst.rpcs
    assert after is not None
    u = np.linspace(-0.9, 0.9, 5)
    lon, lat, height = (a.ravel() for a in np.meshgrid(u, u, [-0.1, 0.6]))
    ground = (before.long_off + before.long_scale * lon, before.lat_off + before.lat_scale * lat,
              before.height_off + before.height_scale * height)
    rows, cols = RPCTransformer(before).rowcol(*ground, op=float)
    found_rows, found_cols = RPCTransformer(after).rowcol(*ground, op=float)
    expected_cols, expected_rows = ~to_source * (np.array(cols), np.array(rows))
    np.testing.assert_allclose(found_cols, expected_cols, atol=1e-3)
    np.testing.assert_allclose(found_rows, expected_rows, atol=1e-3)


def _set_band_metadata(dataset) -> None:
    dataset.scales = (0.0001,) * dataset.count
    dataset.offsets = (-0.1,) * dataset.count
    dataset.units = ("reflectance",) * dataset.count
    dataset.update_tags(PRODUCT="S2 L1C", STATISTICS_MEAN="1234")
    dataset.update_tags(1, WAVELENGTH="665", STATISTICS_MAXIMUM="9999")


def _zipped(folder: Path) -> Inputs:
    """The committed crop (on its UTM grid) inside a zip file, named as GDAL reads it: ``/vsizip/…``."""
    (path,) = _write("in.tif")(folder)
    archive = folder / "scene.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.write(path, "in.tif")
    os.remove(path)
    return (f"/vsizip/{archive}/in.tif",)


def _existing_folder(inputs: Inputs, folder: Path) -> str:
    """An output path that is an existing folder (named like a GeoTIFF)."""
    path = folder / "sr.tif"
    path.mkdir()
    return str(path)


def _beside_another_raster(inputs: Inputs, folder: Path) -> str:
    """An output ``ortho.tif`` beside another raster named ``ortho``: ``ortho.png`` (its bytes do not matter here),
    georeferenced by its world file ``ortho.wld``, which GDAL would read with the output too."""
    (folder / "ortho.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (folder / "ortho.wld").write_text("10\n0\n0\n-10\n443730\n4171410\n")
    return str(folder / "ortho.tif")


def _locked_folder(inputs: Inputs, folder: Path) -> str:
    """An output in a folder this process may not write to.

    Permission bits do not bind root, so as root the folder is ``/proc/sys``, where no one may create files.
    """
    locked = folder / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    if os.access(locked, os.W_OK):
        locked.chmod(0o755)
        return "/proc/sys/sr.tif"
    return str(locked / "sr.tif")


# -- checking outputs -------------------------------------------------------------------------


def measured(values: np.ndarray) -> np.ndarray:
    """Where float ``values`` are measurements: finite and below 1e30 in magnitude (beyond it, fill values)."""
    return np.abs(values.astype(np.float64)) < 1e30


def valid_means(data: np.ndarray, nodata: float | None) -> np.ndarray:
    """Per-band mean over measured pixels (``measured``) that are not ``nodata``."""
    values = data.astype(np.float64)
    valid = measured(values) & (True if nodata is None or np.isnan(nodata) else values != nodata)
    return np.array([band[mask].mean() for band, mask in zip(values, valid)])


def assert_refined(inputs: Inputs, output: str, scale: int = 2) -> None:
    """The output is the input grid refined by ``scale``: same CRS and origin (rotation included), pixel
    size divided by ``scale``; bands, their names, dtype and nodata kept; band means within 3 %."""
    with rasterio.open(inputs[0]) as src, rasterio.open(output) as dst:
        assert (dst.width, dst.height, dst.count) == (scale * src.width, scale * src.height, src.count)
        assert dst.transform.almost_equals(src.transform * Affine.scale(1 / scale), precision=1e-12)
        assert dst.crs == src.crs
        assert dst.dtypes == src.dtypes and dst.descriptions == src.descriptions
        assert (dst.nodata is None) == (src.nodata is None and not src.dtypes[0].startswith("float"))
        before, after = valid_means(src.read(), src.nodata), valid_means(dst.read(), dst.nodata)
    np.testing.assert_allclose(after, before, rtol=0.03)


def _check_unmeasured(inputs: Inputs, output: str) -> None:
    """Input pixels that are no measurement (NaN, ±Inf, fill values: ``measured``) are nodata (NaN) on their
    2 × 2 output blocks; every other pixel is finite."""
    assert_refined(inputs, output)
    with rasterio.open(inputs[0]) as src, rasterio.open(output) as dst:
        assert np.isnan(dst.nodata)
        expected_invalid = ~measured(src.read()).repeat(2, axis=1).repeat(2, axis=2)
        np.testing.assert_array_equal(~np.isfinite(dst.read()), expected_invalid)


def _check_crs_in_pam(inputs: Inputs, output: str) -> None:
    """The output reads back the input's CRS, which only its PAM sidecar holds."""
    assert_refined(inputs, output)
    with rasterio.open(inputs[0]) as src, rasterio.open(output) as dst:
        assert dst.crs is not None and dst.crs.to_wkt() == src.crs.to_wkt()
        assert output + ".aux.xml" in dst.files


def _check_no_crs(inputs: Inputs, output: str) -> None:
    assert_refined(inputs, output)
    with rasterio.open(output) as dst:
        assert dst.crs is None


def _assert_pixel_grid(inputs: Inputs, output: str) -> tuple:
    """The output has no geotransform (not a south-up grid of half-unit pixels: the input has none),
    twice the input's pixels and its band means; returns the output's ``(gcps, crs)``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(inputs[0]) as src, rasterio.open(output) as dst:
            assert (dst.width, dst.height) == (2 * src.width, 2 * src.height) and dst.transform.is_identity
            before, after = valid_means(src.read(), src.nodata), valid_means(dst.read(), dst.nodata)
            gcps = dst.gcps
    np.testing.assert_allclose(after, before, rtol=0.03)
    return gcps


def _check_no_georeferencing(inputs: Inputs, output: str) -> None:
    assert _assert_pixel_grid(inputs, output) == ([], None)


def _check_gcps(inputs: Inputs, output: str) -> None:
    """Ground control points keep their map coordinates and CRS and move to the output's pixels (×2)."""
    points, crs = _assert_pixel_grid(inputs, output)
    assert crs == CRS.from_epsg(4326)
    found = [(p.row, p.col, p.x, p.y) for p in points]
    np.testing.assert_allclose(found, [(2 * row, 2 * col, x, y) for row, col, x, y in GCPS])


def _check_rpcs(inputs: Inputs, output: str) -> None:
    """The RPC model is moved to the output's pixels (×2): a ground point lands where it did, in output pixels."""
    assert _assert_pixel_grid(inputs, output) == ([], None)
    assert_rpcs_moved(inputs[0], output, Affine.scale(0.5))


def _check_masked(inputs: Inputs, output: str) -> None:
    """Pixels under the input's internal mask are under the output's (the dtype has no nodata), and their
    wild values reach no other pixel: the band means of the rest are the input's."""
    with rasterio.open(inputs[0]) as src, rasterio.open(output) as dst:
        assert dst.transform == src.transform * Affine.scale(0.5) and dst.crs == src.crs
        assert dst.dtypes == src.dtypes and dst.nodata is None
        masks, values, before = dst.read_masks(), dst.read(), src.read()[:, :, MASKED_COLUMNS:]
    assert (masks[:, :, : 2 * MASKED_COLUMNS] == 0).all() and (masks[:, :, 2 * MASKED_COLUMNS :] == 255).all()
    after = values[:, :, 2 * MASKED_COLUMNS :]
    np.testing.assert_allclose(after.mean(axis=(1, 2)), before.mean(axis=(1, 2)), rtol=0.03)
    assert after.max() < 1.2 * before.max()


def _check_alpha(inputs: Inputs, output: str) -> None:
    """The alpha band is not a band to sharpen: it masks the others, and the output is RGB under a mask."""
    with rasterio.open(inputs[0]) as src, rasterio.open(output) as dst:
        assert (dst.count, dst.width, dst.dtypes[0]) == (3, 2 * src.width, "uint8")
        assert dst.transform == src.transform * Affine.scale(0.5)
        assert dst.colorinterp == (ColorInterp.red, ColorInterp.green, ColorInterp.blue)
        masks = dst.read_masks()
    assert (masks[:, : 2 * TRANSPARENT_ROWS] == 0).all() and (masks[:, 2 * TRANSPARENT_ROWS :] == 255).all()


def _check_guide_hole(inputs: Inputs, output: str) -> None:
    """The guide's nodata pixels (its nodata value, or fill values: ``measured``) are masked in the output, whose
    data type (the target's) has no nodata value here: an internal mask hides exactly them."""
    with rasterio.open(inputs[1]) as guide, rasterio.open(output) as dst:
        assert dst.nodata is None and dst.dtypes[0] == "uint16"
        masks = dst.read_masks()
        # the output lies on the guide's grid: output pixel (r, c) is guide pixel (r + row, c + col)
        col, row = (round(v) for v in ~guide.transform * (dst.transform.c, dst.transform.f))
        pixels = guide.read(1)
        expected = measured(pixels) & (pixels != guide.nodata if guide.nodata is not None else True)
    expected = expected[row : row + dst.height, col : col + dst.width]
    assert not expected.all()
    np.testing.assert_array_equal(masks > 0, np.broadcast_to(expected, masks.shape))


def _check_band_metadata(inputs: Inputs, output: str) -> None:
    """Scale, offset, units and metadata items are kept (so values still read as reflectance); the
    input's statistics are not, as they no longer describe the pixels."""
    assert_refined(inputs, output)
    with rasterio.open(output) as dst:
        assert dst.scales == (0.0001,) * dst.count and dst.offsets == (-0.1,) * dst.count
        assert dst.units == ("reflectance",) * dst.count
        assert dst.tags()["PRODUCT"] == "S2 L1C" and dst.tags(1)["WAVELENGTH"] == "665"
        assert not any(k.startswith("STATISTICS_") for k in {**dst.tags(), **dst.tags(1)})


# -- the table --------------------------------------------------------------------------------

CASES = (
    Case("input_missing", lambda folder: (str(folder / "missing.tif"),), error="missing.tif does not exist"),
    Case("not_a_raster", _file("notes.tif", lambda: b"these are my field notes\n"), error="not a raster"),
    Case("empty_file", _file("empty.tif", lambda: b""), error="not a raster"),
    Case("truncated_pixel_data", _truncated(header_first=True), error="truncated.tif cannot be read.* truncated: .+"),
    Case("truncated_directory", _truncated(header_first=False), error="truncated.tif cannot be read.* truncated: .+"),
    Case("band_out_of_range", _write("in.tif"), bands=(2, 7), error="band 7 is out of range"),
    Case("band_zero", _write("in.tif"), bands=(0,), error="band 0 is out of range"),
    Case("scale_1", _write("in.tif"), scale=1, error="scale.* must be .*2, got 1"),
    Case("scale_0", _write("in.tif"), scale=0, error="scale.* must be .*2, got 0"),
    Case("scale_not_integer", _write("in.tif"), scale=2.5, error="scale.* must be an integer.*got 2.5"),
    Case("output_is_input", _write("in.tif"), output=lambda inputs, folder: inputs[0], error="is the input"),
    Case("output_folder_missing", _write("in.tif"), output=lambda inputs, folder: str(folder / "nope" / "sr.tif"),
         error="folder .*nope does not exist"),
    Case("output_folder_not_writable", _write("in.tif"), output=_locked_folder, error="folder .* is not writable"),
    Case("output_is_a_folder", _write("in.tif"), output=_existing_folder, error="sr.tif is a folder"),
    Case("output_named_like_another_dataset", _write("in.tif"), output=_beside_another_raster,
         error="GDAL would read .*ortho.wld beside it as its own.*ortho.png.*choose another output name"),
    Case("smaller_than_the_network", _write("tiny.tif", s2_pixels(20)), error=r"20×20 is too small for Deep Image Prior \(DIP\)"),
    Case("single_row", _write("row.tif", s2_pixels(64)[:, :1]), error=r"64×1 is too small for Deep Image Prior \(DIP\)"),
    Case("all_nodata", _write("nodata.tif", _all_nodata(), nodata=0), error="no valid pixels"),
    Case("bands_with_different_nodata", _stacked((s2_pixels()[0], 0), (s2_pixels()[1], 65535)),
         error="stack.vrt has bands with different nodata values \\(band 1 0, band 2 65535\\).*-a_nodata"),
    Case("band_with_its_own_nodata", _stacked((s2_pixels()[0], 0), (_band_with_own_nodata(), 65535)), bands=(2,),
         check=_check_own_nodata),
    Case("bands_with_different_data_types", _stacked((s2_pixels()[0], None), (s2_pixels()[1].astype(np.float32), None)),
         error="stack.vrt has bands with different data types \\(band 1 uint16, band 2 float32\\).*-ot"),
    Case("alpha_band_selected", _edited("rgba.tif", _set_rgba, _rgba()), bands=(1, 2, 3, 4),
         error="band 4 of .*rgba.tif is an alpha band.*leave it out"),
    Case("guide_does_not_overlap", _guided_pair(guide_origin=(500000.0, 5800000.0)), method="guided",
         error="do not overlap"),
    Case("guide_in_another_crs", _guided_pair(guide_crs="EPSG:32632"), method="guided", error="CRS .* differ"),
    Case("guide_non_integer_ratio", _guided_pair(guide_pixel=15.0, guide_origin=(300000.0, 5800000.0)),
         method="guided", error="non-integer scale between grids"),
    # odd but valid: the output is right
    Case("guide_nodata_only", _guided_pair(hole=True), method="guided", check=_check_guide_hole),
    Case("guide_fill_values_without_nodata", _guided_pair(fill=True), method="guided", check=_check_guide_hole),
    Case("geographic_crs", _write("wgs84.tif", crs="EPSG:4326", transform=Affine(0.0002, 0, 12.5, 0, -0.0002, 41.9)),
         check=assert_refined),
    Case("no_crs", _write("no_crs.tif", crs=None), check=_check_no_crs),
    Case("rotated_pole_crs", _write("rotated_pole.tif", crs=ROTATED_POLE, transform=ROTATED_POLE_GRID), check=_check_crs_in_pam,
         pam=True),
    Case("rotated_geotransform",
         _write("rotated.tif", transform=Affine.translation(443720.0, 4171420.0) * Affine.rotation(20) * Affine.scale(20, -20)),
         check=assert_refined),
    Case("thirteen_bands", _write("l1c.tif", _thirteen_bands(), descriptions=S2_L1C_BANDS), check=assert_refined),
    Case("nan_and_inf_in_float_input", _write("float.tif", _float_with_non_finite()), check=_check_unmeasured),
    Case("float_fill_values_without_nodata", _write("filled.tif", _float_with_fill_values()), check=_check_unmeasured),
    Case("no_georeferencing", _write("plain.tif", crs=None, transform=Affine.identity()), check=_check_no_georeferencing),
    Case("ground_control_points", _edited("gcps.tif", _set_gcps, crs=None, transform=Affine.identity()), check=_check_gcps),
    Case("rpc_model", _edited("rpc.tif", _set_rpcs, crs=None, transform=Affine.identity()), check=_check_rpcs),
    Case("internal_mask", _edited("mask.tif", _mask_columns), check=_check_masked),
    Case("alpha_band", _edited("rgba.tif", _set_rgba, _rgba()), check=_check_alpha),
    Case("band_metadata", _edited("scaled.tif", _set_band_metadata), check=_check_band_metadata),
    Case("gdal_dataset_name", _zipped, check=assert_refined),
)


# -- running a case ---------------------------------------------------------------------------


def listing(folder: str) -> list[str] | None:
    """The sorted file names in ``folder``; ``None`` when it does not exist."""
    return sorted(os.listdir(folder)) if os.path.isdir(folder) else None


@dataclass(frozen=True)
class Prepared:
    """A case's inputs, its output path, and what was there before the run: the output folder's files
    and the bytes of the inputs that exist."""

    inputs: Inputs
    output: str
    before: list[str] | None
    digests: dict[str, str]


def digest(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def prepare(case: Case, folder: Path) -> Prepared:
    """Build ``case``'s inputs in ``folder/in`` and choose its output with the empty ``folder/out``."""
    (folder / "in").mkdir()
    (folder / "out").mkdir()
    inputs = case.build(folder / "in")
    output = case.output(inputs, folder / "out")
    digests = {p: digest(p) for p in inputs if os.path.exists(p)}
    return Prepared(inputs, output, listing(os.path.dirname(output)), digests)


def assert_outcome(case: Case, prepared: Prepared, message: str | None) -> None:
    """``message`` is the one-line error the run gave (``None``: it succeeded); check it against ``case``.

    On error nothing is written: the output folder holds what it held before (no output, no temporary
    file). On success it holds the output and its loss-curve PNG besides (and the output's PAM sidecar for a
    ``pam`` case), and nothing else. Either way the inputs keep their
    bytes (QGIS may add its statistics in an ``.aux.xml`` beside them when it opens them as layers).
    """
    folder = os.path.dirname(prepared.output)
    statistics = {os.path.basename(p) + ".aux.xml" for p in prepared.inputs}
    names = listing(folder)
    if names is not None:  # QGIS's statistics of an input in the output folder are not the run's
        names = [name for name in names if name not in statistics]
    if case.error is None:
        assert message is None, f"{case.id}: unexpected error {message!r}"
        written = [prepared.output, loss_curve_path(prepared.output), *([prepared.output + ".aux.xml"] if case.pam else [])]
        assert names == sorted(prepared.before + [os.path.basename(p) for p in written])
        case.check(prepared.inputs, prepared.output)
    else:
        assert message is not None, f"{case.id}: the run succeeded, expected an error matching {case.error!r}"
        assert "\n" not in message.strip() and re.search(case.error, message, re.IGNORECASE), message
        assert names == prepared.before
    assert {p: digest(p) for p in prepared.digests} == prepared.digests
