"""Processing algorithm ``internal_sr:guided_dip``: sharpen low-resolution bands with finer bands of the scene."""

from __future__ import annotations

from typing import Any

from qgis.core import QgsProcessingContext, QgsProcessingFeedback

from ..core.config import GUIDED_ITERATIONS, GuidedDIPConfig, IOOptions
from .base import GUIDED_KERNELS, METHOD_LABELS, InternalSRAlgorithm, Job, extent_text, result_layer_name, tiles_text, tr
from .run_times import presets_text, run_time_help


class GuidedDIPAlgorithm(InternalSRAlgorithm):
    """Parameters → ``GuidedDIPConfig`` and two ``IOOptions`` → ``core.sharpen.sharpen``."""

    ITERATIONS = "ITERATIONS"
    NON_NEGATIVE = "NON_NEGATIVE"

    ALGORITHM_ID = "guided_dip"
    DISPLAY_NAME = "Sharpen with a guide (guided DIP)"
    DESCRIPTION = "Bring low-resolution bands to the grid of finer bands of the same scene (e.g. Sentinel-2 20 m/60 m to 10 m)."
    TAGS = (
        "pansharpening",
        "pan-sharpening",
        "sharpen",
        "fusion",
        "data fusion",
        "guided",
        "multi-modal",
        "super-resolution",
        "Sentinel-2",
        "20 m",
        "60 m",
        "10 m",
        "Landsat",
        "panchromatic",
        "downscaling",
    )
    README_SECTION = "Sharpen with a guide (guided DIP)"
    SUMMARY = (
        "<p>Brings low-resolution bands to the grid of finer bands of the same scene. One network, optimised "
        "from scratch on these two rasters only, sees the fine guide bands and generates the sharpened target "
        "bands (and the guide) on the fine grid; it must reproduce the observed target once blurred and "
        "downsampled, and it learns the guide-to-target relation one level down, where the answer is known.</p>"
        "<p><b>Which bands</b>: Sentinel-2 — target the 20 m bands B5, B6, B7, B8A, B11, B12 (or the 60 m "
        "B1, B9) with the 10 m bands B2, B3, B4, B8 as guide. Landsat 7/8/9 — target the 30 m bands (B2–B7 on "
        "Landsat 8/9) with the 15 m panchromatic B8 as guide and the 'landsat' kernel, straight from the "
        "Level-1 files.</p>"
        "<p><b>Grids</b>: both rasters must share a CRS, the guide's pixel size must be an integer fraction of "
        "the target's (2 for 20 m → 10 m, 6 for 60 m → 10 m) and pixel edges must line up or sit half a guide "
        "pixel apart, as Landsat's pan and multispectral bands do (their pixel centres coincide), within 0.05 guide "
        "pixel everywhere in the overlap, up to each of its corners (the log says how far off grids that are not "
        "exactly so are); that half-pixel phase goes into the blur model, so neither raster is resampled. Nothing "
        "is reprojected: a mismatch is reported before the run. The output covers the overlap of the two rasters, "
        "on the guide's own pixels, with the target's bands, names, data type and nodata.</p>"
        "<p><b>Kernels</b>: 'sentinel2' models each band's blur from its published MTF and needs Sentinel-2 "
        "band names (B5, B8A, …) in the band descriptions or, as in ESA's band files, the file name; 'landsat' is a "
        "Gaussian with MTF 0.3 at Nyquist; "
        "otherwise choose a kernel (a kernel file only on aligned grids).</p>"
        + run_time_help("guided", "target")
    )

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:  # noqa: N802
        self.add_raster_input(
            "The low-resolution raster to sharpen (e.g. a Sentinel-2 20 m band stack).", self.INPUT, "Target raster"
        )
        self.add_bands(help_text="Target bands to sharpen, numbered from 1 (empty: all). The output has these bands.")
        self.add_raster_input(
            "The finer raster of the same scene and CRS (e.g. the Sentinel-2 10 m bands B2, B3, B4, B8).",
            self.GUIDE,
            "Guide raster",
        )
        self.add_bands(self.GUIDE_BANDS, self.GUIDE, "Guide bands", "Guide bands to use, numbered from 1 (empty: all).")
        self.add_extent("target raster", "whole target pixels")
        self.add_int(
            self.ITERATIONS,
            "Iterations (0 = automatic)",
            0,
            f"Optimisation steps per tile; 0 uses the tested default ({GUIDED_ITERATIONS}). The run also stops "
            f"early once the fit stops improving. Quality presets: {presets_text('guided')}.",
            minimum=0,
            maximum=100000,
        )
        self.add_kernel(options=GUIDED_KERNELS, extra_help="Blur of the target bands. 'sentinel2': each band's own MTF. ")
        self.add_choice(
            self.GUIDE_KERNEL,
            "Guide blur kernel",
            GUIDED_KERNELS,
            "Blur of the guide bands, used to bring the guide to the target's grid ('gaussian' takes the sigma above).",
        )
        self.add_run_options("target")
        self.add_bool(
            self.NON_NEGATIVE, "No negative values in non-negative bands", True,
            "In each target band whose values are all at least 0 (reflectance, digital numbers), negative output values "
            "are raised to 0, and the log says how many pixels of which band: detail taken from the guide can push dark "
            "areas such as water below 0. Off: written as the network made them.", advanced=True,
        )
        self.add_output("Sharpened raster", "GeoTIFF to write on the guide's grid. Nothing is written if the run fails.")
        self.add_loss_curve_output()

    def prepare_job(
        self, parameters: dict[str, Any], context: QgsProcessingContext, feedback: QgsProcessingFeedback | None
    ) -> Job:
        from ..core.sharpen import check_inputs

        target = self.read_source(parameters, context)
        guide = self.read_source(parameters, context, self.GUIDE)
        options = self.read_run_options(parameters, context)
        guide_kernel = self.read_guide_kernel(parameters, context)
        config = GuidedDIPConfig(
            kernel=self.read_kernel(parameters, context, feedback, [guide_kernel]),
            guide_kernel=guide_kernel,
            iterations=self.parameterAsInt(parameters, self.ITERATIONS, context) or None,
            non_negative=self.parameterAsBoolean(parameters, self.NON_NEGATIVE, context),
            **options.config_fields(),
        )
        target_io = IOOptions(
            bands=self.read_bands(parameters, context, target),
            float32=options.float32,
            extent=self.read_extent(parameters, context),
            crs=target.crs,
        )
        guide_io = IOOptions(bands=self.read_bands(parameters, context, guide, self.GUIDE_BANDS), crs=guide.crs)
        output = self.read_output(parameters, context, [target.path, guide.path])
        inputs = check_inputs(target.path, guide.path, None, config, target_io, guide_io)  # output: checked above
        nesting = inputs.nesting
        target_path, guide_path = target.path, guide.path

        def run(progress: Any) -> Any:
            from ..core.sharpen import sharpen

            return sharpen(target_path, guide_path, output, config, target_io, guide_io, progress)

        settings = {
            tr("Target"): f"{target.name} ({target.width} × {target.height} pixels, bands {target_io.bands or tr('all')})",
            tr("Guide"): f"{guide.name} ({guide.width} × {guide.height} pixels, bands {guide_io.bands or tr('all')})",
            tr("Extent"): extent_text(target_io.extent),
            tr("Scale"): f"×{nesting.scale} → {nesting.guide.width} × {nesting.guide.height} pixels",
            tr("Kernels"): f"{config.kernel} / {config.guide_kernel}",
            tr("Iterations"): str(config.steps),
            tr("Device requested"): config.device,
            tr("Seed"): str(config.seed),
            tr("Tiles"): tiles_text(config.tiles, inputs.tiles, nesting.target.width, nesting.target.height),
            tr("Output"): output,
        }
        return Job(run, settings, layer_name=result_layer_name(target.name, METHOD_LABELS[GuidedDIPConfig], nesting.scale))
