"""Adapting a first convolution trained on RGB to any number of input bands."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..bands import AERIAL_TO_S2, canonical_band

_RGB = ("red", "green", "blue")


def adapt_rgb_conv_weight(
    weight: torch.Tensor, in_chans: int, bands: Sequence[str] | None = None
) -> torch.Tensor:
    """Map an RGB kernel ``(out, 3, k, k)`` to ``(out, in_chans, k, k)``.

    Bands recognised as red/green/blue (or Sentinel-2 B04/B03/B02) keep their ImageNet filter; every other
    band gets the mean RGB filter. The result is scaled by ``3 / in_chans`` so the first layer's activations
    keep the magnitude the pretrained network expects.
    """
    if in_chans == 3 and weight.shape[1] == 3:
        return weight.clone()
    mean = weight.mean(dim=1, keepdim=True)
    new = mean.repeat(1, in_chans, 1, 1)
    if bands is not None and len(bands) == in_chans:
        canon = [canonical_band(b) for b in bands]
        for i, colour in enumerate(_RGB):
            for pos, b in enumerate(canon):
                if b in (colour, AERIAL_TO_S2[colour]):
                    new[:, pos] = weight[:, i]
    return new * (3.0 / in_chans)
