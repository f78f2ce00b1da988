"""``internal_sr:kernelgan`` through ``processing.run`` in a headless QGIS, alone and in a model before ``dip``.

Few iterations: these test the plumbing (parameters → engine → kernel file, report, model links, errors);
the quality of the estimate is tested in ``test_kernelgan.py``.
"""

from __future__ import annotations

import os
import re

import numpy as np
import pytest
from qgis.core import (
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingModelChildParameterSource,
)
from qgis_helpers import add_child, crop, georeferenced_10m, grid_info, raster_model, user_message

pytestmark = [pytest.mark.qgis, pytest.mark.usefixtures("internal_sr_provider")]

FAST = {"ITERATIONS": 20, "DEVICE": "cpu", "SEED": 1}


def test_kernelgan_writes_kernel_preview_and_report(tmp_path) -> None:
    import processing

    source = crop(str(tmp_path / "in.tif"), 96)
    kernel, report = str(tmp_path / "k.npy"), str(tmp_path / "k.html")
    result = processing.run(
        "internal_sr:kernelgan", {"INPUT": source, "BANDS": [4], "SCALE": 4, **FAST, "OUTPUT": kernel, "OUTPUT_HTML": report}
    )
    assert result == {"OUTPUT": kernel, "OUTPUT_HTML": report, "PREVIEW": str(tmp_path / "k.png")}
    k = np.load(kernel)
    assert k.dtype == np.float32 and k.shape[0] % 2 == 1 and abs(float(k.sum(dtype=np.float64)) - 1) < 1e-6
    assert os.path.exists(str(tmp_path / "k.png"))
    with open(report, encoding="utf-8") as f:
        text = f.read()
    assert "input pixels, major axis at" in text and "kernel: k.npy" in text and "×4" in text
    assert "spectrum: elongation" in text  # the default shape: KernelGAN's size, the spectrum's direction


def test_a_report_that_cannot_be_written_leaves_no_kernel_files(tmp_path, monkeypatch) -> None:
    """The kernel, its record and preview and the report move into place together: a full disk while the
    report is written leaves none of them (the kernel files were in place under "nothing written")."""
    import processing

    from internal_sr.algorithms import kernelgan

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(kernelgan, "summary_html", full_disk)
    source = crop(str(tmp_path / "in.tif"), 64)
    with pytest.raises(QgsProcessingException) as error:
        processing.run("internal_sr:kernelgan", {"INPUT": source, "SCALE": 2, **FAST, "OUTPUT": str(tmp_path / "k.npy"),
                                                 "OUTPUT_HTML": str(tmp_path / "k.html")})
    assert user_message(error.value) == "no space left on device (nothing written)"
    assert [name for name in os.listdir(tmp_path) if not name.startswith("in.tif")] == []


def test_kernelgan_per_band_writes_one_kernel_per_band(tmp_path) -> None:
    import processing

    source = crop(str(tmp_path / "in.tif"), 96)
    kernel, report = str(tmp_path / "k.npy"), str(tmp_path / "k.html")
    result = processing.run(
        "internal_sr:kernelgan",
        {"INPUT": source, "BANDS": [1, 4], "SCALE": 2, "PER_BAND": True, "ORIENTATION": "kernelgan", **FAST,
         "OUTPUT": kernel, "OUTPUT_HTML": report},
    )
    paths = [str(tmp_path / f"k_band{b}.npy") for b in (1, 4)]
    # every band's kernel and preview, in band order (OUTPUT and PREVIEW named the first band's alone)
    previews = ";".join(str(tmp_path / f"k_band{b}.png") for b in (1, 4))
    assert result == {"OUTPUT": ";".join(paths), "OUTPUT_HTML": report, "PREVIEW": previews}
    assert not os.path.exists(kernel)
    with open(report, encoding="utf-8") as f:
        text = f.read()
    for path in paths:
        assert abs(float(np.load(path).sum(dtype=np.float64)) - 1) < 1e-6
        assert path in text and f"{os.path.basename(path)}</figcaption>" in text
    assert text.count("input pixels, major axis at") == 2
    assert "spectrum" not in text and "kernelgan" in text  # KernelGAN's own kernels, as asked


