"""The loopback service, as the plugin sees it: a real ``rs-scene serve`` process hit over HTTP."""

from __future__ import annotations

import base64
import json
import stat
import time
from pathlib import Path
from typing import Any

import fiona
import pytest
import rasterio
from conftest import S2_BANDS_OPT, S2_SCENE
from rasterio.windows import Window
from rasterio.windows import bounds as window_bounds
from service_client import S2, Service, start_service

WINDOW = Window(320, 96, 192, 128)  # 3 x 2 tiles of 64 px, off the nodata row 250


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Any:
    yield from start_service(tmp_path_factory)


def test_info_file_is_private_and_loopback(service: Service) -> None:
    mode = stat.S_IMODE(service.info_file.stat().st_mode)
    assert mode == 0o600, oct(mode)
    assert service.info["url"] == f"http://127.0.0.1:{service.info['port']}"
    assert len(service.info["token"]) >= 32


@pytest.mark.parametrize("token", [None, "wrong-token"])
def test_requests_without_the_token_are_refused(service: Service, token: str | None) -> None:
    for path, body in (
        ("/health", None),
        ("/models", None),
        ("/jobs/classify", {**S2, "raster": str(S2_SCENE)}),
    ):
        status, reply = service.call(path, body, token=token)
        assert status == 401, (path, reply)
        assert "token" in reply["error"]
    status, jobs = service.call("/jobs")
    assert status == 200 and jobs["jobs"] == [], "a refused request must not start a job"


def test_health_reports_version_and_device(service: Service) -> None:
    status, health = service.call("/health")
    assert status == 200
    assert health["status"] == "ok" and health["version"]
    assert health["device"]["type"] == "cpu" and health["device"]["torch"].startswith("2.")
    # make setup installs onnxruntime: classify runs on ONNX Runtime on the CPU, and the service says so
    assert health["device"]["runtime"] == "onnx" and health["device"]["onnxruntime"]


def test_models_and_methods(service: Service) -> None:
    status, reply = service.call("/models")
    assert status == 200
    s2 = {m["name"]: m for m in reply["models"]}["sentinel2-eurosat"]
    assert s2["bands"] == S2_BANDS_OPT.split(",")
    assert len(s2["classes"]) == 10 and all(c["color"].startswith("#") for c in s2["classes"])
    status, reply = service.call("/methods")
    assert status == 200
    pretrain = {m["name"]: m for m in reply["methods"]}["pretrain"]
    options = {o["name"]: o for o in pretrain["options"]}
    assert options["mode"]["choices"] == ["fine-tune", "linear-probe"]
    assert options["epochs"]["type"] == "int"


def classify(service: Service, tmp: Path, **request: Any) -> dict[str, Any]:
    body = {
        **S2,
        "out_gpkg": str(tmp / "grid.gpkg"),
        "heatmap": str(tmp / "heat.tif"),
        **request,
    }
    status, job = service.call("/jobs/classify", body)
    assert status == 202, job
    return service.wait(job["id"])


def test_classify_by_reference_and_by_value_agree(service: Service, tmp_path: Path) -> None:
    with rasterio.open(S2_SCENE) as ds:
        extent = window_bounds(WINDOW, ds.transform)
        data = ds.read(window=WINDOW)
        transform = ds.window_transform(WINDOW).to_gdal()
        pixels = {
            "width": WINDOW.width,
            "height": WINDOW.height,
            "count": ds.count,
            "dtype": "uint16",
            "crs_wkt": ds.crs.to_wkt(),
            "transform": list(transform),
            "nodata": ds.nodata,
            "band_names": S2_BANDS_OPT.split(","),
            "data_b64": base64.b64encode(data.tobytes()).decode(),
        }
    (tmp_path / "ref").mkdir(), (tmp_path / "val").mkdir()
    by_ref = classify(service, tmp_path / "ref", raster=str(S2_SCENE), extent=list(extent))
    by_val = classify(service, tmp_path / "val", pixels=pixels, bands=None)
    for job in (by_ref, by_val):
        assert job["state"] == "done", job["error"]
        res = job["result"]
        assert res["tiles_total"] == 6 and res["tiles_classified"] == 6
        assert Path(res["outputs"]["grid"]).exists() and Path(res["outputs"]["heatmap"]).exists()
        with fiona.open(res["outputs"]["grid"]) as grid:
            assert len(grid) == 6
            assert {f["properties"]["class_name"] for f in grid} == set(res["class_counts"])
            xs, ys = zip(*(pt for f in grid for pt in f.geometry["coordinates"][0]))
            assert (min(xs), min(ys), max(xs), max(ys)) == pytest.approx(extent), "tiles must cover the extent"
        with rasterio.open(res["outputs"]["heatmap"]) as heat:
            values = heat.read(1, masked=True)
            assert values.count() > 0 and float(values.max()) > float(values.min())
    assert by_ref["result"]["class_counts"] == by_val["result"]["class_counts"]
    assert not list(Path("/tmp").glob(f"rs-scene-{by_val['id']}-*")), "the pixels' temp raster must go"


