"""ROAD deletion of the faithfulness benchmark (rs_scene.explain.faithfulness): the noisy linear imputation
fills removed pixels from their kept neighbours, and a map that ranks the pixels a score depends on first
makes the score fall faster than random pixels do."""

from __future__ import annotations

import numpy as np
from rs_scene.explain import faithfulness as fa


def test_road_imputation_fills_a_smooth_tile_and_keeps_the_kept_pixels() -> None:
    yy, xx = np.mgrid[0:32, 0:32].astype(np.float32)
    tile = np.stack([xx / 31, yy / 31, (xx + yy) / 62])  # linear ramps: the 8-neighbour mean is exact inside
    keep = np.ones((32, 32), dtype=bool)
    keep[10:14, 8:20] = False
    keep[np.random.default_rng(0).random((32, 32)) < 0.3] = False
    keep[0, :] = keep[-1, :] = keep[:, 0] = keep[:, -1] = True  # borders kept: interior pixels only
    out = fa.road_impute(tile, keep, np.random.default_rng(0), noise=0.0)
    assert np.array_equal(out[:, keep], tile[:, keep])
    assert np.abs(out - tile).max() < 1e-4
    noisy = fa.road_impute(tile, keep, np.random.default_rng(0), noise=0.01)
    assert 0 < np.abs(noisy - tile)[:, ~keep].std() < 0.02


def test_road_deletion_of_the_right_order_falls_faster_than_random() -> None:
    """A 'model' whose score is the brightness of a 6 x 6 square (the rest of the tile is textured): removing
    that square first (a map that shows it) lowers the score more than removing random pixels, which the
    imputation restores from their bright neighbours."""
    rng = np.random.default_rng(1)
    n, h = 6, 24
    tiles = rng.random((n, 1, h, h)).astype(np.float32) * 0.2
    tiles[:, :, 9:15, 9:15] = 1.0

    def predict(x: np.ndarray) -> np.ndarray:
        s = x[:, 0, 9:15, 9:15].mean((1, 2))
        return np.stack([s, 1 - s], 1)

    heat = np.zeros((n, h, h))
    heat[:, 9:15, 9:15] = 1.0
    heat += rng.random(heat.shape) * 1e-3
    order = np.argsort(-heat.reshape(n, -1), axis=1)
    random = np.argsort(rng.random((n, h * h)), axis=1)
    classes = np.zeros(n, dtype=int)
    by_map = fa.road_deletion(predict, tiles, order, classes, np.random.default_rng(0))
    by_random = fa.road_deletion(predict, tiles, random, classes, np.random.default_rng(0))
    assert (by_map < by_random - 0.2).all()
