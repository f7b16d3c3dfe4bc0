"""End-to-end ``rs-scene classify`` on the shared real scenes, and heatmap georeferencing."""

from __future__ import annotations

import json
import math
from pathlib import Path

import fiona
import numpy as np
import pytest
import rasterio
import torch
from conftest import LANDSAT, NAIP, S2_BANDS_OPT, S2_SCENE, SCENES, run_cli
from rs_scene.engine.infer import load_model, prepare
from rs_scene.engine.plan import make_plan, resolution_warning, scale_warning
from rs_scene.explain.cam import CamRunner, resample_maps
from rs_scene.io.raster import TileReader
from rs_scene.io.writers import read_run_record
from rs_scene.zoo import card_of


def _check_grid(gpkg: Path, raster: Path, expected_tiles: int, model: str) -> list[dict]:
    with fiona.open(gpkg) as src, rasterio.open(raster) as ds:
        assert src.driver == "GPKG"
        assert rasterio.crs.CRS.from_wkt(src.crs_wkt) == ds.crs
        feats = [dict(f.properties) | {"bounds": fiona.bounds(f)} for f in src]
    assert len(feats) == expected_tiles
    classified = [f for f in feats if f["status"] == "classified"]
    assert classified, "at least one tile classified"
    for f in classified:
        assert 0 <= f["confidence"] <= 1 and f["top1_name"] == f["class_name"]
        assert f["top1_prob"] >= f["top2_prob"] >= f["top3_prob"]
        assert f["model"] == model and f["valid_fraction"] >= 0.5
    return feats


def test_sentinel2_scene(tmp_path: Path) -> None:
    out, heat, cls = tmp_path / "grid.gpkg", tmp_path / "heat.tif", tmp_path / "cls.tif"
    proc = run_cli("classify", S2_SCENE, "--model", "sentinel2-eurosat", "--bands", S2_BANDS_OPT,
                   "--input-scale", "1000", "--out", out, "--heatmap", heat, "--class-raster", cls, "--json",
                   check=True)
    summary = json.loads(proc.stdout)
    with rasterio.open(S2_SCENE) as ds:
        expected = math.ceil(ds.width / 64) * math.ceil(ds.height / 64)
        feats = _check_grid(out, S2_SCENE, expected, "sentinel2-eurosat")
        assert summary["tiles_total"] == expected
        with rasterio.open(heat) as h:
            assert h.crs == ds.crs and h.transform == ds.transform and h.dtypes[0] == "float32"
            arr = h.read(1, masked=True)
            assert 0 <= arr.min() and arr.max() <= 1.0 + 1e-6
            assert arr.count() > 0.9 * ds.width * ds.height
        with rasterio.open(cls) as c:
            assert c.colormap(1)[0][:3] != (0, 0, 0)
            assert c.res == (64 * ds.res[0], 64 * ds.res[1])
    record = read_run_record(out)
    assert record["model"] == "sentinel2-eurosat" and len(record["model_sha256"]) == 64
    assert record["tiles_total"] == len(feats)
    # several land-cover classes on a coastal scene, and the sea is classified as water
    assert len({f["class_name"] for f in feats if f["status"] == "classified"}) >= 3
    top_left = next(f for f in feats if f["row"] == 0 and f["col"] == 0)
    assert top_left["class_name"] == "SeaLake"
    with rasterio.open(S2_SCENE) as ds:
        left, top = ds.bounds.left, ds.bounds.top
        for f in feats:  # each polygon is its window on the map: 64 px x 10 m, row-major from the top left;
            # the last column and row shifted inside the raster (the default --edge shift)
            x0 = min(left + 640 * f["col"], ds.bounds.right - 640)
            y1 = max(top - 640 * f["row"], ds.bounds.bottom + 640)
            expected = (x0, y1 - 640, x0 + 640, y1)
            assert f["bounds"] == pytest.approx(expected), (f["row"], f["col"])


@pytest.mark.parametrize("scale,offset,opts", [(1.0, -100.0, ["--input-scale", "1000"]), (1e-3, -0.1, [])],
                         ids=["offset-raw", "scale-offset"])
