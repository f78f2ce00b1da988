"""Wald's protocol: degrade a real image by ``s``, super-resolve it back, compare with the original.

All arrays are ``(C, H, W)`` float in the raster's units. The degradation is ``core.degradation``'s
operator, so evaluation, training losses and back-projection share one sensor model.
"""

from __future__ import annotations

import numpy as np
import torch

from .degradation import Degradation, back_project, degrade_array, upsample
from .kernels import Kernel

#: Back-projection steps of the "bicubic + back-projection" baseline (converged on our crops).
BASELINE_BP_STEPS = 20


def wald_pair(reference: np.ndarray, kernel: Kernel) -> tuple[np.ndarray, np.ndarray]:
    """Crop ``reference`` to a multiple of ``s`` and degrade it: returns (reference, low-resolution)."""
    s = kernel.scale
    h, w = (reference.shape[-2] // s) * s, (reference.shape[-1] // s) * s
    reference = reference[:, :h, :w]
    return reference, degrade_array(reference, kernel)


def bicubic(low: np.ndarray, scale: int) -> np.ndarray:
    """Bicubic interpolation (``align_corners=False``) of ``(C, h, w)`` by ``scale``."""
    with torch.no_grad():
        return upsample(torch.as_tensor(low, dtype=torch.float32)[None], scale)[0].double().numpy()


def bicubic_back_projected(low: np.ndarray, kernel: Kernel | list[Kernel], steps: int = BASELINE_BP_STEPS) -> np.ndarray:
    """Bicubic interpolation followed by ``steps`` of iterative back-projection with ``kernel`` (or one per band)."""
    y = torch.as_tensor(low, dtype=torch.float32)[None]
    degradation = Degradation(kernel)
    x = back_project(upsample(y, degradation.scale), y, degradation, steps)
    return x[0].double().numpy()


def hpf_injection(
    low: np.ndarray, guide: np.ndarray, target_kernels: list[Kernel], guide_kernels: list[Kernel], back_projection_steps: int = 0
) -> np.ndarray:
    """Classic guided baseline (``core.guided.inject_detail``): bicubic plus pseudo-pan high-pass detail.

    Optionally followed by ``back_projection_steps`` of back-projection with the target kernels.
    low: ``(T, h, w)``; guide: ``(G, s·h, s·w)``; returns ``(T, s·h, s·w)`` float64.
    """
    from .guided import inject_detail

    with torch.no_grad():
        y = torch.as_tensor(low, dtype=torch.float64)[None]
        g = torch.as_tensor(guide, dtype=torch.float64)[None]
        d_t, d_g = Degradation(target_kernels).double(), Degradation(guide_kernels).double()
        return back_project(inject_detail(y, g, d_t, d_g), y, d_t, back_projection_steps)[0].numpy()
