"""Every registered method with exactly its dialog defaults (its config dataclass's defaults) on one small
labelled set such as a user draws, against `pretrain` fine-tuning with its defaults."""

from __future__ import annotations

import dataclasses
import time

from common import Ctx, Study, load, n_params, save, seeded_split, tiles_per_second, train_eval

from rs_scene.methods import list_methods
from rs_scene.methods.registry import get_method

SIZE = 64  # the Train dialog's default tile size


def run(ctx: Ctx) -> Study:
    t0 = time.perf_counter()
    train_n, test_n = ctx.pick(3, 5, 2), ctx.pick(5, 5, 1)
    data = load(ctx, "ucmerced", size=SIZE)
    registered = [m["name"] for m in list_methods()]
    names = [n for n in registered if ctx.methods is None or n in ctx.methods or n == "pretrain"]
    study = Study(
        "defaults",
        "Defaults: every method with the Train dialog's defaults vs pretrain fine-tuning",
        f"UC Merced, 21 classes, per seed {train_n} training / {test_n} test images per class "
        f"({21 * train_n} / {21 * test_n}), {SIZE} px (the dialog's default tile size), each method's "
        "config defaults as the dialog shows them (`rs-scene train --method NAME` with no option), no "
        "validation share. PSKD's teacher: `pretrain` defaults with backbone efficientnet_lite2 (its "
        f"default pair: Lite2 teacher, Lite0 student). Methods: {', '.join(registered)} (from the registry).",
        baseline="pretrain",
    )
    for seed in ctx.seeds:
        train, test = seeded_split(data, seed, test=test_n, train=train_n)
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
