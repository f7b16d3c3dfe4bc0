"""Train a model file from a dataset: split (every class in training and validation; a held-out part where the
data allow), train with a method (validation picks the epoch), evaluate the chosen model once on the held-out
part, on validation and on its own training tiles, and write the card with each figure named for what it is
and the warnings they call for."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..card import ModelCard, make_classes, save_model
from ..data.datasets import SceneData, heldout_indices, open_dataset
from ..data.splits import HELDOUT_LABEL, TRAINING_LABEL, VALIDATION_LABEL
from ..errors import RSSceneError
from ..methods import create_method
from .evaluate import evaluate
from .metrics import metric_warnings
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
    figures are those of the 'val' part, labelled as validation (it picked the best epoch: optimistic)."""
    parts = {k: [i for i, s in enumerate(data.split) if s == k] for k in ("train", "val", "test")}
    rule = "the dataset's split ('val' rows validate"
    rule += ", 'test' rows held out)" if parts["test"] else "; no held-out part: figures are validation's)"
    return parts["train"], parts["val"], parts["test"], rule


def check_validation(data: SceneData, train_idx: list[int], val_idx: list[int], where: str) -> None:
    """Every class with training images has validation images too, or an error naming the classes."""
    if data.task != "single-label" or not val_idx:
        return
    have = set(data.y[val_idx].tolist())
    counts = np.bincount(data.y[train_idx + val_idx].numpy(), minlength=len(data.classes))
    short = [f"'{c}' ({n} image{'s' if n != 1 else ''})" for i, (c, n) in enumerate(zip(data.classes, counts,
             strict=True)) if n and i not in have]
    if short:
        raise RSSceneError(f"{where}: class(es) {', '.join(short)} too few to be in both training and "
                           "validation; every class needs at least 2 images besides the held-out ones")


def check_trainable(data: SceneData, where: str) -> None:
    counts = data.class_counts()
    if data.task == "single-label":
        if (counts > 0).sum() < 2:
            raise RSSceneError(f"{where}: training needs at least two classes with images")
        empty = [c for c, n in zip(data.classes, counts, strict=False) if n == 0]
        if empty:
            raise RSSceneError(f"{where}: class(es) with no training images: {', '.join(empty)}")


# The network input edge raster tiles are enlarged to by default (the shipped sentinel2-eurosat model: 64-px
# tiles at 128). Every backbone here has stride 32: a 32-px tile gives EfficientNet-Lite0 a 1 x 1 last feature
# map, and its ImageNet features of the 32-px Aberystwyth tiles were all zero (std over 147 tiles 1e-4): a
# linear probe on them stayed at loss 0.88 and said one class for everything. At 128 px (4 x 4): 0.95
# nearest-centroid accuracy on the same features, 100 % of the training tiles after the probe.
RASTER_MIN_INPUT = 128


def network_input_size(params: TrainParams, data: SceneData, init: str) -> int:
    """``params.input_size``; by default a folder's image size, and raster tiles starting from pretrained
    weights (``init`` not scratch) enlarged to at least RASTER_MIN_INPUT."""
    tile = int(data.x.shape[-1])
    if params.input_size:
        return params.input_size
    return max(tile, RASTER_MIN_INPUT) if data.kind == "polygons" and init != "scratch" else tile


def resolved_options(params: TrainParams, data: SceneData) -> dict[str, Any]:
    """The method's options with ``init`` 'auto' (pretrain's default) made concrete: for tiles of a raster
    whose bands, task and backbone are a shipped model's, that model (10-band Sentinel-2: sentinel2-eurosat,
    in-domain weights); otherwise imagenet. The card records the result."""
    from ..card import read_card
    from ..methods import get_method
    from ..zoo import SHIPPED_DIR, resolve_model

    fields = {f.name: f.default for f in dataclasses.fields(get_method(params.method).Config)}
    options = dict(params.options)
    if options.get("init", fields.get("init")) != "auto":
        return options
    options["init"] = "imagenet"
    backbone = options.get("backbone", fields.get("backbone"))
    for f in sorted(SHIPPED_DIR.glob("*.pt")) if data.kind == "polygons" else []:
        card = read_card(f)
        if (card.bands, card.task, card.architecture) == (data.bands, data.task, backbone):
            options["init"] = f.stem if resolve_model(f.stem) == f else str(f)  # a user's model of that name
            break
    return options


