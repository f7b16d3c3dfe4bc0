"""Shards of a tile plan: windows of whole tiles that, in order, give back the plan's tiles exactly (edge
modes, stride < tile, rows wider than a shard), on the plans ``classify`` makes. No Ray needed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from conftest import S2_BANDS_OPT, SCENES, write_raster
from rs_scene.card import read_card
from rs_scene.engine.plan import make_plan
from rs_scene.io.tiling import grid_shape, tile_grid
from rs_scene.scale.manifest import Manifest, expand_inputs, raster_key
from rs_scene.scale.shards import (
    default_shard_tiles,
    plan_shards,
    shard_tiles_of,
    shard_window,
)
from rs_scene.zoo import resolve_model


def _check_cover(tiles: list, shard_tiles: int) -> list:
    rows, cols = grid_shape(tiles)
    shards = plan_shards(rows, cols, shard_tiles)
    parts = [shard_tiles_of(tiles, s) for s in shards]
    flat = [t for p in parts for t in p]
    assert flat == tiles, "the shards in order are the plan's tiles, none cut, dropped or repeated"
    assert len(set(flat)) == len(tiles)
    assert all(0 < len(p) <= shard_tiles for p in parts)
    assert [s.index for s in shards] == list(range(len(shards)))
    return shards


@pytest.mark.parametrize("edge", ["pad", "shift", "drop"])
@pytest.mark.parametrize("stride", [64, 32, 48])
@pytest.mark.parametrize("shard_tiles", [1, 4, 7, 15, 16, 1000])
def test_shards_cover_every_plan_exactly_once(edge: str, stride: int, shard_tiles: int) -> None:
    tiles = tile_grid(930, 947, 64, stride, edge)
    shards = _check_cover(tiles, shard_tiles)
    rows, cols = grid_shape(tiles)
    if shard_tiles >= cols:  # whole rows per shard, as many as fit
        assert all(s.col0 == 0 and s.col1 == cols for s in shards)
        assert shards[0].row1 - shards[0].row0 == min(shard_tiles // cols, rows)
    else:  # pieces of one row, balanced
        widths = {s.col1 - s.col0 for s in shards}
        assert max(widths) - min(widths) <= 1 and all(s.row1 - s.row0 == 1 for s in shards)


def test_shard_windows_are_their_tiles_clipped_to_the_raster() -> None:
    tiles = tile_grid(100, 70, 32, 16, "pad")  # the last column and row of tiles reach past the raster
    rows, cols = grid_shape(tiles)
    shards = plan_shards(rows, cols, 2 * cols)
    windows = [shard_window(shard_tiles_of(tiles, s), 100, 70) for s in shards]
    assert windows[0] == (0, 0, 100, 48)  # rows 0-1 of tiles: y 0..16+32, all across
    assert windows[-1][1] + windows[-1][3] == 70, "the last shard ends on the raster's edge"
    # with overlap (stride < tile) neighbouring shards' windows overlap by tile - stride
    assert windows[1][1] == 32 and windows[0][1] + windows[0][3] - windows[1][1] == 16


def test_a_changed_raster_does_not_shift_tiles() -> None:
    tiles = tile_grid(640, 640, 64)
    shards = plan_shards(10, 10, 25)
    with pytest.raises(ValueError, match="did the raster change"):
        shard_tiles_of(tile_grid(576, 640, 64), shards[-1])
    with pytest.raises(ValueError, match="at least 1"):
        plan_shards(10, 10, 0)
    assert shard_tiles_of(tiles, shards[0])[0] == tiles[0]


def test_real_plans_with_nodata_and_stride(tmp_path: Path) -> None:
    """The plans classify makes of the real subset (shifted edge, 32-px stride) and of a copy framed by
    nodata shard as the pure grids do; the framed copy has shards that hold nothing but nodata."""
    card = read_card(resolve_model("sentinel2-eurosat"))
    src = SCENES / "sen2_20210527_aber_subset.tif"
    with rasterio.open(src) as ds:
        data = ds.read()
        plan = make_plan(ds, card, bands=S2_BANDS_OPT, input_scale=1000, stride=32, edge="shift")
    _check_cover(plan.tiles, 5)
    framed = np.zeros((data.shape[0], data.shape[1] + 256, data.shape[2] + 256), data.dtype)
    framed[:, 128:-128, 128:-128] = data
    path = write_raster(tmp_path / "framed.tif", framed, crs="EPSG:27700", nodata=0,
                        descriptions=[f"Band {i}" for i in range(1, 11)])
    with rasterio.open(path) as ds:
        plan = make_plan(ds, card, bands=S2_BANDS_OPT, input_scale=1000)
        shards = _check_cover(plan.tiles, plan.tiles[-1].col + 1)  # one row of tiles a shard
        top = shard_window(shard_tiles_of(plan.tiles, shards[0]), ds.width, ds.height)
        assert not ds.read(1, window=rasterio.windows.Window(*top)).any(), "the first row: nodata only"


def test_default_shard_size_bounds_the_bytes_of_a_shard() -> None:
    assert default_shard_tiles(10, 64) == 1024  # 160 KiB a tile: capped at 1024 tiles
    assert default_shard_tiles(3, 256) * 3 * 256 * 256 * 4 <= 256 << 20
    assert default_shard_tiles(13, 4096) == 1


def test_inputs_from_lists_folders_and_globs(tmp_path: Path) -> None:
    for name in ("a.tif", "b.tif", "notes.md"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "list.txt").write_text("# rasters\na.tif\n/vsizip/x.zip/c.tif  # inside a zip\n\n")
    assert expand_inputs([str(tmp_path)]) == [str(tmp_path / "a.tif"), str(tmp_path / "b.tif")]
    assert expand_inputs([str(tmp_path / "list.txt"), str(tmp_path / "*.tif")]) == [
        str(tmp_path / "a.tif"), "/vsizip/x.zip/c.tif", str(tmp_path / "b.tif")]
    with pytest.raises(Exception, match="no rasters found"):
        expand_inputs([str(tmp_path / "*.jp2")])
    assert raster_key("/x/scene.tif") != raster_key("/y/scene.tif")


def test_manifest_ignores_a_torn_last_line_and_refuses_other_options(tmp_path: Path) -> None:
    m = Manifest.start(str(tmp_path / "run"), ["/x/a.tif"], {"model": "m"}, resume=False)
    key = raster_key("/x/a.tif")
    m.append({"event": "planned", "raster": key, "plan": {"shards": [[0, 0, 1, 0, 1, 0, 1]]}})
    with open(m.lines, "a") as f:
        f.write('{"event":"done","raster":')  # the process died while writing this line
    assert m.state()[key].status == "planned"
    with pytest.raises(Exception, match="already holds a run"):
        Manifest.start(str(tmp_path / "run"), ["/x/a.tif"], {"model": "m"}, resume=False)
    with pytest.raises(Exception, match="other options .*model"):
        Manifest.start(str(tmp_path / "run"), ["/x/a.tif"], {"model": "other"}, resume=True)
    m = Manifest.start(str(tmp_path / "run"), ["/x/a.tif"], {"model": "m"}, resume=True)
    m.append({"event": "failed", "raster": key, "error": "corrupt"})
    assert m.state()[key].status == "failed", "an event after a torn line is read"
