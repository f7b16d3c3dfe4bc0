# The benchmark of issue 3: one table per paper (Markdown + JSON), about an hour on a 2-core CPU.
# Included from the root Makefile. EXPERIMENTS_ARGS="--only scl --quick" runs a part, or checks the harness.
EXPERIMENTS_OUT ?= build/experiments
EXPERIMENTS_ARGS ?=

.PHONY: experiments

experiments: setup
	RS_SCENE_OFFLINE=1 $(PY) backend/experiments/run.py --data $(SHARED)/data --out $(EXPERIMENTS_OUT) $(EXPERIMENTS_ARGS)
	@echo "tables: $(EXPERIMENTS_OUT)/results.md and $(EXPERIMENTS_OUT)/results.json"
