"""The one base class of every Internal SR Processing algorithm.

An algorithm here only translates: QGIS parameters in, one call into :mod:`internal_sr.core`, the output
path out. The base class owns everything the algorithms share:

* parameter helpers that attach a help string to each parameter (shown in the dialog's tooltips and
  collected into :meth:`shortHelpString`);
* the split between the main thread and the worker: :meth:`prepareAlgorithm` (main thread) resolves the
  input layer to a file path and validates it, and leaves a :class:`Job` made only of plain Python values
  (and copies of the layers its context is to load); :meth:`processAlgorithm` (a background thread when run
  from the toolbox) runs that job, touches no layer, project or canvas, and registers those layers again in
  the context it is given (:func:`load_on_completion`);
* :class:`FeedbackProgress`, the adapter from the engine's progress protocol to ``QgsProcessingFeedback``;
* error translation: any error of the engine becomes a ``QgsProcessingException`` carrying one line
  (``core.errors.error_line``, as on the command line and in the dialog's task), with the traceback of an
  unexpected one in the message log; ``Cancelled`` ends the run with the one-line error "Cancelled: nothing was
  written" (a script's ``processing.run`` raises it rather than returning results without OUTPUT), also for a Cancel
  after the last optimisation step, until the run's files move into place (``core.raster.cancellable_commits``).

The engine (torch, rasterio) is imported only inside a job, so the provider loads without it.
"""

from __future__ import annotations

import os
import re
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from qgis.core import (
    Qgis,
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsCoordinateTransformContext,
    QgsCsException,
    QgsMapLayer,
    QgsMessageLog,
    QgsProcessing,
    QgsProcessingAlgorithm,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingOutputFile,
    QgsProcessingOutputLayerDefinition,
    QgsProcessingParameterBand,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFile,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsProject,
    QgsProperty,
    QgsProviderRegistry,
    QgsPointXY,
    QgsRasterLayer,
    QgsRectangle,
)
from qgis.PyQt.QtCore import QCoreApplication
from qgis.PyQt.QtGui import QIcon

from ..core.config import (
    GAUSSIAN_TERM,
    GUIDE_KERNEL_TERM,
    INT32_MAX,
    KERNEL_FILE_TERM,
    KERNEL_TERM,
    MAX_SCALE,
    OVERLAP_TERM,
    TILE_TERM,
    DIPConfig,
    GuidedDIPConfig,
    KnitworkConfig,
    TileOptions,
    extent_words,
    is_named_pipe,
)
from ..core.deps import install_hint, missing_dependencies
from ..core.errors import Cancelled, InputError, error_line
from ..core.extent import ROUND_ANGLE, boundary_extent, check_not_wrapped

PLUGIN_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ICON_PATH = os.path.join(PLUGIN_DIR, "icon.svg")
HELP_URL = "https://github.com/internal-sr/internal_sr"
#: Toolbox search words shared by the super-resolution algorithms (``InternalSRAlgorithm.TAGS``).
SUPER_RESOLUTION_TAGS = (
    "super-resolution", "upscale", "upsample", "resample", "sharpen", "enhance", "resolution", "zero-shot",
    "internal learning", "satellite",
)
#: Tab of the QGIS "Log Messages" panel where the plugin writes.
LOG_TAG = "Internal SR"

#: Kernel names offered in the KERNEL enum (the engine's spellings).
KERNELS = ("bicubic", "lanczos2", "lanczos3", "gaussian", "landsat")
#: Blur models offered for guided DIP: per band from the Sentinel-2 MTF, or one kernel for every band.
GUIDED_KERNELS = ("sentinel2", *KERNELS)
#: Default Gaussian standard deviation, in low-resolution (input) pixels.
DEFAULT_SIGMA = 0.5
#: Devices offered in the DEVICE enum.
DEVICES = ("auto", "cpu", "cuda", "mps")
#: The most CPU threads the THREADS parameter and the dialog take: enough for any machine, and no typo asks the
#: system for millions of threads.
MAX_THREADS = 1024
#: How the engine's warning that the CPUs are busy names Processing's thread setting (``core.device.cpu_threads``).
THREADS_SETTING = "CPU threads (THREADS)"


def tr(text: str) -> str:
    """Translate ``text`` in the plugin's context."""
    return QCoreApplication.translate("InternalSR", text)


#: How a result layer's name calls each method (``result_layer_name``), by engine configuration type.
METHOD_LABELS = {DIPConfig: "DIP", KnitworkConfig: "Knitworks", GuidedDIPConfig: "guided DIP"}
#: How a result layer's name calls a degraded raster (``result_layer_name``).
DEGRADED_LABEL = "degraded"


def result_layer_name(input_name: str, method: str, scale: int, coarser: bool = False) -> str:
    """The name a run's output raster is added to the map as, by the dialog (``ui.task.CoreJobTask``) and by
    Processing (``Job.layer_name``): the input layer's name, the method (``METHOD_LABELS``, ``DEGRADED_LABEL``) and
    the scale, finer (``S2_T33UUB_20m DIP ×2``) or ``coarser`` (``S2_T33UUB_10m degraded ÷2``)."""
    return f"{input_name} {method} {'÷' if coarser else '×'}{scale}"


def kernel_spec(name: str, sigma: float | None = None, kernel_file: str | None = None) -> str:
    """The engine's kernel string: a ``.npy`` file overrides ``name``; ``gaussian`` takes ``sigma``."""
    if kernel_file:
        return kernel_file
    if name == "gaussian":
        return f"gaussian:{DEFAULT_SIGMA if sigma is None else sigma:g}"
    return name


def one_line(message: object) -> str:
    """``message`` squeezed onto one line (QGIS shows Processing errors in a one-line bar)."""
    return " ".join(str(message).split())


def gdal_dataset_name(source: str) -> bool:
    """Whether a GDAL layer's ``source`` is something the engine opens by name: a file, a virtual file
    system path (``/vsizip/…``) or a driver-prefixed subdataset (``NETCDF:"f.nc":var``, ``GPKG:f.gpkg:t``)."""
    return os.path.isfile(source) or source.startswith("/vsi") or re.match(r"[A-Za-z0-9_]{2,}:", source) is not None


def dataset_file(source: str) -> str | None:
    """The file on disk a GDAL dataset name (:func:`gdal_dataset_name`) reads: ``source`` itself, the archive of
    ``/vsizip//data/a.zip/b.tif`` (or ``/vsizip/{/data/a.zip}/b.tif``, ``/vsitar/…``), the file of
    ``NETCDF:"/data/a.nc":var``, ``GPKG:/data/a.gpkg:table`` or ``GTIFF_DIR:2:/data/a.tif`` (a driver prefix may
    carry numbers); ``None`` when there is none (``/vsicurl/…``, a file that is gone)."""
    path = re.sub(r"^(?:/vsi\w+/|[A-Za-z0-9_]{2,}:(?:\d+:)*)+", "", source)  # virtual file systems and driver prefixes
    path = re.sub(r'["{}]', "", path)
    ends = [match.start() for match in re.finditer(r"[/\\:]", path)] + [len(path)]
    return next((path[:end] for end in ends if os.path.isfile(path[:end])), None)


def open_in_project(paths: Sequence[str], project: QgsProject | None, inputs: Sequence[str] = ()) -> str | None:
    """Why a run must not write ``paths`` (its output and the files beside it, e.g. a loss curve's PNG): a layer of
    ``project`` other than the run's ``inputs`` (sources, which the engine's own check names) reads one of them and
    would be replaced under QGIS's feet; ``None`` when none does.

    The one check of the dialog and of Processing (``read_output``); a path through a symbolic link (or in another
    letter case where the file system ignores it) is the file it names (``core.raster.same_file``), and a layer reads
    the file of its source however QGIS spells it (:func:`layer_file`: with open options, as a subdataset).
    """
    if project is None:
        return None
    from ..core.raster import same_file

    for layer in project.mapLayers().values():
        for path in paths:
            if layer.source() not in inputs and same_file(layer_file(layer), path):
                return tr("{} is open in the project as layer {}: remove the layer or choose another output.").format(
                    path, layer.name()
                )
    return None


