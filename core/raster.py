"""Raster I/O with rasterio: reading with band selection and validity masks, atomic GeoTIFF writing.

Arrays are ``(C, H, W)``. ``valid`` masks are boolean ``(C, H, W)``: false where the band equals its
nodata value, is not finite, is a float fill value (magnitude ``FILL_MAGNITUDE`` or more, e.g. −3.4028235e38
written without a nodata value: ``fill_value_warnings`` says so), or is masked by the file's own GDAL mask (an internal or ``.msk`` mask,
or an alpha band: alpha bands are left out of the default band selection and refused in an explicit
one). The selected bands must share one data type and one nodata value, as the output does. Outputs keep the
georeferencing (geotransform and CRS, or ground control points moved to the output's pixels, or none; an RPC
model moved to the output's pixels too, ``rpcs_on_grid``),
band descriptions, colour interpretation, scale/offset, units, metadata tags, nodata and dtype (values
rounded and clipped to the dtype's range) unless Float32 is asked for; pixels the input masked
without a nodata value are written as nodata, or under an internal mask when the output dtype has no
nodata value.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import socket
import tempfile
import threading
import time
import warnings
import zipfile
from xml.etree import ElementTree
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any, Sequence

import numpy as np
import rasterio
import rasterio.shutil
from affine import Affine
from rasterio.control import GroundControlPoint
from rasterio.enums import ColorInterp, MaskFlags
from rasterio.crs import CRS
from rasterio.errors import CRSError, NotGeoreferencedWarning, RasterioIOError
from rasterio.io import MemoryFile
from rasterio.rpc import RPC

from .config import GEOTIFF_EXTENSIONS, is_named_pipe
from .errors import InputError, OutputWriteError
from .grid import Grid, Window
from .normalise import band_extremes, constant_values, exact_float
from .progress import Progress, check_cancelled

SUPPORTED_DTYPES = ("uint8", "uint16", "int16", "uint32", "int32", "float32", "float64")

#: The advice for a raster of complex values (radar's single-look complex): its amplitude, or its real part.
COMPLEX_REMEDY = (
    'take its amplitude first, e.g. gdal_calc.py -A {path} --allBands A --type Float32 --calc "absolute(A)" --outfile '
    "AMPLITUDE.tif (gdal_translate -ot Float32 keeps the real part)"
)
#: The advice for a raster of another data type none of ``SUPPORTED_DTYPES`` (64-bit integers).
CONVERT_REMEDY = "convert it first, e.g. gdal_translate -ot Float64 {path} FLOAT64.tif"

#: The advice for a raster of signed bytes (GDAL's Int8 since 3.7, or a Byte band with ``PIXELTYPE=SIGNEDBYTE``,
#: which GDAL before 3.7 reads as 0–255): they are refused, since an Int8 output would read as unsigned bytes in
#: QGIS 3.22 (GDAL 3.6). The conversion reads right with any GDAL, where ``gdal_translate -ot Int16`` before 3.7
#: (QGIS 3.22's) turns −8 into 248.
INT8_REMEDY = (
    'convert it to Int16 first, e.g. gdal_calc.py -A {path} --allBands A --type Int16 --calc "A.astype(int16) - 256 * '
    '(A > 127)" --outfile INT16.tif (right with any GDAL version; gdal_translate -ot Int16 is only with GDAL 3.7 or later)'
)

#: Metadata items not carried to an output: statistics describe the input's values, not the output's, and this
#: tool's marks (``sentinel2_product.PRODUCT_TAG``) the file that bears them.
STALE_TAG_PREFIXES = ("STATISTICS_", "INTERNAL_SR_")


@dataclass(frozen=True)
class RasterInfo:
    """What is needed to write a raster like the input: grid, dtype, nodata, band metadata.

    ``window`` is the area of the file this stands for (``None``: the whole file); ``grid`` is that
    area's grid, and windows given to ``read_window`` are relative to it.
    """

    path: str
    grid: Grid
    dtype: str
    nodata: float | None
    bands: tuple[int, ...]
    descriptions: tuple[str | None, ...]
    colorinterp: tuple[ColorInterp, ...]
    window: Window | None = None
    #: The whole file's grid when ``window`` is set (``None``: ``grid`` is the whole file's).
    file_grid: Grid | None = None
    #: The extent ``window`` covers (xmin, ymin, xmax, ymax in the CRS), as given: it may reach past the file's grid,
    #: which ``window`` is clipped to (``None``: no extent).
    extent: tuple[float, float, float, float] | None = None
    #: False when the file has no geotransform (GDAL then reports the identity, which ``grid`` keeps:
    #: pixel coordinates); outputs are then written without one too.
    georeferenced: bool = True
    #: Ground control points of the file (pixel coordinates of the file) and their CRS.
    gcps: tuple[GroundControlPoint, ...] = ()
    gcp_crs: Any = None
    #: The file's RPC model (GDAL's ``RPC`` metadata domain, sidecar files included), for the file's pixels;
    #: ``None``: none.
    rpcs: RPC | None = None
    #: True when GDAL masks pixels of the selected bands other than by a nodata value (see the module); for
    #: the template of an output, when its pixels may be invalid other than by that nodata value (an
    #: ``AtomicGeoTIFF`` without one then writes an internal mask).
    masked: bool = False
    scales: tuple[float, ...] = ()
    offsets: tuple[float, ...] = ()
    units: tuple[str | None, ...] = ()
    #: Metadata items of the dataset and of each selected band (default domain, statistics left out).
    tags: dict[str, str] = field(default_factory=dict)
    band_tags: tuple[dict[str, str], ...] = ()
    #: The file's own CRS when ``open_info`` assigned another one to ``grid`` (``None``: none assigned,
    #: or the file has no CRS, see ``assigned_crs``).
    file_crs: Any = None
    assigned_crs: bool = False
    #: A nodata value the selected bands declare that their data type cannot hold (−9999 on UInt16), which GDAL
    #: and rasterio then ignore (``nodata`` is ``None``): no pixel holds it, so none is masked, and outputs do not
    #: carry it (``nodata_warnings`` says so); ``None``: none such.
    unheld_nodata: float | None = None


def rasterio_window(window: Window) -> rasterio.windows.Window:
    """``window`` as rasterio's window type."""
    return rasterio.windows.Window(window.col_off, window.row_off, window.width, window.height)


def check_map_grid(info: RasterInfo, subject: str, consequence: str, otherwise: str = "") -> None:
    """Refuse ``info`` when it is georeferenced by ground control points or an RPC model only: without a geotransform
    its ``grid`` is in pixel coordinates (its CRS, if any, is the points'), so there is no map grid to place an extent
    on or to match another raster's pixels with. The one-line ``InputError`` reads "``subject`` (the raster, e.g.
    "the guide PATH") is georeferenced by … only (no geotransform), so ``consequence``: warp it to a map grid first
    (gdalwarp)``otherwise``"."""
    if not info.georeferenced and (info.gcps or info.rpcs is not None):
        by = "ground control points" if info.gcps else "an RPC model (rational polynomial coefficients)"
        raise InputError(
            f"{subject} is georeferenced by {by} only (no geotransform), so {consequence}: warp it to a map grid first "
            f"(gdalwarp){otherwise}"
        )


def check_geotransform(info: RasterInfo, subject: str, consequence: str) -> None:
    """Refuse ``info`` unless it has a geotransform, the map grid that matching its pixels with another raster's needs:
    ``check_map_grid``'s refusal for a raster georeferenced by ground control points or an RPC model only, else for
    one with no georeferencing at all (its ``grid`` is in pixel coordinates, which tell nothing of where another
    raster's pixels fall) the one-line ``InputError`` "``subject`` has no georeferencing (no geotransform), so
    ``consequence``: give it its map position first (gdal_edit …)"."""
    check_map_grid(info, subject, consequence)
    if not info.georeferenced:
        raise InputError(
            f"{subject} has no georeferencing (no geotransform), so {consequence}: give it its map position first "
            "(gdal_edit -a_ullr ULX ULY LRX LRY -a_srs CRS)"
        )


def _restrict(info: RasterInfo, extent: tuple[float, float, float, float], block: int) -> RasterInfo:
    """``info`` for the whole pixels (whole ``block²`` blocks) of ``extent`` (xmin, ymin, xmax, ymax in the raster's CRS).

    A raster without a map grid to place an extent on (``check_map_grid``) is a one-line ``InputError``.
    """
    check_map_grid(info, info.path, "an extent cannot be placed on its pixels", ", or run without an extent")
    window = info.grid.covering_window(extent, info.path).to_blocks(block, info.grid.width, info.grid.height)
    return replace(info, grid=info.grid.window_grid(window), window=window, file_grid=info.grid, extent=extent)


#: How messages name the GDAL the engine reads with: rasterio's own build, whose version and drivers may differ
#: from those of QGIS's GDAL or of the system's ``gdalinfo``.
ENGINE_GDAL = f"the engine's GDAL (rasterio's, version {rasterio.__gdal_version__})"


def engine_has_driver(name: str) -> bool:
    """Whether the engine's GDAL has the driver of short name ``name`` (e.g. ``GTiff``, ``HDF4Image``)."""
    with rasterio.Env() as env:
        return name in env.drivers()


