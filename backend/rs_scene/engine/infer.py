"""Classify a raster tile by tile: read -> tile -> scale -> infer (+ Grad-CAM) -> write, as three overlapping
stages: reading in a background thread; preprocessing and the model in the runner's inference streams; scores,
Grad-CAM maps from the returned features, GeoPackage rows and the heatmap mosaic in the calling thread while
the next batches compute."""

from __future__ import annotations

import functools
import threading
import time
from collections import Counter
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import torch
from torch.nn import functional as F

from ..card import ModelCard, file_sha256, load_model_file, runtime_versions
from ..data.transforms import upsample_for_inference
from ..errors import RSSceneError
from ..explain.cam import CONTEXT_DETAILS, Alignment, CamRunner, resample_maps
from ..io.raster import gdal_virtual, open_raster
from ..io.tiling import Tile
from ..io.writers import SKIPPED, ClassRasterWriter, GridWriter, HeatmapWriter
from ..methods import build_inference_model
from ..stop import PROCESS_STOP, Cancelled
from ..zoo import resolve_model
from . import context
from .pipeline import ordered_map, prefetch
from .plan import TilePlan, input_warnings, make_plan, tile_polygon
from .reading import Batch, gdal_cache_bytes, read_batches, read_size, reader_settings
from .runtime import Runner, make_runner, small_ops_single_threaded
from .trainer import pick_device

ProgressFn = Callable[[int, int, str], None]
__all__ = ["Cancelled", "ClassifyParams", "ClassifyResult", "classify_raster", "load_model"]


@dataclass
class ClassifyParams:
    raster: str
    model: str
    out_gpkg: str | None = None
    heatmap: str | None = None
    class_raster: str | None = None
    bands: str | None = None
    tile_size: int | None = None
    stride: int | None = None
    device: str = "auto"
    cam: str = "gradcam"
    cam_class: str | None = None
    # context: the twice-denser grid (explain/dense.py) drawn over blocks of neighbouring tiles
    # (engine/context.py); fine: that grid on each tile alone; coarse: the last layer's grid
    heatmap_detail: str = "context"
    heatmap_norm: str = "run"  # run: one scale for the whole run; tile: each tile's map min-max on its own
    extent: tuple[float, float, float, float] | None = None
    mask: str | None = None
    min_valid: float = 0.5
    input_scale: float | None = None
    gsd: float | str | None = None
    edge: str = "shift"  # a padded last tile biased the class: 11 of 15 AnnualCrop on the demo scene
    batch_size: int = 16
    workers: int = 1
    runtime: str = "auto"  # auto (ONNX Runtime on CPU when installed, else PyTorch), torch or onnx
    threads: int | None = None  # ONNX Runtime compute threads (default: torch.get_num_threads())
    streams: int | None = None  # ONNX Runtime batches in flight, threads // streams each (default: = threads)
    fast_read: bool = True  # False: GDAL resamples every tile on read (slower; rounds to the source dtype)
    nodata: float | None = None  # raw value of missing pixels (all bands), besides the raster's own nodata


@dataclass
class ClassifyResult:
    tiles_total: int = 0
    tiles_classified: int = 0
    tiles_skipped: int = 0
    class_counts: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    outputs: dict[str, str] = field(default_factory=dict)
    model: str = ""
    runtime: str = ""
    warnings: list[str] = field(default_factory=list)  # the run went through, but check this


def load_model(name_or_path: str, device: torch.device) -> tuple[ModelCard, torch.nn.Module, Path]:
    path = resolve_model(name_or_path)
    card, state = load_model_file(path)
    model = build_inference_model(card)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise RSSceneError(f"{path}: weights do not fit the card's architecture: {exc}") from exc
    return card, model.eval().to(device), path


def scores_of(logits: torch.Tensor, card: ModelCard) -> torch.Tensor:
    return logits.float().sigmoid() if card.task == "multi-label" else logits.float().softmax(1)


