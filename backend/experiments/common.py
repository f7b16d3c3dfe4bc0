"""The benchmark's harness: profiles, seeded splits, one train + evaluate run, cached frozen features and
linear probes, model size and CPU speed. Statistics, tables, goals and plots are in :mod:`stats`.

Every experiment module has ``run(ctx) -> Study | list[Study]``; see /work/notes/h11-harness.md.
"""

from __future__ import annotations

import hashlib
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from stats import Goal, Interval, Study, Table, interval, paired  # noqa: F401  (re-exported)
from torch import nn

from rs_scene.card import save_model
from rs_scene.data.datasets import SceneData, heldout_indices, open_dataset
from rs_scene.engine.evaluate import evaluate, preprocess
from rs_scene.engine.train import TrainParams, build_card
from rs_scene.engine.trainer import Trainer, TrainSettings
from rs_scene.methods import Method, create_method

CPU = torch.device("cpu")


@dataclass(frozen=True)
class Profile:
    name: str
    seeds: int  # splits and inits: seed s draws split s and initialises with s
    size: int  # default image edge in px (an experiment may pick another through ``ctx.pick``)
    shrink: int = 0  # smoke only: keep this many images per class
    study_seeds: dict[str, int] = field(default_factory=dict)  # a study with other than ``seeds`` seeds

    def seeds_of(self, study: str) -> int:
        return self.study_seeds.get(study, self.seeds)


PROFILES = {
    # the default: all five papers within ~60 min on 2 CPU cores; 5 seeds per method study (3 gave intervals
    # of +-18 points on SCL's minority gain), 3 for the defaults table, the longest (9 min a seed)
    "quick": Profile("quick", seeds=5, size=64, study_seeds={"defaults": 3}),
    "paper": Profile("paper", seeds=5, size=224),  # the papers' image size and epochs, for a GPU
    "smoke": Profile("smoke", seeds=2, size=64, shrink=3),  # checks the harness: numbers meaningless
}


@dataclass
class Ctx:
    data: Path  # ../shared/data
    out: Path  # where model files, caches, results and plots go
    profile: Profile = PROFILES["quick"]
    seeds_override: int = 0
    device: str = "cpu"
    seed_list: list[int] | None = None  # run only these seeds (one process per seed; --merge joins them)
    methods: list[str] | None = None  # defaults study: only these methods (and the pretrain baseline)

    @property
    def seeds(self) -> list[int]:
        if self.seed_list is not None:
            return list(self.seed_list)
        return list(range(self.seeds_override or self.profile.seeds))

    def for_study(self, study: str) -> Ctx:
        """This context for one study: its profile's seed count for it, unless seeds were given."""
        if self.seed_list is not None or self.seeds_override:
            return self
        return replace(self, seeds_override=self.profile.seeds_of(study))

    @property
    def size(self) -> int:
        return self.profile.size

    def pick(self, quick: Any, paper: Any, smoke: Any = None) -> Any:
        """The value for this profile (smoke: ``smoke``, else ``quick``)."""
        if self.profile.name == "paper":
            return paper
        if self.profile.name == "smoke":
            return quick if smoke is None else smoke
        return quick

    def epochs(self, quick: int, paper: int) -> int:
        return self.pick(quick, paper, 1)

    def small(self, data: SceneData) -> SceneData:
        """The data itself, or a few images per class under the smoke profile."""
        return shrink(data, self.profile.shrink) if self.profile.shrink else data


# -- data ---------------------------------------------------------------------------------------------------
_LOADED: dict[tuple, SceneData] = {}


def load(ctx: Ctx, name: str, size: int | None = None, bands: list[str] | None = None) -> SceneData:
    """``open_dataset(ctx.data / name, size, bands)``, loaded once per process (AID is 6,000 JPEGs)."""
    key = (str(ctx.data / name), size, tuple(bands or ()))
    if key not in _LOADED:
        _LOADED[key] = open_dataset(ctx.data / name, size=size, bands=bands)
    return _LOADED[key]


def labels_of(data: SceneData) -> np.ndarray:
    return data.y.numpy() if data.task == "single-label" else np.zeros(len(data), dtype=int)