def open_raster(path: str, mode: str = "r", **profile: Any) -> rasterio.io.DatasetReaderBase:
    """``rasterio.open(path, mode, **profile)`` without the ``NotGeoreferencedWarning`` rasterio gives when it opens
    a file that has no geotransform (the committed crops, any unreferenced image, an output written without one).

    The engine's every open goes through here: a run says in its own one line that the input has no
    georeferencing (``georeferencing_note``), and rasterio's Python warning with its source line would repeat it
    in the command line's output and in QGIS's logs.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        return rasterio.open(path, mode, **profile)


def placed_on_map(path: str) -> bool:
    """Whether the raster ``path`` says where it lies: a geotransform, ground control points or an RPC model.
    Without any (a scan, or an output of one: ``georeferencing_note``), GDAL reports the identity transform and
    QGIS draws the raster in its own pixel units, x = column and y = −row from the origin."""
    with open_raster(path) as src:
        return not src.transform.is_identity or bool(src.gcps[0]) or src.rpcs is not None


def engine_opens(path: str) -> bool:
    """Whether the engine's GDAL opens ``path`` (a file or a GDAL dataset name) as a raster."""
    try:
        with open_raster(path):
            return True
    except RasterioIOError:
        return False


def unreadable(path: str, error: RasterioIOError) -> InputError:
    """The one-line error for a file GDAL cannot open or read, with GDAL's innermost reason."""
    if "not recognized as being in a supported file format" in str(error):
        archive = zipfile.is_zipfile(path) if os.path.isfile(path) else False
        remedy = ": it is a zip archive, unzip it and give the raster (or the product folder) inside" if archive else ""
        return InputError(f"{path} is not a raster that {ENGINE_GDAL} can read{remedy}")
    cause: BaseException = error
    while cause.__cause__ is not None:
        cause = cause.__cause__
    reason = (str(cause).strip().splitlines() or ["no reason given"])[0]
    return InputError(f"{path} cannot be read, the file may be damaged or truncated: {reason}")


def open_info(
    path: str,
    bands: tuple[int, ...] | None = None,
    extent: tuple[float, float, float, float] | None = None,
    block: int = 1,
    crs: str | None = None,
) -> RasterInfo:
    """Read the metadata of ``path`` and validate the band selection (1-based indices).

    With ``extent`` (xmin, ymin, xmax, ymax in the raster's CRS) the info stands for the window of whole
    pixels covering it, enlarged to whole ``block × block`` blocks of the file's grid (for a
    decimation by ``block`` whose pixels must be those of a whole-file run); an extent that shares no
    pixel with the raster is a one-line ``InputError``. ``crs`` (``EPSG:…``, WKT, PROJ: anything
    rasterio's ``CRS.from_user_input`` reads) is assigned instead of the file's, as GDAL's ``-a_srs`` or
    a CRS set on a QGIS layer do: the file's coordinates are taken to be in it, and outputs carry it.
    """
    if os.path.isdir(path):
        raise InputError(f"input {path} is a folder, not a raster")
    if is_named_pipe(path):
        raise InputError(f"input {path} is a named pipe, not a raster file")
    try:
        with open_raster(path) as src:
            info = _describe(src, path, bands)
    except RasterioIOError as error:
        if not os.path.exists(path):  # neither a file nor a dataset name GDAL opens (/vsizip/…, NETCDF:…)
            raise InputError(f"input {path} does not exist") from None
        raise unreadable(path, error) from None
    if crs is not None:
        info = replace(info, grid=replace(info.grid, crs=parse_crs(crs)), file_crs=info.grid.crs, assigned_crs=True)
    return info if extent is None else _restrict(info, extent, block)


def parse_crs(text: str) -> CRS:
    """The CRS named by ``text`` (``EPSG:32633``, WKT, PROJ); a one-line ``InputError`` when it is unknown."""
    try:
        return CRS.from_user_input(text)
    except (CRSError, ValueError, TypeError):
        raise InputError(f"unknown CRS {text!r}: give it as EPSG:CODE, WKT or a PROJ string") from None


#: The parameters of rasterio's ``update_tags(bidx, ns, **items)``: metadata items of these names cannot be passed
#: to it as keyword arguments as they are (``write_tags``).
UPDATE_TAGS_PARAMETERS = ("bidx", "ns")


def write_tags(dataset: rasterio.io.DatasetWriter, tags: dict[str, str], band: int = 0) -> None:
    """Add the metadata items ``tags`` (default domain) to the open ``dataset`` (``band`` 0) or to its 1-based ``band``.

    rasterio takes the items as keyword arguments beside its own parameters ``bidx`` and ``ns``, which would take
    items of those names for themselves; those names are passed with a trailing blank instead, which GDAL strips from
    an item's name (``CPLParseNameValue`` strips the blanks around the ``=``), so every item is written as it was.
    """
    items = {f"{name} " if name in UPDATE_TAGS_PARAMETERS else name: value for name, value in tags.items()}
    dataset.update_tags(band, None, **items)


def write_band_metadata(dataset: rasterio.io.DatasetWriter, info: RasterInfo) -> None:
    """Give the open ``dataset``'s bands, in order, the scale/offset, unit and metadata items (default domain,
    ``write_tags``) of ``info``'s selected bands: a stored value v then reads as v × scale + offset in the unit."""
    if info.scales:
        dataset.scales, dataset.offsets = info.scales, info.offsets
    if any(info.units):
        dataset.units = tuple(unit or "" for unit in info.units)
    for index, tags in enumerate(info.band_tags, start=1):
        write_tags(dataset, tags, index)


def _fresh_tags(tags: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in tags.items() if not k.startswith(STALE_TAG_PREFIXES)}


def nodata_key(value: float | None) -> Any:
    """A nodata value as compared: NaN equals NaN (``nan != nan``), ``None`` is none."""
    return "nan" if isinstance(value, float) and np.isnan(value) else value


def no_valid_pixels(info: RasterInfo) -> InputError:
    """The refusal of ``info``'s area (the whole file, or the window an extent chose) where every pixel is nodata,
    with what to do: an extent that holds data, or the nodata value to check (a value declared nodata that is data
    masks every pixel holding it)."""
    extent = "choose an extent that holds data, or " if info.window is not None else ""
    declared = f" ({value_text(info.nodata)})" if info.nodata is not None else ""
    return InputError(
        f"{info.path} has no valid pixels (everything is nodata): {extent}check its nodata value{declared}; where that "
        f"value is data, remove it with gdal_edit.py -unsetnodata {info.path}"
    )


def value_text(value: Any) -> str:
    """A band's data type or nodata value as an error message shows it (``None``: ``none``)."""
    if value is None:
        return "none"
    return f"{value:.10g}" if isinstance(value, float) else str(value)


def _common_value(path: str, selected: tuple[int, ...], values: tuple, what: str, remedy: str) -> Any:
    """The one value of ``values`` (one per band of ``path``, e.g. ``src.dtypes``) that all ``selected`` bands share.

    The output is one GeoTIFF with one data type and one nodata value, so selected bands that differ are a
    one-line ``InputError`` naming the bands, their values and ``remedy`` (NaN equals NaN; ``None``: none).
    """
    chosen = [values[b - 1] for b in selected]
    distinct = {nodata_key(v) for v in chosen}
    if len(distinct) > 1:
        listing = ", ".join(f"band {b} {value_text(v)}" for b, v in zip(selected, chosen))
        raise InputError(f"{path} has bands with different {what} ({listing}), but an output holds one: {remedy}")
    return chosen[0]


def _missing(file: str) -> bool:
    """Whether ``file``, one a dataset reads, is gone for the engine: a path that does not exist, or a ``/vsimem/``
    dataset its GDAL does not hold (QGIS's, where rasterio bundles its own GDAL); other virtual file systems
    (``/vsizip/…``, ``/vsicurl/…``) are left to the read."""
    if file.startswith("/vsimem/"):
        return not rasterio.shutil.exists(file)
    return not file.startswith("/vsi") and not os.path.exists(file)


