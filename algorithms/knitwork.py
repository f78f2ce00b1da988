"""Processing algorithm ``internal_sr:knitwork``: super-resolve a raster with Neural Knitworks."""

from __future__ import annotations

from typing import Any

from qgis.core import QgsProcessingOutputFile

from ..core.config import KNITWORK_ITERATIONS, LEARNED_KERNEL, KnitworkConfig
from .base import KERNELS, SUPER_RESOLUTION_TAGS, tr
from .dip import DIPAlgorithm
from .run_times import presets_text, run_time_help


class KnitworkAlgorithm(DIPAlgorithm):
    """Parameters → ``KnitworkConfig`` and ``IOOptions`` → ``core.pipeline.super_resolve``.

    The same parameters as ``internal_sr:dip`` (see ``DIPAlgorithm``; step windows included), plus the ``learned``
    kernel, whose file is the LEARNED_KERNEL output.
    """

    CONFIG = KnitworkConfig
    KERNEL_OPTIONS = (*KERNELS, LEARNED_KERNEL)
    KERNEL_HELP = (
        "'learned' learns the blur with the image, starting from bicubic (experimental: see the README); the kernel "
        "learnt is kept beside the output as OUTPUT.tif.kernel.npy with a .png preview and a .npy.json record (output "
        "LEARNED_KERNEL), for the Kernel file of any method. "
    )
    LEARNED_KERNEL = "LEARNED_KERNEL"
    STEP_WINDOW_HELP = (
        "The default, 0.7 (about half the time of a whole-tile step, with 450 steps instead of 300), scored as well "
        "as whole-tile steps on the development crops (see the README)."
    )

    ALGORITHM_ID = "knitwork"
    DISPLAY_NAME = "Super-resolve (Neural Knitworks)"
    DESCRIPTION = "Sharpen a raster by an integer factor with Neural Knitworks, a patch-predicting coordinate network."
    TAGS = (
        *SUPER_RESOLUTION_TAGS,
        "neural implicit representation",
        "coordinate network",
        "knitworks",
    )
    README_SECTION = "Super-resolve (Neural Knitworks)"
    SUMMARY = (
        "<p>Refines the pixel grid of a raster by an integer factor with Neural Knitworks (Czerkawski et al. "
        "2024): a small network maps each output pixel's position to a small patch of values around it, at "
        "three scales. It is optimised from scratch on this image alone so that the output, blurred and "
        "downsampled, reproduces the input; overlapping patches must agree with each other, and a second "
        "network pushes the output's patches to look like the input's own patches. No training data, nothing "
        "downloaded; any sensor and band. It has about half the parameters of our Deep Image Prior network.</p>"
        "<p>The output lies on the input grid refined by the scale (same CRS and origin, pixel size divided by "
        "the scale); band names, nodata and the data type are kept (Float32 on request). Large rasters are "
        "processed in overlapping tiles.</p>"
        f"<p><b>Typical settings</b>: scale 2, bicubic kernel, iterations 0 (automatic: {KNITWORK_ITERATIONS}), "
        "device auto.</p>"
        + run_time_help("knitwork")
    )
    METHOD = "knitwork"

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:  # noqa: N802
        super().initAlgorithm(config)
        self.addOutput(QgsProcessingOutputFile(
            self.LEARNED_KERNEL, tr("Learned kernel (.npy beside the output; with kernel 'learned', else empty)")
        ))

    def result_outputs(self, result: Any) -> dict[str, Any]:
        """LOSS_CURVE and LEARNED_KERNEL: the kernel file kept beside the output (``""`` for a fixed kernel)."""
        return {**super().result_outputs(result), self.LEARNED_KERNEL: result.kernel_path or ""}

    def iterations_help(self) -> str:
        return (
            f"Optimisation steps per tile. 0 picks the default ({KNITWORK_ITERATIONS}). Fewer steps are faster; "
            f"the run also stops early once the fit stops improving. Quality presets: {presets_text(self.METHOD)}."
        )
