"""The one degradation operator: depthwise blur by a ``Kernel`` then decimation by ``s``.

It serves the training losses, back-projection, the ``degrade`` operation and Wald evaluation.
Tensors are ``(N, C, H, W)``; ``H`` and ``W`` must be multiples of ``s``. Output pixel (i, j) is the
kernel-weighted sum centred on the centre of the block [s·i, s·i+s) × [s·j, s·j+s) (``core.kernels``),
moved by the kernels' ``shift`` on half-pixel grids. Borders are reflected (replicated when the image
is smaller than the padding). ``upsample`` interpolates on the same centres.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .errors import InputError
from .kernels import Kernel
from .normalise import BandScaling, exact_float


def _pad(x: torch.Tensor, pad_rows: int, pad_cols: int) -> torch.Tensor:
    if pad_rows == 0 and pad_cols == 0:
        return x
    mode = "reflect" if pad_rows < x.shape[-2] and pad_cols < x.shape[-1] else "replicate"
    return F.pad(x, (pad_cols, pad_cols, pad_rows, pad_rows), mode=mode)


class Degradation(torch.nn.Module):
    """``D(x)``: blur and keep one sample per ``s × s`` block. Works for any band count.

    ``kernel`` is one ``Kernel`` shared by every band, or one per band (same scale; the input then
    must have exactly that many bands). Per-band taps are zero-padded symmetrically to a common
    length, which keeps each kernel's centre (tap counts share the parity of ``s``).
    """

    def __init__(self, kernel: Kernel | Sequence[Kernel]) -> None:
        super().__init__()
        kernels = [kernel] if isinstance(kernel, Kernel) else list(kernel)
        if not kernels or len({(k.scale, k.shift) for k in kernels}) != 1:
            raise ValueError("Degradation needs kernels of one scale and one shift")
        self.kernels = kernels
        self.scale = kernels[0].scale
        #: (rows, columns) in high-resolution pixels, where the low-resolution centres sit after the block centres
        self.shift = kernels[0].shift
        separable = all(k.separable is not None for k in kernels)
        taps = [k.separable if separable else k.as_2d for k in kernels]
        length = max(t.shape[-1] for t in taps)
        taps = [np.pad(t, [((length - t.shape[-1]) // 2,) * 2] * t.ndim) for t in taps]
        self.register_buffer("taps", torch.as_tensor(np.stack(taps), dtype=torch.float32))  # (K, L) or (K, L, L)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.scale
        n, c, h, w = x.shape
        if h % s or w % s:
            raise InputError(f"image size {h}×{w} is not a multiple of the scale {s}")
        if len(self.kernels) not in (1, c):
            raise ValueError(f"{len(self.kernels)} kernels for {c} bands")
        if self.taps.ndim == 3:
            return blur_decimate(x, self.taps, s)
        taps = self.taps.to(dtype=x.dtype).expand(c, *self.taps.shape[1:])
        length = taps.shape[-1]
        pad = (length - s) // 2
        x = _pad(x, pad, pad)
        x = F.conv2d(x, taps.view(c, 1, length, 1), stride=(s, 1), groups=c)
        return F.conv2d(x, taps.view(c, 1, 1, length), stride=(1, s), groups=c)


def blur_decimate(x: torch.Tensor, taps: torch.Tensor, scale: int) -> torch.Tensor:
    """``x`` ``(N, C, H, W)`` correlated depthwise with 2-D ``taps`` and decimated by ``scale``.

    taps: ``(L, L)`` shared by every band or ``(C, L, L)`` one per band, ``L`` with the parity of
    ``scale`` (the block-centre convention of the module docstring); differentiable in ``taps``, so a
    learned kernel goes through the same operator. Returns ``(N, C, H / s, W / s)``.
    """
    c = x.shape[1]
    taps = taps.to(dtype=x.dtype).expand(c, *taps.shape[-2:])
    length = taps.shape[-1]
    pad = (length - scale) // 2
    return F.conv2d(_pad(x, pad, pad), taps.reshape(c, 1, length, length), stride=scale, groups=c)


def _keys(t: torch.Tensor, a: float = -0.75) -> torch.Tensor:
    """Keys' cubic convolution weights at distances ``t`` (PyTorch's bicubic uses a = −0.75)."""
    t = t.abs()
    near = ((a + 2) * t - (a + 3)) * t * t + 1
    far = ((a * t - 5 * a) * t + 8 * a) * t - 4 * a
    return torch.where(t <= 1, near, torch.where(t < 2, far, torch.zeros_like(t)))


def interpolation_matrix(length: int, scale: int, shift: float, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """``(scale·length, length)`` bicubic weights along one axis, borders replicated.

    High-resolution pixel j sits at low-resolution coordinate (j + ½)/s − ½ − shift/s (pixel centres at
    integers), i.e. ``F.interpolate(..., align_corners=False)`` moved by ``shift`` fine pixels.
    """
    j = torch.arange(scale * length, dtype=torch.float64, device=device)
    x = (j + 0.5) / scale - 0.5 - shift / scale
    base = torch.floor(x)
    taps = torch.arange(-1, 3, dtype=torch.float64, device=device)
    weights = _keys(x[:, None] - (base[:, None] + taps))  # (sL, 4)
    columns = (base[:, None] + taps).clamp(0, length - 1).long()
    matrix = torch.zeros(scale * length, length, dtype=torch.float64, device=device)
    matrix.scatter_add_(1, columns, weights)
    return matrix.to(dtype)


def upsample(y: torch.Tensor, scale: int, shift: tuple[float, float] = (0.0, 0.0)) -> torch.Tensor:
    """Bicubic interpolation of ``(N, C, H, W)`` by ``scale`` onto the centres of ``Degradation`` with ``shift``.

    Without a shift this is pixel-area alignment (``align_corners=False``); with one, the separable
    weights of ``interpolation_matrix``.
    """
    if not any(shift):
        return F.interpolate(y, scale_factor=scale, mode="bicubic", align_corners=False)
    rows = interpolation_matrix(y.shape[-2], scale, shift[0], y.dtype, y.device)
    cols = interpolation_matrix(y.shape[-1], scale, shift[1], y.dtype, y.device)
    return torch.einsum("ih,nchw,jw->ncij", rows, y, cols)


#: Steps over which ``noise_gain`` measures a kernel (the default ``back_projection_steps``), whatever a run asks.
NOISE_GAIN_STEPS = 20
#: White-noise gain of plain back-projection (``noise_gain``) above which a kernel's back-projection
#: must first pass the width test of ``back_project``. Measured: bicubic and Lanczos-3 1.4–1.5
#: (×2–×4), Sentinel-2's MTF Gaussians 2.2–3.7 and Landsat's 2.8 (×2–×6), Gaussians of σ 0.5, 0.6, 0.7 and 1.0
#: low-resolution pixels 2.9, 4.5, 6.7 and 12.1, KernelGAN's estimates on a Sentinel-2 crop 13.7–14.3.
NOISE_GAIN_LIMIT = 4.0
#: For those kernels, the largest observation gain (``observation_gain``: the ratio of ``noise_gain`` measured on
#: the band's own residual instead of white noise) at which the band is back-projected; above it the band
#: keeps its start. Measured per band (``benchmarks/back_projection.py``; Sentinel-2 10 m crops: the KernelGAN benchmark's three 256² and DIP's three 128² development crops,
#: ×2 and ×4, blurred with the true kernel, anisotropic Gaussians of σ 0.4–1.2): with the true kernel
#: 2.16–2.79, with a kernel 20 % too wide 2.85–3.86, 40 % 3.63–5.06, 70 % 3.36–6.86, gaussian:0.7 and 1.0 on
#: a bicubic blur 3.94–5.45 and 6.83–9.31. On other crops (wald.py's, 20 m bands, ×2–×4, σ up to 1.6) the
#: true kernel reaches 3.12 and a 20 % too wide one falls to 2.67: 3 keeps the correct kernels' full
#: back-projection at the price of some 20 %-too-wide ones passing (those gain from a bicubic start and lose
#: from a start near the truth, up to 5.6 dB on the crops above).
OBSERVATION_GAIN_LIMIT = 3.0


def noise_gain(degradation: Degradation) -> torch.Tensor:
    """``(K,)``: for each of the operator's ``K`` kernels, the RMS of what ``NOISE_GAIN_STEPS`` plain back-projection
    steps add to an image over the RMS of the bicubic interpolation of the residual they start from,
    for a residual of white noise (64², a fixed seed; on the CPU, so every device decides alike).

    Near 1.5 for bicubic; large where ``D∘U`` nearly erases frequencies, each of which the iteration
    then keeps adding, up to ``NOISE_GAIN_STEPS`` times over. Measured once per distinct kernel (``_kernel_gain``):
    every tile's back-projection asks again.
    """
    gains = []
    for kernel in degradation.kernels:
        taps = np.ascontiguousarray(kernel.as_2d, dtype=np.float64)
        gains.append(_kernel_gain(kernel.scale, kernel.shift, taps.shape[0], taps.tobytes()))
    return torch.tensor(gains)


@functools.lru_cache(maxsize=256)
def _kernel_gain(scale: int, shift: tuple[float, float], size: int, taps: bytes) -> float:
    """``noise_gain`` of the one kernel of ``scale``, ``shift`` and ``size × size`` float64 ``taps``."""
    cpu = Degradation(Kernel("noise gain", scale, full=np.frombuffer(taps).reshape(size, size), shift=shift))
    start = torch.randn(1, 1, 64, 64, generator=torch.Generator().manual_seed(0))
    residual, added = start, torch.zeros(1, 1, 64 * scale, 64 * scale)
    with torch.no_grad():
        for _ in range(NOISE_GAIN_STEPS):
            added = added + upsample(residual, scale, shift)
            residual = start - cpu(added)
        reference = upsample(start, scale, shift)
    return float((added.square().mean() / reference.square().mean()).sqrt())


def _residual(estimate: torch.Tensor, y: torch.Tensor, degradation: Degradation, valid: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """``y − D(estimate)`` (zero where ``valid`` is 0) and its per-band squared norm ``(N, C, 1, 1)``."""
    r = y - degradation(estimate)
    if valid is not None:
        r = r * valid
    return r, r.square().sum(dim=(-2, -1), keepdim=True)


def _monotone_steps(x: torch.Tensor, y: torch.Tensor, degradation: Degradation, steps: int, valid: torch.Tensor | None) -> torch.Tensor:
    """Up to ``steps`` plain steps ``x ← x + U(y − D(x))``, each band stopped at its last step that lowered its squared residual."""
    residual, norm = _residual(x, y, degradation, valid)
    active = torch.ones_like(norm, dtype=torch.bool)
    for _ in range(steps):
        candidate = x + upsample(residual, degradation.scale, degradation.shift)
        new_residual, new_norm = _residual(candidate, y, degradation, valid)
        active = active & (new_norm < norm)
        x = torch.where(active, candidate, x)
        residual = torch.where(active, new_residual, residual)
        norm = torch.where(active, new_norm, norm)
    return x


def observation_gain(y: torch.Tensor, degradation: Degradation, valid: torch.Tensor | None = None) -> torch.Tensor:
    """``(N, C, 1, 1)``: each band's observation gain, the width test of ``back_project``.

    y: ``(N, C, H, W)`` observation; valid: optional mask as in ``back_project``. The RMS of what
    ``NOISE_GAIN_STEPS`` steps of ``back_project``'s iteration add to the bicubic interpolation ``U(y)`` over
    the RMS of ``U(y − D(U(y)))``: ``noise_gain``'s ratio on the band's own residual instead of white
    noise (0 where that residual is 0). Dimensionless; no host/device sync.
    """
    with torch.no_grad():
        start = upsample(y, degradation.scale, degradation.shift)
        added = _monotone_steps(start, y, degradation, NOISE_GAIN_STEPS, valid) - start
        reference = upsample(_residual(start, y, degradation, valid)[0], degradation.scale, degradation.shift)
        energy = reference.square().sum(dim=(-2, -1), keepdim=True)
        return (added.square().sum(dim=(-2, -1), keepdim=True) / energy.clamp_min(torch.finfo(energy.dtype).tiny)).sqrt()


def takes_width_test(kernel: Kernel | Sequence[Kernel]) -> np.ndarray:
    """``(C,)`` or ``(1,)`` booleans: the bands whose kernel must pass ``back_project``'s width test (``noise_gain``
    above ``NOISE_GAIN_LIMIT``)."""
    return (noise_gain(Degradation(kernel)) > NOISE_GAIN_LIMIT).numpy()


def width_test(y: np.ndarray, valid: np.ndarray, kernel: Kernel | Sequence[Kernel]) -> np.ndarray | None:
    """``(C,)`` observation gains of the ``(C, H, W)`` observation ``y`` (``valid``: its observed pixels), for the
    bands whose kernel must pass ``back_project``'s width test (``noise_gain`` above ``NOISE_GAIN_LIMIT``),
    NaN for the others; ``None`` when no band's kernel must (nothing to decide, nothing computed).

    How a run decides once for its whole raster, so that every tile of it decides alike: the gain is a ratio of
    two energy sums, computed here once on a window of the run's input (``core.pipeline.back_projection_keep``),
    and each tile gets ``width_keep`` of it as ``back_project``'s ``keep``. It is unchanged by a per-band scale and
    offset (``D`` and ``U`` keep constants, the monotone stop compares squared norms), so the raw values and the
    normalised values the tiles see give it alike, up to float rounding. Computed in float32 on the CPU, where
    every device decides alike; invalid pixels are filled as the tiles fill them and left out of the residual.
    """
    from .dip import fill_invalid

    wide = takes_width_test(kernel)
    if not wide.any():
        return None
    degradation = Degradation(kernel)
    m = torch.as_tensor(np.ascontiguousarray(valid), dtype=torch.float32)[None]
    observed = fill_invalid(torch.as_tensor(np.ascontiguousarray(y), dtype=torch.float32)[None], m)
    gains = observation_gain(observed, degradation, m)[0, :, 0, 0].numpy().astype(np.float64)
    return np.where(np.broadcast_to(wide, gains.shape), gains, np.nan)


def width_keep(gains: np.ndarray) -> np.ndarray:
    """``(C,)`` booleans from ``width_test``'s gains: the bands ``back_project`` back-projects (NaN: not tested)."""
    return ~(gains > OBSERVATION_GAIN_LIMIT)


