"""The blur's elongation and direction read from the power spectrum (``core.anisotropy``).

Known anisotropic Gaussians blur the committed 256 × 256 Sentinel-2 crop (B4, B3, B2, B8) at ×2 and
×4; the reading must find the direction within 5° and the elongation within 30 %, and an isotropic
blur must read as nearly round. Pure numpy: no training.
"""

import math

import numpy as np
import pytest

from internal_sr.core.anisotropy import (
    PATCH,
    SpectralAnisotropy,
    oriented_width,
    spectral_anisotropy,
    window_origins,
)
from internal_sr.core.degradation import degrade_array
from internal_sr.core.errors import InputError
from internal_sr.core.kernels import KernelWidth, anisotropic_gaussian, angle_difference, file_kernel

from helpers import S2_10M_256, read


def blurred(major: float, minor: float, angle: float, scale: int) -> np.ndarray:
    reference = read(S2_10M_256).astype(np.float64)
    return degrade_array(reference, file_kernel(anisotropic_gaussian(major, minor, angle, scale), scale))


@pytest.mark.parametrize("scale", [2, 4])
@pytest.mark.parametrize("truth", [(1.0, 0.5, 30.0), (1.0, 0.5, 150.0), (1.2, 0.4, 90.0), (0.8, 0.4, 0.0)])
def test_direction_and_elongation_of_known_kernels(truth, scale):
    low = blurred(*truth, scale)
    reading = spectral_anisotropy(low, np.ones(low.shape[1:], bool))
    major, minor, angle = truth
    elongation = (major**2 - minor**2) / 2
    print(f"{truth} ×{scale}: {reading} (true elongation {elongation:.2f})")
    assert angle_difference(reading.angle, angle) < 5
    assert reading.elongation == pytest.approx(elongation, rel=0.3)


def test_an_isotropic_blur_reads_as_nearly_round():
    low = blurred(0.9, 0.9, 0.0, 2)
    reading = spectral_anisotropy(low, np.ones(low.shape[1:], bool))
    # the kernels above read 0.18-0.6 px²; the scene's own directions leave a little
    assert reading.elongation < 0.1


def test_nodata_windows_are_left_out():
    low = blurred(1.0, 0.5, 30.0, 2)
    valid = np.ones(low.shape[1:], bool)
    valid[:, :40] = False  # a nodata strip: windows must avoid it
    low[:, ~valid] = 0.0  # and its fill value must not reach the spectrum
    origins = window_origins(valid)
    assert origins and all(c >= 40 for _, c in origins)
    reading = spectral_anisotropy(low, valid)
    assert angle_difference(reading.angle, 30.0) < 5
    assert reading.windows == 4 * len(origins)


def test_a_single_clean_window_off_the_grid_is_found():
    valid = np.zeros((100, 100), bool)
    valid[5:5 + PATCH, 7:7 + PATCH] = True
    assert window_origins(valid) == [(5, 7)]


@pytest.mark.parametrize(
    "valid, message",
    [(np.ones((40, 200), bool), "too small"), (np.eye(100, dtype=bool) == 0, "without nodata")],
)
def test_unusable_images_give_one_line_errors(valid, message):
    with pytest.raises(InputError, match=message) as error:
        window_origins(valid)
    assert "\n" not in str(error.value)


def test_flat_image_is_an_error():
    with pytest.raises(InputError, match="flat"):
        spectral_anisotropy(np.full((2, 64, 64), 7.0), np.ones((64, 64), bool))


def test_oriented_width_keeps_the_area_and_takes_the_shape():
    width = oriented_width(KernelWidth(0.74, 0.60, 149.0), SpectralAnisotropy(0.36, 30.0, 1))
    assert width.major * width.minor == pytest.approx(0.74 * 0.60)
    assert (width.major**2 - width.minor**2) / 2 == pytest.approx(0.36)
    assert width.angle == 30.0
    round_ = oriented_width(KernelWidth(0.8, 0.5, 10.0), SpectralAnisotropy(0.0, 75.0, 1))
    assert round_.major == pytest.approx(math.sqrt(0.4)) and round_.minor == pytest.approx(math.sqrt(0.4))
