"""The Training dialog: data (raster + labelled polygons, or a dataset folder) read as classify reads it (band
mapping, input scale, extra no-data, GSD), a method with its options as a form built from the service's
method list (kept between openings), live curves, cancel, and a last screen with the labelled figures,
per-class recall, the confusion matrix and the warnings."""

from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsApplication,
    QgsFieldProxyModel,
    QgsMapLayerProxyModel,
)
from qgis.gui import QgsFieldComboBox, QgsFileWidget, QgsMapLayerComboBox
from qgis.PyQt.QtCore import pyqtSignal
from qgis.PyQt.QtWidgets import (
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
    QSpinBox,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from ..core.backend import BackendManager
from ..core.client import BackendError
from ..core.jobs import describe, percent
from ..core.labels import check_labels
from ..core.train import TrainSpec, TrainTask, resumable_checkpoint
from .curves import CurvesWidget
from .method_form import (
    changed_options,
    option_widget,
    save_options,
    saved_options,
    set_value,
)
from .train_inputs import TrainInputs, first_text_field, working_layers
from .train_report import TrainReport
from .widgets import StatusLabel, scrolled

SETTINGS_KEY = "rs_scene/train/options"


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
        self.polygons.layerChanged.connect(self._polygons_changed)
        self._polygons_changed(self.polygons.currentLayer())
        self.tile_size = QSpinBox()
        self.tile_size.setRange(8, 1024)
        self.tile_size.setValue(64)
        self.folder = QgsFileWidget()
        self.folder.setStorageMode(QgsFileWidget.GetDirectory)
        for label, w in (("Raster", self.raster), ("Polygons", self.polygons), ("Class field", self.class_field)):
            form.addRow(label, w)
        self.inputs = TrainInputs(form)
        self.band_names = self.inputs.band_names
        self.raster.layerChanged.connect(self.inputs.fill)
        for label, w in (("Tile size (pixels)", self.tile_size), ("Dataset folder", self.folder)):
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
        self.test_share = QDoubleSpinBox()
        self.test_share.setRange(0.0, 0.5)
        self.test_share.setSingleStep(0.05)
        self.test_share.setValue(0.2)
        self.test_share.setToolTip("Blocks kept out of training and of choosing the epoch, evaluated once at "
                                   "the end (made when every class lies in 3 or more blocks)")
        mform.addRow("Held-out share (spatial blocks)", self.test_share)
        self.block = QSpinBox()
        self.block.setRange(1, 64)
        self.block.setValue(4)
        self.block.setToolTip("Tiles go to training, validation or held-out in square blocks of this many "
                              "tiles a side, so that neighbours (which look alike) are not on both sides")
        mform.addRow("Block size (tiles)", self.block)

        self.curves, self.progress, self.status = CurvesWidget(), QProgressBar(), StatusLabel()
        self.input_warning = StatusLabel()
        self.report = TrainReport()
        self.matrix = self.report.matrix
        self.train_button, self.cancel_button, close = QPushButton("Train"), QPushButton("Cancel"), \
            QPushButton("Close")
        self.train_button.clicked.connect(lambda: self.train())
        self.resume_button = QPushButton("Resume")
        self.resume_button.setToolTip("Continue the interrupted training of this model from its last epoch")
        self.resume_button.hide()
        self.resume_button.clicked.connect(lambda: self.train(resume=True))
        self.name.textChanged.connect(self.offer_resume)
        self.cancel_button.clicked.connect(self.cancel)
        self.cancel_button.setEnabled(False)
        close.clicked.connect(self.hide)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        for b in (self.resume_button, self.train_button, self.cancel_button, close):
            b.setAutoDefault(False)
            buttons.addWidget(b)
        inner = QVBoxLayout()
        for w in (data, method, self.curves, self.progress, self.input_warning):
            inner.addWidget(w)
        self.scroll = scrolled(inner)  # the content scrolls on a 1366x768 screen; the buttons stay visible
        back = QPushButton("Back to the settings")
        back.setAutoDefault(False)
        back.clicked.connect(lambda: self.stack.setCurrentIndex(0))
        report = QVBoxLayout()
        report.addWidget(self.report)
        report.addWidget(back)
        self.stack = QStackedWidget()
        self.stack.addWidget(self.scroll)
        self.stack.addWidget(scrolled(report))
        layout = QVBoxLayout(self)
        layout.addWidget(self.stack, 1)
        layout.addWidget(self.status)
        layout.addLayout(buttons)
        self.resize(660, 680)

    # -- methods -------------------------------------------------------------------------------------------
    def open_fresh(self) -> None:
        self.default_layers()
        self.offer_resume()
        self.stack.setCurrentIndex(0)
        self.show()
        self.raise_()
        self.load_methods()

    def default_layers(self) -> None:
        raster, polys = working_layers(self.iface)
        if raster is not None:
            self.raster.setLayer(raster)
        if polys is not None:
            self.polygons.setLayer(polys)
        self.inputs.fill(self.raster.currentLayer())

    def _polygons_changed(self, layer: Any) -> None:
        self.class_field.setLayer(layer)
        field = first_text_field(layer)
        if field:
            self.class_field.setField(field)

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
        self.restore_options()

    def restore_options(self) -> None:
        """The values this method's options had in the last training started from this dialog."""
        for key, value in saved_options(SETTINGS_KEY, self.method.currentText()).items():
            if key in self.option_widgets:
                set_value(self.option_widgets[key], value)

    def changed_options(self) -> dict[str, Any]:
        return changed_options(self.methods[self.method.currentText()]["options"], self.option_widgets)

    def save_options(self) -> None:
        save_options(SETTINGS_KEY, self.method.currentText(), self.option_widgets)

    def set_option(self, name: str, value: Any) -> None:
        set_value(self.option_widgets[name], value)

    # -- running -------------------------------------------------------------------------------------------
    def build_spec(self) -> TrainSpec:
        if not self.methods:
            raise ValueError("No training methods: the service is not available (see RS Scene > Diagnostics).")
        name = self.name.text().strip()
        if not name:
            raise ValueError("Give the new model a name.")
        spec = TrainSpec(method=self.method.currentText(), name=name, val_fraction=self.val_share.value(),
                         test_fraction=self.test_share.value(), options=self.changed_options())
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
        self.inputs.apply_names()
        inputs = self.inputs.options(spec.raster)
        spec.bands, spec.input_scale = inputs.get("bands"), inputs.get("input_scale")
        spec.nodata, spec.gsd = inputs.get("nodata"), inputs.get("gsd")
        spec.tile_size, spec.block = self.tile_size.value(), self.block.value()
        return spec

    def offer_resume(self) -> bool:
        """Show Resume when a killed training of this model left a checkpoint that says what it resumes."""
        ckpt = resumable_checkpoint(self.name.text().strip())
        self.resume_button.setVisible(ckpt is not None)
        if ckpt is not None:
            self.resume_button.setText(f"Resume '{self.name.text().strip()}'")
        return ckpt is not None

    def train(self, resume: bool = False) -> TrainTask | None:
        if not self.methods and not self.load_methods():
            return None
        try:
            spec = self.build_spec()
        except ValueError as exc:
            self.status.error(str(exc))
            return None
        spec.resume = resume
        self.save_options()
        self.curves.clear()
        self.report.clear()
        self.input_warning.clear()
        self.task = TrainTask(self.manager, spec)
        self.task.update.connect(self._progress)
        self.task.taskCompleted.connect(self._done)
        self.task.taskTerminated.connect(self._done)
        self.train_button.setEnabled(False)
        self.resume_button.setVisible(False)
        self.cancel_button.setEnabled(True)
        self.status.info(f"{'Resuming' if resume else 'Training'} '{spec.name}' with {spec.method}…")
        QgsApplication.taskManager().addTask(self.task)
        return self.task

    def cancel(self) -> None:
        if self.task is not None:
            self.task.cancel()

    def _progress(self, job: dict[str, Any]) -> None:
        self.progress.setValue(int(percent(job)))
        self.curves.add_job(job)
        self.status.info(describe(job))
        warnings = (job.get("metrics") or {}).get("warnings")
        if warnings:  # the range check, before the first epoch: the run goes on, as classify's does
            self.input_warning.error("\n".join(warnings))

    def _done(self) -> None:
        task = self.task
        self.train_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        if task is None:
            return
        if task.result:
            self.progress.setValue(100)
            self.report.show_result(task.result)
            self.stack.setCurrentIndex(1)
            m = task.result.get("metrics") or {}
            figure = (f"; {m['label']}: overall accuracy {m['overall_accuracy']:.1%}, balanced accuracy "
                      f"{m.get('balanced_accuracy', 0):.1%}" if "overall_accuracy" in m else "")
            n_warn = len(task.result.get("warnings") or [])
            self.status.info(f"Model '{task.result['model']}' saved to {task.result['path']}{figure}"
                             + (f"; {n_warn} warning(s), see above" if n_warn else "")
                             + ". It is now listed in the Classify dialog.")
            self.model_trained.emit(task.result["model"])
        elif task.error:
            self.status.error(task.error + (" Its checkpoint was kept: Resume continues from the last epoch."
                                            if self.offer_resume() else ""))
        else:
            self.status.info("Cancelled: no model was written.")
