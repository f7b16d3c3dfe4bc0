"""Merging a raster's shard parts, in plan order, into the outputs ``classify`` writes, with its writers: the
styled GeoPackage grid (with the run record), the class GeoTIFF and the heatmap GeoTIFF (both rewritten as
cloud-optimised GeoTIFFs). Runs as a task on the cluster; reads one part file at a time."""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import rasterio.shutil

from ..engine.infer import ClassifyParams, ClassifyResult, _add_heat, _run_record, _write_grid, tile_records
from ..engine.reading import Batch
from ..errors import RSSceneError
from ..io.raster import open_raster
from ..io.writers import ClassRasterWriter, GridWriter, HeatmapWriter
from .shards import Shard, shard_tiles_of
from .work import card_of_params, load_part, part_path, raster_plan


def _writers(params: ClassifyParams, card: Any, ds: Any, plan: Any) -> dict[str, Any]:
    writers: dict[str, Any] = {}
    try:
        if params.out_gpkg:
            writers["grid"] = GridWriter(params.out_gpkg, ds.crs, card.classes, card.task == "multi-label")
        if params.heatmap:
            writers["heatmap"] = HeatmapWriter(params.heatmap, ds, plan.area, plan.tile_src_y,
                                               params.heatmap_norm)
        if params.class_raster:
            cells = (plan.stride_src, plan.stride_src_y), (plan.tile_src, plan.tile_src_y)
            writers["classes"] = ClassRasterWriter(params.class_raster, ds, plan.area, *cells, card.classes)
    except BaseException:
        for w in writers.values():
            w.abort()
        raise
    return writers


def _add_part(part: dict[str, np.ndarray], tiles: list[Any], card: Any, ds: Any, writers: dict[str, Any],
              counts: Counter[str]) -> int:
    """One shard's tiles into the writers, as ``classify`` adds a batch; returns the tiles classified."""
    status = [str(s) for s in part["status"]]
    got = [tuple(int(v) for v in rc) for rc in part["rc"]]
    if got != [(t.row, t.col) for t in tiles]:
        raise RSSceneError("a shard part does not hold the tiles its shard was planned with")
    run = [t for t, s in zip(tiles, status, strict=True) if s == "classified"]
    skipped = {t: s for t, s in zip(tiles, status, strict=True) if s != "classified"}
    fractions = {t: float(f) for t, f in zip(tiles, part["fractions"], strict=True)}
    probs = part["probs"]
    results = dict(zip(run, tile_records(card, probs), strict=True)) if run else {}
    for j, t in enumerate(run):
        counts[results[t]["class_name"]] += 1
        if "classes" in writers:
            writers["classes"].add(t.x, t.y, probs[j])
        if "heatmap" in writers and "heat" in part:
            _add_heat(writers["heatmap"], t, part["heat"][j], part["weight"][j])
    _write_grid(writers.get("grid"), Batch(tiles, None, run, [], fractions, skipped), results, card, ds)
    return len(run)


def merge_raster(params: ClassifyParams, shards: list[Shard], parts_dir: str, key: str,
                 extra: dict[str, Any]) -> dict[str, Any]:
    """Write the raster's outputs from its parts; returns what the run index records of it."""
    t0 = time.perf_counter()
    card, model_path = card_of_params(params)
    with open_raster(params.raster) as ds:
        plan = raster_plan(ds, card, params)
        res, counts = ClassifyResult(tiles_total=len(plan.tiles)), Counter()
        writers = _writers(params, card, ds, plan)
        heat: dict[str, Any] = {}
        try:
            for shard in shards:
                part = load_part(part_path(parts_dir, key, shard.index))
                heat = heat or json.loads(str(part.get("heat_meta", "{}")))
                n = _add_part(part, shard_tiles_of(plan.tiles, shard), card, ds, writers, counts)
                res.tiles_classified += n
                res.tiles_skipped += shard.tiles - n
            if res.tiles_classified == 0:
                raise RSSceneError(
                    f"{params.raster}: no valid pixels to classify: all {res.tiles_total} tiles are nodata "
                    f"or under --min-valid {params.min_valid}")
            res.class_counts = dict(counts.most_common())
            record = _run_record(params, card, model_path, plan, res) | extra
            record |= heat if params.heatmap else {}
            for k, w in writers.items():
                w.commit(*{"grid": (record,), "heatmap": (heat.get("heatmap"),)}.get(k, ()))
        except BaseException:
            for w in writers.values():
                w.abort()
            raise
    for path in (params.heatmap, params.class_raster):
        if path:
            to_cog(path)
    return {"tiles_total": res.tiles_total, "tiles_classified": res.tiles_classified,
            "tiles_skipped": res.tiles_skipped, "class_counts": res.class_counts,
            "merge_seconds": round(time.perf_counter() - t0, 3)}


def to_cog(path: str) -> None:
    """Rewrite a GeoTIFF as a cloud-optimised GeoTIFF (internal tiles and overviews), atomically."""
    tmp = Path(path).with_name(f".{Path(path).stem}-cog.tif")
    with rasterio.open(path) as src:
        floats = src.dtypes[0] == "float32"
    try:
        rasterio.shutil.copy(path, tmp, driver="COG", COMPRESS="DEFLATE", PREDICTOR="3" if floats else "2",
                             BLOCKSIZE="256", OVERVIEW_RESAMPLING="AVERAGE" if floats else "NEAREST")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
