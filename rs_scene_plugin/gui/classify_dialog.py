"""The Classify dialog: it only fills a ClassifySpec and starts a ClassifyTask."""

from __future__ import annotations

from typing import Any

from qgis.core import (
    Qgis,
    QgsApplication,
    QgsMapLayerProxyModel,
    QgsRasterLayer,
)
from qgis.gui import QgsFileWidget, QgsMapLayerComboBox
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtWidgets import (
    QApplication,
    QCheckBox,
    QComboBox,
    QDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QRadioButton,
    QVBoxLayout,
)

from ..core.backend import BackendManager
from ..core.bands import mapping_option, missing_bands, names_to_mapping
from ..core.classify import ClassifySpec, ClassifyTask, EstimateTask
from ..core.client import BackendError
from ..core.derive import RunSettings, derive, order_models
from ..core.extent import set_extent
from ..core.fixes import Fix, fixes, for_fields
from ..core.model_list import remember_models
from ..core.pixels import gdal_band_names
from ..processing.classify_alg import CAMS
from .cluster import ClusterLabel
from .messages import LatestMessage
from .run_options import FixButtons, RunOptions, request_options
from .widgets import BandMappingTable, StatusLabel, fit_to_screen, scrolled

EXTENTS = ["Whole layer", "Map canvas", "Selected polygons"]


