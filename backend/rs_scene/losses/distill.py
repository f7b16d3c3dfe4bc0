"""Distillation losses of pair-wise similarity KD (Zhao et al., "Pair-wise similarity knowledge distillation
for RSI scene classification", Remote Sensing 2022): the same-class self-distillation term (Eq. 5) and the
mixup term (Eq. 6-8)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def _check_temperature(temperature: float) -> None:
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature}")


def kd_kl(target_logits: torch.Tensor, logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """``T^2 * KL(softmax(target/T) || softmax(logits/T))``, summed over classes, averaged over the batch
    (Hinton et al. 2015, PSKD Eq. 3). Shapes: both (B, K); no gradient flows into ``target_logits``."""
    if target_logits.shape != logits.shape or logits.ndim != 2:
        raise ValueError(
            f"logits must both be (B, K); got {tuple(target_logits.shape)} and {tuple(logits.shape)}"
        )
    t = temperature
    p_target = F.softmax(target_logits.detach().float() / t, dim=1)
    log_p = F.log_softmax(logits.float() / t, dim=1)
    return F.kl_div(log_p, p_target, reduction="batchmean") * t * t


class PairwiseKDLoss(nn.Module):
    """PSKD Eq. 5: ``L_KD(x, x') = T^2 KL(P(y|x'; theta~) || P(y|x; theta))`` for pairs of images with the
    same label. ``partner_logits`` are the student's logits on ``x'`` (theta~ is a no-grad copy of theta, so
    they are detached here); ``logits`` the student's on ``x``. Shapes: (B, K) each; returns a scalar."""

    def __init__(self, temperature: float = 4.0) -> None:
        super().__init__()
        _check_temperature(temperature)
        self.temperature = temperature

    def forward(self, logits: torch.Tensor, partner_logits: torch.Tensor) -> torch.Tensor:
        return kd_kl(partner_logits, logits, self.temperature)


class MixupKDLoss(nn.Module):
    """PSKD Eq. 8 on a mixed image ``x^ = lam x_i + (1 - lam) x_j`` (Eq. 6)::

        L_mix = lam * H(s(x^), y_i) + (1 - lam) * H(s(x^), y_j) + T^2 KL(P_teacher(x^) || P_student(x^))

    Shapes: ``student_logits`` and ``teacher_logits`` (B, K), ``y_i`` and ``y_j`` (B,) long, ``lam`` a float
    in
    [0, 1] (one per batch, as in mixup) or a (B,) tensor.
    """

    def __init__(self, temperature: float = 4.0) -> None:
        super().__init__()
        _check_temperature(temperature)
        self.temperature = temperature

    def forward(
        self,
        student_logits: torch.Tensor,
        teacher_logits: torch.Tensor,
        y_i: torch.Tensor,
        y_j: torch.Tensor,
        lam: float | torch.Tensor,
    ) -> torch.Tensor:
        lam_t = torch.as_tensor(lam, dtype=torch.float32, device=student_logits.device)
        if (lam_t < 0).any() or (lam_t > 1).any():
            raise ValueError(f"mixing coefficient must be in [0, 1], got {lam}")
        ce_i = F.cross_entropy(student_logits.float(), y_i, reduction="none")
        ce_j = F.cross_entropy(student_logits.float(), y_j, reduction="none")
        ce = (lam_t * ce_i + (1 - lam_t) * ce_j).mean()
        return ce + kd_kl(teacher_logits, student_logits, self.temperature)
