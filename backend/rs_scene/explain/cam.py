"""Class activation maps for a batch of tiles.

Fast path (Selvaraju et al. 2017, Grad-CAM, Eq. 1-2) for a network whose head is global average pooling
followed by one linear layer: the score of class c is ``y_c = sum_k W[c,k] * mean_ij A_k(i,j) + b_c``, so
``dy_c / dA_k(i,j) = W[c,k] / (h*w)`` for every position and the Grad-CAM weight ``alpha_k`` (the spatial
mean of that gradient) is ``W[c,k] / (h*w)``. The map ``ReLU(sum_k alpha_k A_k)`` therefore comes out of the
same forward pass as the logits, with no backward pass. Post-processing follows pytorch-grad-cam exactly
(per-map min-max scaling, bilinear resize to the input, ReLU, min-max again), so both agree within float
error.
Every other CAM method runs through pytorch-grad-cam.

Placing a map on the raster (:func:`cam_alignment`, :func:`resample_maps`): a plain resize of the feature
grid draws cell ``j`` centred at ``(j + 0.5) * S`` input pixels (``S`` = input / grid size), but the cell's
receptive field is centred where the network's convolutions put it, half a cell up-left of that in the usual
networks. Maps are shifted back there before they are mosaicked.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from pytorch_grad_cam import (
    EigenCAM,
    GradCAM,
    GradCAMPlusPlus,
    HiResCAM,
    LayerCAM,
    ScoreCAM,
    XGradCAM,
)
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from torch import nn
from torch.nn import functional as F

from ..errors import RSSceneError
from .dense import densify

CAM_METHODS: dict[str, Any] = {
    "gradcam": GradCAM, "gradcam++": GradCAMPlusPlus, "xgradcam": XGradCAM, "hirescam": HiResCAM,
    "layercam": LayerCAM, "eigencam": EigenCAM, "scorecam": ScoreCAM,
}


def _minmax(cam: torch.Tensor) -> torch.Tensor:
    flat = cam.flatten(1)
    lo = flat.min(1).values.view(-1, 1, 1)
    cam = cam - lo
    hi = cam.flatten(1).max(1).values.view(-1, 1, 1)
    return cam / (1e-7 + hi)


def gradcam_from_features(feats: torch.Tensor, head_weight: torch.Tensor, classes: torch.Tensor,
                          size: tuple[int, int]) -> torch.Tensor:
    """Closed-form Grad-CAM maps ``(B, H, W)`` in [0, 1] from the last feature map and the linear head."""
    feats = feats.float()
    h, w = feats.shape[-2:]
    alpha = head_weight.float()[classes] / (h * w)  # (B, C)
    cam = torch.relu(torch.einsum("bc,bchw->bhw", alpha, feats))
    cam = _minmax(cam)
    cam = F.interpolate(cam[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]
    return _minmax(torch.relu(cam))


_GEOMETRY = (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)


def _pair(v: Any) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


def _padding(m: nn.Module, k: int, d: int, axis: int) -> float:
    pad = m.padding
    if isinstance(pad, str):  # Conv2d's 'valid' / 'same' (stride 1)
        return 0.0 if pad == "valid" else d * (k - 1) / 2
    return float(_pair(pad)[axis])


Alignment = tuple[tuple[float, float], tuple[float, float]]  # per axis (y, x): gain, offset
NO_ALIGNMENT: Alignment = ((1.0, 0.0), (1.0, 0.0))


def cam_alignment(model: nn.Module, layer: nn.Module, channels: int,
                  size: tuple[int, int]) -> Alignment:
    """Where to read a CAM map, resized plainly from ``layer``'s grid to the input's ``size``, so that each
    cell lands on the centre of its receptive field: per axis (gain, offset), the map's value for input
    position u is the resized map's at ``gain * u + offset`` (continuous pixel coordinates). Found by
    following one forward pass through the convolutions and poolings that lead to ``layer``.

    A layer of kernel k, stride s, padding p and dilation d centres its output j on input s*j - p + d*(k-1)/2;
    with 'same' padding (p = d*(k-1)/2) that is s*j. Five stride-2 layers thus centre cell j on input pixel
    32*j (its centre at 32*j + 0.5), which a resize draws at 32*j + 16: (1, 15.5), the map moved 15.5 px back
    up-left. Layers are followed along the resolutions the input goes through; one whose input is not the
    current resolution is a parallel branch (ResNet's 1x1 shortcut runs after the block's first convolution)
    and is skipped. :data:`NO_ALIGNMENT` where that chain does not explain the map's size."""
    events: list[tuple[nn.Module | None, tuple[int, ...], tuple[int, ...]]] = []

    def geometric(m: nn.Module, inp: Any, out: Any) -> None:
        events.append((m, tuple(inp[0].shape[-2:]), tuple(out.shape[-2:])))

    def reached(m: nn.Module, inp: Any, out: Any) -> None:
        o = out[0] if isinstance(out, (tuple, list)) else out
        events.append((None, (), tuple(o.shape[-2:])))

    hooks = [m.register_forward_hook(geometric) for m in model.modules() if isinstance(m, _GEOMETRY)]
    hooks.append(layer.register_forward_hook(reached))
    try:
        p = next(model.parameters())
        with torch.inference_mode():
            run = getattr(model, "forward_features", model)  # the CAM layer lies on the way to the features
            run(torch.zeros(1, channels, *size, device=p.device, dtype=p.dtype))
    finally:
        for h in hooks:
            h.remove()
    end = next((o for m, _, o in events if m is None), None)
    if end is None:
        return NO_ALIGNMENT
    out = []
    for axis in (0, 1):
        cur, a, b = size[axis], 1.0, 0.0  # input index = a * j + b for cell j of the current resolution
        for m, i, o in events:
            if m is None:
                break
            if i[axis] != cur:
                continue
            k, st = _pair(m.kernel_size)[axis], _pair(m.stride)[axis]
            d = _pair(getattr(m, "dilation", 1))[axis]
            b += a * (d * (k - 1) / 2 - _padding(m, k, d, axis))
            a *= st
            cur = o[axis]
        if cur != end[axis]:
            return NO_ALIGNMENT
        # the resize shows cell j at u / scale - 0.5 = j; its receptive field is centred at u = a*j + b + 0.5
        scale = size[axis] / end[axis]
        out.append((scale / a, scale * (0.5 - (b + 0.5) / a)))
    return out[0], out[1]


