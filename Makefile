# RS Scene: `make demo` and `make test` work on a fresh machine (they install what they need).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
SHARED ?= $(abspath ../shared)
DEMO_OUT ?= out/demo
S2_SCENE := $(SHARED)/data/scenes/sentinel2_aberystwyth_20210527_10band.tif
S2_BANDS := B02,B03,B04,B05,B06,B07,B08,B8A,B11,B12
export RS_SCENE_SHARED := $(SHARED)

.PHONY: setup demo test test-backend models lint

# The backend's virtual environment (torch, rasterio, grad-cam, scikit-learn), rebuilt when pyproject changes.
setup: $(VENV)/.installed
$(VENV)/.installed: backend/pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -e 'backend[dev,bench,ray]'
	touch $@

# The main job on a shipped default model and a real Sentinel-2 scene.
demo: setup
	mkdir -p $(DEMO_OUT)
	$(VENV)/bin/rs-scene info $(S2_SCENE) --bands $(S2_BANDS)
	$(VENV)/bin/rs-scene classify $(S2_SCENE) --model sentinel2-eurosat --bands $(S2_BANDS) \
	  --input-scale 1000 --out $(DEMO_OUT)/aberystwyth_tiles.gpkg --heatmap $(DEMO_OUT)/aberystwyth_heatmap.tif \
	  --class-raster $(DEMO_OUT)/aberystwyth_classes.tif
	@echo "Open $(DEMO_OUT)/aberystwyth_tiles.gpkg (styled by class) and the heatmap in QGIS."

test-backend: setup
	cd tests/backend && RS_SCENE_OFFLINE=1 ../../$(PY) -m pytest -q -p no:cacheprovider .

test: test-backend $(if $(wildcard mk/plugin.mk),test-plugin)

# Retrain the shipped default models from ../shared/data (about 15 minutes on 2 CPU cores).
models: setup
	$(PY) backend/scripts/train_default_models.py --data $(SHARED)/data

lint: setup
	$(VENV)/bin/ruff check backend tests

-include mk/*.mk
