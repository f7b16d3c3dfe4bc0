"""The backend service process: started on demand in its own Python, health-checked, restarted when it died,
stopped when the plugin unloads."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .client import BackendClient, BackendError, BackendUnreachable
from .settings import BackendSettings, plugin_data_dir

START_TIMEOUT_S = 90.0
ACCESS_LINE = re.compile(r'^\S+ "(GET|POST|PUT|DELETE) \S* HTTP/1\.[01]" \d{3}')


class BackendManager:
    """One service per QGIS session. Thread-safe: QgsTasks ask for a client from worker threads."""

    def __init__(self, settings: Callable[[], BackendSettings] = BackendSettings.load) -> None:
        self._settings = settings
        self._proc: subprocess.Popen | None = None
        self._client: BackendClient | None = None
        self._lock = threading.RLock()
        self.health: dict[str, Any] = {}

    @property
    def info_file(self) -> Path:
        return plugin_data_dir() / f"service-{os.getpid()}.json"

    @property
    def log_file(self) -> Path:
        return plugin_data_dir() / "service.log"

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def client(self) -> BackendClient:
        """A client of a live, healthy service; starts (or restarts) it when needed."""
        with self._lock:
            if self._client is not None and self.is_running():
                try:
                    self.health = self._client.health()
                    return self._client
                except BackendUnreachable:
                    pass
            self._stop_locked()
            self._start_locked()
            return self._client  # type: ignore[return-value]

    def _start_locked(self) -> None:
        settings = self._settings()
        problem = settings.problem()
        if problem:
            raise BackendError(problem)
        info_file = self.info_file
        info_file.unlink(missing_ok=True)
        cmd = [settings.python, "-m", "rs_scene.server", "--info-file", str(info_file), "--device",
               settings.device, "--port", str(settings.port), "--parent-pid", str(os.getpid()),
               "--allow-network"]  # layers QGIS reads online (/vsicurl/...) are read by the service too
        if settings.ray.strip():  # classify jobs on that Ray cluster; the service joins it before it answers
            cmd += ["--ray", settings.ray.strip()]
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
        with open(self.log_file, "ab") as log:
            log.write(f"\n--- {time.strftime('%Y-%m-%d %H:%M:%S')} starting: {' '.join(cmd)}\n".encode())
            log.flush()
            try:
                self._proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                              env=env, start_new_session=True)
            except OSError as exc:
                raise BackendError(f"cannot start the backend interpreter {settings.python}: {exc}. "
                                   "Fix it in RS Scene > Backend settings.") from exc
        self._client = self._wait_for_service(info_file, settings)

    def _wait_for_service(self, info_file: Path, settings: BackendSettings) -> BackendClient:
        t0 = time.monotonic()
        while time.monotonic() - t0 < START_TIMEOUT_S:
            if self._proc.poll() is not None:
                self._proc = None
                tail = self.log_tail(8)
                hint = ("The interpreter has no rs_scene package: use RS Scene > Install backend, or choose "
                        "the Python of an environment where the backend is installed in RS Scene > Backend "
                        "settings." if "No module named" in tail else "See the log in RS Scene > Diagnostics.")
                raise BackendError(f"The RS Scene service did not start with {settings.python}. {hint}\n"
                                   f"Log ({self.log_file}):\n{tail}")
            if info_file.exists():
                try:
                    info = json.loads(info_file.read_text())
                except ValueError:
                    info = {}
                if info.get("pid") == self._proc.pid:
                    client = BackendClient(info["url"], info["token"])
                    self.health = client.health()
                    return client
            time.sleep(0.1)
        self._stop_locked()
        raise BackendError(f"The RS Scene service did not answer within {START_TIMEOUT_S:.0f} s. "
                           f"See the log: {self.log_file}")

    def stop(self) -> None:
        with self._lock:
            self._stop_locked()

    def _stop_locked(self) -> None:
        proc, client = self._proc, self._client
        self._proc, self._client, self.health = None, None, {}
        if proc is None or proc.poll() is not None:
            return
        try:
            if client is not None:
                client.shutdown()
            proc.wait(timeout=10)
        except (BackendError, subprocess.TimeoutExpired):
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.info_file.unlink(missing_ok=True)

    def pid(self) -> int | None:
        return self._proc.pid if self.is_running() else None

    def log_tail(self, lines: int = 40, requests: bool = False) -> str:
        """The log's last ``lines``; without the HTTP access lines (``127.0.0.1 "GET /health ..." 200``) unless
        ``requests``: they say nothing about a failure and push its cause out of the tail."""
        try:
            text = self.log_file.read_text(errors="replace")
        except OSError:
            return "(no log yet)"
        kept = [line for line in text.splitlines() if requests or not ACCESS_LINE.match(line)]
        return "\n".join(kept[-lines:])

    def exit_cause(self) -> str:
        """Why the service process ended, for messages: "it was killed (SIGKILL)", "it exited with code 1"."""
        proc = self._proc
        try:
            code = proc.wait(timeout=3) if proc is not None else None  # just killed: not yet reaped
        except subprocess.TimeoutExpired:
            code = None
        if code is None:
            return "it no longer answers"
        if code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            return f"it was killed ({name}{', out of memory?' if name == 'SIGKILL' else ''})"
        return f"it exited with code {code}"
