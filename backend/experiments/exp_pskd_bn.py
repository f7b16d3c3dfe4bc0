"""The PSKD study's students with the pretrained BatchNorm statistics kept (``batchnorm frozen``, pretrain's
rule since 2026-12-02) against re-estimated (``train``, what every student ran with), chosen on validation
images, all cells in one run on the same splits (GRID). With the statistics kept: lr 0.0003 and 0.001, and
0.0001 for the two KD students (a run without it chose 0.0003 for both, the bottom of that grid); a first run
had lr 0.003 below 0.001 for every student (2 seeds: alone 0.469 / 0.498, Hinton KD 0.347 / 0.496, PSKD
0.033 / 0.428), and a smoke run had every student at chance at 0.01 and 0.03 (without batch statistics SGD
diverges there). Re-estimated: each student's exp_pskd_rowlr.py rate and, for the two KD students, whose
chosen 0.003 was the bottom of that grid, 0.001 too. Setting:
the PSKD study's (AID, 48 px, 6 training images a class, the seed's Lite2 teacher, 8 validation images a
class in neither the seed's training nor its test part: exp_pskd.splits).

    python backend/experiments/exp_pskd_bn.py --out build/pskd-bn --seed-list 0,1 --jobs 2
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from common import Ctx, Study, load, train_eval
from exp_pskd import SGD_STUDENT as STUDENT
from exp_pskd import settings, splits, train_teacher
from exp_pskd_rowlr import KDS

# exp_pskd_rowlr.py's choices, with re-estimated statistics
ROWLR = {"none": 0.01, "hinton": 0.003, "pskd": 0.003}
GRID = {
    "none": [(0.0003, "frozen"), (0.001, "frozen"), (ROWLR["none"], "train")],
    "hinton": [(0.0001, "frozen"), (0.0003, "frozen"), (0.001, "frozen"), (0.001, "train"),
               (ROWLR["hinton"], "train")],
    "pskd": [(0.0001, "frozen"), (0.0003, "frozen"), (0.001, "frozen"), (0.001, "train"),
             (ROWLR["pskd"], "train")],
}


def row(kd: str, lr: float, bn: str) -> str:
    return f"kd {kd}, lr {lr:g}, batchnorm {bn}"


def chosen(study: Study) -> dict[str, tuple[float, str]]:
    """For each student, the (lr, batchnorm) with the best mean validation OA (of equal scores, the first)."""
    out = {}
    for kd in KDS:
        cells = [c for c in GRID[kd] if row(kd, *c) in study.values]
        if cells:
            out[kd] = max(cells, key=lambda c: study.summary(row(kd, *c)).mean)
    return out


def reading(study: Study) -> str:
    return "Chosen on validation: " + ", ".join(
        f"{kd} lr {lr:g} batchnorm {bn}" for kd, (lr, bn) in chosen(study).items()) + "."


def run(ctx: Ctx) -> Study:
    t0 = time.perf_counter()
    s = settings(ctx)
    data = load(ctx, "aid_150px", size=s["size"])
    study = Study("pskd-bn", "PSKD study: each student's BatchNorm statistics and lr on validation images",
                  f"AID, {s['size']} px, {s['train']} training images a class, per seed {s['val']} "
                  "validation images a class from the images in neither that seed's training nor its test "
                  "part; the study's Lite2 teacher; a selection, not a result.",
                  baseline=row("none", ROWLR["none"], "train"))
    for seed in ctx.seeds:
        train, val, _ = splits(data, seed, s)
        teacher, path = train_teacher(ctx, train, val, seed, ctx.out / f"pskd_bn_teacher_{seed}.pt")
        study.add("teacher (Lite2)", seed, teacher.oa)
        for kd in KDS:
            for lr, bn in GRID[kd]:
                opts = {**STUDENT, "kd": kd, "lr": lr, "batchnorm": bn, "teacher": str(path)}
                r = train_eval(ctx, "pskd", opts, train, val, seed)
                study.add(row(kd, lr, bn), seed, r.oa, train_s=round(r.seconds))
    study.reading = reading(study)
    study.seconds = time.perf_counter() - t0
    return study


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import run as runner

    sys.exit(runner.standalone("pskd-bn", "exp_pskd_bn"))
