"""Band-wise multi-scale CNN (Kang & Demir, "Band-wise multi-scale CNN architecture for remote sensing image
scene classification", IGARSS 2020).

Each band gets its own depthwise convolutions with kernels 1, 3, 5 and 7 (band-wise multi-scale spatial
features); the 10 m bands run with stride 2 and the 20 m bands (first average-pooled from the 10 m grid the
tile arrives on back to their native 20 m grid) with stride 1, so both reach the 20 m grid. A 1x1 convolution
with BN and LeakyReLU(0.1) fuses the spectra pixel-wise; a ResNet body (layers 1-4) follows, its ReLUs
replaced by LeakyReLU(0.1) ("Leaky ReLU is exploited inside the proposed architecture").
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torchvision
from torch import nn
from torch.nn import functional as F

from ..bands import S2_RESOLUTION, canonical_band
from .registry import register_backbone

KERNELS = (1, 3, 5, 7)
LITE_BODIES = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")


def coarse_band_mask(bands: Sequence[str] | None, in_chans: int) -> list[bool]:
    """True for bands whose native resolution is coarser than 10 m (Sentinel-2 20 m and 60 m bands)."""
    if bands is None or len(bands) != in_chans:
        return [False] * in_chans
    return [S2_RESOLUTION.get(canonical_band(b), 10) > 10 for b in bands]


class BandWiseMultiScale(nn.Module):
    """(B, C, H, W) on the 10 m grid -> (B, C * len(KERNELS) * multiplier, H/2, W/2)."""

    def __init__(self, coarse: list[bool], multiplier: int = 4) -> None:
        super().__init__()
        self.register_buffer(
            "fine_idx", torch.tensor([i for i, c in enumerate(coarse) if not c], dtype=torch.long)
        )
        self.register_buffer(
            "coarse_idx", torch.tensor([i for i, c in enumerate(coarse) if c], dtype=torch.long)
        )
        nf, nc = len(self.fine_idx), len(self.coarse_idx)
        self.fine = (
            nn.ModuleList(
                nn.Conv2d(nf, nf * multiplier, k, 2, k // 2, groups=nf, bias=False) for k in KERNELS
            )
            if nf
            else None
        )
        self.coarse = (
            nn.ModuleList(
                nn.Conv2d(nc, nc * multiplier, k, 1, k // 2, groups=nc, bias=False) for k in KERNELS
            )
            if nc
            else None
        )
        self.out_channels = len(coarse) * len(KERNELS) * multiplier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = []
        if self.fine is not None:
            xf = x[:, self.fine_idx]
            outs += [conv(xf) for conv in self.fine]
        if self.coarse is not None:
            xc = F.avg_pool2d(x[:, self.coarse_idx], 2, ceil_mode=True)  # back to the native 20 m grid
            outs += [conv(xc) for conv in self.coarse]
        size = outs[0].shape[-2:]
        outs = [o if o.shape[-2:] == size else F.interpolate(o, size=size, mode="nearest") for o in outs]
        return torch.cat(outs, 1)


def leaky_relus(module: nn.Module, slope: float = 0.1) -> None:
    """Replace every ReLU under ``module`` (torchvision's residual blocks hold one each) by LeakyReLU."""
    for name, child in module.named_children():
        if isinstance(child, nn.ReLU):
            setattr(module, name, nn.LeakyReLU(slope, inplace=True))
        else:
            leaky_relus(child, slope)


class BWMSBackbone(nn.Module):
    def __init__(self, arch: str, in_chans: int, bands: Sequence[str] | None, multiplier: int = 4,
                 leaky: bool = True) -> None:
        super().__init__()
        net = getattr(torchvision.models, arch)(weights=None)
        self.bandwise = BandWiseMultiScale(coarse_band_mask(bands, in_chans), multiplier)
        self.fusion = nn.Sequential(
            nn.Conv2d(self.bandwise.out_channels, 64, 1, bias=False),
            nn.BatchNorm2d(64),
            nn.LeakyReLU(0.1, inplace=True),
        )
        self.layer1, self.layer2, self.layer3, self.layer4 = net.layer1, net.layer2, net.layer3, net.layer4
        if leaky:
            leaky_relus(self)
        self.num_features = net.fc.in_features

    @property
    def cam_layer(self) -> nn.Module:
        return self.layer4

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.fusion(self.bandwise(x))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


class BWMSEfficientNet(nn.Module):
    """Band-wise layer + 1x1 fusion (BN, LeakyReLU 0.1) to the width (32) and stride (2) of an
    EfficientNet-Lite stem, then that network's blocks and head conv, from ImageNet when ``pretrained``
    (their ReLU6 kept: the pretrained features were learnt with it). ``stem_init`` starts the band-wise layer
    and fusion as the ImageNet stem itself (:func:`init_as_stem`)."""

    def __init__(self, arch: str, in_chans: int, bands: Sequence[str] | None, multiplier: int = 4,
                 pretrained: bool = False, stem_init: bool = True) -> None:
        super().__init__()
        from .registry import create_backbone

        net = create_backbone(arch, in_chans=in_chans, pretrained=pretrained, bands=bands)
        width = net._conv_stem.out_channels
        self.bandwise = BandWiseMultiScale(coarse_band_mask(bands, in_chans), multiplier)
        self.fusion = nn.Sequential(
            nn.Conv2d(self.bandwise.out_channels, width, 1, bias=False),
            nn.BatchNorm2d(width, eps=net._bn0.eps, momentum=net._bn0.momentum),
            nn.LeakyReLU(0.1, inplace=True),
        )
        if pretrained and stem_init:
            init_as_stem(self.bandwise, self.fusion, net._conv_stem, net._bn0)
        self._blocks, self._conv_head, self._bn1 = net._blocks, net._conv_head, net._bn1
        self.head_act = net.head_act
        self.num_features = net.num_features

    @property
    def cam_layer(self) -> nn.Module:
        return self.head_act

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.fusion(self.bandwise(x))
        for block in self._blocks:
            x = block(x)
        return self.head_act(self._bn1(self._conv_head(x)))


@torch.no_grad()
def init_as_stem(bandwise: BandWiseMultiScale, fusion: nn.Sequential, stem: nn.Conv2d,
                 bn: nn.BatchNorm2d) -> None:
    """Band-wise convs + 1x1 fusion that compute the (band-adapted) 3x3 ImageNet stem conv: per band, its
    (width, 9) filter matrix factorised by SVD, the 9 basis kernels put in the centre of the 3x3, 5x5 and 7x7
    depthwise kernels (4 + 4 + 1 of 12 slots at multiplier 4; fewer slots keep the leading components) and
    the coefficients in the fusion weights, every other fusion weight 0; the stem's BatchNorm copied. On the
    10 m bands this is the stem exactly (stride 2, the same centres); 20 m bands see it on their 20 m grid."""
    weight = fusion[0].weight
    weight.zero_()
    groups = [(bandwise.fine, bandwise.fine_idx), (bandwise.coarse, bandwise.coarse_idx)]
    offset = 0
    for convs, idx in groups:
        if convs is None:
            continue
        n, mult = len(idx), convs[0].out_channels // len(idx)
        slots = [(ki, m) for ki, k in enumerate(KERNELS) if k >= 3 for m in range(mult)]
        for pos, band in enumerate(idx.tolist()):
            filters = stem.weight[:, band].reshape(stem.out_channels, 9)
            u, s, vh = torch.linalg.svd(filters, full_matrices=False)
            for j, (ki, m) in enumerate(slots[: len(s)]):
                k, ch = KERNELS[ki], pos * mult + m
                kernel = convs[ki].weight[ch, 0]
                kernel.zero_()
                c = k // 2
                kernel[c - 1 : c + 2, c - 1 : c + 2] = vh[j].reshape(3, 3)
                weight[:, offset + ki * n * mult + ch, 0, 0] = u[:, j] * s[j]
        offset += len(KERNELS) * n * mult
    fusion[1].load_state_dict(bn.state_dict())


class BWMSClassifier(nn.Module):
    """Backbone, global average pooling, dropout, FC ``hidden`` (LeakyReLU 0.1), FC classes."""

    def __init__(
        self, backbone: nn.Module, num_classes: int, dropout: float = 0.5, hidden: int = 128
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.num_features: int = backbone.num_features
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Sequential(nn.Linear(self.num_features, hidden), nn.LeakyReLU(0.1, inplace=True))
        self.classifier = nn.Linear(hidden, num_classes)

    @property
    def cam_layer(self) -> nn.Module:
        return self.backbone.cam_layer

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone.forward_features(x)

    def forward_head(self, feats: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        hidden = self.fc(self.dropout(feats.mean(dim=(2, 3))))
        return hidden if pre_logits else self.classifier(hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def _make(arch: str) -> None:
    @register_backbone(f"bwms_{arch}")
    def factory(
        in_chans: int = 3, pretrained: bool = False, bands: Sequence[str] | None = None, multiplier: int = 4
    ) -> nn.Module:
        if pretrained:
            from ..errors import RSSceneError

            raise RSSceneError(
                f"bwms_{arch} has no pretrained weights (its first layer is band-wise); use --init scratch"
            )
        return BWMSBackbone(arch, in_chans, bands, multiplier)


for _arch in ("resnet18", "resnet34", "resnet50"):
    _make(_arch)


def _make_lite(arch: str) -> None:
    @register_backbone(f"bwms_{arch}")
    def factory(
        in_chans: int = 3, pretrained: bool = False, bands: Sequence[str] | None = None, multiplier: int = 4
    ) -> nn.Module:
        return BWMSEfficientNet(arch, in_chans, bands, multiplier, pretrained)


for _arch in LITE_BODIES:
    _make_lite(_arch)
