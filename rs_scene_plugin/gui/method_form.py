"""Form widgets for a training method's options, from the service's method list (name, type, default,
choices, help)."""

from __future__ import annotations

import math
from typing import Any

from qgis.PyQt.QtGui import QValidator
from qgis.PyQt.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QLineEdit,
    QSpinBox,
    QWidget,
)


class ReadableSpinBox(QDoubleSpinBox):
    """A number as a person writes it (``0.0003`` as ``0.0003``, ``3e-05``; not ``0.000000``), typed the same
    way; 0 shows as "the method's default" where 0 means that."""

    def textFromValue(self, value: float) -> str:
        return f"{value:g}"

    def valueFromText(self, text: str) -> float:
        try:
            return float(text)
        except ValueError:
            return 0.0 if text == self.specialValueText() else self.value()

    def validate(self, text: str, pos: int):
        if text == self.specialValueText():
            return QValidator.Acceptable, text, pos
        try:
            float(text)
            return QValidator.Acceptable, text, pos
        except ValueError:
            return QValidator.Intermediate, text, pos


def option_widget(opt: dict[str, Any], models: list[str]) -> QWidget:
    """A form widget for one method option (name, type, default, choices)."""
    default, kind = opt.get("default"), opt.get("type", "str")
    if opt.get("choices") or opt["name"] in ("init", "backbone"):
        w = QComboBox()
        choices = [str(c) for c in opt.get("choices") or []]
        if opt["name"] == "init":
            w.setEditable(True)
            choices = list(dict.fromkeys(["imagenet", "scratch", *choices, *models]))
        w.addItems(choices)
        w.setEditable(w.isEditable() or not opt.get("choices"))
        w.setCurrentText(str(default))
    elif kind == "bool":
        w = QCheckBox()
        w.setChecked(bool(default))
    elif kind == "int":
        w = QSpinBox()
        w.setRange(0, 1_000_000)
        w.setValue(int(default or 0))
    elif kind == "float":
        w = ReadableSpinBox()
        w.setDecimals(10)
        w.setRange(-1e9, 1e9)
        if default:
            w.setSingleStep(10 ** math.floor(math.log10(abs(default))))
        if not default and "0 =" in opt.get("help", ""):  # lr: 0 = the paper's rate for the method
            w.setRange(0, 1e9)
            w.setSpecialValueText("the method's default")
        w.setValue(float(default or 0.0))
    else:
        w = QLineEdit("" if default is None else str(default))
    w.setToolTip(opt.get("help", ""))
    return w


def option_value(w: QWidget) -> Any:
    if isinstance(w, QComboBox):
        return w.currentText()
    if isinstance(w, QCheckBox):
        return w.isChecked()
    if isinstance(w, (QSpinBox, QDoubleSpinBox)):
        return w.value()
    return w.text()
