"""``core.errors.error_line``: the one line the command line, Processing and the dialog's task show for a failed run."""

from __future__ import annotations

from internal_sr.core.errors import InputError, OutputWriteError, error_line

CPU_OOM = "[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: not enough memory: you tried to allocate 8 bytes."


def test_each_kind_of_failure_has_its_own_line() -> None:
    assert error_line(InputError("band 9 is out of range:\n  the input has 6")) == "band 9 is out of range: the input has 6"
    assert error_line(MemoryError()) == "out of memory: use a smaller --tile; nothing written"
    assert error_line(RuntimeError(CPU_OOM), "Tile size") == "out of memory: use a smaller Tile size; nothing written"
    assert error_line(RuntimeError("CUDA out of memory. Tried to allocate 2 GiB"), "tile", "device cpu") == (
        "out of GPU memory: use a smaller tile or device cpu; nothing written"
    )
    assert error_line(RuntimeError("CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`")) == (
        "out of GPU memory: use a smaller --tile or --device cpu; nothing written"
    )
    assert error_line(OSError(28, "No space left on device")) == "no space left on device (nothing written)"
    assert error_line(PermissionError(13, "Permission denied", "x.tif")) == "[Errno 13] Permission denied: 'x.tif' (nothing written)"
    assert error_line(ValueError("first\nsecond")) == "unexpected ValueError: first (nothing written; please report)"


def test_a_write_failure_is_named_by_the_innermost_reason_of_its_chain() -> None:
    """rasterio's "Write failed. See previous exception for details." said nothing; GDAL's reason is its cause's cause."""

    def chained(*messages: str) -> OSError:
        error = None
        for message in reversed(messages):  # innermost first
            outer = OSError(message)
            outer.__cause__ = error
            error = outer
        return error

    full = OutputWriteError("out/sr.tif")
    full.__cause__ = chained("Write failed. See previous exception for details.", "TIFFAppendToStrip:Write error", "_tiffWriteProc:No space left on device")
    assert error_line(full) == "no space left on device while writing out/sr.tif (nothing written)"
    other = OutputWriteError("out/sr.tif")
    other.__context__ = chained("Read failed. See previous exception for details.", "TIFFReadEncodedTile() failed.")
    assert error_line(other) == "TIFFReadEncodedTile() failed while writing out/sr.tif (nothing written)"
