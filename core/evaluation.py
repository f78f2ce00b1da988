"""Wald's protocol: degrade a real image by ``s``, super-resolve it back, compare with the original.

Methods run on the raster's stored values, as a run on the file does; every score is computed on physical values,
stored value × scale + offset as the bands declare them (``physical_values``: what an output, which keeps the scale
and offset, stands for), so that the scores of one scene do not depend on how it is stored (digital numbers with a
scale, or floats). The degradation is ``core.degradation``'s operator, so evaluation, training losses and
back-projection share one sensor model.

Rasters with invalid pixels (nodata, values that are not finite or are fill values, in any evaluated band:
``raster.valid_mask``) are scored on what they hold (``simulated_input``): a low-resolution pixel whose kernel footprint
reaches an invalid pixel is nodata (NaN) in the simulated input, which every method and baseline reads as nodata
(``super_resolve_array``, ``sharpen_array``, the baselines' ``dip.fill_invalid``), and the scores take the reference
pixels that are valid and whose low-resolution pixel is valid (for guided DIP also where the guide degraded onto them
is), the same pixels for every row (``Evaluation.scored``, ``metrics``' ``mask``). Too few of them is refused
(``check_scored``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from scipy.ndimage import minimum_filter

from . import metrics
from .config import (
    EVALUATION_METHODS,
    DIPConfig,
    GuidedDIPConfig,
    InternalLearningConfig,
    IOOptions,
    KnitworkConfig,
    TileOptions,
    as_paths,
    check_scale,
    recorded_path,
    size_remedy,
    size_subject,
)
from .degradation import Degradation, back_project, degrade_array, degrade_valid, in_float32, upsample
from .dip import fill_invalid
from .errors import InputError
from .grid import Window
from .kernels import Kernel, check_kernel_fits, loading_notes, make_kernel
from .pipeline import RunResult, _Recorder, _log_input, array_tiles, log_nodata_warnings, super_resolve_array
from .progress import NullProgress, Progress, SubProgress
from .raster import RasterInfo, open_info, read_window, value_text

#: Back-projection steps of the "bicubic + back-projection" and "HPF injection + back-projection" baselines (converged
#: on our crops).
BASELINE_BP_STEPS = 20


def wald_pair(reference: np.ndarray, kernel: Kernel) -> tuple[np.ndarray, np.ndarray]:
    """Crop ``reference`` to a multiple of ``s`` and degrade it: returns (reference, low-resolution)."""
    s = kernel.scale
    h, w = (reference.shape[-2] // s) * s, (reference.shape[-1] // s) * s
    reference = reference[:, :h, :w]
    return reference, degrade_array(reference, kernel)


def observed(y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``y`` ``(N, C, H, W)`` with its values that are not finite (the simulated input's nodata: ``simulated_input``)
    filled as the methods fill theirs (``dip.fill_invalid``: from the valid values around them), and the 0/1 mask of
    its finite values; ``y`` itself and ``None`` when every value is finite."""
    finite = torch.isfinite(y)
    if bool(finite.all()):
        return y, None
    valid = finite.to(y.dtype)
    return fill_invalid(y, valid), valid


def bicubic(low: np.ndarray, scale: int) -> np.ndarray:
    """Bicubic interpolation (``align_corners=False``) of ``(C, h, w)`` by ``scale``; float64 (computed in float32
    on values normalised in float64 where ``low``'s type needs it: ``degradation.in_float32``). Values that are not
    finite are nodata, filled first (``observed``)."""
    return in_float32(lambda y: upsample(observed(y)[0], scale), low).astype(np.float64)


def bicubic_back_projected(low: np.ndarray, kernel: Kernel | list[Kernel], steps: int = BASELINE_BP_STEPS) -> np.ndarray:
    """Bicubic interpolation followed by ``steps`` of iterative back-projection with ``kernel`` (or one per band);
    float64, at ``low``'s precision as ``bicubic``. Values that are not finite are nodata: filled for the interpolation
    (``observed``) and left out of the residual, as the methods' final back-projection leaves them out."""
    degradation = Degradation(kernel)

    def apply(y: torch.Tensor) -> torch.Tensor:
        y, valid = observed(y)
        return back_project(upsample(y, degradation.scale), y, degradation, steps, valid)

    return in_float32(apply, low).astype(np.float64)


