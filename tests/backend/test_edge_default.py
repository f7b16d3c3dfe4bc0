"""The default edge handling does not bias the class of the partial last column (measured on the demo scene).

The demo scene is 930 px wide: 14 whole 64-px tiles and 34 px left over. Padded with nodata, that last column
came out 11 of 15 AnnualCrop (AnnualCrop is 1 % of the interior). The default shifts the last tile back inside
the raster, so the model sees 64 real pixels.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import fiona
import rasterio
from conftest import S2_BANDS_OPT, S2_SCENE, run_main

TOLERANCE = 2  # tiles of 15: whole tiles 2 px from the shifted column's place hold 2 AnnualCrop of 14


def _grid(path: Path, *extra: str) -> list[tuple[int, int, str]]:
    proc = run_main("classify", S2_SCENE, "--model", "sentinel2-eurosat", "--bands", S2_BANDS_OPT,
                    "--input-scale", "1000", "--out", path, *extra)
    assert proc.returncode == 0, proc.stderr
    with fiona.open(path) as src:
        return [(f.properties["row"], f.properties["col"], f.properties["class_name"]) for f in src
                if f.properties["status"] == "classified"]


def _column(tiles: list[tuple[int, int, str]], col: int) -> Counter:
    return Counter(name for _, c, name in tiles if c == col)


def test_default_edge_column_shares_stay_in_the_interior_range(tmp_path: Path) -> None:
    with rasterio.open(S2_SCENE) as ds:
        width, res, left, top = ds.width, ds.res[0], ds.bounds.left, ds.bounds.top
        bottom = ds.bounds.bottom
    assert width % 64, "the scene must have a partial last column for this test"
    tiles = _grid(tmp_path / "default.gpkg")
    last = max(c for _, c, _ in tiles)
    interior = [_column(tiles, c) for c in range(last)]
    edge = _column(tiles, last)
    for name in {n for _, _, n in tiles}:
        low, high = min(col[name] for col in interior), max(col[name] for col in interior)
        assert low - TOLERANCE <= edge[name] <= high + TOLERANCE, (name, edge[name], low, high)

    # the same strip padded: the bias the default avoids (proves the check can fail)
    x0 = left + (width - 34 - 128) * res
    padded = _grid(tmp_path / "pad.gpkg", "--edge", "pad", "--extent", f"{x0},{bottom},{left + width * res},{top}")
    pad_edge = _column(padded, max(c for _, c, _ in padded))
    high = max(col["AnnualCrop"] for col in interior)
    assert pad_edge["AnnualCrop"] > high + TOLERANCE, pad_edge
