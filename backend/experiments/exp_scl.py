"""Two-stage contrastive learning on CI-AID (the paper's protocol, Table 1): CE / CE + re-weighting /
CE + re-sampling (end to end) against SCL-CB / SCL-CSCE (one shared SupCon stage 1 per seed, then a linear
classifier on the frozen encoder's cached features), all with the same encoder epochs, optimiser, schedule and
augmentation. Two studies: overall accuracy and minority-class accuracy on the balanced test set."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import numpy as np
import torch
from common import Ctx, Study, n_params, seeded_split, train_eval, widen_test
from seed_cache import per_seed
from torch.nn import functional as F

from rs_scene.data.datasets import SceneData, open_dataset
from rs_scene.engine.evaluate import preprocess
from rs_scene.methods.base import Stage
from rs_scene.methods.scl import SCLConfig, SCLMethod, recalibrate_batchnorm, warmup_cosine


class CE(SCLMethod):
    """End-to-end CE fine-tuning with SCL's stage-1 optimiser, schedule and augmentation (one view per image),
    optionally re-weighted (``weighted``: class weights n_min / n_c, weighted mean) or re-sampled (``cb``:
    Eq. 2 class-balanced sampling). A zero-epoch last stage re-estimates BatchNorm statistics as SCL's stage
    2 does, so both are evaluated with the same statistics."""

    def __init__(self, config: SCLConfig, k: int, bands: Any, mode: str) -> None:
        super().__init__(config, k, bands)
        self.mode = mode

    def stages(self) -> list[Stage]:
        return [Stage("contrastive", self.config.epochs), Stage("bn", 0)]

    def on_stage_start(self, model, stage: Stage, data: SceneData) -> None:  # noqa: ANN001
        for p in model.parameters():
            p.requires_grad_(stage.name == "contrastive")
        if stage.name == "bn":
            card = self.card
            batches = (preprocess(data.x[i : i + 64], card) for i in range(0, len(data), 64))
            recalibrate_batchnorm(model.classifier.backbone, batches)

    def batch_indices(self, stage: Stage, data: SceneData, batch_size: int, generator: torch.Generator):
        if self.mode == "cb":  # SCL's stage-2 sampler (Eq. 2), here for the whole end-to-end training
            stage = Stage("classifier", stage.epochs)
        return super().batch_indices(stage, data, batch_size, generator)

    def prepare_batch(self, data: SceneData, idx: torch.Tensor, stage: Stage, trainer: Any):
        views, y2 = super().prepare_batch(data, idx, Stage("contrastive", 1), trainer)
        return views[: len(idx)], y2[: len(idx)]  # the first view only

    def configure_optimizer(self, model, stage: Stage, steps_per_epoch: int):  # noqa: ANN001, ANN201
        c, epochs = self.config, max(stage.epochs, 1)
        optim = torch.optim.SGD(model.classifier.parameters(), lr=self.encoder_lr(), momentum=0.9,
                                weight_decay=c.weight_decay)
        warm = min(c.warmup_epochs, epochs // 2)
        return optim, torch.optim.lr_scheduler.LambdaLR(optim, warmup_cosine(epochs, warm))

    def training_step(self, model, x: torch.Tensor, y: torch.Tensor, stage: Stage):  # noqa: ANN001, ANN201
        w = self.class_weights.to(x.device) if self.mode == "weighted" else None
        return {"loss": F.cross_entropy(model.classifier(x), y, weight=w)}


class Encoder(SCLMethod):
    """SCL's stage 1 only (the shared encoder of SCL-CB and SCL-CSCE)."""

    def stages(self) -> list[Stage]:
        return [Stage("contrastive", self.config.epochs)]


