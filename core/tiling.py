"""Overlapping tiles, blended without seams, with memory bounded by one strip of tiles.

Tiles are planned on the *input* grid (``TileOptions.size`` and ``overlap`` in input pixels): along
each axis ``n`` tiles of edge ``size`` spread evenly from the first to the last pixel, neighbours
sharing at least ``overlap`` pixels. Each tile's output (on the grid refined by ``s``) is weighted
by a separable ramp that rises from the tile's inner edges over the shared width; the result is
``Σ w·out / Σ w``, a partition of unity, so a model that reproduces its input gives exactly the
same pixels whatever the tiling. Tiles are solved row of tiles by row of tiles; after each tile the
block of output that no later tile touches is written out and dropped, so memory holds a tile's
neighbourhood plus an overlap-high band across the width (``run_tiles``), not the image.

A tile that runs out of GPU memory (``is_gpu_out_of_memory``: PyTorch's allocator, or cuBLAS/cuDNN failing
to allocate) is solved again as tiles of half the edge, blended the same way (``ShrinkOnOutOfMemory``), down
to ``MIN_RETRY_TILE`` (more for a wide kernel: ``retry_minimum``); below that the run goes on on the CPU.

A blur kernel reaches ``kernel_reach`` input pixels past a tile's side: the tiles a run uses overlap by at least
twice that, the default tile grows to four times that overlap where less, and a tile size of the user's own that is
not more than twice it, or an overlap the user typed that is less, is refused (``kernel_tiles``, chosen once per run
by its check; ``tiles_note`` is the run's log line where they grew).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np
import torch

from .config import OVERLAP_TERM, TILE_TERM, TileOptions
from .errors import GPU_OUT_OF_MEMORY, InputError, NonFiniteLoss, causes
from .grid import Window
from .kernels import Kernel
from .progress import Part, Progress, SubProgress, Timed, check_cancelled
from .windows import footprint_margin

#: Smallest tile edge (input pixels) tried after running out of GPU memory, before falling back to the CPU.
MIN_RETRY_TILE = 32

#: A tile grown for a kernel's reach (``kernel_tiles``) or shrunk after running out of GPU memory
#: (``ShrinkOnOutOfMemory``) is at least this many times its overlap: the overlaps then take at most half its edge.
TILE_PER_OVERLAP = 4

#: Share of the GPU memory free after the leading tile that an automatic batch fills, at that tile's peak per
#: tile (a batch running out of memory is halved anyway).
BATCH_GPU_SHARE = 0.5

#: solve(tile window on the input grid, progress) -> (values (C, s·h, s·w), valid (C, s·h, s·w))
Solver = Callable[[Window, Progress], tuple[np.ndarray, np.ndarray]]
#: solve_batch(windows of one size, progress) -> one (values, valid) per window of a prefix of them (at least the
#: first), as ``Solver``
BatchSolver = Callable[[list[Window], Progress], list[tuple[np.ndarray, np.ndarray]]]
#: write(window on the output grid, values (C, h, w) float64, valid (C, h, w) bool)
Writer = Callable[[Window, np.ndarray, np.ndarray], None]


class WarmStart:
    """The first trained tile's networks, which every later tile of a run starts from when ``enabled``
    (``InternalLearningConfig.warm_start``).

    ``state`` is what the next tile starts from (``None``: a fresh start with all its steps); ``keep``
    records a solved tile's state when it is the first, unless a weight is infinite or NaN (a network that
    diverged on its last step: the next tile then starts fresh and is the one kept). The state does not depend
    on the tile's size, so tiles shrunk after running out of GPU memory still start from it.
    """

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.state: dict[str, torch.Tensor] | None = None

    @property
    def pending(self) -> bool:
        """Whether the next tile trained is the one the others will start from."""
        return self.enabled and self.state is None

    def keep(self, state: dict[str, torch.Tensor] | None) -> None:
        """Record ``state`` (a ``TileResult.state``) if it is the first trained tile's and finite throughout."""
        if self.pending and state is not None and all(bool(torch.isfinite(v).all()) for v in state.values()):
            self.state = state