def test_declared_band_offset_gives_the_same_classes(tmp_path: Path, scale: float, offset: float,
                                                     opts: list[str]) -> None:
    """The real scene stored as Sentinel-2 L2A of processing baseline 04.00 stores it: raw counts raised by
    an offset that the file declares. Classified, it gives the original's classes and confidences."""
    src = SCENES / "sen2_20210527_aber_subset.tif"
    shifted = tmp_path / "shifted.tif"
    with rasterio.open(src) as ds:
        profile, data = ds.profile, ds.read()
    raw = np.where(data == 0, 0, data + 100).astype(np.uint16)
    with rasterio.open(shifted, "w", **profile) as dst:
        dst.write(raw)
        dst.scales, dst.offsets = [scale] * ds.count, [offset] * ds.count
    grids = {}
    for name, raster, extra in (("original", src, ["--input-scale", "1000"]), ("shifted", shifted, opts)):
        grids[name] = tmp_path / f"{name}.gpkg"
        run_cli("classify", raster, "--model", "sentinel2-eurosat", "--bands", S2_BANDS_OPT, *extra,
                "--out", grids[name], check=True)
    with fiona.open(grids["original"]) as a, fiona.open(grids["shifted"]) as b:
        fa, fb = [dict(f.properties) for f in a], [dict(f.properties) for f in b]
    assert [f["class_name"] for f in fa] == [f["class_name"] for f in fb]
    assert sum(f["status"] == "classified" for f in fa) >= 20
    conf = [(f["confidence"], g["confidence"]) for f, g in zip(fa, fb, strict=True) if f["confidence"]]
    assert max(abs(x - y) for x, y in conf) < 1e-4
    info = run_cli("info", shifted, check=True).stdout
    assert f"1: x{scale:g} {offset:+g}" in info, info
    record = read_run_record(grids["shifted"])
    assert record["band_offsets"] == [offset] * 10 and record["band_scales"] == [scale] * 10
    # without the offset the same counts read 0.1 brighter: the classes move
    unscaled = tmp_path / "unscaled.tif"
    with rasterio.open(unscaled, "w", **profile) as dst:
        dst.write(raw)
    plain = tmp_path / "plain.gpkg"
    run_cli("classify", unscaled, "--model", "sentinel2-eurosat", "--bands", S2_BANDS_OPT, "--input-scale",
            "1000", "--out", plain, check=True)
    with fiona.open(plain) as c:
        moved = sum(f["class_name"] != g["class_name"] for f, g in zip(fa, c, strict=True)
                    for g in [dict(g.properties)])
    assert moved >= 3, moved  # 9 of the 36 tiles here: sea turns to crop and pasture


def test_values_far_from_the_training_range_warn(tmp_path: Path) -> None:
    """The subset holds reflectance x1000; read as x10000 (the 16-bit default) every tile looks like water. The
    run goes through and says so, naming the scale to try; the right scale and the other real scenes stay
    quiet."""
    src = SCENES / "sen2_20210527_aber_subset.tif"
    runs = {}
    for name, extra in (("default", []), ("x1000", ["--input-scale", "1000"])):
        proc = run_cli("classify", src, "--model", "sentinel2-eurosat", "--bands", S2_BANDS_OPT, *extra,
                       "--out", tmp_path / f"{name}.gpkg", "--json", check=True)
        runs[name] = (json.loads(proc.stdout), proc.stderr)
    summary, stderr = runs["default"]
    assert len(summary["warnings"]) == 1 and "--input-scale, e.g. 1000" in summary["warnings"][0]
    assert "warning: " in stderr and "times what model sentinel2-eurosat was trained on" in stderr
    assert runs["x1000"][0]["warnings"] == [] and "warning" not in runs["x1000"][1]
    card = card_of("aerial-rgb")
    for raster in (NAIP, LANDSAT):
        with rasterio.open(raster) as ds:
            assert scale_warning(ds, make_plan(ds, card, gsd="native"), card) is None, raster
    # NAIP at 5 m for a 0.3-m model: 16 raster pixels blown up to each 256-px tile
    with rasterio.open(NAIP) as ds:
        coarse = make_plan(ds, card)
        assert "16 times coarser" in resolution_warning(ds, coarse, card) and "--gsd native" in \
            resolution_warning(ds, coarse, card)
        assert resolution_warning(ds, make_plan(ds, card, gsd="native"), card) is None
    # a model whose training means are not positive (SAR in dB, standardised inputs): no ratio to judge by
    s2 = card_of("sentinel2-eurosat")
    with rasterio.open(src) as ds:
        plan = make_plan(ds, s2, bands=S2_BANDS_OPT)
        assert scale_warning(ds, plan, s2) is not None
        s2.mean = [-15.0] * len(s2.mean)
        assert scale_warning(ds, plan, s2) is None