class Classifier(SCLMethod):
    """SCL's stage 2 only, from a trained (or ImageNet) encoder's state; the head starts afresh."""

    def __init__(self, config: SCLConfig, k: int, bands: Any, start: dict | None) -> None:
        super().__init__(config, k, bands)
        self.start = start

    def build_model(self):  # noqa: ANN201
        model = super().build_model()
        if self.start is not None:
            model.load_state_dict(self.start)
            model.classifier.head.reset_parameters()
        return model

    def stages(self) -> list[Stage]:
        return [Stage("classifier", self.config.classifier_epochs)]


def ci_aid(data: SceneData, seed: int, s: dict, shots: int) -> tuple[SceneData, SceneData, list[str]]:
    """CI-AID: the first 20 classes keep ``majority`` training images, the last 10 ``shots``; ``test`` +
    ``test_more`` images per class from the rest (balanced; none of the minority images cut away)."""
    train, first = seeded_split(data, seed, test=s["test"], train=s["majority"])
    test = widen_test(data, seed, train, first, s["test_more"])
    minority = data.classes[20:]
    rng = np.random.default_rng(seed)
    keep = []
    for c in range(len(data.classes)):
        members = np.flatnonzero(train.y.numpy() == c)
        keep += (rng.permutation(members)[:shots] if c >= 20 else members).tolist()
    return train.subset(sorted(keep)), test, minority


def group_accuracy(per_class: dict[str, float], names: list[str]) -> float:
    return float(np.mean([per_class[c] for c in names]))


def one_seed(ctx: Ctx, s: dict, data: SceneData, seed: int, shots: int) -> dict[str, Any]:
    train, test, minority = ci_aid(data, seed, s, shots)
    cfg, k, bands = SCLConfig(**s["options"]), len(train.classes), train.bands
    ce = (("CE", "plain"), ("CE + re-weighting", "weighted"), ("CE + re-sampling", "cb"))
    runs = {label: train_eval(ctx, "scl", {}, train, test, seed, method=CE(cfg, k, bands, mode))
            for label, mode in ce}

    first = train_eval(ctx, "scl", {}, train, test, seed, method=Encoder(cfg, k, bands))
    start = first.model.state_dict()
    rows = (("SCL-CB", "cb", start), ("SCL-CSCE", "csce", start), ("ImageNet encoder + CB", "cb", None))
    for label, bal, st in rows:
        runs[label] = train_eval(ctx, "scl", {}, train, test, seed,
                                 method=Classifier(replace(cfg, balance=bal), k, bands, st))
        runs[label].seconds += first.seconds if st is not None else 0.0
    rows = {label: {"oa": r.oa, "per_class": r.metrics["per_class"], "seconds": r.seconds,
                    "parameters": n_params(r.module)} for label, r in runs.items()}
    return {"rows": rows, "minority": minority, "n_train": len(train), "n_test": len(test)}


def setup(ctx: Ctx) -> dict[str, Any]:
    e = ctx.epochs(5, 600)
    return {
        "size": ctx.pick(64, 224),
        "majority": ctx.pick(25, 100, 2),  # the paper: 50 % of each majority class (> 100)
        "test": ctx.pick(20, 100, 1),  # the first draw: it fixes the training split (as before 2026-12-02)
        "test_more": ctx.pick(80, 0, 1),  # ... then more a class from the rest (widen_test)
        "shots": ctx.pick([10], [10, 5], [1]),
        "options": {"backbone": "efficientnet_lite0", "init": "imagenet", "batch_size": 32, "epochs": e,
                    "classifier_epochs": ctx.epochs(100, 100), "dropout": 0.0},
    }


