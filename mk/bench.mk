# `make bench`: the throughput / memory benchmark on a synthetic large Sentinel-2 raster (issue 5).
# The rasters are generated into bench-data/ (gitignored) by tiling the shared scene; results go to
# bench-results.json and bench-results.md. BENCH_SIZE=8000 measures the 8000 x 8000 workload (slower).
BENCH_DIR ?= bench-data
BENCH_SIZE ?= 4000
BENCH_FLAT_SIZE := $(shell echo $$(( $(BENCH_SIZE) * 2 )))
BENCH_RASTER := $(BENCH_DIR)/s2_$(BENCH_SIZE).tif
BENCH_FLAT := $(BENCH_DIR)/s2_$(BENCH_FLAT_SIZE).tif
BENCH_REPEATS ?= 3
BENCH_DEVICE ?= auto
BENCH_ARGS ?=

.PHONY: bench bench-rasters

bench-rasters: $(BENCH_RASTER) $(BENCH_FLAT)

$(BENCH_DIR)/s2_%.tif: | setup
	$(PY) backend/scripts/make_bench_raster.py --src $(S2_SCENE) --size $* --out $@

# The 2x-edge raster (4x the pixels) is the memory-flatness check: classify's peak RSS on both.
bench: setup bench-rasters
	$(VENV)/bin/rs-scene bench $(BENCH_RASTER) --model sentinel2-eurosat --bands $(S2_BANDS) --input-scale 1000 \
	  --device $(BENCH_DEVICE) --repeats $(BENCH_REPEATS) --flat $(BENCH_FLAT) \
	  --json bench-results.json --markdown bench-results.md $(BENCH_ARGS)

# `make bench-train`: training-step and forward time of the methods' backbones, NCHW vs channels-last input
# (what the trainer feeds), 1 thread as in `make experiments`; results in bench-data/train/.
BENCH_TRAIN_ARGS ?=
.PHONY: bench-train
bench-train: setup
	$(PY) backend/scripts/bench_train.py --out $(BENCH_DIR)/train $(BENCH_TRAIN_ARGS)
