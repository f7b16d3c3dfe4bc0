"""Pre-training strategies (Risojević & Stojnić, "The role of pre-training in high-resolution remote sensing
scene classification"): initialise from scratch, from ImageNet or from an in-domain model, then train a
linear probe on frozen features or fine-tune the whole network.

Schedule as in the paper: Adam, linear warm-up over the first 5 epochs to the base rate (3e-3 from scratch,
3e-4 when fine-tuning pretrained weights, a fixed 1e-3 for a linear probe), then x0.2 at 50 %, 70 % and 90 %
of the epochs (the paper's 50th/70th/90th of 100).

Fine-tuning starts, by default, from a linear probe fitted first on the frozen features (LP-FT, Kumar et al.
2022, "Fine-tuning can distort pretrained features"; ``head_init``): a random classifier's large first
gradients reshape the pretrained features before the classifier fits them. On validation images of the
pre-training study (147 UC Merced images, 48 px) LP-FT scored 0.656, the paper's random start 0.561, the probe
alone 0.577 (3 seeds). ``head_init random`` is the paper's fine-tune.
Fine-tuning from pretrained weights keeps their BatchNorm statistics (``batchnorm auto``; scale and shift
still train): re-estimated from augmented batches of small tiles they drift from the statistics the probe
was fitted on, and the network ends up fitting its own training images worse than the probe did (AID, 48
px, 900 images: 0.60 train accuracy against the probe's 1.00). Frozen minus re-estimated on validation
images, 3 seeds (backend/experiments/exp_pretrain_bn.py): AID 48 px +21.4 [+8.2, +34.6] points, UC Merced
48 px +2.6, UC Merced 64 px 3 a class +3.2, EuroSAT-MS ten bands +8.7. ``batchnorm train`` is PyTorch's
(and the paper's) train mode.

``min_steps`` gives a small training set enough optimiser steps: the epochs are raised until the run has that
many (100 images at batch 32 and 10 epochs are 30 steps; the paper runs thousands). A linear probe trains on
features computed once with the frozen backbone in eval mode and no augmentation (the paper's probe), so its
epochs cost almost nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..card import load_model_file
from ..engine.evaluate import preprocess
from ..errors import RSSceneError
from ..models import SceneClassifier, create_backbone
from ..zoo import resolve_model
from .base import (
    Method,
    MethodConfig,
    Stage,
    even_batches,
    freeze_batchnorm,
    keeps_batchnorm,
    lifted_epochs,
    opt,
    starts_from_probe,
)
from .registry import build_inference_model, register_method


@dataclass
class PretrainConfig(MethodConfig):
    init: str = opt("auto", "initial weights: auto (tiles of a raster whose bands are a shipped model's, "
                    "e.g. 10-band Sentinel-2: that model; otherwise imagenet), imagenet, scratch, or an "
                    "installed model's name or file")
    mode: str = opt("fine-tune", "train the whole network or only a linear classifier on frozen features",
                    choices=["fine-tune", "linear-probe"])
    lr: float = opt(0.0, "base learning rate; 0 = the paper's (3e-3 scratch, 3e-4 fine-tune, 1e-3 probe; "
                    "3e-4 kept for fine-tuning on validation images: 1e-4 / 3e-4 / 1e-3 / 2e-3 = "
                    "0.466 / 0.479 / 0.468 / 0.492: none better beyond the noise, 1e-4 worse by 1.3 "
                    "[0.1, 2.4] points; backend/experiments/exp_pretrain_lr.py)")
    head_init: str = opt("auto", "fine-tune: start the classifier from a linear probe trained first on the "
                         "frozen features (probe: LP-FT, Kumar et al. 2022) or from random weights (random: "
                         "the paper); auto = probe from pretrained weights, random from scratch (chosen on "
                         "validation images: +9.5 points over random at 147 UC Merced images)",
                         choices=["auto", "probe", "random"])
    batchnorm: str = opt("auto", "fine-tune: BatchNorm statistics kept as the pretrained weights have them "
                         "(frozen; scale and shift still train) or re-estimated from the training batches "
                         "(train); auto = frozen from pretrained weights, train from scratch (chosen on "
                         "validation images: +21 points on AID at 48 px)",
                         choices=["auto", "frozen", "train"])
    warmup_epochs: int = opt(5, "epochs of linear learning-rate warm-up")
    min_steps: int = opt(200, "at least this many optimiser steps: a small set trains more epochs than the "
                         "default (0 = off; given epochs are kept unless min_steps is given too)")


def load_init_backbone(init: str, backbone: str, bands: list[str]) -> nn.Module:
    """Backbone weights from ``imagenet``, ``scratch`` or an RS Scene model file (in-domain pre-training)."""
    if init in ("imagenet", "scratch", "auto"):  # 'auto' is made concrete by train_model; here: imagenet
        return create_backbone(backbone, in_chans=len(bands), pretrained=init != "scratch", bands=bands)
    card, state = load_model_file(resolve_model(init))
    if len(card.bands) != len(bands):
        raise RSSceneError(
            f"--init {init}: that model takes {len(card.bands)} bands, the data has {len(bands)}")
    source = build_inference_model(card)
    source.load_state_dict(state)
    if not hasattr(source, "backbone"):
        raise RSSceneError(f"--init {init}: model of method '{card.method}' has no reusable backbone")
    return source.backbone


def warmup_step_schedule(epochs: int, warmup: int) -> Any:
    milestones = [round(epochs * f) for f in (0.5, 0.7, 0.9)]

    def factor(epoch: int) -> float:
        if epoch < warmup:
            return (epoch + 1) / warmup
        return 0.2 ** sum(epoch >= m for m in milestones)

    return factor


def warmup_scheduler(optim: torch.optim.Optimizer, epochs: int, warmup_epochs: int) -> Any:
    """pretrain's fine-tuning schedule for ``optim`` (per epoch): a linear warm-up over ``warmup_epochs``, at
    most a quarter of the run, then x0.2 at 50 / 70 / 90 %."""
    warm = min(warmup_epochs, max(epochs // 4, 1))
    return torch.optim.lr_scheduler.LambdaLR(optim, warmup_step_schedule(epochs, warm))


@register_method
class PretrainMethod(Method):
    name = "pretrain"
    description = "Plain supervised transfer: scratch / ImageNet / in-domain init x linear probe / fine-tune"
    paper = "role-of-pretraining.txt"
    Config = PretrainConfig

    def build_model(self) -> nn.Module:
        backbone = load_init_backbone(self.config.init, self.config.backbone, self.bands)
        model = SceneClassifier(backbone, self.num_classes, dropout=self.config.dropout)
        if self.config.mode == "linear-probe":
            for p in model.backbone.parameters():
                p.requires_grad_(False)
        return model

    def prepare_data(self, card: Any, train: Any) -> None:
        self.n_train = len(train)
        self.card = card

    def stages(self) -> list[Stage]:
        c = self.config
        n = getattr(self, "n_train", 0)
        return [Stage(c.mode, lifted_epochs(c.epochs, n, c.batch_size, c.min_steps))]

    def base_lr(self) -> float:
        if self.config.lr > 0:
            return self.config.lr
        if self.config.mode == "linear-probe":
            return 1e-3
        return 3e-3 if self.config.init == "scratch" else 3e-4

    def configure_optimizer(self, model: nn.Module, stage: Stage, steps_per_epoch: int):
        params = [p for p in model.parameters() if p.requires_grad]
        optim = torch.optim.Adam(params, lr=self.base_lr(), weight_decay=self.config.weight_decay)
        if self.config.mode == "linear-probe":
            return optim, None
        return optim, warmup_scheduler(optim, stage.epochs, self.config.warmup_epochs)

    def on_stage_start(self, model: nn.Module, stage: Stage, train_loader: Any) -> None:
        self.features: torch.Tensor | None = None
        if self.head_from_probe() and not stage.info.get("resumed"):
            probe_head(model, frozen_features(model, train_loader, self.prepare_eval), train_loader.y,
                       self.config.batch_size, self.task_loss)
        self.model = model

    def frozen_batchnorm(self) -> bool:
        """Fine-tuning keeps the pretrained BatchNorm statistics (``batchnorm`` frozen; auto: unless from
        scratch, whose statistics are those of a random init)."""
        c = self.config
        return c.mode == "fine-tune" and keeps_batchnorm(c.batchnorm, c.init)

    def train_mode(self, model: nn.Module) -> None:
        model.train()
        if self.config.mode == "linear-probe":
            model.backbone.eval()  # frozen features: BatchNorm statistics stay those of the source
        elif self.frozen_batchnorm():
            freeze_batchnorm(model)

    def head_from_probe(self) -> bool:
        """LP-FT: fine-tuning starts from a linear probe (``head_init`` probe; auto: unless from scratch)."""
        c = self.config
        return c.mode == "fine-tune" and starts_from_probe(c.head_init, c.init)

    def prepare_eval(self, x: torch.Tensor, train: bool = False) -> torch.Tensor:
        """The evaluation preprocessing of the model card (``prepare_data`` stores it)."""
        if getattr(self, "card", None) is None:
            raise RSSceneError("pretrain: prepare_data(card, train) must run before training")
        return preprocess(x, self.card)

    def prepare_batch(self, data: Any, idx: torch.Tensor, stage: Stage, trainer: Any):
        """Fine-tuning: the trainer's augmented batch. Linear probe: the cached frozen features of ``idx``."""
        if self.config.mode != "linear-probe":
            return trainer.prepare(data.x[idx], train=True), data.y[idx].to(trainer.device)
        if self.features is None or len(self.features) != len(data):
            self.features = frozen_features(self.model, data, trainer.prepare)
        return self.features[idx.to(self.features.device)], data.y[idx].to(trainer.device)

    def training_step(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, stage: Stage):
        if x.ndim == 2:  # cached features of the frozen backbone
            return {"loss": self.task_loss(model.head(model.dropout(x)), y)}
        return {"loss": self.task_loss(model(x), y)}


