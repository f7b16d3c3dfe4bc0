"""Each Processing algorithm on a real scene against a real service, as batch mode or qgis_process run it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import S2_BANDS, polygon_layer, small_extent
from qgis.core import (
    QgsApplication,
    QgsProcessingException,
    QgsRasterLayer,
    QgsVectorLayer,
)


@pytest.fixture
def provider(manager, qgis_processing):
    from rs_scene_plugin.processing.provider import RSSceneProvider

    registry = QgsApplication.processingRegistry()
    prov = RSSceneProvider(manager)
    registry.addProvider(prov)
    yield prov
    registry.removeProvider(prov)


def run(alg: str, params: dict) -> dict:
    import processing

    return processing.run(f"rs_scene:{alg}", params)


def test_classify_writes_a_styled_grid_and_a_heatmap(provider, s2_layer, tmp_path: Path) -> None:
    ext = small_extent(s2_layer)
    result = run("classify", {
        "INPUT": s2_layer, "MODEL": "sentinel2-eurosat", "BANDS": S2_BANDS, "INPUT_SCALE": 1000,
        "EXTENT": f"{ext.xMinimum()},{ext.xMaximum()},{ext.yMinimum()},{ext.yMaximum()} [EPSG:27700]",
        "OUTPUT_GRID": str(tmp_path / "grid.gpkg"), "OUTPUT_HEATMAP": str(tmp_path / "heat.tif")})
    assert result["TILES_TOTAL"] == 6 and result["TILES_CLASSIFIED"] == 6
    assert sum(result["CLASS_COUNTS"].values()) == 6
    grid = QgsVectorLayer(result["OUTPUT_GRID"], "grid", "ogr")
    assert grid.isValid() and grid.featureCount() == 6
    assert grid.renderer().type() == "categorizedSymbol", "the GeoPackage's default style must load"
    assert {f["class_name"] for f in grid.getFeatures()} == set(result["CLASS_COUNTS"])
    got = grid.extent()
    assert [got.xMinimum(), got.yMinimum(), got.xMaximum(), got.yMaximum()] == pytest.approx(
        [ext.xMinimum(), ext.yMinimum(), ext.xMaximum(), ext.yMaximum()], abs=1e-3), "tiles cover the extent"
    heat = QgsRasterLayer(result["OUTPUT_HEATMAP"], "heat")
    assert heat.isValid() and heat.width() == 192 and heat.height() == 128


def test_classify_warns_when_values_are_far_from_the_training_range(provider, s2_layer, tmp_path: Path) -> None:
    from qgis.core import QgsProcessingFeedback

    class Feedback(QgsProcessingFeedback):
        def __init__(self) -> None:
            super().__init__()
            self.warnings: list[str] = []

        def pushWarning(self, text: str) -> None:
            self.warnings.append(text)

    import processing

    ext, feedback = small_extent(s2_layer), Feedback()
    result = processing.run("rs_scene:classify", {
        "INPUT": s2_layer, "MODEL": "sentinel2-eurosat", "BANDS": S2_BANDS,  # no INPUT_SCALE: x10000 assumed
        "EXTENT": f"{ext.xMinimum()},{ext.xMaximum()},{ext.yMinimum()},{ext.yMaximum()} [EPSG:27700]",
        "OUTPUT_GRID": str(tmp_path / "grid.gpkg")}, feedback=feedback)
    assert result["TILES_CLASSIFIED"] == 6
    assert len(feedback.warnings) == 1 and "e.g. 1000" in feedback.warnings[0], feedback.warnings


def test_classify_skips_the_layers_own_no_data_value(provider, tmp_path: Path) -> None:
    """A raster framed by zeros and declaring no nodata; the user set 'Additional no data value' 0 on the layer
    (as one hides black borders in QGIS): those pixels are skipped, not classified as water."""
    import numpy as np
    from conftest import SCENES
    from osgeo import gdal
    from qgis.core import QgsRasterRange

    src, framed, pad = gdal.Open(str(SCENES / "sen2_20210527_aber_subset.tif")), tmp_path / "framed.tif", 128
    data = src.ReadAsArray()
    big = np.zeros((data.shape[0], data.shape[1] + 2 * pad, data.shape[2] + 2 * pad), data.dtype)
    big[:, pad:-pad, pad:-pad] = data
    dst = gdal.GetDriverByName("GTiff").Create(str(framed), big.shape[2], big.shape[1], big.shape[0],
                                               gdal.GDT_UInt16)
    x0, dx, rx, y0, ry, dy = src.GetGeoTransform()
    dst.SetGeoTransform((x0 - pad * dx, dx, rx, y0 - pad * dy, ry, dy))
    dst.SetProjection(src.GetProjection())
    for b in range(big.shape[0]):
        dst.GetRasterBand(b + 1).WriteArray(big[b])
    dst = src = None  # written and closed
    counts = {}
    for name in ("as is", "no data 0", "NODATA 0"):
        layer = QgsRasterLayer(str(framed), "framed", "gdal")
        if name == "no data 0":
            for band in range(1, layer.bandCount() + 1):
                layer.dataProvider().setUserNoDataValue(band, [QgsRasterRange(0, 0)])
        result = run("classify", {"INPUT": layer, "MODEL": "sentinel2-eurosat", "BANDS": S2_BANDS,
                                  "INPUT_SCALE": 1000, "HEATMAP": False,
                                  "OUTPUT_GRID": str(tmp_path / f"{name}.gpkg"),
                                  **({"NODATA": 0} if name == "NODATA 0" else {})})
        counts[name] = result["TILES_CLASSIFIED"]
    # 10 x 10 tiles, the last column and row shifted inside the frame: all classified as they are
    assert counts == {"as is": 100, "no data 0": 25, "NODATA 0": 25}, counts


def test_classify_names_missing_bands(provider, s2_layer, tmp_path: Path) -> None:
    missing = r"aberystwyth. lacks band\(s\) red, green, blue needed by model 'aerial-rgb'"
    with pytest.raises(QgsProcessingException, match=missing):
        run("classify", {"INPUT": s2_layer, "MODEL": "aerial-rgb", "OUTPUT_GRID": str(tmp_path / "grid.gpkg")})
    with pytest.raises(QgsProcessingException, match="MODEL"):  # not one of the listed models
        run("classify", {"INPUT": s2_layer, "MODEL": "nope", "OUTPUT_GRID": str(tmp_path / "grid.gpkg")})
    with pytest.raises(QgsProcessingException, match="nope.pt"):  # the file is named
        run("classify", {"INPUT": s2_layer, "MODEL_FILE": str(tmp_path / "nope.pt"), "BANDS": S2_BANDS,
                         "OUTPUT_GRID": str(tmp_path / "grid.gpkg")})
    assert not [p for p in tmp_path.iterdir() if p.suffix != ".pt"]


def test_classify_offers_models_as_a_list_and_the_raster_in_the_project(provider, s2_layer, qgis_iface) -> None:
    qgis_iface.setActiveLayer(s2_layer)
    alg = QgsApplication.processingRegistry().createAlgorithmById("rs_scene:classify")
    model = alg.parameterDefinition("MODEL")
    assert model.type() == "enum" and {"sentinel2-eurosat", "aerial-rgb"} <= set(model.options())
    assert alg.parameterDefinition("INPUT").defaultValue() == s2_layer.id(), "the raster starts filled"
    assert alg.parameterDefinition("EDGE").defaultValue() == "shift"
    assert alg.parameterDefinition("GSD").options() == ["model", "native", "value"]


def test_classify_gsd_edge_and_nodata_reach_the_service(provider, tmp_path: Path) -> None:
    from conftest import S2_SUBSET

    layer = QgsRasterLayer(str(S2_SUBSET), "subset", "gdal")  # 324 x 339 px at 10 m
    base = {"INPUT": layer, "MODEL": "sentinel2-eurosat", "BANDS": S2_BANDS, "INPUT_SCALE": 1000,
            "HEATMAP": False}
    totals = {}
    for name, extra in (("default", {}), ("drop", {"EDGE": "drop"}),
                        ("20 m", {"GSD": "value", "GSD_VALUE": 20, "EDGE": "drop"})):
        totals[name] = run("classify", {**base, **extra, "OUTPUT_GRID": str(tmp_path / f"{name}.gpkg")})
    assert totals["default"]["TILES_TOTAL"] == 36 and totals["drop"]["TILES_TOTAL"] == 25
    assert totals["20 m"]["TILES_TOTAL"] == 4, "64 model px at 20 m are 128 raster px"
    with pytest.raises(QgsProcessingException, match="GSD_VALUE"):
        run("classify", {**base, "GSD": "value", "OUTPUT_GRID": str(tmp_path / "x.gpkg")})


def test_loaded_results_are_styled_like_the_dialogs(provider, s2_layer, tmp_path: Path) -> None:
    """Processing's 'open output file after running': the grid in class colours, the heatmap a
    semi-transparent pseudocolour ramp, both named after the run (a layer post-processor)."""
    import processing
    from qgis.core import QgsProject

    ext = small_extent(s2_layer)
    result = processing.runAndLoadResults("rs_scene:classify", {
        "INPUT": s2_layer, "MODEL": "sentinel2-eurosat", "BANDS": S2_BANDS, "INPUT_SCALE": 1000,
        "EXTENT": f"{ext.xMinimum()},{ext.xMaximum()},{ext.yMinimum()},{ext.yMaximum()} [EPSG:27700]",
        "OUTPUT_GRID": str(tmp_path / "grid.gpkg"), "OUTPUT_HEATMAP": str(tmp_path / "heat.tif")})
    layers = {lyr.source().split("|")[0]: lyr for lyr in QgsProject.instance().mapLayers().values()}
    grid, heat = layers[result["OUTPUT_GRID"]], layers[result["OUTPUT_HEATMAP"]]
    card = next(m for m in provider.manager.client().models() if m["name"] == "sentinel2-eurosat")
    renderer = grid.renderer()
    assert renderer.type() == "categorizedSymbol" and renderer.classAttribute() == "class_name"
    colours = {c.value(): c.symbol().color().name() for c in renderer.categories()}
    assert all(colours[c["name"]] == c["color"].lower() for c in card["classes"])
    assert 0 < grid.opacity() < 1
    assert heat.renderer().type() == "singlebandpseudocolor" and 0 < heat.renderer().opacity() < 1
    assert grid.name().startswith("aberystwyth classes (sentinel2-eurosat, ")
    assert heat.name().startswith("aberystwyth attention, gradcam (sentinel2-eurosat, ")


def test_exportchips_writes_a_folder_per_class(provider, s2_layer, tmp_path: Path) -> None:
    labels = polygon_layer(s2_layer, {"sea": [(0, 0, 128, 64)], "town": [(700, 600, 64, 128)]})
    result = run("exportchips", {"INPUT": s2_layer, "LABELS": labels, "CLASS_FIELD": "landcover",
                                 "TILE_SIZE": 32, "OUTPUT": str(tmp_path / "chips")})
    assert result["CLASS_COUNTS"] == {"sea": 8, "town": 8}
    assert sorted(os.listdir(tmp_path / "chips")) == ["sea", "town"]
    chip = QgsRasterLayer(str(next((tmp_path / "chips" / "sea").iterdir())), "chip")
    assert chip.width() == 32 and chip.bandCount() == 10 and chip.crs() == s2_layer.crs()


def test_exportchips_refuses_polygons_without_class_values(provider, s2_layer, tmp_path: Path) -> None:
    labels = polygon_layer(s2_layer, {"": [(0, 0, 128, 64)]})
    with pytest.raises(QgsProcessingException, match="no polygon has a class value in field 'landcover'"):
        run("exportchips", {"INPUT": s2_layer, "LABELS": labels, "CLASS_FIELD": "landcover",
                            "OUTPUT": str(tmp_path / "chips")})
    assert not (tmp_path / "chips").exists() or not list((tmp_path / "chips").iterdir())


def test_train_from_polygons_writes_a_model_file(provider, s2_layer, tmp_path: Path) -> None:
    labels = polygon_layer(s2_layer, {"sea": [(0, 0, 96, 576)], "land": [(320, 0, 96, 576)]})
    options = '{"backbone": "resnet18", "init": "scratch", "batch_size": 16, "warmup_epochs": 1}'
    result = run("train", {"INPUT": s2_layer, "LABELS": labels, "CLASS_FIELD": "landcover", "BANDS": S2_BANDS,
                           "OPTIONS": options, "EPOCHS": 1, "NAME": "alg-model",
                           "OUTPUT_MODEL": str(tmp_path / "alg-model.pt")})
    assert result["OUTPUT_MODEL"] == str(tmp_path / "alg-model.pt") and Path(result["OUTPUT_MODEL"]).exists()
    assert result["MODEL"] == "alg-model"
    assert 0.0 <= result["OVERALL_ACCURACY"] <= 1.0
    assert sorted(result["METRICS"]["per_class"]) == ["land", "sea"]
    assert result["FIGURES"] in ("held-out (never used for choosing)", "validation (used for early stopping)")
    assert 0.0 <= result["BALANCED_ACCURACY"] <= 1.0
    # the scene stores reflectance x1000 and no INPUT_SCALE was given: the range check warned
    assert any("input scale looks wrong" in w and "1000" in w for w in result["WARNINGS"]), result["WARNINGS"]


def test_train_refuses_bad_options(provider, s2_layer, tmp_path: Path) -> None:
    labels = polygon_layer(s2_layer, {"sea": [(0, 0, 96, 576)], "land": [(320, 0, 96, 576)]})
    with pytest.raises(QgsProcessingException, match="OPTIONS is not valid JSON"):
        run("train", {"INPUT": s2_layer, "LABELS": labels, "CLASS_FIELD": "landcover", "OPTIONS": "{backbone",
                      "NAME": "x"})
    with pytest.raises(QgsProcessingException, match="no option.*colour"):
        run("train", {"INPUT": s2_layer, "LABELS": labels, "CLASS_FIELD": "landcover", "BANDS": S2_BANDS,
                      "OPTIONS": '{"colour": "red"}', "NAME": "x", "OUTPUT_MODEL": str(tmp_path / "x.pt")})
    assert not (tmp_path / "x.pt").exists()


def test_layer_inside_a_zip_is_read_by_the_service_itself(provider, s2_layer, tmp_path: Path) -> None:
    """A layer on GDAL's /vsizip/ (a zipped export, as QGIS opens it) goes to the service as its path, not
    by value, and gives the file's classes."""
    import zipfile

    from rs_scene_plugin.core.classify import ClassifySpec, request_body
    from rs_scene_plugin.core.pixels import is_local_file

    with zipfile.ZipFile(tmp_path / "export.zip", "w") as z:
        z.write(s2_layer.source(), "export/scene.tif")
    layer = QgsRasterLayer(f"/vsizip/{tmp_path}/export.zip/export/scene.tif", "zipped", "gdal")
    assert layer.isValid() and is_local_file(layer)
    body = request_body(ClassifySpec(model={"name": "sentinel2-eurosat"}), layer, "g.gpkg", None)
    assert body["raster"].startswith("/vsizip/") and "pixels" not in body
    ext = small_extent(s2_layer)
    extent = f"{ext.xMinimum()},{ext.xMaximum()},{ext.yMinimum()},{ext.yMaximum()} [EPSG:27700]"
    counts = [run("classify", {"INPUT": lay, "MODEL": "sentinel2-eurosat", "BANDS": S2_BANDS, "INPUT_SCALE": 1000,
                               "HEATMAP": False, "EXTENT": extent,
                               "OUTPUT_GRID": str(tmp_path / f"{i}.gpkg")})["CLASS_COUNTS"]
              for i, lay in enumerate((layer, s2_layer))]
    assert counts[0] == counts[1] and sum(counts[0].values()) == 6
    # the same layer can be cut into chips and trained from (the service's check accepts the path)
    labels = polygon_layer(s2_layer, {"sea": [(0, 0, 128, 64)], "town": [(700, 600, 64, 128)]})
    chips = run("exportchips", {"INPUT": layer, "LABELS": labels, "CLASS_FIELD": "landcover", "TILE_SIZE": 32,
                                "OUTPUT": str(tmp_path / "chips")})
    assert chips["CLASS_COUNTS"] == {"sea": 8, "town": 8}
    from rs_scene_plugin.core.train import TrainSpec, train_body

    body = train_body(TrainSpec(raster=layer, labels=labels, class_field="landcover", name="zipped"),
                      str(tmp_path))
    assert body["raster"].startswith("/vsizip/")


