"""Context heatmaps for tiles in memory (``make bench-explain``): the tiles are written into a georeferenced
mosaic and drawn by the very pass ``classify`` runs (:mod:`rs_scene.engine.context`), so a tile's neighbours
are the tiles around it in the mosaic. Without neighbours the tiles lie side by side in a square grid (each
one's neighbours are the next tiles); with ``neighbours`` (N, 8, C, h, w) each tile is the centre of its own
3 x 3 group of them."""

from __future__ import annotations

import tempfile
from typing import Any

import numpy as np
import rasterio
import torch
from rasterio.transform import from_origin

from ..card import ModelCard
from ..engine.context import context_heat
from ..engine.evaluate import preprocess
from ..engine.plan import make_plan
from .cam import CamRunner, Target


def _layout(n: int, grouped: bool) -> tuple[int, int, list[tuple[int, int]]]:
    """Mosaic rows and columns (in tiles) and each tile's (row, col)."""
    g = int(np.ceil(np.sqrt(n)))
    if not grouped:
        return int(np.ceil(n / g)), g, [(k // g, k % g) for k in range(n)]
    return 3 * int(np.ceil(n / g)), 3 * g, [(3 * (k // g) + 1, 3 * (k % g) + 1) for k in range(n)]


def _mosaic(tiles: np.ndarray, neighbours: np.ndarray | None) -> tuple[np.ndarray, list[tuple[int, int]]]:
    n, c, h, w = tiles.shape
    rows, cols, where = _layout(n, neighbours is not None)
    mosaic = np.zeros((c, rows * h, cols * w), dtype=np.float32)

    def put(r: int, q: int, t: np.ndarray) -> None:
        mosaic[:, r * h : (r + 1) * h, q * w : (q + 1) * w] = t

    for k, (r, q) in enumerate(where):
        put(r, q, tiles[k])
        if neighbours is not None:
            ring = [(dr, dq) for dr in (-1, 0, 1) for dq in (-1, 0, 1) if (dr, dq) != (0, 0)]
            for (dr, dq), t in zip(ring, neighbours[k], strict=True):
                put(r + dr, q + dq, t)
    return mosaic, where


def context_explainer(card: ModelCard, runner: CamRunner, batch: int = 16) -> Any:
    """``run(tiles, target=None, neighbours=None) -> (scores, maps)``: scores of each tile alone (as
    ``classify`` classifies it), maps from the context pass at the tiles' pixels."""

    def run(tiles: np.ndarray, target: Target = None,
            neighbours: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        n, c, h, w = tiles.shape
        probs = []
        with torch.inference_mode():
            for i in range(0, n, batch):
                x = preprocess(torch.from_numpy(np.ascontiguousarray(tiles[i : i + batch])), card)
                probs.append(runner.net(x).float().softmax(1).numpy())
        p = np.concatenate(probs)
        want = p.argmax(1) if target is None else np.broadcast_to(np.asarray(target), (n,))
        mosaic, where = _mosaic(tiles, neighbours)
        maps = np.zeros((n, h, w), dtype=np.float32)
        with tempfile.TemporaryDirectory() as tmp:
            path = f"{tmp}/mosaic.tif"
            with rasterio.open(path, "w", driver="GTiff", width=mosaic.shape[2], height=mosaic.shape[1],
                               count=c, dtype="float32", crs="EPSG:32630",
                               transform=from_origin(500000, 6000000, card.gsd, card.gsd)) as dst:
                dst.write(mosaic)
                dst.descriptions = tuple(card.bands)
            with rasterio.open(path) as ds:
                plan = make_plan(ds, card, tile_size=w, input_scale=1.0, edge="drop")
            index = {(t.row, t.col): t for t in plan.tiles}
            slot = {index[rq]: k for k, rq in enumerate(where)}
            classes = {t: int(want[k]) for t, k in slot.items()}

            def add(t: Any, m: np.ndarray, v: np.ndarray) -> None:
                maps[slot[t]] = m

            context_heat(runner, card, plan, path, classes, add)
        return p, maps

    return run