def _describe(src: rasterio.DatasetReader, path: str, bands: tuple[int, ...] | None) -> RasterInfo:
    """The ``RasterInfo`` of the open dataset ``src`` for the 1-based ``bands`` (default: all but alpha)."""
    count = src.count
    if count == 0:
        parts = "; ".join(name for name in src.subdatasets[:5]) or "none listed"
        raise InputError(f"{path} holds no raster bands itself: open one of its subdatasets ({parts})")
    missing = next((file for file in src.files[1:] if _missing(file)), None)
    if missing is not None:  # a VRT's source: GDAL opens the VRT and fails only when the pixels are read
        raise InputError(f"input {path} reads {missing}, which does not exist (any more): restore it or rebuild {path}")
    if bands:
        selected = tuple(bands)
    else:
        selected = tuple(b for b in range(1, count + 1) if src.colorinterp[b - 1] != ColorInterp.alpha)
        selected = selected or tuple(range(1, count + 1))
    for band in selected:
        if not 1 <= band <= count:
            raise InputError(f"band {band} is out of range: {path} has {count} band(s)")
    if len(set(selected)) != len(selected):
        raise InputError(f"bands {','.join(map(str, selected))} name a band twice: give each band once")
    for band in selected:
        if src.colorinterp[band - 1] == ColorInterp.palette:
            raise InputError(
                f"band {band} of {path} has a colour table: its values are classes, which interpolation would "
                "mix into classes that do not exist; super-resolve continuous measurements only"
            )
        if bands and src.colorinterp[band - 1] == ColorInterp.alpha:
            raise InputError(
                f"band {band} of {path} is an alpha band, i.e. a mask, not a measurement: leave it out of the bands "
                "(the others are read under its mask, and the output carries the mask)"
            )
    dtype = _common_value(path, selected, src.dtypes, "data types",
                          "select bands of one type, or convert them to one with gdal_translate -ot")
    nodata = _common_value(path, selected, src.nodatavals, "nodata values",
                           "select bands that share one, or give them one with gdal_translate -a_nodata")
    signed_bytes = any(src.tags(b, ns="IMAGE_STRUCTURE").get("PIXELTYPE") == "SIGNEDBYTE" for b in selected)
    if dtype == "int8" or (dtype == "uint8" and signed_bytes):
        raise InputError(f"{path}: data type int8 (signed bytes) is not supported: {INT8_REMEDY.format(path=path)}")
    if dtype not in SUPPORTED_DTYPES:
        raise InputError(
            f"{path}: data type {dtype} is not supported (supported: {', '.join(SUPPORTED_DTYPES)}): "
            f"{(COMPLEX_REMEDY if dtype.startswith('complex') else CONVERT_REMEDY).format(path=path)}"
        )
    gcps, gcp_crs = src.gcps
    flags = [src.mask_flag_enums[b - 1] for b in selected]
    return RasterInfo(
        path=path,
        grid=Grid(src.width, src.height, src.transform, src.crs),
        dtype=dtype,
        nodata=nodata,
        bands=selected,
        descriptions=tuple(src.descriptions[b - 1] for b in selected),
        colorinterp=tuple(src.colorinterp[b - 1] for b in selected),
        georeferenced=not src.transform.is_identity,
        gcps=tuple(gcps),
        gcp_crs=gcp_crs,
        rpcs=src.rpcs,
        masked=any(MaskFlags.all_valid not in f and MaskFlags.nodata not in f for f in flags),
        scales=tuple(src.scales[b - 1] for b in selected),
        offsets=tuple(src.offsets[b - 1] for b in selected),
        units=tuple(src.units[b - 1] for b in selected),
        tags=_fresh_tags(src.tags()),
        band_tags=tuple(_fresh_tags(src.tags(b)) for b in selected),
        unheld_nodata=_unheld_nodata(src, selected) if nodata is None else None,
    )


def _unheld_nodata(src: rasterio.DatasetReader, selected: tuple[int, ...]) -> float | None:
    """The nodata value the first of the ``selected`` bands of ``src`` declares where rasterio reports none: one its
    data type cannot hold, which rasterio drops (GDAL reads it, and writes it in a VRT description of the dataset,
    which is read here: metadata only, well under a millisecond). ``None`` where the bands declare none, or the
    dataset cannot be described as a VRT."""
    try:
        with MemoryFile(ext=".vrt") as memory:
            rasterio.shutil.copy(src, memory.name, driver="VRT")
            root = ElementTree.fromstring(memory.read())
    except Exception:  # noqa: BLE001 (a driver GDAL cannot describe so, whatever it raises: the note is left out)
        return None
    for band in root.iter("VRTRasterBand"):
        value = band.findtext("NoDataValue")
        if int(band.get("band", "0")) in selected and value is not None:
            try:
                return float(value)
            except ValueError:
                return None
    return None


def georeferencing_note(info: RasterInfo) -> str | None:
    """The log line about an input's georeferencing when it is not a geotransform with a CRS, else ``None``."""
    if info.assigned_crs:
        own = info.file_crs.to_string() if info.file_crs else "no CRS"
        return f"{info.path}: CRS {info.grid.crs.to_string()} assigned, replacing the file's ({own}); the output carries it"
    if info.gcps:
        return f"{info.path} is georeferenced by {len(info.gcps)} ground control points: they are moved to the output's pixels"
    if info.rpcs is not None and not info.georeferenced:
        return f"{info.path} is georeferenced by an RPC model: it is moved to the output's pixels"
    if info.grid.crs is None:
        return f"warning: {info.path} has no {'CRS' if info.georeferenced else 'georeferencing'}; the output is written without one"
    return None


def rpcs_on_grid(rpcs: RPC, to_file: Affine) -> RPC:
    """The RPC model ``rpcs`` of a file, for a raster whose pixel coordinates map to the file's by ``to_file``.

    GDAL's RPC convention (RFC 22, ``alg/gdal_rpc.cpp``): the polynomials of the normalised longitude,
    latitude and height give sample = SAMP_OFF + SAMP_SCALE · P/Q and line = LINE_OFF + LINE_SCALE · P'/Q'
    with the *centre* of the top-left pixel at (0, 0); GDAL adds ½ to reach its own convention, which
    ``core.grid`` and ``to_file`` follow: the top-left pixel's *corner* at (0, 0). ``to_file`` must be a
    scale and a translation (column ↦ a · column + c, row ↦ e · row + f), as for a window of the file
    refined or coarsened by an integer factor. A ground point at file sample u is at file column u + ½,
    i.e. at column (u + ½ − c) / a of the raster, which is its sample (u + ½ − c) / a − ½ there; so
    SAMP_OFF' = (SAMP_OFF + ½ − c) / a − ½ and SAMP_SCALE' = SAMP_SCALE / a, and lines alike with e and f.
    The ground side (offsets, scales and coefficients of the polynomials, errors) is kept.
    """
    a, c, e, f = to_file.a, to_file.c, to_file.e, to_file.f
    return RPC(**{
        **rpcs.to_dict(),
        "samp_off": (rpcs.samp_off + 0.5 - c) / a - 0.5,
        "samp_scale": rpcs.samp_scale / a,
        "line_off": (rpcs.line_off + 0.5 - f) / e - 0.5,
        "line_scale": rpcs.line_scale / e,
    })


#: Magnitude from which a floating-point value is a fill value, not a measurement: the fills GDAL, ArcGIS and
#: others write into float rasters (±3.4028235e38, the float32 extremes; −1e30; ±1.7976931348623157e308) lie
#: beyond it, and no physical measurement does. Such values read as nodata (``valid_mask``).
FILL_MAGNITUDE = 1e30

#: Values (pixels × bands) ``fill_value_warnings`` reads at once: 64 MB of float32.
SCAN_STRIP_VALUES = 2**24


def valid_interior(valid: np.ndarray) -> np.ndarray:
    """``(H, W)`` → ``(H, W)``: valid pixels whose four neighbours inside the image are valid too (where
    ``np.gradient`` reads no invalid pixel)."""
    inner = valid.copy()
    inner[1:] &= valid[:-1]
    inner[:-1] &= valid[1:]
    inner[:, 1:] &= valid[:, :-1]
    inner[:, :-1] &= valid[:, 1:]
    return inner


def valid_mask(raw: np.ndarray, nodata: float | None) -> np.ndarray:
    """True where ``raw`` (in its own dtype, so the comparison is exact) is a measurement: not ``nodata`` and,
    for a float dtype, finite and of magnitude below ``FILL_MAGNITUDE``."""
    if np.issubdtype(raw.dtype, np.floating):
        with np.errstate(invalid="ignore"):
            valid = np.abs(raw) < FILL_MAGNITUDE  # false for NaN and ±Inf too
    else:
        valid = np.ones(raw.shape, dtype=bool)
    if nodata is not None and not np.isnan(nodata):
        valid &= raw != nodata
    return valid


def unflagged_fills(raw: np.ndarray, nodata: float | None) -> np.ndarray:
    """True where float ``raw`` holds a finite value of magnitude ``FILL_MAGNITUDE`` or more that is not ``nodata``:
    a fill value the file does not declare, which ``valid_mask`` makes nodata all the same."""
    fills = np.isfinite(raw) & (np.abs(raw) >= FILL_MAGNITUDE)
    if nodata is not None and not np.isnan(nodata):
        fills &= raw != nodata
    return fills


def may_be_invalid(info: RasterInfo) -> bool:
    """Whether pixels of ``info``'s bands may read as invalid (``read_window``): the file has a nodata value, a
    GDAL mask, or a float data type (NaN, ±Inf). Metadata only: the pixels may all be valid still."""
    return info.nodata is not None or info.masked or np.issubdtype(np.dtype(info.dtype), np.floating)


