"""Context heatmaps with a mid-level layer's evidence fused in (``--heatmap-detail fused``).

The context map (:mod:`rs_scene.engine.context`) is each cell's contribution to the class logit at the last
feature map, ``ReLU(sum_k W[c,k] A_k)``: a patch of another class that the last layer does not see as that
class (a 24-px field in a 64-px Sentinel-2 tile among its neighbours) gets no heat at all. LayerCAM
(Jiang et al. 2021, IEEE TIP 30) weighs each activation of an earlier layer by its own positive gradient,
``ReLU(sum_k ReLU(dy_c / dA^l_k(i,j)) A^l_k(i,j))``, so it keeps where the network's mid-level features
push the class up. Here the layer is the output of the last block before the network's last stride-2
layer (EfficientNet-Lite0's ``_blocks[10]``, 112 channels; a ResNet's ``layer3``): on the dense network it is
on the same grid as the dense last map (8 x 8 cells per 128-px input), each cell placed on the centre of its
receptive field by :func:`~rs_scene.explain.cam.cam_alignment` for that layer. ``y_c`` is the block's logit
for class c as the dense network gives it. The two maps are fused as their mean once the LayerCAM map is on
the last layer's scale over the block window, ``(E_c + max(E_c) / max(L_c) * L_c) / 2``: logit units, and a
block with no class evidence anywhere stays dark.

Cost: a PyTorch forward and one backward pass per class present in the block, over the block and its
margin (ONNX Runtime cannot give gradients).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .cam import Alignment, resample_maps


def _stages(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The backbone's blocks in forward order, named: EfficientNet-Lite's ``_blocks``, ResNet's layers."""
    for name, m in model.named_modules():
        if name.endswith("_blocks") and isinstance(m, nn.ModuleList):
            return [(f"{name}.{i}", b) for i, b in enumerate(m)]
    return [(n, m) for n, m in model.named_modules() if n.split(".")[-1] in ("layer1", "layer2", "layer3",
                                                                              "layer4")]


def fusion_layer_name(model: nn.Module, channels: int, size: tuple[int, int]) -> str | None:
    """The name of the last block whose output is twice the last feature map's resolution (the input of
    the last downsampling block) in ``model`` (not densified), or None where the backbone has no such
    block list."""
    blocks = _stages(model)
    if not blocks:
        return None
    seen: dict[str, tuple[int, ...]] = {}
    hooks = [b.register_forward_hook(lambda m, i, o, n=n: seen.__setitem__(n, tuple(o.shape[-2:])))
             for n, b in blocks]
    p = next(model.parameters())
    try:
        with torch.inference_mode():
            end = tuple(model.forward_features(torch.zeros(1, channels, *size, dtype=p.dtype,
                                                            device=p.device)).shape[-2:])
    finally:
        for h in hooks:
            h.remove()
    twice = tuple(2 * v for v in end)
    names = [n for n, _ in blocks if seen.get(n) == twice]
    return names[-1] if names else None


def layercam_maps(net: nn.Module, layer: nn.Module, x: torch.Tensor, classes: list[int]) -> torch.Tensor:
    """LayerCAM at ``layer`` for the logits of ``classes`` that ``net`` gives the single input ``x``
    (1, C, H, W): ``(len(classes), h, w)`` at the layer's grid, not normalised. Only the layers after
    ``layer`` keep a graph (the gradient needs no more): the network's parameters are frozen for the pass
    and the layer's output is a new leaf, so a 2000-px block fits in about 1.5 GB."""
    acts: list[torch.Tensor] = []

    def leaf(m: nn.Module, i: object, o: torch.Tensor) -> torch.Tensor:
        acts.append(o.detach().requires_grad_(True))
        return acts[-1]

    params = [q for q in net.parameters() if q.requires_grad]
    hook = layer.register_forward_hook(leaf)
    try:
        for q in params:
            q.requires_grad_(False)
        with torch.enable_grad():
            logits = net(x.detach())
    finally:
        hook.remove()
        for q in params:
            q.requires_grad_(True)
    a = acts[0]
    out = []
    for k, c in enumerate(classes):
        (g,) = torch.autograd.grad(logits[0, c], a, retain_graph=k < len(classes) - 1)
        out.append(torch.relu((torch.relu(g) * a).sum(1))[0].detach())
    return torch.stack(out).float()


def fuse(evidence: np.ndarray, layer: np.ndarray) -> np.ndarray:
    """``(E + max(E) / max(L) * L) / 2`` per map (N, h, w): the LayerCAM map on the evidence's scale."""
    e_max = evidence.max((1, 2), keepdims=True)
    l_max = np.maximum(layer.max((1, 2), keepdims=True), 1e-12)
    return ((evidence + e_max / l_max * layer) / 2).astype(np.float32)


def fused_block_maps(net: nn.Module, layer: nn.Module, x: torch.Tensor, classes: list[int],
                     evidence: np.ndarray, out_hw: tuple[int, int], align: Alignment) -> np.ndarray:
    """The fused maps of ``classes`` at ``out_hw`` (a block window's raster pixels): ``evidence`` is the
    last layer's, already there; the LayerCAM maps are resized to the input and placed by ``align`` (the
    layer's :func:`cam_alignment` at ``x``'s size)."""
    lm = layercam_maps(net, layer, x, classes)
    lm = F.interpolate(lm[:, None], size=tuple(x.shape[-2:]), mode="bilinear", align_corners=False)[:, 0]
    return fuse(evidence, resample_maps(lm.cpu().numpy(), out_hw, align))
