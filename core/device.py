"""Device choice and mixed precision.

``auto`` picks CUDA, then Apple MPS, then the CPU. Mixed precision is used on CUDA only (bfloat16
where supported, else float16 with loss scaling); losses are always computed in float32.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
import threading
from collections.abc import Iterator

import torch

from .errors import InputError
from .progress import Progress, check_cancelled

#: Held by each seeded optimisation: torch's global random generator (weight initialisation, per-step
#: noise) is shared by the threads of a process, so two jobs at once (two QGIS tasks) take turns, tile
#: by tile, and each gives what it gives alone.
_GLOBAL_RANDOM = threading.RLock()

#: glibc's ``mallopt`` parameters, and their values: during a run (largest an ``int`` takes), and after it
#: (where glibc's own sliding threshold ends after large blocks come and go: 32 MiB on 64-bit, trim at twice).
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
_DURING_RUN = {M_MMAP_THRESHOLD: 2**31 - 1, M_TRIM_THRESHOLD: 2**31 - 1}
_AFTER_RUN = {M_MMAP_THRESHOLD: 32 << 20, M_TRIM_THRESHOLD: 64 << 20}
_heap_lock = threading.Lock()
_heap_users = 0


def _glibc() -> ctypes.CDLL | None:
    """The C library when it is glibc (``mallopt`` and ``malloc_trim`` present), else ``None``."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return None
    return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None


_LIBC = _glibc()


def _set_heap(values: dict[int, int]) -> None:
    for parameter, value in values.items():
        _LIBC.mallopt(parameter, value)


@contextlib.contextmanager
def reused_heap() -> Iterator[None]:
    """Keep freed memory in the process's heap while one or more optimisations run (glibc only).

    A step allocates and frees activations of tens of MB (a 256² Knitworks tile: 64 MB per layer).
    glibc serves blocks above its mmap threshold (at most 32 MiB) with fresh pages that the kernel
    zero-fills at first touch, every step. Inside the context the threshold is raised, so the main
    thread (the command line, a script) reuses blocks of any size; other threads (QGIS runs its tasks
    on worker threads) draw from arenas of 64 MiB each, so there blocks up to about 64 MiB are reused
    and larger ones still come fresh. Measured on this project's CPU (one thread, a 128² 4-band tile
    at ×2, main thread): Knitworks 13.3 → 8.4 s of CPU for 6 steps, DIP 6.6 → 5.3 s; peak memory
    +17 % and +2 %. When the last user leaves, the thresholds are set where glibc's sliding threshold
    would stand after such a run and ``malloc_trim(0)`` returns the freed memory to the system, so QGIS
    does not keep a run's peak. Nests and may be entered from several threads. A no-op off glibc
    (Windows, macOS, musl).
    """
    global _heap_users
    if _LIBC is None:
        yield
        return
    with _heap_lock:
        if _heap_users == 0:
            _set_heap(_DURING_RUN)
        _heap_users += 1
    try:
        yield
    finally:
        with _heap_lock:
            _heap_users -= 1
            if _heap_users == 0:
                _set_heap(_AFTER_RUN)
                _LIBC.malloc_trim(0)


#: ``cpu_threads`` blocks open in this process (any thread), and PyTorch's thread count before the first of them,
#: under ``_threads_lock``.
_threads_lock = threading.Lock()
_threads_blocks = 0
_threads_before = 0


@contextlib.contextmanager
def cpu_threads(count: int | None) -> Iterator[None]:
    """PyTorch's CPU threads set to ``count`` inside the block (``None``: left as they are, PyTorch's own choice:
    ``OMP_NUM_THREADS``, else the cores), and put back afterwards.

    ``torch.set_num_threads`` is process-wide: it sets the count of the calling thread (with OpenMP, that thread's
    own) and of every thread that starts parallel work afterwards. So the block is entered in the thread that runs the
    job (a QGIS task's worker thread), and each block ends by putting back, in its thread, the count from before the
    first block open in the process: however two jobs at once (two QGIS tasks) overlap, QGIS's other threads and
    plugins find PyTorch's count as it was once both have ended. Nests and may be entered from several threads.
    """
    global _threads_blocks, _threads_before
    if count is None:
        yield
        return
    with _threads_lock:
        if _threads_blocks == 0:
            _threads_before = torch.get_num_threads()
        _threads_blocks += 1
        torch.set_num_threads(count)
    try:
        yield
    finally:
        with _threads_lock:
            _threads_blocks -= 1
            torch.set_num_threads(_threads_before)