def hpf_injection(
    low: np.ndarray, guide: np.ndarray, target_kernels: list[Kernel], guide_kernels: list[Kernel], back_projection_steps: int = 0
) -> np.ndarray:
    """Classic guided baseline (``core.guided.inject_detail``): bicubic plus pseudo-pan high-pass detail.

    Optionally followed by ``back_projection_steps`` of back-projection with the target kernels.
    low: ``(T, h, w)``; guide: ``(G, s·h, s·w)``; returns ``(T, s·h, s·w)`` float64. Values that are not finite are
    nodata, handled as guided DIP's injection base handles them (``core.guided.sharpen_tile``): filled (``observed``),
    the pseudo-pan regression fitted only where neither the target nor the guide's degradation reaches nodata, and
    the target's nodata left out of the back-projection's residual.
    """
    from .guided import degraded_valid, inject_detail

    with torch.no_grad():
        y, y_valid = observed(torch.as_tensor(low, dtype=torch.float64)[None])
        g, g_valid = observed(torch.as_tensor(guide, dtype=torch.float64)[None])
        fit = torch.ones_like(y[:, :1]) if y_valid is None else y_valid
        if g_valid is not None:
            fit = fit * degraded_valid(g_valid, guide_kernels)
        d_t, d_g = Degradation(target_kernels).double(), Degradation(guide_kernels).double()
        return back_project(inject_detail(y, g, d_t, d_g, fit), y, d_t, back_projection_steps, y_valid)[0].numpy()


# ----------------------------------------------------------------------------------------------
# Wald's protocol on a user's raster (``internal-sr evaluate``, ``internal_sr:evaluate``)

#: Row labels of the baselines: bicubic and bicubic + back-projection in every evaluation, HPF injection without and
#: with back-projection (``hpf_injection``, as ``benchmarks/guided.py`` scores them) beside guided DIP, whose output is
#: back-projected too.
BICUBIC, BICUBIC_BP = "bicubic", "bicubic + back-projection"
HPF, HPF_BP = "HPF injection (pansharpening)", "HPF injection + back-projection"
#: Most values (pixels × bands, a guide's included) of an evaluated area: the reference, its degraded copy,
#: the guide and every method's estimate are held in memory as float64 (a 2048² area of 13 bands: about
#: 0.4 GB each).
MAX_EVALUATION_VALUES = 2048 * 2048 * 13
#: Fewest degraded pixels each way the baselines beside every method (bicubic, bicubic + back-projection; HPF injection
#: is bicubic plus detail) take: bicubic's support. Keys' cubic convolution weighs 4 input pixels each way (the one
#: left of the output's centre, one before it and two after it), so below 4 no output pixel has its 4 pixels inside
#: the image: every pixel interpolates replicated border pixels, and a 1 × 1 image interpolates to a constant that
#: back-projection leaves as it is. The bicubic kernel that degrades the reference spans the same 4 degraded pixels,
#: the width ``check_kernel_fits`` asks of every method's kernel. At ×2 or more the 4·s fine pixels cover SSIM's
#: 7 × 7 window (``metrics.SSIM_WINDOW``), the least the metrics take, so no scale needs more for the scores.
BICUBIC_SUPPORT = 4
METHOD_LABELS = {"dip": "Deep Image Prior", "knitwork": "Neural Knitworks", "guided": "guided DIP"}


@dataclass
class Scores:
    """One method's scores: ``overall`` (``metrics.all_metrics``) and ``per_band`` (``metrics.band_metrics``)."""

    label: str
    overall: dict[str, float]
    per_band: dict[str, list[float]]

    def named(self, value: float) -> list[str]:
        """The scores equal to ``value`` (±∞): ``"psnr"`` overall, ``"psnr[2]"`` band 2's (1-based)."""
        return [m for m, v in self.overall.items() if v == value] + [
            f"{m}[{b}]" for m, values in self.per_band.items() for b, v in enumerate(values, start=1) if v == value
        ]


