"""A model trained from sea and farmland polygons on the real Aberystwyth Sentinel-2 scene (x1000, 10 bands),
with the Training dialog's defaults and a 32-px tile, gets its own polygons right when classify reads the
raster. Before the fix it did not: 32-px tiles went into EfficientNet-Lite0 at 32 px (a 1 x 1 last feature
map whose ImageNet features were all zero), and the model said one class for nearly everything."""

from __future__ import annotations

from pathlib import Path

import fiona
import pytest
import rasterio
from rasterio.windows import Window
from rs_scene.data.polygons import InputOptions, PolygonSampling, load_polygons
from rs_scene.engine.infer import ClassifyParams, classify_raster
from rs_scene.engine.train import TrainParams, train_model
from rs_scene.engine.trainer import TrainSettings

pytest_plugins = ["datasets_tiny"]
pytestmark = pytest.mark.usefixtures("one_thread")

BANDS = "B02,B03,B04,B05,B06,B07,B08,B8A,B11,B12"
TILE = 32
BOXES = {"sea": [(0, 0, 96, 224)], "farmland": [(320, 0, 128, 224)]}  # pixels (col, row, width, height)


def crop(scene: Path, out: Path, width: int = 448, height: int = 224) -> str:
    """The scene's top-left corner (Cardigan Bay and the farmland east of it) as a GeoTIFF of its own."""
    with rasterio.open(scene) as ds:
        win = Window(0, 0, width, height)
        profile = {**ds.profile, "width": width, "height": height, "transform": ds.window_transform(win)}
        with rasterio.open(out, "w", **profile) as dst:
            dst.write(ds.read(window=win))
    return str(out)


def boxes_layer(raster: str, path: Path) -> str:
    with rasterio.open(raster) as ds:
        t, crs = ds.transform, ds.crs.to_wkt()
    with fiona.open(path, "w", driver="GPKG", crs_wkt=crs,
                    schema={"geometry": "Polygon", "properties": {"class": "str"}}) as dst:
        for name, boxes in BOXES.items():
            for c, r, w, h in boxes:
                (x0, y0), (x1, y1) = t @ (c, r), t @ (c + w, r + h)
                ring = [(x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0)]
                dst.write({"geometry": {"type": "Polygon", "coordinates": [ring]}, "properties": {"class": name}})
    return str(path)


def test_the_dialogs_defaults_learn_sea_and_farmland_on_the_real_scene(data_root: Path, tmp_path: Path) -> None:
    raster = crop(data_root / "scenes" / "sentinel2_aberystwyth_20210527_10band.tif", tmp_path / "crop.tif")
    labels = boxes_layer(raster, tmp_path / "polys.gpkg")
    data = load_polygons(raster, labels, "class", PolygonSampling(tile_size=TILE, block=2),
                         InputOptions(bands=BANDS, input_scale=1000))
    # the service's train job with the dialog's defaults (only the epochs cut, to keep the test short)
    card, _ = train_model(TrainParams(out=str(tmp_path / "m.pt"), options={"epochs": 3},
                                      settings=TrainSettings(device="cpu")), data=data)
    assert card.method_config["init"] == "sentinel2-eurosat", "10 bands of Sentinel-2: the in-domain model"
    assert (card.tile_size, card.input_size) == (TILE, 128)
    grid = tmp_path / "grid.gpkg"
    classify_raster(ClassifyParams(raster=raster, model=str(tmp_path / "m.pt"), out_gpkg=str(grid), device="cpu",
                                   bands=BANDS, edge="drop"))
    with fiona.open(grid) as src:
        pred = {(f.properties["col"] * TILE, f.properties["row"] * TILE): f.properties["class_name"] for f in src}
    train = [i for i, s in enumerate(data.split) if s == "train"]
    for c, name in enumerate(data.classes):
        own = [pred.get(tuple(int(v[1:]) for v in data.files[i].split("_")[1:])) for i in train
               if data.y[i] == c]
        right = sum(p == name for p in own)
        assert len(own) >= 8 and right >= 0.9 * len(own), f"{name}: {right} of its {len(own)} training tiles"


def test_a_learning_rate_of_0_means_the_methods_default_where_its_help_says_so(data_root: Path,
                                                                               tmp_path: Path) -> None:
    from rs_scene.methods import create_method
    from rs_scene.server.requests import RequestError, train_request

    raster = str(data_root / "scenes" / "sen2_20210527_aber_subset.tif")
    labels = boxes_layer(raster, tmp_path / "polys.gpkg")
    body = {"raster": raster, "labels": labels, "class_field": "class", "out": str(tmp_path / "m.pt")}
    req = train_request({**body, "method": "pretrain", "options": {"lr": 0}})  # the help: "0 = the paper's"
    method = create_method("pretrain", req["options"], num_classes=2, bands=BANDS.split(","))
    assert method.base_lr() == 3e-4, "fine-tuning: the paper's rate"
    with pytest.raises(RequestError, match="option 'lr' must be greater than 0"):
        train_request({**body, "method": "pskd", "options": {"lr": 0}})  # pskd has no '0 =' rate
    with pytest.raises(RequestError, match="option 'lr' must be greater than 0"):
        train_request({**body, "method": "pretrain", "options": {"lr": -0.1}})
