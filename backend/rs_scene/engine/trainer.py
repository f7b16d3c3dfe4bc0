"""The one training loop for every method: stages, per-stage optimiser and schedule, AMP on GPU, seeds,
a checkpoint every epoch with ``resume``, early stopping on validation and progress callbacks."""

from __future__ import annotations

import copy
import math
import os
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..card import ModelCard
from ..data.datasets import SceneData
from ..data.transforms import normalize, train_augment
from ..methods.base import Method, even_batches, n_batches
from ..stop import PROCESS_STOP, Cancelled  # noqa: F401  (Cancelled: re-exported)
from .evaluate import evaluate, preprocess
from .metrics import headline

Progress = Callable[[dict[str, Any]], None]


@dataclass
class TrainSettings:
    device: str = "auto"
    seed: int = 0
    patience: int = 0  # early stopping: epochs without validation gain (0 = off)
    resume: bool = False
    checkpoint: str | None = None  # path of the per-epoch checkpoint (default: <out>.ckpt)
    amp: bool = True


@dataclass
class TrainState:
    history: list[dict[str, Any]] = field(default_factory=list)
    best: float = -math.inf
    best_state: dict[str, torch.Tensor] | None = None


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(name)
    except RuntimeError as exc:
        from ..errors import RSSceneError

        raise RSSceneError(f"unknown device '{name}' (use auto, cpu, cuda, cuda:N or mps)") from exc
    return dev


def seed_everything(seed: int) -> torch.Generator:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


