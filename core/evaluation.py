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


def bicubic_back_projected(low: np.ndarray, kernel: Kernel, steps: int = BASELINE_BP_STEPS) -> np.ndarray:
    """Bicubic interpolation followed by ``steps`` of iterative back-projection with ``kernel``."""
    y = torch.as_tensor(low, dtype=torch.float32)[None]
    x = back_project(upsample(y, kernel.scale), y, Degradation(kernel), steps)
    return x[0].double().numpy()
