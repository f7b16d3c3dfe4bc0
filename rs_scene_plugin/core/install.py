"""Install the backend: a virtual environment in the QGIS profile folder with the backend pip-installed in it.

Base interpreters are probed by running them (a pyenv shim for a version that is not installed exits 127);
the backend is installed with the same runtime extras ``make setup`` installs (ONNX Runtime among them), and
the download size is worked out (``pip install --dry-run --report``) before anything is downloaded. Runs the
base interpreter (never QGIS's own executable) as a subprocess; output lines are passed on as they come. A
failed or cancelled install removes the environment it created: nothing half-installed is kept.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import urllib.request
import zipfile
from collections.abc import Callable
from pathlib import Path

from .settings import venv_python

Log = Callable[[str], None]
NAMES = ("python3.13", "python3.12", "python3.11", "python3.10", "python3")
DEV_EXTRAS = {"dev"}  # make setup's extras that are tools for developers, not the backend's runtime
FALLBACK_EXTRAS = ["bench", "ray"]


class InstallError(Exception):
    pass


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}


def probe_python(path: str) -> tuple[str | None, str]:
    """(version, "") when ``path`` runs, is 3.10+ and can make a venv with pip; else (None, why not)."""
    if not path or not Path(path).is_file():
        return None, f"{path or '(none)'} does not exist"
    if os.path.realpath(path) == os.path.realpath(sys.executable):
        return None, f"{path} is the program running QGIS"
    code = "import sys, venv, ensurepip; print('%d.%d.%d' % sys.version_info[:3])"
    try:
        out = subprocess.run([path, "-c", code], capture_output=True, text=True, timeout=30, env=_clean_env(),
                             check=False)
        if out.returncode != 0:
            last = (out.stderr.strip().splitlines() or [""])[-1]
            return None, f"{path} -c failed with exit code {out.returncode}: {last}"
        version = out.stdout.strip()
        if tuple(int(p) for p in version.split(".")[:2]) < (3, 10):
            return None, f"{path} is Python {version}; the backend needs 3.10+"
        venv = subprocess.run([path, "-m", "venv", "--help"], capture_output=True, text=True, timeout=30,
                              env=_clean_env(), check=False)
        if venv.returncode != 0:
            return None, f"{path} -m venv --help failed with exit code {venv.returncode}"
    except (OSError, subprocess.TimeoutExpired, ValueError) as exc:
        return None, f"{path} does not run: {exc}"
    return version, ""


def python_candidates(extra: list[str] | None = None) -> list[tuple[str, str]]:
    """Working base interpreters as (path, version), newest first; each one was run to check it."""
    paths = [*(extra or []), *(shutil.which(n) for n in NAMES)]
    for pattern in ("/usr/bin/python3.1[0-9]", "/usr/local/bin/python3.1[0-9]",
                    "/opt/homebrew/bin/python3.1[0-9]", str(Path.home() / ".pyenv/versions/3.1*/bin/python3")):
        paths += sorted(glob.glob(pattern))
    seen, out = set(), []
    for p in paths:
        if not p or os.path.realpath(p) in seen:
            continue
        seen.add(os.path.realpath(p))
        version, _ = probe_python(p)
        if version:
            out.append((p, version))
    return sorted(out, key=lambda pv: tuple(int(x) for x in pv[1].split(".")), reverse=True)


def default_base_python() -> str:
    """The newest working base interpreter, or "" when none was found."""
    found = python_candidates()
    return found[0][0] if found else ""


def default_package() -> str:
    """The backend source next to the plugin in a checkout, else the wheel the plugin zip ships in its
    ``backend/`` folder, else the package name (for a pip index the user names in the options)."""
    plugin = Path(__file__).resolve().parents[1]
    checkout = plugin.parent / "backend"
    if (checkout / "pyproject.toml").exists():
        return str(checkout)
    wheels = sorted((plugin / "backend").glob("rs_scene-*.whl"))
    return str(wheels[-1]) if wheels else "rs-scene"


def runtime_extras(package: str) -> list[str]:
    """The backend's optional extras except the developer tools: what ``make setup`` installs to run it
    (``bench``: ONNX Runtime, the CPU default; ``ray``: classify-many)."""
    path = Path(package)
    extras: list[str] = []
    if (path / "pyproject.toml").is_file():
        import tomllib

        data = tomllib.loads((path / "pyproject.toml").read_text())
        extras = list(data.get("project", {}).get("optional-dependencies", {}))
    elif path.suffix == ".whl" and path.is_file():
        with zipfile.ZipFile(path) as whl:
            meta = next(n for n in whl.namelist() if n.endswith(".dist-info/METADATA"))
            text = whl.read(meta).decode()
        extras = re.findall(r"^Provides-Extra: (\S+)$", text, flags=re.MULTILINE)
    else:
        extras = list(FALLBACK_EXTRAS)
    return [e for e in extras if e not in DEV_EXTRAS]


def requirement(package: str) -> str:
    """``package[extra,...]`` with the runtime extras (a folder, a wheel or a name)."""
    extras = runtime_extras(package)
    return f"{package}[{','.join(extras)}]" if extras else package


def _run(cmd: list[str], log: Log, is_canceled: Callable[[], bool]) -> None:
    log("$ " + " ".join(shlex.quote(c) for c in cmd))
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
                            env=_clean_env())
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


def _size(url: str) -> int | None:
    if url.startswith("file://"):
        path = urllib.request.url2pathname(url[7:])
        return os.path.getsize(path) if os.path.isfile(path) else 0  # a source folder: nothing to download
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=15) as resp:
            length = resp.headers.get("Content-Length")
            return int(length) if length else None
    except (OSError, ValueError):
        return None


def download_size(python: str, req: str, pip_options: str, log: Log,
                  is_canceled: Callable[[], bool] = lambda: False) -> tuple[int, int, int]:
    """(bytes, packages, packages of unknown size) that ``pip install req`` would fetch, from a dry run."""
    with tempfile.TemporaryDirectory(prefix="rs_scene_pip_") as tmp:
        report = Path(tmp) / "report.json"
        _run([python, "-m", "pip", "install", "--dry-run", "--quiet", "--report", str(report),
              *shlex.split(pip_options), req], log, is_canceled)
        items = json.loads(report.read_text()).get("install", [])
    sizes = [_size(i.get("download_info", {}).get("url", "")) for i in items]
    return sum(s or 0 for s in sizes), len(items), sum(s is None for s in sizes)


def size_text(total: int, count: int, unknown: int) -> str:
    text = f"{total / 1e9:.2f} GB" if total >= 1e8 else f"{total / 1e6:.1f} MB"
    return f"{text} for {count} package(s)" + (f" ({unknown} of unknown size)" if unknown else "")


def make_venv(base_python: str, venv: Path, log: Log, is_canceled: Callable[[], bool] = lambda: False) -> str:
    """The venv's interpreter, after checking ``base_python`` runs (see :func:`probe_python`)."""
    version, why = probe_python(base_python)
    if version is None:
        raise InstallError(f"base Python interpreter unusable: {why}; choose another one")
    _run([base_python, "-m", "venv", str(venv)], log, is_canceled)
    return str(venv_python(venv))


def install_backend(python: str, package: str, log: Log, is_canceled: Callable[[], bool] = lambda: False,
                    pip_options: str = "", progress: Callable[[float], None] | None = None) -> str:
    """pip-install ``package`` with its runtime extras into the venv of ``python``; returns ``python``."""
    progress = progress or (lambda p: None)
    steps = {"Collecting": 1.0, "Downloading": 0.5, "Installing collected": 5.0, "Successfully": 5.0}
    done = [15.0]

    def pip_log(line: str) -> None:
        for key, step in steps.items():
            if line.lstrip().startswith(key):
                done[0] = min(95.0, done[0] + step)
                progress(done[0])
        log(line)

    progress(15)
    _run([python, "-m", "pip", "install", *shlex.split(pip_options), requirement(package)], pip_log, is_canceled)
    _run([python, "-c", "import rs_scene, sys; print('rs_scene', rs_scene.__version__, 'in', sys.prefix)"],
         log, is_canceled)
    progress(100)
    return python
