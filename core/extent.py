"""Extents given in another CRS than the raster's, across the antimeridian.

An area that crosses 180° of longitude (drawn on a map in a CRS continuous there, such as EPSG:3832) has no
single box in a geographic CRS whose longitudes run from −180° to 180°: its transformed bounding box spans
all longitudes but the area itself. The front ends transform an area's boundary point by point and hand the
points here (``boundary_extent``), which places the area where the raster has it (a raster that runs past
180°, or on 0–360°, has pixels there) or refuses in one line; a box that was transformed out of sight
(``check_not_wrapped``) is recognised by its shape and refused rather than silently clipped.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from .config import extent_words
from .errors import InputError

Extent = tuple[float, float, float, float]

#: Longitudes repeat every 360° (a geographic CRS in degrees); the antimeridian is at ±180°.
ROUND_ANGLE = 360.0

#: How far short of 360° an area that crosses the antimeridian comes back, when QGIS transforms its box into a
#: geographic CRS (``QgsCoordinateTransform.transformBoundingBox``, as its extent widgets and Processing's
#: ``parameterAsExtent`` do): the box spans every longitude but the gap between the samples of the area's
#: edges nearest 180° on either side, measured on QGIS 3.22 at 1–10 % of the area's width (areas 0.02° to 200°
#: wide, flat to tall). 10° thus covers every such area up to 100° wide, while a box that stops short of
#: ±180° by more (a near-global extent) is taken as meant.
WRAP_GAP = 10.0


def _overlap(lo: float, hi: float, start: float, end: float) -> float:
    return min(hi, end) - max(lo, start)


def boundary_extent(
    xs: Sequence[float], ys: Sequence[float], bounds: Extent, where: str, period: float | None = None
) -> Extent | None:
    """The extent ``(xmin, ymin, xmax, ymax)`` of an area whose boundary, densified and transformed into a
    raster's CRS, runs through the points ``(xs[i], ys[i])`` in order (the last joins the first). ``bounds``:
    the raster's extent in that CRS; ``where``: the raster as messages name it.

    A boundary that crosses the CRS's edge (the antimeridian) jumps across the whole CRS between two
    neighbouring points: a step longer than half the points' x span, which no boundary sampled densely and
    transformed continuously makes. With ``period`` (``ROUND_ANGLE`` for longitudes in degrees) the steps
    are unwrapped into one continuous run and the area is placed, whole periods on, where it overlaps the
    raster; an area that would lie at both ends of the raster (a raster from −180° to 180°) is refused in
    one line, as one run cannot process it, and one that overlaps the raster nowhere is left where its west
    edge lies in [−180°, 180°) for the engine to refuse as not overlapping (``core.raster``). Without
    ``period`` (a projected CRS) a jump is refused in one line. ``None`` when the box QGIS made of the area is
    as good: the boundary crosses no edge of the CRS, or it goes once round every longitude (it encloses a pole),
    which no box of longitudes describes better.
    """
    n = len(xs)
    span = max(xs) - min(xs)
    steps = [xs[(i + 1) % n] - xs[i] for i in range(n)]
    if not any(abs(step) > span / 2 for step in steps):
        return None
    jump = max(range(n), key=lambda i: abs(steps[i]))
    if period is None:
        raise InputError(
            f"the extent crosses the edge of {where}'s CRS (the antimeridian): transformed into it, its x coordinates "
            f"jump from {xs[jump]:.10g} to {xs[(jump + 1) % n]:.10g}, so no box in that CRS covers it; give the extent "
            "in the raster's CRS"
        )
    steps = [step - period * round(step / period) for step in steps]
    if abs(sum(steps)) > period / 2:
        return None
    unwrapped = [xs[0]]
    for step in steps[:-1]:
        unwrapped.append(unwrapped[-1] + step)
    lo, hi = min(unwrapped), max(unwrapped)
    shifts = [k for k in range(math.floor((bounds[0] - hi) / period), math.ceil((bounds[2] - lo) / period) + 1)
              if _overlap(lo + k * period, hi + k * period, bounds[0], bounds[2]) > 0]
    if len(shifts) > 1:
        k = shifts[0]
        raise InputError(
            f"extent {extent_words((lo + k * period, min(ys), hi + k * period, max(ys)))} crosses the antimeridian "
            f"(±{period / 2:g}°) where {where} (which covers {extent_words(bounds)} in its CRS) has its two edges, so the "
            "area lies at both ends of the raster and one run cannot process it: run once for each side of "
            f"{period / 2:g}°, or warp the raster to longitudes that run across {period / 2:g}° first (gdalwarp, with "
            "+lon_wrap=180 in the target CRS)"
        )
    k = shifts[0] if shifts else -math.floor((lo + period / 2) / period)
    return lo + k * period, min(ys), hi + k * period, max(ys)


def check_not_wrapped(extent: Extent, bounds: Extent, where: str, period: float = ROUND_ANGLE) -> None:
    """Refuse a box in a geographic CRS (``extent``, in degrees) that is what an area across the antimeridian
    becomes when QGIS transforms its box without knowing (``WRAP_GAP``): it spans nearly every longitude, stops
    short of ±180° (at both ends, or one where a sample fell on 180° exactly; a box from −180° to 180° is a world
    extent), and leaves out part of the raster (``bounds``) beyond them, which the run would
    silently drop while it processes what lies between, far from the area meant. ``where``: the raster as
    messages name it."""
    xmin, _, xmax, _ = extent
    half = period / 2
    short = -half <= xmin and xmax <= half and (xmin > -half or xmax < half)  # a sample may fall on ±180° exactly
    if xmax - xmin > period - WRAP_GAP and short and (bounds[0] < xmin or bounds[2] > xmax):
        raise InputError(
            f"extent {extent_words(extent)} spans nearly every longitude but stops short of ±{half:g}°, as an area "
            f"across the antimeridian does once transformed into {where}'s CRS as one box, and would leave out the part "
            f"of the raster (which covers {extent_words(bounds)} in its CRS) beyond those ends: give the extent in the "
            f"raster's CRS, with longitudes past {half:g}° as the raster has them (e.g. {half - 0.01:g} to {half + 0.01:g}), "
            "or no extent for the whole raster"
        )
