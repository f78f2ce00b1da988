"""All Sentinel-2 bands at 10 m in one run: find the band files, sharpen the 20 m and 60 m bands with the
10 m bands as guide (guided DIP), and write one 10 m stack in band order B1 … B12.

Inputs are folders (searched recursively, e.g. a ``.SAFE`` product or its ``IMG_DATA``) and/or files:
single-band files named after their band (``T33UUU_20170216T102101_B8A.jp2``, ``…_B05_20m.jp2``; in ESA's
format before December 2016 ``S2A_OPER_MSI_L1C_TL_SGS__20160112T195936_A002865_T18SVG_B8A.jp2``,
``S2A_USER_MSI_L2A_TL_…_B05_20m.jp2``) or multi-band files whose band descriptions or file name list the bands
(``…_20m_B05-B06-B07-B8A-B11-B12.tif``).
A band found twice is taken from the file at its native resolution (Level-2A products also hold
resampled copies, e.g. ``R20m/…_B01_20m.jp2`` beside ``R60m/…_B01_60m.jp2``); two files of it at one preference,
and band files of two acquisitions (their names' tiles or sensing times; an old-format product may hold several
tiles, one granule folder each), are refused. The output keeps the
10 m bands' whole grid: a lower resolution has no data where its files do not reach. The 60 m bands are sharpened
directly by 6 with the 10 m guide: on our benchmark this was better than two steps (×3 with the 20 m
bands as guide, then ×2), see ``benchmarks/guided.py``. Each band keeps its digital numbers and declares its file's
scale/offset, else its product's radiometry from the product metadata file (``product_radiometry``).
"""

from __future__ import annotations

import math
import os
import tempfile
from dataclasses import dataclass, replace
from collections.abc import Iterable, Iterator, Sequence

import numpy as np
from affine import Affine
from rasterio.enums import ColorInterp
from rasterio.errors import RasterioIOError

from .config import GuidedDIPConfig, IOOptions, as_paths
from .errors import InputError
from .grid import ALIGNMENT_TOLERANCE, Grid, NotAligned, Window, crs_words, guide_position, log_alignment, nest, same_grid
from .guided import MIN_TARGET_SIZE
from .normalise import exact_float
from .pipeline import RunResult, _Recorder, output_files
from .progress import NullProgress, Progress, SubProgress
from .raster import (
    PARTIAL_PREFIX,
    PARTIAL_SUFFIX,
    AtomicGeoTIFF,
    RasterInfo,
    StagedFiles,
    check_geotransform,
    check_raster_output,
    claimed,
    nodata_key,
    open_info,
    open_raster,
    output_nodata,
    read_window,
    same_file,
    to_dtype,
    unreadable,
    value_text,
    write_band_metadata,
)
from .sentinel2 import ORDER, RESOLUTION, acquisition, band_name, band_names
from .sentinel2_radiometry import METADATA_NAMES, metadata_file, read_radiometry
from .sharpen import GUIDED_METHOD, sharpen

EXTENSIONS = (".jp2", ".tif", ".tiff")
GUIDE_BANDS = ("B2", "B3", "B4", "B8")
#: The pixel sizes (m) of Sentinel-2 bands, native or resampled (Level-2A keeps copies at each).
SENTINEL2_PIXELS = (10.0, 20.0, 60.0)
#: No data in Sentinel-2 L1C/L2A digital numbers (ESA's product specification), used where files declare none.
SENTINEL2_NODATA = 0
#: Output rows written per block when assembling the final stack.
BLOCK_ROWS = 512
#: The share of the progress bar the sharpening stages fill; assembling the output (reading and writing every band)
#: fills the rest and reports the run done.
SHARPEN_SHARE = 0.95
#: Dataset metadata item marking this command's outputs (value ``sentinel2``), which folder scans skip: an output
#: written into the product's folder holds every band. Other commands do not carry it (``raster.STALE_TAG_PREFIXES``).
PRODUCT_TAG = "INTERNAL_SR_PRODUCT"


@dataclass(frozen=True)
class BandSource:
    """Where one band lives: ``path`` and its 1-based ``index`` in that file."""

    band: str
    path: str
    index: int



