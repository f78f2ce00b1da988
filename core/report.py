"""The evaluation report: one self-contained HTML page (images embedded as PNG data), and its JSON twin.

The page shows what was evaluated and how (Wald's protocol, the settings, how many reference pixels were scored:
``Evaluation.scored_note``, as the printed table and the JSON say), the overall scores of every
method and the per-band scores with the best as printed in bold, image crops side by side (low
resolution, every estimate, the reference, and the error maps of bicubic, of the strongest baseline and
of the method on one shared scale: in the bands' unit, or relative to each band's range where the bands declare
different units; the pixels no score takes painted blue, ``figures.paint``) and the method's training-loss curve.
Files are written atomically. Where the
bands declare different units, the overall scores that would mix them are not given (``Evaluation.mixed_units``);
such a score, and one not defined (SAM of one band, PSNR of a constant band), is a dash in the page and the text
table and ``null`` in the JSON, and all three say why in the same words (``Evaluation.undefined_notes``).
"""

from __future__ import annotations

import html
import json
import os
from dataclasses import dataclass

import numpy as np

from . import figures, metrics
from .config import InternalLearningConfig, IOOptions, as_paths
from .errors import InputError
from .evaluation import BICUBIC, Evaluation, evaluate
from .metrics import HIGHER_IS_BETTER
from .pipeline import RunResult
from .progress import Progress
from .raster import StagedFiles, check_output_paths, claimed, same_file, staged, write_file_atomically
from .sentinel2 import band_name

#: Edge (reference pixels) of the central crop shown in the report.
CROP = 192
#: Smallest displayed edge of a panel (screen pixels); smaller crops are enlarged by whole factors.
PANEL = 256
METRIC_NAMES = {"psnr": "PSNR (dB)", "ssim": "SSIM", "rmse": "RMSE", "sam": "SAM (°)", "ergas": "ERGAS", "sre": "SRE (dB)"}
#: Band composites the image panels use when all their bands are there, first match first: (red, green, blue)
#: canonical band names and what the composite shows.
COMPOSITES = (
    (("B4", "B3", "B2"), "true colour for Sentinel-2 and Landsat 8–9"),
    (("B12", "B8A", "B5"), "Sentinel-2's short-wave infrared false colour for its 20 m bands: vegetation green, "
                           "bare ground pink to brown, water dark"),
)


def display_bands(names: list[str]) -> tuple[tuple[int, ...], str]:
    """Bands shown in the image panels and how: the first of ``COMPOSITES`` whose bands are all there (B4, B3,
    B2 is true colour for Sentinel-2 and Landsat 8–9; on Landsat 5/7 it is a false-colour composite, and the
    caption does not claim otherwise), else the first three bands as R, G, B, else band 1 in grey."""
    canonical = [band_name(n) for n in names]
    for bands, shows in COMPOSITES:
        if all(b in canonical for b in bands):
            return tuple(canonical.index(b) for b in bands), f"{', '.join(bands)} as red, green, blue ({shows})"
    if len(names) >= 3:
        return (0, 1, 2), f"{names[0]}, {names[1]}, {names[2]} as red, green, blue"
    return (0,), f"{names[0]} in grey"


def _finite(value: object) -> object:
    """``value`` with every infinite or NaN float (a perfect score, SAM of one band) replaced by ``None``."""
    if isinstance(value, float):
        return value if np.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def write_json(evaluation: Evaluation, path: str, files: StagedFiles | None = None) -> None:
    """The evaluation's ``as_dict`` as indented strict JSON at ``path`` (undefined or infinite scores: ``null``)."""
    write_file_atomically(path, json.dumps(_finite(evaluation.as_dict()), indent=1, allow_nan=False).encode(), files)


