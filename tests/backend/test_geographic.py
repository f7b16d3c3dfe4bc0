"""Rasters whose pixels are not square on the ground (EPSG:4326 away from the equator): tiles are cut square
on the ground, as the models were trained, for classify and for training from polygons."""

from __future__ import annotations

import collections
import math
from pathlib import Path

import fiona
import numpy as np
import pytest
import rasterio
from conftest import S2_BANDS_OPT, S2_SCENE, run_cli, write_raster
from rasterio.transform import from_origin
from rasterio.warp import (
    Resampling,
    calculate_default_transform,
    reproject,
    transform_geom,
)
from rs_scene.data.polygons import PolygonSampling, sample_tiles
from rs_scene.engine.plan import make_plan
from rs_scene.engine.reading import read_size
from rs_scene.io.raster import gsd_metres_xy
from rs_scene.io.tiling import tile_grid
from rs_scene.zoo import card_of


def _geographic(path: Path, lat: float, deg: float = 1e-4, size: int = 400) -> Path:
    data = np.full((10, size, size), 1000, dtype=np.uint16)
    with rasterio.open(path, "w", driver="GTiff", width=size, height=size, count=10, dtype="uint16",
                       crs="EPSG:4326", transform=from_origin(-4.0, lat + size * deg / 2, deg, deg)) as dst:
        dst.write(data)
    return path


def test_ground_size_of_a_degree() -> None:
    """WGS84 at 45 deg: a degree of latitude is 111132 m, one of longitude 78847 m; at the equator 110574 m and
    111320 m."""
    class _DS:  # the attributes gsd_metres_xy reads
        def __init__(self, lat: float) -> None:
            self.transform = from_origin(0, lat + 0.5, 1.0, 1.0)
            self.crs = rasterio.crs.CRS.from_epsg(4326)
            self.bounds = rasterio.coords.BoundingBox(0, lat - 0.5, 1, lat + 0.5)

    assert gsd_metres_xy(_DS(45.0)) == pytest.approx((78847, 111132), abs=2)
    assert gsd_metres_xy(_DS(0.0)) == pytest.approx((111320, 110574), abs=2)


def test_grid_of_rectangular_tiles() -> None:
    tiles = tile_grid(100, 60, (40, 25), (20, 25), "drop")
    assert {(t.w, t.h) for t in tiles} == {(40, 25)}
    assert [t.x for t in tiles if t.row == 0] == [0, 20, 40, 60] and [t.y for t in tiles if t.col == 0] == [0, 25]


def test_plan_cuts_tiles_square_on_the_ground(tmp_path: Path) -> None:
    card = card_of("sentinel2-eurosat")
    with rasterio.open(_geographic(tmp_path / "g.tif", 52.0)) as ds:
        gx, gy = gsd_metres_xy(ds)
        plan = make_plan(ds, card, bands=S2_BANDS_OPT)
    assert gx / gy == pytest.approx(math.cos(math.radians(52)), rel=0.01)
    assert (plan.tile_src * gx, plan.tile_src_y * gy) == (pytest.approx(640, rel=0.02),) * 2
    assert plan.tile_src != plan.tile_src_y and read_size(plan, card) == card.input_size  # GDAL resamples
    with rasterio.open(write_raster(tmp_path / "p.tif", np.ones((10, 200, 200), dtype=np.uint16))) as ds:
        square = make_plan(ds, card, bands=S2_BANDS_OPT)
    assert (square.tile_src, square.tile_src_y) == (64, 64) and read_size(square, card) == 64


def test_polygon_samples_are_square_on_the_ground(tmp_path: Path) -> None:
    with rasterio.open(_geographic(tmp_path / "g.tif", 60.0)) as ds:
        gx, gy = gsd_metres_xy(ds)
        (w, s, e, n) = ds.bounds
        half = (w + e) / 2
        geoms = [{"type": "Polygon", "coordinates": [[(w, s), (half, s), (half, n), (w, n), (w, s)]]},
                 {"type": "Polygon", "coordinates": [[(half, s), (e, s), (e, n), (half, n), (half, s)]]}]
        samples = sample_tiles(ds, geoms, ["a", "b"], ["a", "b"], PolygonSampling(tile_size=64))
    assert samples and {(t.w, t.h) for t, _ in samples} == {(64, round(64 * gx / gy))}
    assert {c for _, c in samples} == {0, 1}


def _edges_m(feature: fiona.Feature, crs_wkt: str) -> tuple[float, float]:
    ring = transform_geom(crs_wkt, "EPSG:27700", dict(feature.geometry))["coordinates"][0]
    (x0, y0), (x1, y1), _, (x3, y3) = ring[:4]
    return math.hypot(x1 - x0, y1 - y0), math.hypot(x3 - x0, y3 - y0)


def test_scene_in_geographic_coordinates(tmp_path: Path) -> None:
    """The real Sentinel-2 scene reprojected to EPSG:4326 (pixels 8.4 x 13.7 m): each tile covers 640 x 640 m
    (they covered 640 x 1030 m, and a fifth of the tiles turned Residential against 2 % in the scene's own
    CRS)."""
    geo = tmp_path / "s2_4326.tif"
    with rasterio.open(S2_SCENE) as ds:
        t, w, h = calculate_default_transform(ds.crs, "EPSG:4326", ds.width, ds.height, *ds.bounds)
        with rasterio.open(geo, "w", **(ds.profile | {"crs": "EPSG:4326", "transform": t, "width": w,
                                                      "height": h})) as dst:
            for b in range(1, ds.count + 1):
                reproject(rasterio.band(ds, b), rasterio.band(dst, b), resampling=Resampling.nearest)
    info = run_cli("info", geo, check=True).stdout
    assert "gsd_y_m: 13.67" in info and "gsd_m: 8.36" in info, info
    out = tmp_path / "g.gpkg"
    run_cli("classify", geo, "--model", "sentinel2-eurosat", "--bands", S2_BANDS_OPT, "--input-scale", "1000",
            "--out", out, check=True)
    with fiona.open(out) as src:
        feats = list(src)
        last = max(f.properties["row"] for f in feats), max(f.properties["col"] for f in feats)
        edges = [_edges_m(f, src.crs_wkt) for f in feats  # whole tiles: not the last row or column
                 if f.properties["row"] < last[0] and f.properties["col"] < last[1]]
        classes = collections.Counter(f.properties["class_name"] for f in feats
                                      if f.properties["status"] == "classified")
    widths, heights = zip(*edges, strict=True)
    assert 630 < min(widths) and max(widths) < 650 and 630 < min(heights) and max(heights) < 650
    assert classes["Residential"] / sum(classes.values()) < 0.10, classes
