"""PNG figures drawn without a plotting library: image panels and training-loss curves.

Drawn with Pillow, which scikit-image already requires, so the plugin needs nothing more. Images are
``(H, W, 3)`` uint8 RGB arrays until :func:`png_bytes` / :func:`write_png` encode them.

Display conventions: a raster ``(C, H, W)`` is shown as RGB from three of its bands, or as grey from
one; each shown band is stretched linearly between limits fitted once on the reference (2nd and 98th
percentiles), and the same limits are applied to every panel, so panels compare like for like. An error
map shows ``mean_b |estimate_b − reference_b|`` (``error_map``; where the bands are in different units, each
band's error divided by its reference's stretch range, so that no unit is mixed) on a black → red → yellow →
white ramp from 0 to a given maximum (shared by the error maps it is compared with). Pixels left out (nodata, pixels
no score takes) are painted ``UNSCORED``, a blue that neither the ramp nor a stretch of grey holds (``paint``).
"""

from __future__ import annotations

import base64
import html
import io
import math

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .raster import StagedFiles, loss_curve_path, write_file_atomically

#: Lower and upper percentiles of the display stretch.
STRETCH_PERCENTILES = (2.0, 98.0)
#: The colour of the pixels left out of a panel (``paint``): blue, on no error ramp or grey.
UNSCORED = (40, 110, 255)


def _values(image: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """``(C, N)``: ``image`` ``(C, H, W)``'s values at the ``mask`` ``(H, W)``'s pixels (every pixel for ``None``, or for
    a mask of none: a panel whose every pixel is painted ``UNSCORED``)."""
    return image.reshape(len(image), -1) if mask is None or not mask.any() else image[:, mask]


def display_limits(reference: np.ndarray, channels: tuple[int, ...], mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per shown channel, the stretch limits ``(low, high)`` fitted on ``reference`` ``(C, H, W)`` (at the ``mask``'s
    pixels ``(H, W)``, the scored ones, when given)."""
    shown = _values(reference[list(channels)], mask)
    low, high = np.percentile(shown, STRETCH_PERCENTILES, axis=1)
    return low, np.maximum(high, low + 1e-12)


def to_rgb(image: np.ndarray, channels: tuple[int, ...], limits: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """``(C, H, W)`` values → ``(H, W, 3)`` uint8: bands ``channels`` (three as RGB, one as grey) stretched by ``limits``."""
    low, high = limits
    shown = (image[list(channels)] - low[:, None, None]) / (high - low)[:, None, None]
    shown = np.clip(np.nan_to_num(shown), 0.0, 1.0)
    if shown.shape[0] == 1:
        shown = np.repeat(shown, 3, axis=0)
    return (shown.transpose(1, 2, 0) * 255 + 0.5).astype(np.uint8)


def error_map(estimate: np.ndarray, reference: np.ndarray, relative: bool, mask: np.ndarray | None = None) -> np.ndarray:
    """The ``(H, W)`` mean over bands of ``|estimate_b − reference_b|`` for ``(C, H, W)`` arrays: in the bands' own
    unit, or, ``relative`` (bands of different units, whose absolute errors would mix them), each band's error divided
    by its reference's range between the ``STRETCH_PERCENTILES`` (the display stretch; over the ``mask``'s pixels
    ``(H, W)`` when given), a unitless fraction of it; a band of no such range counts 0."""
    error = np.abs(estimate - reference)
    if relative:
        low, high = np.percentile(_values(reference, mask), STRETCH_PERCENTILES, axis=1)
        error = error / np.where(high > low, high - low, np.inf)[:, None, None]
    return error.mean(axis=0)


def error_rgb(error: np.ndarray, maximum: float) -> np.ndarray:
    """``(H, W)`` non-negative errors → ``(H, W, 3)`` uint8 on a black-red-yellow-white ramp over ``[0, maximum]``."""
    t = np.clip(np.nan_to_num(error / max(maximum, 1e-12)), 0.0, 1.0)
    rgb = np.stack([np.clip(3 * t, 0, 1), np.clip(3 * t - 1, 0, 1), np.clip(3 * t - 2, 0, 1)], axis=-1)
    return (rgb * 255 + 0.5).astype(np.uint8)


def paint(rgb: np.ndarray, shown: np.ndarray) -> np.ndarray:
    """``rgb`` ``(H, W, 3)`` uint8 with the pixels ``shown`` ``(H, W)`` leaves out painted ``UNSCORED``."""
    return np.where(shown[..., None], rgb, np.array(UNSCORED, dtype=np.uint8))


def enlarge(rgb: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour enlargement of an ``(H, W, 3)`` image by an integer ``factor`` (shows pixels as blocks)."""
    return rgb.repeat(factor, axis=0).repeat(factor, axis=1)


def captioned(picture: np.ndarray, lines: list[str], bar: tuple[int, str] | None = None) -> np.ndarray:
    """``picture`` ``(H, W, 3)`` uint8 above a white strip holding ``lines`` of black text (12 px each) and, where
    given, a scale ``bar``: (its length in the picture's pixels, its label), drawn black, 2 px high, from the left
    edge under the text. The canvas is as wide as the picture or the widest line, the picture at its left."""
    font = ImageFont.load_default()
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    labels = lines + ([bar[1]] if bar else [])
    width = max([picture.shape[1], *(int(measure.textlength(line, font=font)) + 8 for line in labels)])
    if bar:
        width = max(width, bar[0] + int(measure.textlength(bar[1], font=font)) + 16)
    strip = 6 + 14 * len(lines) + (16 if bar else 0)
    image = Image.new("RGB", (width, picture.shape[0] + strip), "white")
    image.paste(Image.fromarray(picture, "RGB"), (0, 0))
    draw = ImageDraw.Draw(image)
    y = picture.shape[0] + 4
    for line in lines:
        draw.text((4, y), line, fill="black", font=font)
        y += 14
    if bar:
        draw.rectangle((0, y + 5, bar[0] - 1, y + 6), fill="black")
        draw.text((bar[0] + 8, y), bar[1], fill="black", font=font)
    return np.asarray(image)


def png_bytes(rgb: np.ndarray) -> bytes:
    """Encode an ``(H, W, 3)`` uint8 image as PNG."""
    buffer = io.BytesIO()
    Image.fromarray(rgb, "RGB").save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def html_image(rgb: np.ndarray, alt: str) -> str:
    """An ``<img>`` carrying ``rgb`` ``(H, W, 3)`` uint8 as an embedded PNG: the HTML stays whole when moved."""
    data = base64.b64encode(png_bytes(rgb)).decode()
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(alt)}">'


