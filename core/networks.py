"""The Deep Image Prior hourglass ("skip" network of Ulyanov et al., reference configuration).

Input ``(N, in_channels, H, W)`` → output ``(N, out_channels, H, W)``; ``H`` and ``W`` must be
divisible by ``2**depth``. Each scale: a 1×1 skip branch of ``skip_channels``; a down branch of a
stride-2 3×3 conv and a 3×3 conv (``channels`` maps); the deeper scales; bilinear ×2 upsampling;
concatenation with the skip, batch norm, a 3×3 and a 1×1 conv. Reflection padding, LeakyReLU(0.2),
batch norm after every conv. The output head is linear (the reference's sigmoid would clip
normalised reflectances that fall outside [0, 1]).

Batch norm always normalises by the statistics of its input (``batch_norm``): the network is optimised
on one image and never switched to evaluation, so running statistics would never be read, and keeping
them costs an update per batch norm and step (on a GPU, a kernel launch each).
"""

from __future__ import annotations

import torch
from torch import nn


def batch_norm(channels: int) -> nn.BatchNorm2d:
    """Batch norm by the statistics of its input, keeping no running statistics."""
    return nn.BatchNorm2d(channels, track_running_stats=False)


def conv_block(in_channels: int, out_channels: int, size: int, stride: int = 1) -> nn.Sequential:
    """Reflection-padded conv → batch norm → LeakyReLU(0.2)."""
    pad = (size - 1) // 2
    layers: list[nn.Module] = [nn.ReflectionPad2d(pad)] if pad else []
    layers += [nn.Conv2d(in_channels, out_channels, size, stride=stride), batch_norm(out_channels), nn.LeakyReLU(0.2, inplace=True)]
    return nn.Sequential(*layers)


class _Scale(nn.Module):
    def __init__(self, in_channels: int, channels: int, skip_channels: int, deeper: nn.Module | None) -> None:
        super().__init__()
        self.skip = conv_block(in_channels, skip_channels, 1) if skip_channels else None
        self.down = nn.Sequential(conv_block(in_channels, channels, 3, stride=2), conv_block(channels, channels, 3))
        self.deeper = deeper
        self.up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)
        merged = channels + skip_channels
        self.merge = nn.Sequential(batch_norm(merged), conv_block(merged, channels, 3), conv_block(channels, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.down(x)
        if self.deeper is not None:
            y = self.deeper(y)
        y = self.up(y)
        if self.skip is not None:
            y = torch.cat([self.skip(x), y], dim=1)
        return self.merge(y)


class Hourglass(nn.Module):
    """The DIP "skip" hourglass with ``depth`` scales (see the module docstring)."""

    def __init__(self, in_channels: int, out_channels: int, depth: int = 5, channels: int = 128, skip_channels: int = 4) -> None:
        super().__init__()
        body: nn.Module | None = None
        for level in reversed(range(depth)):
            body = _Scale(in_channels if level == 0 else channels, channels, skip_channels, body)
        self.body = body
        self.head = nn.Conv2d(channels, out_channels, 1)
        self.multiple = 2**depth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


class DetailNet(nn.Module):
    """A plain full-resolution CNN: ``layers`` 3×3 convs of ``width`` maps with ReLU, no resampling.

    ``(N, in_channels, H, W)`` → ``(N, out_channels, H, W)``; the last conv starts at zero so the
    branch adds nothing until it has learnt something. It gives the generator the full-resolution
    path that the hourglass's 4-channel skip lacks (see the README's measurements).
    """

    def __init__(self, in_channels: int, out_channels: int, width: int = 64, layers: int = 6) -> None:
        super().__init__()
        body: list[nn.Module] = []
        for index in range(layers):
            body += [nn.Conv2d(in_channels if index == 0 else width, width, 3, padding=1), nn.ReLU(inplace=True)]
        last = nn.Conv2d(width if layers else in_channels, out_channels, 3, padding=1)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        self.body = nn.Sequential(*body, last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def parameter_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


class MultiModalNet(nn.Module):
    """The shared generator of guided (multi-modal) DIP, with one output head per modality.

    Input ``(N, in_channels, H, W)`` (guide bands, interpolated target bands, optional noise) →
    a list of ``(N, c_m, H, W)`` outputs, one per entry of ``out_channels``. A shared full-resolution
    trunk of ``layers`` 3×3 convs (``width`` maps, ReLU) feeds, per modality m,

    * an output head ``h_m``: a 3×3 conv, zero-initialised (the modality starts at its base image);
    * a local adjustment head: a 1×1 conv on the trunk features averaged over ``pool × pool`` blocks
      (the low-resolution grid), giving a per-pixel gain ``a_m`` and offset ``b_m`` that are
      bilinearly interpolated back, so the output is ``(1 + a_m)·h_m + b_m``. They absorb smooth,
      band-specific departures from what the shared features explain (e.g. a band that responds
      differently from the guide over some land covers) without adding fine detail of their own.
      Zero-initialised too (``a = b = 0``).
    """

    def __init__(self, in_channels: int, out_channels: tuple[int, ...], width: int = 64, layers: int = 6, pool: int = 2, adjust: bool = True) -> None:
        super().__init__()
        body: list[nn.Module] = []
        for index in range(layers):
            body += [nn.Conv2d(in_channels if index == 0 else width, width, 3, padding=1, padding_mode="reflect"), nn.ReLU(inplace=True)]
        self.trunk = nn.Sequential(*body)
        self.heads = nn.ModuleList(nn.Conv2d(width, c, 3, padding=1, padding_mode="reflect") for c in out_channels)
        self.adjust = nn.ModuleList(nn.Conv2d(width, 2 * c, 1) for c in out_channels) if adjust else None
        for layer in [*self.heads, *(self.adjust or [])]:
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)
        self.pool = pool

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = self.trunk(x)
        outputs = [head(features) for head in self.heads]
        if self.adjust is None:
            return outputs
        size = features.shape[-2:]
        pooled = nn.functional.avg_pool2d(features, self.pool, ceil_mode=True) if self.pool > 1 else features
        adjusted = []
        for out, adjust in zip(outputs, self.adjust):
            gain, offset = nn.functional.interpolate(adjust(pooled), size=size, mode="bilinear", align_corners=False).chunk(2, dim=1)
            adjusted.append((1 + gain) * out + offset)
        return adjusted
