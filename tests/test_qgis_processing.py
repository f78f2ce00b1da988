"""The Processing algorithms run for real through ``processing.run`` in a headless QGIS.

DIP runs use few iterations on small crops of the committed Sentinel-2 raster, so they test the
plumbing (parameters → engine → output grid, errors, cancellation), not the quality of the result.
"""

from __future__ import annotations

import dataclasses
import os
import re
import time
from pathlib import Path

import numpy as np
import pytest
import rasterio
from qgis.core import (
    QgsApplication,
    QgsCoordinateReferenceSystem,
    QgsProcessingAlgRunnerTask,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingModelChildParameterSource,
    QgsProcessingOutputLayerDefinition,
    QgsProcessingParameterEnum,
    QgsProject,
    QgsProperty,
    QgsRasterLayer,
)
from helpers import degrading, read, write_raster
from qgis_helpers import (
    S2_20M_BANDS, LogRecorder, add_child, crop, georeferenced_10m, grid_info, raster_model, recording_feedback, user_message,
)

pytestmark = [pytest.mark.qgis, pytest.mark.usefixtures("internal_sr_provider")]

FAST = {"ITERATIONS": 3, "DEVICE": "cpu", "SEED": 1}


@pytest.fixture(scope="module")
def crop64(tmp_path_factory: pytest.TempPathFactory) -> str:
    """64 × 64 pixels of the committed 20 m crop: small, yet every hourglass level stays ≥ 2 pixels."""
    return crop(str(tmp_path_factory.mktemp("data") / "s2_20m_64.tif"), 64, 16, 16)


def run(algorithm: str, parameters: dict, feedback: QgsProcessingFeedback | None = None) -> dict:
    import processing

    return processing.run(f"internal_sr:{algorithm}", parameters, feedback=feedback or QgsProcessingFeedback())


def leftovers(folder: str) -> list[str]:
    """Temporary files the engine would leave behind after a failure or cancellation."""
    return [name for name in os.listdir(folder) if name.startswith(".internal_sr-")]


def test_dip_output_is_the_input_grid_refined(crop64: str, tmp_path, empty_project) -> None:
    out = str(tmp_path / "dip.tif")
    feedback = QgsProcessingFeedback()
    result = run("dip", {"INPUT": crop64, "BANDS": [2, 5], "SCALE": 2, **FAST, "OUTPUT": out}, feedback)
    assert result["OUTPUT"] == out
    assert result["LOSS_CURVE"] == str(tmp_path / "dip.tif.loss.png") and os.path.isfile(result["LOSS_CURVE"])
    src, dst = grid_info(crop64), grid_info(out)
    assert (dst.width, dst.height) == (2 * src.width, 2 * src.height)
    assert dst.crs == src.crs == "EPSG:32618"
    a, b, c, d, e, f = dst.transform
    assert (c, f) == (src.transform[2], src.transform[5])  # same origin
    assert (a, e) == (src.transform[0] / 2, src.transform[4] / 2)  # 20 m → 10 m
    assert (b, d) == (0.0, 0.0)
    assert dst.dtype == "uint16"
    assert dst.descriptions == (S2_20M_BANDS[1], S2_20M_BANDS[4])
    # the right bands, in the right order: band means are kept to a few percent and differ by far more
    assert dst.means == pytest.approx((src.means[1], src.means[4]), rel=0.03)
    # QGIS reads the output over exactly the input's extent
    layer = QgsRasterLayer(out, "dip", "gdal")
    assert layer.isValid() and layer.bandCount() == 2
    assert layer.extent() == QgsRasterLayer(crop64, "in", "gdal").extent()
    log = feedback.textLog()
    assert "Device requested: cpu" in log and "Iterations: 3" in log and "Done on cpu" in log
    assert "Tiles: 1 tile of 128 px with 16 px overlap\n" in log  # a default kernel: the tiles asked are the tiles used
    assert empty_project.mapLayers() == {}  # a worker-safe algorithm adds no layer by itself


def test_degrade_coarsens_the_grid_with_the_chosen_kernel(tmp_path) -> None:
    source = crop(str(tmp_path / "in.tif"), 96)  # the whole committed crop
    out = str(tmp_path / "low.tif")
    run("degrade", {"INPUT": source, "SCALE": 3, "KERNEL": "gaussian", "SIGMA": 0.6, "OUTPUT": out})
    src, dst = grid_info(source), grid_info(out)
    assert (dst.width, dst.height) == (32, 32)
    assert dst.transform == (60.0, 0.0, src.transform[2], 0.0, -60.0, src.transform[5])
    assert dst.crs == src.crs and dst.dtype == "uint16" and dst.descriptions == S2_20M_BANDS
    assert dst.means == pytest.approx(src.means, rel=0.02)  # a normalised blur keeps band means


def test_degrade_kernel_file_overrides_kernel(tmp_path) -> None:
    source = crop(str(tmp_path / "in.tif"), 32)
    delta = np.zeros((3, 3))
    delta[1, 1] = 1.0
    kernel_file = str(tmp_path / "delta.npy")
    np.save(kernel_file, delta)
    out = str(tmp_path / "low.tif")
    run("degrade", {"INPUT": source, "BANDS": [1], "SCALE": 3, "KERNEL": "lanczos3", "KERNEL_FILE": kernel_file, "OUTPUT": out})
    with rasterio.open(source) as a, rasterio.open(out) as b:
        high, low = a.read(1), b.read(1)
    # at ×3 a delta kernel is pure decimation: every output pixel is the centre pixel of its 3 × 3 block
    assert low.shape == (10, 10) and np.array_equal(low, high[1:30:3, 1:30:3])


def test_a_kernel_file_is_judged_by_its_contents_as_on_the_command_line(tmp_path) -> None:
    """KERNEL_FILE took only names ending in .npy: a GeoTIFF got QGIS's "Incorrect parameter value for KERNEL_FILE"
    where the command line says what the file is, and an array saved under another name was refused."""
    source = crop(str(tmp_path / "in.tif"), 32)
    parameters = {"INPUT": source, "SCALE": 2, "OUTPUT": str(tmp_path / "low.tif")}
    assert check("degrade", {**parameters, "KERNEL_FILE": source}) == (
        False, f"kernel file {source} is not a NumPy array file (.npy as numpy.save writes)"
    )
    with open(tmp_path / "delta.kernel", "wb") as file:
        np.save(file, np.pad(np.ones((1, 1)), 1))  # numpy.save adds .npy to a name, not to an open file
    assert check("degrade", {**parameters, "KERNEL_FILE": str(tmp_path / "delta.kernel")}) == (True, "")


def test_degrade_extent_is_enlarged_to_whole_blocks_as_its_help_and_log_say(tmp_path) -> None:
    """Degrade's help and settings log said the extent was enlarged to whole input pixels; at ×3 it starts on
    a whole 3 × 3 block counted from the raster's corner (x 444010 → 443960, not the pixel edge 444000)."""
    source = crop(str(tmp_path / "in.tif"), 96)
    x0, y0 = grid_info(source).transform[2], grid_info(source).transform[5]
    out = str(tmp_path / "low.tif")
    feedback = QgsProcessingFeedback()
    run("degrade", {"INPUT": source, "SCALE": 3, "EXTENT": f"{x0 + 290},{x0 + 890},{y0 - 1410},{y0 - 810} [EPSG:32618]",
                    "OUTPUT": out}, feedback)
    assert grid_info(out).transform[2] == x0 + 12 * 20  # column 12: block 4, where whole pixels would start at 14
    assert "(enlarged to whole 3 × 3 pixel blocks counted from the raster's corner)" in feedback.textLog()
    instance = QgsApplication.processingRegistry().createAlgorithmById("internal_sr:degrade")
    assert "enlarged to whole scale × scale blocks of input pixels counted from the raster's corner" in (
        instance.parameterDefinition("EXTENT").help()
    )


def test_a_crs_set_on_the_layer_in_qgis_is_the_one_used(tmp_path) -> None:
    """A CRS set on the layer in QGIS replaces the file's, as QGIS shows it: the extent is read in it and
    the output carries it (the extent used to be transformed into the layer's CRS and then matched against
    the file's coordinates as if in the file's); a file without a CRS that QGIS gave one gets it too."""
    source = crop(str(tmp_path / "in.tif"), 32)  # EPSG:32618, 20 m pixels
    layer = QgsRasterLayer(source, "in")
    layer.setCrs(QgsCoordinateReferenceSystem("EPSG:32617"))
    x0, y0 = grid_info(source).transform[2], grid_info(source).transform[5]
    extent = f"{x0 + 80},{x0 + 240},{y0 - 400},{y0 - 160} [EPSG:32617]"  # columns 4–12, rows 8–20
    out = str(tmp_path / "assigned.tif")
    run("degrade", {"INPUT": layer, "SCALE": 2, "EXTENT": extent, "OUTPUT": out})
    got = grid_info(out)
    assert got.crs == "EPSG:32617" and (got.width, got.height) == (4, 6)
    assert got.transform == (40.0, 0.0, x0 + 80, 0.0, -40.0, y0 - 160)
    with rasterio.open(source) as src:
        profile, data = src.profile, src.read()
    profile.update(crs=None)
    bare = str(tmp_path / "bare.tif")
    with rasterio.open(bare, "w", **profile) as dst:
        dst.write(data)
    layer = QgsRasterLayer(bare, "bare")
    layer.setCrs(QgsCoordinateReferenceSystem("EPSG:32618"))
    run("degrade", {"INPUT": layer, "SCALE": 2, "OUTPUT": str(tmp_path / "bare_low.tif")})
    assert grid_info(str(tmp_path / "bare_low.tif")).crs == "EPSG:32618"
    custom = QgsCoordinateReferenceSystem.fromProj("+proj=tmerc +lat_0=0 +lon_0=-75.5 +k=0.9996 +x_0=500000 +y_0=0 +ellps=WGS84 +units=m")
    assert custom.isValid() and not custom.authid().startswith("EPSG:")  # a CRS without a code: sent as WKT
    layer.setCrs(custom)
    run("degrade", {"INPUT": layer, "SCALE": 2, "OUTPUT": str(tmp_path / "custom_low.tif")})
    with rasterio.open(str(tmp_path / "custom_low.tif")) as dst:
        assert dst.crs.to_dict()["lon_0"] == -75.5


