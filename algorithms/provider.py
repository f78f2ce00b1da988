"""The Processing provider ``internal_sr`` that lists the plugin's algorithms in the toolbox."""

from __future__ import annotations

from qgis.core import QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

from .base import ICON_PATH
from .degrade import DegradeAlgorithm
from .dip import DIPAlgorithm
from .evaluate import EvaluateAlgorithm
from .guided_dip import GuidedDIPAlgorithm
from .kernelgan import KernelGANAlgorithm
from .knitwork import KnitworkAlgorithm


class InternalSRProvider(QgsProcessingProvider):
    """Provider ``internal_sr`` ("Internal SR"): ``internal_sr:dip``, ``internal_sr:knitwork``, ``internal_sr:guided_dip``, ``internal_sr:degrade``, ``internal_sr:kernelgan``, ``internal_sr:evaluate``."""

    def id(self) -> str:
        return "internal_sr"

    def name(self) -> str:
        return "Internal SR"

    def longName(self) -> str:  # noqa: N802
        return "Internal SR: super-resolution by internal learning"

    def icon(self) -> QIcon:
        return QIcon(ICON_PATH)

    def svgIconPath(self) -> str:  # noqa: N802
        return ICON_PATH

    def loadAlgorithms(self) -> None:  # noqa: N802
        for algorithm in (DIPAlgorithm(), KnitworkAlgorithm(), GuidedDIPAlgorithm(), DegradeAlgorithm(), KernelGANAlgorithm(), EvaluateAlgorithm()):
            self.addAlgorithm(algorithm)

    def supportedOutputRasterLayerExtensions(self) -> list[str]:  # noqa: N802
        """The engine writes GeoTIFF only."""
        return ["tif"]
