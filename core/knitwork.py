"""Neural Knitworks super-resolution of one tile (Czerkawski et al., Pattern Recognition 2024).

Representation. Every pixel ``p`` of the high-resolution tile ``x`` ``(C, s·h, s·w)`` has a
coordinate ``u`` (its centre in input pixels: ``((r + ½) / s, (c + ½) / s)``). Random Fourier
features ``γ(u) = [sin 2πBu, cos 2πBu]`` (``B`` fixed, drawn from N(0, σ²) cycles per input pixel,
so that every tile size, tile shape and scale sees the same bandwidth relative to the observation's
sampling) feed a patch MLP that predicts at
``p`` a *patch stack*: for each scale ``s`` of ``patch_scales`` a ``k × k`` patch whose tap ``(i, j)``
is the value of the image antialiased for ``s`` (``antialias``) at ``p + s·(i − m, j − m)``,
``m = k // 2``; ``C·S·k²`` values per pixel, any band count.

Patch reconstructor (parameter-free): pixel ``q`` of ``x`` is the mean of the ``k²`` scale-1
predictions that cover it (``F.fold`` of the predictions divided by the count).

Generator loss (images normalised per band, ``core.normalise``; means over elements):

* data: ``‖D(x) − y‖²`` over valid low-resolution pixels, ``D`` the fixed operator of
  ``core.degradation`` or the learned one (``LearnedDegradation``);
* patch consistency, weight ramped (``KnitworkConfig.consistency``): every predicted tap against the
  pixel it covers in the reconstructed image at its scale, ``antialias(x, s)``;
* adversarial, weight ramped: non-saturating loss ``softplus(−d(fake))`` of an MLP patch
  discriminator ``d`` on patch stacks drawn at random output pixels; ``d`` learns to tell them from the
  patch stacks of the low-resolution observation itself (same scales, same antialiasing) with
  ``softplus(−d(real)) + softplus(d(fake))``: the output's patches must recur across scales;
* learned kernel: ``|1 − Σk|`` and the squared distance of its centre of mass from the block centre.

Step windows (``KnitworkConfig.step_window`` below 1; ``core.windows``): each step evaluates the patch
MLP only at the output pixels of a random window of the tile and treats the window as a tile of its own
(reconstruction, consistency and fakes inside it; the data term on the input pixels whose blur stays
inside it); the window's output, less one input pixel along its cut sides, is written into an image of
the whole tile (first the bicubic interpolation of the input), and that image is what is averaged.

Output: the exponential moving average of ``x`` over the steps, back-projected with ``D`` so that it
is consistent with the input (as DIP, ``core.dip``).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from .config import KnitworkConfig
from .degradation import Degradation, back_project, blur_decimate, upsample
from .device import autocast
from .dip import TileResult, cpu_state, fill_invalid, masked_mse
from .graphs import GraphedStep, step_setup
from .kernelgan import LinearGenerator, constraint_losses
from .kernels import Kernel, file_kernel_centre, make_kernel
from .optimise import StopRule, adam, optimise
from .progress import Progress
from .windows import footprint_margin, random_window, upscaled, window_edges, window_weight, write_interior


class FourierFeatures(nn.Module):
    """``(N, 2)`` coordinates in input pixels → ``(N, 2F)`` features ``[sin 2πuBᵀ, cos 2πuBᵀ]``, ``B`` fixed ``(F, 2)`` in cycles per input pixel.

    Always computed in float32, also under mixed precision: the angles reach hundreds of radians, which
    bfloat16 (8 bits of mantissa) or float16 would round to other sines and to rows sharing one code.
    """

    def __init__(self, features: int, sigma: float, generator: torch.Generator) -> None:
        super().__init__()
        self.register_buffer("frequencies", torch.randn((features, 2), generator=generator) * sigma)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        with torch.autocast(u.device.type, enabled=False):
            angles = 2 * math.pi * u.float() @ self.frequencies.float().T
            return torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1)


class PatchMLP(nn.Module):
    """Coordinates → patch stacks: ``(N, 2)`` → ``(N, scales, bands·k²)`` (Fourier features, then an MLP).

    ``layers`` linear layers of ``width`` units with ReLU between them and a linear output; the last
    axis is ordered band-major then row-major over the ``k × k`` taps, as ``F.unfold`` orders it.
    """

    def __init__(self, bands: int, config: KnitworkConfig, generator: torch.Generator) -> None:
        super().__init__()
        self.scales = len(config.patch_scales)
        self.taps = bands * config.patch_size**2
        self.encoding = FourierFeatures(config.fourier_features, config.fourier_sigma, generator)
        widths = [2 * config.fourier_features] + [config.width] * (config.layers - 1)
        body: list[nn.Module] = []
        for a, b in zip(widths[:-1], widths[1:]):
            body += [nn.Linear(a, b), nn.ReLU(inplace=True)]
        self.body = nn.Sequential(*body, nn.Linear(widths[-1], self.scales * self.taps))

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encoding(u))

    def decode(self, features: torch.Tensor) -> torch.Tensor:
        """``(N, 2F)`` Fourier features (``encoding``) → ``(N, scales, bands·k²)`` patch stacks."""
        return self.body(features).view(-1, self.scales, self.taps)


class PatchDiscriminator(nn.Module):
    """MLP on flattened patch stacks: ``(N, scales, bands·k²)`` → ``(N,)`` logits ("real" when high).

    Linear layers with leaky ReLUs (slope ``SLOPE``) between them; each row is judged on its own (no batch
    statistics), which ``judge_fakes`` relies on.
    """

    SLOPE = 0.2

    def __init__(self, features: int, hidden: tuple[int, ...]) -> None:
        super().__init__()
        body: list[nn.Module] = []
        for a, b in zip((features, *hidden[:-1]), hidden):
            body += [nn.Linear(a, b), nn.LeakyReLU(self.SLOPE, inplace=True)]
        self.body = nn.Sequential(*body, nn.Linear(hidden[-1] if hidden else features, 1))

    def forward(self, stacks: torch.Tensor) -> torch.Tensor:
        return self.body(stacks.flatten(1))[:, 0]

    def judge_fakes(self, stacks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``forward``'s logits on the generator's stacks, twice, ``(N,)`` each: ``(for the generator, for the discriminator)``.

        The first's gradient reaches ``stacks`` only, the second's the parameters only; one backward pass through
        the layers serves both (``SharedJudgement``).
        """
        return SharedJudgement.apply(self.SLOPE, stacks.flatten(1), *self.parameters())