def write_png(path: str, rgb: np.ndarray, files: StagedFiles | None = None) -> None:
    """Write an ``(H, W, 3)`` uint8 image to ``path`` atomically (with ``files``: when that group is committed)."""
    write_file_atomically(path, png_bytes(rgb), files)


def _tick_step(low: float, high: float, count: int = 5) -> float:
    """The round spacing (1, 2 or 5 × 10ⁿ) that puts about ``count`` ticks in ``[low, high]``."""
    raw = max(high - low, 1e-12) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    return next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)


def _ticks(low: float, high: float, count: int = 5, least: float = 0.0) -> list[float]:
    """Round tick values (1, 2 or 5 × 10ⁿ apart, at least ``least`` apart) inside ``[low, high]``."""
    step = max(_tick_step(low, high, count), least)
    first = math.ceil(low / step) * step
    return [first + i * step for i in range(int((high - first) / step) + 1)]


def _log_ticks(low: float, high: float) -> list[tuple[float, str]]:
    """Ticks of a log axis over ``[low, high]`` (log10 units): (exponent, label) pairs.

    Round values (1, 2, 5 × 10ⁿ; only 10ⁿ over more than two decades) when at least two fall inside;
    otherwise (a narrow range between two of them) values evenly spaced by a round step, labelled with
    as many significant digits as tell them apart. So the axis always has at least two labelled values.
    """
    mantissas = (1,) if high - low > 2 else (1, 2, 5)
    values = [m * 10.0**n for n in range(math.floor(low), math.ceil(high) + 1) for m in mantissas]
    inside = [v for v in values if low <= math.log10(v) <= high]
    if len(inside) >= 2:
        return [(math.log10(v), f"{v:.3g}") for v in inside]
    bottom, top = 10.0**low, 10.0**high
    step = _tick_step(bottom, top)
    whole = math.floor(math.log10(top)) + 1  # digits before the point (≤ 0 below 1)
    digits = max(whole - math.floor(math.log10(step)), whole, 1)
    return [(math.log10(v), f"{v:.{digits}g}") for v in _ticks(bottom, top, least=step) if v > 0]


def running_mean(values: np.ndarray, window: int) -> np.ndarray:
    """Mean of the last ``window`` values at each step (fewer at the start); same length as ``values``."""
    sums = np.cumsum(np.concatenate([[0.0], values.astype(np.float64)]))
    ends = np.arange(1, len(values) + 1)
    starts = np.maximum(ends - window, 0)
    return (sums[ends] - sums[starts]) / (ends - starts)


#: The y axis's name in a loss figure: each method's objective on values normalised per band (``core.normalise``).
LOSS_AXIS = "training loss, no unit (bands normalised)"