@dataclass
class Evaluation:
    """Wald's protocol on one raster: what was compared, the scores, and the images behind them.

    Images are ``(C, H, W)`` float64 physical values (``physical_values``): ``reference`` is the evaluated area
    (cropped to a multiple of ``scale``; its invalid pixels hold what the raster stores there), ``low`` its degraded
    copy (``H/scale × W/scale``, NaN at its nodata: ``simulated_input``), ``estimates`` maps each row label to its
    super-resolution of ``low``. ``valid`` ``(H, W)``: the reference pixels valid in every band; ``scored`` ``(H, W)``:
    those every score takes (module docstring; an estimate's values elsewhere mean nothing). ``run`` is the method's
    own run (``None`` for bicubic). ``scales``, ``offsets`` and ``units`` are the bands' declared ones (1, 0 and
    ``None`` when a band declares none).
    """

    input_path: str  # as the JSON and the report name it (``config.recorded_path``: a file's absolute path)
    method: str
    scale: int
    kernel: str
    band_names: list[str]
    window: Window
    settings: dict[str, str]
    scores: list[Scores]
    reference: np.ndarray
    low: np.ndarray
    estimates: dict[str, np.ndarray]
    run: RunResult | None
    seconds: float
    scales: list[float]
    offsets: list[float]
    units: list[str | None]
    valid: np.ndarray
    scored: np.ndarray

    @property
    def scored_pixels(self) -> int:
        """How many reference pixels the scores take."""
        return int(np.count_nonzero(self.scored))

    @property
    def scored_fraction(self) -> float:
        """``scored_pixels`` over the reference's pixels (1.0 for a complete area)."""
        return self.scored_pixels / self.scored.size

    @property
    def scored_note(self) -> str:
        """``scored_note`` of this evaluation: in the log (not the command line's: ``evaluate``'s ``log_notes``), the
        JSON, the printed table and the report."""
        return scored_note(self.scored, self.valid, self.method == "guided")

    @property
    def scored_reference(self) -> np.ndarray:
        """``(C, N)``: the reference's values at the ``N`` scored pixels."""
        return self.reference[:, self.scored]

    @property
    def scaled(self) -> bool:
        """Whether a band declares a scale or an offset, so that the scores are not on the stored values."""
        return any(v != 1 for v in self.scales) or any(v != 0 for v in self.offsets)

    @property
    def mixed_units(self) -> bool:
        """Whether the bands declare different units (a band declaring none among bands that declare one included):
        the overall scores that pool every band's values (``metrics.POOLED_METRICS``) would mix them, so ``evaluate``
        leaves those undefined (NaN); the per-band scores are each in their band's unit."""
        return len(set(self.units)) > 1

    @property
    def mixed_units_note(self) -> str | None:
        """The sentence saying which overall scores are not given and why; ``None`` when the bands share one unit."""
        if not self.mixed_units:
            return None
        *first, last = (m.upper() for m in metrics.POOLED_METRICS)  # PSNR, RMSE and SAM
        left = f"{', '.join(first)} and {last}"
        return (f"Overall {left} are not given (—): the bands declare different units ({self._band_units}), which they "
                "would mix; the per-band scores are each in their band's unit")

    @property
    def undefined_notes(self) -> list[str]:
        """The sentences saying which scores are not given or not defined, and why; such a score is NaN here, a dash
        in the tables, ``null`` in the JSON (named in neither ``infinite`` list) and ``None`` as a Processing output.
        In order: the overall scores that would mix units (``mixed_units_note``), SAM of one band or of zero spectra
        only, and PSNR and SSIM of bands whose reference is constant (``metrics``' module docstring)."""
        notes = [self.mixed_units_note] if self.mixed_units else []
        if len(self.band_names) == 1:
            notes.append("Overall SAM is not defined for one band (—): the angle between one-band spectra is 0° or "
                         "180° whatever the error")
        elif not self.mixed_units and not self.scored_reference.any():
            notes.append("Overall SAM is not defined (—): every spectrum of the reference is zero")
        constant = [name for name, band in zip(self.band_names, self.scored_reference) if band.min() == band.max()]
        if constant:
            if len(constant) < len(self.band_names):
                overall = "the overall SSIM averages the other bands"
            elif self.scored_reference.min() == self.scored_reference.max():
                overall = "so are the overall PSNR and SSIM"
            else:
                overall = "so is the overall SSIM"
            notes.append(f"PSNR and SSIM are not defined for a band whose reference is constant, having no range (—; ∞ "
                         f"and 1 where an estimate reproduces it exactly): {', '.join(constant)}; {overall}")
        return notes

    @property
    def _band_units(self) -> str:
        """Each band's declared unit, ``B4: reflectance, B10: none declared``."""
        return ", ".join(f"{n}: {u or 'none declared'}" for n, u in zip(self.band_names, self.units))

    @property
    def rmse_unit(self) -> str:
        """What RMSE (and the images) are in: the bands' declared unit, each band's when they differ."""
        if len(set(self.units)) == 1 and self.units[0]:
            return self.units[0]
        if any(self.units):
            return f"each band's unit ({self._band_units})"
        return "the physical values' units (none declared)" if self.scaled else "the raster's units (none declared)"

    @property
    def scaling_note(self) -> str | None:
        """The sentence saying that the scores are on physical values, with the bands' scale and offset;
        ``None`` when no band declares either."""
        if not self.scaled:
            return None
        pairs = [f"× {value_text(a)} {'−' if b < 0 else '+'} {value_text(abs(b))}" for a, b in zip(self.scales, self.offsets)]
        named = pairs[0] if len(set(pairs)) == 1 else ", ".join(f"{n} {p}" for n, p in zip(self.band_names, pairs))
        return f"Scores are on physical values: stored value {named}, as the bands declare them"

    def score(self, label: str) -> Scores:
        return next(s for s in self.scores if s.label == label)

    @property
    def method_scores(self) -> Scores:
        """The evaluated method's row (bicubic's when the method is ``bicubic``)."""
        return self.score(METHOD_LABELS.get(self.method, BICUBIC))

    def as_dict(self) -> dict:
        """JSON-ready summary (no images): inputs, settings, scores, the method's steps, time and loss curves.

        Strict JSON has no infinity: ``core.report.write_json`` writes infinite and undefined scores as
        ``null``, and each score's ``infinite`` lists the metrics that are +∞ (a perfect estimate's PSNR or
        SRE, the ERGAS of a band of mean 0) and ``minus_infinite`` those that are −∞ (the SRE of a band of
        mean 0): ``"psnr"`` for the overall score, ``"psnr[2]"`` for band 2's (1-based, in ``bands`` order), so
        that a ``null`` named in neither is undefined. Each score's ``ergas_left_out`` and ``sre_left_out``
        list the bands (1-based) its overall ERGAS and SRE leave out, their score not being finite
        (``metrics.left_out``). Scores are on physical values (the class's docstring): ``band_scales``,
        ``band_offsets`` and ``band_units`` are the bands' declared ones, ``rmse_unit`` what RMSE is in; with
        ``mixed_units`` (bands of different units) the overall PSNR, RMSE and SAM are ``null`` and ``mixed_units_note``
        says why; ``undefined_notes`` lists that sentence and those on the scores not defined (SAM of one band, PSNR and
        SSIM of a constant band: ``Evaluation.undefined_notes``), as the report and the printed table give them.
        ``scored_pixels`` of the ``reference_pixels`` were scored (``scored_fraction``; ``valid_pixels`` are valid in
        every band), as ``scored_note`` says (``Evaluation.scored``)."""
        return {
            "input": self.input_path,
            "method": self.method,
            "scale": self.scale,
            "kernel": self.kernel,
            "bands": self.band_names,
            "window": self.window.as_dict(),
            "settings": self.settings,
            "band_scales": self.scales,
            "band_offsets": self.offsets,
            "band_units": self.units,
            "rmse_unit": self.rmse_unit,
            "mixed_units": self.mixed_units,
            "mixed_units_note": self.mixed_units_note,
            "undefined_notes": self.undefined_notes,
            "reference_pixels": int(self.scored.size),
            "valid_pixels": int(np.count_nonzero(self.valid)),
            "scored_pixels": self.scored_pixels,
            "scored_fraction": self.scored_fraction,
            "scored_note": self.scored_note,
            "scores": [
                {"label": s.label, "overall": s.overall, "per_band": s.per_band,
                 "infinite": s.named(float("inf")), "minus_infinite": s.named(float("-inf")),
                 **{f"{m}_left_out": [b + 1 for b in metrics.left_out(s.per_band[m])] for m in metrics.LEFT_OUT_METRICS}}
                for s in self.scores
            ],
            "device": self.run.device if self.run else "cpu",
            "steps": self.run.steps if self.run else 0,
            "method_seconds": self.run.seconds if self.run else 0.0,
            "seconds": self.seconds,
            "loss_curves": [c.tolist() for c in self.run.curves] if self.run else [],
        }