def class_subset(ctx: Ctx, name: str, per_class: int, size: int | None = None) -> SceneData:
    """The first ``per_class`` files (sorted) of each class folder of ``name``, loaded through a folder of
    symbolic links under ``out``: AID's 6,000 JPEGs are not all decoded when 20 a class are needed."""
    src, dst = ctx.data / name, ctx.out / f"{name}_first{per_class}"
    if not dst.exists():
        tmp = dst.with_suffix(".tmp")
        for folder in sorted(p for p in src.iterdir() if p.is_dir()):
            (tmp / folder.name).mkdir(parents=True, exist_ok=True)
            for f in sorted(folder.iterdir())[:per_class]:
                (tmp / folder.name / f.name).symlink_to(f.resolve())
        tmp.rename(dst)
    return load(ctx, str(dst.resolve()), size=size)  # an absolute name: ctx.data / name is that path


def seeded_split(data: SceneData, seed: int, test: float | int = 1 / 3, train: int | None = None,
                 classes: list[int] | None = None) -> tuple[SceneData, SceneData]:
    """Stratified random split drawn with ``seed``: per class, ``test`` images (a count, or a share) held out
    and at most ``train`` of the rest kept for training (all when None). Multi-label data: one stratum."""
    rng = np.random.default_rng(seed)
    labels = labels_of(data)
    tr, te = [], []
    for c in np.unique(labels) if classes is None else classes:
        members = np.flatnonzero(labels == c)
        rng.shuffle(members)
        k = test if isinstance(test, int) else max(1, round(len(members) * test))
        te += members[:k].tolist()
        tr += members[k:][:train].tolist() if train is not None else members[k:].tolist()
    return data.subset(sorted(tr)), data.subset(sorted(te))


def widen_test(data: SceneData, seed: int, train: SceneData, test: SceneData, more: int,
               avoid: SceneData | None = None) -> SceneData:
    """``test`` and ``more`` further images of each class, drawn with ``seed`` from the images of ``data`` in
    none of ``train``, ``test`` and ``avoid`` (a validation draw): a larger test set that leaves the training
    split, and any validation images drawn beside it, as they were."""
    if more <= 0:
        return test
    index = {f: i for i, f in enumerate(data.files)}
    used = set(train.files) | set(test.files) | set(avoid.files if avoid is not None else ())
    labels = labels_of(data)
    rng = np.random.default_rng(10_000 + seed)
    keep = [index[f] for f in test.files]
    for c in np.unique(labels):
        free = [i for i in np.flatnonzero(labels == c).tolist() if data.files[i] not in used]
        keep += rng.permutation(free)[:more].tolist()
    return data.subset(sorted(keep))


def split(data: SceneData) -> tuple[SceneData, SceneData]:
    """The dataset's own held-out split (split.csv, or every third image of each class): one fixed split."""
    train, test, _ = heldout_indices(data)
    return data.subset(train), data.subset(test)


def select_classes(data: SceneData, names: list[str]) -> SceneData:
    """The images of classes ``names``, relabelled 0..len(names)-1 in that order."""
    old = [data.classes.index(n) for n in names]
    idx = [i for i in range(len(data)) if int(data.y[i]) in old]
    sub = data.subset(idx)
    remap = {o: k for k, o in enumerate(old)}
    sub.y = torch.tensor([remap[int(v)] for v in sub.y])
    sub.classes = list(names)
    return sub


def shrink(data: SceneData, per_class: int) -> SceneData:
    """The first ``per_class`` images of each class."""
    if data.task == "multi-label":
        return data.subset(list(range(min(len(data), per_class * 4))))
    keep, seen = [], {}
    for i in range(len(data)):
        c = int(data.y[i])
        if seen.get(c, 0) < per_class:
            keep.append(i)
            seen[c] = seen.get(c, 0) + 1
    return data.subset(keep)


