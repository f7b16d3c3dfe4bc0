"""``rs-scene serve --ray``: a service classify job run on the Ray cluster by the scale-out pipeline itself
(:class:`~rs_scene.scale.driver.Scheduler`: a plan task, read tasks, model actors, a merge task) for the one
raster of the request, with the job's progress (tiles done / total, per finished shard) and cancel (the job's
tasks are cancelled and its model actors killed).

The merge task writes the outputs under temporary names beside them; they are renamed onto the requested
names only when the whole run succeeded, as a local ``classify`` commits its writers. A cancelled or failed
job leaves nothing under the output names, and its run folder (manifest and shard parts, a hidden folder
beside the outputs, so on the file system the cluster writes to) goes with it."""

from __future__ import annotations

import glob
import os
import shutil
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..engine.infer import ClassifyParams, _check_params
from ..engine.trainer import Cancelled
from ..errors import RSSceneError
from ..io.outputs import release_temp, temp_path
from .driver import ManyOptions, Progress, Scheduler, connect_ray, option_record
from .manifest import Manifest, raster_key
from .shards import Shard
from .work import card_of_params

OUTPUT_KEYS = ("out_gpkg", "heatmap", "class_raster")
RESULT_NAMES = {"out_gpkg": "grid", "heatmap": "heatmap", "class_raster": "classes"}

@dataclass
class Cluster:
    """The Ray cluster a service runs its classify jobs on (joined once, when the service starts)."""

    address: str  # as given: local, auto, host:port or ray://host:port
    ray: Any
    shard_tiles: int  # tiles per shard of a job (progress moves once per finished shard)

    def info(self) -> dict[str, Any]:
        """What ``/health`` reports of it: the address, the nodes alive and the cluster's CPUs and GPUs."""
        res = self.ray.cluster_resources()
        try:
            gcs = self.ray.get_runtime_context().gcs_address
        except Exception:  # noqa: BLE001 -- a Ray Client session has no GCS address of its own
            gcs = None
        nodes = sum(1 for n in self.ray.nodes() if n.get("Alive"))
        return {"address": self.address, "gcs_address": gcs, "nodes": nodes, "cpus": res.get("CPU", 0),
                "gpus": res.get("GPU", 0), "shard_tiles": self.shard_tiles}


def connect(address: str, shard_tiles: int) -> Cluster:
    """Join (or, for ``local``, start) the cluster; the workers get this process's GDAL network policy."""
    env = {k: os.environ[k] for k in ("CPL_VSIL_CURL_ALLOWED_EXTENSIONS",) if k in os.environ}
    return Cluster(address, connect_ray(address, None, env), shard_tiles)


@dataclass
class JobHooks:
    """How the job talks to the service: progress, its cancel event and extra status for ``/jobs/<id>``."""

    report: Callable[[int, int, str], None]
    cancel: threading.Event
    metrics: Callable[[dict[str, Any]], None]


class JobScheduler(Scheduler):
    """The pipeline's scheduler for one job: the merge writes to ``staged`` names, progress and cancel go to
    the job (checked every ``poll_s``)."""

    def __init__(self, cluster: Cluster, opts: ManyOptions, manifest: Manifest, staged: dict[str, str | None],
                 hooks: JobHooks) -> None:
        self.staged, self.hooks, self.cluster = staged, hooks, cluster
        self.total, self.done = 0, 0
        super().__init__(cluster.ray, opts, manifest, manifest.state(), Progress(log=_log))
        self.poll_s = 0.1
        self.pids = {a.pid.remote(): i for i, a in enumerate(self.actors)}
        self.hooks.report(0, 0, "planning on the cluster")

    def params_for(self, key: str) -> ClassifyParams:
        return replace(self.opts.params, raster=self.states[key].path, **self.staged)

    def tick(self) -> None:
        if self.hooks.cancel.is_set():
            raise Cancelled("classification cancelled")
        if self.pids:  # the model actors' processes, once all are up (diagnostics; the cancel test)
            ready, _ = self.ray.wait(list(self.pids), num_returns=len(self.pids), timeout=0)
            if len(ready) == len(self.pids):
                self.hooks.metrics({"ray_actor_pids": [p for p in map(self._pid, ready) if p is not None]})
                self.pids = {}

    def _pid(self, ref: Any) -> int | None:
        try:
            return int(self.ray.get(ref))
        except Exception:  # noqa: BLE001 -- an actor that died starting: its shards fail with the cause
            return None

    def _on_plan(self, what: tuple[Any, ...], plan: dict[str, Any]) -> None:
        self.total = plan["tiles"]
        self.hooks.metrics({"shards": len(plan["shards"])})
        self.hooks.report(0, self.total, "classify")
        super()._on_plan(what, plan)

    def _on_shard(self, what: tuple[Any, ...], value: dict[str, Any]) -> None:
        super()._on_shard(what, value)
        self.done += what[2].tiles
        self.hooks.report(self.done, self.total, "classify")

    def _merge(self, key: str) -> None:
        """The pipeline's merge task, with the run record of the requested outputs (not the staged names)."""
        self.hooks.report(self.done, self.total, "writing outputs")
        plan = self.states[key].plan or {}
        shards = [Shard(*s) for s in plan["shards"]]
        real = {k: v for k, v in vars(self.opts.params).items() if k not in ("raster", "model")}
        extra = {"tool": "rs-scene serve --ray", "ray": self.cluster.address, "parameters": real,
                 "shards": len(shards), "shard_tiles": plan["shard_tiles"]}
        ref = self.merge_task.remote(self.params_for(key), shards, str(self.manifest.parts), key, extra)
        self.pending[ref] = ("merge", key)


