"""The dialog's background path: ``CoreJobTask`` through the QGIS task manager."""

from __future__ import annotations

import os
import re
import time

import pytest
from qgis.core import Qgis, QgsApplication, QgsProject
from qgis_helpers import LogRecorder, crop, grid_info

from internal_sr.core.config import KERNEL_CHOICES, DIPConfig, IOOptions, KnitworkConfig
from internal_sr.core.errors import InputError
from internal_sr.ui.task import CoreJobTask

pytestmark = pytest.mark.qgis


def wait_for(task: CoreJobTask, timeout: float = 120.0) -> list[str]:
    """Process events until the task manager has called ``finished``; return the signals seen."""
    seen: list[str] = []
    task.taskCompleted.connect(lambda: seen.append("completed"))
    task.taskTerminated.connect(lambda: seen.append("terminated"))
    QgsApplication.taskManager().addTask(task)
    deadline = time.monotonic() + timeout
    while not seen and time.monotonic() < deadline:
        QgsApplication.processEvents()
        time.sleep(0.02)
    assert seen, "the task did not finish in time"
    QgsApplication.processEvents()
    return seen


def test_task_runs_in_the_background_and_adds_the_layer(qgis_iface, empty_project, messages, tmp_path) -> None:
    source = crop(str(tmp_path / "field.tif"), 64, 16, 16)
    out = str(tmp_path / "field_x2.tif")
    config = DIPConfig(scale=2, iterations=3, device="cpu")
    task = CoreJobTask.super_resolve(source, out, config, IOOptions(bands=(4,)), "field", qgis_iface)
    assert wait_for(task) == ["completed"]
    layers = QgsProject.instance().mapLayersByName("field DIP ×2")
    assert len(layers) == 1 and layers[0].source() == out and layers[0].bandCount() == 1
    assert (grid_info(out).width, grid_info(out).height) == (128, 128)
    assert len(messages[Qgis.MessageLevel.Success]) == 1 and messages[Qgis.MessageLevel.Critical] == []
    assert "georeferencing" not in messages[Qgis.MessageLevel.Success][0]


def test_a_result_without_georeferencing_is_said_not_to_sit_over_its_input(qgis_iface, empty_project, messages, tmp_path) -> None:
    """QGIS draws a raster without georeferencing in its own pixel units from the origin: a ×2 result twice as
    large as its input, an extent's result at the input's corner. The line saying it was added says so."""
    from osgeo import gdal

    from helpers import S2_10M

    scan = gdal.Translate(str(tmp_path / "scan.tif"), S2_10M, srcWin=[40, 40, 32, 32], bandList=[1]).GetDescription()
    task = CoreJobTask.super_resolve(scan, str(tmp_path / "scan_x2.tif"), DIPConfig(iterations=1, device="cpu"), IOOptions(),
                                     "scan", qgis_iface)
    task.finished(task.run())
    (done,) = messages[Qgis.MessageLevel.Success]
    assert task.layer is not None and "scan DIP ×2: done on cpu" in done
    assert re.search(r"done on cpu.* in \d+\.\d s;", done), done  # tenths, as the command line: a short run never reads "in 0 s"
    assert done.endswith("; like its input it has no georeferencing, so QGIS draws it in its own pixel units from the origin, "
                         "not over the input")


def test_a_learned_kernel_is_said_to_be_kept_beside_the_result(qgis_iface, empty_project, messages, tmp_path) -> None:
    """Knitworks with the learned kernel keeps it beside the output (``OUT.tif.kernel.npy``): the line saying the
    result was added says where, as a fixed kernel's says nothing of a kernel."""
    source = crop(str(tmp_path / "field.tif"), 32)
    out = str(tmp_path / "field_x2.tif")
    config = KnitworkConfig(kernel="learned", iterations=2, device="cpu")
    task = CoreJobTask.super_resolve(source, out, config, IOOptions(bands=(1,)), "field", qgis_iface)
    task.finished(task.run())
    (done,) = messages[Qgis.MessageLevel.Success]
    assert task.layer is not None and os.path.isfile(out + ".kernel.npy")
    assert done.endswith(f"; the blur kernel it learnt is kept as {out}.kernel.npy (its size and width are in the log)")


def test_cancelled_task_leaves_no_file_and_no_layer(qgis_iface, empty_project, messages, tmp_path) -> None:
    source = crop(str(tmp_path / "field.tif"), 48)
    out = str(tmp_path / "never.tif")
    task = CoreJobTask.super_resolve(source, out, DIPConfig(scale=2, iterations=500, device="cpu"), IOOptions(bands=(1,)), "field", qgis_iface)
    task.cancel()  # as if the user pressed the task's cancel button before its first step
    result = task.run()  # deterministic: run and finished called as the task manager would
    task.finished(result)
    assert result is False and task.error is None and task.layer is None
    assert not os.path.exists(out) and not [f for f in os.listdir(tmp_path) if f.startswith(".internal_sr-")]
    assert QgsProject.instance().mapLayers() == {}
    assert any("cancelled" in m for m in messages[Qgis.MessageLevel.Info])


