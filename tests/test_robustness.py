"""Bad and odd inputs through the command line (the table is ``bad_inputs.CASES``, shared with Processing):
a user error exits with status 2 and one stderr line and writes nothing; an odd but valid input gives
the right grid, CRS, dtype and nodata. Then runs killed mid-way, and two runs at once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch

from internal_sr.core.cli import main
from internal_sr.core.config import DIPConfig, IOOptions
from internal_sr.core.pipeline import super_resolve

from bad_inputs import (
    CASES, ITERATIONS, ROTATED_POLE, ROTATED_POLE_GRID, Case, Inputs, assert_outcome, digest, prepare, s2_pixels
)
from helpers import read, write_raster

PREFIX = "internal-sr: error: "


def arguments(case: Case, inputs: Inputs, output: str) -> list[str]:
    """``case`` as an ``internal-sr`` command line."""
    run = ["--iterations", str(ITERATIONS), "--device", "cpu"]
    if case.method == "guided":
        return ["guided", *inputs, output, "--kernel", "gaussian:0.5", "--guide-kernel", "gaussian:0.5", *run]
    bands = ["--bands", ",".join(map(str, case.bands))] if case.bands else []
    return ["dip", *inputs, output, "--scale", f"{case.scale:g}", *bands, *run]


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_command_line(case: Case, tmp_path, capsys) -> None:
    prepared = prepare(case, tmp_path)
    status = main(arguments(case, prepared.inputs, prepared.output))
    lines = capsys.readouterr().err.strip().splitlines()
    if case.error is None:
        assert status == 0, lines
        message = None
    else:
        assert status == 2 and len(lines) == 1 and lines[0].startswith(PREFIX), lines
        message = lines[0][len(PREFIX) :]
    assert_outcome(case, prepared, message)


# -- processes killed or running side by side ----------------------------------------------------

#: One thread per process, as in the runs compared with them (CPU results depend on the thread count).
SUBPROCESS_ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def default_signals() -> None:
    """In a child before it starts: SIGHUP and SIGINT as a terminal's command gets them, whatever this process
    inherited (under ``nohup`` SIGHUP is ignored, and a child started ignoring it rightly keeps it ignored)."""
    for number in (signal.SIGHUP, signal.SIGINT):
        signal.signal(number, signal.SIG_DFL)


def start(*arguments: str) -> subprocess.Popen:
    """``internal-sr ARGUMENTS`` in a new Python process, started with the signals a terminal gives it."""
    command = [sys.executable, "-m", "internal_sr.core.cli", *arguments]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=SUBPROCESS_ENV,
                            preexec_fn=default_signals)


def wait_until_writing(folder: Path, process: subprocess.Popen, timeout: float = 120.0) -> None:
    """Wait until ``process`` has opened its temporary output in ``folder`` (it is then optimising tiles)."""
    deadline = time.monotonic() + timeout
    while not any(name.startswith(".internal_sr-") and name.endswith(".part") for name in os.listdir(folder)):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the run never started writing"
        time.sleep(0.05)


def test_a_killed_run_leaves_no_layer_and_the_input_untouched(tmp_path: Path) -> None:
    """SIGKILL mid-run: nothing at the output path, only a hidden temporary file no GIS lists as a raster and the
    run's claim on the output, which the next run to it takes over. SIGTERM or SIGHUP (the terminal closed) mid-run:
    cancelled cleanly, nothing at all is left."""
    source = write_raster(str(tmp_path / "in.tif"), s2_pixels(64, bands=slice(0, 2)), crs="EPSG:32618")
    before = digest(source)
    runs = {}
    for how in (signal.SIGKILL, signal.SIGTERM, signal.SIGHUP):
        folder = tmp_path / how.name
        folder.mkdir()
        long_run = ["--scale", "2", "--iterations", "500", "--tile", "32", "--overlap", "4", "--device", "cpu"]
        runs[how] = folder, start("dip", source, str(folder / "sr.tif"), *long_run)
    for how, (folder, process) in runs.items():
        wait_until_writing(folder, process)
        process.send_signal(how)
    killed_folder, killed = runs.pop(signal.SIGKILL)
    killed.communicate(timeout=60)
    assert killed.returncode == -signal.SIGKILL
    left, claims = set(os.listdir(killed_folder)), {".internal_sr-sr.tif.claim", ".internal_sr-sr.tif.kernel.npy.claim"}
    (leftover,) = left - claims
    assert leftover.startswith(".internal_sr-") and leftover.endswith(".part") and claims <= left
    assert main(["degrade", source, str(killed_folder / "sr.tif"), "--scale", "2"]) == 0
    assert sorted(os.listdir(killed_folder)) == [leftover, "sr.tif"]
    for terminated_folder, terminated in runs.values():
        _, err = terminated.communicate(timeout=60)
        assert terminated.returncode == 130
        assert err.strip().splitlines()[-1] == "internal-sr: cancelled, nothing written"
        assert os.listdir(terminated_folder) == []
    assert digest(source) == before


#: ``python -c`` script: ``internal-sr degrade ARGUMENTS`` whose first output block sends its own process SIGHUP and
#: SIGINT, as logging out of the terminal of a ``nohup`` run and Ctrl-C in the shell of a script's background job do.
SIGNALLED_MID_RUN = """
import os, signal, sys
from internal_sr.core import raster
from internal_sr.core.cli import main
write = raster.AtomicGeoTIFF.write
def signal_then_write(self, *arguments):
    os.kill(os.getpid(), signal.SIGHUP)
    os.kill(os.getpid(), signal.SIGINT)
    write(self, *arguments)
