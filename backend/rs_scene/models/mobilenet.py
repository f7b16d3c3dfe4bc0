"""MobileNetV3-Small (Howard et al. 2019) from torchvision with the uniform backbone API: a compact student
for distillation. No ImageNet weights are bundled, so it is trained from scratch (``pretrained=False``)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torchvision
from torch import nn

from ..errors import RSSceneError
from .registry import register_backbone


class MobileNetV3SmallBackbone(nn.Module):
    num_features = 576

    def __init__(self, in_chans: int = 3) -> None:
        super().__init__()
        net = torchvision.models.mobilenet_v3_small(weights=None)
        if in_chans != 3:
            net.features[0][0] = nn.Conv2d(in_chans, 16, 3, 2, 1, bias=False)
        self.features = net.features

    @property
    def cam_layer(self) -> nn.Module:
        return self.features[-1]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


@register_backbone("mobilenet_v3_small")
def mobilenet_v3_small(
    in_chans: int = 3, pretrained: bool = False, bands: Sequence[str] | None = None
) -> nn.Module:
    if pretrained:
        raise RSSceneError("mobilenet_v3_small has no bundled ImageNet weights; use --init scratch")
    return MobileNetV3SmallBackbone(in_chans)
