"""Position bias over a real scene, as ``classify`` writes the heatmap (issue 13): the scene is classified
with its heatmap, the map of every whole, fully valid tile is cut from the GeoTIFF on the tile grid, and
:func:`rs_scene.explain.faithfulness.position_bias` gives the median correlation of a tile's map with the mean
tile map; :func:`~rs_scene.explain.faithfulness.seam_ratio` how smooth the mosaic is across tile borders."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import rasterio

from ..engine.infer import ClassifyParams, classify_raster
from . import faithfulness as fa


@dataclass(frozen=True)
class Scene:
    """A real scene and the classify options a user would give it for one model."""

    raster: str
    bands: str
    tile_px: int  # the tile's edge in raster pixels (what the heatmap's grid is cut at)
    input_scale: float | None = None
    gsd: float | str | None = None
    tile_size: int | None = None
    label: str = ""


def tile_maps(arr: np.ndarray, valid: np.ndarray, tile: int) -> np.ndarray:
    """The ``tile`` x ``tile`` maps of the heatmap's whole, fully valid tiles (grid from its top left)."""
    maps = [arr[r : r + tile, c : c + tile] for r in range(0, arr.shape[0] - tile + 1, tile)
            for c in range(0, arr.shape[1] - tile + 1, tile) if valid[r : r + tile, c : c + tile].all()]
    return np.stack(maps) if maps else np.zeros((0, tile, tile), dtype=arr.dtype)


def _extent(raster: str, tiles: int, px: int) -> tuple[float, float, float, float]:
    """A square of ``tiles`` x ``tiles`` tiles of ``px`` raster pixels from the raster's top left."""
    with rasterio.open(raster) as ds:
        x0, y0 = ds.transform @ (0, 0)
        x1, y1 = ds.transform @ (tiles * px, tiles * px)
    return min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)


def scene_maps(scene: Scene, model: str, method: str = "gradcam", detail: str = "context",
               norm: str = "run", square_tiles: int | None = None,
               **params: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Classify ``scene`` with its heatmap (of only a square of ``square_tiles`` x ``square_tiles`` tiles from
    its top left when given); the whole valid tiles' maps, the heatmap and its valid pixels."""
    extent = _extent(scene.raster, square_tiles, scene.tile_px) if square_tiles else None
    with tempfile.TemporaryDirectory() as tmp:
        heat = str(Path(tmp) / "h.tif")
        p = ClassifyParams(raster=scene.raster, model=model, heatmap=heat, bands=scene.bands,
                           input_scale=scene.input_scale, gsd=scene.gsd, tile_size=scene.tile_size,
                           cam=method, heatmap_detail=detail, heatmap_norm=norm, extent=extent, edge="pad")
        classify_raster(replace(p, **params))
        with rasterio.open(heat) as h:
            arr = h.read(1)
            valid = arr != h.nodata
    return tile_maps(arr, valid, scene.tile_px), arr, valid


def scene_position_bias(scene: Scene, model: str, method: str = "gradcam", detail: str = "context",
                        norm: str = "run", square_tiles: int | None = None, **params: Any) -> dict[str, Any]:
    """Position bias (median r, same-peak share, tiles) and seam ratio of ``model``'s heatmap over
    ``scene``."""
    maps, arr, valid = scene_maps(scene, model, method, detail, norm, square_tiles, **params)
    if not len(maps):
        raise ValueError(f"{scene.raster}: no whole, fully valid tile of {scene.tile_px} px in the heatmap")
    out = fa.position_bias(maps)
    out["seam_ratio"] = fa.seam_ratio(arr, valid, scene.tile_px)
    out["source"] = scene.label or Path(scene.raster).name
    return out
