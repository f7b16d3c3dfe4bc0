"""BWMS with ImageNet blocks on the defaults setting (UC Merced, 3 training / 5 test images a class, 64 px):
the paper's BWMS (ResNet-18 body from scratch) with ``min_steps``, BWMS with EfficientNet-Lite0's ImageNet
blocks after the band-wise layer (band-wise layer + fusion started as the ImageNet stem, or at random) and
``pretrain`` with its defaults. The learning rate of the ImageNet body is chosen first on a validation split:
seed 0's images in neither its training nor its test part.

    python backend/experiments/exp_bwms_init.py --out build/bwms-init [--seeds 3] [--threads 1]
    python backend/experiments/exp_bwms_init.py --eurosat --out build/bwms-init-eurosat   # EuroSAT-MS part
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from common import Ctx, Study, choose_lr, load, n_params, seeded_split, train_eval

SIZE, TRAIN_N, TEST_N = 64, 3, 5
VAL_SEED = 0
LRS = (1e-3, 3e-4, 1e-4)
IMAGENET_LR = 3e-4  # the choice below, bwms's default for an ImageNet body
PART = "defaults"  # or "eurosat" (``--eurosat``)
LITE = {"backbone": "efficientnet_lite0", "init": "imagenet"}
ROWS = {
    "pretrain (defaults)": ("pretrain", {}),
    "BWMS ResNet-18 scratch, min_steps 200": ("bwms", {"backbone": "resnet18", "init": "scratch"}),
    "BWMS Lite0 ImageNet, stem init": ("bwms", {**LITE, "band_init": "stem"}),
    "BWMS Lite0 ImageNet, random band-wise init": ("bwms", {**LITE, "band_init": "random"}),
}


def validation_split(data, seed: int = 0):  # noqa: ANN001, ANN201
    """Seed ``seed``'s training images and, as validation, every image of that seed in neither its training
    nor its test part (UC Merced here has 15 a class: 3 train, 5 test, 7 validation)."""
    train, test = seeded_split(data, seed, test=TEST_N, train=TRAIN_N)
    used = set(train.files) | set(test.files)
    return train, data.subset([i for i, f in enumerate(data.files) if f not in used])


def select_lr(ctx: Ctx, data) -> tuple[Study, float]:  # noqa: ANN001
    train, val = validation_split(data, VAL_SEED)
    study = Study("bwms-init-lr", "BWMS Lite0 ImageNet: learning rate on a validation split",
                  f"UC Merced, seed {VAL_SEED}'s {len(train)} training images and as validation its "
                  f"{len(val)} images in neither its training nor its test part, {SIZE} px, "
                  "Adam, min_steps 200, stem init; one split (a selection, not a result).",
                  baseline=f"lr {LRS[0]:g}")
    best = choose_lr(ctx, study, "bwms", LITE, LRS, train, val, VAL_SEED)
    study.reading = f"Chosen on validation: lr {best:g}."
    return study, best


def run(ctx: Ctx) -> list[Study]:
    if PART == "eurosat":
        return [eurosat(ctx)]
    t0 = time.perf_counter()
    data = load(ctx, "ucmerced", size=SIZE)
    lr_study, lr = select_lr(ctx, data)
    lr_study.seconds = time.perf_counter() - t0
    study = Study(
        "bwms-init",
        "BWMS with ImageNet blocks vs the paper's BWMS and pretrain on the defaults setting",
        f"UC Merced RGB, 21 classes, per seed {TRAIN_N} training / {TEST_N} test images a class "
        f"({21 * TRAIN_N} / {21 * TEST_N}), {SIZE} px, the defaults study's splits. bwms: Adam, lr halving "
        "stretched with min_steps (200 steps: 100 epochs), rotations/flips; the ResNet-18 body at the "
        f"paper's lr 1e-3; the Lite0 body (ImageNet blocks, ReLU6 kept) at lr {lr:g} (chosen on validation). "
        "pretrain: its defaults (Lite0 from ImageNet, fine-tune, min_steps 200).",
        baseline="pretrain (defaults)",
    )
    for seed in ctx.seeds:
        train, test = seeded_split(data, seed, test=TEST_N, train=TRAIN_N)
        for row, (name, options) in ROWS.items():
            lite = options.get("backbone", "").startswith("efficientnet")
            opts = {**options, "lr": lr} if lite else options
            r = train_eval(ctx, name, opts, train, test, seed)
            study.add(row, seed, r.oa, parameters=n_params(r.module), train_s=round(r.seconds))
    for row in list(ROWS)[1:]:
        study.goal(f"{row} >= pretrain defaults", row, "pretrain (defaults)", strict=False)
    study.goal("stem init >= random init", "BWMS Lite0 ImageNet, stem init",
               "BWMS Lite0 ImageNet, random band-wise init", strict=False)
    study.reading = reading(study)
    study.seconds = time.perf_counter() - t0 - lr_study.seconds
    return [lr_study, study]


def eurosat(ctx: Ctx) -> Study:
    """exp_bwms.py's EuroSAT-MS setting (ten bands, a third of each class held out, 48 px, 10 epochs given,
    so no min_steps) with the Lite0 ImageNet body next to the paper's rows on the same seeds."""
    from exp_bwms import STEMS, options, resized

    from rs_scene.bands import S2_TEN

    t0 = time.perf_counter()
    data = ctx.small(load(ctx, "eurosat_ms", bands=S2_TEN))
    lite = "BWMS (Lite0 body, ImageNet)"
    study = Study("bwms-init-eurosat", "BWMS with ImageNet Lite0 blocks on EuroSAT-MS (ten bands)",
                  f"EuroSAT-MS, {len(data)} images, per seed a third of each class held out, 48 px, 10 "
                  "epochs, batch 32, rotations/flips; ResNet-18 rows as exp_bwms.py (from scratch, lr 1e-3); "
                  f"the Lite0 body from ImageNet at lr {IMAGENET_LR:g} (bwms's default for it), stem init.",
                  baseline=STEMS["conv"])
    for seed in ctx.seeds:
        train, test = seeded_split(data, seed, test=1 / 3)
        train, test = resized(train, 48), resized(test, 48)
        rows = {STEMS["conv"]: options("conv", 10), STEMS["bwms"]: options("bwms", 10),
                lite: {**options("bwms", 10), **LITE, "lr": IMAGENET_LR}}
        for row, opts in rows.items():
            r = train_eval(ctx, "bwms", opts, train, test, seed)
            study.add(row, seed, r.oa, parameters=n_params(r.module), train_s=round(r.seconds))
    study.goal("Lite0 ImageNet body >= ResNet-18", lite, STEMS["conv"], strict=False)
    study.goal("Lite0 ImageNet body >= BWMS ResNet-18 body", lite, STEMS["bwms"], strict=False)
    a, b = study.diff(lite, STEMS["conv"]), study.diff(lite, STEMS["bwms"])
    study.reading = (f"Lite0 ImageNet body minus ResNet-18: {a.text(points=True)} points; minus the paper's "
                     f"BWMS: {b.text(points=True)}.")
    study.seconds = time.perf_counter() - t0
    return study


def reading(study: Study) -> str:
    lite, res = "BWMS Lite0 ImageNet, stem init", "BWMS ResNet-18 scratch, min_steps 200"
    a, b = study.diff(lite, "pretrain (defaults)"), study.diff(lite, res)
    return (f"Lite0 ImageNet body minus pretrain: {a.text(points=True)} points; minus the paper's ResNet-18 "
            f"body from scratch: {b.text(points=True)}.")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import exp_bwms_init  # the module run.py imports (this file runs as __main__)
    import run as runner

    args = sys.argv[1:]
    if "--eurosat" in args:
        args.remove("--eurosat")
        exp_bwms_init.PART = "eurosat"
    runner.EXPERIMENTS["bwms-init"] = "exp_bwms_init"
    sys.exit(runner.main(["--only", "bwms-init", *args]))
