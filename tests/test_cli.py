"""The ``internal-sr`` command line: outputs, progress, one-line errors with status 2, nothing written on error
(the table of bad and odd inputs shared with Processing is in test_robustness)."""

import io
import os
import shutil
import subprocess
import sys
import warnings

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.errors import NotGeoreferencedWarning

from internal_sr.core.cli import build_parser, main
from internal_sr.core.config import EVALUATION_METHODS, MAX_SCALE
from internal_sr.core.raster import loss_curve_path

from helpers import S2_10M, S2_10M_256, S2_20M, read, write_raster

FAST = ["--iterations", "2"]


def two_raster_tables(folder) -> str:
    """A GeoPackage holding two raster tables: a container of subdatasets, with no band of its own."""
    path = str(folder / "two.gpkg")
    for table, append in (("first", "NO"), ("second", "YES")):
        with rasterio.open(path, "w", driver="GPKG", width=8, height=8, count=1, dtype="uint8", crs="EPSG:32633",
                           transform=Affine(10, 0, 0, 0, -10, 80), RASTER_TABLE=table, APPEND_SUBDATASET=append) as dst:
            dst.write(np.ones((1, 8, 8), np.uint8))
    return path


def palette_raster(folder) -> str:
    """A Byte raster of four classes with a colour table."""
    path = str(folder / "classes.tif")
    with rasterio.open(path, "w", driver="GTiff", width=32, height=32, count=1, dtype="uint8", crs="EPSG:32633",
                       transform=Affine(10, 0, 0, 0, -10, 320)) as dst:
        dst.write(np.random.default_rng(0).choice(np.array([0, 10, 20, 40], np.uint8), (1, 32, 32)))
        dst.write_colormap(1, {0: (0, 0, 0, 255), 10: (255, 0, 0, 255), 20: (0, 255, 0, 255), 40: (0, 0, 255, 255)})
    return path


def test_degrade_then_dip_round_trip(tmp_path, capsys):
    low, high = tmp_path / "low.tif", tmp_path / "high.tif"
    assert main(["degrade", S2_20M, str(low), "--scale", "2", "--kernel", "lanczos3"]) == 0
    assert main(["dip", str(low), str(high), "--scale", "2", "--bands", "1,3", "--seed", "3", "--tile", "32", "--overlap", "4", *FAST]) == 0
    with rasterio.open(S2_20M) as src, rasterio.open(high) as dst:
        assert (dst.width, dst.height, dst.count) == (96, 96, 2)
        assert dst.transform == src.transform and dst.crs == src.crs
        assert dst.descriptions == ("B05", "B07")
    err = capsys.readouterr().err
    assert "100.0%" in err and "device cpu" in err


@pytest.mark.parametrize("method", ["dip", "knitwork"])
def test_step_windows(tmp_path, method):
    """``--step-window`` reaches the configuration: the run differs from whole-tile steps, on the same grid."""
    outputs = {}
    for window in ("1", "0.5"):
        outputs[window] = tmp_path / f"w{window}.tif"
        args = [method, S2_20M, str(outputs[window]), "--scale", "2", "--bands", "1", "--tile", "64", "--step-window", window]
        assert main([*args, "--iterations", "3"]) == 0
    with rasterio.open(outputs["1"]) as whole, rasterio.open(outputs["0.5"]) as part:
        assert (part.width, part.height, part.transform) == (whole.width, whole.height, whole.transform)
        assert (part.read() != whole.read()).any()


@pytest.mark.parametrize("command", [["degrade"], ["degrade", "--cog"], ["dip", *FAST], ["knitwork", *FAST]])
def test_a_raster_without_georeferencing_is_noted_once_in_the_engines_words(tmp_path, capsys, command):
    """The committed crop has no geotransform: the run says so in its one line, and rasterio's own
    ``NotGeoreferencedWarning`` (a Python warning with its source line) never reaches the user, from any open
    on the run's path (the input's, the output's, the read-back of the written file)."""
    out = tmp_path / "o.tif"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main([command[0], S2_10M, str(out), "--scale", "2", "--bands", "1", *command[1:]]) == 0
    assert [w for w in caught if issubclass(w.category, NotGeoreferencedWarning)] == []
    notes = [line for line in capsys.readouterr().err.splitlines() if "georeferencing" in line]
    assert notes == [f"warning: {S2_10M} has no georeferencing; the output is written without one"]


