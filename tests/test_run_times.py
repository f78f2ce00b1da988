"""The run-time figures of the help texts and the dialog (``algorithms.run_times``) are the speed benchmark's
(``benchmarks/results/speed.json``) and the GPU benchmark's (``gpu.json``), and the README states the same figures."""

import json
import os
import re

import pytest

from internal_sr.algorithms.run_times import REFERENCE_PIXELS, STEP_SECONDS, duration
from internal_sr.core.config import QUALITY_PRESETS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def readme_section(readme: str, title: str) -> str:
    """The README's ``### title`` section, up to the next heading."""
    return re.search(rf"^### {re.escape(title)}\n(.*?)^##", readme, re.S | re.M).group(1)


def run_time_table(readme: str) -> dict[str, str]:
    """The rows of the README's run-time table, by method name."""
    table = readme.split("| method | CPU, s per step |", 1)[1].split("\n\n", 1)[0]
    return {line.split(" | ")[0].lstrip("| "): line for line in table.splitlines() if line.startswith("| ")}


def test_cpu_step_times_are_the_speed_benchmarks_and_the_readme_states_them() -> None:
    with open(os.path.join(ROOT, "benchmarks", "results", "speed.json"), encoding="utf-8") as f:
        speed = json.load(f)
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    assert speed["scale"] == 2 and (2 * speed["tile"]["size"]) ** 2 == REFERENCE_PIXELS  # the figures' tile
    tile = speed["tile"]["seconds_per_step"]
    measured = {
        "dip": tile["dip"],
        "knitwork": tile["knitwork"],
        # guided DIP is timed on a target of size / 2 pixels sharpened onto its size² guide: size² output pixels
        "guided": speed["guided"]["seconds_per_step"] * REFERENCE_PIXELS / speed["size"] ** 2,
    }
    rows = {"dip": "Deep Image Prior", "knitwork": "Neural Knitworks", "guided": "guided DIP"}
    sections = {"dip": "Super-resolve (Deep Image Prior)", "knitwork": "Super-resolve (Neural Knitworks)",
                "guided": "Sharpen with a guide (guided DIP)"}
    for method, seconds in measured.items():
        cpu = STEP_SECONDS[method].cpu
        assert cpu == round(seconds, 1), (method, seconds)
        row = run_time_table(readme)[rows[method]]
        assert row.startswith(f"| {rows[method]} | {cpu} (one core")
        assert f"≈ {duration(QUALITY_PRESETS[method]['balanced'] * cpu)} on one core" in row
        assert f"about {cpu} s per" in readme_section(readme, sections[method])


def test_gpu_step_times_are_the_gpu_benchmarks_and_the_readme_states_them() -> None:
    """The GPU figures are ``gpu.json``'s *steps* part (one 128² tile at ×2, guided DIP a 128² target tile,
    both REFERENCE_PIXELS of output) to the README's precision, and the README's table gives them."""
    with open(os.path.join(ROOT, "benchmarks", "results", "gpu.json"), encoding="utf-8") as f:
        steps = json.load(f)["steps"]
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        table = run_time_table(f.read())
    assert steps["tile"].startswith("128² input")
    rows = {"dip": "Deep Image Prior", "knitwork": "Neural Knitworks", "guided": "guided DIP"}
    for method, row in rows.items():
        gpu = STEP_SECONDS[method].gpu
        assert gpu == round(steps["seconds_per_step"][method]["cuda"], 3), method
        assert f" | {gpu} (" in table[row] and table[row].endswith(f"/ ≈ {duration(QUALITY_PRESETS[method]['balanced'] * gpu)} |")


def test_gpu_estimate_counts_a_full_step_up_to_the_flat_size_and_grows_beyond() -> None:
    from internal_sr.algorithms.run_times import GPU_FLAT_PIXELS, estimate_seconds

    step = STEP_SECONDS["dip"].gpu
    assert estimate_seconds("dip", 1, 100, 96 * 96, gpu=True) == pytest.approx(100 * step)  # small tiles cost a full step
    assert estimate_seconds("dip", 1, 100, GPU_FLAT_PIXELS, gpu=True) == pytest.approx(100 * step)
    assert estimate_seconds("dip", 1, 100, 4 * GPU_FLAT_PIXELS, gpu=True) == pytest.approx(400 * step)
    assert estimate_seconds("dip", 1, 100, 96 * 96, gpu=False) == pytest.approx(100 * STEP_SECONDS["dip"].cpu * 96 * 96 / REFERENCE_PIXELS)


def test_durations_are_rounded_for_people_and_never_read_0_s() -> None:
    """A short run's estimate read "about 0 s"; it now reads 1 s up to where whole seconds round to 2."""
    assert [duration(s) for s in (0.0, 0.04, 0.49, 0.5, 1.0, 1.49)] == ["1 s"] * 6
    assert [duration(s) for s in (1.51, 2.6, 89.0)] == ["2 s", "3 s", "89 s"]
    assert [duration(s) for s in (90.0, 180.0, 90 * 60.0, 48 * 3600.0)] == ["2 minutes", "3 minutes", "1.5 hours", "2.0 days"]
