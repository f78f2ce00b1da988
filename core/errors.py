"""Named exceptions, and the one line a front end shows for any error a run raises.

Every user-facing problem is an ``InputError`` whose message is one line. Anything else that ends a run
(out of memory, a full disk, a bug) is squeezed to one line by :func:`error_line`, which the command
line, the Processing algorithms and the dialog's task all use, so they word a failure alike.
"""

import errno
from collections.abc import Mapping


class InternalSRError(Exception):
    """Base class of every error raised on purpose by the engine."""


class InputError(InternalSRError):
    """The user's input or settings cannot be processed; the message names the problem in one line."""


class NonFiniteLoss(InputError):
    """An optimisation's training loss became infinite or NaN (``core.optimise``): the run stops there, as a
    network that diverged gives nothing worth writing (nor a state worth starting another tile from).

    ``label`` names the optimisation, ``step`` the steps run when it was seen, ``index`` which of the tiles
    optimised together it was (0 for one).
    """

    def __init__(self, label: str, step: int, index: int = 0) -> None:
        super().__init__(
            f"{label}: the training loss became infinite or NaN by step {step}; the input likely holds extreme values "
            "(e.g. a fill value) that its nodata value does not mark: declare them nodata (gdal_translate -a_nodata "
            "VALUE) or choose an extent without them"
        )
        self.label, self.step, self.index = label, step, index

    def among(self, first: int) -> "NonFiniteLoss":
        """This error for a larger group of tiles, in which the tiles it counts ``index`` among start at ``first``."""
        return NonFiniteLoss(self.label, self.step, first + self.index)


class Cancelled(InternalSRError):
    """The run was cancelled through the progress protocol; nothing was written at the output path."""

    def __init__(self, message: str = "cancelled by the user") -> None:
        super().__init__(message)


class OutputWriteError(OSError):
    """Writing the output file ``path`` failed; the exception it is raised from says why (a full disk, an I/O
    error). Nothing was moved into place at ``path``."""

    def __init__(self, path: str) -> None:
        super().__init__(f"cannot write {path}")
        self.path = path


def causes(error: BaseException) -> list[BaseException]:
    """``error`` and the exceptions it was raised from or while handling (``__cause__``, else ``__context__``
    unless suppressed), outermost first."""
    chain = [error]
    while True:
        last = chain[-1]
        following = last.__cause__ if last.__cause__ is not None else None if last.__suppress_context__ else last.__context__
        if following is None or any(following is seen for seen in chain):
            return chain
        chain.append(following)


#: Phrases of PyTorch's allocators when host (CPU) memory runs out; they raise a plain ``RuntimeError``.
HOST_OUT_OF_MEMORY = ("defaultcpuallocator", "can't allocate memory", "not enough memory")

#: Phrases (lower case) of GPU memory running out. PyTorch's caching allocator raises
#: ``torch.cuda.OutOfMemoryError`` ("CUDA out of memory"), but cuBLAS, cuDNN, cuFFT and CUDA calls failing
#: to allocate (a handle, a workspace) arrive as a plain ``RuntimeError``: "CUDA error: out of memory",
#: "CUBLAS_STATUS_ALLOC_FAILED when calling cublasCreate(handle)", "CUDNN_STATUS_ALLOC_FAILED",
#: "CUDNN_STATUS_NOT_ENOUGH_WORKSPACE", "CUFFT_ALLOC_FAILED". ``core.tiling.is_gpu_out_of_memory`` uses them.
GPU_OUT_OF_MEMORY = ("out of memory", "cublas_status_alloc_failed", "cudnn_status_alloc_failed",
                     "cudnn_status_not_enough_workspace", "cufft_alloc_failed", "cusolver_status_alloc_failed")


def error_line(
    error: BaseException, tile: str = "--tile", device: str = "--device cpu", terms: Mapping[str, str] | None = None
) -> str:
    """The one line to show for ``error`` ending a run (outputs are written atomically: nothing was written).

    ``tile`` and ``device`` name the front end's tile-size setting and its CPU device choice in the
    out-of-memory hints (the command line's flags by default); ``terms`` maps the command line's phrases that
    an ``InputError``'s message uses (``core.config.GAUSSIAN_TERM``, …) to the front end's own wording (none:
    the command line's). An ``InputError`` gives its own message, in those terms;
    ``MemoryError`` or PyTorch's host allocator failing gives "out of memory"; another message saying
    "out of memory" (CUDA, MPS) or cuBLAS/cuDNN failing to allocate (``GPU_OUT_OF_MEMORY``) gives "out of
    GPU memory"; an ``OSError`` (full disk, permissions) the innermost reason of its chain (``causes``:
    GDAL's "Write failed. See previous exception" says nothing), "no space left on device" for a full disk,
    with "while writing PATH" when an ``OutputWriteError`` names the file; anything else "unexpected TYPE:
    its first line", to be reported.
    """
    text = " ".join(str(error).split())
    if isinstance(error, InputError):
        for phrase, wording in (terms or {}).items():
            text = text.replace(phrase, wording)
        return text
    lowered = text.lower()
    if isinstance(error, MemoryError) or any(phrase in lowered for phrase in HOST_OUT_OF_MEMORY):
        return f"out of memory: use a smaller {tile}; nothing written"
    if any(phrase in lowered for phrase in GPU_OUT_OF_MEMORY):
        return f"out of GPU memory: use a smaller {tile} or {device}; nothing written"
    if isinstance(error, OSError):
        chain = causes(error)
        full = any(getattr(e, "errno", None) == errno.ENOSPC or "no space left on device" in str(e).lower() for e in chain)
        innermost = " ".join(str(chain[-1]).split()) or type(chain[-1]).__name__
        path = next((e.path for e in chain if isinstance(e, OutputWriteError)), None)
        reason = "no space left on device" if full else innermost.rstrip(".")
        return f"{reason}{f' while writing {path}' if path else ''} (nothing written)"
    first = (str(error).strip().splitlines() or [""])[0].strip()
    return f"unexpected {type(error).__name__}: {first} (nothing written; please report)"
