"""Overlapping tiles, blended without seams, with memory bounded by one strip of tiles.

Tiles are planned on the *input* grid (``TileOptions.size`` and ``overlap`` in input pixels): along
each axis ``n`` tiles of edge ``size`` spread evenly from the first to the last pixel, neighbours
sharing at least ``overlap`` pixels. Each tile's output (on the grid refined by ``s``) is weighted
by a separable ramp that rises from the tile's inner edges over the shared width; the result is
``Σ w·out / Σ w``, a partition of unity, so a model that reproduces its input gives exactly the
same pixels whatever the tiling. Tiles are solved row of tiles by row of tiles; output rows that
no later tile touches are written out and dropped, so memory grows with the raster's width only.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from .config import TileOptions
from .grid import Window
from .progress import Progress, SubProgress, check_cancelled

#: solve(tile window on the input grid, progress) -> (values (C, s·h, s·w), valid (C, s·h, s·w))
Solver = Callable[[Window, Progress], tuple[np.ndarray, np.ndarray]]
#: write(window on the output grid, values (C, h, w) float64, valid (C, h, w) bool)
Writer = Callable[[Window, np.ndarray, np.ndarray], None]


def tile_offsets(length: int, size: int, overlap: int) -> list[int]:
    """Start offsets of tiles of edge ``size`` covering ``[0, length)`` with at least ``overlap`` shared."""
    if length <= size:
        return [0]
    count = int(np.ceil((length - overlap) / (size - overlap)))
    count = max(count, 2)
    return [int(round(i * (length - size) / (count - 1))) for i in range(count)]


def plan_tiles(width: int, height: int, tiles: TileOptions) -> list[list[Window]]:
    """Rows of tile windows on the input grid."""
    cols = tile_offsets(width, tiles.size, tiles.overlap)
    rows = tile_offsets(height, tiles.size, tiles.overlap)
    return [[Window(c, r, min(tiles.size, width), min(tiles.size, height)) for c in cols] for r in rows]


def _ramp(length: int, before: int, after: int) -> np.ndarray:
    """1-D weights: rising over ``before`` pixels at the start, falling over ``after`` at the end."""
    w = np.ones(length)
    k = np.arange(length) + 0.5
    if before:
        w = np.minimum(w, k / before)
    if after:
        w = np.minimum(w, k[::-1] / after)
    return w


def _shared(offsets: list[int], index: int, size: int) -> tuple[int, int]:
    """Pixels shared with the previous and the next tile along one axis."""
    before = offsets[index - 1] + size - offsets[index] if index > 0 else 0
    after = offsets[index] + size - offsets[index + 1] if index + 1 < len(offsets) else 0
    return max(before, 0), max(after, 0)


def run_tiles(
    width: int,
    height: int,
    bands: int,
    scale: int,
    tiles: TileOptions,
    solve: Solver,
    write: Writer,
    progress: Progress,
) -> int:
    """Solve every tile, blend, and write the output strip by strip. Returns the number of tiles."""
    plan = plan_tiles(width, height, tiles)
    cols = [w.col_off for w in plan[0]]
    rows = [row[0].row_off for row in plan]
    out_width = width * scale
    total = sum(len(r) for r in plan)
    done = 0
    pending_start = 0
    acc = np.zeros((bands, 0, out_width))
    weight = np.zeros((0, out_width))
    valid = np.zeros((bands, 0, out_width), dtype=bool)
    for ri, row in enumerate(plan):
        strip_end = (row[0].row_off + row[0].height) * scale
        grow = strip_end - pending_start - acc.shape[1]
        if grow > 0:
            acc = np.concatenate([acc, np.zeros((bands, grow, out_width))], axis=1)
            weight = np.concatenate([weight, np.zeros((grow, out_width))], axis=0)
            valid = np.concatenate([valid, np.zeros((bands, grow, out_width), dtype=bool)], axis=1)
        wr = _ramp(row[0].height * scale, *(v * scale for v in _shared(rows, ri, row[0].height)))
        for ci, window in enumerate(row):
            check_cancelled(progress)
            values, tile_valid = solve(window, SubProgress(progress, done / total, (done + 1) / total))
            wc = _ramp(window.width * scale, *(v * scale for v in _shared(cols, ci, window.width)))
            w = np.outer(wr, wc)
            out = window.scaled(scale)
            rs = slice(out.row_off - pending_start, out.row_off - pending_start + out.height)
            cs = slice(out.col_off, out.col_off + out.width)
            acc[:, rs, cs] += w * values
            weight[rs, cs] += w
            valid[:, rs, cs] |= tile_valid
            done += 1
        final_end = rows[ri + 1] * scale if ri + 1 < len(rows) else height * scale
        count = final_end - pending_start
        write(Window(0, pending_start, out_width, count), acc[:, :count] / weight[:count], valid[:, :count])
        acc, weight, valid = acc[:, count:], weight[count:], valid[:, count:]
        pending_start = final_end
    return total