def test_kernelgan_refuses_scale_3_and_small_rasters(tmp_path) -> None:
    import processing

    for parameters, expected in (
        ({"INPUT": crop(str(tmp_path / "a.tif"), 96), "SCALE": 3}, "scale must be 2 or 4"),
        ({"INPUT": crop(str(tmp_path / "b.tif"), 48), "SCALE": 2}, "at least 64×64 pixels"),
    ):
        out = str(tmp_path / "k.npy")
        with pytest.raises(QgsProcessingException) as error:
            processing.run("internal_sr:kernelgan", {**parameters, **FAST, "OUTPUT": out})
        message = user_message(error.value)
        assert "\n" not in message and expected in message
        assert not os.path.exists(out)


def test_a_preview_that_would_replace_another_file_is_refused_before_the_estimation(tmp_path) -> None:
    """A picture ``k.png`` beside the kernel ``k.npy`` to write (none there yet) is no earlier preview: refused in
    one line, the picture kept (the run replaced it)."""
    import processing

    kernel, picture = str(tmp_path / "k.npy"), tmp_path / "k.png"
    picture.write_bytes(b"a photo")
    with pytest.raises(QgsProcessingException) as error:
        processing.run("internal_sr:kernelgan", {"INPUT": crop(str(tmp_path / "in.tif"), 96), **FAST, "OUTPUT": kernel})
    message = user_message(error.value)
    assert "\n" not in message and message.startswith(f"the preview {picture} of kernel file {kernel} would replace an existing file")
    assert picture.read_bytes() == b"a photo" and not os.path.exists(kernel)


def test_report_in_a_missing_folder_is_refused_before_the_estimation(tmp_path) -> None:
    import processing

    kernel, report = str(tmp_path / "k.npy"), str(tmp_path / "missing" / "k.html")
    with pytest.raises(QgsProcessingException) as error:
        processing.run("internal_sr:kernelgan", {"INPUT": crop(str(tmp_path / "in.tif"), 96), **FAST, "OUTPUT": kernel,
                                                 "OUTPUT_HTML": report})
    assert user_message(error.value) == f"output folder {tmp_path / 'missing'} does not exist: create it, or choose another folder"
    assert not os.path.exists(kernel)


def test_the_report_is_one_file_with_each_kernel_labelled(tmp_path) -> None:
    """The report embeds each kernel's picture (it linked the PNG by a file URI, broken once the report is
    moved or sent), labels it with its band, and declares its encoding (it holds ×, σ, °)."""
    import base64

    import processing

    folder = tmp_path / "my kernels #1"
    folder.mkdir()
    kernel, report = str(folder / "k.npy"), str(folder / "k.html")
    processing.run("internal_sr:kernelgan", {"INPUT": crop(str(tmp_path / "in.tif"), 64), "BANDS": [2, 5], "PER_BAND": True,
                                             "SCALE": 2, **FAST, "OUTPUT": kernel, "OUTPUT_HTML": report})
    text = open(report, encoding="utf-8").read()
    assert "<meta charset='utf-8'>" in text and "file:" not in text
    images = re.findall(r'<img src="data:image/png;base64,([^"]*)"', text)
    captions = re.findall(r"<figcaption>([^<]*)</figcaption>", text)
    assert captions == ["band 2: k_band2.npy", "band 5: k_band5.npy"]
    for data, band in zip(images, (2, 5)):  # the picture is the preview saved beside the kernel
        assert base64.b64decode(data) == open(folder / f"k_band{band}.png", "rb").read()
    os.rename(folder, tmp_path / "sent")
    assert open(tmp_path / "sent" / "k.html", encoding="utf-8").read() == text


def test_model_estimate_kernel_then_dip_with_it(tmp_path) -> None:
    import processing

    source = georeferenced_10m(str(tmp_path / "s2_10m.tif"))
    model = raster_model("kernel_then_dip")
    raster = QgsProcessingModelChildParameterSource.fromModelParameter("raster")
    add_child(model, "kernelgan", {"INPUT": raster}, {"BANDS": [1], "SCALE": 2, **FAST})
    kernel = QgsProcessingModelChildParameterSource.fromChildOutput("kernelgan", "OUTPUT")
    dip_values = {"BANDS": [1], "SCALE": 2, "ITERATIONS": 2, "DEVICE": "cpu", "TILE_SIZE": 64, "OVERLAP": 8}
    add_child(model, "dip", {"INPUT": raster, "KERNEL_FILE": kernel}, dip_values, ("sharp", "Super-resolved"))

    out = str(tmp_path / "sharp.tif")
    feedback = QgsProcessingFeedback()
    result = processing.run(model, {"raster": source, "dip:sharp": out}, feedback=feedback)
    assert result["dip:sharp"] == out
    src, dst = grid_info(source), grid_info(out)
    assert (dst.width, dst.height) == (2 * src.width, 2 * src.height) and dst.crs == src.crs
    assert dst.means[0] == pytest.approx(src.means[0], rel=0.03)
    # DIP ran with the kernel file KernelGAN wrote, not with its default bicubic kernel
    used = re.search(r"kernel (\S+\.npy), up to", feedback.textLog())
    assert used and os.path.exists(used.group(1))


