"""PSKD's loss settings on validation images, the study's cell kept (lr 0.0003, ImageNet BatchNorm statistics,
mixup a 0.4, the paper's random classifier): the temperature T (the paper's 4; 2 and 8), the mixup term over
every image of the batch instead of its anchors (``mix_images all``: the teacher then sees as many images as
in Hinton KD, mixed), and the mixup term's weight beta 2 (the paper's 1). The PSKD study's setting and
validation images (exp_pskd.splits); Hinton KD at its study cell beside, for reference.

    python backend/experiments/exp_pskd_loss.py --out build/pskd-loss --seed-list 0,1 --jobs 2
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from common import Ctx, Study, load, train_eval
from exp_pskd import SGD_CELL as CELL
from exp_pskd import SGD_STUDENT as STUDENT
from exp_pskd import settings, splits, train_teacher

BASE = "PSKD as the study (T 4, anchors mixed, beta 1)"
VARIANTS = {
    BASE: {},
    "T 2": {"temperature": 2.0},
    "T 8": {"temperature": 8.0},
    "every image mixed": {"mix_images": "all"},
    "beta 2": {"beta": 2.0},
}
HINTON = "Hinton KD (the study's cell, for reference)"


def best_variant(study: Study, variants: dict[str, dict] = VARIANTS) -> str:
    """The variant with the best mean validation OA (of equal scores, the study's setting)."""
    return max(variants, key=lambda v: (study.summary(v).mean, v == BASE))


def reading(study: Study) -> str:
    best = best_variant(study)
    return f"Best mean validation OA of the PSKD rows: {best} (of equal scores, the study's setting)."


def run(ctx: Ctx) -> Study:
    t0 = time.perf_counter()
    s = settings(ctx)
    data = load(ctx, "aid_150px", size=s["size"])
    cell = {**STUDENT, **CELL["pskd"]}
    study = Study("pskd-loss", "PSKD: temperature, mixed images and mixup weight on validation images",
                  f"AID, {s['size']} px, {s['train']} training images a class, per seed {s['val']} "
                  "validation images a class from the images in neither that seed's training nor its test "
                  f"part; PSKD at lr {cell['lr']:g}, batchnorm {cell['batchnorm']}, mixup a "
                  f"{cell['mixup_alpha']:g}; a selection, not a result.",
                  baseline=BASE)
    for seed in ctx.seeds:
        train, val, _ = splits(data, seed, s)
        teacher, path = train_teacher(ctx, train, val, seed, ctx.out / f"pskd_loss_teacher_{seed}.pt")
        study.add("teacher (Lite2)", seed, teacher.oa)
        for label, extra in VARIANTS.items():
            r = train_eval(ctx, "pskd", {**cell, **extra, "teacher": str(path)}, train, val, seed)
            study.add(label, seed, r.oa, train_s=round(r.seconds))
        hinton = {**STUDENT, "kd": "hinton", **CELL["hinton"], "teacher": str(path)}
        r = train_eval(ctx, "pskd", hinton, train, val, seed)
        study.add(HINTON, seed, r.oa, train_s=round(r.seconds))
    study.reading = reading(study)
    study.seconds = time.perf_counter() - t0
    return study


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import run as runner

    sys.exit(runner.standalone("pskd-loss", "exp_pskd_loss"))
