"""Progress reports of tiled runs: which tile a step is on, the time left, the tile count in the opening line, and
how often a log (stderr that is not a terminal) gets a line. One implementation serves every method and front end:
``core.optimise`` reports steps, ``core.tiling.run_tiles`` names their tile, ``core.progress.Timed`` adds the time
left, and a sink receives one line of text."""

import io
import re

import numpy as np
import pytest
import torch

from internal_sr.core.cli import LOG_EVERY, TerminalProgress, main
from internal_sr.core.config import DIPConfig, GuidedDIPConfig, KernelGANConfig, KnitworkConfig, TileOptions
from internal_sr.core.kernelgan import estimate_kernels
from internal_sr.core.pipeline import super_resolve_array
from internal_sr.core.progress import TIMED_STEPS, NullProgress, Part, Step, SubProgress, Timed, report_step
from internal_sr.core.sharpen import sharpen_array
from internal_sr.core.tiling import ShrinkOnOutOfMemory, run_tiles

from helpers import S2_10M, S2_20M, read

#: Tiles of 32 input pixels overlapping by 4: a 48 × 48 input is 2 × 2 of them.
SMALL_TILES = TileOptions(32, 4)
#: Two steps per tile, every step reported; warm-started tiles run round(2 · 0.75) = 2 as well.
FAST = dict(iterations=2, early_stop=False, back_projection_steps=0, device="cpu", tiles=SMALL_TILES)


class Lines(NullProgress):
    """A front end's sink: keeps the messages it is given (``report`` and ``info``)."""

    def __init__(self) -> None:
        self.reports: list[str] = []
        self.infos: list[str] = []

    def report(self, fraction: float, message: str = "") -> None:
        self.reports.append(message)

    def info(self, message: str) -> None:
        self.infos.append(message)

    def steps(self) -> list[str]:
        """The reports that are optimisation steps."""
        return [m for m in self.reports if re.match(r"[\w ]+: .*step \d+/\d+", m)]


class Clock:
    """A fake clock: ``tick`` seconds pass between two readings."""

    def __init__(self, tick: float) -> None:
        self.now, self.tick = 0.0, tick

    def __call__(self) -> float:
        self.now += self.tick
        return self.now


def test_the_time_left_counts_the_warm_started_tiles_fewer_steps_once_a_few_steps_were_timed():
    """Four tiles, the first of 4 steps, the warm-started others of 3, each step taking 2 s: no figure until
    ``TIMED_STEPS`` steps after the first were timed, then 2 s times the steps left (the current tile's, 3 for each tile
    not started)."""
    sink = Lines()
    timed = Timed(sink, later=3, clock=Clock(2.0))
    for tile in range(1, 5):
        steps = 4 if tile == 1 else 3
        part = SubProgress(timed, (tile - 1) / 4, tile / 4, part=Part("tile", tile, 1, 4))
        for done in range(1, steps + 1):
            report_step(part, done / steps, Step("DIP", done, steps, 0.0123 if done == steps else None))
    assert TIMED_STEPS == 3
    assert sink.reports[:5] == [
        "DIP: tile 1/4, step 1/4",
        "DIP: tile 1/4, step 2/4",
        "DIP: tile 1/4, step 3/4",
        "DIP: tile 1/4, step 4/4, loss 0.0123, about 18 s left",  # 6 s over 3 steps; 3 tiles of 3 steps left
        "DIP: tile 2/4, step 1/3, about 16 s left",  # 8 s over 4 steps; 2 steps of this tile, 2 tiles of 3
    ]
    assert sink.reports[-1] == "DIP: tile 4/4, step 3/3, loss 0.0123, about 1 s left"
    assert len(sink.reports) == 13


def test_tiles_solved_together_count_each_and_a_lead_tile_is_numbered_among_the_runs():
    """Steps of two tiles solved together are two tiles' steps; a tile solved alone out of a batch of eight
    (``ShrinkOnOutOfMemory.many``: the first trained tile leads) is numbered among the run's tiles."""
    sink = Lines()
    timed = Timed(sink, later=2, clock=Clock(1.0))
    pair = SubProgress(timed, 0.0, 0.5, part=Part("tile", 1, 2, 4))
    for done in range(1, 5):
        report_step(pair, done / 4, Step("DIP", done, 4))
    assert sink.reports[-1] == "DIP: tiles 1–2/4, step 4/4, about 2 s left"  # 3 s over 6 steps; 2 tiles of 2 steps left
    sink = Lines()
    given = SubProgress(sink, 0.0, 1.0, part=Part("tile", 3, 8, 98))  # run_tiles: tiles 3–10 to solve together
    lead = SubProgress(given, 0.0, 0.125, part=Part("tile", 1, 1, 8))  # many: the first of them alone
    report_step(lead, 0.5, Step("DIP", 1, 2))
    assert sink.reports == ["DIP: tile 3/98, step 1/2"]


def test_a_batched_run_names_the_tiles_each_batch_solves():
    """On a GPU, the first tile is solved alone (the others warm-start from it) and the next go in batches: each step
    names the tiles it solves among the run's, not the batch the run offered (``ShrinkOnOutOfMemory.many``)."""
    solved = []

    def solve(window, progress, device):
        solved.append(window)
        report_step(progress, 1.0, Step("DIP", 1, 1))
        return np.zeros((1, 2 * window.height, 2 * window.width)), np.ones((1, 2 * window.height, 2 * window.width), bool)

    def solve_many(windows, progress, device):
        report_step(progress, 1.0, Step("DIP", 1, 1))
        return [solve(window, NullProgress(), device) for window in windows]

    tiles = TileOptions(32, 8, batch=4)
    solver = ShrinkOnOutOfMemory(solve, torch.device("cpu"), tiles, 1, 2, NullProgress(), solve_many=solve_many, lead=lambda: not solved)
    sink = Lines()
    assert run_tiles(100, 60, 1, 2, tiles, solver, lambda *a: None, sink, solver.many, steps=1) == 12
    assert [line.split(", about")[0] for line in sink.reports] == [
        "DIP: tile 1/12, step 1/1", "DIP: tiles 2–5/12, step 1/1", "DIP: tiles 6–9/12, step 1/1", "DIP: tiles 10–12/12, step 1/1",
    ]