def tile_records(card: ModelCard, probs: np.ndarray) -> list[dict[str, Any]]:
    """Per-tile top-3, confidence, entropy (nats) and margin (top-1 minus top-2)."""
    names = card.class_names
    order = np.argsort(-probs, axis=1)[:, :3]
    p = np.clip(probs, 1e-12, 1.0)
    if card.task == "multi-label":
        ent = -(p * np.log(p) + (1 - p) * np.log(np.clip(1 - probs, 1e-12, 1))).sum(1)
    else:
        ent = -(p * np.log(p)).sum(1)
    out = []
    for i in range(len(probs)):
        top = order[i]
        rec = {"status": "classified", "class_id": int(top[0]), "class_name": names[top[0]],
               "confidence": float(probs[i, top[0]]), "entropy": float(ent[i]),
               "margin": float(probs[i, top[0]] - (probs[i, top[1]] if len(top) > 1 else 0.0))}
        for k, j in enumerate(top, start=1):
            rec[f"top{k}_name"], rec[f"top{k}_prob"] = names[j], float(probs[i, j])
        if card.task == "multi-label":
            rec["labels"] = ",".join(n for n, s in zip(names, probs[i], strict=True) if s >= card.threshold)
        out.append(rec)
    return out


def _cam_target(card: ModelCard, name: str | None) -> int | None:
    if name is None:
        return None
    for i, c in enumerate(card.class_names):
        if c.lower() == name.lower():
            return i
    raise RSSceneError(f"--cam-class '{name}' is not a class of model {card.name}: "
                       f"{', '.join(card.class_names)}")


def _check_params(p: ClassifyParams) -> None:
    if not (p.out_gpkg or p.heatmap or p.class_raster):
        raise RSSceneError("nothing to write: give --out, --heatmap and/or --class-raster")
    if not 0 <= p.min_valid <= 1:
        raise RSSceneError(f"--min-valid must be between 0 and 1, not {p.min_valid}")
    if p.batch_size < 1:
        raise RSSceneError("--batch-size must be at least 1")
    for name in ("threads", "streams"):
        value = getattr(p, name)
        if value is not None and value < 1:
            raise RSSceneError(f"--{name} must be at least 1, not {value}")


def cam_and_runner(params: ClassifyParams, card: ModelCard, model: Any, path: Path, device: Any,
                   heatmaps: bool, threads: int | None, streams: int | None,
                   detail: str | None = None) -> tuple[CamRunner | None, Any]:
    """The CAM (when ``heatmaps``) and the model runner for these options (``detail`` in place of
    ``params.heatmap_detail``)."""
    cam = None
    if heatmaps:
        shape = (len(card.bands), card.input_size, card.input_size)
        cam = CamRunner(model, params.cam, shape, detail or params.heatmap_detail, params.heatmap_norm)
    # CAM methods other than the closed-form Grad-CAM need the PyTorch model's backward pass
    runtime = params.runtime if cam is None or cam.fast else "torch"
    tile_heat = cam is not None and cam.fast and cam.detail not in CONTEXT_DETAILS  # context: own pass
    net, variant = (cam.net, cam.detail) if tile_heat else (model, "")
    runner = make_runner(runtime, net, card, path, device, threads, streams,
                         variant="dense" if variant == "fine" else "")
    return cam, runner


def heatmap_record(cam: CamRunner, card: ModelCard, plan: Any) -> dict[str, Any]:
    """What the run record keeps of the heatmap: where the maps were read to put their cells on their
    receptive fields, and the heatmap's tags."""
    (gy, oy), (gx, ox) = cam.alignment((card.input_size, card.input_size))
    return {"heatmap_alignment": {"y_gain_offset": [gy, oy], "x_gain_offset": [gx, ox]},
            "heatmap": heatmap_tags(cam, card, plan)}


