"""Live training curves drawn with QPainter: loss (left scale) and validation accuracy (0-1, right scale)."""

from __future__ import annotations

from typing import Any

from qgis.PyQt.QtCore import QPointF, Qt
from qgis.PyQt.QtGui import QColor, QPainter, QPen
from qgis.PyQt.QtWidgets import QWidget

LOSS, ACC, STEP = QColor("#d62728"), QColor("#1f77b4"), QColor(214, 39, 40, 70)


class CurvesWidget(QWidget):
    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setMinimumHeight(160)
        self.clear()

    def clear(self) -> None:
        self.steps: list[tuple[float, float]] = []  # (epoch progress, batch loss)
        self.loss: list[tuple[float, float]] = []  # (epoch, mean loss)
        self.acc: list[tuple[float, float]] = []  # (epoch, validation accuracy)
        self._epochs_seen = 0
        self.update()

    def add_job(self, job: dict[str, Any]) -> None:
        """Take the curves from a job's history (epochs) and latest metrics (the running batch loss)."""
        history = job.get("history") or []
        for i, rec in enumerate(history[self._epochs_seen:], start=self._epochs_seen + 1):
            self.loss.append((float(i), float(rec["loss"])))
            if rec.get("val") is not None:
                self.acc.append((float(i), float(rec["val"])))
        self._epochs_seen = len(history)
        m = job.get("metrics") or {}
        if "step_loss" in m and job.get("total"):  # done/total counts batches over this stage's epochs
            self.steps.append((job["done"] / job["total"] * m.get("epochs", 1), float(m["step_loss"])))
        self.update()

    def paintEvent(self, event: Any) -> None:
        p = QPainter(self)
        p.setRenderHint(QPainter.Antialiasing)
        p.fillRect(self.rect(), QColor("white"))
        left, right, top, bottom = 44, self.width() - 40, 12, self.height() - 24
        p.setPen(QPen(QColor("#888888")))
        p.drawRect(left, top, right - left, bottom - top)
        xs = [x for x, _ in self.steps + self.loss + self.acc]
        if not xs:
            p.drawText(self.rect(), Qt.AlignCenter, "loss and accuracy appear here while training")
            return
        x_max = max(max(xs), 1.0)
        y_max = max(y for _, y in self.steps + self.loss) if self.steps or self.loss else 1.0
        y_max = y_max or 1.0

        def pt(x: float, y: float, scale: float) -> QPointF:
            return QPointF(left + (right - left) * x / x_max, bottom - (bottom - top) * y / scale)

        for series, colour, scale, width in ((self.steps, STEP, y_max, 1), (self.loss, LOSS, y_max, 2),
                                             (self.acc, ACC, 1.0, 2)):
            p.setPen(QPen(colour, width))
            pts = [pt(x, y, scale) for x, y in series]
            for a, b in zip(pts, pts[1:]):  # noqa: RUF007 (itertools.pairwise needs Python 3.10)
                p.drawLine(a, b)
            for q in pts if series is not self.steps else []:
                p.drawEllipse(q, 2.5, 2.5)
        p.setPen(QPen(LOSS))
        p.drawText(4, top + 10, f"{y_max:.2f}")
        p.drawText(4, bottom, "0")
        p.drawText(left + 6, top + 14, "loss")
        p.setPen(QPen(ACC))
        p.drawText(right + 4, top + 10, "1.0")
        p.drawText(left + 46, top + 14, "validation accuracy (used for early stopping)")
        p.setPen(QPen(QColor("#444444")))
        p.drawText(left, bottom + 16, "epoch 0")
        p.drawText(right - 50, bottom + 16, f"epoch {x_max:.0f}")
        p.end()
