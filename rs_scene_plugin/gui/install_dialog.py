"""Install backend: a venv in the QGIS profile folder with the backend pip-installed, with visible progress.

Two steps, each a QgsTask: *Check size* makes the environment and asks pip (a dry run) what it would download,
and shows the size; *Download and install* then installs. The base interpreters offered were each run to
check them; the user may pick another one (it is checked the same way)."""

from __future__ import annotations

import shutil
from pathlib import Path

from qgis.core import QgsApplication, QgsTask
from qgis.PyQt.QtCore import pyqtSignal
from qgis.PyQt.QtWidgets import (
    QComboBox,
    QDialog,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
)

from ..core.backend import BackendManager
from ..core.install import (
    InstallError,
    default_package,
    download_size,
    install_backend,
    make_venv,
    probe_python,
    python_candidates,
    requirement,
    size_text,
)
from ..core.settings import BackendSettings, default_venv, venv_python
from .widgets import StatusLabel, fit_to_screen


class InstallTask(QgsTask):
    """``size``: make the venv and measure the download; else pip-install into it."""

    line = pyqtSignal(str)

    def __init__(self, base: str, package: str, venv: Path, pip_options: str, size: bool) -> None:
        super().__init__("RS Scene: " + ("check the backend's download size" if size else "install backend"),
                         QgsTask.CanCancel)
        self.base, self.package, self.venv, self.pip_options, self.size = base, package, venv, pip_options, size
        self.python: str | None = None
        self.sized: tuple[int, int, int] | None = None
        self.error: str | None = None
        self.completed = False

    def run(self) -> bool:
        try:
            if self.size:
                self.setProgress(2)
                python = make_venv(self.base, self.venv, self.line.emit, self.isCanceled)
                self.setProgress(8)
                self.sized = download_size(python, requirement(self.package), self.pip_options, self.line.emit,
                                           self.isCanceled)
                self.python = python
            else:
                self.python = install_backend(str(venv_python(self.venv)), self.package, self.line.emit, self.isCanceled,
                                              self.pip_options, self.setProgress)
            return True
        except InterruptedError:
            self.error = "Installation cancelled; the incomplete environment was removed."
        except (InstallError, OSError, ValueError) as exc:
            self.error = str(exc)
        self.python = None
        return False

    def finished(self, ok: bool) -> None:
        self.completed = True


class InstallDialog(QDialog):
    def __init__(self, manager: BackendManager, parent=None) -> None:
        super().__init__(parent)
        self.manager = manager
        self.task: InstallTask | None = None
        self.sized: InstallTask | None = None  # the size check the next Install click goes on from
        self.created = False  # this dialog made the environment folder: removed if the install does not finish
        self.setWindowTitle("RS Scene — Install backend")
        self.base = QComboBox()
        self.base.setEditable(True)
        self.base.setToolTip("Python 3.10+ interpreters found here; each was run to check it works")
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        self.base_info = QLabel()
        self.base_info.setWordWrap(True)
        self.package = QLineEdit(default_package())
        self.venv = QLineEdit(str(default_venv()))
        self.pip_options = QLineEdit()
        self.pip_options.setPlaceholderText("e.g. --index-url …")
        row = QHBoxLayout()
        row.addWidget(self.base, 1), row.addWidget(browse)
        form = QFormLayout()
        form.addRow("Base Python 3.10+", row)
        form.addRow("", self.base_info)
        form.addRow("Backend package", self.package)
        form.addRow("Environment folder", self.venv)
        form.addRow("Extra pip options", self.pip_options)
        self.progress, self.log, self.status = QProgressBar(), QPlainTextEdit(), StatusLabel()
        self.log.setReadOnly(True)
        self.install_button, self.cancel_button, close = QPushButton("Check size"), QPushButton("Cancel"), \
            QPushButton("Close")
        self.install_button.clicked.connect(self.install)
        self.cancel_button.clicked.connect(lambda: self.task and self.task.cancel())
        self.cancel_button.setEnabled(False)
        close.clicked.connect(self.close)
        for w in (self.package, self.venv, self.pip_options):
            w.textChanged.connect(self._reset)
        self.base.currentTextChanged.connect(self._reset)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        for b in (self.install_button, self.cancel_button, close):
            b.setAutoDefault(False)
            buttons.addWidget(b)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.progress)
        layout.addWidget(self.log, 1)
        layout.addWidget(self.status)
        layout.addLayout(buttons)
        fit_to_screen(self, 720, 560)
        self.find_pythons()

    def find_pythons(self, extra: list[str] | None = None) -> None:
        found = python_candidates(extra)
        self.base.blockSignals(True)
        self.base.clear()
        for path, version in found:
            self.base.addItem(path, version)
        self.base.blockSignals(False)
        self.base_info.setText(", ".join(f"{p} (Python {v})" for p, v in found) + " work here." if found else
                               "No working Python 3.10+ found: install one and choose it with Browse…")

    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Base Python interpreter")
        if path:
            self.base.setEditText(path)

    def _reset(self) -> None:
        self._discard()
        self.install_button.setText("Check size")

    def _discard(self) -> None:
        """Remove an environment this dialog made for a size check that was not followed by an install."""
        if self.sized is not None and self.created:
            shutil.rmtree(self.sized.venv, ignore_errors=True)
        self.sized, self.created = None, False

    def install(self) -> InstallTask | None:
        """First click: make the environment and show the download size; second click: install."""
        base = self.base.currentText().strip()
        if self.sized is None:
            version, why = probe_python(base)
            if version is None:
                self.status.error(f"Base Python interpreter unusable: {why}. Choose another one.")
                return None
            venv = Path(self.venv.text().strip())
            self.created = not venv.exists()
            task = InstallTask(base, self.package.text().strip(), venv, self.pip_options.text().strip(), True)
            self.status.info(f"Working out what pip would download (Python {version})…")
        else:
            task = InstallTask(base, self.sized.package, self.sized.venv, self.sized.pip_options, False)
            self.status.info("Installing… (PyTorch is large: this can take several minutes)")
        self.task = task
        task.line.connect(self.log.appendPlainText)
        task.progressChanged.connect(lambda p: self.progress.setValue(int(p)))
        task.taskCompleted.connect(self._done)
        task.taskTerminated.connect(self._done)
        self.install_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        QgsApplication.taskManager().addTask(task)
        return task

    def _done(self) -> None:
        task = self.task
        self.install_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        if task is None:
            return
        if task.python is None:
            if self.created:
                shutil.rmtree(task.venv, ignore_errors=True)
                self.log.appendPlainText(f"removed the incomplete environment {task.venv}")
            self.sized, self.created = None, False
            self.install_button.setText("Check size")
            self.status.error(task.error or "Installation failed; see the log above.")
        elif task.size:
            self.sized = task
            text = size_text(*task.sized)
            self.install_button.setText(f"Download and install ({text.split(' for ')[0]})")
            self.status.info(f"pip will download {text} into {task.venv}. Click 'Download and install' to "
                             "start, or change the options.")
        else:
            self.sized, self.created = None, False
            self.install_button.setText("Check size")
            settings = BackendSettings.load()
            settings.python = task.python
            settings.save()
            self.manager.stop()
            self.status.info(f"Installed. The backend interpreter is now {task.python}.")
