"""Value types for grid arithmetic: raster grids and pixel windows.

Conventions: a ``Grid`` is ``width × height`` pixels with an affine ``transform`` mapping
(column, row) pixel-corner coordinates to CRS coordinates (GDAL/rasterio convention: pixel (r, c)
covers [c, c+1) × [r, r+1) in pixel space). Refining by an integer ``s`` keeps the CRS and the
origin, divides the pixel size by ``s`` and multiplies width and height by ``s``, so low-resolution
pixel (i, j) covers high-resolution pixels [s·i, s·i+s) × [s·j, s·j+s).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from affine import Affine

from .config import extent_words
from .errors import InputError
from .progress import Progress


@dataclass(frozen=True)
class Window:
    """A rectangle of pixels: ``col_off``/``row_off`` of the top-left pixel, ``width`` × ``height``."""

    col_off: int
    row_off: int
    width: int
    height: int

    @property
    def slices(self) -> tuple[slice, slice]:
        """(rows, cols) slices selecting this window from an array indexed [..., row, col]."""
        return (slice(self.row_off, self.row_off + self.height), slice(self.col_off, self.col_off + self.width))

    def scaled(self, scale: int) -> "Window":
        """The same area on a grid refined by ``scale``."""
        return Window(self.col_off * scale, self.row_off * scale, self.width * scale, self.height * scale)

    def translated(self, cols: int, rows: int) -> "Window":
        """The same size moved by ``cols`` and ``rows`` pixels."""
        return Window(self.col_off + cols, self.row_off + rows, self.width, self.height)

    def to_blocks(self, block: int, width: int, height: int) -> "Window":
        """The smallest window of whole ``block × block`` blocks (counted from pixel 0) that contains this
        one, clipped to a ``width × height`` grid (whose trailing partial blocks stay partial)."""
        c0, r0 = self.col_off // block * block, self.row_off // block * block
        c1 = min(width, -(-(self.col_off + self.width) // block) * block)
        r1 = min(height, -(-(self.row_off + self.height) // block) * block)
        return Window(c0, r0, c1 - c0, r1 - r0)

    def as_dict(self) -> dict[str, int]:
        """The window for a JSON record: ``col_off``, ``row_off``, ``width``, ``height``."""
        return {"col_off": self.col_off, "row_off": self.row_off, "width": self.width, "height": self.height}

    def describe(self) -> str:
        """The window for a log line: ``columns 10–19, rows 0–4 (10×5 pixels)``."""
        return (
            f"columns {self.col_off}–{self.col_off + self.width - 1}, rows "
            f"{self.row_off}–{self.row_off + self.height - 1} ({self.width}×{self.height} pixels)"
        )


@dataclass(frozen=True)
class Grid:
    """A georeferenced pixel grid. ``crs`` is a rasterio CRS or ``None`` (not georeferenced)."""

    width: int
    height: int
    transform: Affine
    crs: Any = None

    def refined(self, scale: int) -> "Grid":
        """The grid whose pixels are ``scale × scale`` subdivisions of this grid's pixels."""
        return Grid(self.width * scale, self.height * scale, self.transform * Affine.scale(1 / scale), self.crs)

    def coarsened(self, scale: int) -> "Grid":
        """The grid whose pixels are ``scale × scale`` blocks of this one (trailing partial blocks dropped)."""
        return Grid(self.width // scale, self.height // scale, self.transform * Affine.scale(scale), self.crs)

    def window_grid(self, window: Window) -> "Grid":
        """The grid of ``window`` inside this grid."""
        return Grid(window.width, window.height, self.transform * Affine.translation(window.col_off, window.row_off), self.crs)

    def extent_window(
        self, extent: tuple[float, float, float, float], tolerance: float = 1e-6, inside: bool = False
    ) -> Window | None:
        """The whole pixels covering ``extent`` (xmin, ymin, xmax, ymax in CRS units), clipped to this grid.

        The extent is snapped outward to pixel edges: a pixel is in the window when the extent covers
        more than ``tolerance`` of a pixel of it along each axis, so an extent drawn on pixel edges
        gives exactly those pixels. With ``inside``, snapped inward: only the pixels the extent covers
        wholly (but for ``tolerance`` of a pixel). ``None`` when the extent and the grid share no pixel.
        """
        cmin, rmin, cmax, rmax = self.pixel_span(extent)
        first, last, slack = (math.ceil, math.floor, -tolerance) if inside else (math.floor, math.ceil, tolerance)
        c0 = max(0, first(cmin + slack))
        r0 = max(0, first(rmin + slack))
        c1 = min(self.width, last(cmax - slack))
        r1 = min(self.height, last(rmax - slack))
        if c1 <= c0 or r1 <= r0:
            return None
        return Window(c0, r0, c1 - c0, r1 - r0)

    def reaches_past(self, extent: tuple[float, float, float, float], tolerance: float = 1e-6) -> bool:
        """Whether ``extent`` (xmin, ymin, xmax, ymax in CRS units) reaches more than ``tolerance`` of a pixel past
        this grid's edges, so that ``extent_window`` clips it (an extent drawn on the grid's edges does not)."""
        cmin, rmin, cmax, rmax = self.pixel_span(extent)
        return cmin < -tolerance or rmin < -tolerance or cmax > self.width + tolerance or rmax > self.height + tolerance

    def pixel_span(self, extent: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
        """Where ``extent`` (xmin, ymin, xmax, ymax in CRS units) lies on this grid, in fractional pixels: the least
        and greatest column and row of its four corners (cmin, rmin, cmax, rmax), unclipped."""
        xmin, ymin, xmax, ymax = extent
        inverse = ~self.transform
        corners = [inverse * (x, y) for x in (xmin, xmax) for y in (ymin, ymax)]
        cols, rows = [c for c, _ in corners], [r for _, r in corners]
        return min(cols), min(rows), max(cols), max(rows)

    def covering_window(self, extent: tuple[float, float, float, float], where: str, coordinates: str = "in its CRS") -> Window:
        """``extent_window(extent)``, or a one-line ``InputError`` when the extent shares no pixel with this grid:
        "extent … does not overlap ``where`` (which covers … ``coordinates``)", ``where`` naming the raster and
        ``coordinates`` how the extent and these bounds are given."""
        window = self.extent_window(extent)
        if window is None:
            raise InputError(
                f"extent {extent_words(extent)} does not overlap {where} (which covers {extent_words(self.bounds)} {coordinates})"
            )
        return window

    def unrotated(self) -> "Grid":
        """This grid without the rotation terms of its geotransform (``b``, ``d``): the north-up grid of the same
        origin and pixel sizes, which a grid whose rotation terms are within the bound of ``north_up`` is taken as."""
        t = self.transform
        return Grid(self.width, self.height, Affine(t.a, 0.0, t.c, 0.0, t.e, t.f), self.crs)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(xmin, ymin, xmax, ymax) of the grid's corners in CRS units."""
        xs, ys = zip(*(self.transform * (c, r) for c in (0, self.width) for r in (0, self.height)))
        return min(xs), min(ys), max(xs), max(ys)


@dataclass(frozen=True)
class Nesting:
    """How a fine grid (the guide) nests in a coarse grid (the target) over their overlap (``nest``; scale 1, two
    grids of one resolution taken as one: ``same_grid``).

    ``target`` is the window of the target pixels that the guide covers wholly (``_span``); ``guide`` is the same area
    on the guide grid, so target pixel (r, c) of the window covers guide pixels
    [s·r, s·r+s) × [s·c, s·c+s) of the guide window — moved by ``shift`` (rows, columns; 0 or ½ guide
    pixel) on half-pixel grids such as Landsat's pan and multispectral bands, whose pixel centres
    coincide so that the pan's pixel edges sit half a pan pixel off the multispectral ones. The
    degradation kernels then carry that shift (``core.kernels``).

    ``offset`` and ``drift`` (columns, rows; guide pixels, each within ``ALIGNMENT_TOLERANCE``): how far the
    target's pixel edges fall from the guide's edges they are taken to lie on (plus ``shift``), positive towards
    higher columns and rows (``misplacement``). ``offset`` is that at the overlap's first corner (``target``'s first
    pixel: the target's own corner where the guide covers it); ``drift`` is the worst over the overlap, i.e. over its
    four corners (``worst_misplacement``: per axis, the signed value of largest magnitude, perhaps at two different
    corners). 0 for exactly nested grids; ``alignment_note`` words them when they are more than floating-point noise.
    """

    scale: int
    target: Window
    guide: Window
    shift: tuple[float, float] = (0.0, 0.0)
    offset: tuple[float, float] = (0.0, 0.0)
    drift: tuple[float, float] = (0.0, 0.0)


def _span(offset: int, scale: int, target_length: int, guide_length: int, half: bool) -> tuple[int, int]:
    """The target pixels [first, last) along one axis that a guide of ``guide_length`` pixels covers wholly.

    ``offset`` is the target origin in whole guide pixels, rounded down on half-pixel grids (``half``): target pixel k
    is sharpened onto guide pixels [offset + k·scale, offset + (k+1)·scale), and on a half-pixel grid its ground
    footprint is half a guide pixel later (``Nesting.shift``), [offset + ½ + k·scale, offset + ½ + (k+1)·scale). It is
    kept when that footprint lies on the guide: at the near end when those guide pixels exist, at the far end, on a
    half-pixel grid, when the guide pixel after them does too (the footprint reaches half into it). So the overlap is
    the target pixels the guide covers wholly on either side, which are those a resampling of the guide onto the
    target's grid covers without fill (``_resample_hint``): a Landsat scene's pan, which starts and ends half a pan
    pixel inside its multispectral bands, covers neither its first nor its last multispectral column wholly.
    """
    first = max(0, -(offset // scale))  # ceil(−offset / scale)
    last = min(target_length, (guide_length - int(half) - offset) // scale)
    return first, last


class NotAligned(InputError):
    """The target's pixel edges do not fall on the guide's (nor half-way between them) over the overlap.

    ``offsets``: (columns, rows) distance in guide pixels to the nearest whole guide pixel edge from the overlap's
    first corner (where no phase, 0 or ½, fits; ``overlap_corner``) or from the worst corner of the overlap (per
    axis); ``scale``: the integer ratio of the grids. Front ends that word the grids in their own terms (``core.sentinel2_product``) read these
    instead of the message.
    """

    def __init__(self, message: str, offsets: tuple[float, float], scale: int) -> None:
        super().__init__(message)
        self.offsets = offsets
        self.scale = scale


class NoOverlap(InputError):
    """Not even one whole target pixel is covered by the guide (``nest``)."""


NO_OVERLAP = "target and guide do not overlap (not even one whole target pixel is covered by the guide)"


def off_whole(position: float) -> float:
    """The distance (pixels, 0–½) from ``position`` (in pixels) to the nearest whole pixel edge."""
    return abs(position - round(position))


def guide_position(target: Grid, guide: Grid, col: float, row: float) -> tuple[float, float]:
    """Where the corner of target pixel (``col``, ``row``) falls on the guide's grid: (column, row) in guide pixels."""
    return ~guide.transform * (target.transform * (col, row))


def overlap_corner(target: Grid, guide: Grid) -> tuple[int, int]:
    """Where the overlap of ``target`` and ``guide`` starts, to within half a target pixel: the target's pixel corner
    (column, row) nearest to the guide's corner (the corner of its pixel (0, 0)), clamped into the target; (0, 0) when
    the guide starts before the target. For grids whose rows and columns run the same way (``nest``)."""
    col, row = ~target.transform * (guide.transform * (0, 0))
    return min(max(round(col), 0), target.width), min(max(round(row), 0), target.height)


def corner_words(col: int, row: int, noun: str = "target") -> str:
    """The target's pixel corner (``col``, ``row``) where an overlap starts, for a message: "the target's corner" at
    (0, 0), else "the overlap's corner (the target's pixel corner at column 48, row 0)"; ``noun``: the target's."""
    if (col, row) == (0, 0):
        return f"the {noun}'s corner"
    return f"the overlap's corner (the {noun}'s pixel corner at column {col}, row {row})"


def misplacement(target: Grid, guide: Grid, scale: int, origin: tuple[float, float], col: int, row: int) -> tuple[float, float]:
    """How far (columns, rows; guide pixels, positive towards higher ones) the corner of target pixel (``col``, ``row``)
    falls from the guide's pixel edge it is taken to lie on: ``origin`` (where the target's corner is taken to lie, in
    guide pixels) plus ``scale`` guide pixels per target pixel. Affine in (``col``, ``row``). ``Nesting.offset`` is
    this at (0, 0)."""
    x, y = guide_position(target, guide, col, row)
    return x - origin[0] - scale * col, y - origin[1] - scale * row


def worst_misplacement(
    target: Grid, guide: Grid, scale: int, origin: tuple[float, float], window: Window
) -> tuple[float, float]:
    """The worst ``misplacement`` (columns, rows; guide pixels) of the target's pixel edges over ``window`` (target
    pixels): per axis, the signed value of largest magnitude over the window's four corners, perhaps taken at two
    different corners. The misplacement is affine in (column, row) (pixel sizes a little off the ratio ``scale``, and
    rotation terms, move edges linearly across a raster), so no edge inside the window is further off.
    ``Nesting.drift`` (``nest``, ``same_grid``)."""
    cols = (window.col_off, window.col_off + window.width)
    rows = (window.row_off, window.row_off + window.height)
    corners = [misplacement(target, guide, scale, origin, col, row) for row in rows for col in cols]
    return max((c[0] for c in corners), key=abs), max((c[1] for c in corners), key=abs)


def _resample_hint(target: Grid, guide: Grid, scale: int) -> str:
    """The gdalwarp line that resamples the guide onto the target's grid refined by ``scale`` over the target pixels
    that the guide covers wholly (the whole target where it covers none), both grids taken north-up
    (``Grid.unrotated``): an extent on the target's pixel edges, whole target pixels wide and high, which rotation
    terms do not widen and where the resampled guide holds no fill."""
    grid = target.unrotated()
    t = grid.transform
    window = grid.extent_window(guide.unrotated().bounds, inside=True)
    left, bottom, right, top = (grid if window is None else grid.window_grid(window)).bounds
    return (f"resample the guide onto the target's grid refined by {scale} over their overlap first, e.g. gdalwarp -r cubic "
            f"-tr {abs(t.a) / scale:.12g} {abs(t.e) / scale:.12g} -te {left:.12g} {bottom:.12g} {right:.12g} {top:.12g} "
            "GUIDE ALIGNED_GUIDE")


#: How far (guide pixels) the target's pixel edges may fall off the guide's (or off half-way between them) and
#: still count as aligned (``nest``): at every corner of the overlap (the first sets the phase), where pixel sizes
#: nearly but not exactly in the integer ratio (the SpaceNet Rotterdam pair, 1.0000483 m pixels over 0.4999935 m
#: ones, by 0.037 pan pixels across its 300 multispectral pixels), and rotation terms, have moved them apart. Within
#: it the target is taken as nesting exactly and the output lies on the guide's grid; the misplacement it allows is
#: far below what matters for the result:
#:
#: - it is below what the registration check can see, 1 / ``core.registration.UPSAMPLE`` target pixel = 0.1 guide
#:   pixel at scale 2 (more at larger scales), and a twelfth of the shift it warns about, ``WARN_SHIFT`` (0.3 target
#:   pixel = 0.6 guide pixel at scale 2, 4.8 at 16), at every scale;
#: - on the committed Landsat 8 crop, the pan degraded with its phase moved by 0.05 pan pixel (a Fourier shift)
#:   explains B2 and B4 with a residual 0.6–1.6 % larger, against 62–81 % larger moved by ½ (which costs guided
#:   DIP 23 % RMSE, README "Sharpen with a guide"); the residual grows with the square of the shift
#:   (``tests/test_landsat.py``);
#: - the remedy beyond it, resampling the guide (``gdalwarp -r cubic``), would gain nothing at this size: cubic
#:   interpolation 0.05 pixel off the samples keeps 98.5 % of the guide's contrast at Nyquist (99.2 % at 0.037), a
#:   loss of the guide's finest detail, which guided DIP transfers, of the same small order as the misplacement;
#: - it keeps the phases told apart (``nest``: pixel edges that line up, 0, or sit half a guide pixel apart, ½, as
#:   on Landsat's grids) 0.4 guide pixel apart, and far above the rounding of pixel sizes and origins that
#:   geotransforms (float64) and world files (decimal text) carry (``FLOAT_NOISE``).
#:
#: The same bound, in guide pixels across a raster, is how far its geotransform's rotation terms may move its pixel
#: edges for it to count as north-up (``rotation_drift``). Rotation terms move pixel edges linearly across the raster
#: as a drift does, but along the other axis (column edges from row to row, row edges from column to column), so
#: they can add to a drift at two corners of the overlap while cancelling it at the far one: the bound holds at all four
#: (``worst_misplacement``), whatever the rotation terms and pixel sizes add up to.
ALIGNMENT_TOLERANCE = 0.05
#: Misplacements of pixel edges (guide pixels) up to this are floating-point noise, the rounding of pixel sizes and
#: origins (10 m written as 10 + 1e-9 moves the edges 1.5e-7 guide pixels across 768 target pixels of 20 m):
#: ``alignment_note`` says nothing of them.
FLOAT_NOISE = 1e-6


def rotation_drift(grid: Grid, pixels: Grid | None = None) -> float:
    """How far the rotation terms of ``grid``'s geotransform move its pixel edges across the raster, in pixels of
    ``pixels`` (default: ``grid`` itself): the larger of the columns that column edges shift by from the top row
    to the bottom (term ``b``, CRS x per row) and the rows that row edges shift by from the left column to the
    right (term ``d``, CRS y per column). 0 for a north-up (or south-up) grid; infinite when ``pixels`` has no
    extent along an axis (a grid turned by 90°)."""
    t, p = grid.transform, (pixels or grid).transform
    if not (t.b or t.d):
        return 0.0
    if not (p.a and p.e):
        return math.inf
    return max(abs(t.b) * grid.height / abs(p.a), abs(t.d) * grid.width / abs(p.e))


def north_up(grid: Grid, tolerance: float = ALIGNMENT_TOLERANCE, pixels: Grid | None = None) -> bool:
    """Whether ``grid`` counts as north-up (no rotation or shear): its rotation terms move its pixel edges by at
    most ``tolerance`` pixels of ``pixels`` (default: its own) across the raster (``rotation_drift``), so
    floating-point noise in them (1e-12 m per pixel, as some writers leave) does not make a grid rotated."""
    return rotation_drift(grid, pixels) <= tolerance


def crs_words(a: Any, b: Any) -> tuple[str, str]:
    """Two CRSs that differ (rasterio CRSs, or ``None``: "no CRS") worded for a message so that the words differ too:
    their authority codes (``EPSG:32633``), else their PROJ strings, else their WKT. A CRS without its datum
    (``+ellps=WGS84``) identifies as the code of the CRS with it but is not equal to it, and "EPSG:32633 and
    EPSG:32633 differ" tells nothing."""

    def proj(crs: Any) -> str:
        return " ".join(f"+{key}" if value is True else f"+{key}={value}" for key, value in crs.to_dict().items())

    wordings = (lambda crs: crs.to_string(), proj, lambda crs: crs.to_wkt())
    for wording in wordings:
        words = ("no CRS" if a is None else wording(a), "no CRS" if b is None else wording(b))
        if words[0] != words[1]:
            break
    return words


def nest(target: Grid, guide: Grid, tolerance: float = ALIGNMENT_TOLERANCE) -> Nesting:
    """Check that ``guide`` refines ``target`` by an integer factor on aligned pixels and find the overlap.

    Raises a one-line ``InputError`` when the CRSs differ, a grid is rotated (``north_up`` within ``tolerance``
    guide pixels across each raster), the resolution ratio (guide pixels per target pixel) differs between the axes
    or is not an integer ≥ 2 (by more than ``tolerance``: the drift of the edges of one target pixel), or the grids do
    not overlap by at least one whole target pixel (a ``NoOverlap``); a ``NotAligned`` when the target's pixel edges
    fall neither on the guide's nor half-way between them, within ``tolerance`` guide pixels, at the overlap's first
    corner (``overlap_corner``, which sets the phase, 0 or ½: a target far larger than the guide may have drifted off
    it by its own corner, outside the overlap, which is not judged) and at each corner of the overlap (pixel sizes
    whose ratio is nearly but not exactly the integer, and rotation terms, move the edges apart linearly across the
    raster: the worst misplacement over the overlap, at one of its corners, is what is checked, whatever the extent;
    ``worst_misplacement``).
    Within ``tolerance`` the target is taken as nesting exactly, and how far it is off is kept (``Nesting.offset``,
    ``Nesting.drift``; worded by ``alignment_note``). Nothing is reprojected or resampled.
    """
    if (target.crs is None) != (guide.crs is None):
        which, other = ("target", guide.crs) if target.crs is None else ("guide", target.crs)
        raise InputError(f"the {which} has no CRS and the other raster has {other}: assign the CRS it is in first (gdal_edit -a_srs)")
    if target.crs is not None and target.crs != guide.crs:
        words = crs_words(target.crs, guide.crs)
        code = target.crs.to_string()
        remedy = (f"where both mean {code}, assign it to both (gdal_edit -a_srs {code}), nothing is resampled; else reproject"
                  if code == guide.crs.to_string() else "reproject")
        raise InputError(f"target CRS {words[0]} and guide CRS {words[1]} differ: {remedy} one onto the other first")
    t, g = target.transform, guide.transform
    if not (north_up(target, tolerance, pixels=guide) and north_up(guide, tolerance)):
        drift = max(rotation_drift(target, guide), rotation_drift(guide))
        raise InputError(f"rotated geotransforms are not supported for guided super-resolution (the rotation terms move "
                         f"pixel edges by {drift:.3g} guide pixels across the raster, at most {tolerance:g} is taken as "
                         "north-up): warp to a north-up grid first")
    if (t.a > 0) != (g.a > 0) or (t.e > 0) != (g.e > 0):
        raise InputError("the target's and the guide's rows or columns run in opposite directions (one is south-up): "
                         "warp one to the other's orientation first (gdalwarp)")
    ratios = (t.a / g.a, t.e / g.e)
    if max(ratios) < 1 - tolerance:
        raise InputError(f"the guide's pixels ({abs(g.a):g} units) are coarser than the target's ({abs(t.a):g}): the guide "
                         "is the finer raster, so swap them")
    if abs(ratios[0] - ratios[1]) > tolerance:
        raise InputError(
            f"the guide refines the target by different factors along x and y: target pixels are {abs(t.a):g} × "
            f"{abs(t.e):g}, guide pixels {abs(g.a):g} × {abs(g.e):g} (ratio {ratios[0]:.4g} in x, {ratios[1]:.4g} in y), and "
            "guided super-resolution takes one integer scale for both; resample the guide so that both ratios are that integer"
        )
    scale = round(ratios[0])
    if any(abs(r - scale) > tolerance for r in ratios) or scale < 1:
        raise InputError(
            f"non-integer scale between grids: target pixels are {abs(t.a):g} × {abs(t.e):g}, guide pixels "
            f"{abs(g.a):g} × {abs(g.e):g} (ratio {ratios[0]:.4g} × {ratios[1]:.4g}); resample the guide to an integer fraction"
        )
    if scale < 2:
        raise InputError(f"the guide ({abs(g.a):g} units per pixel) must be at least twice as fine as the target ({abs(t.a):g})")
    # not one target pixel the guide covers wholly (``_span``), within the tolerance: refused before the phase is read
    if target.unrotated().extent_window(guide.unrotated().bounds, tolerance / scale, inside=True) is None:
        raise NoOverlap(NO_OVERLAP)
    start = overlap_corner(target, guide)
    position = guide_position(target, guide, *start)
    corner = (position[0] - scale * start[0], position[1] - scale * start[1])  # the target's corner, nested from ``start``
    halves = [round(2 * o) for o in corner]
    if any(abs(2 * o - h) > 2 * tolerance for o, h in zip(corner, halves)):
        offsets = (off_whole(position[0]), off_whole(position[1]))
        raise NotAligned(
            f"target and guide pixels are not aligned: {corner_words(*start)} falls {offsets[0]:.3g}, {offsets[1]:.3g} guide "
            f"pixels off the guide's pixel edges (0 or ½ is supported, within {tolerance:g}); {_resample_hint(target, guide, scale)}",
            offsets, scale,
        )
    col, row = halves[0] // 2, halves[1] // 2
    shift = (halves[1] % 2 / 2, halves[0] % 2 / 2)  # (rows, columns)
    c0, c1 = _span(col, scale, target.width, guide.width, bool(shift[1]))
    r0, r1 = _span(row, scale, target.height, guide.height, bool(shift[0]))
    if c1 <= c0 or r1 <= r0:
        raise NoOverlap(NO_OVERLAP)
    origin = (halves[0] / 2, halves[1] / 2)
    window = Window(c0, r0, c1 - c0, r1 - r0)
    drift = worst_misplacement(target, guide, scale, origin, window)
    if any(abs(d) > tolerance for d in drift):
        offsets = (off_whole(drift[0]), off_whole(drift[1]))
        turned = " or by the rotation terms of the geotransforms" if any((t.b, t.d, g.b, g.d)) else ""
        raise NotAligned(
            f"target and guide pixels drift apart: at a corner of the overlap ({window.width} × {window.height} target pixels) "
            f"the target's pixel edges fall up to {drift[0]:+.3g}, {drift[1]:+.3g} guide pixels off the guide's (at most "
            f"{tolerance:g} is taken as aligned), moved by pixel sizes not exactly in the ratio {scale} (the target's "
            f"{abs(t.a):.10g} × {abs(t.e):.10g}, the guide's {abs(g.a):.10g} × {abs(g.e):.10g}){turned}; "
            f"{_resample_hint(target, guide, scale)}", offsets, scale
        )
    fine = Window(col + scale * c0, row + scale * r0, scale * window.width, scale * window.height)
    return Nesting(scale, window, fine, shift, misplacement(target, guide, scale, origin, c0, r0), drift)


def same_grid(grid: Grid, reference: Grid, tolerance: float = ALIGNMENT_TOLERANCE) -> Nesting:
    """Check that ``grid`` lies on ``reference``'s pixels, by ``nest``'s bound at scale 1:
    the same width and height, and pixel edges within ``tolerance`` pixels of ``reference``'s at every corner of
    ``grid`` (``worst_misplacement``; pixel sizes a little apart drift apart across the raster, and an edge's
    misplacement, affine across the raster, is largest at a corner). Within it ``grid`` is taken as lying exactly on
    ``reference``'s pixels. Returns the ``Nesting`` of scale 1 over the whole grid, its misplacement at the corner and
    the worst over the grid kept (``Nesting.offset``, ``Nesting.drift``) for ``alignment_note``. Raises an
    ``InputError`` for other sizes and a ``NotAligned`` (``offsets``: the largest misplacement, columns and rows) for
    edges beyond ``tolerance``, each saying what differs (in ``reference``'s pixels) for the caller to prefix with
    which rasters these are."""
    if (grid.width, grid.height) != (reference.width, reference.height):
        raise InputError(f"{grid.width}×{grid.height} pixels against {reference.width}×{reference.height}")
    whole = Window(0, 0, grid.width, grid.height)
    drift = worst_misplacement(grid, reference, 1, (0.0, 0.0), whole)
    worst = (abs(drift[0]), abs(drift[1]))
    if max(worst) > tolerance:
        raise NotAligned(f"its pixel edges fall up to {worst[0]:.3g}, {worst[1]:.3g} pixels (x, y) off the other's, at most "
                         f"{tolerance:g} is taken as aligned", worst, 1)
    return Nesting(1, whole, whole, offset=misplacement(grid, reference, 1, (0.0, 0.0), 0, 0), drift=drift)


def alignment_note(
    nesting: Nesting, roles: tuple[str, str] | None = None, names: tuple[str, str] = ("target", "guide")
) -> str | None:
    """The log line for grids that ``nest`` (or ``same_grid``, at scale 1) accepted although the target's pixel edges
    fall off the guide's by more than ``FLOAT_NOISE`` (``Nesting.offset``, ``Nesting.drift``): how far, in guide
    pixels, at worst (at a corner of the overlap) and at the overlap's first corner (``corner_words``: the target's
    corner where the guide covers it), and that the target is taken as nesting on (at scale 1: lying on) the guide's
    grid; ``None`` for grids nested exactly. ``roles``: what the target and the guide are in the front end's words
    (e.g. "the 20 m bands B5, B6"), named beside them; ``None``: the target and the guide the user gave. ``names``: the
    nouns for the two grids (e.g. ("band B6", "band B5") for bands stacked on one grid), each after "the"."""
    if max(map(abs, (*nesting.offset, *nesting.drift))) <= FLOAT_NOISE:
        return None
    t, g = names
    target, guide = (f"the {t}", f"the {g}") if roles is None else (f"the {t} ({roles[0]})", f"the {g} ({roles[1]})")
    (dx, dy), (ox, oy), window = nesting.drift, nesting.offset, nesting.target
    taken = "nesting on" if nesting.scale > 1 else "lying on"
    return (
        f"the pixels of {target} and {guide} are not exactly aligned: at a corner of the overlap ({window.width} × "
        f"{window.height} {t} pixels) the {t}'s pixel edges fall up to {dx:+.3g}, {dy:+.3g} {g} pixels (x, y) off the "
        f"{g}'s ({ox:+.3g}, {oy:+.3g} at {corner_words(window.col_off, window.row_off, t)}), within the "
        f"{ALIGNMENT_TOLERANCE:g} {g} pixel taken as aligned: the {t} is taken as {taken} the {g}'s grid"
    )


def log_alignment(
    progress: Progress | None, nesting: Nesting, roles: tuple[str, str] | None = None, names: tuple[str, str] = ("target", "guide")
) -> None:
    """Tell ``progress`` (when there is one) the ``alignment_note`` of ``nesting`` (``roles``, ``names`` as there), when
    there is one: for grids accepted although not exactly aligned."""
    note = alignment_note(nesting, roles, names)
    if note is not None and progress is not None:
        progress.info(note)
