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


def check_device(device: str) -> None:
    """Raise a one-line ``InputError`` unless ``device`` is auto, cpu, cuda or mps."""
    if device not in ("auto", "cpu", "cuda", "mps"):
        raise InputError(f"device must be auto, cpu, cuda or mps, got {device!r}")


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
        check_device(self.device)

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


@dataclass(frozen=True)
class KernelGANConfig:
    """KernelGAN blur-kernel estimation (Bell-Kligler, Shocher, Irani 2019); defaults from the reference code.

    Generator: a deep *linear* network (convolutions of sizes ``generator_layers``, ``generator_channels``
    maps, no bias, no activation, stride 2 in the last layer) whose collapsed map is one 13 × 13 kernel
    followed by decimation by 2. Discriminator: fully convolutional, a ``discriminator_kernel`` conv then
    1 × 1 convs (``discriminator_layers`` in all, ``discriminator_channels`` maps, spectral normalisation,
    batch norm, ReLU, sigmoid output), so each output judges one 7 × 7 patch. Each step takes one
    ``crop_size`` crop for the generator and one real crop of the generator's output size for the
    discriminator, both drawn where the image has structure. Images are normalised per band to [−1, 1].

    Loss weights (generator): GAN (L1 to the "real" label) + ``sum_weight`` · |1 − Σk| +
    ``boundary_weight`` · boundary penalty + ``centre_weight`` · centre-of-mass distance² +
    ``sparse_weight`` · mean |k|^0.2 + a bicubic prior (MSE to the bicubic downscaling of the same crop)
    weighted ``prior_weights[i]`` during stage ``i`` of ``prior_stage`` steps and released (0) after the
    last stage. The centring and sparsity terms join at step ``constraints_from``. Learning rates are
    divided by 10 every ``lr_decay_every`` steps. Post-processing keeps the values above 0.75 × the
    ``keep_largest``-th largest tap and re-centres the kernel (``core.kernelgan``).

    scale: 2, or 4 (the ×2 kernel composed with itself, as the paper). Units of sizes: pixels of the
    image the kernel is estimated on (the low-resolution input of a super-resolution).
    """

    scale: int = 2
    iterations: int = 3000
    #: One kernel per band instead of one shared by the bands (which are then a batch of grey images).
    per_band: bool = False
    crop_size: int = 64
    generator_layers: tuple[int, ...] = (7, 5, 3, 1, 1, 1)
    generator_channels: int = 64
    discriminator_layers: int = 7
    discriminator_kernel: int = 7
    discriminator_channels: int = 64
    learning_rate: float = 2e-4
    beta1: float = 0.5
    lr_decay_every: int = 750
    sum_weight: float = 0.5
    boundary_weight: float = 0.5
    centre_weight: float = 1.0
    sparse_weight: float = 5.0
    prior_weights: tuple[float, ...] = (5.0, 0.05, 5e-4)
    prior_stage: int = 200
    constraints_from: int = 400
    #: Standard deviation of the noise added to the discriminator's inputs (normalised units, [−1, 1]).
    discriminator_noise: float = 2 / 255
    keep_largest: int = 40
    seed: int = 0
    device: str = "auto"

    def __post_init__(self) -> None:
        if self.scale not in (2, 4):
            raise InputError(f"KernelGAN estimates ×2 kernels (×4 by composition): scale must be 2 or 4, got {self.scale}")
        if self.iterations < 1:
            raise InputError(f"iterations must be ≥ 1, got {self.iterations}")
        check_device(self.device)

    @property
    def kernel_size(self) -> int:
        """Edge of the generator's collapsed kernel (13 for the reference layers 7, 5, 3, 1, 1, 1)."""
        return sum(self.generator_layers) - len(self.generator_layers) + 1

    def check_input_size(self, width: int, height: int) -> None:
        """Raise a one-line ``InputError`` when a ``width × height`` image is smaller than one crop."""
        if min(width, height) < self.crop_size:
            raise InputError(
                f"image {width}×{height} is too small for KernelGAN: at least {self.crop_size}×{self.crop_size} pixels"
            )


#: Default optimisation steps of guided DIP, chosen on a development crop (never the benchmark crops).
GUIDED_ITERATIONS = 500


@dataclass(frozen=True)
class GuidedDIPConfig:
    """Guided (multi-modal) Deep Image Prior: sharpen target bands with finer guide bands.

    The scale is not configured: it is the integer ratio of the two grids (``core.grid.nest``).
    Generator (``core.networks.MultiModalNet``): the guide bands and the bicubic-interpolated target
    bands (plus ``noise_channels`` of fixed uniform noise) go through a shared trunk of ``layers`` 3×3
    convs of ``width`` maps; one head per modality (target, guide) with local adjustment heads. The
    target is predicted as a correction of its ``base`` image. Loss (all terms masked to valid pixels;
    ``core.guided``): target term ``‖D_t(x_t) − y‖²`` + ``guide_weight`` · guide term ``‖x_g − g‖²`` +
    ``cycle_weight`` · ``‖D_g(x_g) − D_g(g)‖²`` + ``cross_scale_weight`` · the same network mapping the
    guide and target degraded once more back to the observed target.

    kernel: the target bands' blur (``sentinel2``: per band from the Sentinel-2 MTF, recognised from
    the band descriptions; or any ``core.kernels`` name/path, shared by all bands).
    guide_kernel: the guide bands' blur, used to bring the guide to the target grid (same choices).
    """

    kernel: str = "sentinel2"
    guide_kernel: str = "sentinel2"
    #: Adam steps per tile; ``None`` picks ``GUIDED_ITERATIONS``.
    iterations: int | None = None
    learning_rate: float = 0.001
    width: int = 64
    layers: int = 6
    noise_channels: int = 0
    #: What the network corrects: ``interpolation`` (bicubic) or ``injection`` (bicubic plus the
    #: high-pass detail of a regressed pseudo-pan, ``core.guided.inject_detail``).
    base: str = "injection"
    #: Per-modality local adjustment heads (gain and offset on the low-resolution grid).
    adjustment: bool = True
    guide_weight: float = 0.001
    cycle_weight: float = 0.001
    cross_scale_weight: float = 3.0
    augment: bool = True
    ema_decay: float = 0.99
    early_stop: bool = True
    stop_patience: int = 300
    stop_tolerance: float = 0.01
    back_projection_steps: int = 20
    seed: int = 0
    device: str = "auto"
    mixed_precision: bool = True
    #: Tiles on the *target* grid (size and overlap in target pixels).
    tiles: TileOptions = field(default_factory=TileOptions)

    def __post_init__(self) -> None:
        if self.iterations is not None and self.iterations < 1:
            raise InputError(f"iterations must be ≥ 1, got {self.iterations}")
        if self.base not in ("interpolation", "injection"):
            raise InputError(f"base must be interpolation or injection, got {self.base!r}")
        check_device(self.device)

    @property
    def steps(self) -> int:
        return GUIDED_ITERATIONS if self.iterations is None else self.iterations