def as_float(raw: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """``raw`` as the float type that holds its values exactly (``normalise.exact_float``: float32 up to 16-bit
    integers and float32, float64 for int32, uint32 and float64); invalid pixels (possibly beyond the float32
    range) become NaN."""
    dtype = exact_float(raw.dtype)
    with np.errstate(over="ignore", invalid="ignore"):
        return np.where(valid, raw.astype(dtype), dtype.type(np.nan))


def file_window(info: RasterInfo, window: Window | None = None) -> Window | None:
    """``window`` of ``info.grid`` (default: all of it) in the file's pixels (``None``: the whole file)."""
    if info.window is None:
        return window
    if window is None:
        return info.window
    return window.translated(info.window.col_off, info.window.row_off)


def read_window(
    info: RasterInfo, window: Window | None = None, out_shape: tuple[int, int, int] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Read the selected bands in ``window`` of ``info.grid`` (default: all) as float values and a validity mask.

    The values are exact (``as_float``): float32 for a file of 8- or 16-bit integers or float32, float64 for
    int32, uint32 and float64, so a window costs twice the memory there. ``out_shape`` ``(C, h, w)`` reads the
    window decimated to that size (nearest neighbour), masks too.
    """
    raw, masked = _read_raw(info, window, out_shape)
    valid = valid_mask(raw, info.nodata) & masked
    return as_float(raw, valid), valid


def _read_raw(
    info: RasterInfo, window: Window | None = None, out_shape: tuple[int, int, int] | None = None
) -> tuple[np.ndarray, np.ndarray | bool]:
    """The selected bands in ``window`` of ``info.grid`` (as ``read_window``) in the file's own dtype, and GDAL's
    mask of them (true: not masked; ``True`` when the file masks nothing but by its nodata value)."""
    in_file = file_window(info, window)
    area = None if in_file is None else rasterio_window(in_file)
    try:
        with open_raster(info.path) as src:
            raw = src.read(list(info.bands), window=area, out_shape=out_shape)
            masked = src.read_masks(list(info.bands), window=area, out_shape=out_shape) > 0 if info.masked else True
    except RasterioIOError as error:
        raise unreadable(info.path, error) from None
    return raw, masked


def _strips(info: RasterInfo, window: Window | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``window`` of ``info.grid`` (default: all of it) in strips of whole rows of at most ``SCAN_STRIP_VALUES``
    values: each strip's selected bands in the file's own dtype and where they are not masked by GDAL (``_read_raw``)."""
    area = window or Window(0, 0, info.grid.width, info.grid.height)
    rows = max(1, SCAN_STRIP_VALUES // (area.width * len(info.bands)))
    for top in range(0, area.height, rows):
        raw, masked = _read_raw(info, Window(area.col_off, area.row_off + top, area.width, min(rows, area.height - top)))
        yield raw, np.broadcast_to(masked, raw.shape)


def band_ranges(info: RasterInfo, window: Window | None = None, until_varying: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """``normalise.band_extremes`` of ``info``'s selected bands over ``window`` of its grid (default: all of it), over
    their valid pixels (``valid_mask``, GDAL's mask): two float64 ``(C,)`` arrays. Reads the area in strips
    (``_strips``); with ``until_varying`` it stops at the first strip by which every band has shown two values (the
    extremes are then those of the strips read), so a raster whose bands vary is read about one strip deep."""
    low, high = np.full(len(info.bands), np.inf), np.full(len(info.bands), -np.inf)
    for raw, masked in _strips(info, window):
        strip_low, strip_high = band_extremes(raw, valid_mask(raw, info.nodata) & masked)
        low, high = np.minimum(low, strip_low), np.maximum(high, strip_high)
        if until_varying and (low < high).all():
            break
    return low, high


def constant_bands(info: RasterInfo, window: Window | None = None) -> np.ndarray:
    """``normalise.constant_values`` of ``info``'s selected bands over ``window`` of its grid (default: all of it):
    each band's value where all its valid pixels (``valid_mask``, GDAL's mask) there hold one, NaN elsewhere.
    Reads no further than the first strip by which every band has varied (``band_ranges``)."""
    return constant_values(*band_ranges(info, window, until_varying=True))


def nodata_warnings(info: RasterInfo) -> list[str]:
    """What a run's log says of ``info``'s nodata beyond its value: a declared nodata value the data type cannot hold
    (``RasterInfo.unheld_nodata``), then the fill values read as nodata (``fill_value_warnings``)."""
    lines = []
    if info.unheld_nodata is not None:
        dtype = np.dtype(info.dtype)
        limits = np.iinfo(dtype) if np.issubdtype(dtype, np.integer) else np.finfo(dtype)
        lines.append(
            f"warning: {info.path} declares nodata {value_text(info.unheld_nodata)}, which its data type {info.dtype} cannot "
            f"hold ({value_text(limits.min)} to {value_text(limits.max)}): no pixel holds it, so none is masked, and no "
            f"raster written carries it; to mask pixels, declare a value in range (gdal_edit.py -a_nodata VALUE {info.path})"
        )
    return lines + fill_value_warnings(info)


def fill_value_warnings(info: RasterInfo) -> list[str]:
    """One warning line per selected band of a float raster that holds fill values its nodata value does not
    mark (``unflagged_fills``, pixels GDAL masks left out): how many, which value when they share one, that they
    are read as nodata, and how to declare it. Reads ``info``'s area once, in strips of rows (``_strips``);
    empty for an integer raster, which cannot hold such values."""
    dtype = np.dtype(info.dtype)
    if not np.issubdtype(dtype, np.floating):
        return []
    counts = np.zeros(len(info.bands), dtype=np.int64)
    low, high = np.full(len(info.bands), np.inf), np.full(len(info.bands), -np.inf)
    for raw, masked in _strips(info):
        fills = unflagged_fills(raw, info.nodata) & masked
        strip_low, strip_high = band_extremes(raw, fills)
        counts += fills.sum(axis=(1, 2))
        low, high = np.minimum(low, strip_low), np.maximum(high, strip_high)
    lines = []
    for band in np.flatnonzero(counts):
        value = str(dtype.type(low[band])) if low[band] == high[band] else None
        held = f"the fill value {value}" if value else f"values of magnitude ≥ {FILL_MAGNITUDE:g} (fill values)"
        if info.nodata is None:
            remedy = ("but the raster declares no nodata value: they are read as nodata; declare it to say so "
                      f"(gdal_translate -a_nodata {value or 'VALUE'})")
        else:
            remedy = f"besides the raster's nodata value {value_text(info.nodata)}: they are read as nodata too"
        lines.append(f"warning: band {info.bands[band]} of {info.path}: {counts[band]} pixel(s) hold {held}, {remedy}")
    return lines


def loss_curve_path(output_path: str) -> str:
    """Where a run's loss-curve PNG goes: beside the output, named by its whole file name as GDAL names the
    ``.aux.xml`` beside a raster, ``out.tif`` → ``out.tif.loss.png``; so outputs whose names differ only in their
    extension (``a.tif`` and ``a.tiff``, ``OUT.TIF`` and ``OUT.TIFF``) never share one, and no run replaces
    another output's curve."""
    return output_path + ".loss.png"


def check_extension(path: str, label: str, extensions: tuple[str, ...], why: str = "") -> None:
    """Refuse ``path`` (the ``label``, e.g. "output") unless its name ends in one of ``extensions`` (lower case, any
    case taken: ``(".tif", ".tiff")``), in a one-line ``InputError`` ending in ``why``; blank space after the
    extension is named, where the line would otherwise read "a.tif must end in .tif", and so is an existing folder,
    with a file in it to give instead (named after ``label``'s first word: ``output.tif``, ``kernel.npy``)."""
    if os.path.isdir(path):
        example = os.path.join(path, label.split()[0] + extensions[0])
        raise InputError(f"{label} {path} is a folder: give a file's path, e.g. {example}")
    if path.lower().endswith(extensions):
        return
    if path.rstrip().lower().endswith(extensions):
        raise InputError(f"{label} {path!r} ends in blank space after its extension: remove it")
    raise InputError(f"{label} {path} must end in {' or '.join(extensions)}{why}")


def check_raster_output(output: str, inputs: list[str], loss_curve: bool = True, probe: bool = True) -> None:
    """The checks of a run's raster output: a GeoTIFF name, ``check_output_paths`` and, for a run that draws
    its training loss (``loss_curve``), the same for the loss curve's PNG beside it (``probe``: as there); and no
    sidecar GDAL would read with the output (``geotiff_sidecars``) is an input's own, or may be the file of another
    dataset named like the output (``shared_sidecars``): the writer removes the sidecars it reads."""
    check_extension(output, "output", GEOTIFF_EXTENSIONS, ": it is written as GeoTIFF")
    read = {path: dataset_files(path) for path in inputs}
    if not loss_curve:
        check_output_paths([output], inputs, probe, read=read)
    else:
        curve = loss_curve_path(output)
        check_output_paths([output, curve], inputs, probe, {curve: f"the loss curve {curve} drawn beside output {output}"}, read)
    for path, files in read.items():
        own = {os.path.abspath(file) for file in (*files, *geotiff_sidecars(path))}
        for sidecar in geotiff_sidecars(output):
            if os.path.abspath(sidecar) in own:
                raise InputError(
                    f"output {output}: GDAL would read {sidecar} beside it as its own, and that file belongs to the "
                    f"input {path}: choose another output name"
                )
    shared, others = shared_sidecars(output)
    if shared and others:
        raise InputError(
            f"output {output}: GDAL would read {shared[0]} beside it as its own, and that file may belong to "
            f"{others[0]}, named like the output: choose another output name"
        )


def band_labels(bands: Sequence[int], names: Sequence[str | None]) -> list[str]:
    """``band 3 (B4)``, or ``band 3`` for a band without a name: bands (1-based numbers) in messages and log lines."""
    return [f"band {b} ({n})" if n else f"band {b}" for b, n in zip(bands, names)]


def dataset_files(path: str) -> list[str]:
    """The files GDAL reads for the dataset ``path``: the file itself and, e.g., a VRT's sources, a
    ``.msk`` or ``.aux.xml`` beside it (``[path]`` when GDAL cannot tell)."""
    try:
        with open_raster(path) as src:
            return [path, *src.files]
    except (RasterioIOError, OSError, ValueError):
        return [path]


def _geotiff_sidecar_names(path: str) -> tuple[set[str], set[str]]:
    """The names (lower case) of the files GDAL 3.9 reads beside the GeoTIFF ``path`` (``dir/name.ext``), checked
    with GDAL, as (those named after the file, those named after its stem): beside ``name.ext`` its PAM metadata
    (``.aux.xml``), overviews (``.ovr``) and mask (``.msk``); beside ``name`` an RPC model (``.RPB``, ``_rpc.txt``:
    either overrides the file's own RPC tag), a world file (``.tfw``, ``.tifw``/``.tiffw``, ``.wld``) or MapInfo
    ``.tab`` (the georeferencing of a file without a geotransform) and DigitalGlobe ``.IMD`` metadata. A ``.prj``
    is not read. A stem's sidecars may be another dataset's: ``name.wld`` of ``name.png``, ``name.tab`` of a
    MapInfo table (``name.dat``, ``name.map``), ``name.RPB`` of ``name.NTF``."""
    name = os.path.basename(path)
    stem, ext = os.path.splitext(name)
    ext = ext[1:]
    beside_name = [name + suffix for suffix in (PAM_SUFFIX, ".ovr", ".msk")]
    beside_stem = [stem + suffix for suffix in (".rpb", "_rpc.txt", f".{ext[:1]}{ext[-1:]}w", f".{ext}w", ".wld", ".tab", ".imd")]
    return {file.lower() for file in beside_name}, {file.lower() for file in beside_stem}


def _folder_entries(path: str) -> list[str]:
    """The paths in ``path``'s folder, sorted (none when the folder cannot be listed)."""
    folder = os.path.dirname(os.path.abspath(path))
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    return [os.path.join(folder, name) for name in sorted(names)]


def geotiff_sidecars(path: str) -> list[str]:
    """The files beside the GeoTIFF ``path`` (whether or not it exists) that GDAL reads with it, any case of
    their names matching as in GDAL (``out.RPB``, ``OUT_rpc.txt``, ``OUT.TIF.ovr``): see ``_geotiff_sidecar_names``."""
    wanted = set.union(*_geotiff_sidecar_names(path))
    return [entry for entry in _folder_entries(path) if os.path.basename(entry).lower() in wanted]


def shared_sidecars(path: str) -> tuple[list[str], list[str]]:
    """The sidecars GDAL reads beside the GeoTIFF ``path`` (``geotiff_sidecars``) that another dataset may own,
    and the other datasets' files: (sidecars, files). A sidecar may be another's when it is named after the stem
    (``name.wld``, ``name.RPB``; ``_geotiff_sidecar_names``) or after another file whose name only its case tells
    from ``path``'s (``NAME.TIF.ovr``: GDAL matches sidecar names in any case). Another dataset is any other file
    named ``stem.*`` in any case (``name.png``, the ``name.dat`` of a MapInfo table, ``name.NTF``, ``NAME.TIF``)
    but ``path`` itself, its own sidecars (``name.ext.*``) and the stem's sidecar names. Without another dataset
    the sidecars are an earlier file's at ``path``, stale once a new one is written."""
    name = os.path.basename(path)
    stem = os.path.splitext(name)[0].lower()
    beside_name, beside_stem = _geotiff_sidecar_names(path)
    sidecars, others = [], []
    for entry in _folder_entries(path):
        entry_name = os.path.basename(entry)
        lower = entry_name.lower()
        named_after = os.path.join(os.path.dirname(entry), entry_name[: len(name)])  # for a sidecar of a name
        if lower in beside_stem or (lower in beside_name and not same_file(named_after, path)):
            sidecars.append(entry)
        elif lower.startswith(stem + ".") and not lower.startswith(name.lower() + ".") and not same_file(entry, path):
            others.append(entry)
    return sidecars, others


def stale_sidecars(path: str) -> list[str]:
    """The sidecars of an earlier file at the GeoTIFF ``path`` that its writer removes, since GDAL would read them
    with the new file (``geotiff_sidecars``): all of them, but those another dataset may own (``shared_sidecars``)
    when there is one. ``check_raster_output`` refuses an output with such sidecars before a run."""
    shared, others = shared_sidecars(path)
    return [sidecar for sidecar in geotiff_sidecars(path) if not others or sidecar not in shared]


def same_file(a: str, b: str) -> bool:
    """Whether paths ``a`` and ``b`` name one file: the same absolute path, or existing files that are one (through a
    symbolic link, a hard link, or another letter case where the file system ignores it)."""
    return os.path.abspath(a) == os.path.abspath(b) or (os.path.exists(a) and os.path.exists(b) and os.path.samefile(a, b))


def _name_max(folder: str) -> int | None:
    """The longest file name (bytes) ``folder``'s file system takes; ``None`` where the system cannot tell
    (Windows has no ``pathconf``, and NTFS counts UTF-16 units, not bytes)."""
    try:
        return os.pathconf(folder, "PC_NAME_MAX")
    except (AttributeError, OSError, ValueError):
        return None


def check_output_paths(
    outputs: list[str],
    inputs: list[str],
    probe: bool = True,
    labels: dict[str, str] | None = None,
    read: dict[str, list[str]] | None = None,
) -> None:
    """Refuse to overwrite an input (or a file its dataset reads: a VRT's sources, a mask) or a folder with
    any of ``outputs``, and check that their folders exist and take a file of that name (its length): with
    ``probe``, by creating the run's temporary file there and removing it, once per folder (front ends
    refreshing a form on every change leave that to the run). Each input's files are asked of GDAL once.
    ``labels`` names side files in the messages (e.g. "the loss curve X drawn beside output Y"; default
    "output X"). ``read``: each input's ``dataset_files`` when the caller has asked GDAL already."""
    if read is None:
        read = {path: dataset_files(path) for path in inputs}
    probed: set[str] = set()
    for output in outputs:
        side = output in (labels or {})  # a side file, named with the output it goes beside
        label = labels[output] if side else f"output {output}"
        clash = "would replace" if side else "is"
        folder = os.path.dirname(os.path.abspath(output))
        if os.path.isdir(output):
            raise InputError(f"{label} is a folder: give the output file's path")
        for path, files in read.items():
            if same_file(output, path):
                raise InputError(f"{label} {clash} the input: choose another output path")
            if any(same_file(output, file) for file in files):
                raise InputError(f"{label} {clash} a file the input {path} reads: choose another output path")
        if os.path.exists(folder) and not os.path.isdir(folder):
            raise InputError(f"output folder {folder} of {label} is a file, not a folder")
        if not os.path.isdir(folder):
            raise InputError(f"output folder {folder} does not exist: create it, or choose another folder")
        if not os.access(folder, os.W_OK):
            raise InputError(f"output folder {folder} is not writable: choose a folder you may write in, or make it writable")
        name, longest = os.path.basename(output), _name_max(folder)
        if longest is not None and len(os.fsencode(name)) > longest:
            raise InputError(
                f"{label}: the file name is {len(os.fsencode(name))} bytes long, its folder takes at most {longest}: "
                "choose a shorter name"
            )
        if probe and folder not in probed:
            handle, probe_path = temporary_beside(output)  # what the run will do: refused by read-only mounts, /proc, …
            os.close(handle)
            os.remove(probe_path)
            probed.add(folder)


def output_dtype(info: RasterInfo, float32: bool) -> str:
    return "float32" if float32 else info.dtype


def output_nodata(info: RasterInfo, dtype: str) -> float | None:
    """The nodata value written: the input's when ``dtype`` can hold it, else NaN for float output.

    A raster without nodata gets NaN for float output (NaN/Inf input pixels become nodata) and none
    for integer output.
    """
    dt = np.dtype(dtype)
    if info.nodata is not None:
        if np.isnan(info.nodata) or np.issubdtype(dt, np.integer):
            return info.nodata
        if abs(info.nodata) <= float(np.finfo(dt).max):
            return info.nodata
    return float("nan") if np.issubdtype(dt, np.floating) else None


def to_dtype(values: np.ndarray, valid: np.ndarray, dtype: str, nodata: float | None) -> tuple[np.ndarray, np.ndarray]:
    """Round and clip float ``values`` ``(C, h, w)`` to ``dtype``; invalid pixels become ``nodata``.

    Returns the cast values and, per band, how many valid values an integer ``dtype`` could not hold and
    were clipped into its range: ``(C, 2)``, (below, above); zeros for float types.
    """
    dt = np.dtype(dtype)
    clipped = np.zeros((values.shape[0], 2), dtype=np.int64)
    if np.issubdtype(dt, np.integer):
        limits, rounded = np.iinfo(dt), np.rint(np.where(valid, values, 0))  # invalid pixels may hold NaN
        clipped[:, 0] = ((rounded < limits.min) & valid).sum(axis=(1, 2))
        clipped[:, 1] = ((rounded > limits.max) & valid).sum(axis=(1, 2))
        out = np.clip(rounded, limits.min, limits.max).astype(dt)
    else:
        out = values.astype(dt)
    if nodata is not None and not np.isnan(nodata):
        # a valid pixel must never read as nodata: move it one step towards the data range
        clash = valid & (out == nodata)
        if np.issubdtype(dt, np.integer):
            out[clash] = nodata + 1 if nodata < np.iinfo(dt).max else nodata - 1
        else:
            out[clash] = np.nextafter(dt.type(nodata), dt.type(np.inf))
    if nodata is not None:
        out[~valid] = nodata
    return out, clipped


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


#: Prefix (hidden) and suffix of the temporary files a GeoTIFF is written to, and of ``sentinel2``'s staging folder:
#: no GIS lists ``.internal_sr-*.part`` as rasters, so a process killed mid-write (SIGKILL, power loss) leaves no
#: half-written layer.
PARTIAL_PREFIX = ".internal_sr-"
PARTIAL_SUFFIX = ".part"

#: Suffix of GDAL's PAM sidecar, ``name.ext.aux.xml``: what GeoTIFF tags cannot hold (a rotated-pole CRS,
#: ``+proj=ob_tran``, has no GeoTIFF keys). GDAL writes it beside the file it closes, a temporary file included.
PAM_SUFFIX = ".aux.xml"


def replace_with_pam(source: str, target: str) -> None:
    """``os.replace`` ``source`` by ``target``, with the PAM sidecar GDAL wrote beside ``source`` (``PAM_SUFFIX``)
    moved to ``target``'s; ``target``'s earlier PAM sidecar is removed when ``source`` has none."""
    os.replace(source, target)
    if os.path.exists(source + PAM_SUFFIX):
        os.replace(source + PAM_SUFFIX, target + PAM_SUFFIX)
    elif os.path.exists(target + PAM_SUFFIX):
        os.remove(target + PAM_SUFFIX)


def remove_with_pam(path: str) -> None:
    """Remove ``path`` and the PAM sidecar GDAL may have written beside it, where they exist."""
    for file in (path, path + PAM_SUFFIX):
        if os.path.exists(file):
            os.remove(file)


def temporary_beside(path: str) -> tuple[int, str]:
    """A new hidden temporary file in ``path``'s folder (``tempfile.mkstemp``'s handle and name); a folder
    that refuses it (read-only, a virtual file system such as /proc) is a one-line ``InputError``. A folder that is
    there but answers ENOENT ("No such file or directory") for a new file takes no new files at all (/proc, /sys):
    the message says so rather than that something is missing."""
    folder = os.path.dirname(os.path.abspath(path))
    try:
        return tempfile.mkstemp(prefix=PARTIAL_PREFIX, suffix=PARTIAL_SUFFIX, dir=folder)
    except OSError as error:
        raise folder_refusal(folder, error) from None


def folder_refusal(folder: str, error: OSError) -> InputError:
    """The one-line ``InputError`` for ``folder`` refusing a new file with ``error`` (``temporary_beside``)."""
    reason = error.strerror or str(error)
    if error.errno == errno.ENOENT and os.path.isdir(folder):
        reason = f"the folder does not accept new files (the system says: {reason})"
    return InputError(f"cannot write in output folder {folder}: {reason}; choose another folder")


#: Suffix of the claim a run holds on each file it writes or removes (``claimed``): a hidden file beside it,
#: ``out.tif`` → ``.internal_sr-out.tif.claim``, holding one line "PID HOST START": the claiming process's id, this
#: machine's name (``HOST``) and when the process started (``process_start``; left out where it cannot be read, and
#: in the claims of versions before it, which are read as "PID HOST").
CLAIM_SUFFIX = ".claim"

#: Longest file name (bytes) a claim is named after; a longer one's claim is named by the name's SHA-1, so that the
#: claim's own name stays within the 255 bytes file systems take.
CLAIM_NAME_MAX = 200

#: Seconds after which a claim that holds no process id is stale: its run was killed between creating it and
#: writing the id (a younger one is a run starting now).
CLAIM_WRITE_GRACE = 2.0

#: This machine's name, written into the claims of this process: a claim of another host on a shared folder is
#: never taken for stale, as its process cannot be looked up from here.
HOST = socket.gethostname() or "localhost"


@dataclass(eq=False)
class Claim:
    """A claim file this process holds (``claimed``), for the run on thread ``thread``; ``count``: the claims of
    that run it serves (a run claims its output at its start, then again as it stages the file)."""

    file: str
    thread: int
    count: int = 1


#: The claims this process holds (any thread), under ``_CLAIM_LOCK``.
_claims: list[Claim] = []
_CLAIM_LOCK = threading.Lock()


def claim_path(path: str) -> str:
    """The claim file of ``path`` (``CLAIM_SUFFIX``), in its folder."""
    folder, name = os.path.split(os.path.abspath(path))
    if len(os.fsencode(name)) > CLAIM_NAME_MAX:
        name = hashlib.sha1(os.fsencode(name)).hexdigest()
    return os.path.join(folder, PARTIAL_PREFIX + name + CLAIM_SUFFIX)


def _open_process(pid: int) -> tuple[Any, Any]:
    """Windows only: kernel32 and a handle to process ``pid`` that may query it (PROCESS_QUERY_LIMITED_INFORMATION),
    as a ``c_void_p`` (a HANDLE is pointer-sized: ctypes' default ``int`` would truncate it on 64-bit Windows),
    ``None`` when it cannot be opened (``ctypes.get_last_error`` says why). Close it with ``kernel32.CloseHandle``."""
    import ctypes

    kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)
    kernel32.OpenProcess.restype = ctypes.c_void_p
    handle = kernel32.OpenProcess(0x1000, False, pid)
    return kernel32, ctypes.c_void_p(handle) if handle else None


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` of this machine is running (one of another user counts; so does a zombie)."""
    if os.name == "nt":  # os.kill(pid, 0) would end the process there
        import ctypes

        kernel32, handle = _open_process(pid)
        if not handle:
            return ctypes.get_last_error() == 5  # ERROR_ACCESS_DENIED: it runs, as another user
        code = ctypes.c_ulong()
        known = kernel32.GetExitCodeProcess(handle, ctypes.byref(code))
        kernel32.CloseHandle(handle)
        return not known or code.value == 259  # STILL_ACTIVE
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def process_start(pid: int) -> str | None:
    """When process ``pid`` of this machine started, as a word that no other process of this machine holding the
    same id ever has: on Linux "BOOT:TICKS", the boot's id (/proc/sys/kernel/random/boot_id, so that a process of an
    earlier boot never matches) and the clock ticks from boot to the start (field 22 of /proc/PID/stat); on Windows
    the creation time (GetProcessTimes, 100 ns intervals since 1601-01-01 UTC). ``None`` where it cannot be read:
    no such process, access refused, or no /proc (macOS)."""
    if os.name == "nt":
        import ctypes

        kernel32, handle = _open_process(pid)
        if not handle:
            return None
        times = [ctypes.c_uint64() for _ in range(4)]  # FILETIMEs: creation, exit, kernel and user time
        known = kernel32.GetProcessTimes(handle, *map(ctypes.byref, times))
        kernel32.CloseHandle(handle)
        return str(times[0].value) if known else None
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as f:
            boot = f.read().strip()
    except OSError:
        return None
    # "PID (COMMAND) STATE ...": the command may hold spaces and parentheses, so fields count from its last ")";
    # the state is field 3 there, so the start time (field 22) is the 20th after it.
    after_command = stat[stat.rindex(b")") + 1 :].split()
    return f"{boot}:{int(after_command[19])}"


def claim_holder(file: str) -> str | None:
    """Which other process holds the claim ``file`` ("PID HOST START" or, written by earlier versions or where the
    start cannot be read, "PID HOST": ``CLAIM_SUFFIX``), in words ("process 4242", "process 4242 on host h"); ``None``
    when none does and the claim is stale or gone: its process has ended (on this host; this process's own claims
    are in ``_claims``, so one of this process id that is not is stale too), the process now of its id started at
    another time than the claim's (the id was reused: after a reboot, or on a busy machine), or it has held no
    process id for ``CLAIM_WRITE_GRACE`` seconds. Where the start time of either is unknown, a running process of
    the claim's id holds it: a claim that may be live is never taken over."""
    try:
        with open(file, encoding="utf-8", errors="replace") as f:
            fields = f.read().split()
        age = time.time() - os.stat(file).st_mtime
    except FileNotFoundError:
        return None
    except OSError:
        return "unknown: its claim cannot be read"
    if len(fields) not in (2, 3) or not fields[0].isdigit():
        return None if age > CLAIM_WRITE_GRACE else "a run starting now"
    pid, host = int(fields[0]), fields[1]
    if host != HOST:
        return f"process {pid} on host {host}"
    if pid == os.getpid() or not process_alive(pid):
        return None
    if len(fields) == 3 and (start := process_start(pid)) is not None and start != fields[2]:
        return None  # another process has the id now
    return f"process {pid}"


def take_claim(path: str) -> Claim:
    """Claim ``path`` for the run on this thread: create its claim file (``claim_path``) exclusively
    (``O_CREAT | O_EXCL``) with this process's id, host and start time (``CLAIM_SUFFIX``), or join this thread's
    claim on it. A stale claim (``claim_holder``) is taken over. Another run holding it, in this process (another QGIS task, a script's thread)
    or in another, is a one-line ``InputError`` naming ``path``; so is a folder that refuses the file.
    ``release_claim`` gives it back. (Two processes taking over one stale claim at the same instant may both go on:
    that needs a run killed outright and two new ones started together.)"""
    file = claim_path(path)
    thread = threading.get_ident()
    with _CLAIM_LOCK:
        for claim in _claims:
            if same_file(claim.file, file):
                if claim.thread != thread:
                    raise InputError(f"another run in this process is writing {path}: wait for it to end or choose another output")
                claim.count += 1
                return claim
        while True:
            try:
                handle = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                holder = claim_holder(file)
                if holder is not None:
                    raise InputError(
                        f"another run ({holder}) is writing {path}: wait for it to end or choose another output; "
                        f"if no run is, remove {file}"
                    ) from None
                try:
                    os.remove(file)  # stale: taken over
                except FileNotFoundError:
                    pass
                except OSError as error:
                    raise folder_refusal(os.path.dirname(file), error) from None
                continue
            except OSError as error:
                raise folder_refusal(os.path.dirname(file), error) from None
            try:
                with os.fdopen(handle, "w", encoding="utf-8") as f:
                    start = process_start(os.getpid())
                    f.write(f"{os.getpid()} {HOST}" + (f" {start}\n" if start else "\n"))
            except OSError as error:
                os.remove(file)
                raise folder_refusal(os.path.dirname(file), error) from None
            claim = Claim(file, thread)
            _claims.append(claim)
            return claim


def release_claim(claim: Claim) -> None:
    """Give back one use of ``claim`` (``take_claim``); the last removes its file."""
    with _CLAIM_LOCK:
        claim.count -= 1
        if claim.count:
            return
        _claims.remove(claim)
        try:
            os.remove(claim.file)
        except OSError:  # already gone, or the folder turned read-only: a claim of this process that is not held is stale
            pass


@contextmanager
def claimed(paths: Iterable[str]) -> Iterator[None]:
    """Hold the claims on ``paths`` (``take_claim``) while the block runs, and remove them after it, whatever
    ends it (an error, ``Cancelled``, Ctrl-C). A run takes them as it starts on the files it writes that name the
    others (its output, which names its loss curve; a kernel file, which names its record and preview:
    ``pipeline.output_files``), so that a second run to any of them, in this process or another, is refused in one
    line before it does any work; ``StagedFiles`` claims every file it stages or removes too, so that no two runs
    replace each other's files. A process killed outright leaves its claims, which the next run takes over."""
    held: list[Claim] = []
    try:
        for path in dict.fromkeys(paths):
            held.append(take_claim(path))
        yield
    finally:
        for claim in reversed(held):
            release_claim(claim)


#: ``StagedFiles.commit`` calls under way (any thread), and the lists ``recording_commits`` fills with the
#: thread each records for, under ``_COMMIT_LOCK``.
_commits = 0
_commit_records: list[tuple[int, list[str]]] = []
_COMMIT_LOCK = threading.Lock()


def committing() -> bool:
    """Whether a group of files is moving into place right now (``StagedFiles.commit``, the removal of an earlier
    file's sidecars included): a signal handler cancelling a run lets that finish. A run may commit groups before
    its end (``sentinel2`` sharpens each resolution into a temporary file), so only the commit itself is guarded."""
    return _commits > 0


@contextmanager
def recording_commits(record: list[str]) -> Iterator[None]:
    """Append to ``record`` each path ``StagedFiles.commit`` moves into place from this thread while the block
    runs: what a run cancelled after a commit has written (another thread's job, e.g. a QGIS task beside a script,
    is not this run's). Some may be gone again (``sentinel2``'s sharpened parts, committed into a temporary folder
    that the cancelled run removes)."""
    entry = (threading.get_ident(), record)
    with _COMMIT_LOCK:
        _commit_records.append(entry)
    try:
        yield
    finally:
        with _COMMIT_LOCK:
            _commit_records[:] = [e for e in _commit_records if e is not entry]  # by identity: empty lists are equal


#: Per thread, the progress sink whose Cancel ``StagedFiles.commit`` asks before moving anything (``cancellable_commits``).
_commit_cancels = threading.local()


@contextmanager
def cancellable_commits(progress: Progress) -> Iterator[None]:
    """While the block runs, each ``StagedFiles.commit`` on this thread first asks ``progress`` whether the user
    cancelled, and raises ``Cancelled`` with nothing moved into place (``staged`` then discards the group: every
    earlier file stays as it was). For a front end whose Cancel is polled (Processing's feedback, the dialog's
    ``QgsTask``): the engine polls once per optimisation step, and what follows the last step (back-projection,
    blending, writing, the loss curve, a report) would otherwise end in files replaced after a Cancel. A Cancel
    once a commit has started is too late for it, as a signal is (``committing``). The command line's signals need
    none: they interrupt the run anywhere but in a commit. Blocks may nest; the innermost's ``progress`` is asked."""
    previous = getattr(_commit_cancels, "progress", None)
    _commit_cancels.progress = progress
    try:
        yield
    finally:
        _commit_cancels.progress = previous


class StagedFiles:
    """The files of one run, each written to a hidden temporary file beside its target (``temporary_beside``)
    and moved into place together by ``commit`` once all are written, each with the PAM sidecar GDAL wrote beside
    it (``replace_with_pam``); ``discard`` removes the temporary files (and their PAM sidecars) and leaves every
    target, and any earlier file there, as it was. Use ``staged`` to make or join a group. The group claims each
    file it stages or removes (``take_claim``) until it commits or is discarded, so that no other run writes it
    meanwhile."""

    def __init__(self) -> None:
        #: target path → its temporary file, in the order they were staged
        self.staged: dict[str, str] = {}
        #: GeoTIFF targets whose stale sidecars (``stale_sidecars``) are removed once they are in place
        self.geotiffs: list[str] = []
        #: files of an earlier run that the commit removes (``remove_at_commit``)
        self.stale: list[str] = []
        #: target path → the group's claim on it (``claim``)
        self.claims: dict[str, Claim] = {}

    def claim(self, path: str) -> None:
        """Claim ``path`` for this group until it commits or is discarded (``take_claim``; once per path)."""
        if path not in self.claims:
            self.claims[path] = take_claim(path)

    def temporary(self, path: str, geotiff: bool = False) -> str:
        """A new empty temporary file for ``path``; a ``geotiff``'s stale sidecars (those of an earlier file there,
        ``stale_sidecars``; of this run's only its PAM sidecar, moved with it) are removed once it is in place."""
        self.claim(path)
        handle, tmp = temporary_beside(path)
        os.close(handle)
        self.drop(path)
        self.staged[path] = tmp
        if geotiff:
            self.geotiffs.append(path)
        return tmp

    def remove_at_commit(self, path: str) -> None:
        """Remove ``path``, a file an earlier run left that this run does not write again (e.g. its loss curve beside
        the output this run replaces), when the group commits, so that it does not stay beside the new files; a
        file staged for ``path`` by then is moved into place instead."""
        self.claim(path)
        self.stale.append(path)

    def drop(self, path: str) -> None:
        """Forget ``path``'s temporary file and remove it (and its PAM sidecar): nothing is moved to ``path``."""
        tmp = self.staged.pop(path, None)
        if tmp is not None:
            remove_with_pam(tmp)

    def write(self, path: str, data: bytes) -> None:
        """Stage ``data`` for ``path``; a failure (a full disk) is an ``OutputWriteError`` and stages nothing."""
        tmp = self.temporary(path)
        try:
            with open(tmp, "wb") as f:
                f.write(data)
        except OSError as error:
            self.drop(path)
            raise OutputWriteError(path) from error

    def commit(self) -> None:
        """Move every staged file into place (ordinary files: mode 0666 less the umask; mkstemp makes 0600), then
        give back the group's claims.

        Inside ``cancellable_commits`` a Cancel asked before it starts raises ``Cancelled`` and moves nothing. While
        it runs ``committing()`` is true, so that a signal handler cancelling a run (the command line's) lets it
        finish rather than leave some files in place and not others, or old sidecars beside a new file.
        """
        global _commits
        progress = getattr(_commit_cancels, "progress", None)
        if progress is not None:
            check_cancelled(progress)
        mode = 0o666 & ~_umask()
        for tmp in self.staged.values():
            os.chmod(tmp, mode)
        with _COMMIT_LOCK:
            _commits += 1
        try:
            for path in self.stale:
                if path not in self.staged and os.path.lexists(path):
                    os.remove(path)
            self.stale.clear()
            for path, tmp in list(self.staged.items()):
                replace_with_pam(tmp, path)
                del self.staged[path]
                with _COMMIT_LOCK:
                    for thread, record in _commit_records:
                        if thread == threading.get_ident():
                            record.append(path)
            for path in self.geotiffs:
                for sidecar in stale_sidecars(path):
                    if not same_file(sidecar, path + PAM_SUFFIX):  # there now, it is the new file's (replace_with_pam)
                        os.remove(sidecar)
            self.geotiffs.clear()
            self.release_claims()
        finally:
            with _COMMIT_LOCK:
                _commits -= 1

    def discard(self) -> None:
        """Remove every temporary file not moved into place, the files ``remove_at_commit`` named staying, and give
        back the group's claims."""
        try:
            for path in list(self.staged):
                self.drop(path)
            self.geotiffs.clear()
            self.stale.clear()
        finally:
            self.release_claims()

    def release_claims(self) -> None:
        """Give back the group's claims (``claim``): its files are in place, or discarded."""
        for claim in self.claims.values():
            release_claim(claim)
        self.claims.clear()


@contextmanager
def staged(files: StagedFiles | None = None) -> Iterator[StagedFiles]:
    """``files``, a group its owner commits; or (``None``) a new group, committed when the block ends and
    discarded on any exception (``Cancelled`` and Ctrl-C included)."""
    if files is not None:
        yield files
        return
    files = StagedFiles()
    try:
        yield files
        files.commit()
    finally:
        files.discard()


def write_file_atomically(path: str, data: bytes, files: StagedFiles | None = None) -> None:
    """Write ``data`` to a temporary file beside ``path``, moved into place with ``files`` (default: at once)."""
    with staged(files) as group:
        group.write(path, data)


#: ``gdal_failures`` blocks open: each thread's failure lists (a thread's blocks may nest), and the ``rasterio._env``
#: logger's own level and its effective level as the first block found them; under ``_GDAL_LOG_LOCK``.
_gdal_collectors: dict[int, list[list[str]]] = {}
_gdal_level = logging.NOTSET
_gdal_enabled = logging.NOTSET
_GDAL_LOG_LOCK = threading.Lock()


class _GDALFailures(logging.Filter):
    """The ``rasterio._env`` logger's filter while ``gdal_failures`` blocks are open: it hands each failure GDAL
    signals (an INFO record "GDAL signalled an error …") to the blocks open on the record's thread, and passes on to
    handlers only the records the logger's level let through before the blocks lowered it to INFO, so an
    application's own logging (``logging.basicConfig()``: WARNING) shows none of those INFO records."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.INFO and str(record.msg).startswith("GDAL signalled an error"):
            failure = str(record.args[-1]) if record.args else record.getMessage()
            with _GDAL_LOG_LOCK:
                for failures in _gdal_collectors.get(record.thread, []):
                    failures.append(failure)
        return record.levelno >= _gdal_enabled


_GDAL_FILTER = _GDALFailures()


@contextmanager
def gdal_failures() -> Iterator[list[str]]:
    """The failures GDAL signals on this thread inside the block, kept off stderr (no "ERROR 1: …" lines).

    Inside a ``rasterio.Env`` rasterio hands GDAL's messages to its logger ``rasterio._env`` (failures at
    INFO) instead of GDAL printing them. Most failures also raise; some are reported no other way: a full
    disk while ``close()`` flushes a GeoTIFF's last blocks. While blocks are open (any thread) that logger is at
    INFO at least, with a filter (``_GDALFailures``) that keeps what the level did not let through before from
    every handler; the last block out gives the logger its level back and removes the filter.
    """
    global _gdal_level, _gdal_enabled
    failures: list[str] = []
    thread = threading.get_ident()
    logger = logging.getLogger("rasterio._env")
    with _GDAL_LOG_LOCK:  # runs in several QGIS tasks at once: the first in lowers the level, the last out restores it
        if not _gdal_collectors:
            _gdal_level, _gdal_enabled = logger.level, logger.getEffectiveLevel()
            if not logger.isEnabledFor(logging.INFO):
                logger.setLevel(logging.INFO)
            logger.addFilter(_GDAL_FILTER)
        _gdal_collectors.setdefault(thread, []).append(failures)
    try:
        with rasterio.Env():
            yield failures
    finally:
        with _GDAL_LOG_LOCK:
            open_here = [f for f in _gdal_collectors[thread] if f is not failures]  # by identity: empty lists are equal
            if open_here:
                _gdal_collectors[thread] = open_here
            else:
                del _gdal_collectors[thread]
            if not _gdal_collectors:
                logger.removeFilter(_GDAL_FILTER)
                logger.setLevel(_gdal_level)


class AtomicGeoTIFF:
    """A GeoTIFF written to a temporary file in the target folder and renamed into place on success.

    Use as a context manager; ``write(window, values, valid)`` writes ``(C, h, w)`` float blocks and
    their validity (``to_dtype``). ``grid`` is the output's grid in the input's georeferencing (for a
    file without a geotransform, its pixel coordinates); the ground control points and the RPC model of
    ``info``'s file are moved to the output's pixels through it. On
    any exception (including ``Cancelled`` and Ctrl-C) the temporary file is removed and nothing appears
    at ``path``; on success the file moves into place with the PAM sidecar GDAL wrote for it (``PAM_SUFFIX``:
    e.g. a rotated-pole CRS, which GeoTIFF keys cannot hold), and the sidecars of a previous file at ``path``
    that GDAL would read with the new one (``stale_sidecars``: metadata, overviews, mask, RPC model, world file;
    not those another dataset may own) are removed. With ``files`` the
    finished file joins that group (``StagedFiles``) and moves into place with the run's other files when the
    group is committed.
    """

    def __init__(
        self, path: str, info: RasterInfo, grid: Grid, dtype: str, cog: bool = False, files: StagedFiles | None = None
    ) -> None:
        self.path = path
        self.group = files
        self.info = info
        self.grid = grid
        self.dtype = dtype
        self.nodata = output_nodata(info, dtype)
        #: Pixels the input masked need a mask of their own when the output has no nodata value.
        self.mask = info.masked and self.nodata is None
        self.cog = cog
        self.tmp = ""
        self.dataset = None
        #: Valid values per band that fell outside an integer dtype's range and were clipped: (below, above).
        self.clipped = np.zeros((len(info.bands), 2), dtype=np.int64)
        self.written = np.zeros(len(info.bands), dtype=np.int64)

    def _profile(self) -> dict:
        is_int = np.issubdtype(np.dtype(self.dtype), np.integer)
        return dict(
            driver="GTiff",
            width=self.grid.width,
            height=self.grid.height,
            count=len(self.info.bands),
            dtype=self.dtype,
            transform=self.grid.transform if self.info.georeferenced else None,
            crs=self.grid.crs,
            nodata=self.nodata,
            tiled=True,
            blockxsize=256,
            blockysize=256,
            compress="deflate",
            predictor=2 if is_int else 3,
            BIGTIFF="IF_SAFER",
        )

    def __enter__(self) -> "AtomicGeoTIFF":
        self._files = staged(self.group)
        self.files = self._files.__enter__()
        self.tmp = self.files.temporary(self.path, geotiff=True)
        try:
            self.dataset = open_raster(self.tmp, "w", **self._profile())
            self._copy_metadata()
        except BaseException:
            self._discard()
            raise
        return self

    def _copy_metadata(self) -> None:
        info, dataset = self.info, self.dataset
        for index, description in enumerate(info.descriptions, start=1):
            if description:
                dataset.set_band_description(index, description)
        try:
            dataset.colorinterp = list(info.colorinterp)
        except ValueError:
            pass
        write_tags(dataset, info.tags)
        write_band_metadata(dataset, info)
        to_file = ~(info.file_grid or info.grid).transform * self.grid.transform  # output pixels → the file's
        if info.gcps:
            to_output = ~to_file
            moved = []
            for p in info.gcps:
                col, row = to_output * (p.col, p.row)
                moved.append(GroundControlPoint(row, col, p.x, p.y, p.z, p.id, p.info))
            dataset.gcps = (moved, info.gcp_crs)
        if info.rpcs is not None:
            dataset.rpcs = rpcs_on_grid(info.rpcs, to_file)

    def write(self, window: Window, values: np.ndarray, valid: np.ndarray) -> None:
        """Write float ``values`` ``(C, h, w)`` at ``window``, cast by ``to_dtype``; invalid pixels become nodata."""
        area = rasterio_window(window)
        cast, clipped = to_dtype(values, valid, self.dtype, self.nodata)
        self.clipped += clipped
        self.written += valid.sum(axis=(1, 2))
        try:
            self.dataset.write(cast, window=area)
            if self.mask:
                with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True):
                    self.dataset.write_mask(valid.any(axis=0), window=area)
        except (RasterioIOError, OSError) as error:  # e.g. a full disk while GDAL flushes a block
            raise OutputWriteError(self.path) from error

    def clipping_warnings(self) -> list[str]:
        """One log line per band with values the output's integer dtype could not hold (clipped to its range):
        an estimate that overshoots the physical range, e.g. negative reflectance at sharpened edges."""
        names = [d or f"output band {i}" for i, d in enumerate(self.info.descriptions, start=1)]
        lines = []
        for name, (below, above), total in zip(names, self.clipped, self.written):
            if below or above:
                share = 100.0 * (below + above) / max(int(total), 1)
                lines.append(
                    f"warning: {name}: {below + above} output pixels ({share:.3g} %; {below} below, {above} above) fell "
                    f"outside {self.dtype}'s range and were clipped into it: values overshoot there (sharp edges, or a "
                    "kernel wider than the image's true blur); a Float32 output keeps them"
                )
        return lines

    def _discard(self) -> None:
        if self.dataset is not None and not self.dataset.closed:
            try:
                self.dataset.close()
            except Exception:
                pass
        self.files.drop(self.path)

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self._discard()
            self._files.__exit__(exc_type, exc, tb)
            return
        try:
            try:
                self._finish_temporary()
            except OSError as error:  # rasterio's I/O errors included; a MemoryError or a bug keeps its own message
                raise OutputWriteError(self.path) from error
        except BaseException as error:
            self._discard()
            self._files.__exit__(type(error), error, error.__traceback__)
            raise
        self._files.__exit__(None, None, None)  # moves the file into place unless a group given to __init__ does

    def _finish_temporary(self) -> None:
        """Close the temporary file (made a COG with ``cog``) and read it back, block by block (memory bounded
        by a block): GDAL does not raise when ``close()`` fails to flush (a full disk), so a failure it
        signals, or a block that cannot be read back, is an error here, before anything is moved into place."""
        with gdal_failures() as failures:
            self.dataset.close()
            if not failures and self.cog:
                self._to_cog()
            if failures:
                raise OSError(failures[0])
            with open_raster(self.tmp) as written:
                for _, window in written.block_windows(1):
                    written.read(window=window)
                    if self.mask:
                        written.read_masks(1, window=window)

    def _to_cog(self) -> None:
        from rasterio.shutil import copy as rio_copy

        cog_tmp = self.tmp + ".cog" + PARTIAL_SUFFIX
        try:
            rio_copy(self.tmp, cog_tmp, driver="COG", compress="DEFLATE", BIGTIFF="IF_SAFER")
            replace_with_pam(cog_tmp, self.tmp)
        finally:
            remove_with_pam(cog_tmp)