def test_nodata_value_given_by_the_user(tmp_path: Path) -> None:
    """The real subset framed by 128 px of zeros, with no nodata declared (as exports often are): the zeros are
    classified (as water); with --nodata 0 the frame is skipped and the scene's tiles match the unframed run's."""
    src, framed, pad = SCENES / "sen2_20210527_aber_subset.tif", tmp_path / "framed.tif", 128
    with rasterio.open(src) as ds:
        data, profile = ds.read(), ds.profile
        big = np.zeros((data.shape[0], data.shape[1] + 2 * pad, data.shape[2] + 2 * pad), data.dtype)
        big[:, pad:-pad, pad:-pad] = data
        profile.update(width=big.shape[2], height=big.shape[1], nodata=None,
                       transform=ds.transform @ rasterio.Affine.translation(-pad, -pad))
    with rasterio.open(framed, "w", **profile) as dst:
        dst.write(big)
    feats = {}
    for name, raster, extra in (("plain", src, []), ("framed", framed, []), ("nodata", framed, ["--nodata", "0"])):
        out = tmp_path / f"{name}.gpkg"
        run_cli("classify", raster, "--model", "sentinel2-eurosat", "--bands", S2_BANDS_OPT, "--input-scale",
                "1000", "--out", out, "--edge", "pad", *extra, check=True)  # the same grid framed or not
        with fiona.open(out) as grid:
            feats[name] = {(f.properties["row"], f.properties["col"]): dict(f.properties) for f in grid}
    frame = [k for k in feats["framed"] if not (2 <= k[0] < 8 and 2 <= k[1] < 8)]
    assert sum(feats["framed"][k]["status"] == "classified" for k in frame) >= 40, "zeros are taken as data"
    assert all(feats["nodata"][k]["status"] != "classified" for k in frame)
    for (r, c), f in feats["plain"].items():
        g = feats["nodata"][(r + 2, c + 2)]
        assert (g["status"], g["class_name"]) == (f["status"], f["class_name"]), (r, c)
        if f["status"] == "classified":
            assert g["confidence"] == pytest.approx(f["confidence"], abs=1e-5)


def test_raster_inside_a_zip_is_read_where_it_lies(tmp_path: Path) -> None:
    """A GDAL virtual path (/vsizip/ here; /vsicurl/ is the same code path, not reachable offline) is read
    as it is, with the same classes as the plain file; a missing member fails with its path named."""
    import zipfile

    src = SCENES / "sen2_20210527_aber_subset.tif"
    with zipfile.ZipFile(tmp_path / "export.zip", "w", zipfile.ZIP_DEFLATED) as z:
        z.write(src, "S2/subset.tif")
    inside = f"/vsizip/{tmp_path}/export.zip/S2/subset.tif"
    classes = {}
    for name, raster in (("file", str(src)), ("zip", inside)):
        out = tmp_path / f"{name}.gpkg"
        run_cli("classify", raster, "--model", "sentinel2-eurosat", "--bands", S2_BANDS_OPT, "--input-scale",
                "1000", "--out", out, check=True)
        with fiona.open(out) as grid:
            classes[name] = [(f.properties["row"], f.properties["col"], f.properties["class_name"]) for f in grid]
    assert classes["zip"] == classes["file"] and len(classes["zip"]) == 36
    assert read_run_record(tmp_path / "zip.gpkg")["raster"] == inside
    missing = f"/vsizip/{tmp_path}/export.zip/S2/other.tif"
    proc = run_cli("classify", missing, "--model", "sentinel2-eurosat", "--out", tmp_path / "none.gpkg")
    assert proc.returncode == 2 and missing in proc.stderr and "not a readable raster" in proc.stderr
    assert not (tmp_path / "none.gpkg").exists()