def test_an_extent_in_a_crs_on_a_raster_without_one_is_refused_not_read_as_its_coordinates(tmp_path, empty_project) -> None:
    """An extent given in EPSG:4326 on a raster without a CRS was read as the raster's own coordinates (QGIS hands it
    over untransformed), then said not to overlap it. It is refused in one line; an extent without a CRS, or in the
    project's (as the map draws such a raster), is the raster's coordinates as before."""
    from affine import Affine

    x0, y0 = 300000.0, 5800000.0
    bare = write_raster(str(tmp_path / "bare.tif"), read(crop(str(tmp_path / "in.tif"), 32)), crs=None,
                        transform=Affine(20.0, 0.0, x0, 0.0, -20.0, y0))
    layer = QgsRasterLayer(bare, "bare")
    assert not layer.crs().isValid()
    out = str(tmp_path / "low.tif")
    with pytest.raises(QgsProcessingException) as error:
        run("degrade", {"INPUT": layer, "SCALE": 2, "EXTENT": "12.525,12.535,52.499,52.504 [EPSG:4326]", "OUTPUT": out})
    assert user_message(error.value) == (
        "The input raster bare has no CRS, so an extent in EPSG:4326 cannot be placed on it: give the extent in the "
        "raster's own coordinates (without a CRS), or assign the raster's CRS (in QGIS: Layer Properties ▸ Source)")
    assert not os.path.exists(out)
    columns_4_to_12 = f"{x0 + 80},{x0 + 240},{y0 - 400},{y0 - 160}"  # rows 8–20
    empty_project.setCrs(QgsCoordinateReferenceSystem("EPSG:32633"))
    for extent in (columns_4_to_12, f"{columns_4_to_12} [EPSG:32633]"):
        run("degrade", {"INPUT": layer, "SCALE": 2, "EXTENT": extent, "OUTPUT": out})
        got = grid_info(out)
        assert (got.width, got.height) == (4, 6) and got.transform == (40.0, 0.0, x0 + 80, 0.0, -40.0, y0 - 160)


@pytest.mark.parametrize(("algorithm", "values", "kernels"), [
    ("degrade", {"KERNEL": "bicubic"}, "bicubic"),
    ("degrade", {"KERNEL": "gaussian", "KERNEL_FILE": "KERNEL"}, "{kernel}"),
    ("guided_dip", {"KERNEL": "lanczos3", "GUIDE_KERNEL": "bicubic"}, "lanczos3 / bicubic"),
    ("guided_dip", {"KERNEL": "bicubic", "GUIDE_KERNEL": "gaussian"}, None),
])
def test_a_sigma_that_no_kernel_takes_is_warned_of(tmp_path, algorithm, values, kernels) -> None:
    """SIGMA 3.0 with KERNEL bicubic was ignored without a word: the log says so; not where a gaussian kernel (guided
    DIP's guide kernel too) takes it. Guided DIP is cancelled at its first step: the line is written by then."""
    source = crop(str(tmp_path / "in.tif"), 64)
    kernel = str(tmp_path / "delta.npy")
    np.save(kernel, np.pad([[1.0]], 1))
    parameters = {"INPUT": source, "SCALE": 2, "SIGMA": 3.0, **FAST, "OUTPUT": str(tmp_path / "out.tif")}
    parameters |= {key: kernel if value == "KERNEL" else value for key, value in values.items()}
    feedback = CancelAfter(polls=0 if algorithm == "guided_dip" else 10**6)
    if algorithm == "guided_dip":
        from affine import Affine

        pixels = np.random.default_rng(0).integers(1000, 3000, (1, 128, 128)).astype(np.uint16)
        parameters["INPUT"] = write_raster(str(tmp_path / "t20.tif"), pixels[:, ::2, ::2].copy(),
                                           transform=Affine(20.0, 0, 300000.0, 0, -20.0, 5800000.0))
        parameters["GUIDE"] = write_raster(str(tmp_path / "g10.tif"), pixels, transform=Affine(10.0, 0, 300000.0, 0, -10.0, 5800000.0))
        with pytest.raises(QgsProcessingException):
            run(algorithm, parameters, feedback)
    else:
        run(algorithm, parameters, feedback)
    warnings = [line for line in feedback.textLog().splitlines() if "SIGMA" in line]
    if kernels is None:
        assert warnings == []
    else:
        assert warnings == [f"warning: Gaussian sigma (SIGMA) 3 is ignored: it is the width of the 'gaussian' kernel only, "
                            f"and this run's kernel is {kernels.format(kernel=kernel)}"]


def test_model_degrade_then_dip_returns_to_the_input_grid(tmp_path) -> None:
    import processing

    source = georeferenced_10m(str(tmp_path / "s2_10m.tif"))  # 128 → 64 → 128 pixels
    model = raster_model("degrade_then_dip")
    raster = QgsProcessingModelChildParameterSource.fromModelParameter("raster")
    add_child(model, "degrade", {"INPUT": raster}, {"BANDS": [3], "SCALE": 2})
    degraded = QgsProcessingModelChildParameterSource.fromChildOutput("degrade", "OUTPUT")
    add_child(model, "dip", {"INPUT": degraded}, {"SCALE": 2, **FAST}, ("restored", "Restored"))

    destination = [p.name() for p in model.destinationParameterDefinitions()]
    assert destination == ["dip:restored"]
    out = str(tmp_path / "restored.tif")
    result = processing.run(model, {"raster": source, "dip:restored": out})
    assert result["dip:restored"] == out
    src, dst = grid_info(source), grid_info(out)
    assert (dst.width, dst.height, dst.transform, dst.crs) == (src.width, src.height, src.transform, src.crs)
    assert dst.descriptions == ("B2",)
    assert dst.means[0] == pytest.approx(src.means[2], rel=0.03)


@pytest.mark.parametrize(("values", "refusal"), [
    ({"SCALE": 2.5}, "Scale factor (SCALE) must be an integer, got 2.5"),
    ({"SCALE": 2, "BANDS": [1], "NODATA": True}, "{input} has no valid pixels (everything is nodata): check its nodata value "
     "(0); where that value is data, remove it with gdal_edit.py -unsetnodata {input}"),
], ids=["checked-values", "run"])
def test_a_model_steps_refusal_reaches_the_models_feedback(tmp_path, values, refusal) -> None:
    """A model runs its steps without their ``checkParameterValues`` (QGIS 3.22): a SCALE of 2.5 (from a model input,
    or an expression) ran as ×2. It is refused as the step is prepared now; that refusal, as one raised while the step
    runs, reaches the model's feedback (the model dialog's log, in red). What the model raises is QGIS's own "Error
    encountered while running STEP": the model builds it from the step's description alone."""
    import processing

    data = read(georeferenced_10m(str(tmp_path / "s2_10m.tif")))[:1]
    if values.pop("NODATA", False):
        data[:] = 0
    source = write_raster(str(tmp_path / "in.tif"), data, nodata=0)
    model = raster_model("degrade_step")
    add_child(model, "degrade", {"INPUT": QgsProcessingModelChildParameterSource.fromModelParameter("raster")}, values,
              ("low", "Low"))
    model.childAlgorithm("degrade").setDescription("Degrade step")
    feedback = QgsProcessingFeedback()
    with pytest.raises(QgsProcessingException, match="^Error encountered while running Degrade step$"):
        processing.run(model, {"raster": source, "degrade:low": str(tmp_path / "low.tif")}, feedback=feedback)
    assert refusal.format(input=source) in feedback.textLog().splitlines()
    assert sorted(os.listdir(tmp_path)) == ["in.tif", "s2_10m.tif"]


def run_in_a_task(
    algorithm: str, parameters: dict, feedback: QgsProcessingFeedback | None = None
) -> tuple[bool, QgsProcessingContext]:
    """Run as the toolbox's dialog does: a ``QgsProcessingAlgRunnerTask`` prepares the algorithm on this thread
    and processes it on a worker thread in a context of QGIS's own, whose results it then moves into the
    returned context (where the dialog finds the layers to load)."""
    context, feedback = QgsProcessingContext(), feedback or QgsProcessingFeedback()
    context.setProject(QgsProject.instance())
    instance = QgsApplication.processingRegistry().createAlgorithmById(f"internal_sr:{algorithm}")
    executed: list[bool] = []
    task = QgsProcessingAlgRunnerTask(instance, parameters, context, feedback)
    if task.isCanceled():  # prepareAlgorithm failed: the task never runs (the toolbox's dialog says so)
        return False, context
    task.executed.connect(lambda ok, _results: executed.append(ok))
    QgsApplication.taskManager().addTask(task)
    deadline = time.monotonic() + 120
    while not executed and time.monotonic() < deadline:
        QgsApplication.processEvents()
        time.sleep(0.02)
    return executed == [True], context


