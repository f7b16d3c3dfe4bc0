"""Evaluate a model on a dataset with exactly the preprocessing that classify uses."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from ..card import ModelCard
from ..data.datasets import SceneData, match_classes
from ..data.transforms import normalize, resize
from ..errors import RSSceneError
from .metrics import multi_label_metrics, single_label_metrics


def preprocess(x: torch.Tensor, card: ModelCard) -> torch.Tensor:
    """Value-scaled tiles -> network input: resize to the card's input size, normalise per band."""
    return normalize(resize(x, card.input_size), card.mean, card.std)


@torch.inference_mode()
def predict_scores(model: nn.Module, card: ModelCard, x: torch.Tensor, device: torch.device,
                   batch_size: int = 64, logits_fn: Any = None) -> np.ndarray:
    """Softmax (single-label) or sigmoid (multi-label) scores for value-scaled images ``x``."""
    model.eval()
    fn = logits_fn or model
    out = []
    for i in range(0, len(x), batch_size):
        xb = preprocess(x[i : i + batch_size].to(device), card)
        logits = fn(xb).float()
        out.append((logits.sigmoid() if card.task == "multi-label" else logits.softmax(1)).cpu())
    return torch.cat(out).numpy()


def evaluate(model: nn.Module, card: ModelCard, data: SceneData, device: torch.device,
             batch_size: int = 64) -> dict[str, Any]:
    if data.bands != card.bands:
        raise RSSceneError(f"dataset bands {data.bands} differ from the model's {card.bands}")
    scores = predict_scores(model, card, data.x, device, batch_size)
    if card.task == "multi-label":
        if len(data.classes) != card.num_classes:
            raise RSSceneError(f"dataset has {len(data.classes)} labels, the model {card.num_classes}")
        return multi_label_metrics(data.y.numpy(), scores, card.class_names, card.threshold)
    if data.task == "multi-label":
        raise RSSceneError("a multi-label dataset cannot evaluate a single-label model")
    mapping = np.asarray(match_classes(data.classes, card.class_names, "evaluate"))
    y_true = mapping[data.y.numpy()]
    return single_label_metrics(y_true, scores.argmax(1), card.class_names)
