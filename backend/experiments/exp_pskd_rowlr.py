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
from collections.abc import Callable
from pathlib import Path

from common import Ctx, Study, load, train_eval
from exp_pskd import SGD_STUDENT as STUDENT
from exp_pskd import settings, splits, train_teacher

LRS = (0.003, 0.01, 0.03)
KDS = ("none", "hinton", "pskd")


def row(kd: str, lr: float) -> str:
    return f"kd {kd}, lr {lr:g}"


def chosen(study: Study, lrs: tuple[float, ...] = LRS, name: Callable[[str, float], str] = row
           ) -> dict[str, float]:
    """For each student, the rate with the best mean validation OA (of equal scores, the smaller)."""
    return {kd: max((lr for lr in lrs if name(kd, lr) in study.values),
                    key=lambda lr: (study.summary(name(kd, lr)).mean, -lr)) for kd in KDS
            if any(name(kd, lr) in study.values for lr in lrs)}


def reading(study: Study, lrs: tuple[float, ...] = LRS, name: Callable[[str, float], str] = row) -> str:
    picks = chosen(study, lrs, name)
    return "Chosen on validation: " + ", ".join(f"{kd} lr {lr:g}" for kd, lr in picks.items()) + "."


def run_grid(ctx: Ctx, study: Study, lrs: tuple[float, ...], options: Callable[[str], dict],
             name: Callable[[str, float], str], teacher_name: str) -> None:
    """Per seed (the PSKD study's splits): its Lite2 teacher, then each student (``options(kd)``) at each of
    ``lrs``, distilled from that teacher; every validation OA into ``study`` as row ``name(kd, lr)``."""
    s = settings(ctx)
    data = load(ctx, "aid_150px", size=s["size"])
    for seed in ctx.seeds:
        train, val, _ = splits(data, seed, s)
        teacher, path = train_teacher(ctx, train, val, seed, ctx.out / f"{teacher_name}_{seed}.pt")
        study.add("teacher (Lite2)", seed, teacher.oa)
        for kd in KDS:
            for lr in lrs:
                r = train_eval(ctx, "pskd", {**options(kd), "kd": kd, "lr": lr, "teacher": str(path)}, train,
                               val, seed)
                study.add(name(kd, lr), seed, r.oa, train_s=round(r.seconds))


def run(ctx: Ctx) -> Study:
    t0 = time.perf_counter()
    s = settings(ctx)
    study = Study("pskd-rowlr", "PSKD study: each student's learning rate on validation images",
                  f"AID, {s['size']} px, {s['train']} training images a class, per seed {s['val']} "
                  "validation images a class from the images in neither that seed's training nor its test "
                  "part; the study's Lite2 teacher; a selection, not a result.", baseline=row("none", LRS[0]))
    run_grid(ctx, study, LRS, lambda kd: STUDENT, row, "pskd_rowlr_teacher")
    study.reading = reading(study)
    study.seconds = time.perf_counter() - t0
    return study


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import run as runner

    sys.exit(runner.standalone("pskd-rowlr", "exp_pskd_rowlr"))