def _log(text: str) -> None:
    print(f"rs-scene serve (ray): {text}", file=sys.stderr, flush=True)


def classify_on_cluster(cluster: Cluster, params: ClassifyParams, hooks: JobHooks) -> dict[str, Any]:
    """Classify ``params.raster`` on the cluster into ``params``' outputs; the same result dict as the
    service's local classify job. Raises :class:`Cancelled` when the job's cancel is set."""
    _check_params(params)
    card, _ = card_of_params(params)  # an unknown model is the user's error here, not an actor's death
    t0 = time.perf_counter()
    targets = {k: getattr(params, k) for k in OUTPUT_KEYS if getattr(params, k)}
    folder = Path(next(iter(targets.values()))).resolve().parent
    run_dir = folder / f".rs-scene-ray-{uuid.uuid4().hex[:12]}"
    staged: dict[str, str | None] = dict.fromkeys(OUTPUT_KEYS)
    sched: JobScheduler | None = None
    try:
        staged |= {k: str(temp_path(Path(v).resolve())) for k, v in targets.items()}
        opts = ManyOptions(out_dir=str(run_dir), params=params, heatmaps=bool(params.heatmap),
                           ray=cluster.address, shard_tiles=cluster.shard_tiles)
        manifest = Manifest.start(str(run_dir), [params.raster], option_record(opts), resume=False)
        sched = JobScheduler(cluster, opts, manifest, staged, hooks)
        sched.run()
        st = sched.states[raster_key(params.raster)]
        if st.status != "done":
            raise RSSceneError(st.error or f"{params.raster}: the cluster did not finish the raster")
        for key, target in targets.items():  # the commit: every output or none
            os.replace(staged[key], target)
            release_temp(Path(staged[key]))  # type: ignore[arg-type]
            staged[key] = None
    finally:
        if sched is not None:
            sched.stop()
        _remove_staged([p for p in staged.values() if p])
        shutil.rmtree(run_dir, ignore_errors=True)
    res, plan = st.result, st.plan or {}
    return {"tiles_total": res["tiles_total"], "tiles_classified": res["tiles_classified"],
            "tiles_skipped": res["tiles_skipped"], "class_counts": res["class_counts"],
            "seconds": round(time.perf_counter() - t0, 3),
            "outputs": {RESULT_NAMES[k]: v for k, v in targets.items()}, "model": card.name,
            "warnings": list(plan.get("warnings", [])),
            "cluster": cluster.address, "shards": len(plan.get("shards", []))}


def _remove_staged(paths: list[str]) -> None:
    """A staged output, its sidecars and the temporary files its writers and the COG rewrite made of it."""
    for path in paths:
        p = Path(path)
        pattern = [glob.escape(str(p)) + "*", str(p.parent / (glob.escape("." + p.stem) + "*"))]
        for found in {f for pat in pattern for f in glob.glob(pat)}:
            try:
                os.unlink(found)
            except OSError:
                pass
        release_temp(p)


__all__ = ["Cluster", "JobHooks", "classify_on_cluster", "connect"]
