"""The registration check of guided DIP (``core.registration``): a guide whose content is shifted against the
target's by a fraction of a target pixel is named in a one-line warning before the run; an aligned guide is not
(Sentinel-2 10 m with 20 m bands, Landsat pan on its half-pixel grid)."""

import numpy as np
import pytest
from affine import Affine

from internal_sr.core.config import GuidedDIPConfig
from internal_sr.core.kernels import make_kernel
from internal_sr.core.registration import MIN_CORRELATION, Misregistration, compared_area, guide_misregistration, registration_warning
from internal_sr.core.sharpen import band_kernels, sharpen, sharpen_array

from helpers import DATA, S2_10M, S2_10M_256, S2_20M_SAME_AREA, read, write_raster

NAMES10, NAMES20 = ("B4", "B3", "B2", "B8"), ("B5", "B6", "B7", "B8A", "B11", "B12")
MS = f"{DATA}/landsat8_LC80200392015216_ms30m_crop.tif"
PAN = f"{DATA}/landsat8_LC80200392015216_pan15m_crop.tif"
pytestmark = pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")  # the crops have no grid


def moved(image: np.ndarray, columns: int = 0, rows: int = 0) -> np.ndarray:
    """``image`` ``(C, H, W)`` with its content moved by whole pixels to higher columns and rows (edges repeated)."""
    height, width = image.shape[-2:]
    return np.pad(image, ((0, 0), (rows, 0), (columns, 0)), mode="edge")[:, :height, :width]


def estimate(target: np.ndarray, guide: np.ndarray, kernels, guide_valid: np.ndarray | None = None):
    valid = np.ones(guide.shape, bool) if guide_valid is None else guide_valid
    return guide_misregistration(target.astype(np.float32), np.ones(target.shape, bool), guide.astype(np.float32), valid, kernels)


@pytest.mark.parametrize("columns, rows, hole", [(0, 0, False), (1, 0, False), (0, 1, False), (2, 1, False), (1, 0, True)])
def test_the_shift_of_a_sentinel2_guide_is_measured_in_target_pixels(columns, rows, hole):
    """The real 20 m bands against the 10 m bands of the same area, moved by whole 10 m pixels (half a target
    pixel each), with a block of guide nodata in one case."""
    guide = moved(read(S2_10M), columns, rows)
    valid = np.ones(guide.shape, bool)
    if hole:
        valid[:, 40:72, 50:90] = False
        guide = np.where(valid, guide, 0)
    m = estimate(read(S2_20M_SAME_AREA), guide, band_kernels("sentinel2", NAMES10, 2, "guide"), valid)
    print(m)
    assert m.dx == pytest.approx(columns / 2, abs=0.1) and m.dy == pytest.approx(rows / 2, abs=0.1)
    assert m.correlation > MIN_CORRELATION
    assert (registration_warning(m) is None) == (columns == rows == 0)


def test_a_guide_of_another_area_is_not_trusted_for_a_shift():
    other = read(S2_10M_256)[:, :128, :128]
    m = estimate(read(S2_20M_SAME_AREA), other, band_kernels("sentinel2", NAMES10, 2, "guide"))
    assert m.correlation < MIN_CORRELATION and registration_warning(m) is None


@pytest.mark.parametrize("flat", ["guide", "both"])
@pytest.mark.filterwarnings("error::UserWarning")
def test_a_featureless_area_is_not_trusted_for_a_shift_and_warns_nothing_raw(flat):
    """A guide without edges over the compared area (one value: a uniform field, saturation, a constant fill): the
    check let scikit-image's UserWarning 'Could not determine RMS error …' through onto stderr, with its source
    line. There is nothing to register: the estimate is untrusted and says nothing."""
    target = read(S2_20M_SAME_AREA)
    guide = np.full((4, 2 * target.shape[1], 2 * target.shape[2]), 1000, dtype=np.uint16)
    if flat == "both":
        target = np.full_like(target, 1000)
    m = estimate(target, guide, band_kernels("sentinel2", NAMES10, 2, "guide"))
    assert m.correlation < MIN_CORRELATION and registration_warning(m) is None


def test_the_landsat_pan_on_its_half_pixel_grid_is_aligned_and_one_pan_pixel_off_is_not():
    kernels = [make_kernel("landsat", 2, (0.5, 0.5))]
    ms, pan = read(MS)[1:4], read(PAN)
    native, off = estimate(ms, pan[:, :128, :128], kernels), estimate(ms, pan[:, 1:, 1:], kernels)
    print(native, off)
    assert registration_warning(native) is None and native.distance < 0.1
    assert off.dx == pytest.approx(-0.5, abs=0.1) and off.dy == pytest.approx(-0.5, abs=0.1) and registration_warning(off)