def is_gpu_out_of_memory(error: BaseException) -> bool:
    """Whether ``error``, or an error it was raised from or while handling (``errors.causes``), says the GPU ran
    out of memory: ``torch.cuda.OutOfMemoryError`` (PyTorch's caching allocator), or a ``RuntimeError`` whose
    message is one of ``errors.GPU_OUT_OF_MEMORY`` (cuBLAS, cuDNN and CUDA calls failing to allocate a handle
    or a workspace raise those, not ``OutOfMemoryError``)."""
    return any(
        isinstance(cause, torch.cuda.OutOfMemoryError)
        or (isinstance(cause, RuntimeError) and any(phrase in str(cause).lower() for phrase in GPU_OUT_OF_MEMORY))
        for cause in causes(error)
    )


def gpu_allocated(device: torch.device) -> int:
    """Bytes of ``device`` (CUDA) memory allocated now, after resetting its peak (see ``gpu_peak_since``)."""
    torch.cuda.reset_peak_memory_stats(device)
    return torch.cuda.memory_allocated(device)


def gpu_peak_since(device: torch.device, allocated: int) -> int:
    """Most bytes of ``device`` memory allocated since ``gpu_allocated`` returned ``allocated``, beyond it."""
    return torch.cuda.max_memory_allocated(device) - allocated


def gpu_free(device: torch.device) -> int:
    """Bytes of ``device`` memory a new allocation can take: free to the driver, plus PyTorch's cached blocks not in use."""
    free, _ = torch.cuda.mem_get_info(device)
    return free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)


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


def tile_count(width: int, height: int, tiles: TileOptions) -> int:
    """How many tiles ``plan_tiles`` makes, without listing them (a whole scene in small tiles has many)."""
    return len(tile_offsets(width, tiles.size, tiles.overlap)) * len(tile_offsets(height, tiles.size, tiles.overlap))


def tiles_words(width: int, height: int, tiles: TileOptions) -> str:
    """How a run's log and Processing's settings give the tiles of a ``width × height`` input (on the tiled grid):
    ``98 tiles of 128 px with 16 px overlap``."""
    count = tile_count(width, height, tiles)
    return f"{count} tile{'s' if count != 1 else ''} of {tiles.size} px with {tiles.overlap} px overlap"


def kernel_reach(kernels: Sequence[Kernel]) -> int:
    """Pixels of the tiled grid along a tile's side whose degradation by the widest of ``kernels`` (one scale) reads
    past the side (``windows.footprint_margin``), onto the padding ``core.degradation`` puts there: 2 for bicubic,
    3 for lanczos3, about 3·σ for ``gaussian:σ``."""
    return max(footprint_margin(kernel.size, kernel.scale) for kernel in kernels)


def kernel_overlap(kernels: Sequence[Kernel]) -> int:
    """The least overlap of tiles degraded by ``kernels``: twice ``kernel_reach`` (``kernel_tiles`` says why)."""
    return 2 * kernel_reach(kernels)


def retry_minimum(kernels: Sequence[Kernel], least: int) -> int:
    """The smallest tile edge ``ShrinkOnOutOfMemory`` may shrink to for a method taking inputs of at least ``least``
    pixels with ``kernels``: ``MIN_RETRY_TILE``, ``least``, and ``TILE_PER_OVERLAP`` times ``kernel_overlap``, so
    that a shrunk tile's overlap still covers the kernels' reach."""
    return max(MIN_RETRY_TILE, least, TILE_PER_OVERLAP * kernel_overlap(kernels))


