"""`pretrain` fine-tune's BatchNorm statistics, chosen on validation splits: re-estimated from the training
batches (``batchnorm train``, what PyTorch's train mode does) vs kept as the pretrained weights have them
(``frozen``; scale and shift still train). Both from the linear probe (LP-FT, the default), the defaults'
budget (200 steps), on four settings a user meets; per seed the validation images are training images of
that seed's study split (or images no study split uses), never its test images:

- UC Merced 48 px, the pre-training study's 10 training images a class split 7 / 3 (as exp_pretrain_head);
- AID 48 px, the AID study's 40 training images a class split 30 / 10;
- UC Merced 64 px, the defaults study's 3 training images a class; validation: the 7 a class that neither its
  training nor its test images use;
- EuroSAT-MS, ten Sentinel-2 bands, 64 px: the BWMS study's training images (15 a class) split 10 / 5.

    python backend/experiments/exp_pretrain_bn.py --out build/pretrain-bn [--jobs 2]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from common import Ctx, SceneData, Study, epochs_for_steps, load, seeded_split, train_eval
from exp_bwms_init import validation_split

from rs_scene.bands import S2_TEN

MODES = ("train", "frozen")


def settings(ctx: Ctx, seed: int) -> dict[str, tuple[SceneData, SceneData]]:
    ucm48, aid = load(ctx, "ucmerced", size=48), load(ctx, "aid_150px", size=48)
    ucm64, eus = load(ctx, "ucmerced", size=64), load(ctx, "eurosat_ms", bands=S2_TEN)
    out = {}
    train, _ = seeded_split(ucm48, seed, test=5, train=10)
    out["UC Merced 48 px, 7 a class"] = seeded_split(train, 100 + seed, test=3)
    out["AID 48 px, 30 a class"] = aid_validation(aid, seed)
    out["UC Merced 64 px, 3 a class"] = validation_split(ucm64, seed)
    train, _ = seeded_split(eus, seed, test=1 / 3)
    out["EuroSAT-MS 10 bands 64 px, 10 a class"] = seeded_split(train, 100 + seed, test=5)
    return {k: (ctx.small(a), ctx.small(b)) for k, (a, b) in out.items()}


def aid_validation(aid: SceneData, seed: int) -> tuple[SceneData, SceneData]:
    """The AID setting's training and validation images: the AID study's 40 training images a class of seed
    ``seed``, split 30 / 10 (the defaults study keeps these validation images out of its test part)."""
    train, _ = seeded_split(aid, seed, test=160)
    return seeded_split(train, 100 + seed, test=10)


def run(ctx: Ctx) -> Study:
    t0 = time.perf_counter()
    base = {"backbone": "efficientnet_lite0", "batch_size": 32, "init": "imagenet", "mode": "fine-tune"}
    study = Study("pretrain-bn", "pretrain fine-tune: BatchNorm statistics on validation splits",
                  "ImageNet EfficientNet-Lite0, LP-FT, >= 200 optimiser steps, the defaults' schedule; "
                  "validation images only (see the script): a selection, not a result.",
                  baseline=f"UC Merced 48 px, 7 a class: {MODES[0]}")
    steps = ctx.pick(200, 1000, 1)
    for seed in ctx.seeds:
        for name, (train, val) in settings(ctx, seed).items():
            epochs = epochs_for_steps(len(train), 32, steps)
            for mode in MODES:
                opts = {**base, "epochs": epochs, "batchnorm": mode}
                r = train_eval(ctx, "pretrain", opts, train, val, seed)
                study.add(f"{name}: {mode}", seed, r.oa, train_s=round(r.seconds),
                          images=f"{len(train)}/{len(val)}")
    for name in setting_names(study):
        study.goal(f"{name}: frozen >= train", f"{name}: frozen", f"{name}: train", False)
    study.reading = reading(study)
    study.seconds = time.perf_counter() - t0
    return study


def setting_names(study: Study) -> list[str]:
    """The settings of the rows (``SETTING: MODE``), in the order they were added."""
    return list(dict.fromkeys(r.split(": ")[0] for r in study.values))


def reading(study: Study) -> str:
    parts = [f"{n}: {study.diff(f'{n}: frozen', f'{n}: train').text(points=True)}"
             for n in setting_names(study) if {f"{n}: frozen", f"{n}: train"} <= study.values.keys()]
    return "Frozen minus re-estimated BatchNorm statistics, validation OA points: " + "; ".join(parts) + "."


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import run as runner

    sys.exit(runner.standalone("pretrain-bn", "exp_pretrain_bn"))
