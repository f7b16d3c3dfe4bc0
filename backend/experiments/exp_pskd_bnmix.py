"""PSKD's mixup coefficient a again, now with the student's ImageNet BatchNorm statistics kept (the PSKD
study's cell since exp_pskd_bn.py: lr 0.0003, ``batchnorm frozen``): a was chosen (exp_pskd_mix.py) while
the statistics were re-estimated from the training batches, mixed images among them. Same setting and
validation images as exp_pskd_bn.py (exp_pskd.splits).

    python backend/experiments/exp_pskd_bnmix.py --out build/pskd-bnmix --seed-list 0,1 --jobs 2
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from common import Ctx, Study, load, train_eval
from exp_pskd import SGD_CELL as CELL
from exp_pskd import SGD_STUDENT as STUDENT
from exp_pskd import settings, splits, train_teacher

ALPHAS = (0.2, 0.4, 1.0)


def row(a: float) -> str:
    return f"PSKD, mixup a {a:g}"


def reading(study: Study) -> str:
    best = max(ALPHAS, key=lambda a: (study.summary(row(a)).mean, -a))
    return f"Chosen on validation: mixup a {best:g} (of equal scores, the smaller)."


def run(ctx: Ctx) -> Study:
    t0 = time.perf_counter()
    s = settings(ctx)
    data = load(ctx, "aid_150px", size=s["size"])
    cell = {**STUDENT, **CELL["pskd"]}
    study = Study("pskd-bnmix", "PSKD: mixup coefficient on validation images, ImageNet statistics kept",
                  f"AID, {s['size']} px, {s['train']} training images a class, per seed {s['val']} "
                  "validation images a class from the images in neither that seed's training nor its test "
                  f"part; PSKD at lr {cell['lr']:g}, batchnorm {cell['batchnorm']}; a selection, not a "
                  "result.",
                  baseline=row(1.0))
    for seed in ctx.seeds:
        train, val, _ = splits(data, seed, s)
        teacher, path = train_teacher(ctx, train, val, seed, ctx.out / f"pskd_bnmix_teacher_{seed}.pt")
        study.add("teacher (Lite2)", seed, teacher.oa)
        for a in ALPHAS:
            r = train_eval(ctx, "pskd", {**cell, "mixup_alpha": a, "teacher": str(path)}, train, val, seed)
            study.add(row(a), seed, r.oa, train_s=round(r.seconds))
    study.reading = reading(study)
    study.seconds = time.perf_counter() - t0
    return study


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import run as runner

    sys.exit(runner.standalone("pskd-bnmix", "exp_pskd_bnmix"))