def test_a_run_into_an_output_another_run_is_writing_is_refused_in_one_line(crop64: str, tmp_path) -> None:
    """Two toolbox runs into one output (background tasks of one QGIS): the second is refused in one line naming the
    output, instead of replacing the first's file; the first's output stands, and no claim is left."""
    out = str(tmp_path / "low.tif")
    with degrading(crop64, out):
        with pytest.raises(QgsProcessingException) as error:
            run("degrade", {"INPUT": crop64, "SCALE": 2, "KERNEL": "gaussian", "OUTPUT": out})
    assert user_message(error.value) == f"another run in this process is writing {out}: wait for it to end or choose another output"
    assert os.path.isfile(out) and leftovers(str(tmp_path)) == []


@pytest.mark.parametrize(("algorithm", "extra"), [("degrade", {}), ("dip", FAST)])
def test_toolbox_runs_load_their_output_on_completion(crop64: str, tmp_path, empty_project, algorithm, extra) -> None:
    """"Open output file after running": the output layer is still to load once a worker thread has run the
    algorithm (QGIS replaced the preparing context's layers to load with the worker context's empty list)."""
    import processing

    out = str(tmp_path / "task.tif")
    ok, context = run_in_a_task(
        algorithm, {"INPUT": crop64, "SCALE": 2, **extra, "OUTPUT": QgsProcessingOutputLayerDefinition(out, empty_project)}
    )
    assert ok and os.path.isfile(out)
    assert list(context.layersToLoadOnCompletion()) == [out]
    details = context.layerToLoadOnCompletionDetails(out)
    assert (details.project, details.outputName) == (empty_project, "OUTPUT")
    assert details.name == {"degrade": "s2_20m_64 degraded ÷2", "dip": "s2_20m_64 DIP ×2"}[algorithm]  # the input file's name
    loaded = str(tmp_path / "script.tif")  # a script's run in this thread loads its output too
    result = processing.runAndLoadResults(f"internal_sr:{algorithm}", {"INPUT": crop64, "SCALE": 2, **extra, "OUTPUT": loaded})
    assert result["OUTPUT"] == loaded
    assert [layer.source() for layer in empty_project.mapLayers().values()] == [loaded]


def test_threads_are_set_in_the_thread_that_runs_logged_and_given_back(crop64: str, tmp_path, monkeypatch) -> None:
    """Processing ran torch on all cores with no setting: on a busy machine threads that share a core spin waiting
    for each other (README, *Run times*: 453 s with 2 threads, 112–118 s with 1). Every algorithm running torch takes an
    advanced THREADS (0: automatic, PyTorch's choice); a toolbox run sets it in its worker thread (the engine's own line
    counts them there), logs it with the settings, warns after the engine's device line when the CPUs look busy, and
    gives the count back (QGIS's other threads and plugins share the process)."""
    import threading

    import torch

    from internal_sr.algorithms.base import _advanced_flag

    for algorithm in QgsApplication.processingRegistry().providerById("internal_sr").algorithms():
        threads = algorithm.parameterDefinition("THREADS")
        assert threads is not None and threads.defaultValue() == 0 and threads.flags() & _advanced_flag(), algorithm.id()
    before = torch.get_num_threads()
    wanted = before + 1  # not PyTorch's count, and at least 2
    monkeypatch.setattr(os, "getloadavg", lambda: (1000.0, 1000.0, 1000.0))
    feedback = QgsProcessingFeedback()
    parameters = {"INPUT": crop64, "BANDS": [1], "SCALE": 2, **FAST, "THREADS": wanted, "OUTPUT": str(tmp_path / "t.tif")}
    ok, _context = run_in_a_task("dip", parameters, feedback)
    log = feedback.textLog()
    assert ok and f"\nCPU threads: {wanted}\n" in log and f"on device cpu ({wanted} threads)" in log
    lines = log.splitlines()
    device = next(n for n, line in enumerate(lines) if f"on device cpu ({wanted} threads)" in line)
    assert lines[device + 1] == (f"warning: {wanted} PyTorch threads but no idle core (load 1000.0 on {os.cpu_count()} "
                                 "cores): threads that share a core with other work wait for each other and can make the "
                                 "run many times slower; if it is slow, set CPU threads (THREADS) to 1")
    fresh: list[int] = []
    later = threading.Thread(target=lambda: fresh.append(torch.get_num_threads()))
    later.start()
    later.join()
    assert torch.get_num_threads() == before and fresh == [before]
    monkeypatch.undo()
    feedback = QgsProcessingFeedback()
    run("degrade", {"INPUT": crop64, "SCALE": 2, "OUTPUT": str(tmp_path / "low.tif")}, feedback)
    assert f"\nCPU threads: {before} (automatic: PyTorch's choice)\n" in feedback.textLog()


class CancelAfter(QgsProcessingFeedback):
    """A feedback whose user presses Cancel after the engine has polled it ``polls`` times."""

    def __init__(self, polls: int) -> None:
        super().__init__()
        self.polls = polls
        self.count = 0

    def isCanceled(self) -> bool:  # noqa: N802
        self.count += 1
        if self.count > self.polls:
            self.cancel()
        return super().isCanceled()


def test_cancel_stops_cleanly_and_writes_nothing(crop64: str, tmp_path) -> None:
    out = str(tmp_path / "cancelled.tif")
    feedback = CancelAfter(polls=2)
    with pytest.raises(QgsProcessingException) as error:
        run("dip", {"INPUT": crop64, "BANDS": [1], "SCALE": 2, "ITERATIONS": 500, "DEVICE": "cpu", "OUTPUT": out}, feedback)
    assert user_message(error.value) == "Cancelled: nothing was written"  # a script sees an error, not {} without OUTPUT
    assert 3 <= feedback.count <= 6  # stopped at the first poll after the Cancel, a few steps in
    assert not os.path.exists(out)
    assert leftovers(str(tmp_path)) == []


class CancelAtTheEnd(QgsProcessingFeedback):
    """A feedback whose user presses Cancel as the progress bar reaches 100 %."""

    def __init__(self) -> None:
        super().__init__()
        self.progressChanged.connect(self._progressed)

    def _progressed(self, value: float) -> None:
        if value >= 100 and not self.isCanceled():
            self.cancel()


def files_in(folder: Path) -> dict[str, tuple[int, bytes]]:
    """Every file of ``folder`` by name: its inode (a file replaced by a rename has another) and its bytes."""
    return {path.name: (path.stat().st_ino, path.read_bytes()) for path in sorted(folder.iterdir())}


#: Per algorithm that writes files: tiny parameters (the output folder's names) and what changes between two runs,
#: so that a second run would write other bytes.
WRITING_RUNS = {
    "degrade": ({"SCALE": 2, "OUTPUT": "out.tif"}, {"KERNEL": ["bicubic", "gaussian"]}),
    "dip": ({"BANDS": [1], "SCALE": 2, **FAST, "OUTPUT": "out.tif"}, {"SEED": [1, 2]}),
    "knitwork": ({"BANDS": [1], "SCALE": 2, **FAST, "OUTPUT": "out.tif"}, {"SEED": [1, 2]}),
    "guided_dip": ({"KERNEL": "bicubic", "GUIDE_KERNEL": "bicubic", **FAST, "OUTPUT": "out.tif"}, {"SEED": [1, 2]}),
    "kernelgan": ({"BANDS": [1], "SCALE": 2, "ITERATIONS": 10, "DEVICE": "cpu", "OUTPUT": "k.npy", "OUTPUT_HTML": "k.html"},
                  {"SEED": [1, 2]}),
    "evaluate": ({"METHOD": "dip", "SCALE": 2, **FAST, "TILE_SIZE": 32, "OVERLAP": 8, "OUTPUT": "eval.html",
                  "OUTPUT_JSON": "eval.json"}, {"SEED": [1, 2]}),
}


def writing_run(algorithm: str, crop64: str, folder: Path) -> tuple[dict, Path]:
    """The tiny parameters of ``WRITING_RUNS[algorithm]`` on ``crop64`` (guided DIP: on a 32 × 32 target under a
    64 × 64 guide written in ``folder``), writing into the new folder ``folder/out``, which is returned too."""
    out = folder / "out"
    out.mkdir()
    parameters = {name: str(out / value) if name.startswith("OUTPUT") else value for name, value in WRITING_RUNS[algorithm][0].items()}
    parameters["INPUT"] = crop64
    if algorithm == "guided_dip":
        from affine import Affine

        pixels = np.random.default_rng(0).integers(1000, 3000, (1, 64, 64)).astype(np.uint16)
        parameters["INPUT"] = write_raster(str(folder / "t20.tif"), pixels[:, ::2, ::2].copy(),
                                           transform=Affine(20.0, 0, 300000.0, 0, -20.0, 5800000.0))
        parameters["GUIDE"] = write_raster(str(folder / "g10.tif"), pixels, transform=Affine(10.0, 0, 300000.0, 0, -10.0, 5800000.0))
    return parameters, out


