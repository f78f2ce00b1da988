"""Back-projection's width test (``core.degradation.back_project``) is decided once per raster and band, not per tile.

The 96² crop below (the tester's repro) has, with ``gaussian:0.6`` at ×2, per-tile observation gains of its B4 on both
sides of ``OBSERVATION_GAIN_LIMIT`` (2.63–3.06 on 40² tiles) while the whole crop gives 2.89 (B4), 3.17 (B3), 3.37 (B2)
and 2.77 (B8): decided per tile, three of its nine tiles kept the un-back-projected start next to back-projected ones.
"""

import numpy as np
import pytest
import rasterio
import torch
from rasterio.windows import Window

from internal_sr.core import degradation, dip, guided, knitwork, pipeline
from internal_sr.core.config import DIPConfig, GuidedDIPConfig, KnitworkConfig, TileOptions
from internal_sr.core.kernels import make_kernel
from internal_sr.core.sharpen import sharpen_array

from helpers import S2_10M_256, write_raster

#: the whole crop's decision per band (B4, B3, B2, B8): back-projected where the gain is at most 3
WHOLE = [True, False, False, True]
TILES = TileOptions(size=40, overlap=8)  # 3×3 tiles of the 96² crop


@pytest.fixture(scope="module")
def crop() -> np.ndarray:
    with rasterio.open(S2_10M_256) as src:
        return src.read(window=Window(40, 40, 96, 96)).astype(np.float32)


def spy(monkeypatch, module) -> list[list[bool]]:
    """Record, for each ``back_project`` call of ``module``, which bands it back-projected (its output is not its start)."""
    calls: list[list[bool]] = []
    real = degradation.back_project

    def watched(x, *args, **kwargs):
        out = real(x, *args, **kwargs)
        calls.append([not torch.equal(out[:, b], x[:, b]) for b in range(x.shape[1])])
        return out

    monkeypatch.setattr(module, "back_project", watched)
    return calls


def test_width_test_is_unchanged_by_a_scale_and_offset_per_band(crop):
    """The gain is a ratio of energies of residuals: raw values and the tiles' normalised values decide alike."""
    kernel = make_kernel("gaussian:0.6", 2)
    valid = np.ones(crop.shape, bool)
    gains = degradation.width_test(crop, valid, kernel)
    np.testing.assert_allclose(gains, [2.89, 3.17, 3.37, 2.77], atol=0.01)
    scaled = crop * np.array([3.0, 0.5, 10.0, 1.0], np.float32)[:, None, None] + np.float32(250)
    np.testing.assert_allclose(degradation.width_test(scaled, valid, kernel), gains, rtol=1e-5)
    assert list(degradation.width_keep(gains)) == WHOLE
    assert degradation.width_test(crop, valid, make_kernel("bicubic", 2)) is None  # no kernel to test: nothing decided


@pytest.mark.parametrize("method", ["dip", "knitwork"])
def test_every_tile_gets_the_raster_s_decision(monkeypatch, crop, method):
    """Nine tiles whose own gains straddle the limit are all back-projected as the whole crop decides, and each
    band that is not is said once in the log."""
    module, config = {
        "dip": (dip, DIPConfig(scale=2, kernel="gaussian:0.6", iterations=2, channels=8, detail_channels=4, tiles=TILES, device="cpu", seed=0)),
        "knitwork": (knitwork, KnitworkConfig(scale=2, kernel="gaussian:0.6", iterations=2, tiles=TILES, device="cpu", seed=0)),
    }[method]
    calls = spy(monkeypatch, module)
    _, result = pipeline.super_resolve_array(crop, config)
    assert len(result.curves) == 9 and calls
    assert all(call == WHOLE for call in calls), calls
    lines = [m for m in result.messages if "not back-projected" in m]
    assert len(lines) == 2 and lines[0].startswith("band 2:") and "3.17" in lines[0] and "limit 3" in lines[0], lines
    assert lines[1].startswith("band 3:") and "3.37" in lines[1]


def test_a_file_run_decides_once_and_names_the_band(tmp_path, monkeypatch, crop):
    """The same through ``super_resolve`` on a file: its band descriptions name the band in the log line."""
    path = write_raster(str(tmp_path / "crop.tif"), crop.astype(np.uint16))
    with rasterio.open(path, "r+") as dst:
        dst.descriptions = ("B4", "B3", "B2", "B8")
    calls = spy(monkeypatch, dip)
    config = DIPConfig(scale=2, kernel="gaussian:0.6", iterations=2, channels=8, detail_channels=4, tiles=TILES, device="cpu", seed=0)
    result = pipeline.super_resolve(path, str(tmp_path / "out.tif"), config)
    assert calls and all(call == WHOLE for call in calls), calls
    lines = [m for m in result.messages if "not back-projected" in m]
    assert [line.split(":")[0] for line in lines] == ["band 2 (B3)", "band 3 (B2)"], lines


def test_guided_tiles_get_the_target_s_decision(monkeypatch, crop):
    with rasterio.open(S2_10M_256) as src:
        guide = src.read(window=Window(32, 32, 192, 192)).astype(np.float32)
    calls = spy(monkeypatch, guided)
    config = GuidedDIPConfig(kernel="gaussian:0.6", guide_kernel="gaussian:0.6", iterations=2, width=8, layers=2, tiles=TILES, device="cpu")
    _, result = sharpen_array(crop, guide, config, ["B4", "B3", "B2", "B8"], ["B4", "B3", "B2", "B8"])
    assert len(calls) == 9 and all(call == WHOLE for call in calls), calls
    assert [m.split(":")[0] for m in result.messages if "not back-projected" in m] == ["band 2 (B3)", "band 3 (B2)"]