class Trainer:
    """Runs a :class:`Method` on in-memory :class:`SceneData` with the card's preprocessing."""

    def __init__(self, method: Method, card: ModelCard, settings: TrainSettings,
                 progress: Progress | None = None, cancel: threading.Event | None = None) -> None:
        self.method, self.card, self.settings = method, card, settings
        self.progress = progress or (lambda event: None)
        self.cancel = cancel or PROCESS_STOP
        self.device = pick_device(settings.device)
        self.generator = seed_everything(settings.seed)

    # -- batches -------------------------------------------------------------------------------------
    def prepare(self, x: torch.Tensor, train: bool) -> torch.Tensor:
        x = x.to(self.device, non_blocking=True)
        if not train:
            return preprocess(x, self.card)  # exactly what evaluate and classify feed the model
        x = train_augment(x, self.card.input_size, generator=self.generator)
        return normalize(x, self.card.mean, self.card.std)

    def batch_inputs(self, data: SceneData, idx: torch.Tensor, stage: Any) -> tuple[Any, torch.Tensor]:
        """Network input and targets of one training batch. A method that needs two views of each image or an
        image augmented jointly with a map defines ``prepare_batch(data, idx, stage, trainer)``."""
        hook = getattr(self.method, "prepare_batch", None)
        if hook is not None:
            return hook(data, idx, stage, self)
        return self.prepare(data.x[idx], train=True), data.y[idx].to(self.device)

    def batches(self, data: SceneData, batch_size: int, stage: Any) -> list[torch.Tensor]:
        hook = getattr(self.method, "batch_indices", None)
        if hook is not None:
            return list(hook(stage, data, batch_size, self.generator))
        return even_batches(torch.randperm(len(data), generator=self.generator), batch_size)

    # -- loop ----------------------------------------------------------------------------------------
    def fit(self, train: SceneData, val: SceneData | None = None, checkpoint: str | None = None) -> nn.Module:
        prepare_data = getattr(self.method, "prepare_data", None)
        if prepare_data is not None:  # input checks (e.g. a teacher's classes) before anything trains
            prepare_data(self.card, train)
        model = self.method.build_model().to(self.device)
        stages = self.method.stages()
        self.stages: list[dict[str, Any]] = []  # per stage: the epochs planned, run and kept (the report's)
        state, start_stage, start_epoch, ckpt = TrainState(), 0, 0, None
        if self.settings.resume and checkpoint and os.path.exists(checkpoint):
            ckpt = torch.load(checkpoint, map_location=self.device, weights_only=True)
            model.load_state_dict(ckpt["model"])
            start_stage, start_epoch = ckpt["stage"], ckpt["epoch"] + 1
            state.history = list(ckpt.get("history", []))
        use_amp = self.settings.amp and self.device.type == "cuda"
        for si in range(start_stage, len(stages)):
            stage = stages[si]
            if ckpt is not None and si == start_stage:  # its start-up ran before the checkpoint was saved
                stage.info["resumed"] = True
            self.method.on_stage_start(model, stage, train)
            steps = n_batches(len(train), self.method.config.batch_size)
            optim, sched = self.method.configure_optimizer(model, stage, steps)
            first = start_epoch if si == start_stage else 0
            if ckpt is not None and si == start_stage:
                optim.load_state_dict(ckpt["optim"])
                if sched is not None and ckpt.get("sched"):
                    sched.load_state_dict(ckpt["sched"])
            state.best, state.best_state, stale = -math.inf, None, 0
            summary = {"stage": stage.name, "epochs": stage.epochs, "ran": first, "kept": None}
            self.stages.append(summary)
            for epoch in range(first, stage.epochs):
                t0 = time.perf_counter()
                loss = self._epoch(model, train, stage, optim, use_amp, si, epoch, len(stages))
                if sched is not None:
                    sched.step()
                record = {"stage": stage.name, "epoch": epoch + 1, "epochs": stage.epochs, "loss": loss,
                          "seconds": round(time.perf_counter() - t0, 2), "lr": optim.param_groups[0]["lr"]}
                if val is not None and len(val):
                    m = evaluate(self.method.export_module(model), self.card, val, self.device)
                    record["val"] = headline(m)
                    if record["val"] > state.best:
                        state.best, stale = record["val"], 0
                        summary["kept"] = epoch + 1
                        state.best_state = copy.deepcopy(model.state_dict())
                    else:
                        stale += 1
                state.history.append(record)
                summary["ran"] = epoch + 1
                self.progress({"event": "epoch", **record})
                if checkpoint:
                    self._save_checkpoint(checkpoint, model, optim, sched, si, epoch, state.history)
                if self.settings.patience and stale >= self.settings.patience:
                    self.progress({"event": "early_stop", "stage": stage.name, "epoch": epoch + 1})
                    break
            if state.best_state is not None:
                model.load_state_dict(state.best_state)
        self.history = state.history
        return model

    def _epoch(self, model: nn.Module, data: SceneData, stage: Any, optim: torch.optim.Optimizer,
               use_amp: bool, si: int, epoch: int, n_stages: int) -> float:
        self.method.train_mode(model)
        batches = self.batches(data, self.method.config.batch_size, stage)
        total, count = 0.0, 0
        for bi, idx in enumerate(batches):
            if self.cancel.is_set():
                raise Cancelled("training cancelled")
            x, y = self.batch_inputs(data, idx, stage)
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=use_amp):
                losses = self.method.training_step(model, x, y, stage)
            optim.zero_grad(set_to_none=True)
            losses["loss"].backward()
            optim.step()
            after = getattr(self.method, "after_step", None)
            if after is not None:
                after(model, stage)
            total += float(losses["loss"].detach()) * len(idx)
            count += len(idx)
            self.progress({"event": "step", "stage": stage.name, "stage_index": si, "stages": n_stages,
                           "epoch": epoch + 1, "epochs": stage.epochs, "step": bi + 1, "steps": len(batches),
                           "loss": float(losses["loss"].detach())})
        return total / max(count, 1)

    @staticmethod
    def _save_checkpoint(path: str, model: nn.Module, optim: Any, sched: Any, stage: int, epoch: int,
                         history: list[dict[str, Any]]) -> None:
        tmp = f"{path}.tmp"
        torch.save({"model": model.state_dict(), "optim": optim.state_dict(),
                    "sched": sched.state_dict() if sched is not None else None,
                    "stage": stage, "epoch": epoch, "history": history}, tmp)
        os.replace(tmp, path)


def dataset_stats(data: SceneData) -> tuple[list[float], list[float]]:
    """Per-band mean and standard deviation of value-scaled images (the card's normalisation)."""
    x = data.x.transpose(0, 1).reshape(data.x.shape[1], -1).double()
    return x.mean(1).tolist(), x.std(1).clamp_min(1e-6).tolist()


def checkpoint_path(out: str | Path) -> str:
    return str(out) + ".ckpt"