@pytest.mark.parametrize("algorithm", sorted(WRITING_RUNS))
def test_a_cancel_once_the_bar_is_full_still_writes_nothing(crop64: str, tmp_path, algorithm) -> None:
    """The bar reaches 100 % after the last optimisation step; back-projection, blending, writing, the loss curve
    and the report come after. A Cancel then was ignored: the run ended "Done" and replaced the earlier output. Until
    the run's files move into place a Cancel stops it, every file of the earlier run stays as it was, and the
    run ends with the usual line."""
    parameters, out = writing_run(algorithm, crop64, tmp_path)
    (name, (first, second)), = WRITING_RUNS[algorithm][1].items()
    run(algorithm, {**parameters, name: first})
    earlier = files_in(out)
    feedback = CancelAtTheEnd()
    with pytest.raises(QgsProcessingException) as error:
        run(algorithm, {**parameters, name: second}, feedback)
    assert user_message(error.value) == "Cancelled: nothing was written"
    assert feedback.isCanceled() and "Done on" not in feedback.textLog()
    assert files_in(out) == earlier  # no temporary file left either


@pytest.mark.parametrize(("algorithm", "name"), [
    ("degrade", "field degraded ÷2"), ("dip", "field DIP ×2"), ("knitwork", "field Knitworks ×2"),
    ("guided_dip", "field guided DIP ×2"),
])
def test_a_loaded_output_is_named_after_its_input_method_and_scale(crop64: str, tmp_path, empty_project, algorithm, name) -> None:
    """``processing.runAndLoadResults`` (and the toolbox) added every result as "Super-resolved raster" (the OUTPUT
    parameter's description) where QGIS does not take the file's name (a file in the temporary folder, as here, or a
    temporary output). The layer is named as the dialog names it: the input layer's name, the method and the scale."""
    import processing

    parameters, _out = writing_run(algorithm, crop64, tmp_path)
    field = empty_project.addMapLayer(QgsRasterLayer(parameters["INPUT"], "field", "gdal"))
    for output in (parameters["OUTPUT"], "TEMPORARY_OUTPUT"):
        processing.runAndLoadResults(f"internal_sr:{algorithm}", {**parameters, "INPUT": field.id(), "OUTPUT": output})
    loaded = [layer for layer in empty_project.mapLayers().values() if layer is not field]
    assert [layer.name() for layer in loaded] == [name, name]
    assert parameters["OUTPUT"] in [layer.source() for layer in loaded]


