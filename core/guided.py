"""Guided (multi-modal) Deep Image Prior on one tile: sharpen target bands with finer guide bands.

Inputs are normalised per band (``core.normalise``): the observed target ``y`` ``(T, h, w)`` and the
guide ``g`` ``(G, s·h, s·w)``, whose pixels nest ``s × s`` in each target pixel (``core.grid.nest``).
``D_t`` and ``D_g`` are the degradation operators of the target and the guide bands (per-band kernels,
``core.degradation``), ``U`` bicubic interpolation by ``s``; on half-pixel grids (Landsat) they carry
the grids' phase, while the level below the target's grid, made by this module, is pixel-aligned.

One untrained network ``f`` (``core.networks.MultiModalNet``) sees ``[g, U(y)]`` and generates both
modalities on the fine grid: the sharpened target ``x_t = U(y) + f_t`` and a reproduction of the guide
``x_g = f_g``. The loss, over valid pixels only:

* target term (domain-specific, on the target's grid): ``‖D_t(x_t) − y‖²`` — the sharpened target,
  degraded, must match the observation;
* guide term (domain-specific, on the guide's grid): ``‖x_g − g‖²``, weighted ``guide_weight``;
* cycle term: the reproduced guide degraded to the target grid must agree with the degraded guide,
  ``‖D_g(x_g) − D_g(g)‖²``, weighted ``cycle_weight``;
* cross-scale term: one level down, where the truth is known — the same network fed
  ``[D_g(g), U(D_t(y))]`` must output ``y``; weighted ``cross_scale_weight``.

Each step sees one dihedral transform of the inputs (undone on the outputs), the output is averaged
over steps (EMA) and finally back-projected so that ``D_t(x_t) = y``.
"""

from __future__ import annotations

import numpy as np
import torch

from . import augment
from .config import GuidedDIPConfig
from .degradation import Degradation, back_project, footprint_valid, upsample
from .device import autocast, conv_layout
from .dip import TileResult, cpu_state, fill_invalid, masked_mse
from .errors import InputError
from .graphs import GraphedStep, step_setup
from .kernels import Kernel
from .networks import MultiModalNet
from .optimise import StopRule, adam, optimise
from .progress import Progress

#: Smallest target tile edge (target pixels) guided DIP accepts.
MIN_TARGET_SIZE = 8
#: The cross-scale pair is used only when its coarse target has at least this many pixels per
#: coefficient of the pseudo-pan regression (guide bands + offset): below that the regression of
#: ``inject_detail`` one level down is (nearly) underdetermined and the pair teaches noise.
COARSE_PIXELS_PER_COEFFICIENT = 16


def degraded_valid(valid: torch.Tensor, kernels: list[Kernel]) -> torch.Tensor:
    """``(1, C, s·h, s·w)`` 0/1 mask → ``(1, 1, h, w)`` of its dtype: 1 where no invalid pixel of any band lies under the
    footprint of its band's kernel (any non-zero tap), i.e. where degrading the filled image (``fill_invalid``) sees
    no fill: ``core.degradation.footprint_valid``, the test ``degrade`` and evaluate apply, over all bands."""
    return footprint_valid(valid, kernels).all(dim=1, keepdim=True).to(valid.dtype)


