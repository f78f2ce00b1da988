"""File-level runs: grid, CRS, nodata, dtype, band metadata, atomic writes and clear errors."""

import os
import re
import warnings

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.errors import NotGeoreferencedWarning

from internal_sr.core import pipeline
from internal_sr.core.cli import main as cli
from internal_sr.core.config import DIPConfig, IOOptions, TileOptions
from internal_sr.core.errors import Cancelled, InputError, OutputWriteError
from internal_sr.core.grid import Window
from internal_sr.core.progress import NullProgress
from internal_sr.core.raster import loss_curve_path

from bad_inputs import ROTATED_POLE, ROTATED_POLE_GRID, assert_rpcs_moved, rpc_model
from helpers import S2_10M, S2_20M, read, write_raster

#: a tiny, fast configuration for I/O tests (quality is tested in test_dip.py)
FAST = dict(iterations=2, depth=3, channels=8, noise_channels=4)


def run_dip(src, dst, scale=2, io=IOOptions(), progress=None, **overrides):
    return pipeline.super_resolve(str(src), str(dst), DIPConfig(scale=scale, **{**FAST, **overrides}), io, progress)


def test_output_grid_is_the_input_grid_refined(tmp_path):
    out = tmp_path / "sr.tif"
    result = run_dip(S2_20M, out, scale=3, io=IOOptions(bands=(2, 5)))
    with rasterio.open(S2_20M) as src, rasterio.open(out) as dst:
        assert dst.crs == src.crs
        assert (dst.width, dst.height) == (3 * src.width, 3 * src.height)
        assert dst.transform == src.transform * Affine.scale(1 / 3)
        assert (dst.transform.c, dst.transform.f) == (src.transform.c, src.transform.f)
        assert dst.transform.a == pytest.approx(20 / 3)
        assert dst.dtypes == ("uint16", "uint16")
        assert dst.descriptions == ("B06", "B11")
        assert dst.profile["tiled"] and dst.profile["compress"] == "deflate"
    assert result.device.split()[0] in ("cpu", "cuda", "mps")


def test_a_run_draws_its_loss_curves_beside_the_output(tmp_path):
    from PIL import Image

    out = tmp_path / "sr.tif"
    result = run_dip(S2_20M, out, tiles=TileOptions(48, 8))  # 96 × 96 input: 3 × 3 tiles sharing ≥ 8 pixels
    assert len(result.curves) == 9 and all(len(c) == 2 for c in result.curves) and result.steps == 18
    curve = tmp_path / "sr.tif.loss.png"
    assert f"training loss curve: {curve}" in result.messages
    with Image.open(curve) as image:
        assert image.format == "PNG" and image.size == (720, 400)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sr.tif", "sr.tif.loss.png"]


def test_a_loss_curve_that_cannot_be_written_is_a_warning_and_the_output_stands(tmp_path, monkeypatch):
    """The output stands without its curve; an earlier run's curve of that name is removed as it moves into place
    (it stayed, beside a raster it was not drawn for)."""
    from internal_sr.core import figures

    out, curve = tmp_path / "sr.tif", tmp_path / "sr.tif.loss.png"
    one_band = dict(io=IOOptions(bands=(1,)), tiles=TileOptions(96, 8))
    run_dip(S2_20M, out, **one_band)
    earlier = out.read_bytes()

    def full_disk(path, rgb, files=None):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(figures, "write_png", full_disk)
    result = run_dip(S2_20M, out, kernel="lanczos3", **one_band)
    assert out.read_bytes() != earlier and not curve.exists()
    warning = f"warning: the training loss curve could not be written: [Errno 28] No space left on device; the earlier {curve} is removed"
    assert warning in result.messages
    result = run_dip(S2_20M, out, **one_band)
    assert not curve.exists() and "warning: the training loss curve could not be written: [Errno 28] No space left on device" in result.messages


def test_python_callers_get_one_line_errors_and_may_pass_path_objects(tmp_path):
    """API callers met raw errors: a 2-D array "not enough values to unpack", ``IOOptions(bands=1)`` "'int' object
    is not iterable", ``degrade(…, 2.5)`` a TypeError, a ``pathlib.Path`` "'PosixPath' object has no attribute
    'lower'"; a complex array lost its imaginary part with a warning only, and a ``valid`` mask of another shape
    was broadcast."""
    from pathlib import Path

    config = DIPConfig(scale=2, **FAST)
    image = read(S2_20M)[:1, :32, :32].astype(np.float32)
    refusals = [
        (lambda: pipeline.super_resolve_array(image[0], config), "image must be a (bands, rows, cols) array, got one of shape (32, 32)"),
        (lambda: pipeline.super_resolve_array(image + 1j, config), "image must hold real numbers (integers or floats), got complex64"),
        (lambda: pipeline.super_resolve_array(image, config, valid=image[0] > 0), "valid must have the image's shape (1, 32, 32) (bands, rows, cols), got (32, 32)"),
        (lambda: IOOptions(bands=1), "bands must be a tuple or list of 1-based band numbers (integers), got 1"),
        (lambda: IOOptions(bands=(1.5,)), "bands must be a tuple or list of 1-based band numbers (integers), got (1.5,)"),
        (lambda: IOOptions(extent=5), "extent must be four finite numbers XMIN,YMIN,XMAX,YMAX, got 5"),
        (lambda: pipeline.degrade(S2_20M, str(tmp_path / "lr.tif"), 2.5), "scale must be an integer ≥ 2, got 2.5"),
    ]
    for call, message in refusals:
        with pytest.raises(InputError, match=re.escape(message)):
            call()
    assert IOOptions(bands=[2, 1]).bands == (2, 1)
    pipeline.degrade(Path(S2_20M), tmp_path / "lr.tif", 2, io=IOOptions(bands=[1]))
    result = pipeline.super_resolve(tmp_path / "lr.tif", tmp_path / "sr.tif", config)
    assert result.output_path == str(tmp_path / "sr.tif") and (tmp_path / "sr.tif.loss.png").exists()


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "int16", "float32"])
def test_dtype_is_kept_and_values_clipped_to_its_range(tmp_path, dtype):
    base = read(S2_10M)[:2, :32, :32].astype(np.float64)
    if dtype == "uint8":
        data = np.clip(base / 16, 0, 255)
    elif dtype == "int16":
        data = base - 1500
    else:
        data = base
    src = write_raster(str(tmp_path / "in.tif"), data.astype(dtype))
    run_dip(src, tmp_path / "sr.tif")
    out = read(str(tmp_path / "sr.tif"))
    assert out.dtype == np.dtype(dtype)
    # the output stays within the input's range, widened by the overshoot of sharpening
    span = data.max() - data.min()
    assert data.min() - span < out.min() and out.max() < data.max() + span
    run_dip(src, tmp_path / "sr32.tif", io=IOOptions(float32=True))
    assert read(str(tmp_path / "sr32.tif")).dtype == np.float32


