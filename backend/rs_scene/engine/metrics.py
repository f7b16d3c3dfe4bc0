"""Metrics from scikit-learn: single-label (OA, per-class accuracy, confusion matrix) and multi-label
(sample F1, sample accuracy, Hamming loss, ranking loss, as reported in the BWMS paper)."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn import metrics as skm


def single_label_metrics(y_true: np.ndarray, y_pred: np.ndarray, classes: list[str]) -> dict[str, Any]:
    labels = list(range(len(classes)))
    cm = skm.confusion_matrix(y_true, y_pred, labels=labels)
    support = cm.sum(axis=1)
    per_class = {c: (float(cm[i, i] / support[i]) if support[i] else None) for i, c in enumerate(classes)}
    return {
        "overall_accuracy": float(skm.accuracy_score(y_true, y_pred)),
        "per_class": per_class,
        "confusion_matrix": cm.tolist(),
        "classes": classes,
        "n": int(len(y_true)),
    }


def multi_label_metrics(y_true: np.ndarray, scores: np.ndarray, classes: list[str], threshold: float = 0.5
                        ) -> dict[str, Any]:
    y_pred = (scores >= threshold).astype(int)
    y_true = y_true.astype(int)
    present = y_true.sum(axis=0) > 0
    per_class = {c: (float(skm.f1_score(y_true[:, i], y_pred[:, i], zero_division=0)) if present[i] else None)
                 for i, c in enumerate(classes)}
    return {
        "sample_f1": float(skm.f1_score(y_true, y_pred, average="samples", zero_division=0)),
        "sample_accuracy": float(skm.jaccard_score(y_true, y_pred, average="samples", zero_division=0)),
        "hamming_loss": float(skm.hamming_loss(y_true, y_pred)),
        "ranking_loss": float(skm.label_ranking_loss(y_true, scores)),
        "per_class": per_class,
        "classes": classes,
        "n": int(len(y_true)),
    }


def headline(metrics: dict[str, Any]) -> float:
    """The one number early stopping watches: OA, or sample F1 for multi-label."""
    return float(metrics.get("overall_accuracy", metrics.get("sample_f1", 0.0)))
