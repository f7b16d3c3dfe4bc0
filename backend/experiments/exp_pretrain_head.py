"""`pretrain` fine-tune's classifier start, chosen on validation splits: random (the paper) vs a linear probe
trained first (LP-FT). The pre-training study's setting (UC Merced, 48 px, ImageNet Lite0, 200 steps); per
seed s, the study's 10 training images a class are split 7 / 3 (split seed 100 + s) and the 3 are the
validation images: the study's test images are not seen.

    python backend/experiments/exp_pretrain_head.py --out build/pretrain-head [--threads 1]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from common import Ctx, Study, epochs_for_steps, load, seeded_split, train_eval
from exp_pretrain import settings


def run(ctx: Ctx) -> Study:
    t0 = time.perf_counter()
    s = settings(ctx)
    ucm = load(ctx, "ucmerced", size=s["size"])
    base = {"backbone": "efficientnet_lite0", "batch_size": 32, "warmup_epochs": 3, "init": "imagenet"}
    study = Study("pretrain-head", "pretrain fine-tune: classifier start on validation splits",
                  f"UC Merced, {s['size']} px, ImageNet EfficientNet-Lite0; per seed the study's training "
                  "images split 7 / 3 a class (147 / 63): a selection, not a result.",
                  baseline="fine-tune, random head")
    for seed in ctx.seeds:
        train, _ = seeded_split(ucm, seed, test=s["test"], train=s["train"])
        sub, val = seeded_split(train, 100 + seed, test=3)
        epochs = epochs_for_steps(len(sub), 32, s["steps"])
        probe = {**base, "mode": "linear-probe", "epochs": s["probe_epochs"]}
        r = train_eval(ctx, "pretrain", probe, sub, val, seed)
        study.add("linear probe", seed, r.oa, train_s=round(r.seconds))
        for head in ("random", "probe"):
            r = train_eval(ctx, "pretrain", {**base, "epochs": epochs, "head_init": head}, sub, val, seed)
            study.add(f"fine-tune, {head} head", seed, r.oa, train_s=round(r.seconds))
    study.goal("LP-FT > fine-tune", "fine-tune, probe head", "fine-tune, random head", True)
    study.goal("LP-FT > probe", "fine-tune, probe head", "linear probe", True)
    lpft, ft = "fine-tune, probe head", "fine-tune, random head"
    study.reading = (f"LP-FT minus fine-tune {study.diff(lpft, ft).text(points=True)}, LP-FT minus probe "
                     f"{study.diff(lpft, 'linear probe').text(points=True)} points on validation images.")
    study.seconds = time.perf_counter() - t0
    return study


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import run as runner

    sys.exit(runner.standalone("pretrain-head", "exp_pretrain_head"))
