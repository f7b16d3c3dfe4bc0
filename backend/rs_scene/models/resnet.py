"""ResNet-18/34/50/101 (He et al. 2016) from torchvision, with the uniform backbone API.

``resnetNN_s2``: the same network without the max-pool after the 7x7/2 stem, so its body runs on the /2 grid
like BWMS's band-wise layer (the BWMS comparison at equal resolution); same weights, same parameters.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
import torchvision
from torch import nn

from ..errors import RSSceneError
from .adapt import adapt_rgb_conv_weight
from .registry import register_backbone

_WEIGHTS = {
    "resnet18": torchvision.models.ResNet18_Weights.IMAGENET1K_V1,
    "resnet34": torchvision.models.ResNet34_Weights.IMAGENET1K_V1,
    "resnet50": torchvision.models.ResNet50_Weights.IMAGENET1K_V1,
    "resnet101": torchvision.models.ResNet101_Weights.IMAGENET1K_V1,
}


class ResNetBackbone(nn.Module):
    def __init__(self, arch: str, in_chans: int, stride2: bool = False) -> None:
        super().__init__()
        net = getattr(torchvision.models, arch)(weights=None)
        if in_chans != 3:
            net.conv1 = nn.Conv2d(in_chans, 64, 7, 2, 3, bias=False)
        self.conv1, self.bn1, self.relu, self.maxpool = net.conv1, net.bn1, net.relu, net.maxpool
        if stride2:
            self.maxpool = nn.Identity()
        self.layer1, self.layer2, self.layer3, self.layer4 = net.layer1, net.layer2, net.layer3, net.layer4
        self.num_features = net.fc.in_features

    @property
    def cam_layer(self) -> nn.Module:
        return self.layer4

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


def imagenet_state_dict(arch: str) -> dict[str, torch.Tensor]:
    """torchvision's ImageNet weights, from its cache; downloaded only when ``RS_SCENE_OFFLINE`` is unset."""
    weights = _WEIGHTS[arch]
    folder = os.path.join(torch.hub.get_dir(), "checkpoints")
    fname = os.path.basename(weights.url)
    path = os.path.join(folder, fname)
    if not os.path.exists(path):
        if os.environ.get("RS_SCENE_OFFLINE"):
            raise RSSceneError(
                f"ImageNet weights for {arch} are missing: expected {fname} in {folder} "
                f"(download {weights.url} there, or unset RS_SCENE_OFFLINE to let torchvision fetch it)"
            )
        try:
            return weights.get_state_dict(progress=False)
        except Exception as exc:  # network errors come in many types
            raise RSSceneError(
                f"ImageNet weights for {arch} are missing: expected {fname} in {folder} and the download "
                f"from {weights.url} failed ({exc})"
            ) from exc
    return torch.load(path, map_location="cpu", weights_only=True)


def _make(arch: str, stride2: bool = False):
    @register_backbone(f"{arch}_s2" if stride2 else arch)
    def factory(in_chans: int = 3, pretrained: bool = False, bands: Sequence[str] | None = None) -> nn.Module:
        model = ResNetBackbone(arch, in_chans, stride2)
        if pretrained:
            sd = {k: v for k, v in imagenet_state_dict(arch).items() if not k.startswith("fc.")}
            sd["conv1.weight"] = adapt_rgb_conv_weight(sd["conv1.weight"], in_chans, bands)
            model.load_state_dict(sd, strict=True)
        return model

    return factory


for _arch in _WEIGHTS:
    _make(_arch)
    _make(_arch, stride2=True)