@pytest.mark.parametrize("method", ["dip", "knitwork", "guided"])
def test_every_method_names_the_tile_of_each_step_and_the_run_its_tile_count(method):
    """The run's opening line counts its tiles, each step names its tile among them, and the time left appears once
    ``TIMED_STEPS`` steps after the first were timed, not before."""
    image = read(S2_10M).astype(np.float32)[:, :96, :96]
    sink = Lines()
    if method == "guided":
        config = GuidedDIPConfig(width=8, layers=2, kernel="bicubic", guide_kernel="bicubic", **FAST)
        run = sharpen_array(image[:2, ::2, ::2], image[2:], config, [None] * 2, [None] * 2, progress=sink)[1]
        label, opening = "guided DIP", "guided ×2"
    elif method == "dip":
        config = DIPConfig(scale=2, depth=3, channels=8, skip_channels=2, noise_channels=4, detail_channels=8, **FAST)
        run = super_resolve_array(image[:1, ::2, ::2], config, progress=sink)[1]
        label, opening = "DIP", "Deep Image Prior"
    else:
        config = KnitworkConfig(scale=2, width=16, layers=2, fourier_features=8, discriminator_layers=(8,), adversarial_patches=64, **FAST)
        run = super_resolve_array(image[:1, ::2, ::2], config, progress=sink)[1]
        label, opening = "Knitworks", "Neural Knitworks"
    assert len(run.curves) == 4
    assert [line for line in sink.infos if opening in line and "4 tiles of 32 px with 4 px overlap, seed 0" in line]
    steps = sink.steps()
    assert [re.sub(r", (loss|about) .*", "", line) for line in steps] == [
        f"{label}: tile {tile}/4, step {done}/2" for tile in range(1, 5) for done in (1, 2)
    ]
    assert not any("left" in line for line in steps[:TIMED_STEPS]) and all(
        re.search(r", about \d+ s left$", line) for line in steps[TIMED_STEPS:]
    )


def test_progress_changes_no_output():
    """The same run reported to a sink and to nothing gives the same values (the reports are one code for every
    method: the quickest stands for them)."""
    image = read(S2_10M).astype(np.float32)[:1, :96:2, :96:2]
    config = KnitworkConfig(scale=2, width=16, layers=2, fourier_features=8, discriminator_layers=(8,), adversarial_patches=64, **FAST)
    seen, unseen = super_resolve_array(image, config, progress=Lines())[0], super_resolve_array(image, config)[0]
    assert np.array_equal(seen, unseen)


def test_kernelgan_per_band_names_the_band_of_each_step():
    image = read(S2_10M).astype(np.float64)[:2, :96, :80]
    sink = Lines()
    estimate_kernels(image, np.ones(image.shape, bool), KernelGANConfig(iterations=2, per_band=True), sink)
    assert [re.sub(r", (loss|about) .*", "", line) for line in sink.steps()] == [
        f"KernelGAN: band {band}/2, step {done}/2" for band in (1, 2) for done in (1, 2)
    ]
    assert sink.steps()[-1].endswith(" s left")


def test_a_log_gets_a_line_every_5_percent_or_every_minute_whichever_comes_first():
    """stderr that is not a terminal got a line every 5 % of the run only: at default settings a tiled run takes
    hours, so a log stayed silent for half an hour at a time."""
    stream = io.StringIO()
    clock = Clock(0.0)
    progress = TerminalProgress(stream, clock=clock)
    for step in range(1, 201):  # 0.5 % a step, 20 s a step
        clock.now += 20.0
        progress.report(step / 200, f"DIP: step {step}/200")
    lines = stream.getvalue().splitlines()
    assert LOG_EVERY == 60.0
    # the first step, then every third step (a minute), each under 5 %, and the last
    assert [line.split("DIP: ")[1] for line in lines] == [f"step {s}/200" for s in (1, *range(4, 201, 3), 200)]
    stream = io.StringIO()
    progress = TerminalProgress(stream, clock=Clock(0.1))
    for step in range(1, 65):  # 1/64 a step, quickly: a line every fourth step, the first at least 5 % after the last
        progress.report(step / 64, f"step {step}")
    assert [line.split("s ")[-1] for line in stream.getvalue().splitlines()] == [f"step {s}" for s in (*range(1, 65, 4), 64)]


def test_the_command_line_counts_its_tiles_and_names_the_tile_of_each_step(tmp_path, capsys):
    low, high = tmp_path / "low.tif", tmp_path / "high.tif"
    assert main(["degrade", S2_20M, str(low), "--scale", "2"]) == 0  # 48 × 48
    capsys.readouterr()
    assert main(["dip", str(low), str(high), "--scale", "2", "--bands", "1", "--tile", "32", "--overlap", "4", "--iterations", "2"]) == 0
    err = capsys.readouterr().err
    assert "up to 2 steps per tile, 4 tiles of 32 px with 4 px overlap, seed 0" in err
    assert "DIP: tile 1/4, step 1/2\n" in err and re.search(r"DIP: tile 4/4, step 2/2, loss [\d.e-]+, about \d+ s left\n", err)
