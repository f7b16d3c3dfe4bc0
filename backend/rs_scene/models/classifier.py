"""Backbone + global average pooling + linear head: the scene classifier most methods train."""

from __future__ import annotations

import torch
from torch import nn


class SceneClassifier(nn.Module):
    """``forward(x) = head(dropout(mean_hw(backbone.forward_features(x))))``.

    The pooling is a plain spatial mean and the head a single linear layer, which is what lets
    :mod:`rs_scene.explain.cam` compute Grad-CAM in closed form.
    """

    def __init__(self, backbone: nn.Module, num_classes: int, dropout: float = 0.2) -> None:
        super().__init__()
        self.backbone = backbone
        self.num_features: int = backbone.num_features
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(self.num_features, num_classes)

    @property
    def cam_layer(self) -> nn.Module:
        return self.backbone.cam_layer

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone.forward_features(x)

    def forward_head(self, feats: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        pooled = feats.mean(dim=(2, 3))
        return pooled if pre_logits else self.head(self.dropout(pooled))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))
