"""Two-stage contrastive learning for imbalanced aerial scenes (Xu, Zhang et al., "A two-stage contrastive
learning framework for imbalanced aerial scene recognition", ICASSP 2022).

Stage 1 trains the encoder with the supervised contrastive loss (Eq. 1, tau = 0.1) on two augmented views of
each image (random resized crop, flips, 90-degree rotations, colour distortion) through a 2-layer MLP
projection, on the data as it is (no re-balancing). Stage 2 freezes the encoder and trains a linear classifier
with class-balanced sampling (``cb``, Eq. 2: P(i) = 1 / (C n_{y_i})) or cost-sensitive cross-entropy
(``csce``,
Eq. 3: weight n_min / n_{y_i}). Optimisers as in the paper: SGD (momentum 0.9) with cosine decay, weight decay
1e-4 for the encoder, lr 0.01 and weight decay 5e-5 for the classifier (100 epochs).

Where this differs from the paper, and why:
- encoder lr: the paper's 0.5 is for batch 128 from scratch (ResNet-50, 500-600 epochs). The default (``lr``
  0) scales it linearly to the batch (0.5 x batch / 128) and by 0.1 for a pretrained init, which it would
  otherwise wreck (0.0125 at batch 32 from ImageNet), after ``warmup_epochs`` of linear warm-up.
- BatchNorm: the encoder's running statistics are re-estimated on the training images when stage 2 starts
  (precise BN): after a short stage 1 an exponential average (momentum 0.01 or 0.1) still holds ImageNet's or
  earlier weights' statistics, and the frozen encoder of stage 2 and of inference runs in eval mode on them.
- stage 2 trains the linear classifier on the frozen encoder's features of the (unaugmented) training images,
  computed once; the paper does not say it augments in stage 2.
- views: crops of at least ``crop_scale`` of the area, 0.5 (not tuned): a 20 % crop of a 64-px scene is a
  29-px patch that may no longer show the class; SimCLR's 0.08-0.2 is for object-centred photos.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..card import ModelCard
from ..data.datasets import SceneData
from ..data.transforms import normalize, random_flip_rot90, random_resized_crop, resize
from ..errors import RSSceneError
from ..losses import SupConLoss
from ..models import SceneClassifier
from .base import Method, MethodConfig, Stage, lifted_epochs, opt, stretched
from .pretrain import load_init_backbone
from .registry import register_method


@dataclass
class SCLConfig(MethodConfig):
    epochs: int = opt(10, "epochs of stage 1 (contrastive encoder training); the paper trains 500-600")
    classifier_epochs: int = opt(100, "epochs of stage 2 (linear classifier on cached features); paper 100")
    balance: str = opt(
        "cb", "stage-2 re-balancing: class-balanced sampling or cost-sensitive CE", choices=["cb", "csce"]
    )
    temperature: float = opt(0.1, "temperature tau of the supervised contrastive loss")
    proj_dim: int = opt(128, "output size of the 2-layer MLP projection")
    lr: float = opt(0.0, "encoder lr (SGD, cosine); 0 = 0.5 x batch/128, x0.1 from a pretrained init")
    warmup_epochs: int = opt(2, "epochs of linear encoder learning-rate warm-up before the cosine decay")
    classifier_lr: float = opt(0.01, "classifier learning rate (SGD, cosine decay)")
    weight_decay: float = opt(1e-4, "encoder weight decay")
    classifier_weight_decay: float = opt(5e-5, "classifier weight decay")
    crop_scale: float = opt(0.5, "smallest area share of the random resized crop of a view")
    dropout: float = opt(0.0, "dropout before the classifier")
    min_steps: int = opt(200, "at least this many stage-1 optimiser steps: a small set trains more epochs "
                         "(warm-up scaled alike; 0 = off; given epochs kept unless min_steps is given)")


class SCLNet(nn.Module):
    """Encoder + linear classifier (``classifier``, what is saved) + projection MLP (stage 1 only)."""

    def __init__(self, classifier: SceneClassifier, proj_dim: int) -> None:
        super().__init__()
        d = classifier.num_features
        self.classifier = classifier
        self.projection = nn.Sequential(nn.Linear(d, d), nn.ReLU(inplace=True), nn.Linear(d, proj_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(x)


def colour_distortion(
    x: torch.Tensor,
    generator: torch.Generator | None,
    strength: float = 0.4,
    p: float = 0.8,
    p_grey: float = 0.2,
) -> torch.Tensor:
    """SimCLR-style per-sample jitter of brightness, contrast and (3-band images) saturation with probability
    ``p``, and conversion to grey with probability ``p_grey`` (3-band images)."""
    n, c = x.shape[:2]

    def factor() -> torch.Tensor:
        f = 1 + (torch.rand(n, 1, 1, 1, generator=generator) * 2 - 1) * strength
        on = (torch.rand(n, 1, 1, 1, generator=generator) < p).float()
        return (on * f + (1 - on)).to(x)

    x = x * factor()
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * factor() + mean
    if c == 3:
        grey = (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]).expand_as(x)
        x = (x - grey) * factor() + grey
        to_grey = (torch.rand(n, 1, 1, 1, generator=generator) < p_grey).to(x)
        x = to_grey * grey + (1 - to_grey) * x
    return x


def warmup_cosine(epochs: int, warmup: int) -> Any:
    """Per-epoch factor: linear warm-up ``(e + 1) / (warmup + 1)``, then cosine decay over the rest."""

    def factor(e: int) -> float:
        if e < warmup:
            return (e + 1) / (warmup + 1)
        return 0.5 * (1 + math.cos(math.pi * (e - warmup) / max(epochs - warmup, 1)))

    return factor


@torch.no_grad()
def recalibrate_batchnorm(module: nn.Module, batches: Any) -> None:
    """Precise BN: replace every BatchNorm's running statistics by their average over ``batches`` (forward
    passes of the backbone ``module`` in train mode, cumulative averaging), leaving it in eval mode."""
    bns = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    module.train()
    for x in batches:
        module.forward_features(x)
    for m, mom in zip(bns, momenta, strict=True):
        m.momentum = mom
    module.eval()


@register_method
class SCLMethod(Method):
    name = "scl"
    description = (
        "Two-stage: supervised contrastive encoder, then a re-balanced linear classifier (cb / csce)"
    )
    paper = "two-stage_contrastive_imbalanced.txt"
    Config = SCLConfig

    def __init__(self, config: SCLConfig, num_classes: int, bands: Any, task: str = "single-label") -> None:
        super().__init__(config, num_classes, bands, task)
        if task != "single-label":
            raise RSSceneError(
                "scl is a single-label method (the contrastive positives are same-label images)"
            )
        self.supcon = SupConLoss(config.temperature)
        self.class_weights: torch.Tensor | None = None
        self.features: torch.Tensor | None = None  # stage 2: the frozen encoder's training-image features
        self.card: ModelCard | None = None

    def encoder_lr(self) -> float:
        """``lr``, or the paper's 0.5 at batch 128 scaled to the batch, x0.1 from a pretrained init."""
        c = self.config
        if c.lr > 0:
            return c.lr
        return 0.5 * c.batch_size / 128 * (1.0 if c.init == "scratch" else 0.1)

    def prepare_data(self, card: ModelCard, train: SceneData) -> None:
        self.card = card
        self.n_train = len(train)
        counts = torch.as_tensor(train.class_counts(), dtype=torch.float32)
        self.class_weights = counts[counts > 0].min() / counts.clamp_min(1)  # Eq. 3: n_min / n_c

    def build_model(self) -> nn.Module:
        c = self.config
        backbone = load_init_backbone(c.init, c.backbone, self.bands)
        return SCLNet(SceneClassifier(backbone, self.num_classes, dropout=c.dropout), c.proj_dim)

    def stages(self) -> list[Stage]:
        """Stage 1 lifted to ``min_steps`` on a small set, its warm-up by the same factor; stage 2 (on cached
        features) keeps its epochs."""
        c, n = self.config, getattr(self, "n_train", 0)
        first = lifted_epochs(c.epochs, n, c.batch_size, c.min_steps)
        return [
            Stage("contrastive", first, {"warmup": stretched(c.warmup_epochs, first, c.epochs)}),
            Stage("classifier", c.classifier_epochs or c.epochs),
        ]

    def on_stage_start(self, model: nn.Module, stage: Stage, train_loader: Any) -> None:
        encoder = stage.name == "contrastive"
        for part, trainable in (
            (model.classifier.backbone, encoder),
            (model.projection, encoder),
            (model.classifier.head, not encoder),
        ):
            for p in part.parameters():
                p.requires_grad_(trainable)
        if not encoder:
            self.freeze_encoder(model.classifier, train_loader)

    @torch.no_grad()
    def freeze_encoder(self, clf: SceneClassifier, data: SceneData) -> None:
        """Re-estimate the encoder's BatchNorm statistics on the training images, then cache their pooled
        features: stage 2 trains the classifier on them (the encoder is frozen, its output fixed)."""
        card, device = self.card, next(clf.parameters()).device

        def chunks() -> Any:
            for i in range(0, len(data), 64):
                yield normalize(resize(data.x[i : i + 64].to(device), card.input_size), card.mean, card.std)

        recalibrate_batchnorm(clf.backbone, chunks())
        feats = [clf.forward_head(clf.forward_features(x), pre_logits=True) for x in chunks()]
        self.features = torch.cat(feats)

    def batch_indices(self, stage: Stage, data: SceneData, batch_size: int, generator: torch.Generator):
        n = len(data)
        if stage.name == "classifier" and self.config.balance == "cb":
            counts = np.bincount(data.y.numpy(), minlength=self.num_classes)
            p = 1.0 / (np.count_nonzero(counts) * counts[data.y.numpy()])  # Eq. 2
            order = torch.multinomial(torch.as_tensor(p), n, replacement=True, generator=generator)
        else:
            order = torch.randperm(n, generator=generator)
        return list(torch.tensor_split(order, max(1, int(n / batch_size + 0.5))))  # near-equal batches

    def prepare_batch(self, data: SceneData, idx: torch.Tensor, stage: Stage, trainer: Any):
        y = data.y[idx].to(trainer.device)
        if stage.name != "contrastive":
            return self.features[idx].to(trainer.device), y
        x, card, g = data.x[idx].to(trainer.device), trainer.card, trainer.generator
        views = []
        for _ in range(2):
            v = random_resized_crop(x, card.input_size, scale=(self.config.crop_scale, 1.0), generator=g)
            views.append(
                normalize(colour_distortion(random_flip_rot90(v, generator=g), g), card.mean, card.std)
            )
        return torch.cat(views), torch.cat([y, y])

    def configure_optimizer(self, model: nn.Module, stage: Stage, steps_per_epoch: int):
        c = self.config
        if stage.name == "contrastive":
            params = [*model.classifier.backbone.parameters(), *model.projection.parameters()]
            lr, wd = self.encoder_lr(), c.weight_decay
        else:
            params, lr, wd = (
                list(model.classifier.head.parameters()),
                c.classifier_lr,
                c.classifier_weight_decay,
            )
        optim = torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=wd)
        warm = stage.info.get("warmup", c.warmup_epochs)
        warm = min(warm, stage.epochs // 2) if stage.name == "contrastive" else 0
        return optim, torch.optim.lr_scheduler.LambdaLR(optim, warmup_cosine(stage.epochs, warm))

    def training_step(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, stage: Stage):
        clf: SceneClassifier = model.classifier
        if stage.name == "contrastive":
            z = model.projection(clf.forward_head(clf.forward_features(x), pre_logits=True))
            return {"loss": self.supcon(z, y)}
        logits = clf.head(clf.dropout(x))  # x: cached features of the frozen encoder
        loss = F.cross_entropy(logits, y, reduction="none")
        if self.config.balance == "csce":  # Eq. 3, per sample; a plain mean (not a weight-normalised one)
            loss = loss * self.class_weights.to(logits.device)[y]
        return {"loss": loss.mean()}

    def export_module(self, model: nn.Module) -> nn.Module:
        return model.classifier