def default_kernel(method: str) -> str:
    """The protocol's kernel when the user chooses none: each band's MTF (``sentinel2``) for guided DIP, else bicubic."""
    return "sentinel2" if method == "guided" else "bicubic"


def method_config(
    method: str, scale: int, kernel: str, guide_kernel: str = "sentinel2", **run: object
) -> InternalLearningConfig | None:
    """The configuration ``evaluate`` needs for ``method`` (``None`` for bicubic).

    ``run``: the ``InternalLearningConfig`` fields shared by every method (iterations, seed, device, tiles…).
    """
    if method == "bicubic":
        return None
    if method == "guided":
        return GuidedDIPConfig(kernel=kernel, guide_kernel=guide_kernel, **run)  # type: ignore[arg-type]
    if method in ("dip", "knitwork"):
        method_class = DIPConfig if method == "dip" else KnitworkConfig
        return method_class(scale=scale, kernel=kernel, **run)  # type: ignore[arg-type]
    raise InputError(f"unknown method {method!r}: choose one of {', '.join(EVALUATION_METHODS)}")


def _band_labels(info: RasterInfo) -> list[str]:
    """Each selected band's description, or ``band N`` when it has none."""
    return [d or f"band {b}" for d, b in zip(info.descriptions, info.bands)]


def _check_memory(area: Window, bands: int, guide_bands: int = 0, scale: int = 1) -> None:
    """One-line ``InputError`` when ``area`` (the evaluated pixels, of ``bands`` bands, with a guide of
    ``guide_bands`` bands ``scale`` times finer) holds more than ``MAX_EVALUATION_VALUES`` values."""
    per_pixel = bands + guide_bands * scale**2
    if area.width * area.height * per_pixel > MAX_EVALUATION_VALUES:
        side = int((MAX_EVALUATION_VALUES / per_pixel) ** 0.5)
        guide = f" and their {guide_bands} guide band(s) {scale}× finer" if guide_bands else ""
        raise InputError(
            f"the evaluated area is {area.width}×{area.height} pixels of {bands} band(s){guide}; evaluation holds "
            f"it in memory several times over: choose an extent of at most {side}×{side} pixels"
        )


