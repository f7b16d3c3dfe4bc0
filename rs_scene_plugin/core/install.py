"""Install the backend: a virtual environment in the QGIS profile folder with the backend pip-installed in it.

Runs the base interpreter (never QGIS's own executable) as a subprocess; output lines are passed on as they
come. A failed or cancelled install removes the environment it created: nothing half-installed is kept.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from .settings import venv_python

Log = Callable[[str], None]


class InstallError(Exception):
    pass


def default_base_python() -> str:
    """A system Python 3.10+ to build the environment from (QGIS's own executable is never one)."""
    for name in ("python3.12", "python3.11", "python3.10", "python3"):
        path = shutil.which(name)
        if path and os.path.realpath(path) != os.path.realpath(sys.executable):
            return path
    return shutil.which("python3") or ""


def default_package() -> str:
    """The backend source next to the plugin in a checkout, else the wheel the plugin zip ships in its
    ``backend/`` folder, else the package name (for a pip index the user names in the options)."""
    plugin = Path(__file__).resolve().parents[1]
    checkout = plugin.parent / "backend"
    if (checkout / "pyproject.toml").exists():
        return str(checkout)
    wheels = sorted((plugin / "backend").glob("rs_scene-*.whl"))
    return str(wheels[-1]) if wheels else "rs-scene"


def _run(cmd: list[str], log: Log, is_canceled: Callable[[], bool]) -> None:
    log("$ " + " ".join(shlex.quote(c) for c in cmd))
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
                            env={k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")})
    assert proc.stdout is not None
    for line in proc.stdout:
        log(line.rstrip())
        if is_canceled():
            proc.kill()
            proc.wait()
            raise InterruptedError("installation cancelled")
    if proc.wait() != 0:
        what = " ".join([Path(cmd[0]).name, *cmd[1:4]] if cmd[1:3] == ["-m", "pip"] else [Path(cmd[0]).name, *cmd[1:3]])
        raise InstallError(f"{what} failed with exit code {proc.returncode}; the log above says why")


def install_backend(base_python: str, package: str, venv: Path, log: Log,
                    is_canceled: Callable[[], bool] = lambda: False, pip_options: str = "",
                    progress: Callable[[float], None] | None = None) -> str:
    """Create ``venv`` from ``base_python`` and pip-install ``package``; returns the new interpreter's path."""
    progress = progress or (lambda p: None)
    if not base_python or not Path(base_python).is_file():
        raise InstallError(f"base Python interpreter not found: {base_python or '(none)'}; install Python 3.10+ "
                           "and choose its executable")
    if os.path.realpath(base_python) == os.path.realpath(sys.executable):
        raise InstallError(f"{base_python} is the program running QGIS; choose a Python 3.10+ interpreter")
    created = not venv.exists()
    try:
        progress(2)
        _run([base_python, "-m", "venv", str(venv)], log, is_canceled)
        python = str(venv_python(venv))
        progress(15)
        steps = {"Collecting": 1.0, "Downloading": 0.5, "Installing collected": 5.0, "Successfully": 5.0}
        done = [15.0]

        def pip_log(line: str) -> None:
            for key, step in steps.items():
                if line.lstrip().startswith(key):
                    done[0] = min(95.0, done[0] + step)
                    progress(done[0])
            log(line)

        _run([python, "-m", "pip", "install", *shlex.split(pip_options), package], pip_log, is_canceled)
        _run([python, "-c", "import rs_scene, sys; print('rs_scene', rs_scene.__version__, 'in', sys.prefix)"],
             log, is_canceled)
        progress(100)
        return python
    except BaseException:
        if created:
            shutil.rmtree(venv, ignore_errors=True)
            log(f"removed the incomplete environment {venv}")
        raise
