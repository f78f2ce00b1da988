"""A Sentinel-2 product's radiometry, read from its product metadata file for ``internal-sr sentinel2``'s output.

ESA's JPEG 2000 band files declare no scale or offset: a product's radiometry is in the metadata file at its ``.SAFE``
root, ``MTD_MSIL1C.xml`` (Level-1C: ``QUANTIFICATION_VALUE`` and, since processing baseline 04.00 of January 2022,
a ``RADIO_ADD_OFFSET`` per band) or ``MTD_MSIL2A.xml`` (Level-2A: ``BOA_QUANTIFICATION_VALUE``, in older products
``L2A_BOA_QUANTIFICATION_VALUE``, and ``BOA_ADD_OFFSET``; the aerosol and water vapour layers' quantification values
are no reflectance's and not read). Products in ESA's format before the compact naming of December 2016 name it after
the product (``S2A_OPER_MTD_SAFL1C_PDMC_20160112T195936_R004_V20160112T155142_20160112T155142.xml``, and
``S2A_USER_MTD_SAFL2A_PDMC_….xml`` for a Level-2A product made by Sen2Cor from one) and hold the same elements
(no offsets: their processing baselines are before 04.00); their granules' own metadata files
(``S2A_OPER_MTD_L1C_TL_….xml``) give geometry only and are not product metadata files. Reflectance = (DN + offset) /
quantification, so a band declares scale = 1 / quantification and offset = offset / quantification (stored DN × scale +
offset is reflectance). An offset's ``band_id`` is the band's index in B1 … B8, B8A, B9 … B12 (``sentinel2.ORDER``:
B8A is 8, as in ESA's masks' ``bandId``, not last as in the file's ``Band_List``); where the file's
``Spectral_Information`` pairs a ``bandId`` with a ``physicalBand`` they must agree with that order. Elements are
found by name wherever they are, in any XML namespace. A file that does not give the radiometry of the bands asked
for is a one-line ``InputError``.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from xml.etree import ElementTree

from .errors import InputError
from .sentinel2 import ORDER, band_name


@dataclass(frozen=True)
class MetadataFormat:
    """A kind of product metadata file: ``pattern``, the regular expression its whole file name matches; ``names``, its
    names as the log and errors give them; ``quantities``, the names its quantification value may have; and
    ``offset_name``, its additive offsets' name."""

    pattern: re.Pattern[str]
    names: tuple[str, ...]
    quantities: tuple[str, ...]
    offset_name: str


#: The product metadata files of Level-1C and Level-2A products, in the compact naming (``MTD_MSIL1C.xml``) and in
#: the format before it (``S2A_OPER_MTD_SAFL1C_….xml``; file class ``OPER``, ``USER`` after Sen2Cor, …). A product's
#: name holds no dot, so a sidecar named after the file (GDAL's ``….xml.aux.xml``, written where QGIS opened the
#: product by it) is none.
METADATA_FORMATS = (
    MetadataFormat(re.compile(r"(?:MTD_MSIL1C|S2[A-Z]_[A-Z]{4}_MTD_SAFL1C_[^.]+)\.xml", re.IGNORECASE),
                   ("MTD_MSIL1C.xml", "S2A_OPER_MTD_SAFL1C_….xml"), ("QUANTIFICATION_VALUE",), "RADIO_ADD_OFFSET"),
    MetadataFormat(re.compile(r"(?:MTD_MSIL2A|S2[A-Z]_[A-Z]{4}_MTD_SAFL2A_[^.]+)\.xml", re.IGNORECASE),
                   ("MTD_MSIL2A.xml", "S2A_USER_MTD_SAFL2A_….xml"),
                   ("BOA_QUANTIFICATION_VALUE", "L2A_BOA_QUANTIFICATION_VALUE"), "BOA_ADD_OFFSET"),
)
#: Every product metadata file's name as the log gives it.
METADATA_NAMES = tuple(name for kind in METADATA_FORMATS for name in kind.names)
#: The processing baseline from which every band has an additive offset (04.00, January 2022).
OFFSET_BASELINE = 4.0
#: How many folders above a band file's own may be its product's root: a ``.SAFE`` root lies four above Level-2A's
#: ``GRANULE/<granule>/IMG_DATA/R10m`` (three above Level-1C's ``IMG_DATA``).
PRODUCT_DEPTH = 4


@dataclass(frozen=True)
class Radiometry:
    """The radiometry in the product metadata file ``path``: its processing ``baseline`` as written (``04.00``;
    ``None``: not named), its ``quantification`` value and each band's additive ``offsets`` (digital numbers; 0 for
    every band of a baseline before 04.00 that lists none), listed as ``offset_name``."""

    path: str
    baseline: str | None
    quantification: float
    offsets: dict[str, float]
    offset_name: str

    def scale_offset(self, band: str) -> tuple[float, float]:
        """The scale and offset ``band`` declares (stored DN × scale + offset is reflectance); a one-line
        ``InputError`` when the file lists no offset for it."""
        if band not in self.offsets:
            raise malformed(self.path, f"lists no {self.offset_name} for band {band} (band_id {ORDER.index(band)})")
        return 1 / self.quantification, self.offsets[band] / self.quantification