@pytest.mark.parametrize("algorithm", ["dip", "guided_dip", "evaluate dip", "evaluate guided"])
def test_the_settings_log_gives_the_tiles_a_wide_kernel_grows(tmp_path, algorithm) -> None:
    """gaussian:6 at ×2 reaches 18 input (target) pixels past a tile's side: on 140 × 140 pixels the default tiles grow
    from 128 px with 16 px overlap to 144 px with 36 px (``core.tiling.kernel_tiles``). The settings block gave the
    tiles asked only, contradicting the engine's line after it, and evaluate's gave none, although its method tiles the
    degraded image (here 280 × 280 pixels degraded to 140 × 140) as the others do. Cancelled at the first step: the
    lines are written by then."""
    from affine import Affine

    pixels = np.random.default_rng(0).integers(1000, 3000, (1, 560, 560)).astype(np.uint16)
    step = 2 if algorithm.startswith("evaluate") else 4  # evaluate degrades its rasters by the scale first
    target = write_raster(str(tmp_path / "t20.tif"), pixels[:, ::step, ::step].copy(),
                          transform=Affine(20.0, 0, 300000.0, 0, -20.0, 5800000.0))
    guide = write_raster(str(tmp_path / "g10.tif"), pixels[:, :: step // 2, :: step // 2].copy(),
                         transform=Affine(10.0, 0, 300000.0, 0, -10.0, 5800000.0))
    parameters = {"INPUT": target, "SCALE": 2, "KERNEL": "gaussian", "SIGMA": 6.0, **FAST, "OUTPUT": str(tmp_path / "out.tif")}
    if algorithm.startswith("evaluate"):
        method = algorithm.split()[1]
        parameters |= {"METHOD": method, "OUTPUT": str(tmp_path / "report.html")}
        if method == "guided":
            parameters |= {"GUIDE": guide, "GUIDE_KERNEL": "gaussian"}
        algorithm = "evaluate"
    elif algorithm == "guided_dip":
        parameters |= {"GUIDE": guide, "GUIDE_KERNEL": "gaussian"}
    feedback = CancelAfter(polls=0)
    with pytest.raises(QgsProcessingException):
        run(algorithm, parameters, feedback)
    log = feedback.textLog()
    assert "Tiles: 128 px with 16 px overlap asked → 1 tile of 144 px with 36 px overlap used\n" in log
    assert "1 tile of 144 px with 36 px overlap, seed 1" in log  # the engine's own line agrees


def test_the_log_counts_the_tiles_and_each_step_names_its_tile(tmp_path) -> None:
    """The settings gave the tiles' size without their count, and the steps' progress text (which the Processing
    dialog writes to its log) said ``DIP: step 1/1, loss …`` once per tile, never which tile of how many."""
    source = crop(str(tmp_path / "in.tif"), 48)  # 2 × 2 tiles of 32 px overlapping by 4
    feedback = recording_feedback()
    run("dip", {"INPUT": source, "BANDS": [1], "SCALE": 2, **FAST, "ITERATIONS": 2, "TILE_SIZE": 32, "OVERLAP": 4,
                "OUTPUT": str(tmp_path / "out.tif")}, feedback)
    log = feedback.textLog()
    assert "Tiles: 4 tiles of 32 px with 4 px overlap\n" in log
    assert "up to 2 steps per tile, 4 tiles of 32 px with 4 px overlap, seed 1" in log
    steps = [text for text in feedback.texts if text.startswith("DIP:")]
    assert steps[0] == "DIP: tile 1/4, step 1/2"  # the first step's text; later ones at most every 2 s
    assert all(re.match(r"DIP: tile [1-4]/4, step [12]/2", text) for text in steps)


def test_non_raster_input_is_a_one_line_error(tmp_path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("this is not a raster\n")
    with pytest.raises(QgsProcessingException) as error:
        run("dip", {"INPUT": str(notes), "SCALE": 2, "OUTPUT": str(tmp_path / "out.tif")})
    message = user_message(error.value)
    assert "\n" not in message and "not a raster" in message and "notes.txt" in message


def test_band_out_of_range_is_a_one_line_error(crop64: str, tmp_path) -> None:
    out = str(tmp_path / "out.tif")
    with pytest.raises(QgsProcessingException) as error:
        run("degrade", {"INPUT": crop64, "BANDS": [2, 7], "SCALE": 2, "OUTPUT": out})
    assert user_message(error.value) == "Band 7 is out of range: s2_20m_64 has bands 1 to 6"
    assert not os.path.exists(out)


def test_bands_typed_as_text_take_semicolons_commas_or_spaces(crop64: str, tmp_path) -> None:
    for text in ("2;5", "2,5", " 2, 5 "):
        out = str(tmp_path / f"out{len(text)}.tif")
        run("degrade", {"INPUT": crop64, "BANDS": text, "SCALE": 2, "OUTPUT": out})
        assert grid_info(out).descriptions == ("B06", "B11")
    ok, message = check("degrade", {"INPUT": crop64, "BANDS": "two", "SCALE": 2, "OUTPUT": str(tmp_path / "x.tif")})
    assert not ok and message == "Bands (BANDS) must be whole band numbers such as 1;2;3, got 'two'"


@pytest.mark.parametrize(("bands", "shown"), [([2.9], "2.9"), ([1, 1.5], "1.5"), ("1;1.5", "'1.5'"), (2.5, "2.5"), ("1;²", "'²'")])
def test_fractional_band_numbers_are_refused_not_rounded(crop64: str, tmp_path, bands, shown) -> None:
    """QGIS's band parameter takes 2.9 and reads it as band 2 or 3; a run on a band the user did not mean is refused."""
    out = str(tmp_path / "out.tif")
    with pytest.raises(QgsProcessingException) as error:
        run("degrade", {"INPUT": crop64, "BANDS": bands, "SCALE": 2, "OUTPUT": out})
    assert user_message(error.value) == f"Bands (BANDS) must be whole band numbers such as 1;2;3, got {shown}"
    assert not os.path.exists(out)
    run("degrade", {"INPUT": crop64, "BANDS": [2.0], "SCALE": 2, "OUTPUT": out})  # a whole number given as a float
    assert grid_info(out).descriptions == ("B06",)


def test_scale_below_two_is_a_one_line_error(crop64: str, tmp_path) -> None:
    with pytest.raises(QgsProcessingException) as error:
        run("dip", {"INPUT": crop64, "SCALE": 1, "OUTPUT": str(tmp_path / "out.tif")})
    assert user_message(error.value) == "Scale factor (SCALE) must be at least 2, got 1"


def test_integers_beyond_32_bits_are_refused_not_read_as_zero(crop64: str, tmp_path) -> None:
    """QGIS reads an integer parameter as a C int: SEED 2**33 passed the check and ran with seed 0, TILE_SIZE 2**32
    was refused as "tile size 0". They are refused as they are given (the command line refuses that seed too,
    test_cli)."""
    parameters = {"INPUT": crop64, "SCALE": 2, **FAST, "OUTPUT": str(tmp_path / "out.tif")}
    assert check("dip", {**parameters, "SEED": 2**33}) == (
        False, "Random seed (SEED) must be at most 2147483647, got 8589934592"
    )
    assert check("dip", {**parameters, "TILE_SIZE": 2**32}) == (
        False, "Tile size (input pixels) (TILE_SIZE) must be at most 2147483647, got 4294967296"
    )
    assert check("dip", {**parameters, "SEED": 2**31 - 1}) == (True, "")
    assert check("dip", {**parameters, "SEED": float("inf")}) == (False, "Random seed (SEED) must be an integer, got inf")


@pytest.mark.parametrize(
    ("parameters", "expected"),
    [
        ({"TILE_SIZE": 20, "OVERLAP": 16}, "tile size 20 is too small for Deep Image Prior (DIP) (at least 32 input pixels at "
         "×2 with depth 5) and for the tile overlap of 16 pixels, the default, which must be less than half the tile: use Tile "
         "size (TILE_SIZE) 33 or more"),
        ({"OUTPUT": "MISSING_FOLDER"}, "does not exist"),  # refused by the engine at run time
    ],
)
def test_engine_input_errors_become_one_line_processing_errors(crop64: str, tmp_path, parameters, expected) -> None:
    if parameters.get("OUTPUT") == "MISSING_FOLDER":
        parameters = {"OUTPUT": str(tmp_path / "missing" / "out.tif")}
    with pytest.raises(QgsProcessingException) as error:
        run("dip", {"INPUT": crop64, "SCALE": 2, **FAST, "OUTPUT": str(tmp_path / "out.tif"), **parameters})
    message = user_message(error.value)
    assert "\n" not in message and expected in message


def test_gdal_dataset_names_are_inputs_as_on_the_command_line(crop64: str, tmp_path) -> None:
    """``/vsizip/…`` (and ``NETCDF:"…":band``) strings are no file QGIS loads by itself: Processing opens them
    with GDAL, extent included, instead of saying they do not exist."""
    import zipfile

    archive = tmp_path / "scene.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.write(crop64, "inner/crop.tif")
    name = f"/vsizip/{archive}/inner/crop.tif"
    out = str(tmp_path / "lr.tif")
    whole = grid_info(crop64)
    pixel, xmin, ymax = whole.transform[0], whole.transform[2], whole.transform[5]
    extent = f"{xmin},{xmin + 20 * pixel},{ymax - 20 * pixel},{ymax} [{whole.crs}]"
    run("degrade", {"INPUT": name, "BANDS": [2], "SCALE": 2, "EXTENT": extent, "OUTPUT": out})
    written = grid_info(out)
    assert (written.width, written.height, written.descriptions) == (10, 10, ("B06",))
    assert (written.transform[2], written.transform[5]) == (xmin, ymax)
    ok, message = check("degrade", {"INPUT": f"/vsizip/{archive}/missing.tif", "SCALE": 2, "OUTPUT": out})
    assert not ok and message.endswith("does not exist (neither a file, a layer of the project nor a dataset GDAL opens)")


def test_an_in_memory_layer_of_qgis_is_refused_as_such(crop64: str, tmp_path) -> None:
    """A ``/vsimem/`` dataset lives in QGIS's GDAL; the engine reads with rasterio's, which does not see it."""
    from osgeo import gdal

    from internal_sr.core.raster import engine_opens

    name = "/vsimem/internal_sr_test/scene.tif"
    gdal.Translate(name, crop64)
    try:
        if engine_opens(name):
            pytest.skip("rasterio uses QGIS's GDAL here, and reads its in-memory datasets")
        layer = QgsRasterLayer(name, "scene")
        assert layer.isValid()
        out = str(tmp_path / "out.tif")
        with pytest.raises(QgsProcessingException) as error:
            run("degrade", {"INPUT": layer, "SCALE": 2, "OUTPUT": out})
        assert user_message(error.value) == (
            f"Input raster scene ({name}) is an in-memory dataset of QGIS, which the engine cannot see: save it to a "
            "file first (Export ▸ Save As… in the layer's context menu)"
        )
        assert not os.path.exists(out)
    finally:
        gdal.Unlink(name)


def test_a_format_only_qgis_reads_is_refused_naming_the_two_gdals(crop64: str, tmp_path) -> None:
    """A file QGIS's GDAL opens with a driver that rasterio's GDAL lacks (HDF4 or FITS on Debian 12's QGIS
    against rasterio's wheel) is a raster to the user: the refusal says whose GDAL cannot read it."""
    from osgeo import gdal

    from internal_sr.core.raster import ENGINE_GDAL, engine_has_driver

    drivers = [name for name in ("HDF4Image", "FITS") if gdal.GetDriverByName(name) and not engine_has_driver(name)]
    if not drivers:
        pytest.skip("QGIS's GDAL writes no format here that rasterio's GDAL cannot read")
    path = str(tmp_path / "scene.hdf")
    gdal.Translate(path, crop64, format=drivers[0])
    out = str(tmp_path / "out.tif")
    with pytest.raises(QgsProcessingException) as error:
        run("degrade", {"INPUT": QgsRasterLayer(path, "scene"), "SCALE": 2, "OUTPUT": out})
    assert user_message(error.value) == (
        f"Input raster scene is a raster QGIS opens with its own GDAL ({drivers[0]} driver), but {ENGINE_GDAL} has no "
        "driver for it: export it to GeoTIFF first (Raster ▸ Conversion ▸ Translate)"
    )
    assert not os.path.exists(out)


def test_a_layer_with_gdal_open_options_is_refused_naming_them(crop64: str, tmp_path) -> None:
    """The engine opens the file without the layer's open options, which may change what is read: it says so."""
    layer = QgsRasterLayer(f"{crop64}|option:NUM_THREADS=2|option:GEOREF_SOURCES=INTERNAL", "scene")
    assert layer.isValid()
    ok, message = check("degrade", {"INPUT": layer, "SCALE": 2, "OUTPUT": str(tmp_path / "out.tif")})
    assert not ok and message == (
        f"Input raster scene is opened with the GDAL open options NUM_THREADS=2 GEOREF_SOURCES=INTERNAL, which the "
        f"engine does not apply: run on {crop64} itself, added without open options (Layer ▸ Add Layer ▸ Add Raster "
        "Layer, Options left empty)"
    )


def test_a_geopackage_table_chosen_by_open_option_is_named_as_the_engine_opens_it(tmp_path) -> None:
    """A raster table added with TABLE=…: the refusal advised running on the GeoPackage itself, which is refused in
    turn when it holds several tables; it names the table's dataset, which runs."""
    from affine import Affine

    gpkg = str(tmp_path / "two.gpkg")
    for table, append in (("first", "NO"), ("second", "YES")):
        with rasterio.open(gpkg, "w", driver="GPKG", width=32, height=32, count=1, dtype="uint8", crs="EPSG:32633",
                           transform=Affine(10, 0, 0, 0, -10, 320), RASTER_TABLE=table, APPEND_SUBDATASET=append) as dst:
            dst.write(np.full((1, 32, 32), len(table), "uint8"))
    layer = QgsRasterLayer(f"{gpkg}|option:TABLE=second", "second")
    assert layer.isValid()
    out = str(tmp_path / "out.tif")
    ok, message = check("degrade", {"INPUT": layer, "SCALE": 2, "OUTPUT": out})
    assert not ok and message == (
        f"Input raster second is opened with the GDAL open options TABLE=second, which the engine does not apply: run "
        f"on GPKG:{gpkg}:second itself, added without open options (Layer ▸ Add Layer ▸ Add Raster Layer, Options "
        "left empty)"
    )
    run("degrade", {"INPUT": f"GPKG:{gpkg}:second", "SCALE": 2, "OUTPUT": out})
    assert set(grid_info(out).means) == {len("second")}  # the table asked for (GDAL shows a grey table as RGB)


@pytest.mark.parametrize("options", ["", "|option:NUM_THREADS=2"], ids=["plain", "open options"])
def test_a_layer_whose_file_is_gone_is_said_to_be_missing_as_in_the_dialog(crop64: str, tmp_path, options) -> None:
    """A layer whose file was deleted since it was loaded: Processing said it was no file GDAL opens by name
    (and, with open options, named the options); the dialog and Processing now check in one order."""
    scene = crop(str(tmp_path / "scene.tif"), 48)
    target = QgsRasterLayer(scene + options, "gone")
    guide = QgsRasterLayer(crop(str(tmp_path / "guide.tif"), 48), "guide")
    assert target.isValid() and guide.isValid()
    os.remove(scene)
    out = str(tmp_path / "out.tif")
    with pytest.raises(QgsProcessingException) as error:
        run("degrade", {"INPUT": target, "SCALE": 2, "OUTPUT": out})
    assert user_message(error.value) == f"The input raster gone does not exist (any more): its file {scene} is missing."
    os.remove(guide.source())
    with pytest.raises(QgsProcessingException) as error:
        run("guided_dip", {"INPUT": QgsRasterLayer(crop(scene, 24), "target"), "GUIDE": guide, **FAST, "OUTPUT": out})
    assert user_message(error.value) == f"The guide raster guide does not exist (any more): its file {guide.source()} is missing."
    assert not os.path.exists(out)



def test_a_virtual_raster_whose_source_is_gone_is_refused_before_the_run(tmp_path) -> None:
    """GDAL opens a VRT whose source file was deleted and fails only when the pixels are read: the check passed,
    the run started and failed with "cannot be read, the file may be damaged or truncated"."""
    from osgeo import gdal

    source = crop(str(tmp_path / "tile.tif"), 32)
    vrt = str(tmp_path / "mosaic.vrt")
    gdal.BuildVRT(vrt, [source]).FlushCache()
    os.remove(source)
    layer = QgsRasterLayer(vrt, "mosaic", "gdal")
    assert layer.isValid()  # QGIS loads it too
    expected = f"input {vrt} reads {source}, which does not exist (any more): restore it or rebuild {vrt}"
    parameters = {"INPUT": layer, "SCALE": 2, "OUTPUT": str(tmp_path / "out.tif")}
    assert check("degrade", parameters) == (False, expected)
    with pytest.raises(QgsProcessingException) as raised:
        run("dip", {**parameters, **FAST})
    assert user_message(raised.value) == expected
    assert sorted(os.listdir(tmp_path)) == ["mosaic.vrt"]


def test_a_vector_style_layer_name_on_a_raster_file_is_named_as_such(tmp_path) -> None:
    """``file.gpkg|layername=table`` (how QGIS spells a vector layer of a file) was said not to exist although
    the file does: the error now names the spelling and GDAL's name of a raster table."""
    from osgeo import gdal

    gpkg = str(tmp_path / "rasters.gpkg")
    source = crop(str(tmp_path / "in.tif"), 32)
    gdal.Translate(gpkg, source, format="GPKG", bandList=[1], creationOptions=["RASTER_TABLE=b5"]).FlushCache()
    value = f"{gpkg}|layername=b5"
    assert check("degrade", {"INPUT": value, "SCALE": 2, "OUTPUT": str(tmp_path / "out.tif")}) == (False, (
        f"Input {value} is not a raster QGIS can open: '|layername=b5' chooses vector layers only; give the file "
        f"{gpkg} itself, or one raster in it by GDAL's name (e.g. GPKG:{gpkg}:TABLE)"
    ))
    result = run("degrade", {"INPUT": f"GPKG:{gpkg}:b5", "SCALE": 2, "OUTPUT": str(tmp_path / "out.tif")})
    assert grid_info(result["OUTPUT"]).width == 16  # the name the error gives is one the run takes


def test_a_project_layer_whose_file_went_missing_before_the_project_was_opened_is_named(tmp_path, empty_project) -> None:
    """QGIS keeps a layer whose file is missing when the project opens, unloaded: given as the layer, its ID or its
    name, the error said it was not a raster QGIS can open, or that no layer of the project has that name."""
    scene = crop(str(tmp_path / "scene.tif"), 32)
    empty_project.addMapLayer(QgsRasterLayer(scene, "scene", "gdal"))
    assert empty_project.write(str(tmp_path / "project.qgs"))
    os.remove(scene)
    empty_project.clear()
    assert empty_project.read(str(tmp_path / "project.qgs"))
    try:
        [layer] = empty_project.mapLayers().values()
        assert not layer.isValid()
        expected = f"The input raster scene does not exist (any more): its file {scene} is missing."
        for value in (layer, layer.id(), "scene"):
            assert check("degrade", {"INPUT": value, "SCALE": 2, "OUTPUT": str(tmp_path / "out.tif")}, empty_project) == (
                False, expected
            ), value
    finally:
        empty_project.clear()  # forgets the project file too, whose folder later tests would take as the home path

def test_a_named_pipe_is_refused_before_qgis_opens_it(tmp_path) -> None:
    """QGIS loading a FIFO as a layer would block for ever; the check names it instead."""
    pipe = str(tmp_path / "scene.tif")
    os.mkfifo(pipe)
    ok, message = check("degrade", {"INPUT": pipe, "SCALE": 2, "OUTPUT": str(tmp_path / "lr.tif")})
    assert not ok and message == f"input {pipe} is a named pipe, not a raster file"


def test_missing_dependencies_are_named_with_the_install_command(crop64: str, tmp_path, monkeypatch) -> None:
    from internal_sr.algorithms import base

    monkeypatch.setattr(base, "missing_dependencies", lambda: ["torch", "scikit-image"])
    with pytest.raises(QgsProcessingException) as error:
        run("degrade", {"INPUT": crop64, "SCALE": 2, "OUTPUT": str(tmp_path / "out.tif")})
    message = user_message(error.value)
    assert "\n" not in message and "torch, scikit-image" in message and 'pip install --upgrade "torch>=2.3" "scikit-image>=0.20"' in message


@pytest.mark.parametrize("method", ["dip", "knitwork"])
def test_step_window_reaches_the_run(crop64: str, tmp_path, method: str) -> None:
    """``STEP_WINDOW`` below 1 changes the run (steps on windows), on the same output grid."""
    outputs = {window: str(tmp_path / f"w{window}.tif") for window in (1.0, 0.5)}
    for window, out in outputs.items():
        run(method, {"INPUT": crop64, "BANDS": [1], "SCALE": 2, **FAST, "STEP_WINDOW": window, "OUTPUT": out})
    part_grid, whole_grid = grid_info(outputs[0.5]), grid_info(outputs[1.0])
    assert dataclasses.replace(part_grid, means=whole_grid.means) == whole_grid  # size, transform, CRS, dtype, band names
    with rasterio.open(outputs[0.5]) as part, rasterio.open(outputs[1.0]) as whole:
        assert (part.read() != whole.read()).any()


def test_help_and_parameters_for_analysts() -> None:
    from qgis.core import QgsApplication

    from internal_sr.core.config import DIPConfig, KnitworkConfig

    registry = QgsApplication.processingRegistry()
    dip = registry.algorithmById("internal_sr:dip")
    degrade = registry.algorithmById("internal_sr:degrade")
    assert dip.displayName() == "Super-resolve (Deep Image Prior)" and dip.group() == "Super-resolution"
    assert degrade.displayName() == "Degrade (blur and downsample)" and degrade.group() == "Super-resolution"
    assert [p.name() for p in dip.parameterDefinitions()] == [
        "INPUT", "BANDS", "EXTENT", "SCALE", "ITERATIONS", "KERNEL", "SIGMA", "KERNEL_FILE", "STEP_WINDOW",
        "DEVICE", "THREADS", "FLOAT32", "SEED", "TILE_SIZE", "OVERLAP", "WARM_START", "OUTPUT",
    ]
    knitwork = registry.algorithmById("internal_sr:knitwork")
    assert [p.name() for p in knitwork.parameterDefinitions()] == [p.name() for p in dip.parameterDefinitions()]
    assert dip.parameterDefinition("STEP_WINDOW").defaultValue() == DIPConfig.step_window
    assert knitwork.parameterDefinition("STEP_WINDOW").defaultValue() == KnitworkConfig.step_window
    assert [p.name() for p in degrade.parameterDefinitions()] == [
        "INPUT", "BANDS", "EXTENT", "SCALE", "KERNEL", "SIGMA", "KERNEL_FILE", "THREADS", "OUTPUT",
    ]
    assert dip.parameterDefinition("SCALE").defaultValue() == 2 and dip.parameterDefinition("SCALE").minimum() == 2
    assert dip.parameterDefinition("SCALE").maximum() == 16  # as the engine's MAX_SCALE; degrading has no cap, as on the CLI
    assert degrade.parameterDefinition("SCALE").maximum() > 1000 and "coarsening" in degrade.shortHelpString()
    for algorithm in (dip, degrade):  # sigma is in low-resolution pixels: the input's for dip, the output's for degrade
        assert algorithm.parameterDefinition("SIGMA").description() == "Gaussian sigma (low-resolution pixels)"
    assert dip.parameterDefinition("TILE_SIZE").defaultValue() == 128
    assert dip.parameterDefinition("OVERLAP").defaultValue() == 16
    help_text = dip.shortHelpString()
    assert "CPU" in help_text and "GPU" in help_text and "minutes" in help_text
    for algorithm in registry.providerById("internal_sr").algorithms():  # outputs too: a model passes them on
        help_text = algorithm.shortHelpString()
        for parameter in algorithm.parameterDefinitions():
            assert f"<b>{parameter.description()}</b>" in help_text, (algorithm.id(), parameter.name())
        for output in algorithm.outputDefinitions():
            assert f"<b>{output.description()}</b>" in help_text, (algorithm.id(), output.name())


def test_every_algorithm_is_found_by_its_words_and_links_to_its_readme_section() -> None:
    """Toolbox search and tooltips (tags, shortDescription) and a help link to the README heading that
    documents the algorithm; the heading must exist, so the link cannot silently go stale."""
    import re

    from internal_sr.algorithms.base import heading_anchor

    with open(os.path.join(os.path.dirname(__file__), "..", "README.md"), encoding="utf-8") as f:
        anchors = {heading_anchor(h) for h in re.findall(r"^#+ (.+)$", f.read(), re.M)}
    algorithms = QgsApplication.processingRegistry().providerById("internal_sr").algorithms()
    assert len(algorithms) == 6
    urls = set()
    for algorithm in algorithms:
        assert algorithm.tags() and algorithm.shortDescription().endswith(".")
        anchor = algorithm.helpUrl().split("#", 1)[1]
        assert anchor in anchors, (algorithm.id(), anchor)
        urls.add(algorithm.helpUrl())
    assert len(urls) == 6
    guided = QgsApplication.processingRegistry().algorithmById("internal_sr:guided_dip")
    assert "pansharpening" in guided.tags() and heading_anchor("Degrade (blur and downsample)") == "degrade-blur-and-downsample"


def test_the_readmes_standalone_script_runs_as_written(tmp_path) -> None:
    """The README's PyQGIS snippets are for QGIS's console, where Processing and the provider are loaded; its
    standalone script starts QGIS, Processing and the provider itself. Run as written, but for the QGIS profile
    holding the plugin and the data folder, in a Python of its own (no PYTHONPATH, no QT_QPA_PLATFORM), it imports
    the plugin from the profile's plugin folder, writes its output and prints its path."""
    import re
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    (script,) = [block for block in re.findall(r"```python\n(.*?)```", (root / "README.md").read_text(encoding="utf-8"), re.S)
                 if "Processing.initialize()" in block]
    plugins = tmp_path / "profile" / "python" / "plugins"
    plugins.mkdir(parents=True)
    (plugins / "internal_sr").symlink_to(root)
    data = tmp_path / "data"
    data.mkdir()
    crop(str(data / "S2_10m.tif"), 32)
    for literal, value in (('os.path.expanduser("~/.local/share/QGIS/QGIS3/profiles/default")', repr(str(tmp_path / "profile"))),
                           ('"/data/', f'"{data}/')):
        assert literal in script
        script = script.replace(literal, value)
    env = {name: value for name, value in os.environ.items() if name not in ("PYTHONPATH", "QT_QPA_PLATFORM")}
    done = subprocess.run([sys.executable, "-c", script + "import internal_sr\nprint(internal_sr.__file__)\n"], env=env,
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-2:] == [str(data / "S2_20m.tif"), str(plugins / "internal_sr" / "__init__.py")]
    low = grid_info(str(data / "S2_20m.tif"))
    assert (low.width, low.height) == (16, 16)


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (RuntimeError("[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: not enough memory: you tried to "
                      "allocate 8 bytes."), "out of memory: use a smaller Tile size (TILE_SIZE); nothing written"),
        (OSError(28, "No space left on device"), "no space left on device (nothing written)"),
    ],
)
def test_unexpected_engine_errors_are_one_line_with_the_traceback_in_the_log(crop64, tmp_path, monkeypatch, error, expected) -> None:
    from internal_sr.core import pipeline

    def fail(*args) -> None:
        raise error

    monkeypatch.setattr(pipeline, "degrade", fail)
    with LogRecorder() as log, pytest.raises(QgsProcessingException) as raised:
        run("degrade", {"INPUT": crop64, "SCALE": 2, "OUTPUT": str(tmp_path / "out.tif")})
    assert user_message(raised.value) == expected
    assert any("Traceback" in message and "in fail" in message for message in log.messages)


