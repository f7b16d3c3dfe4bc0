"""PSKD's optimiser for the defaults, on validation images of the defaults setting: the paper's SGD (pskd's
defaults since 2026-12-04: probe start, ImageNet BatchNorm statistics kept, lr 0.0003) against Adam with
`pretrain`'s warm-up and steps (what `pretrain`'s defaults fine-tune with) at four rates. The same images,
teacher and reference as exp_pskd_defaults.py (per seed 3 training and 30 validation images a class of AID
at 64 px from the images the defaults study never tests on, split 200 + seed), so its SGD row repeats that
study's chosen cell. A selection, not a result.

    python backend/experiments/exp_pskd_optim.py --out build/pskd-optim --seed-list 0,1,2 --jobs 2
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from common import Ctx, Study
from exp_defaults import SIZE
from exp_pskd_defaults import TRAIN, VAL, best_cell, run_cells, validation_pool

from rs_scene.methods.registry import get_method

CURRENT = "SGD lr 0.0003 (pskd defaults since 2026-12-04)"
CELLS = {
    CURRENT: {"optimizer": "sgd", "lr": 0.0003},
    "Adam lr 0.0001": {"optimizer": "adam", "lr": 0.0001},
    "Adam lr 0.0003": {"optimizer": "adam", "lr": 0.0003},
    "Adam lr 0.001": {"optimizer": "adam", "lr": 0.001},
    "Adam lr 0.003": {"optimizer": "adam", "lr": 0.003},
}


def reading(study: Study) -> str:
    return best_cell(study, CELLS, CURRENT)


def run(ctx: Ctx) -> Study:
    t0 = time.perf_counter()
    data, pool = validation_pool(ctx)
    c = get_method("pskd").Config()
    title = "PSKD's optimiser for the defaults: SGD (the paper) vs Adam (pretrain's) on validation"
    study = Study("pskd-optim", title,
                  f"AID, {len(data.classes)} classes, {SIZE} px, per seed {TRAIN} training / {VAL} "
                  f"validation images a class from the {len(pool)} images the defaults study does not test "
                  "on (the splits of exp_pskd_defaults.py); teacher `pretrain` defaults with "
                  "EfficientNet-Lite2; every other option pskd's default (probe start, ImageNet BatchNorm "
                  f"statistics kept, mixup a {c.mixup_alpha:g}, T {c.temperature:g}); Adam: "
                  f"{c.warmup_epochs} warm-up epochs, x0.2 at 50 / 70 / 90 %, weight decay "
                  f"{c.weight_decay:g} as SGD's; a selection, not a result.",
                  baseline=CURRENT)
    run_cells(ctx, study, pool, CELLS, {}, "pskd_optim_teacher")
    study.reading = reading(study)
    study.seconds = time.perf_counter() - t0
    return study


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import run as runner

    sys.exit(runner.standalone("pskd-optim", "exp_pskd_optim"))