def test_non_file_layer_is_sent_by_value_and_agrees_with_the_file(provider, s2_layer, tmp_path: Path) -> None:
    """A layer the service cannot open (here GDAL's in-memory /vsimem/) is read through its provider."""
    from osgeo import gdal

    from rs_scene_plugin.core.pixels import is_local_file

    ext = small_extent(s2_layer)
    src = gdal.Open(str(s2_layer.source()))
    mem = gdal.Translate("/vsimem/rs_scene_window.tif", src, srcWin=[320, 96, 192, 128])
    mem = src = None  # noqa: F841 (closing flushes the in-memory file)
    try:
        layer = QgsRasterLayer("/vsimem/rs_scene_window.tif", "in memory", "gdal")
        assert layer.isValid() and not is_local_file(layer)
        by_value = run("classify", {"INPUT": layer, "MODEL": "sentinel2-eurosat", "BANDS": S2_BANDS,
                                    "INPUT_SCALE": 1000, "HEATMAP": False,
                                    "OUTPUT_GRID": str(tmp_path / "value.gpkg")})
    finally:
        gdal.Unlink("/vsimem/rs_scene_window.tif")
    by_file = run("classify", {
        "INPUT": s2_layer, "MODEL": "sentinel2-eurosat", "BANDS": S2_BANDS, "INPUT_SCALE": 1000, "HEATMAP": False,
        "EXTENT": f"{ext.xMinimum()},{ext.xMaximum()},{ext.yMinimum()},{ext.yMaximum()} [EPSG:27700]",
        "OUTPUT_GRID": str(tmp_path / "file.gpkg")})
    assert by_value["TILES_TOTAL"] == by_value["TILES_CLASSIFIED"] == 6
    assert by_value["CLASS_COUNTS"] == by_file["CLASS_COUNTS"]
    grid = QgsVectorLayer(by_value["OUTPUT_GRID"], "grid", "ogr")
    assert grid.crs() == s2_layer.crs()
    got = grid.extent()
    assert [got.xMinimum(), got.yMaximum()] == pytest.approx([ext.xMinimum(), ext.yMaximum()], abs=1e-3)