def _check_sizes(
    area: Window, scale: int, on_extent: bool, label: str, minimum_at: Callable[[int], int], overlap: bool = False
) -> None:
    """One-line ``InputError`` when ``area`` (the whole raster, or the window an extent chose: ``on_extent``) is too
    small for Wald's protocol at ``scale``: cropped to whole blocks of the scale it must degrade to at least
    ``minimum_at(scale)`` pixels, the least the method ``label`` runs on at a scale, and to at least
    ``BICUBIC_SUPPORT`` pixels, the least the bicubic baselines beside it take (which also covers SSIM's window). The
    message gives the area's own size (not the cropped or degraded one), the size it needs and which of the two needs
    it, and asks for a larger raster or extent, or a smaller scale where one fits. ``overlap``: guided DIP, the area is
    the part of the target the guide covers (said so; a larger guide is asked for) and the scale is the grids' ratio."""
    width, height = area.width, area.height

    def least(s: int) -> int:  # degraded pixels each way at ×s
        return max(minimum_at(s), BICUBIC_SUPPORT)

    minimum = least(scale)
    if min(width, height) >= scale * minimum:
        return
    needs = f"{label} needs" if minimum_at(scale) == minimum else "the bicubic baselines need"
    fitting = [] if overlap else [s for s in range(2, scale) if s * least(s) <= min(width, height)]
    remedy = size_remedy(on_extent, "guide" if overlap else None, max(fitting) if fitting else None)
    raise InputError(
        f"{size_subject(width, height, on_extent, 'guide' if overlap else None)} too small for Wald's protocol at "
        f"×{scale} with {label}: it needs at least {scale * minimum}×{scale * minimum} pixels, which degrade to the "
        f"{minimum}×{minimum} input pixels {needs}; {remedy}"
    )


