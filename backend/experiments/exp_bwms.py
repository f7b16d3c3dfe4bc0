"""BWMS vs ResNet-18 on the same ten Sentinel-2 bands: EuroSAT-MS (single-label, seeds) and BigEarthNet-S2
(multi-label, a smoke test on the 143 patches this repository has). The models differ only in the first
layer: BWMS's band-wise layer (body on the /2 grid), ResNet-18's 7x7/2 stem + max-pool (/4), and the same
stem without the max-pool (/2, the comparison at BWMS's resolution)."""

from __future__ import annotations

import time

from common import Ctx, Study, load, n_params, seeded_split, train_eval

from rs_scene.bands import S2_TEN
from rs_scene.data.transforms import resize
from rs_scene.methods.bwms import load_bigearthnet_native

STEMS = {"conv": "ResNet-18", "conv-s2": "ResNet-18, stride-2 stem", "bwms": "BWMS (ResNet-18 body)"}


def settings(ctx: Ctx) -> dict:
    return {"eus_epochs": ctx.epochs(10, 100), "ben_epochs": ctx.epochs(2, 100), "size": ctx.pick(48, 64),
            "ben_seeds": [x for x in ctx.seeds if x == 0] if ctx.profile.name != "paper" else ctx.seeds}


def options(stem: str, epochs: int) -> dict:
    """The paper's configuration, explicit (not bwms's defaults): a ResNet-18 body from scratch, lr 1e-3."""
    return {"stem": stem, "backbone": "resnet18", "init": "scratch", "lr": 1e-3, "epochs": epochs,
            "batch_size": 32, "lr_halving": 30}


def resized(data, size: int):  # noqa: ANN001, ANN201
    """The images resized to ``size`` px (bilinear), as the trainer would feed them."""
    if data.x.shape[-1] == size:
        return data
    out = data.subset(list(range(len(data))))
    out.x = resize(data.x, size)
    return out


def eurosat(ctx: Ctx, s: dict) -> Study:
    data = ctx.small(load(ctx, "eurosat_ms", bands=S2_TEN))
    study = Study(
        "bwms",
        "Band-wise multi-scale CNN vs ResNet-18 on the same ten Sentinel-2 bands (EuroSAT-MS)",
        f"EuroSAT-MS, 10 classes, {len(data)} images (all this repository has), per seed a fresh stratified "
        f"split with a third of each class held out, {s['size']} px (EuroSAT's 64 px resized), bands "
        f"{', '.join(S2_TEN)}. All from scratch, the "
        f"same head (dropout 0.5, FC 128 + LeakyReLU, FC classes), Adam lr 1e-3 halved every 30 epochs, "
        f"{s['eus_epochs']} epochs, batch 32, rotations/flips only. BWMS: depthwise 1/3/5/7 per band (10 m "
        "bands stride 2, 20 m bands on their native grid), 1x1 fusion + BN + LeakyReLU, LeakyReLU(0.1) in "
        "the ResNet-18 body (the paper). The paper: BigEarthNet, 100+ epochs.",
        baseline=STEMS["conv"],
    )
    for seed in ctx.seeds:
        train, test = seeded_split(data, seed, test=1 / 3)
        train, test = resized(train, s["size"]), resized(test, s["size"])
        for stem, row in STEMS.items():
            r = train_eval(ctx, "bwms", options(stem, s["eus_epochs"]), train, test, seed)
            study.add(row, seed, r.oa, parameters=n_params(r.module), train_s=round(r.seconds))
    study.goal("BWMS >= ResNet-18 (same ten bands)", STEMS["bwms"], STEMS["conv"], strict=False)
    study.goal("BWMS >= ResNet-18 with the stride-2 stem", STEMS["bwms"], STEMS["conv-s2"], strict=False)
    study.reading = reading(study)
    return study


def bigearthnet(ctx: Ctx, s: dict) -> Study:
    data = ctx.small(load_bigearthnet_native(ctx.data / "bigearthnet_s2"))
    study = Study(
        "bwms-bigearthnet",
        "BWMS vs ResNet-18 on BigEarthNet-S2 (smoke test)",
        f"BigEarthNet-S2, 43 labels, {len(data)} patches (all this repository has), a third held out, 20 m "
        f"bands at native resolution, sigmoid + BCE, {s['ben_epochs']} epochs, seeds "
        f"{', '.join(map(str, s['ben_seeds']))}. Sample F1 at threshold 0.5. A smoke test: the paper trains "
        "on ~270,000 patches; 95 patches and a few epochs show that the multi-label path runs, not which "
        "model is better.",
        baseline=STEMS["conv"], metric="sample F1",
    )
    for seed in s["ben_seeds"]:
        train, test = seeded_split(data, seed, test=1 / 3)
        for stem in ("conv", "bwms"):
            r = train_eval(ctx, "bwms", options(stem, s["ben_epochs"]), train, test, seed)
            m = r.metrics
            study.add(STEMS[stem], seed, m["sample_f1"], sample_acc=round(m["sample_accuracy"], 3),
                      hamming=round(m["hamming_loss"], 4), ranking=round(m["ranking_loss"], 4),
                      train_s=round(r.seconds))
    study.reading = "Runs end to end on multi-label data; the numbers are anecdotal at this size."
    return study


def run(ctx: Ctx) -> list[Study]:
    s = settings(ctx)
    out = []
    for part in (eurosat, bigearthnet):
        if part is bigearthnet and not s["ben_seeds"]:
            continue
        t0 = time.perf_counter()
        study = part(ctx, s)
        study.seconds = time.perf_counter() - t0
        out.append(study)
    return out


def reading(study: Study) -> str:
    """The study's reading from its numbers (``run.py --merge`` recomputes it after joining seeds)."""
    a, b = study.diff(STEMS["bwms"], STEMS["conv"]), study.diff(STEMS["conv-s2"], STEMS["conv"])
    return (f"BWMS minus ResNet-18: {a.text(points=True)} OA points; removing ResNet-18's max-pool alone (the"
            f" /2 grid BWMS runs on) moves it by {b.text(points=True)} points, the share of BWMS's "
            "difference that is resolution, not the band-wise layer.")
