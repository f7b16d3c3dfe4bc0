"""The ETA shown before a run: a short calibration run in the middle of the raster, scaled to its tiles.

``estimate_run`` classifies a block of about ``calibration_tiles`` tiles at the raster's centre with the
same model, options and outputs as the real run (so reading, writing and Grad-CAM are all counted), splits its
time into a fixed part (model load, the pipeline filling up) and a per-tile part (measured over the run's
last two thirds, once every inference stream is busy), and caches that split per model file,
raster, outputs and settings, so later estimates (another extent, say) cost nothing.
"""

from __future__ import annotations

import math
import tempfile
import time
from pathlib import Path
from typing import Any

from rasterio.windows import Window, bounds

_CACHE: dict[tuple[Any, ...], tuple[float, float]] = {}


def _plan(raster: str, model: str, params: dict[str, Any]) -> tuple[Any, Any, list[str]]:
    """The run's plan, the raster's transform and the warnings the run would give (scale, resolution)."""
    from ..engine.plan import input_warnings, make_plan
    from ..io.raster import open_raster
    from ..zoo import card_of

    card = card_of(model)
    keys = ("bands", "tile_size", "stride", "gsd", "extent", "input_scale", "edge", "nodata")
    with open_raster(raster) as ds:
        plan = make_plan(ds, card, **{k: params[k] for k in keys if params.get(k) is not None})
        return plan, ds.transform, input_warnings(ds, plan, card, params.get("tile_size"))


def _centre_extent(plan: Any, transform: Any, tiles: int) -> tuple[float, float, float, float]:
    x0, y0, w, h = plan.area
    n = max(int(math.ceil(math.sqrt(tiles))), 1)
    sw = min(n * plan.stride_src + plan.tile_src - plan.stride_src, w)
    sh = min(n * plan.stride_src_y + plan.tile_src_y - plan.stride_src_y, h)
    win = Window(x0 + (w - sw) // 2, y0 + (h - sh) // 2, sw, sh)
    return bounds(win, transform)


def _run(raster: str, model: str, heatmap: bool, extent: Any, params: dict[str, Any],
         tmp: str) -> tuple[float, float, int, int]:
    """Seconds to the first progress report with a third of the tiles done, total seconds, tiles done at that
    report and in all."""
    from ..engine.infer import ClassifyParams, classify_raster

    marks: list[tuple[float, int]] = []
    kw = {k: v for k, v in params.items() if k in ClassifyParams.__dataclass_fields__}
    kw.update(raster=raster, model=model, extent=extent, out_gpkg=str(Path(tmp) / f"cal{len(marks)}.gpkg"),
              heatmap=str(Path(tmp) / "cal.tif") if heatmap else None, class_raster=None)
    t0 = time.perf_counter()
    res = classify_raster(ClassifyParams(**kw),
                          progress=lambda done, total, stage: marks.append((time.perf_counter(), done)))
    end = time.perf_counter()
    steady = [m for m in marks if m[1] >= res.tiles_total / 3 and m[1] < res.tiles_total]
    first_t, first_n = steady[0] if steady else (end, res.tiles_total)
    return first_t - t0, end - t0, first_n, res.tiles_total


def calibrate(raster: str, model: str, heatmap: bool, plan: Any, transform: Any,
              calibration_tiles: int = 256, **params: Any) -> tuple[float, float]:
    """``(fixed_seconds, seconds_per_tile)`` for this setup, measured at the centre of ``plan`` (the run's
    plan, with ``transform`` the raster's)."""
    from ..io.raster import gdal_virtual
    from ..zoo import resolve_model

    where = raster if gdal_virtual(raster) else str(Path(raster).resolve())
    key = (str(resolve_model(model).resolve()), where, heatmap,
           *(params.get(k) for k in ("device", "runtime", "threads", "streams", "batch_size", "cam",
                                     "heatmap_detail", "heatmap_norm", "tile_size", "stride", "gsd")))
    if key in _CACHE:
        return _CACHE[key]
    with tempfile.TemporaryDirectory(prefix="rs-scene-eta-") as tmp:
        # a one-tile run first, so a one-off ONNX export is not counted as the fixed cost of every run
        _run(raster, model, heatmap, _centre_extent(plan, transform, 1), params, tmp)
        first_s, total_s, first_n, n = _run(raster, model, heatmap,
                                            _centre_extent(plan, transform, calibration_tiles), params, tmp)
    per_tile = (total_s - first_s) / (n - first_n) if n > first_n else total_s / max(n, 1)
    fixed = max(total_s - n * per_tile, 0.0)
    _CACHE[key] = (fixed, per_tile)
    return fixed, per_tile


def estimate_run(raster: str, model: str, heatmap: bool = False,
                 **params: Any) -> tuple[float, int, list[str]]:
    """``(seconds, tiles, warnings)`` of a ``classify`` of ``raster`` with ``model`` (``params``:
    ClassifyParams fields such as ``bands``, ``input_scale``, ``device``, ``runtime``, ``extent``); the
    warnings are those the run would give, shown with the ETA before it starts. The first call for a setup
    runs a short calibration (a few seconds); later calls are instant."""
    plan, transform, warnings = _plan(raster, model, params)
    fixed, per_tile = calibrate(raster, model, heatmap, plan, transform, **params)
    return fixed + len(plan.tiles) * per_tile, len(plan.tiles), warnings


def estimate_seconds(raster: str, model: str, heatmap: bool = False, **params: Any) -> float:
    """Seconds of :func:`estimate_run`."""
    return estimate_run(raster, model, heatmap, **params)[0]
