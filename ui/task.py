"""A ``QgsTask`` that runs one engine job in the background and adds its output to the map.

``run()`` executes in a worker thread: it calls the engine with a :class:`TaskProgress`, stores the
``RunResult`` or a one-line error, and never raises. ``finished()`` executes on the main thread: it adds
the output raster to the project, styled like the input when a renderer was given, or reports the
error. A cancelled job writes no file (the engine's contract) and adds no layer; an abandoned one (the
plugin unloaded) touches neither the project nor the message bar, whatever its outcome.
"""

from __future__ import annotations

import os
import traceback
from collections.abc import Callable
from typing import Any

from qgis.core import (
    Qgis,
    QgsApplication,
    QgsMessageLog,
    QgsMultiBandColorRenderer,
    QgsProject,
    QgsRasterLayer,
    QgsRasterRenderer,
    QgsSingleBandGrayRenderer,
    QgsSingleBandPseudoColorRenderer,
    QgsTask,
)

from ..algorithms.base import METHOD_LABELS, result_layer_name
from ..core.config import (
    GAUSSIAN_TERM,
    GUIDE_KERNEL_TERM,
    KERNEL_FILE_TERM,
    KERNEL_TERM,
    OVERLAP_TERM,
    TILE_TERM,
    DIPConfig,
    GuidedDIPConfig,
    IOOptions,
    KnitworkConfig,
)
from ..core.errors import Cancelled, InputError, error_line
from .messages import LOG_TAG, TITLE, notify

#: How the out-of-memory hints of ``core.errors.error_line`` name the dialog's settings that help.
TILE_HINT, DEVICE_HINT = "tile size (Advanced)", "device cpu"
#: How the engine's warning that the CPUs are busy names the dialog's thread setting (``core.device.cpu_threads``).
THREADS_HINT = "CPU threads (Advanced)"
#: The engine's messages name kernels and tile settings as the command line takes them (``core.config.GAUSSIAN_TERM``,
#: ``TILE_TERM``, …): here, what the dialog's settings are instead (``core.errors.error_line``'s ``terms``).
DIALOG_TERMS = {GAUSSIAN_TERM: "the gaussian Blur kernel with its Gaussian sigma", KERNEL_FILE_TERM: "a Kernel file (Advanced)",
                TILE_TERM: TILE_HINT, OVERLAP_TERM: "tile overlap (Advanced)", KERNEL_TERM: "the Blur kernel",
                GUIDE_KERNEL_TERM: "the Guide blur kernel"}


def dialog_line(error: BaseException) -> str:
    """The one line the dialog shows for ``error`` (``core.errors.error_line``), in its settings' names."""
    return error_line(error, TILE_HINT, DEVICE_HINT, DIALOG_TERMS)


class TaskProgress:
    """The engine's ``Progress`` protocol over a ``QgsTask`` (called from the task's worker thread).

    Fractions drive the task's progress bar; ``info`` messages go to the message log (thread-safe);
    per-step messages are dropped, so they do not flood the log.
    """

    def __init__(self, task: QgsTask) -> None:
        self.task = task

    def report(self, fraction: float, message: str = "") -> None:
        self.task.setProgress(100.0 * min(max(float(fraction), 0.0), 1.0))

    def info(self, message: str) -> None:
        QgsMessageLog.logMessage(message, LOG_TAG, Qgis.MessageLevel.Info)

    def cancelled(self) -> bool:
        return self.task.isCanceled()


def output_key(path: str) -> str:
    """``path`` as one file is known by, whether it exists yet or not: absolute, through symbolic links (of the
    file and its folders), in the letter case the platform compares (``os.path.normcase``)."""
    return os.path.normcase(os.path.realpath(path))


def outputs_being_written() -> set[str]:
    """The ``output_key`` of each output of the plugin's tasks that are queued or running."""
    tasks = QgsApplication.taskManager().activeTasks()
    return {output_key(t.output_path) for t in tasks if isinstance(t, CoreJobTask) and t.output_path}