def kernel_tiles(tiles: TileOptions, kernels: Sequence[Kernel], width: int, height: int, pixels: str = "input") -> TileOptions:
    """The tiles a ``width × height`` input (on the tiled grid, whose pixels ``pixels`` names: "input", or "target"
    for guided DIP) degraded by ``kernels`` is solved in: ``tiles``, or grown to hold the kernels' footprint
    (``tiles_note`` says so in the run's log); a one-line ``InputError`` where the user's own tile size or overlap is
    too small for them. A run chooses its tiles once, in the check before it starts (``pipeline.check_super_resolve``,
    ``sharpen.target_tiles``, ``evaluation.plan_evaluation``), and its solver takes those.

    Why. Along a tile's side inside the input, its ``R = kernel_reach(kernels)`` pixels next to the side are fitted
    to an observation blurred over pixels the tile does not hold, with the tile's padding standing in for them, so
    its output there is fitted to the wrong thing. Neighbouring tiles are blended over the ``overlap`` pixels they
    share, each with a ramp falling towards its own side (``run_tiles``). With an overlap of at least ``2·R``
    (``kernel_overlap``) the two tiles' bands of ``R`` pixels are disjoint, so every blended pixel comes from at least
    one tile that saw the image there, and the tile that saw padding weighs at most half (its ramp is under ½ over
    the outer half of the overlap). A tile is more than twice its overlap (``TileOptions.check_size``), so it is then also
    wider than the kernels' footprint (``2·R + 1`` pixels; a kernel wider than the tile left it training on little
    but padding).

    Rule. Where one tile covers the input (no tile side inside it), ``tiles`` as they are. Otherwise the overlap
    grows to ``2·R`` where less; an overlap the user typed (``TileOptions.overlap_given``) is refused instead, naming
    the reach and the least overlap (and the tile in the same line where that is too small too). The default tile
    size (``TileOptions.automatic``) grows to ``TILE_PER_OVERLAP`` times that where less: room to spare, the overlaps
    taking at most half of each tile's edge, as after running out of GPU memory. Any other size is the user's own
    (and the default typed, ``TileOptions.size_given``): used as it is when more than twice the overlap, else refused
    naming the reach, the size asked and the smallest that works (more than twice the overlap, or the input's longer
    edge: one tile). Built-in kernels reach 1 (landsat, the sentinel2 bands' MTFs) to 3 (lanczos3)
    pixels, within the default overlap of 16 at every scale, so runs at the default tiles are unchanged.
    """
    if max(width, height) <= tiles.size:
        return tiles
    need = kernel_overlap(kernels)
    overlap = max(tiles.overlap, need)
    size = max(tiles.size, TILE_PER_OVERLAP * need) if tiles.automatic else tiles.size
    overlap_short, tile_short = tiles.overlap_given and tiles.overlap < need, size <= 2 * overlap
    if overlap_short or tile_short:
        raise InputError(_too_small(tiles, kernels, pixels, overlap_short, tile_short, min(2 * overlap + 1, max(width, height))))
    if (size, overlap) == (tiles.size, tiles.overlap):
        return tiles
    return replace(tiles, size=size, overlap=overlap)


def _too_small(
    tiles: TileOptions, kernels: Sequence[Kernel], pixels: str, overlap_short: bool, tile_short: bool, smallest: int
) -> str:
    """``kernel_tiles``' refusal of the tile size (``tile_short``: not more than twice the overlap the kernels need, the
    smallest that is being ``smallest``) and of the overlap the user typed (``overlap_short``: less than that), or
    both: what is too small, why, and what works, with the defaults left out of the user's settings, which grow."""
    reach, need = kernel_reach(kernels), kernel_overlap(kernels)
    short = [f"{TILE_TERM} {tiles.size}"] * tile_short + [f"{OVERLAP_TERM} {tiles.overlap}"] * overlap_short
    fixes = [f"{OVERLAP_TERM} {need} or more"] * overlap_short + [f"{TILE_TERM} {smallest} or more"] * tile_short
    typed = [(TILE_TERM, TileOptions.size)] * (tile_short and tiles.size_given)
    typed += [(OVERLAP_TERM, TileOptions.overlap)] * overlap_short
    defaults = []
    if typed:
        grow = "the defaults grow" if len(typed) > 1 else f"the default {typed[0][1]} grows"
        defaults.append(f"leave {' and '.join(term for term, _ in typed)} out: {grow} to fit the kernel")
    if tile_short and not tiles.size_given:
        defaults.append(f"the default {TileOptions.size}, which grows to fit the kernel")
    raised = "" if tiles.overlap_given else f", {OVERLAP_TERM} raised to it"
    twice = ", and a tile must be more than twice its overlap" if tile_short else ""
    return (
        f"{' and '.join(short)} {'are' if len(short) > 1 else 'is'} too small for {widest_words(kernels)}, which reaches "
        f"{reach} {pixels} pixels past a tile's side: tiles must overlap by twice that ({need} pixels{raised}) for blended "
        f"seams to see the image, not a tile's padding{twice}: use {' with '.join(fixes)}, or {' or '.join(defaults)}"
    )


