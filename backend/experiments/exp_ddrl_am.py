"""DDRL-AM on AID: the paper's ablation (Table II) from one shared stage 1 per seed: backbone alone /
+ attention map (two-stream, lambda 0) / + map + center loss, all with the same epochs, optimiser, schedule
and augmentation.

    python backend/experiments/exp_ddrl_am.py --select [--data ../shared/data --out build/exp]
chooses lambda on validation images (per seed, AID images in neither its training nor its test part) and
prints the table.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from common import PROFILES, Ctx, Study, n_params, seeded_split, train_eval, widen_test
from seed_cache import per_seed

from rs_scene.data.datasets import SceneData, open_dataset
from rs_scene.methods.base import Stage
from rs_scene.methods.ddrl_am import DDRLAMConfig, DDRLAMMethod

LAMBDAS = [0.001, 0.01, 0.1, 1.0]  # the --select grid (center loss scaled to 512 feature dimensions)


class Stage1(DDRLAMMethod):
    """DDRL-AM's stage 1 only: the attention network (backbone + linear head) fine-tuned."""

    def stages(self) -> list[Stage]:
        return [Stage("attention", self.config.stage1_epochs)]

    def export_module(self, model):  # noqa: ANN001, ANN201
        return model.net.attention_net


class Branch(DDRLAMMethod):
    """Continues from a trained stage 1 (its state dict): ``two-stream`` (DDRL-AM's stage 2) or ``attention``
    (the backbone alone, fine-tuned further with the same optimiser and augmentation)."""

    def __init__(self, config: DDRLAMConfig, k: int, bands: Any, start: dict, stage: str) -> None:
        super().__init__(config, k, bands)
        self.start, self.stage_name = start, stage

    def build_model(self):  # noqa: ANN201
        model = super().build_model()
        model.load_state_dict(self.start)
        return model

    def stages(self) -> list[Stage]:
        return [Stage(self.stage_name, self.config.epochs)]

    def export_module(self, model):  # noqa: ANN001, ANN201
        return model.net.attention_net if self.stage_name == "attention" else model.net


def setup(ctx: Ctx) -> dict[str, Any]:
    return {
        "size": ctx.pick(96, 224),
        "train": ctx.pick(10, 40, 2),  # AID images per class for training (the paper's UCM: 80 %)
        "test": ctx.pick(20, 100, 1),  # the first draw: it fixes the training split (as before 2026-12-02)
        "test_more": ctx.pick(80, 0, 1),  # ... then more a class from the rest (widen_test)
        "e1": ctx.epochs(6, 20),
        "e2": ctx.epochs(6, 40),  # the paper: 40 epochs end to end
        "options": {"backbone": "efficientnet_lite0", "init": "imagenet", "batch_size": 32, "dropout": 0.0},
    }


def center_row(lam: float) -> str:
    return "+map" if lam == 0 else f"+map+center (lambda {lam:g})"


def ablation(ctx: Ctx, s: dict, train: SceneData, test: SceneData, seed: int, lambdas: list[float]) -> dict:
    """One shared stage 1, then each branch for ``e2`` epochs; returns label -> Run."""
    k, opts = len(train.classes), s["options"]
    cfg = DDRLAMConfig(**opts, epochs=s["e2"], stage1_epochs=s["e1"])
    first = train_eval(ctx, "ddrl-am", {}, train, test, seed, method=Stage1(cfg, k, train.bands))
    start = first.model.state_dict()
    runs = {"stage 1 only": first}
    runs["backbone"] = train_eval(
        ctx, "ddrl-am", {}, train, test, seed, method=Branch(cfg, k, train.bands, start, "attention")
    )
    for lam in lambdas:
        label = center_row(lam)
        method = Branch(replace(cfg, center_weight=lam), k, train.bands, start, "two-stream")
        runs[label] = train_eval(ctx, "ddrl-am", {}, train, test, seed, method=method)
    for r in runs.values():
        r.seconds += first.seconds if r is not first else 0.0
    return runs


def load(ctx: Ctx, size: int) -> SceneData:
    return ctx.small(open_dataset(ctx.data / "aid_150px", size=size))


