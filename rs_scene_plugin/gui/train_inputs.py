"""The Training dialog's input controls, the options classify takes: which layer bands the new model reads
and under which names (the band mapping), the input scale, the layer's extra no-data value, and the ground
resolution the tiles are cut at."""

from __future__ import annotations

from typing import Any

from qgis.core import QgsRasterLayer, QgsVectorLayer, QgsWkbTypes
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtWidgets import (
    QCheckBox,
    QDoubleSpinBox,
    QFormLayout,
    QLineEdit,
    QTableWidget,
    QTableWidgetItem,
)

from ..core.bands import canonical
from ..core.pixels import gdal_band_names, user_nodata


class TrainInputs:
    """Rows added to ``form``: layer band names, the band table (use, layer band, name in the model), input
    scale, extra no-data and GSD; :meth:`fill` reads a layer's bands, :meth:`band_option` gives classify's
    ``--bands`` mapping form (``B02=1,B03=2,...``)."""

    def __init__(self, form: QFormLayout) -> None:
        self.band_names = QLineEdit()
        self.band_names.setPlaceholderText("the raster's band names in order, if it has none (B02,B03,…)")
        self.band_names.editingFinished.connect(self.apply_names)
        self.bands = QTableWidget(0, 2)
        self.bands.setHorizontalHeaderLabels(["Layer band (tick to use)", "Name in the model"])
        self.bands.horizontalHeader().setStretchLastSection(True)
        self.bands.setMinimumHeight(110)
        self.input_scale = QDoubleSpinBox()
        self.input_scale.setRange(0, 1e6)
        self.input_scale.setDecimals(1)
        self.input_scale.setSpecialValueText("automatic")
        self.input_scale.setToolTip("Raw values are divided by this (after the bands' declared scale and "
                                    "offset). Automatic: 255 for 8-bit, 10000 for 16-bit reflectance, 1 for "
                                    "float. Sentinel-2 stored as reflectance x1000: 1000.")
        self.skip_nodata = QCheckBox("skip the layer's 'Additional no data value'")
        self.skip_nodata.setChecked(True)
        self.gsd = QDoubleSpinBox()
        self.gsd.setRange(0, 10000)
        self.gsd.setDecimals(2)
        self.gsd.setSpecialValueText("native (the raster's own)")
        for label, w in (("Band names", self.band_names), ("Band mapping", self.bands),
                         ("Input scale (divide by)", self.input_scale), ("No data", self.skip_nodata),
                         ("Ground resolution (m)", self.gsd)):
            form.addRow(label, w)

    def fill(self, layer: Any) -> None:
        """One row per band of ``layer``: ticked, named by the raster (or ``band<N>`` where it names none)."""
        names = gdal_band_names(layer) if isinstance(layer, QgsRasterLayer) else []
        self.bands.setRowCount(len(names))
        for i, name in enumerate(names):
            band = QTableWidgetItem(f"{i + 1}: {name or 'unnamed'}")
            band.setFlags(Qt.ItemIsUserCheckable | Qt.ItemIsEnabled)
            band.setCheckState(Qt.Checked)
            self.bands.setItem(i, 0, band)
            self.bands.setItem(i, 1, QTableWidgetItem(canonical(name) or f"band{i + 1}"))
        if self.band_names.text().strip():
            self.apply_names()

    def apply_names(self) -> None:
        names = [n.strip() for n in self.band_names.text().split(",") if n.strip()]
        for i, name in enumerate(names[: self.bands.rowCount()]):
            self.bands.setItem(i, 1, QTableWidgetItem(name))

    def band_option(self) -> str | None:
        """``name=band,...`` of the ticked bands; None when the table is empty. Raises ValueError naming a
        name that is empty, repeated or holds ',' or '='."""
        pairs = []
        for i in range(self.bands.rowCount()):
            if self.bands.item(i, 0).checkState() != Qt.Checked:
                continue
            name = (self.bands.item(i, 1).text() if self.bands.item(i, 1) else "").strip()
            if not name or "," in name or "=" in name:
                raise ValueError(f"Band {i + 1}: give it a name without ',' or '=' (e.g. B02, red).")
            pairs.append((name, i + 1))
        if not pairs and self.bands.rowCount():
            raise ValueError("Tick at least one band to train on in the band mapping.")
        names = [canonical(n) or n for n, _ in pairs]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"Band mapping: the name(s) {', '.join(twice)} are given to more than one band.")
        return ",".join(f"{n}={i}" for n, i in pairs) or None

    def options(self, layer: Any) -> dict[str, Any]:
        """The request's input fields: bands, input_scale, nodata, gsd (only those set)."""
        out: dict[str, Any] = {"bands": self.band_option()}
        if self.input_scale.value():
            out["input_scale"] = self.input_scale.value()
        nodata = user_nodata(layer) if self.skip_nodata.isChecked() and layer is not None else None
        if nodata is not None:
            out["nodata"] = nodata
        if self.gsd.value():
            out["gsd"] = self.gsd.value()
        return {k: v for k, v in out.items() if v is not None}


def working_layers(iface: Any) -> tuple[Any, Any]:
    """The raster and the polygon layer the user is working on: the active layer, then the layers selected in
    the Layers panel (a QgsMapLayerComboBox alone takes the project's first layer); None where there is none."""
    view = iface.layerTreeView() if iface is not None and hasattr(iface, "layerTreeView") else None
    candidates = [iface.activeLayer() if iface is not None else None,
                  *(view.selectedLayers() if view is not None else [])]
    raster = next((lyr for lyr in candidates if isinstance(lyr, QgsRasterLayer)), None)
    polys = next((lyr for lyr in candidates if isinstance(lyr, QgsVectorLayer)
                  and lyr.geometryType() == QgsWkbTypes.PolygonGeometry), None)
    return raster, polys


def first_text_field(layer: Any) -> str | None:
    """The layer's first text field: the class names (its first field is often the fid)."""
    if not isinstance(layer, QgsVectorLayer):
        return None
    return next((f.name() for f in layer.fields() if f.type() == 10), None)  # QVariant.String