def back_project(
    x: torch.Tensor,
    y: torch.Tensor,
    degradation: Degradation,
    steps: int,
    valid: torch.Tensor | None = None,
    keep: np.ndarray | torch.Tensor | None = None,
) -> torch.Tensor:
    """Iterative back-projection (Irani & Peleg 1991): ``x ← x + U(y − D(x))`` for up to ``steps`` steps.

    x: ``(N, C, sH, sW)`` estimate; y: ``(N, C, H, W)`` observation; valid: optional ``(N, C, H, W)``
    mask of observed pixels (the residual is zero elsewhere). Returns the refined estimate.

    With bicubic interpolation ``U`` as back-projector a step multiplies each frequency of the residual
    by about ``1 − G``, ``G`` the gain of ``D∘U`` there, and the image gains up to ``1/G`` times it. Each
    band stops at its last step that lowered its squared residual: back-projection never worsens the fit.
    For bicubic, Lanczos and Sentinel-2's kernels that is all. A kernel much wider than bicubic
    (``noise_gain`` above ``NOISE_GAIN_LIMIT``: Gaussians of σ ≳ 0.6 low-resolution pixel, KernelGAN's
    estimates) nearly erases the frequencies it asks for: with the image's true blur back-projection
    restores them, but with a kernel wider than that blur it overshoots by hundreds of DN from any start,
    and by more the nearer the start is to the truth. Such a band is first tested on its observation
    alone, whatever ``x``: its ``observation_gain`` stays near 2–3 for the true kernel and grows with the
    excess width. The band is back-projected in full where it is at most ``OBSERVATION_GAIN_LIMIT`` and
    keeps ``x`` otherwise (``benchmarks/back_projection.py`` measures both rules). No host/device sync.

    keep: optional ``(C,)`` booleans, the width test decided beforehand (``width_keep`` of ``width_test``): the bands
    back-projected whatever this ``y`` alone would give, so that the tiles of one raster decide alike (a run's
    tiles get the decision made once on its input, ``core.pipeline.back_projection_keep``). Without it the test is
    made on this ``y``: what a tile with a kernel of its own does (Knitworks' learned kernel, which differs from
    tile to tile and so is decided per tile), and what a call on a whole array does.
    """
    with torch.no_grad():
        refined = _monotone_steps(x, y, degradation, steps, valid)
        wide = noise_gain(degradation) > NOISE_GAIN_LIMIT
        if steps == 0 or not bool(wide.any()):  # noise_gain is a CPU tensor: no device sync
            return refined
        if keep is None:
            keep = observation_gain(y, degradation, valid) <= OBSERVATION_GAIN_LIMIT
        else:
            keep = torch.as_tensor(keep, dtype=torch.bool).to(device=x.device).view(1, -1, 1, 1)
        keep = keep | ~wide.to(device=x.device).view(1, -1, 1, 1)
        return torch.where(keep, refined, x)


