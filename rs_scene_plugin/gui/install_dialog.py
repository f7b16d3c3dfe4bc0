"""Install backend: a venv in the QGIS profile folder with the backend pip-installed, with visible progress."""

from __future__ import annotations

from pathlib import Path

from qgis.core import QgsApplication, QgsTask
from qgis.gui import QgsFileWidget
from qgis.PyQt.QtCore import pyqtSignal
from qgis.PyQt.QtWidgets import (
    QDialog,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
)

from ..core.backend import BackendManager
from ..core.install import (
    InstallError,
    default_base_python,
    default_package,
    install_backend,
)
from ..core.settings import BackendSettings, default_venv
from .widgets import StatusLabel


class InstallTask(QgsTask):
    line = pyqtSignal(str)

    def __init__(self, base: str, package: str, venv: Path, pip_options: str) -> None:
        super().__init__("RS Scene: install backend", QgsTask.CanCancel)
        self.base, self.package, self.venv, self.pip_options = base, package, venv, pip_options
        self.python: str | None = None
        self.error: str | None = None
        self.completed = False

    def run(self) -> bool:
        try:
            self.python = install_backend(self.base, self.package, self.venv, self.line.emit, self.isCanceled,
                                          self.pip_options, self.setProgress)
            return True
        except InterruptedError:
            self.error = "Installation cancelled; the incomplete environment was removed."
        except (InstallError, OSError) as exc:
            self.error = str(exc)
        return False

    def finished(self, ok: bool) -> None:
        self.completed = True


class InstallDialog(QDialog):
    def __init__(self, manager: BackendManager, parent=None) -> None:
        super().__init__(parent)
        self.manager = manager
        self.task: InstallTask | None = None
        self.setWindowTitle("RS Scene — Install backend")
        self.base = QgsFileWidget()
        self.base.setFilePath(default_base_python())
        self.package = QLineEdit(default_package())
        self.venv = QLineEdit(str(default_venv()))
        self.pip_options = QLineEdit()
        self.pip_options.setPlaceholderText("e.g. --index-url … or --no-deps")
        form = QFormLayout()
        form.addRow("Base Python 3.10+", self.base)
        form.addRow("Backend package", self.package)
        form.addRow("Environment folder", self.venv)
        form.addRow("Extra pip options", self.pip_options)
        self.progress, self.log, self.status = QProgressBar(), QPlainTextEdit(), StatusLabel()
        self.log.setReadOnly(True)
        self.install_button, self.cancel_button, close = QPushButton("Install"), QPushButton("Cancel"), \
            QPushButton("Close")
        self.install_button.clicked.connect(self.install)
        self.cancel_button.clicked.connect(lambda: self.task and self.task.cancel())
        self.cancel_button.setEnabled(False)
        close.clicked.connect(self.close)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        for b in (self.install_button, self.cancel_button, close):
            b.setAutoDefault(False)
            buttons.addWidget(b)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.progress)
        layout.addWidget(self.log)
        layout.addWidget(self.status)
        layout.addLayout(buttons)
        self.resize(720, 520)

    def install(self) -> InstallTask:
        self.task = InstallTask(self.base.filePath().strip(), self.package.text().strip(),
                                Path(self.venv.text().strip()), self.pip_options.text().strip())
        self.task.line.connect(self.log.appendPlainText)
        self.task.progressChanged.connect(lambda p: self.progress.setValue(int(p)))
        self.task.taskCompleted.connect(self._done)
        self.task.taskTerminated.connect(self._done)
        self.install_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.status.info("Installing… (PyTorch is large: this can take several minutes)")
        QgsApplication.taskManager().addTask(self.task)
        return self.task

    def _done(self) -> None:
        task = self.task
        self.install_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        if task is not None and task.python:
            settings = BackendSettings.load()
            settings.python = task.python
            settings.save()
            self.manager.stop()
            self.status.info(f"Installed. The backend interpreter is now {task.python}.")
        elif task is not None:
            self.status.error(task.error or "Installation failed; see the log above.")
