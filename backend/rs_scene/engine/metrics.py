"""Metrics from scikit-learn: single-label (OA, balanced accuracy, per-class recall, confusion matrix) and
multi-label (sample F1, sample accuracy, Hamming loss, ranking loss, as reported in the BWMS paper), and the
warnings a trained model's figures call for (a class never found, one class for nearly everything, a model
that has not learned its own training polygons)."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn import metrics as skm


def single_label_metrics(y_true: np.ndarray, y_pred: np.ndarray, classes: list[str]) -> dict[str, Any]:
    labels = list(range(len(classes)))
    cm = skm.confusion_matrix(y_true, y_pred, labels=labels)
    support = cm.sum(axis=1)
    per_class = {c: (float(cm[i, i] / support[i]) if support[i] else None) for i, c in enumerate(classes)}
    present = [r for r in per_class.values() if r is not None]
    predicted = cm.sum(axis=0)
    return {
        "overall_accuracy": float(skm.accuracy_score(y_true, y_pred)),
        "balanced_accuracy": float(np.mean(present)) if present else 0.0,  # mean recall of present classes
        "per_class": per_class,  # recall: the share of each class's samples predicted as that class
        "predicted_share": {c: float(predicted[i] / max(len(y_pred), 1)) for i, c in enumerate(classes)},
        "confusion_matrix": cm.tolist(),
        "classes": classes,
        "n": int(len(y_true)),
    }


ONE_CLASS_SHARE = 0.9  # warn when one class takes this share of the predictions ...
LOW_TRAINING_ACCURACY = 0.7  # ... or the balanced accuracy on the training tiles is under this


def metric_warnings(metrics: dict[str, Any], what: str, training: bool = False) -> list[str]:
    """Plain-language warnings for single-label ``metrics`` of ``what`` (e.g. 'validation'): classes with
    zero recall, one class predicted for nearly everything (when it is not nearly everything), and, for the
    training tiles themselves (``training``), a low balanced accuracy."""
    if "per_class" not in metrics or "predicted_share" not in metrics or not metrics.get("n"):
        return []
    out = []
    zero = [c for c, r in metrics["per_class"].items() if r == 0]
    if zero:
        out.append(f"{what}: class(es) {', '.join(zero)} were never recognised (recall 0 on "
                   f"{metrics['n']} tiles): the model does not tell them apart.")
    classes, cm = metrics["classes"], np.asarray(metrics["confusion_matrix"])
    share = metrics["predicted_share"]
    top = max(share, key=share.get)
    true_share = cm[classes.index(top)].sum() / max(cm.sum(), 1)
    if share[top] >= ONE_CLASS_SHARE and true_share < ONE_CLASS_SHARE:
        out.append(f"{what}: the model says '{top}' for {share[top]:.0%} of the tiles ({true_share:.0%} are "
                   f"'{top}'): it predicts one class for nearly everything.")
    if training and metrics["balanced_accuracy"] < LOW_TRAINING_ACCURACY:
        acc = metrics["balanced_accuracy"]
        out.append(f"{what}: balanced accuracy {acc:.0%} on the tiles it was trained on: the model has not "
                   "learned its own polygons (more epochs, another learning rate, or check the input scale "
                   "and band mapping).")
    return out


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
