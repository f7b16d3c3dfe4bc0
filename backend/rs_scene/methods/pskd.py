"""Pair-wise similarity knowledge distillation (Zhao, Sun, Gao, Dong, "Pair-wise similarity knowledge
distillation for RSI scene classification", Remote Sensing 2022).

A trained teacher (any RS Scene model file with the data's classes and bands) and a student. Each batch holds
B/2 anchor images and, for each, another image of the same class. Loss (Eq. 9)::

    alpha * T^2 KL(P(y|x'; theta~) || P(y|x; theta))                       same-class pairs (Eq. 5)
  + beta  * [lam H(s(x^), y_i) + (1-lam) H(s(x^), y_j) + T^2 KL(P_t(x^) || P_s(x^))]   mixup (Eq. 6-8)
  + gamma * H(s(x), y)

with theta~ a no-grad copy of the student, x^ a mixup of anchors with different labels and lam ~ Beta(a, a)
(a 1: the paper gives none; 0.2 / 0.4 / 1 on AID validation images gave 0.429 / 0.440 / 0.447, 4 seeds,
all within the noise; an earlier 2-seed selection on older code gave 0.2 and did not reproduce), and
H(s(x), y) over every image of the batch, anchors and partners, as the baselines' CE;
alpha 0.1, beta 1, gamma 0.8, T 4 as the paper (its Table 6 defaults). ``optimizer sgd`` is the paper's: SGD
(momentum 0.9), x0.1 at 30 %, 60 % and 80 % of the epochs (their 60th, 120th and 160th of 200); the paper's lr
0.1 is for 200 epochs. The default is ``adam``, what pretrain fine-tunes with (Adam, 5 warm-up epochs, x0.2
at 50 / 70 / 90 %), at lr 0.001: on the validation images below (backend/experiments/exp_pskd_optim.py,
2026-12-06, 3 seeds, 900 images a seed) it scored 0.519 [0.437, 0.601] against 0.465 [0.360, 0.570] for SGD
at 0.0003 (+5.4 [+2.8, +8.1] points; Adam 0.0001 / 0.0003 / 0.003 = 0.470 / 0.497 / 0.033: at 0.003 every
seed fell to chance) and 0.479 for pretrain's defaults. The PSKD study (exp_pskd.py) trains with Adam too
since 2026-12-06, each student from the paper's random classifier at 0.0003 (chosen on validation images,
exp_pskd_adam.py: from a random classifier 0.001 is near the edge, PSKD fell to 0.30 on one of 3 seeds, and at
0.002 nearly every run collapsed to uniform outputs, a finite loss of ln K).

Defaults chosen on validation images of the defaults setting (backend/experiments/exp_pskd_defaults.py,
2026-12-04: AID, 3 training / 30 validation images a class, 64 px, 3 seeds, a teacher trained with
pretrain's defaults; images the defaults study never tests on): the student starts from a linear probe
(``head_init auto``: LP-FT, as pretrain's default), keeps the ImageNet BatchNorm statistics (``batchnorm
auto``) and trained (SGD) at lr 0.0003: 0.465 [0.360, 0.570] against 0.394 [0.329, 0.460] for the paper's
random classifier with re-estimated statistics at 0.003 (the defaults until then; +7.1 [-3.9, +18.0]
points); pretrain's defaults 0.479. With the statistics kept SGD's rate must stay low: at 0.001 every
seed fell to chance (0.033) from the probe, and the random classifier reached 0.259. Re-estimated statistics
(``batchnorm train``, the paper's train mode) want 0.003 (exp_pskd_lr.py, UC Merced: 0.565 against 0.381
at 0.01); on the PSKD study's AID setting (48 px, 6 images a class) kept statistics at 0.0003 won for every
student (backend/experiments/exp_pskd_bn.py), and the study uses them with the paper's random classifier.

The paper's students are competent alone (ImageNet ResNet-18: 93.1 % on UC Merced): the default student is
the ImageNet EfficientNet-Lite0 (a Lite2 teacher, both from ImageNet, stands for their ResNet-34 / 18).
``kd = "hinton"`` trains the same student with Hinton et al.'s KD instead (gamma CE + beta T^2 KL to the
teacher on the unmixed batch) and ``kd = "none"`` with CE alone: the paper's baselines, on the same batches,
schedule and augmentation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..card import ModelCard, load_model_file
from ..data.datasets import SceneData, match_classes
from ..data.transforms import normalize, resize
from ..engine.evaluate import preprocess
from ..errors import RSSceneError
from ..losses import MixupKDLoss, PairwiseKDLoss
from ..losses.distill import kd_kl
from ..models import SceneClassifier
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
from .pretrain import frozen_features, load_init_backbone, probe_head, warmup_scheduler
from .registry import build_inference_model, register_method


@dataclass
class PSKDConfig(MethodConfig):
    backbone: str = opt("efficientnet_lite0", "student backbone (see `rs-scene models --backbones`); "
                        "smaller than the teacher's")
    teacher: str = opt("", "teacher model file (.pt) or installed model name, trained on the same classes")
    kd: str = opt("pskd", "distillation: pskd (the paper), hinton (standard KD), none (the student alone)",
                  choices=["pskd", "hinton", "none"])
    alpha: float = opt(0.1, "weight of the same-class pair KD term (Eq. 5)")
    beta: float = opt(1.0, "weight of the mixup term (Eq. 8); with kd=hinton, of the KD term")
    gamma: float = opt(0.8, "weight of the cross-entropy (the paper's 0.8)")
    temperature: float = opt(4.0, "distillation temperature T")
    mixup_alpha: float = opt(1.0, "a of the Beta(a, a) mixing coefficient (the paper does not state it; 1 "
                             "of 0.2 / 0.4 / 1 on validation images: backend/experiments/exp_pskd_mix.py; "
                             "with batchnorm frozen 0.4 scored higher: exp_pskd_bnmix.py)")
    mix_images: str = opt("anchors", "the images mixed for the mixup term (Eq. 6-8): the batch's anchors, "
                          "each with another anchor of a different label, or all (anchors and partners; "
                          "with a teacher well ahead of the student, chosen on validation images: +2.3 "
                          "[+1.0, +3.5] points over the student alone on AID against anchors' +1.0 [-0.1, "
                          "+2.0]: backend/experiments/exp_pskd_strong.py)", choices=["anchors", "all"])
    ce_images: str = opt("all", "the cross-entropy term over every image of the batch (all: anchors and "
                         "their partners, as the baselines) or the anchors only (CS-KD's code)",
                         choices=["all", "anchors"])
    batchnorm: str = opt("auto", "the student's BatchNorm statistics: re-estimated from the training "
                         "batches (train: PyTorch's and the paper's train mode; the mixed images of Eq. 6 "
                         "enter them too; wants lr 0.003) or kept as the pretrained weights have them "
                         "(frozen; scale and shift still train; SGD needs lr 0.0003: at 0.001 it fell to "
                         "chance); auto = frozen from pretrained weights, train from scratch (chosen on "
                         "validation images: backend/experiments/exp_pskd_defaults.py)",
                         choices=["auto", "frozen", "train"])
    head_init: str = opt("auto", "the student's classifier at the start: random weights (the paper) or a "
                         "linear probe fitted first on the student's frozen features of the training images "
                         "(probe: LP-FT, as pretrain's default); auto = probe from pretrained weights, "
                         "random from scratch", choices=["auto", "probe", "random"])
    lr: float = opt(0.001, "learning rate (0.001 chosen for adam on validation images with the "
                    "statistics kept and the probe start: 0.003 fell to chance on every seed; with "
                    "head_init random take 0.0003: 0.001 fell to 0.30 on one of 3 seeds; SGD: the "
                    "paper's 0.1 is for 200 epochs, 0.0003 chosen, with batchnorm train 0.003: "
                    "backend/experiments/exp_pskd_optim.py, exp_pskd_adam.py, exp_pskd_defaults.py, "
                    "exp_pskd_lr.py)")
    optimizer: str = opt("adam", "sgd: the paper's (momentum 0.9, x0.1 at 30 / 60 / 80 % of the epochs); "
                         "adam: what pretrain fine-tunes with (linear warm-up over warmup_epochs, x0.2 at "
                         "50 / 70 / 90 %; chosen on validation images: +5.4 points over sgd, "
                         "exp_pskd_optim.py)", choices=["sgd", "adam"])
    warmup_epochs: int = opt(5, "optimizer adam: epochs of linear learning-rate warm-up (at most a quarter "
                             "of the epochs)")
    weight_decay: float = opt(5e-4, "weight decay")
    min_steps: int = opt(200, "at least this many optimiser steps: a small set trains more epochs than the "
                         "default (0 = off; given epochs are kept unless min_steps is given too)")


class TeacherAdapter(nn.Module):
    """Frozen teacher fed the student's batch: undo the student's normalisation, resize to the teacher's input
    size, apply the teacher's normalisation, and reorder the teacher's logits into the student's classes."""

    def __init__(self, teacher: nn.Module, student: ModelCard, card: ModelCard, order: list[int]) -> None:
        super().__init__()
        self.teacher = teacher.eval()
        for p in self.teacher.parameters():
            p.requires_grad_(False)
        self.size = card.input_size
        self.t_mean, self.t_std = card.mean, card.std
        self.register_buffer("s_mean", torch.tensor(student.mean).view(1, -1, 1, 1))
        self.register_buffer("s_std", torch.tensor(student.std).view(1, -1, 1, 1))
        self.register_buffer("order", torch.tensor(order, dtype=torch.long))

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.teacher.eval()
        raw = x * self.s_std + self.s_mean
        return self.teacher(normalize(resize(raw, self.size), self.t_mean, self.t_std))[:, self.order]