def resample_maps(maps: np.ndarray, out_hw: tuple[int, int], align: Alignment = NO_ALIGNMENT) -> np.ndarray:
    """Maps ``(N, H, W)`` at the network input's pixels, resampled bilinearly to ``out_hw`` (a tile's raster
    pixels), read where :func:`cam_alignment`'s ``align`` says; the edge value continues beyond the edge."""
    n, h, w = maps.shape
    if (h, w) == tuple(out_hw) and align == NO_ALIGNMENT:
        return maps
    m = torch.from_numpy(np.ascontiguousarray(maps, dtype=np.float32))[:, None]
    axes = []
    for length, new, (gain, offset) in zip((h, w), out_hw, align, strict=True):
        u = (torch.arange(new, dtype=torch.float64) + 0.5) * (length / new)  # in input pixels
        axes.append(((gain * u + offset) * (2 / length) - 1).float())
    gy, gx = torch.meshgrid(*axes, indexing="ij")
    grid = torch.stack([gx, gy], -1)[None].expand(n, *out_hw, 2)
    return F.grid_sample(m, grid, mode="bilinear", padding_mode="border", align_corners=False)[:, 0].numpy()


def supports_fast_gradcam(model: nn.Module) -> bool:
    return (hasattr(model, "forward_features") and hasattr(model, "forward_head")
            and isinstance(getattr(model, "head", None), nn.Linear))


# context: the dense grid drawn over blocks of neighbouring tiles (engine/context.py); fused: that, with a
# mid-level layer's LayerCAM fused in (explain/layer_fusion.py); fine: the dense (stride-16) grid of
# explain/dense.py on each tile alone; coarse: the last layer's own grid
DETAILS = ("context", "fused", "fine", "coarse")
CONTEXT_DETAILS = ("context", "fused")  # drawn by the context pass over blocks of tiles
NORMS = ("run", "tile")  # run: one scale for the whole run (class evidence); tile: each map min-max alone
Target = int | Sequence[int] | None  # one class for all, one per tile, or each tile's prediction