raster.AtomicGeoTIFF.write = signal_then_write
sys.exit(main(["degrade", *sys.argv[1:]]))
"""


def ignore_hang_up_and_interrupt() -> None:
    """What ``nohup`` (SIGHUP) and a non-interactive shell's ``&`` (SIGINT) do before starting a command."""
    for number in (signal.SIGHUP, signal.SIGINT):
        signal.signal(number, signal.SIG_IGN)


def test_signals_ignored_at_start_stay_ignored(tmp_path: Path) -> None:
    """The command line set its cancelling handler for SIGHUP and SIGINT even when the process started with them
    ignored: logging out cancelled a ``nohup`` run ("cancelled, nothing written"). Started normally, the same
    signals still cancel."""
    source = write_raster(str(tmp_path / "in.tif"), s2_pixels(64, bands=slice(0, 1)))
    for ignored, status in ((False, 130), (True, 0)):
        out = tmp_path / f"ignored_{ignored}.tif"
        process = subprocess.run(
            [sys.executable, "-c", SIGNALLED_MID_RUN, source, str(out), "--scale", "2"], capture_output=True, text=True,
            env=SUBPROCESS_ENV, preexec_fn=ignore_hang_up_and_interrupt if ignored else None,
        )
        assert process.returncode == status, process.stderr
        assert out.exists() == ignored


def test_two_processes_at_once_give_what_one_alone_gives(tmp_path: Path) -> None:
    """While another process super-resolves an input into a folder, this one does the same into the
    same folder: each output is the output of a run alone, to the bit."""
    source = write_raster(str(tmp_path / "in.tif"), s2_pixels(bands=slice(0, 2)), crs="EPSG:32618")
    options = ["--scale", "2", "--iterations", str(ITERATIONS), "--device", "cpu", "--float32"]
    out = tmp_path / "out"
    out.mkdir()
    other = start("dip", source, str(out / "a.tif"), *options)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the other process
    try:
        wait_until_writing(out, other)
        assert main(["dip", source, str(out / "b.tif"), *options]) == 0
        _, err = other.communicate(timeout=120)
        assert other.returncode == 0, err
        assert main(["dip", source, str(tmp_path / "alone.tif"), *options]) == 0
    finally:
        torch.set_num_threads(threads)
    assert sorted(os.listdir(out)) == ["a.tif", "a.tif.loss.png", "b.tif", "b.tif.loss.png"]
    alone = read(str(tmp_path / "alone.tif"))
    np.testing.assert_array_equal(read(str(out / "a.tif")), alone)
    np.testing.assert_array_equal(read(str(out / "b.tif")), alone)