def in_float32(
    apply: Callable[[torch.Tensor], torch.Tensor], image: np.ndarray, scaling: BandScaling | None = None
) -> np.ndarray:
    """``apply``, a linear operator on ``(1, C, H, W)`` float32 tensors that keeps constants (``Degradation`` by
    normalised kernels, bicubic ``upsample``, ``back_project``), on the ``(C, H, W)`` array ``image`` at the precision
    of its own type (``normalise.exact_float``).

    Values float32 holds (float32, 8- and 16-bit integers) go in as float32 and the result is float32. Others
    (float64, int32, uint32) are normalised per band by ``scaling`` (default: each band's finite range) in float64
    before the cast to float32 and denormalised after the cast back, as the networks' tiles are, and the result is
    float64: only the normalised values carry float32 rounding (about 1e-7 of the range, not of the values, which
    may be 2e9 with a range of 2000), and a constant band comes back exactly.
    """
    with torch.no_grad():
        if exact_float(image.dtype) == np.float32:
            return apply(torch.as_tensor(np.ascontiguousarray(image), dtype=torch.float32)[None])[0].numpy()
        if scaling is None:
            scaling = BandScaling.fit(image, np.isfinite(image), (0.0, 100.0))
        return scaling.denormalise(apply(torch.as_tensor(scaling.normalise(image))[None])[0].numpy())


