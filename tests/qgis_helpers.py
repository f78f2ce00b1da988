"""Helpers for the QGIS tests: small crops of the committed Sentinel-2 raster, grid reading, messages, Processing models."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import rasterio
from rasterio.windows import Window

if TYPE_CHECKING:
    from qgis.core import QgsProcessingModelAlgorithm, QgsProcessingModelChildParameterSource

DATA = os.path.join(os.path.dirname(__file__), "data")
#: 96 × 96 pixels, bands B05 B06 B07 B8A B11 B12, uint16, EPSG:32618, 20 m (see data/README.md).
S2_20M = os.path.join(DATA, "s2_T18SVG_20m_B05-B12_crop.tif")
S2_20M_BANDS = ("B05", "B06", "B07", "B8A", "B11", "B12")
#: First line of every parameter-check error raised by ``processing.run`` (added by QGIS itself).
QGIS_CHECK_HEADER = "Unable to execute algorithm"


def landsat_pair(folder) -> tuple[str, str]:
    """Copies of the committed Landsat 8 multispectral (30 m) and pan (15 m) crops in ``folder``: QGIS
    writes ``.aux.xml`` statistics beside the rasters it opens, never beside committed data."""
    import shutil

    return tuple(
        shutil.copy(os.path.join(DATA, f"landsat8_LC80200392015216_{name}_crop.tif"), os.path.join(folder, f"{name}.tif"))
        for name in ("ms30m", "pan15m")
    )


def crop(path: str, size: int, col_off: int = 0, row_off: int = 0) -> str:
    """Write the ``size × size`` window of the committed 20 m crop at ``path`` (grid, bands, names kept).

    Tests work on copies so that QGIS never writes ``.aux.xml`` statistics next to committed data.
    """
    with rasterio.open(S2_20M) as src:
        window = Window(col_off, row_off, size, size)
        profile = src.profile
        profile.update(width=size, height=size, transform=src.window_transform(window), tiled=False)
        profile.pop("blockysize", None)
        profile.pop("blockxsize", None)
        data = src.read(window=window)
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(data)
            dst.descriptions = src.descriptions
    return path


@dataclass(frozen=True)
class GridInfo:
    width: int
    height: int
    transform: tuple[float, ...]
    crs: str
    dtype: str
    descriptions: tuple[str | None, ...]
    means: tuple[float, ...]


def grid_info(path: str) -> GridInfo:
    """What the tests compare: grid, CRS, dtype, band names and per-band means."""
    with rasterio.open(path) as src:
        data = src.read().astype(np.float64)
        return GridInfo(
            src.width,
            src.height,
            tuple(src.transform)[:6],
            src.crs.to_string() if src.crs else "",
            src.dtypes[0],
            tuple(src.descriptions),
            tuple(float(band.mean()) for band in data),
        )


def user_message(error: BaseException) -> str:
    """The message of a Processing error without the fixed header QGIS puts on parameter-check errors."""
    lines = str(error).strip().splitlines()
    if lines and lines[0].strip() == QGIS_CHECK_HEADER:
        lines = lines[1:]
    return "\n".join(lines)


#: 128 × 128 pixels, bands B4 B3 B2 B8, uint16, 10 m, committed without georeferencing.
S2_10M = os.path.join(DATA, "s2_T33UUB_10m_B4-B3-B2-B8_crop.tif")


def georeferenced_10m(path: str) -> str:
    """Copy the 10 m crop onto a test grid (EPSG:32633, 10 m pixels, arbitrary origin) at ``path``."""
    import warnings

    from affine import Affine
    from rasterio.errors import NotGeoreferencedWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(S2_10M) as src:
            profile = src.profile
            data = src.read()
            descriptions = src.descriptions
    profile.update(crs="EPSG:32633", transform=Affine(10.0, 0.0, 310000.0, 0.0, -10.0, 5710000.0), tiled=False)
    profile.pop("blockysize", None)
    profile.pop("blockxsize", None)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
        dst.descriptions = descriptions
    return path


def recording_feedback():
    """A ``QgsProcessingFeedback`` that keeps its info lines (``lines``) and progress texts (``texts``, which the
    Processing dialog writes to its log). Made on call: this module imports without QGIS."""
    from qgis.core import QgsProcessingFeedback

    class Recording(QgsProcessingFeedback):
        def __init__(self) -> None:
            super().__init__()
            self.lines: list[str] = []
            self.texts: list[str] = []

        def pushInfo(self, info: str) -> None:  # noqa: N802
            self.lines.append(info)
            super().pushInfo(info)

        def setProgressText(self, text: str) -> None:  # noqa: N802
            self.texts.append(text)
            super().setProgressText(text)

    return Recording()


class LogRecorder:
    """Records what is written to the QGIS message log under ``tag`` while it is connected (a context manager)."""

    def __init__(self, tag: str = "Internal SR") -> None:
        self.tag = tag
        self.messages: list[str] = []

    def _received(self, message: str, tag: str, level: object) -> None:
        if tag == self.tag:
            self.messages.append(message)

    def __enter__(self) -> "LogRecorder":
        from qgis.core import QgsApplication

        QgsApplication.messageLog().messageReceived.connect(self._received)
        return self

    def __exit__(self, *exc: object) -> None:
        from qgis.core import QgsApplication

        QgsApplication.messageLog().messageReceived.disconnect(self._received)


def raster_model(name: str) -> QgsProcessingModelAlgorithm:
    """An empty Processing model ``name`` (a ``QgsProcessingModelAlgorithm``) with one raster layer input,
    the model parameter ``raster``."""
    from qgis.core import QgsProcessingModelAlgorithm, QgsProcessingModelParameter, QgsProcessingParameterRasterLayer

    model = QgsProcessingModelAlgorithm(name, "tests")
    model.addModelParameter(QgsProcessingParameterRasterLayer("raster", "Raster"), QgsProcessingModelParameter("raster"))
    return model


def add_child(
    model: QgsProcessingModelAlgorithm,
    algorithm: str,
    sources: dict[str, QgsProcessingModelChildParameterSource],
    values: dict[str, object],
    output: tuple[str, str] | None = None,
) -> None:
    """Add ``internal_sr:ALGORITHM`` to ``model`` as the child ``ALGORITHM``.

    sources: parameter key → ``QgsProcessingModelChildParameterSource`` (a model parameter or another child's
    output); values: parameter key → static value. ``output`` ``(name, description)``: the child's ``OUTPUT``
    becomes the model's output ``ALGORITHM:name``.
    """
    from qgis.core import QgsProcessingModelChildAlgorithm, QgsProcessingModelChildParameterSource, QgsProcessingModelOutput

    child = QgsProcessingModelChildAlgorithm(f"internal_sr:{algorithm}")
    child.setChildId(algorithm)
    for key, source in sources.items():
        child.addParameterSources(key, [source])
    for key, value in values.items():
        child.addParameterSources(key, [QgsProcessingModelChildParameterSource.fromStaticValue(value)])
    if output is not None:
        name, description = output
        model_output = QgsProcessingModelOutput(name, description)
        model_output.setChildId(algorithm)
        model_output.setChildOutputName("OUTPUT")
        child.setModelOutputs({name: model_output})
    model.addChildAlgorithm(child)