def test_two_jobs_at_once_in_one_process_give_what_one_alone_gives(tmp_path: Path) -> None:
    """As two QGIS background tasks: two threads super-resolve one input at the same time. They share
    torch's global random generator (weight initialisation), which the engine holds for one tile at a time."""
    source = write_raster(str(tmp_path / "in.tif"), s2_pixels(bands=slice(0, 1)), crs="EPSG:32618")
    config, io = DIPConfig(iterations=2, device="cpu", seed=3), IOOptions(float32=True)
    super_resolve(source, str(tmp_path / "alone.tif"), config, io)
    with ThreadPoolExecutor(2) as pool:
        jobs = [pool.submit(super_resolve, source, str(tmp_path / name), config, io) for name in ("a.tif", "b.tif")]
        for job in jobs:
            job.result()
    alone = read(str(tmp_path / "alone.tif"))
    np.testing.assert_array_equal(read(str(tmp_path / "a.tif")), alone)
    np.testing.assert_array_equal(read(str(tmp_path / "b.tif")), alone)


def test_a_named_pipe_is_refused_instead_of_waited_on(tmp_path: Path, capsys) -> None:
    """GDAL opening a FIFO blocks until something writes to it (Ctrl-C then printed tracebacks)."""
    pipe = tmp_path / "scene.tif"
    os.mkfifo(pipe)
    assert main(["dip", str(pipe), str(tmp_path / "sr.tif"), "--scale", "2"]) == 2
    assert capsys.readouterr().err.strip() == f"{PREFIX}input {pipe} is a named pipe, not a raster file"
    assert sorted(os.listdir(tmp_path)) == ["scene.tif"]


def test_a_signal_while_the_files_move_into_place_lets_them_all_arrive(tmp_path: Path, capsys, monkeypatch) -> None:
    """SIGTERM between two renames of a run's files: too late to cancel, so the run completes with every
    file in place (it left the kernel without its record and preview, under "nothing written")."""
    from internal_sr.core import raster

    replace = os.replace
    sent = []

    def replace_then_signal(source: str, target: str) -> None:
        replace(source, target)
        if not sent:
            sent.append(target)
            os.kill(os.getpid(), signal.SIGTERM)  # delivered to the CLI's handler at the next bytecode

    monkeypatch.setattr(raster.os, "replace", replace_then_signal)
    source = write_raster(str(tmp_path / "in.tif"), s2_pixels(64, bands=slice(0, 1)))
    assert main(["kernelgan", source, str(tmp_path / "k.npy"), "--scale", "2", "--iterations", "2"]) == 0
    assert sent and sorted(os.listdir(tmp_path)) == ["in.tif", "k.npy", "k.npy.json", "k.png"]


def test_gdal_failures_of_overlapping_runs_in_threads_are_each_caught() -> None:
    """Two writers in QGIS tasks at once: the first to finish must not stop the other hearing GDAL's failures,
    and the logger's level is the original once both are done."""
    import logging
    import threading

    from internal_sr.core.raster import gdal_failures

    logger = logging.getLogger("rasterio._env")
    before = logger.level
    first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()
    heard: list[list[str]] = []

    def first() -> None:
        with gdal_failures():
            first_in.set()
            second_in.wait(10)
        first_out.set()

    def second() -> None:
        first_in.wait(10)
        with gdal_failures() as failures:
            second_in.set()
            first_out.wait(10)
            logger.info("GDAL signalled an error: err_no=%r, msg=%r", 3, "No space left on device")
        heard.append(failures)

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert heard == [["No space left on device"]]
    assert logger.level == before


