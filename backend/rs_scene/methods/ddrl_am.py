"""DDRL-AM (Li, Zhang et al., "Deep discriminative representation learning with attention map for scene
classification", Remote Sensing 2020).

Stage 1 fine-tunes the backbone with a linear head. Its Grad-CAM map (Eq. 1-2; pytorch-grad-cam, upsampled to
the image) of every training image is then the input of the second stream: stage 2 trains the two-stream
network (image -> backbone, map -> SFT of Table I, element-wise product (Eq. 3), pooling, classifier; the
image stream and the classifier start from stage 1's, the SFT's last BatchNorm at weight 0 / bias 1, so the
network starts as the stage-1 network and learns the map's weighting from there) with
``CE + lambda * center loss`` (Eq. 6; centers moved by SGD with lr 0.5 as in Wen et al., started at the class
means of the features as training sees them), Adam with AMSGrad (lr 1e-4 for the backbone, 1e-3 for SFT and
head; only the SFT and head rates x0.1 every 10 epochs, as the paper says) and, in both stages, the paper's
augmentation only: rotations by 90/180/270 degrees and flips (applied jointly to image and map in stage 2).
At inference the stage-1 network makes the map on the fly.

lambda: the paper's 0.5 weighs a center loss summed over 512 ResNet-18 feature dimensions; Wen et al. found
0.001-0.01 best with such a sum and showed large lambdas collapse the features. Our center loss is rescaled to
512 dimensions whatever the backbone's width (:class:`CenterLoss` ``ref_dim``) and lambda defaults to 0.01,
in Wen et al.'s range: at the start of stage 2 on AID it weighs 7 % of the CE, where the former 0.5 on a
1280-d sum from zero centers weighed 10x the CE. Confirmed on validation images (backend/experiments/
exp_ddrl_am.py ``--select``, the AID study's splits, 10 validation images a class in neither part, 3 seeds,
2026-12-03): lambda 0 / 0.001 / 0.01 / 0.1 / 1 = 0.643 / 0.647 / **0.651** / 0.639 / 0.612 OA (every step
within the noise but 1, -3.1 [-8.4, +2.1] points under 0).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from pytorch_grad_cam import GradCAM
from torch import nn
from torch.nn import functional as F

from ..card import ModelCard
from ..data.datasets import SceneData
from ..data.transforms import normalize, random_flip_rot90, resize
from ..errors import RSSceneError
from ..losses import CenterLoss
from ..models import SceneClassifier, create_backbone
from ..models.sft import DDRLAMNet
from .base import Method, MethodConfig, Stage, lifted_epochs, opt, stretched
from .pretrain import load_init_backbone
from .registry import register_method

CENTER_REF_DIM = 512  # the paper's feature width (ResNet-18 / SFT): the center loss is scaled to it


@dataclass
class DDRLAMConfig(MethodConfig):
    epochs: int = opt(10, "epochs of stage 2 (the two-stream network); the paper trains 40")
    stage1_epochs: int = opt(0, "epochs of stage 1 (fine-tuning the attention network); 0 = same as epochs")
    lr: float = opt(1e-3, "learning rate of the SFT stream and the classifier")
    lr_backbone: float = opt(1e-4, "learning rate of the backbone")
    lr_step: int = opt(10, "multiply the learning rates by 0.1 every this many epochs")
    weight_decay: float = opt(0.0, "weight decay")
    center_weight: float = opt(
        0.01, "lambda: weight of the center loss (scaled to 512 feature dims; paper 0.5, Wen et al. 0.003)"
    )
    center_lr: float = opt(0.5, "alpha: learning rate of the class centers")
    dropout: float = opt(0.0, "dropout before the classifier")
    min_steps: int = opt(200, "at least this many optimiser steps per stage: a small set trains more epochs "
                         "(lr_step scaled alike; 0 = off; given epochs kept unless min_steps is given)")


class DDRLAMTrainNet(nn.Module):
    """What is trained: the network that is saved plus the center-loss centers."""

    def __init__(self, net: DDRLAMNet, center: CenterLoss) -> None:
        super().__init__()
        self.net, self.center = net, center

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def bn_buffers(module: nn.Module) -> dict[str, torch.Tensor]:
    """Copies of the running statistics of every BatchNorm in ``module`` (state-dict keys)."""
    return {
        k: v.clone()
        for k, v in module.state_dict().items()
        if k.rsplit(".", 1)[-1] in ("running_mean", "running_var", "num_batches_tracked")
    }


def build_net(
    arch: str, backbone: nn.Module, num_classes: int, bands: list[str], dropout: float
) -> DDRLAMNet:
    stream = create_backbone(arch, in_chans=len(bands), pretrained=False, bands=bands)
    return DDRLAMNet(SceneClassifier(backbone, num_classes, dropout=dropout), stream, num_classes, dropout)


def gradcam_maps(net: SceneClassifier, x: torch.Tensor, batch_size: int = 32) -> torch.Tensor:
    """pytorch-grad-cam maps (N, 1, H, W) of each image's predicted class; ``x`` is the network input."""
    cam = GradCAM(model=net, target_layers=[net.cam_layer])
    x = x.detach().requires_grad_(True)  # gradients reach the feature map even when the net is frozen
    try:
        maps = [
            np.asarray(cam(input_tensor=x[i : i + batch_size], targets=None), dtype=np.float32)
            for i in range(0, len(x), batch_size)
        ]
    finally:
        cam.activations_and_grads.release()
    return torch.from_numpy(np.concatenate(maps))[:, None]


