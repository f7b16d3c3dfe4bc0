"""Raster + labelled polygons on a real Sentinel-2 subset: polygons written in WGS 84 and reprojected, tiles
sampled by the minimum-overlap rule, a spatially blocked split with no tile (or pixel) on both sides."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import fiona
import numpy as np
import pytest
import rasterio
import rasterio.warp
from rs_scene.data.polygons import (
    PolygonSampling,
    load_polygons,
    sample_tiles,
    spatial_split,
)
from rs_scene.errors import RSSceneError
from rs_scene.io.raster import open_raster

pytest_plugins = ["datasets_tiny"]
pytestmark = pytest.mark.usefixtures("one_thread")

# Pixel boxes (col0, row0, col1, row1) on the 324 x 339 raster and their classes.
BOXES = [
    ((0, 0, 160, 120), "forest"),
    ((160, 0, 324, 150), "urban"),
    ((0, 170, 324, 339), "water"),
    ((170, 200, 180, 210), "urban"),
]


@pytest.fixture(scope="module")
def raster(data_root: Path) -> str:
    return str(data_root / "scenes" / "sen2_20210527_aber_subset.tif")


def box_geom(ds: Any, box: tuple[int, int, int, int]) -> dict[str, Any]:
    c0, r0, c1, r1 = box
    (x0, y0), (x1, y1) = ds.transform @ (c0, r0), ds.transform @ (c1, r1)
    ring = [(x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0)]
    return {"type": "Polygon", "coordinates": [ring]}


def write_labels(
    path: Path,
    raster: str,
    boxes: list[tuple[Any, Any]],
    field: str = "cls",
    crs: str = "EPSG:4326",
    offset: tuple[float, float] = (0.0, 0.0),
) -> str:
    with rasterio.open(raster) as ds:
        geoms = [box_geom(ds, b) for b, _ in boxes]
        src_crs = ds.crs
    if offset != (0.0, 0.0):
        geoms = [
            {
                "type": "Polygon",
                "coordinates": [
                    [(x + offset[0], y + offset[1]) for x, y in g["coordinates"][0]]
                ],
            }
            for g in geoms
        ]
    schema = {"geometry": "Polygon", "properties": {field: "str", "id": "int"}}
    with fiona.open(path, "w", driver="GPKG", crs=crs, schema=schema) as dst:
        for i, (g, (_, value)) in enumerate(zip(geoms, boxes)):
            dst.write(
                {
                    "geometry": rasterio.warp.transform_geom(src_crs, crs, g),
                    "properties": {field: value, "id": i},
                }
            )
    return str(path)


@pytest.fixture(scope="module")
def labels(raster: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    return write_labels(tmp_path_factory.mktemp("poly") / "labels.gpkg", raster, BOXES)


def test_tiles_follow_the_polygons(raster: str, labels: str) -> None:
    s = PolygonSampling(tile_size=16, min_overlap=0.75, block=3, val_fraction=0.25)
    data = load_polygons(raster, labels, "cls", s)
    assert data.classes == ["forest", "urban", "water"] and data.kind == "polygons"
    assert data.x.shape[1:] == (10, 16, 16) and data.value_scale == 10000.0
    assert set(data.split) == {"train", "val", "test"}  # every class lies in 3+ blocks: a held-out part
    for f, y in zip(data.files, data.y.tolist()):
        x, yy = (
            int(v[1:]) for v in f.split("_")[1:]
        )  # tile_x<col>_y<row>, raster pixels
        cx, cy = x + 8, yy + 8
        hits = [
            c for (c0, r0, c1, r1), c in BOXES[:3] if c0 <= cx < c1 and r0 <= cy < r1
        ]
        assert hits == [data.classes[y]], f
    # the 10 x 10 px urban patch inside the water is under 75 % of any tile: those tiles stay water
    assert data.y[data.files.index("tile_x176_y208")] == data.classes.index("water")
    with open_raster(raster) as ds:
        ref = ds.read(window=((0, 16), (0, 16))).astype(np.float32) / 10000.0
    first = data.files.index("tile_x0_y0")
    assert np.allclose(data.x[first].numpy(), ref)


@pytest.mark.parametrize("stride", [16, 8])
def test_spatial_split_has_no_tile_on_both_sides(
    raster: str, labels: str, stride: int
) -> None:
    s = PolygonSampling(
        tile_size=16, stride=stride, min_overlap=0.5, block=3, val_fraction=0.3, seed=1
    )
    with open_raster(raster) as ds:
        from rs_scene.data.polygons import read_labelled_polygons

        geoms, values = read_labelled_polygons(labels, "cls", ds.crs)
        samples = sample_tiles(ds, geoms, values, sorted(set(values)), s)
    split, _ = spatial_split(samples, s, ["forest", "urban", "water"])
    train = [t for (t, _), sp in zip(samples, split) if sp == "train"]
    val = [t for (t, _), sp in zip(samples, split) if sp in ("val", "test")]
    assert train and val and not set(train) & set(val)
    assert 0.35 <= len(val) / len(samples) <= 0.75  # 0.3 validation, 0.2 held-out
    for t in train:  # no training pixel inside a validation tile
        for v in val:
            assert (
                t.x + t.w <= v.x
                or v.x + v.w <= t.x
                or t.y + t.h <= v.y
                or v.y + v.h <= t.y
            )
    blocks = {}
    for (t, _), sp in zip(samples, split):
        if sp != "dropped":
            blocks.setdefault((t.y // (3 * stride), t.x // (3 * stride)), set()).add(sp)
    assert all(len(sides) == 1 for sides in blocks.values())
    assert ("dropped" in split) == (stride < 16)
    for part in ("train", "val", "test"):
        assert {c for (_, c), sp in zip(samples, split) if sp == part} == {0, 1, 2}, part


def test_bad_polygons_are_refused(raster: str, tmp_path: Path) -> None:
    good = write_labels(tmp_path / "good.gpkg", raster, BOXES)
    with pytest.raises(RSSceneError, match="no field 'class'.*cls"):
        load_polygons(raster, good, "class")
    empty = write_labels(tmp_path / "empty.gpkg", raster, [(b, "") for b, _ in BOXES])
    with pytest.raises(RSSceneError, match="no polygon has a value"):
        load_polygons(raster, empty, "cls")
    outside = write_labels(
        tmp_path / "out.gpkg", raster, BOXES, crs="EPSG:27700", offset=(50_000.0, 0.0)
    )
    with pytest.raises(RSSceneError, match="overlaps raster"):
        load_polygons(raster, outside, "cls")
    one = write_labels(tmp_path / "one.gpkg", raster, [(b, "forest") for b, _ in BOXES])
    with pytest.raises(RSSceneError, match="one class"):
        load_polygons(raster, one, "cls")
    tiny = write_labels(
        tmp_path / "tiny.gpkg", raster, [BOXES[0], ((170, 200, 180, 210), "pond")]
    )
    with pytest.raises(RSSceneError, match="pond.*got no tile"):
        load_polygons(raster, tiny, "cls", PolygonSampling(tile_size=16))
    with pytest.raises(RSSceneError, match="not found"):
        load_polygons(raster, str(tmp_path / "missing.gpkg"), "cls")