def classify_raster(params: ClassifyParams, progress: ProgressFn | None = None,
                    cancel: threading.Event | None = None) -> ClassifyResult:
    """Classify ``params.raster``; outputs appear only when the whole run succeeded."""
    _check_params(params)
    t0 = time.perf_counter()
    cancel = cancel or PROCESS_STOP
    progress = progress or (lambda done, total, stage: None)
    device = pick_device(params.device)
    card, model, model_path = load_model(params.model, device)
    target = _cam_target(card, params.cam_class)
    with open_raster(params.raster) as ds, rasterio.Env(GDAL_CACHEMAX=gdal_cache_bytes(ds)):
        plan = make_plan(ds, card, bands=params.bands, tile_size=params.tile_size, stride=params.stride,
                         gsd=params.gsd, extent=params.extent, mask=params.mask,
                         input_scale=params.input_scale, edge=params.edge, nodata=params.nodata)
        warnings = input_warnings(ds, plan, card, params.tile_size)
        writers: dict[str, Any] = {}
        cam = None
        try:
            if params.out_gpkg:
                multi = card.task == "multi-label"
                writers["grid"] = GridWriter(params.out_gpkg, ds.crs, card.classes, multi)
            if params.heatmap:
                writers["heatmap"] = HeatmapWriter(params.heatmap, ds, plan.area, plan.tile_src_y,
                                                   params.heatmap_norm)
            if params.class_raster:
                cells = (plan.stride_src, plan.stride_src_y), (plan.tile_src, plan.tile_src_y)
                writers["classes"] = ClassRasterWriter(params.class_raster, ds, plan.area, *cells,
                                                       card.classes)
            cam, runner = cam_and_runner(params, card, model, model_path, device, bool(params.heatmap),
                                         params.threads, params.streams, context.detail_for(params, plan))
            result = _classify_and_heat(params, card, runner, plan, ds, device, writers, cam, target,
                                        progress, cancel, model_path)
            result.runtime = runner.name
            record = _run_record(params, card, model_path, plan, result)
            heat_tags = None
            if cam is not None:
                record.update(heatmap_record(cam, card, plan))
                heat_tags = record["heatmap"]
            for key, w in writers.items():
                w.commit(*{"grid": (record,), "heatmap": (heat_tags,)}.get(key, ()))
        except BaseException:
            for w in writers.values():
                w.abort()
            raise
        finally:
            if cam is not None:
                cam.close()
    result.warnings = warnings
    result.seconds = round(time.perf_counter() - t0, 3)
    result.outputs = {k: v for k, v in (("grid", params.out_gpkg), ("heatmap", params.heatmap),
                                         ("classes", params.class_raster)) if v}
    result.model = card.name
    return result


def _classify_and_heat(params: ClassifyParams, card: ModelCard, runner: Runner, plan: TilePlan, ds: Any,
                       device: torch.device, writers: dict[str, Any], cam: CamRunner | None,
                       target: int | None, progress: ProgressFn, cancel: threading.Event,
                       model_path: Path) -> ClassifyResult:
    """The classification pass (with each tile's own heat for tile-local maps), then for context maps
    their own pass over blocks of the classified tiles."""
    if cam is None or not context.supported(cam, plan):
        with small_ops_single_threaded(runner):
            return _run(params, card, runner, plan, ds, device, writers, cam, target, progress, cancel)
    classes: dict[Tile, int] = {}
    with small_ops_single_threaded(runner):
        result = _run(params, card, runner, plan, ds, device, writers, None, target, progress, cancel,
                      classes)
    heat = writers["heatmap"]  # the context pass, on all the compute threads
    feats = context.feature_fn(cam, card, model_path, device, params.runtime, params.threads)
    context.context_heat(cam, card, plan, params.raster, classes,
                         lambda t, m, v: _add_heat(heat, t, m, v), target, cancel,
                         lambda done, total: progress(done, total, "heatmap"), feats)
    return result


def heatmap_tags(cam: CamRunner, card: ModelCard, plan: TilePlan) -> dict[str, Any]:
    """What the heatmap holds, for its GeoTIFF metadata and the run record."""
    size = (card.input_size, card.input_size)
    with torch.inference_mode():
        p = next(cam.net.parameters())
        x = torch.zeros(1, len(card.bands), *size, dtype=p.dtype, device=p.device)
        grid = cam.net.forward_features(x)
    return {"HEATMAP_METHOD": cam.method, "HEATMAP_DETAIL": cam.detail,
            "HEATMAP_CELLS_PER_TILE": f"{grid.shape[-2]}x{grid.shape[-1]}",
            "HEATMAP_TILE_PX": f"{plan.tile_src}x{plan.tile_src_y}", "HEATMAP_NORMALISATION": cam.norm,
            "HEATMAP_UNITS": ("class-logit evidence per cell" if cam.norm == "run" and cam.fast else
                              "map times class score" if cam.norm == "run" else "per-tile min-max"),
            **(context.describe(plan) if cam.detail in CONTEXT_DETAILS else {})}


