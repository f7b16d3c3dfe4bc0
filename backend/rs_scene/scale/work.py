"""What runs on the cluster's workers, as plain functions and one class (Ray wraps them in ``driver``):
planning a raster, reading a shard's tiles (CPU tasks that open the raster themselves, so pixels never pass
through the driver), the model in :class:`ShardClassifier` (an actor that loads the model once, as Ray Data's
batch-inference classes do, and writes each shard's part file), and the per-raster merge into the outputs
``classify`` writes. The tiling, reading, inference and writers are the local path's own."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import rasterio
import rasterio.warp

from ..card import ModelCard, read_card
from ..engine import context
from ..engine.infer import (
    ClassifyParams,
    _add_heat,
    _cam_target,
    _infer,
    _write_batch,
    cam_and_runner,
    heatmap_record,
    load_model,
)
from ..engine.plan import TilePlan, input_warnings, make_plan
from ..engine.reading import Batch, gdal_cache_bytes, read_batches, read_size
from ..engine.runtime import small_ops_single_threaded
from ..engine.trainer import pick_device
from ..explain.cam import CONTEXT_DETAILS
from ..io.raster import open_raster
from ..zoo import resolve_model
from .shards import Shard, default_shard_tiles, plan_shards, shard_tiles_of


def card_of_params(params: ClassifyParams) -> tuple[ModelCard, Path]:
    path = resolve_model(params.model)
    return read_card(path), path


def raster_plan(ds: Any, card: ModelCard, params: ClassifyParams) -> TilePlan:
    """The plan ``classify`` makes for the same raster and options."""
    return make_plan(ds, card, bands=params.bands, tile_size=params.tile_size, stride=params.stride,
                     gsd=params.gsd, extent=params.extent, mask=params.mask, input_scale=params.input_scale,
                     edge=params.edge, nodata=params.nodata)


def footprint(ds: Any, steps: int = 8) -> dict[str, Any]:
    """The raster's outline in EPSG:4326 (edges densified), for the run index."""
    left, bottom, right, top = ds.bounds
    xs = [left + (right - left) * i / steps for i in range(steps + 1)]
    ys = [bottom + (top - bottom) * i / steps for i in range(steps + 1)]
    ring = ([(x, bottom) for x in xs] + [(right, y) for y in ys[1:]] + [(x, top) for x in xs[-2::-1]]
            + [(left, y) for y in ys[-2::-1]])
    geom = {"type": "Polygon", "coordinates": [ring]}
    return rasterio.warp.transform_geom(ds.crs, "EPSG:4326", geom)


def plan_raster(params: ClassifyParams, shard_tiles: int | None) -> dict[str, Any]:
    """Grid shape, shards, footprint and ``classify``'s input warnings of one raster; raises
    :class:`RSSceneError` for a raster that cannot be classified (unreadable, wrong bands, no CRS, tiny)."""
    card, _ = card_of_params(params)
    with open_raster(params.raster) as ds:
        plan = raster_plan(ds, card, params)
        rows, cols = plan.tiles[-1].row + 1, plan.tiles[-1].col + 1
        per = shard_tiles or default_shard_tiles(len(plan.bands), read_size(plan, card, params.fast_read))
        shards = plan_shards(rows, cols, per)
        return {"rows": rows, "cols": cols, "tiles": len(plan.tiles), "shard_tiles": per,
                "shards": [dataclasses.astuple(s) for s in shards], "footprint": footprint(ds),
                "warnings": input_warnings(ds, plan, card, params.tile_size)}


def read_shard(params: ClassifyParams, shard: Shard, batch_size: int) -> list[Batch]:
    """A shard's tiles read and scaled as ``classify`` reads them, in batches of ``batch_size``."""
    card, _ = card_of_params(params)
    with open_raster(params.raster) as ds:
        plan = raster_plan(ds, card, params)
        cache = gdal_cache_bytes(ds)
    sub = dataclasses.replace(plan, tiles=shard_tiles_of(plan.tiles, shard))
    size = read_size(plan, card, params.fast_read)
    with rasterio.Env(GDAL_CACHEMAX=cache):
        return list(read_batches(params.raster, sub, card, params.min_valid, batch_size, threading.Event(),
                                 size=size))


class _Collect:
    """What the class-raster and heatmap writers would be given for a shard's tiles, kept for its part file
    (the merge hands it to the real writers in plan order)."""

    def __init__(self) -> None:
        self.items: list[tuple[Any, ...]] = []

    def add(self, x: int, y: int, *arrays: np.ndarray) -> None:
        self.items.append(arrays)


def part_path(parts_dir: str, key: str, index: int) -> Path:
    return Path(parts_dir) / key / f"{index:06d}.npz"