def test_console_script_is_installed_and_reports_errors_on_one_line(tmp_path):
    exe = shutil.which("internal-sr") or os.path.join(os.path.dirname(sys.executable), "internal-sr")
    out = tmp_path / "o.tif"
    proc = subprocess.run([exe, "dip", S2_20M, str(out), "--scale", "2", "--bands", "9"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == ["internal-sr: error: band 9 is out of range: " + S2_20M + " has 6 band(s)"]
    assert not out.exists()


@pytest.mark.parametrize(
    "make_input,args,message",
    [
        (lambda p: S2_20M, ["--scale", "2", "--kernel", "box"], "unknown kernel"),
        (lambda p: S2_20M, ["--scale", "2", "--tile", "32", "--overlap", "16"], "overlap"),
        (lambda p: S2_20M, ["--scale", "2", "--step-window", "1.5"], "step window is a fraction"),
        (lambda p: S2_20M, ["--scale", "inf"], "scale must be an integer ≥ 2, got inf"),
        (lambda p: S2_20M, ["--scale", "1e400"], "scale must be an integer ≥ 2, got 1e400"),
        (lambda p: S2_20M, ["--scale", "1e100"], "scale must be at most 2147483647, the widest raster GDAL holds, got 1e100$"),
        (two_raster_tables, ["--scale", "2"], r"two.gpkg holds no raster bands itself: open one of its subdatasets \(GPKG:.*two.gpkg:first; "),
        (lambda p: S2_20M, ["--scale", "17"], "scale must be an integer from 2 to 16, got 17"),
        (lambda p: S2_20M, ["--scale", "2", "--seed", "8589934592"],
         "seed must be an integer from 0 to 2147483647, got 8589934592"),
        (lambda p: S2_20M, ["--scale", "2", "--bands", "1,1"], "bands 1,1 name a band twice"),
        (palette_raster, ["--scale", "2"], "has a colour table: its values are classes"),
    ],
)
def test_bad_input_exits_2_with_one_line(tmp_path, capsys, make_input, args, message):
    src = make_input(tmp_path)
    out = tmp_path / "out" / "sr.tif"
    out.parent.mkdir()
    assert main(["dip", src, str(out), *args, *FAST]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("internal-sr: error: ")
    assert __import__("re").search(message, err[0])
    assert os.listdir(out.parent) == []


@pytest.mark.parametrize("overlap, message", [
    ([], "tile size 20 is too small for the tile overlap of 16 pixels, the default, which must be less than half the tile: "
         "lower it with --overlap to 9 or less, or use --tile 33 or more"),
    (["--overlap", "12"], "tile size 20 is too small for the tile overlap of 12 pixels, which must be less than half the "
                          "tile: lower it with --overlap to 9 or less, or use --tile 25 or more"),
    (["--overlap", "-1"], "tile overlap must be ≥ 0 (--overlap), got -1"),
])
def test_a_tile_too_small_for_its_overlap_names_the_default_and_the_option_to_lower_it(tmp_path, capsys, overlap, message):
    """``--tile 20`` alone was refused as "tile overlap 16 must be ≥ 0 and less than half the tile size 20": an overlap
    the user never gave, with no word of it being the default nor of the option that lowers it. (Knitworks: a tile of
    20 is large enough for its network, so lowering the overlap works.)"""
    assert main(["knitwork", S2_20M, str(tmp_path / "sr.tif"), "--scale", "2", "--tile", "20", *overlap, *FAST]) == 2
    assert capsys.readouterr().err == f"internal-sr: error: {message}\n"
    assert os.listdir(tmp_path) == []


#: A tile refusal's remedies as (tile, overlap) the user would type: "lower it with --overlap to N or less" keeps the
#: tile, "use --tile N or more" and "use at least N input pixels" keep the overlap.
TILE_REMEDIES = (
    (r"lower it with --overlap to (\d+) or less", lambda tile, overlap, n: (tile, n)),
    (r"use --tile (\d+) or more", lambda tile, overlap, n: (n, overlap)),
    (r"use at least (\d+) input pixels", lambda tile, overlap, n: (n, overlap)),
)


def test_every_remedy_of_a_tile_refusal_works_when_followed(tmp_path, capsys, monkeypatch):
    """``dip --scale 2 --tile 20`` said "lower it with --overlap to 9 or less, or use --tile 33 or more", but DIP at ×2
    needs tiles of 32: ``--tile 20 --overlap 8`` was then refused for DIP. The tile is checked against the method's
    least tile and the overlap in one rule, and every remedy a refusal offers, followed, passes the run's checks (the
    runs are replaced by the checks: ``pipeline.check_super_resolve``; evaluate's configuration is built the same)."""
    import re

    from internal_sr.core import pipeline, report

    def check(input_path, output_path, config, io, progress):
        pipeline.check_super_resolve(input_path, output_path, config, io)
        return pipeline.RunResult(output_path, "cpu", 0.0, 0)

    monkeypatch.setattr(pipeline, "super_resolve", check)
    monkeypatch.setattr(report, "evaluate_to_files", lambda *args, **kwargs: type("Run", (), {"evaluation": None}))
    monkeypatch.setattr(report, "text_table", lambda evaluation: "")
    source = write_raster(str(tmp_path / "in.tif"), read(S2_20M)[:1, :96, :96])
    out = str(tmp_path / "out" / "sr.tif")
    os.mkdir(tmp_path / "out")
    commands = [["dip", source, out, "--scale", "2"], ["dip", source, out, "--scale", "3"],
                ["knitwork", source, out, "--scale", "2"], ["evaluate", source, "--scale", "2", "--method", "dip"]]
    followed = 0
    for command in commands:
        for tile, overlap in ((20, 16), (20, 8), (32, 16), (10, 4), (10, 16), (16, 8)):
            if main([*command, "--tile", str(tile), "--overlap", str(overlap)]) == 0:
                continue
            refusal = capsys.readouterr().err
            remedies = [(pattern, fix) for pattern, fix in TILE_REMEDIES if re.search(pattern, refusal)]
            assert remedies, refusal
            for pattern, fix in remedies:
                tile_fixed, overlap_fixed = fix(tile, overlap, int(re.search(pattern, refusal)[1]))
                argv = [*command, "--tile", str(tile_fixed), "--overlap", str(overlap_fixed)]
                assert main(argv) == 0, (refusal, argv, capsys.readouterr().err)
                followed += 1
    assert followed >= 20
    assert main(["dip", source, out, "--scale", "2", "--tile", "20"]) == 2
    assert capsys.readouterr().err == (
        "internal-sr: error: tile size 20 is too small for Deep Image Prior (DIP) (at least 32 input pixels at ×2 with "
        "depth 5) and for the tile overlap of 16 pixels, the default, which must be less than half the tile: use --tile "
        "33 or more\n"
    )
    assert os.listdir(tmp_path / "out") == []


def test_a_tile_of_the_users_too_small_for_a_wide_kernel_is_refused_in_one_line(tmp_path, capsys):
    """gaussian:4 at ×2 reaches 12 input pixels past a tile's side, and ran as asked on 32-pixel tiles overlapping by
    4: 24 of each tile's 32 rows and columns were fitted against its padding, and blended seams saw nothing else. Every
    method that tiles now refuses the user's tile before anything runs, naming the kernel's reach, the tile asked and
    the smallest tile that works (evaluate's run tiles the 48 × 48 degraded image: one tile of 48 is the smallest), and
    writes nothing. The overlap, left out, is raised to what the kernel needs; typed too small, it is refused in the
    same line."""
    target = write_raster(str(tmp_path / "t.tif"), read(S2_20M)[:2, :64, :64], transform=Affine(20.0, 0, 300000.0, 0, -20.0, 5800000.0))
    guide = write_raster(str(tmp_path / "g.tif"), read(S2_10M)[:, :128, :128])
    out = str(tmp_path / "out" / "sr.tif")
    os.mkdir(tmp_path / "out")
    wide = ["--kernel", "gaussian:4", "--tile", "40", *FAST]
    runs = [
        (["dip", S2_20M, out, "--scale", "2", *wide], "input", 49),
        (["knitwork", S2_20M, out, "--scale", "2", *wide], "input", 49),
        (["evaluate", S2_20M, "--scale", "2", "--method", "dip", "--json", out + ".json", *wide], "input", 48),
        (["guided", target, guide, out, "--guide-kernel", "bicubic", *wide], "target", 49),
    ]
    for argv, pixels, smallest in runs:
        assert main(argv) == 2, argv
        assert capsys.readouterr().err == (
            f"internal-sr: error: --tile 40 is too small for kernel gaussian:4, which reaches 12 {pixels} pixels past a "
            "tile's side: tiles must overlap by twice that (24 pixels, --overlap raised to it) for blended seams to see "
            f"the image, not a tile's padding, and a tile must be more than twice its overlap: use --tile {smallest} or "
            "more, or leave --tile out: the default 128 grows to fit the kernel\n"
        ), argv
    assert main(["dip", S2_20M, out, "--scale", "2", "--kernel", "gaussian:4", "--tile", "32", "--overlap", "4", *FAST]) == 2
    assert capsys.readouterr().err == (
        "internal-sr: error: --tile 32 and --overlap 4 are too small for kernel gaussian:4, which reaches 12 input pixels "
        "past a tile's side: tiles must overlap by twice that (24 pixels) for blended seams to see the image, not a tile's "
        "padding, and a tile must be more than twice its overlap: use --overlap 24 or more with --tile 49 or more, or "
        "leave --tile and --overlap out: the defaults grow to fit the kernel\n"
    )
    assert os.listdir(tmp_path / "out") == []


def test_tiles_typed_are_the_users_own_even_at_the_default_values(tmp_path, capsys, monkeypatch):
    """``--tile 128`` typed counted as the default and grew silently for a wide kernel, and a typed ``--overlap`` was
    raised: the command line could not tell a typed value from the default. Typed, the tile and the overlap are the
    user's own, used as they are or refused in one line before anything runs, naming the remedy; left out, they grow
    to fit the kernel (gaussian:6 at ×2 reaches 18 input pixels past a tile's side: 144 px tiles overlapping by 36).
    The runs that pass the checks are replaced by a recorder of the tiles they would be solved in."""
    from internal_sr.core import pipeline
    from internal_sr.core.config import TileOptions
    from internal_sr.core.kernels import anisotropic_gaussian, save_kernel_file

    used = []

    def record(input_path, output_path, config, io, progress):
        used.append(pipeline.check_super_resolve(input_path, output_path, config, io)[1])
        return pipeline.RunResult(output_path, "cpu", 0.0, 0)

    source = write_raster(str(tmp_path / "in.tif"), read(S2_10M_256)[:1, :80, :150])
    out = tmp_path / "out" / "sr.tif"
    out.parent.mkdir()
    widest = str(tmp_path / "wide.npy")
    save_kernel_file(widest, anisotropic_gaussian(12, 12, 0, 2), 2)  # reaches 37 input pixels
    run = ["dip", source, str(out), "--scale", "2", *FAST]
    refusals = {
        ("--kernel", widest, "--tile", "128"): f"--tile 128 is too small for kernel file {widest}, which reaches 37 input "
        "pixels past a tile's side: tiles must overlap by twice that (74 pixels, --overlap raised to it) for blended seams "
        "to see the image, not a tile's padding, and a tile must be more than twice its overlap: use --tile 149 or more, "
        "or leave --tile out: the default 128 grows to fit the kernel",
        ("--kernel", "gaussian:6", "--overlap", "16"): "--overlap 16 is too small for kernel gaussian:6, which reaches 18 "
        "input pixels past a tile's side: tiles must overlap by twice that (36 pixels) for blended seams to see the image, "
        "not a tile's padding: use --overlap 36 or more, or leave --overlap out: the default 16 grows to fit the kernel",
    }
    for options, message in refusals.items():
        assert main([*run, *options]) == 2, options
        assert capsys.readouterr().err == f"internal-sr: error: {message}\n"
    assert os.listdir(out.parent) == []
    monkeypatch.setattr(pipeline, "super_resolve", record)
    for options in ([], ["--tile", "128"], ["--tile", "128", "--overlap", "40"], ["--kernel", widest]):
        assert main([*run, "--kernel", "gaussian:6", *options]) == 0, options
    assert used == [TileOptions(144, 36), TileOptions(128, 36, size_given=True),
                    TileOptions(128, 40, size_given=True, overlap_given=True), TileOptions(296, 74)]


def test_every_method_stops_at_the_one_largest_scale(tmp_path, capsys):
    """DIP and Knitworks stopped at ×16 while evaluate with bicubic or guided DIP took ×17 and more, and guided DIP took a
    guide 17 times finer: ``MAX_SCALE`` is now every method's limit, and ``degrade`` alone has none (a whole block)."""
    target = write_raster(str(tmp_path / "t.tif"), read(S2_20M)[:, :8, :8], transform=Affine(170.0, 0, 300000.0, 0, -170.0, 5800000.0))
    guide = write_raster(str(tmp_path / "g.tif"), read(S2_10M_256)[:, :136, :136])  # 10 m pixels from the same corner: 17× finer
    too_large = f"must be an integer from 2 to {MAX_SCALE}, got {MAX_SCALE + 1}"
    runs = [
        (["dip", target, str(tmp_path / "dip.tif"), "--scale", "17"], f"scale {too_large}"),
        (["knitwork", target, str(tmp_path / "knit.tif"), "--scale", "17"], f"scale {too_large}"),
        *((["evaluate", target, "--scale", "17", "--method", method, *(["--guide", guide] if method == "guided" else [])],
           f"scale {too_large}") for method in EVALUATION_METHODS),
        (["guided", target, guide, str(tmp_path / "guided.tif")],
         f"the scale (how many times finer the guide's pixels are than the target's) {too_large}; resample the guide to at "
         f"most {MAX_SCALE} times finer than the target"),
    ]
    for argv, message in runs:
        assert main(argv) == 2, argv
        assert capsys.readouterr().err == f"internal-sr: error: {message}\n", argv
    assert sorted(os.listdir(tmp_path)) == ["g.tif", "t.tif"]
    assert main(["degrade", guide, str(tmp_path / "lr.tif"), "--scale", "17"]) == 0
    assert rasterio.open(tmp_path / "lr.tif").shape == (8, 8)


def test_kernel_files_that_are_not_real_arrays_are_named(tmp_path, capsys):
    np.save(tmp_path / "complex.npy", np.ones((3, 3), complex))
    (tmp_path / "notes.npy").write_text("not an array")
    for name, message in (("complex.npy", "must hold real numbers, got complex128"), ("notes.npy", "is not a NumPy array file")):
        out = tmp_path / f"{name}.tif"
        assert main(["degrade", S2_20M, str(out), "--scale", "2", "--kernel", str(tmp_path / name)]) == 2
        (line,) = capsys.readouterr().err.strip().splitlines()
        assert message in line and "allow_pickle" not in line and not out.exists()


def test_sentinel2_with_the_10m_bands_alone_is_refused(tmp_path, capsys):
    """``sentinel2`` given only the 10 m bands wrote them as they were, exit 0, with a log line that nothing was
    sharpened. It is refused in one line naming what is missing and what to give, and writes nothing."""
    ten = write_raster(str(tmp_path / "T33UUB_10m_B04-B03-B02-B08.tif"), read(S2_10M),
                       transform=Affine(10.0, 0, 300000.0, 0, -10.0, 5800000.0))
    out = tmp_path / "out"
    out.mkdir()
    assert main(["sentinel2", ten, str(out / "all.tif"), *FAST]) == 2
    assert capsys.readouterr().err == (
        f"internal-sr: error: only 10 m bands (B2, B3, B4, B8) found in {ten}: no 20 m or 60 m band to sharpen; give the "
        "20 m and 60 m band files too (e.g. …_B05.jp2 or …_20m_B05-B06-B07-B8A-B11-B12.tif), or the product folder (the "
        ".SAFE)\n"
    )
    assert os.listdir(out) == []


def test_evaluate_gives_its_notes_once_under_the_table_and_a_folder_output_is_named(tmp_path, capsys):
    """``evaluate`` logged "Scored: …" and printed "Scored: …": the same sentence in two wordings, then twice in the same
    words (and the sentences on scores not defined with it). The table printed ends with them, as before, and the log
    leaves them out, so each is said once (Processing, which prints no table, logs them once: ``test_qgis_evaluate``);
    a folder given as the output was told to "end in .tif"; one KernelGAN step was "1 steps"."""
    source = write_raster(str(tmp_path / "in.tif"), read(S2_20M)[:1, :64, :64], transform=Affine(20.0, 0, 300000.0, 0, -20.0, 5800000.0))
    assert main(["evaluate", source, "--scale", "2", "--method", "bicubic"]) == 0
    captured = capsys.readouterr()
    notes = [line for line in captured.out.splitlines() if line.startswith(("Scored:", "Overall SAM"))]
    assert notes == ["Scored: all 4096 reference pixels, every one valid.",
                     "Overall SAM is not defined for one band (—): the angle between one-band spectra is 0° or 180° "
                     "whatever the error."]
    assert captured.out.splitlines()[-2:] == notes  # under the table
    assert [(captured.out + captured.err).count(note) for note in notes] == [1, 1]
    folder = tmp_path / "results"
    folder.mkdir()
    assert main(["dip", source, str(folder), "--scale", "2"]) == 2
    assert capsys.readouterr().err == (
        f"internal-sr: error: output {folder} is a folder: give a file's path, e.g. {folder / 'output.tif'}\n")
    assert main(["kernelgan", source, str(folder / "k.npy"), "--scale", "2", "--iterations", "1"]) == 0
    assert "KernelGAN ×2 on 64×64 pixels, 1 band(s), 1 step, seed 0" in capsys.readouterr().err


def test_an_unknown_kernel_is_refused_offering_the_methods_own_kernels(tmp_path, capsys):
    """Guided DIP's refusal of an unknown kernel offered the fixed kernels alone, leaving out ``sentinel2``, its own
    default (for --kernel, --guide-kernel and evaluate --method guided alike); dip and knitwork left out ``estimate``
    and knitwork ``learned``. Each refusal offers the kernels its method takes."""
    target = write_raster(str(tmp_path / "t.tif"), read(S2_20M)[:2, :64, :64], transform=Affine(20.0, 0, 300000.0, 0, -20.0, 5800000.0))
    guide = write_raster(str(tmp_path / "g.tif"), read(S2_10M)[:, :128, :128], transform=Affine(10.0, 0, 300000.0, 0, -10.0, 5800000.0))
    out = str(tmp_path / "out" / "sr.tif")
    os.mkdir(tmp_path / "out")
    fixed = "bicubic, lanczos2, lanczos3, gaussian:SIGMA, landsat"
    runs = [
        (["guided", target, guide, out, "--kernel", "foo"], f"sentinel2, {fixed} or a .npy file"),
        (["guided", target, guide, out, "--kernel", "bicubic", "--guide-kernel", "foo"], f"sentinel2, {fixed} or a .npy file"),
        (["evaluate", target, "--scale", "2", "--method", "guided", "--guide", guide, "--kernel", "foo"],
         f"sentinel2, {fixed} or a .npy file"),
        (["dip", target, out, "--scale", "2", "--kernel", "foo"], f"{fixed}, a .npy file or estimate"),
        (["knitwork", target, out, "--scale", "2", "--kernel", "foo"], f"{fixed}, a .npy file, learned or estimate"),
        (["evaluate", target, "--scale", "2", "--method", "dip", "--kernel", "foo"], f"{fixed} or a .npy file"),
        (["degrade", target, out, "--scale", "2", "--kernel", "foo"], f"{fixed} or a .npy file"),
    ]
    for argv, kernels in runs:
        assert main([*argv, *FAST[:2 * (argv[0] not in ("degrade",))]]) == 2, argv
        assert capsys.readouterr().err == f"internal-sr: error: unknown kernel 'foo': use {kernels}\n", argv
    assert os.listdir(tmp_path / "out") == []


def test_a_kernel_file_of_python_objects_or_missing_in_upper_case_is_named(tmp_path, capsys):
    """A .npy of dtype object was "not a NumPy array file" (it is one, of objects rather than numbers), and a
    missing K.NPY an "unknown kernel" instead of a file that does not exist."""
    np.save(tmp_path / "objects.npy", np.ones((3, 3)).astype(object), allow_pickle=True)
    for name, message in (("objects.npy", "must hold real numbers, got object"), ("K.NPY", "does not exist")):
        out = tmp_path / f"{name}.tif"
        assert main(["degrade", S2_20M, str(out), "--scale", "2", "--kernel", str(tmp_path / name)]) == 2
        (line,) = capsys.readouterr().err.strip().splitlines()
        assert line == f"internal-sr: error: kernel file {tmp_path / name} {message}" and not out.exists()


def test_an_output_the_input_reads_through_a_vrt_is_refused(tmp_path, capsys):
    """A VRT's source file is the input's data too: writing over it replaced the data the VRT reads."""
    source = tmp_path / "source.tif"
    shutil.copy(S2_20M, source)
    vrt = tmp_path / "view.vrt"
    subprocess.run(["gdal_translate", "-q", "-of", "VRT", str(source), str(vrt)], check=True)
    before = source.read_bytes()
    assert main(["dip", str(vrt), str(source), "--scale", "2", *FAST]) == 2
    assert f"output {source} is a file the input {vrt} reads" in capsys.readouterr().err
    assert source.read_bytes() == before


def test_a_loss_curve_that_would_replace_an_input_is_refused(tmp_path, capsys):
    """``a.tif``'s loss curve is ``a.tif.loss.png``: when that is the input, the run is refused before it starts."""
    source = tmp_path / "a.tif.loss.png"
    subprocess.run(["gdal_translate", "-q", "-of", "PNG", "-b", "1", "-ot", "Byte", "-scale", S2_20M, str(source)], check=True)
    before = source.read_bytes()
    assert main(["dip", str(source), str(tmp_path / "a.tif"), "--scale", "2", *FAST]) == 2
    assert f"the loss curve {source} drawn beside output {tmp_path / 'a.tif'} would replace the input" in capsys.readouterr().err
    assert source.read_bytes() == before and not (tmp_path / "a.tif").exists()


def test_outputs_differing_only_in_their_extension_keep_their_own_loss_curves(tmp_path, capsys):
    """``a.tif`` then ``a.tiff`` (or ``OUT.TIF`` then ``OUT.TIFF``) shared ``a_loss.png``: the second run replaced the
    first run's curve without a word. Each curve is named by its output's whole name."""
    for name in ("a.tif", "a.tiff"):
        assert main(["dip", S2_20M, str(tmp_path / name), "--scale", "2", "--bands", "1", *FAST]) == 0
        assert f"training loss curve: {tmp_path / name}.loss.png" in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == ["a.tif", "a.tif.loss.png", "a.tiff", "a.tiff.loss.png"]
    names = ["OUT.TIF", "OUT.TIFF", "out.tif", "a.tiff.tif", "a.tiff"]
    assert [os.path.basename(loss_curve_path(str(tmp_path / n))) for n in names] == [f"{n}.loss.png" for n in names]


def test_over_long_output_names_and_a_file_as_folder_are_refused_before_the_run(tmp_path, capsys):
    """A name the folder cannot take was refused by the final rename, after the whole optimisation; a file
    given as the output's folder was said not to exist."""
    long = "x" * 251  # x….tif fits in 255 bytes; its loss curve x….tif.loss.png does not
    cases = [
        ("y" * 300 + ".tif", f"output {tmp_path / ('y' * 300 + '.tif')}: the file name is 304 bytes long"),
        (long + ".tif", f"the loss curve {tmp_path / (long + '.tif.loss.png')} drawn beside output {tmp_path / (long + '.tif')}: "
                        f"the file name is 264 bytes long, its folder takes at most {os.pathconf(tmp_path, 'PC_NAME_MAX')}"),
        ("in.tif/out.tif", f"output folder {tmp_path / 'in.tif'} of output {tmp_path / 'in.tif' / 'out.tif'} is a file, not a folder"),
    ]
    shutil.copy(S2_20M, tmp_path / "in.tif")
    for name, message in cases:
        assert main(["dip", S2_20M, str(tmp_path / name), "--scale", "2", *FAST]) == 2
        (line,) = capsys.readouterr().err.strip().splitlines()
        assert message in line, line
    assert sorted(os.listdir(tmp_path)) == ["in.tif"]


def test_a_folder_that_takes_no_new_files_is_named_so(tmp_path, capsys, monkeypatch):
    """/proc answers ENOENT when a file is created in it: the message said "No such file or directory" of a
    folder that is there; it says the folder does not accept new files."""
    import errno
    import tempfile

    def virtual_folder(*arguments, **keywords):
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT))

    monkeypatch.setattr(tempfile, "mkstemp", virtual_folder)
    assert main(["degrade", S2_20M, str(tmp_path / "lr.tif"), "--scale", "2"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"internal-sr: error: cannot write in output folder {tmp_path}: the folder does not accept new files (the system "
        "says: No such file or directory); choose another folder"
    )


def test_refusals_name_a_remedy(tmp_path, capsys, monkeypatch):
    """Refusals that named the problem but not what to do about it: each now says what to do, in the same line, and
    nothing is written."""
    from internal_sr.core import raster

    source = write_raster(str(tmp_path / "in.tif"), read(S2_20M)[:1, :64, :64], transform=Affine(20.0, 0, 300000.0, 0, -20.0, 5800000.0))
    complex_values = str(tmp_path / "slc.tif")
    with rasterio.open(complex_values, "w", driver="GTiff", width=64, height=64, count=1, dtype="complex64",
                       crs="EPSG:32633", transform=Affine(10, 0, 0, 0, -10, 640)) as dst:
        dst.write(np.ones((1, 64, 64), np.complex64))
    empty = write_raster(str(tmp_path / "empty.tif"), np.zeros((1, 64, 64), np.uint16), nodata=0,
                         transform=Affine(20.0, 0, 300000.0, 0, -20.0, 5800000.0))
    holes = read(S2_20M)[:1, :96, :96].copy()
    holes[:, ::40] = 0
    holes[:, :, ::40] = 0  # no 64 × 64 window without nodata
    holed = write_raster(str(tmp_path / "holes.tif"), holes, nodata=0, transform=Affine(20.0, 0, 300000.0, 0, -20.0, 5800000.0))
    out = tmp_path / "out"
    out.mkdir()
    sr = str(out / "sr.tif")
    runs = [
        (["dip", source, str(tmp_path / "nope" / "sr.tif"), "--scale", "2"],
         f"output folder {tmp_path / 'nope'} does not exist: create it, or choose another folder"),
        (["dip", source, sr, "--scale", "2", "--iterations", "0"],
         "iterations must be ≥ 1, got 0: give 1 or more, or leave it out for the method's default"),
        (["dip", source, sr, "--scale", "2", "--kernel", "estimate", "--kernelgan-iterations", "0"],
         "--kernelgan-iterations must be ≥ 1, got 0: give 1 or more, or leave it out for the default, 3000"),
        (["dip", complex_values, sr, "--scale", "2"],
         f"{complex_values}: data type complex64 is not supported (supported: uint8, uint16, int16, uint32, int32, float32, "
         f'float64): take its amplitude first, e.g. gdal_calc.py -A {complex_values} --allBands A --type Float32 --calc '
         '"absolute(A)" --outfile AMPLITUDE.tif (gdal_translate -ot Float32 keeps the real part)'),
        (["kernelgan", holed, str(out / "k.npy"), "--scale", "2", "--iterations", "1"],
         "KernelGAN needs a 64×64 window without nodata and there is none: use a larger raster or an extent with fewer "
         "nodata pixels, or a known kernel (gaussian:SIGMA, a .npy file) instead of estimating one"),
        (["dip", empty, sr, "--scale", "2", *FAST],
         f"{empty} has no valid pixels (everything is nodata): check its nodata value (0); where that value is data, "
         f"remove it with gdal_edit.py -unsetnodata {empty}"),
        (["degrade", empty, sr, "--scale", "2", "--extent", "300000,5798720,300640,5799360"],
         f"{empty} has no valid pixels (everything is nodata): choose an extent that holds data, or check its nodata "
         f"value (0); where that value is data, remove it with gdal_edit.py -unsetnodata {empty}"),
        (["knitwork", source, sr, "--scale", "2", "--batch", "2"],
         "unrecognized arguments: --batch 2; --batch applies to dip and evaluate --method dip only: the other methods "
         "solve one tile at a time"),
    ]
    for argv, message in runs:
        assert main(argv) == 2, argv
        assert capsys.readouterr().err.splitlines()[-1] == f"internal-sr: error: {message}", argv
    monkeypatch.setattr(raster.os, "access", lambda path, mode: False)
    assert main(["dip", source, sr, "--scale", "2"]) == 2
    assert capsys.readouterr().err == (
        f"internal-sr: error: output folder {out} is not writable: choose a folder you may write in, or make it writable\n"
    )
    assert os.listdir(out) == []


def test_outputs_are_geotiff_names_and_extents_may_start_with_a_minus(tmp_path, capsys):
    assert main(["degrade", S2_20M, str(tmp_path / "low.jp2"), "--scale", "2"]) == 2
    assert "must end in .tif or .tiff: it is written as GeoTIFF" in capsys.readouterr().err
    west = str(tmp_path / "west.tif")
    with rasterio.open(S2_20M) as src:
        profile, data = src.profile, src.read()
    profile.update(crs="EPSG:4326", transform=Affine(0.0002, 0, -75.0, 0, -0.0002, 40.0))
    with rasterio.open(west, "w", **profile) as dst:
        dst.write(data)
    out = tmp_path / "west_low.tif"
    assert main(["degrade", west, str(out), "--scale", "2", "--extent", "-74.996,39.992,-74.992,39.996"]) == 0
    with rasterio.open(out) as dst:
        assert (dst.width, dst.height) == (10, 10) and dst.transform.c == pytest.approx(-74.996)


class FlushFails:
    """A dataset being written whose ``close()`` does what GDAL does on a full disk: it returns without
    raising and leaves a truncated file, a failure GDAL only signals (``signal``: through rasterio's logger)."""

    def __init__(self, dataset, path: str, signal: bool) -> None:
        self.dataset, self.path, self.signal = dataset, path, signal

    def __getattr__(self, name: str):
        return getattr(self.dataset, name)

    def close(self) -> None:
        import logging

        self.dataset.close()
        os.truncate(self.path, os.path.getsize(self.path) // 2)
        if self.signal:
            logging.getLogger("rasterio._env").info("GDAL signalled an error: err_no=%r, msg=%r", 1, "_tiffWriteProc:No space left on device")


@pytest.mark.parametrize("signal", [True, False], ids=["gdal-signals-it", "silent"])
def test_a_write_that_fails_on_close_keeps_the_earlier_output(tmp_path, capsys, monkeypatch, signal):
    """A truncated temporary file was renamed over the earlier good output with exit status 0."""
    from internal_sr.core.raster import AtomicGeoTIFF

    out = tmp_path / "low.tif"
    assert main(["degrade", S2_20M, str(out), "--scale", "2"]) == 0
    capsys.readouterr()
    before = out.read_bytes()
    enter = AtomicGeoTIFF.__enter__

    def entered(self):
        enter(self)
        self.dataset = FlushFails(self.dataset, self.tmp, signal)
        return self

    monkeypatch.setattr(AtomicGeoTIFF, "__enter__", entered)
    assert main(["degrade", S2_20M, str(out), "--scale", "2", "--kernel", "lanczos3"]) == 1
    err = capsys.readouterr().err
    line = err.strip().splitlines()[-1]
    assert line.startswith("internal-sr: error: ") and line.endswith(f" while writing {out} (nothing written)"), line
    assert not signal or line == f"internal-sr: error: no space left on device while writing {out} (nothing written)"
    assert "Traceback" not in err and "ERROR 1" not in err
    assert out.read_bytes() == before and os.listdir(tmp_path) == ["low.tif"]


class ClosedPipe(io.StringIO):
    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")


def test_printing_never_fails_a_run_whose_output_is_written(tmp_path, capsys, monkeypatch):
    """A CJK path on a cp1252 stdout, or a closed stdout, made the run exit 1 saying "nothing written" with
    the output already in place."""
    out = tmp_path / "低分辨率.tif"
    for stdout in (io.TextIOWrapper(io.BytesIO(), encoding="cp1252"), ClosedPipe()):
        monkeypatch.setattr(sys, "stdout", stdout)
        assert main(["degrade", S2_20M, str(out), "--scale", "2"]) == 0
        assert out.exists() and "error" not in capsys.readouterr().err
        out.unlink()
    stdout = io.TextIOWrapper(io.BytesIO(), encoding="cp1252")
    monkeypatch.setattr(sys, "stdout", stdout)
    assert main(["degrade", S2_20M, str(out), "--scale", "2"]) == 0
    stdout.flush()
    assert "\\u4f4e" in stdout.buffer.getvalue().decode("cp1252")


@pytest.mark.parametrize("name", ["stdout", "stderr"])
@pytest.mark.parametrize("stream", [None, ClosedPipe], ids=["closed-at-start", "reader-quit"])
def test_output_that_cannot_be_written_is_dropped_and_the_run_goes_on(tmp_path, capsys, monkeypatch, name, stream):
    """``2>&1 | head -2`` (the reader quits), ``2>&-`` and ``>&-`` (Python's stream is ``None``): a progress line to
    such a stderr aborted the run, exit 1 with nothing written; a closed stdout gave a traceback and exit 1 after
    the files were written. What cannot be printed is dropped; the exit status is the run's."""
    monkeypatch.setattr(sys, name, stream and stream())
    out = tmp_path / "low.tif"
    assert main(["degrade", S2_20M, str(out), "--scale", "2"]) == 0
    assert out.exists()
    assert main(["degrade", S2_20M, str(tmp_path / "low.png"), "--scale", "2"]) == 2  # an error line, dropped alike


def test_a_pipe_whose_reader_quit_does_not_stop_a_run_nor_fail_its_exit(tmp_path):
    """As ``internal-sr … 2>&1 | head -0``: stdout and stderr are a pipe nobody reads any more. The run finishes
    with status 0 (what stays buffered in a failed stream would fail Python's flush at exit: status 120)."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    out = tmp_path / "low.tif"
    try:
        process = subprocess.run([sys.executable, "-m", "internal_sr.core.cli", "degrade", S2_20M, str(out), "--scale", "2"],
                                 stdout=write_end, stderr=write_end)
    finally:
        os.close(write_end)
    assert process.returncode == 0 and out.exists()


def test_main_gives_stdout_and_stderr_back_as_they_were(tmp_path, monkeypatch):
    """main escapes what the streams' encoding lacks while it runs, but it left them escaping for good: a script
    or test calling it as a function had its own error handling (strict, surrogateescape) changed."""
    stdout = io.TextIOWrapper(io.BytesIO(), encoding="ascii")
    stderr = io.TextIOWrapper(io.BytesIO(), encoding="ascii", errors="surrogateescape")
    monkeypatch.setattr(sys, "stdout", stdout)
    monkeypatch.setattr(sys, "stderr", stderr)
    missing = str(tmp_path / "café.tif")
    assert main(["degrade", missing, str(tmp_path / "lr.tif"), "--scale", "2"]) == 2
    assert (stdout.errors, stderr.errors) == ("strict", "surrogateescape")
    stderr.flush()
    assert "caf\\xe9.tif" in stderr.buffer.getvalue().decode("ascii")  # escaped while main ran
    source = write_raster(str(tmp_path / "in.tif"), read(S2_20M)[:1, :32, :32])
    assert main(["degrade", source, str(tmp_path / "lr.tif"), "--scale", "2"]) == 0  # and after a run that prints
    assert (stdout.errors, stderr.errors) == ("strict", "surrogateescape")


def test_version_and_threads(tmp_path, capsys, monkeypatch):
    """``internal-sr --version`` was a usage error; ``--threads N`` sets PyTorch's CPU threads for the run (the
    thread count changes a CPU run's output, so it is part of what makes a seed repeatable), gives back the
    caller's count afterwards and refuses a count below 1 in one line."""
    import torch

    import internal_sr
    from internal_sr.core import pipeline
    from internal_sr.core.errors import Cancelled

    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"internal-sr {internal_sr.__version__}\n"
    seen = []

    def record_threads(*arguments, **keywords):
        seen.append(torch.get_num_threads())
        raise Cancelled()

    monkeypatch.setattr(pipeline, "super_resolve", record_threads)
    before = torch.get_num_threads()
    wanted = before + 1
    assert main(["dip", S2_20M, str(tmp_path / "sr.tif"), "--scale", "2", "--threads", str(wanted)]) == 130
    assert seen == [wanted] and torch.get_num_threads() == before
    assert main(["dip", S2_20M, str(tmp_path / "sr.tif"), "--scale", "2", "--threads", "0"]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "internal-sr: error: --threads must be ≥ 1, got 0: give 1 or more, or leave it out for PyTorch's own choice")
    assert build_parser().parse_args(["kernelgan", "in.tif", "k.npy", "--scale", "2", "--threads", "2"]).threads == 2


def test_busy_cpus_are_warned_of_once_the_run_has_passed_its_checks(tmp_path, capsys, monkeypatch):
    """The command line never warned that the CPUs were busy (151 s for 5 DIP steps at load 8 on 2 threads, no
    hint). A run on the CPU now gives the warning after its device line, naming --threads; a refused run prints its
    one error line alone, busy CPUs or not. (The run is cancelled at its first step: the lines are written by then.)"""
    from internal_sr.core.cli import TerminalProgress

    monkeypatch.setattr(os, "getloadavg", lambda: (3.3, 3.3, 3.3))
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    monkeypatch.setattr(TerminalProgress, "cancelled", lambda self: True)
    source = write_raster(str(tmp_path / "in.tif"), read(S2_20M)[:1, :32, :32])
    args = ["dip", source, str(tmp_path / "sr.tif"), "--scale", "2", "--threads", "2", "--device", "cpu"]
    assert main(args) == 130
    lines = capsys.readouterr().err.splitlines()
    device = next(n for n, line in enumerate(lines) if line.startswith("Deep Image Prior on device cpu (2 threads)"))
    assert lines[device + 1] == ("warning: 2 PyTorch threads but no idle core (load 3.3 on 2 cores): threads that share a "
                                 "core with other work wait for each other and can make the run many times slower; if it "
                                 "is slow, set --threads to 1")
    assert sum("PyTorch threads" in line for line in lines) == 1
    assert main([*args, "--bands", "9"]) == 2
    assert capsys.readouterr().err.splitlines() == [f"internal-sr: error: band 9 is out of range: {source} has 1 band(s)"]


def test_degrade_takes_threads(tmp_path, monkeypatch):
    """``degrade`` blurs in PyTorch, so it takes ``--threads`` like the other commands (Processing's degrade has
    ``THREADS``), and gives back the caller's count afterwards."""
    import torch

    from internal_sr.core import pipeline

    source = write_raster(str(tmp_path / "in.tif"), read(S2_20M)[:1, :32, :32])
    seen = []
    blur = pipeline.degrade

    def record_threads(*arguments, **keywords):
        seen.append(torch.get_num_threads())
        return blur(*arguments, **keywords)

    monkeypatch.setattr(pipeline, "degrade", record_threads)
    before = torch.get_num_threads()
    assert main(["degrade", source, str(tmp_path / "lr.tif"), "--scale", "2", "--threads", str(before + 1)]) == 0
    assert seen == [before + 1] and torch.get_num_threads() == before


def test_options_a_command_ignores_are_named(tmp_path, capsys):
    """--kernelgan-iterations without --kernel estimate, and --iterations for method bicubic, change nothing:
    the run says so instead of ignoring them silently."""
    source = write_raster(str(tmp_path / "in.tif"), read(S2_20M)[:1, :64, :64])
    assert main(["degrade", source, str(tmp_path / "lr.tif"), "--scale", "2"]) == 0
    capsys.readouterr()
    lr = str(tmp_path / "lr.tif")
    assert main(["dip", lr, str(tmp_path / "sr.tif"), "--scale", "2", "--iterations", "1", "--kernelgan-iterations", "50"]) == 0
    assert "warning: --kernelgan-iterations is ignored: it applies with --kernel estimate" in capsys.readouterr().err
    assert main(["evaluate", source, "--scale", "2", "--method", "bicubic", "--iterations", "5"]) == 0
    assert "warning: --iterations is ignored: it applies with --method dip, knitwork or guided" in capsys.readouterr().err


OPTIMISING = "dip, knitwork or guided"


@pytest.mark.parametrize("method,option,applies", [
    ("bicubic", ["--seed", "7"], OPTIMISING), ("bicubic", ["--device", "cpu"], OPTIMISING),
    ("bicubic", ["--tile", "64"], OPTIMISING), ("bicubic", ["--overlap", "8"], OPTIMISING),
    ("bicubic", ["--cold-tiles"], OPTIMISING), ("bicubic", ["--batch", "2"], "dip"),
    ("bicubic", ["--guide-kernel", "landsat"], "guided"), ("knitwork", ["--guide-bands", "1,2"], "guided"),
    ("dip", ["--guide-kernel", "landsat"], "guided"), ("dip", ["--seed", "7", "--tile", "64", "--cold-tiles"], None),
])
def test_evaluate_names_every_option_its_method_ignores(tmp_path, capsys, monkeypatch, method, option, applies):
    """evaluate warned of --iterations and --batch only: the guide's options with a method other than guided, and
    the optimisation's with bicubic, were silently ignored, so a mistyped --method went unnoticed. Options the
    method uses are not named. The runs are replaced by a recorder: only what the command says matters."""
    from types import SimpleNamespace

    from internal_sr.core import report

    monkeypatch.setattr(report, "evaluate_to_files", lambda *args, **kwargs: SimpleNamespace(evaluation=None))
    monkeypatch.setattr(report, "text_table", lambda evaluation: "")
    source = write_raster(str(tmp_path / "in.tif"), read(S2_20M)[:1, :64, :64])
    assert main(["evaluate", source, "--scale", "2", "--method", method, *option]) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert warnings == ([f"warning: {option[0]} is ignored: it applies with --method {applies}"] if applies else [])


@pytest.mark.parametrize("value", ["0", "-3"])
def test_kernelgan_iterations_below_1_are_refused_naming_the_option(tmp_path, capsys, value):
    """--kernelgan-iterations 0 beside a valid --iterations was refused as "iterations must be ≥ 1, got 0", which
    named the option the user got right: the refusal names --kernelgan-iterations, and nothing is written."""
    source = write_raster(str(tmp_path / "in.tif"), read(S2_20M)[:1, :64, :64])
    out = tmp_path / "sr.tif"
    argv = ["dip", source, str(out), "--scale", "2", "--kernel", "estimate", "--iterations", "600", "--kernelgan-iterations", value]
    assert main(argv) == 2
    assert capsys.readouterr().err.strip() == (
        f"internal-sr: error: --kernelgan-iterations must be ≥ 1, got {value}: give 1 or more, or leave it out for the default, 3000")
    assert not out.exists()


def test_batch_is_offered_for_dip_only(tmp_path, capsys, monkeypatch):
    """Only DIP solves tiles in batches: ``dip`` and ``evaluate --method dip`` pass ``--batch`` on; knitwork,
    guided and sentinel2 refuse it as an unknown option, and ``evaluate`` with another method says it is ignored
    (it was accepted and silently ignored). The runs are replaced by recorders: only the configuration matters."""
    from types import SimpleNamespace

    from internal_sr.core import pipeline, report

    configs = []

    def super_resolve(input_path, output_path, config, io, progress):
        configs.append(config)
        return SimpleNamespace(output_path=output_path, device="cpu", seconds=0.0)

    def evaluate_to_files(input_path, method, scale, kernel, config, *args, **kwargs):
        configs.append(config)
        return SimpleNamespace(evaluation=None)

    monkeypatch.setattr(pipeline, "super_resolve", super_resolve)
    monkeypatch.setattr(report, "evaluate_to_files", evaluate_to_files)
    monkeypatch.setattr(report, "text_table", lambda evaluation: "")
    source = write_raster(str(tmp_path / "in.tif"), read(S2_20M)[:1, :64, :64])
    out = str(tmp_path / "sr.tif")
    assert main(["dip", source, out, "--scale", "2", "--batch", "3"]) == 0
    assert main(["evaluate", source, "--scale", "2", "--method", "dip", "--batch", "3"]) == 0
    assert [config.tiles.batch for config in configs] == [3, 3]
    capsys.readouterr()
    for argv in (["knitwork", source, out, "--scale", "2"], ["guided", source, source, out], ["sentinel2", source, out]):
        assert main([*argv, "--batch", "3"]) == 2
        assert "unrecognized arguments: --batch 3" in capsys.readouterr().err
    configs.clear()
    assert main(["evaluate", source, "--scale", "2", "--method", "knitwork", "--batch", "3"]) == 0
    assert "warning: --batch is ignored: it applies with --method dip" in capsys.readouterr().err
    assert [config.tiles.batch for config in configs] == [0]


def test_a_zipped_raster_or_product_is_named_as_an_archive_to_unzip(tmp_path, capsys):
    """A zip (a downloaded .SAFE.zip, say) got GDAL's bare 'not a raster' line; the line now says to unzip it.
    A file that is neither stays 'not a raster' with no advice."""
    import zipfile

    archive = tmp_path / "S2A_MSIL1C_product.SAFE.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.write(S2_20M, "S2A_MSIL1C_product.SAFE/band.tif")
    notes = tmp_path / "notes.txt"
    notes.write_text("not a raster\n")
    for path, advice in ((archive, True), (notes, False)):
        assert main(["dip", str(path), str(tmp_path / "out.tif"), "--scale", "2"]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "can read" in err
        assert ("unzip it" in err) == advice
        assert main(["sentinel2", str(path), str(tmp_path / "s2.tif")]) == 2
        assert ("unzip it" in capsys.readouterr().err) == advice
    assert not (tmp_path / "out.tif").exists()
