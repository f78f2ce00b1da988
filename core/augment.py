"""The dihedral group of the square, applied to ``(N, C, H, W)`` tensors (self-ensembles).

Each of the 8 elements is ``(turns, flip)``: an optional left-right flip followed by ``turns``
quarter turns. ``inverse(apply(x, t), t) == x``.
"""

from __future__ import annotations

import torch

Dihedral = tuple[int, bool]
#: the 8 elements, identity first
DIHEDRAL: tuple[Dihedral, ...] = tuple((turns, flip) for turns in range(4) for flip in (False, True))


def apply(x: torch.Tensor, element: Dihedral) -> torch.Tensor:
    turns, flip = element
    return torch.rot90(x.flip(-1) if flip else x, turns, (-2, -1))


def inverse(x: torch.Tensor, element: Dihedral) -> torch.Tensor:
    turns, flip = element
    x = torch.rot90(x, -turns, (-2, -1))
    return x.flip(-1) if flip else x