class ShardClassifier:
    """The model, loaded once per actor: ``__call__(shard, batches, parts_dir, key)`` runs a shard's batches
    (and their Grad-CAM maps) and writes its part file atomically; returns the shard's counts."""

    def __init__(self, params: ClassifyParams, heatmaps: bool = False, threads: int | None = None) -> None:
        self.device = pick_device(params.device)
        self.card, self.model, self.path = load_model(params.model, self.device)
        self.target = _cam_target(self.card, params.cam_class)
        self.params, self.heatmaps, self.threads = params, heatmaps, threads
        self.cam, self.runner = cam_and_runner(params, self.card, self.model, self.path, self.device,
                                               heatmaps, threads, 1)
        self._fine: tuple[Any, Any] | None = None  # context runs on non-square tiles: each tile's own map
        self._feats: Any = None  # the context pass's dense features (ONNX Runtime where classify runs there)
        self._plan: tuple[str, TilePlan] | None = None  # the last raster's plan, for its next shards
        self.tags: dict[tuple[Any, ...], str] = {}

    def _for_plan(self, raster: str | None) -> tuple[Any, Any, TilePlan | None]:
        """The CAM and runner for this shard's raster, and its plan when its heat comes from the context
        pass (engine/context.py, ``context`` or ``fused``: blocks fixed by the whole grid, so a shard draws
        what classify draws)."""
        if self.cam is None or not raster or self.cam.detail not in CONTEXT_DETAILS:
            return self.cam, self.runner, None
        params = dataclasses.replace(self.params, raster=raster)
        if self._plan is None or self._plan[0] != raster:  # a raster's shards come one after another
            with open_raster(raster) as ds:
                self._plan = (raster, raster_plan(ds, self.card, params))
        plan = self._plan[1]
        if context.supported(self.cam, plan):
            return self.cam, self.runner, plan
        if self._fine is None:
            self._fine = cam_and_runner(params, self.card, self.model, self.path, self.device, True,
                                        self.threads, 1, "fine")
        return (*self._fine, None)

    def heat_meta(self, plan_tile_px: tuple[int, int], cam: Any = None) -> str:
        """What ``classify`` records of its heatmap (alignment, tags), as JSON for the part files."""
        cam = cam or self.cam
        if cam is None:
            return "{}"
        key = (*plan_tile_px, cam.detail)
        if key not in self.tags:
            plan = SimpleNamespace(tile_src=plan_tile_px[0], tile_src_y=plan_tile_px[1])
            self.tags[key] = json.dumps(heatmap_record(cam, self.card, plan))
        return self.tags[key]

    def pid(self) -> int:
        return os.getpid()

    def __call__(self, shard: Shard, batches: list[Batch], parts_dir: str, key: str,
                 raster: str | None = None) -> dict[str, Any]:
        cam, runner, plan = self._for_plan(raster)
        classes, heat = _Collect(), _Collect()
        writers: dict[str, Any] = {"classes": classes} | ({"heatmap": heat} if cam else {})
        status: list[str] = []
        rc: list[tuple[int, int]] = []
        fractions: list[float] = []
        ids: dict[Any, int] = {}
        tile_cam = None if plan is not None else cam  # context maps come from their own pass, below
        with small_ops_single_threaded(runner):
            for batch in batches:
                item = _infer(runner, batch, self.card, self.device, False, tile_cam, self.target)
                results = _write_batch(item, self.card, tile_cam, self.target, writers)
                ids.update({t: int(r["class_id"]) for t, r in results.items()})
                for t in batch.tiles:
                    rc.append((t.row, t.col))
                    fractions.append(batch.fractions[t])
                    status.append("classified" if t in results else batch.skipped[t])
        if plan is not None and raster:  # the context pass over the shard's classified tiles
            if self._feats is None:
                self._feats = context.feature_fn(cam, self.card, self.path, self.device, self.params.runtime,
                                                 self.threads)
            context.context_heat(cam, self.card, plan, raster, ids, lambda t, m, v: _add_heat(heat, t, m, v),
                                 self.target, features=self._feats)
        arrays = {"rc": np.asarray(rc, np.int32).reshape(-1, 2), "fractions": np.asarray(fractions),
                  "status": np.asarray(status, dtype=str),
                  "probs": np.stack([i[0] for i in classes.items]) if classes.items else np.zeros((0, 0))}
        if cam is not None and heat.items:
            arrays["heat"] = np.stack([i[0] for i in heat.items]).astype(np.float32)
            arrays["weight"] = np.stack([i[1] for i in heat.items]).astype(bool)
        first = batches[0].tiles[0] if batches else None
        arrays["heat_meta"] = np.asarray(self.heat_meta((first.w, first.h), cam) if first else "{}")
        write_part(part_path(parts_dir, key, shard.index), arrays)
        return {"tiles": shard.tiles, "classified": len(classes.items)}


def write_part(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write the part file under a temporary name and rename it: a part file that exists is whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    tmp = path.with_name(f".{path.stem}-{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        f.write(buf.getbuffer())
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_part(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def params_json(params: ClassifyParams) -> str:
    return json.dumps(dataclasses.asdict(params), sort_keys=True)
