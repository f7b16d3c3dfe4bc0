"""PSKD's loss settings with a teacher ahead of its student, on validation images. With the Lite2 teacher at a
96-px input (exp_pskd_strong.py: 8.9 points above the student alone on the test images) Hinton KD added +2.3
[+0.9, +3.7] points and PSKD +1.0 [-0.1, +2.0]; PSKD's loss settings were chosen with the paper's SGD and a
teacher no better than the student (exp_pskd_loss.py, exp_pskd_bnmix.py). The same variants again, with
Adam (the study's cell, exp_pskd.CELL) and that teacher: T 2 / 8 (the paper's 4), the mixup term over every
image of the batch (``mix_images all``), its weight beta 2 (the paper's 1), and mixup a 1 (the option's
default; the study's 0.4). The PSKD study's setting and validation images (exp_pskd.splits); Hinton KD and the
student alone beside, for reference. A selection, not a result.

    python backend/experiments/exp_pskd_strong_loss.py --out build/pskd-strong-loss --seed-list 0,1,2 --jobs 2
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from common import Ctx, Study, load, train_eval
from exp_pskd import CELL, ROWS, settings, splits, student_options, train_teacher
from exp_pskd_loss import VARIANTS, best_variant
from exp_pskd_strong import TEACHER_ROW, TEACHER_SIZE

STRONG_VARIANTS = {**VARIANTS, "mixup a 1": {"mixup_alpha": 1.0}}


def reading(study: Study) -> str:
    best = best_variant(study, STRONG_VARIANTS)
    d = study.diff(best, ROWS["none"])
    return (f"Best mean validation OA of the PSKD rows: {best} (of equal scores, the study's setting), "
            f"{d.text(points=True)} points over the student alone; Hinton KD "
            f"{study.diff(ROWS['hinton'], ROWS['none']).text(points=True)}.")


def run(ctx: Ctx) -> Study:
    t0 = time.perf_counter()
    s = settings(ctx)
    data = load(ctx, "aid_150px", size=s["size"])
    cell = CELL["pskd"]
    study = Study("pskd-strong-loss", "PSKD with a teacher ahead of its student: loss settings on validation "
                  "images",
                  f"AID, {s['size']} px, {s['train']} training images a class, per seed {s['val']} "
                  "validation images a class from the images in neither that seed's training nor its test "
                  f"part; the Lite2 teacher at a {TEACHER_SIZE}-px input; PSKD at the study's cell (Adam lr "
                  f"{cell['lr']:g}, batchnorm {cell['batchnorm']}, mixup a {cell['mixup_alpha']:g}); a "
                  "selection, not a result.", baseline=ROWS["none"])
    for seed in ctx.seeds:
        train, val, _ = splits(data, seed, s)
        teacher, path = train_teacher(ctx, train, val, seed, ctx.out / f"pskd_strong_loss_teacher_{seed}.pt",
                                      input_size=TEACHER_SIZE)
        study.add(TEACHER_ROW, seed, teacher.oa)
        for kd in ("none", "hinton"):
            r = train_eval(ctx, "pskd", student_options(s, kd, path), train, val, seed)
            study.add(ROWS[kd], seed, r.oa, train_s=round(r.seconds))
        for label, extra in STRONG_VARIANTS.items():
            r = train_eval(ctx, "pskd", student_options(s, "pskd", path, **extra), train, val, seed)
            study.add(label, seed, r.oa, train_s=round(r.seconds))
    study.reading = reading(study)
    study.seconds = time.perf_counter() - t0
    return study


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import run as runner

    sys.exit(runner.standalone("pskd-strong-loss", "exp_pskd_strong_loss"))
