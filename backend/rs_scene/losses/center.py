"""Center loss (Wen et al., "A discriminative feature learning approach for deep face recognition",
ECCV 2016),
as used by DDRL-AM (Li et al. 2020, Eq. 5-6)."""

from __future__ import annotations

import torch
from torch import nn


class CenterLoss(nn.Module):
    """``L_c = 1/2 * (ref_dim / D) * mean_i ||x_i - c_{y_i}||^2`` over a mini-batch (DDRL-AM Eq. 5).

    DDRL-AM's Eq. 5 sums over the batch; like Wen et al.'s reference implementation we divide by the batch
    size so that lambda weighs the same whatever the batch size. The squared distance sums over the ``D``
    feature dimensions; with ``ref_dim`` set it is rescaled to ``ref_dim`` dimensions (DDRL-AM: 512, the
    width of its ResNet-18 / SFT feature), so that one lambda means the same for a 1280-d EfficientNet
    feature as for the paper's 512-d one (without it lambda would weigh 2.5x more there). ``ref_dim=None``:
    the plain sum.

    The centers are a buffer, not a parameter: the loss gives no gradient to them. They move with
    :meth:`update`, Wen et al.'s Eq. 4 (SGD on the centers with learning rate ``alpha``, each class's step
    averaged over its ``n_j`` samples in the batch plus one)::

        delta_c_j = sum_{i: y_i = j} (c_j - x_i) / (1 + n_j);   c_j <- c_j - alpha * delta_c_j

    Shapes: ``features`` (B, D) float, ``labels`` (B,) long in ``[0, num_classes)``.
    """

    def __init__(
        self, num_classes: int, feat_dim: int, alpha: float = 0.5, ref_dim: int | None = None
    ) -> None:
        super().__init__()
        if num_classes < 1 or feat_dim < 1:
            raise ValueError(f"num_classes ({num_classes}) and feat_dim ({feat_dim}) must be positive")
        if not 0.0 < alpha <= 1.0:
            raise ValueError(f"center learning rate alpha must be in (0, 1], got {alpha}")
        if ref_dim is not None and ref_dim < 1:
            raise ValueError(f"ref_dim must be positive, got {ref_dim}")
        self.num_classes, self.feat_dim, self.alpha = num_classes, feat_dim, alpha
        self.scale = 1.0 if ref_dim is None else ref_dim / feat_dim
        self.register_buffer("centers", torch.zeros(num_classes, feat_dim))
        self.register_buffer("ready", torch.zeros((), dtype=torch.bool))  # set by set_to_means

    def _check(self, features: torch.Tensor, labels: torch.Tensor) -> None:
        if features.ndim != 2 or features.shape[1] != self.feat_dim:
            raise ValueError(f"features must be (B, {self.feat_dim}), got {tuple(features.shape)}")
        if labels.shape != (features.shape[0],):
            raise ValueError(f"labels must be ({features.shape[0]},), got {tuple(labels.shape)}")
        if len(labels) and (labels.min() < 0 or labels.max() >= self.num_classes):
            raise ValueError(f"labels must lie in [0, {self.num_classes})")

    def forward(self, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        self._check(features, labels)
        diff = features.float() - self.centers[labels]
        return 0.5 * self.scale * diff.pow(2).sum(1).mean()

    @torch.no_grad()
    def set_to_means(self, features: torch.Tensor, labels: torch.Tensor) -> None:
        """Start each center at its class's mean feature (classes without samples keep theirs)."""
        self._check(features, labels)
        counts = torch.bincount(labels, minlength=self.num_classes).to(features)
        sums = torch.zeros_like(self.centers).index_add_(0, labels, features.float())
        seen = counts > 0
        self.centers[seen] = sums[seen] / counts[seen, None]
        self.ready.fill_(True)

    @torch.no_grad()
    def update(self, features: torch.Tensor, labels: torch.Tensor) -> None:
        """Move the centers of the classes present in the batch (Wen et al. Eq. 4)."""
        self._check(features, labels)
        feats = features.detach().float()
        counts = torch.bincount(labels, minlength=self.num_classes).to(feats)
        sums = torch.zeros_like(self.centers).index_add_(0, labels, feats)
        delta = (counts[:, None] * self.centers - sums) / (1.0 + counts[:, None])
        self.centers -= self.alpha * delta
