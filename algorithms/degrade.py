"""Processing algorithm ``internal_sr:degrade``: blur and downsample a raster (the sensor model)."""

from __future__ import annotations

from typing import Any

from qgis.core import QgsProcessingContext, QgsProcessingFeedback

from ..core.config import IOOptions
from .base import DEGRADED_LABEL, InternalSRAlgorithm, Job, extent_text, input_settings, result_layer_name, tr


class DegradeAlgorithm(InternalSRAlgorithm):
    """Parameters → ``core.pipeline.degrade`` (the same degradation the super-resolution inverts)."""

    ALGORITHM_ID = "degrade"
    DISPLAY_NAME = "Degrade (blur and downsample)"
    DESCRIPTION = "Blur and downsample a raster with the sensor model the super-resolution methods invert."
    TAGS = (
        "blur",
        "downsample",
        "decimate",
        "coarsen",
        "aggregate",
        "simulate",
        "sensor model",
        "point spread function",
        "PSF",
        "Wald",
    )
    README_SECTION = "Degrade (blur and downsample)"
    SUMMARY = (
        "<p>Blurs a raster with the chosen kernel and keeps one pixel per scale × scale block: the model of "
        "the sensor that the super-resolution algorithms invert, so the two are exactly consistent.</p>"
        "<p>Use it to test super-resolution where you know the answer (Wald protocol): degrade a raster by 2, "
        "super-resolve the result by 2 and compare it with the original. The output keeps the CRS and origin, "
        "with the pixel size multiplied by the scale and width and height divided by it (rows and columns "
        "that do not fill a whole block are dropped). Band names, nodata and data type are kept.</p>"
        "<p><b>How long</b>: seconds on any computer, CPU or GPU (nothing is optimised).</p>"
    )

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:  # noqa: N802
        self.add_raster_input("The raster to degrade: a file GDAL reads, any data type, any number of bands.")
        self.add_bands()
        self.add_extent(
            enlarged="whole scale × scale blocks of input pixels counted from the raster's corner",
            use="the output covers exactly those blocks: its pixels are those of a run on the whole raster",
        )
        self.add_scale(
            "Integer coarsening of the pixel grid: one output pixel per scale × scale block of input pixels (2 turns "
            "10 m pixels into 20 m pixels).",
            maximum=None,
        )
        self.add_kernel()
        self.add_threads()
        self.add_output("Degraded raster", "GeoTIFF to write.")

    def prepare_job(
        self, parameters: dict[str, Any], context: QgsProcessingContext, feedback: QgsProcessingFeedback | None
    ) -> Job:
        source, bands, scale = self.read_input(parameters, context)
        kernel = self.read_kernel(parameters, context, feedback)
        io = IOOptions(bands=bands, extent=self.read_extent(parameters, context), crs=source.crs)
        output = self.read_output(parameters, context, [source.path])
        from ..core.pipeline import check_degrade

        check_degrade(source.path, None, scale, kernel, io)  # the output was checked by read_output
        input_path = source.path

        def run(progress: Any) -> Any:
            from ..core.pipeline import degrade

            return degrade(input_path, output, scale, kernel, io, progress)

        blocks = tr("whole {0} × {0} pixel blocks counted from the raster's corner").format(scale)
        settings = {
            **input_settings(source, bands, extent_text(io.extent, blocks)),
            tr("Scale"): f"÷{scale}",
            tr("Kernel"): kernel,
            tr("Output"): output,
        }
        return Job(run, settings, layer_name=result_layer_name(source.name, DEGRADED_LABEL, scale, coarser=True))
