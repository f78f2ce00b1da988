"""Two runs writing one output at once: a run claims its output and the side files beside it as it starts
(``core.raster.claimed``), so a second run to any of them, in another thread (two QGIS background tasks) or in
another process (a toolbox run beside the command line), is refused in one line instead of replacing the first's
files; a claim of a dead process is taken over, and no claim is left after a run, whatever ends it."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from internal_sr.core.cli import main
from internal_sr.core.config import DIPConfig
from internal_sr.core.errors import Cancelled, InputError
from internal_sr.core.pipeline import degrade, super_resolve
from internal_sr.core.progress import NullProgress
from internal_sr.core.raster import (
    CLAIM_WRITE_GRACE,
    HOST,
    PARTIAL_PREFIX,
    claim_path,
    claimed,
    process_start,
    release_claim,
    take_claim,
)

from helpers import degrading, read, write_raster

PREFIX = "internal-sr: error: "


def busy_line(path: str, holder: str = "in this process") -> str:
    """The refusal of a run to ``path`` while a run of this process (``holder``) or another writes it."""
    if holder == "in this process":
        return f"another run in this process is writing {path}: wait for it to end or choose another output"
    return (f"another run ({holder}) is writing {path}: wait for it to end or choose another output; "
            f"if no run is, remove {claim_path(path)}")


def source(folder: Path, nodata: float | None = None) -> str:
    """A small single-band raster in ``folder`` (all nodata when ``nodata`` is 0)."""
    data = np.random.default_rng(0).integers(1, 4000, (1, 64, 64)).astype(np.uint16)
    if nodata == 0:
        data[:] = 0
    return write_raster(str(folder / "in.tif"), data, nodata=nodata)


def leftovers(folder: Path) -> list[str]:
    """The hidden files of runs in ``folder``: claims and temporary files."""
    return sorted(name for name in os.listdir(folder) if name.startswith(PARTIAL_PREFIX))


def test_a_second_run_to_an_output_being_written_is_refused_in_one_line(tmp_path: Path, capsys) -> None:
    """While a run writes OUT.tif in another thread, a command-line run to OUT.tif, or a KernelGAN run to the
    kernel file kept beside it (OUT.tif.kernel.npy, which a run into OUT.tif replaces), is refused in one line
    naming the file; the first run's output is what it wrote alone, and no claim is left."""
    input_path = source(tmp_path)
    out = str(tmp_path / "out.tif")
    degrade(input_path, str(tmp_path / "alone.tif"), 2)
    with degrading(input_path, out):
        assert main(["degrade", input_path, out, "--scale", "2", "--kernel", "gaussian:1"]) == 2
        kernel = out + ".kernel.npy"
        assert main(["kernelgan", input_path, kernel, "--scale", "2", "--iterations", "2", "--device", "cpu"]) == 2
        assert capsys.readouterr().err.splitlines() == [PREFIX + busy_line(out), PREFIX + busy_line(kernel)]
    np.testing.assert_array_equal(read(out), read(str(tmp_path / "alone.tif")))
    assert not os.path.exists(kernel) and leftovers(tmp_path) == []


def test_a_run_in_another_process_is_refused_while_this_one_writes(tmp_path: Path) -> None:
    """A command-line run (another process) to the output a run of this process (a toolbox run) is writing is
    refused in one line naming the output and this process."""
    input_path = source(tmp_path)
    out = str(tmp_path / "out.tif")
    command = [sys.executable, "-m", "internal_sr.core.cli", "degrade", input_path, out, "--scale", "2"]
    with degrading(input_path, out):
        other = subprocess.run(command, capture_output=True, text=True)
    assert other.returncode == 2 and other.stderr.splitlines() == [PREFIX + busy_line(out, f"process {os.getpid()}")]
    assert leftovers(tmp_path) == []


def test_claims_in_one_process_are_refused_to_other_threads_and_joined_by_their_own(tmp_path: Path) -> None:
    """The bare claims: a thread holding a claim may claim the file again (a run claims its output as it starts,
    then as it stages it), the file goes with its last release; another thread is refused meanwhile."""
    out = str(tmp_path / "out.tif")
    refused: list[str] = []

    def other() -> None:
        try:
            with claimed([out]):
                pass
        except InputError as error:
            refused.append(str(error))

    with claimed([out]):
        with claimed([out, out]):
            pass
        assert os.path.exists(claim_path(out))
        thread = threading.Thread(target=other)
        thread.start()
        thread.join()
    assert refused == [busy_line(out)] and leftovers(tmp_path) == []
    long_name = "n" * 240 + ".tif"  # the claim of a long name stays within the 255 bytes of a file name
    assert len(os.path.basename(claim_path(str(tmp_path / long_name)))) < 255


