"""PSKD's defaults on validation images of the defaults setting (AID, 3 training images a class, 64 px, the
teacher `pretrain`'s defaults with EfficientNet-Lite2): the student's classifier start (random, the paper;
or a linear probe first, LP-FT as `pretrain`'s default), its BatchNorm statistics and lr. The images: per
seed 3 training and 30 validation images a class, all drawn from the images that the defaults study never
tests on (exp_defaults.selection_files: validation images of earlier selections), so nothing chosen here is
chosen on the defaults study's test images. `pretrain`'s defaults (Lite0) run beside as the reference.

    python backend/experiments/exp_pskd_defaults.py --out build/pskd-defaults --seed-list 0,1,2 --jobs 2
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from common import Ctx, Study, load, save, seeded_split, train_eval
from exp_defaults import DATA, SIZE, selection_files

from rs_scene.data.datasets import SceneData
from rs_scene.methods.registry import get_method

TRAIN, VAL = 3, 30
CURRENT = "pskd defaults (head random, BatchNorm train, lr 0.003)"  # until 2026-12-04
# every cell names its three options (CURRENT: pskd's defaults until 2026-12-04; the chosen cell is the
# default since)
CELLS = {
    CURRENT: {"head_init": "random", "batchnorm": "train", "lr": 0.003},
    "head probe, BatchNorm train, lr 0.003": {"head_init": "probe", "batchnorm": "train", "lr": 0.003},
    "head probe, BatchNorm frozen, lr 0.001": {"head_init": "probe", "batchnorm": "frozen", "lr": 0.001},
    "head probe, BatchNorm frozen, lr 0.0003": {"head_init": "probe", "batchnorm": "frozen", "lr": 0.0003},
    "head random, BatchNorm frozen, lr 0.001": {"head_init": "random", "batchnorm": "frozen", "lr": 0.001},
}


def best_cell(study: Study, cells: dict[str, dict], current: str) -> str:
    """The cell with the best mean validation OA (of equal scores, ``current``), as the study's reading."""
    best = max(cells, key=lambda c: (study.summary(c).mean, c == current))
    return f"Best mean validation OA: {best} (of equal scores, the current defaults)."


def reading(study: Study) -> str:
    return best_cell(study, CELLS, CURRENT)


def validation_pool(ctx: Ctx) -> tuple[SceneData, SceneData]:
    """AID at the defaults' size and the part of it the defaults study never tests on."""
    data = load(ctx, DATA, size=SIZE)
    chosen = selection_files(data)
    return data, data.subset([i for i, f in enumerate(data.files) if f in chosen])


def run_cells(ctx: Ctx, study: Study, pool: SceneData, cells: dict[str, dict], fixed: dict,
              teacher_name: str, pretrain_cells: dict[str, dict] | None = None) -> None:
    """Per seed (split 200 + seed of ``pool``): the Lite2 teacher and `pretrain`'s defaults, then `pretrain`
    (Lite0) with each of ``pretrain_cells``' options, then pskd with each cell's options (and ``fixed``)
    distilled from that teacher; every row's validation OA into ``study``."""
    for seed in ctx.seeds:
        train, val = seeded_split(pool, 200 + seed, test=VAL, train=TRAIN)
        train, val = ctx.small(train), ctx.small(val)
        teacher = train_eval(ctx, "pretrain", {"backbone": "efficientnet_lite2"}, train, val, seed)
        path = save(teacher, ctx.out / f"{teacher_name}_{seed}.pt")
        study.add("teacher (pretrain defaults, Lite2)", seed, teacher.oa, train_s=round(teacher.seconds))
        r = train_eval(ctx, "pretrain", {}, train, val, seed)
        study.add("pretrain defaults (Lite0)", seed, r.oa, train_s=round(r.seconds))
        for label, cell in (pretrain_cells or {}).items():
            r = train_eval(ctx, "pretrain", cell, train, val, seed)
            study.add(label, seed, r.oa, train_s=round(r.seconds))
        for label, cell in cells.items():
            r = train_eval(ctx, "pskd", {**cell, **fixed, "teacher": str(path)}, train, val, seed)
            study.add(label, seed, r.oa, train_s=round(r.seconds))


def run(ctx: Ctx) -> Study:
    t0 = time.perf_counter()
    data, pool = validation_pool(ctx)
    defaults = get_method("pskd").Config()
    title = "PSKD's defaults: classifier start, BatchNorm statistics, lr on validation"
    study = Study("pskd-defaults", title,
                  f"AID, {len(data.classes)} classes, {SIZE} px, per seed {TRAIN} training / {VAL} "
                  f"validation images a class from the {len(pool)} images the defaults study does not test "
                  "on; teacher `pretrain` defaults with EfficientNet-Lite2; every other option pskd's "
                  f"default (mixup a {defaults.mixup_alpha:g}, T {defaults.temperature:g}); a selection, "
                  "not a result.",
                  baseline=CURRENT)
    # SGD: pskd's optimizer when this ran (Adam since 2026-12-06: exp_pskd_optim.py)
    run_cells(ctx, study, pool, CELLS, {"optimizer": "sgd"}, "pskd_defaults_teacher")
    study.reading = reading(study)
    study.seconds = time.perf_counter() - t0
    return study


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import run as runner

    sys.exit(runner.standalone("pskd-defaults", "exp_pskd_defaults"))