def source_path(layer: Any) -> str:
    """A layer's source as its provider decodes its path (open options and layer names removed:
    ``/data/a.tif|option:X=1`` → ``/data/a.tif``); the source itself where the provider gives no path."""
    return QgsProviderRegistry.instance().decodeUri(layer.providerType(), layer.source()).get("path") or layer.source()


def layer_file(layer: Any) -> str:
    """The file a layer of the project reads: :func:`source_path`, and of a GDAL dataset name the file on disk
    (:func:`dataset_file`: ``GTIFF_DIR:1:/data/a.tif`` → ``/data/a.tif``)."""
    path = source_path(layer)
    return dataset_file(path) or path


def without_options(uri: dict[str, Any], options: Sequence[str]) -> str:
    """The dataset name that reads what a GDAL layer of decoded source ``uri`` (its open options removed) opened
    with the open ``options``: a GeoPackage's raster table chosen by ``TABLE=t`` is ``GPKG:path:t`` (the file
    alone is refused when it holds several tables); any other, the source without its options."""
    path = uri.get("path", "")
    tables = [option.split("=", 1)[1] for option in options if option.upper().startswith("TABLE=")]
    if tables and qgis_gdal_driver(path) == "GPKG":
        return f"GPKG:{path}:{tables[0]}"
    return QgsProviderRegistry.instance().encodeUri("gdal", uri)


def qgis_gdal_driver(source: str) -> str | None:
    """The short name of the driver QGIS's GDAL (``osgeo.gdal`` in QGIS's Python) opens ``source`` with, or ``None``."""
    from osgeo import gdal

    dataset = gdal.OpenEx(source, gdal.OF_RASTER)
    return None if dataset is None else dataset.GetDriver().ShortName


def engine_refusal(layer: QgsRasterLayer, what: str = "input raster") -> str | None:
    """Why the engine cannot read the raster layer ``layer`` (the run's ``what``, e.g. "guide raster") although
    QGIS loaded it, in one line; ``None`` when it can, or when it fails for a reason its own checks word (e.g. a
    damaged file).

    The one check of the dialog and of Processing (``read_source``), in one order: a provider other than GDAL,
    a file deleted since the layer was loaded (with or without open options), open options, a source that is no
    dataset name, then what the engine's GDAL cannot open. The engine opens the source of a GDAL layer by name,
    without the layer's open options, with rasterio's GDAL: where rasterio bundles its own (its wheels), another
    library than QGIS's, with other drivers and a ``/vsimem/`` of its own. Needs the engine's dependencies.
    """
    from ..core.raster import ENGINE_GDAL, engine_has_driver, engine_opens

    source = layer.source()
    if layer.providerType() != "gdal":
        return tr(
            "Input raster {} comes from the '{}' provider: only file rasters read by GDAL (e.g. GeoTIFF) "
            "can be super-resolved; export it to GeoTIFF first"
        ).format(layer.name(), layer.providerType())
    gone = missing_file(layer, what)
    if gone is not None:
        return gone
    uri = QgsProviderRegistry.instance().decodeUri("gdal", source)
    options = uri.pop("openOptions", None)
    if options:
        return tr(
            "Input raster {} is opened with the GDAL open options {}, which the engine does not apply: run on {} "
            "itself, added without open options (Layer ▸ Add Layer ▸ Add Raster Layer, Options left empty)"
        ).format(layer.name(), " ".join(options), without_options(uri, options))
    if not gdal_dataset_name(source):
        return tr("Input raster {} is not a file or dataset GDAL opens by name ({}): export it to GeoTIFF first").format(
            layer.name(), source
        )
    if engine_opens(source):
        return None
    if source.startswith("/vsimem/"):
        return tr(
            "Input raster {} ({}) is an in-memory dataset of QGIS, which the engine cannot see: save it to a file "
            "first (Export ▸ Save As… in the layer's context menu)"
        ).format(layer.name(), source)
    driver = qgis_gdal_driver(source)
    if driver is not None and not engine_has_driver(driver):
        return tr(
            "Input raster {} is a raster QGIS opens with its own GDAL ({} driver), but {} has no driver for it: "
            "export it to GeoTIFF first (Raster ▸ Conversion ▸ Translate)"
        ).format(layer.name(), driver, ENGINE_GDAL)
    return None


def missing_file(layer: Any, what: str) -> str | None:
    """The line saying that the file a layer's source names (without open options) is gone, deleted or moved since
    the layer was loaded or its project saved (the layer of ``what``, e.g. "input raster"); ``None`` when it is there
    or the source names no file on disk."""
    path = source_path(layer)
    if os.path.isabs(path) and not gdal_dataset_name(path):
        return tr("The {} {} does not exist (any more): its file {} is missing.").format(what, layer.name(), path)
    return None


def assigned_crs(layer: Any) -> str | None:
    """The CRS set on a raster layer in QGIS when it is valid and not its file's own (``EPSG:…``, else
    WKT), or ``None``: a file without a CRS that QGIS gave one, or a CRS changed in the layer's properties."""
    crs = layer.crs()
    if not crs.isValid() or crs == layer.dataProvider().crs():
        return None
    if crs.authid().startswith("EPSG:"):
        return crs.authid()
    return crs.toWkt(QgsCoordinateReferenceSystem.WktVariant.WKT_PREFERRED_GDAL)  # USER:… ids mean nothing outside QGIS


def engine_extent(layer: Any, rect: Any) -> tuple[float, float, float, float]:
    """``rect`` (a ``QgsRectangle`` in ``layer``'s CRS, as QGIS draws it) as the engine's ``(xmin, ymin, xmax, ymax)``.

    QGIS shows a raster that has neither a geotransform, ground control points nor an RPC model upright, at
    y = −row; the engine places an extent on GDAL's pixel coordinates, y = row. Such a layer's rectangle is
    flipped, after a one-line ``InputError`` if it covers none of the raster's pixels, worded as QGIS draws them
    (the engine's refusal would give the flipped extent and bounds in rows). (QGIS warps a raster with ground
    control points or RPCs only, whose extent the engine refuses.)
    """
    from osgeo import gdal

    dataset = gdal.OpenEx(layer.source(), gdal.OF_RASTER)
    plain = (
        dataset is not None and dataset.GetGeoTransform(can_return_null=True) is None and dataset.GetGCPCount() == 0
        and not dataset.GetMetadata("RPC")
    )
    if plain:
        from affine import Affine

        from ..core.grid import Grid

        drawn = Grid(dataset.RasterXSize, dataset.RasterYSize, Affine(1.0, 0.0, 0.0, 0.0, -1.0, 0.0))  # y = −row
        drawn.covering_window((rect.xMinimum(), rect.yMinimum(), rect.xMaximum(), rect.yMaximum()), layer.source(),
                              "as QGIS draws it without georeferencing, y = −row")
        return rect.xMinimum(), -rect.yMaximum(), rect.xMaximum(), -rect.yMinimum()
    return rect.xMinimum(), rect.yMinimum(), rect.xMaximum(), rect.yMaximum()


#: Points per edge of an area's boundary transformed into a raster's CRS (``layer_extent``): dense enough that no
#: step between neighbours comes near half the area's width in any continuous transformation (``boundary_extent``),
#: as QGIS's own transformBoundingBox samples about 30 per edge.
BOUNDARY_POINTS = 32


def _boundary(rect: Any) -> list[tuple[float, float]]:
    """``rect``'s boundary, ``BOUNDARY_POINTS`` points per edge, in order round it."""
    x0, y0, x1, y1 = rect.xMinimum(), rect.yMinimum(), rect.xMaximum(), rect.yMaximum()
    t = [i / BOUNDARY_POINTS for i in range(BOUNDARY_POINTS)]
    return ([(x0 + (x1 - x0) * f, y0) for f in t] + [(x1, y0 + (y1 - y0) * f) for f in t]
            + [(x1 - (x1 - x0) * f, y1) for f in t] + [(x0, y1 - (y1 - y0) * f) for f in t])