def test_a_run_with_a_guide_one_pixel_off_warns_in_one_line_and_an_aligned_one_does_not(tmp_path):
    """The tester's case on the committed crops: the guide's georeferencing says aligned, its pixels are one
    10 m column off (half a 20 m target pixel); the run still goes on."""
    target = write_raster(str(tmp_path / "t20.tif"), read(S2_20M_SAME_AREA), transform=Affine(20.0, 0, 300000.0, 0, -20.0, 5800000.0),
                          descriptions=NAMES20)
    config = GuidedDIPConfig(iterations=1, width=8, layers=2, device="cpu")

    def warnings(guide: np.ndarray, name: str) -> list[str]:
        path = write_raster(str(tmp_path / f"{name}.tif"), guide, descriptions=NAMES10)
        result = sharpen(target, path, str(tmp_path / f"{name}_out.tif"), config, loss_curve=False)
        assert (tmp_path / f"{name}_out.tif").exists()
        return [m for m in result.messages if "shifted" in m]

    assert warnings(read(S2_10M), "aligned") == []
    (line,) = warnings(moved(read(S2_10M), columns=1), "off")
    print(line)
    assert line.startswith("warning: the guide looks shifted") and "\n" not in line
    assert "+0.50 target pixels in x" in line and "+0.00 in y" in line and "co-register the guide" in line


@pytest.mark.parametrize("row, col", [(32, 0), (48, 32)])
def test_an_aligned_window_too_small_to_tell_is_skipped_with_a_note_not_a_warning(row, col):
    """16 × 16 target pixels of the aligned committed pair, where the estimate alone read a shift over 0.3 pixel
    (−0.20, +0.25 and −0.35, −0.10, correlation 0.68): too few pixels to trust, so a note says the check is skipped."""
    target = read(S2_20M_SAME_AREA)[:, row : row + 16, col : col + 16]
    guide = read(S2_10M)[:, 2 * row : 2 * row + 32, 2 * col : 2 * col + 32]
    assert estimate(target, guide, band_kernels("sentinel2", NAMES10, 2, "guide")) is None
    _, result = sharpen_array(target.astype(np.float32), guide.astype(np.float32), GuidedDIPConfig(iterations=1, width=8, layers=2, device="cpu"),
                              NAMES20, NAMES10)
    assert not [m for m in result.messages if "shifted" in m]
    (note,) = [m for m in result.messages if "registration check" in m]
    assert note.startswith("the registration check of target and guide is skipped: fewer than 2304 valid target pixels")


def test_pixels_next_to_nodata_are_not_compared():
    """The gradients of a valid pixel beside an invalid one read the fill of both rasters: it is left out."""
    target_valid = np.ones((3, 48, 48), bool)
    target_valid[1, 10:20, 30:40] = False
    guide_valid = np.ones((4, 96, 96), bool)
    area = compared_area(target_valid, guide_valid, band_kernels("sentinel2", NAMES10, 2, "guide"))
    expected = np.ones((48, 48), bool)
    expected[9:21, 30:40] = expected[10:20, 29:41] = False  # the hole and its 4 neighbours (central differences)
    np.testing.assert_array_equal(area, expected)


def test_the_warning_names_the_bands_in_the_front_ends_words():
    line = registration_warning(Misregistration(0.5, 0.0, 0.8), ("the 60 m bands B1, B9", "the 10 m bands B2, B3, B4, B8"))
    assert line.startswith("warning: the guide (the 10 m bands B2, B3, B4, B8) looks shifted against the target (the 60 m bands B1, B9)")


@pytest.mark.parametrize("offset", [2e9, 1e10 + 0.5])
def test_values_on_a_large_offset_give_the_shift_they_give_without_it(offset):
    """int32, uint32 and float64 rasters are read as float64 (``raster.read_window``): the check fills and degrades
    them at that precision (``degrade_array``), so an offset float32 would round the edges away on (2e9 rounds to
    steps of 128, 1e10 to steps of 1024, coarser than the crops' edges) changes nothing: the edge maps then differ by
    float64 roundings only, far below the estimate's 1/UPSAMPLE pixel."""
    guide, target = moved(read(S2_10M), 1, 0).astype(np.float64), read(S2_20M_SAME_AREA).astype(np.float64)
    kernels = band_kernels("sentinel2", NAMES10, 2, "guide")

    def check(t: np.ndarray, g: np.ndarray) -> Misregistration:
        return guide_misregistration(t, np.ones(t.shape, bool), g, np.ones(g.shape, bool), kernels)

    plain, shifted = check(target, guide), check(target + offset, guide + offset)
    assert plain.dx == pytest.approx(0.5, abs=0.1) and plain.correlation > MIN_CORRELATION
    assert (shifted.dx, shifted.dy) == pytest.approx((plain.dx, plain.dy), abs=1e-6)
    assert shifted.correlation == pytest.approx(plain.correlation, abs=1e-6)
