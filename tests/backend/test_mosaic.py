"""The test-data builder: real images mosaicked one per tile into a georeferenced raster, each tile's class
as a polygon; the training region's polygons, read through the polygon training path, give back exactly the
images and classes that went in (UC Merced RGB and EuroSAT-MS with 10 bands)."""

from __future__ import annotations

from pathlib import Path

import fiona
import numpy as np
import pytest
import rasterio
from rs_scene.bands import S2_TEN
from rs_scene.data.datasets import load_eurosat, load_folder
from rs_scene.data.mosaic import build_mosaic, truth_of
from rs_scene.data.polygons import InputOptions, PolygonSampling, load_polygons

pytest_plugins = ["datasets_tiny"]
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("kind", ["ucmerced", "eurosat"])
def test_the_mosaic_gives_back_its_images_and_classes(kind: str, ucm_tiny: Path, eurosat_tiny: Path,
                                                      tmp_path: Path) -> None:
    data = load_folder(ucm_tiny, 32) if kind == "ucmerced" else load_eurosat(eurosat_tiny, list(S2_TEN))
    m = build_mosaic(data, tmp_path, cols=4, seed=3)
    size = data.x.shape[-1]
    with rasterio.open(m.raster) as ds:
        assert ds.crs.to_epsg() == 32630 and ds.res == (data.gsd, data.gsd) and ds.count == len(data.bands)
        assert list(ds.descriptions) == data.bands and (ds.width, ds.height) == (4 * size, m.rows * size)
    truth = truth_of(m.truth)
    assert len(truth) == len(data) and {c for c, _ in truth.values()} == set(data.classes)
    for c in data.classes:  # every class on both sides
        assert {r for cls, r in truth.values() if cls == c} == {"train", "test"}, c
    with fiona.open(m.train_labels) as src:
        images = {f.properties["image"]: f.properties["class"] for f in src}
    assert all(region == "train" for _, region in truth_of(m.train_labels).values())
    read = load_polygons(m.raster, m.train_labels, "class", PolygonSampling(tile_size=size, block=1,
                                                                            min_overlap=0.99), InputOptions())
    assert len(read) == len(images) and read.value_scale == data.value_scale and read.bands == data.bands
    by_file = {f: i for i, f in enumerate(data.files)}
    cells = {(r, c): img for img, (r, c) in
             ((f.properties["image"], (f.properties["row"], f.properties["col"])) for f in fiona.open(m.truth))}
    for i, name in enumerate(read.files):
        x, y = (int(v[1:]) for v in name.split("_")[1:])
        src = by_file[cells[(y // size, x // size)]]
        assert read.classes[read.y[i]] == data.classes[data.y[src]]
        assert np.allclose(read.x[i].numpy(), data.x[src].numpy(), atol=0.5 / data.value_scale)
