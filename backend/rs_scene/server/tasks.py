"""The job bodies: classify a raster (by reference or by value) and train a model. Torch loads here, lazily,
in the worker thread, so the service answers /health at once."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from .jobs import Job, JobCancelled, Runner
from .pixels import write_pixels
from .requests import check_classify_outputs

_CLASSIFY_KEYS = (
    "model",
    "out_gpkg",
    "heatmap",
    "class_raster",
    "bands",
    "tile_size",
    "stride",
    "device",
    "cam",
    "cam_class",
    "heatmap_norm",
    "heatmap_detail",
    "extent",
    "mask",
    "min_valid",
    "input_scale",
    "gsd",
    "edge",
    "batch_size",
    "nodata",
)


def classify_runner(req: dict[str, Any], device: str, cluster: Any = None) -> Runner:
    """The classify job: in this process, or with a ``cluster`` (``serve --ray``) on Ray."""

    def run(job: Job) -> dict[str, Any]:
        from ..engine.infer import Cancelled, ClassifyParams, classify_raster

        tmp = Path(tempfile.mkdtemp(prefix=f"rs-scene-{job.id}-")) if "pixels" in req else None
        try:
            check_classify_outputs(req)  # again: a file may have appeared while the job waited
            if tmp is not None:
                job.report(0, 0, "receiving pixels")
                raster = str(write_pixels(*req.pop("pixels"), tmp / "pixels.tif"))  # memory goes with it
            else:
                raster = req["raster"]
            kw = {k: req[k] for k in _CLASSIFY_KEYS if k in req}
            kw.setdefault("device", device)
            params = ClassifyParams(raster=raster, **kw)
            on_ray, note = _on_cluster(cluster, tmp is not None)
            try:
                if on_ray:
                    return _classify_on_ray(cluster, params, job)
                job.report(0, 0, "loading model")
                res = classify_raster(params, progress=job.report, cancel=job.cancel)
            except Cancelled as exc:
                raise JobCancelled(str(exc)) from exc
            res.warnings += [note] if note else []
            return {
                "tiles_total": res.tiles_total,
                "tiles_classified": res.tiles_classified,
                "tiles_skipped": res.tiles_skipped,
                "class_counts": res.class_counts,
                "seconds": res.seconds,
                "outputs": res.outputs,
                "model": res.model,
                "warnings": res.warnings,
            }
        finally:
            if tmp is not None:
                shutil.rmtree(tmp, ignore_errors=True)

    return run


def _on_cluster(cluster: Any, by_value: bool) -> tuple[bool, str | None]:
    """Whether the job runs on the cluster, and why not when it has one: a layer sent by value is written to a
    temporary file of this machine, which only a local cluster's workers can read."""
    if cluster is None:
        return False, None
    from ..scale.driver import LOCAL

    if by_value and cluster.address not in LOCAL:
        return False, (f"the layer was sent by value, not as a file the nodes of the Ray cluster "
                       f"{cluster.address} can read: it was classified in the service process instead")
    return True, None


def _classify_on_ray(cluster: Any, params: Any, job: Job) -> dict[str, Any]:
    from ..scale.service import JobHooks, classify_on_cluster

    def metrics(extra: dict[str, Any]) -> None:
        job.metrics = {**job.metrics, **extra}

    return classify_on_cluster(cluster, params, JobHooks(job.report, job.cancel, metrics))


def estimate(req: dict[str, Any], device: str) -> dict[str, Any]:
    """The ETA shown before a run: a calibration classify of a block at the raster's centre with the same
    settings, scaled to the run's tiles (:func:`rs_scene.bench.estimate.estimate_run`; cached per setup)."""
    from ..bench.estimate import estimate_run
    from ..errors import RSSceneError

    if "raster" not in req:
        raise RSSceneError("estimate: needs a raster file; a layer sent by value gets its ETA from progress")
    kw = {k: req[k] for k in _CLASSIFY_KEYS if k in req and k not in ("model", "out_gpkg", "heatmap",
                                                                        "class_raster")}
    kw.setdefault("device", device)
    if kw.get("extent") is not None:
        kw["extent"] = tuple(kw["extent"])
    seconds, tiles, warnings = estimate_run(req["raster"], req["model"], heatmap=bool(req.get("heatmap")),
                                            **kw)
    return {"eta_s": round(seconds, 1), "tiles": tiles, "warnings": warnings}