def restyled(renderer: QgsRasterRenderer, bands: tuple[int, ...] | None) -> QgsRasterRenderer | None:
    """A copy of the input's ``renderer`` for an output holding input bands ``bands`` (``None``: all, in order).

    Output band ``i`` (1-based) is input band ``bands[i - 1]``; the copy shows the same input bands with
    the same contrast or colour ramp. ``None`` when it shows a band the output lacks, or for renderer
    types other than multiband colour, singleband grey and singleband pseudocolour (QGIS's default
    style is kept then).
    """
    output_band = {band: index for index, band in enumerate(bands, start=1)} if bands else None

    def moved(band: int) -> int | None:
        if band < 1 or output_band is None:
            return band
        return output_band.get(band)

    copy = renderer.clone()
    if isinstance(copy, QgsMultiBandColorRenderer):
        accessors = [(copy.redBand, copy.setRedBand), (copy.greenBand, copy.setGreenBand), (copy.blueBand, copy.setBlueBand)]
    elif isinstance(copy, QgsSingleBandGrayRenderer):
        accessors = [(copy.grayBand, copy.setGrayBand)]
    elif isinstance(copy, QgsSingleBandPseudoColorRenderer):
        accessors = [(copy.band, copy.setBand)]
    else:
        return None
    for get, set_ in accessors:
        band = moved(get())
        if band is None:
            return None
        set_(band)
    return copy


