"""Typical run times of the optimising methods: the help texts and the dialog's estimate share them.

The CPU figures are those of ``benchmarks/results/speed.json`` (one core), the GPU figures those of
``benchmarks/results/gpu.json``, and the README's run-time table states them (``tests/test_run_times.py``
holds them together).

A figure is the seconds one optimisation step takes on one tile whose *output* is
``REFERENCE_PIXELS`` (256 × 256: a 128 × 128 input tile at ×2). On a CPU a step's cost grows with the
output pixels of the tile, so a tile of ``p`` output pixels takes ``p / REFERENCE_PIXELS`` times as long.
On a GPU a step of these sizes is bound by launching its work, not by its pixels: it costs the same for
any tile up to ``GPU_FLAT_PIXELS`` and is taken to grow with the pixels beyond.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..core.config import QUALITIES, QUALITY_PRESETS, later_steps
from ..core.progress import duration

#: Output pixels of the tile the figures are given for (a 128 × 128 input tile at ×2).
REFERENCE_PIXELS = 256 * 256


@dataclass(frozen=True)
class StepTimes:
    """Seconds per step on a 256 × 256-output tile: on one CPU core (one PyTorch thread), on a CUDA GPU
    (``benchmarks/results/gpu.json``'s *steps* part)."""

    cpu: float
    gpu: float
    #: Where the figures come from, for the help text.
    measured: str


#: Output pixels up to which a GPU step costs the same: DIP on an NVIDIA H200 took 0.049 s per step for
#: 256 × 256 output pixels (a 128² input tile at ×2) and 0.046 s for 320 × 320 (80² at ×4), 2026-11-27 (the GPU
#: benchmark's *steps* and *batch* parts).
GPU_FLAT_PIXELS = 320 * 320

STEP_SECONDS: dict[str, StepTimes] = {
    "dip": StepTimes(
        0.7,
        0.049,
        "measured: 0.74 s of one CPU core per step on a 128 × 128 input tile at ×2 (the speed benchmark); 0.049 s on "
        "an NVIDIA H200 (the GPU benchmark)",
    ),
    "knitwork": StepTimes(
        0.7, 0.014, "measured: 0.74 s of one CPU core per step on a 128 × 128 input tile at ×2 on the default step "
        "windows (the speed benchmark; 1.36 s for a whole-tile step); 0.014 s on an NVIDIA H200 (the GPU benchmark)"
    ),
    "guided": StepTimes(
        1.1,
        0.013,
        "measured: 0.267 s of one CPU core per step for 128 × 128 output pixels (a 64 × 64 target tile at ×2, "
        "the speed benchmark), i.e. about 1.1 s for 256 × 256; 0.013 s on an NVIDIA H200 for a 128 × 128 target tile "
        "(the GPU benchmark)",
    ),
}


def run_steps(tiles: int, steps: int, warm: float | None) -> int:
    """Steps over ``tiles`` tiles: the first runs ``steps``, the others the ``warm`` fraction of them when
    warm-started (``InternalLearningConfig.warm_steps``; ``None``: every tile runs ``steps``)."""
    return steps + (tiles - 1) * later_steps(steps, warm) if tiles else 0


def estimate_seconds(
    method: str, tiles: int, steps: int, tile_output_pixels: int, gpu: bool, warm: float | None = None
) -> float:
    """Seconds for ``tiles`` tiles of ``tile_output_pixels`` output pixels at ``steps`` steps each (tiles
    after the first at the ``warm`` fraction of them, see ``run_steps``).

    On a GPU a tile of up to ``GPU_FLAT_PIXELS`` costs a full step of the reference tile.
    """
    times = STEP_SECONDS[method]
    if gpu:
        return run_steps(tiles, steps, warm) * times.gpu * max(1.0, tile_output_pixels / GPU_FLAT_PIXELS)
    return run_steps(tiles, steps, warm) * times.cpu * tile_output_pixels / REFERENCE_PIXELS


def presets_text(method: str) -> str:
    """``fast 200, balanced 600, best 1200`` steps per tile for ``method`` (DIP's figures)."""
    return ", ".join(f"{quality} {QUALITY_PRESETS[method][quality]}" for quality in QUALITIES)


def run_time_help(method: str, tile: str = "input") -> str:
    """The help panel's paragraph on run times and quality presets of ``method`` (HTML); ``tile`` names the tiled raster."""
    times = STEP_SECONDS[method]
    steps = QUALITY_PRESETS[method]["balanced"]
    cpu = duration(steps * times.cpu)
    gpu = f" and about {duration(steps * times.gpu)} on a CUDA GPU"
    return (
        f"<p><b>How long</b>: one 128 × 128 {tile} tile at ×2 (256 × 256 output pixels) at the default {steps} "
        f"steps takes about {cpu} on one CPU core{gpu} ({times.measured}). The time grows with "
        "the output pixels: "
        "×4 on the same tile takes four times as long, and a raster of many tiles takes that per tile, so on "
        "a CPU use the Extent to process your area of interest, or a GPU. "
        f"Quality presets (steps per tile): {presets_text(method)}; the dialog estimates the time before it starts.</p>"
    )

