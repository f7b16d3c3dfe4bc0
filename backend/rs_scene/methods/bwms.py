"""BWMS: band-wise multi-scale CNN (Kang & Demir, IGARSS 2020) for multispectral Sentinel-2 scenes.

Architecture in :mod:`rs_scene.models.bwms`: band-wise depthwise convolutions (kernels 1, 3, 5, 7; 10 m bands
stride 2, 20 m bands stride 1), 1x1 fusion conv + BN + LeakyReLU(0.1), a ResNet body, dropout, FC 128, FC
classes. Sigmoid + BCE for multi-label data (BigEarthNet), softmax + CE for single-label (EuroSAT-MS); Adam
with lr 1e-3 halved every 30 epochs. ``stem=conv`` swaps the band-wise layer for the ResNet's own 7x7 stem,
the paper's ResNet baseline with everything else equal. The paper's configuration is ``--backbone resnet18
--init scratch``.

The default body is EfficientNet-Lite0 from ImageNet: the paper's premise is that ImageNet CNNs cannot take
multispectral input, and its band-wise layer replaces the stem; here it replaces Lite0's stem (same width and
stride) and starts as that stem (an exact factorisation of its 3x3 filters), so any number of bands starts
from ImageNet's blocks. On 3 UC Merced images a class (64 px, 3 seeds) it reached pretrain where the ResNet-18
body from scratch did not (``backend/experiments/exp_bwms_init.py``). ``min_steps`` (200) lifts the epochs on
small sets, the lr halving stretched with them.

BigEarthNet patches come with the 20 m bands at 60 x 60 px. :func:`load_bigearthnet_native` puts them on the
10 m grid by pixel replication, which the model's 2x2 average pooling undoes exactly, so the network sees
those bands at their native resolution.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import torch
from torch import nn

from ..bands import S2_TEN, canonical_band
from ..card import ModelCard
from ..data.datasets import BIGEARTHNET_43, SceneData, bigearthnet_target
from ..data.transforms import normalize, random_flip_rot90, resize
from ..errors import RSSceneError
from ..models import create_backbone
from ..models.bwms import LITE_BODIES, BWMSBackbone, BWMSClassifier, BWMSEfficientNet
from .base import Method, MethodConfig, Stage, lifted_epochs, opt, stretched
from .registry import register_method

IMAGENET_LR = 3e-4  # UC Merced 3 a class, 64 px, validation OA: 1e-3 0.463, 3e-4 0.551, 1e-4 0.456
BODIES = ["resnet18", "resnet34", "resnet50", *LITE_BODIES]


@dataclass
class BWMSConfig(MethodConfig):
    backbone: str = opt("efficientnet_lite0", "body after the band-wise layer: EfficientNet-Lite0/1/2 "
                        "(ImageNet blocks) or a ResNet (the paper's, from scratch)", choices=BODIES)
    stem: str = opt(
        "bwms",
        "first layer: the band-wise multi-scale convs, the plain ResNet 7x7/2 stem + max-pool (the paper's "
        "baseline, body on the /4 grid), or that stem without the max-pool (conv-s2: body on BWMS's /2 grid)",
        choices=["bwms", "conv", "conv-s2"],
    )
    init: str = opt("imagenet", "initial weights of the body (imagenet or scratch); a ResNet body after the "
                    "band-wise layer: scratch")
    band_init: str = opt("stem", "EfficientNet body from ImageNet: the band-wise layer and fusion start as "
                         "the ImageNet stem conv (an exact factorisation of its 3x3 filters) or at random",
                         choices=["stem", "random"])
    multiplier: int = opt(4, "depthwise feature maps per band and kernel size")
    hidden: int = opt(128, "width of the FC layer before the classifier")
    dropout: float = opt(0.5, "dropout before the FC layers")
    lr: float = opt(0.0, "Adam learning rate; 0 = 1e-3 (the paper's) from scratch, 3e-4 for an ImageNet body "
                    "(chosen on a validation split)")
    lr_halving: int = opt(30, "halve the learning rate every this many epochs")
    weight_decay: float = opt(0.0, "weight decay")
    min_steps: int = opt(200, "at least this many optimiser steps: a small set trains more epochs than the "
                         "default, the lr halving stretched with them (0 = off; given epochs are kept unless "
                         "min_steps is given too)")


def architecture(config: BWMSConfig) -> str:
    if config.stem == "bwms":
        return f"bwms_{config.backbone}"
    if config.stem == "conv-s2" and config.backbone in LITE_BODIES:
        raise RSSceneError(f"bwms: stem conv-s2 is a ResNet stem without its max-pool; use a ResNet body "
                           f"(--backbone resnet18), not {config.backbone}")
    return f"{config.backbone}_s2" if config.stem == "conv-s2" else config.backbone


def build_classifier(
    arch: str,
    bands: list[str],
    num_classes: int,
    multiplier: int,
    hidden: int,
    dropout: float,
    init: str = "scratch",
    leaky: bool = True,
    band_init: str = "stem",
) -> BWMSClassifier:
    body = arch[len("bwms_") :]
    if body in LITE_BODIES:
        if init not in ("imagenet", "scratch"):
            raise RSSceneError(f"bwms: --init for an EfficientNet body is imagenet or scratch, not {init}")
        backbone: nn.Module = BWMSEfficientNet(
            body, len(bands), bands, multiplier, init == "imagenet", band_init == "stem"
        )
    elif arch.startswith("bwms_"):
        if init != "scratch":
            raise RSSceneError(
                f"bwms: a ResNet body after the band-wise layer has no pretrained weights here; use --init "
                f"scratch, not {init}, or --backbone efficientnet_lite0 for ImageNet blocks"
            )
        backbone = BWMSBackbone(body, len(bands), bands, multiplier, leaky)
    else:
        backbone = create_backbone(arch, in_chans=len(bands), pretrained=init == "imagenet", bands=bands)
    return BWMSClassifier(backbone, num_classes, dropout=dropout, hidden=hidden)


@register_method
class BWMSMethod(Method):
    name = "bwms"
    description = "Band-wise multi-scale CNN for multispectral images (single- or multi-label)"
    paper = "bwms_band-wise_multi-scale_cnn.txt"
    Config = BWMSConfig

    def build_model(self) -> nn.Module:
        c = self.config
        return build_classifier(
            architecture(c), self.bands, self.num_classes, c.multiplier, c.hidden, c.dropout, c.init,
            band_init=c.band_init,
        )

    def prepare_data(self, card: Any, train: Any) -> None:
        self.n_train = len(train)

    def stages(self) -> list[Stage]:
        """``epochs``, lifted to ``min_steps`` optimiser steps on a small set; the lr halving is stretched by
        the same factor, so it falls at the same fraction of the run (30 of 10 epochs -> 300 of 100)."""
        c, n = self.config, getattr(self, "n_train", 0)
        epochs = lifted_epochs(c.epochs, n, c.batch_size, c.min_steps)
        return [Stage("train", epochs, {"lr_halving": max(stretched(c.lr_halving, epochs, c.epochs), 1)})]

    def prepare_batch(self, data: SceneData, idx: torch.Tensor, stage: Stage, trainer: Any):
        """Rotations and flips only: a crop-and-resize would blur the replicated 20 m pixels."""
        card = trainer.card
        x = random_flip_rot90(
            resize(data.x[idx].to(trainer.device), card.input_size), generator=trainer.generator
        )
        return normalize(x, card.mean, card.std), data.y[idx].to(trainer.device)

    def configure_optimizer(self, model: nn.Module, stage: Stage, steps_per_epoch: int):
        optim = torch.optim.Adam(model.parameters(), lr=self.base_lr(), weight_decay=self.config.weight_decay)
        return optim, torch.optim.lr_scheduler.StepLR(
            optim, step_size=int(stage.info.get("lr_halving", max(self.config.lr_halving, 1))), gamma=0.5
        )

    def base_lr(self) -> float:
        c = self.config
        return c.lr if c.lr > 0 else (IMAGENET_LR if c.init == "imagenet" else 1e-3)

    def training_step(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, stage: Stage):
        return {"loss": self.task_loss(model(x), y)}

    def card_fields(self) -> dict[str, Any]:
        fields = {**super().card_fields(), "architecture": architecture(self.config)}
        lite = self.config.backbone in LITE_BODIES and self.config.stem == "bwms"
        fields["method_config"] = {**fields["method_config"],
                                   "body_activation": "relu6" if lite else "leaky_relu"}
        return fields

    @classmethod
    def inference_model(cls, card: ModelCard) -> nn.Module:
        mc = card.method_config
        return build_classifier(
            card.architecture,
            card.bands,
            card.num_classes,
            int(mc.get("multiplier", 4)),
            int(mc.get("hidden", 128)),
            0.0,
            leaky=mc.get("body_activation") == "leaky_relu",  # files from before the fix: ReLU body
        )


def load_bigearthnet_native(root: str | Path, bands: list[str] | None = None) -> SceneData:
    """BigEarthNet-S2 patches with every band on the 10 m grid by pixel replication (no interpolation)."""
    root = Path(root)
    bands = [canonical_band(b) for b in (bands or S2_TEN)]
    xs, ys, files = [], [], []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        planes = []
        for b in bands:
            path = folder / f"{folder.name}_{b}.tif"
            if not path.exists():
                raise RSSceneError(f"BigEarthNet patch {folder.name}: band file {path.name} is missing")
            with rasterio.open(path) as ds:
                planes.append(ds.read(1).astype(np.float32) / 10000.0)
        size = max(p.shape[0] for p in planes)
        planes = [
            np.kron(p, np.ones((size // p.shape[0], size // p.shape[1]), dtype=np.float32)) for p in planes
        ]
        target = bigearthnet_target(folder)
        xs.append(np.stack(planes))
        ys.append(target)
        files.append(folder.name)
    if not xs:
        raise RSSceneError(f"no BigEarthNet patches in {root}")
    return SceneData(
        torch.from_numpy(np.stack(xs)),
        torch.from_numpy(np.stack(ys)),
        list(BIGEARTHNET_43),
        bands,
        files,
        10000.0,
        10.0,
        task="multi-label",
        kind="bigearthnet",
    )