class ClassifyDialog(QDialog):
    def __init__(self, iface: Any, manager: BackendManager, tasks: list[Any], parent=None) -> None:
        super().__init__(parent)
        self.iface, self.manager, self.tasks = iface, manager, tasks
        self.models: dict[str, dict[str, Any]] = {}
        self.memory: dict[tuple[str, str], tuple[RunSettings, str]] = {}  # (layer id, model) -> the user's
        self.layer_model: dict[str, str] = {}  # layer id -> the model last used with it
        self._current: tuple[str, str] | None = None
        self.message = LatestMessage(self.iface.messageBar)
        self.task: ClassifyTask | None = None
        self.estimate_task: EstimateTask | None = None
        self.setWindowTitle("RS Scene — Classify layer")
        self._build()

    # -- layout ----------------------------------------------------------------------------------------------
    def _build(self) -> None:
        form = QFormLayout()
        self.layer = QgsMapLayerComboBox()
        self.layer.setFilters(QgsMapLayerProxyModel.RasterLayer)
        self.layer.layerChanged.connect(self._layer_changed)
        form.addRow("Raster layer", self.layer)
        self.model = QComboBox()
        self.model.setToolTip("Ordered by how well each model's bands fit the layer's")
        self.model.currentIndexChanged.connect(self._model_changed)
        form.addRow("Model", self.model)
        self.model_info, self.derived_info = QLabel(), QLabel()
        for label in (self.model_info, self.derived_info):
            label.setWordWrap(True)
        form.addRow("", self.model_info)
        form.addRow("", self.derived_info)
        self.band_names = QLineEdit()
        self.band_names.setPlaceholderText("names of the layer's bands in order, e.g. B02,B03,B04,…")
        self.band_names.editingFinished.connect(self._apply_band_names)
        form.addRow("Layer band names", self.band_names)
        self.bands = BandMappingTable()
        form.addRow("Band mapping", self.bands)
        self.options = RunOptions(form)
        self.tile_size, self.stride, self.input_scale = (self.options.tile_size, self.options.stride,
                                                         self.options.input_scale)
        self._build_outputs(form)

    def _build_outputs(self, form: QFormLayout) -> None:
        self.extent = QComboBox()
        self.extent.addItems(EXTENTS)
        self.mask_layer = QgsMapLayerComboBox()
        self.mask_layer.setFilters(QgsMapLayerProxyModel.PolygonLayer)
        row = QHBoxLayout()
        row.addWidget(self.extent), row.addWidget(self.mask_layer)
        form.addRow("Extent", row)
        self.heatmap = QCheckBox("Attention heatmap")
        self.heatmap.setChecked(True)
        self.cam = QComboBox()
        self.cam.addItems(CAMS)
        row = QHBoxLayout()
        row.addWidget(self.heatmap), row.addWidget(self.cam)
        form.addRow("Heatmap", row)
        self.temporary, self.to_file = QRadioButton("Temporary"), QRadioButton("GeoPackage")
        self.temporary.setChecked(True)
        self.out_file = QgsFileWidget()
        self.out_file.setStorageMode(QgsFileWidget.SaveFile)
        self.out_file.setFilter("GeoPackage (*.gpkg)")
        row = QHBoxLayout()
        row.addWidget(self.temporary), row.addWidget(self.to_file), row.addWidget(self.out_file)
        form.addRow("Output", row)
        self._build_bottom(form)

    def _build_bottom(self, form: QFormLayout) -> None:
        """The scrolling form above; progress, status, fix buttons and the dialog's buttons always visible."""
        self.status, self.progress, self.cluster = StatusLabel(), QProgressBar(), ClusterLabel()
        self.fix_buttons = FixButtons(self.apply_fix)
        self.fix_buttons.setVisible(False)
        self.run_button, self.cancel_button, self.close_button = (QPushButton("Classify"), QPushButton("Cancel"),
                                                                  QPushButton("Close"))
        self.estimate_button = QPushButton("Estimate time")
        self.estimate_button.setToolTip("Classify a sample at the layer's centre with these settings (nothing is "
                                        "written) and scale it to the whole run")
        self.cancel_button.setEnabled(False)
        self.estimate_button.clicked.connect(self.estimate)
        self.run_button.clicked.connect(self.run)
        self.cancel_button.clicked.connect(self.cancel)
        self.close_button.clicked.connect(self.hide)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        for b in (self.estimate_button, self.run_button, self.cancel_button, self.close_button):
            b.setAutoDefault(False)  # Return in the band names field must not start a run
            buttons.addWidget(b)
        layout = QVBoxLayout(self)
        self.scroll = scrolled(form)  # the form scrolls on a small screen; status and buttons stay visible
        layout.addWidget(self.scroll, 1)
        layout.addWidget(self.cluster)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addWidget(self.fix_buttons)
        layout.addLayout(buttons)
        fit_to_screen(self, 620, 820)

    # -- filling: every layer and model change derives its settings, or restores the user's for that layer --
    def open_for(self, layer: QgsRasterLayer | None = None) -> None:
        if layer is not None:
            self.layer.setLayer(layer)
        self.show()
        self.raise_()
        self.load_models()

    def load_models(self) -> bool:
        """Ask the service for its models; on failure say why and how to fix it."""
        QApplication.setOverrideCursor(Qt.WaitCursor)
        try:
            models = [m for m in self.manager.client().models() if "error" not in m]
        except BackendError as exc:
            self.status.error(str(exc))
            return False
        finally:
            QApplication.restoreOverrideCursor()
        self.cluster.show_for(self.manager.health)  # the running service's: on a Ray cluster, or here
        self.models = {m["name"]: m for m in models}
        remember_models(list(self.models))  # Processing's model list
        self._store()
        self._current = None
        self._fill_models()
        self._show_settings()
        self.status.info(f"{len(models)} model(s) installed.")
        return True

    def _fill_models(self) -> None:
        """The models ordered by fit to the layer's bands; the layer's last model, else the best fit."""
        layer = self.layer.currentLayer()
        ordered = [c["name"] for c in order_models(list(self.models.values()), layer)]
        keep = self.layer_model.get(layer.id()) if isinstance(layer, QgsRasterLayer) else None
        self.model.blockSignals(True)
        self.model.clear()
        self.model.addItems(ordered)
        if keep in self.models:
            self.model.setCurrentText(keep)
        self.model.blockSignals(False)
        self._model_info()

    def card(self) -> dict[str, Any] | None:
        return self.models.get(self.model.currentText())

    def _layer_changed(self, *_: Any) -> None:
        self._store()
        self._current = None
        if self.models:
            self._fill_models()
        self._show_settings()

    def _model_changed(self, *_: Any) -> None:
        self._store()
        self._model_info()
        self._show_settings()

    def _model_info(self) -> None:
        card = self.card()
        if card is None:
            self.model_info.setText("")
            return
        classes = ", ".join(f"<span style='color:{c['color']}'>■</span> {c['name']}" for c in card["classes"])
        self.model_info.setText(f"<b>{card.get('task', '')}</b>, {card.get('tile_size')} px tiles at "
                                f"{card.get('gsd')} m; bands {', '.join(card['bands'])}<br>{classes}")

    def _store(self) -> None:
        """Remember the settings shown for the current layer and model (the user's edits among them)."""
        if self._current is None:
            return
        self.memory[self._current] = (self.options.read(self.bands.mapping()), self.band_names.text())
        self.layer_model[self._current[0]] = self._current[1]

    def _show_settings(self) -> None:
        layer, card = self.layer.currentLayer(), self.card()
        self.fix_buttons.show_fixes([])
        if not isinstance(layer, QgsRasterLayer) or card is None:
            self._current = None
            return
        key = (layer.id(), card["name"])
        self.bands.fill(card["bands"], gdal_band_names(layer))
        if key in self.memory:
            settings, names = self.memory[key]
            self.derived_info.setText("Your settings for this layer and model.")
        else:
            settings, names = derive(layer, card), ""
            self.derived_info.setText("Derived from the layer: " + "; ".join(settings.notes)
                                      if settings.notes else "")
        for band, idx in settings.mapping.items():
            self.bands.set_layer_band(band, idx)
        self.options.write(settings)
        self.band_names.setText(names)
        self._current = key

    def apply_fix(self, fix: Fix) -> None:
        """A warning's button: set the field it names (the next run or estimate uses it)."""
        self.options.apply_fix(fix)
        self.show()
        self.raise_()
        self.status.info(f"{fix.label.replace('Set ', '', 1)}: done. Run or estimate again.")
        self.fix_buttons.show_fixes([])

    def _apply_band_names(self) -> None:
        card = self.card()
        if card is None or not self.band_names.text().strip():
            return
        for band, idx in names_to_mapping(card["bands"], self.band_names.text()).items():
            self.bands.set_layer_band(band, idx)

    # -- running -----------------------------------------------------------------------------------------------
    def build_spec(self) -> ClassifySpec:
        """The spec for the current choices; ValueError naming what is missing or wrong."""
        layer, card = self.layer.currentLayer(), self.card()
        if not isinstance(layer, QgsRasterLayer):
            raise ValueError("Choose a raster layer to classify.")  # noqa: TRY004 (a message for the user)
        if card is None:
            raise ValueError("No model is selected (is the service running? see RS Scene > Diagnostics).")
        mapping = self.bands.mapping()
        missing = missing_bands(mapping)
        if missing:
            raise ValueError(f"Layer '{layer.name()}' lacks band(s) {', '.join(missing)} needed by model "
                             f"'{card['name']}'. Pick them in the band mapping or type the layer's band names.")
        if self.to_file.isChecked() and not self.out_file.filePath().strip():
            raise ValueError("Choose the output GeoPackage, or pick 'Temporary'.")
        try:
            opts = request_options(self.options.read(mapping))
        except ValueError:
            raise ValueError(f"Extra nodata '{self.options.nodata.text()}' is not a number: give the raw value "
                             "of missing pixels, or leave it empty.") from None
        spec = ClassifySpec(model=card, bands=mapping_option(mapping), tile_size=self.tile_size.value() or None,
                            stride=self.stride.value() or None, heatmap=self.heatmap.isChecked(),
                            cam=self.cam.currentText(), input_scale=self.input_scale.value() or None,
                            out_gpkg=self.out_file.filePath().strip() if self.to_file.isChecked() else None,
                            gsd=opts.get("gsd"), nodata=opts.get("nodata"), edge=opts["edge"])
        self._set_extent(spec, layer)
        return spec

    def _set_extent(self, spec: ClassifySpec, layer: QgsRasterLayer) -> None:
        set_extent(spec, layer, self.extent.currentText(), self.iface.mapCanvas(), self.mask_layer.currentLayer())

    def checked_spec(self) -> ClassifySpec | None:
        """The spec for the current choices, or None with what is missing or wrong in the status line."""
        if not self.models and not self.load_models():
            return None
        try:
            return self.build_spec()
        except ValueError as exc:
            self.status.error(str(exc))
            return None

    def run(self) -> ClassifyTask | None:
        spec = self.checked_spec()
        if spec is None:
            return None
        layer = self.layer.currentLayer()
        self.task = ClassifyTask(self.manager, spec, layer, on_finished=self._finished)
        self.task.progressChanged.connect(lambda p: self.progress.setValue(int(p)))
        self.tasks.append(self.task)
        self.run_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.progress.setValue(0)
        self.status.info(f"Classifying '{layer.name()}' with {spec.model['name']}{self.cluster.suffix}…")
        QgsApplication.taskManager().addTask(self.task)
        return self.task

    def estimate(self) -> EstimateTask | None:
        """The ETA for the current choices, in the status line when the service has measured it."""
        spec = self.checked_spec()
        if spec is None:
            return None
        task = EstimateTask(self.manager, spec, self.layer.currentLayer(), on_finished=self._estimated)
        self.estimate_task = task
        self.estimate_button.setEnabled(False)
        self.status.info("Estimating: classifying a sample at the layer's centre…")
        QgsApplication.taskManager().addTask(task)
        return task

    def _estimated(self, task: EstimateTask) -> None:
        self.estimate_button.setEnabled(True)
        if task.error:
            self._problem(task.error)
        elif task.result.get("warnings"):  # fix the inputs before the run, not after
            self._problem(task.text)
        else:
            self.status.info(task.text)

    def _problem(self, text: str) -> list[Fix]:
        """``text`` in the status line with the dialog's field names, and a button per fix it prescribes."""
        found = fixes(text)
        self.status.error(for_fields(text))
        self.fix_buttons.show_fixes(found)
        return found

    def cancel(self) -> None:
        if self.task is not None:
            self.task.cancel()

    def _finished(self, task: ClassifyTask) -> None:
        if task in self.tasks:
            self.tasks.remove(task)
        self.run_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        if task.added:
            self.progress.setValue(100)
            warnings = task.result.get("warnings") or []
            if warnings:  # it ran, but the inputs look wrong: say so where the user looks, and keep it there
                found = self._problem("\n".join([task.summary, *warnings]))  # every warning, every fix
                self.message.push(f"{task.added[-1].name()}: {for_fields(' '.join(warnings))}", Qgis.Warning, 0,
                                  found, self.apply_fix)
            else:
                self.status.info(task.summary)
                self.fix_buttons.show_fixes([])
                self.message.push(f"{task.added[-1].name()}: {task.summary}", Qgis.Success, 15)
        elif task.cancelled:
            self.progress.setValue(0)
            self.status.info("Cancelled: nothing was added.")
            self.message.clear()
        else:
            error = task.error or "The classification failed."
            found = self._problem(error)
            self.message.push(f"{task.layer_name}: {for_fields(error.splitlines()[0])}", Qgis.Critical, 0, found,
                              self.apply_fix)
