#!/usr/bin/env bash
# benchmarks/gpu.py on a lent GPU machine (README, section GPU), run from the repository root:
#
#   bash benchmarks/gpu_device.sh PARTS        PARTS: comma-separated, of precision,steps,batch,large,graphs
#
# Only the repository travels to that machine (plain python3 with torch, no QGIS, no network), plus the
# carried, git-ignored folders .whl (wheels of what core imports and the machine lacks: rasterio, affine,
# cligj, click-plugins) and .gpu-data (the DSen2 samples the benchmark reads). This script installs the
# wheels into $SITE, makes $PKG/internal_sr point at this checkout (the package is the repository root,
# whatever its folder is called there), starts $OUT/gpu.json from benchmarks/results/gpu.json so that the
# parts not run are kept, checks the imports and the data, and runs gpu.py with its output also in $OUT/log.
# gpu.py writes $OUT/gpu.json and gpu.md after each part: copy them into benchmarks/results afterwards.
#
# Environment: OUT (required: the results folder), PYTHON (default python3), GPU_ARGS (more flags for
# gpu.py: "--device cpu --quick" checks this script on a machine without a GPU), INTERNAL_SR_DATA (default:
# .gpu-data when it is there, else gpu.py's own default, ../shared/data), SITE (default /tmp/site),
# PKG (default /tmp/p), WHEELS (default 1; 0 skips the wheels, e.g. to check this script with another
# Python than the 3.12 they are built for: rasterio then comes from that interpreter's own packages).
set -euo pipefail

parts=${1:?usage: bash benchmarks/gpu_device.sh PARTS (comma-separated, of precision,steps,batch,large,graphs)}
: "${OUT:?OUT must name the folder for the results}"
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
PYTHON=${PYTHON:-python3}
SITE=${SITE:-/tmp/site}
PKG=${PKG:-/tmp/p}
mkdir -p "$OUT" "$PKG"

path=$PKG
if [ "${WHEELS:-1}" != 0 ] && compgen -G ".whl/*.whl" >/dev/null; then
    "$PYTHON" -m pip install -q --disable-pip-version-check --root-user-action=ignore --no-index --no-deps \
        --no-compile --no-cache-dir --upgrade --target "$SITE" .whl/*.whl
    path=$PKG:$SITE
else
    echo "no wheels installed (WHEELS=0 or no .whl folder): rasterio and the rest come from $PYTHON's own packages"
fi
ln -sfn "$root" "$PKG/internal_sr"
export PYTHONPATH=$path${PYTHONPATH:+:$PYTHONPATH}
if [ -z "${INTERNAL_SR_DATA:-}" ] && [ -d .gpu-data ]; then
    export INTERNAL_SR_DATA=$root/.gpu-data
fi
export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
if [ ! -e "$OUT/gpu.json" ] && [ -e benchmarks/results/gpu.json ]; then
    cp benchmarks/results/gpu.json "$OUT/gpu.json"
fi

set -o pipefail
{
    # fail in seconds, not after minutes of GPU time: every import gpu.py's parts need, and the data
    "$PYTHON" - <<'EOF'
import os, sys
sys.path.insert(0, "benchmarks")
import numpy, rasterio, skimage, torch
import internal_sr
from internal_sr.core import evaluation, grid, metrics, pipeline, raster, sharpen, tiling  # noqa: F401
from wald import CROPS, SHARED
from gpu import SCENE
missing = [n for n in {SCENE, *(name for _, name, _ in CROPS)} if not os.path.exists(os.path.join(SHARED, n))]
if missing:
    sys.exit(f"missing in the data folder {SHARED} (INTERNAL_SR_DATA): {', '.join(sorted(missing))}")
gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no CUDA GPU"
print(f"python {sys.version.split()[0]}, torch {torch.__version__} ({gpu}), numpy {numpy.__version__}, "
      f"rasterio {rasterio.__version__} (GDAL {rasterio.__gdal_version__}), scikit-image {skimage.__version__}; "
      f"internal_sr from {os.path.dirname(internal_sr.__file__)}; data {SHARED}")
EOF
    # shellcheck disable=SC2086  # GPU_ARGS is a list of flags
    "$PYTHON" benchmarks/gpu.py --out "$OUT" --parts "$parts" ${GPU_ARGS:-}
} 2>&1 | tee "$OUT/log"
