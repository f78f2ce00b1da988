"""Processing algorithm ``internal_sr:evaluate``: score a method by Wald's protocol on the user's own raster."""

from __future__ import annotations

import math
from typing import Any

from qgis.core import QgsProcessingContext, QgsProcessingException, QgsProcessingFeedback, QgsProcessingOutputNumber

from ..core.config import EVALUATION_METHODS, IOOptions
from .base import GUIDED_KERNELS, KERNELS, InternalSRAlgorithm, Job, extent_text, input_settings, is_unset, tiles_text, tr

#: Kernels of the protocol: bicubic first (the default), 'sentinel2' last (guided DIP's per-band MTF).
#: 'auto' is the method's own default (``core.evaluation.default_kernel``), as on the command line.
EVALUATION_KERNELS = ("auto", *KERNELS, "sentinel2")
#: Output numbers: the method's overall scores; beside them the baselines' PSNR (``BASELINE_PSNR``).
SCORES = ("PSNR", "SSIM", "RMSE", "SAM", "ERGAS", "SRE")
#: Output name → description of the baselines' PSNR outputs, in the order of ``core.evaluation``'s labels
#: (``BICUBIC``, ``BICUBIC_BP``, ``HPF_BP``).
BASELINE_PSNR = {
    "PSNR_BICUBIC": "PSNR of bicubic",
    "PSNR_BICUBIC_BP": "PSNR of bicubic + back-projection",
    "PSNR_HPF_BP": "PSNR of HPF injection + back-projection (guided DIP only)",
}
#: Output name of the fraction of the reference pixels the scores take (``Evaluation.scored_fraction``).
SCORED_FRACTION = "SCORED_FRACTION"


