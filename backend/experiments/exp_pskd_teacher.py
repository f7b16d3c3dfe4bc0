"""The PSKD study's teacher, chosen on validation images. With Adam (exp_pskd_adam.py) the Lite0 student alone
reached its Lite2 teacher (0.542 / 0.543 test OA, 5 seeds): a teacher trained with `pretrain`'s defaults (>=
200 optimiser steps) knows no more than the student, so it has nothing to pass on, and "PSKD > alone" was
missed (-0.2 [-1.3, +0.9] points). The paper's teacher is the better model (ResNet-34 over 18). Here the same
Lite2 teacher trains longer (`pretrain`'s ``min_steps``), or sees the same 48-px images enlarged to a larger
network input (`train --input-size`: more cells in every stage, four or nine times the compute, the student
still at 48 px); each is an option a user has. The study's two distilled students (Hinton KD, PSKD; the
study's options, exp_pskd.CELL) learn from each teacher; the student alone, which uses no teacher, once per
seed. Setting: the PSKD study's (AID, 48 px, 6 training images a class; per seed 8 validation images a class
in neither the seed's training nor its test part: exp_pskd.splits). The teacher: the best mean validation OA
of the PSKD student over the seeds (of equal scores, the first, i.e. the cheaper). A selection, not a result.
``RS_PSKD_TEACHERS`` (labels, commas) runs only some teachers (the student alone comes with the first);
``run.py --merge`` joins the parts.

    python backend/experiments/exp_pskd_teacher.py --out build/pskd-teacher --seed-list 0,1,2 --jobs 2
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from common import Ctx, Study, load, train_eval
from exp_pskd import ROWS, settings, splits, student_options, train_teacher

# label: (`pretrain` options on top of the study's teacher's, network input edge; 0 = the images' 48 px); the
# first is the study's teacher until 2026-12-06 (`pretrain`'s default min_steps 200, the images' size)
TEACHERS = {
    "min_steps 200": ({"min_steps": 200}, 0),
    "min_steps 600": ({"min_steps": 600}, 0),
    "min_steps 1200": ({"min_steps": 1200}, 0),
    "input 96 px": ({"min_steps": 200}, 96),
    "input 144 px": ({"min_steps": 200}, 144),
}


def teacher_row(label: str) -> str:
    return f"teacher (Lite2), {label}"


def student_row(kd: str, label: str) -> str:
    return f"{ROWS[kd]}, teacher {label}"


def chosen(study: Study) -> str:
    """The teacher whose PSKD student has the best mean validation OA (of equal scores, the first)."""
    done = [t for t in TEACHERS if student_row("pskd", t) in study.values]
    return max(done, key=lambda t: (study.summary(student_row("pskd", t)).mean, -list(TEACHERS).index(t)))


def selected() -> list[str]:
    names = [t.strip() for t in os.environ.get("RS_PSKD_TEACHERS", "").split(",") if t.strip()]
    unknown = [t for t in names if t not in TEACHERS]
    if unknown:
        raise SystemExit(f"RS_PSKD_TEACHERS: unknown teacher(s) {', '.join(unknown)}; known: "
                         f"{', '.join(TEACHERS)}")
    return names or list(TEACHERS)


def reading(study: Study) -> str:
    pick = chosen(study)
    alone = ROWS["none"]
    parts = []
    for label in TEACHERS:
        if teacher_row(label) not in study.values:
            continue
        t, p, h = (study.summary(r).mean for r in
                   (teacher_row(label), student_row("pskd", label), student_row("hinton", label)))
        d = study.diff(student_row("pskd", label), alone)
        parts.append(f"{label}: teacher {t:.3f}, Hinton KD {h:.3f}, PSKD {p:.3f} (PSKD - alone "
                     f"{d.text(points=True)})")
    return (f"Mean validation OA, student alone {study.summary(alone).mean:.3f}; " + "; ".join(parts)
            + f". Chosen: the teacher with {pick}.")


def run(ctx: Ctx) -> Study:
    t0 = time.perf_counter()
    s = settings(ctx)
    data = load(ctx, "aid_150px", size=s["size"])
    study = Study("pskd-teacher", "PSKD study: the teacher's training budget, on validation images",
                  f"AID, {s['size']} px, {s['train']} training images a class, per seed {s['val']} "
                  "validation images a class from the images in neither that seed's training nor its test "
                  "part; the study's Lite2 teacher (`pretrain`'s defaults from ImageNet) with: "
                  f"{', '.join(TEACHERS)}; the study's students at {s['size']} px; a selection, not a "
                  "result.",
                  baseline=ROWS["none"])
    labels = selected()
    for seed in ctx.seeds:
        train, val, _ = splits(data, seed, s)
        for label in labels:
            extra, size = TEACHERS[label]
            file = ctx.out / f"pskd_teacher_{label.replace(' ', '_')}_{seed}.pt"
            teacher, path = train_teacher(ctx, train, val, seed, file, extra, input_size=size)
            study.add(teacher_row(label), seed, teacher.oa, train_s=round(teacher.seconds))
            for kd in ("none", "hinton", "pskd") if label == labels[0] else ("hinton", "pskd"):
                r = train_eval(ctx, "pskd", student_options(s, kd, path), train, val, seed)
                study.add(ROWS[kd] if kd == "none" else student_row(kd, label), seed, r.oa,
                          train_s=round(r.seconds))
    study.reading = reading(study)
    study.seconds = time.perf_counter() - t0
    return study


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import run as runner

    sys.exit(runner.standalone("pskd-teacher", "exp_pskd_teacher"))
