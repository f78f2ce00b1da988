"""Landsat facts used by guided super-resolution: the blur model and the pan/multispectral geometry.

Geometry: Landsat 7 ETM+ and Landsat 8/9 OLI Level-1 products put the 15 m panchromatic band and the
30 m multispectral bands on grids whose pixel *centres* coincide (the product corner coordinates in the
MTL file are pixel centres, the same for both), so the pan's pixel edges sit half a pan pixel off the
multispectral ones; a full pan scene has 2n − 1 pixels for n multispectral ones. ``core.grid.nest``
reports this as a ½-pixel ``shift`` and the kernels carry it (``core.kernels``): nothing is resampled. Such a pan
starts and ends half a pan pixel inside the multispectral bands, so the overlap is their n − 2 middle columns and
rows, which it covers wholly.
Checked on the Landsat 8 sample of ``../shared/data``: the pan degraded with the ½-pixel phase explains
B2 and B4 better than with the pixel-aligned phase or a whole pan pixel off (``tests/test_landsat.py``).

Blur: the sources this project could check publish no per-band modulation transfer function (MTF)
values for OLI or ETM+, so every band gets the generic value of the pansharpening toolbox that
accompanies Vivone et al., "A Critical Comparison Among Pansharpening Algorithms" (IEEE TGRS 2015),
whose Gaussian low-pass for sensors without their own figures has gain 0.3 at Nyquist: σ ≈ 0.49
low-resolution pixels (``core.kernels.sigma_from_mtf``). Measured on the Landsat 8 sample, the Gaussian
that best maps the pan onto B2 and B4 has σ 0.5–0.6, which agrees.
"""

from __future__ import annotations

#: MTF at Nyquist assumed for every Landsat band (module docstring)
MTF = 0.3
