"""A seed makes a run repeatable on the same device: the same seed twice gives the same output to the
bit (CPU, same thread count), another seed gives another output."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from internal_sr.core.cli import main
from internal_sr.core.config import GuidedDIPConfig
from internal_sr.core.device import seeded
from internal_sr.core.progress import NullProgress
from internal_sr.core.sharpen import sharpen_array

from bad_inputs import s2_pixels
from helpers import S2_10M, S2_20M_SAME_AREA, read, write_raster


@pytest.mark.parametrize("method", ["dip", "knitwork"])
def test_same_seed_same_file_other_seed_other_output(method: str, tmp_path: Path) -> None:
    source = write_raster(str(tmp_path / "in.tif"), s2_pixels(bands=slice(0, 2)), crs="EPSG:32618")

    def run(seed: int, name: str) -> Path:
        out = tmp_path / name
        argv = [method, source, str(out), "--scale", "2", "--iterations", "2", "--seed", str(seed), "--device", "cpu", "--float32"]
        assert main(argv) == 0
        return out

    first, again, other = run(7, "first.tif"), run(7, "again.tif"), run(8, "other.tif")
    assert first.read_bytes() == again.read_bytes()
    a, b = read(str(first)), read(str(other))
    assert np.all(np.isfinite(a)) and not np.array_equal(a, b)


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")  # the committed crops have no grid
def test_guided_same_seed_same_output_other_seed_other_output() -> None:
    target, guide = read(S2_20M_SAME_AREA)[:2, :32, :32], read(S2_10M)[:, :64, :64]
    names = ("B5", "B6"), ("B4", "B3", "B2", "B8")

    def run(seed: int) -> np.ndarray:
        config = GuidedDIPConfig(iterations=2, width=8, layers=2, seed=seed, device="cpu")
        return sharpen_array(target, guide, config, *names)[0]

    first, again, other = run(7), run(7), run(8)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


def test_a_run_puts_cudnns_process_wide_flags_back(tmp_path: Path) -> None:
    """A run sets cuDNN deterministic (``seed_everything``) and leaves the flags as it found them, here the
    opposite of its own, for the process's other torch users (a QGIS session's other plugins)."""
    saved = torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = False, True
    try:
        with seeded(0, torch.device("cpu"), NullProgress()):
            assert (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark) == (True, False)
        assert (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark) == (False, True)
        source = write_raster(str(tmp_path / "in.tif"), s2_pixels(bands=slice(0, 1)), crs="EPSG:32618")
        argv = ["dip", source, str(tmp_path / "out.tif"), "--scale", "2", "--iterations", "2", "--device", "cpu"]
        assert main(argv) == 0
        assert (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark) == (False, True)
    finally:
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved


@pytest.mark.parametrize("method", ["dip", "knitwork"])
def test_a_run_leaves_the_callers_random_stream_as_it_found_it(method: str, tmp_path: Path) -> None:
    """A Python-API user's own stream of torch's global generator goes on after a run as if the run had not
    happened: ``seed_everything`` reseeded it (``torch.manual_seed``) and left it so."""
    source = write_raster(str(tmp_path / "in.tif"), s2_pixels(bands=slice(0, 1)), crs="EPSG:32618")
    argv = [method, source, str(tmp_path / "out.tif"), "--scale", "2", "--iterations", "2", "--device", "cpu"]
    torch.manual_seed(1234)
    torch.rand(3)
    expected = torch.rand(5)
    torch.manual_seed(1234)
    torch.rand(3)
    assert main(argv) == 0
    np.testing.assert_array_equal(torch.rand(5), expected)


def refuse(name: str):
    """A stand-in for a torch function that a CPU run must not call."""
    def refused(*args, **kwargs):
        raise AssertionError(f"a CPU run called {name}")
    return refused


def test_a_cpu_run_touches_no_other_devices_generator(monkeypatch, tmp_path: Path) -> None:
    """``seeded`` seeded every device's generator (``torch.manual_seed``: on a process without CUDA started, a seed
    queued for when it starts, which then changed a caller's later CUDA stream) and restored only those of CUDA
    devices started before it; a CPU run now seeds and restores the CPU's alone, and starts no CUDA."""
    for name in ("manual_seed", "manual_seed_all", "get_rng_state", "set_rng_state", "current_device", "init"):
        monkeypatch.setattr(torch.cuda, name, refuse(f"torch.cuda.{name}"))
    for name in ("manual_seed", "get_rng_state", "set_rng_state"):
        monkeypatch.setattr(torch.mps, name, refuse(f"torch.mps.{name}"))
    torch.random.default_generator.manual_seed(1234)
    expected = torch.rand(5)
    torch.random.default_generator.manual_seed(1234)
    with seeded(0, torch.device("cpu"), NullProgress()):
        assert torch.random.initial_seed() == 0
        torch.rand(3)
    source = write_raster(str(tmp_path / "in.tif"), s2_pixels(bands=slice(0, 1)), crs="EPSG:32618")
    assert main(["dip", source, str(tmp_path / "out.tif"), "--scale", "2", "--iterations", "2", "--device", "cpu"]) == 0
    np.testing.assert_array_equal(torch.rand(5), expected)
    assert not torch.cuda.is_initialized()


def test_a_run_on_mps_puts_the_mps_generator_back(monkeypatch) -> None:
    """The MPS generator a run seeds and uses was left so; it is put back as the run found it (a CPU generator
    stands in for MPS's, so that this runs anywhere)."""
    mps = torch.Generator().manual_seed(99)
    monkeypatch.setattr(torch.mps, "get_rng_state", lambda *device: mps.get_state())
    monkeypatch.setattr(torch.mps, "set_rng_state", lambda state, *device: mps.set_state(state))
    monkeypatch.setattr(torch.mps, "manual_seed", lambda seed: mps.manual_seed(seed))
    torch.rand(7, generator=mps)
    before = mps.get_state()
    with seeded(0, torch.device("mps"), NullProgress()):
        assert mps.initial_seed() == 0  # seeded for the run
        torch.rand(3, generator=mps)
    assert torch.equal(mps.get_state(), before)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_a_run_that_starts_cuda_puts_the_callers_cuda_stream_back() -> None:
    """A run that is the first to use CUDA in the process left CUDA's generator as it seeded and used it (``seeded``
    forked only the CUDA devices started before it). In a fresh process, so that CUDA is not started yet."""
    script = """
import torch
from internal_sr.core.device import seeded
from internal_sr.core.progress import NullProgress
torch.cuda.manual_seed(1234)  # queued: CUDA is not started yet
with seeded(0, torch.device("cuda"), NullProgress()):
    torch.rand(3, device="cuda")
after = torch.rand(5, device="cuda")
torch.cuda.manual_seed(1234)
assert torch.equal(after, torch.rand(5, device="cuda")), "the run changed the caller's CUDA stream"
"""
    subprocess.run([sys.executable, "-c", script], check=True)