def inject_detail(y: torch.Tensor, g: torch.Tensor, d_t: Degradation, d_g: Degradation, valid: torch.Tensor | None = None) -> torch.Tensor:
    """High-pass injection of a regressed pseudo-pan: the classic guided sharpening (MTF-GLP style).

    For each target band, the pseudo-pan is the least-squares combination (with offset) of the guide
    bands that best explains the band on the target grid (guide degraded by ``d_g``), fitted over
    ``valid`` target pixels; its detail — the pseudo-pan minus its interpolated degradation by the
    band's own kernel ``d_t`` — is added to the bicubic interpolation. y: ``(1, T, h, w)``;
    g: ``(1, G, s·h, s·w)``; valid: ``(1, T or 1, h, w)`` 0/1. Returns ``(1, T, s·h, s·w)``.
    """
    s = d_t.scale
    g_low = d_g(g)[0].flatten(1)  # (G, h·w)
    design = torch.cat([g_low, torch.ones_like(g_low[:1])]).T  # (h·w, G+1)
    w = torch.ones_like(y[0, :1]).flatten() if valid is None else valid[0].amin(dim=0).flatten()
    if float(w.sum()) < design.shape[1]:  # fewer usable pixels than coefficients (nodata all round): no detail to inject
        return upsample(y, s, d_t.shift)
    # solved on the CPU with the SVD driver on every device: it takes rank-deficient designs (a guide band
    # constant over the tile, two identical guide bands) where CUDA's only driver (gels) fails or returns
    # huge cancelling coefficients, and unlike the default CPU driver (gelsy) it gives the same bits from
    # run to run; the design is a few MB per tile, moved once
    a, b = (design * w[:, None]).cpu(), (y[0].flatten(1).T * w[:, None]).cpu()
    coef = torch.linalg.lstsq(a, b, driver="gelsd").solution.to(g.device)  # (G+1, T)
    pan = torch.einsum("gt,nghw->nthw", coef[:-1], g) + coef[-1].view(1, -1, 1, 1)
    return upsample(y, s, d_t.shift) + pan - upsample(d_t(pan), s, d_t.shift)