class EvaluateAlgorithm(InternalSRAlgorithm):
    """Parameters → a method configuration → ``core.report.evaluate_to_files``; outputs the scores, and the report and
    JSON where asked."""

    METHOD = "METHOD"
    ITERATIONS = "ITERATIONS"
    OUTPUT_JSON = "OUTPUT_JSON"

    ALGORITHM_ID = "evaluate"
    DISPLAY_NAME = "Evaluate super-resolution (Wald's protocol)"
    DESCRIPTION = "Score a super-resolution method on your own raster by Wald's protocol, beside bicubic and pansharpening baselines."
    TAGS = (
        "evaluation",
        "quality",
        "accuracy",
        "assessment",
        "benchmark",
        "Wald",
        "protocol",
        "PSNR",
        "SSIM",
        "RMSE",
        "SAM",
        "ERGAS",
        "SRE",
        "super-resolution",
        "pansharpening",
    )
    README_SECTION = "Evaluate (Wald's protocol on your own raster)"
    SUMMARY = (
        "<p>Measures how well a method works <i>on your own imagery</i>, where no higher-resolution truth exists: "
        "the raster (or the chosen extent of it) is degraded by the scale factor with the chosen kernel, "
        "super-resolved back to its own grid, and compared with itself (Wald's protocol). Bicubic interpolation "
        "and bicubic + back-projection are always scored on the same pixels, and for guided DIP also HPF "
        "injection, the classic pansharpening baseline, without and with back-projection (guided DIP's own output "
        "is back-projected).</p>"
        "<p><b>Scores</b>, per band and overall: PSNR and SRE (dB, higher is better), SSIM (higher is better), "
        "RMSE in the bands' declared unit, SAM (degrees) and ERGAS (lower is better), all on physical values (stored "
        "value × scale + offset where the bands declare them); where the bands declare different units the overall "
        "PSNR, RMSE and SAM, which would mix them, are not given. The HTML report shows them with "
        "image crops side by side (low resolution, every estimate, the reference and the error maps of bicubic, the "
        "strongest baseline and the method) and the "
        "method's training-loss curve; the scores are also outputs for the model designer (None where a score is not "
        "given or not defined, such as SAM of one band: the report says why).</p>"
        "<p><b>Guided DIP</b>: the input is the target (e.g. Sentinel-2 20 m bands) and the guide the finer "
        "bands (10 m); both are degraded by their grid ratio, which must equal the scale factor.</p>"
        "<p><b>Nodata</b> (and values that are not finite or are fill values) in any band leaves that pixel out: a "
        "low-resolution pixel whose kernel reaches one is nodata in the degraded input, which every method reads as "
        "nodata, and only the valid pixels whose low-resolution pixel is valid are scored, the same for every method "
        "(for guided DIP also where the degraded guide is valid). The log, the report and the JSON say how many "
        "pixels were scored out of how many, the report's images show the others in blue, and an area where too few "
        "can be scored is refused.</p>"
        "<p><b>How long</b>: as one run of the method on an image the scale factor smaller; choose an extent of "
        "a few hundred pixels on a CPU.</p>"
    )

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:  # noqa: N802
        self.add_raster_input("The raster to evaluate on (for guided DIP: the low-resolution target).")
        self.add_bands(help_text="Bands to evaluate, numbered from 1 (empty: every band); each gets its own scores "
                       "beside the overall ones.")
        self.add_extent(use="the evaluation degrades and scores exactly those pixels")
        self.add_choice(
            self.METHOD, "Method", EVALUATION_METHODS,
            "The method to score: Deep Image Prior, Neural Knitworks, guided DIP (needs a guide), or bicubic alone.",
        )
        self.add_scale(
            "The factor of the protocol: the raster is degraded by it and super-resolved back by it. Guided DIP: "
            "the guide/target grid ratio (both are degraded by it, keeping their ratio)."
        )
        self.add_kernel(
            options=EVALUATION_KERNELS,
            extra_help="The degradation of the protocol, which the method is also told. 'auto': 'sentinel2' for "
            "guided DIP, 'bicubic' otherwise. 'sentinel2' (guided DIP only) blurs each band with its MTF. ",
        )
        self.add_int(
            self.ITERATIONS, "Iterations (0 = automatic)", 0,
            "Optimisation steps per tile; 0 uses the method's tested default.", minimum=0, maximum=100000,
        )
        self.add_raster_input(
            "Guided DIP only: the finer raster of the same scene (e.g. Sentinel-2 10 m bands).", self.GUIDE,
            "Guide raster (guided DIP)", optional=True,
        )
        self.add_bands(self.GUIDE_BANDS, self.GUIDE, "Guide bands", "Guide bands to use, numbered from 1 (empty: all).")
        self.add_choice(self.GUIDE_KERNEL, "Guide blur kernel", GUIDED_KERNELS, "Guided DIP only: the blur of the guide bands.")
        self.add_run_options("low-resolution", float32=False)
        self.add_file_output(
            self.OUTPUT, "Report", tr("HTML files (*.html)"),
            "Optional: the HTML report to write (the toolbox offers a temporary file; left out of a script or a model, "
            "none is written). The scores are outputs either way.", optional=True,
        )
        self.add_file_output(
            self.OUTPUT_JSON, "Scores (JSON)", tr("JSON files (*.json)"), "Optional: every score and setting as JSON.", optional=True
        )
        for name in SCORES:
            self.addOutput(QgsProcessingOutputNumber(name, tr("{} of the method").format(name)))
        for name, description in BASELINE_PSNR.items():
            self.addOutput(QgsProcessingOutputNumber(name, tr(description)))
        self.addOutput(QgsProcessingOutputNumber(SCORED_FRACTION, tr("Fraction of the reference pixels scored")))

    def prepare_job(
        self, parameters: dict[str, Any], context: QgsProcessingContext, feedback: QgsProcessingFeedback | None
    ) -> Job:
        from ..core.evaluation import default_kernel, method_config

        source, bands, scale = self.read_input(parameters, context)
        method = self.read_choice(parameters, self.METHOD, context)
        guide = None if is_unset(parameters.get(self.GUIDE)) else self.read_source(parameters, context, self.GUIDE)
        options = self.read_run_options(parameters, context)
        guide_kernel = self.read_guide_kernel(parameters, context)
        kernel = self.read_kernel(parameters, context, feedback, [guide_kernel] if method == "guided" else [])
        if kernel == "auto":
            kernel = default_kernel(method)
        config = method_config(
            method, scale, kernel, guide_kernel,
            iterations=self.parameterAsInt(parameters, self.ITERATIONS, context) or None,
            **options.config_fields(),
        )
        io = IOOptions(bands=bands, extent=self.read_extent(parameters, context), crs=source.crs)
        guide_io = IOOptions(bands=self.read_bands(parameters, context, guide, self.GUIDE_BANDS), crs=guide.crs) if guide else None
        input_path, guide_path = source.path, guide.path if guide else None
        inputs = [input_path] + ([guide_path] if guide_path else [])
        report = self.read_file_output(parameters, context, self.OUTPUT, inputs)  # "": no report, as without --report
        scores_json = self.read_file_output(parameters, context, self.OUTPUT_JSON, inputs)
        from ..core.report import check_two_files

        check_two_files(report, scores_json)
        if method == "guided" and guide is None:
            raise QgsProcessingException(tr("Method guided needs a guide raster (GUIDE)"))
        from ..core.evaluation import plan_evaluation

        plan = plan_evaluation(input_path, method, scale, kernel, config, io, guide_path, guide_io or IOOptions())

        def run(progress: Any) -> Any:
            from ..core.report import evaluate_to_files

            return evaluate_to_files(
                input_path, method, scale, kernel, config, io, guide_path, guide_io, report or None, scores_json or None,
                progress,
            )

        settings = {
            **input_settings(source, bands, extent_text(io.extent)),
            tr("Method"): method,
            tr("Scale"): f"×{scale}",
            tr("Kernel"): kernel,
            tr("Iterations"): str(config.steps) if config is not None else "-",
            tr("Device requested"): options.device,
            tr("Seed"): str(options.seed),
        }
        if plan.tiles is not None:  # the method tiles the degraded image (bicubic does not)
            settings[tr("Tiles")] = tiles_text(config.tiles, plan.tiles, plan.area.width // scale, plan.area.height // scale)
        settings[tr("Report")] = report or tr("none")
        if guide is not None:
            settings[tr("Guide")] = f"{guide.name} ({guide.width} × {guide.height} pixels), kernel {guide_kernel}"
        outputs = {self.OUTPUT: report or None, **({self.OUTPUT_JSON: scores_json} if scores_json else {})}
        return Job(run, settings, outputs)  # OUTPUT: the report alone (the run's output_path is the JSON without one)

    def result_outputs(self, result: Any) -> dict[str, Any]:
        """The method's overall scores (``SCORES``) and the baselines' PSNR (``BASELINE_PSNR``), for the model designer:
        ``None`` for a score not given or not defined (SAM of one band, PSNR with mixed units: ``null`` in the JSON) as
        for a baseline the method is not scored beside; an infinite score (a perfect estimate's PSNR) stays infinite;
        and the fraction of the reference pixels the scores take (``SCORED_FRACTION``, 1.0 without nodata)."""
        from ..core.evaluation import BICUBIC, BICUBIC_BP, HPF_BP

        evaluation = result.evaluation
        values = {name: evaluation.method_scores.overall[name.lower()] for name in SCORES}
        scores = {s.label: s.overall["psnr"] for s in evaluation.scores}
        values.update({name: scores.get(label) for name, label in zip(BASELINE_PSNR, (BICUBIC, BICUBIC_BP, HPF_BP))})
        values[SCORED_FRACTION] = evaluation.scored_fraction
        return {name: None if value is None or math.isnan(value) else value for name, value in values.items()}