def loss_curve(curves: list[np.ndarray], method: str, smooth: int = 25, size: tuple[int, int] = (720, 400)) -> np.ndarray:
    """Plot a ``method``'s training-loss curves (one per tile, one value per step) on a log axis; ``(H, W, 3)`` uint8.

    Each curve is drawn raw in light blue and as its running mean over ``smooth`` steps in dark blue, as the legend
    under the title says, so a user can see whether the loss was still falling when the run stopped. Steps are
    counted from 1, so a run of N steps ends at the tick N; the y axis is named (``LOSS_AXIS``).
    """
    width, height = size
    left, right, top, bottom = 84, 20, 50, 46
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    draw.text((left, 8), f"{method}: training loss per step, {len(curves)} tile(s) (log scale)", fill="black", font=font)
    values = [np.asarray(c, dtype=np.float64) for c in curves]
    positive = [np.where(c > 0, c, np.nan) for c in values]
    positive = [c for c in positive if np.isfinite(c).any()]  # a curve of zeros (a flat tile) has no point on a log axis
    if not positive:
        draw.text((left, height // 2), _no_curve_text(values), fill="black", font=font)
        return np.asarray(image)
    legend = [((170, 200, 240), "loss at each step"), ((20, 60, 160), f"mean of the last {smooth} steps")]
    x = left
    for colour, words in legend:
        draw.line([(x, 30), (x + 20, 30)], fill=colour, width=2)
        draw.text((x + 26, 24), words, fill="black", font=font)
        x += 26 + draw.textlength(words, font=font) + 24
    y_low, y_high = math.log10(min(np.nanmin(c) for c in positive)), math.log10(max(np.nanmax(c) for c in positive))
    if y_high - y_low < 1e-6:
        y_low, y_high = y_low - 0.5, y_high + 0.5
    steps = max(len(c) for c in positive)

    def x_of(step: np.ndarray | float) -> np.ndarray | float:
        return left + (step - 1) / max(steps - 1, 1) * (width - left - right)

    def y_of(exponent: np.ndarray | float) -> np.ndarray | float:
        return top + (y_high - exponent) / (y_high - y_low) * (height - top - bottom)

    def xy(loss: np.ndarray) -> list[tuple[float, float]]:
        x, y = x_of(np.arange(1, len(loss) + 1)), y_of(np.log10(loss))
        return [(float(a), float(b)) for a, b in zip(x, y) if np.isfinite(b)]

    for exponent, label in _log_ticks(y_low, y_high):
        y = y_of(exponent)
        draw.line([(left, y), (width - right, y)], fill=(225, 225, 225))
        draw.text((18, y - 6), label, fill="black", font=font)
    axis = Image.new("RGB", (int(draw.textlength(LOSS_AXIS, font=font)) + 2, 12), "white")
    ImageDraw.Draw(axis).text((1, 0), LOSS_AXIS, fill="black", font=font)
    axis = axis.rotate(90, expand=True)
    image.paste(axis, (2, int(top + (height - top - bottom - axis.height) / 2)))
    for step in _ticks(1, steps, least=1):  # whole steps, counted from 1
        x = x_of(step)
        draw.line([(x, height - bottom), (x, height - bottom + 4)], fill="black")
        draw.text((x - 8, height - bottom + 6), f"{int(step)}", fill="black", font=font)
    draw.rectangle([(left, top), (width - right, height - bottom)], outline="black")
    draw.text((width // 2 - 30, height - 18), "step", fill="black", font=font)
    for curve in positive:
        draw.line(xy(curve), fill=legend[0][0], width=1)
    for curve in positive:
        draw.line(xy(running_mean(np.nan_to_num(curve, nan=np.nanmin(curve)), smooth)), fill=legend[1][0], width=2)
    return np.asarray(image)


def _no_curve_text(curves: list[np.ndarray]) -> str:
    """What a loss figure says when none of ``curves`` has a positive finite loss to draw on its log axis."""
    steps = sum(c.size for c in curves)
    if not steps:
        return "no optimisation steps were run"
    if not np.isfinite(np.concatenate(curves)).all():
        return f"{steps} optimisation step(s) run: the training loss became infinite or NaN"
    return f"{steps} optimisation step(s) run: the training loss was 0 throughout (nothing to draw on a log axis)"


def write_loss_curve(output_path: str, curves: list[np.ndarray], method: str, files: StagedFiles | None = None) -> str | None:
    """Write the loss curves of a run beside its output (``loss_curve_path``; with ``files``: staged in that
    group, see ``write_png``); returns the PNG's path.

    Nothing is written (``None``) when no tile was optimised (e.g. an all-nodata raster).
    """
    if not any(len(c) for c in curves):
        return None
    path = loss_curve_path(output_path)
    write_png(path, loss_curve(curves, method), files)
    return path
