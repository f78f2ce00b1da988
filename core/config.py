"""Configuration value types. Processing parameters, CLI flags and tests all map onto these.

Units: ``scale`` is the integer refinement factor between the input grid and the output grid;
tile sizes and overlaps are in *input* pixels; learning rates are Adam step sizes on images
normalised per band (see ``core.normalise``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import InputError

#: Default optimisation steps per scale, chosen on development crops (never the benchmark crops).
DEFAULT_ITERATIONS = {2: 300, 3: 300, 4: 300}


@dataclass(frozen=True)
class IOOptions:
    """How a raster is read and written.

    bands: 1-based band indices to process (``None``: all bands).
    float32: write Float32 instead of keeping the input dtype.
    cog: write a Cloud Optimized GeoTIFF layout (tiled, overviews) instead of a plain tiled GeoTIFF.
    """

    bands: tuple[int, ...] | None = None
    float32: bool = False
    cog: bool = False


@dataclass(frozen=True)
class TileOptions:
    """Tiling of large rasters, in input pixels.

    size: tile edge (the optimisation runs on ``size × size`` input pixels at a time).
    overlap: pixels shared by neighbouring tiles, blended with a smooth ramp.
    """

    size: int = 128
    overlap: int = 16

    def __post_init__(self) -> None:
        if self.size < 16:
            raise InputError(f"tile size {self.size} is too small: use at least 16 input pixels")
        if self.overlap < 0 or 2 * self.overlap >= self.size:
            raise InputError(f"tile overlap {self.overlap} must be ≥ 0 and less than half the tile size {self.size}")


@dataclass(frozen=True)
class DIPConfig:
    """Deep Image Prior super-resolution (Ulyanov, Vedaldi, Lempitsky 2018) and our practical additions.

    Architecture (reference "skip" hourglass): ``depth`` scales, ``channels`` feature maps per scale,
    ``skip_channels`` per skip connection, bilinear upsampling, reflection padding, LeakyReLU(0.2).
    The network input is ``noise_channels`` of uniform noise scaled by 0.1, perturbed every step by
    Gaussian noise of std ``noise_perturbation``; with ``guide_input`` the interpolated low-resolution
    image is fed beside the noise.
    """

    scale: int = 2
    kernel: str = "bicubic"
    #: Adam steps; ``None`` picks ``DEFAULT_ITERATIONS[scale]`` (or the ×4 value for larger scales).
    iterations: int | None = None
    learning_rate: float = 0.001
    depth: int = 5
    channels: int = 128
    skip_channels: int = 4
    noise_channels: int = 32
    noise_perturbation: float = 0.0
    guide_input: bool = True
    #: Weight of the cross-scale term: the same network must also turn ``U(D(y))`` into ``y``
    #: (requires ``guide_input``; 0 disables it).
    cross_scale_weight: float = 1.0
    #: Full-resolution detail branch on the interpolated image (``guide_input`` only): ``detail_layers``
    #: 3×3 convs of ``detail_channels`` maps whose output is added to the hourglass's (0 disables it).
    detail_layers: int = 6
    detail_channels: int = 64
    #: Feed each step a random flip/rotation of the inputs (and undo it on the output): the output
    #: average then becomes a self-ensemble over the 8 dihedral transforms.
    augment: bool = True
    #: Start the predicted correction at zero (zero-initialised output head) when ``guide_input``.
    zero_init: bool = True
    #: Exponential moving average of the output over steps (0 disables it).
    ema_decay: float = 0.99
    #: Stop when the loss has not improved by ``stop_tolerance`` (relative) in ``stop_patience`` steps.
    early_stop: bool = True
    stop_patience: int = 300
    stop_tolerance: float = 0.01
    #: Final back-projection (Irani–Peleg) steps making the output consistent with the input.
    back_projection_steps: int = 20
    #: Output averaging: the result is ``B + blend·(P − B)`` with ``P`` the back-projected DIP output
    #: and ``B`` the back-projected bicubic image (1 keeps the DIP output alone).
    blend: float = 0.5
    seed: int = 0
    device: str = "auto"
    mixed_precision: bool = True
    tiles: TileOptions = field(default_factory=TileOptions)

    def __post_init__(self) -> None:
        if self.scale < 2:
            raise InputError(f"scale must be an integer ≥ 2, got {self.scale}")
        if self.iterations is not None and self.iterations < 1:
            raise InputError(f"iterations must be ≥ 1, got {self.iterations}")
        if self.device not in ("auto", "cpu", "cuda", "mps"):
            raise InputError(f"device must be auto, cpu, cuda or mps, got {self.device!r}")

    @property
    def steps(self) -> int:
        """The number of optimisation steps this configuration runs at most."""
        if self.iterations is not None:
            return self.iterations
        return DEFAULT_ITERATIONS.get(self.scale, DEFAULT_ITERATIONS[4])

    @property
    def min_input_size(self) -> int:
        """Smallest input edge (pixels): the output must still be 2 pixels wide after ``depth`` halvings."""
        return -(-(2 ** (self.depth + 1)) // self.scale)

    def check_input_size(self, width: int, height: int) -> None:
        """Raise a one-line ``InputError`` when a ``width × height`` input is smaller than the network needs."""
        if min(width, height) < self.min_input_size:
            raise InputError(
                f"image {width}×{height} is smaller than the network needs: at least "
                f"{self.min_input_size}×{self.min_input_size} input pixels at ×{self.scale} with depth {self.depth}"
            )