def test_nodata_is_excluded_and_written_back(tmp_path):
    data = read(S2_10M)[:2, :48, :48].copy()
    data[:, :10, :12] = 0
    data[1, 30, 30] = 0
    src = write_raster(str(tmp_path / "in.tif"), data, nodata=0)
    run_dip(src, tmp_path / "sr.tif")
    with rasterio.open(tmp_path / "sr.tif") as dst:
        out = dst.read()
        assert dst.nodata == 0
    assert (out[:, :20, :24] == 0).all()
    assert out[1, 60:62, 60:62].tolist() == [[0, 0], [0, 0]]
    assert out[0, 60:62, 60:62].min() > 0  # band 1 is valid there
    valid = np.ones(out.shape, bool)
    valid[:, :20, :24] = False
    valid[1, 60:62, 60:62] = False
    assert (out[valid] > 0).all()


def test_nan_in_float_input_becomes_nodata(tmp_path):
    data = read(S2_10M)[:1, :32, :32].astype(np.float32)
    data[0, 5, 5] = np.nan
    data[0, 6, 6] = np.inf
    src = write_raster(str(tmp_path / "in.tif"), data)
    run_dip(src, tmp_path / "sr.tif")
    out = read(str(tmp_path / "sr.tif"))
    assert np.isnan(out[0, 10:12, 10:12]).all() and np.isnan(out[0, 12:14, 12:14]).all()
    assert np.isfinite(np.delete(out.ravel(), np.flatnonzero(np.isnan(out.ravel())))).all()
    assert np.isnan(out).sum() == 8


def float_reflectance(tmp_path, value: float, name: str = "in.tif") -> str:
    """The 20 m crop's band 1 as float32 reflectance (no nodata value declared) with ``value`` at pixel (3, 3)."""
    data = read(S2_20M)[:1].astype(np.float32) / 10000
    data[0, 3, 3] = value
    return write_raster(str(tmp_path / name), data)


@pytest.mark.parametrize("fill, shown", [(np.finfo(np.float32).min, "-3.4028235e+38"), (-1e30, "-1e+30"),
                                         (np.finfo(np.float32).max, "3.4028235e+38")])
def test_an_undeclared_float_fill_value_is_nodata_with_a_warning_naming_band_and_count(tmp_path, fill, shown):
    """ArcGIS's −3.4028235e38 (and the other float fills) written without a nodata value: that pixel is nodata
    (its 2 × 2 output block), the others are super-resolved as without it, and the log says so once per band."""
    src = float_reflectance(tmp_path, fill)
    clean = float_reflectance(tmp_path, np.nan, "clean.tif")
    result = run_dip(src, tmp_path / "sr.tif", tiles=TileOptions(48, 8))
    run_dip(clean, tmp_path / "clean_sr.tif", tiles=TileOptions(48, 8))
    out, expected = read(str(tmp_path / "sr.tif")), read(str(tmp_path / "clean_sr.tif"))
    np.testing.assert_array_equal(np.isnan(out), np.isnan(expected))
    assert np.isnan(out[0, 6:8, 6:8]).all() and np.isnan(out).sum() == 4
    np.testing.assert_allclose(out[np.isfinite(out)], expected[np.isfinite(expected)], rtol=1e-5)
    warnings_ = [m for m in result.messages if m.startswith("warning: band 1 of ")]
    assert warnings_ == [
        f"warning: band 1 of {src}: 1 pixel(s) hold the fill value {shown}, but the raster declares no "
        f"nodata value: they are read as nodata; declare it to say so (gdal_translate -a_nodata {shown})"
    ]


def test_a_non_finite_training_loss_stops_the_run_naming_the_tile_and_writes_nothing(tmp_path):
    """One pixel of 1e25 (below the fill values, far beyond a float32 loss's reach) makes the first tile's loss
    infinite: the run stops there with a one-line error instead of warm-starting every later tile from a network
    that diverged (which wrote NaN over nearly the whole output)."""
    src = float_reflectance(tmp_path, 1e25)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(InputError) as error:
        run_dip(src, out / "sr.tif", tiles=TileOptions(48, 8))
    assert str(error.value).startswith(
        "tile 1 of 9 (columns 0–47, rows 0–47 of the tiled area): DIP: the training loss became infinite or NaN by step 2; "
        "the input likely holds extreme values"
    )
    assert "\n" not in str(error.value) and os.listdir(out) == []