def check(algorithm: str, parameters: dict, project: QgsProject | None = None) -> tuple[bool, str]:
    """``checkParameterValues`` as the toolbox's dialog calls it before a run (in ``project``'s context, if given)."""
    instance = QgsApplication.processingRegistry().createAlgorithmById(f"internal_sr:{algorithm}")
    context = QgsProcessingContext()
    context.setProject(project)
    return instance.checkParameterValues(parameters, context)


def test_output_definitions_from_the_toolbox_are_checked_before_the_run(crop64: str, tmp_path) -> None:
    """The toolbox passes OUTPUT as a ``QgsProcessingOutputLayerDefinition``, not a string."""
    def output(path: str) -> dict:
        return {"INPUT": crop64, "SCALE": 2, "DEVICE": "cpu", "OUTPUT": QgsProcessingOutputLayerDefinition(path)}

    ok, message = check("dip", output(str(tmp_path / "out.png")))
    assert not ok and message == f"output {tmp_path / 'out.png'} must end in .tif or .tiff: it is written as GeoTIFF"
    ok, message = check("dip", output(str(tmp_path / "out.tif ")))  # a space typed after the name
    assert not ok and message == f"output '{tmp_path / 'out.tif '}' ends in blank space after its extension: remove it"
    ok, message = check("kernelgan", {"INPUT": crop64, "DEVICE": "cpu", "OUTPUT": str(tmp_path / "k.npy ")})
    assert not ok and message == f"kernel file '{tmp_path / 'k.npy '}' ends in blank space after its extension: remove it"
    ok, message = check("degrade", output(str(tmp_path / "missing" / "out.tif")))
    assert not ok and message == f"output folder {tmp_path / 'missing'} does not exist: create it, or choose another folder"
    ok, message = check("dip", {**output(crop64), "OUTPUT": crop64})  # a plain string, as in scripts
    assert not ok and message == f"output {crop64} is the input: choose another output path"
    (tmp_path / "ortho.png").write_bytes(b"\x89PNG\r\n\x1a\n")  # another raster named ortho, and its world file
    (tmp_path / "ortho.wld").write_text("20\n0\n0\n-20\n443730\n4171410\n")
    ok, message = check("degrade", output(str(tmp_path / "ortho.tif")))
    assert not ok and message == (
        f"output {tmp_path / 'ortho.tif'}: GDAL would read {tmp_path / 'ortho.wld'} beside it as its own, and that file "
        f"may belong to {tmp_path / 'ortho.png'}, named like the output: choose another output name"
    )
    assert check("dip", output("TEMPORARY_OUTPUT")) == (True, "")
    assert check("dip", output(str(tmp_path / "out.tif"))) == (True, "")