def prepare(x: torch.Tensor, card: ModelCard) -> torch.Tensor:
    """``preprocess`` with the per-band normalisation first: it commutes with bilinear resizing (the weights
    sum to one), and costs a quarter as much on tiles that are then upsampled 2x. Equal within float error."""
    mean, std = _band_stats(tuple(card.mean), tuple(card.std), x.device, x.dtype)
    return upsample_for_inference((x - mean).div_(std), card.input_size)


@functools.lru_cache(maxsize=16)
def _band_stats(mean: tuple[float, ...], std: tuple[float, ...], device: torch.device,
                dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    m = torch.tensor(mean, dtype=dtype, device=device).view(1, -1, 1, 1)
    return m, torch.tensor(std, dtype=dtype, device=device).view(1, -1, 1, 1)


@dataclass
class Inferred:
    batch: Batch
    logits: torch.Tensor | None = None
    feats: torch.Tensor | None = None  # last feature map, for closed-form Grad-CAM in the writing thread
    maps: np.ndarray | None = None  # maps from pytorch-grad-cam
    size: tuple[int, int] = (0, 0)  # the network input's height and width


def _infer(runner: Runner, batch: Batch, card: ModelCard, device: torch.device, pin: bool,
           cam: CamRunner | None, target: int | None) -> Inferred:
    """The model's part of a batch, run in an inference stream."""
    if batch.data is None:
        return Inferred(batch)
    x = prepare(torch.as_tensor(batch.data).to(device, non_blocking=pin), card)
    out = Inferred(batch, size=(x.shape[-2], x.shape[-1]))
    if cam is None:
        out.logits = runner.logits(x)
    elif cam.fast:
        out.feats, out.logits = runner.features_and_logits(x)
    else:
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=x.device.type == "cuda"):
            out.logits, out.maps = cam.run(x, target)
    return out


def _run(params: ClassifyParams, card: ModelCard, runner: Runner, plan: TilePlan, ds: Any,
         device: torch.device, writers: dict[str, Any], cam: CamRunner | None, target: int | None,
         progress: ProgressFn, cancel: threading.Event, classes: dict[Tile, int] | None = None
         ) -> ClassifyResult:
    """The classification pass; ``classes`` (when given) collects each classified tile's class id."""
    res = ClassifyResult(tiles_total=len(plan.tiles))
    counts: Counter[str] = Counter()
    stop = threading.Event()
    done = 0
    batch_size, workers, pin = reader_settings(params.batch_size, params.workers, device)
    size = read_size(plan, card, params.fast_read)
    batches = prefetch(lambda: read_batches(params.raster, plan, card, params.min_valid, batch_size, stop,
                                            workers=workers, size=size, pin=pin))
    inferred = ordered_map(lambda b: _infer(runner, b, card, device, pin, cam, target), batches,
                           runner.streams)
    try:
        with closing(inferred):
            for item in inferred:
                if cancel.is_set():
                    raise Cancelled("classification cancelled")
                batch = item.batch
                results = _write_batch(item, card, cam, target, writers)
                for t, rec in results.items():
                    counts[rec["class_name"]] += 1
                    if classes is not None:
                        classes[t] = int(rec["class_id"])
                _write_grid(writers.get("grid"), batch, results, card, ds)
                done += len(batch.tiles)
                res.tiles_classified += len(batch.run)
                res.tiles_skipped += len(batch.skipped)
                progress(done, res.tiles_total, "classify")
    finally:
        stop.set()
        for _ in batches:  # drain so the reader thread ends
            pass
    if res.tiles_classified == 0:
        raise RSSceneError(
            f"{params.raster}: no valid pixels to classify: all {res.tiles_total} tiles are nodata, masked "
            f"or under --min-valid {params.min_valid}")
    res.class_counts = dict(counts.most_common())
    return res


