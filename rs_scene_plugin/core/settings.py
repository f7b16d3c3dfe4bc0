"""The plugin's settings (QgsSettings under ``rs_scene/``) and where its files live in the QGIS profile."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from qgis.core import QgsApplication, QgsSettings

PREFIX = "rs_scene/"
ENV_PYTHON = "RS_SCENE_BACKEND_PYTHON"


def plugin_data_dir() -> Path:
    """``<profile>/rs_scene``: the installed backend venv, the service's info file and log."""
    path = Path(QgsApplication.qgisSettingsDirPath()) / "rs_scene"
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def default_venv() -> Path:
    return plugin_data_dir() / "venv"


@dataclass
class BackendSettings:
    python: str = ""
    device: str = "auto"
    port: int = 0
    ray: str = ""  # the Ray cluster classify jobs run on (serve --ray): local, auto, HOST:PORT, ray://...; "" none

    @classmethod
    def load(cls) -> BackendSettings:
        s = QgsSettings()
        python = s.value(PREFIX + "python", "", type=str) or os.environ.get(ENV_PYTHON, "")
        if not python and venv_python(default_venv()).exists():
            python = str(venv_python(default_venv()))
        return cls(python=python, device=s.value(PREFIX + "device", "auto", type=str) or "auto",
                   port=int(s.value(PREFIX + "port", 0, type=int) or 0),
                   ray=(s.value(PREFIX + "ray", "", type=str) or "").strip())

    def save(self) -> None:
        s = QgsSettings()
        s.setValue(PREFIX + "python", self.python)
        s.setValue(PREFIX + "device", self.device)
        s.setValue(PREFIX + "port", int(self.port))
        s.setValue(PREFIX + "ray", self.ray.strip())

    def problem(self) -> str | None:
        """Why this interpreter cannot run the backend, with the fix; None when it looks usable."""
        fix = "Set it in RS Scene > Backend settings, or use RS Scene > Install backend."
        if not self.python:
            return f"No backend Python interpreter is configured. {fix}"
        if not Path(self.python).is_file():
            return f"The backend interpreter {self.python} does not exist. {fix}"
        if os.path.realpath(self.python) == os.path.realpath(sys.executable):
            return (f"The backend interpreter {self.python} is the program running QGIS itself, which cannot "
                    f"run a Python service. {fix}")
        return None


def icon_path(name: str = "icon.svg") -> str:
    """An icon from ``resources/``: inside the plugin folder when installed from the zip, beside it in a
    checkout."""
    here = Path(__file__).resolve().parents[1]
    for folder in (here / "resources", here.parent / "resources"):
        if (folder / name).exists():
            return str(folder / name)
    return ""
