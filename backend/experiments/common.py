"""Shared helpers of the benchmark: data subsets, one train + evaluate run, model size and CPU speed."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rs_scene.card import save_model
from rs_scene.data.datasets import SceneData, heldout_indices
from rs_scene.engine.evaluate import evaluate
from rs_scene.engine.train import TrainParams, build_card
from rs_scene.engine.trainer import Trainer, TrainSettings
from rs_scene.methods import Method, create_method

CPU = torch.device("cpu")


@dataclass
class Ctx:
    data: Path  # ../shared/data
    out: Path  # where model files and results go
    quick: bool = False  # a few images and one epoch: checks the harness, not the methods
    seed: int = 0

    def epochs(self, n: int) -> int:
        return 1 if self.quick else n


@dataclass
class Table:
    title: str
    setup: str
    columns: list[str]
    rows: list[list[Any]] = field(default_factory=list)
    reading: str = ""
    seconds: float = 0.0

    def markdown(self) -> str:
        def cell(v: Any) -> str:
            return f"{v:.3f}" if isinstance(v, float) else str(v)

        lines = [
            f"## {self.title}",
            "",
            self.setup,
            "",
            "| " + " | ".join(self.columns) + " |",
            "|" + "---|" * len(self.columns),
        ]
        lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in self.rows]
        lines += ["", f"Reading: {self.reading}", "", f"({self.seconds:.0f} s)", ""]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "setup": self.setup,
            "columns": self.columns,
            "rows": self.rows,
            "reading": self.reading,
            "seconds": round(self.seconds, 1),
        }


def select_classes(data: SceneData, names: list[str]) -> SceneData:
    """The images of classes ``names``, relabelled 0..len(names)-1 in that order."""
    old = [data.classes.index(n) for n in names]
    idx = [i for i in range(len(data)) if int(data.y[i]) in old]
    sub = data.subset(idx)
    remap = {o: k for k, o in enumerate(old)}
    sub.y = torch.tensor([remap[int(v)] for v in sub.y])
    sub.classes = list(names)
    return sub


def split(data: SceneData) -> tuple[SceneData, SceneData]:
    """The dataset's own held-out split (split.csv, or every third image of each class)."""
    train, test, _ = heldout_indices(data)
    return data.subset(train), data.subset(test)


def shrink(data: SceneData, per_class: int) -> SceneData:
    """The first ``per_class`` images of each class (quick mode)."""
    if data.task == "multi-label":
        return data.subset(list(range(min(len(data), per_class * 2))))
    keep, seen = [], {}
    for i in range(len(data)):
        c = int(data.y[i])
        if seen.get(c, 0) < per_class:
            keep.append(i)
            seen[c] = seen.get(c, 0) + 1
    return data.subset(keep)


@dataclass
class Run:
    method: Method
    model: torch.nn.Module
    module: torch.nn.Module
    card: Any
    metrics: dict[str, Any]
    seconds: float


def train_eval(
    ctx: Ctx,
    name: str,
    options: dict[str, Any],
    train: SceneData,
    test: SceneData,
    method: Method | None = None,
    progress: Any = None,
    checkpoint: str | None = None,
    resume: bool = False,
) -> Run:
    """Train ``name`` on ``train`` with a fixed seed, evaluate on ``test`` as ``rs-scene evaluate`` would."""
    method = method or create_method(
        name, options, num_classes=len(train.classes), bands=train.bands, task=train.task
    )
    card = build_card(TrainParams(out=str(ctx.out / "x.pt")), train, train, method)
    trainer = Trainer(
        method, card, TrainSettings(device="cpu", seed=ctx.seed, resume=resume), progress=progress
    )
    t0 = time.perf_counter()
    model = trainer.fit(train, checkpoint=checkpoint)
    seconds = time.perf_counter() - t0
    module = method.export_module(model).eval()
    return Run(method, model, module, card, evaluate(module, card, test, CPU), seconds)


def save(run: Run, path: Path) -> Path:
    run.card.training = {"kind": "experiment"}
    return save_model(path, run.card, run.module.state_dict())


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@torch.inference_mode()
def tiles_per_second(module: torch.nn.Module, bands: int, size: int, batch: int = 32, reps: int = 3) -> float:
    """Best of ``reps`` timed forward passes of a ``batch`` of tiles on the CPU, in this process's threads."""
    x = torch.randn(batch, bands, size, size)
    module.eval()(x)
    best = min(_timed(module, x) for _ in range(reps))
    return batch / best


def _timed(module: torch.nn.Module, x: torch.Tensor) -> float:
    t0 = time.perf_counter()
    module(x)
    return time.perf_counter() - t0


def mean(values: list[float | None]) -> float:
    vals = [v for v in values if v is not None]
    return float(np.mean(vals)) if vals else float("nan")