def widest_words(kernels: Sequence[Kernel]) -> str:
    """How messages name the widest of ``kernels`` (``Kernel.words``)."""
    return max(kernels, key=lambda kernel: kernel.size).words


def tiles_note(asked: TileOptions, used: TileOptions, kernels: Sequence[Kernel], pixels: str = "input") -> str | None:
    """The log line of a run whose tiles ``used`` (``kernel_tiles`` of ``asked`` for ``kernels``, ``pixels`` as there)
    differ from those ``asked``: what was asked, what is used and why; ``None`` where they are the same. The solver says
    it once, as it starts (``pipeline._solver``, ``sharpen._solver``)."""
    if (used.size, used.overlap) == (asked.size, asked.overlap):
        return None
    grown = f", and the default tile to {TILE_PER_OVERLAP} times the overlap" if used.size > asked.size else ""
    return (
        f"tiles of {asked.size} px with {asked.overlap} px overlap asked, {used.size} px with {used.overlap} px used: "
        f"{widest_words(kernels)} reaches {kernel_reach(kernels)} {pixels} pixels past a tile's side, so the overlap grows "
        f"to twice that, for blended seams to see the image, not a tile's padding{grown}"
    )


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


class _Pending:
    """Blending sums ``Σ w·out``, ``Σ w`` and validity for rows ``top …`` and columns ``left …`` of the output."""

    def __init__(self, bands: int, rows: int, cols: int, top: int, left: int) -> None:
        self.acc = np.zeros((bands, rows, cols))
        self.weight = np.zeros((rows, cols))
        self.valid = np.zeros((bands, rows, cols), dtype=bool)
        self.top, self.left = top, left

    def widen(self, right: int, carried: "_Pending") -> None:
        """Extend to output column ``right``, taking the new columns' first rows from ``carried``."""
        extra = right - self.left - self.weight.shape[1]
        if extra <= 0:
            return
        start = self.left + self.weight.shape[1]
        rows = carried.weight.shape[0]
        new = _Pending(self.acc.shape[0], self.weight.shape[0], extra, self.top, start)
        new.acc[:, :rows] = carried.acc[:, :, start : start + extra]
        new.weight[:rows] = carried.weight[:, start : start + extra]
        new.valid[:, :rows] = carried.valid[:, :, start : start + extra]
        self.acc = np.concatenate([self.acc, new.acc], axis=2)
        self.weight = np.concatenate([self.weight, new.weight], axis=1)
        self.valid = np.concatenate([self.valid, new.valid], axis=2)

    def add(self, window: Window, weight: np.ndarray, values: np.ndarray, valid: np.ndarray) -> None:
        rs = slice(window.row_off - self.top, window.row_off - self.top + window.height)
        cs = slice(window.col_off - self.left, window.col_off - self.left + window.width)
        self.acc[:, rs, cs] += weight * values
        self.weight[rs, cs] += weight
        self.valid[:, rs, cs] |= valid

    def emit(self, right: int, final_rows: int, write: Writer, carry: "_Pending") -> None:
        """Write the blend of the first ``final_rows`` rows up to output column ``right``, move the
        other rows of those columns into ``carry`` (full width, starting at column 0), and drop them."""
        count = right - self.left
        if count <= 0:
            return
        block = (slice(None), slice(None, final_rows), slice(None, count))
        write(Window(self.left, self.top, count, final_rows), self.acc[block] / self.weight[:final_rows, :count], self.valid[block])
        cs = slice(self.left, right)
        carry.acc[:, :, cs] = self.acc[:, final_rows:, :count]
        carry.weight[:, cs] = self.weight[final_rows:, :count]
        carry.valid[:, :, cs] = self.valid[:, final_rows:, :count]
        self.acc, self.weight, self.valid = self.acc[:, :, count:], self.weight[:, count:], self.valid[:, :, count:]
        self.left = right