def _files(inputs: Sequence[str]) -> tuple[list[tuple[str, bool]], list[str]]:
    """Every raster file of ``inputs`` in sorted path order, with whether it was named itself (else found in a folder),
    and the staging folders (``PARTIAL_PREFIX``…``PARTIAL_SUFFIX``) that runs killed outright left in the folders,
    whose band stacks are not searched.

    A file reached more than once (a folder and a folder inside it, ``p`` and ``./p``, a link) is listed once, by the
    path it was first reached by, and counts as named when it was named anywhere."""
    files: dict[str, tuple[str, bool]] = {}  # real path → (path as reached first, named)
    staging: list[str] = []

    def add(path: str, named: bool) -> None:
        first, was_named = files.get(os.path.realpath(path), (path, False))
        files[os.path.realpath(path)] = first, was_named or named

    for item in inputs:
        if os.path.isdir(item):
            for root, folders, names in os.walk(item):
                left = [f for f in folders if f.startswith(PARTIAL_PREFIX) and f.endswith(PARTIAL_SUFFIX)]
                staging.extend(os.path.join(root, f) for f in left)
                folders[:] = [f for f in folders if f not in left]
                for name in names:
                    if name.lower().endswith(EXTENSIONS):
                        add(os.path.join(root, name), False)
        elif os.path.isfile(item):
            add(item, True)
        else:
            raise InputError(f"{item} does not exist")
    return sorted(files.values()), staging


def _in_metres(info: RasterInfo) -> bool:
    """Whether ``info``'s CRS is projected in metres, so its pixel size compares with Sentinel-2's (10, 20, 60 m)."""
    crs = info.grid.crs
    return crs is not None and crs.is_projected and (crs.linear_units or "").lower() in ("metre", "meter", "m")


def _not_a_band_file(path: str) -> str | None:
    """Why a file found in a folder is no band file before it is opened as one (``None``: it may be one): an earlier
    output of this command (``PRODUCT_TAG``; the output itself when the run is repeated), or one of ESA's quality
    masks (``MSK_DETFOO_B01.jp2``, named after the band it describes). An output path that holds a band file is
    not skipped: the band is read, and ``check_raster_output`` refuses to overwrite it."""
    if os.path.basename(path).upper().startswith("MSK_"):
        return "a quality mask"
    try:
        with open_raster(path) as src:
            if PRODUCT_TAG in src.tags():
                return "written by internal-sr sentinel2"
    except RasterioIOError:
        return None  # said by open_info
    return None


def _one_acquisition(paths: Iterable[str]) -> None:
    """A one-line ``InputError`` when the file names of ``paths`` name two MGRS tiles or two sensing times
    (``acquisition``): bands of two products would be sharpened together."""
    for index, what in ((0, "tile"), (1, "sensing time")):
        first: dict[str, str] = {}
        for path in paths:
            value = acquisition(path)[index]
            if value is not None:
                first.setdefault(value, path)
        if len(first) > 1:
            (a, path_a), (b, path_b) = list(first.items())[:2]
            remedy = " (of a product holding several tiles, one tile's granule folder)" if what == "tile" else ""
            raise InputError(f"the band files are of two acquisitions: {path_a} names {what} {a} but {path_b} {b}: "
                             f"give the band files of one product{remedy}")