def layer_extent(layer: Any, rect: Any, given: tuple[Any, Any] | None = None,
                 transform_context: Any = None) -> tuple[float, float, float, float]:
    """The engine's extent ``(xmin, ymin, xmax, ymax)`` in ``layer``'s CRS for an area that QGIS made ``rect``
    (a ``QgsRectangle`` in ``layer``'s CRS), the one conversion of the Processing algorithms and the dialog.

    QGIS transforms an area given in another CRS as one box (``transformBoundingBox``): an area across the
    antimeridian, given in a CRS continuous there, comes back spanning every longitude but its own, which the run
    took as asked (on a raster across 180°, only its part west of 180°, without a word). ``given``: the area as
    given and its CRS, where QGIS transformed it (Processing): its boundary is transformed point by point and
    placed where the raster has it, or refused in one line (``core.extent.boundary_extent``); an area that crosses
    nothing keeps QGIS's box. Without it (the dialog's extent box, whose widget transforms the area out of sight)
    a box of that shape is refused (``core.extent.check_not_wrapped``). The result goes through ``engine_extent``.
    """
    crs = layer.crs()
    where = layer.source()
    bounds = layer.extent()
    bounds = (bounds.xMinimum(), bounds.yMinimum(), bounds.xMaximum(), bounds.yMaximum())
    if given is not None and crs.isValid() and given[1].isValid() and given[1] != crs:
        transform = QgsCoordinateTransform(given[1], crs, transform_context or QgsCoordinateTransformContext())
        transform.setBallparkTransformsAreAppropriate(True)  # as QGIS transforms extents
        try:
            points = [transform.transform(QgsPointXY(x, y)) for x, y in _boundary(given[0])]
        except QgsCsException:
            points = []  # outside the CRS's area of use: QGIS's box
        box = boundary_extent([p.x() for p in points], [p.y() for p in points], bounds, where,
                              ROUND_ANGLE if crs.isGeographic() else None) if points else None
        if box is not None:
            rect = QgsRectangle(*box)
    elif crs.isGeographic():
        check_not_wrapped((rect.xMinimum(), rect.yMinimum(), rect.xMaximum(), rect.yMaximum()), bounds, where)
    return engine_extent(layer, rect)


def heading_anchor(heading: str) -> str:
    """The anchor a README heading gets on the repository's page: lower case, punctuation dropped,
    spaces as hyphens (``Degrade (blur and downsample)`` → ``degrade-blur-and-downsample``)."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def band_number(item: Any) -> int | None:
    """One item of a band parameter as a band number: a whole number, or a string of digits; ``None`` for
    anything else (``2.9``, ``"two"``)."""
    if isinstance(item, str):
        return int(item) if item.strip().isdecimal() else None
    try:
        number = float(item)
    except (TypeError, ValueError):
        return None
    return int(number) if number.is_integer() else None


def is_unset(value: Any) -> bool:
    """Whether an optional parameter's value means "not given": absent, ``None`` or ``""``."""
    return value is None or value == ""


def choice_option(definition: QgsProcessingParameterEnum, value: Any) -> str | None:
    """The option a choice parameter's ``value`` names: the option itself, or its 0-based index as an int or a
    string of digits (the numbers ``processing.algorithmHelp`` lists); ``None`` for anything else."""
    options = definition.options()
    text = str(value).strip()
    if text in options:
        return text
    if text.isdecimal() and int(text) < len(options):
        return options[int(text)]
    return None


def choice_error(definition: QgsProcessingParameterEnum, value: Any) -> str:
    """The one line refusing ``value`` for a choice parameter: the options it takes, by name or index."""
    options = definition.options()
    return tr("{} ({}) must be one of {} (or its number, 0 to {}), got {!r}").format(
        definition.description(), definition.name(), ", ".join(options), len(options) - 1, value
    )


# ----------------------------------------------------------------------------------------------
# Enum values that moved into ``Qgis`` in later QGIS versions (scoped in QGIS 4): pick what exists.


def _advanced_flag() -> Any:
    flags = getattr(Qgis, "ProcessingParameterFlag", None)
    return flags.Advanced if flags is not None else QgsProcessingParameterDefinition.Flag.FlagAdvanced


def _number_type(integer: bool) -> Any:
    types = getattr(Qgis, "ProcessingNumberParameterType", None)
    if types is not None:
        return types.Integer if integer else types.Double
    return QgsProcessingParameterNumber.Type.Integer if integer else QgsProcessingParameterNumber.Type.Double


def _file_behavior() -> Any:
    behaviors = getattr(Qgis, "ProcessingFileParameterBehavior", None)
    return behaviors.File if behaviors is not None else QgsProcessingParameterFile.Behavior.File


# ----------------------------------------------------------------------------------------------


class FeedbackProgress:
    """The engine's ``Progress`` protocol over a ``QgsProcessingFeedback`` (callable from any thread).

    Fractions become the 0–100 progress bar; messages become the progress text, at most one every
    ``text_interval`` seconds (QGIS also writes progress text to the log, so per-step messages would
    flood it); ``info`` goes to the log; ``cancelled`` asks the feedback.
    """

    def __init__(self, feedback: QgsProcessingFeedback | None, text_interval: float = 2.0) -> None:
        self.feedback = feedback
        self.text_interval = text_interval
        self._last_text = ""
        self._last_text_time = float("-inf")

    def report(self, fraction: float, message: str = "") -> None:
        if self.feedback is None:
            return
        self.feedback.setProgress(100.0 * min(max(float(fraction), 0.0), 1.0))
        now = time.monotonic()
        if message and message != self._last_text and now - self._last_text_time >= self.text_interval:
            self._last_text, self._last_text_time = message, now
            self.feedback.setProgressText(message)

    def info(self, message: str) -> None:
        if self.feedback is not None:
            self.feedback.pushInfo(message)

    def cancelled(self) -> bool:
        return self.feedback is not None and self.feedback.isCanceled()


@dataclass(frozen=True)
class RasterSource:
    """The input raster resolved on the main thread: a path GDAL/rasterio can open, and its shape."""

    path: str
    name: str
    band_count: int
    width: int
    height: int
    #: The CRS set on the layer in QGIS when it is not the file's own (``EPSG:…`` or WKT), else ``None``:
    #: the engine assigns it (``IOOptions.crs``), so extents, grids and outputs follow what QGIS shows.
    crs: str | None = None


@dataclass(frozen=True)
class RunOptions:
    """DEVICE, SEED, TILE_SIZE, OVERLAP, WARM_START and FLOAT32 as read from the parameters."""

    device: str
    seed: int
    tiles: TileOptions
    warm_start: bool
    float32: bool

    def config_fields(self) -> dict[str, Any]:
        """The ``InternalLearningConfig`` fields these options set."""
        return dict(seed=self.seed, device=self.device, tiles=self.tiles, warm_start=self.warm_start)


@dataclass
class Job:
    """What :meth:`InternalSRAlgorithm.processAlgorithm` runs: plain Python values only.

    run: calls the engine with a ``Progress`` and returns its ``RunResult``.
    settings: label → value, logged before the run.
    outputs: further outputs (parameter name → value) returned beside OUTPUT when the run succeeds; OUTPUT too
    where the run's ``output_path`` is not its value.
    layers_to_load: path → ``QgsProcessingContext.LayerDetails`` (copies) of what the preparing context was to
    load on completion, set by ``prepareAlgorithm`` for :meth:`InternalSRAlgorithm.processAlgorithm`.
    threads: THREADS (``None``: automatic), set by ``prepareAlgorithm``: the run sets PyTorch's CPU threads
    (``core.device.cpu_threads``) in the thread it runs in.
    layer_name: the name of the OUTPUT layer loaded on completion (``result_layer_name``; ``prepareAlgorithm`` gives
    it to the context: :func:`name_output_layer`); ``""`` for an algorithm that writes no raster.
    """

    run: Callable[[Any], Any]
    settings: dict[str, str] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    layers_to_load: dict[str, QgsProcessingContext.LayerDetails] = field(default_factory=dict)
    threads: int | None = None
    layer_name: str = ""