class SharedJudgement(torch.autograd.Function):
    """A ``PatchDiscriminator``'s logits on ``(N, F)`` fakes, returned twice, with one backward pass for the two players.

    apply(slope, fakes, weight₁, bias₁, …, weight_L, bias_L) → ``(for_generator, for_discriminator)``, ``(N,)`` each.
    Each row goes through the layers on its own and the leaky ReLUs are linear once their sign pattern is fixed,
    so a row's gradient with respect to any layer's input is its logit's gradient times ``δ``, that row's gradient
    for a unit logit gradient. ``δ`` is propagated once: the fakes get ``g_gen · δ`` (``g_gen`` the gradient
    reaching ``for_generator``) and layer ``l`` the parameter gradients ``Σ_rows g_disc · δ_l ⊗ a_l`` and
    ``Σ_rows g_disc · δ_l``, ``a_l`` its input. Autograd's two passes (one per loss) would propagate through the
    same layers twice; the results agree up to float rounding.

    Dtypes: Knitworks' steps call it outside autocast (only the patch MLP, ``predict``, runs under mixed precision),
    so in a run the layers are float32; under a caller's autocast they run in its dtype, and ``backward`` computes
    in that dtype and returns each gradient in its input's.
    """

    @staticmethod
    def forward(ctx, slope: float, fakes: torch.Tensor, *parameters: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        layers = len(parameters) // 2
        inputs = []
        a = fakes
        for l in range(layers):
            inputs.append(a)
            a = F.linear(a, parameters[2 * l], parameters[2 * l + 1])
            if l < layers - 1:
                a = F.leaky_relu(a, slope, inplace=True)
        ctx.slope = slope
        ctx.save_for_backward(*inputs, *parameters[0::2])
        return a[:, 0], a[:, 0].clone()

    @staticmethod
    def backward(ctx, for_generator: torch.Tensor, for_discriminator: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        saved = ctx.saved_tensors
        layers = len(saved) // 2
        inputs, weights = saved[:layers], saved[layers:]
        # the layers' dtype: the last layer's input, in autocast's dtype where a caller ran the forward under it
        # (Knitworks' steps do not: float32 there), the parameters' otherwise; each gradient in its input's dtype
        compute = inputs[-1].dtype
        delta = torch.ones_like(for_generator, dtype=compute)[:, None]  # δ at the logit
        gradients: list[torch.Tensor] = []
        for l in reversed(range(layers)):
            scaled = delta * for_discriminator.to(compute)[:, None]
            gradients[:0] = [(scaled.T @ inputs[l].to(compute)).to(weights[l].dtype), scaled.sum(0).to(weights[l].dtype)]
            delta = delta @ weights[l].to(compute)
            if l > 0:  # inputs[l] is the leaky ReLU's output, of the sign of its input
                delta = torch.ops.aten.leaky_relu_backward(delta, inputs[l], ctx.slope, True)
        return None, (delta * for_generator.to(compute)[:, None]).to(inputs[0].dtype), *gradients


class LearnedDegradation(nn.Module):
    """``D(x)`` with a learned kernel: KernelGAN's deep linear generator collapsed to one ``L × L`` kernel.

    The kernel (shared by the bands) is applied by ``core.degradation.blur_decimate``; at even scales
    a zero row and column are appended bottom-right, the file-kernel convention, so its centre of
    mass belongs at ``file_kernel_centre(L, s)`` (held there by ``constraints``).
    """

    def __init__(self, scale: int, layers: tuple[int, ...], channels: int) -> None:
        super().__init__()
        self.scale = scale
        self.net = LinearGenerator(layers, channels)
        size = self.net.size
        self.register_buffer("boundary", torch.zeros(size, size))  # no boundary penalty: only sum and centre
        self.centre = file_kernel_centre(size, scale)

    def start_at(self, prior: Kernel, steps: int = 500) -> float:
        """Fit the net's collapsed kernel to ``prior`` (cropped to its support, renormalised) before the run.

        Adam at 10⁻² on the squared tap error; returns the relative error reached. A prior wider than the
        learned support (bicubic at ×4: 16 taps) loses its outer ring.
        """
        size = self.taps().shape[-1]
        k = prior.as_2d
        if k.shape[0] > size:
            cut = (k.shape[0] - size) // 2
            k = k[cut : cut + size, cut : cut + size]
        else:
            k = np.pad(k, (size - k.shape[0]) // 2)
        target = torch.as_tensor(k / k.sum(), dtype=torch.float32, device=self.boundary.device)
        optimiser = adam(self.net.parameters(), 0.01)
        for _ in range(steps):
            optimiser.zero_grad(set_to_none=True)
            raw = self.net.kernel()
            error = ((F.pad(raw, (0, 1, 0, 1)) if self.scale % 2 == 0 else raw) - target).pow(2).sum()
            error.backward()
            optimiser.step()
        return float(error.detach().sqrt() / target.norm())

    def taps(self) -> torch.Tensor:
        """The collapsed kernel divided by its sum, padded to the parity of the scale: ``(L, L)`` or ``(L + 1, L + 1)``.

        Dividing makes the applied kernel sum to one exactly; the sum penalty of ``constraints`` keeps the
        raw sum near one, so the division stays well conditioned.
        """
        k = self.net.kernel()
        k = k / k.sum()
        return F.pad(k, (0, 1, 0, 1)) if self.scale % 2 == 0 else k

    def constraints(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``|1 − Σk|`` and the squared distance of the centre of mass from the block centre (taps²)."""
        terms = constraint_losses(self.net.kernel(), self.boundary, self.centre)
        return terms["sum"], terms["centre"]

    def fixed(self) -> Kernel:
        """The current kernel as a fixed ``Kernel`` for back-projection."""
        return Kernel("learned", self.scale, full=self.taps().detach().double().cpu().numpy())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return blur_decimate(x, self.taps(), self.scale)


@functools.cache
def gaussian_taps(scale: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """``(2·scale − 1,)`` taps of a Gaussian of σ = ``scale`` pixels, summing to one (``antialias``'s, built once per
    scale, dtype and device: steps call it every time)."""
    offsets = torch.arange(-(scale - 1), scale, dtype=dtype, device=device)
    taps = torch.exp(-0.5 * (offsets / scale) ** 2)
    return taps / taps.sum()


def antialias(x: torch.Tensor, scale: int) -> torch.Tensor:
    """``(N, C, H, W)`` blurred by a Gaussian of σ = ``scale`` pixels over ``2·scale − 1`` taps (identity at 1).

    The reference's antialiasing of the patches taken at scale ``scale``; reflected borders.
    """
    if scale == 1:
        return x
    taps = gaussian_taps(scale, x.dtype, x.device)
    c, pad = x.shape[1], scale - 1
    x = F.pad(x, (pad, pad, pad, pad), mode="reflect")
    x = F.conv2d(x, taps.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)
    return F.conv2d(x, taps.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)


def patch_stacks(image: torch.Tensor, config: KnitworkConfig) -> torch.Tensor:
    """The patch stack at every pixel of ``image`` ``(1, C, H, W)``: ``(H·W, scales, C·k²)``.

    Taps falling outside the image are 0.
    """
    k = config.patch_size
    stacks = [
        F.unfold(antialias(image, s), k, dilation=s, padding=s * (k // 2))[0].T for s in config.patch_scales
    ]
    return torch.stack(stacks, dim=1)


def covered_taps(bands: int, height: int, width: int, config: KnitworkConfig, device: torch.device) -> torch.Tensor:
    """``(H·W, scales, C·k²)`` 0/1, ordered as ``patch_stacks``: 1 where a tap falls inside the ``H × W`` image."""
    return patch_stacks(torch.ones(1, bands, height, width, device=device), config)


def draw(n: int, population: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """``min(n, population)`` draws with replacement from ``range(population)`` (torch's global generator): the rows
    to judge and each one's weight in the mean over the draws, ``(R,)`` each.

    On the CPU a row drawn several times is listed once, weighted by its count: the same mean, up to rounding,
    over fewer rows (at the defaults 4096 draws from a window's 6400 fakes hold about 3000 distinct ones, and as
    many draws as reals about 63 % of them). Elsewhere every draw is a row weighted ``1 / draws``: a recorded CUDA
    graph needs shapes that do not depend on the draw.
    """
    drawn = torch.randint(population, (min(n, population),), device=device)
    if device.type != "cpu":
        return drawn, torch.full(drawn.shape, 1 / len(drawn), device=device)
    rows, counts = torch.unique(drawn, return_counts=True)
    return rows, counts / len(drawn)


def inside(height: int, width: int, config: KnitworkConfig, device: torch.device) -> torch.Tensor:
    """``(H·W,)`` bool: pixels whose patch stack lies wholly inside an ``H × W`` image."""
    margin = (config.patch_size // 2) * max(config.patch_scales)
    rows = torch.arange(height, device=device)
    cols = torch.arange(width, device=device)
    ok_r = (rows >= margin) & (rows < height - margin)
    ok_c = (cols >= margin) & (cols < width - margin)
    return (ok_r[:, None] & ok_c[None, :]).flatten()


def coordinates(height: int, width: int, scale: int, device: torch.device) -> torch.Tensor:
    """``(H·W, 2)`` centres ``((r + ½) / scale, (c + ½) / scale)`` of an ``H × W`` output's pixels, in input pixels, row-major order."""
    rows = (torch.arange(height, device=device) + 0.5) / scale
    cols = (torch.arange(width, device=device) + 0.5) / scale
    return torch.stack(torch.meshgrid(rows, cols, indexing="ij"), dim=-1).reshape(-1, 2)


@dataclass
class KnitworkTile(TileResult):
    """A Knitworks tile: ``TileResult`` plus the 2-D kernel of its data term.

    kernel: the fixed kernel, or the learned one as applied (summing to one).
    """

    kernel: np.ndarray | None = None
    #: generator and discriminator parameter counts (the learned kernel's net is counted apart)
    parameters: dict[str, int] | None = None


def super_resolve_tile(
    observed: np.ndarray,
    valid: np.ndarray,
    kernel: Kernel | None,
    config: KnitworkConfig,
    device: torch.device,
    progress: Progress,
    generator: torch.Generator,
    observe: Callable[[int, np.ndarray], None] | None = None,
    start: dict[str, torch.Tensor] | None = None,
    keep: np.ndarray | None = None,
) -> KnitworkTile:
    """Super-resolve one normalised tile ``(C, h, w)`` by ``config.scale`` (see the module docstring).

    kernel: the fixed blur, or ``None`` to learn it (``config.kernel == "learned"``). ``valid``
    ``(C, h, w)`` marks observed pixels; only they enter the data term and the real patches.
    ``observe(steps done, image)``: as in ``core.dip.super_resolve_tile`` (the image a stop there
    would return, for benchmarks only). ``start``: a trained tile's ``TileResult.state`` (patch MLP,
    discriminator and learned kernel) to start from instead of a fresh initialisation; the run then
    has ``config.warm_step_count`` steps, its ramps spread over them. The result carries its own state.
    ``keep``: the back-projection width test decided once for the run's raster (``core.degradation.back_project``),
    for a fixed kernel; a learned kernel differs from tile to tile, so with it the test is always decided per tile.
    """
    s = config.scale
    bands, h, w = observed.shape
    config.check_input_size(w, h)
    H, W = h * s, w * s
    y = torch.as_tensor(observed, dtype=torch.float32, device=device)[None]
    m = torch.as_tensor(valid, dtype=torch.float32, device=device)[None]
    y = fill_invalid(y, m)

    net = PatchMLP(bands, config, generator).to(device)
    taps = bands * config.patch_size**2
    discriminator = PatchDiscriminator(len(config.patch_scales) * taps, config.discriminator_layers).to(device)
    learned = LearnedDegradation(s, config.kernel_layers, config.kernel_channels).to(device) if kernel is None else None
    trained = nn.ModuleDict({"net": net, "discriminator": discriminator, **({"kernel": learned} if learned is not None else {})})
    if start is not None:
        trained.load_state_dict(start)
    elif learned is not None:
        learned.start_at(make_kernel(config.kernel_prior, s))
    steps = config.steps if start is None else config.warm_step_count
    degradation = learned if learned is not None else Degradation(kernel).to(device)
    mixed, scaler, graphs, capturable = step_setup(config, device)
    g_groups = [{"params": list(net.parameters())}]
    kernel_rate = torch.zeros((), device=device)  # the learned kernel's step size, set each step (config.kernel_rate)
    if learned is not None:
        g_groups.append({"params": list(learned.parameters()), "lr": kernel_rate})
    g_optimiser = adam(g_groups, config.learning_rate, capturable=capturable)
    d_optimiser = adam(discriminator.parameters(), config.learning_rate, capturable=capturable)

    u = coordinates(H, W, s, device).view(H, W, 2)
    k, pad = config.patch_size, config.patch_size // 2
    shape = (h, w)
    length = (learned.taps() if learned is not None else degradation.taps).shape[-1]  # the kernel's taps per axis
    margin = footprint_margin(length, s)  # input pixels along a cut side left out of the data term
    # input pixels; the whole tile at 1; wide enough that every window keeps pixels for the data term
    edges = window_edges(shape, config.step_window, 1, config.min_input_size, margin)
    whole = edges == shape
    spacing = max(1, min(edges) // 2)  # window offsets at most half a window apart
    Hw, Ww = edges[0] * s, edges[1] * s  # a step's output: the window's
    counts = F.fold(torch.ones(1, k * k, Hw * Ww, device=device), (Hw, Ww), k, padding=pad)  # predictions per pixel
    # real patch stacks: those of the observation that lie inside it and whose taps see only valid pixels
    clean = patch_stacks(m.amin(1, keepdim=True), config).amin(dim=(1, 2)) > 1 - 1e-6
    real = patch_stacks(y, config)[clean]
    fake_at = torch.nonzero(inside(Hw, Ww, config, device))[:, 0]
    use_adversarial = config.adversarial.final > 0 and len(real) > 0 and len(fake_at) > 0
    covered = covered_taps(bands, Hw, Ww, config, device)
    covered_count = covered.sum()
    if not whole:
        canvas = upsample(y, s, kernel.shift if kernel is not None else (0.0, 0.0))  # the output of the steps' windows so far

    # the Fourier features of the fixed coordinates are constant: computed once when the tile is one chunk (the
    # first layer keeps its input for the backward pass anyway, so this holds no more memory than a step does)
    with torch.no_grad():
        features = net.encoding(u.view(-1, 2)).view(H, W, -1) if H * W <= config.chunk else None

    def predict(at: torch.Tensor) -> torch.Tensor:
        """Patch stacks at a window's output pixels, ``(Hw·Ww, scales, C·k²)`` row-major, from their Fourier
        features ``(Hw, Ww, F)`` when the tile's are computed once, else from their coordinates ``(Hw, Ww, 2)``
        in checkpointed chunks."""
        with autocast(device, mixed, cache=not graphs):
            if features is not None:
                return net.decode(at.reshape(Hw * Ww, -1)).float()
            return torch.cat([checkpoint(net, c, use_reentrant=False, preserve_rng_state=False).float() for c in at.reshape(-1, 2).split(config.chunk)])

    def reconstruct(stacks: torch.Tensor) -> torch.Tensor:
        """``(1, C, Hw, Ww)``: each pixel the mean of the window's scale-1 predictions that cover it."""
        return F.fold(stacks[:, 0].T[None], (Hw, Ww), k, padding=pad) / counts

    def consistency(stacks: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Mean squared gap between predicted taps and the pixels they cover (taps outside the window excluded)."""
        return ((stacks - patch_stacks(x, config)) ** 2 * covered).sum() / covered_count

    def compute(key: tuple[bool, bool], *inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One update (``core.graphs``) on a window's inputs: its output pixels' features or coordinates (``predict``),
        ``y`` and the data term's weights at its input pixels, and the step's consistency and adversarial weights
        (0-d); ``key`` says which of the two terms are on. Returns the data term and the window's image."""
        with_consistency, with_adversarial = key
        at, target, valid, consistency_weight, adversarial_weight = inputs
        g_optimiser.zero_grad(set_to_none=True)
        stacks = predict(at)
        x = reconstruct(stacks)
        fidelity = masked_mse(degradation(x), target, valid)
        loss = fidelity
        if with_consistency:
            loss = loss + consistency_weight * consistency(stacks, x)
        if learned is not None:
            total, centre = learned.constraints()
            loss = loss + config.kernel_sum_weight * total + config.kernel_centre_weight * centre
        d_losses: list[torch.Tensor] = []
        if with_adversarial:
            # one pass of d over the fakes, forward and backward, serves both players; each loss's gradient goes to
            # its own player's parameters only, and d steps after the generator, whose gradient read d's weights
            fakes, fake_weights = draw(config.adversarial_patches, len(fake_at), device)
            for_generator, for_discriminator = discriminator.judge_fakes(stacks[fake_at[fakes]])
            loss = loss + adversarial_weight * (fake_weights * F.softplus(-for_generator)).sum()
            d_optimiser.zero_grad(set_to_none=True)
            reals, real_weights = draw(config.adversarial_patches, len(real), device)
            d_loss = (real_weights * F.softplus(-discriminator(real[reals]))).sum()
            d_losses.append(d_loss + (fake_weights * F.softplus(for_discriminator)).sum())
        torch.autograd.backward([scaler.scale(loss), *d_losses])
        scaler.step(g_optimiser)
        scaler.update()
        if with_adversarial:
            d_optimiser.step()
        return fidelity.detach(), x.detach()

    graphed = GraphedStep(compute, device, graphs, progress)
    # this step's consistency and adversarial weights, inputs of compute
    consistency_input, adversarial_input = torch.zeros((), device=device), torch.zeros((), device=device)

    def step(i: int) -> tuple[torch.Tensor, torch.Tensor]:
        """One update on a window of the tile (the whole tile unless ``step_window``); returns the data term and the image."""
        if learned is not None:
            kernel_rate.fill_(config.kernel_rate.at(i, steps))
        window = random_window(shape, edges, spacing, generator)
        rows, cols = upscaled(window, s)
        consistency = config.consistency.at(i, steps)
        adversarial = config.adversarial.at(i, steps) if use_adversarial else 0.0
        consistency_input.fill_(consistency)  # a kernel argument: no copy from the host
        adversarial_input.fill_(adversarial)
        inputs = (features if features is not None else u)[rows, cols], y[..., window[0], window[1]], window_weight(m, window, shape, margin)
        fidelity, x = graphed((consistency > 0, adversarial > 0), *inputs, consistency_input, adversarial_input)
        if whole:
            return fidelity, x
        # less the pixels along the window's cut sides, where the fold lacks the predictions from beyond them
        return fidelity, write_interior(canvas, x, window, shape, s, -(-pad // s))

    def finish(average: torch.Tensor) -> torch.Tensor:
        """The output for an averaged image: back-projected with the current kernel, ``(1, C, H, W)``."""
        final = learned.fixed() if learned is not None else kernel
        return back_project(average, y, Degradation(final).to(device), config.back_projection_steps, m, keep if learned is None else None)

    watch = (lambda done, average: observe(done, finish(average)[0].float().cpu().numpy())) if observe is not None else None
    stop = StopRule(config.stop_patience, config.stop_tolerance) if config.early_stop else None
    result = optimise(step, steps, progress, config.ema_decay, stop, label="Knitworks", observe=watch)
    x = finish(result.output)
    taps = learned.taps().detach().double().cpu().numpy() if learned is not None else kernel.as_2d
    counted = {
        "generator": sum(p.numel() for p in net.parameters()),
        "discriminator": sum(p.numel() for p in discriminator.parameters()),
        "kernel": sum(p.numel() for p in learned.parameters()) if learned is not None else 0,
    }
    state = cpu_state(trained)
    return KnitworkTile(x[0].float().cpu().numpy(), result.losses, result.steps, taps, counted, state=state)
