"""The spatial feature transformer (SFT) and the two-stream network of DDRL-AM (Li et al., "Deep
discriminative representation learning with attention map for scene classification", Remote Sensing 2020,
Sec. III-C)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import RSSceneError
from ..explain.cam import gradcam_from_features
from .classifier import SceneClassifier


class SFT(nn.Module):
    """Table I: conv 7x7/2 (pad 3) 64 + BN + maxpool 3x3/2 (pad 1), then conv 3x3/2 (pad 1) to 128, 256 and
    ``out_channels`` (512 for ResNet-18; the backbone's feature width in general), each followed by BN
    (momentum 0.1). As in Table I and the text ("4 convolutional layers and 4 batch normalization layers, and
    one max-pooling layer"), there is no activation: the max-pool is the stream's only non-linearity and the
    last BN's affine output (any sign) re-weights the image stream's features in the product of Eq. 3.
    Input (B, 1, H, W) attention maps in [0, 1]; output (B, out_channels, H/32, W/32)."""

    def __init__(self, out_channels: int = 512, in_channels: int = 1) -> None:
        super().__init__()
        widths = [64, 128, 256, out_channels]
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False),
            nn.BatchNorm2d(64, momentum=0.1),
            nn.MaxPool2d(3, 2, 1),
        ]
        for cin, cout in zip(widths[:-1], widths[1:], strict=True):
            layers += [
                nn.Conv2d(cin, cout, 3, 2, 1, bias=False),
                nn.BatchNorm2d(cout, momentum=0.1),
            ]
        self.layers = nn.Sequential(*layers)
        self.out_channels = out_channels
        self.start_as_identity()

    def start_as_identity(self) -> None:
        """The last BatchNorm starts with weight 0 and bias 1, so a fresh SFT outputs 1 everywhere: the
        product of Eq. 3 starts as the image stream itself and the map's weighting is learnt from there (the
        paper does not say how the SFT starts; a random start scrambles the fine-tuned stream's features by
        a random factor per channel and cell, which the short runs here never recovered from)."""
        last = self.layers[-1]
        nn.init.zeros_(last.weight)
        nn.init.ones_(last.bias)

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args: object) -> None:
        if f"{prefix}layers.10.weight" in state_dict:  # 12 layers: the SFT of RS Scene <= 0.x, with ReLUs
            raise RSSceneError(
                "this ddrl-am model was saved with the former SFT (a ReLU after each BatchNorm, which the "
                "paper's Table I does not have); it cannot run as the current SFT: train it again"
            )
        super()._load_from_state_dict(state_dict, prefix, *args)

    def forward(self, attention: torch.Tensor) -> torch.Tensor:
        return self.layers(attention)


class DDRLAMNet(nn.Module):
    """Stage-1 classifier (makes the attention map) + stage-2 two-stream network.

    ``forward(x)``: the stage-1 network's Grad-CAM map of its predicted class (closed form for a GAP + linear
    head, equal to pytorch-grad-cam's map), the image stream ``stream`` (a backbone initialised from stage 1)
    and the SFT on the map give two (B, C, h, w) feature maps; they are multiplied element-wise (Eq. 3),
    averaged over space and classified by ``head``. ``forward_features``/``forward_head``/``head`` keep the
    uniform classifier API, so Grad-CAM heatmaps of the fused map work in ``classify``.
    """

    def __init__(
        self, attention_net: SceneClassifier, stream: nn.Module, num_classes: int, dropout: float = 0.0
    ) -> None:
        super().__init__()
        self.attention_net = attention_net
        self.stream = stream
        self.num_features: int = stream.num_features
        self.sft = SFT(self.num_features)
        self.fuse = nn.Identity()  # its output is the fused map: the Grad-CAM layer
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(self.num_features, num_classes)
        # set once the stream has been initialised from the stage-1 backbone (saved, so resume keeps it)
        self.register_buffer("stream_ready", torch.zeros((), dtype=torch.bool))

    @property
    def cam_layer(self) -> nn.Module:
        return self.fuse

    @property
    def backbone(self) -> nn.Module:
        """The image stream: what in-domain pre-training (``--init model.pt``) reuses."""
        return self.stream

    @torch.no_grad()
    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, H, W) Grad-CAM maps in [0, 1] of the stage-1 network's predicted classes."""
        net = self.attention_net
        feats = net.forward_features(x)
        classes = net.forward_head(feats).argmax(1)
        return gradcam_from_features(feats, net.head.weight, classes, (x.shape[-2], x.shape[-1]))[:, None]

    def fused_features(self, x: torch.Tensor, attention: torch.Tensor) -> torch.Tensor:
        rgb = self.stream.forward_features(x)
        grey = self.sft(attention.to(rgb.dtype))
        if grey.shape[-2:] != rgb.shape[-2:]:  # odd input sizes round the two streams differently
            grey = F.interpolate(grey, size=rgb.shape[-2:], mode="bilinear", align_corners=False)
        return self.fuse(rgb * grey)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.fused_features(x, self.attention(x))

    def forward_head(self, feats: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        pooled = feats.mean(dim=(2, 3))
        return pooled if pre_logits else self.head(self.dropout(pooled))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))