def test_a_cancel_once_the_bar_is_full_still_writes_nothing(qgis_iface, empty_project, messages, tmp_path) -> None:
    """The bar reaches 100 % after the last optimisation step, before back-projection, writing and the loss curve: a
    Cancel then was ignored, the earlier output replaced and its layer added. It stops the run as any Cancel does:
    the earlier files stay as they were (the same files: not even replaced by equal bytes) and nothing is added."""
    source = crop(str(tmp_path / "field.tif"), 32)
    out = tmp_path / "out" / "field_x2.tif"
    out.parent.mkdir()

    def task(seed: int) -> CoreJobTask:
        config = DIPConfig(scale=2, iterations=2, device="cpu", seed=seed)
        return CoreJobTask.super_resolve(source, str(out), config, IOOptions(bands=(1,)), "field", qgis_iface)

    assert task(1).run()
    earlier = {path.name: (path.stat().st_ino, path.read_bytes()) for path in out.parent.iterdir()}
    assert sorted(earlier) == ["field_x2.tif", "field_x2.tif.loss.png"]
    cancelled = task(2)
    cancelled.progressChanged.connect(lambda value: cancelled.cancel() if value >= 100 else None)
    result = cancelled.run()  # deterministic: run and finished called as the task manager would
    cancelled.finished(result)
    assert result is False and cancelled.error is None and cancelled.layer is None
    assert {path.name: (path.stat().st_ino, path.read_bytes()) for path in out.parent.iterdir()} == earlier
    assert QgsProject.instance().mapLayers() == {}
    (said,) = messages[Qgis.MessageLevel.Info]
    assert said.endswith("super-resolve field ×2: cancelled, nothing was written")


def test_failed_task_reports_one_line_and_adds_nothing(qgis_iface, empty_project, messages, tmp_path) -> None:
    source = crop(str(tmp_path / "field.tif"), 48)
    task = CoreJobTask.super_resolve(source, str(tmp_path / "out.tif"), DIPConfig(iterations=3), IOOptions(bands=(9,)), "field", qgis_iface)
    result = task.run()
    task.finished(result)
    assert result is False and task.layer is None and QgsProject.instance().mapLayers() == {}
    assert "band 9" in task.error and "\n" not in task.error
    (critical,) = messages[Qgis.MessageLevel.Critical]
    assert critical.endswith(task.error) and "\n" not in critical


def test_a_task_runs_its_job_with_its_cpu_threads_and_gives_the_count_back(qgis_iface, empty_project, messages) -> None:
    """The dialog's runs took PyTorch's count of threads, all cores, whatever the machine's load. A task sets the threads
    asked (the dialog's Advanced ▸ CPU threads) in its worker thread for its job alone, logs them, and gives the process's
    count back: QGIS and its other plugins share it."""
    import threading

    import torch

    from internal_sr.core.errors import Cancelled

    before = torch.get_num_threads()
    seen: list[int] = []

    def job(progress) -> None:
        seen.append(torch.get_num_threads())
        raise Cancelled()

    task = CoreJobTask("super-resolve field ×2", job, "field DIP ×2", qgis_iface, threads=before + 1)
    with LogRecorder() as log:
        assert wait_for(task) == ["terminated"]
    assert seen == [before + 1] and f"CPU threads: {before + 1}" in log.messages
    fresh: list[int] = []
    later = threading.Thread(target=lambda: fresh.append(torch.get_num_threads()))
    later.start()
    later.join()
    assert torch.get_num_threads() == before and fresh == [before]


def test_a_failed_task_names_the_dialogs_settings(qgis_iface, empty_project, messages) -> None:
    """An engine message naming kernels as the command line takes them is worded with the dialog's settings."""

    def job(progress) -> None:
        raise InputError(f"unknown kernel 'box': use {KERNEL_CHOICES}")

    task = CoreJobTask("super-resolve field ×2", job, "field DIP ×2", qgis_iface)
    task.finished(task.run())
    assert task.error == ("unknown kernel 'box': use bicubic, lanczos2, lanczos3, the gaussian Blur kernel with its "
                          "Gaussian sigma, landsat or a Kernel file (Advanced)")
    (critical,) = messages[Qgis.MessageLevel.Critical]
    assert critical.endswith(task.error)


def test_unexpected_error_is_one_line_with_the_traceback_in_the_log(qgis_iface, empty_project, messages) -> None:
    """Worded as on the command line and in Processing (``core.errors.error_line``), with the dialog's setting names."""

    def job(progress) -> None:
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB\n(GPU 0; 8 GiB total capacity)")

    task = CoreJobTask("super-resolve field ×2", job, "field DIP ×2", qgis_iface)
    with LogRecorder() as log:
        task.finished(task.run())
    assert task.error == "out of GPU memory: use a smaller tile size (Advanced) or device cpu; nothing written"
    (critical,) = messages[Qgis.MessageLevel.Critical]
    assert critical.endswith(f"super-resolve field ×2 failed: {task.error}") and critical.count("Internal SR") == 1
    assert task.description() == "Internal SR: super-resolve field ×2"  # as the task manager lists it
    assert any("Traceback" in message and "in job" in message for message in log.messages)
