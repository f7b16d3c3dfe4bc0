"""``rs-scene serve --ray local``: a real service process that started a Ray cluster on this machine runs its
classify jobs on it through the scale-out pipeline. A job gives the outputs a single-process ``classify``
gives (tiles, classes, probabilities and heatmap within 1e-5) with progress per shard; a job cancelled mid-run
ends within seconds, its model actor's process is gone and nothing is left under the output names or beside
them. One service (one Ray start-up, ~15 s) for the module."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import S2_SCENE
from scale_common import SUBSET, assert_same_outputs, reference
from service_client import S2, Service, launch


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory) -> Service:
    svc = launch(tmp_path_factory.mktemp("ray-service"), "--ray", "local", "--shard-tiles", "4")
    yield svc
    svc.call("/shutdown", {})
    try:
        assert svc.proc.wait(timeout=60) == 0, svc.log.read_text()
    except subprocess.TimeoutExpired:
        svc.proc.kill()
        raise
    assert not svc.info_file.exists()


def outputs(folder: Path, name: str) -> dict[str, str]:
    folder.mkdir(parents=True, exist_ok=True)
    base = folder / name
    return {"out_gpkg": f"{base}_tiles.gpkg", "heatmap": f"{base}_heatmap.tif",
            "class_raster": f"{base}_classes.tif"}


def follow(svc: Service, job_id: str, stop: int | None = None, timeout: float = 300) -> tuple[dict, list]:
    """Poll the job to its end (or, with ``stop``, until that many tiles are done); every (done, total) seen."""
    seen, t0 = [], time.time()
    while time.time() - t0 < timeout:
        status, job = svc.call(f"/jobs/{job_id}")
        assert status == 200, job
        seen.append((job["done"], job["total"]))
        if job["state"] in ("done", "failed", "cancelled") or (stop is not None and job["done"] >= stop):
            return job, seen
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} still {job['state']} after {timeout} s")


def running(pid: int) -> bool:
    """A process that exists and is not a zombie waiting to be reaped."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_health_names_the_cluster(svc: Service) -> None:
    status, health = svc.call("/health")
    assert status == 200
    ray = health["ray"]
    assert ray["address"] == "local" and ray["nodes"] == 1 and ray["cpus"] >= 1 and ray["shard_tiles"] == 4


def test_a_cancelled_job_stops_the_cluster_work_and_leaves_nothing(svc: Service, tmp_path: Path) -> None:
    out = outputs(tmp_path / "cancel", "scene")
    status, job = svc.call("/jobs/classify", {**S2, "raster": str(S2_SCENE), "stride": 32, **out})
    assert status == 202, job
    job, _ = follow(svc, job["id"], stop=8)  # a few shards done: the cluster is working on the rest
    assert job["state"] == "running" and 0 < job["done"] < job["total"], job
    pids = job["metrics"]["ray_actor_pids"]
    t0 = time.time()
    svc.call(f"/jobs/{job['id']}/cancel", {})
    job, _ = follow(svc, job["id"], timeout=30)
    assert job["state"] == "cancelled" and time.time() - t0 < 15, (job["state"], time.time() - t0)
    t1 = time.time()  # the model actor was killed, not left to finish its shards
    while any(map(running, pids)) and time.time() - t1 < 10:
        time.sleep(0.1)
    assert pids and not any(map(running, pids)), pids
    time.sleep(2)  # nothing written after the cancel either: no output, no temporary, no run folder
    assert sorted(os.listdir(tmp_path / "cancel")) == []


def test_a_job_on_the_cluster_equals_a_local_classify(svc: Service, tmp_path: Path) -> None:
    out = outputs(tmp_path / "ray", "subset")
    body = {**S2, "raster": str(SUBSET), "stride": 32, **out}  # the default heatmap: context
    status, job = svc.call("/jobs/classify", body)
    assert status == 202, job
    job, seen = follow(svc, job["id"])
    assert job["state"] == "done", job["error"]
    res = job["result"]
    assert (res["tiles_total"], res["tiles_classified"], res["cluster"], res["shards"]) == (100, 100, "local", 30)
    assert res["outputs"] == {"grid": out["out_gpkg"], "heatmap": out["heatmap"], "classes": out["class_raster"]}
    moving = [d for d, t in seen if t == 100]
    assert moving == sorted(moving) and any(0 < d < 100 for d in moving), "progress per shard, never backwards"
    assert sorted(os.listdir(tmp_path / "ray")) == sorted(Path(p).name for p in out.values())
    ref = reference(SUBSET, tmp_path / "ref", ["--stride", "32"])
    assert_same_outputs(ref, tmp_path / "ray" / "subset")


