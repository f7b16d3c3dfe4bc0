"""Position bias over a real scene (rs_scene/explain/scene_bias.py, ``make bench-explain``'s measurement):

- ``bench_explain --pastes-from heldout`` pastes only images the model was not trained on;
- the heatmap is cut on the tile grid into the maps of whole, fully valid tiles only;
- on the real NAIP scene, with the options bench_explain gives aerial-rgb (red, green, blue; its own 5 m;
  64-px tiles), the default context map is no blob in each tile's centre (position bias well under 0.5)
  where each tile's own map (``fine``) is one (above 0.6).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import NAIP, SHARED
from rs_scene.data.datasets import heldout_indices, open_dataset
from rs_scene.explain import scene_bias as sb

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "backend" / "scripts"))
import bench_explain

AERIAL = sb.Scene(str(NAIP), "red=1,green=2,blue=3", 64, gsd="native", tile_size=64)


def test_tile_maps_keep_only_whole_valid_tiles() -> None:
    arr = np.arange(10 * 7, dtype=np.float32).reshape(10, 7)
    valid = np.ones_like(arr, dtype=bool)
    valid[4, 1] = False  # spoils the tile at row 1, column 0
    maps = sb.tile_maps(arr, valid, 3)  # a 3 x 2 grid of whole tiles; the last row and column are partial
    assert maps.shape == (5, 3, 3)
    assert np.array_equal(maps[0], arr[0:3, 0:3]) and np.array_equal(maps[2], arr[3:6, 3:6])
    assert np.array_equal(maps[-1], arr[6:9, 3:6])


def test_aerial_context_maps_lose_the_centre_blob_on_naip() -> None:
    fine = sb.scene_position_bias(AERIAL, "aerial-rgb", detail="fine", square_tiles=4, threads=1)
    ctx = sb.scene_position_bias(AERIAL, "aerial-rgb", detail="context", square_tiles=4, threads=1)
    assert fine["tiles"] == ctx["tiles"] == 16  # the scene's top-left 4 x 4 tiles are all valid
    assert fine["median_corr"] > 0.6, fine
    assert ctx["median_corr"] < 0.5, ctx


def test_bench_pastes_from_heldout_images_only() -> None:
    data = open_dataset(SHARED / "eurosat_ms", size=16)
    train, held, _ = heldout_indices(data)
    pool = bench_explain.paste_pool(data, "heldout")
    assert sorted(pool.tolist()) == sorted(held) and not set(pool.tolist()) & set(train)
    assert len(bench_explain.paste_pool(data, "all")) == len(data) > len(pool)
    with pytest.raises(ValueError, match="pastes-from"):
        bench_explain.paste_pool(data, "train")