class CoreJobTask(QgsTask):
    """Runs ``job(progress) -> RunResult`` in the background; adds the output as layer ``layer_name``.

    ``renderer`` (the input layer's, cloned on the main thread) and ``bands`` (the input bands the output
    holds, ``None``: all) style the result like the input (:func:`restyled`). ``threads``: PyTorch's CPU threads for
    the job (``None``: automatic), set in the worker thread for the job only (``core.device.cpu_threads``) and logged;
    the engine's warning that the CPUs are busy names the dialog's setting (``THREADS_HINT``).
    After completion: :attr:`result` holds the ``RunResult`` on success, :attr:`error` a one-line message
    on failure, :attr:`layer` the layer added to the project (``None`` when nothing was added).
    """

    def __init__(
        self,
        title: str,
        job: Callable[[Any], Any],
        layer_name: str,
        iface: Any | None = None,
        renderer: QgsRasterRenderer | None = None,
        bands: tuple[int, ...] | None = None,
        output_path: str = "",
        threads: int | None = None,
    ) -> None:
        super().__init__(f"{TITLE}: {title}", QgsTask.Flag.CanCancel)
        self.title = title
        self.output_path = output_path
        self.threads = threads
        self.job = job
        self.layer_name = layer_name
        self.iface = iface
        self.renderer = renderer.clone() if renderer is not None else None
        self.bands = bands
        self.result: Any | None = None
        self.error: str | None = None
        self.details: str | None = None
        self.layer: QgsRasterLayer | None = None
        #: Set by :meth:`abandon`: :meth:`finished` leaves the project and the message bar alone.
        self.abandoned = False

    @classmethod
    def super_resolve(
        cls,
        input_path: str,
        output_path: str,
        config: DIPConfig | KnitworkConfig,
        io: IOOptions,
        input_name: str,
        iface: Any | None = None,
        renderer: QgsRasterRenderer | None = None,
        threads: int | None = None,
    ) -> CoreJobTask:
        """A task running ``core.pipeline.super_resolve``; the layer is named after input, method and scale."""

        def job(progress: Any) -> Any:
            from ..core.pipeline import super_resolve  # torch is imported here, in the worker, on first use

            return super_resolve(input_path, output_path, config, io, progress)

        name = result_layer_name(input_name, METHOD_LABELS[type(config)], config.scale)
        return cls(f"super-resolve {input_name} ×{config.scale}", job, name, iface, renderer, io.bands, output_path, threads)

    @classmethod
    def sharpen(
        cls,
        target_path: str,
        guide_path: str,
        output_path: str,
        config: GuidedDIPConfig,
        target_io: IOOptions,
        guide_io: IOOptions,
        target_name: str,
        scale: int,
        iface: Any | None = None,
        renderer: QgsRasterRenderer | None = None,
        threads: int | None = None,
    ) -> CoreJobTask:
        """A task running ``core.sharpen.sharpen`` (``scale``: the grids' ratio, for the layer name)."""

        def job(progress: Any) -> Any:
            from ..core.sharpen import sharpen

            return sharpen(target_path, guide_path, output_path, config, target_io, guide_io, progress)

        name = result_layer_name(target_name, METHOD_LABELS[GuidedDIPConfig], scale)
        return cls(f"sharpen {target_name} ×{scale}", job, name, iface, renderer, target_io.bands, output_path, threads)

    def run(self) -> bool:
        """Worker thread: run the job with its threads; store the result or the error; never raise."""
        try:
            from ..core.device import cpu_threads, threads_line  # torch is imported here, in the worker
            from ..core.raster import cancellable_commits

            progress = TaskProgress(self)
            # in this thread, the one that runs the job; a Cancel after the last step still writes nothing
            with cpu_threads(self.threads, THREADS_HINT), cancellable_commits(progress):
                progress.info(threads_line(self.threads))
                self.result = self.job(progress)
            return True
        except Cancelled:
            return False
        except Exception as error:  # noqa: BLE001 (the task must not raise; the traceback is logged)
            self.error = dialog_line(error)
            if not isinstance(error, InputError):
                self.details = traceback.format_exc()
        return False

    def abandon(self) -> None:
        """Cancel the job, and let :meth:`finished` add no layer and show nothing: the plugin is being unloaded.

        Cancelling alone is not enough: a job that completed in the worker just before still has ``finished``
        called afterwards, with its result, by the task manager.
        """
        self.abandoned = True
        self.cancel()

    def _done_text(self) -> str:
        """The line saying the result was added; where the run kept its kernel beside the output (Knitworks' learned
        kernel: ``RunResult.kernel_path``), where; for one without georeferencing (its input had none), that QGIS
        draws it in its own pixel units, so an extent's or a scale's result does not sit over its input."""
        from ..core.raster import placed_on_map

        done = f"{self.layer_name}: done on {self.result.device} in {self.result.seconds:.1f} s"  # as the command line: a short run never reads "in 0 s"
        if self.result.kernel_path:
            done += f"; the blur kernel it learnt is kept as {self.result.kernel_path} (its size and width are in the log)"
        if placed_on_map(self.result.output_path):
            return done
        return (f"{done}; like its input it has no georeferencing, so QGIS draws it in its own pixel units from the "
                "origin, not over the input")

    def finished(self, result: bool) -> None:
        """Main thread: add the output layer, or say why there is none; after :meth:`abandon`, only log a
        written output (the plugin is gone: nothing of it may touch the project or the message bar)."""
        if self.abandoned:
            if result and self.result is not None:
                QgsMessageLog.logMessage(
                    f"{self.title}: {self.result.output_path} was written as the plugin was unloaded; it is not "
                    "added to the map",
                    LOG_TAG,
                    Qgis.MessageLevel.Info,
                )
            return
        if result and self.result is not None:
            layer = QgsRasterLayer(self.result.output_path, self.layer_name, "gdal")
            if layer.isValid():
                style = restyled(self.renderer, self.bands) if self.renderer is not None else None
                if style is not None:
                    layer.setRenderer(style)
                self.layer = QgsProject.instance().addMapLayer(layer)
                notify(self.iface, self._done_text(), Qgis.MessageLevel.Success)
                return
            self.error = f"the output {self.result.output_path} cannot be opened as a raster"
        if self.error is None:
            notify(self.iface, f"{self.title}: cancelled, nothing was written", Qgis.MessageLevel.Info)
            return
        if self.details:
            QgsMessageLog.logMessage(self.details, LOG_TAG, Qgis.MessageLevel.Critical)
        notify(self.iface, f"{self.title} failed: {self.error}", Qgis.MessageLevel.Critical, 0)
