"""A twice-finer CAM grid from the same network: its last stride-2 layer run at stride 1 ("a trous").

The last feature map of EfficientNet-Lite0 at 128 px is 4 x 4: one cell per 32 input pixels. Setting the
last stride-2 layer to stride 1 and dilating every later convolution by 2 (padding doubled) computes the same
network on a grid twice as dense (Chen et al. 2018, DeepLab's atrous convolution): the even cells of the
dense map are exactly the original cells, and the odd ones are the same features for windows shifted by
half a cell (16 input px), as overlapping tiles would give, but sharing everything up to stride 16. The
classifier sees only the even cells (its logits are unchanged, tested), the heatmap all of them: 8 x 8 cells
per 128-px input (14 x 14 at 224 px), each the closed-form Grad-CAM evidence of its window.

Exact for networks whose layers after that stride-2 layer are convolutions, batch norms, pointwise
activations and residual sums (EfficientNet-Lite, ResNet); :func:`densify` checks it on a random input and
returns None where it is not (MobileNetV3's squeeze-excitation pools inside its blocks).
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

_GEOMETRY = (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)


def _pair(v: Any) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


def _shapes(model: nn.Module, x: torch.Tensor) -> list[tuple[nn.Module, tuple[int, ...], tuple[int, ...]]]:
    """(module, input hw, output hw) of every geometric layer, in the order forward_features runs them."""
    seen: list[tuple[nn.Module, tuple[int, ...], tuple[int, ...]]] = []
    hooks = [m.register_forward_hook(lambda m, i, o: seen.append((m, tuple(i[0].shape[-2:]),
                                                                   tuple(o.shape[-2:]))))
             for m in model.modules() if isinstance(m, _GEOMETRY)]
    try:
        with torch.inference_mode():
            model.forward_features(x)
    finally:
        for h in hooks:
            h.remove()
    return seen


class DenseModel(nn.Module):
    """The dense copy behind the usual API: ``forward_features`` gives the dense map, ``forward_head`` and
    ``forward`` the original logits (from the even cells), ``head`` the original linear head."""

    def __init__(self, dense: nn.Module) -> None:
        super().__init__()
        self.model = dense
        self.head = getattr(dense, "head", None)

    @property
    def cam_layer(self) -> nn.Module:
        return self.model.cam_layer

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.forward_features(x)

    def forward_head(self, feats: torch.Tensor) -> torch.Tensor:
        return self.model.forward_head(feats[:, :, ::2, ::2])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def densify(model: nn.Module, channels: int, size: tuple[int, int], tol: float = 1e-4) -> DenseModel | None:
    """A copy of ``model`` whose feature map is twice as dense (see the module docstring), or None when the
    network has no stride-2 layer to undo or the copy's even cells do not reproduce the original's logits
    within ``tol`` (relative to their largest) on a random input of ``size``."""
    if not (hasattr(model, "forward_features") and hasattr(model, "forward_head")):
        return None
    p = next(model.parameters())
    x = torch.randn(2, channels, *size, generator=torch.Generator().manual_seed(0)).to(p.device, p.dtype)
    seen = _shapes(model, x)
    end = tuple(model.forward_features(x[:1]).shape[-2:]) if seen else ()
    last = [m for m, i, o in seen if o == end and i != end]  # the layers that step down to the last grid
    if not seen or not last or any(_pair(m.stride) != (2, 2) for m in last):
        return None
    dense = copy.deepcopy(model).eval()
    mods = dict(model.named_modules())
    names = {id(m): n for n, m in mods.items()}
    dmods = dict(dense.named_modules())
    for m, i, o in seen:
        d = dmods[names[id(m)]]
        if m in last:
            d.stride = (1, 1) if isinstance(d, nn.Conv2d) else 1
        elif i == end and o == end and isinstance(d, nn.Conv2d) and max(_pair(d.kernel_size)) > 1:
            if isinstance(d.padding, str):
                return None
            d.dilation = tuple(2 * v for v in _pair(d.dilation))
            d.padding = tuple(2 * v for v in _pair(d.padding))
    out = DenseModel(dense).eval()
    with torch.inference_mode():
        ref, feats = model(x), out.forward_features(x)
        logits = out.forward_head(feats)
    off = (logits - ref).abs().max() > tol * (1 + ref.abs().max())
    if feats.shape[-2:] != tuple(2 * v for v in end) or off:
        return None
    return out