def test_an_output_given_by_an_expression_is_checked_before_the_run(crop64: str, tmp_path) -> None:
    """An OUTPUT given as an expression passed the check unread; prepared, the run was refused with QGIS's
    "There were errors executing the algorithm." only, the reason left in the log."""
    def output(path: str) -> dict:
        return {"INPUT": crop64, "SCALE": 2, "DEVICE": "cpu",
                "OUTPUT": QgsProcessingOutputLayerDefinition(QgsProperty.fromExpression(f"'{path}'"))}

    vrt = str(tmp_path / "out.vrt")
    assert check("degrade", output(vrt)) == (False, f"output {vrt} must end in .tif or .tiff: it is written as GeoTIFF")
    with pytest.raises(QgsProcessingException) as raised:
        run("dip", {**output(crop64), **FAST})
    assert user_message(raised.value) == f"output {crop64} is the input: choose another output path"
    result = run("degrade", output(str(tmp_path / "low.tif")))
    assert result["OUTPUT"] == str(tmp_path / "low.tif") and grid_info(result["OUTPUT"]).width == 32

def test_an_output_open_as_a_project_layer_is_refused_as_in_the_dialog(crop64: str, tmp_path, empty_project) -> None:
    """Processing used to replace the file of an open layer that the dialog refuses (one check serves both)."""
    old = crop(str(tmp_path / "old_result.tif"), 32)
    empty_project.addMapLayer(QgsRasterLayer(old, "old result", "gdal"))
    before = grid_info(old)
    parameters = {"INPUT": crop64, "SCALE": 2, "DEVICE": "cpu", "OUTPUT": QgsProcessingOutputLayerDefinition(old)}
    expected = f"{old} is open in the project as layer old result: remove the layer or choose another output."
    context = QgsProcessingContext()
    context.setProject(empty_project)
    for algorithm in ("dip", "degrade", "guided_dip"):
        instance = QgsApplication.processingRegistry().createAlgorithmById(f"internal_sr:{algorithm}")
        assert instance.checkParameterValues({**parameters, "GUIDE": crop64}, context) == (False, expected), algorithm
    with pytest.raises(QgsProcessingException) as raised:
        run("degrade", {**parameters, "OUTPUT": old})  # a script's processing.run checks too
    assert user_message(raised.value) == expected
    assert grid_info(old) == before
    ok, _ = run_in_a_task("degrade", parameters)  # what the toolbox's check lets through is refused when prepared
    assert not ok and grid_info(old) == before


def test_an_open_output_named_through_a_symbolic_link_is_refused(crop64: str, tmp_path, empty_project) -> None:
    """The guard compared absolute paths only: the layer's file named through a linked folder was replaced."""
    old = crop(str(tmp_path / "old_result.tif"), 32)
    empty_project.addMapLayer(QgsRasterLayer(old, "old result", "gdal"))
    before = grid_info(old)
    link = tmp_path / "link"
    link.symlink_to(tmp_path, target_is_directory=True)
    through_link = str(link / "old_result.tif")
    with pytest.raises(QgsProcessingException) as raised:
        run("degrade", {"INPUT": crop64, "SCALE": 2, "OUTPUT": through_link})
    assert user_message(raised.value) == (
        f"{through_link} is open in the project as layer old result: remove the layer or choose another output."
    )
    assert grid_info(old) == before



@pytest.mark.parametrize(("source", "shown"), [
    ("{}|option:NUM_THREADS=1", "with GDAL open options"), ("GTIFF_DIR:1:{}", "as the subdataset of its first image"),
])
def test_an_open_output_added_under_another_spelling_is_refused(crop64: str, tmp_path, empty_project, source, shown) -> None:
    """The guard compared the layer's source as a path: a file added with open options, or as a subdataset, was
    replaced under the layer that reads it."""
    old = crop(str(tmp_path / "old_result.tif"), 32)
    layer = QgsRasterLayer(source.format(old), "old result", "gdal")
    assert layer.isValid(), shown
    empty_project.addMapLayer(layer)
    before = grid_info(old)
    with pytest.raises(QgsProcessingException) as raised:
        run("degrade", {"INPUT": crop64, "SCALE": 2, "OUTPUT": old})
    assert user_message(raised.value) == (
        f"{old} is open in the project as layer old result: remove the layer or choose another output."
    )
    assert grid_info(old) == before