#: The 1-minute load average above which the CPUs count as busy for ``busy_cpus_note``: the cores the run's threads
#: do not take, and this much more.
BUSY_MARGIN = 0.5


def busy_cpus_note(threads: int, setting: str) -> str | None:
    """A warning, in one line, when the CPUs look too busy for ``threads`` PyTorch threads: the 1-minute load average
    (Unix; elsewhere never) is above the cores the run's threads leave (``BUSY_MARGIN``). PyTorch's threads wait for
    each other at every operation, spinning, so one that shares a core with other work holds all of them up: on this
    project's 2-core CPU busy with other jobs a run took 112–118 s with one thread and 453 s with two (README, *Run
    times*). ``setting``: how the front end names its thread count (``--threads``). ``None`` with one thread, or where
    the load is low or unknown."""
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        return None
    cores = os.cpu_count() or 1
    if threads < 2 or load <= cores - threads + BUSY_MARGIN:
        return None
    return (f"warning: the CPUs are busy (load {load:.1f} on {cores} cores) for {threads} PyTorch threads, which wait "
            f"for each other and can make the run many times slower: if it is slow, set {setting} to 1 (or to the cores "
            "that are idle)")


def threads_lines(asked: int | None, device: str, setting: str) -> list[str]:
    """What a front end logs of a run's CPU threads, inside ``cpu_threads(asked)`` in the thread that runs it: the count
    PyTorch uses (``asked``, or automatic) and, where the run is on the CPU (``device``: ``auto|cpu|cuda|mps``), the
    warning of ``busy_cpus_note`` naming the front end's thread ``setting``."""
    threads = torch.get_num_threads()
    lines = [f"CPU threads: {threads}" + ("" if asked else " (automatic: PyTorch's choice)")]
    note = busy_cpus_note(threads, setting) if resolve_device(device).type == "cpu" else None
    return lines + ([note] if note else [])


def resolve_device(name: str) -> torch.device:
    """The torch device for ``auto|cpu|cuda|mps``; a clear error when the asked device is absent."""
    mps = getattr(torch.backends, "mps", None)
    has_mps = bool(mps is not None and mps.is_available())
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if has_mps else torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise InputError("device cuda was asked for but no CUDA GPU is available to PyTorch here: choose device auto or cpu")
    if name == "mps" and not has_mps:
        raise InputError("device mps was asked for but Apple MPS is not available here: choose device auto or cpu")
    if name not in ("cpu", "cuda", "mps"):
        raise InputError(f"unknown device {name!r}: use auto, cpu, cuda or mps")
    return torch.device(name)


def describe(device: torch.device, threads: int | None = None) -> str:
    """A human-readable device name, e.g. ``cuda (NVIDIA H100, 79 GiB)`` or ``cpu (2 threads)``: PyTorch's CPU threads,
    or ``threads`` where given (those a run will set, ``cpu_threads``)."""
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        return f"cuda ({props.name}, {props.total_memory / 2**30:.0f} GiB)"
    if device.type == "cpu":
        threads = threads or torch.get_num_threads()
        return f"cpu ({threads} thread{'' if threads == 1 else 's'})"
    return device.type


def detected_devices() -> dict[str, str]:
    """The devices PyTorch can use here (``cpu``, and ``cuda``/``mps`` when present), each with its description."""
    found = {"cpu": describe(torch.device("cpu"))}
    if torch.cuda.is_available():
        found["cuda"] = describe(torch.device("cuda"))
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        found["mps"] = "mps (Apple GPU)"
    return found


def bf16_ok(device: torch.device) -> bool:
    """Native bfloat16 on this CUDA device (Ampere or newer; emulated bf16 on older GPUs is slow)."""
    return device.type == "cuda" and torch.cuda.get_device_capability(device)[0] >= 8