def find_bands(inputs: Sequence[str], progress: Progress | None = None) -> dict[str, BandSource]:
    """Sentinel-2 band name → where it is, over every raster file in ``inputs`` (module docstring).

    A file named in ``inputs`` must name its bands (``band_names``); a file found in a folder that is none of the
    band files (an earlier output, a mask, a preview, not a raster) is skipped, as is a killed run's staging folder,
    and ``progress`` is told which were. A file named like a band file that cannot be read is a one-line ``InputError``, as are
    band files of two acquisitions (``_one_acquisition``) and a band found in two files at the same preference
    (both at its own resolution, or both resampled)."""
    candidates: dict[str, list[tuple[BandSource, bool]]] = {}  # each band's files, and whether at its own resolution
    infos: dict[str, RasterInfo] = {}
    paths, staging = _files(inputs)
    skipped = [f"{folder} (the staging folder of a run killed outright: remove it)" for folder in staging]
    for path, named in paths:
        why = None if named else _not_a_band_file(path)
        if why is not None:
            skipped.append(f"{path} ({why})")
            continue
        try:
            info = open_info(path)
        except InputError:
            if named or band_name(os.path.basename(path)):
                raise
            skipped.append(f"{path} (not a raster)")
            continue
        names = band_names(path, info.descriptions)
        if not any(names):
            if named:
                raise InputError(
                    f"{path}: neither its band descriptions nor its file name name a Sentinel-2 band for each of its "
                    f"{len(names)} band(s): give its bands descriptions (B5, B6, …) or list them in its file name, one "
                    "per band (…_B05-B06-B07-B8A-B11-B12.tif)"
                )
            skipped.append(f"{path} (names no Sentinel-2 band)")
            continue
        check_geotransform(info, path, "its pixels cannot be matched with the other resolutions' bands")
        read_window(info, Window(info.grid.width - 1, info.grid.height - 1, 1, 1))  # a truncated file fails here
        infos[path] = info
        pixel = abs(info.grid.transform.a)
        for index, name in enumerate(names, start=1):
            if name is not None:
                own = not _other_size(pixel, RESOLUTION[name])
                candidates.setdefault(name, []).append((BandSource(name, path, index), own))
    if skipped and progress is not None:
        progress.info(f"skipped {len(skipped)} file(s) that are no band files: {'; '.join(skipped)}")
    _one_acquisition(infos)
    found: dict[str, BandSource] = {}
    for name, options in candidates.items():
        best = [source for source, own in options if own] or [source for source, _ in options]
        if len(best) > 1:
            raise InputError(f"band {name} is in two files, {best[0].path} and {best[1].path}: give each band once (the "
                             "band files of one product)")
        found[name] = best[0]
    for name, source in found.items():
        info = infos[source.path]
        pixel = abs(info.grid.transform.a)
        if _in_metres(info) and all(_other_size(pixel, r) for r in SENTINEL2_PIXELS):
            raise InputError(
                f"band {name} in {source.path} has {pixel:g} m pixels, none of Sentinel-2's (10, 20, 60 m, within "
                f"{ALIGNMENT_TOLERANCE * 100:g} %): the sentinel2 command takes Sentinel-2 products; for other sensors use guided"
            )
    missing = [b for b in GUIDE_BANDS if b not in found]
    if missing:
        raise InputError(f"no Sentinel-2 10 m band {', '.join(missing)} found in {', '.join(inputs)}: the 10 m bands are the guide")

    guide = GUIDE_BANDS[0]
    guide_crs = infos[found[guide].path].grid.crs
    for name in sorted(found, key=ORDER.index):
        crs = infos[found[name].path].grid.crs
        if crs != guide_crs:
            words = crs_words(crs, guide_crs)
            raise InputError(
                f"band {name} in {found[name].path} is in {words[0]} but band {guide} in {found[guide].path} is in "
                f"{words[1]}: reproject the bands onto one CRS first"
            )
    return found


def check_targets(found: dict[str, BandSource], inputs: Sequence[str]) -> None:
    """Raise a one-line ``InputError`` when the bands ``find_bands`` found in ``inputs`` hold no 20 m or 60 m band:
    there is nothing to sharpen (a run would copy the 10 m bands)."""
    if all(RESOLUTION[band] == 10 for band in found):
        tens = ", ".join(sorted(found, key=ORDER.index))
        raise InputError(
            f"only 10 m bands ({tens}) found in {', '.join(inputs)}: no 20 m or 60 m band to sharpen; give the 20 m and "
            "60 m band files too (e.g. …_B05.jp2 or …_20m_B05-B06-B07-B8A-B11-B12.tif), or the product folder (the .SAFE)"
        )


def stack_nodata(info: RasterInfo) -> float | None:
    """The nodata value of a stack of Sentinel-2 band files like ``info``: the file's own, else 0 for uint16
    digital numbers (ESA's products mark no data by 0 but their JPEG 2000 files declare no nodata value;
    fill outside the swath would otherwise be sharpened as dark pixels)."""
    if info.nodata is None and info.dtype == "uint16":
        return SENTINEL2_NODATA
    return info.nodata


