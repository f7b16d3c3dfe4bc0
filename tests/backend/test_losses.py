"""Each loss against a plain-loop reference on hand-placed embeddings and logits."""

from __future__ import annotations

import math

import pytest
import torch
from rs_scene.losses import CenterLoss, MixupKDLoss, PairwiseKDLoss, SupConLoss


def softmax(v: list[float], t: float = 1.0) -> list[float]:
    e = [math.exp(a / t) for a in v]
    return [a / sum(e) for a in e]


def kl(p: list[float], q: list[float]) -> float:
    return sum(pi * math.log(pi / qi) for pi, qi in zip(p, q))


# -- center loss --------------------------------------------------------------------------------------------
FEATS = torch.tensor([[1.0, 0.0], [3.0, 0.0], [0.0, 2.0], [0.0, -2.0], [1.0, 1.0]])
LABELS = torch.tensor([0, 0, 1, 1, 2])


def test_center_loss_matches_loop() -> None:
    loss = CenterLoss(3, 2)
    loss.centers.copy_(torch.tensor([[2.0, 0.0], [0.0, 1.0], [5.0, 5.0]]))
    ref = 0.0
    for x, y in zip(FEATS.tolist(), LABELS.tolist()):
        c = loss.centers[y].tolist()
        ref += 0.5 * sum((a - b) ** 2 for a, b in zip(x, c))
    assert loss(FEATS, LABELS).item() == pytest.approx(
        ref / len(FEATS)
    )  # (1+1+1+9+32)/2/5 = 4.4
    assert ref / len(FEATS) == pytest.approx(4.4)


def test_center_update_is_wen_eq4() -> None:
    loss = CenterLoss(3, 2, alpha=0.5)
    start = torch.tensor([[2.0, 0.0], [0.0, 1.0], [5.0, 5.0]])
    loss.centers.copy_(start)
    loss.update(FEATS, LABELS)
    expected = start.clone()
    for j in range(3):
        members = [FEATS[i] for i in range(len(FEATS)) if LABELS[i] == j]
        delta = sum((start[j] - x for x in members), torch.zeros(2)) / (
            1 + len(members)
        )
        expected[j] = start[j] - 0.5 * delta
    assert torch.allclose(loss.centers, expected)
    # class 0: features 1 and 3 average to its center 2, so it must not move; class 2 moves halfway-ish
    assert torch.allclose(loss.centers[0], start[0])
    assert torch.allclose(loss.centers[2], torch.tensor([4.0, 4.0]))


def test_center_set_to_means() -> None:
    loss = CenterLoss(4, 2)
    loss.set_to_means(FEATS, LABELS)
    expected = torch.tensor(
        [[2.0, 0.0], [0.0, 0.0], [1.0, 1.0], [0.0, 0.0]]
    )  # class 3 unseen: stays put
    assert torch.equal(loss.centers, expected) and bool(loss.ready)


def test_center_loss_gives_features_gradient_not_centers() -> None:
    loss = CenterLoss(3, 2)
    f = FEATS.clone().requires_grad_(True)
    loss(f, LABELS).backward()
    assert torch.allclose(f.grad, (FEATS - loss.centers[LABELS]) / len(FEATS))
    assert not loss.centers.requires_grad


@pytest.mark.parametrize(
    "kwargs",
    [{"num_classes": 0, "feat_dim": 2}, {"num_classes": 2, "feat_dim": 2, "alpha": 0}],
)
def test_center_loss_rejects_bad_arguments(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        CenterLoss(**kwargs)


def test_center_loss_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError, match="features"):
        CenterLoss(3, 4)(FEATS, LABELS)
    with pytest.raises(ValueError, match="labels"):
        CenterLoss(2, 2)(FEATS, LABELS)


# -- pair-wise KD and mixup KD ----------------------------------------------------------------------------
STUDENT = [[2.0, 0.0, -1.0], [0.5, 0.5, 0.0]]
PARTNER = [[1.0, 1.0, -2.0], [3.0, 0.0, 0.0]]