def run(ctx: Ctx) -> list[Study]:
    t0, s = time.perf_counter(), setup(ctx)
    data = ctx.small(open_dataset(ctx.data / "aid_150px", size=s["size"]))
    studies = []
    for shots in s["shots"]:
        overall, minor = studies_for(s, shots)
        for seed in ctx.seeds:
            res = per_seed(ctx, "scl", {**s, "shots": shots}, seed,
                           lambda seed=seed, shots=shots: one_seed(ctx, s, data, seed, shots))
            for label, r in res["rows"].items():
                per = r["per_class"]
                mino = group_accuracy(per, res["minority"])
                majo = group_accuracy(per, [c for c in per if c not in res["minority"]])
                overall.add(label, seed, r["oa"], majority=round(majo, 3), minority=round(mino, 3),
                            train_s=round(r["seconds"]), parameters=r["parameters"])
                minor.add(label, seed, mino)
        overall.goal(f"SCL-CB overall >= CE (s = {shots})", "SCL-CB", "CE", strict=False)
        minor.goal(f"SCL-CB minority > CE (s = {shots})", "SCL-CB", "CE", strict=True)
        text = describe(s, shots, res)
        overall.setup = minor.setup = text
        overall.reading = minor.reading = reading(overall, minor)
        studies += [overall, minor]
    for st in studies:
        st.seconds = time.perf_counter() - t0
    return studies


def studies_for(s: dict, shots: int) -> tuple[Study, Study]:
    tag = f"s = {shots}"
    overall = Study(key=f"scl-s{shots}", title=f"SCL on CI-AID ({tag}): overall accuracy", setup="",
                    baseline="CE", metric="overall OA")
    minor = Study(key=f"scl-s{shots}-minority", title=f"SCL on CI-AID ({tag}): minority-class accuracy",
                  setup="", baseline="CE", metric="minority acc")
    return overall, minor


def describe(s: dict, shots: int, res: dict) -> str:
    o = s["options"]
    return (
        f"CI-AID at {s['size']} px: AID's first 20 classes keep {s['majority']} training images each, the "
        f"last 10 ({', '.join(res['minority'])}) {shots}; {res['n_train']} training images, a balanced test "
        f"set of {s['test'] + s['test_more']} images per class ({res['n_test']}), drawn per seed. "
        f"EfficientNet-Lite0 from ImageNet. Every encoder trains {o['epochs']} epochs with SGD (momentum "
        "0.9, wd 1e-4), lr 0.0125 "
        "(0.5 x 32/128 x 0.1 for the ImageNet init), 2 warm-up epochs then cosine, batch 32, views of "
        "50-100 % crops + flips + 90-degree rotations + colour distortion; BatchNorm statistics re-estimated "
        "on the training images at the end. CE rows: end to end, one view (re-weighting: class weights "
        "n_min / n_c; re-sampling: class-balanced sampling, Eq. 2). SCL rows: one shared SupCon stage 1 "
        "(tau 0.1, two views), then a linear classifier on the frozen encoder's cached features "
        f"({o['classifier_epochs']} epochs, SGD lr 0.01, cosine, wd 5e-5) with class-balanced sampling (CB) "
        "or cost-sensitive CE (CSCE). 'ImageNet encoder + CB': the same classifier on the un-trained "
        "ImageNet encoder. Minority / majority: mean per-class accuracy of each group. The paper: ResNet-50 "
        "from scratch, 224 px, 500-600 epochs."
    )


def readings(by_key: dict[str, Study]) -> dict[str, str]:
    """--merge: each shot count's reading again from its joined overall and minority studies."""
    out = {}
    for key, overall in by_key.items():
        minor = by_key.get(f"{key}-minority")
        if key.startswith("scl-s") and minor is not None:
            out[key] = out[minor.key] = reading(overall, minor)
    return out


def reading(overall: Study, minor: Study) -> str:
    no_stage1 = overall.diff("ImageNet encoder + CB", "SCL-CB").text(points=True)
    return (
        f"SCL-CB minus CE: overall {overall.diff('SCL-CB', 'CE').text(points=True)}, minority "
        f"{minor.diff('SCL-CB', 'CE').text(points=True)} points; the classifier on the ImageNet encoder "
        f"(no stage 1) minus SCL-CB: overall {no_stage1} points (what stage 1 adds, negated)."
    )
