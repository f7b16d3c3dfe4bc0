"""PSKD's mixup coefficient a (lambda ~ Beta(a, a); the paper does not state it), chosen on validation
images in the PSKD study's setting: AID at 48 px, 6 training images a class, the study's Lite2 teacher; per
seed s the validation images are 8 a class drawn from AID's images in neither seed s's training nor its test
part (exp_pskd.splits: the study's test images are not seen).

    python backend/experiments/exp_pskd_mix.py --out build/pskd-mix [--seed-list 0,1] [--threads 1]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from common import Ctx, Study, load, train_eval
from exp_pskd import SGD_STUDENT as STUDENT
from exp_pskd import settings, splits, train_teacher

ALPHAS = (0.2, 0.4, 1.0)
ANCHORS_CE = "mixup a 0.2, CE on the anchors only"
EVERY = "mixup a 0.2, every image mixed"


def reading(study: Study) -> str:
    best = max(ALPHAS, key=lambda a: (study.summary(f"mixup a {a:g}").mean, -a))
    every = study.diff(EVERY, "mixup a 0.2").text(points=True)
    return (f"Chosen on validation: mixup a {best:g} (of equal scores, the smaller). Every image of the "
            f"batch mixed instead of the anchors, at a 0.2: {every} points.")


def run(ctx: Ctx) -> Study:
    t0 = time.perf_counter()
    s = settings(ctx)
    data = load(ctx, "aid_150px", size=s["size"])
    study = Study("pskd-mix", "PSKD: mixup coefficient on validation splits (the study's setting)",
                  f"AID, {s['size']} px, {s['train']} training images a class, per seed {s['val']} "
                  "validation images a class from the images in neither that seed's training nor its test "
                  "part; a selection, not a result.", baseline=f"mixup a {ALPHAS[-1]:g}")
    for seed in ctx.seeds:
        train, val, _ = splits(data, seed, s)
        teacher, path = train_teacher(ctx, train, val, seed, ctx.out / f"pskd_mix_teacher_{seed}.pt")
        study.add("teacher (Lite2)", seed, teacher.oa)
        for kd in ("none", "hinton"):
            r = train_eval(ctx, "pskd", {**STUDENT, "kd": kd, "teacher": str(path)}, train, val, seed)
            study.add(f"student, kd {kd}", seed, r.oa, train_s=round(r.seconds))
        for a in ALPHAS:
            r = train_eval(ctx, "pskd", {**STUDENT, "mixup_alpha": a, "teacher": str(path)}, train, val, seed)
            study.add(f"mixup a {a:g}", seed, r.oa, train_s=round(r.seconds))
        every = {**STUDENT, "mixup_alpha": 0.2, "mix_images": "all", "teacher": str(path)}
        r = train_eval(ctx, "pskd", every, train, val, seed)
        study.add(EVERY, seed, r.oa, train_s=round(r.seconds))
        before = {**STUDENT, "mixup_alpha": 0.2, "ce_images": "anchors", "teacher": str(path)}
        r = train_eval(ctx, "pskd", before, train, val, seed)
        study.add(ANCHORS_CE, seed, r.oa, train_s=round(r.seconds))
    study.reading = reading(study)
    study.seconds = time.perf_counter() - t0
    return study


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import run as runner

    sys.exit(runner.standalone("pskd-mix", "exp_pskd_mix"))
