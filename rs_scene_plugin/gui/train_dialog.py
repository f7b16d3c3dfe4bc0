"""The Training dialog: data (raster + labelled polygons, or a dataset folder), a method with its options as a
form built from the service's method list, live curves, cancel, and the confusion matrix at the end."""

from __future__ import annotations

from typing import Any

from qgis.core import QgsApplication, QgsFieldProxyModel, QgsMapLayerProxyModel
from qgis.gui import QgsFieldComboBox, QgsFileWidget, QgsMapLayerComboBox
from qgis.PyQt.QtCore import pyqtSignal
from qgis.PyQt.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QRadioButton,
    QScrollArea,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ..core.backend import BackendManager
from ..core.client import BackendError
from ..core.jobs import describe, percent
from ..core.labels import check_labels
from ..core.train import TrainSpec, TrainTask
from .curves import CurvesWidget
from .method_form import option_value, option_widget
from .widgets import StatusLabel


class TrainDialog(QDialog):
    model_trained = pyqtSignal(str)

    def __init__(self, iface: Any, manager: BackendManager, parent=None) -> None:
        super().__init__(parent)
        self.iface, self.manager = iface, manager
        self.methods: dict[str, dict[str, Any]] = {}
        self.option_widgets: dict[str, QWidget] = {}
        self.task: TrainTask | None = None
        self.setWindowTitle("RS Scene — Train model")
        self._build()

    def _build(self) -> None:
        data = QGroupBox("Training data")
        form = QFormLayout(data)
        self.from_polygons, self.from_folder = QRadioButton("Raster + labelled polygons"), QRadioButton("Folder")
        self.from_polygons.setChecked(True)
        row = QHBoxLayout()
        row.addWidget(self.from_polygons), row.addWidget(self.from_folder)
        form.addRow(row)
        self.raster = QgsMapLayerComboBox()
        self.raster.setFilters(QgsMapLayerProxyModel.RasterLayer)
        self.polygons = QgsMapLayerComboBox()
        self.polygons.setFilters(QgsMapLayerProxyModel.PolygonLayer)
        self.class_field = QgsFieldComboBox()
        self.class_field.setFilters(QgsFieldProxyModel.String | QgsFieldProxyModel.Int | QgsFieldProxyModel.LongLong)
        self.polygons.layerChanged.connect(self.class_field.setLayer)
        self.class_field.setLayer(self.polygons.currentLayer())
        self.band_names = QLineEdit()
        self.band_names.setPlaceholderText("the raster's band names in order, if it has none (B02,B03,…)")
        self.tile_size = QSpinBox()
        self.tile_size.setRange(8, 1024)
        self.tile_size.setValue(64)
        self.folder = QgsFileWidget()
        self.folder.setStorageMode(QgsFileWidget.GetDirectory)
        for label, w in (("Raster", self.raster), ("Polygons", self.polygons), ("Class field", self.class_field),
                         ("Band names", self.band_names), ("Tile size (pixels)", self.tile_size),
                         ("Dataset folder", self.folder)):
            form.addRow(label, w)
        method = QGroupBox("Method")
        mform = QFormLayout(method)
        self.method = QComboBox()
        self.method.currentIndexChanged.connect(self._method_changed)
        self.method_info = QLabel()
        self.method_info.setWordWrap(True)
        mform.addRow("Method", self.method)
        mform.addRow("", self.method_info)
        self.options_form = QFormLayout()
        mform.addRow(self.options_form)
        self.name = QLineEdit("my-model")
        self.val_share = QDoubleSpinBox()
        self.val_share.setRange(0.0, 0.9)
        self.val_share.setSingleStep(0.05)
        self.val_share.setValue(0.2)
        mform.addRow("Model name", self.name)
        mform.addRow("Validation share (spatial blocks)", self.val_share)

        self.curves, self.progress, self.status = CurvesWidget(), QProgressBar(), StatusLabel()
        self.matrix = QTableWidget()
        self.matrix.setMinimumHeight(120)
        self.train_button, self.cancel_button, close = QPushButton("Train"), QPushButton("Cancel"), \
            QPushButton("Close")
        self.train_button.clicked.connect(self.train)
        self.cancel_button.clicked.connect(self.cancel)
        self.cancel_button.setEnabled(False)
        close.clicked.connect(self.hide)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        for b in (self.train_button, self.cancel_button, close):
            b.setAutoDefault(False)
            buttons.addWidget(b)
        content = QWidget()
        inner = QVBoxLayout(content)
        for w in (data, method, self.curves, self.progress, self.status, self.matrix):
            inner.addWidget(w)
        self.scroll = QScrollArea()  # the content scrolls on a 1366x768 screen; the buttons below stay visible
        self.scroll.setWidgetResizable(True)
        self.scroll.setWidget(content)
        layout = QVBoxLayout(self)
        layout.addWidget(self.scroll, 1)
        layout.addLayout(buttons)
        self.resize(660, 680)

    # -- methods -------------------------------------------------------------------------------------------
    def open_fresh(self) -> None:
        self.show()
        self.raise_()
        self.load_methods()

    def load_methods(self) -> bool:
        try:
            client = self.manager.client()
            methods = client.methods()
            self._models = [m["name"] for m in client.models() if "error" not in m]
        except BackendError as exc:
            self.status.error(str(exc))
            return False
        current = self.method.currentText()
        self.methods = {m["name"]: m for m in methods}
        self.method.blockSignals(True)
        self.method.clear()
        self.method.addItems(list(self.methods))
        self.method.setCurrentText(current if current in self.methods else "pretrain")
        self.method.blockSignals(False)
        self._method_changed()
        return True

    def _method_changed(self) -> None:
        m = self.methods.get(self.method.currentText())
        while self.options_form.rowCount():
            self.options_form.removeRow(0)
        self.option_widgets = {}
        if m is None:
            return
        self.method_info.setText(m.get("description", ""))
        for opt in m["options"]:
            w = option_widget(opt, getattr(self, "_models", []))
            self.option_widgets[opt["name"]] = w
            self.options_form.addRow(opt["name"].replace("_", " "), w)

    def set_option(self, name: str, value: Any) -> None:
        w = self.option_widgets[name]
        if isinstance(w, QComboBox):
            w.setCurrentText(str(value))
        elif isinstance(w, QCheckBox):
            w.setChecked(bool(value))
        elif isinstance(w, (QSpinBox, QDoubleSpinBox)):
            w.setValue(value)
        else:
            w.setText(str(value))

    # -- running -------------------------------------------------------------------------------------------
    def build_spec(self) -> TrainSpec:
        if not self.methods:
            raise ValueError("No training methods: the service is not available (see RS Scene > Diagnostics).")
        name = self.name.text().strip()
        if not name:
            raise ValueError("Give the new model a name.")
        spec = TrainSpec(method=self.method.currentText(), name=name, val_fraction=self.val_share.value(),
                         options={k: option_value(w) for k, w in self.option_widgets.items()})
        if self.from_folder.isChecked():
            spec.data = self.folder.filePath().strip()
            if not spec.data:
                raise ValueError("Choose the dataset folder (one sub-folder per class).")
            return spec
        spec.raster, spec.labels = self.raster.currentLayer(), self.polygons.currentLayer()
        spec.class_field = self.class_field.currentField()
        if spec.raster is None or spec.labels is None:
            raise ValueError("Choose the raster layer and the polygon layer with the classes.")
        if not spec.class_field:
            raise ValueError(f"Choose the field of layer '{spec.labels.name()}' that holds the class names.")
        counts = check_labels(spec.labels, spec.class_field)
        if len(counts) < 2:
            raise ValueError(f"Layer '{spec.labels.name()}' has polygons of one class only ({next(iter(counts))})"
                             f" in field '{spec.class_field}'; training needs at least two classes.")
        spec.bands = self.band_names.text().strip() or None
        spec.tile_size = self.tile_size.value()
        return spec

    def train(self) -> TrainTask | None:
        if not self.methods and not self.load_methods():
            return None
        try:
            spec = self.build_spec()
        except ValueError as exc:
            self.status.error(str(exc))
            return None
        self.curves.clear()
        self.matrix.clear()
        self.matrix.setRowCount(0)
        self.task = TrainTask(self.manager, spec)
        self.task.update.connect(self._progress)
        self.task.taskCompleted.connect(self._done)
        self.task.taskTerminated.connect(self._done)
        self.train_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.status.info(f"Training '{spec.name}' with {spec.method}…")
        QgsApplication.taskManager().addTask(self.task)
        return self.task

    def cancel(self) -> None:
        if self.task is not None:
            self.task.cancel()

    def _progress(self, job: dict[str, Any]) -> None:
        self.progress.setValue(int(percent(job)))
        self.curves.add_job(job)
        self.status.info(describe(job))

    def _done(self) -> None:
        task = self.task
        self.train_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        if task is None:
            return
        if task.result:
            self.progress.setValue(100)
            self.show_metrics(task.result.get("metrics") or {})
            acc = (task.result.get("metrics") or {}).get("overall_accuracy")
            self.status.info(f"Model '{task.result['model']}' saved to {task.result['path']}"
                             + (f"; held-out overall accuracy {acc:.1%}" if acc is not None else "")
                             + ". It is now listed in the Classify dialog.")
            self.model_trained.emit(task.result["model"])
        elif task.error:
            self.status.error(task.error)
        else:
            self.status.info("Cancelled: no model was written.")

    def show_metrics(self, metrics: dict[str, Any]) -> None:
        """Confusion matrix (rows true, columns predicted) with each class's accuracy in the last column."""
        classes, cm = metrics.get("classes") or list(metrics.get("per_class", {})), metrics.get("confusion_matrix")
        if not cm:
            return
        self.matrix.setRowCount(len(classes))
        self.matrix.setColumnCount(len(classes) + 1)
        self.matrix.setHorizontalHeaderLabels([*classes, "accuracy"])
        self.matrix.setVerticalHeaderLabels(classes)
        for i, row in enumerate(cm):
            for j, n in enumerate(row):
                self.matrix.setItem(i, j, QTableWidgetItem(str(n)))
            acc = metrics.get("per_class", {}).get(classes[i])
            self.matrix.setItem(i, len(classes), QTableWidgetItem("—" if acc is None else f"{acc:.0%}"))
