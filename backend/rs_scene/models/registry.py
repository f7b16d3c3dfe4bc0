"""Backbone registry: ``@register_backbone`` plus ``create_backbone(name, ...)`` and ``list_backbones()``.

Every backbone exposes one API: ``forward_features(x) -> (B, C, h, w)`` feature map, ``num_features`` (C) and
``cam_layer`` (the module whose output is that map, for Grad-CAM).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from torch import nn

from ..errors import RSSceneError

_BACKBONES: dict[str, Callable[..., nn.Module]] = {}


def register_backbone(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    def deco(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        _BACKBONES[name] = fn
        return fn

    return deco


def list_backbones() -> list[str]:
    return sorted(_BACKBONES)


def create_backbone(
    name: str, in_chans: int = 3, pretrained: bool = False, bands: Sequence[str] | None = None
) -> nn.Module:
    """Build backbone ``name`` with ``in_chans`` inputs, from ImageNet weights when ``pretrained``.

    ``bands`` (model band names) lets the first convolution put the RGB filters on the red, green and blue
    bands when ``in_chans != 3``.
    """
    if name not in _BACKBONES:
        raise RSSceneError(f"unknown backbone '{name}'; known: {', '.join(list_backbones())}")
    return _BACKBONES[name](in_chans=in_chans, pretrained=pretrained, bands=bands)