def test_jobs_queue_one_at_a_time_and_cancel_leaves_nothing(service: Service, tmp_path: Path) -> None:
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    status, big = service.call(
        "/jobs/classify",
        {
            **S2,
            "raster": str(S2_SCENE),
            "tile_size": 32,
            "out_gpkg": str(tmp_path / "a" / "grid.gpkg"),
            "heatmap": str(tmp_path / "a" / "heat.tif"),
        },
    )
    assert status == 202
    status, small = service.call(
        "/jobs/classify",
        {
            **S2,
            "raster": str(S2_SCENE),
            "extent": list(_extent_of(WINDOW)),
            "out_gpkg": str(tmp_path / "b" / "grid.gpkg"),
        },
    )
    assert status == 202
    running = service.wait(big["id"], until=("running",))
    while running["done"] == 0:
        running = service.wait(big["id"], until=("running",))
        time.sleep(0.1)
    assert running["total"] > running["done"] > 0 and running["stage"] == "classify"
    assert service.call(f"/jobs/{small['id']}")[1]["state"] == "queued"
    status, _ = service.call(f"/jobs/{big['id']}/cancel", {})
    assert status == 200
    assert service.wait(big["id"])["state"] == "cancelled"
    assert list((tmp_path / "a").iterdir()) == [], "a cancelled job must leave no files"
    assert service.wait(small["id"])["state"] == "done"


def _extent_of(window: Window) -> tuple[float, float, float, float]:
    with rasterio.open(S2_SCENE) as ds:
        return window_bounds(window, ds.transform)


def test_failing_job_reports_its_error_and_service_keeps_serving(service: Service, tmp_path: Path) -> None:
    status, job = service.call(
        "/jobs/classify",
        {
            **S2,
            "model": "no-such-model",
            "raster": str(S2_SCENE),
            "out_gpkg": str(tmp_path / "grid.gpkg"),
        },
    )
    assert status == 202
    job = service.wait(job["id"])
    assert job["state"] == "failed" and "no-such-model" in job["error"]
    status, job = service.call(
        "/jobs/classify",
        {
            **S2,
            "bands": "B02,B03",
            "raster": str(S2_SCENE),
            "out_gpkg": str(tmp_path / "grid.gpkg"),
        },
    )
    job = service.wait(job["id"])
    assert job["state"] == "failed" and "band" in job["error"].lower()
    assert not (tmp_path / "grid.gpkg").exists()
    assert service.call("/health")[0] == 200


@pytest.mark.parametrize(
    "raw, expect",
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "JSON object"),
        (
            json.dumps({"raster": str(S2_SCENE), "out_gpkg": "/tmp/x.gpkg"}).encode(),
            "'model' is required",
        ),
        (
            json.dumps({**S2, "raster": "/no/such.tif", "out_gpkg": "/tmp/x.gpkg"}).encode(),
            "not found",
        ),
        (json.dumps({**S2, "raster": str(S2_SCENE)}).encode(), "nothing to write"),
        (
            json.dumps({**S2, "raster": str(S2_SCENE), "out_gpkg": "/tmp/x.gpkg", "tiles": 3}).encode(),
            "tiles",
        ),
        (
            json.dumps(
                {
                    **S2,
                    "raster": str(S2_SCENE),
                    "out_gpkg": "/tmp/x.gpkg",
                    "tile_size": "big",
                }
            ).encode(),
            "tile_size",
        ),
        (
            json.dumps(
                {
                    **S2,
                    "raster": str(S2_SCENE),
                    "out_gpkg": "/tmp/x.gpkg",
                    "extent": [1, 2],
                }
            ).encode(),
            "extent",
        ),
        (
            json.dumps(
                {
                    **S2,
                    "out_gpkg": "/tmp/x.gpkg",
                    "pixels": {
                        "width": 2,
                        "height": 2,
                        "count": 1,
                        "dtype": "uint16",
                        "transform": [0, 1, 0, 0, 0, -1],
                        "data_b64": "AAAA",
                    },
                }
            ).encode(),
            "bytes",
        ),
    ],
)
def test_malformed_requests_get_400_with_a_message(service: Service, raw: bytes, expect: str) -> None:
    status, reply = service.call("/jobs/classify", raw=raw, method="POST")
    assert status == 400, reply
    assert expect in reply["error"]
    assert service.call("/health")[0] == 200


def test_unknown_endpoints_and_jobs_are_404(service: Service) -> None:
    assert service.call("/nothing")[0] == 404
    assert service.call("/jobs/0123456789ab")[0] == 404
    assert service.call("/jobs/0123456789ab/cancel", {})[0] == 404
    status, reply = service.call("/jobs/train", {"method": "pretrain"})
    assert status == 400 and "data" in reply["error"]
