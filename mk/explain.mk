# Heatmap faithfulness and the heatmap picture (issue 13); included from the root Makefile.
# make bench-explain: pasted patch, deletion / insertion against random orders and position bias for every CAM
#   method on both shipped models, real images from ../shared/data, fixed seeds -> out/bench-explain/.
#   EXPLAIN_ARGS="--quick" for a smoke run, "--models sentinel2-eurosat --methods gradcam" for one row.
# make heatmap-picture: the demo scene classified with the default heatmap, drawn beside its true colour
#   -> out/heatmap/aberystwyth_heatmap.png (generated, not committed).
EXPLAIN_OUT ?= out/bench-explain
EXPLAIN_ARGS ?=
PICTURE_OUT ?= out/heatmap
PICTURE_ARGS ?=

.PHONY: bench-explain heatmap-picture

bench-explain: setup
	RS_SCENE_OFFLINE=1 $(PY) backend/scripts/bench_explain.py --out $(EXPLAIN_OUT) $(EXPLAIN_ARGS)

heatmap-picture: setup
	mkdir -p $(PICTURE_OUT)
	$(VENV)/bin/rs-scene classify $(S2_SCENE) --model sentinel2-eurosat --bands $(S2_BANDS) --input-scale 1000 \
	  --heatmap $(PICTURE_OUT)/aberystwyth_heatmap.tif --overwrite $(PICTURE_ARGS)
	$(PY) backend/scripts/render_heatmap.py --raster $(S2_SCENE) --rgb 3,2,1 \
	  --heatmap $(PICTURE_OUT)/aberystwyth_heatmap.tif --out $(PICTURE_OUT)/aberystwyth_heatmap.png \
	  --title "sentinel2-eurosat on Sentinel-2, Aberystwyth 2021-05-27 (make heatmap-picture)"
