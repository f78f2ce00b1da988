"""The internal_sr engine: numpy, torch, rasterio and scikit-image only (never QGIS).

Importing this package is cheap: heavy modules (torch, rasterio) are imported by the
submodules that need them, so the QGIS plugin can load and report missing dependencies.
"""

__version__ = "0.2.0"