def _other_size(pixel: float, expected: float) -> bool:
    """Whether ``pixel`` is another pixel size than ``expected`` (same unit): their ratio is off 1 by more than
    ``core.grid.ALIGNMENT_TOLERANCE``, as ``core.grid.nest`` tells a scale from its integer; closer sizes are one
    size, and how far their edges drift apart across a raster is ``core.grid.same_grid``'s to judge. The one rule for
    a band's size: whether it is a Sentinel-2 size and its own (``find_bands``) and one resolution's (``check_stacks``).
    Written without a division: a grid turned by 90° has no x size (0), and is refused as rotated later (``check_grids``)."""
    return abs(pixel - expected) > ALIGNMENT_TOLERANCE * expected


def check_stacks(
    groups: dict[int, list[BandSource]], float32: bool = False, progress: Progress | None = None
) -> list[RasterInfo]:
    """Before any work: the bands of each resolution are stacked and sharpened together, so they must share
    one grid (``core.grid.same_grid``: pixel edges within ``core.grid.ALIGNMENT_TOLERANCE`` pixel, the bound guided
    pairs are nested by; bands accepted although not exactly aligned are said so through ``progress``,
    ``core.grid.alignment_note``), data type and nodata value (``stack_nodata``; NaN equals NaN).

    Resolutions may differ in type only with ``float32`` (``--float32``): each resolution is then stacked,
    sharpened and read back in its own type with its own nodata value, and the Float32 output holds every
    resolution's values and marks whatever any of them leaves invalid (by the 10 m bands' nodata value, else
    NaN). Without it the output has the 10 m bands' type, which may not hold another resolution's values
    (Float32 reflectance rounded to the integers 0 and 1 of uint16 digital numbers) nor, in an integer type
    without a nodata value, mark its no data band by band. A one-line ``InputError`` names the first band that
    does not fit, with its file, and what to give instead. Returns every band's info, in ``groups``' order."""
    guide = groups[10][0]
    guide_dtype = open_info(guide.path, (guide.index,)).dtype
    infos: list[RasterInfo] = []
    for sources in groups.values():
        if not sources:
            continue
        first = sources[0]
        reference = open_info(first.path, (first.index,))
        infos.append(reference)
        if reference.dtype != guide_dtype and not float32:
            raise InputError(
                f"band {first.band} in {first.path} is {reference.dtype} but band {guide.band} in {guide.path} is "
                f"{guide_dtype}, and the output is written in the 10 m bands' data type, which may not hold the other "
                "values: write Float32 (--float32), which holds every band's values and no data, or give the bands in "
                "one data type, as the product has them"
            )
        for source in sources[1:]:
            info = open_info(source.path, (source.index,))
            infos.append(info)
            here = f"band {source.band} in {source.path}"
            there = f"band {first.band} in {first.path}"
            pixel, reference_pixel = abs(info.grid.transform.a), abs(reference.grid.transform.a)
            if _other_size(pixel, reference_pixel):
                if not _in_metres(info):
                    raise InputError(f"{here} has pixels of {pixel:g} but {there} of {reference_pixel:g} (units of their CRS), "
                                     "and they are sharpened together: give the bands of one resolution on one grid")
                odd = source if _other_size(pixel, RESOLUTION[source.band]) else first
                raise InputError(
                    f"{here} has {pixel:g} m pixels but {there} has {reference_pixel:g} m, and they are sharpened "
                    f"together: give band {odd.band} at its own {RESOLUTION[odd.band]} m too (not only a resampled copy)"
                )
            try:
                nesting = same_grid(info.grid, reference.grid)
            except InputError as error:
                t, r = info.grid.transform, reference.grid.transform
                raise InputError(
                    f"{here} is not on the grid of {there} (origin {t.c:.10g}, {t.f:.10g} against {r.c:.10g}, {r.f:.10g}; "
                    f"{error}): cut the files of one resolution to the same area, on one grid"
                ) from None
            log_alignment(progress, nesting, (source.path, first.path), (f"band {source.band}", f"band {first.band}"))
            if info.dtype != reference.dtype:
                raise InputError(f"{here} is {info.dtype} but {there} is {reference.dtype}: give the bands in one data "
                                 "type, as the product has them")
            if nodata_key(stack_nodata(info)) != nodata_key(stack_nodata(reference)):
                raise InputError(f"{here} has nodata {value_text(stack_nodata(info))} but {there} has nodata "
                                 f"{value_text(stack_nodata(reference))}: give the bands one nodata value (gdal_translate -a_nodata)")
    return infos


