"""Benchmark scripts run end to end with ``--quick``, on the crops committed in ``tests/data`` (a plain clone runs them;
``INTERNAL_SR_DATA`` names a folder that does not exist, so a script that still reads ``shared/data`` fails here)."""

import json
import os
import subprocess
import sys

from internal_sr.core.degradation import OBSERVATION_GAIN_LIMIT

BENCHMARKS = os.path.join(os.path.dirname(__file__), "..", "benchmarks")


def test_back_projection_benchmark_scores_the_product_rule_against_the_offline_rules(tmp_path):
    """Its runs' ``back_project`` figures agree with the rules it reads off the trajectories: no guard where the
    width test does not examine the kernel or every band passes it, the start where every band fails it."""
    environment = {**os.environ, "INTERNAL_SR_DATA": str(tmp_path / "no shared data")}
    subprocess.run([sys.executable, os.path.join(BENCHMARKS, "back_projection.py"), "--quick", "--out", str(tmp_path)], check=True,
                   capture_output=True, env=environment)
    results = json.loads((tmp_path / "back_projection.json").read_text())
    assert "width test (now)" in (tmp_path / "back_projection.md").read_text()
    gains = {(g["crop"], g["blur"], g["scale"], g["kernel"]): g["observation_gain"] for g in results["observation_gains"]}
    checked = {"plain": 0, "passes": 0, "fails": 0}
    for run in results["runs"]:
        gain = gains.get((run["crop"], run["blur"], run["scale"], run["kernel"]))
        assert run["wide"] == (gain is not None)
        if gain is None or max(gain) <= OBSERVATION_GAIN_LIMIT:
            assert run["psnr_now"] == run["psnr_no_guard"]
            checked["plain" if gain is None else "passes"] += 1
        elif min(gain) > OBSERVATION_GAIN_LIMIT:
            assert run["psnr_now"] == run["psnr_start"]
            checked["fails"] += 1
    assert all(checked.values())
    assert results["held_out_gains"]


def test_guided_bounds_benchmark_applies_each_bound_to_one_run_and_counts_what_it_changed(tmp_path):
    """``--quick`` on the committed crops: per crop, the zero floor changes just the unbounded run's negative values
    and leaves none, the input-range clamp leaves nothing outside the range, and only the Wald crop is scored."""
    environment = {**os.environ, "INTERNAL_SR_DATA": str(tmp_path / "no shared data")}
    subprocess.run([sys.executable, os.path.join(BENCHMARKS, "guided_bounds.py"), "--quick", "--out", str(tmp_path)], check=True,
                   capture_output=True, env=environment)
    rows = json.loads((tmp_path / "guided_bounds.json").read_text())["rows"]
    crops = {row["crop"]: {r["bound"]: r for r in rows if r["crop"] == row["crop"]} for row in rows}
    assert len(crops) == 2 and [("psnr" in bounds["none"]) for bounds in crops.values()] == [True, False]
    for bounds in crops.values():
        assert bounds["zero floor"]["changed"] == bounds["none"]["negative"] and bounds["zero floor"]["negative"] == 0
        assert bounds["input range"]["changed"] == bounds["none"]["outside"] and bounds["input range"]["outside"] == 0
    assert "| zero floor |" in (tmp_path / "guided_bounds.md").read_text()


def test_demo_writes_the_result_and_a_four_panel_comparison_without_warnings(tmp_path):
    """``make demo``'s script (2 steps here): the GeoTIFF and the comparison PNG, four crops side by side at twice
    their size, and nothing on stderr but the run's own progress (it once printed matplotlib's Axes3D warning). Its
    sample has no georeferencing: the demo says so first, and not the engine's warning for each raster it reads (two
    warnings about the project's own data). ``--threads`` reaches the run."""
    from PIL import Image

    from internal_sr.core.raster import open_raster

    run = subprocess.run([sys.executable, os.path.join(BENCHMARKS, "demo.py"), "--out", str(tmp_path), "--iterations", "2",
                          "--threads", "1"], check=True, capture_output=True, text=True)
    assert "Warning" not in run.stderr and "georeferencing" not in run.stderr
    assert run.stdout.splitlines()[0].endswith("without georeferencing (the DSen2 sample it is cut from gives no map "
                                               "position): the demo's rasters have none either.")
    assert "Deep Image Prior on device cpu (1 thread);" in run.stderr or "on device cuda" in run.stderr
    with open_raster(str(tmp_path / "s2_10m_dip.tif")) as result:
        width = result.width
    with Image.open(tmp_path / "comparison.png") as picture:
        assert picture.mode == "RGB" and picture.width > 4 * 2 * width


def test_make_demo_passes_threads_to_the_demo():
    """``make demo THREADS=1`` runs the demo with one PyTorch thread (there was no way to pass threads); without
    THREADS the demo takes PyTorch's own choice."""
    root = os.path.join(BENCHMARKS, "..")
    # as a make of its own: under ``make test`` the inherited MAKEFLAGS/MAKELEVEL make it print directory lines
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}

    def demo_command(threads: str | None) -> list[str]:
        dry = subprocess.run(["make", "-n", "--no-print-directory", "demo", *([f"THREADS={threads}"] if threads else [])],
                             cwd=root, env=env, check=True, capture_output=True, text=True).stdout
        (line,) = [line for line in dry.splitlines() if "benchmarks/demo.py" in line]
        return line.split()

    commands = {threads: demo_command(threads) for threads in ("1", None)}
    assert commands == {"1": [".venv/bin/python", "benchmarks/demo.py", "--out", "out/demo", "--threads", "1"],
                        None: [".venv/bin/python", "benchmarks/demo.py", "--out", "out/demo"]}


def test_gpu_benchmarks_autotuned_variant_runs_the_engine(monkeypatch):
    """The GPU benchmark's graphs part seeds through ``cudnn_autotuned``, which replaces
    ``core.device.seed_everything``; its stand-in took the seed alone, and the engine's own runs (``seeded``, which
    passes the device too) failed with a TypeError after the part's step timings, on the GPU as on the CPU."""
    import numpy as np

    from internal_sr.core.config import DIPConfig
    from internal_sr.core.pipeline import super_resolve_array

    monkeypatch.syspath_prepend(BENCHMARKS)
    import gpu

    low = np.random.default_rng(0).random((1, 32, 32)).astype(np.float32)
    with gpu.cudnn_autotuned(True):
        out, result = super_resolve_array(low, DIPConfig(scale=2, iterations=1, device="cpu"))
    assert out.shape == (1, 64, 64) and result.steps == 1
