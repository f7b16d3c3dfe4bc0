"""What the scale-out tests share: the real rasters they run, and the comparison of a classify-many output
with a single-process ``classify`` of the same raster (same tiles, classes, probabilities within 1e-5)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import fiona
import numpy as np
import rasterio
from conftest import S2_BANDS_OPT, SCENES, run_main

SUBSET = SCENES / "sen2_20210527_aber_subset.tif"
S2_OPTS = ["--model", "sentinel2-eurosat", "--bands", S2_BANDS_OPT, "--input-scale", "1000"]
PROB_FIELDS = ("confidence", "top1_prob", "top2_prob", "top3_prob", "entropy", "margin", "valid_fraction")


def framed_subset(folder: Path, pad: int = 128) -> Path:
    """The real subset in a frame of declared nodata: whole shards of it hold no valid pixel."""
    with rasterio.open(SUBSET) as ds:
        data, profile = ds.read(), ds.profile
        big = np.zeros((data.shape[0], data.shape[1] + 2 * pad, data.shape[2] + 2 * pad), data.dtype)
        big[:, pad:-pad, pad:-pad] = data
        profile.update(width=big.shape[2], height=big.shape[1], nodata=0,
                       transform=ds.transform @ rasterio.Affine.translation(-pad, -pad))
    out = folder / "framed.tif"
    with rasterio.open(out, "w", **profile) as dst:
        dst.write(big)
    return out


def zipped_subset(folder: Path) -> str:
    with zipfile.ZipFile(folder / "export.zip", "w", zipfile.ZIP_DEFLATED) as z:
        z.write(SUBSET, "S2/subset.tif")
    return f"/vsizip/{folder}/export.zip/S2/subset.tif"


def reference(raster: Path | str, folder: Path, extra: list[str], heatmap: bool = True) -> dict[str, Path]:
    """Single-process ``classify`` of ``raster`` with the same options."""
    folder.mkdir(parents=True, exist_ok=True)
    out = {"grid": folder / "ref.gpkg", "heat": folder / "ref_heat.tif", "classes": folder / "ref_cls.tif"}
    heat = ["--heatmap", out["heat"]] if heatmap else []
    proc = run_main("classify", raster, *S2_OPTS, *extra, "--out", out["grid"], *heat,
                    "--class-raster", out["classes"])
    assert proc.returncode == 0, proc.stderr
    return out


def grid(path: Path) -> dict[tuple[int, int], dict]:
    with fiona.open(path) as src:
        return {(f.properties["row"], f.properties["col"]): dict(f.properties) | {"bounds": fiona.bounds(f)}
                for f in src}


def assert_same_outputs(ref: dict[str, Path], base: Path, heatmap: bool = True, heat_tol: float = 1e-5) -> None:
    """``base``_tiles.gpkg (and _heatmap.tif, _classes.tif) equal the reference, tile for tile; the heat within
    ``heat_tol``."""
    got, want = grid(Path(f"{base}_tiles.gpkg")), grid(ref["grid"])
    assert got.keys() == want.keys(), "the same tiles, none dropped or duplicated"
    for key, w in want.items():
        g = got[key]
        assert (g["status"], g["class_name"], g["bounds"]) == (w["status"], w["class_name"], w["bounds"]), key
        for f in PROB_FIELDS:
            if w[f] is not None:
                assert abs(g[f] - w[f]) <= 1e-5, (key, f, g[f], w[f])
    pairs = [("classes", "_classes.tif")] + ([("heat", "_heatmap.tif")] if heatmap else [])
    for kind, suffix in pairs:
        with rasterio.open(f"{base}{suffix}") as a, rasterio.open(ref[kind]) as b:
            assert a.transform == b.transform and a.crs == b.crs
            assert a.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
            x, y = a.read(1), b.read(1)
            assert np.abs(x.astype(np.float64) - y).max() <= (heat_tol if kind == "heat" else 1e-5), kind
