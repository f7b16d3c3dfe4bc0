"""Heatmaps that see the tile's neighbours (``--heatmap-detail context``, the default).

A tile classified alone is zero-padded at its borders by every convolution, and with the 64-px tiles of
Sentinel-2 every cell of the last feature map is near a border: its evidence falls off towards the edges
whatever the tile holds, so each map is mostly a blob in the tile's centre (position bias 0.91 on the demo
scene: the median correlation of a tile's map with the mean map). Here the classes still come from the tiles
alone, as the model was trained, but the heat is drawn from one fully convolutional pass of the same network
over blocks of neighbouring tiles with a margin of real pixels around them: a cell at a tile's border then
sees the pixels beyond it, as cells inside the tile do. Each tile's map is the evidence for the tile's class
(closed-form Grad-CAM, ``sum_k W[c,k] A_k(i,j)``) at the cells over it, on the twice-denser grid of
:mod:`rs_scene.explain.dense`, each cell on the centre of its receptive field (:func:`cam_alignment` at the
block's size). Neighbouring tiles of one class share one continuous map, so the mosaic has no seams there.

Cost: one extra forward pass of the dense network over the tiles and their margins (blocks of up to 8 x 8
tiles and half a tile of margin: about 1.3x the tiles' area).

``--heatmap-detail fused`` draws the same blocks and adds a mid-level layer's LayerCAM map to each class map
(:mod:`rs_scene.explain.layer_fusion`): a PyTorch forward and one backward pass per class in the block.
"""

from __future__ import annotations

import math
import threading
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..card import ModelCard
from ..data.transforms import normalize, upsample_for_inference
from ..explain.cam import (
    CONTEXT_DETAILS,
    Alignment,
    CamRunner,
    cam_alignment,
    evidence_from_features,
    resample_maps,
)
from ..explain.layer_fusion import fused_block_maps
from ..io.raster import TileReader
from ..io.tiling import Tile
from .plan import TilePlan, mask_function
from .reading import read_size
from .trainer import Cancelled

MARGIN = 0.5  # real pixels around each block, in tiles
MOST_TILES = 8  # tiles along a block's side, at most

AddFn = Callable[[Tile, np.ndarray, np.ndarray], None]  # (tile, map at its raster px, valid px)
FeatureFn = Callable[[torch.Tensor], torch.Tensor]  # network input (1, C, H, W) -> feature map (1, K, h, w)


def feature_fn(cam: CamRunner, card: ModelCard, model_path: Any, device: Any, runtime: str,
               threads: int | None) -> FeatureFn:
    """The dense network's features for blocks of any size: an ONNX Runtime export with dynamic height and
    width where ``runtime`` runs on ONNX Runtime (on the CPU, 4-8x PyTorch's speed for these depthwise
    convolutions), else the PyTorch network."""
    from .runtime import make_runner

    runner = make_runner(runtime, cam.net, card, model_path, device, threads, 1, variant="context")
    if runner.name == "onnx":
        return lambda x: runner.features_and_logits(x)[0]
    return cam.net.forward_features


@dataclass(frozen=True)
class Block:
    window: Tile  # the block and its margin, in raster pixels (square)
    tiles: tuple[Tile, ...]


def block_side(rows: int, cols: int, most: int = MOST_TILES) -> int:
    """Tiles along a block's side: at most ``most``, and as even a split of the longer axis as possible."""
    n = max(rows, cols, 1)
    return math.ceil(n / math.ceil(n / most))