@torch.no_grad()
def frozen_features(model: nn.Module, data: Any, prepare: Any, batch: int = 64) -> torch.Tensor:
    """Pooled backbone features of every training image, eval mode, the evaluation preprocessing
    (``prepare(x, train=False)``). The model's mode is restored afterwards."""
    modes = [m.training for m in model.modules()]
    model.eval()
    device = next(model.parameters()).device
    parts = [model.forward_head(model.forward_features(prepare(data.x[i : i + batch].to(device), False)),
                                pre_logits=True) for i in range(0, len(data), batch)]
    for m, mode in zip(model.modules(), modes, strict=True):
        m.train(mode)
    return torch.cat(parts).float()


PROBE_EPOCHS, PROBE_LR = 100, 1e-3  # the linear probe's own settings (mode linear-probe, the paper's)


@torch.enable_grad()
def probe_head(model: nn.Module, features: torch.Tensor, y: torch.Tensor, batch_size: int, loss_fn: Any,
               epochs: int = PROBE_EPOCHS, lr: float = PROBE_LR) -> None:
    """LP-FT's first step: train ``model.head`` in place as a linear probe on the cached ``features`` of the
    frozen backbone (Adam, no augmentation, no dropout), so fine-tuning starts from a fitted classifier and
    its first steps do not distort the pretrained features. Batches are drawn from torch's seeded RNG."""
    head = model.head
    y = y.to(features.device)
    optim = torch.optim.Adam(head.parameters(), lr=lr)
    for _ in range(epochs):
        for idx in even_batches(torch.randperm(len(features)), batch_size):
            loss = loss_fn(head(features[idx]), y[idx])
            optim.zero_grad(set_to_none=True)
            loss.backward()
            optim.step()
