"""Test data whose truth is known: real scene images (UC Merced, AID, EuroSAT-MS) mosaicked into one
georeferenced raster, one image per tile, with each tile's class written as a polygon of a vector layer.

Each class's images are dealt to a training region (the left columns) and a test region (the right columns)
at random positions, so polygons drawn over the training region (the truth polygons of its tiles) train a
model the way the Training dialog does, and the tiles no polygon touched measure it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fiona
import numpy as np
import rasterio
from rasterio.transform import from_origin

from ..errors import RSSceneError
from .datasets import SceneData

CRS = "EPSG:32630"  # UTM 30N: metres, any place will do for images that carry no location of their own
ORIGIN = (500_000.0, 5_800_000.0)


@dataclass
class Mosaic:
    raster: str
    truth: str  # every tile's polygon: fields class, image, region ('train' or 'test'), row, col
    train_labels: str  # the training region's polygons only (what an analyst would have drawn)
    classes: list[str]
    tile: int
    cols: int
    rows: int
    train_cols: int


def layout(labels: np.ndarray, cols: int, train_share: float, seed: int) -> tuple[np.ndarray, int, int]:
    """Grid cell (row-major index) of each image and the grid's rows and training columns: of each class,
    ``train_share`` of its images in the left ``train_cols`` columns, the rest on the right, shuffled."""
    rng = np.random.default_rng(seed)
    n = len(labels)
    train_idx, test_idx = [], []
    for c in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == c))
        k = max(1, min(len(members) - 1, round(len(members) * train_share)))
        train_idx += members[:k].tolist()
        test_idx += members[k:].tolist()
    train_cols = max(1, round(cols * len(train_idx) / n))
    rows = max(-(-len(train_idx) // train_cols), -(-len(test_idx) // max(cols - train_cols, 1)))
    train_cells = [r * cols + c for r in range(rows) for c in range(train_cols)]
    test_cells = [r * cols + c for r in range(rows) for c in range(train_cols, cols)]
    cell = np.full(n, -1)
    cell[rng.permutation(train_idx)] = train_cells[: len(train_idx)]
    cell[rng.permutation(test_idx)] = test_cells[: len(test_idx)]
    return cell, rows, train_cols


def raw_values(data: SceneData) -> tuple[np.ndarray, str]:
    """The images as stored: 8-bit for RGB sets, uint16 x ``value_scale`` for reflectance."""
    x = data.x.numpy() * data.value_scale
    if data.value_scale == 255.0:
        return np.clip(np.rint(x), 0, 255).astype(np.uint8), "uint8"
    return np.clip(np.rint(x), 0, 65535).astype(np.uint16), "uint16"


def build_mosaic(data: SceneData, out_dir: str | Path, cols: int = 12, train_share: float = 2 / 3,
                 seed: int = 0, name: str = "mosaic") -> Mosaic:
    """Write ``<name>.tif`` (one image of ``data`` per tile, at the data's GSD; band names as descriptions;
    cells left empty are nodata 0) and the truth layers ``<name>_truth.gpkg`` / ``<name>_train.gpkg``."""
    if data.task != "single-label":
        raise RSSceneError("a mosaic needs single-label images")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    labels = data.y.numpy()
    cell, rows, train_cols = layout(labels, cols, train_share, seed)
    raw, dtype = raw_values(data)
    size = raw.shape[-1]
    grid = np.zeros((raw.shape[1], rows * size, cols * size), dtype=raw.dtype)
    for i, k in enumerate(cell):
        r, c = divmod(int(k), cols)
        grid[:, r * size : (r + 1) * size, c * size : (c + 1) * size] = raw[i]
    transform = from_origin(*ORIGIN, data.gsd, data.gsd)
    raster = out_dir / f"{name}.tif"
    with rasterio.open(raster, "w", driver="GTiff", width=grid.shape[2], height=grid.shape[1],
                       count=grid.shape[0], dtype=dtype, crs=CRS, transform=transform, nodata=0,
                       compress="deflate", tiled=True) as dst:
        dst.write(grid)
        for b, band in enumerate(data.bands, start=1):
            dst.set_band_description(b, band)
    feats = [_tile_feature(transform, size, int(k), cols, train_cols, data.classes[labels[i]], data.files[i])
             for i, k in enumerate(cell)]
    truth, train = out_dir / f"{name}_truth.gpkg", out_dir / f"{name}_train.gpkg"
    _write(truth, feats)
    _write(train, [f for f in feats if f["properties"]["region"] == "train"])
    return Mosaic(str(raster), str(truth), str(train), list(data.classes), size, cols, rows, train_cols)


def _tile_feature(transform: Any, size: int, cell: int, cols: int, train_cols: int, cls: str,
                  image: str) -> dict[str, Any]:
    r, c = divmod(cell, cols)
    (x0, y0), (x1, y1) = transform @ (c * size, r * size), transform @ ((c + 1) * size, (r + 1) * size)
    ring = [(x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0)]
    return {"geometry": {"type": "Polygon", "coordinates": [ring]},
            "properties": {"class": cls, "image": image, "region": "train" if c < train_cols else "test",
                           "row": r, "col": c}}


def _write(path: Path, feats: list[dict[str, Any]]) -> None:
    schema = {"geometry": "Polygon",
              "properties": {"class": "str", "image": "str", "region": "str", "row": "int", "col": "int"}}
    path.unlink(missing_ok=True)
    with fiona.open(path, "w", driver="GPKG", crs=CRS, schema=schema) as dst:
        dst.writerecords(feats)


def truth_of(path: str) -> dict[tuple[int, int], tuple[str, str]]:
    """``(row, col) -> (class, region)`` of a truth layer."""
    with fiona.open(path) as src:
        return {(f.properties["row"], f.properties["col"]): (f.properties["class"], f.properties["region"])
                for f in src}
