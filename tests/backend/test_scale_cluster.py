"""``classify-many`` on a real multi-process Ray cluster on this machine (``ray start --head`` on 127.0.0.1
plus a second node process): a model actor is killed mid-run (Ray restarts it and retries its shards), then
the driver itself is killed; ``--resume`` finishes the run without redoing a recorded shard, and the merged
outputs equal a single-process ``classify`` of the same raster."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from conftest import S2_BANDS_OPT
from rs_scene.scale.manifest import raster_key
from scale_common import SUBSET, assert_same_outputs, reference

RAY = str(Path(sys.executable).parent / "ray")
ENV = os.environ | {"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token"}  # token auth, as by default
OPTS = ["--model", "sentinel2-eurosat", "--bands", S2_BANDS_OPT, "--input-scale", "1000",
        "--shard-tiles", "3", "--actors", "1"]  # heatmaps across shards: test_scale_run


def _ray(*args: str) -> str | None:
    """``ray ARGS``: None, or what ray printed (its last lines) when it failed."""
    done = subprocess.run([RAY, *args], check=False, env=ENV, timeout=180, capture_output=True, text=True)
    return None if done.returncode == 0 else f"ray {' '.join(args[:2])} exited {done.returncode}:\n" + (
        done.stdout + done.stderr)[-3000:]


def _head(common: list[str]) -> int:
    """A head node on a random port; a second port if the first start fails (a port another process of the
    suite holds), and a failure that says what ray printed both times."""
    said = []
    # token auth: `ray start` does not create the token (ray.init does): on a machine where nothing made
    # ~/.ray/auth_token yet it exited 1 ("no authentication token was found"); --generate keeps one that exists
    error = _ray("get-auth-token", "--generate")
    if error is not None:
        pytest.fail(error)
    for _ in range(2):
        port = random.randint(20000, 40000)
        error = _ray("start", "--head", "--port", str(port), "--num-cpus", "1", "--include-dashboard=false",
                     "--ray-client-server-port", str(port + 1), *common)
        if error is None:
            return port
        said.append(error)
        _ray("stop", "--force")
    pytest.fail("\n\n".join(said))


@pytest.fixture(scope="module")
def cluster() -> str:
    common = ["--node-ip-address", "127.0.0.1", "--disable-usage-stats"]
    try:
        port = _head(common)
        error = _ray("start", "--address", f"127.0.0.1:{port}", "--num-cpus", "2", *common)
        if error is not None:
            pytest.fail(error)
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run([RAY, "stop", "--force"], check=False, env=ENV, timeout=120, capture_output=True)


def _shard_events(manifest: Path) -> list[dict]:
    if not manifest.exists():
        return []
    events = []
    for line in manifest.read_text().splitlines():
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            pass
    return [e for e in events if e.get("event") == "shard"]


def _actor_pids() -> list[int]:
    pids = []
    for d in Path("/proc").iterdir():
        try:
            if d.name.isdigit() and (d / "cmdline").read_bytes().startswith(b"ray::ShardClassifier"):
                pids.append(int(d.name))
        except OSError:
            continue
    return pids


def _wait_for(cond, proc: subprocess.Popen, timeout: float = 240) -> None:
    end = time.monotonic() + timeout
    while not cond():
        assert proc.poll() is None, f"the run ended early:\n{proc.stderr.read() if proc.stderr else ''}"
        assert time.monotonic() < end, "timed out"
        time.sleep(0.05)


def test_killed_worker_and_driver_lose_and_duplicate_nothing(cluster: str, tmp_path: Path) -> None:
    out = tmp_path / "run"
    manifest = out / "manifest.jsonl"
    cmd = [sys.executable, "-m", "rs_scene.cli", "classify-many", str(SUBSET), *OPTS, "--out-dir", str(out),
           "--ray", cluster]
    first = subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(lambda: len(_shard_events(manifest)) >= 2, first)
        victims = _actor_pids()
        assert len(victims) == 1, "the model actor, in its own worker process"
        os.kill(victims[0], signal.SIGKILL)  # mid-run: its queued shards are retried on a restarted actor
        done_at_kill = len(_shard_events(manifest))
        _wait_for(lambda: len(_shard_events(manifest)) >= done_at_kill + 3, first)
        first.send_signal(signal.SIGKILL)  # and now the driver
        first.wait(30)
    finally:
        if first.poll() is None:
            first.kill()
    recorded = len(_shard_events(manifest))
    total = 12  # 6 x 6 tiles, rows of 6 in pieces of 3
    assert done_at_kill + 3 <= recorded < total, "the driver died mid-run"
    assert victims[0] not in _actor_pids()
    second = subprocess.run(cmd + ["--resume"], check=False, env=ENV, capture_output=True, text=True,
                            timeout=600)
    assert second.returncode == 0, second.stderr
    shards = Counter(e["shard"] for e in _shard_events(manifest))
    assert sorted(shards) == list(range(total)) and set(shards.values()) == {1}, "each shard run once"
    ref = reference(SUBSET, tmp_path / "ref", [], heatmap=False)
    assert_same_outputs(ref, out / raster_key(str(SUBSET)), heatmap=False)
