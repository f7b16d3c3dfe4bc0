"""The driver of ``classify-many``: starts or joins Ray, plans each raster in a task, streams its shards
through read tasks into a pool of model actors with a bounded number of shards in flight (backpressure: the
object store holds at most that many shards' tiles however many rasters are queued), merges each finished
raster in a task and records every step in the run's manifest. The driver never reads pixels."""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..engine.infer import ClassifyParams
from ..errors import RSSceneError
from .manifest import Manifest, RasterState
from .shards import Shard

LOCAL = ("local", "")


@dataclass
class ManyOptions:
    out_dir: str
    params: ClassifyParams  # every raster is classified with these (raster and outputs set per raster)
    heatmaps: bool = False
    ray: str = "local"  # local (started here, on loopback), auto, host:port or ray://host:port
    shard_tiles: int | None = None
    resume: bool = False
    actors: int | None = None  # model actors (default: one per GPU, else CPUs - 1)
    actor_cpus: int = 1  # CPUs (ONNX Runtime threads) per CPU actor
    cpus: int | None = None  # logical CPUs of a local cluster (default: this machine's)
    max_in_flight: int | None = None  # shards submitted and not finished (default: 2 per actor)


@dataclass
class Progress:
    log: Callable[[str], None] = field(default=lambda text: print(text, file=sys.stderr))


def option_record(opts: ManyOptions) -> dict[str, Any]:
    """What must not change between a run and its resume: the classification options and the sharding."""
    keep = {k: v for k, v in vars(opts.params).items()
            if k not in ("raster", "out_gpkg", "heatmap", "class_raster", "device", "runtime", "threads",
                         "streams", "workers")}
    return keep | {"heatmaps": opts.heatmaps, "shard_tiles": opts.shard_tiles}


def connect_ray(address: str, cpus: int | None, env: dict[str, str] | None = None) -> Any:
    """Start a local cluster in this process on 127.0.0.1 (``local``), or join the one at ``address``
    (``auto``, ``host:port``, ``ray://host:port``); ``env`` goes to every worker of this driver. Returns
    the ``ray`` module; any failure is an :class:`RSSceneError` naming ``--ray``."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray

    _check_reachable(address)
    common: dict[str, Any] = {"logging_level": "WARNING", "log_to_driver": False}
    if env:
        common["runtime_env"] = {"env_vars": env}
    try:
        if address in LOCAL:
            ray.init(address="local", num_cpus=cpus or os.cpu_count() or 1, _node_ip_address="127.0.0.1",
                     include_dashboard=False, **common)
        else:
            ray.init(address=address, **common)
    except Exception as exc:  # Ray raises plain Exception too (a node that timed out during startup)
        raise RSSceneError(f"--ray {address}: could not start or join a Ray cluster ({exc})") from exc
    return ray


def _check_reachable(address: str, timeout_s: float = 10.0) -> None:
    """A ``host:port`` or ``ray://host:port`` that nothing answers at is an error now: ``ray.init`` waits for
    such a GCS without end (measured: still waiting after 200 s)."""
    import socket

    hostport = address.removeprefix("ray://")
    host, sep, port = hostport.rpartition(":")
    if address in LOCAL or address == "auto" or not sep or not port.isdigit():
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise RSSceneError(f"--ray {address}: nothing answers at {hostport} ({exc}); start the cluster head "
                           "there (ray start --head), or check the address") from exc


@contextmanager
def ray_session(address: str, cpus: int | None) -> Iterator[Any]:
    """Ray for this run: a caller's session as it is, else :func:`connect_ray`, shut down at the end."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray

    if ray.is_initialized():
        yield ray
        return
    connect_ray(address, cpus)
    try:
        yield ray
    finally:
        ray.shutdown()


def outputs_of(out_dir: str, key: str, heatmaps: bool) -> dict[str, str]:
    base = Path(out_dir) / key
    out = {"out_gpkg": f"{base}_tiles.gpkg", "class_raster": f"{base}_classes.tif"}
    return out | ({"heatmap": f"{base}_heatmap.tif"} if heatmaps else {})