def _write_batch(item: Inferred, card: ModelCard, cam: CamRunner | None, target: int | None,
                 writers: dict[str, Any]) -> dict[Tile, dict[str, Any]]:
    """Scores, per-tile records, class-raster and heatmap contributions of one inferred batch."""
    if item.logits is None:
        return {}
    batch = item.batch
    probs = scores_of(item.logits, card).cpu().numpy()
    maps = item.maps
    if item.feats is not None and cam is not None:
        maps = cam.maps_from_features(item.feats, item.logits, target, item.size)
    tile_maps = _tile_maps(maps, batch.run, cam.alignment(item.size)) if maps is not None and cam else None
    results = {}
    for j, (t, rec) in enumerate(zip(batch.run, tile_records(card, probs), strict=True)):
        results[t] = rec
        if "classes" in writers:
            writers["classes"].add(t.x, t.y, probs[j])
        if tile_maps is not None:
            _add_heat(writers["heatmap"], t, tile_maps[j], batch.valid[j])
    return results


def _tile_maps(maps: np.ndarray, tiles: list[Tile], align: Alignment) -> list[np.ndarray]:
    """Maps from model pixels to their tiles' raster pixels, each cell back on its receptive field
    (:meth:`CamRunner.alignment`); in one call when (as in any tile grid) the tiles share a size."""
    sizes = {(t.h, t.w) for t in tiles}
    if len(sizes) == 1:
        return list(resample_maps(maps, sizes.pop(), align))
    return [resample_maps(maps[i : i + 1], (t.h, t.w), align)[0] for i, t in enumerate(tiles)]


def _add_heat(writer: HeatmapWriter, t: Tile, cam_map: np.ndarray, valid: np.ndarray) -> None:
    """Add a tile's map (already at the tile's raster pixels) to the mosaic, weighted by its valid pixels."""
    v = valid.astype(np.float32)
    if v.shape != (t.h, t.w):
        v = F.interpolate(torch.from_numpy(v)[None, None], size=(t.h, t.w), mode="nearest")[0, 0].numpy()
    writer.add(t.x, t.y, cam_map, v)


def _write_grid(grid: GridWriter | None, batch: Batch, results: dict[Tile, dict[str, Any]], card: ModelCard,
                ds: Any) -> None:
    if grid is None:
        return
    recs, transform = [], ds.transform
    for t in batch.tiles:
        rec = results.get(t) or {"status": batch.skipped[t], "class_id": -1, "class_name": SKIPPED}
        rec.update(row=t.row, col=t.col, valid_fraction=round(batch.fractions[t], 4), model=card.name,
                   geometry=tile_polygon(ds, t, transform))
        recs.append(rec)
    grid.write(recs)


def _run_record(params: ClassifyParams, card: ModelCard, model_path: Path, plan: TilePlan,
                res: ClassifyResult) -> dict[str, Any]:
    return {
        "tool": "rs-scene classify", "model": card.name,
        "raster": params.raster if gdal_virtual(params.raster) else str(Path(params.raster).resolve()),
        "model_file": str(model_path), "model_sha256": file_sha256(model_path),
        "parameters": {k: v for k, v in vars(params).items() if k not in ("raster", "model")},
        "bands": plan.bands, "divisor": plan.divisor, "raster_gsd_m": plan.raster_gsd,
        "band_scales": plan.scaling[0] if plan.scaling else None,
        "band_offsets": plan.scaling[1] if plan.scaling else None,
        "raster_gsd_y_m": plan.raster_gsd_y, "target_gsd_m": plan.target_gsd, "tile_px": plan.tile_src,
        "tile_px_y": plan.tile_src_y, "stride_px": plan.stride_src, "stride_px_y": plan.stride_src_y,
        "tiles_total": res.tiles_total, "tiles_classified": res.tiles_classified,
        "tiles_skipped": res.tiles_skipped, "class_counts": res.class_counts, "versions": runtime_versions(),
    }
