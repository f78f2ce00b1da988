"""Processing algorithm ``internal_sr:kernelgan``: estimate a raster's own blur kernel with KernelGAN."""

from __future__ import annotations

import html
import os
from typing import Any

from qgis.core import QgsProcessingContext, QgsProcessingFeedback, QgsProcessingOutputFile

from ..core.config import ORIENTATIONS, IOOptions, KernelGANConfig
from .base import InternalSRAlgorithm, Job, extent_text, input_settings, tr


def summary_html(input_name: str, config: KernelGANConfig, result: Any) -> str:
    """The HTML report of a run, whole in one file: settings, each kernel's file and width, and its picture
    (embedded, labelled with what the kernel is for)."""
    from ..core.figures import html_image
    from ..core.kernels import kernel_preview

    rows = [
        (tr("Input"), input_name),
        (tr("Scale"), f"×{config.scale}" + (tr(" (the ×2 kernel composed with itself)") if config.scale == 4 else "")),
    ]
    for path, width, label in zip(result.kernel_paths, result.widths, result.labels):
        rows += [(tr("Kernel file ({})").format(label), path), (tr("Width (fitted Gaussian)"), width)]
    rows += [
        (tr("Use it"), tr("each band's file as the kernel file (KERNEL_FILE) of Super-resolve or Degrade at the same "
                          "scale, on that band alone") if config.per_band
         else tr("as the kernel file (KERNEL_FILE) of Super-resolve or Degrade at the same scale")),
        (tr("Run"), tr("{} steps on {} in {:.1f} s, seed {}").format(result.steps, result.device, result.seconds, config.seed)),
    ]
    table = "".join(f"<tr><th align='left'>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in rows)
    previews = "".join(
        f"<figure>{html_image(kernel_preview(kernel, config.scale), os.path.basename(path))}"
        f"<figcaption>{html.escape(label)}: {html.escape(os.path.basename(path))}</figcaption></figure>"
        for path, kernel, label in zip(result.kernel_paths, result.kernels, result.labels)
    )
    title = html.escape(tr("Estimated blur kernel (KernelGAN)"))
    return (
        f"<html><head><meta charset='utf-8'><title>{title}</title></head><body><h2>{title}</h2><table>{table}</table>"
        f"{previews}</body></html>\n"
    )


class KernelGANAlgorithm(InternalSRAlgorithm):
    """Parameters → ``KernelGANConfig`` → ``core.kernelgan.estimate_kernel_file``; writes the kernel and a report."""

    ITERATIONS = "ITERATIONS"
    PER_BAND = "PER_BAND"
    ORIENTATION = "ORIENTATION"
    OUTPUT_HTML = "OUTPUT_HTML"
    PREVIEW = "PREVIEW"

    ALGORITHM_ID = "kernelgan"
    DISPLAY_NAME = "Estimate blur kernel (KernelGAN)"
    DESCRIPTION = "Estimate the raster's own blur kernel (point spread function) with KernelGAN."
    TAGS = (
        "blur kernel",
        "kernel estimation",
        "point spread function",
        "PSF",
        "MTF",
        "KernelGAN",
        "blind super-resolution",
        "deblur",
    )
    README_SECTION = "Estimate the blur kernel (KernelGAN)"
    SUMMARY = (
        "<p>Learns how this raster's sensor blurs the scene, from the raster alone (KernelGAN, Bell-Kligler, "
        "Shocher and Irani 2019): a linear network learns to shrink the image by 2 so that a second network "
        "cannot tell its small patches from the image's own; the shrinking it learns is the blur kernel. The "
        "kernel is saved as a NumPy .npy file (with a PNG preview) for the <i>Kernel file</i> of "
        "Super-resolve and Degrade: super-resolution with the image's own kernel is sharper and rings less "
        "than with an assumed bicubic one. The report gives the kernel's width as the standard deviations of "
        "a fitted Gaussian in input pixels (comparable with the 'gaussian' kernel's sigma).</p>"
        "<p><b>Kernel shape</b>: KernelGAN finds the blur's size well but its direction poorly, so by default the "
        "kernel written is the Gaussian with the size of KernelGAN's kernel and the elongation and direction read "
        "from the raster's power spectrum (advanced setting <i>Kernel shape from</i>; 'kernelgan' writes "
        "KernelGAN's own kernel, as in the paper).</p>"
        "<p><b>Typical settings</b>: scale 2 (or 4: the ×2 kernel composed with itself), 3000 iterations, "
        "every band (one kernel shared by the bands). The raster must be at least 64 × 64 pixels; a few "
        "hundred pixels across with visible structure (fields, roads, coast) work best.</p>"
        f"<p><b>Which pixels</b>: the whole raster (or Extent) up to {KernelGANConfig.max_window} pixels wide and high; "
        f"a larger one is estimated on its {KernelGANConfig.max_window} × {KernelGANConfig.max_window} window with the "
        "most structure, so memory does not grow with the raster. The log names the window; use the Extent to "
        "choose another area.</p>"
        "<p><b>How long</b>: about two minutes per band group at 3000 iterations on one core of a server CPU "
        "(measured); the time hardly depends on the raster's size. GPU times are not measured yet.</p>"
        "<p>In the model designer, connect its kernel file to <i>Super-resolve</i>'s Kernel file to estimate "
        "and super-resolve in one go (with one kernel shared by the bands: Super-resolve refuses the list of files "
        "that One kernel per band gives).</p>"
    )

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:  # noqa: N802
        self.add_raster_input(
            "The raster whose blur to estimate, usually the one you will super-resolve: any GDAL format and data type."
        )
        self.add_bands(help_text="Bands to learn the kernel from, numbered from 1 (empty: every band); they share "
                       "one kernel unless One kernel per band is ticked.")
        self.add_extent(use="the kernel is learnt from exactly those pixels")
        self.add_int(
            self.SCALE,
            "Scale factor",
            2,
            "The super-resolution factor the kernel is for: 2, or 4 (the ×2 kernel composed with itself, as in the paper).",
            minimum=2,
            maximum=4,
        )
        self.add_int(
            self.ITERATIONS,
            "Iterations",
            KernelGANConfig.iterations,
            "Training steps; 3000 is the paper's setting. Fewer steps give a rougher kernel.",
            minimum=1,
            maximum=100000,
        )
        self.add_bool(
            self.PER_BAND,
            "One kernel per band",
            False,
            "Estimate a separate kernel for each band, written as NAME_bandN.npy beside the kernel file; the Kernel "
            "file output (OUTPUT) then lists every band's file, separated by ';', in band order, and Kernel preview "
            "each band's PNG. A method's Kernel file refuses such a list (one kernel blurs all the bands of a run): "
            "give it one band's file and run that band alone. Off: one kernel shared by the bands, the paper's "
            "setting for colour images and the one Super-resolve takes.",
        )
        self.add_choice(
            self.ORIENTATION,
            "Kernel shape from",
            ORIENTATIONS,
            "spectrum (default): KernelGAN gives the kernel's size, the raster's power spectrum its elongation and "
            "direction, and the kernel is written as a Gaussian; KernelGAN's own direction is often wrong, and a "
            "wrongly oriented kernel is worse than none. kernelgan: KernelGAN's own kernel, as in the paper.",
            advanced=True,
        )
        self.add_device()
        self.add_seed()
        self.add_file_output(
            self.OUTPUT, "Kernel file", tr("NumPy files (*.npy)"),
            "The kernel to write (.npy); a .png preview (output PREVIEW) and a .npy.json scale record are written beside "
            "it. With One kernel per band, NAME_bandN.npy for each band instead, which this output lists, separated by ';'.",
        )
        self.addOutput(QgsProcessingOutputFile(
            self.PREVIEW, tr("Kernel preview (PNG beside the kernel file; one per band, separated by ';')")
        ))
        self.add_file_output(
            self.OUTPUT_HTML,
            "Report",
            tr("HTML files (*.html)"),
            "Optional HTML summary: the kernel's size, width and preview.",
            optional=True,
        )

    def prepare_job(
        self, parameters: dict[str, Any], context: QgsProcessingContext, feedback: QgsProcessingFeedback | None
    ) -> Job:
        source, bands, scale = self.read_input(parameters, context)
        config = KernelGANConfig(
            scale=scale,
            iterations=self.parameterAsInt(parameters, self.ITERATIONS, context),
            per_band=self.parameterAsBool(parameters, self.PER_BAND, context),
            orientation=self.read_choice(parameters, self.ORIENTATION, context),
            seed=self.parameterAsInt(parameters, self.SEED, context),
            device=self.read_device(parameters, context),
        )
        output = self.read_file_output(parameters, context, self.OUTPUT, [source.path])
        report = self.read_file_output(parameters, context, self.OUTPUT_HTML, [source.path])
        io = IOOptions(bands=bands, extent=self.read_extent(parameters, context), crs=source.crs)
        from ..core.kernelgan import check_kernel_files

        _info, kernels = check_kernel_files(source.path, output, config, io, [report])
        from ..core.kernels import kernel_files

        self.check_not_open([file for kernel in kernels for file in kernel_files(kernel)], context, [source.path])
        input_path, input_name = source.path, source.name

        def run(progress: Any) -> Any:
            from ..core.kernelgan import estimate_kernel_file
            from ..core.raster import staged

            with staged() as files:  # the kernel files and the report move into place together
                if report:
                    files.claim(report)  # at the start, as the kernel files are (``raster.claimed``)
                result = estimate_kernel_file(input_path, output, config, io, progress, files)
                if report:
                    files.write(report, summary_html(input_name, config, result).encode("utf-8"))
            return result

        settings = {
            **input_settings(source, bands, extent_text(io.extent)),
            tr("Scale"): f"×{scale}",
            tr("Iterations"): str(config.iterations),
            tr("Kernels"): tr("one per band") if config.per_band else tr("one shared by the bands"),
            tr("Kernel shape from"): config.orientation,
            tr("Device requested"): config.device,
            tr("Seed"): str(config.seed),
            tr("Kernel files") if config.per_band else tr("Kernel file"): ", ".join(kernels),
        }
        return Job(run, settings, {self.OUTPUT_HTML: report} if report else {})

    def result_outputs(self, result: Any) -> dict[str, Any]:
        """OUTPUT and PREVIEW: the kernel file and the PNG beside it; with one kernel per band, every band's, joined by
        ``;`` in band order, so that each is reachable and a method's KERNEL_FILE given OUTPUT refuses it
        (``InternalSRAlgorithm.read_kernel``) instead of blurring every band with the first band's."""
        from ..core.kernels import kernel_preview_path

        return {
            self.OUTPUT: ";".join(result.kernel_paths),
            self.PREVIEW: ";".join(kernel_preview_path(path) for path in result.kernel_paths),
        }