def test_naip_four_band_native_gsd(tmp_path: Path) -> None:
    out = tmp_path / "naip.gpkg"
    run_cli("classify", NAIP, "--model", "aerial-rgb", "--gsd", "native", "--tile-size", "128", "--out", out,
            check=True)
    with rasterio.open(NAIP) as ds:
        expected = math.ceil(ds.width / 128) * math.ceil(ds.height / 128)
    _check_grid(out, NAIP, expected, "aerial-rgb")


def test_landsat_rgb_records_skipped_nodata_tiles(tmp_path: Path) -> None:
    out = tmp_path / "landsat.gpkg"
    run_cli("classify", LANDSAT, "--model", "aerial-rgb", "--gsd", "native", "--out", out, check=True)
    with rasterio.open(LANDSAT) as ds:
        expected = math.ceil(ds.width / 256) * math.ceil(ds.height / 256)
    feats = _check_grid(out, LANDSAT, expected, "aerial-rgb")
    skipped = [f for f in feats if f["status"] != "classified"]
    assert skipped, "the rotated Landsat footprint leaves nodata corners"
    assert all(f["valid_fraction"] < 0.5 and f["class_id"] == -1 for f in skipped)


def test_heatmap_peak_lies_in_its_tile(tmp_path: Path) -> None:
    """Each tile's own Grad-CAM peak, placed on its receptive field and mapped through the tile's window, is
    inside that tile's polygon and is where the mosaicked GeoTIFF is hottest within the tile."""
    with rasterio.open(S2_SCENE) as ds:
        x0, y0 = ds.transform @ (128, 192)
        x1, y1 = ds.transform @ (128 + 4 * 64, 192 + 3 * 64)
    extent = f"{min(x0, x1)},{min(y0, y1)},{max(x0, x1)},{max(y0, y1)}"
    out, heat = tmp_path / "g.gpkg", tmp_path / "h.tif"
    run_cli("classify", S2_SCENE, "--model", "sentinel2-eurosat", "--bands", S2_BANDS_OPT, "--input-scale",
            "1000", "--extent", extent, "--out", out, "--heatmap", heat, "--heatmap-detail", "fine", check=True)
    card, model, _ = load_model("sentinel2-eurosat", torch.device("cpu"))
    with rasterio.open(S2_SCENE) as ds:
        plan = make_plan(ds, card, bands=S2_BANDS_OPT, input_scale=1000, extent=tuple(map(float, extent.split(","))))
    assert len(plan.tiles) == 12
    polygons = {(f.properties["row"], f.properties["col"]): fiona.bounds(f) for f in fiona.open(out)}
    # read and upsampled as classify does (GDAL's resampling on read gives another input and, with the
    # fine grid, another peak: measured (32, 32) against (56, 32) in one tile)
    reader = TileReader(str(S2_SCENE), plan.bands, plan.tile_src, plan.divisor, card.mean)
    size = (card.input_size, card.input_size)
    runner = CamRunner(model, "gradcam", (len(card.bands), *size), detail="fine", norm="run")
    try:
        with rasterio.open(heat) as h:
            for t in plan.tiles:
                r = reader.read(t)
                _, maps = runner.run(prepare(torch.from_numpy(r.data[None]), card))
                placed = resample_maps(maps, (t.h, t.w), runner.alignment(size))[0]
                i, j = np.unravel_index(np.argmax(placed), placed.shape)
                px, py = h.transform @ (t.x - plan.area[0] + j + 0.5, t.y - plan.area[1] + i + 0.5)
                bx0, by0, bx1, by1 = polygons[(t.row, t.col)]
                assert bx0 <= px <= bx1 and by0 <= py <= by1, f"peak of tile {t} outside its polygon"
                hr, hc = h.index(px, py)
                window = h.read(1, window=((t.y - plan.area[1], t.y - plan.area[1] + t.h),
                                           (t.x - plan.area[0], t.x - plan.area[0] + t.w)))
                assert h.read(1)[hr, hc] >= 0.85 * window.max(), f"mosaic is not hottest at the peak of {t}"
    finally:
        reader.close()
        runner.close()