def test_a_tile_that_diverged_in_a_batch_with_a_tile_of_no_valid_pixel_is_the_one_named(tmp_path):
    """Tiles solved together where one has no valid pixel are solved one by one: the third tile (1e25 at column 60),
    after the second (no valid pixel), was named as the second, the first of the windows solved together."""
    data = read(S2_20M)[:1, :32].astype(np.float32) / 10000
    data[0, :, 21:53] = np.nan  # all of tile 2 (columns 21–52); tile 1 is solved alone, first, to warm-start the others
    data[0, 3, 60] = 1e25  # in tile 3 (columns 43–74) only
    with pytest.raises(InputError) as error:
        run_dip(write_raster(str(tmp_path / "in.tif"), data), tmp_path / "sr.tif", tiles=TileOptions(32, 8, batch=4))
    assert str(error.value).startswith("tile 3 of 4 (columns 43–74, rows 0–31 of the tiled area): DIP: the training loss")


def test_a_nodata_value_the_data_type_cannot_hold_is_named_in_the_log(tmp_path, capsys):
    """A UInt16 raster declaring nodata −9999 lost it without a word (rasterio reports none). No pixel can hold it,
    so none is masked: the log says so, and the output declares no nodata value (NaN as any Float32 output)."""
    import rasterio.shutil

    tif = write_raster(str(tmp_path / "in.tif"), read(S2_20M)[:1, :32, :32])
    vrt = str(tmp_path / "in.vrt")
    rasterio.shutil.copy(tif, vrt, driver="VRT")
    with open(vrt) as f:
        text = f.read()
    with open(vrt, "w") as f:
        f.write(text.replace("<ColorInterp>", "<NoDataValue>-9999</NoDataValue><ColorInterp>", 1))
    with rasterio.open(vrt) as src:
        assert src.nodata is None  # as GDAL declares it, but rasterio drops it
    warning = (f"warning: {vrt} declares nodata -9999, which its data type uint16 cannot hold (0 to 65535): no pixel holds "
               "it, so none is masked, and no raster written carries it; to mask pixels, declare a value in range "
               f"(gdal_edit.py -a_nodata VALUE {vrt})")
    for options, nodata in (([], None), (["--float32"], "nan")):
        out = str(tmp_path / f"low{len(options)}.tif")
        assert cli(["degrade", vrt, out, "--scale", "2", *options]) == 0
        assert capsys.readouterr().err.count(warning + "\n") == 1
        with rasterio.open(out) as dst:
            assert str(dst.nodata) == str(nodata) and (dst.read_masks() == 255).all()
    assert cli(["degrade", tif, str(tmp_path / "plain.tif"), "--scale", "2"]) == 0
    assert "declares nodata" not in capsys.readouterr().err


def test_no_georeferencing_still_works_with_a_warning(tmp_path):
    result = run_dip(S2_10M, tmp_path / "sr.tif", io=IOOptions(bands=(1,)))
    assert any("has no georeferencing" in m for m in result.messages)
    with rasterio.open(tmp_path / "sr.tif") as dst:
        assert dst.crs is None and dst.width == 256 and dst.transform.is_identity


def test_tiled_run_matches_grid_and_has_no_seam_artifacts(tmp_path):
    run_dip(S2_20M, tmp_path / "sr.tif", io=IOOptions(bands=(1,)), tiles=TileOptions(48, 8))
    out = read(str(tmp_path / "sr.tif")).astype(float)[0]
    assert out.shape == (192, 192)
    # no step at the tile borders: jumps across the seam are like jumps elsewhere
    grad = np.abs(np.diff(out, axis=1))
    assert grad[:, 95:97].mean() < 3 * grad.mean()


def test_cancelled_run_writes_nothing(tmp_path):
    class CancelSoon(NullProgress):
        calls = 0

        def cancelled(self):
            self.calls += 1
            return self.calls > 3

    out = tmp_path / "sr.tif"
    with pytest.raises(Cancelled):
        run_dip(S2_20M, out, progress=CancelSoon(), iterations=50)
    assert os.listdir(tmp_path) == []


def test_a_cancelled_degrade_writes_nothing(tmp_path, monkeypatch):
    """Cancelled between strips (here: strips of 16 rows, cancelled before the second), nothing is left."""
    class CancelAfterOneStrip(NullProgress):
        strips = 0

        def cancelled(self):
            self.strips += 1
            return self.strips > 1

    monkeypatch.setattr(pipeline, "DEGRADE_STRIP_VALUES", 16 * 96 * 6)
    with pytest.raises(Cancelled):
        pipeline.degrade(S2_20M, str(tmp_path / "lr.tif"), 2, "bicubic", progress=CancelAfterOneStrip())
    assert os.listdir(tmp_path) == []


def test_degrade_writes_the_coarsened_grid(tmp_path):
    out = tmp_path / "lr.tif"
    pipeline.degrade(S2_20M, str(out), 2, "gaussian:0.5")
    with rasterio.open(S2_20M) as src, rasterio.open(out) as dst:
        assert (dst.width, dst.height) == (48, 48)
        assert dst.transform == src.transform * Affine.scale(2)
        assert dst.crs == src.crs and dst.descriptions == src.descriptions and dst.dtypes == src.dtypes
        # block means of a smooth image are close to the blurred values
        hr = src.read().astype(float)
        lr = dst.read().astype(float)
    block = hr.reshape(6, 48, 2, 48, 2).mean(axis=(2, 4))
    assert np.abs(lr - block).mean() < 0.05 * hr.mean()


