# The benchmark (issues 3, 11): one study per paper plus the "defaults" table, 5 seeds (the defaults 3) with 95 % intervals and
# paired differences (Markdown + JSON + one plot per study), about 50 min on a 2-core CPU (--profile quick).
# Included from the root Makefile. EXPERIMENTS_ARGS="--only scl" runs a part; "--profile smoke" checks the
# harness in minutes; "--profile paper --device cuda" runs the papers' sizes on a GPU.
EXPERIMENTS_OUT ?= build/experiments
EXPERIMENTS_ARGS ?=
EXPERIMENTS_JOBS ?= 2  # processes at once, one study seed each (one per CPU core of the 2-core machine)

.PHONY: experiments

experiments: setup
	RS_SCENE_OFFLINE=1 $(PY) backend/experiments/run.py --data $(SHARED)/data --out $(EXPERIMENTS_OUT) --jobs $(EXPERIMENTS_JOBS) $(EXPERIMENTS_ARGS)
	@echo "tables: $(EXPERIMENTS_OUT)/results.md and $(EXPERIMENTS_OUT)/results.json, plots: $(EXPERIMENTS_OUT)/plot_*.png"