def run_tiles(
    width: int,
    height: int,
    bands: int,
    scale: int,
    tiles: TileOptions,
    solve: Solver,
    write: Writer,
    progress: Progress,
    solve_batch: BatchSolver | None = None,
    steps: int | None = None,
) -> int:
    """Solve every tile, blend, and write each block of the output as soon as no later tile touches it.

    With ``solve_batch`` and ``tiles.batch`` above 1, the next ``tiles.batch`` tiles in row order (across
    rows of tiles: every tile has the plan's size) go to one ``solve_batch`` call, which solves a prefix of
    them (at least the first) and returns their results; the rest wait for the next call. Otherwise ``solve``
    takes one at a time.

    After each tile, the output rows down to the next row of tiles and the columns up to the next
    tile are final and written; only the rows shared with the next row of tiles are carried across
    the width, so memory holds one tile's neighbourhood plus an ``overlap``-high band of the output
    (not a whole strip of tiles), and the outputs of at most ``tiles.batch`` tiles solved ahead. Returns
    the number of tiles.

    A tile whose training loss became infinite or NaN (``errors.NonFiniteLoss``) ends the run with a one-line
    ``InputError`` naming the tile.

    ``steps``, for a run's own tiles (not the smaller ones ``ShrinkOnOutOfMemory`` solves a tile in): the
    optimisation steps of each tile not started yet (a warm-started tile's, ``InternalLearningConfig.later_steps``).
    The tiles' step reports then say which tile they are on (``progress.Part``: ``tile 3/98``) and, once measured,
    the time left (``progress.Timed``).
    """
    if steps is not None:
        progress = Timed(progress, steps)
    plan = plan_tiles(width, height, tiles)
    ahead = [window for row in plan for window in row]
    batch = max(tiles.batch, 1) if solve_batch is not None else 1
    cols = [w.col_off for w in plan[0]]
    rows = [row[0].row_off for row in plan]
    out_width = width * scale
    total = sum(len(r) for r in plan)
    done = 0
    carried = _Pending(bands, 0, out_width, 0, 0)  # rows shared with the row of tiles above
    solved: list[tuple[np.ndarray, np.ndarray]] = []  # the outputs of tiles ahead, in row order
    for ri, row in enumerate(plan):
        top = carried.top
        strip_end = (row[0].row_off + row[0].height) * scale
        final_end = rows[ri + 1] * scale if ri + 1 < len(rows) else height * scale
        pending = _Pending(bands, strip_end - top, 0, top, 0)
        next_carried = _Pending(bands, strip_end - final_end, out_width, final_end, 0)
        wr = _ramp(row[0].height * scale, *(v * scale for v in _shared(rows, ri, row[0].height)))
        for ci, window in enumerate(row):
            if not solved:  # the next group of up to ``batch`` tiles, this row's and the next rows'
                check_cancelled(progress)
                group = ahead[done : done + batch]
                which = Part("tile", done + 1, len(group), total) if steps is not None else None
                part = SubProgress(progress, done / total, (done + len(group)) / total, part=which)
                try:
                    solved = solve_batch(group, part) if len(group) > 1 and solve_batch is not None else [solve(window, part)]
                except NonFiniteLoss as error:
                    bad = group[error.index]
                    raise InputError(
                        f"tile {done + error.index + 1} of {total} (columns {bad.col_off}–{bad.col_off + bad.width - 1}, "
                        f"rows {bad.row_off}–{bad.row_off + bad.height - 1} of the tiled area): {error}"
                    ) from None
            values, tile_valid = solved.pop(0)
            wc = _ramp(window.width * scale, *(v * scale for v in _shared(cols, ci, window.width)))
            out = window.scaled(scale)
            pending.widen(out.col_off + out.width, carried)
            pending.add(out, np.outer(wr, wc), values, tile_valid)
            done += 1
            final_right = cols[ci + 1] * scale if ci + 1 < len(cols) else out_width
            pending.emit(final_right, final_end - top, write, next_carried)
        carried = next_carried
    return total


