"""Value types for grid arithmetic: raster grids and pixel windows.

Conventions: a ``Grid`` is ``width × height`` pixels with an affine ``transform`` mapping
(column, row) pixel-corner coordinates to CRS coordinates (GDAL/rasterio convention: pixel (r, c)
covers [c, c+1) × [r, r+1) in pixel space). Refining by an integer ``s`` keeps the CRS and the
origin, divides the pixel size by ``s`` and multiplies width and height by ``s``, so low-resolution
pixel (i, j) covers high-resolution pixels [s·i, s·i+s) × [s·j, s·j+s).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from affine import Affine


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

    def relative_to(self, outer: "Window") -> "Window":
        """This window in the pixel coordinates of ``outer`` (which must contain it)."""
        return Window(self.col_off - outer.col_off, self.row_off - outer.row_off, self.width, self.height)


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