def dead_process() -> int:
    """The id of a process that has ended."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_stale_claim_is_taken_over_and_another_hosts_is_not(tmp_path: Path) -> None:
    """A claim left by a process killed outright (its process has ended, or it never got its process id written)
    is taken over; one of another host (a shared folder) cannot be checked and refuses the run, saying which file
    to remove if no run is writing."""
    input_path = source(tmp_path)
    outputs = {"dead.tif": f"{dead_process()} {HOST}\n", "empty.tif": ""}
    for name, text in outputs.items():
        claim = claim_path(str(tmp_path / name))
        Path(claim).write_text(text)
        old = time.time() - 2 * CLAIM_WRITE_GRACE
        os.utime(claim, (old, old))
        degrade(input_path, str(tmp_path / name), 2)
    elsewhere = str(tmp_path / "elsewhere.tif")
    Path(claim_path(elsewhere)).write_text(f"{os.getpid()} {HOST}-other\n")
    with pytest.raises(InputError) as refusal:
        degrade(input_path, elsewhere, 2)
    assert str(refusal.value) == busy_line(elsewhere, f"process {os.getpid()} on host {HOST}-other")
    assert not os.path.exists(elsewhere) and leftovers(tmp_path) == [os.path.basename(claim_path(elsewhere))]
    assert all(os.path.exists(tmp_path / name) for name in outputs)


@pytest.fixture
def live_process() -> Iterator[int]:
    """The id of a running process of this machine, other than this one, started after this one."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield child.pid
    child.kill()
    child.wait()


needs_start_times = pytest.mark.skipif(process_start(os.getpid()) is None, reason="no process start times here (macOS)")


@needs_start_times
def test_a_claim_whose_process_id_a_later_process_holds_is_taken_over(tmp_path: Path, live_process: int) -> None:
    """A run killed outright leaves its claim; when its process id is then reused by an unrelated process (after a
    reboot, or on a busy machine), the claim's start time is not that process's, so the next run takes it over
    instead of being refused until the user removes the claim by hand."""
    out = str(tmp_path / "out.tif")
    claim = take_claim(out)  # the claim as a run writes it, then "killed": its file is put back after the release
    text = Path(claim.file).read_text()
    release_claim(claim)
    pid = text.split()[0]
    Path(claim.file).write_text(text.replace(pid, str(live_process), 1))  # its id is a later process's now
    with claimed([out]):
        assert Path(claim.file).read_text().split()[0] == str(os.getpid())
    assert leftovers(tmp_path) == []


@pytest.mark.skipif(not os.path.exists("/proc/sys/kernel/random/boot_id"), reason="no boot id here (not Linux)")
def test_a_claim_from_another_boot_is_taken_over(tmp_path: Path, live_process: int) -> None:
    """A claim written before a reboot is stale even if the process of its id now started as many clock ticks
    after boot as the claim says."""
    out = str(tmp_path / "out.tif")
    ticks = process_start(live_process).split(":")[1]
    Path(claim_path(out)).write_text(f"{live_process} {HOST} {uuid.uuid4()}:{ticks}\n")
    with claimed([out]):
        pass
    assert leftovers(tmp_path) == []


@needs_start_times
def test_a_claim_of_a_running_process_is_refused(tmp_path: Path, live_process: int) -> None:
    """A claim whose process is running with the start time it holds is refused; so is a claim of a running
    process in the format of earlier versions ("PID HOST", no start time), which cannot be told from a live one."""
    for name, start in [("new.tif", f" {process_start(live_process)}"), ("old.tif", "")]:
        out = str(tmp_path / name)
        Path(claim_path(out)).write_text(f"{live_process} {HOST}{start}\n")
        old = time.time() - 2 * CLAIM_WRITE_GRACE
        os.utime(claim_path(out), (old, old))
        with pytest.raises(InputError) as refusal:
            with claimed([out]):
                pass
        assert str(refusal.value) == busy_line(out, f"process {live_process}")


class CancelAtOnce(NullProgress):
    """A progress whose user has cancelled."""

    def cancelled(self) -> bool:
        return True


def test_no_claim_is_left_after_success_failure_or_cancellation(tmp_path: Path) -> None:
    """Whatever ends a run, its claims (and temporary files) are gone: a run that succeeds, one that fails while
    writing (every input pixel is nodata), and cancelled ones."""
    good = source(tmp_path)
    degrade(good, str(tmp_path / "done.tif"), 2)
    assert leftovers(tmp_path) == []
    nodata_folder = tmp_path / "nodata"
    nodata_folder.mkdir()
    with pytest.raises(InputError, match="no valid pixels"):
        degrade(source(nodata_folder, nodata=0), str(nodata_folder / "failed.tif"), 2)
    assert leftovers(nodata_folder) == []
    with pytest.raises(Cancelled):
        degrade(good, str(tmp_path / "cancelled.tif"), 2, progress=CancelAtOnce())
    with pytest.raises(Cancelled):
        super_resolve(good, str(tmp_path / "cancelled_sr.tif"), DIPConfig(iterations=2, device="cpu"), progress=CancelAtOnce())
    assert leftovers(tmp_path) == [] and not os.path.exists(tmp_path / "cancelled.tif")