def degrade_array(image: np.ndarray, kernel: Kernel | list[Kernel], scaling: BandScaling | None = None) -> np.ndarray:
    """Apply ``D`` (one kernel, or one per band) to a ``(C, H, W)`` array, cropping H and W down to multiples of ``s`` first.

    Computed in float32 at the precision of ``image``'s type (``in_float32``: float32 for float32 and 8- and 16-bit
    integers; float64 for the others, normalised by ``scaling``, default each band's range, so a constant comes back
    exactly). Pieces of one raster degraded with one ``scaling`` round alike.
    """
    degradation = Degradation(kernel)
    s = degradation.scale
    h, w = (image.shape[-2] // s) * s, (image.shape[-1] // s) * s
    return in_float32(degradation, image[:, :h, :w], scaling)


def degrade_valid(
    image: np.ndarray, valid: np.ndarray, kernel: Kernel | list[Kernel], scaling: BandScaling | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``degrade_array`` of a ``(C, H, W)`` image of which only the ``valid`` values (booleans of its shape) are
    observed: returns the low-resolution values and their validity, both ``(C, H/s, W/s)``.

    A low-resolution value is invalid when its kernel's footprint (``Kernel.footprint``: every non-zero tap) reaches an
    invalid value of its band, borders reflected as the operator reflects them. Invalid values are read as their
    band's mean of valid ones (0 for a band without any) only because the operator takes whole arrays: what fills
    them never shows, since every low-resolution value it reaches is invalid, so each valid one is the value degrading
    the complete image gives, and the values under invalid pixels (nodata, NaN) are never read. ``scaling`` as
    ``degrade_array``'s (its default is fitted on the filled image, whose range is its valid values').
    """
    counts = valid.sum(axis=(1, 2), keepdims=True)
    means = (np.where(valid, image, 0).sum(axis=(1, 2), keepdims=True) / np.maximum(counts, 1)).astype(image.dtype)
    low = degrade_array(np.where(valid, image, means), kernel, scaling)
    s = (kernel if isinstance(kernel, Kernel) else kernel[0]).scale
    h, w = s * low.shape[-2], s * low.shape[-1]  # cropped as degrade_array crops
    return low, footprint_valid(torch.tensor(valid[:, :h, :w])[None], kernel)[0].numpy()


def footprint_valid(valid: torch.Tensor, kernel: Kernel | Sequence[Kernel]) -> torch.Tensor:
    """``(N, C, s·h, s·w)`` validity (bool, or 0/1 of any dtype) → ``(N, C, h, w)`` bool: whether the footprint
    (``Kernel.footprint``) of the kernel of each band (``Degradation``'s: one for all, or one per band) reaches no
    invalid value of that band, borders reflected as the operator reflects them; on ``valid``'s device.

    The test is exact, any non-zero tap: lanczos3 at ×4 has taps below 10⁻⁶ of its sum, which a tolerance would miss.
    The footprint is summed over 0/1 values in float32 whatever ``valid``'s dtype (a float16 mask would lose such
    taps), and a sum of non-negative taps over 0/1 values is exactly 0 where no tap reaches an invalid value.
    ``degrade_valid`` and guided DIP (``core.guided.degraded_valid``) both decide validity by it.
    """
    kernels = [kernel] if isinstance(kernel, Kernel) else list(kernel)
    reach = Degradation([k.footprint() for k in kernels]).to(valid.device)
    with torch.no_grad():
        return reach((valid == 0).to(torch.float32)) == 0
