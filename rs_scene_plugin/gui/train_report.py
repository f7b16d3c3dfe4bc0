"""The Training dialog's last screen: each figure named for what it is (held-out, never used for choosing;
validation, used for early stopping; the model's own training tiles), per-class recall, the confusion matrix
and the warnings."""

from __future__ import annotations

from typing import Any

from qgis.PyQt.QtWidgets import (
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from .widgets import StatusLabel


def figure_line(m: dict[str, Any]) -> str:
    """``label: OA x %, balanced accuracy y % (n tiles)`` for one labelled figure set."""
    if "overall_accuracy" not in m:
        return f"{m.get('label', '')}: sample F1 {m.get('sample_f1', 0):.1%} ({m.get('n')} tiles)"
    return (f"{m.get('label', '')}: overall accuracy {m['overall_accuracy']:.1%}, balanced accuracy "
            f"{m.get('balanced_accuracy', 0):.1%} ({m.get('n')} tiles)")


def epochs_line(training: dict[str, Any]) -> str:
    """What each stage ran, in epochs: where ``min_steps`` raised the epochs option for a small set, by how
    much and why; where early stopping ended it or validation chose an earlier epoch, which one the model is."""
    parts = []
    asked, steps, n = training.get("epochs_option"), training.get("min_steps") or 0, training.get("n_train")
    for st in training.get("stages") or []:
        text = f"{st['stage']}: {st['epochs']} epochs"
        if asked and st["epochs"] > asked and steps:
            text += (f" (the epochs option is {asked}, raised so that {n} training tiles make at least {steps} "
                     "optimiser steps; min_steps 0 turns this off)")
        if st.get("ran") is not None and st["ran"] < st["epochs"]:
            text += f", stopped early after {st['ran']}"
        if st.get("kept") and st["kept"] != st.get("ran"):
            text += f", model from epoch {st['kept']} (its best validation figure)"
        parts.append(text)
    return ("Trained " + "; ".join(parts) + ".") if parts else ""


class TrainReport(QWidget):
    """Figures, warnings and the confusion matrix of the reported figure set (rows true, columns predicted,
    each class's recall in the last column)."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        self.title = QLabel("<b>Training report</b>")
        self.figures = QLabel()
        self.figures.setWordWrap(True)
        self.warnings = StatusLabel()
        self.matrix_title = QLabel()
        self.matrix = QTableWidget()
        self.matrix.setMinimumHeight(140)
        for w in (self.title, self.figures, self.warnings, self.matrix_title, self.matrix):
            layout.addWidget(w)
        layout.addStretch(1)

    def clear(self) -> None:
        self.figures.clear()
        self.warnings.clear()
        self.matrix_title.clear()
        self.matrix.clear()
        self.matrix.setRowCount(0)
        self.matrix.setColumnCount(0)

    def show_result(self, result: dict[str, Any]) -> None:
        card_metrics = (result.get("card") or {}).get("metrics") or {}
        sets = [card_metrics[k] for k in ("heldout", "validation", "training") if card_metrics.get(k)]
        lines = [figure_line(m) for m in sets] or ["No figures: nothing was held out."]
        epochs = epochs_line((result.get("card") or {}).get("training") or {})
        self.figures.setText("<br>".join(lines + ([epochs] if epochs else [])))
        warnings = result.get("warnings") or (result.get("metrics") or {}).get("warnings") or []
        if warnings:
            self.warnings.error("Warnings:\n" + "\n".join(f"• {w}" for w in warnings))
        else:
            self.warnings.info("No warnings: every class was recognised and no class took nearly all tiles.")
        metrics = result.get("metrics") or {}
        self.matrix_title.setText(f"Confusion matrix, {metrics.get('label') or 'figures'} (rows: true class, "
                                  "columns: predicted)")
        self.show_matrix(metrics)

    def show_matrix(self, metrics: dict[str, Any]) -> None:
        classes, cm = metrics.get("classes") or list(metrics.get("per_class", {})), metrics.get("confusion_matrix")
        if not cm:
            return
        self.matrix.setRowCount(len(classes))
        self.matrix.setColumnCount(len(classes) + 1)
        self.matrix.setHorizontalHeaderLabels([*classes, "recall"])
        self.matrix.setVerticalHeaderLabels(classes)
        for i, row in enumerate(cm):
            for j, n in enumerate(row):
                self.matrix.setItem(i, j, QTableWidgetItem(str(n)))
            acc = metrics.get("per_class", {}).get(classes[i])
            self.matrix.setItem(i, len(classes), QTableWidgetItem("—" if acc is None else f"{acc:.0%}"))
