"""Pre-training on UC Merced: scratch vs ImageNet vs domain-adaptive (ImageNet -> AID) x linear probe vs
fine-tune (Risojevic & Stojnic). The AID stage needs no class in common with UC Merced: only the backbone
moves on. Probes train on cached frozen features without augmentation; every fine-tune gets the same epochs,
optimiser, schedule and augmentation."""

from __future__ import annotations

import time

from common import Ctx, Study, class_subset, epochs_for_steps, load, save, seeded_split, train_eval

FT, PROBE = "fine-tune", "linear probe"
FT_RANDOM = "fine-tune from a random classifier (the paper's)"


def settings(ctx: Ctx) -> dict:
    return {
        "size": ctx.pick(48, 224),  # quick: 48 px to fit a shared 2-core CPU
        "aid_per_class": ctx.pick(20, 200, 3),
        "aid_steps": ctx.pick(200, 3000, 1),
        "train": ctx.pick(10, 10, 2),  # UC Merced has 15 images a class here: 10 train, 5 test
        "test": ctx.pick(5, 5, 1),
        "steps": ctx.pick(200, 1000, 1),  # quick: the budget `pretrain`'s defaults give (min_steps 200)
        "ft_lr": 0.0,  # the method's default: 3e-4 from pretrained weights (the paper's), 3e-3 from scratch
        "probe_epochs": ctx.pick(100, 100, 2),
    }


def domain_adapted(ctx: Ctx, s: dict, base: dict) -> tuple[str, int, int]:
    """ImageNet Lite0 fine-tuned on AID (seed 0, shared by every seed of the target: one source model)."""
    aid = class_subset(ctx, "aid_150px", s["aid_per_class"] + 1, size=s["size"])
    source, check = seeded_split(aid, 0, test=1, train=s["aid_per_class"])
    epochs = epochs_for_steps(len(source), 32, s["aid_steps"])
    opts = {**base, "init": "imagenet", "epochs": epochs, "lr": s["ft_lr"]}
    run = train_eval(ctx, "pretrain", opts, source, check, 0)
    return str(save(run, ctx.out / "aid_source.pt")), len(source), epochs


def run(ctx: Ctx) -> Study:
    t0 = time.perf_counter()
    s = settings(ctx)
    base = {"backbone": "efficientnet_lite0", "batch_size": 32, "warmup_epochs": 3, "mode": "fine-tune"}
    in_domain, n_src, e_src = domain_adapted(ctx, s, base)
    ucm = load(ctx, "ucmerced", size=s["size"])
    n_train = len(ucm.classes) * s["train"]
    epochs = epochs_for_steps(n_train, 32, s["steps"])
    study = Study(
        "pretrain",
        "Pre-training: scratch vs ImageNet vs domain-adaptive (ImageNet -> AID), linear probe vs fine-tune",
        f"Target: UC Merced, 21 classes, per seed a fresh stratified split of {s['train']} training / "
        f"{s['test']} test images per class ({n_train} / {21 * s['test']}), {s['size']} px, "
        f"EfficientNet-Lite0. Domain-adaptive: the ImageNet Lite0 fine-tuned on AID ({n_src} images, "
        f"30 classes, {e_src} epochs, >= {s['aid_steps']} steps; no class "
        f"shared with the target needed), then used as the init. Fine-tune: {epochs} epochs (>= {s['steps']} "
        "optimiser steps) starting, from pretrained weights, from the linear probe below (LP-FT, the "
        "default since 2026-12-02, chosen on validation images: `exp_pretrain_head.py`; one row keeps the "
        "paper's random classifier), Adam, 3 warm-up epochs, x0.2 at 50/70/90 %, base lr 3e-3 from scratch "
        f"(the paper's), {s['ft_lr'] or 3e-4:g} from pretrained weights (the paper's 3e-4 is for 100 "
        "epochs), "
        "crop/flip/rotation augmentation; from pretrained weights the BatchNorm statistics stay the "
        "pretrained ones (`batchnorm auto`, the default since 2026-12-03, chosen on validation images: "
        "`exp_pretrain_bn.py`), from scratch they are estimated (momentum 0.1). Linear probe: "
        f"{s['probe_epochs']} epochs of Adam 1e-3 on features cached once from the frozen backbone in eval "
        "mode, no augmentation (the paper's probe). The paper: ResNet-50, 224 px, 100 epochs.",
        baseline=f"ImageNet, {FT}",
    )
    inits = {"scratch": "scratch", "ImageNet": "imagenet", "ImageNet -> AID": in_domain}
    for seed in ctx.seeds:
        train, test = seeded_split(ucm, seed, test=s["test"], train=s["train"])
        for label, init in inits.items():
            lr = s["ft_lr"] if init != "scratch" else 0.0  # scratch: the paper's 3e-3
            init_rows(ctx, study, label, {**base, "init": init, "lr": lr}, train, test, seed, epochs,
                      s["probe_epochs"], paper_row=init == "imagenet")
    study.goal("ImageNet fine-tune > ImageNet linear probe", f"ImageNet, {FT}", f"ImageNet, {PROBE}", True)
    study.goal("in-domain (via AID) fine-tune >= ImageNet fine-tune", f"ImageNet -> AID, {FT}",
               f"ImageNet, {FT}", False)
    study.reading = reading(study)
    study.seconds = time.perf_counter() - t0
    return study


def init_rows(ctx: Ctx, study: Study, label: str, opts: dict, train, test, seed: int, epochs: int,  # noqa: ANN001
              probe_epochs: int, paper_row: bool) -> None:
    """One init's rows for one seed: its linear probe (none from scratch), its fine-tune (from pretrained
    weights LP-FT, ``head_init auto``) and, with ``paper_row``, the paper's fine-tune from a random
    classifier."""
    if opts["init"] != "scratch":
        probe = {**opts, "mode": "linear-probe", "epochs": probe_epochs}
        r = train_eval(ctx, "pretrain", probe, train, test, seed)
        study.add(f"{label}, {PROBE}", seed, r.oa, train_s=round(r.seconds))
    ft = {**opts, "mode": "fine-tune", "epochs": epochs}
    r = train_eval(ctx, "pretrain", ft, train, test, seed)
    study.add(f"{label}, {FT}", seed, r.oa, train_s=round(r.seconds))
    if paper_row:
        r = train_eval(ctx, "pretrain", {**ft, "head_init": "random"}, train, test, seed)
        study.add(f"{label}, {FT_RANDOM}", seed, r.oa, train_s=round(r.seconds))


def reading(study: Study) -> str:
    """The study's reading from its numbers (``run.py --merge`` recomputes it after joining seeds)."""
    ft = study.diff(f"ImageNet, {FT}", f"ImageNet, {PROBE}")
    dom = study.diff(f"ImageNet -> AID, {FT}", f"ImageNet, {FT}")
    rand, probe = f"ImageNet, {FT_RANDOM}", f"ImageNet, {PROBE}"
    paper = (f"; the paper's fine-tune from a random classifier: {study.diff(rand, probe).text(points=True)} "
             "points over the probe" if rand in study.values else "")
    return (
        f"Fine-tuning ImageNet weights (LP-FT) instead of a linear probe moves OA by {ft.text(points=True)} "
        f"points{paper} (with the fine-tune budget of the setup above; the paper fine-tunes 100 epochs at "
        "224 px); the "
        f"extra AID stage moves the fine-tuned model by {dom.text(points=True)} points (the paper: in-domain "
        "pre-training helps most when the target set is small and the domains are close; AID at 150 px is "
        "2-32 m/px, UC Merced 0.3 m/px resized to the same size, so the domains differ in scale)."
    )
