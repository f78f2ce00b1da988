# internal_sr — every target sets up what it needs; `make demo` and `make test` work as the first
# command on a fresh Debian 12 machine (run as root to let `install` fetch QGIS from Debian).

PY := .venv/bin/python
STAMP := .venv/.installed
QGIS_PLUGINS ?= $(HOME)/.local/share/QGIS/QGIS3/profiles/default/python/plugins
export QT_QPA_PLATFORM := offscreen
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: install test demo bench bench-speed bench-memory bench-guided bench-bounds bench-gpu bench-evaluate bench-kernelgan bench-bp bench-warm screenshots package deploy clean

install: $(STAMP)

$(STAMP): requirements-dev.txt pyproject.toml
	@if ! /usr/bin/python3 -c "import qgis.core, venv, ensurepip" 2>/dev/null; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-qgis qgis-providers python3-venv; \
	  else \
	    echo "QGIS's Python bindings are missing: run 'sudo apt-get install python3-qgis qgis-providers python3-venv' or 'sudo make install'"; exit 1; \
	  fi; \
	fi
	/usr/bin/python3 -m venv --system-site-packages .venv
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-dev.txt
	$(PY) -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

test: install
	$(PY) -m pytest

# THREADS=N sets PyTorch's CPU threads (default: its own choice, the cores; on a busy machine 1: README, Run times)
demo: install
	$(PY) benchmarks/demo.py --out out/demo $(if $(THREADS),--threads $(THREADS))

# Wald table (DIP, Knitworks) and the speed comparison with the reference DIP recipe, side by side on this machine
bench: install
	$(PY) benchmarks/wald.py --out benchmarks/results
	$(PY) benchmarks/speed.py --out benchmarks/results

# reference-DIP baseline against our methods, seconds per step and time to quality (~11 min, 1 CPU thread)
bench-speed: install
	$(PY) benchmarks/speed.py --out benchmarks/results

# peak memory of tile-by-tile runs against raster size (SIZES=512,1024,2048,4096 by default; 10980 is a
# full Sentinel-2 band, about 30 minutes here); GDAL_CACHE=64 caps GDAL's block cache (memory_gdal64.md)
bench-memory: install
	$(PY) benchmarks/memory.py --out benchmarks/results $(if $(SIZES),--sizes $(SIZES)) $(if $(GDAL_CACHE),--gdal-cache $(GDAL_CACHE))

bench-guided: install
	$(PY) benchmarks/guided.py --out benchmarks/results
	$(PY) benchmarks/guided.py --landsat --out benchmarks/results

# candidate bounds of guided DIP's output side by side under Wald's protocol (~6 min, 1 CPU thread)
bench-bounds: install
	$(PY) benchmarks/guided_bounds.py --out benchmarks/results

# PARTS=precision,steps,batch,large,graphs picks some (each part's figures are kept with their machine and date).
# No install step: a GPU machine has no QGIS. GPU_PY (default: the venv's python when there is one, else
# python3; PY=python3 also works) must import internal_sr and rasterio; GPU_OUT (default benchmarks/results)
# is where gpu.json/gpu.md go; GPU_ARGS passes more flags (--device cpu --quick checks it here). On a lent GPU
# machine use benchmarks/gpu_device.sh, which sets up the carried wheels and data (README, section GPU).
GPU_PY ?= $(if $(wildcard $(PY)),$(PY),python3)
bench-gpu:
	$(GPU_PY) benchmarks/gpu.py --out $(or $(GPU_OUT),benchmarks/results) $(if $(PARTS),--parts $(PARTS)) $(GPU_ARGS)

# the README's evaluate example run for real: guided DIP scored on the committed crops (~1.5 min, 1 CPU thread)
bench-evaluate: install
	$(PY) benchmarks/evaluate_example.py

# DEVICE=cuda|cpu|mps picks the device (default: auto, the GPU when there is one)
bench-kernelgan: install
	$(PY) benchmarks/kernelgan.py --out benchmarks/results --device $(or $(DEVICE),auto)

# back-projection with kernels wider than bicubic: the width test against the former per-step guard and no
# guard, on a matrix of crops, scales, kernels and starts (1 CPU thread, about a minute of CPU time)
bench-bp: install
	$(PY) benchmarks/back_projection.py --out benchmarks/results

# warm-started tiles against fresh ones, per method, on development tile pairs (about 2 hours here)
bench-warm: install
	$(PY) benchmarks/warm_start.py --method dip --pairs 0,1,2,3 --out benchmarks/results
	$(PY) benchmarks/warm_start.py --method knitwork --out benchmarks/results --merge
	$(PY) benchmarks/warm_start.py --method knitwork --scale 4 --out benchmarks/results --merge
	$(PY) benchmarks/warm_start.py --method guided --out benchmarks/results --merge

# README screenshots (docs/*.png) from a real QGIS under a virtual X server (Debian: apt-get install xvfb)
screenshots: install
	@command -v xvfb-run >/dev/null || { echo "xvfb-run is missing: run 'sudo apt-get install xvfb'"; exit 1; }
	xvfb-run -a -s "-screen 0 1280x1024x24" env QT_QPA_PLATFORM=xcb $(PY) benchmarks/screenshots.py --out docs

# the zip is the last commit's plugin files (git archive: needs a git checkout); uncommitted changes are named, not packed
PLUGIN_FILES := metadata.txt __init__.py plugin.py icon.svg LICENSE README.md algorithms ui core docs
package:
	rm -rf dist && mkdir -p dist
	git archive --format=zip --prefix=internal_sr/ -o dist/internal_sr.zip HEAD $(PLUGIN_FILES)
	@git status --porcelain -- $(PLUGIN_FILES) | sed 's/^/warning: not in the zip (uncommitted): /'
	@python3 -c "import os,sys; s=os.path.getsize('dist/internal_sr.zip'); print(f'dist/internal_sr.zip: {s/1e6:.2f} MB'); sys.exit(s > 25e6)"

deploy:
	mkdir -p "$(QGIS_PLUGINS)"
	ln -sfn "$(CURDIR)" "$(QGIS_PLUGINS)/internal_sr"
	@echo "linked $(QGIS_PLUGINS)/internal_sr -> $(CURDIR); enable 'Internal SR' in QGIS's plugin manager"

clean:
	rm -rf .venv dist out .pytest_cache
