"""Every registered method with exactly its dialog defaults (its config dataclass's defaults) on one small
labelled set such as a user draws, against `pretrain` fine-tuning with its defaults.

AID (30 classes), 3 training images a class per seed, tested on 100 a class. Until 2026-12-04 the table used
UC Merced's 3 / 5 a class (the 15 a class on disk leave no more): with 105 test images one model's accuracy
had a sampling error of about 5 points and the paired differences' intervals spanned +-15 to +-21 points.
No test image is one that a selection behind a default was validated on (:func:`selection_files`).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from common import (
    PROFILES,
    Ctx,
    SceneData,
    Study,
    load,
    n_params,
    save,
    seeded_split,
    tiles_per_second,
    train_eval,
)

from rs_scene.methods import list_methods
from rs_scene.methods.registry import get_method

SIZE = 64  # the Train dialog's default tile size
DATA = "aid_150px"
# the seeds each AID selection script ran with (RESULTS.md, "Selections on validation images")
SELECTION_SEEDS = {"ddrl-am --select": 3, "pskd (lr, BatchNorm, mixup)": 4, "pretrain BatchNorm": 3}


def run(ctx: Ctx) -> Study:
    t0 = time.perf_counter()
    train_n, test_n = ctx.pick(3, 5, 2), ctx.pick(100, 100, 1)
    data = load(ctx, DATA, size=SIZE)
    pool = unselected(data)
    k = len(data.classes)
    registered = [m["name"] for m in list_methods()]
    names = [n for n in registered if ctx.methods is None or n in ctx.methods or n == "pretrain"]
    study = Study(
        "defaults",
        "Defaults: every method with the Train dialog's defaults vs pretrain fine-tuning",
        f"AID, {k} classes, per seed {train_n} training / {test_n} test images per class "
        f"({k * train_n} / {k * test_n}), drawn from the {len(pool)} images that no selection behind a "
        f"default was validated on, {SIZE} px (the dialog's default tile size), each method's "
        "config defaults as the dialog shows them (`rs-scene train --method NAME` with no option), no "
        "validation share. PSKD's teacher: `pretrain` defaults with backbone efficientnet_lite2 (its "
        f"default pair: Lite2 teacher, Lite0 student). Methods: {', '.join(registered)} (from the registry).",
        baseline="pretrain",
    )
    for seed in ctx.seeds:
        train, test = seeded_split(pool, seed, test=test_n, train=train_n)
        train, test = ctx.small(train), ctx.small(test)
        if "pskd" in names:
            lite2 = {"backbone": "efficientnet_lite2", **smoke_steps(ctx, "pretrain")}
            teacher = train_eval(ctx, "pretrain", lite2, train, test, seed)
            path = save(teacher, ctx.out / f"defaults_teacher_{seed}.pt")
        for name in names:
            options = {"teacher": str(path)} if name == "pskd" else {}
            options.update(smoke_steps(ctx, name))
            r = train_eval(ctx, name, options, train, test, seed)
            study.add(name, seed, r.oa, parameters=n_params(r.module),
                      tiles_per_s=round(tiles_per_second(r.module, 3, SIZE)), train_s=round(r.seconds))
    for name in names:
        if name != "pretrain":
            study.goal(f"{name} defaults >= pretrain defaults", name, "pretrain", strict=False)
    study.reading = reading(study)
    study.seconds = time.perf_counter() - t0
    return study


def unselected(data: SceneData) -> SceneData:
    """The images of ``data`` (AID) outside :func:`selection_files`: the defaults' training and test pool."""
    avoid = selection_files(data)
    return data.subset([i for i, f in enumerate(data.files) if f not in avoid])


def selection_files(data: SceneData) -> set[str]:
    """The AID images (file names of ``data``, AID at any size) that the selections behind the defaults were
    validated on, drawn as their scripts draw them at the quick profile: DDRL-AM's lambda
    (``exp_ddrl_am.py --select``), PSKD's lr, BatchNorm statistics and mixup a (``exp_pskd_*.py`` on
    ``exp_pskd.splits``), ``pretrain``'s BatchNorm statistics (``exp_pretrain_bn.py``)."""
    import exp_ddrl_am
    import exp_pretrain_bn
    import exp_pskd

    quick = Ctx(Path("."), Path("."), PROFILES["quick"])  # only its sizes are read
    n = SELECTION_SEEDS
    files: set[str] = set()
    for seed in range(n["ddrl-am --select"]):
        files |= set(exp_ddrl_am.select_split(data, seed, exp_ddrl_am.setup(quick))[1].files)
    for seed in range(n["pskd (lr, BatchNorm, mixup)"]):
        files |= set(exp_pskd.splits(data, seed, exp_pskd.settings(quick))[1].files)
    for seed in range(n["pretrain BatchNorm"]):
        files |= set(exp_pretrain_bn.aid_validation(data, seed)[1].files)
    return files


def smoke_steps(ctx: Ctx, name: str) -> dict[str, int]:
    """The smoke profile checks the harness only: 10 optimiser steps where a method lifts its epochs to
    ``min_steps`` (the quick and paper profiles keep every default)."""
    fields = {f.name for f in dataclasses.fields(get_method(name).Config)}
    return {"min_steps": 10} if ctx.profile.name == "smoke" and "min_steps" in fields else {}


def reading(study: Study) -> str:
    """The study's reading from its numbers (``run.py --merge`` recomputes it after joining seeds)."""
    bad = [g.a for g in study.goals if not g.met]
    return (
        "Methods whose defaults fall below plain fine-tuning on a set this small: "
        + (", ".join(bad) if bad else "none") + ". PSKD's student is EfficientNet-Lite0 "
        f"({study.extra('pskd', 'parameters')} parameters, {study.extra('pskd', 'tiles_per_s')} tiles/s) "
        "where its Lite2 teacher would be larger and slower."
    )
