"""Train a model file from a dataset: split, train with a method, evaluate on held-out data,
write the card."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..card import ModelCard, make_classes, save_model
from ..data.datasets import SceneData, heldout_indices, open_dataset
from ..errors import RSSceneError
from ..methods import create_method
from .evaluate import evaluate
from .trainer import Cancelled, Progress, Trainer, TrainSettings, checkpoint_path, dataset_stats


@dataclass
class TrainParams:
    out: str
    method: str = "pretrain"
    data: str | None = None
    name: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    bands: list[str] | None = None
    image_size: int | None = None  # dataset images are resized to this on loading (folder datasets)
    input_size: int | None = None  # network input edge (default: the image size)
    val_fraction: float = 0.0  # share of the training part kept for validation / early stopping
    holdout: bool = True  # keep the dataset's held-out split out of training and report metrics on it
    description: str = ""
    settings: TrainSettings = field(default_factory=TrainSettings)


def stratified_split(
    data: SceneData, idx: list[int], fraction: float, seed: int
) -> tuple[list[int], list[int]]:
    """Split ``idx`` into (keep, val) with ``fraction`` of each class (at least one) in val."""
    if fraction <= 0:
        return list(idx), []
    rng = np.random.default_rng(seed)
    keep, val = [], []
    labels = data.y.numpy() if data.task == "single-label" else np.zeros(len(data), dtype=int)
    for c in np.unique(labels[idx]):
        members = [i for i in idx if labels[i] == c]
        rng.shuffle(members)
        k = max(1, int(round(len(members) * fraction))) if len(members) > 1 else 0
        val += members[:k]
        keep += members[k:]
    return sorted(keep), sorted(val)


def dataset_split(data: SceneData) -> tuple[list[int], list[int], list[int], str]:
    """``(train, val, test, rule)`` from the dataset's own split labels; without 'test' rows the reported
    metrics are those of the 'val' part (it picked the best epoch, so they are optimistic)."""
    parts = {k: [i for i, s in enumerate(data.split) if s == k] for k in ("train", "val", "test")}
    rule = "the dataset's split ('val' rows validate"
    rule += ", 'test' rows held out)" if parts["test"] else " and are reported: no separate test part)"
    return parts["train"], parts["val"], parts["test"], rule


def check_trainable(data: SceneData, where: str) -> None:
    counts = data.class_counts()
    if data.task == "single-label":
        if (counts > 0).sum() < 2:
            raise RSSceneError(f"{where}: training needs at least two classes with images")
        empty = [c for c, n in zip(data.classes, counts, strict=False) if n == 0]
        if empty:
            raise RSSceneError(f"{where}: class(es) with no training images: {', '.join(empty)}")


def build_card(params: TrainParams, data: SceneData, train: SceneData, method: Any) -> ModelCard:
    mean, std = dataset_stats(train)
    size = params.input_size or int(data.x.shape[-1])
    return ModelCard(
        name=params.name or Path(params.out).stem, classes=make_classes(data.classes), bands=data.bands,
        task=data.task, value_scale=data.value_scale, mean=mean, std=std, tile_size=int(data.x.shape[-1]),
        input_size=size, gsd=data.gsd, description=params.description, **method.card_fields(),
    )


def train_model(params: TrainParams, data: SceneData | None = None, progress: Progress | None = None,
                cancel: threading.Event | None = None) -> tuple[ModelCard, dict[str, Any]]:
    """Train, evaluate and save. Every input check happens before the first training step."""
    out = Path(params.out)
    if not out.parent.exists():
        raise RSSceneError(f"output folder {out.parent} does not exist")
    if data is None:
        if not params.data:
            raise RSSceneError("no training data: give a dataset folder or a raster with labelled polygons")
        data = open_dataset(params.data, size=params.image_size, bands=params.bands)
    where = params.data or "training data"
    check_trainable(data, where)
    if "val" in data.split:  # the dataset brings its own (e.g. spatially blocked) validation part
        train_idx, val_idx, test_idx, rule = dataset_split(data)
    else:
        if params.holdout:
            train_idx, test_idx, rule = heldout_indices(data)
        else:
            train_idx, test_idx, rule = list(range(len(data))), [], "none: all images used for training"
        train_idx, val_idx = stratified_split(data, train_idx, params.val_fraction, params.settings.seed)
    train = data.subset(train_idx)
    check_trainable(train, where)
    method = create_method(params.method, params.options, num_classes=len(data.classes), bands=data.bands,
                           task=data.task)
    card = build_card(params, data, train, method)
    trainer = Trainer(method, card, params.settings, progress, cancel)
    t0 = time.perf_counter()
    ckpt = params.settings.checkpoint or checkpoint_path(out)
    try:
        model = trainer.fit(train, data.subset(val_idx) if val_idx else None, checkpoint=ckpt)
    except Cancelled:
        Path(ckpt).unlink(missing_ok=True)  # a deliberate cancel leaves nothing behind (a crash keeps it)
        raise
    module = method.export_module(model)
    metrics: dict[str, Any] = {}
    report_idx = test_idx or (val_idx if "val" in data.split else [])
    if report_idx:
        metrics = evaluate(module, card, data.subset(report_idx), trainer.device)
    card.metrics = {"heldout": {k: v for k, v in metrics.items() if k != "classes"}} if metrics else {}
    card.training = {
        "data": str(params.data or "in-memory"), "kind": data.kind, "n_train": len(train_idx),
        "n_val": len(val_idx), "n_heldout": len(report_idx), "heldout_rule": rule,
        "seed": params.settings.seed,
        "seconds": round(time.perf_counter() - t0, 1), "device": str(trainer.device),
        "history": trainer.history[-50:],
    }
    save_model(out, card, module.state_dict())
    Path(ckpt).unlink(missing_ok=True)
    return card, metrics
