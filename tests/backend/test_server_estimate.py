"""POST /estimate: the ETA the plugin shows before a run, from a calibration run on the raster's centre."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import rasterio
from conftest import S2_SCENE
from rasterio.windows import Window
from rasterio.windows import bounds as window_bounds
from service_client import S2, Service, start_service


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Any:
    yield from start_service(tmp_path_factory)


def test_estimate_counts_the_run_s_tiles_and_scales_with_them(service: Service, tmp_path: Path) -> None:
    body = {**S2, "raster": str(S2_SCENE), "out_gpkg": str(tmp_path / "g.gpkg"),
            "heatmap": str(tmp_path / "h.tif")}
    status, whole = service.call("/estimate", body)
    assert status == 200, whole
    assert math.isfinite(whole["eta_s"]) and whole["eta_s"] > 0
    with rasterio.open(S2_SCENE) as ds:
        part = window_bounds(Window(0, 0, 320, 320), ds.transform)  # 5 x 5 of the 15 x 15 tiles
    status, small = service.call("/estimate", {**body, "extent": list(part)})
    assert status == 200, small
    assert (whole["tiles"], small["tiles"]) == (225, 25)
    assert 0 < small["eta_s"] < whole["eta_s"]  # one calibration (cached), scaled by the tile count
    status, job = service.call("/jobs/classify", body)
    assert status == 202, job
    done = service.wait(job["id"])
    assert done["state"] == "done" and done["result"]["tiles_total"] == whole["tiles"]
    assert not list(tmp_path.glob("cal*")), "the calibration writes nothing next to the outputs"


def test_estimate_refuses_what_it_cannot_measure(service: Service, tmp_path: Path) -> None:
    out = {"out_gpkg": str(tmp_path / "g.gpkg")}
    status, err = service.call("/estimate", {**S2, **out, "raster": str(tmp_path / "nope.tif")})
    assert status == 400 and "raster file not found" in err["error"] and "nope.tif" in err["error"]
    status, err = service.call("/estimate", {**S2, **out, "raster": str(S2_SCENE), "model": "no-such-model"})
    assert status == 400 and "no-such-model" in err["error"], err
    status, err = service.call("/estimate", {**S2, **out, "raster": str(S2_SCENE), "bands": "B02,B03"})
    assert status == 400 and "--bands names 2 bands" in err["error"], err