def test_a_model_passing_per_band_kernels_to_dip_is_refused_not_run_with_the_first_bands(tmp_path) -> None:
    """KernelGAN's OUTPUT with one kernel per band was the first band's file alone: a model estimate kernel → dip blurred
    every band with band 1's kernel, without a word. OUTPUT lists every band's file now, and dip, which blurs all its bands
    with one kernel, refuses the list in one line saying what to do."""
    import processing

    source = georeferenced_10m(str(tmp_path / "s2_10m.tif"))
    model = raster_model("per_band_kernels_then_dip")
    raster = QgsProcessingModelChildParameterSource.fromModelParameter("raster")
    add_child(model, "kernelgan", {"INPUT": raster}, {"BANDS": [1, 2], "SCALE": 2, "PER_BAND": True, **FAST,
                                                      "OUTPUT": str(tmp_path / "k.npy")})
    kernel = QgsProcessingModelChildParameterSource.fromChildOutput("kernelgan", "OUTPUT")
    dip_values = {"BANDS": [1, 2], "SCALE": 2, "ITERATIONS": 2, "DEVICE": "cpu", "TILE_SIZE": 64, "OVERLAP": 8}
    add_child(model, "dip", {"INPUT": raster, "KERNEL_FILE": kernel}, dip_values, ("sharp", "Super-resolved"))
    model.childAlgorithm("dip").setDescription("Super-resolve step")

    out = str(tmp_path / "sharp.tif")
    feedback = QgsProcessingFeedback()
    with pytest.raises(QgsProcessingException, match="^Error encountered while running Super-resolve step$"):
        processing.run(model, {"raster": source, "dip:sharp": out}, feedback=feedback)
    files = [str(tmp_path / f"k_band{band}.npy") for band in (1, 2)]
    assert all(os.path.isfile(file) for file in files) and not os.path.exists(out)
    assert (f"Kernel file (KERNEL_FILE) lists 2 files ({', '.join(files)}), as KernelGAN's output with one kernel per band "
            "does: a run blurs all its bands with one kernel; give one band's file and run that band alone (BANDS), or "
            "estimate one kernel shared by the bands (PER_BAND off)") in feedback.textLog().splitlines()


def test_dip_with_one_bands_kernel_file_on_every_band_warns_in_the_log(tmp_path) -> None:
    """A per-band kernel (``k_band2.npy``: its record lists band 2) given as KERNEL_FILE to a 2-band run blurs both bands
    with it, as on the command line, and the log says so in the engine's one warning line."""
    import processing

    from internal_sr.core.kernels import anisotropic_gaussian, kernel_origin, save_kernel_file

    source = crop(str(tmp_path / "in.tif"), 48)
    kernel = str(tmp_path / "k_band2.npy")
    save_kernel_file(kernel, anisotropic_gaussian(0.7, 0.5, 20.0, 2), 2, origin=kernel_origin("estimated", source, [2], None, 48, 48))
    feedback = QgsProcessingFeedback()
    processing.run("internal_sr:dip", {"INPUT": source, "BANDS": [1, 2], "SCALE": 2, "ITERATIONS": 2, "DEVICE": "cpu",
                                       "KERNEL_FILE": kernel, "OUTPUT": str(tmp_path / "sr.tif")}, feedback=feedback)
    warnings = [line for line in feedback.textLog().splitlines() if line.startswith("warning: kernel file")]
    assert warnings == [f"warning: kernel file {kernel} was made on band 2 of {source} (its record k_band2.npy.json says "
                        f"so), and this run blurs bands 1, 2 of {source} with it, as a run blurs all its bands with its "
                        "one kernel: for a kernel per band, estimate one per band with KernelGAN and run each band alone "
                        "with its own file"]