def epochs_for_steps(n_images: int, batch_size: int, steps: int) -> int:
    """Epochs that give at least ``steps`` optimiser steps (the trainer's batches: round(n / batch))."""
    per_epoch = max(1, int(n_images / batch_size + 0.5))
    return max(1, -(-steps // per_epoch))


# -- runs ---------------------------------------------------------------------------------------------------
@dataclass
class Run:
    method: Method
    model: nn.Module
    module: nn.Module
    card: Any
    metrics: dict[str, Any]
    seconds: float

    @property
    def oa(self) -> float:
        return float(self.metrics["overall_accuracy"])


def train_eval(ctx: Ctx, name: str, options: dict[str, Any], train: SceneData, test: SceneData, seed: int,
               method: Method | None = None, val: SceneData | None = None, input_size: int = 0) -> Run:
    """Train ``name`` on ``train`` (init and batches seeded with ``seed``), evaluate on ``test`` exactly as
    ``rs-scene evaluate`` would. ``method`` overrides the registry (ablations that subclass a method);
    ``input_size`` is `train --input-size` (0: the images' size)."""
    method = method or create_method(
        name, options, num_classes=len(train.classes), bands=train.bands, task=train.task
    )
    card = build_card(TrainParams(out=str(ctx.out / "x.pt"), input_size=input_size), train, train, method)
    trainer = Trainer(method, card, TrainSettings(device=ctx.device, seed=seed))
    t0 = time.perf_counter()
    model = trainer.fit(train, val=val)
    seconds = time.perf_counter() - t0
    module = method.export_module(model).eval().cpu()
    run = Run(method, model, module, card, evaluate(module, card, test, CPU), seconds)
    headline = run.metrics.get("overall_accuracy", run.metrics.get("sample_f1"))
    print(f"  {name} seed {seed} {len(train)}/{len(test)} images: {headline:.3f} in {seconds:.0f} s "
          f"{ {k: v for k, v in options.items() if k != 'teacher'} }", file=sys.stderr, flush=True)
    return run


def choose_lr(ctx: Ctx, study: Study, name: str, options: dict[str, Any], lrs: tuple[float, ...],
              train: SceneData, val: SceneData, seed: int) -> float:
    """Train ``name`` with ``options`` at each of ``lrs`` on ``train``, add each validation OA to ``study`` as
    row ``lr X``, and return the rate with the best one (of equal scores, the larger rate)."""
    for lr in lrs:
        r = train_eval(ctx, name, {**options, "lr": lr}, train, val, seed)
        study.add(f"lr {lr:g}", seed, r.oa, train_s=round(r.seconds))
    return max(lrs, key=lambda lr: (study.summary(f"lr {lr:g}").mean, lr))


def save(run: Run, path: Path) -> Path:
    """The run's exported module as an RS Scene model file (teachers, in-domain inits)."""
    run.card.training = {"kind": "experiment"}
    return save_model(path, run.card, run.module.state_dict())


# -- frozen features and probes -----------------------------------------------------------------------------
def data_key(data: SceneData) -> str:
    h = hashlib.sha1("\n".join(data.files).encode())
    h.update(str(tuple(data.x.shape)).encode())
    return h.hexdigest()[:12]


@torch.inference_mode()
def cached_features(ctx: Ctx, key: str, net: nn.Module, card: Any, data: SceneData,
                    batch: int = 64) -> torch.Tensor:
    """Pooled features (N, C) of ``net.forward_features`` in eval mode on the card's preprocessing (no
    augmentation), cached under ``out/cache`` by ``key`` (name the weights) and the data's files."""
    path = ctx.out / "cache" / f"{key}-{data_key(data)}.pt"
    if path.exists():
        return torch.load(path, weights_only=True)
    net.eval()
    parts = [net.forward_features(preprocess(data.x[i : i + batch], card)).mean((2, 3))
             for i in range(0, len(data), batch)]
    feats = torch.cat(parts).float()
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(feats, path)
    return feats


def linear_probe(train_f: torch.Tensor, train_y: torch.Tensor, test_f: torch.Tensor, test_y: torch.Tensor,
                 seed: int, epochs: int = 300, lr: float = 1e-2, weight_decay: float = 1e-4) -> float:
    """Accuracy of a logistic-regression head trained full-batch (Adam) on standardised frozen features."""
    torch.manual_seed(seed)
    mu, sd = train_f.mean(0), train_f.std(0).clamp_min(1e-6)
    a, b = (train_f - mu) / sd, (test_f - mu) / sd
    head = nn.Linear(a.shape[1], int(train_y.max()) + 1)
    optim = torch.optim.Adam(head.parameters(), lr=lr, weight_decay=weight_decay)
    for _ in range(epochs):
        optim.zero_grad()
        nn.functional.cross_entropy(head(a), train_y).backward()
        optim.step()
    with torch.no_grad():
        return float((head(b).argmax(1) == test_y).float().mean())


# -- size and speed -----------------------------------------------------------------------------------------
def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@torch.inference_mode()
def tiles_per_second(module: nn.Module, bands: int, size: int, batch: int = 32, reps: int = 3) -> float:
    """Best of ``reps`` timed forward passes of a ``batch`` of tiles on the CPU, in this process's threads."""
    x = torch.randn(batch, bands, size, size)
    module.eval()(x)
    best = min(_timed(module, x) for _ in range(reps))
    return batch / best


def _timed(module: nn.Module, x: torch.Tensor) -> float:
    t0 = time.perf_counter()
    module(x)
    return time.perf_counter() - t0
