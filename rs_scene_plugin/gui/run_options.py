"""The Classify dialog's run settings as one form block: tiles, input scale, GSD, extra nodata, edge tiles.
``write`` shows a RunSettings, ``read`` gives the user's, ``apply_fix`` sets the field a warning names."""

from __future__ import annotations

from typing import Any

from qgis.PyQt.QtGui import QDoubleValidator
from qgis.PyQt.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QSpinBox,
    QWidget,
)

from ..core.derive import EDGE_MODES, RunSettings
from ..core.fixes import Fix

GSD_MODES = ("model", "native", "value")
EDGE_TEXT = {"shift": "shift the last tile inside the raster", "pad": "pad with nodata", "drop": "drop"}


class RunOptions:
    """Adds its rows to ``form``; the widgets stay attributes for tests and fixes."""

    def __init__(self, form: QFormLayout) -> None:
        self.tile_size, self.stride = QSpinBox(), QSpinBox()
        for box in (self.tile_size, self.stride):
            box.setRange(0, 4096)
            box.setSpecialValueText("model's")
        row = QHBoxLayout()
        row.addWidget(QLabel("tile")), row.addWidget(self.tile_size), row.addWidget(QLabel("stride"))
        row.addWidget(self.stride)
        form.addRow("Tile size (model pixels)", row)
        self.input_scale = QDoubleSpinBox()
        self.input_scale.setRange(0, 1e6)
        self.input_scale.setDecimals(3)
        self.input_scale.setSpecialValueText("automatic")
        self.input_scale.setToolTip("Raw values are divided by this (0 = automatic: 255 for 8-bit, the model's "
                                    "reflectance scale for 16-bit, 1 for float)")
        form.addRow("Input scale (divide by)", self.input_scale)
        self.gsd_mode = QComboBox()
        self.gsd_mode.addItems(["model's", "native (the layer's pixels)", "value (m)"])
        self.gsd_value = QDoubleSpinBox()
        self.gsd_value.setRange(0.01, 10000)
        self.gsd_value.setSuffix(" m")
        self.gsd_mode.currentIndexChanged.connect(lambda i: self.gsd_value.setEnabled(i == 2))
        self.gsd_value.setEnabled(False)
        row = QHBoxLayout()
        row.addWidget(self.gsd_mode, 1), row.addWidget(self.gsd_value)
        form.addRow("GSD", row)
        self.nodata = QLineEdit()
        self.nodata.setValidator(QDoubleValidator())
        self.nodata.setPlaceholderText("none (the raster's own nodata only)")
        self.nodata.setToolTip("Pixels where every band holds this raw value are missing, besides the raster's "
                               "own nodata")
        form.addRow("Extra nodata", self.nodata)
        self.edge = QComboBox()
        for mode in EDGE_MODES:
            self.edge.addItem(EDGE_TEXT[mode], mode)
        form.addRow("Edge tiles", self.edge)

    def write(self, s: RunSettings) -> None:
        self.tile_size.setValue(s.tile_size), self.stride.setValue(s.stride)
        self.input_scale.setValue(s.input_scale)
        if isinstance(s.gsd, (int, float)):
            self.gsd_mode.setCurrentIndex(2)
            self.gsd_value.setValue(float(s.gsd))
        else:
            self.gsd_mode.setCurrentIndex(GSD_MODES.index(s.gsd))
        self.nodata.setText("" if s.nodata is None else f"{s.nodata:g}")
        self.edge.setCurrentIndex(max(self.edge.findData(s.edge), 0))

    def read(self, mapping: dict[str, int | None]) -> RunSettings:
        mode = GSD_MODES[self.gsd_mode.currentIndex()]
        text = self.nodata.text().strip()
        return RunSettings(mapping=mapping, input_scale=self.input_scale.value(),
                           gsd=self.gsd_value.value() if mode == "value" else mode,
                           tile_size=self.tile_size.value(), stride=self.stride.value(),
                           nodata=float(text) if text else None, edge=self.edge.currentData())

    def apply_fix(self, fix: Fix) -> None:
        if fix.key == "input_scale":
            self.input_scale.setValue(float(fix.value))
        elif fix.key == "gsd":
            self.gsd_mode.setCurrentIndex(GSD_MODES.index("native") if fix.value == "native" else 2)
            if fix.value != "native":
                self.gsd_value.setValue(float(fix.value))


def request_options(s: RunSettings) -> dict[str, Any]:
    """The service's fields for these settings (defaults left out)."""
    out: dict[str, Any] = {"edge": s.edge}
    if s.gsd != "model":
        out["gsd"] = s.gsd
    if s.nodata is not None:
        out["nodata"] = s.nodata
    return out


class FixButtons(QWidget):
    """A row of buttons, one per fix the latest warning offers."""

    def __init__(self, apply: Any, parent=None) -> None:
        super().__init__(parent)
        self.apply = apply
        self.row = QHBoxLayout(self)
        self.row.setContentsMargins(0, 0, 0, 0)
        self.buttons: list[Any] = []

    def show_fixes(self, fixes: list[Fix]) -> None:
        from qgis.PyQt.QtWidgets import QPushButton

        for b in self.buttons:
            b.deleteLater()
        self.buttons = []
        for fix in fixes:
            b = QPushButton(fix.label)
            b.setAutoDefault(False)
            b.clicked.connect(lambda _=False, f=fix: self.apply(f))
            self.row.addWidget(b)
            self.buttons.append(b)
        self.setVisible(bool(fixes))