def run(ctx: Ctx) -> Study:
    t0, s = time.perf_counter(), setup(ctx)
    data, lam = load(ctx, s["size"]), DDRLAMConfig().center_weight
    center = f"+map+center (lambda {lam:g})"
    n_test = s["test"] + s["test_more"]
    study = Study(
        key="ddrl-am",
        title="DDRL-AM ablation on AID: backbone / + attention map / + map + center loss",
        setup=(
            f"AID (30 classes, 150-px JPEGs) at {s['size']} px; per seed a stratified random split of "
            f"{s['train']} training and {n_test} test images per class ({30 * n_test} test images). "
            f"EfficientNet-Lite0 from ImageNet. One shared stage 1 per seed ({s['e1']} epochs: backbone + "
            f"linear head, Adam-AMSGrad lr 1e-4 backbone / 1e-3 head, batch 32, rotations/flips), then each "
            f"row trains {s['e2']} more epochs from it with the same optimiser and augmentation: 'backbone' "
            "fine-tunes the stage-1 network further; '+map' is the two-stream network (Grad-CAM map of the "
            "stage-1 network -> SFT, product fusion) with lambda 0; the last row adds the center loss "
            f"(scaled to 512 dims, lambda {lam:g}: Wen et al.'s range, and the best of 0 / 0.001 / 0.01 / "
            "0.1 / 1 on validation images, `--select`; centers from the train-mode class means). The "
            "paper: ResNet-18, 224 px, "
            "40 epochs, UC Merced / NWPU."
        ),
        baseline="backbone",
    )
    for seed in ctx.seeds:
        def compute(seed: int = seed) -> dict:
            train, first = seeded_split(data, seed, test=s["test"], train=s["train"])
            test = widen_test(data, seed, train, first, s["test_more"])
            runs = ablation(ctx, s, train, test, seed, [0.0, lam])
            return {k: {"oa": r.oa, "parameters": n_params(r.module), "seconds": r.seconds}
                    for k, r in runs.items()}

        for label, r in per_seed(ctx, "ddrl-am", {**s, "lambda": lam}, seed, compute).items():
            label = "+map+center" if label == center else label
            study.add(label, seed, r["oa"], parameters=r["parameters"], train_s=round(r["seconds"]))
    study.goal("DDRL-AM (+map+center) >= backbone alone", "+map+center", "backbone", strict=False)
    study.goal("+map step non-negative", "+map", "backbone", strict=False)
    study.goal("+center-loss step non-negative", "+map+center", "+map", strict=False)
    study.reading = reading(study)
    study.seconds = time.perf_counter() - t0
    return study


def reading(study: Study) -> str:
    """From the study's rows alone, so that --merge writes it again for the joined seeds."""
    d_map, d_cl = study.diff("+map", "backbone"), study.diff("+map+center", "+map")
    text = (f"The attention map moves OA by {d_map.text(points=True)} points and the center loss by "
            f"{d_cl.text(points=True)} more (paired over {d_map.n} seeds).")
    size = re.search(r"at (\d+) px", study.setup)
    if size:
        px = int(size.group(1))
        text += (f" At {px} px the stage-1 feature map is {px // 32} x {px // 32} cells, so the attention "
                 "map is coarse (the paper: 7 x 7).")
    return text


VAL = 10  # validation images a class for --select, from the images in neither part of the seed's split


def select_split(data: SceneData, seed: int, s: dict) -> tuple[SceneData, SceneData, SceneData]:
    """Seed ``seed``'s training and test images exactly as :func:`run` draws them, and ``VAL`` validation
    images a class from the rest (drawn with 1000 + seed): in neither of the two."""
    train, first = seeded_split(data, seed, test=s["test"], train=s["train"])
    test = widen_test(data, seed, train, first, s["test_more"])
    used = set(train.files) | set(test.files)
    rest = data.subset([i for i, f in enumerate(data.files) if f not in used])
    return train, seeded_split(rest, 1000 + seed, test=VAL, train=0)[1], test


def select(ctx: Ctx, seeds: list[int]) -> Study:
    """lambda on validation: per seed the study's own training images, validated on ``VAL`` images a class
    that are neither its training nor its test images (before 2026-12-03 a seed-100 split whose validation
    images were test images of the study's seeds)."""
    t0, s = time.perf_counter(), setup(ctx)
    data = load(ctx, s["size"])
    study = Study(key="ddrl-am-select", title="DDRL-AM: lambda chosen on AID validation images",
                  setup="", baseline="+map")
    for seed in seeds:
        train, val, _ = select_split(data, seed, s)
        if len(val) == 0:
            raise SystemExit(f"--select: no validation image is left outside seed {seed}'s training and "
                             f"test parts at the {ctx.profile.name} profile's sizes; run it with the quick "
                             "profile")
        for label, r in ablation(ctx, s, train, val, seed, [0.0, *LAMBDAS]).items():
            study.add(label, seed, r.oa, train_s=round(r.seconds))
    study.setup = (
        f"Seeds {seeds}: each the study's own split ({s['train']} training images a class), validated on "
        f"{VAL} images a class in neither its training nor its test part; AID at {s['size']} px, epochs "
        f"{s['e1']} + {s['e2']}; metric: validation OA."
    )
    best = max(LAMBDAS, key=lambda lam: study.summary(center_row(lam)).mean)
    study.reading = f"Chosen on validation: lambda {best:g} (the best mean validation OA)."
    study.seconds = time.perf_counter() - t0
    return study


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[3] / "shared" / "data"))
    ap.add_argument("--out", default="build/experiments")
    ap.add_argument("--profile", default="quick", choices=sorted(PROFILES))
    ap.add_argument("--select", action="store_true", required=True)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    print(select(Ctx(Path(args.data), Path(args.out), PROFILES[args.profile]), args.seeds).markdown())
    sys.exit(0)
