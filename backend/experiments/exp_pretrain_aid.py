"""Pre-training, fine-tune vs linear probe on AID as the target, the paper's own target setting (Risojevic &
Stojnic, Sec. III: 20 % of each class for training, the rest for testing). The UC Merced study
(``exp_pretrain.py``) has 5 test images a class here (15 a class in ../shared/data), too few to tell a
difference of a few points; AID has 200 a class. ImageNet is the only init: AID cannot be both the source and
the target of the domain-adaptive stage (the paper never uses one data set as both). Same fine-tune and probe
as the UC Merced study: the defaults' budget, schedule, augmentation and learning rate, nothing tuned here."""

from __future__ import annotations

import time

from common import Ctx, Study, epochs_for_steps, load, seeded_split
from exp_pretrain import FT, FT_RANDOM, PROBE, init_rows


def settings(ctx: Ctx) -> dict:
    return {
        "size": ctx.pick(48, 224),  # the UC Merced study's size
        "train_share": 0.2,  # the paper's: 20 % of each class trains, the rest tests
        "steps": ctx.pick(200, 1000, 1),  # the UC Merced study's budget (`pretrain`'s min_steps 200)
        "probe_epochs": ctx.pick(100, 100, 2),
    }


def run(ctx: Ctx) -> Study:
    t0 = time.perf_counter()
    s = settings(ctx)
    aid = ctx.small(load(ctx, "aid_150px", size=s["size"]))
    per_class = len(aid) // len(aid.classes)
    n_test = per_class - round(per_class * s["train_share"])  # AID: 200 a class, 40 train / 160 test
    base = {"backbone": "efficientnet_lite0", "batch_size": 32, "warmup_epochs": 3, "init": "imagenet"}
    n_train = len(aid.classes) * (per_class - n_test)
    epochs = epochs_for_steps(n_train, 32, s["steps"])
    study = Study(
        "pretrain-aid",
        "Pre-training on the paper's target setting: AID, ImageNet linear probe vs fine-tune",
        f"Target: AID, {len(aid.classes)} classes, per seed a fresh stratified split of {per_class - n_test} "
        f"training / {n_test} test images per class ({n_train} / {len(aid.classes) * n_test}: the paper's "
        f"20 % / 80 %), {s['size']} px, EfficientNet-Lite0 from ImageNet. Fine-tune: {epochs} epochs (>= "
        f"{s['steps']} optimiser steps, the UC Merced study's budget) from the linear probe (LP-FT, the "
        "default) and, one row, from a random classifier (the paper's), Adam 3e-4, 3 warm-up epochs, x0.2 at "
        "50/70/90 %, crop/flip/rotation augmentation, the pretrained BatchNorm statistics kept (`batchnorm "
        "auto`). Linear probe: "
        f"{s['probe_epochs']} epochs of Adam 1e-3 on features cached once from the frozen backbone in eval "
        "mode, no augmentation. No in-domain row: AID would be its own source. The paper: ResNet-50, 224 "
        "px, 100 epochs.",
        baseline=f"ImageNet, {FT}",
    )
    for seed in ctx.seeds:
        train, test = seeded_split(aid, seed, test=n_test)
        init_rows(ctx, study, "ImageNet", base, train, test, seed, epochs, s["probe_epochs"], paper_row=True)
    study.goal("ImageNet fine-tune > ImageNet linear probe (AID, the paper's target setting)",
               f"ImageNet, {FT}", f"ImageNet, {PROBE}", True)
    study.reading = reading(study)
    study.seconds = time.perf_counter() - t0
    return study


def reading(study: Study) -> str:
    """The study's reading from its numbers (``run.py --merge`` recomputes it after joining seeds)."""
    ft = study.diff(f"ImageNet, {FT}", f"ImageNet, {PROBE}")
    rand = study.diff(f"ImageNet, {FT_RANDOM}", f"ImageNet, {PROBE}")
    return (
        f"On AID with the paper's 20 % training share, fine-tuning ImageNet weights (LP-FT) instead of a "
        f"linear probe moves OA by {ft.text(points=True)} points; the paper's fine-tune from a random "
        f"classifier by {rand.text(points=True)} points (same budget and schedule)."
    )
