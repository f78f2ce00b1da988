"""Device choice and mixed precision.

``auto`` picks CUDA, then Apple MPS, then the CPU. Mixed precision is used on CUDA only (bfloat16
where supported, else float16 with loss scaling); losses are always computed in float32.
"""

from __future__ import annotations

import contextlib
import ctypes
import math
import os
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass

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

#: How a caller names PyTorch's thread setting where no front end runs the job (no ``cpu_threads`` block): a script
#: or notebook calling the engine.
LIBRARY_SETTING = "PyTorch's threads (torch.set_num_threads)"


@dataclass
class _Job:
    """The job a thread runs inside ``cpu_threads``: how its front end names the thread ``setting``, and whether the
    job has given its warning that the CPUs are busy (``busy_cpus_line``: once a job, however many stages it runs)."""

    setting: str
    warned: bool = False


#: Per thread, the job of the innermost ``cpu_threads`` block it is in (``job``; absent outside any).
_jobs = threading.local()


@contextlib.contextmanager
def cpu_threads(count: int | None, setting: str = LIBRARY_SETTING) -> Iterator[None]:
    """PyTorch's CPU threads set to ``count`` inside the block (``None``: left as they are, PyTorch's own choice:
    ``OMP_NUM_THREADS``, else the cores), and put back afterwards; inside it, the engine's warning that the CPUs are
    busy names ``setting``, how the front end running the job names its thread count (``--threads``), and comes once
    (``busy_cpus_line``).

    ``torch.set_num_threads`` is process-wide: it sets the count of the calling thread (with OpenMP, that thread's
    own) and of every thread that starts parallel work afterwards. So the block is entered in the thread that runs the
    job (a QGIS task's worker thread), and each block ends by putting back, in its thread, the count from before the
    first block open in the process: however two jobs at once (two QGIS tasks) overlap, QGIS's other threads and
    plugins find PyTorch's count as it was once both have ended. Nests and may be entered from several threads.
    """
    global _threads_blocks, _threads_before
    outer = getattr(_jobs, "job", None)
    _jobs.job = _Job(setting)
    try:
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
    finally:
        _jobs.job = outer


def busy_cpus_note(threads: int, setting: str) -> str | None:
    """A warning, in one line, when the CPUs lack an idle core for each of ``threads`` PyTorch threads; ``None``
    with one thread, where every thread finds an idle core, or where the load is unknown (no load average: Windows).
    ``setting``: how the front end names its thread count (``--threads``); the warning suggests the idle cores.

    The 1-minute load average counts the threads that were runnable (or waiting on the disk), averaged over about
    the last minute; read as a run starts, it is the load of the machine's other work. Of ``cores``, ``floor(load)``
    are taken whole by it and the rest are idle, for all or part of the time. A run whose threads outnumber the idle
    cores has one of them share a core with other work: the scheduler takes it off the core for whole time slices
    (milliseconds), while a step's operations each last far less, each ending at a barrier where
    PyTorch's other threads wait, spinning, for the slowest. So every operation waits for the thread that is off
    its core: on this project's 2-core CPU, two threads took 0.15 s per DIP step against one thread's 0.20 s with
    nothing else running (load 0.8–0.9), and 3.5 s against 0.33 s once the load was 1 or more, slower in every one
    of 22 tries (README, *Run times*). A load below one whole core more than the threads leave idle (0.6 on 2 cores
    for 2 threads: short bursts of other work) takes no core from the run for long, and is not warned of: that would
    be most desktop runs. A run just after another still sees that run's load, decaying within about a minute."""
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        return None
    cores = os.cpu_count() or 1
    idle = max(0, cores - math.floor(load))
    if threads < 2 or threads <= idle:
        return None
    cores_words = "no idle core" if idle == 0 else f"{idle} idle core{'' if idle == 1 else 's'}"
    return (f"warning: {threads} PyTorch threads but {cores_words} (load {load:.1f} on {cores} cores): threads that share "
            f"a core with other work wait for each other and can make the run many times slower; if it is slow, set "
            f"{setting} to {max(1, idle)}")


def busy_cpus_line(device: torch.device) -> str | None:
    """What the engine logs after its line naming the device, once a run has passed its checks: for a run on the
    CPU, ``busy_cpus_note`` for PyTorch's threads in this thread (the run's, ``cpu_threads``), naming the setting of
    the front end whose job this thread runs (``cpu_threads``; none: ``LIBRARY_SETTING``), once a job (a KernelGAN
    estimate, then the run it serves, warn once). ``None`` where there is nothing to say."""
    if device.type != "cpu":
        return None
    job = getattr(_jobs, "job", None)
    if job is not None and job.warned:
        return None
    note = busy_cpus_note(torch.get_num_threads(), job.setting if job is not None else LIBRARY_SETTING)
    if job is not None and note is not None:
        job.warned = True
    return note


def threads_line(asked: int | None) -> str:
    """What a front end logs of a run's CPU threads, inside ``cpu_threads(asked)`` in the thread that runs it: the count
    PyTorch uses (``asked``, or automatic). The warning that the CPUs are busy comes from the engine, after its checks
    (``busy_cpus_line``)."""
    return f"CPU threads: {torch.get_num_threads()}" + ("" if asked else " (automatic: PyTorch's choice)")


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