def test_an_unreachable_cluster_is_a_clear_error_at_start(tmp_path: Path) -> None:
    """Nothing listens at the address: exit 2 naming --ray, no info file (ray.init would wait without end)."""
    info = tmp_path / "service.json"
    proc = subprocess.run([sys.executable, "-m", "rs_scene.server", "--ray", "127.0.0.1:1", "--info-file",
                           str(info), "--device", "cpu"], capture_output=True, text=True, timeout=120,
                          check=False)
    assert proc.returncode == 2 and "--ray 127.0.0.1:1: nothing answers at 127.0.0.1:1" in proc.stderr
    assert not info.exists()


def test_a_cancel_while_the_outputs_are_written_leaves_nothing(tmp_path: Path) -> None:
    """The job cancelled while its merge task writes (the writers' temporary files exist): the merge task is
    stopped and neither an output nor a temporary file stays. Ray in this process."""
    import threading

    from rs_scene.engine.infer import ClassifyParams
    from rs_scene.engine.trainer import Cancelled
    from rs_scene.scale.driver import ray_session
    from rs_scene.scale.service import Cluster, JobHooks, classify_on_cluster

    folder = tmp_path / "merge"
    out = outputs(folder, "subset")
    cancel, stages, seen = threading.Event(), [], []

    def cancel_once_writing() -> None:  # the merge task's writers have created their temporary files
        t0 = time.time()
        while time.time() - t0 < 60 and not seen:
            seen.extend(n for n in os.listdir(folder) if n.startswith(".."))
            time.sleep(0.002)
        cancel.set()

    def report(done: int, total: int, stage: str) -> None:
        stages.append(stage)
        if stage == "writing outputs":
            threading.Thread(target=cancel_once_writing, daemon=True).start()

    params = ClassifyParams(raster=str(S2_SCENE), model=S2["model"], bands=S2["bands"], input_scale=1000,
                            stride=32, device="cpu", **out)  # 841 tiles: the merge writes for ~1 s
    with ray_session("local", 2) as ray, pytest.raises(Cancelled):
        classify_on_cluster(Cluster("local", ray, 290), params, JobHooks(report, cancel, lambda m: None))
    assert "writing outputs" in stages and seen, "cancelled while the merge was writing"
    assert sorted(os.listdir(folder)) == []


def test_a_layer_sent_by_value_runs_on_a_local_cluster(svc: Service, tmp_path: Path) -> None:
    """Pixels sent by value become a temporary file of this machine: a local cluster's workers read it."""
    import base64

    import rasterio
    from rasterio.windows import Window

    window = Window(320, 96, 192, 128)
    with rasterio.open(S2_SCENE) as ds:
        pixels = {"width": window.width, "height": window.height, "count": ds.count, "dtype": "uint16",
                  "crs_wkt": ds.crs.to_wkt(), "transform": list(ds.window_transform(window).to_gdal()),
                  "nodata": ds.nodata, "band_names": S2["bands"].split(","),
                  "data_b64": base64.b64encode(ds.read(window=window).tobytes()).decode()}
    body = {k: v for k, v in S2.items() if k != "bands"} | {"pixels": pixels, **outputs(tmp_path, "value")}
    status, job = svc.call("/jobs/classify", body)
    assert status == 202, job
    job, _ = follow(svc, job["id"])
    assert job["state"] == "done", job["error"]
    res = job["result"]
    assert (res["tiles_total"], res["tiles_classified"], res["cluster"]) == (6, 6, "local")
    assert all(Path(p).exists() for p in res["outputs"].values())
    assert res["warnings"] == [], res["warnings"]


def test_a_layer_sent_by_value_stays_here_with_a_remote_cluster() -> None:
    from rs_scene.scale.service import Cluster
    from rs_scene.server.tasks import _on_cluster

    assert _on_cluster(Cluster("local", None, 64), by_value=True) == (True, None)
    assert _on_cluster(Cluster("10.0.0.5:6379", None, 64), by_value=False) == (True, None)
    on_ray, note = _on_cluster(Cluster("10.0.0.5:6379", None, 64), by_value=True)
    assert not on_ray and "sent by value" in note and "10.0.0.5:6379" in note