def check_grids(groups: dict[int, list[BandSource]]) -> None:
    """Before any work: the grid of each lower resolution (20 m, 60 m; one grid per resolution, ``check_stacks``)
    must nest in the 10 m grid, its pixel edges on 10 m pixel edges over the whole area (Sentinel-2 products
    share one corner; half a 10 m pixel, Landsat's geometry, is refused too), and overlap it by at least
    ``MIN_TARGET_SIZE`` pixels each way. A one-line ``InputError`` names the bands and the file at fault and
    says how to align them."""
    guide_source = groups[10][0]
    guide = open_info(guide_source.path, (guide_source.index,)).grid
    for res in (20, 60):
        if not groups[res]:
            continue
        first = groups[res][0]
        grid = open_info(first.path, (first.index,)).grid
        bands = f"the {res} m bands ({', '.join(s.band for s in groups[res])}; {first.path})"
        try:
            nesting = nest(grid, guide)
        except NotAligned as error:
            raise InputError(
                f"{bands}: their grid is not nested in the 10 m grid ({guide_source.path}), its pixel edges fall up to "
                f"{error.offsets[0]:.3g}, {error.offsets[1]:.3g} 10 m pixels off the 10 m pixel edges; "
                f"{_align_hint(grid, guide, error.scale, first.path)}"
            ) from None
        except InputError as error:
            raise InputError(f"{bands} cannot be sharpened with the 10 m bands ({guide_source.path}): {error}") from None
        if any(nesting.shift):
            raise InputError(
                f"{bands}: their grid is not nested in the 10 m grid ({guide_source.path}), it lies half a 10 m pixel off "
                f"it (Sentinel-2's pixel edges line up); {_align_hint(grid, guide, nesting.scale, first.path)}"
            )
        width, height = nesting.target.width, nesting.target.height
        if min(width, height) < MIN_TARGET_SIZE:
            raise InputError(f"{bands} overlap the 10 m bands ({guide_source.path}) on {width}×{height} {res} m pixels: "
                             f"too few for guided DIP, which needs at least {MIN_TARGET_SIZE}×{MIN_TARGET_SIZE}")


def _align_hint(grid: Grid, guide: Grid, scale: int, path: str) -> str:
    """The advice for a lower-resolution ``grid`` (file ``path``) not nested in the 10 m ``guide`` grid: the gdalwarp
    line that resamples it onto the grid of pixels ``scale`` 10 m pixels wide whose corner is the 10 m pixel edge
    nearest to its own, taken north-up (``Grid.unrotated``: an extent whole pixels wide, not widened by rotation terms)."""
    col, row = (round(v) for v in guide_position(grid, guide, 0, 0))
    g = guide.transform
    aligned = Grid(grid.width, grid.height, g * Affine.translation(col, row) * Affine.scale(scale), grid.crs)
    left, bottom, right, top = aligned.unrotated().bounds
    return (f"use the product's own files, or resample the file onto a grid nested in the 10 m grid first, e.g. gdalwarp "
            f"-r cubic -tr {abs(g.a) * scale:.12g} {abs(g.e) * scale:.12g} -te {left:.12g} {bottom:.12g} {right:.12g} {top:.12g} "
            f"{path} ALIGNED.tif")


