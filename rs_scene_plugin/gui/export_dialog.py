"""Export: the tile grid (GeoPackage / GeoJSON / Shapefile / CSV), the heatmap (GeoTIFF), training chips."""

from __future__ import annotations

from typing import Any

from qgis.core import QgsFieldProxyModel, QgsMapLayerProxyModel
from qgis.gui import QgsFieldComboBox, QgsFileWidget, QgsMapLayerComboBox
from qgis.PyQt.QtWidgets import (
    QDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
)

from ..core.export import chip_folder, export_chips, export_grid, export_heatmap
from .widgets import StatusLabel


def _save_widget(filters: str) -> QgsFileWidget:
    w = QgsFileWidget()
    w.setStorageMode(QgsFileWidget.SaveFile)
    w.setFilter(filters)
    return w


class ExportDialog(QDialog):
    def __init__(self, iface: Any, parent=None) -> None:
        super().__init__(parent)
        self.iface = iface
        self.setWindowTitle("RS Scene — Export")
        layout = QVBoxLayout(self)

        box, form = QGroupBox("Tile grid"), QFormLayout()
        self.grid_layer = QgsMapLayerComboBox()
        self.grid_layer.setFilters(QgsMapLayerProxyModel.PolygonLayer)
        self.grid_file = _save_widget("GeoPackage (*.gpkg);;GeoJSON (*.geojson);;Shapefile (*.shp);;CSV (*.csv)")
        self.grid_button = QPushButton("Export grid")
        self.grid_button.clicked.connect(self.export_grid)
        form.addRow("Grid layer", self.grid_layer), form.addRow("To file", self.grid_file)
        form.addRow("", self.grid_button)
        box.setLayout(form)
        layout.addWidget(box)

        box, form = QGroupBox("Heatmap"), QFormLayout()
        self.heat_layer = QgsMapLayerComboBox()
        self.heat_layer.setFilters(QgsMapLayerProxyModel.RasterLayer)
        self.heat_file = _save_widget("GeoTIFF (*.tif)")
        self.heat_button = QPushButton("Export heatmap")
        self.heat_button.clicked.connect(self.export_heatmap)
        form.addRow("Heatmap layer", self.heat_layer), form.addRow("To file", self.heat_file)
        form.addRow("", self.heat_button)
        box.setLayout(form)
        layout.addWidget(box)

        box, form = QGroupBox("Training chips (folder per class)"), QFormLayout()
        self.chip_raster = QgsMapLayerComboBox()
        self.chip_raster.setFilters(QgsMapLayerProxyModel.RasterLayer)
        self.chip_polygons = QgsMapLayerComboBox()
        self.chip_polygons.setFilters(QgsMapLayerProxyModel.PolygonLayer)
        self.chip_field = QgsFieldComboBox()
        self.chip_field.setFilters(QgsFieldProxyModel.String | QgsFieldProxyModel.Int | QgsFieldProxyModel.LongLong)
        self.chip_polygons.layerChanged.connect(self.chip_field.setLayer)
        self.chip_field.setLayer(self.chip_polygons.currentLayer())
        self.chip_size = QSpinBox()
        self.chip_size.setRange(1, 4096)
        self.chip_size.setValue(64)
        self.chip_folder = QgsFileWidget()
        self.chip_folder.setStorageMode(QgsFileWidget.GetDirectory)
        self.chip_button = QPushButton("Export chips")
        self.chip_button.clicked.connect(self.export_chips)
        for label, w in (("Raster", self.chip_raster), ("Polygons", self.chip_polygons),
                         ("Class field", self.chip_field), ("Chip size (pixels)", self.chip_size),
                         ("Folder", self.chip_folder), ("", self.chip_button)):
            form.addRow(label, w)
        box.setLayout(form)
        layout.addWidget(box)

        self.progress, self.status = QProgressBar(), StatusLabel()
        close = QPushButton("Close")
        close.clicked.connect(self.close)
        row = QHBoxLayout()
        row.addStretch(1), row.addWidget(close)
        layout.addWidget(self.progress), layout.addWidget(self.status), layout.addLayout(row)
        for b in (self.grid_button, self.heat_button, self.chip_button, close):
            b.setAutoDefault(False)

    def _do(self, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except (ValueError, OSError) as exc:
            self.status.error(str(exc))
            return None

    def export_grid(self) -> None:
        layer, path = self.grid_layer.currentLayer(), self.grid_file.filePath().strip()
        if layer is None or not path:
            self.status.error("Choose the grid layer and a file to export it to.")
        elif self._do(export_grid, layer, path):
            self.status.info(f"Grid '{layer.name()}' exported to {path}")

    def export_heatmap(self) -> None:
        layer, path = self.heat_layer.currentLayer(), self.heat_file.filePath().strip()
        if layer is None or not path:
            self.status.error("Choose the heatmap layer and a .tif file to export it to.")
        elif self._do(export_heatmap, layer, path):
            self.status.info(f"Heatmap '{layer.name()}' exported to {path}")

    def export_chips(self) -> None:
        raster, polys = self.chip_raster.currentLayer(), self.chip_polygons.currentLayer()
        folder, field = self.chip_folder.filePath().strip(), self.chip_field.currentField()
        if raster is None or polys is None or not folder or not field:
            self.status.error("Choose the raster, the labelled polygons, their class field and a folder.")
            return
        counts = self._do(export_chips, raster, polys, field, folder, self.chip_size.value(),
                          lambda p: self.progress.setValue(int(p)))
        if counts:
            self.status.info(f"{sum(counts.values())} chips written to {chip_folder(folder)}: "
                             + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