def extent_text(extent: tuple[float, float, float, float] | None, enlarged: str = "whole pixels") -> str:
    """How the settings log shows an extent; ``enlarged``: what it is enlarged to (as ``add_extent`` says)."""
    if extent is None:
        return tr("whole raster")
    return tr("{} in the raster's CRS (enlarged to {})").format(extent_words(extent), enlarged)


def input_settings(source: RasterSource, bands: tuple[int, ...] | None, extent: str) -> dict[str, str]:
    """The settings log's first lines for a job on one raster: ``source`` with its size and band count, the
    ``bands`` chosen (numbered from 1; ``None``: all) and the ``extent`` as ``extent_text`` words it."""
    return {
        tr("Input"): f"{source.name} ({source.width} × {source.height} pixels, {source.band_count} bands)",
        tr("Bands"): ", ".join(map(str, bands)) if bands else tr("all"),
        tr("Extent"): extent,
    }


def tiles_text(asked: TileOptions, used: TileOptions, width: int, height: int) -> str:
    """How the settings log of every algorithm that tiles (DIP, Knitworks, guided DIP, evaluate's method) shows the
    tiles of a ``width × height`` input (on the tiled grid): those ``used`` (the engine's check: ``asked``, grown
    where the kernel reaches past a tile's overlap, ``core.tiling.kernel_tiles``) with their count, as the run's
    log gives them (``core.tiling.tiles_words``: ``98 tiles of 128 px with 16 px overlap``), after those ``asked``
    when they differ."""
    from ..core.tiling import tiles_words

    words = tiles_words(width, height, used)
    if used == asked:
        return words
    return tr("{} px with {} px overlap asked → {} used").format(asked.size, asked.overlap, words)


#: How the out-of-memory hints of ``core.errors.error_line`` name the parameters that help.
TILE_HINT, DEVICE_HINT = "Tile size (TILE_SIZE)", "Device cpu"
#: The engine's messages name kernels and tile settings as the command line takes them (``core.config.GAUSSIAN_TERM``,
#: ``TILE_TERM``, …): here, what the algorithms' parameters are instead (``core.errors.error_line``'s ``terms``).
PROCESSING_TERMS = {GAUSSIAN_TERM: "gaussian (with SIGMA)", KERNEL_FILE_TERM: "a kernel file (KERNEL_FILE)",
                    TILE_TERM: TILE_HINT, OVERLAP_TERM: "Tile overlap (OVERLAP)", KERNEL_TERM: "Blur kernel (KERNEL)",
                    GUIDE_KERNEL_TERM: "Guide blur kernel (GUIDE_KERNEL)"}


@contextmanager
def engine_errors() -> Iterator[None]:
    """Turn any engine error into a ``QgsProcessingException`` with one line (``core.errors.error_line``), in
    Processing's terms (``PROCESSING_TERMS``).

    The traceback of an error other than ``InputError`` goes to the message log (tab ``LOG_TAG``).
    ``QgsProcessingException`` and ``Cancelled`` pass through.
    """
    try:
        yield
    except (QgsProcessingException, Cancelled):
        raise
    except Exception as error:  # noqa: BLE001 (the user sees one line, the log keeps the traceback)
        if not isinstance(error, InputError):
            QgsMessageLog.logMessage(traceback.format_exc(), LOG_TAG, Qgis.MessageLevel.Critical)
        raise QgsProcessingException(error_line(error, TILE_HINT, DEVICE_HINT, PROCESSING_TERMS)) from error


def given_output_path(value: Any, context: QgsProcessingContext) -> str:
    """The path an output parameter's value gives, resolved without registering a layer to load in ``context``
    (as ``parameterAsOutputLayer`` would): a string, or the sink of a ``QgsProcessingOutputLayerDefinition``
    (what the toolbox passes), an expression evaluated in ``context``'s expression context as QGIS evaluates it
    for the run; ``""`` for a temporary output or no value."""
    if isinstance(value, QgsProcessingOutputLayerDefinition):
        value = value.sink
    if isinstance(value, QgsProperty):
        value, _ok = value.valueAsString(context.expressionContext(), "")
    if not isinstance(value, str) or value == QgsProcessing.TEMPORARY_OUTPUT:
        return ""
    return value


def check_output(path: str, inputs: Sequence[str]) -> None:
    """``core.raster.check_output_paths``: ``path`` is no input and no folder, in a writable folder
    (``""``: not known yet, nothing to check)."""
    if path:
        from ..core.raster import check_output_paths

        check_output_paths([path], list(inputs))


def load_on_completion(context: QgsProcessingContext, layers: dict[str, QgsProcessingContext.LayerDetails]) -> None:
    """Register ``layers`` (path → ``LayerDetails``) in ``context`` for loading on completion, unless it has them.

    ``parameterAsOutputLayer`` registers an output layer in the context that prepares the run (the main
    thread). Run on another thread, as the toolbox runs it, ``processAlgorithm`` gets a context of QGIS's own,
    whose layers to load then *replace* the preparing context's (``QgsProcessingContext.takeResultsFrom``):
    without this the output was written but never added to the map. In one thread (``processing.run``)
    ``context`` is the preparing one and nothing changes.
    """
    for path, details in layers.items():
        if not context.willLoadLayerOnCompletion(path):
            context.addLayerToLoadOnCompletion(path, details)


def name_output_layer(context: QgsProcessingContext, output: QgsProcessingParameterDefinition, name: str) -> None:
    """Have the layer ``context`` loads on completion for the raster destination ``output`` named ``name``.

    ``parameterAsOutputLayer`` registers it under the name given with the destination (a model's output name),
    else under the parameter's description: ``processing.runAndLoadResults`` and the toolbox named every result
    "Super-resolved raster" wherever QGIS does not take the file's name (a temporary output or a file in the temporary
    folder, or *Prefer output filename for layer names* off). A name given with the destination is kept.
    """
    for path, details in context.layersToLoadOnCompletion().items():
        if details.outputName == output.name() and details.name == output.description():
            details.name = name
            context.addLayerToLoadOnCompletion(path, details)  # replaces the details registered for path


