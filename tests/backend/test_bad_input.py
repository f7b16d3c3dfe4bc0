"""Every bad input gets a clear error naming the cause, exit code != 0, and no output left behind."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import S2_BANDS_OPT, S2_SCENE, run_main, write_raster


def _classify(tmp_path: Path, raster: Path, *extra: str, model: str = "sentinel2-eurosat"):
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    proc = run_main("classify", raster, "--model", model, "--out", out / "g.gpkg", "--heatmap", out / "h.tif",
                   "--class-raster", out / "c.tif", *extra)
    return proc, out


def _assert_failed_clean(proc, out: Path, *needles: str) -> None:
    assert proc.returncode != 0
    msg = proc.stderr.splitlines()[-1]
    assert msg.startswith("rs-scene classify: error:"), proc.stderr
    for n in needles:
        assert n in msg, f"{n!r} not in {msg!r}"
    assert "Traceback" not in proc.stderr
    assert list(out.iterdir()) == [], f"left behind: {list(out.iterdir())}"


def test_missing_path(tmp_path: Path) -> None:
    proc, out = _classify(tmp_path, tmp_path / "nope.tif")
    _assert_failed_clean(proc, out, "raster not found", "nope.tif")


def test_not_a_raster(tmp_path: Path) -> None:
    txt = tmp_path / "notes.tif"
    txt.write_text("this is not a raster\n")
    proc, out = _classify(tmp_path, txt)
    _assert_failed_clean(proc, out, "notes.tif", "not a readable raster")


def test_corrupt_raster(tmp_path: Path) -> None:
    bad = tmp_path / "truncated.tif"
    bad.write_bytes(S2_SCENE.read_bytes()[:5000])
    proc, out = _classify(tmp_path, bad, "--bands", S2_BANDS_OPT)
    assert proc.returncode != 0 and "truncated.tif" in proc.stderr and "Traceback" not in proc.stderr
    assert list(out.iterdir()) == []


def test_band_names_do_not_fit(tmp_path: Path) -> None:
    rgb = write_raster(tmp_path / "rgb.tif", np.ones((3, 100, 100), np.uint8), descriptions=["red", "green", "blue"])
    proc, out = _classify(tmp_path, rgb)
    _assert_failed_clean(proc, out, "cannot find band(s)", "B05", "rgb.tif")


def test_band_count_does_not_fit(tmp_path: Path) -> None:
    proc, out = _classify(tmp_path, S2_SCENE, "--bands", "B02,B03,B04")
    _assert_failed_clean(proc, out, "--bands names 3 bands but the raster has 10")


def test_unnamed_bands_ask_for_mapping(tmp_path: Path) -> None:
    proc, out = _classify(tmp_path, S2_SCENE)
    _assert_failed_clean(proc, out, "cannot find band(s)", "--bands")


def test_no_crs(tmp_path: Path) -> None:
    data = np.full((10, 100, 100), 1000, np.uint16)
    path = write_raster(tmp_path / "nocrs.tif", data, crs=None, descriptions=S2_BANDS_OPT.split(","))
    proc, out = _classify(tmp_path, path)
    _assert_failed_clean(proc, out, "nocrs.tif", "has no CRS")


def test_all_nodata(tmp_path: Path) -> None:
    data = np.zeros((10, 128, 128), np.uint16)
    path = write_raster(tmp_path / "empty.tif", data, nodata=0, descriptions=S2_BANDS_OPT.split(","))
    proc, out = _classify(tmp_path, path)
    _assert_failed_clean(proc, out, "empty.tif", "no valid pixels")


def test_tile_larger_than_raster(tmp_path: Path) -> None:
    data = np.full((10, 40, 40), 1000, np.uint16)
    path = write_raster(tmp_path / "small.tif", data, descriptions=S2_BANDS_OPT.split(","))
    proc, out = _classify(tmp_path, path)
    _assert_failed_clean(proc, out, "larger than the raster", "--tile-size")


def test_unknown_model(tmp_path: Path) -> None:
    proc, out = _classify(tmp_path, S2_SCENE, "--bands", S2_BANDS_OPT, model="no-such-model")
    _assert_failed_clean(proc, out, "unknown model 'no-such-model'", "sentinel2-eurosat")


def test_unwritable_output(tmp_path: Path) -> None:
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    proc = run_main("classify", S2_SCENE, "--model", "sentinel2-eurosat", "--bands", S2_BANDS_OPT,
                   "--out", blocker / "grid.gpkg")
    assert proc.returncode != 0 and "does not exist" in proc.stderr and "grid.gpkg" in proc.stderr
    proc = run_main("classify", S2_SCENE, "--model", "sentinel2-eurosat", "--bands", S2_BANDS_OPT,
                   "--out", tmp_path / "missing-dir" / "grid.gpkg")
    assert proc.returncode != 0 and "missing-dir" in proc.stderr


@pytest.mark.skipif(shutil.which("true") is None, reason="needs coreutils")
def test_bad_options(tmp_path: Path) -> None:
    proc, out = _classify(tmp_path, S2_SCENE, "--bands", S2_BANDS_OPT, "--extent", "1,2,3")
    _assert_failed_clean(proc, out, "--extent")
    proc, out = _classify(tmp_path, S2_SCENE, "--bands", S2_BANDS_OPT, "--extent", "0,0,10,10")
    _assert_failed_clean(proc, out, "does not overlap")
    proc, out = _classify(tmp_path, S2_SCENE, "--bands", S2_BANDS_OPT, "--cam", "magic")
    _assert_failed_clean(proc, out, "unknown CAM method")
    proc, out = _classify(tmp_path, S2_SCENE, "--bands", S2_BANDS_OPT, "--streams", "0")
    _assert_failed_clean(proc, out, "--streams must be at least 1, not 0")


def test_service_requests_take_gdal_virtual_paths_and_refuse_missing_files(tmp_path: Path) -> None:
    """/vsizip/, /vsicurl/... are GDAL's to open (the engine names the path if it cannot); a plain path
    that does not exist is refused at once; /vsimem/ lives in another process and is refused too."""
    from rs_scene.server.requests import RequestError, classify_request, train_request

    labels = tmp_path / "labels.gpkg"
    labels.write_bytes(b"")
    out = str(tmp_path / "g.gpkg")
    zipped = f"/vsizip/{tmp_path}/a.zip/scene.tif"
    assert classify_request({"raster": zipped, "model": "m", "out_gpkg": out})["raster"] == zipped
    assert train_request({"raster": zipped, "labels": str(labels), "class_field": "c", "name": "x"})["raster"]
    for bad in (str(tmp_path / "nope.tif"), "/vsimem/scene.tif"):
        with pytest.raises(RequestError, match="raster file not found"):
            classify_request({"raster": bad, "model": "m", "out_gpkg": out})
        with pytest.raises(RequestError, match="raster file not found"):
            train_request({"raster": bad, "labels": str(labels), "class_field": "c", "name": "x"})
