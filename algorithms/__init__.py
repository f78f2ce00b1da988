"""QGIS Processing side of internal_sr: the provider and one thin algorithm per file."""
