"""PSKD's mixup term over every image of the batch (``mix_images all``) for the defaults, on validation images
of the defaults setting. With a teacher well ahead of its student it lifted PSKD from +1.0 [-0.1, +2.0] to
+2.3 [+1.0, +3.5] points over the student alone (exp_pskd_strong.py); the defaults' own teacher (`pretrain`'s
defaults with Lite2) is level with its student there. The same images, teacher and reference as
exp_pskd_defaults.py / exp_pskd_optim.py (per seed 3 training and 30 validation images a class of AID at 64
px from the images the defaults study never tests on, split 200 + seed), every other option pskd's default.
A selection, not a result.

    python backend/experiments/exp_pskd_defaults_mix.py --out build/pskd-defaults-mix --seed-list 0,1,2 \
        --jobs 2
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from common import Ctx, Study
from exp_defaults import SIZE
from exp_pskd_defaults import TRAIN, VAL, best_cell, run_cells, validation_pool

CURRENT = "anchors mixed (pskd's default)"
CELLS = {CURRENT: {}, "every image mixed": {"mix_images": "all"}}


def reading(study: Study) -> str:
    return best_cell(study, CELLS, CURRENT)


def run(ctx: Ctx) -> Study:
    t0 = time.perf_counter()
    data, pool = validation_pool(ctx)
    study = Study("pskd-defaults-mix", "PSKD's mixed images for the defaults, on validation images",
                  f"AID, {len(data.classes)} classes, {SIZE} px, per seed {TRAIN} training / {VAL} "
                  f"validation images a class from the {len(pool)} images the defaults study does not test "
                  "on (the splits of exp_pskd_defaults.py); teacher `pretrain` defaults with "
                  "EfficientNet-Lite2; every other option pskd's default; a selection, not a result.",
                  baseline=CURRENT)
    run_cells(ctx, study, pool, CELLS, {}, "pskd_defaults_mix_teacher")
    study.reading = reading(study)
    study.seconds = time.perf_counter() - t0
    return study


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import run as runner

    sys.exit(runner.standalone("pskd-defaults-mix", "exp_pskd_defaults_mix"))
