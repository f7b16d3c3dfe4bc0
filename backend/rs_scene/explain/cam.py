"""Class activation maps for a batch of tiles.

Fast path (Selvaraju et al. 2017, Grad-CAM, Eq. 1-2) for a network whose head is global average pooling
followed by one linear layer: the score of class c is ``y_c = sum_k W[c,k] * mean_ij A_k(i,j) + b_c``, so
``dy_c / dA_k(i,j) = W[c,k] / (h*w)`` for every position and the Grad-CAM weight ``alpha_k`` (the spatial
mean of that gradient) is ``W[c,k] / (h*w)``. The map ``ReLU(sum_k alpha_k A_k)`` therefore comes out of the
same forward pass as the logits, with no backward pass. Post-processing follows pytorch-grad-cam exactly
(per-map min-max scaling, bilinear resize to the input, ReLU, min-max again), so both agree within float
error.
Every other CAM method runs through pytorch-grad-cam.
"""

from __future__ import annotations

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


def supports_fast_gradcam(model: nn.Module) -> bool:
    return (hasattr(model, "forward_features") and hasattr(model, "forward_head")
            and isinstance(getattr(model, "head", None), nn.Linear))


class CamRunner:
    """``run(x, target) -> (logits, maps)``; ``target`` None = each tile's predicted class (or top score)."""

    def __init__(self, model: nn.Module, method: str = "gradcam") -> None:
        if method not in CAM_METHODS:
            raise RSSceneError(f"unknown CAM method '{method}'; choose one of {', '.join(CAM_METHODS)}")
        self.model, self.method = model, method
        self.fast = method == "gradcam" and supports_fast_gradcam(model)
        self.cam = None
        if not self.fast:
            layer = getattr(model, "cam_layer", None)
            if layer is None:
                raise RSSceneError(f"model {type(model).__name__} names no layer for {method}")
            self.cam = CAM_METHODS[method](model=model, target_layers=[layer])

    def run(self, x: torch.Tensor, target: int | None = None) -> tuple[torch.Tensor, np.ndarray]:
        size = (x.shape[-2], x.shape[-1])
        if self.fast:
            with torch.inference_mode():
                feats = self.model.forward_features(x)
                logits = self.model.forward_head(feats)
            return logits, self.maps_from_features(feats, logits, target, size)
        with torch.inference_mode():
            logits = self.model(x)
        classes = logits.argmax(1).tolist() if target is None else [target] * len(x)
        maps = self.cam(input_tensor=x, targets=[ClassifierOutputTarget(c) for c in classes])
        return logits, np.asarray(maps, dtype=np.float32)

    def maps_from_features(self, feats: torch.Tensor, logits: torch.Tensor, target: int | None,
                           size: tuple[int, int]) -> np.ndarray:
        """Fast-path maps from a forward pass that ran elsewhere (another runtime, e.g. ONNX Runtime)."""
        if not self.fast:
            raise RSSceneError(f"CAM method {self.method} needs the PyTorch model, not precomputed features")
        with torch.inference_mode():
            classes = logits.argmax(1) if target is None else torch.full_like(logits[:, 0], target).long()
            weight = self.model.head.weight.to(feats.device)
            return gradcam_from_features(feats, weight, classes.to(feats.device), size).cpu().numpy()

    def close(self) -> None:
        if self.cam is not None:
            self.cam.activations_and_grads.release()
