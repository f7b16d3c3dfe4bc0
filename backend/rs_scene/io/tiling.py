"""Pure tile-grid math: ``(width, height, tile, stride) -> windows``. No raster, QGIS or torch imports."""

from __future__ import annotations

from dataclasses import dataclass

EDGE_MODES = ("pad", "shift", "drop")


@dataclass(frozen=True)
class Tile:
    """One tile window in source-raster pixels. ``w``/``h`` may reach past the raster (``edge='pad'``)."""

    row: int
    col: int
    x: int
    y: int
    w: int
    h: int

    def clipped(self, width: int, height: int) -> tuple[int, int, int, int]:
        """The part of the window inside the raster: ``(x, y, w, h)``; ``w``/``h`` are 0 when outside."""
        x0, y0 = max(self.x, 0), max(self.y, 0)
        x1, y1 = min(self.x + self.w, width), min(self.y + self.h, height)
        return x0, y0, max(x1 - x0, 0), max(y1 - y0, 0)

    def inside_fraction(self, width: int, height: int) -> float:
        _, _, w, h = self.clipped(width, height)
        return (w * h) / float(self.w * self.h)


def axis_starts(length: int, tile: int, stride: int, edge: str = "pad") -> list[int]:
    """Start offsets of tiles along one axis of ``length`` pixels.

    ``pad`` adds a last tile that reaches past the edge when the regular steps leave pixels uncovered,
    ``shift`` moves that last tile back so it ends exactly on the edge (overlapping its neighbour), and
    ``drop`` leaves the uncovered strip out.
    """
    if tile <= 0 or stride <= 0:
        raise ValueError(f"tile ({tile}) and stride ({stride}) must be positive")
    if stride > tile:
        raise ValueError(f"stride ({stride}) larger than tile ({tile}) would leave gaps between tiles")
    if edge not in EDGE_MODES:
        raise ValueError(f"edge must be one of {EDGE_MODES}, not {edge!r}")
    if tile > length:
        raise ValueError(f"tile of {tile} px is larger than the raster's {length} px")
    starts = list(range(0, length - tile + 1, stride))
    last_end = starts[-1] + tile
    if last_end < length:
        if edge == "pad":
            starts.append(starts[-1] + stride)
        elif edge == "shift":
            starts.append(length - tile)
    return starts


def tile_grid(
    width: int, height: int, tile: int | tuple[int, int], stride: int | tuple[int, int] | None = None,
    edge: str = "pad", x0: int = 0, y0: int = 0,
) -> list[Tile]:
    """All tiles of a ``width`` x ``height`` area (offset by ``x0``, ``y0``), row-major. ``tile`` and
    ``stride`` are one size, or (x, y) sizes for pixels that are not square on the ground."""
    tx, ty = (tile, tile) if isinstance(tile, int) else tile
    stride = stride or (tx, ty)
    sx, sy = (stride, stride) if isinstance(stride, int) else stride
    xs = axis_starts(width, tx, sx, edge)
    ys = axis_starts(height, ty, sy, edge)
    return [Tile(r, c, x0 + x, y0 + y, tx, ty) for r, y in enumerate(ys) for c, x in enumerate(xs)]


def grid_shape(tiles: list[Tile]) -> tuple[int, int]:
    """``(rows, cols)`` of a grid made by :func:`tile_grid`."""
    if not tiles:
        return 0, 0
    return tiles[-1].row + 1, tiles[-1].col + 1