def build_card(params: TrainParams, data: SceneData, train: SceneData, method: Any) -> ModelCard:
    mean, std = dataset_stats(train)
    size = network_input_size(params, data, getattr(method.config, "init", "imagenet"))
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
        check_validation(data, train_idx, val_idx, where)
    train = data.subset(train_idx)
    check_trainable(train, where)
    params = dataclasses.replace(params, options=resolved_options(params, data))
    method = create_method(params.method, params.options, num_classes=len(data.classes), bands=data.bands,
                           task=data.task)
    card = build_card(params, data, train, method)
    trainer = Trainer(method, card, params.settings, progress, cancel)
    t0 = time.perf_counter()
    ckpt = params.settings.checkpoint or checkpoint_path(out)
    mark_resumable(ckpt, resume_key(params, data, len(train_idx)), params.settings.resume)
    try:
        model = trainer.fit(train, data.subset(val_idx) if val_idx else None, checkpoint=ckpt)
    except Cancelled:
        drop_checkpoint(ckpt)  # a deliberate cancel leaves nothing behind (a crash or a kill keeps it)
        raise
    module = method.export_module(model)
    figures = final_figures(module, card, data, (train_idx, val_idx, test_idx), trainer.device)
    card.metrics = {k: {m: v for m, v in f.items() if m != "classes"} if isinstance(f, dict) else f
                    for k, f in figures.items()}
    card.training = {
        "data": str(params.data or "in-memory"), "kind": data.kind, "n_train": len(train_idx),
        "n_val": len(val_idx), "n_heldout": len(test_idx), "heldout_rule": rule,
        "split_note": data.meta.get("split_note", ""), "input": data.meta.get("input", {}),
        "seed": params.settings.seed,
        "seconds": round(time.perf_counter() - t0, 1), "device": str(trainer.device),
        "history": trainer.history[-50:],
        # per stage: epochs planned (the option, or more where min_steps raised it for a small set), run
        # (fewer after an early stop) and kept (the best validation epoch; None: the last)
        "stages": trainer.stages, "epochs_option": method.config.epochs,
        "min_steps": getattr(method.config, "min_steps", 0),
    }
    save_model(out, card, module.state_dict())
    drop_checkpoint(ckpt)
    report = figures.get(figures.get("reported", ""), {})
    return card, {**report, "warnings": figures["warnings"], "label": report.get("label"),
                  "validation": figures.get("validation"), "training_tiles": figures.get("training")}


def resume_key(params: TrainParams, data: SceneData, n_train: int) -> dict[str, Any]:
    """What a checkpoint must come from to be resumed: the same method, options, data and seed."""
    return {"method": params.method, "options": {k: params.options[k] for k in sorted(params.options)},
            "data": str(params.data or "in-memory"), "classes": data.classes, "bands": data.bands,
            "n_train": n_train, "seed": params.settings.seed}


def mark_resumable(ckpt: str, key: dict[str, Any], resume: bool) -> None:
    """Write ``<ckpt>.json`` beside the per-epoch checkpoint, so that a killed run's checkpoint says what it
    can resume; with ``resume``, refuse one written by another training (its weights would not fit)."""
    info = Path(f"{ckpt}.json")
    Path(f"{ckpt}.tmp").unlink(missing_ok=True)  # a kill during a save
    if resume and Path(ckpt).exists():
        old = json.loads(info.read_text()) if info.exists() else None
        if old != json.loads(json.dumps(key)):
            raise RSSceneError(f"checkpoint {ckpt} was written by another training (method, options, data or "
                               "seed differ) and cannot be resumed; train without resume to start afresh")
    elif Path(ckpt).exists():
        Path(ckpt).unlink()  # a fresh start: the old run's epochs must not be mistaken for this one's
    info.write_text(json.dumps(key))


def drop_checkpoint(ckpt: str) -> None:
    for path in (ckpt, f"{ckpt}.json", f"{ckpt}.tmp"):
        Path(path).unlink(missing_ok=True)


TRAINING_EVAL_MAX = 2000  # training tiles the final figures look at (a seeded sample of larger sets)


def final_figures(module: Any, card: ModelCard, data: SceneData,
                  parts: tuple[list[int], list[int], list[int]], device: Any) -> dict[str, Any]:
    """The chosen model's figures, each labelled: held-out (never used for choosing), validation (used for
    early stopping) and its own training tiles; which one is reported, and the warnings of all three."""
    train_idx, val_idx, test_idx = parts
    if len(train_idx) > TRAINING_EVAL_MAX:
        pick = np.random.default_rng(0).choice(len(train_idx), TRAINING_EVAL_MAX, replace=False)
        train_idx = sorted(train_idx[i] for i in pick)
    out: dict[str, Any] = {}
    for key, idx, label in (("heldout", test_idx, HELDOUT_LABEL), ("validation", val_idx, VALIDATION_LABEL),
                            ("training", train_idx, TRAINING_LABEL)):
        if idx:
            out[key] = {**evaluate(module, card, data.subset(idx), device), "label": label}
    out["reported"] = "heldout" if "heldout" in out else ("validation" if "validation" in out else "")
    warnings = list(data.meta.get("warnings", []))
    for key, what in (("heldout", "held-out"), ("validation", "validation"), ("training", "training tiles")):
        if key in out:
            what = f"{what} ({out[key]['n']} tiles)"
            warnings += metric_warnings(out[key], what, training=key == "training")
    out["warnings"] = warnings
    return out