def product_radiometry(found: dict[str, BandSource], progress: Progress) -> dict[str, tuple[float, float]]:
    """The scale and offset each band of ``found`` declares on the output from its product's metadata file
    (``sentinel2_radiometry``: the one found above the band files, stored DN × scale + offset is reflectance); bands
    whose file declares a scale or an offset keep their own and are not listed. ``progress`` is told where the
    radiometry comes from, which band files' own disagree with it, and which bands hold digital numbers with no
    declared radiometry (their files declare none and lie in no product with a metadata file). A one-line
    ``InputError`` when the band files lie in two products (two metadata files) or the metadata file does not give
    the bands' radiometry."""
    products = {path: metadata_file(path) for path in sorted({source.path for source in found.values()})}
    inside = [(path, product) for path, product in products.items() if product is not None]
    for path, product in inside[1:]:
        if not same_file(product, inside[0][1]):
            raise InputError(f"the band files lie in two products: {inside[0][0]} in the one of {inside[0][1]} but {path} "
                             f"in the one of {product}: give the band files of one product")
    radiometry = read_radiometry(inside[0][1]) if inside else None
    declared: dict[str, tuple[float, float]] = {}
    bare: list[str] = []
    for band in sorted(found, key=ORDER.index):
        source = found[band]
        info = open_info(source.path, (source.index,))
        own = (info.scales[0], info.offsets[0])
        if radiometry is None or products[source.path] is None:
            if own == (1.0, 0.0):
                bare.append(band)
            continue
        given = radiometry.scale_offset(band)
        if own == (1.0, 0.0):
            declared[band] = given
        elif not all(math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12) for a, b in zip(own, given)):
            progress.info(f"band {band} in {source.path} declares scale {own[0]:g} and offset {own[1]:g}, but "
                          f"{radiometry.path} gives {given[0]:g} and {given[1]:g}: the band file's are kept")
    if declared:
        offsets = {f"{radiometry.offsets[band]:g}" for band in declared}
        offset = f"offset {offsets.pop()}" if len(offsets) == 1 else "offsets " + ", ".join(
            f"{band} {radiometry.offsets[band]:g}" for band in declared)
        progress.info(
            f"radiometry from {radiometry.path} (processing baseline {radiometry.baseline or 'not named'}): reflectance = "
            f"(DN + offset) / {radiometry.quantification:g}, {offset}: {', '.join(declared)} declare scale and offset so "
            "that their stored digital numbers read as reflectance"
        )
    if bare:
        progress.info(f"{', '.join(bare)} declare no scale/offset and lie in no product with a metadata file "
                      f"({', '.join(METADATA_NAMES)}): the output holds their digital numbers with no declared radiometry")
    return declared


def _band_metadata(bands: Sequence[tuple[RasterInfo, int]]) -> dict[str, tuple]:
    """The scale, offset, unit and metadata items of each ``(info, k)`` of ``bands`` (the 0-based ``k``-th selected
    band of ``info``), in order, as the ``RasterInfo`` fields ``scales``, ``offsets``, ``units`` and ``band_tags``."""
    return {name: tuple(getattr(info, name)[k] for info, k in bands) for name in ("scales", "offsets", "units", "band_tags")}


def _write_stack(sources: list[BandSource], path: str, declared: dict[str, tuple[float, float]]) -> None:
    """Write ``sources`` (bands of one resolution, grid, data type and nodata: ``check_stacks``) as one
    GeoTIFF with band-name descriptions, ``stack_nodata`` and each band's own scale/offset (else the one ``declared``
    for it, ``product_radiometry``), unit and metadata items (``raster.write_band_metadata``)."""
    infos = [open_info(source.path, (source.index,)) for source in sources]
    infos = [replace(info, scales=(declared[s.band][0],), offsets=(declared[s.band][1],)) if s.band in declared else info
             for s, info in zip(sources, infos)]
    first = infos[0]
    with open_raster(
        path, "w", driver="GTiff", width=first.grid.width, height=first.grid.height, count=len(sources),
        dtype=first.dtype, crs=first.grid.crs, transform=first.grid.transform, nodata=stack_nodata(first),
        tiled=True, compress="deflate", BIGTIFF="IF_SAFER",
    ) as dst:
        for out_index, source in enumerate(sources, start=1):
            try:
                with open_raster(source.path) as src:
                    dst.write(src.read(source.index), out_index)
            except RasterioIOError as error:  # damaged past the corner pixel find_bands read
                raise unreadable(source.path, error) from None
            dst.set_band_description(out_index, source.band)
        write_band_metadata(dst, replace(first, **_band_metadata([(info, 0) for info in infos])))


