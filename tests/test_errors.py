"""``core.errors.error_line``: the one line the command line, Processing and the dialog's task show for a failed run."""

from __future__ import annotations

from internal_sr.core.errors import InputError, error_line

CPU_OOM = "[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: not enough memory: you tried to allocate 8 bytes."


def test_each_kind_of_failure_has_its_own_line() -> None:
    assert error_line(InputError("band 9 is out of range:\n  the input has 6")) == "band 9 is out of range: the input has 6"
    assert error_line(MemoryError()) == "out of memory: use a smaller --tile; nothing written"
    assert error_line(RuntimeError(CPU_OOM), "Tile size") == "out of memory: use a smaller Tile size; nothing written"
    assert error_line(RuntimeError("CUDA out of memory. Tried to allocate 2 GiB"), "tile", "device cpu") == (
        "out of GPU memory: use a smaller tile or device cpu; nothing written"
    )
    assert error_line(OSError(28, "No space left on device")) == "[Errno 28] No space left on device (nothing written)"
    assert error_line(ValueError("first\nsecond")) == "unexpected ValueError: first (nothing written; please report)"