def test_metadata_items_named_like_rasterios_tag_parameters_are_copied(tmp_path):
    """Items named ``bidx`` and ``ns`` (the parameters of rasterio's ``update_tags``), of the dataset and of a band,
    are copied like any other: written by GDAL itself into a VRT of a small raster."""
    base = write_raster(str(tmp_path / "base.tif"), np.arange(2 * 32 * 32, dtype=np.uint16).reshape(2, 32, 32))
    with rasterio.open(base) as src:
        geo = ", ".join(repr(v) for v in src.transform.to_gdal())
    bands = "".join(
        f'<VRTRasterBand dataType="UInt16" band="{b}"><Metadata><MDI key="bidx">{b + 10}</MDI><MDI key="ns">band {b}</MDI>'
        f'<MDI key="other">o{b}</MDI></Metadata><SimpleSource><SourceFilename relativeToVRT="1">base.tif</SourceFilename>'
        f"<SourceBand>{b}</SourceBand></SimpleSource></VRTRasterBand>"
        for b in (1, 2)
    )
    vrt = tmp_path / "tagged.vrt"
    vrt.write_text(
        f'<VRTDataset rasterXSize="32" rasterYSize="32"><GeoTransform>{geo}</GeoTransform>'
        '<Metadata><MDI key="bidx">7</MDI><MDI key="ns">dataset</MDI></Metadata>' + bands + "</VRTDataset>"
    )
    out = tmp_path / "lr.tif"
    pipeline.degrade(str(vrt), str(out), 2, "bicubic")
    with rasterio.open(out) as dst:
        assert dst.tags()["bidx"] == "7" and dst.tags()["ns"] == "dataset"
        for b in (1, 2):
            assert dst.tags(b) == {"bidx": str(b + 10), "ns": f"band {b}", "other": f"o{b}"}


@pytest.mark.parametrize("how", ["int8", "byte_signedbyte"])
def test_signed_bytes_are_refused_with_a_conversion_that_reads_them_right(tmp_path, how):
    """Int8 (GDAL 3.7 and later) and a Byte band marked ``PIXELTYPE=SIGNEDBYTE`` (how GDAL before 3.7 reads a signed-byte
    file; a VRT declares it here) are refused in one line with a conversion right with any GDAL version: the Byte band
    was super-resolved as unsigned bytes, and Int8 was refused with no way forward."""
    path = write_raster(str(tmp_path / "i8.tif"), (np.arange(32 * 32).reshape(1, 32, 32) % 200 - 100).astype(np.int8))
    if how == "byte_signedbyte":
        path = str(tmp_path / "signed.vrt")
        (tmp_path / "signed.vrt").write_text(
            '<VRTDataset rasterXSize="32" rasterYSize="32"><VRTRasterBand dataType="Byte" band="1"><Metadata '
            'domain="IMAGE_STRUCTURE"><MDI key="PIXELTYPE">SIGNEDBYTE</MDI></Metadata><SimpleSource><SourceFilename '
            'relativeToVRT="1">i8.tif</SourceFilename><SourceBand>1</SourceBand></SimpleSource></VRTRasterBand></VRTDataset>'
        )
    with pytest.raises(InputError) as error:
        pipeline.degrade(path, str(tmp_path / "lr.tif"), 2)
    message = str(error.value)
    assert "\n" not in message and message.startswith(f"{path}: data type int8 (signed bytes) is not supported")
    assert f'gdal_calc.py -A {path} --allBands A --type Int16 --calc "A.astype(int16) - 256 * (A > 127)"' in message
    assert not (tmp_path / "lr.tif").exists()


@pytest.mark.parametrize(
    "make_input,kwargs,message",
    [
        (lambda p: p.write_text("not a raster") and str(p), {}, "not a raster"),
        (lambda p: S2_20M, {"io": IOOptions(bands=(7,))}, "band 7 is out of range"),
        (lambda p: S2_20M, {"depth": 5, "scale": 2, "io": IOOptions(bands=(1,)), "_crop": 20}, "too small for Deep Image Prior"),
    ],
)
def test_bad_inputs_are_clear_one_line_errors(tmp_path, make_input, kwargs, message):
    src = make_input(tmp_path / "bad.tif")
    crop = kwargs.pop("_crop", None)
    if crop:
        src = write_raster(str(tmp_path / "small.tif"), read(S2_20M)[:1, :crop, :crop])
    out = tmp_path / "out.tif"
    with pytest.raises(InputError, match=message) as info:
        run_dip(src, out, **kwargs)
    assert "\n" not in str(info.value)
    assert not out.exists()


def test_output_equal_to_input_is_refused(tmp_path):
    src = write_raster(str(tmp_path / "in.tif"), read(S2_20M)[:1, :32, :32])
    before = open(src, "rb").read()
    with pytest.raises(InputError, match="is the input"):
        run_dip(src, src)
    assert open(src, "rb").read() == before


def test_scale_below_two_is_refused():
    with pytest.raises(InputError, match="scale"):
        DIPConfig(scale=1)


def test_degrade_marks_pixels_whose_kernel_touches_nodata(tmp_path):
    data = read(S2_20M)[:1, :48, :48].copy()
    data[0, 20, 20] = 0
    src = write_raster(str(tmp_path / "in.tif"), data, nodata=0)
    pipeline.degrade(src, str(tmp_path / "lr.tif"), 2, "bicubic")
    low = read(str(tmp_path / "lr.tif"))[0]
    # bicubic ×2 reads 8 HR pixels per axis: HR row 20 reaches LR rows 8..11 (block centres 2i+0.5 within 3.5)
    assert (low[8:12, 8:12] == 0).all()
    assert (low[:7] > 0).all() and (low[13:] > 0).all()


def test_outputs_are_ordinary_files_and_replace_stale_sidecars(tmp_path):
    out = tmp_path / "lr.tif"
    (tmp_path / "lr.tif.aux.xml").write_text("<PAMDataset/>")
    old = os.umask(0o022)
    try:
        pipeline.degrade(S2_20M, str(out), 2)
    finally:
        os.umask(old)
    assert oct(out.stat().st_mode & 0o777) == "0o644"
    assert sorted(os.listdir(tmp_path)) == ["lr.tif"]


