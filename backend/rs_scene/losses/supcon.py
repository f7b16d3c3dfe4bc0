"""Supervised contrastive loss (Khosla et al. 2020, L_out), as written in the two-stage contrastive framework
for imbalanced aerial scenes (Xu et al., ICASSP 2022, Eq. 1)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class SupConLoss(nn.Module):
    """For each anchor ``i`` of the 2N views::

        L(z_i) = -1/|S(i)| * sum_{s in S(i)} log( exp(z_i . z_s / tau) / sum_{k != i} exp(z_i . z_k / tau) )

    with ``S(i)`` the other views carrying ``i``'s label; the loss is the mean over anchors that have at least
    one positive. ``z`` is L2-normalised here (the paper normalises the projection output).

    Shapes: ``z`` (M, D) float embeddings (both views stacked), ``labels`` (M,) long.
    """

    def __init__(self, temperature: float = 0.1) -> None:
        super().__init__()
        if not temperature > 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        self.temperature = temperature

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if z.ndim != 2 or labels.shape != (z.shape[0],):
            raise ValueError(
                f"z must be (M, D) and labels (M,); got {tuple(z.shape)} and {tuple(labels.shape)}"
            )
        if z.shape[0] < 2:
            raise ValueError("SupCon needs at least two views in a batch")
        z = F.normalize(z.float(), dim=1)
        sim = z @ z.T / self.temperature
        self_mask = torch.eye(len(z), dtype=torch.bool, device=z.device)
        sim = sim.masked_fill(self_mask, float("-inf"))
        log_prob = sim - torch.logsumexp(sim, dim=1, keepdim=True)
        pos = (labels[:, None] == labels[None, :]) & ~self_mask
        n_pos = pos.sum(1)
        has_pos = n_pos > 0
        if not has_pos.any():
            raise ValueError("no anchor has a positive: each batch needs two views of some image or class")
        mean_log_prob = log_prob.masked_fill(~pos, 0.0).sum(1)[has_pos] / n_pos[has_pos]
        return -mean_log_prob.mean()