class PSKDNet(nn.Module):
    def __init__(self, student: SceneClassifier, teacher: TeacherAdapter) -> None:
        super().__init__()
        self.student, self.teacher = student, teacher

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.student(x)


def load_teacher(path: str, card: ModelCard) -> tuple[ModelCard, nn.Module, list[int]]:
    """The teacher module and, for each student class, the index of the same class among the teacher's."""
    t_card, state = load_model_file(resolve_model(path))
    where = f"teacher {path}"
    if t_card.task != "single-label" or card.task != "single-label":
        raise RSSceneError(f"{where}: pskd distils single-label models only")
    if sorted(c.lower() for c in t_card.class_names) != sorted(c.lower() for c in card.class_names) or len(
        t_card.class_names
    ) != len(card.class_names):
        raise RSSceneError(
            f"{where}: its classes ({', '.join(t_card.class_names)}) differ from the data's "
            f"({', '.join(card.class_names)})"
        )
    if t_card.bands != card.bands:
        raise RSSceneError(f"{where}: it takes bands {t_card.bands}, the data has {card.bands}")
    teacher = build_inference_model(t_card)
    teacher.load_state_dict(state)
    return t_card, teacher, match_classes(card.class_names, t_card.class_names, where)


@register_method
class PSKDMethod(Method):
    name = "pskd"
    description = (
        "Pair-wise similarity knowledge distillation: same-class pair self-KD + mixup KD from a teacher"
    )
    paper = "pairwise-similarity_knowledge-distillation.txt"
    Config = PSKDConfig

    def __init__(self, config: PSKDConfig, num_classes: int, bands: Any, task: str = "single-label") -> None:
        super().__init__(config, num_classes, bands, task)
        if not config.teacher:
            raise RSSceneError(
                "pskd needs a teacher model: --teacher FILE.pt (train one with --method pretrain)"
            )
        if task != "single-label":
            raise RSSceneError("pskd is a single-label method")
        if config.temperature <= 0 or config.mixup_alpha <= 0:
            raise RSSceneError("pskd: temperature and mixup_alpha must be positive")
        self.pair_kd = PairwiseKDLoss(config.temperature)
        self.mix_kd = MixupKDLoss(config.temperature)
        self.teacher: tuple[ModelCard, nn.Module, list[int]] | None = None
        self.card: ModelCard | None = None

    def prepare_data(self, card: ModelCard, train: SceneData) -> None:
        self.card = card
        self.n_train = len(train)
        self.teacher = load_teacher(self.config.teacher, card)

    def build_model(self) -> nn.Module:
        if self.teacher is None or self.card is None:
            raise RSSceneError("pskd: prepare_data(card, train) must run before build_model")
        t_card, teacher, order = self.teacher
        student = SceneClassifier(
            load_init_backbone(self.config.init, self.config.backbone, self.bands),
            self.num_classes,
            dropout=self.config.dropout,
        )
        return PSKDNet(student, TeacherAdapter(teacher, self.card, t_card, order))

    def stages(self) -> list[Stage]:
        c, n = self.config, getattr(self, "n_train", 0)
        # batches of B/2 anchors and their partners
        return [Stage("distill", lifted_epochs(c.epochs, n, max(c.batch_size // 2, 1), c.min_steps))]

    def batch_indices(self, stage: Stage, data: SceneData, batch_size: int, generator: torch.Generator):
        """Batches of B/2 random anchors followed by one same-class partner for each (itself if alone)."""
        labels = data.y.numpy()
        members = {c: np.flatnonzero(labels == c) for c in np.unique(labels)}
        half = max(batch_size // 2, 1)
        for anchors in even_batches(torch.randperm(len(data), generator=generator), half):
            partners = []
            for a in anchors.tolist():
                pool = members[labels[a]]
                others = pool[pool != a] if len(pool) > 1 else pool
                partners.append(int(others[int(torch.randint(len(others), (1,), generator=generator))]))
            yield torch.cat([anchors, torch.tensor(partners, dtype=torch.long)])

    def head_from_probe(self) -> bool:
        """LP-FT: the student's classifier starts as a linear probe (``head_init`` probe; auto: unless from
        scratch)."""
        return starts_from_probe(self.config.head_init, self.config.init)

    def on_stage_start(self, model: nn.Module, stage: Stage, train_loader: Any) -> None:
        if self.head_from_probe() and not stage.info.get("resumed"):
            card = self.card
            features = frozen_features(model.student, train_loader,
                                       lambda x, train=False: preprocess(x, card))
            probe_head(model.student, features, train_loader.y, self.config.batch_size, F.cross_entropy)

    def train_mode(self, model: nn.Module) -> None:
        model.train()
        model.teacher.eval()
        if keeps_batchnorm(self.config.batchnorm, self.config.init):
            freeze_batchnorm(model.student)

    def configure_optimizer(self, model: nn.Module, stage: Stage, steps_per_epoch: int):
        c = self.config
        params = [p for p in model.student.parameters() if p.requires_grad]
        if c.optimizer == "adam":
            optim = torch.optim.Adam(params, lr=c.lr, weight_decay=c.weight_decay)
            return optim, warmup_scheduler(optim, stage.epochs, c.warmup_epochs)
        optim = torch.optim.SGD(params, lr=c.lr, momentum=0.9, weight_decay=c.weight_decay)
        milestones = sorted({max(round(stage.epochs * f), 1) for f in (0.3, 0.6, 0.8)})
        return optim, torch.optim.lr_scheduler.MultiStepLR(optim, milestones, gamma=0.1)

    def training_step(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, stage: Stage):
        c = self.config
        if c.kd != "pskd":  # the baselines: every image of the batch (anchors and partners) as one batch
            logits = model.student(x)
            ce = F.cross_entropy(logits, y)
            if c.kd == "none":
                return {"loss": ce, "ce": ce.detach()}
            kd = kd_kl(model.teacher(x), logits, c.temperature)
            return {"loss": c.gamma * ce + c.beta * kd, "ce": ce.detach(), "kd": kd.detach()}
        half = len(x) // 2
        logits = model.student(x)
        anchor, partner, ya = logits[:half], logits[half:], y[:half]
        ce = F.cross_entropy(logits, y) if c.ce_images == "all" else F.cross_entropy(anchor, ya)
        pair = self.pair_kd(anchor, partner.detach())
        losses = {"ce": ce.detach(), "pair_kd": pair.detach()}
        loss = c.alpha * pair + c.gamma * ce
        if c.beta > 0:
            xs, ys = (x, y) if c.mix_images == "all" else (x[:half], ya)
            j = self.mix_partners(ys)
            lam = float(np.random.beta(c.mixup_alpha, c.mixup_alpha))
            mixed = lam * xs + (1 - lam) * xs[j]
            mix = self.mix_kd(model.student(mixed), model.teacher(mixed), ys, ys[j], lam)
            loss = loss + c.beta * mix
            losses["mix"] = mix.detach()
        return {"loss": loss, **losses}

    @staticmethod
    def mix_partners(y: torch.Tensor) -> torch.Tensor:
        """For each anchor, a random other anchor with a different label (itself when all share one)."""
        other = (y[:, None] != y[None, :]).float()
        scores = torch.rand(other.shape, device=y.device) * other
        j = scores.argmax(1)
        return torch.where(other.sum(1) > 0, j, torch.arange(len(y), device=y.device))

    def export_module(self, model: nn.Module) -> nn.Module:
        return model.student
