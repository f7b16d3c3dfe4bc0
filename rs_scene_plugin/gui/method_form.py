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
            choices = list(dict.fromkeys([str(default or "imagenet"), "imagenet", "scratch", *choices, *models]))
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


def set_value(w: QWidget, value: Any) -> None:
    """Put ``value`` (as the widget's own type, or as QSettings gives it back: text) into an option widget;
    a value the widget cannot take (an older version of the option) leaves it as it is."""
    try:
        if isinstance(w, QComboBox):
            w.setCurrentText(str(value))
        elif isinstance(w, QCheckBox):
            w.setChecked(value in (True, "true", "True", 1, "1"))
        elif isinstance(w, QSpinBox):
            w.setValue(int(value))
        elif isinstance(w, QDoubleSpinBox):
            w.setValue(float(value))
        else:
            w.setText(str(value))
    except (TypeError, ValueError):
        return


def changed_options(options: list[dict[str, Any]], widgets: dict[str, QWidget]) -> dict[str, Any]:
    """The options set to something else than the method's default (the method fills in the rest: an lr of
    0 shown as "the method's default" is not sent as a rate of 0)."""
    defaults = {o["name"]: o.get("default") for o in options}
    values = {k: option_value(w) for k, w in widgets.items()}
    return {k: v for k, v in values.items() if k not in defaults or v != defaults[k]
            and not (v in ("", None) and defaults[k] in ("", None))}


def saved_options(key: str, method: str) -> dict[str, Any]:
    from qgis.core import QgsSettings

    return dict(QgsSettings().value(f"{key}/{method}", {}) or {})


def save_options(key: str, method: str, widgets: dict[str, QWidget]) -> None:
    from qgis.core import QgsSettings

    QgsSettings().setValue(f"{key}/{method}", {k: option_value(w) for k, w in widgets.items()})