class InternalSRAlgorithm(QgsProcessingAlgorithm):
    """Base of the Internal SR algorithms: parameter helpers, threading split, progress and errors.

    Subclasses set :attr:`ALGORITHM_ID`, :attr:`DISPLAY_NAME` and :attr:`SUMMARY`, declare their
    parameters in ``initAlgorithm`` with the ``add_*`` helpers, and implement :meth:`prepare_job`.
    """

    INPUT = "INPUT"
    BANDS = "BANDS"
    SCALE = "SCALE"
    KERNEL = "KERNEL"
    SIGMA = "SIGMA"
    KERNEL_FILE = "KERNEL_FILE"
    DEVICE = "DEVICE"
    SEED = "SEED"
    TILE_SIZE = "TILE_SIZE"
    WARM_START = "WARM_START"
    OVERLAP = "OVERLAP"
    FLOAT32 = "FLOAT32"
    EXTENT = "EXTENT"
    GUIDE = "GUIDE"
    GUIDE_BANDS = "GUIDE_BANDS"
    GUIDE_KERNEL = "GUIDE_KERNEL"
    THREADS = "THREADS"
    OUTPUT = "OUTPUT"
    LOSS_CURVE = "LOSS_CURVE"

    ALGORITHM_ID = ""
    DISPLAY_NAME = ""
    #: One sentence: the toolbox's tooltip (``shortDescription``).
    DESCRIPTION = ""
    #: HTML paragraphs placed before the parameter list in the help panel.
    SUMMARY = ""
    #: Words the toolbox's search finds the algorithm by, beside its name.
    TAGS: tuple[str, ...] = ()
    #: The README heading that documents the algorithm (``helpUrl`` links to it).
    README_SECTION = ""

    def __init__(self) -> None:
        super().__init__()
        self._help: list[tuple[str, str]] = []
        self._job: Job | None = None
        self._checking = False

    # -- identity ---------------------------------------------------------------------------

    def name(self) -> str:
        return self.ALGORITHM_ID

    def displayName(self) -> str:  # noqa: N802
        return tr(self.DISPLAY_NAME)

    def group(self) -> str:
        return tr("Super-resolution")

    def groupId(self) -> str:  # noqa: N802
        return "superresolution"

    def icon(self) -> QIcon:
        return QIcon(ICON_PATH)

    def helpUrl(self) -> str:  # noqa: N802
        return f"{HELP_URL}#{heading_anchor(self.README_SECTION)}"

    def shortDescription(self) -> str:  # noqa: N802
        return tr(self.DESCRIPTION)

    def tags(self) -> list[str]:
        return [tr(tag) for tag in self.TAGS]

    def createInstance(self) -> InternalSRAlgorithm:  # noqa: N802
        return type(self)()

    def shortHelpString(self) -> str:  # noqa: N802
        """The summary, every parameter with its help, and the outputs that are no parameter (a loss curve, scores),
        which a model passes on and a script reads from the results by name."""
        items = "".join(f"<li><b>{label}</b>: {text}</li>" for label, text in self._help)
        outputs = "".join(
            f"<li><b>{output.description()}</b> ({output.name()})</li>"
            for output in self.outputDefinitions() if self.parameterDefinition(output.name()) is None
        )
        further = f"<h3>{tr('Further outputs')}</h3><ul>{outputs}</ul>" if outputs else ""
        return f"{tr(self.SUMMARY)}<h3>{tr('Parameters')}</h3><ul>{items}</ul>{further}"

    # -- parameter helpers ------------------------------------------------------------------

    def add_parameter(self, parameter: QgsProcessingParameterDefinition, help_text: str, advanced: bool = False) -> None:
        """Add ``parameter`` with its help (tooltip and help panel), optionally under Advanced."""
        help_text = tr(help_text)
        if hasattr(parameter, "setHelp"):
            parameter.setHelp(help_text)
        if advanced:
            parameter.setFlags(parameter.flags() | _advanced_flag())
        self._help.append((parameter.description(), help_text))
        self.addParameter(parameter)

    def add_raster_input(
        self, help_text: str, name: str = "INPUT", description: str = "Input raster", optional: bool = False
    ) -> None:
        self.add_parameter(QgsProcessingParameterRasterLayer(name, tr(description), None, optional), help_text)

    def add_bands(
        self,
        name: str = "BANDS",
        parent: str = "INPUT",
        description: str = "Bands",
        help_text: str = "Bands to process, numbered from 1. Leave empty to process every band. The output has "
        "these bands, in this order, with their names.",
    ) -> None:
        self.add_parameter(
            QgsProcessingParameterBand(name, tr(description), None, parent, optional=True, allowMultiple=True), help_text
        )

    def add_int(
        self,
        name: str,
        description: str,
        default: int,
        help_text: str,
        minimum: int | None = None,
        maximum: int | None = None,
        advanced: bool = False,
    ) -> None:
        self.add_number(name, description, default, help_text, minimum, maximum, advanced)

    def add_number(
        self,
        name: str,
        description: str,
        default: int | float,
        help_text: str,
        minimum: int | float | None = None,
        maximum: int | float | None = None,
        advanced: bool = False,
    ) -> None:
        """A number parameter: an integer when ``default`` is an ``int``, a double otherwise. An integer's
        ``maximum`` is at most ``INT32_MAX``: QGIS reads a larger one as 0 (``parameterAsInt`` overflows)."""
        integer = isinstance(default, int)
        parameter = QgsProcessingParameterNumber(name, tr(description), _number_type(integer), default)
        if minimum is not None:
            parameter.setMinimum(minimum)
        if integer:
            maximum = INT32_MAX if maximum is None else min(maximum, INT32_MAX)
        if maximum is not None:
            parameter.setMaximum(maximum)
        self.add_parameter(parameter, help_text, advanced)

    def add_choice(
        self, name: str, description: str, options: tuple[str, ...], help_text: str, advanced: bool = False
    ) -> None:
        """An enum whose values are the option strings themselves (``"KERNEL": "lanczos3"`` in scripts); the
        index of an option (``"KERNEL": 2``) is taken too (:meth:`read_choice`)."""
        parameter = QgsProcessingParameterEnum(name, tr(description), list(options), False, options[0], False)
        parameter.setUsesStaticStrings(True)
        self.add_parameter(parameter, help_text, advanced)

    def add_bool(self, name: str, description: str, default: bool, help_text: str, advanced: bool = False) -> None:
        self.add_parameter(QgsProcessingParameterBoolean(name, tr(description), default), help_text, advanced)

    def add_scale(
        self,
        help_text: str = "Integer refinement of the pixel grid: 2 turns 20 m pixels into 10 m pixels (and doubles width "
        "and height). 2 is the safe choice; 3 and 4 work but invent more detail.",
        maximum: int | None = MAX_SCALE,
    ) -> None:
        """SCALE, an integer from 2; ``maximum`` None for no upper bound (degrading has no memory limit to guard)."""
        self.add_int(self.SCALE, "Scale factor", 2, help_text, minimum=2, maximum=maximum)

    def add_kernel(self, advanced: bool = False, options: tuple[str, ...] = KERNELS, extra_help: str = "") -> None:
        """KERNEL, SIGMA and KERNEL_FILE: the blur of the sensor model, shared by every method and degrade."""
        self.add_choice(
            self.KERNEL,
            "Blur kernel",
            options,
            extra_help + "How one low-resolution pixel is made from the high-resolution scene. 'bicubic' suits most "
            "resampled products; 'lanczos2'/'lanczos3' are sharper; 'gaussian' models an optical sensor's "
            "point spread (width set by Gaussian sigma); 'landsat' is the Gaussian assumed for Landsat bands "
            "(MTF 0.3 at Nyquist).",
            advanced,
        )
        sigma = QgsProcessingParameterNumber(
            self.SIGMA, tr("Gaussian sigma (low-resolution pixels)"), _number_type(False), DEFAULT_SIGMA, True, 0.05, 10.0
        )
        self.add_parameter(
            sigma,
            "Standard deviation of the 'gaussian' kernel in low-resolution pixels (the input's when super-resolving, "
            "the output's when degrading); 0.4–0.7 is typical of multispectral sensors. Ignored by the other kernels.",
            advanced,
        )
        self.add_parameter(  # any file name, as on the command line: the engine says what is wrong with a file
            QgsProcessingParameterFile(
                self.KERNEL_FILE, tr("Kernel file (.npy)"), _file_behavior(), "", None, True,
                tr("NumPy arrays (*.npy);;All files (*)"),
            ),
            "Optional 2-D kernel of odd size saved with NumPy (for example estimated by KernelGAN), for this "
            "scale. When set it replaces the blur kernel above. A kernel whose centre of mass is off the centre "
            "of a low-resolution pixel's block (e.g. centred on its central tap at ×2) is moved onto it, so the "
            "output is not shifted; a kernel KernelGAN estimated for another scale is refused.",
            advanced,
        )

    def add_device(self) -> None:
        """DEVICE, and THREADS beside it (``add_threads``)."""
        self.add_choice(
            self.DEVICE,
            "Device",
            DEVICES,
            "Where the networks run: 'auto' takes a CUDA GPU, then Apple MPS, then the CPU, and logs its choice.",
        )
        self.add_threads()

    def add_threads(self) -> None:
        """THREADS: PyTorch's CPU threads for the run (0: automatic), which every algorithm running torch takes."""
        self.add_int(
            self.THREADS,
            "CPU threads (0 = automatic)",
            0,
            "PyTorch's CPU threads for this run, set for the run only. 0: PyTorch's own choice (OMP_NUM_THREADS, else "
            "the cores), the same on every run of this machine, so that a seed repeats. On a machine busy with other "
            "work use 1, or as many as cores are idle: PyTorch's threads wait for each other, spinning, and one that "
            "shares a core with other work holds them all up, which can make a run many times slower (the log "
            "warns when the CPUs look busy). The same seed with the same thread count gives the same output.",
            minimum=0,
            maximum=MAX_THREADS,
            advanced=True,
        )

    def add_seed(self) -> None:
        self.add_int(self.SEED, "Random seed", 0, "Makes a run repeatable on the same device.", minimum=0, advanced=True)

    def add_run_options(self, pixels: str = "input", float32: bool = True) -> None:
        """DEVICE, FLOAT32 (unless ``float32`` is false: no raster is written), SEED, TILE_SIZE, OVERLAP and
        WARM_START of the tile-by-tile methods; ``pixels`` names the tiled grid."""
        self.add_device()
        if float32:
            self.add_bool(
                self.FLOAT32,
                "Write Float32",
                False,
                f"Write 32-bit floating point instead of the {pixels}'s data type (which is otherwise kept, clipped to its range).",
            )
        self.add_seed()
        self.add_int(
            self.TILE_SIZE,
            f"Tile size ({pixels} pixels)",
            TileOptions().size,
            f"Edge of the square {pixels} tiles optimised one at a time; memory grows with its square. 128 suits "
            "CPUs and most GPUs; 256 on a large GPU. 128, the default, grows where a wide blur kernel needs (the log "
            "says so), typed or not: this setting always has a value; another size too small for the kernel is "
            "refused, naming the smallest that works.",
            minimum=16,
            advanced=True,
        )
        self.add_int(
            self.OVERLAP,
            f"Tile overlap ({pixels} pixels)",
            TileOptions().overlap,
            "Pixels shared by neighbouring tiles and blended smoothly to hide seams; less than half the tile size. "
            "Raised to twice a wide blur kernel's reach past a tile's side where less, whatever value is set.",
            minimum=0,
            advanced=True,
        )
        self.add_bool(
            self.WARM_START, "Warm-start tiles", True,
            "Tiles after the first start from the first tile's trained networks and run three quarters of the steps "
            "(measured for each method in the README: within about 0.1 dB of a fresh tile, either way, for a quarter "
            "less time). Off: every tile starts afresh with all its steps.", advanced=True,
        )

    def add_extent(
        self, raster: str = "input raster", enlarged: str = "whole input pixels",
        use: str = "the output covers exactly those pixels",
    ) -> None:
        """EXTENT: the optional area to process, in any CRS (transformed to the ``raster``'s); ``enlarged`` says
        what it is enlarged to, ``use`` what the algorithm does with what it covers."""
        self.add_parameter(
            QgsProcessingParameterExtent(self.EXTENT, tr("Extent (optional)"), None, True),
            "Process only this area (the map canvas extent, a layer's extent or a rectangle drawn on the map), "
            f"in any CRS: it is transformed to the {raster}'s CRS and enlarged to {enlarged}, and "
            f"{use}. Empty: the whole raster. On a CPU, this is how to keep a run short.",
        )

    def add_output(self, description: str, help_text: str) -> None:
        self.add_parameter(QgsProcessingParameterRasterDestination(self.OUTPUT, tr(description)), help_text)

    def add_loss_curve_output(self) -> None:
        """LOSS_CURVE: the training loss PNG written beside the output (``core.raster.loss_curve_path``)."""
        self.addOutput(QgsProcessingOutputFile(self.LOSS_CURVE, tr("Training loss curve (PNG beside the output)")))

    def add_file_output(self, name: str, description: str, file_filter: str, help_text: str, optional: bool = False) -> None:
        """A file (not raster) destination, e.g. a ``.npy`` kernel or an HTML report."""
        self.add_parameter(QgsProcessingParameterFileDestination(name, tr(description), file_filter, None, optional), help_text)

    # -- reading parameters (main thread) ---------------------------------------------------

    def read_source(self, parameters: dict[str, Any], context: QgsProcessingContext, name: str = "INPUT") -> RasterSource:
        """Resolve a raster parameter to a file GDAL can read; raise a one-line ``QgsProcessingException`` if not."""
        layer = self.raster_layer(parameters, name, context)
        if layer is None or not layer.isValid():
            raise QgsProcessingException(self._not_a_raster(parameters, context, name))
        refusal = engine_refusal(layer, self.named_in_text(name))
        if refusal is not None:
            raise QgsProcessingException(refusal)
        return RasterSource(layer.source(), layer.name(), layer.bandCount(), layer.width(), layer.height(), assigned_crs(layer))

    def raster_layer(self, parameters: dict[str, Any], name: str, context: QgsProcessingContext) -> QgsRasterLayer | None:
        """The raster parameter ``name`` as a layer: what QGIS resolves (a project layer, a file path), else a
        GDAL dataset name QGIS does not load by itself (``/vsizip/a.zip/b.tif``, ``NETCDF:"a.nc":band``, as the
        command line takes), loaded into the context's temporary layer store; ``None`` when neither opens."""
        value = parameters.get(name)
        if isinstance(value, str) and is_named_pipe(value):
            return None  # QGIS would wait on it for ever; _not_a_raster says what it is (core.raster.open_info)
        layer = self.parameterAsRasterLayer(parameters, name, context)
        if layer is None and isinstance(value, str) and value.strip() and not os.path.exists(value):
            store = context.temporaryLayerStore()
            loaded = [known for known in store.mapLayers().values() if known.source() == value]  # opened by an earlier call
            dataset = loaded[0] if loaded else QgsRasterLayer(value, value, "gdal")
            if dataset.isValid():
                if not loaded:
                    store.addMapLayer(dataset)
                layer = dataset
        return layer

    def named_in_text(self, name: str) -> str:
        """Parameter ``name``'s description as a sentence names it: "Guide raster" → "guide raster"."""
        description = self.parameterDefinition(name).description()
        return description[:1].lower() + description[1:]

    def _not_a_raster(self, parameters: dict[str, Any], context: QgsProcessingContext, name: str = "INPUT") -> str:
        """Why the raster parameter ``name`` cannot be used: that its file is gone, for a layer QGIS could not load
        (given as a layer, or by the ID or name of a layer of the context's project: QGIS keeps a project's layers
        whose files are missing, unloaded); GDAL's reason for a file (e.g. a truncated GeoTIFF) when the engine can
        tell it; else a generic message."""
        value = parameters.get(name)
        project = context.project()
        if isinstance(value, str) and project is not None:
            value = project.mapLayer(value) or next(iter(project.mapLayersByName(value)), value)
        if isinstance(value, QgsMapLayer) and not value.isValid():
            gone = missing_file(value, self.named_in_text(name))
            if gone is not None:
                return gone
        if isinstance(value, str) and os.path.exists(value) and not os.path.isdir(value) and not missing_dependencies():
            from ..core.raster import open_info

            try:
                open_info(value)
            except InputError as error:
                return one_line(error)
        if isinstance(value, str) and not os.path.exists(value):
            file, bar, options = value.partition("|")
            if bar and os.path.isfile(file):  # a vector layer's source spelling (path|layername=…)
                return tr(
                    "Input {} is not a raster QGIS can open: '|{}' chooses vector layers only; give the file {} itself, "
                    "or one raster in it by GDAL's name (e.g. GPKG:{}:TABLE)"
                ).format(value, options, file, file)
            return tr("Input {} does not exist (neither a file, a layer of the project nor a dataset GDAL opens)").format(value)
        shown = value.name() if hasattr(value, "name") else one_line(value)
        return tr("Input {} is not a raster QGIS can open ({} must be a raster layer or raster file)").format(shown, name)

    def read_bands(
        self, parameters: dict[str, Any], context: QgsProcessingContext, source: RasterSource, name: str = "BANDS"
    ) -> tuple[int, ...] | None:
        """A band parameter as 1-based indices checked against ``source`` (``None``: every band).

        A string may separate the numbers by ``;`` (QGIS's form), commas or spaces: ``"1;2"``, ``"1,2"``. A
        number that is not whole (``2.9``) is refused, not rounded as QGIS's ``parameterAsInts`` would.
        """
        value = parameters.get(name)
        if isinstance(value, str):
            value = re.split(r"[;,\s]+", value.strip()) if value.strip() else []
        elif isinstance(value, (int, float)):
            value = [value]
        if isinstance(value, (list, tuple)):
            numbers = [band_number(item) for item in value]
            for item, number in zip(value, numbers):
                if number is None:
                    raise QgsProcessingException(
                        tr("{} ({}) must be whole band numbers such as 1;2;3, got {!r}").format(
                            self.parameterDefinition(name).description(), name, item
                        )
                    )
            parameters = {**parameters, name: numbers}
        bands = tuple(int(b) for b in self.parameterAsInts(parameters, name, context))
        for band in bands:
            if not 1 <= band <= source.band_count:
                raise QgsProcessingException(
                    tr("Band {} is out of range: {} has bands 1 to {}").format(band, source.name, source.band_count)
                )
        return bands or None

    def read_input(
        self, parameters: dict[str, Any], context: QgsProcessingContext
    ) -> tuple[RasterSource, tuple[int, ...] | None, int]:
        """INPUT, BANDS and SCALE, the parameters every algorithm starts from, checked."""
        source = self.read_source(parameters, context)
        return source, self.read_bands(parameters, context, source), self.read_scale(parameters, context)

    def read_extent(
        self, parameters: dict[str, Any], context: QgsProcessingContext, name: str = "INPUT"
    ) -> tuple[float, float, float, float] | None:
        """EXTENT in the CRS of raster parameter ``name`` as ``(xmin, ymin, xmax, ymax)`` (``None``: not set).

        On a raster without a CRS an extent is taken in the raster's own coordinates: one without a CRS, or in the
        project's (the map draws such a raster's coordinates as the project's); one in another CRS is refused in one
        line (QGIS would hand it over untransformed, to be read as the raster's coordinates). The engine's checks in
        ``prepare_job`` say when it does not overlap the raster.
        """
        if is_unset(parameters.get(self.EXTENT)):
            return None
        layer = self.raster_layer(parameters, name, context)
        given_crs = self.parameterAsExtentCrs(parameters, self.EXTENT, context)  # the project's for one without a CRS
        project = context.project()
        if not layer.crs().isValid() and given_crs.isValid() and (project is None or given_crs != project.crs()):
            raise QgsProcessingException(tr(
                "The {} {} has no CRS, so an extent in {} cannot be placed on it: give the extent in the raster's own "
                "coordinates (without a CRS), or assign the raster's CRS (in QGIS: Layer Properties ▸ Source)"
            ).format(self.named_in_text(name), layer.name(), given_crs.authid() or given_crs.userFriendlyIdentifier()))
        rect = self.parameterAsExtent(parameters, self.EXTENT, context, layer.crs())
        if rect.isNull():
            return None
        # as given, and its CRS where QGIS transformed it (an extent without a CRS is taken in the raster's, while
        # parameterAsExtentCrs names the project's CRS for it)
        given = self.parameterAsExtent(parameters, self.EXTENT, context)
        crs = self.parameterAsExtentCrs(parameters, self.EXTENT, context) if given != rect else None
        return layer_extent(layer, rect, (given, crs) if crs is not None else None, context.transformContext())

    def read_scale(self, parameters: dict[str, Any], context: QgsProcessingContext) -> int:
        """SCALE, checked to be an integer of at least 2."""
        scale = self.parameterAsInt(parameters, self.SCALE, context)
        if scale < 2:
            raise QgsProcessingException(tr("Scale factor must be an integer of at least 2, got {}").format(scale))
        return scale

    def read_choice(self, parameters: dict[str, Any], name: str, context: QgsProcessingContext) -> str:
        """The option of choice parameter ``name`` (its default when unset), given by name or by index
        (:func:`choice_option`; QGIS's ``parameterAsEnumString`` would take an index for the default)."""
        value = self.parameterAsString(parameters, name, context)  # evaluates an expression; the default when unset
        option = choice_option(self.parameterDefinition(name), value)
        if option is None:
            raise QgsProcessingException(choice_error(self.parameterDefinition(name), value))
        return option

    def read_kernel(
        self, parameters: dict[str, Any], context: QgsProcessingContext, feedback: QgsProcessingFeedback | None,
        sigma_kernels: Sequence[str] = (),
    ) -> str:
        """KERNEL, SIGMA and KERNEL_FILE as the engine's kernel string; ``sigma_kernels``: the run's other kernels,
        which take SIGMA too (guided DIP's guide kernel), for the warning that SIGMA is ignored (``sigma_warning``).

        A KERNEL_FILE listing several files (``;``-separated: KernelGAN's OUTPUT with one kernel per band) is refused
        in one line: a run blurs all its bands with one kernel, and taking the first would blur every band with band 1's.
        """
        name = self.read_choice(parameters, self.KERNEL, context)
        sigma = self.parameterAsDouble(parameters, self.SIGMA, context) or None
        kernel_file = self.parameterAsFile(parameters, self.KERNEL_FILE, context)
        if ";" in kernel_file and not os.path.isfile(kernel_file):
            files = kernel_file.split(";")
            raise QgsProcessingException(tr(
                "Kernel file (KERNEL_FILE) lists {} files ({}), as KernelGAN's output with one kernel per band does: a run "
                "blurs all its bands with one kernel; give one band's file and run that band alone (BANDS), or estimate "
                "one kernel shared by the bands (PER_BAND off)"
            ).format(len(files), ", ".join(files)))
        kernel = kernel_spec(name, sigma, kernel_file)
        if feedback is not None:
            if kernel_file:
                feedback.pushInfo(tr("Kernel file {} replaces the '{}' kernel").format(kernel_file, name))
            warning = self.sigma_warning(parameters, context, [kernel, *sigma_kernels])
            if warning:
                feedback.pushInfo(warning)
        return kernel

    def sigma_warning(self, parameters: dict[str, Any], context: QgsProcessingContext, kernels: Sequence[str]) -> str | None:
        """The warning that SIGMA, set to other than its default, changes nothing: none of the run's ``kernels`` (the
        engine's kernel strings) is 'gaussian'; ``None`` otherwise."""
        if is_unset(parameters.get(self.SIGMA)):
            return None
        sigma = self.parameterAsDouble(parameters, self.SIGMA, context)
        if sigma == DEFAULT_SIGMA or any(kernel.startswith("gaussian:") for kernel in kernels):
            return None
        return tr("warning: Gaussian sigma (SIGMA) {:g} is ignored: it is the width of the 'gaussian' kernel only, and "
                  "this run's kernel is {}").format(sigma, " / ".join(dict.fromkeys(kernels)))

    def read_guide_kernel(self, parameters: dict[str, Any], context: QgsProcessingContext) -> str:
        """GUIDE_KERNEL (with SIGMA for 'gaussian') as the engine's kernel string."""
        name = self.read_choice(parameters, self.GUIDE_KERNEL, context)
        return kernel_spec(name, self.parameterAsDouble(parameters, self.SIGMA, context) or None)

    def read_device(self, parameters: dict[str, Any], context: QgsProcessingContext) -> str:
        """DEVICE, checked to be present here (``core.device.resolve_device``: e.g. cuda without CUDA is an error)."""
        from ..core.device import resolve_device

        name = self.read_choice(parameters, self.DEVICE, context)
        resolve_device(name)
        return name

    def read_run_options(self, parameters: dict[str, Any], context: QgsProcessingContext) -> RunOptions:
        """What ``add_run_options`` declared (tile sizes are checked by the method's configuration: ``TileOptions.check_size``)."""
        return RunOptions(
            device=self.read_device(parameters, context),
            seed=self.parameterAsInt(parameters, self.SEED, context),
            tiles=TileOptions(
                size=self.parameterAsInt(parameters, self.TILE_SIZE, context),
                overlap=self.parameterAsInt(parameters, self.OVERLAP, context),
            ),
            warm_start=self.parameterAsBoolean(parameters, self.WARM_START, context),
            float32=self.parameterAsBoolean(parameters, self.FLOAT32, context),
        )

    def read_output(self, parameters: dict[str, Any], context: QgsProcessingContext, inputs: Sequence[str]) -> str:
        """OUTPUT as a GeoTIFF path (the engine writes GeoTIFF only), checked against the ``inputs`` files
        (:func:`check_output`) and the layers of the context's project (:func:`open_in_project`).

        While checking parameters the path is resolved without registering it for loading
        (:func:`given_output_path`; ``""`` for a temporary output, whose file is made for the run).
        """
        if self._checking:
            path = given_output_path(parameters.get(self.OUTPUT), context)
        else:
            path = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
            if not path:
                raise QgsProcessingException(tr("No output file was given"))
        if path:
            from ..core.raster import check_raster_output, loss_curve_path

            loss_curve = self.outputDefinition(self.LOSS_CURVE) is not None
            check_raster_output(path, list(inputs), loss_curve=loss_curve)
            self.check_not_open([path, loss_curve_path(path)] if loss_curve else [path], context, inputs)
        return path

    def check_not_open(self, paths: Sequence[str], context: QgsProcessingContext, inputs: Sequence[str]) -> None:
        """Refuse to write ``paths`` where a layer of the context's project reads one (:func:`open_in_project`)."""
        reason = open_in_project(paths, context.project(), inputs)
        if reason:
            raise QgsProcessingException(reason)

    def read_file_output(
        self, parameters: dict[str, Any], context: QgsProcessingContext, name: str, inputs: Sequence[str]
    ) -> str:
        """A file destination (a kernel, a report) as a path checked against the ``inputs`` files
        (:func:`check_output`); ``""`` for an optional one left empty."""
        path = self.parameterAsFileOutput(parameters, name, context)
        check_output(path, inputs)
        return path

    def checkParameterValues(  # noqa: N802
        self, parameters: dict[str, Any], context: QgsProcessingContext
    ) -> tuple[bool, str]:
        """Say what is wrong in the user's terms (QGIS alone says 'Incorrect parameter value for SCALE',
        or 'not found' for a file that exists but is not a raster)."""
        refusal = self.value_refusal(parameters, context)
        if refusal is not None:
            return False, refusal
        # Everything prepare_job checks (bands against the input, tiles, output type, the engine's own
        # InputError) fails here, before the run: QGIS reports errors raised in prepareAlgorithm only
        # to the log, as "There were errors executing the algorithm".
        missing = missing_dependencies()
        if missing:
            return False, install_hint(missing)
        self._checking = True
        try:
            with engine_errors():
                self.prepare_job(parameters, context, None)
        except QgsProcessingException as error:
            return False, one_line(error.args[0] if error.args else error)
        finally:
            self._checking = False
        return True, ""

    def value_refusal(self, parameters: dict[str, Any], context: QgsProcessingContext) -> str | None:
        """What ``checkParameterValues`` refuses in the parameters' values alone, in one line (``None``: nothing): a
        raster parameter that is not a raster, a number that is not an integer or out of its range, a choice that is
        none of the options, and QGIS's own checks. ``prepareAlgorithm`` asks it too: a model runs its child
        algorithms without ``checkParameterValues`` (QGIS 3.22), and QGIS reads 2.5 given as SCALE as 2."""
        for definition in self.parameterDefinitions():
            name = definition.name()
            if isinstance(definition, QgsProcessingParameterRasterLayer) and not is_unset(parameters.get(name)):
                if self.raster_layer(parameters, name, context) is None:
                    return self._not_a_raster(parameters, context, name)
        for definition in self.parameterDefinitions():
            if not isinstance(definition, QgsProcessingParameterNumber):
                continue
            try:
                value = float(parameters[definition.name()])
            except (KeyError, TypeError, ValueError):
                continue  # absent, None, an expression: left to QGIS
            if definition.dataType() == _number_type(True) and not value.is_integer():
                return tr("{} ({}) must be an integer, got {:.15g}").format(definition.description(), definition.name(), value)
            if value < definition.minimum():
                limit = tr("at least {:.15g}").format(definition.minimum())
            elif value > definition.maximum():
                limit = tr("at most {:.15g}").format(definition.maximum())
            else:
                continue
            return tr("{} ({}) must be {}, got {:.15g}").format(definition.description(), definition.name(), limit, value)
        choices: dict[str, str] = {}  # choices given by index, named for QGIS's own check (which takes names only)
        for definition in self.parameterDefinitions():
            value = parameters.get(definition.name())
            static = isinstance(definition, QgsProcessingParameterEnum) and definition.usesStaticStrings()
            if not static or value is None or isinstance(value, QgsProperty):
                continue  # an expression is evaluated by read_choice
            option = choice_option(definition, value)
            if option is None:
                return choice_error(definition, value)
            choices[definition.name()] = option
        ok, message = super().checkParameterValues({**parameters, **choices}, context)
        return None if ok else message

    # -- running ----------------------------------------------------------------------------

    def prepare_job(
        self, parameters: dict[str, Any], context: QgsProcessingContext, feedback: QgsProcessingFeedback | None
    ) -> Job:
        """Read and check the parameters (main thread) and return the job to run; subclasses implement it."""
        raise NotImplementedError

    def prepareAlgorithm(  # noqa: N802
        self, parameters: dict[str, Any], context: QgsProcessingContext, feedback: QgsProcessingFeedback
    ) -> bool:
        missing = missing_dependencies()
        if missing:
            raise QgsProcessingException(install_hint(missing))
        refusal = self.value_refusal(parameters, context)
        if refusal is not None:
            raise QgsProcessingException(refusal)
        with engine_errors():
            job = self.prepare_job(parameters, context, feedback)
        if job.layer_name:
            name_output_layer(context, self.parameterDefinition(self.OUTPUT), job.layer_name)
        job.layers_to_load = context.layersToLoadOnCompletion()  # with OUTPUT's, registered by read_output
        job.threads = self.parameterAsInt(parameters, self.THREADS, context) or None
        self._job = job
        return True

    def processAlgorithm(  # noqa: N802
        self, parameters: dict[str, Any], context: QgsProcessingContext, feedback: QgsProcessingFeedback
    ) -> dict[str, Any]:
        job, self._job = self._job, None
        if job is None:
            raise QgsProcessingException(tr("The algorithm was run without being prepared"))
        from ..core.device import cpu_threads, threads_line
        from ..core.raster import cancellable_commits

        progress = FeedbackProgress(feedback)
        for label, value in job.settings.items():
            progress.info(f"{label}: {value}")
        try:
            # in this thread, the one that runs the job; a Cancel after the last step still writes nothing
            with engine_errors(), cpu_threads(job.threads, THREADS_SETTING), cancellable_commits(progress):
                progress.info(threads_line(job.threads))
                result = job.run(progress)
        except Cancelled:
            raise QgsProcessingException(tr("Cancelled: nothing was written")) from None
        outputs = {self.OUTPUT: result.output_path, **job.outputs, **self.result_outputs(result)}
        done = tr("Done on {} in {:.1f} s ({} optimisation steps)").format(result.device, result.seconds, result.steps)
        progress.info(f"{done}: {outputs[self.OUTPUT]}" if outputs[self.OUTPUT] else done)
        load_on_completion(context, job.layers_to_load)
        return outputs

    def result_outputs(self, result: Any) -> dict[str, Any]:
        """Further outputs computed by the run (e.g. scores), beside OUTPUT and ``Job.outputs`` (and replacing them
        where it gives them too): LOSS_CURVE when the algorithm declares it (``add_loss_curve_output``)."""
        if self.outputDefinition(self.LOSS_CURVE) is None:
            return {}
        return {self.LOSS_CURVE: result.loss_curve or ""}