def evidence_from_features(feats: torch.Tensor, head_weight: torch.Tensor, classes: torch.Tensor,
                           size: tuple[int, int]) -> torch.Tensor:
    """Each cell's contribution to the class logit, ``ReLU(sum_k W[c,k] A_k(i,j))`` (logit units: the logit
    less the bias is their mean over the cells), resized bilinearly to ``size``: comparable across tiles."""
    cam = torch.relu(torch.einsum("bc,bchw->bhw", head_weight.float()[classes], feats.float()))
    return F.interpolate(cam[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]


class CamRunner:
    """``run(x, target) -> (logits, maps)``; ``target`` None = each tile's predicted class (or top score).

    Maps are at the network input's pixels. ``norm`` 'tile': each in [0, 1] on its own (pytorch-grad-cam's
    scaling); 'run': on one scale for all tiles, so weak evidence stays dim: closed-form Grad-CAM gives each
    cell's logit evidence (:func:`evidence_from_features`), other methods their [0, 1] map times the tile's
    score for the class. ``detail`` 'fine' runs closed-form Grad-CAM on the twice-denser grid of
    :func:`~rs_scene.explain.dense.densify` where the network allows it (``self.detail`` says what ran)."""

    def __init__(self, model: nn.Module, method: str = "gradcam",
                 input_shape: tuple[int, int, int] | None = None, detail: str = "coarse",
                 norm: str = "tile") -> None:
        """``input_shape`` (bands, height, width) of the batches to come: their maps' alignment is measured
        here, before any batch runs (it hooks the model for one forward pass)."""
        if method not in CAM_METHODS:
            raise RSSceneError(f"unknown CAM method '{method}'; choose one of {', '.join(CAM_METHODS)}")
        for name, value, allowed in (("detail", detail, DETAILS), ("norm", norm, NORMS)):
            if value not in allowed:
                raise RSSceneError(f"unknown heatmap {name} '{value}'; choose one of {', '.join(allowed)}")
        self.model, self.method, self.norm = model, method, norm
        self.fast = method == "gradcam" and supports_fast_gradcam(model)
        self.net, self.detail = model, "coarse"  # the network the maps come from
        self.fuse_layer: nn.Module | None = None  # detail 'fused': the dense network's LayerCAM layer
        if detail in ("context", "fused", "fine") and self.fast and input_shape is not None:
            dense = densify(model, input_shape[0], input_shape[1:])
            if dense is not None:
                self.net, self.detail = dense, detail
                if detail == "fused":
                    self._fusion(model, dense, input_shape)
        self._align: dict[tuple[int, int], Alignment] = {}
        layer = getattr(self.net, "cam_layer", None)
        if input_shape is not None and layer is not None:
            c, h, w = input_shape
            self._align[(h, w)] = cam_alignment(self.net, layer, c, (h, w))
        self.cam = None
        if not self.fast:
            if layer is None:
                raise RSSceneError(f"model {type(model).__name__} names no layer for {method}")
            self.cam = CAM_METHODS[method](model=model, target_layers=[layer])

    def _fusion(self, model: nn.Module, dense: nn.Module, input_shape: tuple[int, int, int]) -> None:
        """The layer whose LayerCAM ``fused`` maps add; plain context maps where the backbone has none."""
        from .layer_fusion import fusion_layer_name

        name = fusion_layer_name(model, input_shape[0], input_shape[1:])
        if name is None:
            self.detail = "context"
            return
        self.fuse_layer = dict(dense.model.named_modules())[name]
        self.fuse_layer_name = name

    def run(self, x: torch.Tensor, target: Target = None) -> tuple[torch.Tensor, np.ndarray]:
        size = (x.shape[-2], x.shape[-1])
        if self.fast:
            with torch.inference_mode():
                feats = self.net.forward_features(x)
                logits = self.net.forward_head(feats)
            return logits, self.maps_from_features(feats, logits, target, size)
        with torch.inference_mode():
            logits = self.model(x)
        classes = _classes(logits, target)
        maps = np.asarray(self.cam(input_tensor=x, targets=[ClassifierOutputTarget(int(c)) for c in classes]),
                          dtype=np.float32)
        if self.norm == "run":
            maps *= logits.float().softmax(1).gather(1, classes[:, None]).cpu().numpy()[:, :, None]
        return logits, maps

    def maps_from_features(self, feats: torch.Tensor, logits: torch.Tensor, target: Target,
                           size: tuple[int, int]) -> np.ndarray:
        """Fast-path maps from a forward pass that ran elsewhere (another runtime, e.g. ONNX Runtime) on
        :attr:`net`: its features and logits."""
        if not self.fast:
            raise RSSceneError(f"CAM method {self.method} needs the PyTorch model, not precomputed features")
        with torch.inference_mode():
            classes = _classes(logits, target).to(feats.device)
            weight = self.model.head.weight.to(feats.device)
            fn = evidence_from_features if self.norm == "run" else gradcam_from_features
            return fn(feats, weight, classes, size).cpu().numpy()

    def alignment(self, size: tuple[int, int]) -> Alignment:
        """:func:`cam_alignment` of the CAM layer for inputs of ``size``, as measured at construction;
        :data:`NO_ALIGNMENT` (maps drawn as resized) for a size it was not given."""
        return self._align.get((size[0], size[1]), NO_ALIGNMENT)

    def close(self) -> None:
        if self.cam is not None:
            self.cam.activations_and_grads.release()


def _classes(logits: torch.Tensor, target: Target) -> torch.Tensor:
    if target is None:
        return logits.argmax(1)
    if isinstance(target, int):
        return torch.full((len(logits),), target, dtype=torch.long, device=logits.device)
    return torch.as_tensor(list(target), dtype=torch.long, device=logits.device)