def sharpen_tile(
    target: np.ndarray,
    target_valid: np.ndarray,
    guide: np.ndarray,
    guide_valid: np.ndarray,
    target_kernels: list[Kernel],
    guide_kernels: list[Kernel],
    config: GuidedDIPConfig,
    device: torch.device,
    progress: Progress,
    generator: torch.Generator,
    start: dict[str, torch.Tensor] | None = None,
    keep: np.ndarray | None = None,
) -> TileResult:
    """Sharpen one normalised target tile ``(T, h, w)`` with its guide ``(G, s·h, s·w)`` (module docstring).

    ``start``: a trained tile's ``TileResult.state`` to start the network from instead of its fresh
    initialisation; the run then has ``config.warm_step_count`` steps. The result carries its own state.
    ``keep``: the back-projection width test decided once for the run's target (``core.degradation.back_project``);
    ``None``: decided on this tile.
    """
    s = target_kernels[0].scale
    bands, h, w = target.shape
    if guide.shape[-2:] != (s * h, s * w):
        raise ValueError(f"guide tile {guide.shape} does not nest ×{s} in target tile {target.shape}")
    if min(h, w) < MIN_TARGET_SIZE:
        raise InputError(f"target {w}×{h} is too small: guided DIP needs at least {MIN_TARGET_SIZE}×{MIN_TARGET_SIZE} target pixels")

    def tensor(a: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(a, dtype=torch.float32, device=device)[None]

    m_t, m_g = tensor(target_valid), tensor(guide_valid)
    y, g = fill_invalid(tensor(target), m_t), fill_invalid(tensor(guide), m_g)
    d_t, d_g = Degradation(target_kernels).to(device), Degradation(guide_kernels).to(device)
    g_low, m_g_low = d_g(g), degraded_valid(m_g, guide_kernels)

    def base(low: torch.Tensor, fine_guide: torch.Tensor, valid: torch.Tensor, d_t: Degradation, d_g: Degradation) -> torch.Tensor:
        """What the network corrects: bicubic, or bicubic with injected guide detail."""
        if config.base == "injection":
            return inject_detail(low, fine_guide, d_t, d_g, valid)
        return upsample(low, s, d_t.shift)

    fit_valid = m_t * m_g_low  # the pseudo-pan regression must not fit the guide's filled nodata
    x_base = base(y, g, fit_valid, d_t, d_g)
    inputs = torch.cat([g, x_base], 1)

    # the cross-scale pair, one level down: [D_g(g), base(D_t(y), D_g(g))] → y on whole s × s blocks of y
    hs, ws = (h // s) * s, (w // s) * s
    coarse_pixels = (hs // s) * (ws // s)
    cross_scale = config.cross_scale_weight > 0 and coarse_pixels >= COARSE_PIXELS_PER_COEFFICIENT * (g.shape[1] + 1)
    if cross_scale:
        y_c, g_c = y[..., :hs, :ws], g_low[..., :hs, :ws]
        coarse_valid = fit_valid[..., :hs, :ws]
        aligned_kernels = [[k.at_shift((0.0, 0.0)) for k in kernels] for kernels in (target_kernels, guide_kernels)]
        aligned = [Degradation(kernels).to(device) for kernels in aligned_kernels]
        # one level down the regression reads D(y_c) and D(g_c): none of their taps may reach filled nodata
        coarse_fit = degraded_valid(m_t[..., :hs, :ws], aligned_kernels[0]) * degraded_valid(
            m_g_low[..., :hs, :ws].expand(-1, g.shape[1], -1, -1), aligned_kernels[1])
        # as many usable coarse pixels per coefficient as the pair's size requires, once nodata is left out
        cross_scale = float(coarse_fit.sum()) >= COARSE_PIXELS_PER_COEFFICIENT * (g.shape[1] + 1)
        coarse_base = base(aligned[0](y_c), g_c, coarse_fit, *aligned)
        coarse_inputs = torch.cat([g_c, coarse_base], 1)

    def with_noise(z: torch.Tensor) -> torch.Tensor:
        if not config.noise_channels:
            return z
        noise = torch.rand((1, config.noise_channels, *z.shape[-2:]), generator=generator) * 0.1
        return torch.cat([z, noise.to(device)], 1)

    inputs = with_noise(inputs)
    if cross_scale:
        coarse_inputs = with_noise(coarse_inputs)
    net = MultiModalNet(inputs.shape[1], (bands, g.shape[1]), config.width, config.layers, s, config.adjustment).to(device)
    if start is not None:
        net.load_state_dict(start)
    setup = step_setup(config, device)
    mixed, graphs, capturable = setup.mixed, setup.record, setup.capturable
    optimiser = adam(net.parameters(), config.learning_rate, capturable=capturable)

    layout = conv_layout(device)

    def generate(z: torch.Tensor, element: augment.Dihedral) -> list[torch.Tensor]:
        with autocast(device, mixed, cache=not graphs):
            outputs = net(augment.apply(z, element).contiguous(memory_format=layout))
        return [augment.inverse(out.float(), element) for out in outputs]

    def compute(index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """One update with the inputs' dihedral transform ``index`` (``core.graphs``: the inputs are the same at
        every step); returns the loss and the target bands' image."""
        optimiser.zero_grad(set_to_none=True)
        element = augment.DIHEDRAL[index]
        correction, x_g = generate(inputs, element)
        x_t = x_base + correction
        loss = masked_mse(d_t(x_t), y, m_t)
        if config.guide_weight:
            loss = loss + config.guide_weight * masked_mse(x_g, g, m_g)
        if config.cycle_weight:
            loss = loss + config.cycle_weight * masked_mse(d_g(x_g), g_low, m_g_low)
        if cross_scale:
            coarse_correction, _ = generate(coarse_inputs, element)
            loss = loss + config.cross_scale_weight * masked_mse(coarse_base + coarse_correction, y_c, coarse_valid)
        setup.update(loss, optimiser)
        return loss.detach(), x_t.detach()

    graphed = GraphedStep(compute, device, graphs, progress)

    def step(i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return graphed(i % 8 if config.augment else 0)

    stop = StopRule(config.stop_patience, config.stop_tolerance) if config.early_stop else None
    steps = config.steps if start is None else config.warm_step_count
    result = optimise(step, steps, progress, config.ema_decay, stop, label="guided DIP")
    x = back_project(result.output, y, d_t, config.back_projection_steps, m_t, keep)
    state = cpu_state(net)
    return TileResult(x[0].cpu().numpy(), result.losses, result.steps, state=state)
