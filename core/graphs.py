"""Replaying an optimisation step from CUDA graphs.

On a GPU a step of the internal-learning methods is bound by launching its work, not by arithmetic: a
DIP step is thousands of small operations, each dispatched from Python (README, *GPU*). A CUDA graph
records a step's kernels once and replays them with one launch. That needs a step whose work is the
same every time: the same operations on tensors of the same shapes at the same addresses, and no read
back to the host. So a method splits its step in two. Its eager part chooses what varies from step to
step (a random window, which cross-scale pair) and cuts the step's inputs; ``compute(key, *inputs)``
does the rest (forward, loss, backward, optimiser update) and returns the step's outputs, with ``key``
naming the variant of its operations (e.g. DIP's dihedral element) and the inputs of the same shapes
at every call. ``GraphedStep`` calls ``compute`` as it is, or on CUDA records one graph per key and
replays it on the inputs copied into fixed buffers.
"""

from __future__ import annotations

import warnings
from typing import Callable, Hashable, NamedTuple

import torch

from .config import InternalLearningConfig
from .device import bf16_ok
from .progress import Progress

#: Eager steps (on a side stream, as recording needs) before the first recording: lazily created
#: library handles and the optimiser's state exist by then. Each key also runs once eagerly before its own.
WARMUP_STEPS = 3

Compute = Callable[..., tuple[torch.Tensor, ...]]


class StepSetup(NamedTuple):
    """How a method's optimisation steps run (``step_setup``)."""

    #: autocast of the networks (bfloat16, float16 on GPUs without it), on CUDA only
    mixed: bool
    #: float16's loss scaling, enabled only with float16 autocast
    scaler: torch.amp.GradScaler
    #: steps recorded and replayed (``GraphedStep``'s ``enabled``; it records on CUDA only)
    record: bool
    #: the optimisers must be ``capturable`` (recording on CUDA)
    capturable: bool

    def update(self, loss: torch.Tensor, optimiser: torch.optim.Optimizer) -> None:
        """Back-propagate the scalar ``loss`` (scaled when float16 needs it) and step ``optimiser`` on it."""
        self.scaler.scale(loss).backward()
        self.scaler.step(optimiser)
        self.scaler.update()


def step_setup(config: InternalLearningConfig, device: torch.device) -> StepSetup:
    """``config.mixed_precision`` and ``config.cuda_graphs`` resolved for ``device``: recording is off with float16
    loss scaling, whose overflow check reads back to the host."""
    mixed = config.mixed_precision and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=mixed and not bf16_ok(device))
    record = config.cuda_graphs and not scaler.is_enabled()
    return StepSetup(mixed, scaler, record, record and device.type == "cuda")


class GraphedStep:
    """``compute(key, *inputs) -> outputs``, replayed from one CUDA graph per ``key`` when ``enabled``.

    compute: one optimisation step; it sets the gradients an optimiser steps on to ``None`` before the
    backward pass that writes them (``zero_grad(set_to_none=True)``, so a recording allocates them), makes
    no host/device sync (no ``.item()``, no data-dependent shapes), and its ``inputs`` have the same shapes
    and dtypes at every call (a value that changes from step to step, such as a loss weight, is an input:
    a 0-d tensor set with ``fill_``). Its optimisers
    must be ``capturable`` (``core.optimise.adam``), and a ``GradScaler`` (float16 autocast) disabled: its
    overflow check reads back to the host.

    Recorded graphs share one memory pool and are replayed one at a time; a call returns copies of the
    graph's outputs, so what a caller keeps survives the next replay. Off CUDA, or not ``enabled``, a
    call is ``compute(key, *inputs)``. A recording that fails (``_record``) turns recording off: that step and
    the remaining ones run eagerly, said through ``progress``.
    """

    def __init__(self, compute: Compute, device: torch.device, enabled: bool, progress: Progress) -> None:
        self.compute = compute
        self.progress = progress
        self.enabled = enabled and device.type == "cuda"
        self.buffers: list[torch.Tensor] | None = None
        self.graphs: dict[Hashable, tuple[torch.cuda.CUDAGraph, tuple[torch.Tensor, ...]]] = {}
        self.eager: dict[Hashable, int] = {}
        self.pool = None
        self.stream = torch.cuda.Stream(device) if self.enabled else None

    def __call__(self, key: Hashable, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if not self.enabled:
            return self.compute(key, *inputs)
        if self.buffers is None:
            self.buffers = [t.detach().clone() for t in inputs]
        else:
            for buffer, value in zip(self.buffers, inputs, strict=True):
                if buffer.shape != value.shape:
                    raise ValueError(f"a recorded step's input changed shape: {tuple(value.shape)}, recorded {tuple(buffer.shape)}")
                buffer.copy_(value)
        if key not in self.graphs and (not self.eager.get(key) or sum(self.eager.values()) < WARMUP_STEPS):
            self.eager[key] = self.eager.get(key, 0) + 1
            return self._on_side_stream(lambda: tuple(t.clone() for t in self.compute(key, *self.buffers)))
        if key not in self.graphs and not self._record(key):
            return self.compute(key, *inputs)
        graph, outputs = self.graphs[key]
        graph.replay()
        return tuple(t.clone() for t in outputs)

    def _on_side_stream(self, run: Callable[[], tuple[torch.Tensor, ...]]) -> tuple[torch.Tensor, ...]:
        """``run()`` on the side stream that recording uses, ordered after and before the current stream's work.
        (A capturable optimiser warns that it runs unrecorded: these steps are meant to.)"""
        current = torch.cuda.current_stream(self.stream.device)
        self.stream.wait_stream(current)
        with torch.cuda.stream(self.stream), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*capturable=True.*")
            outputs = run()
        current.wait_stream(self.stream)
        for t in outputs:
            t.record_stream(current)
        return outputs

    def _record(self, key: Hashable) -> bool:
        """Record ``compute(key, buffers)`` into a graph of the shared pool (nothing runs until a replay); whether
        it was recorded.

        On a failure (lack of GPU memory included: the eager steps before it fitted) the caller's current stream
        is made current again (``torch.cuda.graph`` leaves the side stream current when ending the capture
        raises), the graphs are dropped, recording is turned off and ``progress`` told.
        """
        current = torch.cuda.current_stream(self.stream.device)
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph, pool=self.pool, stream=self.stream, capture_error_mode="thread_local"):
                outputs = self.compute(key, *self.buffers)
        except Exception as error:
            torch.cuda.set_stream(current)
            self.enabled, self.graphs, self.pool = False, {}, None
            reason = (str(error).splitlines() or [type(error).__name__])[0]  # its first line: CUDA's run to several
            self.progress.info(f"recording a step in a CUDA graph failed ({reason}): the remaining steps run eagerly")
            return False
        self.pool = graph.pool()
        self.graphs[key] = graph, outputs
        return True
