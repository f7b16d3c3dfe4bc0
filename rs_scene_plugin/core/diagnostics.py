"""The text the Diagnostics item copies: interpreter, versions, device and the service log tail."""

from __future__ import annotations

import configparser
import platform
import sys
from pathlib import Path
from typing import Any

from qgis.core import Qgis
from qgis.PyQt.QtCore import PYQT_VERSION_STR, QT_VERSION_STR

from .backend import BackendManager
from .client import BackendError
from .settings import BackendSettings


def plugin_version() -> str:
    here = Path(__file__).resolve().parents[1]
    for meta in (here / "metadata.txt", here.parent / "metadata.txt"):
        if meta.exists():
            cp = configparser.ConfigParser()
            cp.read(meta, encoding="utf-8")
            return cp.get("general", "version", fallback="?")
    return "?"


def _cluster_line(ray: dict[str, Any] | None) -> str:
    if not ray:
        return "in the service process"
    if ray.get("error"):
        return f"on Ray cluster {ray['address']}, which does not answer: {ray['error']}"
    return (f"on Ray cluster {ray['address']} (GCS {ray.get('gcs_address')}, {ray.get('nodes')} node(s), "
            f"{ray.get('cpus', 0):g} CPUs, {ray.get('gpus', 0):g} GPUs, {ray.get('shard_tiles')} tiles a shard)")


def diagnostics_text(manager: BackendManager, start: bool = True) -> str:
    s = BackendSettings.load()
    lines = [
        f"RS Scene plugin {plugin_version()}",
        (f"QGIS {Qgis.QGIS_VERSION}, Qt {QT_VERSION_STR}, PyQt {PYQT_VERSION_STR}, "
         f"QGIS Python {platform.python_version()} ({sys.executable})"),
        f"OS {platform.platform()}",
        f"backend interpreter: {s.python or '(not set)'}",
        f"device setting: {s.device}; port setting: {s.port or 'any free port'}",
        f"Ray cluster setting: {s.ray or '(none: classify in the service process)'}",
    ]
    problem = s.problem()
    if problem:
        lines.append(f"problem: {problem}")
    elif start or manager.is_running():
        try:
            health = manager.client().health()
            dev = health["device"]
            lines += [f"service: running, pid {manager.pid()}, rs_scene {health['version']}, torch {dev['torch']}",
                      f"service python: {health['python']}",
                      f"device: {dev['type']} {dev.get('name', '')}"
                      + (f", {dev['memory_gb']} GB" if dev.get("memory_gb") else ""),
                      f"classify runtime: {dev.get('runtime', '?')}"
                      + (f" (ONNX Runtime {dev['onnxruntime']})" if dev.get("onnxruntime") else ""),
                      f"classify jobs: {_cluster_line(health.get('ray'))}"]
        except BackendError as exc:
            lines.append(f"service: not available: {exc}")
    lines += [f"service log ({manager.log_file}), last lines:", manager.log_tail(30)]
    return "\n".join(lines)
