"""Sentinel-2 MSI facts used by guided super-resolution: band names, native resolutions, blur kernels.

Blur: each band's point-spread function is modelled as a Gaussian whose modulation transfer
function (MTF) at the band's own Nyquist frequency (½ cycle per native pixel) equals the published
value. For a Gaussian of standard deviation σ (native pixels), MTF(f) = exp(−2π²σ²f²), so
σ = √(−2 ln MTF) / π. The MTF values are the ones used in the Sentinel-2 sharpening literature
(SupReME / S2Sharp, Lanaras et al.): B1 .32, B2 .26, B3 .28, B4 .24, B5 .38, B6 .34, B7 .34,
B8 .26, B8A .33, B9 .26, B11 .22, B12 .23. B10 (cirrus) has no published value there; it gets the
mean of the 60 m bands B1 and B9. Under Wald's protocol the simulated coarser band gets the same σ
in its own (coarser) pixels, which is how the ``gaussian:SIGMA`` kernels of ``core.kernels`` are
specified.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence

from .kernels import sigma_from_mtf

#: native ground sampling distance in metres
RESOLUTION = {
    "B1": 60, "B2": 10, "B3": 10, "B4": 10, "B5": 20, "B6": 20, "B7": 20, "B8": 10,
    "B8A": 20, "B9": 60, "B10": 60, "B11": 20, "B12": 20,
}  # fmt: skip
#: MTF at Nyquist (see the module docstring)
MTF = {
    "B1": 0.32, "B2": 0.26, "B3": 0.28, "B4": 0.24, "B5": 0.38, "B6": 0.34, "B7": 0.34, "B8": 0.26,
    "B8A": 0.33, "B9": 0.26, "B10": 0.29, "B11": 0.22, "B12": 0.23,
}  # fmt: skip
#: band order of a full product
ORDER = ("B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B10", "B11", "B12")

_NAME = re.compile(r"(?:^|[^A-Za-z0-9])B0?(8A|1[0-2]|[1-9])(?![0-9])", re.IGNORECASE)
#: ESA's file names: the MGRS tile (``T33UUB``) and the sensing time (``20170527T100031``), ``T33UUB_20170527T100031_B05.jp2``
_TILE = re.compile(r"(?<![A-Za-z0-9])T(\d{2}[A-Z]{3})(?![A-Za-z0-9])")
_SENSED = re.compile(r"(?<!\d)(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})(?!\d)")


def band_name(text: str | None) -> str | None:
    """The canonical band name (``B1`` … ``B12``, ``B8A``) found in a description or file name, else None.

    ``B05``, ``b5``, ``T33UUB_20170527_B05_20m.jp2`` and ``B8A`` are recognised.
    """
    if not text:
        return None
    match = _NAME.search(text)
    return f"B{match.group(1).upper()}" if match else None


def band_names(path: str, descriptions: Sequence[str | None]) -> list[str | None]:
    """The band names of every band of the file ``path`` (``descriptions``: all its bands'): from the
    descriptions when each names a band, else from the file name when it lists one name per band
    (``…_20m_B05-B06-B07-B8A-B11-B12.tif``) or names the band of a single-band file (ESA's ``…_B05.jp2``,
    whose JPEG 2000 files carry no descriptions); else ``None`` for each band."""
    names = [band_name(d) for d in descriptions]
    if all(names):
        return names
    stem = os.path.basename(path)
    listed = [band_name(m) for m in re.findall(r"B(?:8A|\d{1,2})", stem, flags=re.IGNORECASE)]
    if len(listed) == len(descriptions):
        return listed
    return [band_name(stem)] if len(descriptions) == 1 else [None] * len(descriptions)


def acquisition(path: str) -> tuple[str | None, str | None]:
    """The MGRS tile (``T33UUB``) and the sensing time (``2017-05-27 10:00:31``) that the file name of ``path``
    names, as ESA names band files (``T33UUB_20170527T100031_B05.jp2``; in the format of products before
    December 2016 the time is the granule's processing time, one per product too); ``None`` for what it does not name."""
    stem = os.path.basename(path)
    tile, sensed = _TILE.search(stem), _SENSED.search(stem)
    time = "{}-{}-{} {}:{}:{}".format(*sensed.groups()) if sensed else None
    return (f"T{tile.group(1)}" if tile else None), time


def kernel_spec(band: str) -> str:
    """The ``gaussian:SIGMA`` kernel (SIGMA in low-resolution pixels) modelling ``band``'s blur."""
    return f"gaussian:{sigma_from_mtf(MTF[band]):.4f}"