def _panels(evaluation: Evaluation) -> tuple[list[tuple[str, np.ndarray]], str]:
    """(caption, RGB image) of each panel over the central crop, and a sentence on how they are displayed."""
    s = evaluation.scale
    reference = evaluation.reference
    h, w = reference.shape[-2:]
    size_h, size_w = min(CROP, h) // s * s, min(CROP, w) // s * s
    top, left = (h - size_h) // 2 // s * s, (w - size_w) // 2 // s * s
    crop = (slice(None), slice(top, top + size_h), slice(left, left + size_w))
    low_crop = (slice(None), slice(top // s, (top + size_h) // s), slice(left // s, (left + size_w) // s))
    scored = evaluation.scored[crop[1:]]
    low = evaluation.low[low_crop]
    channels, how = display_bands(evaluation.band_names)
    limits = figures.display_limits(reference[crop], channels, scored)
    factor = max(1, PANEL // max(size_h, size_w))
    method = evaluation.method_scores.label

    def image_panel(image: np.ndarray, shown: np.ndarray) -> np.ndarray:
        return figures.paint(figures.to_rgb(image, channels, limits), shown)

    panels = [(f"low resolution (×{s} coarser)", figures.enlarge(image_panel(low, np.isfinite(low).all(axis=0)), s))]
    panels += [(label, image_panel(image[crop], scored)) for label, image in evaluation.estimates.items()]
    panels.append(("reference", image_panel(reference[crop], scored)))
    baselines = [s for s in evaluation.scores if s.label != method]
    rank = "ergas" if evaluation.mixed_units else "rmse"  # ERGAS, relative to each band's mean, mixes no units
    strongest = min(baselines, key=lambda s: s.overall[rank]).label  # the baseline the method must beat
    shown = dict.fromkeys((BICUBIC, strongest, method))
    relative = evaluation.mixed_units  # absolute errors of bands in different units would mix the units
    errors = {label: figures.error_map(evaluation.estimates[label][crop], reference[crop], relative, scored) for label in shown}
    maximum = float(np.percentile(errors[BICUBIC][scored], 99)) if scored.any() else 0.0
    error_caption = "|{} − reference| ÷ band range" if relative else "|{} − reference|"
    panels += [(error_caption.format(label), figures.paint(figures.error_rgb(error, maximum), scored)) for label, error in errors.items()]
    measure = ("mean over bands of each band's absolute error divided by that band's range in the reference (2nd to 98th "
               "percentile over the crop; a band of no range counts 0), as the bands declare different units, which "
               "absolute errors would mix" if relative else "mean absolute error over bands")
    note = (f"Central {size_w} × {size_h} pixel crop, {how}, stretched between the reference's 2nd and 98th "
            f"percentiles. Error maps of bicubic, of the strongest baseline (lowest {METRIC_NAMES[rank]}) and of the method: "
            f"{measure}, black = 0 to white = {maximum:.4g} (the 99th percentile of bicubic's error).")
    if not evaluation.scored.all():
        guide = ", or where the guide degraded onto them is nodata" if evaluation.method == "guided" else ""
        note += (" Blue: the pixels no score takes (invalid in the reference, or whose low-resolution pixel is nodata in "
                 f"the simulated input, blue in its own panel{guide}), whatever an estimate holds there.")
    return [(caption, figures.enlarge(rgb, factor)) for caption, rgb in panels], note


#: Magnitudes ``_fmt`` shows in fixed point (4 decimals below 10, 2 from there): at least 4 significant digits, at
#: most 9 characters. Others (an RMSE of 3.7e-05 on a raster of small values, of 2.1e+08 on an int32 one) get 4
#: significant digits in scientific notation, so that they neither read as 0 nor widen a column.
FIXED_POINT = (0.1, 1e6)


def _fmt(value: float) -> str:
    """A score for display (``FIXED_POINT``); an undefined one (NaN, e.g. SAM of a single band) as a dash, an
    infinite one (PSNR or SRE of a perfect estimate) as ∞. The JSON keeps every score's full precision."""
    if np.isnan(value):
        return "—"
    if np.isinf(value):
        return "∞" if value > 0 else "−∞"
    if value != 0 and not FIXED_POINT[0] <= abs(value) < FIXED_POINT[1]:
        return f"{value:.4g}"
    return f"{value:.4f}" if abs(value) < 10 else f"{value:.2f}"


#: The sentence that opens each overall score's note on the bands it leaves out (``metrics.LEFT_OUT_METRICS``).
LEFT_OUT_NOTES = {
    "ergas": "Overall ERGAS: over the bands whose ERGAS is finite; left out (∞ or —: reference mean 0): ",
    "sre": "Overall SRE: the mean over the bands whose SRE is finite; left out (∞: reproduced exactly; −∞ or —: "
    "reference mean 0): ",
}


def left_out_notes(evaluation: Evaluation) -> list[str]:
    """For each overall score that leaves bands out (``metrics.left_out``: their score is not finite), a sentence
    naming, for each method, those bands with their score; none for a score that leaves no band out. First the
    sentences on the scores not given or not defined (``Evaluation.undefined_notes``: mixed units, SAM of one band,
    PSNR and SSIM of a constant band), the same in the page, the printed table, the JSON and the log."""
    notes = [f"{note}." for note in evaluation.undefined_notes]
    for metric, opening in LEFT_OUT_NOTES.items():
        parts = []
        for s in evaluation.scores:
            values = s.per_band[metric]
            left = metrics.left_out(values)
            if left:
                parts.append(f"{s.label}: " + ", ".join(f"{evaluation.band_names[b]} ({_fmt(values[b])})" for b in left))
        if parts:
            notes.append(opening + "; ".join(parts) + ".")
    return notes


def _cells(values: list[float], metric: str) -> list[str]:
    """Table cells of one column of ``metric`` scores, the best in bold: every value that *reads* as the best
    (as ``_fmt`` prints it, so ties to the printed digit are all bold); undefined (NaN) values never are."""
    shown = [v for v in values if not np.isnan(v)]
    best = _fmt((max if HIGHER_IS_BETTER[metric] else min)(shown)) if shown else None
    return [f"<td><b>{_fmt(v)}</b></td>" if _fmt(v) == best else f"<td>{_fmt(v)}</td>" for v in values]


def _table(labels: list[str], head: list[str], columns: list[list[str]]) -> str:
    """An HTML table: a row per label, ``columns`` of cells (``_cells``) under ``head``."""
    rows = "".join(f"<tr><th>{html.escape(label)}</th>{''.join(row)}</tr>" for label, row in zip(labels, zip(*columns)))
    return f"<table><tr><th>method</th>{''.join(f'<th>{html.escape(h)}</th>' for h in head)}</tr>{rows}</table>"


def _overall_table(evaluation: Evaluation) -> str:
    labels = [s.label for s in evaluation.scores]
    columns = [_cells([s.overall[m] for s in evaluation.scores], m) for m in HIGHER_IS_BETTER]
    return _table(labels, [METRIC_NAMES[m] for m in HIGHER_IS_BETTER], columns)


def _band_tables(evaluation: Evaluation) -> str:
    labels = [s.label for s in evaluation.scores]
    parts = []
    for metric in evaluation.scores[0].per_band:
        columns = [_cells([s.per_band[metric][b] for s in evaluation.scores], metric) for b in range(len(evaluation.band_names))]
        parts.append(f"<h3>{METRIC_NAMES[metric]}</h3>{_table(labels, list(evaluation.band_names), columns)}")
    return "".join(parts)


STYLE = """
body { font-family: sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1em; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
th:first-child { text-align: left; }
figure { display: inline-block; margin: 0 8px 8px 0; vertical-align: top; }
figcaption { font-size: 90%; text-align: center; }
img { image-rendering: pixelated; }
"""


def render_html(evaluation: Evaluation) -> str:
    """The report page as a string (see the module docstring)."""
    e = evaluation
    h, w = e.reference.shape[-2:]
    window = e.window
    settings = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in e.settings.items())
    panels, note = _panels(e)
    scaling = f"{html.escape(e.scaling_note)}.\n" if e.scaling_note else ""
    left_out = "".join(f"<p>{html.escape(note)}</p>" for note in left_out_notes(e))
    figures_html = "".join(f"<figure>{figures.html_image(rgb, caption)}<figcaption>{html.escape(caption)}</figcaption></figure>" for caption, rgb in panels)
    if e.run is not None:
        curve = figures.loss_curve(e.run.curves, e.method_scores.label)
        loss = (f"<h2>Training loss</h2><p>{e.run.steps} optimisation steps in {e.run.seconds:.1f} s on {html.escape(e.run.device)}. "
                "A curve still falling at its end means more iterations may help; the run stops by itself "
                "when the loss stops improving.</p>" + figures.html_image(curve, "training loss"))
    else:
        loss = ""
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Internal SR evaluation: {html.escape(os.path.basename(e.input_path))}</title>
<style>{STYLE}</style></head><body>
<h1>Wald's protocol evaluation</h1>
<p><b>{html.escape(e.input_path)}</b>, columns {window.col_off}–{window.col_off + w - 1}, rows {window.row_off}–{window.row_off + h - 1}
({w} × {h} pixels). The image was degraded ×{e.scale} with the kernel <code>{html.escape(e.kernel)}</code>, super-resolved back to
its own grid by each method, and compared with itself: the scores measure how well each method restores detail the
degradation removed. Higher is better for PSNR, SSIM and SRE; lower for RMSE, SAM and ERGAS (RMSE in {html.escape(e.rmse_unit)}).
{scaling}Overall SRE is the mean of the bands' SRE in dB, as the Sentinel-2 super-resolution literature reports it; a band whose
SRE is not finite (∞ when it is reproduced exactly) is left out of that mean, so the other bands still show, and named
under the table; so is a band whose ERGAS is not finite (its mean is 0) from the overall ERGAS. Best of each column in bold.</p>
<h2>Scores</h2><p>{html.escape(e.scored_note)}.</p>{_overall_table(e)}{left_out}
<h2>Images</h2><p>{html.escape(note)}</p>{figures_html}
{loss}
<h2>Per band</h2>{_band_tables(e)}
<h2>Settings</h2><table>{settings}<tr><th>evaluation time</th><td>{e.seconds:.1f} s</td></tr></table>
</body></html>
"""


def write_html(evaluation: Evaluation, path: str, files: StagedFiles | None = None) -> None:
    """Write the report page to ``path`` atomically (with ``files``: when that group is committed)."""
    write_file_atomically(path, render_html(evaluation).encode(), files)


def text_table(evaluation: Evaluation) -> str:
    """The overall scores as a plain-text table (the command line prints it), then the ``scored_note`` and the
    ``left_out_notes``."""
    width = max(len(s.label) for s in evaluation.scores)
    heads = [METRIC_NAMES[m] for m in HIGHER_IS_BETTER]
    cells = [[_fmt(s.overall[m]) for m in HIGHER_IS_BETTER] for s in evaluation.scores]
    # columns 12 characters wide, wider where a cell needs it: two blanks at least before each
    widths = [max(12, 2 + max(len(text) for text in column)) for column in zip(heads, *cells)]
    lines = [f"{label:<{width}}" + "".join(f"{text:>{w}}" for text, w in zip(row, widths))
             for label, row in [("", heads)] + [(s.label, row) for s, row in zip(evaluation.scores, cells)]]
    return "\n".join(lines + [f"{evaluation.scored_note}.", *left_out_notes(evaluation)])


@dataclass
class EvaluationRun(RunResult):
    """``evaluate_to_files``'s result: the run (``output_path`` is the report, or the JSON) and the evaluation."""

    evaluation: Evaluation | None = None


def check_two_files(report_path: str | None, json_path: str | None) -> None:
    """Refuse, in one line, a report and a JSON that would be one file (front ends check before a run)."""
    if report_path and json_path and same_file(report_path, json_path):
        raise InputError(f"the report and the JSON would both be {report_path}: choose two paths")


def evaluate_to_files(
    input_path: str,
    method: str,
    scale: int,
    kernel: str,
    config: InternalLearningConfig | None,
    io: IOOptions,
    guide_path: str | None,
    guide_io: IOOptions | None,
    report_path: str | None,
    json_path: str | None,
    progress: Progress | None = None,
    log_notes: bool = True,
) -> EvaluationRun:
    """``evaluation.evaluate`` (``log_notes`` as there) then the HTML report and/or JSON, moved into place together;
    output paths are checked before any work. Paths may be ``str`` or ``os.PathLike``."""
    input_path, guide_path, report_path, json_path = as_paths(input_path, guide_path, report_path, json_path)
    inputs = [input_path] + ([guide_path] if guide_path else [])
    check_two_files(report_path, json_path)
    outputs = [path for path in (report_path, json_path) if path]
    check_output_paths(outputs, inputs)
    with claimed(outputs):
        e = evaluate(input_path, method, scale, kernel, config, io, guide_path, guide_io or IOOptions(), progress, log_notes)
        with staged() as files:
            if report_path:
                write_html(e, report_path, files)
            if json_path:
                write_json(e, json_path, files)
    run = e.run or RunResult("", "cpu", 0.0, 0)
    return EvaluationRun(report_path or json_path or "", run.device, e.seconds, run.steps, run.messages, run.curves, evaluation=e)