def sharpen_product(
    inputs: Sequence[str],
    output_path: str,
    config: GuidedDIPConfig = GuidedDIPConfig(),
    float32: bool = False,
    progress: Progress | None = None,
) -> RunResult:
    """Every band found in ``inputs`` at 10 m, in band order, written atomically to ``output_path``."""
    *inputs, output_path = as_paths(*inputs, output_path)
    recorder = _Recorder(progress or NullProgress())
    found = find_bands(inputs, recorder)
    check_targets(found, inputs)
    sources = sorted({s.path for s in found.values()})
    check_raster_output(output_path, sources)
    with claimed(output_files(output_path)):
        groups = {res: [found[b] for b in ORDER if b in found and RESOLUTION[b] == res] for res in (10, 20, 60)}
        recorder.info("bands found: " + ", ".join(f"{res} m {', '.join(s.band for s in g)}" for res, g in groups.items() if g))
        in_order = sorted(found.values(), key=lambda s: ORDER.index(s.band))
        for path in dict.fromkeys(s.path for s in in_order):
            recorder.info(f"{', '.join(s.band for s in in_order if s.path == path)} from {path}")
        infos = check_stacks(groups, float32, recorder)
        check_grids(groups)
        declared = product_radiometry(found, recorder)
        undeclared = sum(1 for i in infos if i.nodata is None and stack_nodata(i) is not None)
        if undeclared:
            recorder.info(f"{undeclared} of the {len(infos)} bands declare no nodata value: {SENTINEL2_NODATA} is no data there, as "
                          "in Sentinel-2 products")
        device = ""
        # beside the output, where the space for it is (a system temporary folder may be small, or in memory); a process
        # killed outright leaves it, named like the other staged files (README, "killed outright")
        with tempfile.TemporaryDirectory(prefix=PARTIAL_PREFIX, suffix=PARTIAL_SUFFIX,
                                         dir=os.path.dirname(os.path.abspath(output_path))) as tmp:
            guide = os.path.join(tmp, "10m.tif")
            _write_stack(groups[10], guide, declared)
            parts = {10: guide}
            todo = [res for res in (20, 60) if groups[res]]
            stages = []  # each stage's tiles, for the loss figure's title
            for n, res in enumerate(todo):
                target = os.path.join(tmp, f"{res}m.tif")
                _write_stack(groups[res], target, declared)
                parts[res] = os.path.join(tmp, f"{res}m_at_10m.tif")
                sub = SubProgress(recorder, SHARPEN_SHARE * n / len(todo), SHARPEN_SHARE * (n + 1) / len(todo),
                                  done=f"{res} m bands sharpened")
                roles = (f"the {res} m bands {', '.join(b.band for b in groups[res])}", f"the 10 m bands {', '.join(GUIDE_BANDS)}")
                result = sharpen(target, guide, parts[res], config, IOOptions(float32=float32), IOOptions(), sub, loss_curve=False,
                                 roles=roles)
                recorder.curves.extend(result.curves)
                stages.append(f"{res} m bands {len(result.curves)}")
                device = result.device
            method = f"{GUIDED_METHOD} (tiles: {', '.join(stages)})" if len(stages) > 1 else GUIDED_METHOD
            return recorder.write_output(
                output_path, device or "none", method, lambda group: _assemble(parts, groups, output_path, float32, group, recorder),
                sources,
            )


