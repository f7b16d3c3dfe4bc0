"""PSKD's learning rate for the defaults setting (UC Merced, 3 training images a class, 64 px), chosen on a
validation split: seed 0's images in neither its training nor its test part (as exp_bwms_init.py). The
teacher is the defaults study's (`pretrain` defaults with EfficientNet-Lite2) trained on the same images.
The student's BatchNorm statistics re-estimated (``batchnorm train``, rows ``lr X``) at LRS, and kept as
ImageNet's (``frozen``, rows ``lr X, batchnorm frozen``) at FROZEN_LRS (lower: without batch statistics
PSKD fell to chance at 0.003 in exp_pskd_bn.py, every student at 0.01 and 0.03 in its smoke run).

    python backend/experiments/exp_pskd_lr.py --out build/pskd-lr [--threads 1]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from common import Ctx, Study, choose_lr, load, save, train_eval
from exp_bwms_init import SIZE, VAL_SEED, validation_split

LRS = (0.003, 0.01, 0.03, 0.1)
FROZEN_LRS = (0.0001, 0.0003, 0.001, 0.003)


def run(ctx: Ctx) -> Study:
    t0 = time.perf_counter()
    train, val = validation_split(load(ctx, "ucmerced", size=SIZE), VAL_SEED)
    teacher = train_eval(ctx, "pretrain", {"backbone": "efficientnet_lite2"}, train, val, VAL_SEED)
    path = save(teacher, ctx.out / "pskd_lr_teacher.pt")
    study = Study("pskd-lr", "PSKD: learning rate on a validation split (defaults setting)",
                  f"UC Merced, seed {VAL_SEED}'s {len(train)} training images and as validation its "
                  f"{len(val)} images in neither its training nor its test part, {SIZE} px, the dialog's "
                  "defaults but lr; "
                  f"teacher: pretrain defaults with EfficientNet-Lite2 (validation OA {teacher.oa:.3f}); one "
                  "split (a selection, not a result).", baseline=f"lr {LRS[2]:g}")
    # the pskd defaults when this ran (a linear probe since 2026-12-04, Adam since 2026-12-06)
    head = {"head_init": "random", "optimizer": "sgd"}
    choose_lr(ctx, study, "pskd", {"teacher": str(path), "batchnorm": "train", **head}, LRS, train, val,
              VAL_SEED)
    for lr in FROZEN_LRS:
        opts = {"teacher": str(path), "batchnorm": "frozen", "lr": lr, **head}
        r = train_eval(ctx, "pskd", opts, train, val, VAL_SEED)
        study.add(f"lr {lr:g}, batchnorm frozen", VAL_SEED, r.oa, train_s=round(r.seconds))
    best = max(study.values, key=lambda row: study.summary(row).mean)
    study.reading = f"Chosen on validation: {best} (batchnorm train where not said)."
    study.seconds = time.perf_counter() - t0
    return study


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import run as runner

    sys.exit(runner.standalone("pskd-lr", "exp_pskd_lr"))
