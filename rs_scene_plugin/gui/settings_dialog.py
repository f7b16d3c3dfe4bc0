"""Backend settings (interpreter, device, port) and the Diagnostics window."""

from __future__ import annotations

from qgis.gui import QgsFileWidget
from qgis.PyQt.QtWidgets import (
    QApplication,
    QComboBox,
    QDialog,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
)

from ..core.backend import BackendManager
from ..core.client import BackendError
from ..core.diagnostics import diagnostics_text
from ..core.settings import BackendSettings
from .cluster import cluster_text
from .widgets import StatusLabel


class SettingsDialog(QDialog):
    def __init__(self, manager: BackendManager, parent=None) -> None:
        super().__init__(parent)
        self.manager = manager
        self.setWindowTitle("RS Scene — Backend settings")
        s = BackendSettings.load()
        self.python = QgsFileWidget()
        self.python.setStorageMode(QgsFileWidget.GetFile)
        self.python.setFilePath(s.python)
        self.device = QComboBox()
        self.device.setEditable(True)
        self.device.addItems(["auto", "cpu", "cuda", "cuda:0", "mps"])
        self.device.setCurrentText(s.device)
        self.port = QSpinBox()
        self.port.setRange(0, 65535)
        self.port.setSpecialValueText("any free port")
        self.port.setValue(s.port)
        self.ray = QLineEdit(s.ray)
        self.ray.setPlaceholderText("empty: classify on this machine")
        self.ray.setToolTip("Run classify jobs on a Ray cluster: local (started on this machine), auto (the "
                            "cluster this machine belongs to), HOST:6379 or ray://HOST:10001. The layers' "
                            "files and the output folder must be at the same paths on every node.")
        form = QFormLayout()
        form.addRow("Backend Python interpreter", self.python)
        form.addRow("Device", self.device)
        form.addRow("Port (127.0.0.1)", self.port)
        form.addRow("Ray cluster", self.ray)
        self.status = StatusLabel()
        self.test_button, self.save_button, close = QPushButton("Save and test"), QPushButton("Save"), \
            QPushButton("Close")
        self.test_button.clicked.connect(self.save_and_test)
        self.save_button.clicked.connect(self.save)
        close.clicked.connect(self.close)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        for b in (self.test_button, self.save_button, close):
            b.setAutoDefault(False)
            buttons.addWidget(b)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.status)
        layout.addLayout(buttons)
        self.resize(560, 200)

    def settings(self) -> BackendSettings:
        return BackendSettings(python=self.python.filePath().strip(), device=self.device.currentText().strip()
                               or "auto", port=self.port.value(), ray=self.ray.text().strip())

    def save(self) -> bool:
        s = self.settings()
        problem = s.problem()
        if problem:
            self.status.error(problem)
            return False
        s.save()
        self.manager.stop()  # the next job starts the service with the new settings
        self.status.info("Saved; the service will restart with these settings on the next run.")
        return True

    def save_and_test(self) -> bool:
        if not self.save():
            return False
        try:
            health = self.manager.client().health()
        except BackendError as exc:
            self.status.error(str(exc))
            return False
        dev = health["device"]
        self.status.info(f"Service running: rs_scene {health['version']}, torch {dev['torch']}, device "
                         f"{dev['type']} {dev.get('name', '')}" + (f" ({dev['memory_gb']} GB)"
                                                                  if dev.get("memory_gb") else "")
                         + (f". {cluster_text(health)}" if health.get("ray") else ""))
        return True


class DiagnosticsDialog(QDialog):
    def __init__(self, manager: BackendManager, parent=None) -> None:
        super().__init__(parent)
        self.setWindowTitle("RS Scene — Diagnostics")
        self.text = QPlainTextEdit()
        self.text.setReadOnly(True)
        self.text.setPlainText(diagnostics_text(manager))
        copy, close = QPushButton("Copy to clipboard"), QPushButton("Close")
        copy.clicked.connect(self.copy)
        close.clicked.connect(self.close)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(copy), buttons.addWidget(close)
        layout = QVBoxLayout(self)
        layout.addWidget(self.text)
        layout.addLayout(buttons)
        self.resize(720, 480)
        self.copy()

    def copy(self) -> None:
        QApplication.clipboard().setText(self.text.toPlainText())