def autocast(device: torch.device, enabled: bool, cache: bool = True) -> contextlib.AbstractContextManager:
    """Autocast context for the network's forward pass (a no-op off CUDA or when disabled).

    bfloat16 where native, else float16 (paired with a ``GradScaler`` by the caller). ``cache``: keep the
    weights' casts for the block (off for a step recorded in a CUDA graph, ``core.graphs``).
    """
    if enabled and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16 if bf16_ok(device) else torch.float16, cache_enabled=cache)
    return contextlib.nullcontext()


def conv_layout(device: torch.device) -> torch.memory_format:
    """The memory format convolutional networks' inputs take on ``device``: channels-last on the CPU, whose
    oneDNN convolutions run on it without reordering each input (one CPU thread, DIP's default step on a 64²
    input at ×2: 0.23 → 0.20 s); the default (contiguous) layout elsewhere, where it is untested."""
    return torch.channels_last if device.type == "cpu" else torch.contiguous_format


def cuda_index(device: torch.device) -> int:
    """The index of a CUDA ``device``: its own, or the current device's when it names none (``cuda``)."""
    return device.index if device.index is not None else torch.cuda.current_device()


def seed_everything(seed: int, device: torch.device = torch.device("cpu")) -> torch.Generator:
    """Seed torch's global CPU generator and the generator of ``device`` (the device the run uses: CUDA, that
    device's; MPS), and return a CPU generator for noise inputs. No other device's generator is touched:
    ``torch.manual_seed`` would seed every CUDA device, and on a process that has not started CUDA queue that seed
    for when it does, so a CPU run would change the stream of a caller's later CUDA work.

    On CUDA, cuDNN is put in deterministic mode (process-wide flags: ``seeded`` restores them when its block
    ends); reflection-padding and bilinear backward passes still use atomics there, so CUDA runs repeat only
    up to float rounding. CPU runs repeat exactly.
    """
    torch.random.default_generator.manual_seed(seed)
    if device.type == "cuda":
        with torch.cuda.device(cuda_index(device)):
            torch.cuda.manual_seed(seed)
    elif device.type == "mps":
        torch.mps.manual_seed(seed)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    return torch.Generator().manual_seed(seed)


@contextlib.contextmanager
def generators_kept(device: torch.device) -> Iterator[None]:
    """torch's global CPU generator and ``device``'s (CUDA: that device's; MPS) put back as they were when the block
    ends: ``torch.random.fork_rng`` for the CPU and CUDA, MPS's state saved and set by hand (``fork_rng`` reads it
    with a device argument that ``torch.mps.get_rng_state`` takes from torch 2.4 on; this package needs 2.3). No
    other device's generator is read, so a CPU run never starts CUDA (a GPU context) or MPS."""
    mps_state = torch.mps.get_rng_state() if device.type == "mps" else None
    with torch.random.fork_rng([cuda_index(device)] if device.type == "cuda" else [], device_type="cuda"):
        try:
            yield
        finally:
            if mps_state is not None:
                torch.mps.set_rng_state(mps_state)


@contextlib.contextmanager
def cudnn_flags_kept() -> Iterator[None]:
    """cuDNN's process-wide ``deterministic`` and ``benchmark`` flags put back as they were when the block ends."""
    saved = torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark
    try:
        yield
    finally:
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved


@contextlib.contextmanager
def seeded(seed: int, device: torch.device, progress: Progress) -> Iterator[torch.Generator]:
    """Run one seeded optimisation on ``device`` with the process's random generators to itself
    (``seed_everything``), freed memory reused meanwhile (``reused_heap``), and cuDNN's flags restored at its end
    (``cudnn_flags_kept``: other torch users of the process, such as a QGIS session's other plugins, see them changed
    only during it). The generators it seeds, the CPU's and ``device``'s, are put back as they were at its end
    (``generators_kept``), so that a caller's own random streams go on as if the run had not happened, also when the
    run is the first to use CUDA or MPS in the process; a CPU run touches no other device's generator.

    Waits while another thread's optimisation holds them, polling ``progress`` for cancellation.
    """
    while not _GLOBAL_RANDOM.acquire(timeout=0.25):
        check_cancelled(progress)
    try:
        with reused_heap(), cudnn_flags_kept(), generators_kept(device):
            yield seed_everything(seed, device)
    finally:
        _GLOBAL_RANDOM.release()
