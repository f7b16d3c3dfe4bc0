"""Shared fixtures: the real data in ../shared/data and tiny generated rasters."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

ROOT = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("RS_SCENE_SHARED", ROOT.parent / "shared")) / "data"
SCENES = SHARED / "scenes"
S2_SCENE = SCENES / "sentinel2_aberystwyth_20210527_10band.tif"
NAIP = SCENES / "naip_m_4709963_se_14_1_20200831.tif"
LANDSAT = SCENES / "landsat7_RGB.byte.tif"
S2_BANDS_OPT = "B02,B03,B04,B05,B06,B07,B08,B8A,B11,B12"

os.environ.setdefault("RS_SCENE_OFFLINE", "1")


def run_cli(*args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
    """Run the real CLI in a subprocess, as a user would."""
    proc = subprocess.run([sys.executable, "-m", "rs_scene.cli", *map(str, args)], capture_output=True,
                          text=True, timeout=900, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"rs-scene {' '.join(map(str, args))} failed:\n{proc.stderr}")
    return proc


def run_main(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the CLI's ``main`` in this process (same code path, no interpreter start-up)."""
    import contextlib
    import io

    from rs_scene.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in args])
        except SystemExit as exc:  # argparse errors
            code = int(exc.code or 0)
    return subprocess.CompletedProcess(list(args), code, out.getvalue(), err.getvalue())


def write_raster(path: Path, data: np.ndarray, crs: str | None = "EPSG:32633", res: float = 10.0,
                 nodata: float | None = None, descriptions: list[str] | None = None) -> Path:
    count, h, w = data.shape
    kw = {"crs": crs} if crs else {}
    with rasterio.open(path, "w", driver="GTiff", width=w, height=h, count=count, dtype=data.dtype,
                       transform=from_origin(500000, 5000000, res, res), nodata=nodata, **kw) as dst:
        dst.write(data)
        for i, d in enumerate(descriptions or []):
            dst.set_band_description(i + 1, d)
    return path


@pytest.fixture
def s2_like(tmp_path: Path) -> Path:
    """A small 10-band uint16 raster with Sentinel-2 band names, reflectance x 10000."""
    rng = np.random.default_rng(0)
    data = rng.integers(200, 3000, size=(10, 200, 260), dtype=np.uint16)
    return write_raster(tmp_path / "s2_like.tif", data, descriptions=S2_BANDS_OPT.split(","))


def pytest_configure(config: pytest.Config) -> None:
    assert SHARED.is_dir(), f"shared data not found at {SHARED}"
