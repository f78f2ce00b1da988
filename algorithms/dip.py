"""Processing algorithm ``internal_sr:dip``: super-resolve a raster with Deep Image Prior."""

from __future__ import annotations

from typing import Any

from qgis.core import QgsProcessingContext, QgsProcessingFeedback

from ..core.config import DEFAULT_ITERATIONS, DIPConfig, IOOptions
from .base import (
    KERNELS, METHOD_LABELS, SUPER_RESOLUTION_TAGS, InternalSRAlgorithm, Job, extent_text, input_settings, result_layer_name, tiles_text,
    tr,
)
from .run_times import presets_text, run_time_help


class DIPAlgorithm(InternalSRAlgorithm):
    """Parameters → ``DIPConfig`` and ``IOOptions`` → ``core.pipeline.super_resolve``.

    Other tile-by-tile methods of ``super_resolve`` (Knitworks) subclass it and set ``CONFIG``,
    ``KERNEL_OPTIONS``, ``KERNEL_HELP`` and ``iterations_help``.
    """

    #: The engine configuration built from the parameters (its fields: scale, kernel, iterations, seed, device, tiles).
    CONFIG: type = DIPConfig
    #: Kernel names offered, the first being the default.
    KERNEL_OPTIONS: tuple[str, ...] = KERNELS
    #: Text put before the kernel parameter's common help.
    KERNEL_HELP = ""
    #: What the step window parameter's help says of this method's measured choice.
    STEP_WINDOW_HELP = "Not the default: on the benchmark it scored slightly below whole-tile steps (see the README)."

    ITERATIONS = "ITERATIONS"
    STEP_WINDOW = "STEP_WINDOW"

    ALGORITHM_ID = "dip"
    DISPLAY_NAME = "Super-resolve (Deep Image Prior)"
    DESCRIPTION = "Sharpen a raster by an integer factor with Deep Image Prior, optimised on the image itself."
    TAGS = (
        *SUPER_RESOLUTION_TAGS,
        "deep image prior",
        "DIP",
        "Sentinel-2",
        "Landsat",
        "drone",
    )
    README_SECTION = "Super-resolve (Deep Image Prior)"
    SUMMARY = (
        "<p>Refines the pixel grid of a raster by an integer factor with Deep Image Prior: a convolutional "
        "network is optimised from scratch on this image alone until its output, blurred by the kernel and "
        "downsampled by the scale, reproduces the input. The network's structure prefers natural images, so "
        "the result is sharper than interpolation, with no training data and nothing downloaded. It works on "
        "any sensor and band (reflectance, SAR amplitude, elevation).</p>"
        "<p>The output lies on the input grid refined by the scale: same CRS and origin, pixel size divided "
        "by the scale, width and height multiplied by it. Band names, nodata and the data type are kept "
        "(Float32 on request); nodata pixels stay nodata. Large rasters are processed in overlapping tiles.</p>"
        "<p><b>Typical settings</b>: scale 2, bicubic kernel, iterations 0 (automatic: "
        + ", ".join(f"{n} at ×{s}" for s, n in DEFAULT_ITERATIONS.items())
        + "), device auto. Example: the 20 m Sentinel-2 bands B05–B12 to 10 m.</p>"
        + run_time_help("dip")
        + "<p>A 1000 × 1000 input is about 80 tiles: use a GPU or an extent around your area of interest; "
        "200 iterations (the fast preset) give a quick preview.</p>"
    )
    #: The method's key in ``QUALITY_PRESETS`` and ``run_times.STEP_SECONDS``.
    METHOD = "dip"

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:  # noqa: N802
        self.add_raster_input(
            "The raster to super-resolve: a file GDAL reads (GeoTIFF, JP2, …), any data type, any number of bands."
        )
        self.add_bands()
        self.add_extent()
        self.add_scale()
        self.add_int(
            self.ITERATIONS, "Iterations (0 = automatic)", 0, self.iterations_help(), minimum=0, maximum=100000
        )
        self.add_kernel(options=self.KERNEL_OPTIONS, extra_help=self.KERNEL_HELP)
        self.add_number(
            self.STEP_WINDOW,
            "Step window (fraction of the tile's edge)",
            self.CONFIG.step_window,
            "1 optimises the whole tile at every step. Below 1, each step optimises a random window "
            "of that fraction of the tile's width and height: 0.5 takes about a quarter of the time per step. "
            + self.STEP_WINDOW_HELP,
            minimum=0.05,
            maximum=1.0,
            advanced=True,
        )
        self.add_run_options()
        self.add_output("Super-resolved raster", "GeoTIFF to write. Nothing is written if the run fails or is cancelled.")
        self.add_loss_curve_output()

    def iterations_help(self) -> str:
        return (
            "Optimisation steps per tile. 0 picks the tested default for the scale ({}). Fewer steps are faster "
            "and smoother; the run also stops early once the fit stops improving. Quality presets: {}.".format(
                ", ".join(f"×{s}: {n}" for s, n in DEFAULT_ITERATIONS.items()), presets_text(self.METHOD)
            )
        )

    def prepare_job(
        self, parameters: dict[str, Any], context: QgsProcessingContext, feedback: QgsProcessingFeedback | None
    ) -> Job:
        source, bands, scale = self.read_input(parameters, context)
        iterations = self.parameterAsInt(parameters, self.ITERATIONS, context) or None
        options = self.read_run_options(parameters, context)
        config = self.CONFIG(
            scale=scale,
            kernel=self.read_kernel(parameters, context, feedback),
            iterations=iterations,
            step_window=self.parameterAsDouble(parameters, self.STEP_WINDOW, context),
            **options.config_fields(),
        )
        io = IOOptions(bands=bands, float32=options.float32, extent=self.read_extent(parameters, context), crs=source.crs)
        output = self.read_output(parameters, context, [source.path])
        from ..core.pipeline import check_learned_kernel_output, check_super_resolve, learned_kernel_path

        info, tiles = check_super_resolve(source.path, None, config, io)  # the output was checked by read_output
        learned = learned_kernel_path(output, config) if output else None  # "" while checking a temporary output
        if learned is not None:
            from ..core.kernels import kernel_files

            check_learned_kernel_output(output, [source.path], config)
            self.check_not_open(kernel_files(learned), context, [source.path])
        input_path = source.path

        def run(progress: Any) -> Any:
            from ..core.pipeline import super_resolve

            return super_resolve(input_path, output, config, io, progress)

        settings = {
            **input_settings(source, bands, extent_text(io.extent)),
            tr("Scale"): f"×{scale}",
            tr("Kernel"): config.kernel,
            tr("Iterations"): f"{config.steps}" + ("" if iterations else tr(" (automatic)")),
            tr("Step window"): f"{config.step_window:g}",
            tr("Device requested"): config.device,
            tr("Seed"): str(config.seed),
            tr("Tiles"): tiles_text(config.tiles, tiles, info.grid.width, info.grid.height),
            tr("Data type"): "Float32" if io.float32 else tr("as input"),
            tr("Output"): output,
        }
        return Job(run, settings, layer_name=result_layer_name(source.name, METHOD_LABELS[self.CONFIG], scale))