def test_gdal_failures_reach_no_handler_of_the_application(monkeypatch) -> None:
    """An application with ``logging.basicConfig()`` (root at WARNING, a handler of any level) printed
    "rasterio._env INFO GDAL signalled an error: … No space left on device" while a run wrote its output: the
    logger lowered to INFO to hear GDAL let those records through to it. The block still hears them, the handler
    still gets what it got before (WARNING), and the logger's level is its own again afterwards."""
    import logging

    from internal_sr.core.raster import gdal_failures

    seen: list[str] = []

    class Application(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(f"{record.levelname} {record.getMessage()}")

    root, logger, handler = logging.getLogger(), logging.getLogger("rasterio._env"), Application()
    monkeypatch.setattr(root, "level", logging.WARNING)
    monkeypatch.setattr(logger, "level", logging.NOTSET)
    root.addHandler(handler)
    try:
        with gdal_failures() as failures:
            logger.info("GDAL signalled an error: err_no=%r, msg=%r", 3, "No space left on device")
            logger.warning("a warning")
    finally:
        root.removeHandler(handler)
    assert failures == ["No space left on device"] and seen == ["WARNING a warning"]
    assert logger.level == logging.NOTSET and not logger.filters


def test_a_signal_while_old_sidecars_are_removed_still_completes_the_run(tmp_path: Path, capsys, monkeypatch) -> None:
    """After the new raster is in place its predecessor's .aux.xml and .ovr are removed: a SIGTERM there said
    "cancelled, nothing written" and left the old overviews beside the new raster."""
    from internal_sr.core import raster

    source = write_raster(str(tmp_path / "in.tif"), s2_pixels(64, bands=slice(0, 1)))
    out = str(tmp_path / "lr.tif")
    assert main(["degrade", source, out, "--scale", "2"]) == 0
    for sidecar in (".aux.xml", ".ovr"):
        Path(out + sidecar).write_text("of the earlier lr.tif")
    remove = os.remove

    def remove_then_signal(path: str) -> None:
        remove(path)
        if path.endswith(".aux.xml"):
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(raster.os, "remove", remove_then_signal)
    assert main(["degrade", source, out, "--scale", "2"]) == 0
    assert sorted(os.listdir(tmp_path)) == ["in.tif", "lr.tif"]


def test_a_signal_mid_run_leaves_no_pam_sidecar_of_the_temporary_file(tmp_path: Path, capsys, monkeypatch) -> None:
    """GDAL writes a rotated-pole CRS (no GeoTIFF key holds it) into a PAM sidecar beside the temporary file as the
    cancelled run closes it: a SIGTERM there left that hidden .aux.xml in the folder."""
    from internal_sr.core import raster

    source = write_raster(str(tmp_path / "in.tif"), s2_pixels(64, bands=slice(0, 1)), crs=ROTATED_POLE, transform=ROTATED_POLE_GRID)
    write = raster.AtomicGeoTIFF.write

    def write_then_signal(self: raster.AtomicGeoTIFF, *arguments) -> None:
        write(self, *arguments)
        os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(raster.AtomicGeoTIFF, "write", write_then_signal)
    assert main(["degrade", source, str(tmp_path / "lr.tif"), "--scale", "2"]) == 130
    assert capsys.readouterr().err.strip().splitlines()[-1] == "internal-sr: cancelled, nothing written"
    assert sorted(os.listdir(tmp_path)) == ["in.tif", "in.tif.aux.xml"]


def test_a_cancelled_run_does_not_claim_another_threads_files(tmp_path: Path) -> None:
    """Commits are recorded for the thread that records them: another job's file (a QGIS task, a script's worker)
    is not what a cancelled run on this thread wrote."""
    import threading

    from internal_sr.core.raster import recording_commits, write_file_atomically

    def commit(name: str) -> None:
        write_file_atomically(str(tmp_path / name), name.encode())

    written: list[str] = []
    with recording_commits(written):
        other = threading.Thread(target=commit, args=("other_job.txt",))
        other.start()
        other.join()
        commit("mine.txt")
    assert written == [str(tmp_path / "mine.txt")] and os.path.exists(tmp_path / "other_job.txt")


def test_a_signal_after_the_files_are_in_place_says_they_were_written(tmp_path: Path, capsys, monkeypatch) -> None:
    """A SIGTERM after the run's files moved into place, before the signal handlers are given back (here as the
    progress bar closes), said "cancelled, nothing written" with the output in place: it names the output now."""
    from internal_sr.core.cli import TerminalProgress

    source = write_raster(str(tmp_path / "in.tif"), s2_pixels(64, bands=slice(0, 1)))
    out = str(tmp_path / "lr.tif")
    close = TerminalProgress.close
    signalled = []

    def close_then_signal(progress: TerminalProgress) -> None:
        close(progress)
        if not signalled:
            signalled.append(os.path.exists(out))
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(TerminalProgress, "close", close_then_signal)
    assert main(["degrade", source, out, "--scale", "2"]) == 130
    assert capsys.readouterr().err.strip().splitlines()[-1] == f"internal-sr: cancelled after writing {out} in full"
    assert signalled == [True] and sorted(os.listdir(tmp_path)) == ["in.tif", "lr.tif"]
