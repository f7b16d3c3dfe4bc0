"""Small widgets the dialogs share: the band mapping table and a status line."""

from __future__ import annotations

from collections.abc import Sequence

from qgis.PyQt.QtWidgets import (
    QApplication,
    QComboBox,
    QFrame,
    QHeaderView,
    QLabel,
    QScrollArea,
    QTableWidget,
    QWidget,
)

from ..core.bands import auto_mapping


class BandMappingTable(QTableWidget):
    """One row per model band; each row picks the layer band that feeds it ("—" = missing)."""

    def __init__(self, parent=None) -> None:
        super().__init__(0, 2, parent)
        self.setHorizontalHeaderLabels(["Model band", "Layer band"])
        self.horizontalHeader().setSectionResizeMode(QHeaderView.Stretch)
        self.verticalHeader().setVisible(False)
        self.model_bands: list[str] = []

    def fill(self, model_bands: Sequence[str], layer_names: Sequence[str | None]) -> None:
        """Rows for ``model_bands``, matched to ``layer_names`` (the layer's bands in order) by name."""
        self.model_bands = list(model_bands)
        mapping = auto_mapping(self.model_bands, layer_names)
        self.setRowCount(len(self.model_bands))
        for row, band in enumerate(self.model_bands):
            label = QLabel(band)
            self.setCellWidget(row, 0, label)
            combo = QComboBox()
            combo.addItem("—", None)
            for i, name in enumerate(layer_names, start=1):
                combo.addItem(f"{i}: {name or 'unnamed'}", i)
            idx = mapping.get(band)
            combo.setCurrentIndex(idx if idx is not None else 0)
            self.setCellWidget(row, 1, combo)
        self.resizeRowsToContents()
        self.fit_rows()

    def fit_rows(self, most: int = 12) -> None:
        """As tall as its rows (up to ``most``): in a scrolling form every band's choice is reached by scrolling
        the form, not a second scroll bar inside the table."""
        rows = min(self.rowCount(), most)
        height = sum(self.rowHeight(r) for r in range(rows)) + self.horizontalHeader().height()
        self.setMinimumHeight(height + 2 * self.frameWidth() + 2)

    def mapping(self) -> dict[str, int | None]:
        return {band: self.cellWidget(row, 1).currentData() for row, band in enumerate(self.model_bands)}

    def set_layer_band(self, model_band: str, layer_band: int | None) -> None:
        row = self.model_bands.index(model_band)
        combo = self.cellWidget(row, 1)
        combo.setCurrentIndex(combo.findData(layer_band) if layer_band else 0)


class StatusLabel(QLabel):
    """A wrapped line for what went wrong (red) or what happened (plain)."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setWordWrap(True)
        self.setTextInteractionFlags(self.textInteractionFlags() | 1)  # Qt.TextSelectableByMouse

    def error(self, text: str) -> None:
        self.setStyleSheet("color: #b00020;")
        self.setText(text)

    def info(self, text: str) -> None:
        self.setStyleSheet("")
        self.setText(text)


def scrolled(content) -> QScrollArea:
    """``content`` (a layout or widget) in a scroll area: a tall form scrolls on a 1366 x 768 screen while the
    dialog's buttons, outside it, stay visible."""
    if not isinstance(content, QWidget):
        widget = QWidget()
        widget.setLayout(content)
        content = widget
    area = QScrollArea()
    area.setWidgetResizable(True)
    area.setFrameShape(QFrame.NoFrame)
    area.setWidget(content)
    return area


def fit_to_screen(dialog: QWidget, width: int, height: int) -> None:
    """Resize to ``width`` x ``height``, or less where the screen's free area is smaller (taskbar, panels)."""
    screen = QApplication.primaryScreen()
    if screen is not None:
        free = screen.availableGeometry()
        width, height = min(width, free.width() - 40), min(height, free.height() - 60)
    dialog.resize(max(width, 320), max(height, 240))
