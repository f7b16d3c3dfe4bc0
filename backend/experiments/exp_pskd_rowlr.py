"""The PSKD study's learning rate for each of its three students, chosen on validation images: the study
gave all three the PSKD default (0.003, chosen for PSKD on the defaults setting), where the student alone
underfits. Setting: the PSKD study's (AID, 48 px, 6 training images a class, the seed's Lite2 teacher); per
seed the validation images are 8 a class from AID's images in neither the seed's training nor its test part
(exp_pskd.splits, as exp_pskd_mix.py). Each student's rate: the best mean validation OA over the seeds.

    python backend/experiments/exp_pskd_rowlr.py --out build/pskd-rowlr --seed-list 0,1 --jobs 2
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from common import Ctx, Study, load, train_eval
from exp_pskd import SGD_STUDENT as STUDENT
from exp_pskd import settings, splits, train_teacher

LRS = (0.003, 0.01, 0.03)
KDS = ("none", "hinton", "pskd")


def row(kd: str, lr: float) -> str:
    return f"kd {kd}, lr {lr:g}"


def chosen(study: Study) -> dict[str, float]:
    """For each student, the rate with the best mean validation OA (of equal scores, the smaller)."""
    return {kd: max((lr for lr in LRS if row(kd, lr) in study.values),
                    key=lambda lr: (study.summary(row(kd, lr)).mean, -lr)) for kd in KDS
            if any(row(kd, lr) in study.values for lr in LRS)}


def reading(study: Study) -> str:
    return "Chosen on validation: " + ", ".join(f"{kd} lr {lr:g}" for kd, lr in chosen(study).items()) + "."


def run(ctx: Ctx) -> Study:
    t0 = time.perf_counter()
    s = settings(ctx)
    data = load(ctx, "aid_150px", size=s["size"])
    study = Study("pskd-rowlr", "PSKD study: each student's learning rate on validation images",
                  f"AID, {s['size']} px, {s['train']} training images a class, per seed {s['val']} "
                  "validation images a class from the images in neither that seed's training nor its test "
                  "part; the study's Lite2 teacher; a selection, not a result.", baseline=row("none", LRS[0]))
    for seed in ctx.seeds:
        train, val, _ = splits(data, seed, s)
        teacher, path = train_teacher(ctx, train, val, seed, ctx.out / f"pskd_rowlr_teacher_{seed}.pt")
        study.add("teacher (Lite2)", seed, teacher.oa)
        for kd in KDS:
            for lr in LRS:
                r = train_eval(ctx, "pskd", {**STUDENT, "kd": kd, "lr": lr, "teacher": str(path)}, train, val,
                               seed)
                study.add(row(kd, lr), seed, r.oa, train_s=round(r.seconds))
    study.reading = reading(study)
    study.seconds = time.perf_counter() - t0
    return study


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import run as runner

    sys.exit(runner.standalone("pskd-rowlr", "exp_pskd_rowlr"))
