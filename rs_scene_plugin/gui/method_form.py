"""Form widgets for a training method's options, from the service's method list (name, type, default,
choices, help)."""

from __future__ import annotations

from typing import Any

from qgis.PyQt.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QLineEdit,
    QSpinBox,
    QWidget,
)


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
        w = QDoubleSpinBox()
        w.setDecimals(6)
        w.setRange(-1e9, 1e9)
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