def _assemble(
    parts: dict[int, str], groups: dict[int, list[BandSource]], output_path: str, float32: bool, files: StagedFiles,
    recorder: _Recorder,
) -> None:
    """Write the bands in ``ORDER`` to ``output_path`` (staged in ``files``) on the 10 m bands' whole grid: where the
    files of a lower resolution cover less, its bands have no data outside the area its sharpened part covers (the
    log says so), and the other bands lose no pixel.

    The output's nodata value is the 10 m bands' (``stack_nodata``), NaN in Float32; where that leaves an integer
    output without one and a band has no data somewhere (a 20 m or 60 m band's own nodata, the pixels whose
    kernels reach it, the area its files do not cover), ``free_nodata`` chooses a value no valid output pixel holds,
    so that each band's holes are marked band by band (a mask would be one for all bands). Each band keeps its
    file's scale/offset (else its product's, ``product_radiometry``), unit and metadata items, which the sharpened
    parts carry (``_write_stack``)."""
    infos = {res: open_info(path) for res, path in parts.items()}
    guide = infos[10].grid
    windows = {}  # each sharpened part lies on a window of the 10 m grid
    for res, info in infos.items():
        col, row = (~guide.transform) * (info.grid.transform.c, info.grid.transform.f)
        windows[res] = Window(round(col), round(row), info.grid.width, info.grid.height)
        if (windows[res].width, windows[res].height) != (guide.width, guide.height):
            w = windows[res]
            recorder.info(
                f"the {res} m bands ({', '.join(s.band for s in groups[res])}) cover 10 m columns {w.col_off}–"
                f"{w.col_off + w.width - 1}, rows {w.row_off}–{w.row_off + w.height - 1} of the {guide.width}×{guide.height} "
                "10 m pixels: they have no data elsewhere"
            )
    area = Window(0, 0, guide.width, guide.height)
    order = [(res, i, s.band) for res in (10, 20, 60) for i, s in enumerate(groups[res]) if res in parts]
    order.sort(key=lambda item: ORDER.index(item[2]))
    names = tuple(band for _, _, band in order)
    dtype = "float32" if float32 else infos[10].dtype

    def blocks() -> Iterator[tuple[Window, np.ndarray, np.ndarray]]:
        """The output's row blocks: window, float values ``(C, h, w)`` and their validity, bands in ``order``."""
        for top in range(0, area.height, BLOCK_ROWS):
            block = Window(0, top, area.width, min(BLOCK_ROWS, area.height - top))
            values = np.zeros((len(names), block.height, block.width), dtype=exact_float(dtype))  # int32 values stay exact
            valid = np.zeros(values.shape, dtype=bool)
            for k, (res, i, _) in enumerate(order):
                w = windows[res]
                c0, c1 = w.col_off, w.col_off + w.width
                r0, r1 = max(w.row_off, top), min(w.row_off + w.height, top + block.height)
                if r0 < r1:
                    part = Window(0, r0 - w.row_off, w.width, r1 - r0)
                    data, ok = read_window(replace(infos[res], bands=(i + 1,)), part)
                    values[k, r0 - top : r1 - top, c0:c1], valid[k, r0 - top : r1 - top, c0:c1] = data[0], ok[0]
            yield block, values, valid

    meta = RasterInfo(output_path, guide.window_grid(area), dtype, infos[10].nodata, tuple(range(1, len(names) + 1)),
                      names, (ColorInterp.gray,) * len(names), tags={PRODUCT_TAG: "sentinel2"},
                      **_band_metadata([(infos[res], i) for res, i, _ in order]))
    if output_nodata(meta, dtype) is None:
        holes, nodata = free_nodata(blocks(), dtype, names)
        if nodata is not None:
            meta = replace(meta, nodata=nodata)
            recorder.info(
                f"the 10 m bands declare no nodata value, and {', '.join(holes)} have no data in places: the output marks "
                f"it by {value_text(nodata)}, a value no valid pixel of the output holds"
            )
    with AtomicGeoTIFF(output_path, meta, meta.grid, dtype, files=files) as out:
        for block, values, valid in blocks():
            out.write(block, values, valid)


def free_nodata(
    blocks: Iterable[tuple[Window, np.ndarray, np.ndarray]], dtype: str, names: Sequence[str]
) -> tuple[list[str], int | None]:
    """The bands of ``names`` with invalid pixels in ``blocks`` (window, float values ``(C, h, w)``, validity)
    and, when there are any, a value of the integer ``dtype`` that no valid pixel holds once cast (``to_dtype``):
    the type's least value, else its greatest, else (8- and 16-bit types) the least value unused; ``None`` when
    no band has invalid pixels. A one-line ``InputError`` when every value is held (only a Float32 output can
    then mark the holes)."""
    limits = np.iinfo(np.dtype(dtype))
    small = np.dtype(dtype).itemsize <= 2
    used = np.zeros(int(limits.max) - int(limits.min) + 1, dtype=bool) if small else None
    low, high = int(limits.max), int(limits.min)
    holed = np.zeros(len(names), dtype=bool)
    for _, values, valid in blocks:
        holed |= ~valid.all(axis=(1, 2))
        cast = to_dtype(values, valid, dtype, None)[0][valid].astype(np.int64)
        if cast.size:
            low, high = min(low, int(cast.min())), max(high, int(cast.max()))
            if used is not None:
                used[cast - int(limits.min)] = True
    holes = [name for name, holed_band in zip(names, holed) if holed_band]
    if not holes:
        return holes, None
    if low > limits.min:
        return holes, int(limits.min)
    if high < limits.max:
        return holes, int(limits.max)
    if used is not None and not used.all():
        return holes, int(np.argmin(used)) + int(limits.min)
    raise InputError(
        f"{', '.join(holes)} have no data in places, the 10 m bands declare no nodata value and every {dtype} value "
        "is held by a valid pixel, so none is left to mark it: write Float32 (--float32), or give the 10 m bands a "
        "nodata value (gdal_translate -a_nodata)"
    )