def _reference(data: np.ndarray, valid: np.ndarray, scale: int) -> tuple[np.ndarray, np.ndarray]:
    """The evaluated area ``(C, H, W)`` as float64, cropped to a multiple of ``scale`` (``_check_sizes``), and its
    valid pixels ``(H, W)``: those where every band's value is (``valid``, ``raster.valid_mask``'s per value)."""
    height, width = data.shape[-2:]
    area = (slice(None), slice(0, (height // scale) * scale), slice(0, (width // scale) * scale))
    return data[area].astype(np.float64), valid[area].all(axis=0)


def simulated_input(image: np.ndarray, valid: np.ndarray, kernels: Kernel | list[Kernel]) -> tuple[np.ndarray, np.ndarray]:
    """Wald's low-resolution input: ``image`` ``(C, H, W)``, of which the ``valid`` pixels ``(H, W)`` alone are
    observed, degraded by ``kernels`` (``degradation.degrade_valid``); returns it ``(C, H/s, W/s)`` with NaN (nodata,
    as every method reads it) at each pixel whose kernel footprint reaches an invalid pixel in any band, and its valid
    pixels ``(H/s, W/s)``. No invalid value reaches a valid pixel; a complete image gives ``degrade_array``'s values."""
    low, low_valid = degrade_valid(image, np.broadcast_to(valid, image.shape), kernels)
    low_valid = low_valid.all(axis=0)
    low[:, ~low_valid] = np.nan
    return low, low_valid


def scored_note(scored: np.ndarray, valid: np.ndarray, guided: bool) -> str:
    """The sentence saying how many reference pixels are scored (``scored`` ``(H, W)``) out of how many, and which
    (``valid``: those valid in every band; ``guided``: the guide's nodata counts too)."""
    count, total = int(np.count_nonzero(scored)), scored.size
    if count == total:
        return f"Scored: all {total} reference pixels, every one valid"
    guide = ", where the guide degraded onto them is valid too" if guided else ""
    return (f"Scored: {count} of the {total} reference pixels ({100 * count / total:.1f} %), the same for every row: "
            f"those valid in every band ({np.count_nonzero(valid)}) whose low-resolution pixel is valid too (its kernel "
            f"reaches no invalid pixel){guide}; no score reads the others")


def check_scored(scored: np.ndarray, valid: np.ndarray, scale: int, path: str, guided: bool) -> None:
    """One-line ``InputError`` when the ``scored`` reference pixels ``(H, W)`` (of which ``valid`` are valid, at
    ``scale``; ``guided``: the guide's nodata counts too) hold no square of the least edge Wald's protocol scores on a
    complete area for its scores (whole blocks of the scale covering SSIM's window, ``metrics.SSIM_WINDOW``), here of
    its pixels that can be scored: every score then has at least that many pixels and SSIM at least one whole window
    (``metrics.scored_windows``). The message names how many pixels are valid and can be scored, and what to do: a
    smaller scale only above ×2 and without a guide, whose grids' ratio is the scale."""
    needed = scale * -(-metrics.SSIM_WINDOW // scale)
    if minimum_filter(scored.astype(np.uint8), needed, mode="constant", cval=0).any():
        return
    guide = " and the guide degraded onto it is valid" if guided else ""
    smaller = " or a smaller scale" if scale > 2 and not guided else ""
    raise InputError(
        f"{path}: {np.count_nonzero(valid)} of the {valid.size} evaluated pixels are valid (no nodata, not-finite or fill "
        f"value in any band) and {np.count_nonzero(scored)} can be scored (valid, its low-resolution pixel's ×{scale} kernel "
        f"reaching no invalid pixel{guide}): they hold no {needed}×{needed} square, the least Wald's protocol scores at "
        f"×{scale}; choose an extent with fewer nodata pixels{smaller}, or, where the nodata value marks real "
        "values (such as saturated pixels), clear it (gdal_translate -a_nodata none)"
    )


@dataclass
class EvaluationPlan:
    """What ``plan_evaluation`` found from metadata alone: the rasters, the evaluated area and the kernels.

    area: the evaluated pixels of ``info``'s grid (for guided, the overlap with the guide); kernels: the
    kernel (one for every band) or, for guided, ``target_kernels`` with ``guide_kernels`` (the guide's own
    blur) and ``guide_on_target`` (the guide degraded onto the target's grid, with the grids' phase), and the
    band names guided DIP reads (``names``: the target's, then the guide's). tiles: those the method's run is solved in
    (its configuration's, grown where its kernels need: ``tiling.kernel_tiles``), which ``evaluate`` hands the run;
    ``None`` for bicubic, which does not tile.
    """

    info: RasterInfo
    area: Window
    kernels: Kernel | list[Kernel]
    guide_info: RasterInfo | None = None
    guide_offset: tuple[int, int] = (0, 0)
    guide_kernels: list[Kernel] | None = None
    guide_on_target: list[Kernel] | None = None
    names: tuple[list[str | None], list[str | None]] | None = None
    tiles: TileOptions | None = None


def plan_evaluation(
    input_path: str,
    method: str,
    scale: int,
    kernel: str,
    config: InternalLearningConfig | None = None,
    io: IOOptions = IOOptions(),
    guide_path: str | None = None,
    guide_io: IOOptions = IOOptions(),
    progress: Progress | None = None,
) -> EvaluationPlan:
    """Check everything ``evaluate`` can check before reading pixels (arguments as ``evaluate``'s): the method
    and its configuration, the rasters, the guide's grid and scale, the kernels, the area's size and memory, the
    method's tiles for its kernels (``tiling.kernel_tiles``, on the degraded area it runs on: the plan's ``tiles``).
    Raises a one-line ``InputError``; front ends call it to refuse bad settings before a run. Guided DIP's
    kernels read the band names as ``guided`` does (``sharpen.kernel_names``: descriptions, else ESA file
    names), said through ``progress`` when given, as are a target and guide accepted although their pixel edges are
    not exactly aligned (``core.grid.alignment_note``)."""
    if method not in EVALUATION_METHODS:
        raise InputError(f"unknown method {method!r}: choose one of {', '.join(EVALUATION_METHODS)}")
    check_scale(scale)  # every method's limit, bicubic's and guided DIP's included
    info = open_info(input_path, io.bands, io.extent, crs=io.crs)
    if method == "guided":
        from .guided import MIN_TARGET_SIZE
        from .sharpen import band_kernels, check_kernels_fit_grids, kernel_names, nest_rasters, target_tiles

        if guide_path is None:
            raise InputError("method guided needs a guide raster (--guide)")
        if not isinstance(config, GuidedDIPConfig):
            raise InputError("method guided needs a GuidedDIPConfig")
        guide_info = open_info(guide_path, guide_io.bands, crs=guide_io.crs)
        nesting = nest_rasters(info, guide_info, progress)
        check_kernels_fit_grids(config, nesting)
        if nesting.scale != scale:
            raise InputError(f"the guide is {nesting.scale}× finer than the target, so the scale must be {nesting.scale}, got {scale}")
        _check_memory(nesting.target, len(info.bands), len(guide_info.bands), scale)
        partly = (nesting.target.width, nesting.target.height) != (info.grid.width, info.grid.height)
        _check_sizes(nesting.target, scale, info.window is not None, "guided DIP", lambda s: MIN_TARGET_SIZE, partly)
        target_names = kernel_names(info, config.kernel, "target", progress)
        guide_names = kernel_names(guide_info, config.guide_kernel, "guide", progress)
        target_kernels = band_kernels(config.kernel, target_names, scale, "target")
        guide_kernels = band_kernels(config.guide_kernel, guide_names, scale, "guide")
        # as guided DIP's run checks them (sharpen.check_inputs), on the degraded target it runs on here
        tiles = target_tiles(config.tiles, [*target_kernels, *guide_kernels], nesting.target.width // scale,
                             nesting.target.height // scale, info.window is not None, partly)
        return EvaluationPlan(
            info, nesting.target, target_kernels, guide_info, (nesting.guide.col_off, nesting.guide.row_off), guide_kernels,
            band_kernels(config.guide_kernel, guide_names, scale, "guide", nesting.shift), (target_names, guide_names), tiles,
        )
    if guide_path is not None:
        raise InputError(f"a guide raster is given, but method {method} uses none: leave the guide out or choose method guided")
    area = Window(0, 0, info.grid.width, info.grid.height)
    _check_memory(area, len(info.bands))
    kernels = make_kernel(kernel, scale)
    if method == "bicubic":
        label, minimum_at = BICUBIC, lambda s: BICUBIC_SUPPORT
    else:
        if config is None or getattr(config, "scale", scale) != scale:
            raise InputError(f"method {method} needs its configuration at scale {scale}")
        if config.kernel != kernel:
            raise InputError(f"the image is degraded with kernel {kernel} but the method's configuration assumes {config.kernel}")
        label, minimum_at = METHOD_LABELS[method], config.min_input_size_at
    _check_sizes(area, scale, info.window is not None, label, minimum_at)
    # as check_super_resolve: the kernel degrades the reference and back-projects the baselines too
    check_kernel_fits(kernels, area.width // scale, area.height // scale, info.window is not None)
    # the run tiles the degraded image: ``super_resolve_array`` takes these
    tiles = array_tiles(config, area.width // scale, area.height // scale) if method != "bicubic" else None
    return EvaluationPlan(info, area, kernels, tiles=tiles)


def physical_values(values: np.ndarray, info: RasterInfo) -> np.ndarray:
    """``(C, H, W)`` stored values of ``info``'s bands as physical values, float64: value × scale + offset per band, as
    GDAL declares them (1 and 0 where a band declares none, so that such values stay exactly as they are)."""
    count = len(info.bands)
    scales = np.asarray(info.scales or (1.0,) * count, dtype=np.float64).reshape(count, 1, 1)
    offsets = np.asarray(info.offsets or (0.0,) * count, dtype=np.float64).reshape(count, 1, 1)
    return values * scales + offsets


def _score_all(estimates: dict[str, np.ndarray], reference: np.ndarray, scale: int, scored: np.ndarray) -> list[Scores]:
    return [
        Scores(label, metrics.all_metrics(image, reference, scale, scored), metrics.band_metrics(image, reference, scale, scored))
        for label, image in estimates.items()
    ]


def evaluate(
    input_path: str,
    method: str,
    scale: int,
    kernel: str,
    config: InternalLearningConfig | None = None,
    io: IOOptions = IOOptions(),
    guide_path: str | None = None,
    guide_io: IOOptions = IOOptions(),
    progress: Progress | None = None,
    log_notes: bool = True,
) -> Evaluation:
    """Wald's protocol on the user's raster: degrade by ``scale`` with ``kernel``, super-resolve back, score.

    ``method`` is one of ``EVALUATION_METHODS`` and ``config`` its configuration (``DIPConfig``,
    ``KnitworkConfig`` or ``GuidedDIPConfig``; ``None`` for ``bicubic``). For ``dip`` and ``knitwork`` the
    image is degraded with ``kernel`` (any ``core.kernels.make_kernel`` spec) and the method is told the
    same kernel through its config. For ``guided`` the raster is the *target* and ``guide_path`` the finer
    guide: both are degraded by their grid ratio (which ``scale`` must equal) with the config's per-band
    kernels (``kernel`` is ``config.kernel``), the target is sharpened back with the degraded guide and
    compared with itself, beside HPF injection, the pansharpening baseline, without and with back-projection (guided
    DIP's output is back-projected: ``HPF_BP`` tells what the network adds to that). On half-pixel grids
    (Landsat pan) the guide is degraded onto the target's grid with the grids' phase. Bicubic and bicubic +
    back-projection are scored on the same pixels every time. ``io.extent`` picks the evaluated area. Invalid pixels
    in it (or in the guide) are nodata in the simulated input and left out of every score (module docstring); too few
    pixels left to score is a one-line ``InputError`` before any method runs (``check_scored``). ``log_notes``: say in the
    log how many pixels are scored (``scored_note``) and which scores are not defined (``Evaluation.undefined_notes``);
    off for a front end that prints them with the table (``report.text_table``: the command line), so they are said once.
    """
    input_path, guide_path = as_paths(input_path, guide_path)
    plan = plan_evaluation(input_path, method, scale, kernel, config, io, guide_path, guide_io, progress)
    recorder = _Recorder(progress or NullProgress())
    info = plan.info
    _log_input(info, recorder, writes_raster=False)
    if plan.guide_info is not None:
        log_nodata_warnings(plan.guide_info, recorder)
    if method == "bicubic" and isinstance(plan.kernels, Kernel):  # the methods' runs say it themselves
        for note in loading_notes(plan.kernels):
            recorder.info(note)
    names = _band_labels(info)
    settings = {"method": method, "scale": f"×{scale}", "kernel": kernel, "bands": ", ".join(names)}
    method_progress = SubProgress(recorder, 0.0, 0.95)
    run: RunResult | None = None
    estimate = None
    extra = {}
    target_data, target_valid = read_window(info, plan.area)
    reference, valid = _reference(target_data, target_valid, scale)
    h, w = reference.shape[-2:]
    low, low_valid = simulated_input(reference, valid, plan.kernels)
    scored = valid & low_valid.repeat(scale, axis=0).repeat(scale, axis=1)  # low-resolution pixel (i, j): its s × s block
    if plan.guide_info is not None:
        guide_info = plan.guide_info
        guide_data, guide_valid = read_window(guide_info, Window(*plan.guide_offset, w * scale, h * scale))
        # the guide is degraded onto the target's own grid (with the grids' half-pixel phase on Landsat), so
        # the simulated pair one level down is pixel-aligned like the target and its own degradation; where it is
        # nodata a run's output is nodata too (``sharpen``), so those pixels are not scored
        low_guide, low_guide_valid = simulated_input(guide_data.astype(np.float64), guide_valid.all(axis=0), plan.guide_on_target)
        scored &= low_guide_valid
    check_scored(scored, valid, scale, input_path, plan.guide_info is not None)
    if log_notes:
        recorder.info(f"{scored_note(scored, valid, plan.guide_info is not None)}.")  # a sentence, as the table and page give it
    if plan.guide_info is not None:
        from .sharpen import sharpen_array

        settings.update(guide=guide_path, guide_bands=", ".join(_band_labels(guide_info)), guide_kernel=config.guide_kernel)
        estimate, run = sharpen_array(low, low_guide, config, *plan.names, method_progress, plan.tiles)
        extra = {HPF: hpf_injection(low, low_guide, plan.kernels, plan.guide_kernels),
                 HPF_BP: hpf_injection(low, low_guide, plan.kernels, plan.guide_kernels, BASELINE_BP_STEPS)}
    elif method != "bicubic":
        estimate, run = super_resolve_array(low, config, progress=method_progress, tiles=plan.tiles)
    window = Window(plan.area.col_off, plan.area.row_off, w, h)
    if info.window is not None:  # in the input raster's pixels
        window = window.translated(info.window.col_off, info.window.row_off)
    if (w, h) != (info.grid.width, info.grid.height):  # the guide's cover, whole blocks of the scale
        partly = (plan.area.width, plan.area.height) != (info.grid.width, info.grid.height)  # the guide leaves part out
        covered = "the part the guide covers, " if partly else ""
        recorder.info(f"scored: {covered}in whole {scale}×{scale} blocks, input {window.describe()}")
    if run is not None:
        settings.update(device=run.device, steps=str(run.steps), iterations=str(config.steps), seed=str(config.seed),
                        tiles=f"{run.tiles.size} px, {run.tiles.overlap} px overlap")
    estimates = {BICUBIC: bicubic(low, scale), BICUBIC_BP: bicubic_back_projected(low, plan.kernels), **extra}
    if estimate is not None:
        estimates[METHOD_LABELS[method]] = estimate
    reference, low = physical_values(reference, info), physical_values(low, info)
    estimates = {label: physical_values(image, info) for label, image in estimates.items()}
    e = Evaluation(
        recorded_path(input_path), method, scale, config.kernel if method == "guided" else kernel, names, window, settings,
        _score_all(estimates, reference, scale, scored), reference, low, estimates, run, time.perf_counter() - recorder.start,
        [float(v) for v in info.scales or (1.0,) * len(names)], [float(v) for v in info.offsets or (0.0,) * len(names)],
        [unit or None for unit in info.units or (None,) * len(names)], valid, scored,
    )
    if e.scaling_note:
        recorder.info(f"{e.scaling_note}; RMSE in {e.rmse_unit}")
    if e.mixed_units:
        for s in e.scores:
            s.overall.update({m: float("nan") for m in metrics.POOLED_METRICS})
    for note in e.undefined_notes if log_notes else []:
        recorder.info(f"{note}.")
    recorder.report(1.0, "scored")
    return e

