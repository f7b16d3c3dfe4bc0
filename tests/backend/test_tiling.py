"""Tile-grid math, exhaustively on small sizes: coverage, edges, overlap."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from rs_scene.io.tiling import Tile, axis_starts, grid_shape, tile_grid


@pytest.mark.parametrize("length,tile,stride", [
    (ln, t, s) for ln in range(1, 41) for t in (1, 3, 4, 7, 16) for s in range(1, t + 1) if t <= ln
])
def test_axis_starts_all_modes(length: int, tile: int, stride: int) -> None:
    for edge in ("pad", "shift", "drop"):
        starts = axis_starts(length, tile, stride, edge)
        assert starts[0] == 0
        assert starts == sorted(set(starts)), "starts strictly increasing"
        cover = np.zeros(length, dtype=int)
        for s in starts:
            cover[s : s + tile] += 1
        if edge == "drop":
            assert all(s + tile <= length for s in starts)
            assert length - (starts[-1] + tile) < stride, "dropped strip narrower than one stride"
        else:
            assert cover.min() >= 1, f"{edge}: every pixel covered"
        if edge == "shift":
            assert starts[-1] + tile == length, "shifted last tile ends on the edge"
        if edge == "pad":
            assert all(b - a == stride for a, b in itertools.pairwise(starts))
            assert starts[-1] < length and starts[-1] + tile >= length
            assert sum(1 for s in starts if s + tile > length) <= 1, "at most one padded tile"


def test_exact_fit_has_no_partial_tile() -> None:
    assert axis_starts(256, 64, 64, "pad") == [0, 64, 128, 192]
    assert axis_starts(256, 64, 32, "pad") == [0, 32, 64, 96, 128, 160, 192]


def test_partial_edge_modes() -> None:
    assert axis_starts(100, 64, 64, "pad") == [0, 64]
    assert axis_starts(100, 64, 64, "shift") == [0, 36]
    assert axis_starts(100, 64, 64, "drop") == [0]


def test_errors() -> None:
    with pytest.raises(ValueError, match="larger than the raster"):
        axis_starts(50, 64, 64)
    with pytest.raises(ValueError, match="gaps"):
        axis_starts(500, 64, 65)
    with pytest.raises(ValueError, match="positive"):
        axis_starts(500, 0, 1)
    with pytest.raises(ValueError, match="edge"):
        axis_starts(500, 64, 64, "wrap")


def test_grid_row_major_and_offset() -> None:
    tiles = tile_grid(130, 70, 64, 64, "pad", x0=10, y0=20)
    assert grid_shape(tiles) == (2, 3)
    assert [(t.row, t.col) for t in tiles] == list(itertools.product(range(2), range(3)))
    assert tiles[0] == Tile(0, 0, 10, 20, 64, 64)
    assert tiles[-1].x == 10 + 128 and tiles[-1].y == 20 + 64


def test_clipped_and_inside_fraction() -> None:
    t = Tile(0, 1, 64, 0, 64, 64)
    assert t.clipped(100, 64) == (64, 0, 36, 64)
    assert t.inside_fraction(100, 64) == pytest.approx(36 / 64)
    assert Tile(0, 0, 200, 0, 10, 10).clipped(100, 100)[2] == 0
