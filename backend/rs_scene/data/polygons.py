"""Raster + labelled polygons: scene tiles for training from any GDAL raster and any OGR vector layer.

Polygons (any OGR format: GeoPackage, Shapefile, GeoJSON, ...) carry their class in ``class_field``; they are
reprojected to the raster's CRS and burnt into a label grid over their bounding box (one byte per pixel of
that box). A tile of the regular grid (:func:`rs_scene.io.tiling.tile_grid`) becomes a sample of class ``c``
when ``c``'s polygons cover at least ``min_overlap`` of it. The train/validation split is spatially blocked:
square blocks of ``block`` x ``block`` tiles go wholly to one side, and, when tiles overlap (stride < tile), a
training tile that touches any validation tile's pixels is dropped, so no pixel is on both sides.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fiona
import numpy as np
import rasterio.features
import rasterio.warp
import torch
from rasterio.windows import Window, from_bounds
from rasterio.windows import transform as window_transform

from ..errors import RSSceneError
from ..io.raster import TileReader, band_names, bands_divisor, gsd_metres, gsd_metres_xy, open_raster
from ..io.tiling import Tile, tile_grid
from .datasets import SceneData

POLYGON_TYPES = {"Polygon", "MultiPolygon"}


@dataclass
class PolygonSampling:
    tile_size: int = 64  # tile edge in raster pixels
    stride: int | None = None  # grid step in raster pixels (None = tile_size)
    min_overlap: float = 0.5  # share of a tile one class's polygons must cover
    min_valid: float = 0.5  # share of a tile that must hold valid (not nodata) pixels
    block: int = 4  # edge of a spatial block, in tiles
    val_fraction: float = 0.2  # share of tiles in validation blocks
    seed: int = 0


def read_labelled_polygons(path: str, class_field: str, crs: Any) -> tuple[list[dict[str, Any]], list[str]]:
    """Polygons reprojected to ``crs`` and their class values (as text); features without one are skipped."""
    if not Path(path).exists():
        raise RSSceneError(f"labels file not found: {path}")
    try:
        with fiona.open(path) as src:
            fields = list(src.schema["properties"])
            if class_field not in fields:
                raise RSSceneError(
                    f"labels {path} have no field '{class_field}'; fields: {', '.join(fields)}"
                )
            src_crs = src.crs_wkt or None
            feats = [(dict(f.geometry), f.properties[class_field]) for f in src if f.geometry is not None]
    except fiona.errors.FionaError as exc:
        raise RSSceneError(f"labels {path} are not a readable vector file ({exc})") from exc
    feats = [(g, v) for g, v in feats if v is not None and str(v).strip() != ""]
    if not feats:
        raise RSSceneError(f"labels {path}: no polygon has a value in field '{class_field}'")
    bad = sorted({g["type"] for g, _ in feats} - POLYGON_TYPES)
    if bad:
        raise RSSceneError(f"labels {path}: geometries of type {', '.join(bad)}; polygons are needed")
    geoms = [rasterio.warp.transform_geom(src_crs, crs, g) if src_crs else g for g, _ in feats]
    return geoms, [str(v).strip() for _, v in feats]


def _label_window(ds: Any, geoms: list[dict[str, Any]], path: str) -> Window:
    bounds = np.array([rasterio.features.bounds(g) for g in geoms])
    xmin, ymin = bounds[:, 0].min(), bounds[:, 1].min()
    xmax, ymax = bounds[:, 2].max(), bounds[:, 3].max()
    rb = ds.bounds
    if xmax <= rb.left or xmin >= rb.right or ymax <= rb.bottom or ymin >= rb.top:
        raise RSSceneError(
            f"none of the {len(geoms)} polygons of {path} overlaps raster {ds.name} (raster bounds "
            f"{tuple(round(v, 2) for v in rb)}, polygons {(xmin, ymin, xmax, ymax)} in its CRS)"
        )
    win = from_bounds(xmin, ymin, xmax, ymax, ds.transform).round_offsets().round_lengths()
    return win.intersection(Window(0, 0, ds.width, ds.height))


def sample_tiles(
    ds: Any,
    geoms: list[dict[str, Any]],
    values: list[str],
    classes: list[str],
    s: PolygonSampling,
    path: str = "labels",
) -> list[tuple[Tile, int]]:
    """Tiles of the grid over the polygons' box, each with the class that covers ``min_overlap`` of it.
    Tiles are ``tile_size`` pixels wide and square on the ground, as classify cuts them."""
    win = _label_window(ds, geoms, path)
    w, h = int(win.width), int(win.height)
    gx, gy = gsd_metres_xy(ds)
    tile = (s.tile_size, max(round(s.tile_size * gx / gy), 1))
    step = s.stride or s.tile_size
    stride = (step, max(round(step * gx / gy), 1))
    if w < tile[0] or h < tile[1]:
        raise RSSceneError(
            f"the polygons of {path} span {w} x {h} raster px, less than one {s.tile_size}-px tile"
        )
    index = {c: i + 1 for i, c in enumerate(classes)}
    label = rasterio.features.rasterize(
        [(g, index[v]) for g, v in zip(geoms, values, strict=True)],
        out_shape=(h, w),
        transform=window_transform(win, ds.transform),
        fill=0,
        dtype="uint16",
    )
    out = []
    for t in tile_grid(w, h, tile, stride, "drop", int(win.col_off), int(win.row_off)):
        patch = label[
            t.y - int(win.row_off) : t.y - int(win.row_off) + t.h,
            t.x - int(win.col_off) : t.x - int(win.col_off) + t.w,
        ]
        share = np.bincount(patch.ravel(), minlength=len(classes) + 1)[1:] / patch.size
        best = int(share.argmax())
        if share[best] >= s.min_overlap:
            out.append((t, best))
    return out


def _block(t: Tile, block: int) -> tuple[int, int]:
    return t.row // block, t.col // block


def _overlaps(a: Tile, b: Tile) -> bool:
    return a.x < b.x + b.w and b.x < a.x + a.w and a.y < b.y + b.h and b.y < a.y + a.h


def spatial_split(samples: list[tuple[Tile, int]], s: PolygonSampling) -> list[str]:
    """'train' / 'val' / 'dropped' per sample: whole blocks to validation (never a class's last training
    block) until ``val_fraction`` of the tiles; then training tiles that share pixels with a validation tile
    are dropped."""
    if s.val_fraction <= 0:
        return ["train"] * len(samples)
    blocks: dict[tuple[int, int], list[int]] = {}
    for i, (t, _) in enumerate(samples):
        blocks.setdefault(_block(t, s.block), []).append(i)
    keys = sorted(blocks)
    order = np.random.default_rng(s.seed).permutation(len(keys))
    train_count = np.bincount([c for _, c in samples])
    split, target, n_val = ["train"] * len(samples), s.val_fraction * len(samples), 0
    for k in (keys[j] for j in order):
        members = blocks[k]
        removed = np.bincount([samples[i][1] for i in members], minlength=len(train_count))
        if n_val >= target or ((train_count > 0) & (train_count - removed <= 0)).any():
            continue
        for i in members:
            split[i] = "val"
        train_count -= removed
        n_val += len(members)
    val_tiles = [samples[i][0] for i in range(len(samples)) if split[i] == "val"]
    for i, (t, _) in enumerate(samples):
        if split[i] == "train" and any(_overlaps(t, v) for v in val_tiles):
            split[i] = "dropped"
    return split


def load_polygons(
    raster: str,
    labels: str,
    class_field: str,
    sampling: PolygonSampling | None = None,
    bands: list[str] | None = None,
    value_scale: float | None = None,
) -> SceneData:
    """Tiles of ``raster`` labelled by the polygons of ``labels``, spatially blocked into train / val."""
    s = sampling or PolygonSampling()
    if not 0 < s.min_overlap <= 1:
        raise RSSceneError(f"min_overlap must be in (0, 1], not {s.min_overlap}")
    with open_raster(raster) as ds:
        if ds.crs is None:
            raise RSSceneError(f"{raster} has no CRS: the polygons cannot be placed on it")
        geoms, values = read_labelled_polygons(labels, class_field, ds.crs)
        classes = sorted(set(values))
        if len(classes) < 2:
            raise RSSceneError(
                f"labels {labels}: field '{class_field}' has one class ({classes[0]}); "
                "training needs at least two"
            )
        samples = sample_tiles(ds, geoms, values, classes, s, labels)
        names = bands or [n or f"band{i + 1}" for i, n in enumerate(band_names(ds))]
        if len(names) != ds.count:
            raise RSSceneError(f"--bands names {len(names)} bands, raster {raster} has {ds.count}")
        divisor = float(value_scale or bands_divisor(ds, list(range(1, ds.count + 1)), 10000.0))
        gsd = gsd_metres(ds)
    reader = TileReader(raster, list(range(1, len(names) + 1)), s.tile_size, divisor, [0.0] * len(names))
    try:
        reads = [reader.read(t) for t, _ in samples]
    finally:
        reader.close()
    samples = [sm for sm, r in zip(samples, reads, strict=True) if r.valid_fraction >= s.min_valid]
    reads = [r for r in reads if r.valid_fraction >= s.min_valid]
    found = {c for _, c in samples}
    empty = [c for i, c in enumerate(classes) if i not in found]
    if empty:
        raise RSSceneError(
            f"class(es) {', '.join(empty)} of {labels} got no tile: no {s.tile_size}-px tile is "
            f"covered to {s.min_overlap:.0%} by their polygons; lower the tile size or min overlap"
        )
    split = spatial_split(samples, s)
    keep = [i for i, sp in enumerate(split) if sp != "dropped"]
    x = torch.from_numpy(np.stack([reads[i].data for i in keep]))
    y = torch.tensor([samples[i][1] for i in keep])
    files = [f"tile_x{samples[i][0].x}_y{samples[i][0].y}" for i in keep]
    return SceneData(
        x, y, classes, names, files, divisor, gsd, kind="polygons", split=[split[i] for i in keep]
    )