@register_method
class DDRLAMMethod(Method):
    name = "ddrl-am"
    description = (
        "Attention-map two-stream network with center loss (Grad-CAM map -> SFT stream, fused by product)"
    )
    paper = "ddrl-am_attention-map_center-loss.txt"
    Config = DDRLAMConfig

    def __init__(
        self, config: DDRLAMConfig, num_classes: int, bands: Any, task: str = "single-label"
    ) -> None:
        super().__init__(config, num_classes, bands, task)
        if task != "single-label":
            raise RSSceneError(
                "ddrl-am is a single-label method (softmax + center loss); use bwms for multi-label"
            )
        if config.epochs < 1:
            raise RSSceneError("ddrl-am: epochs (stage 2) must be at least 1")
        self.card: ModelCard | None = None
        self.maps: torch.Tensor | None = None
        self._last: tuple[torch.Tensor, torch.Tensor] | None = None

    def prepare_data(self, card: ModelCard, train: SceneData) -> None:
        self.card = card
        self.n_train = len(train)

    def build_model(self) -> nn.Module:
        c = self.config
        backbone = load_init_backbone(c.init, c.backbone, self.bands)
        net = build_net(c.backbone, backbone, self.num_classes, self.bands, c.dropout)
        center = CenterLoss(self.num_classes, net.num_features, alpha=c.center_lr, ref_dim=CENTER_REF_DIM)
        return DDRLAMTrainNet(net, center)

    def stages(self) -> list[Stage]:
        """The two stages; with ``min_steps`` on a small set each is lifted to that many steps, and the
        stage's ``lr_step`` grows by the same factor (the decay stays at the same share of it)."""
        c, n = self.config, getattr(self, "n_train", 0)
        two = lifted_epochs(c.epochs, n, c.batch_size, c.min_steps)
        first = c.stage1_epochs or two
        base = c.stage1_epochs or c.epochs
        return [
            Stage("attention", first, {"lr_step": max(stretched(c.lr_step, first, base), 1)}),
            Stage("two-stream", two, {"lr_step": max(stretched(c.lr_step, two, c.epochs), 1)}),
        ]

    def on_stage_start(self, model: nn.Module, stage: Stage, train_loader: Any) -> None:
        net: DDRLAMNet = model.net
        two = stage.name == "two-stream"
        if two:
            if not bool(net.stream_ready):  # the image stream and head start from the fine-tuned stage 1
                net.stream.load_state_dict(net.attention_net.backbone.state_dict())
                net.head.load_state_dict(net.attention_net.head.state_dict())
                net.stream_ready.fill_(True)
            self.maps = self.attention_maps(net.attention_net, train_loader)
            if not bool(model.center.ready):
                self.init_centers(model, train_loader)
        for part, trainable in (
            (net.attention_net, not two),
            (net.stream, two),
            (net.sft, two),
            (net.head, two),
        ):
            for p in part.parameters():
                p.requires_grad_(trainable)

    def attention_maps(self, attention_net: SceneClassifier, data: SceneData) -> torch.Tensor:
        """Grad-CAM maps of the (unaugmented) training images, at the network input size."""
        if self.card is None:
            raise RSSceneError("ddrl-am: prepare_data(card, train) must run before training")
        device = next(attention_net.parameters()).device
        x = normalize(resize(data.x.to(device), self.card.input_size), self.card.mean, self.card.std)
        maps = gradcam_maps(attention_net, x)
        attention_net.eval()
        return maps

    @torch.no_grad()
    def init_centers(self, model: nn.Module, data: SceneData) -> None:
        """Start each class center at its training images' mean fused feature as training computes it: in
        train mode, BatchNorm normalising each batch of ``batch_size`` images by its own statistics. (In eval
        mode the freshly built SFT's BatchNorm still has running mean 0 / variance 1, which makes the fused
        features tens of times smaller than in training: the centers would start near zero and the center
        loss would first pull every feature to the origin.) The running statistics are left as they were."""
        net: DDRLAMNet = model.net
        card, device, bs = self.card, next(net.parameters()).device, max(self.config.batch_size, 2)
        was_training, saved = net.training, bn_buffers(net)
        net.train()
        net.attention_net.eval()
        feats = []
        for i in range(0, len(data), bs):
            x = normalize(resize(data.x[i : i + bs].to(device), card.input_size), card.mean, card.std)
            amap = self.maps[i : i + bs].to(x)
            feats.append(net.forward_head(net.fused_features(x, amap), pre_logits=True))
        model.center.set_to_means(torch.cat(feats), data.y.to(device))
        net.load_state_dict(saved, strict=False)
        net.train(was_training)

    def prepare_batch(
        self, data: SceneData, idx: torch.Tensor, stage: Stage, trainer: Any
    ) -> tuple[Any, torch.Tensor]:
        y = data.y[idx].to(trainer.device)
        card = trainer.card
        img = resize(data.x[idx].to(trainer.device), card.input_size)
        if stage.name != "two-stream":  # the paper's augmentation: rotations and flips only
            return normalize(random_flip_rot90(img, generator=trainer.generator), card.mean, card.std), y
        both = random_flip_rot90(torch.cat([img, self.maps[idx].to(img)], 1), generator=trainer.generator)
        return (normalize(both[:, :-1], card.mean, card.std), both[:, -1:]), y

    def configure_optimizer(self, model: nn.Module, stage: Stage, steps_per_epoch: int):
        net: DDRLAMNet = model.net
        c = self.config
        if stage.name == "two-stream":
            groups = [
                {"params": net.stream.parameters(), "lr": c.lr_backbone},
                {"params": [*net.sft.parameters(), *net.head.parameters()], "lr": c.lr},
            ]
        else:
            groups = [
                {"params": net.attention_net.backbone.parameters(), "lr": c.lr_backbone},
                {"params": net.attention_net.head.parameters(), "lr": c.lr},
            ]
        optim = torch.optim.Adam(
            groups, betas=(0.9, 0.999), eps=1e-8, weight_decay=c.weight_decay, amsgrad=True
        )
        step = max(stage.info.get("lr_step", c.lr_step), 1)
        # the paper decays only the SFT and classifier rates; the fine-tuned backbone keeps its 1e-4
        return optim, torch.optim.lr_scheduler.LambdaLR(optim, [lambda e: 1.0, lambda e: 0.1 ** (e // step)])

    def training_step(
        self, model: nn.Module, x: Any, y: torch.Tensor, stage: Stage
    ) -> dict[str, torch.Tensor]:
        net: DDRLAMNet = model.net
        if stage.name != "two-stream":
            return {"loss": F.cross_entropy(net.attention_net(x), y)}
        net.attention_net.eval()
        img, amap = x
        pooled = net.forward_head(net.fused_features(img, amap), pre_logits=True)
        ce = F.cross_entropy(net.head(net.dropout(pooled)), y)
        center = model.center(pooled, y)
        self._last = (pooled.detach(), y)
        return {"loss": ce + self.config.center_weight * center, "ce": ce.detach(), "center": center.detach()}

    def after_step(self, model: nn.Module, stage: Stage) -> None:
        if stage.name == "two-stream" and self._last is not None:
            model.center.update(*self._last)
            self._last = None

    def export_module(self, model: nn.Module) -> nn.Module:
        net: DDRLAMNet = model.net
        return net if bool(net.stream_ready) else net.attention_net

    @classmethod
    def inference_model(cls, card: ModelCard) -> nn.Module:
        backbone = create_backbone(
            card.architecture, in_chans=len(card.bands), pretrained=False, bands=card.bands
        )
        return build_net(card.architecture, backbone, card.num_classes, card.bands, 0.0)