def rpc_scene(path, **sidecars) -> str:
    """A 32 × 32 crop of the 20 m raster georeferenced by an RPC model only (``bad_inputs.rpc_model``), written
    by GDAL with the sidecars its creation options ask for (``RPB``, ``RPCTXT``: the model beside the file)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(
            path, "w", driver="GTiff", width=32, height=32, count=6, dtype="uint16", **sidecars
        ) as dataset:
            dataset.write(read(S2_20M)[:, :32, :32])
            dataset.rpcs = rpc_model(32)
    return str(path)


def test_an_earlier_files_rpc_model_world_file_and_metadata_beside_the_output_are_removed(tmp_path):
    # an earlier lr.tif, georeferenced with its RPC model (and world file) written beside it as GDAL does
    # on request; its .RPB and _rpc.txt overrode the new output's own RPC model, its .tfw gave the new
    # output (which has no geotransform) the old grid, its .IMD the old acquisition's metadata
    out = tmp_path / "lr.tif"
    with rasterio.open(S2_20M) as src:
        profile = dict(src.profile, RPB="YES", RPCTXT="YES", TFW="YES")
        with rasterio.open(out, "w", **profile) as earlier:
            earlier.write(src.read())
            earlier.rpcs = rpc_model(96)
    (tmp_path / "lr.IMD").write_text('BEGIN_GROUP = IMAGE_1\n\tsatId = "WV02";\nEND_GROUP = IMAGE_1\nEND;\n')
    assert sorted(os.listdir(tmp_path)) == ["lr.IMD", "lr.RPB", "lr.tfw", "lr.tif", "lr_RPC.TXT"]
    source = rpc_scene(tmp_path / "scene.tif")
    pipeline.degrade(source, str(out), 2)
    assert sorted(os.listdir(tmp_path)) == ["lr.tif", "scene.tif"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(out) as dst:
            assert dst.files == [str(out)] and dst.transform == Affine.identity() and not dst.tags(ns="IMD")
    assert_rpcs_moved(source, str(out), Affine.scale(2))


@pytest.mark.parametrize("sidecar", ["RPB", "RPCTXT"])
def test_an_output_that_would_read_the_inputs_rpc_file_is_refused(tmp_path, sidecar):
    # scene.tiff reads scene.RPB or scene_rpc.txt as scene.tif does: that model is the input's, on the
    # input's pixels, and removing it would break the input
    source = rpc_scene(tmp_path / "scene.tif", **{sidecar: "YES"})
    before = sorted(os.listdir(tmp_path))
    out = tmp_path / "scene.tiff"
    with pytest.raises(InputError, match=f"belongs to the input {re.escape(source)}: choose another output name"):
        pipeline.degrade(source, str(out), 2)
    assert sorted(os.listdir(tmp_path)) == before


#: Files of another dataset named like the output ``ortho.tif``, the first a sidecar GDAL would read with the output
#: (``core.raster.geotiff_sidecars``), the second the first of the others: a raster georeferenced by a world file, a
#: MapInfo table, a WorldView image with its RPC model, and a GeoTIFF whose name differs in case only (GDAL reads
#: its overviews with ``ortho.tif`` too: it matches sidecar names in any case).
OTHER_DATASETS = {
    "world_file": ("ortho.wld", "ortho.png"),
    "mapinfo_table": ("ortho.tab", "ortho.dat", "ortho.id", "ortho.map"),
    "worldview_rpc_model": ("ORTHO.RPB", "Ortho.NTF"),
    "name_in_another_case": ("ORTHO.TIF.ovr", "ORTHO.TIF"),
}


@pytest.mark.parametrize("files", OTHER_DATASETS.values(), ids=OTHER_DATASETS)
def test_an_output_whose_sidecar_another_dataset_may_own_is_refused(tmp_path, files):
    """Writing ortho.tif removed every sidecar GDAL reads with it, another dataset's too: ortho.png lost its world
    file, a MapInfo table its .tab (its .dat, .map and .id orphaned). The run is refused before it starts."""
    for name in files:
        (tmp_path / name).write_text(f"{name} of another dataset")
    before = {name: (tmp_path / name).read_text() for name in os.listdir(tmp_path)}
    sidecar, other = (re.escape(str(tmp_path / name)) for name in files[:2])
    message = f"GDAL would read {sidecar} beside it as its own, and that file may belong to {other}, .*choose another output name"
    with pytest.raises(InputError, match=message) as error:
        pipeline.degrade(S2_20M, str(tmp_path / "ortho.tif"), 2)
    assert "\n" not in str(error.value)
    assert {name: (tmp_path / name).read_text() for name in os.listdir(tmp_path)} == before


def test_another_dataset_named_like_the_output_keeps_its_files_and_the_earlier_outputs_sidecars_go(tmp_path):
    """ortho.png beside ortho.tif is no conflict while no sidecar GDAL would read is there: the run writes, ortho.png
    stays, and the earlier ortho.tif's own sidecars (named after ortho.tif) go."""
    (tmp_path / "ortho.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    for sidecar in ("ortho.tif.aux.xml", "ortho.tif.ovr"):
        (tmp_path / sidecar).write_text("of the earlier ortho.tif")
    pipeline.degrade(S2_20M, str(tmp_path / "ortho.tif"), 2)
    assert sorted(os.listdir(tmp_path)) == ["ortho.png", "ortho.tif"]


def test_a_commit_keeps_the_sidecars_another_dataset_may_own(tmp_path):
    """Another dataset named like the output may appear while the run works, after the checks: moving the output
    into place removes the earlier output's own sidecars only, never its world file."""
    from internal_sr.core.raster import StagedFiles

    files = StagedFiles()
    with open(files.temporary(str(tmp_path / "ortho.tif"), geotiff=True), "wb") as f:
        f.write(b"the new ortho.tif")
    (tmp_path / "ortho.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (tmp_path / "ortho.wld").write_text("10\n0\n0\n-10\n300005\n5699995\n")
    (tmp_path / "ortho.tif.ovr").write_text("of the earlier ortho.tif")
    files.commit()
    assert sorted(os.listdir(tmp_path)) == ["ortho.png", "ortho.tif", "ortho.wld"]
    assert (tmp_path / "ortho.tif").read_bytes() == b"the new ortho.tif"


def rotated_pole_scene(folder) -> str:
    """``folder/rotated_pole.tif``: 32 × 32 pixels of two bands on a rotated-pole grid, its CRS (no GeoTIFF key
    holds it) in its PAM sidecar ``rotated_pole.tif.aux.xml``."""
    return write_raster(str(folder / "rotated_pole.tif"), read(S2_20M)[:2, :32, :32], crs=ROTATED_POLE, transform=ROTATED_POLE_GRID)


def run_method(method: str, source: str, out: str, io: IOOptions = IOOptions(), progress=None) -> None:
    """``degrade`` (×2, bicubic) or ``dip`` (×2, ``FAST``) of ``source`` into ``out``."""
    if method == "degrade":
        pipeline.degrade(source, out, 2, io=io, progress=progress)
    else:
        run_dip(source, out, io=io, progress=progress)


@pytest.mark.parametrize("cog", [False, True], ids=["geotiff", "cog"])
@pytest.mark.parametrize("method", ["degrade", "dip"])
def test_a_crs_geotiff_keys_cannot_hold_moves_into_place_with_the_output(tmp_path, method, cog):
    """GDAL keeps a rotated-pole CRS in a PAM sidecar beside the file it writes, the hidden temporary file: only that
    file was moved into place, so the output had no CRS and a hidden .aux.xml stayed in the folder. The sidecar
    moves with the output now, over an earlier output's."""
    source = rotated_pole_scene(tmp_path)
    out = tmp_path / "out.tif"
    (tmp_path / "out.tif.aux.xml").write_text('<PAMDataset><Metadata><MDI key="EARLIER">yes</MDI></Metadata></PAMDataset>')
    run_method(method, source, str(out), IOOptions(cog=cog))
    with rasterio.open(source) as src, rasterio.open(out) as dst:
        assert src.crs is not None and dst.crs == src.crs and dst.crs.to_wkt() == src.crs.to_wkt()
        assert dst.transform == src.transform * Affine.scale(2 if method == "degrade" else 0.5)
        assert "EARLIER" not in dst.tags()
        assert (dst.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG") == cog
    written = ["out.tif", "out.tif.aux.xml"] + ([os.path.basename(loss_curve_path(str(out)))] if method == "dip" else [])
    assert sorted(os.listdir(tmp_path)) == sorted(written + ["rotated_pole.tif", "rotated_pole.tif.aux.xml"])


class CancelAfter(NullProgress):
    """Cancels at its ``calls``-th question."""

    def __init__(self, calls: int) -> None:
        super().__init__()
        self.calls = calls

    def cancelled(self) -> bool:
        self.calls -= 1
        return self.calls < 0


@pytest.mark.parametrize("how", ["cancelled", "failed_as_cog"])
@pytest.mark.parametrize("method", ["degrade", "dip"])
def test_a_cancelled_or_failed_run_leaves_no_pam_sidecar_of_its_temporary_file(tmp_path, monkeypatch, method, how):
    """The PAM sidecar GDAL writes beside the temporary file as it closes it (a rotated-pole CRS) was left in the
    folder when a run was cancelled, or failed as it made the file a COG: it goes with the temporary file."""
    source = rotated_pole_scene(tmp_path)
    if how == "cancelled":
        monkeypatch.setattr(pipeline, "DEGRADE_STRIP_VALUES", 8 * 16 * 2)  # degrade in strips of 8 output rows
        with pytest.raises(Cancelled):
            run_method(method, source, str(tmp_path / "out.tif"), progress=CancelAfter(2))
    else:
        import rasterio.shutil

        copy = rasterio.shutil.copy

        def copy_then_fail(source: str, destination: str, **options) -> None:
            copy(source, destination, **options)
            raise rasterio.errors.RasterioIOError(f"{destination}: No space left on device")

        monkeypatch.setattr(rasterio.shutil, "copy", copy_then_fail)
        with pytest.raises(OutputWriteError):
            run_method(method, source, str(tmp_path / "out.tif"), IOOptions(cog=True))
    assert sorted(os.listdir(tmp_path)) == ["rotated_pole.tif", "rotated_pole.tif.aux.xml"]


def test_cog_output_and_float_nodata_beyond_float32(tmp_path):
    data = read(S2_20M)[:1, :48, :48].astype(np.float64)
    data[0, :4, :4] = -1e300
    src = write_raster(str(tmp_path / "in.tif"), data, nodata=-1e300)
    out = tmp_path / "lr.tif"
    pipeline.degrade(src, str(out), 2, io=IOOptions(float32=True, cog=True))
    with rasterio.open(out) as dst:
        assert dst.dtypes[0] == "float32" and np.isnan(dst.nodata)
        assert dst.profile["tiled"]
        low = dst.read(1)
    assert np.isnan(low[0, 0]) and np.isfinite(low[10:, 10:]).all()


def test_degrade_a_band_without_valid_pixels_quietly_gives_nodata(tmp_path):
    import warnings

    data = read(S2_20M)[:2, :32, :32].astype(np.float32)
    data[1] = np.nan
    src = write_raster(str(tmp_path / "in.tif"), data)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no "Mean of empty slice" on the user's terminal
        pipeline.degrade(src, str(tmp_path / "lr.tif"), 2)
    low = read(str(tmp_path / "lr.tif"))
    assert np.isnan(low[1]).all() and np.isfinite(low[0, 2:-2, 2:-2]).all()


def test_degrade_in_strips_gives_the_whole_raster_pass(tmp_path, monkeypatch):
    """Strips of 6 rows (with the kernel's reach around them) give a one-pass degrade's pixels, nodata included."""
    data = read(S2_20M)[:2].astype(np.float32)
    data[0, 40:43, 10:12] = np.nan
    src = write_raster(str(tmp_path / "in.tif"), data[:, :95, :93])
    for kernel in ("bicubic", "gaussian:1.2"):
        pipeline.degrade(src, str(tmp_path / "whole.tif"), 3, kernel)
        monkeypatch.setattr(pipeline, "DEGRADE_STRIP_VALUES", 6 * 93 * 2)
        pipeline.degrade(src, str(tmp_path / "strips.tif"), 3, kernel)
        monkeypatch.undo()
        whole, strips = read(str(tmp_path / "whole.tif")), read(str(tmp_path / "strips.tif"))
        assert whole.shape == strips.shape == (2, 31, 31) and np.isnan(whole[0, 13]).any()
        np.testing.assert_allclose(strips, whole, rtol=1e-6, atol=1e-3)
        np.testing.assert_array_equal(np.isnan(strips), np.isnan(whole))


def test_degrade_of_a_raster_without_valid_pixels_is_a_one_line_error_and_writes_nothing(tmp_path):
    src = write_raster(str(tmp_path / "in.tif"), np.zeros((1, 32, 32), np.uint16), nodata=0)
    with pytest.raises(InputError, match="no valid pixels"):
        pipeline.degrade(src, str(tmp_path / "lr.tif"), 2)
    assert sorted(os.listdir(tmp_path)) == ["in.tif"]


@pytest.mark.parametrize("size, scale, remedy", [
    ((7, 9), 8, "use a larger raster or a smaller scale (×7 fits)"),
    ((12, 40), 20, "use a larger raster or a smaller scale (×12 fits)"),
    ((1, 5), 2, "use a larger raster"),  # one pixel wide: no scale fits
])
def test_a_raster_smaller_than_one_block_is_told_what_to_do(tmp_path, capsys, size, scale, remedy):
    """degrade refused "image 7×9 is smaller than one 8×8 block" and left the user to work out what would do; the line
    now reads as every too-small refusal and offers a larger raster or the largest scale that fits."""
    width, height = size
    src = write_raster(str(tmp_path / "in.tif"), np.ones((1, height, width), np.float32))
    assert cli(["degrade", src, str(tmp_path / "lr.tif"), "--scale", str(scale)]) == 2
    assert capsys.readouterr().err == (f"internal-sr: error: image {width}×{height} is too small to degrade by ×{scale}: at "
                                       f"least {scale}×{scale} pixels (one block); {remedy}\n")
    assert sorted(os.listdir(tmp_path)) == ["in.tif"]


def test_an_assigned_crs_replaces_the_files_and_an_unknown_one_is_named(tmp_path):
    """``IOOptions.crs`` (as a CRS set on a QGIS layer, or GDAL's -a_srs): the output carries it, the log says so."""
    out = str(tmp_path / "low.tif")
    result = pipeline.degrade(S2_20M, out, 2, "bicubic", IOOptions(crs="EPSG:32617"))
    with rasterio.open(out) as dst, rasterio.open(S2_20M) as src:
        assert dst.crs.to_epsg() == 32617 and dst.transform == src.transform * Affine.scale(2)
    assert any("CRS EPSG:32617 assigned, replacing the file's (EPSG:32618)" in m for m in result.messages)
    with pytest.raises(InputError, match="unknown CRS 'EPSG:nonsense'"):
        pipeline.degrade(S2_20M, str(tmp_path / "never.tif"), 2, "bicubic", IOOptions(crs="EPSG:nonsense"))
    assert not os.path.exists(tmp_path / "never.tif")


def test_values_clipped_to_the_output_type_are_named_in_the_log(tmp_path):
    """A lanczos3 degradation of a uint8 step overshoots below 0 and above 255 at the edge: the clipped pixels
    are counted per band in a warning (they used to be clipped without a word)."""
    step = np.zeros((1, 32, 32), np.uint8)
    step[:, :, 16:] = 255
    source = write_raster(str(tmp_path / "step.tif"), step, descriptions=("edge",))
    result = pipeline.degrade(source, str(tmp_path / "low.tif"), 2, "lanczos3")
    (warning,) = [m for m in result.messages if m.startswith("warning: edge:")]
    assert "fell outside uint8's range and were clipped into it" in warning and " below, " in warning and " above)" in warning
    result = pipeline.degrade(source, str(tmp_path / "low32.tif"), 2, "lanczos3", IOOptions(float32=True))
    assert not any("clipped" in m for m in result.messages)


#: A value per data type that a network cannot come back to by chance and float32 cannot always hold.
CONSTANTS = {"uint16": 1000, "int32": 123456789, "float32": 0.1234, "float64": 1e10 + 0.5}
TWO_BY_TWO_TILES = TileOptions(size=24, overlap=4)  # 32 × 32 input pixels in four tiles


def constant_scene(folder, dtype: str) -> tuple[str, str]:
    """A 32 × 32 target on a 20 m grid (band 1 textured, band 2 ``CONSTANTS[dtype]`` but for one nodata pixel; nodata
    0) and a 64 × 64 guide on the 10 m grid of the same area; returns their paths."""
    textured = read(S2_20M)[0, :32, :32].astype(dtype)
    constant = np.full((32, 32), CONSTANTS[dtype], dtype)
    constant[5, 7] = 0
    origin = (300000.0, 5800000.0)
    target = write_raster(str(folder / "target.tif"), np.stack([textured, constant]), nodata=0,
                          transform=Affine(20.0, 0, origin[0], 0, -20.0, origin[1]))
    guide = write_raster(str(folder / "guide.tif"), read(S2_10M)[:1, :64, :64],
                         transform=Affine(10.0, 0, origin[0], 0, -10.0, origin[1]))
    return target, guide


@pytest.mark.parametrize("method, dtype", [("dip", "uint16"), ("knitwork", "int32"), ("guided", "float32"), ("knitwork", "float64")])
def test_a_band_constant_over_the_input_comes_back_exactly_that_constant(tmp_path, method, dtype):
    """Every method and every kind of data type (one code path serves them: the blended tiles as written), over
    several tiles: a band whose valid pixels hold one value is written as that value, its nodata pixel as nodata
    (Knitworks came back a few per cent of the value off, DIP feeding the network noise alone, its reference recipe, by up
    to the value itself; guided DIP and DIP's default, whose zero-initialised heads leave a constant band's correction
    at zero, were exact already). The textured band still varies."""
    from internal_sr.core.config import GuidedDIPConfig, KnitworkConfig
    from internal_sr.core.sharpen import sharpen

    target, guide = constant_scene(tmp_path, dtype)
    out = str(tmp_path / "out.tif")
    if method == "guided":
        sharpen(target, guide, out, GuidedDIPConfig(iterations=3, width=8, layers=2, back_projection_steps=2, kernel="bicubic", guide_kernel="bicubic", device="cpu", tiles=TWO_BY_TWO_TILES))
    else:
        config = (DIPConfig(guide_input=False, tiles=TWO_BY_TWO_TILES, device="cpu", back_projection_steps=2, **{**FAST, "iterations": 3}) if method == "dip"
                  else KnitworkConfig(width=16, fourier_features=16, iterations=3, back_projection_steps=2, device="cpu", tiles=TWO_BY_TWO_TILES))
        pipeline.super_resolve(target, out, config)
    with rasterio.open(out) as dst:
        values, valid = dst.read(), dst.read_masks() > 0
    assert dst.dtypes[1] == dtype
    hole = np.zeros((64, 64), bool)
    hole[10:12, 14:16] = True
    np.testing.assert_array_equal(valid[1], ~hole)
    np.testing.assert_array_equal(values[1][~hole], np.full((64, 64), CONSTANTS[dtype], dtype)[~hole])
    assert np.ptp(values[0]) > 0


def test_in_memory_runs_keep_a_constant_band_exactly():
    """``super_resolve_array`` and ``sharpen_array`` (evaluation, benchmarks) decide alike on their whole arrays."""
    from internal_sr.core.config import GuidedDIPConfig, KnitworkConfig
    from internal_sr.core.sharpen import sharpen_array

    low = np.stack([read(S2_20M)[0, :32, :32].astype(np.float64), np.full((32, 32), 1e10 + 0.5)])
    config = KnitworkConfig(width=16, fourier_features=16, iterations=3, back_projection_steps=2, device="cpu", tiles=TWO_BY_TWO_TILES)
    out, _ = pipeline.super_resolve_array(low, config)
    sharpened, _ = sharpen_array(low, read(S2_10M)[:1, :64, :64], GuidedDIPConfig(iterations=3, width=8, layers=2, back_projection_steps=2, kernel="bicubic", guide_kernel="bicubic", device="cpu"), [None, None], [None])
    for image in (out, sharpened):
        assert (image[1] == 1e10 + 0.5).all() and np.ptp(image[0]) > 0


def test_constancy_is_decided_on_every_pixel_of_the_area_processed(tmp_path, monkeypatch):
    """``constant_bands`` reads the whole area in strips, not a sample: one differing pixel in the last strip makes a
    band vary; a nodata pixel does not; on an extent, only the window's pixels count."""
    from internal_sr.core.raster import constant_bands, open_info

    monkeypatch.setattr("internal_sr.core.raster.SCAN_STRIP_VALUES", 2 * 40 * 3)  # strips of 3 rows of 40 pixels, 2 bands
    data = np.full((2, 30, 40), 7, np.uint16)
    data[0, 29, 39] = 8  # band 1 varies in the last row only
    data[1, 0, 0] = 0  # nodata
    path = write_raster(str(tmp_path / "scene.tif"), data, nodata=0)
    np.testing.assert_array_equal(constant_bands(open_info(path)), [np.nan, 7])
    np.testing.assert_array_equal(constant_bands(open_info(path), Window(0, 0, 40, 29)), [7, 7])
    data[1, 20] = 9
    path = write_raster(str(tmp_path / "scene.tif"), data, nodata=0)
    np.testing.assert_array_equal(constant_bands(open_info(path)), [np.nan, np.nan])


def test_band_ranges_read_every_strip_even_of_bands_that_vary_at_once(tmp_path, monkeypatch):
    """``band_ranges``, from which guided DIP decides which bands hold no negative value, reads every strip: a band
    that varies in the first strip and holds its one negative value in the last row is found negative (reading up
    to the first strip where every band varies, as ``constant_bands`` may, would take it for non-negative)."""
    from internal_sr.core.raster import band_ranges, open_info

    monkeypatch.setattr("internal_sr.core.raster.SCAN_STRIP_VALUES", 2 * 40 * 3)  # strips of 3 rows of 40 pixels, 2 bands
    data = np.arange(2 * 30 * 40, dtype=np.float32).reshape(2, 30, 40)
    data[0, 29, 39] = -3.0
    low, high = band_ranges(open_info(write_raster(str(tmp_path / "scene.tif"), data)))
    np.testing.assert_array_equal(low, [-3.0, 1200.0])
    np.testing.assert_array_equal(high, [1198.0, 2399.0])
