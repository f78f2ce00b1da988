"""Step windows: an optimisation step on a random window of a tile instead of the whole tile.

Shared by DIP (``DIPConfig.step_window``) and Neural Knitworks (``KnitworkConfig.step_window``). A
window is a pair of slices ``(rows, cols)`` of the *low-resolution* tile of ``shape`` ``(h, w)``; its
output covers the same slices times the scale. A step's loss leaves out the low-resolution pixels near
the window's cut sides (those inside the tile), whose degradation would see the window's padding, not
the image (``window_weight``); its output is written into an image of the whole tile (the *canvas*),
which is what the output average follows, less a margin along the cut sides, where the window lacks
context (``write_interior``). Sides on the tile's edge are kept whole.
"""

from __future__ import annotations

import math

import torch


def window_edges(
    shape: tuple[int, int], fraction: float, multiple: int, minimum: int = 0, margin: int = 0
) -> tuple[int, int]:
    """The (rows, columns) of a step window in an image of ``shape``: ``fraction`` of each edge rounded down
    to a multiple of ``multiple``, at least two multiples, ``minimum`` and ``2·margin + 1`` (each rounded up to a
    multiple), at most the edge; a fraction of 1 is the whole image.

    ``margin``: the kernel's ``footprint_margin``, the pixels along each cut side that the step's data term leaves
    out (``window_weight``). A window of ``2·margin + 1`` keeps at least one pixel whose blur lies inside it even when
    both its sides are cut, so that every step's data term has pixels to fit; a narrower one would train some steps
    on nothing. A window grown to the whole edge has no cut side there and keeps all its pixels.
    """
    least = max(2 * multiple, -(-max(minimum, 2 * margin + 1) // multiple) * multiple)
    return tuple(  # type: ignore[return-value]
        length if fraction >= 1 else min(length, max(least, int(fraction * length) // multiple * multiple))
        for length in shape
    )


def random_window(shape: tuple[int, int], edges: tuple[int, int], spacing: int, generator: torch.Generator) -> tuple[slice, slice]:
    """A window of ``edges`` inside ``shape``, drawn uniformly (``generator``) among offsets spread evenly from
    0 to ``shape − edges``, neighbouring offsets at most ``spacing`` apart along each axis.

    Where ``shape − edges`` is a multiple of ``spacing`` (DIP's padded tiles and ``window_edges``), the offsets
    are its multiples, which keeps the hourglass's grid of strided convolutions aligned as on the whole image.
    A coarse spacing keeps the offsets few, so that each, and the tile's edges with it, is drawn often.
    """
    offsets = []
    for length, edge in zip(shape, edges):
        room = length - edge
        positions = math.ceil(room / spacing) + 1
        k = int(torch.randint(positions, (1,), generator=generator))
        offsets.append(k * room // (positions - 1) if positions > 1 else 0)
    return slice(offsets[0], offsets[0] + edges[0]), slice(offsets[1], offsets[1] + edges[1])


def upscaled(window: tuple[slice, slice], scale: int) -> tuple[slice, slice]:
    """The output pixels of the low-resolution ``window`` at ``scale``."""
    return tuple(slice(cut.start * scale, cut.stop * scale) for cut in window)  # type: ignore[return-value]


def interior(window: tuple[slice, slice], shape: tuple[int, int], margin: int) -> tuple[slice, slice]:
    """``window`` of an image of ``shape`` less ``margin`` pixels along each of its sides that lie inside the
    image (sides on the image's edge are kept), as slices of the image; empty (stop = start, inside the window) where
    the margins leave nothing, e.g. a kernel reaching further than the window is wide."""
    kept = []
    for cut, length in zip(window, shape):
        start = min(cut.start + (margin if cut.start > 0 else 0), cut.stop)
        kept.append(slice(start, max(start, cut.stop - (margin if cut.stop < length else 0))))
    return tuple(kept)  # type: ignore[return-value]


def footprint_margin(taps: int, scale: int) -> int:
    """Low-resolution pixels along a window's cut side whose degradation by a kernel of ``taps`` taps per axis
    (``core.degradation``: padded by ``(taps − scale) // 2`` output pixels) reaches beyond the window."""
    return -(-((taps - scale) // 2) // scale)


def window_weight(valid: torch.Tensor, window: tuple[slice, slice], shape: tuple[int, int], margin: int) -> torch.Tensor:
    """``valid`` cut to ``window`` of an image of ``shape``, zero outside its ``interior`` with ``margin``
    (where ``D`` of the window's network output would see padding, not the image)."""
    weight = torch.zeros_like(valid[..., window[0], window[1]])
    rows, cols = interior(window, shape, margin)
    weight[..., rows.start - window[0].start : rows.stop - window[0].start, cols.start - window[1].start : cols.stop - window[1].start] = valid[..., rows, cols]
    return weight


def write_interior(
    canvas: torch.Tensor, x: torch.Tensor, window: tuple[slice, slice], shape: tuple[int, int], scale: int, margin: int
) -> torch.Tensor:
    """Write ``x`` ``(…, C, s·rows, s·cols)``, the output of the low-resolution ``window`` of a tile of
    ``shape``, into ``canvas`` ``(…, C, s·h, s·w)`` less ``margin`` low-resolution pixels along its cut sides
    (``interior``); returns ``canvas``, changed in place."""
    keep = interior(window, shape, margin)
    top, left = (keep[0].start - window[0].start) * scale, (keep[1].start - window[1].start) * scale
    rows, cols = upscaled(keep, scale)
    canvas[..., rows, cols] = x[..., top : top + rows.stop - rows.start, left : left + cols.stop - cols.start]
    return canvas
