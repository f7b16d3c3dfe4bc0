"""A started ``rs-scene serve`` process and a tiny urllib client for it, shared by the service tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from conftest import S2_BANDS_OPT

S2 = {"model": "sentinel2-eurosat", "bands": S2_BANDS_OPT, "input_scale": 1000}


class Service:
    """A started service and a tiny client (the plugin's client is Qt-free urllib too)."""

    def __init__(self, info: dict[str, Any], proc: subprocess.Popen[bytes], log: Path) -> None:
        self.info, self.proc, self.log = info, proc, log

    def call(
        self,
        path: str,
        body: Any = None,
        token: str | None = "",
        raw: bytes | None = None,
        method: str | None = None,
    ) -> tuple[int, dict[str, Any]]:
        token = self.info["token"] if token == "" else token
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        req = urllib.request.Request(self.info["url"] + path, data=data, method=method)
        if token is not None:
            req.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    def wait(
        self,
        job_id: str,
        until: tuple[str, ...] = ("done", "failed", "cancelled"),
        timeout: float = 300,
    ) -> dict[str, Any]:
        t0 = time.time()
        while time.time() - t0 < timeout:
            status, job = self.call(f"/jobs/{job_id}")
            assert status == 200, job
            if job["state"] in until:
                return job
            time.sleep(0.2)
        raise AssertionError(f"job {job_id} still {job['state']} after {timeout} s")


def launch(tmp: Path, *extra: str) -> Service:
    """Start ``rs-scene serve`` (with ``extra`` flags) in a subprocess writing under ``tmp``; wait for its info file."""
    tmp.mkdir(parents=True, exist_ok=True)
    info_file, log = tmp / "run" / "service.json", tmp / "service.log"
    env = {**os.environ, "RS_SCENE_MODELS": str(tmp / "models")}
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "rs_scene.server", "--info-file", str(info_file),
                                 "--device", "cpu", *extra], stdout=out, stderr=subprocess.STDOUT, env=env)
    t0 = time.time()
    while not info_file.exists():
        assert proc.poll() is None, log.read_text()
        assert time.time() - t0 < 60, "service did not write its info file"
        time.sleep(0.1)
    svc = Service(json.loads(info_file.read_text()), proc, log)
    svc.info_file = info_file
    return svc


def start_service(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Start ``rs-scene serve`` in a subprocess; yield a client; shut it down and check it cleaned up."""
    svc = launch(tmp_path_factory.mktemp("service"))
    proc, info_file = svc.proc, svc.info_file
    yield svc
    svc.call("/shutdown", {})
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    assert not info_file.exists(), "the info file must go when the service stops"