def error_text(exc: BaseException) -> str:
    """The user's error behind a Ray error (an RSSceneError a task raised), else the failure named."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, RSSceneError):
        return str(cause)
    if isinstance(cause, BaseException):
        return f"{type(cause).__name__}: {cause}"[:2000]
    if isinstance(exc, RSSceneError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"[:2000]


def classify_many(inputs: list[str], opts: ManyOptions, progress: Progress | None = None) -> dict[str, Any]:
    """Run (or resume) a many-raster classification; returns the run's summary (see :func:`summarise`)."""
    from .index import write_index

    progress = progress or Progress()
    opts = replace(opts, out_dir=str(Path(opts.out_dir).resolve()))  # the same path for every node
    manifest = Manifest.start(opts.out_dir, inputs, option_record(opts), opts.resume)
    states = manifest.state()
    t0 = time.perf_counter()
    with ray_session(opts.ray, opts.cpus) as ray:
        Scheduler(ray, opts, manifest, states, progress).run()
    states = manifest.state()
    write_index(Path(opts.out_dir) / "runs.gpkg", states)
    return summarise(states, time.perf_counter() - t0)


def summarise(states: dict[str, RasterState], seconds: float) -> dict[str, Any]:
    done = [s for s in states.values() if s.status == "done"]
    failed = [s for s in states.values() if s.status == "failed"]
    tiles = sum(s.result.get("tiles_total", 0) for s in done)
    return {"rasters": len(states), "done": len(done), "failed": len(failed), "tiles": tiles,
            "seconds": round(seconds, 3), "errors": {s.path: s.error for s in failed}}


