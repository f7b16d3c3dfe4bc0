"""Pure shard math: a raster's tile plan cut into shards of whole tiles. No Ray, raster or torch imports.

A shard is a contiguous run of the plan's tiles in plan (row-major) order: whole rows of tiles when a row
holds at most ``shard_tiles`` tiles, else balanced pieces of one row. So the shards, in order, give back the
plan's tiles exactly (no tile cut, dropped or duplicated), and a merge that visits them in order hands the
writers the tiles in the order ``classify`` does (the heatmap writer streams rows out in that order)."""

from __future__ import annotations

from dataclasses import dataclass

from ..io.tiling import Tile

DEFAULT_SHARD_BYTES = 256 << 20  # read buffers of one shard, when --shard-tiles is not given


@dataclass(frozen=True)
class Shard:
    index: int
    start: int  # first tile (index into the plan's tiles)
    stop: int  # one past the last
    row0: int  # the tile rows it spans, [row0, row1)
    row1: int
    col0: int  # and columns, [col0, col1)
    col1: int

    @property
    def tiles(self) -> int:
        return self.stop - self.start


def plan_shards(rows: int, cols: int, shard_tiles: int) -> list[Shard]:
    """Shards of at most ``shard_tiles`` tiles of a ``rows`` x ``cols`` tile grid, in plan order."""
    if shard_tiles < 1:
        raise ValueError(f"--shard-tiles must be at least 1, not {shard_tiles}")
    if rows < 0 or cols < 0:
        raise ValueError(f"a grid of {rows} x {cols} tiles")
    shards: list[Shard] = []
    if cols <= shard_tiles:  # bands of whole rows
        per = shard_tiles // cols if cols else 1
        for r in range(0, rows, per):
            r1 = min(r + per, rows)
            shards.append(Shard(len(shards), r * cols, r1 * cols, r, r1, 0, cols))
        return shards
    pieces = -(-cols // shard_tiles)  # balanced pieces of one row: widths differ by one at most
    bounds = [round(k * cols / pieces) for k in range(pieces + 1)]
    for r in range(rows):
        for c0, c1 in zip(bounds, bounds[1:], strict=False):
            shards.append(Shard(len(shards), r * cols + c0, r * cols + c1, r, r + 1, c0, c1))
    return shards


def shard_tiles_of(tiles: list[Tile], shard: Shard) -> list[Tile]:
    """The plan's tiles of ``shard``, checked against the rows and columns it was planned for (a raster that
    changed between planning and reading fails here instead of shifting tiles)."""
    part = tiles[shard.start : shard.stop]
    if len(part) != shard.tiles or any(
            not (shard.row0 <= t.row < shard.row1 and shard.col0 <= t.col < shard.col1) for t in part):
        raise ValueError(f"shard {shard.index} (tiles {shard.start}-{shard.stop}) does not fit the raster's "
                         f"grid of {len(tiles)} tiles: did the raster change since the run was planned?")
    return part


def shard_window(part: list[Tile], width: int, height: int) -> tuple[int, int, int, int]:
    """``(x, y, w, h)``: the raster pixels a shard's tiles read (their windows clipped to the raster)."""
    boxes = [t.clipped(width, height) for t in part]
    boxes = [b for b in boxes if b[2] and b[3]]
    if not boxes:
        return 0, 0, 0, 0
    x0, y0 = min(b[0] for b in boxes), min(b[1] for b in boxes)
    x1, y1 = max(b[0] + b[2] for b in boxes), max(b[1] + b[3] for b in boxes)
    return x0, y0, x1 - x0, y1 - y0


def default_shard_tiles(bands: int, read_px: int, budget: int = DEFAULT_SHARD_BYTES) -> int:
    """Tiles per shard whose float32 read buffers fit ``budget`` bytes (1024 at most): a shard's tiles travel
    through the object store as one block, so this bounds the memory of each shard in flight."""
    per_tile = max(bands, 1) * read_px * read_px * 4
    return max(1, min(1024, budget // per_tile))