@pytest.mark.parametrize("opts", [["--stride", "32"], ["--edge", "shift"]])
def test_overlap_and_edge_options(tmp_path: Path, opts: list[str]) -> None:
    with rasterio.open(S2_SCENE) as ds:
        x0, y0 = ds.transform @ (0, 0)
        x1, y1 = ds.transform @ (200, 150)
    out, heat = tmp_path / "g.gpkg", tmp_path / "h.tif"
    run_cli("classify", S2_SCENE, "--model", "sentinel2-eurosat", "--bands", S2_BANDS_OPT, "--input-scale",
            "1000", "--extent", f"{x0},{y1},{x1},{y0}", "--out", out, "--heatmap", heat, *opts, check=True)
    n = len(list(fiona.open(out)))
    # stride 32: columns start at 0,32,..,128 then a padded 160 (6), rows at 0,32,64 then 96 (4);
    # shift: columns 0,64,128 then 136 (4), rows 0,64 then 86 (3)
    assert n == (6 * 4 if opts[0] == "--stride" else 4 * 3)
    with rasterio.open(heat) as h:
        assert h.width == 200 and h.height == 150
        assert h.read(1, masked=True).count() == 200 * 150


def test_mask_polygons_limit_the_work(tmp_path: Path) -> None:
    """Tiles outside a mask polygon (given in another CRS) are recorded as skipped, not classified."""
    from conftest import run_main
    from rasterio.warp import transform_geom

    with rasterio.open(S2_SCENE) as ds:
        x0, y1 = ds.transform @ (0, 0)
        x1, y0 = ds.transform @ (256, 128)
        xm = ds.transform @ (128, 0)
        crs = ds.crs
    extent = f"{x0},{y0},{x1},{y1}"
    left_half = {"type": "Polygon", "coordinates": [[(x0, y0), (xm[0], y0), (xm[0], y1), (x0, y1), (x0, y0)]]}
    geom = transform_geom(crs, "EPSG:4326", left_half)
    mask = tmp_path / "mask.gpkg"
    with fiona.open(mask, "w", driver="GPKG", crs="EPSG:4326",
                    schema={"geometry": "Polygon", "properties": {"id": "int"}}) as dst:
        dst.write({"geometry": geom, "properties": {"id": 1}})
    out = tmp_path / "g.gpkg"
    proc = run_main("classify", S2_SCENE, "--model", "sentinel2-eurosat", "--bands", S2_BANDS_OPT,
                    "--input-scale", "1000", "--extent", extent, "--mask", mask, "--out", out)
    assert proc.returncode == 0, proc.stderr
    feats = [dict(f.properties) for f in fiona.open(out)]
    assert len(feats) == 8
    status = {(f["row"], f["col"]): f["status"] for f in feats}
    assert all(status[(r, c)] == "classified" for r in range(2) for c in range(2))
    assert all(status[(r, c)].startswith("skipped") for r in range(2) for c in range(2, 4))


def test_estimate_only_prints_the_eta_and_writes_nothing(tmp_path: Path) -> None:
    from conftest import run_main

    out = tmp_path / "out"
    out.mkdir()
    proc = run_main("classify", S2_SCENE, "--model", "sentinel2-eurosat", "--bands", S2_BANDS_OPT,
                    "--input-scale", "1000", "--heatmap", out / "h.tif", "--estimate", "--json")
    assert proc.returncode == 0, proc.stderr
    eta = json.loads(proc.stdout)
    assert eta["tiles"] == 225 and math.isfinite(eta["eta_s"]) and eta["eta_s"] > 0 and eta["warnings"] == []
    assert list(out.iterdir()) == []
    # before a run, the estimate already says when the scale looks wrong
    proc = run_main("classify", S2_SCENE, "--model", "sentinel2-eurosat", "--bands", S2_BANDS_OPT, "--estimate",
                    "--json")
    assert proc.returncode == 0 and "warning: " in proc.stderr
    assert len(json.loads(proc.stdout)["warnings"]) == 1 and list(out.iterdir()) == []