class Scheduler:
    """One event loop over Ray object refs: plan tasks, shard (read task -> actor call) pairs and merges."""

    def __init__(self, ray: Any, opts: ManyOptions, manifest: Manifest, states: dict[str, RasterState],
                 progress: Progress) -> None:
        from . import merge, work

        self.ray, self.opts, self.manifest, self.progress = ray, opts, manifest, progress
        self.states = states
        res = ray.cluster_resources()
        self.gpus = int(res.get("GPU", 0)) if opts.params.device in ("auto", "cuda") else 0
        cpus = int(res.get("CPU", 1))
        n = opts.actors or (self.gpus or max(1, cpus - 1))
        actor_opts: dict[str, Any] = {"max_restarts": -1, "max_task_retries": 3, "num_cpus": opts.actor_cpus}
        if self.gpus:
            actor_opts.update(num_gpus=1, num_cpus=1)
        p = opts.params
        cls = ray.remote(work.ShardClassifier).options(**actor_opts)
        threads = None if self.gpus else opts.actor_cpus
        self.actors = [cls.remote(p, opts.heatmaps, threads) for _ in range(n)]
        self.load = [0] * n
        self.plan_task = ray.remote(work.plan_raster).options(num_cpus=1, max_retries=3)
        self.read_task = ray.remote(work.read_shard).options(num_cpus=1, max_retries=3)
        self.merge_task = ray.remote(merge.merge_raster).options(num_cpus=1, max_retries=3)
        self.batch = max(p.batch_size, 128) if self.gpus else p.batch_size
        self.limit = opts.max_in_flight or 2 * n
        self.pending: dict[Any, tuple[Any, ...]] = {}
        self.reads: dict[Any, Any] = {}  # a shard's actor call -> the read task feeding it
        self.poll_s: float | None = None  # with a value, tick() runs at least this often
        self.to_plan = deque(k for k, s in states.items() if s.status in ("pending", "failed"))
        self.queue: deque[tuple[str, Shard]] = deque()
        self.left: dict[str, int] = {}  # shards not finished, per raster being worked on
        self.t_start: dict[str, float] = {}
        for key, st in states.items():
            if st.status == "planned":
                self._enqueue(key)

    def params_for(self, key: str) -> ClassifyParams:
        st = self.states[key]
        outputs = outputs_of(self.opts.out_dir, key, self.opts.heatmaps)
        return replace(self.opts.params, raster=st.path, **outputs)

    def _enqueue(self, key: str) -> None:
        st = self.states[key]
        shards = [Shard(*s) for s in st.plan["shards"]]
        todo = [s for s in shards if s.index not in st.shards_done]
        self.left[key] = len(todo)
        self.t_start[key] = time.perf_counter()
        self.queue.extend((key, s) for s in todo)
        if not todo:
            self._merge(key)

    def _in_flight(self, kind: str) -> int:
        return sum(1 for v in self.pending.values() if v[0] == kind)

    def _submit(self) -> None:
        while self.to_plan and self._in_flight("plan") < 2:
            key = self.to_plan.popleft()
            ref = self.plan_task.remote(self.params_for(key), self.opts.shard_tiles)
            self.pending[ref] = ("plan", key)
        while self.queue and self._in_flight("shard") < self.limit:
            key, shard = self.queue.popleft()
            if self.states[key].status == "failed":
                continue
            params = self.params_for(key)
            data = self.read_task.remote(params, shard, self.batch)
            a = min(range(len(self.actors)), key=self.load.__getitem__)
            ref = self.actors[a].__call__.remote(shard, data, str(self.manifest.parts), key, params.raster)
            self.reads[ref] = data
            self.load[a] += 1
            self.pending[ref] = ("shard", key, shard, a, time.perf_counter())

    def run(self) -> None:
        self._submit()
        while self.pending:
            self.tick()
            ready, _ = self.ray.wait(list(self.pending), num_returns=1, timeout=self.poll_s)
            for ref in ready:
                what = self.pending.pop(ref)
                self.reads.pop(ref, None)
                try:
                    value = self.ray.get(ref)
                except Exception as exc:  # a task's error: the raster fails, the run goes on
                    if what[0] == "shard":
                        self.load[what[3]] -= 1
                    self._fail(what[1], error_text(exc))
                    continue
                getattr(self, f"_on_{what[0]}")(what, value)
            self._submit()

    def tick(self) -> None:
        """Called between events (a subclass raises here to stop the run, see :meth:`stop`)."""

    def stop(self, wait_s: float = 10.0) -> None:
        """Stop the cluster work of this run: cancel its tasks (their workers are killed) and kill its model
        actors, then wait up to ``wait_s`` for Ray to confirm; nothing of it runs on afterwards."""
        refs = [*self.pending, *self.reads.values()]
        for ref in [r for r, v in self.pending.items() if v[0] != "shard"] + list(self.reads.values()):
            try:
                self.ray.cancel(ref, force=True)
            except Exception:  # noqa: BLE001 -- finished already, or unknown to this worker: nothing to stop
                pass
        for actor in self.actors:
            self.ray.kill(actor, no_restart=True)
        if refs:
            self.ray.wait(refs, num_returns=len(refs), timeout=wait_s)
        self.pending.clear()
        self.reads.clear()

    def _on_plan(self, what: tuple[Any, ...], plan: dict[str, Any]) -> None:
        key = what[1]
        st = self.states[key]
        st.status, st.plan, st.shards_done, st.error = "planned", plan, {}, None
        self.manifest.append({"event": "planned", "raster": key, "path": st.path, "plan": plan})
        self._enqueue(key)

    def _on_shard(self, what: tuple[Any, ...], value: dict[str, Any]) -> None:
        _, key, shard, a, t = what
        self.load[a] -= 1
        st = self.states[key]
        if st.status == "failed":
            return
        seconds = round(time.perf_counter() - t, 3)
        ev = {"event": "shard", "raster": key, "shard": shard.index, "seconds": seconds}
        self.manifest.append(ev | value)
        st.shards_done[shard.index] = ev | value
        self.left[key] -= 1
        if self.left[key] == 0:
            self._merge(key)

    def _merge(self, key: str) -> None:
        st = self.states[key]
        shards = [Shard(*s) for s in st.plan["shards"]]
        extra = {"tool": "rs-scene classify-many", "shards": len(shards),
                 "shard_tiles": st.plan["shard_tiles"]}
        ref = self.merge_task.remote(self.params_for(key), shards, str(self.manifest.parts), key, extra)
        self.pending[ref] = ("merge", key)

    def _on_merge(self, what: tuple[Any, ...], result: dict[str, Any]) -> None:
        key = what[1]
        st = self.states[key]
        seconds = sum(e.get("seconds", 0) for e in st.shards_done.values())
        outputs = {k: v for k, v in outputs_of(self.opts.out_dir, key, self.opts.heatmaps).items()}
        result |= {"seconds": round(time.perf_counter() - self.t_start.get(key, time.perf_counter()), 3),
                   "shard_seconds": round(seconds, 3), "shards": len(st.plan["shards"]), "outputs": outputs}
        st.status, st.result = "done", result
        self.manifest.append({"event": "done", "raster": key, "result": result})
        shutil.rmtree(self.manifest.parts / key, ignore_errors=True)
        self.progress.log(f"done   {st.path}: {result['tiles_classified']}/{result['tiles_total']} tiles")

    def _fail(self, key: str, error: str) -> None:
        st = self.states[key]
        if st.status == "failed":
            return
        st.status, st.error = "failed", error
        self.manifest.append({"event": "failed", "raster": key, "error": error})
        shutil.rmtree(self.manifest.parts / key, ignore_errors=True)
        self.progress.log(f"failed {st.path}: {error}")