def solve_in_tiles(
    window: Window, bands: int, scale: int, tiles: TileOptions, solve: Solver, progress: Progress,
    solve_batch: BatchSolver | None = None, steps: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Solve ``window`` (input grid) as tiles ``tiles`` blended as ``run_tiles`` does (``steps`` as there).

    ``solve`` (and ``solve_batch``) receive windows in the coordinates of the whole input. Returns the
    window's ``(bands, s·h, s·w)`` float64 values and bool validity on the output grid.
    """
    shape = (bands, window.height * scale, window.width * scale)
    values, valid = np.zeros(shape), np.zeros(shape, dtype=bool)

    def solve_inside(part: Window, part_progress: Progress) -> tuple[np.ndarray, np.ndarray]:
        return solve(part.translated(window.col_off, window.row_off), part_progress)

    def write(part: Window, part_values: np.ndarray, part_valid: np.ndarray) -> None:
        values[(slice(None), *part.slices)] = part_values
        valid[(slice(None), *part.slices)] = part_valid

    def solve_batch_inside(parts: list[Window], part_progress: Progress) -> list[tuple[np.ndarray, np.ndarray]]:
        return solve_batch([part.translated(window.col_off, window.row_off) for part in parts], part_progress)

    run_tiles(window.width, window.height, bands, scale, tiles, solve_inside, write, progress,
              solve_batch_inside if solve_batch is not None else None, steps)
    return values, valid


#: solve(tile window on the input grid, progress, device) -> (values, valid) as ``Solver``
DeviceSolver = Callable[[Window, Progress, torch.device], tuple[np.ndarray, np.ndarray]]
#: solve_many(windows of one size, progress, device) -> one (values, valid) per window
DeviceBatchSolver = Callable[[list[Window], Progress, torch.device], list[tuple[np.ndarray, np.ndarray]]]


class ShrinkOnOutOfMemory:
    """A ``Solver`` that survives CUDA running out of memory.

    A tile that runs out of GPU memory (``is_gpu_out_of_memory``) is solved again as tiles of half the edge
    (overlap at most a quarter of it), halving down to ``minimum`` input pixels; the smaller edge is
    kept for the tiles that follow. When even ``minimum`` does not fit, the run goes on on the CPU
    with the original tiles. Tiles solved together (``many``) that run out of GPU memory are solved again
    half as many at a time, down to one by one, and that number is kept for the tiles that follow. Each
    change is reported through ``progress.info``. ``records`` are the lists
    the solvers append to once per solved tile (its loss curve; a kernel it learnt): what a failed attempt
    appended is dropped, so a window solved again is counted once. ``lead()`` says whether the next tile must be solved alone
    before the others of its batch (the first trained tile, which the others warm-start from). With ``fit`` (an
    automatic batch on CUDA), the first tile is solved alone too, and the batch is sized from the GPU memory it
    took: ``BATCH_GPU_SHARE`` of the memory free after it, at its peak per tile.
    """

    def __init__(
        self, solve: DeviceSolver, device: torch.device, tiles: TileOptions, bands: int, scale: int,
        progress: Progress, minimum: int = MIN_RETRY_TILE, solve_many: DeviceBatchSolver | None = None,
        records: Sequence[list] = (), lead: Callable[[], bool] = lambda: False, fit: bool = False,
    ) -> None:
        self.solve, self.solve_many, self.device, self.tiles = solve, solve_many, device, tiles
        self.bands, self.scale, self.progress, self.minimum = bands, scale, progress, minimum
        self.size = tiles.size
        #: most tiles ``many`` solves in one ``solve_many`` call: ``None`` for all it is given (up to the caller's
        #: ``tiles.batch``) until a call runs out of GPU memory; 1 without ``solve_many`` and on the CPU fallback
        self.batch: int | None = None if solve_many is not None else 1
        self.records = records
        self.lead = lead
        self.fit = fit and solve_many is not None and device.type == "cuda"

    def many(self, windows: list[Window], progress: Progress) -> list[tuple[np.ndarray, np.ndarray]]:
        """A ``BatchSolver``: the windows solved together by ``solve_many``, in groups of at most ``batch`` (halved
        on each out-of-memory error of a group); one by one (``__call__``) at a ``batch`` of 1 or once the tiles
        had to shrink. When ``lead()``, or while a ``fit`` batch is not sized yet, the first window is solved alone
        and only its result is returned, so the caller's next group is a whole batch of tiles warm-started from it
        (and sized by it). A tile already solved is never solved again."""
        done: list[tuple[np.ndarray, np.ndarray]] = []
        count = len(windows)
        while len(done) < count:
            group = windows[len(done):][: self.batch]
            measure = self.fit and self.batch is None  # still on CUDA: moving to the CPU sets ``batch`` to 1
            leading = self.lead() or measure
            if leading or max(group[0].width, group[0].height) > self.size:
                group = group[:1]
            which = Part("tile", len(done) + 1, len(group), count)  # among ``windows``: ``run_tiles`` numbers them
            part = SubProgress(progress, len(done) / count, (len(done) + len(group)) / count, part=which)
            kept = self._kept()
            allocated = gpu_allocated(self.device) if measure else 0
            try:
                done += self.solve_many(group, part, self.device) if len(group) > 1 else [self(group[0], part)]
                if measure:
                    self._size_batch(gpu_peak_since(self.device, allocated))
                if leading:
                    return done
                continue
            except NonFiniteLoss as error:  # its index among ``group``, which follows the ``done`` ones
                raise error.among(len(done)) from None
            except RuntimeError as error:  # ``__call__`` handles its own
                if len(group) == 1 or self.device.type != "cuda" or not is_gpu_out_of_memory(error):
                    raise
            self._drop(kept)
            torch.cuda.empty_cache()
            self.batch = len(group) // 2
            then = "solving them one by one" if self.batch == 1 else f"retrying {self.batch} at a time"
            self.progress.info(f"out of GPU memory with {len(group)} tiles at once: {then}")
        return done

    def __call__(self, window: Window, progress: Progress) -> tuple[np.ndarray, np.ndarray]:
        while True:
            kept = self._kept()
            try:
                if max(window.width, window.height) <= self.size:
                    return self.solve(window, progress, self.device)
                smaller = TileOptions(self.size, min(self.tiles.overlap, self.size // TILE_PER_OVERLAP))
                return solve_in_tiles(
                    window, self.bands, self.scale, smaller, lambda part, p: self.solve(part, p, self.device), progress
                )
            except RuntimeError as error:
                if self.device.type != "cuda" or not is_gpu_out_of_memory(error):
                    raise
            self._drop(kept)
            self._shrink()

    def _size_batch(self, peak: int) -> None:
        """Size ``batch`` for tiles that each take ``peak`` bytes of GPU memory, unless the tile took none (it had
        no valid pixel: the next one is measured) or it moved to the CPU."""
        if peak <= 0 or self.device.type != "cuda":
            return
        free = gpu_free(self.device)
        self.batch = max(1, int(BATCH_GPU_SHARE * free) // peak)
        self.progress.info(f"tiles solved together on the GPU: up to {self.batch} (the first tile took "
                           f"{peak / 2**20:.0f} MiB of GPU memory, {free / 2**30:.1f} GiB free after it)")

    def _kept(self) -> list[int]:
        """How many entries each of ``records`` holds now."""
        return [len(record) for record in self.records]

    def _drop(self, kept: list[int]) -> None:
        """Drop what a failed attempt appended to ``records`` since they held ``kept`` entries."""
        for record, count in zip(self.records, kept):
            del record[count:]

    def _shrink(self) -> None:
        torch.cuda.empty_cache()
        if self.size // 2 >= self.minimum:
            self.size //= 2
            self.progress.info(f"out of GPU memory: retrying with tiles of {self.size} px")
        else:
            self.progress.info(f"out of GPU memory even with tiles of {self.size} px: continuing on the CPU")
            self.device, self.size = torch.device("cpu"), self.tiles.size
            self.batch = 1  # one tile at a time, as on the CPU from the start
