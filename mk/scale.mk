# `make bench-scale`: classify-many on a local Ray cluster (1 and 2 model actors) against single-process
# classify of the same rasters (SCALE_COPIES links to the shared Sentinel-2 scene, 225 tiles each): wall time,
# tiles/s, peak PSS of the process tree, Ray's scheduling overhead per shard (issue 16).
# Results: bench-data/scale/bench-scale.json and .md. Ray processes end with each run (ray.shutdown).
SCALE_COPIES ?= 4
SCALE_ARGS ?=

.PHONY: bench-scale

bench-scale: setup
	$(PY) -m rs_scene.scale.bench --src $(S2_SCENE) --copies $(SCALE_COPIES) --work bench-data/scale \
	  --json bench-data/scale/bench-scale.json --markdown bench-data/scale/bench-scale.md $(SCALE_ARGS)
