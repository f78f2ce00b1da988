"""Shared test helpers: paths to the committed crops, small raster writers, a run held while it writes."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import numpy as np
import rasterio
import torch
from affine import Affine
from rasterio.crs import CRS

from internal_sr.core.progress import NullProgress

DATA = os.path.join(os.path.dirname(__file__), "data")
S2_10M = os.path.join(DATA, "s2_T33UUB_10m_B4-B3-B2-B8_crop.tif")  # 128×128, 4 bands, uint16, no CRS
S2_20M = os.path.join(DATA, "s2_T18SVG_20m_B05-B12_crop.tif")  # 96×96, 6 bands, uint16, EPSG:32618
S2_10M_256 = os.path.join(DATA, "s2_T33UUB_10m_B4-B3-B2-B8_256.tif")  # 256×256, 4 bands, uint16, no CRS
#: the same area as S2_10M on the 20 m grid (rows 150–213, cols 80–143): B5, B6, B7, B8A, B11, B12, 64×64
S2_20M_SAME_AREA = os.path.join(DATA, "s2_T33UUB_20m_B5-B12_crop.tif")
#: 60 m bands B1, B9 (20×20) covering S2_10M's rows 0–119, cols 2–121
S2_60M_SAME_AREA = os.path.join(DATA, "s2_T33UUB_60m_B1-B9_crop.tif")
SHARED = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data")


class Log(NullProgress):
    """A progress that keeps the lines it is told (``lines``)."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def info(self, message: str) -> None:
        self.lines.append(message)


def read(path: str) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read()


def write_raster(path: str, data: np.ndarray, crs: str | None = "EPSG:32633", nodata=None, transform=None, descriptions=None) -> str:
    """Write ``data`` ``(C, H, W)`` as a GeoTIFF (default: 10 m UTM grid at (300000, 5800000))."""
    transform = transform or Affine(10.0, 0.0, 300000.0, 0.0, -10.0, 5800000.0)
    with rasterio.open(
        path, "w", driver="GTiff", width=data.shape[2], height=data.shape[1], count=data.shape[0],
        dtype=data.dtype, crs=CRS.from_user_input(crs) if crs else None, transform=transform, nodata=nodata,
    ) as dst:
        dst.write(data)
        for i, d in enumerate(descriptions or [], start=1):
            dst.set_band_description(i, d)
    return path


def input_layouts(monkeypatch, network: type) -> list[bool]:
    """A list that gets, for each call of ``network.forward`` from now on, whether its input was channels-last (and
    not also contiguous in the default layout, as a tensor with one pixel or one channel is)."""
    layouts: list[bool] = []
    forward = network.forward

    def recorded(self, x):
        layouts.append(x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous())
        return forward(self, x)

    monkeypatch.setattr(network, "forward", recorded)
    return layouts


class HeldWhileWriting(NullProgress):
    """A degrade's progress that holds it while it writes its output (its first report of a strip) until ``go``."""

    def __init__(self) -> None:
        self.writing, self.go = threading.Event(), threading.Event()

    def report(self, fraction: float, message: str = "") -> None:
        if message == "degrading":
            self.writing.set()
            assert self.go.wait(60)


@contextmanager
def degrading(input_path: str, output: str) -> Iterator[None]:
    """Inside the block a degrade (×2) of ``input_path`` into ``output`` is under way in another thread (as a QGIS
    background task), holding its claims (``core.raster.claimed``); it finishes after the block."""
    from internal_sr.core.pipeline import degrade

    progress = HeldWhileWriting()
    with ThreadPoolExecutor(1) as pool:
        job = pool.submit(degrade, input_path, output, 2, progress=progress)
        assert progress.writing.wait(60), job.result()
        try:
            yield
        finally:
            progress.go.set()
        job.result()
