"""The one pluggable interface every training method implements.

A method declares its config (a dataclass a GUI can turn into a form: field metadata carries ``help`` and
``choices``), builds its model, lists its training stages, computes one training step's losses and predicts
logits. The trainer, CLI, service and plugin know only this interface and the model card.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from ..card import ModelCard
from ..models import SceneClassifier, create_backbone


def opt(default: Any, help: str, choices: Sequence[Any] | None = None) -> Any:  # noqa: A002
    """A config field with GUI metadata."""
    meta = {"help": help}
    if choices is not None:
        meta["choices"] = list(choices)
    return field(default=default, metadata=meta)


@dataclass
class MethodConfig:
    backbone: str = opt("efficientnet_lite0", "backbone architecture (see `rs-scene models --backbones`)")
    init: str = opt("imagenet", "initial weights: imagenet, scratch, or the path of an installed model file")
    epochs: int = opt(10, "training epochs (per stage for multi-stage methods)")
    batch_size: int = opt(32, "batch size")
    lr: float = opt(1e-3, "learning rate")
    weight_decay: float = opt(1e-4, "weight decay")
    dropout: float = opt(0.2, "dropout before the classifier")


def n_batches(n: int, batch_size: int) -> int:
    """Batches per epoch: ``round(n / batch_size)``, at least one."""
    return max(1, int(n / batch_size + 0.5))


def lifted_epochs(epochs: int, n: int, batch_size: int, min_steps: int) -> int:
    """``epochs``, raised until ``n`` images in batches of ``batch_size`` make at least ``min_steps``
    optimiser steps (``min_steps`` 0 or an unknown ``n``: unchanged)."""
    if n <= 0 or min_steps <= 0:
        return epochs
    return max(epochs, -(-min_steps // n_batches(n, batch_size)))


def stretched(span: int, lifted: int, epochs: int) -> int:
    """A schedule length of ``span`` epochs (a warm-up, a decay step) for a run lifted from ``epochs`` to
    ``lifted`` epochs by :func:`lifted_epochs`: the same share of the run."""
    return round(span * lifted / max(epochs, 1))


def even_batches(order: torch.Tensor, batch_size: int) -> list[torch.Tensor]:
    """``order`` cut into :func:`n_batches` batches of near-equal size (between 2/3 and 3/2 of
    ``batch_size``): every image is used each epoch and no tiny last batch gives a noisy step (100 images at
    batch 32 are 33 + 33 + 34, not 32 + 32 + 32 + 4)."""
    return list(torch.tensor_split(order, n_batches(len(order), batch_size)))


@dataclass
class Stage:
    """One training stage: its name, epoch count and whatever the method needs to know about it."""

    name: str
    epochs: int
    info: dict[str, Any] = field(default_factory=dict)


def keeps_batchnorm(batchnorm: str, init: str) -> bool:
    """A ``batchnorm`` option's rule: ``frozen`` keeps the pretrained BatchNorm statistics, ``train``
    re-estimates them, ``auto`` keeps them unless ``init`` is scratch (whose statistics are a random
    init's)."""
    return batchnorm == "frozen" or (batchnorm == "auto" and init != "scratch")


def starts_from_probe(head_init: str, init: str) -> bool:
    """A ``head_init`` option's rule (LP-FT): ``probe`` starts the classifier from a linear probe fitted on
    the frozen features first, ``random`` from random weights, ``auto`` from the probe unless ``init`` is
    scratch (whose features are a random init's)."""
    return head_init == "probe" or (head_init == "auto" and init != "scratch")


def freeze_batchnorm(module: nn.Module) -> None:
    """Every BatchNorm layer of ``module`` in eval mode: its running statistics are used and kept; its scale
    and shift still train."""
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()


class Method(ABC):
    name: ClassVar[str]
    description: ClassVar[str] = ""
    paper: ClassVar[str] = ""
    Config: ClassVar[type[MethodConfig]] = MethodConfig

    def __init__(self, config: MethodConfig, num_classes: int, bands: Sequence[str],
                 task: str = "single-label") -> None:
        self.config = config
        self.num_classes = num_classes
        self.bands = list(bands)
        self.task = task

    # -- model -----------------------------------------------------------------------------------------
    @abstractmethod
    def build_model(self) -> nn.Module:
        """The trainable model (may hold auxiliary parts, e.g. center-loss centers or a teacher)."""

    @abstractmethod
    def stages(self) -> list[Stage]: ...

    @abstractmethod
    def configure_optimizer(self, model: nn.Module, stage: Stage, steps_per_epoch: int
                            ) -> tuple[torch.optim.Optimizer, Any]:
        """Optimiser and a per-epoch scheduler (or None) for ``stage``."""

    @abstractmethod
    def training_step(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, stage: Stage
                      ) -> dict[str, torch.Tensor]:
        """Losses of one batch; ``"loss"`` is the one optimised."""

    def on_stage_start(self, model: nn.Module, stage: Stage, train_loader: Any) -> None:  # noqa: B027
        """Hook run before a stage (e.g. freeze an encoder, compute attention maps)."""

    def train_mode(self, model: nn.Module) -> None:
        """Put ``model`` in training mode before each epoch (a method may keep parts in eval mode)."""
        model.train()

    def predict_logits(self, model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        return self.export_module(model)(x)

    # -- saving and loading ------------------------------------------------------------------------------
    def export_module(self, model: nn.Module) -> nn.Module:
        """The part of the trained model that is saved and run at inference (``forward(x) -> logits``)."""
        return model

    def card_fields(self) -> dict[str, Any]:
        return {"method": self.name, "architecture": self.config.backbone,
                "method_config": {k: v for k, v in vars(self.config).items()}}

    @classmethod
    def inference_model(cls, card: ModelCard) -> nn.Module:
        """Rebuild the saved module from a card; default: backbone + linear head."""
        backbone = create_backbone(card.architecture, in_chans=len(card.bands), pretrained=False)
        return SceneClassifier(backbone, card.num_classes, dropout=0.0)

    # -- helpers -----------------------------------------------------------------------------------------
    def task_loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.task == "multi-label":
            return nn.functional.binary_cross_entropy_with_logits(logits, y.float())
        return nn.functional.cross_entropy(logits, y)