def test_a_png_the_run_writes_beside_its_output_is_refused_while_open_in_the_project(crop64: str, tmp_path, empty_project) -> None:
    """Only OUTPUT was checked against the project's layers: a loss curve or kernel preview that the user had
    dragged onto the map was replaced under QGIS's feet."""
    from osgeo import gdal

    def open_png(path: str) -> str:
        gdal.Translate(path, crop64, format="PNG", bandList=[1], outputType=gdal.GDT_Byte).FlushCache()
        empty_project.addMapLayer(QgsRasterLayer(path, "picture", "gdal"))
        return path

    out = str(tmp_path / "sr.tif")
    curve = open_png(out + ".loss.png")
    expected = f"{curve} is open in the project as layer picture: remove the layer or choose another output."
    context = QgsProcessingContext()
    context.setProject(empty_project)
    instance = QgsApplication.processingRegistry().createAlgorithmById("internal_sr:dip")
    assert instance.checkParameterValues({"INPUT": crop64, "SCALE": 2, "DEVICE": "cpu", "OUTPUT": out}, context) == (False, expected)
    assert check("degrade", {"INPUT": crop64, "SCALE": 2, "OUTPUT": out}) == (True, "")  # degrade draws no curve
    kernelgan = {"INPUT": crop64, "ITERATIONS": 2, "DEVICE": "cpu", "OUTPUT": str(tmp_path / "kernel.npy")}
    preview = run("kernelgan", kernelgan)["PREVIEW"]  # an earlier estimate, whose preview the user then opens
    empty_project.addMapLayer(QgsRasterLayer(preview, "preview", "gdal"))
    instance = QgsApplication.processingRegistry().createAlgorithmById("internal_sr:kernelgan")
    assert instance.checkParameterValues(kernelgan, context) == (
        False, f"{preview} is open in the project as layer preview: remove the layer or choose another output."
    )

def grid_extent(path: str, width: int, height: int) -> str:
    """The EXTENT of ``path``'s top-left ``width × height`` pixels, in QGIS's order and the raster's CRS."""
    info = grid_info(path)
    a, _, x0, _, e, y0 = info.transform
    return f"{x0},{x0 + width * a},{y0 + height * e},{y0} [{info.crs}]"


def test_settings_the_run_would_refuse_fail_the_check_before_it(crop64: str, tmp_path) -> None:
    """Bad kernel files, inputs or extents too small for the network, a tile too small for a wide kernel, evaluation
    settings the protocol refuses, a report written over the kernel and a folder that takes no file are refused by
    ``checkParameterValues``, before any run (they used to fail only once a run had started)."""
    np.save(tmp_path / "even.npy", np.ones((4, 4)))
    np.save(tmp_path / "nan.npy", np.full((3, 3), np.nan))
    tiny = crop(str(tmp_path / "tiny.tif"), 16)
    guide = georeferenced_10m(str(tmp_path / "guide10.tif"))  # another CRS than crop64
    out = str(tmp_path / "out.tif")
    dip = {"INPUT": crop64, "SCALE": 2, "DEVICE": "cpu", "OUTPUT": out}
    cases = [
        ("dip", {**dip, "KERNEL_FILE": str(tmp_path / "even.npy")}, "must hold a square 2-D array of odd size"),
        ("knitwork", {**dip, "KERNEL_FILE": str(tmp_path / "nan.npy")}, "must be finite with a positive sum"),
        ("degrade", {**dip, "KERNEL_FILE": str(tmp_path / "nan.npy")}, "must be finite with a positive sum"),
        ("dip", {**dip, "INPUT": tiny}, "image 16×16 is too small for Deep Image Prior (DIP)"),
        ("dip", {**dip, "EXTENT": grid_extent(crop64, 30, 20)}, "the chosen extent is 30×20 pixels, too small for Deep Image Prior (DIP)"),
        ("dip", {**dip, "OUTPUT": "/proc/out.tif"}, "cannot write in output folder /proc"),
        ("knitwork", {**dip, "TILE_SIZE": 20}, "the tile overlap of 16 pixels, the default, which must be less than half the "
         "tile: lower it with Tile overlap (OVERLAP) to 9 or less, or use Tile size (TILE_SIZE) 33 or more"),
        ("dip", {**dip, "KERNEL": "gaussian", "SIGMA": 4, "TILE_SIZE": 32, "OVERLAP": 4},
         "Tile size (TILE_SIZE) 32 is too small for kernel gaussian:4, which reaches 12 input pixels past a tile's side: tiles "
         "must overlap by twice that (24 pixels, Tile overlap (OVERLAP) raised to it) for blended seams to see the image, not "
         "a tile's padding, and a tile must be more than twice its overlap: use Tile size (TILE_SIZE) 49 or more, or the "
         "default 128, which grows to fit the kernel"),
        ("evaluate", {**dip, "METHOD": "dip", "KERNEL": "sentinel2", "OUTPUT": str(tmp_path / "r.html")},
         "is for guided DIP only: use bicubic, lanczos2, lanczos3, gaussian (with SIGMA), landsat or a kernel file (KERNEL_FILE)"),
        ("evaluate", {**dip, "METHOD": "bicubic", "EXTENT": f"0,10,0,20 [{grid_info(crop64).crs}]", "OUTPUT": str(tmp_path / "r.html")},
         "extent x 0–10, y 0–20 does not overlap"),  # as typed, xmin,xmax,ymin,ymax: not echoed in another order
        ("evaluate", {**dip, "METHOD": "guided", "GUIDE": guide, "OUTPUT": str(tmp_path / "r.html")}, "differ: reproject"),
        ("evaluate", {**dip, "INPUT": tiny, "METHOD": "dip", "OUTPUT": str(tmp_path / "r.html")},
         "image 16×16 is too small for Wald's protocol at ×2 with Deep Image Prior: it needs at least 64×64 pixels"),
        ("kernelgan", {"INPUT": crop64, "SCALE": 2, "BANDS": [1], "DEVICE": "cpu", "OUTPUT": str(tmp_path / "k.npy"),
                       "OUTPUT_HTML": str(tmp_path / "k.png")}, "would be written twice"),
    ]
    for algorithm, parameters, expected in cases:
        ok, message = check(algorithm, parameters)
        assert not ok and expected in message and "\n" not in message, (algorithm, expected, message)
    assert os.listdir(tmp_path) and not leftovers(str(tmp_path)) and not os.path.exists(out)


def test_choices_are_taken_by_the_index_algorithm_help_lists(crop64: str, tmp_path) -> None:
    """``processing.algorithmHelp`` lists KERNEL as "0: bicubic … 3: gaussian" accepting int: 3 and "3" are
    gaussian (not the default QGIS would read them as); a number or name that is no option names the options."""
    outputs = {kernel: str(tmp_path / f"{kernel}.tif") for kernel in (3, "3", "gaussian", "bicubic")}
    for kernel, out in outputs.items():
        run("degrade", {"INPUT": crop64, "SCALE": 2, "KERNEL": kernel, "OUTPUT": out})
    pixels = {kernel: rasterio.open(out).read() for kernel, out in outputs.items()}
    assert (pixels[3] == pixels["gaussian"]).all() and (pixels["3"] == pixels["gaussian"]).all()
    assert (pixels["gaussian"] != pixels["bicubic"]).any()
    for kernel in (5, "gauss", "²"):  # "²" passes str.isdigit but not int()
        ok, message = check("degrade", {"INPUT": crop64, "SCALE": 2, "KERNEL": kernel, "OUTPUT": str(tmp_path / "x.tif")})
        assert not ok and message == (
            f"Blur kernel (KERNEL) must be one of bicubic, lanczos2, lanczos3, gaussian, landsat (or its number, 0 to 4), "
            f"got {kernel!r}"
        )


def test_every_choice_parameter_reads_an_index_as_its_option() -> None:
    """KERNEL, DEVICE, METHOD, ORIENTATION, GUIDE_KERNEL…: every algorithm reads an index, int or digits, as the
    option of that index, and passes QGIS's own check of the parameter with it."""
    from internal_sr.algorithms.base import choice_option

    read = 0
    for algorithm in QgsApplication.processingRegistry().providerById("internal_sr").algorithms():
        instance = algorithm.create()
        for definition in instance.parameterDefinitions():
            if not isinstance(definition, QgsProcessingParameterEnum):
                continue
            assert definition.usesStaticStrings()
            for index, option in enumerate(definition.options()):
                for value in (index, str(index)):
                    assert instance.read_choice({definition.name(): value}, definition.name(), QgsProcessingContext()) == option
                    assert definition.checkValueIsAcceptable(choice_option(definition, value))
                read += 1
    assert read >= 20


def test_a_device_that_is_not_here_fails_the_check(crop64: str, tmp_path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    ok, message = check("dip", {"INPUT": crop64, "SCALE": 2, "DEVICE": "cuda", "OUTPUT": str(tmp_path / "out.tif")})
    assert not ok and "no CUDA GPU is available" in message and "\n" not in message