def plan_blocks(tiles: list[Tile], origin: tuple[int, int], stride: int, tile: int, margin: int,
                side: int) -> list[list[Block]]:
    """The tiles grouped into square blocks of ``side`` x ``side`` tiles (by row and column), by block row.
    A block's window is fixed by its place in the grid (``origin``: the grid's top-left raster pixel), not
    by which of its tiles are asked for: a shard drawing part of a block reads the same pixels as a run
    drawing all of it, and gets the same maps (a shifted last tile lies inside its block's window)."""
    groups: dict[tuple[int, int], list[Tile]] = defaultdict(list)
    for t in tiles:
        groups[(t.row // side, t.col // side)].append(t)
    ext = (side - 1) * stride + tile + 2 * margin
    rows: dict[int, list[Block]] = defaultdict(list)
    for (br, bc), ts in sorted(groups.items()):
        x0, y0 = origin[0] + bc * side * stride - margin, origin[1] + br * side * stride - margin
        rows[br].append(Block(Tile(-1, -1, x0, y0, ext, ext), tuple(ts)))
    return [rows[k] for k in sorted(rows)]


def square(plan: TilePlan) -> bool:
    return plan.tile_src == plan.tile_src_y and plan.stride_src == plan.stride_src_y


def detail_for(params: Any, plan: TilePlan) -> str:
    """The heatmap detail a run uses: context maps need square tiles (square pixels on the ground); other
    tiles get each tile's own dense map (``fine``)."""
    detail = params.heatmap_detail
    return "fine" if detail in CONTEXT_DETAILS and not square(plan) else detail


def supported(cam: CamRunner | None, plan: TilePlan) -> bool:
    """Whether the heat comes from the context pass: closed-form Grad-CAM, square tiles."""
    return cam is not None and cam.fast and cam.detail in CONTEXT_DETAILS and square(plan)


class ContextHeat:
    """``run(classes, add)``: each classified tile's context map, handed to ``add`` in row-major order."""

    def __init__(self, cam: CamRunner, card: ModelCard, plan: TilePlan, raster: str,
                 features: FeatureFn | None = None) -> None:
        """``features``: the dense network's feature map of a block (:func:`feature_fn`: ONNX Runtime where
        classify runs there); the PyTorch network by default."""
        self.cam, self.card, self.plan, self.raster = cam, card, plan, raster
        self.features = features or cam.net.forward_features
        self.margin = round(plan.tile_src * MARGIN)
        self.read_ratio = read_size(plan, card) / plan.tile_src  # reader px per raster px
        self.in_ratio = card.input_size / plan.tile_src  # network input px per raster px
        self.readers: dict[int, TileReader] = {}
        self.aligns: dict[tuple[int, int], Alignment] = {}
        p = next(cam.net.parameters())
        self.device, self.dtype = p.device, p.dtype
        self.weight = cam.model.head.weight.detach().to(p.device)
        with torch.inference_mode():  # cells of the dense grid per network input
            self._cells = cam.net.forward_features(torch.zeros(1, len(card.bands), card.input_size,
                                                               card.input_size, device=p.device)).shape[-1]

    def _reader(self, size: int) -> TileReader:
        if size not in self.readers:
            self.readers[size] = TileReader(self.raster, self.plan.bands, size, self.plan.divisor,
                                            self.card.mean, self.plan.nodata)
        return self.readers[size]

    def _align(self, n_in: int, layer: Any = None) -> Alignment:
        """:func:`cam_alignment` at the block's input size. It follows one forward pass (1 s at 1152 px);
        for sizes a whole number of the network's total stride apart it is the same, so it is measured at
        the smallest such size."""
        stride = self.card.input_size // max(self._cells, 1) * 2  # the undensified network's total stride
        probe = n_in if n_in % stride else stride * 4
        layer = layer or self.cam.net.cam_layer
        if (probe, id(layer)) not in self.aligns:
            self.aligns[(probe, id(layer))] = cam_alignment(self.cam.net, layer, len(self.card.bands),
                                                            (probe, probe))
        return self.aligns[(probe, id(layer))]

    def block_maps(self, block: Block, classes: list[int]) -> tuple[dict[int, np.ndarray], np.ndarray]:
        """Per class, the block window's evidence map at raster pixels; and the window's valid pixels (at
        the reader's pixels)."""
        side = block.window.w
        n_read, n_in = round(side * self.read_ratio), round(side * self.in_ratio)
        reader = self._reader(n_read)
        read = reader.read(block.window, mask_function(self.plan, reader.ds))
        x = torch.from_numpy(read.data[None]).to(self.device, self.dtype)
        x = upsample_for_inference(normalize(x, self.card.mean, self.card.std, channels_last=False), n_in)
        with torch.inference_mode():
            feats = self.features(x)
            cls = torch.as_tensor(classes, device=feats.device)
            ev = evidence_from_features(feats.expand(len(classes), -1, -1, -1), self.weight, cls,
                                        (n_in, n_in)).cpu().numpy()
        maps = resample_maps(ev, (side, side), self._align(n_in))
        if self.cam.fuse_layer is not None:  # 'fused': LayerCAM of a mid-level layer, on PyTorch
            layer = self.cam.fuse_layer
            align = self._align(n_in, layer)
            maps = fused_block_maps(self.cam.net, layer, x, classes, maps, (side, side), align)
        return dict(zip(classes, maps, strict=True)), read.valid

    def run(self, classes: dict[Tile, int], add: AddFn, target: int | None = None,
            cancel: threading.Event | None = None,
            progress: Callable[[int, int], None] | None = None) -> None:
        tiles = [t for t in self.plan.tiles if t in classes]
        if not tiles:
            return
        p = self.plan
        side = block_side(p.tiles[-1].row + 1, p.tiles[-1].col + 1)  # of the whole grid, not of ``tiles``
        done = 0
        for block_row in plan_blocks(tiles, p.area[:2], p.stride_src, p.tile_src, self.margin, side):
            crops: list[tuple[Tile, np.ndarray, np.ndarray]] = []
            for block in block_row:
                if cancel is not None and cancel.is_set():
                    raise Cancelled("classification cancelled")
                wanted = sorted({classes[t] if target is None else target for t in block.tiles})
                maps, valid = self.block_maps(block, wanted)
                crops.extend(self._crops(block, maps, valid, classes, target))
                done += len(block.tiles)
                if progress is not None:
                    progress(done, len(tiles))
            for t, m, v in sorted(crops, key=lambda c: (c[0].y, c[0].x)):
                add(t, m, v)

    def _crops(self, block: Block, maps: dict[int, np.ndarray], valid: np.ndarray,
               classes: dict[Tile, int], target: int | None) -> list[tuple[Tile, np.ndarray, np.ndarray]]:
        out = []
        w, f = block.window, self.read_ratio
        for t in block.tiles:
            m = maps[classes[t] if target is None else target]
            y, x = t.y - w.y, t.x - w.x
            crop = m[y : y + t.h, x : x + t.w]
            if self.cam.norm == "tile":
                crop = crop - crop.min()
                crop = crop / max(float(crop.max()), 1e-7)
            vy, vx = round(y * f), round(x * f)
            v = valid[vy : vy + round(t.h * f), vx : vx + round(t.w * f)]
            out.append((t, np.ascontiguousarray(crop, dtype=np.float32), v))
        return out

    def close(self) -> None:
        for r in self.readers.values():
            r.close()
        self.readers.clear()


def context_heat(cam: CamRunner, card: ModelCard, plan: TilePlan, raster: str, classes: dict[Tile, int],
                 add: AddFn, target: int | None = None, cancel: threading.Event | None = None,
                 progress: Callable[[int, int], None] | None = None,
                 features: FeatureFn | None = None) -> None:
    heat = ContextHeat(cam, card, plan, raster, features)
    try:
        heat.run(classes, add, target, cancel, progress)
    finally:
        heat.close()


def describe(plan: Any) -> dict[str, Any]:
    """The heatmap tags of a context run: the margin of real pixels around each block, the block size."""
    return {"HEATMAP_CONTEXT_PX": str(round(plan.tile_src * MARGIN)),
            "HEATMAP_CONTEXT_BLOCK_TILES": f"up to {MOST_TILES}x{MOST_TILES}"}
