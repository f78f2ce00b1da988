"""KernelGAN: estimate an image's own blur kernel (Bell-Kligler, Shocher, Irani, NeurIPS 2019).

A deep linear generator ``G`` downscales crops of the image by 2 while a patch discriminator ``D``
tells ``G``'s output patches from the image's own patches; when ``D`` is fooled, ``G`` reproduces the
image's patch statistics one scale down, and its collapsed linear map (one convolution followed by
decimation by 2) is the image's ×2 blur kernel. The ×4 kernel is the ×2 kernel composed with itself
(``compose_x4``), as in the paper. Settings: ``core.config.KernelGANConfig``.

Conventions. Images are ``(C, H, W)``; each band is normalised to [−1, 1] (its 0.5 % and 99.5 %
percentiles, ``core.normalise``). Bands share one kernel by default and are then a batch of grey
images: the kernel never mixes bands (the reference code mixes colour channels in its bicubic term and
needs three bands; here any band count works). Kernels are 2-D float64 arrays of odd size summing to
1, sampled on the grid of the image they blur, whose centre of mass is placed where
``core.kernels.file_kernel_centre`` says (half a pixel below-right of the central tap at even scales),
so that ``save_kernel_file`` → ``make_kernel(path, scale)`` → ``Degradation`` decimates on the same
block centres as the built-in kernels.

The generator's forward pass convolves with its collapsed kernel instead of running the layers one
by one: the map is linear and bias-free, so the output and the gradients reaching every layer's
weights are the same (tested), at a small fraction of the cost. The collapsed kernel is a correlation
kernel, applied by ``core.degradation`` as it is, with no flip or transpose (tested with hand-set layers).

Kernel shape (measured, README "Kernel shape"): the width of an elongated kernel is found better than
its direction; a discriminator trained against a generator fixed at candidate kernels is fooled about
as well by an isotropic kernel as by the rightly oriented one, so KernelGAN's own estimates come out
much less elongated than the truth and their axis is unreliable. By default (``orientation="spectrum"``)
the estimate is therefore the Gaussian with the area of KernelGAN's kernel and the elongation and
direction read from the image's power spectrum (``core.anisotropy``); ``Estimate.kernelgan`` keeps
KernelGAN's own kernel.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

from .anisotropy import SpectralAnisotropy, clean_windows, oriented_width, spectral_anisotropy, varied_windows, window_sums
from .config import KERNEL_TERM, ORIENTATION_WORDS, InternalLearningConfig, IOOptions, KernelGANConfig, as_paths, collapsed_size, count_words
from .degradation import Degradation
from .device import busy_cpus_line, describe, resolve_device, seeded
from .errors import InputError
from .kernels import (
    Kernel, KernelWidth, anisotropic_gaussian, check_kernel_outputs, file_kernel_centre, kernel_files, kernel_origin, kernel_width,
    make_kernel, recentre, save_kernel_file,
)
from .normalise import BandScaling
from .optimise import adam, optimise
from .progress import DONE, NullProgress, Part, Progress, SubProgress, Timed
from .grid import Window
from .raster import (
    RasterInfo, StagedFiles, band_labels, check_extension, claimed, file_window, open_info, read_window, staged, valid_interior,
)

#: Fraction of the strongest gradients that mark "structure" where crops are drawn (the reference's 97th percentile).
STRUCTURE_QUANTILE = 0.97
#: Edge (pixels) of the decimated read on which ``estimation_window`` ranks the windows of a large raster.
PLACEMENT_SAMPLE = 512


class LinearGenerator(nn.Module):
    """Deep linear generator: bias-free convolutions of sizes ``layers`` (stride 2 in the last one).

    Input ``(N, 1, H, W)`` → output ``(N, 1, (H − L) // 2 + 1, (W − L) // 2 + 1)`` with ``L`` the
    collapsed kernel size: output pixel ``j`` is ``Σ_a k[a] · x[2j + a]`` (no padding).
    """

    def __init__(self, layers: tuple[int, ...], channels: int) -> None:
        super().__init__()
        widths = [1] + [channels] * (len(layers) - 1) + [1]
        self.convs = nn.ModuleList(
            nn.Conv2d(widths[i], widths[i + 1], size, bias=False) for i, size in enumerate(layers)
        )
        for conv in self.convs:
            nn.init.xavier_normal_(conv.weight, 0.1)  # the reference's initialisation
        self.size = collapsed_size(layers)

    def kernel(self) -> torch.Tensor:
        """The collapsed ``(L, L)`` kernel, as a correlation (the orientation ``F.conv2d`` applies).

        Correlating with ``a`` then ``b`` is correlating with the full convolution ``a ∗ b``; the chain
        is contracted from the last layer back (``conv_transpose2d`` is that full convolution), so the
        64 channels collapse early and the cost is that of a few small kernels, not of an image.
        """
        weight = self.convs[-1].weight
        k = torch.ones(1, 1, 1, 1, dtype=weight.dtype, device=weight.device)
        for conv in reversed(self.convs):
            k = F.conv_transpose2d(k, conv.weight)
        return k[0, 0]

    def layered(self, x: torch.Tensor) -> torch.Tensor:
        """The same map computed layer by layer (the reference's forward pass; used to test ``forward``)."""
        for conv in self.convs[:-1]:
            x = conv(x)
        return F.conv2d(x, self.convs[-1].weight, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.kernel()[None, None], stride=2)


def _normalised_conv(in_channels: int, out_channels: int, size: int) -> nn.Module:
    """A conv initialised as the reference, then spectrally normalised (its power iteration starts on those weights)."""
    conv = nn.Conv2d(in_channels, out_channels, size)
    nn.init.xavier_normal_(conv.weight, 0.1)
    nn.init.zeros_(conv.bias)
    return nn.utils.parametrizations.spectral_norm(conv)


class PatchDiscriminator(nn.Module):
    """Fully convolutional discriminator: each output judges one ``kernel × kernel`` patch of its input.

    ``(N, bands, H, W)`` → ``(N, 1, H − kernel + 1, W − kernel + 1)`` probabilities of "real"; it sees
    the bands together (as the reference sees colour), while the generator blurs each band alone.
    A spectrally normalised ``kernel × kernel`` conv, ``layers − 2`` blocks of 1 × 1 conv (spectral
    norm), batch norm and ReLU, and a 1 × 1 conv with a sigmoid.
    """

    def __init__(self, layers: int, kernel: int, channels: int, bands: int = 1) -> None:
        super().__init__()
        body: list[nn.Module] = [_normalised_conv(bands, channels, kernel)]
        for _ in range(layers - 2):
            norm = nn.BatchNorm2d(channels)
            nn.init.normal_(norm.weight, 1.0, 0.02)  # the reference's initialisation
            body += [_normalised_conv(channels, channels, 1), norm, nn.ReLU()]
        body += [_normalised_conv(channels, 1, 1), nn.Sigmoid()]
        self.body = nn.Sequential(*body)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def boundary_mask(size: int, weight: float = 30.0) -> np.ndarray:
    """The reference's penalty on the outer taps: ``weight · (1 − g)`` on the two outermost rings (0 inside).

    ``g`` is a Gaussian of standard deviation ``size`` taps, 1 at the centre.
    """
    offsets = np.arange(size) - (size - 1) / 2
    g = np.exp(-(offsets[:, None] ** 2 + offsets[None, :] ** 2) / (2.0 * size**2))
    mask = weight * (1 - g)
    margin = (size - (size // 2 + size % 2)) // 2 - 1
    mask[margin : size - margin, margin : size - margin] = 0
    return mask


def constraint_losses(k: torch.Tensor, mask: torch.Tensor, centre: float) -> dict[str, torch.Tensor]:
    """The kernel constraints of the paper for an ``(L, L)`` kernel: sum to one, boundaries, centred, sparse."""
    total = k.sum()
    index = torch.arange(k.shape[0], dtype=k.dtype, device=k.device)
    com = torch.stack([(k.sum(1) * index).sum(), (k.sum(0) * index).sum()]) / total
    return {
        "sum": (1 - total).abs(),
        "boundary": (k * mask).abs().mean(),
        "centre": ((com - centre) ** 2).mean(),
        "sparse": (k.abs() + 1e-12).pow(0.2).mean(),  # the offset keeps the gradient finite at exact zeros
    }


def structure_map(image: np.ndarray) -> np.ndarray:
    """``(C, H, W)`` → ``(H, W)``: per band, 1 where the gradient magnitude is among its strongest 3 %, averaged."""
    marks = []
    for band in image:
        gy, gx = np.gradient(band.astype(np.float64))
        magnitude = np.hypot(gx, gy)
        marks.append(magnitude >= np.quantile(magnitude, STRUCTURE_QUANTILE))
    return np.mean(marks, axis=0)


def estimation_window(info: RasterInfo, edge: int) -> Window | None:
    """The window of ``info.grid`` KernelGAN is estimated on (``None``: all of it, which is at most ``edge`` pixels each way).

    A larger raster gives its ``min(W, edge) × min(H, edge)`` window holding the most structure (the pixels
    ``structure_map`` marks, where KernelGAN draws its crops), ranked on a nearest-neighbour read decimated to
    at most ``PLACEMENT_SAMPLE`` pixels each way, so the raster is never held at full resolution. Invalid pixels
    and their neighbours count as no structure; of equally structured windows (e.g. none has any), the most central.
    """
    return structured_window(info.grid.width, info.grid.height, edge, lambda rows, cols: read_window(info, out_shape=(len(info.bands), rows, cols)))


def structured_window(
    width: int, height: int, edge: int, sample: Callable[[int, int], tuple[np.ndarray, np.ndarray]]
) -> Window | None:
    """``estimation_window`` of a ``width × height`` image that ``sample(rows, cols)`` reads decimated to ``rows × cols``
    (nearest neighbour: values and validity, ``(C, rows, cols)``), for any reader (a file, an array, a guided run's target)."""
    if max(width, height) <= edge:
        return None
    w, h = min(width, edge), min(height, edge)
    factor = math.ceil(max(width, height) / PLACEMENT_SAMPLE)
    rows, cols = max(1, height // factor), max(1, width // factor)
    data, valid = sample(rows, cols)
    filled = np.where(valid, data, data.dtype.type(0))  # float64 where float32 would round the values (int32 …)
    score = structure_map(filled) * valid_interior(valid.all(0))
    sums = window_sums(score, (max(1, h * rows // height), max(1, w * cols // width)))
    best = np.argwhere(sums == sums.max())
    r, c = best[np.argmin(np.hypot(*(best - (np.array(sums.shape) - 1) / 2).T))]
    row_off, col_off = round(r * height / rows), round(c * width / cols)
    return Window(min(col_off, width - w), min(row_off, height - h), w, h)


def crop_probabilities(structure: np.ndarray, valid: np.ndarray, size: int) -> np.ndarray:
    """Probability of each ``size × size`` crop (by top-left, flattened): ∝ the structure inside it.

    Crops that touch an invalid pixel get 0; when no valid crop has structure, the valid crops are equally likely.
    Window sums come from a cumulative sum, whose rounding leaves about −1e-19 where ``structure`` is 0
    (a band average such as 1/6 is not exact in binary): they are clipped at 0.
    """
    clean = clean_windows(valid, size, "KernelGAN")
    weights = np.where(clean, np.clip(window_sums(structure, size), 0.0, None), 0.0)
    if weights.sum() <= 0:
        weights = clean.astype(np.float64)
    return (weights / weights.sum()).ravel()


def check_structure(image: np.ndarray, valid: np.ndarray, size: int, name: str) -> None:
    """Refuse ``image`` ``(C, H, W)`` (one kernel's bands, ``name`` in the message) when none of its ``size × size``
    windows without nodata (``valid`` ``(H, W)``) holds two different values in any band: KernelGAN learns from
    such windows and the spectrum reads them, so a flat image has no blur to estimate by either orientation (KernelGAN
    alone would return a kernel of its priors, learnt from nothing). A one-line ``InputError``."""
    clean = clean_windows(valid, size, "KernelGAN")
    if not any((varied_windows(band, size) & clean).any() for band in image):
        raise InputError(
            f"{name} is flat (one value in every {size}×{size} window without nodata): it shows no blur to estimate"
        )


def zero_negligible(k: np.ndarray, keep_largest: int) -> np.ndarray:
    """Subtract 0.75 × the ``keep_largest``-th largest tap, clip at 0 and renormalise (the paper's filtering)."""
    threshold = 0.75 * np.sort(k.ravel())[::-1][min(keep_largest, k.size - 1)]
    k = np.clip(k - threshold, 0, None)
    return k / k.sum()


def compose_x4(k2: np.ndarray) -> np.ndarray:
    """The ×4 kernel of two ×2 degradations by ``k2``: ``k2`` convolved with ``k2`` dilated by 2, re-centred.

    For an ``L``-tap ``k2`` the composition has ``3L − 2`` taps (the paper's appendix).
    """
    size = k2.shape[0]
    big = np.zeros((3 * size - 2, 3 * size - 2))
    for r in range(size):
        for c in range(size):
            big[2 * r : 2 * r + size, 2 * c : 2 * c + size] += k2[r, c] * k2
    return recentre(big, 4)


@dataclass
class Estimate:
    """One estimated kernel for ``scale`` (file convention) and how it was found.

    kernel: the ``(L, L)`` result; kernelgan: KernelGAN's own kernel for ``scale`` (post-processed,
    ×4 composed), which is ``kernel`` unless the shape came from the spectrum; anisotropy: the
    spectrum's reading (``None`` with ``orientation="kernelgan"``); raw_x2: the generator's ×2 kernel
    before post-processing; losses: the generator loss per step.
    """

    kernel: np.ndarray
    scale: int
    kernelgan: np.ndarray
    anisotropy: SpectralAnisotropy | None
    raw_x2: np.ndarray
    losses: np.ndarray
    steps: int

    @property
    def width(self) -> KernelWidth:
        return kernel_width(self.kernel, self.scale)

    def describe(self) -> str:
        """One line: the kernel's width and, when the spectrum shaped it, KernelGAN's own width and the reading."""
        if self.anisotropy is None:
            return str(self.width)
        return f"{self.width} (KernelGAN's own kernel: {kernel_width(self.kernelgan, self.scale)}; {self.anisotropy})"


def estimate_x2(
    images: np.ndarray,
    valid: np.ndarray,
    config: KernelGANConfig,
    device: torch.device,
    progress: Progress,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Train KernelGAN on ``images`` ``(B, H, W)`` in [−1, 1] (a batch of grey images sharing one kernel).

    valid: ``(H, W)`` pixels every crop must stay on. Returns the raw ``(L, L)`` ×2 kernel (before
    post-processing), the generator loss per step and the steps run.
    """
    size = config.kernel_size
    crop = config.crop_size
    d_size = (crop - size) // 2 + 1
    if (size - 1) % 4:
        raise InputError(f"generator layers {config.generator_layers} collapse to {size} taps: use 4n + 1 taps")
    structure = structure_map(images)
    g_corners = rng.choice(len(p := crop_probabilities(structure, valid, crop)), size=config.iterations, p=p)
    d_corners = rng.choice(len(q := crop_probabilities(structure, valid, d_size)), size=config.iterations, p=q)
    g_width, d_width = images.shape[-1] - crop + 1, images.shape[-1] - d_size + 1
    bands = images.shape[0]
    x = torch.as_tensor(images, dtype=torch.float32, device=device)[:, None]  # bands as a batch of grey images

    generator = LinearGenerator(config.generator_layers, config.generator_channels).to(device)
    discriminator = PatchDiscriminator(
        config.discriminator_layers, config.discriminator_kernel, config.discriminator_channels, bands
    ).to(device)

    def judge(t: torch.Tensor) -> torch.Tensor:
        """D on ``(bands, 1, h, w)`` crops, seen as one ``bands``-channel image."""
        return discriminator(t.reshape(1, bands, *t.shape[-2:]))

    betas = (config.beta1, 0.999)
    g_optimiser = adam(generator.parameters(), config.learning_rate, betas)
    d_optimiser = adam(discriminator.parameters(), config.learning_rate, betas)
    bicubic = Degradation(make_kernel("bicubic", 2)).to(device)
    offset = (size - 1) // 4  # G's output pixel j and bicubic's output pixel j + offset share a block centre
    mask = torch.as_tensor(boundary_mask(size), dtype=torch.float32, device=device)
    centre = file_kernel_centre(size, 2)

    def noisy(t: torch.Tensor) -> torch.Tensor:
        return t + config.discriminator_noise * torch.randn_like(t)

    def step(i: int) -> tuple[torch.Tensor, torch.Tensor]:
        lr = config.learning_rate / 10 ** (i // config.lr_decay_every)
        for group in g_optimiser.param_groups + d_optimiser.param_groups:
            group["lr"] = lr
        stage = i // config.prior_stage
        prior_weight = config.prior_weights[stage] if stage < len(config.prior_weights) else 0.0
        constrained = i >= config.constraints_from
        r, c = divmod(int(g_corners[i]), g_width)
        g_in = x[..., r : r + crop, c : c + crop]
        r, c = divmod(int(d_corners[i]), d_width)
        real = x[..., r : r + d_size, c : c + d_size]

        g_optimiser.zero_grad(set_to_none=True)
        k = generator.kernel()
        fake = F.conv2d(g_in, k[None, None], stride=2)
        terms = constraint_losses(k, mask, centre)
        loss = (judge(fake) - 1).abs().mean()
        loss = loss + config.sum_weight * terms["sum"] + config.boundary_weight * terms["boundary"]
        if constrained:
            loss = loss + config.centre_weight * terms["centre"] + config.sparse_weight * terms["sparse"]
        if prior_weight:
            target = bicubic(g_in)[..., offset : offset + d_size, offset : offset + d_size]
            loss = loss + prior_weight * F.mse_loss(fake, target)
        loss.backward()
        g_optimiser.step()

        d_optimiser.zero_grad(set_to_none=True)
        with torch.no_grad():
            fake = generator(g_in)
        with parametrize.cached():  # one spectral-norm power iteration for both calls
            d_loss = 0.5 * ((1 - judge(noisy(real))).abs().mean() + judge(noisy(fake)).abs().mean())
        d_loss.backward()
        d_optimiser.step()
        return loss.detach(), k.detach()

    result = optimise(step, config.iterations, progress, label="KernelGAN")
    return result.output.double().cpu().numpy(), result.losses, result.steps


def estimate_kernels(
    image: np.ndarray,
    valid: np.ndarray,
    config: KernelGANConfig,
    progress: Progress | None = None,
    names: Sequence[str] = (),
) -> list[Estimate]:
    """Estimate the blur kernel of ``image`` ``(C, H, W)`` (raw values; ``valid`` ``(C, H, W)`` marks data).

    Returns one ``Estimate`` shared by the bands, or one per band with ``config.per_band``. ``names``: how
    messages name what each kernel is estimated on (one per band with ``config.per_band``, else one; default
    "band N of the image" or "the image").
    """
    progress = progress or NullProgress()
    c, h, w = image.shape
    config.check_input_size(w, h)
    if not valid.any():
        raise InputError("the image has no valid pixels")
    scaling = BandScaling.fit(image, valid)
    normalised = 2 * np.where(valid, scaling.normalise(np.nan_to_num(image)), 0.5) - 1
    groups = [[b] for b in range(c)] if config.per_band else [list(range(c))]
    device = resolve_device(config.device)
    names = names or ([f"band {b + 1} of the image" for b in range(c)] if config.per_band else ["the image"])
    # every check first: an image without structure, or one the spectrum cannot read, fails before any training
    masks = [valid[group].all(0) for group in groups]
    for group, mask, name in zip(groups, masks, names):
        check_structure(image[group], mask, config.crop_size, name)
    spectrum = config.orientation == "spectrum"
    anisotropies = [spectral_anisotropy(image[g], m) if spectrum else None for g, m in zip(groups, masks)]
    estimates = []
    timed = Timed(progress, config.iterations)  # the steps say their band (with ``per_band``) and the time left
    for index, (group, data, anisotropy) in enumerate(zip(groups, masks, anisotropies)):
        part = SubProgress(timed, index / len(groups), (index + 1) / len(groups), part=Part("band", index + 1, 1, len(groups)))
        with seeded(config.seed, device, part):
            rng = np.random.default_rng(config.seed)
            raw, losses, steps = estimate_x2(normalised[group], data, config, device, part, rng)
        k2 = recentre(zero_negligible(raw, config.keep_largest), 2)
        own = k2 if config.scale == 2 else compose_x4(k2)
        kernel = own
        if anisotropy is not None:
            shaped = oriented_width(kernel_width(own, config.scale), anisotropy)
            kernel = anisotropic_gaussian(shaped.major, shaped.minor, shaped.angle, config.scale)
        estimates.append(Estimate(kernel, config.scale, own, anisotropy, raw, losses, steps))
    return estimates


@dataclass
class KernelRunResult:
    """What ``estimate_kernel_file`` wrote: kernel files (one, or one per band), their widths (``Estimate.describe``), the run."""

    output_path: str
    device: str
    seconds: float
    steps: int
    kernel_paths: list[str] = field(default_factory=list)
    widths: list[str] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)
    #: the kernels as saved, one per file of ``kernel_paths``; ``labels``: what each is for ("kernel", "band 3")
    kernels: list[np.ndarray] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)


def band_kernel_path(path: str, band: int) -> str:
    """The per-band file for ``band`` (1-based raster band) beside ``path``: ``k.npy`` → ``k_band3.npy``."""
    stem, ext = os.path.splitext(path)
    return f"{stem}_band{band}{ext}"


def check_kernel_files(
    input_path: str, kernel_path: str, config: KernelGANConfig, io: IOOptions = IOOptions(), others: Sequence[str] = ()
) -> tuple[RasterInfo, list[str]]:
    """Everything ``estimate_kernel_file`` checks before it starts, from metadata alone; returns the input and
    the kernel paths it will write. None of the files written (kernels, scale records, previews) may be the
    input or one of ``others`` (e.g. a report written beside them), and a record or preview may replace only an
    earlier kernel's (``kernels.check_kernel_outputs``). Raises a one-line ``InputError``."""
    check_extension(kernel_path, "kernel file", (".npy",))
    info = open_info(input_path, io.bands, io.extent, crs=io.crs)
    paths = [band_kernel_path(kernel_path, b) for b in info.bands] if config.per_band else [kernel_path]
    check_kernel_outputs(paths, [input_path])
    for file in (file for path in paths for file in kernel_files(path)):
        if any(os.path.abspath(file) == os.path.abspath(other) for other in others if other):
            raise InputError(f"{file} would be written twice, as a kernel file and as another output: choose another path")
    config.check_input_size(info.grid.width, info.grid.height, info.window is not None)
    return info, paths


def estimate_kernel_file(
    input_path: str,
    kernel_path: str,
    config: KernelGANConfig,
    io: IOOptions = IOOptions(),
    progress: Progress | None = None,
    files: StagedFiles | None = None,
    warn_fill_values: bool = True,
) -> KernelRunResult:
    """Estimate the blur kernel of a raster and save it as ``kernel_path`` (``.npy`` + PNG preview).

    With ``config.per_band`` one file per band is written (``band_kernel_path``) and ``kernel_path``
    itself is not. Everything is checked before the estimation starts. All the files move into place
    together at the end (``core.raster.staged``; with ``files``, when that group is committed).
    ``warn_fill_values``: warn of undeclared fill values, which are read as nodata, and of a declared nodata value
    the data type cannot hold (``pipeline.log_nodata_warnings``); off when a run that follows on the same input warns
    of them itself.
    """
    from .pipeline import _Recorder, log_nodata_warnings

    input_path, kernel_path = as_paths(input_path, kernel_path)
    recorder = _Recorder(progress or NullProgress())
    start = time.perf_counter()
    info, paths = check_kernel_files(input_path, kernel_path, config, io)
    with claimed(paths):  # each names its record and preview, claimed as they are staged
        device = resolve_device(config.device)
        recorder.info(
            f"device {describe(device)}; KernelGAN ×{config.scale} on {info.grid.width}×{info.grid.height} pixels, "
            f"{len(info.bands)} band(s){', one kernel per band' if config.per_band else ''}, {count_words(config.iterations, 'step')}, seed {config.seed}"
        )
        if note := busy_cpus_line(device):
            recorder.info(note)
        if warn_fill_values:
            log_nodata_warnings(info, recorder)
        window = estimation_window(info, config.max_window)
        if window is not None:
            recorder.info(
                f"KernelGAN learns the kernel on input {file_window(info, window).describe()}: the window with the most "
                f"structure, as a raster over {config.max_window} pixels wide or high is not read whole"
            )
        data, valid = read_window(info, window)
        bands = band_labels(info.bands, info.descriptions)
        names = [f"{band} of {input_path}" for band in bands] if config.per_band else [input_path]
        estimates = estimate_kernels(data, valid, config, recorder, names)
        area = file_window(info, window)
        kernel_bands = [[band] for band in info.bands] if config.per_band else [list(info.bands)]
        with staged(files) as group:
            for path, estimate, name, used in zip(paths, estimates, names, kernel_bands):
                source = (f"estimated by KernelGAN ×{config.scale} ({count_words(estimate.steps, 'step')}, seed {config.seed}, "
                          f"{ORIENTATION_WORDS[config.orientation]}) on {name}: {estimate.describe()}")
                origin = kernel_origin(source, input_path, used, area, info.grid.width, info.grid.height)
                save_kernel_file(path, estimate.kernel, config.scale, files=group, origin=origin)
        labels = [f"band {band}" for band in info.bands] if config.per_band else ["kernel"]
        for path, estimate, label in zip(paths, estimates, labels):
            recorder.info(f"{label}: {estimate.kernel.shape[0]}×{estimate.kernel.shape[0]} taps, {estimate.describe()} → {path}")
        recorder.report(1.0, DONE)
        return KernelRunResult(
            paths[0], describe(device), time.perf_counter() - start, sum(e.steps for e in estimates),
            paths, [e.describe() for e in estimates], recorder.messages, [e.kernel for e in estimates], labels,
        )


def widest_kernel(config: KernelGANConfig) -> Kernel:
    """The widest kernel an estimate with ``config`` is taken to return, for the checks made before KernelGAN runs
    (``super_resolve_with_estimated_kernel``: the image and the tiles must hold it, ``pipeline.check_super_resolve``):
    flat over the whole support of the generator's collapsed kernel, ``config.kernel_size`` taps at ×2 and their
    composition's ``3L − 2`` at ×4 (``compose_x4``), one more as a kernel file is applied at these even scales
    (``kernels.prepared_taps``). With the reference layers it reaches 3 input pixels past a tile's side at ×2 and 5 at
    ×4 (``tiling.kernel_reach``). KernelGAN's own kernels stay inside it (post-processing keeps about the
    ``keep_largest`` largest taps); the Gaussian shaped by the spectrum (``orientation="spectrum"``) of a strongly
    elongated blur may reach further (major σ over 0.9 input pixels at ×2, 1.7 at ×4), which no check can know before
    KernelGAN has run: the run then checks its tiles against the kernel it has, and a refusal keeps that kernel
    (``keep_refused_estimate``; README, *A wide kernel and the tiles*)."""
    taps = config.kernel_size if config.scale == 2 else 3 * config.kernel_size - 2
    size = taps + 1  # the zero row and column of a file kernel at an even scale
    name = f"estimate (KernelGAN's kernels hold up to {taps}×{taps} taps at ×{config.scale})"
    return Kernel(name, config.scale, full=np.full((size, size), 1 / size**2))


def estimated_kernel_path(output_path: str) -> str:
    """Where ``super_resolve_with_estimated_kernel`` keeps the kernel it used: ``out.tif`` → ``out.tif.kernel.npy``,
    named by the output's whole file name as its loss curve is (``core.raster.loss_curve_path``), so ``a.tif`` and
    ``a.tiff`` keep their own. Knitworks keeps the kernel it learns there too (``pipeline.learned_kernel_path``)."""
    return output_path + ".kernel.npy"


def kept_estimate_path(output_path: str) -> str:
    """Where a ``--kernel estimate`` run refused after KernelGAN has run keeps the kernel it estimated
    (``keep_refused_estimate``): ``out.tif`` → ``out_kernel.npy`` beside the output, or ``out_kernel_2.npy``, ``_3`` …
    where any of that kernel's files (``kernels.kernel_files``: kernel, scale record, preview) is already there, so that
    no file is replaced. Not ``estimated_kernel_path``, the kernel of the output beside it, which the next run into
    that output removes (``pipeline.remove_earlier_side_files``)."""
    stem = os.path.splitext(output_path)[0] + "_kernel"
    path, number = f"{stem}.npy", 1
    while any(os.path.lexists(file) for file in kernel_files(path)):
        number += 1
        path = f"{stem}_{number}.npy"
    return path


def keep_refused_estimate(refusal: InputError, kernel_path: str, output_path: str, files: StagedFiles) -> InputError:
    """The refusal of a ``--kernel estimate`` run whose estimated kernel its tiles or its image cannot hold (``refusal``:
    ``pipeline.check_super_resolve``'s, known only after minutes of estimation; ``widest_kernel`` says which kernels
    can be), with that kernel kept rather than thrown away: its files staged for ``kernel_path`` in ``files`` are copied
    as they are (the kernel, its record of scale and origin, its preview) to ``kept_estimate_path(output_path)`` and
    moved into place at once; the run's own group is then discarded and its output never started. The refusal names
    the kernel by that file (not its temporary one) and says how to rerun without estimating again."""
    kept = kept_estimate_path(output_path)
    with staged() as group:
        for source, target in zip(kernel_files(kernel_path), kernel_files(kept)):
            with open(files.staged[source], "rb") as f:
                group.write(target, f.read())
    refused = str(refusal).replace(files.staged[kernel_path], kept)
    return InputError(
        f"{refused}; the kernel KernelGAN estimated is kept as {kept} (with its scale record and preview): rerun with "
        f"{KERNEL_TERM} {kept} and the change above, which skips the estimation"
    )


def super_resolve_with_estimated_kernel(
    input_path: str,
    output_path: str,
    config: InternalLearningConfig,
    kernelgan: KernelGANConfig,
    io: IOOptions = IOOptions(),
    progress: Progress | None = None,
):
    """Estimate the input's kernel with KernelGAN, then super-resolve it (DIP or Knitworks) with that kernel.

    Everything is checked before KernelGAN starts, the tiles against the widest kernel it can return
    (``widest_kernel``): a tile or overlap of the user's own too small for it is refused in one line before minutes of
    estimation. The run then chooses its tiles for the kernel estimated (``pipeline.check_super_resolve``); where they
    or the image cannot hold it (a strongly elongated blur), the refusal keeps the kernel (``keep_refused_estimate``).

    The kernel files are kept beside the output (``estimated_kernel_path``). They, the output and its loss
    curve are written to temporary files (the super-resolution reads the kernel from its own) and move into
    place together when the whole run succeeded: a failed or cancelled run leaves every earlier file as it
    was. Returns the super-resolution's ``RunResult``.
    """
    from dataclasses import replace

    from .pipeline import check_super_resolve, output_files, super_resolve

    input_path, output_path = as_paths(input_path, output_path)
    progress = progress or NullProgress()
    kernel_path = estimated_kernel_path(output_path)
    check_super_resolve(input_path, output_path, config, io, widest_kernel(kernelgan))  # before KernelGAN
    with claimed(output_files(output_path)), staged() as files:
        estimated = estimate_kernel_file(
            input_path, kernel_path, replace(kernelgan, per_band=False), io, SubProgress(progress, 0.0, 0.2), files,
            warn_fill_values=False,
        )
        staged_kernel = replace(config, kernel=files.staged[kernel_path])
        try:  # the checks super_resolve starts with, now for the kernel estimated
            check_super_resolve(input_path, output_path, staged_kernel, io)
        except InputError as refusal:
            raise keep_refused_estimate(refusal, kernel_path, output_path, files) from None
        result = super_resolve(input_path, output_path, staged_kernel, io, SubProgress(progress, 0.2, 1.0), files)
    result.messages[:0] = estimated.messages
    result.kernel_path = kernel_path
    return result