def test_pairwise_kd_matches_loop() -> None:
    t = 4.0
    ref = (
        sum(kl(softmax(p, t), softmax(s, t)) for s, p in zip(STUDENT, PARTNER))
        / len(STUDENT)
        * t
        * t
    )
    student = torch.tensor(STUDENT, requires_grad=True)
    partner = torch.tensor(PARTNER, requires_grad=True)
    out = PairwiseKDLoss(t)(student, partner)
    assert out.item() == pytest.approx(ref, rel=1e-5)
    out.backward()
    assert partner.grad is None and student.grad is not None  # theta~ is a no-grad copy


def test_pairwise_kd_is_zero_for_equal_predictions() -> None:
    x = torch.tensor(STUDENT)
    assert PairwiseKDLoss(4.0)(x, x.clone()).item() == pytest.approx(0.0, abs=1e-6)


def test_mixup_kd_matches_loop() -> None:
    t, lam = 4.0, 0.3
    teacher = [[0.0, 2.0, 1.0], [1.0, -1.0, 0.0]]
    yi, yj = [0, 1], [2, 0]
    ref = 0.0
    for s, te, a, b in zip(STUDENT, teacher, yi, yj):
        p = softmax(s)
        ref += lam * -math.log(p[a]) + (1 - lam) * -math.log(p[b])
        ref += t * t * kl(softmax(te, t), softmax(s, t))
    out = MixupKDLoss(t)(
        torch.tensor(STUDENT),
        torch.tensor(teacher),
        torch.tensor(yi),
        torch.tensor(yj),
        lam,
    )
    assert out.item() == pytest.approx(ref / 2, rel=1e-5)


def test_kd_losses_reject_bad_arguments() -> None:
    with pytest.raises(ValueError, match="temperature"):
        PairwiseKDLoss(0.0)
    with pytest.raises(ValueError, match="temperature"):
        MixupKDLoss(-1.0)
    with pytest.raises(ValueError, match="mixing"):
        MixupKDLoss()(
            torch.zeros(1, 2),
            torch.zeros(1, 2),
            torch.tensor([0]),
            torch.tensor([1]),
            1.5,
        )
    with pytest.raises(ValueError, match="logits"):
        PairwiseKDLoss()(torch.zeros(2, 3), torch.zeros(2, 4))


# -- supervised contrastive ---------------------------------------------------------------------------------
def supcon_loop(z: list[list[float]], labels: list[int], tau: float) -> float:
    norm = [[a / math.sqrt(sum(b * b for b in v)) for a in v] for v in z]
    dot = [[sum(a * b for a, b in zip(u, v)) for v in norm] for u in norm]
    total, anchors = 0.0, 0
    for i in range(len(z)):
        pos = [s for s in range(len(z)) if s != i and labels[s] == labels[i]]
        if not pos:
            continue
        denom = sum(math.exp(dot[i][k] / tau) for k in range(len(z)) if k != i)
        total += -sum(math.log(math.exp(dot[i][s] / tau) / denom) for s in pos) / len(
            pos
        )
        anchors += 1
    return total / anchors


def test_supcon_matches_loop() -> None:
    z = [[1.0, 0.0], [0.8, 0.6], [0.0, 2.0], [-1.0, 1.0], [0.6, -0.8], [-3.0, 0.0]]
    labels = [0, 0, 1, 1, 0, 2]  # the class-2 anchor has no positive and is left out
    out = SupConLoss(0.1)(torch.tensor(z), torch.tensor(labels))
    assert out.item() == pytest.approx(supcon_loop(z, labels, 0.1), rel=1e-5)
    out5 = SupConLoss(0.5)(torch.tensor(z), torch.tensor(labels))
    assert out5.item() == pytest.approx(supcon_loop(z, labels, 0.5), rel=1e-5)


def test_supcon_prefers_clustered_classes() -> None:
    labels = torch.tensor([0, 0, 1, 1])
    clustered = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    mixed = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.9, 0.1], [0.1, 0.9]])
    loss = SupConLoss(0.1)
    assert loss(clustered, labels) < loss(mixed, labels)


def test_supcon_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="temperature"):
        SupConLoss(0.0)
    with pytest.raises(ValueError, match="positive"):
        SupConLoss()(torch.eye(3), torch.tensor([0, 1, 2]))