def _polygon_data(req: dict[str, Any]) -> Any:
    """Tiles under labelled polygons, read as classify reads them (bands, input scale, nodata, GSD), split
    into spatially blocked train / validation / held-out parts."""
    from ..data.polygons import InputOptions, PolygonSampling, load_polygons

    sampling = PolygonSampling(
        tile_size=req.get("tile_size") or 64,
        stride=req.get("stride"),
        min_overlap=req.get("min_overlap", 0.5),
        block=req.get("block", 4),
        val_fraction=req.get("val_fraction") or 0.2,
        test_fraction=req.get("test_fraction", 0.2),
        seed=req.get("seed", 0),
    )
    bands = req.get("bands")
    options = InputOptions(bands=",".join(bands) if isinstance(bands, list) else bands,
                           input_scale=req.get("input_scale"), nodata=req.get("nodata"), gsd=req.get("gsd"))
    return load_polygons(req["raster"], req["labels"], req["class_field"], sampling, options)


def train_runner(req: dict[str, Any], device: str) -> Runner:
    def run(job: Job) -> dict[str, Any]:
        from ..engine.train import TrainParams, train_model
        from ..engine.trainer import Cancelled, TrainSettings
        from ..zoo import user_models_dir

        out = req.get("out")
        if not out:
            user_models_dir().mkdir(parents=True, exist_ok=True)
            out = str(user_models_dir() / f"{req['name']}.pt")
        settings = TrainSettings(
            device=req.get("device", device), seed=req.get("seed", 0), patience=req.get("patience", 0),
            resume=bool(req.get("resume")),  # continue from <out>.ckpt of a killed run of the same training
        )
        polygons = bool(req.get("raster"))
        params = TrainParams(
            out=out,
            method=req.get("method", "pretrain"),
            data=req.get("data") or req.get("raster"),
            name=req.get("name"),
            options=req.get("options", {}),
            bands=req.get("bands"),
            image_size=req.get("image_size"),
            input_size=req.get("input_size"),
            val_fraction=0.0 if polygons else req.get("val_fraction", 0.0),
            holdout=req.get("holdout", True),
            description=req.get("description", ""),
            settings=settings,
        )
        job.report(0, 0, "reading training data")
        data = _polygon_data(req) if polygons else None
        if data is not None and data.meta.get("warnings"):  # shown before the first epoch, as classify warns
            job.metrics = {**job.metrics, "warnings": list(data.meta["warnings"])}
        try:
            card, metrics = train_model(
                params, data=data, progress=lambda ev: _on_train_event(job, ev), cancel=job.cancel
            )
        except Cancelled as exc:
            raise JobCancelled(str(exc)) from exc
        return {
            "model": card.name,
            "path": out,
            "card": card.to_dict(),
            "metrics": metrics,
            "warnings": metrics.get("warnings", []),
            "outputs": {"model": out},
        }

    return run


def _on_train_event(job: Job, ev: dict[str, Any]) -> None:
    if ev.get("event") == "step":
        steps, epochs = int(ev["steps"]), int(ev["epochs"])
        stage = (
            ev["stage"]
            if ev.get("stages", 1) == 1
            else f"{ev['stage']} ({ev['stage_index'] + 1}/{ev['stages']})"
        )
        job.report((int(ev["epoch"]) - 1) * steps + int(ev["step"]), epochs * steps, f"train {stage}")
        job.metrics = {**job.metrics, "step_loss": ev["loss"], "epoch": ev["epoch"], "epochs": epochs}
    elif ev.get("event") == "epoch":
        record = {k: v for k, v in ev.items() if k != "event"}
        job.history.append(record)
        job.metrics = {**job.metrics, **record}
