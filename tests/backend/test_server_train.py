"""Train jobs through the real service: from labelled polygons, with epochs reported as they finish."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import fiona
import pytest
import rasterio
from conftest import S2_BANDS_OPT, S2_SCENE
from service_client import Service, start_service


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Any:
    yield from start_service(tmp_path_factory)


def _labels(path: Path) -> Path:
    """Two classes of polygons on the scene: Cardigan Bay (sea) and the land east of it."""
    with rasterio.open(S2_SCENE) as ds:
        crs, t = ds.crs.to_wkt(), ds.transform
    boxes = {"sea": (0, 0, 96, 576), "land": (320, 0, 96, 576)}
    schema = {"geometry": "Polygon", "properties": {"landcover": "str"}}
    with fiona.open(path, "w", driver="GPKG", crs_wkt=crs, schema=schema) as dst:
        for name, (c, r, w, h) in boxes.items():
            (x0, y0), (x1, y1) = t @ (c, r), t @ (c + w, r + h)
            ring = [(x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0)]
            dst.write({"geometry": {"type": "Polygon", "coordinates": [ring]}, "properties": {"landcover": name}})
    return path


def test_train_job_from_polygons_reports_epochs_and_installs_the_model(service: Service, tmp_path: Path) -> None:
    body = {"raster": str(S2_SCENE), "labels": str(_labels(tmp_path / "labels.gpkg")), "class_field": "landcover",
            "bands": S2_BANDS_OPT, "tile_size": 32, "name": "server-tiny",
            "options": {"backbone": "resnet18", "init": "scratch", "epochs": 2, "batch_size": 16,
                        "warmup_epochs": 1}}
    status, job = service.call("/jobs/train", body)
    assert status == 202, job
    job = service.wait(job["id"])
    assert job["state"] == "done", job["error"]
    assert [h["epoch"] for h in job["history"]] == [1, 2] and all(h["loss"] > 0 for h in job["history"])
    assert job["stage"] == "done" and job["done"] == job["total"] > 0
    metrics = job["result"]["metrics"]
    assert sorted(metrics["per_class"]) == ["land", "sea"] and len(metrics["confusion_matrix"]) == 2
    assert metrics["label"] in ("held-out (never used for choosing)", "validation (used for early stopping)")
    assert "balanced_accuracy" in metrics and metrics["training_tiles"]["n"] > 0
    # the scene stores reflectance x1000 and no input scale was given: the range check warned before training
    assert "input scale looks wrong" in job["metrics"]["warnings"][0] and "1000" in job["metrics"]["warnings"][0]
    assert job["result"]["warnings"][0] == job["metrics"]["warnings"][0]
    assert Path(job["result"]["path"]).exists()
    models = {m["name"] for m in service.call("/models")[1]["models"]}
    assert "server-tiny" in models


def test_train_job_with_a_bad_option_fails_with_its_name(service: Service, tmp_path: Path) -> None:
    body = {"raster": str(S2_SCENE), "labels": str(_labels(tmp_path / "labels.gpkg")), "class_field": "landcover",
            "bands": S2_BANDS_OPT, "tile_size": 32, "out": str(tmp_path / "m.pt"), "options": {"colour": "red"}}
    status, reply = service.call("/jobs/train", body)  # refused before a job is queued
    assert status == 400 and "colour" in reply["error"], reply
    assert not (tmp_path / "m.pt").exists()