def malformed(path: str, why: str) -> InputError:
    """The one-line error for the product metadata file ``path`` that ``why`` says is not the bands' radiometry."""
    return InputError(
        f"the product metadata {path} {why}, so the bands' radiometry (reflectance = (DN + offset) / quantification) is "
        "unknown: download the product again, or give copies of its band files outside it to write digital numbers "
        "with no declared radiometry"
    )


def metadata_format(name: str) -> MetadataFormat | None:
    """The kind of product metadata file named ``name`` (a file name, no folder); ``None``: no product metadata file."""
    return next((kind for kind in METADATA_FORMATS if kind.pattern.fullmatch(name)), None)


def metadata_file(path: str) -> str | None:
    """The product metadata file of the band file ``path``: one named as ``METADATA_FORMATS`` in its folder or in one of
    the ``PRODUCT_DEPTH`` folders above it, the nearest; ``None``: none there. A one-line ``InputError`` when the
    nearest such folder holds two (two products' files in one folder)."""
    folder = os.path.dirname(os.path.abspath(path))
    for _ in range(PRODUCT_DEPTH + 1):
        try:
            names = sorted(os.listdir(folder))
        except OSError:  # a folder above the band file that cannot be listed holds no metadata file we can read
            names = []
        found = [name for name in names
                 if metadata_format(name) is not None and os.path.isfile(os.path.join(folder, name))]
        if len(found) > 1:
            raise InputError(f"{folder} holds two product metadata files, {found[0]} and {found[1]}, so the product of "
                             f"{path} is unknown: keep each product's files in its own folder")
        if found:
            return os.path.join(folder, found[0])
        folder = os.path.dirname(folder)
    return None


def _number(path: str, what: str, text: str | None) -> float:
    """The finite number ``text`` of the element or attribute ``what`` of ``path``."""
    try:
        value = float(text or "")
    except ValueError:
        raise malformed(path, f"gives {what} {text!r}, no number") from None
    if not math.isfinite(value):
        raise malformed(path, f"gives {what} {text!r}, no finite number")
    return value


def _band(path: str, what: str, band_id: str | None) -> str:
    """The band whose index in ``ORDER`` is ``band_id``, the attribute ``what`` of ``path``."""
    if band_id is None or not band_id.strip().isdigit() or int(band_id) >= len(ORDER):
        raise malformed(path, f"gives {what} {band_id!r}, none of 0 … {len(ORDER) - 1} ({ORDER[0]} … {ORDER[-1]})")
    return ORDER[int(band_id)]


def read_radiometry(path: str) -> Radiometry:
    """The radiometry of the product metadata file ``path`` (named as one of ``METADATA_FORMATS``), checked: a readable
    XML file, one positive quantification value, offsets whose ``band_id`` names a band, one offset per band, band
    ids numbered as ``ORDER``, and offsets listed where the processing baseline (04.00 on) adds them."""
    kind = metadata_format(os.path.basename(path))
    if kind is None:
        raise ValueError(f"{path} is named as no product metadata file ({', '.join(METADATA_NAMES)})")
    quantities, offset_name = kind.quantities, kind.offset_name
    try:
        root = ElementTree.parse(path).getroot()
    except (ElementTree.ParseError, OSError) as error:
        raise malformed(path, f"cannot be read as XML ({error})") from None
    elements: dict[str, list[ElementTree.Element]] = {}
    for element in root.iter():
        elements.setdefault(str(element.tag).rpartition("}")[2], []).append(element)
    for info in elements.get("Spectral_Information", []):
        numbered, physical = _band(path, "Spectral_Information bandId", info.get("bandId")), band_name(info.get("physicalBand"))
        if physical not in (None, numbered):
            raise malformed(path, f"pairs bandId {info.get('bandId')} with {physical}, not {numbered} as ESA numbers the "
                                  f"bands ({', '.join(ORDER)})")
    quantifications = {_number(path, name, element.text) for name in quantities for element in elements.get(name, [])}
    if len(quantifications) != 1 or min(quantifications) <= 0:
        found = ", ".join(f"{value:g}" for value in sorted(quantifications)) or "none"
        raise malformed(path, f"gives no one positive {' or '.join(quantities)} (found: {found})")
    offsets: dict[str, float] = {}
    for element in elements.get(offset_name, []):
        band = _band(path, f"{offset_name} band_id", element.get("band_id"))
        value = _number(path, f"{offset_name} of band {band}", element.text)
        if offsets.setdefault(band, value) != value:
            raise malformed(path, f"gives band {band} two {offset_name} values, {offsets[band]:g} and {value:g}")
    baselines = elements.get("PROCESSING_BASELINE", [])
    baseline = (baselines[0].text or "").strip() if baselines else None
    if not offsets:
        if baseline is None:
            raise malformed(path, f"names no PROCESSING_BASELINE and lists no {offset_name}")
        if _number(path, "PROCESSING_BASELINE", baseline) >= OFFSET_BASELINE:
            raise malformed(path, f"names processing baseline {baseline}, from which every band has an additive offset, "
                                  f"but lists no {offset_name}")
        offsets = dict.fromkeys(ORDER, 0.0)
    return Radiometry(path, baseline, quantifications.pop(), offsets, offset_name)
