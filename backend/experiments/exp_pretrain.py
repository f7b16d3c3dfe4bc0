"""Pre-training strategies: scratch vs ImageNet vs in-domain (domain-adaptive) x linear probe vs fine-tune."""

from __future__ import annotations

import time

from common import Ctx, Table, save, select_classes, shrink, split, train_eval

from rs_scene.data.datasets import open_dataset


def run(ctx: Ctx) -> Table:
    t0 = time.perf_counter()
    size = 64
    data = open_dataset(ctx.data / "ucmerced", size=size)
    source_classes, target_classes = data.classes[:11], data.classes[11:]
    source = select_classes(data, source_classes)
    train, test = split(select_classes(data, target_classes))
    if ctx.quick:
        source, train, test = shrink(source, 3), shrink(train, 3), shrink(test, 2)
    epochs = ctx.epochs(15)
    base = {"backbone": "efficientnet_lite0", "epochs": epochs, "batch_size": 32, "warmup_epochs": 3}
    src = train_eval(ctx, "pretrain", {**base, "init": "imagenet", "mode": "fine-tune"}, source, test=source)
    in_domain = save(src, ctx.out / "in_domain_source.pt")
    table = Table(
        "Pre-training: scratch vs ImageNet vs in-domain, linear probe vs fine-tune",
        f"Target: UC Merced's last 10 classes ({', '.join(target_classes)}), {len(train)} training / "
        f"{len(test)} held-out images, {size} px. In-domain = domain-adaptive pre-training: the ImageNet "
        f"EfficientNet-Lite0 fine-tuned on the other 11 UC Merced classes ({len(source)} images, no class "
        f"shared with the target). {epochs} epochs each; Adam, 3 warm-up epochs, x0.2 at 50/70/90 %; base "
        "lr as in the paper (3e-3 scratch, 3e-4 fine-tune, 1e-3 linear probe).",
        ["init", "linear probe OA", "fine-tune OA", "train s (probe + fine-tune)"],
    )
    for label, init in (
        ("scratch", "scratch"),
        ("ImageNet", "imagenet"),
        ("in-domain (ImageNet -> UCM-11)", str(in_domain)),
    ):
        runs = [
            train_eval(ctx, "pretrain", {**base, "init": init, "mode": mode}, train, test)
            for mode in ("linear-probe", "fine-tune")
        ]
        table.rows.append(
            [label, *(r.metrics["overall_accuracy"] for r in runs), round(sum(r.seconds for r in runs))]
        )
    best = max(table.rows, key=lambda r: r[2])
    table.reading = (
        f"Best fine-tuned: {best[0]} ({best[2]:.3f}); linear probes: "
        + ", ".join(f"{r[0]} {r[1]:.3f}" for r in table.rows)
        + "."
    )
    table.seconds = time.perf_counter() - t0
    return table
