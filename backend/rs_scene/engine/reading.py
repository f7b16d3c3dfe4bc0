"""Reading a tile plan as batches: runs of same-row tiles in one GDAL call each, optionally decoded by
parallel workers; preparing them for the network happens in the inference streams."""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..card import ModelCard
from ..io.raster import TileReader
from ..io.tiling import Tile
from .pipeline import ordered_map
from .plan import TilePlan, mask_function


@dataclass
class Batch:
    tiles: list[Tile]
    data: np.ndarray | torch.Tensor | None  # (n, C, S, S) of the tiles to run (a pinned tensor on GPU)
    run: list[Tile]
    valid: list[np.ndarray]
    fractions: dict[Tile, float]
    skipped: dict[Tile, str]


GPU_MIN_BATCH = 128  # tiles per batch on a GPU: small tiles leave it idle at CPU-sized batches
GPU_READ_WORKERS = 4


def read_size(plan: TilePlan, card: ModelCard, fast: bool = True) -> int:
    """Edge of the tiles the reader returns. When the model's input is a whole multiple of the tile's raster
    pixels, tiles are read at their native size (one GDAL call per run of tiles, ~10x cheaper than GDAL's
    resampling) and ``prepare`` upsamples the batch bilinearly (OpenCV on CPU, torch elsewhere), as training
    resized its patches; otherwise GDAL resamples each tile on read."""
    square = plan.tile_src == plan.tile_src_y
    return plan.tile_src if fast and square and card.input_size % plan.tile_src == 0 else card.input_size


def read_batches(path: str, plan: TilePlan, card: ModelCard, min_valid: float, batch_size: int,
                 stop: threading.Event, workers: int = 1, size: int | None = None,
                 pin: bool = False) -> Iterator[Batch]:
    """Batches of tiles in plan order; ``workers`` > 1 decodes batches in parallel threads (GDAL releases
    the GIL), each with its own dataset handle; ``pin`` puts them in pinned memory for a GPU copy."""
    size = size or card.input_size
    local, readers, lock = threading.local(), [], threading.Lock()

    def reader() -> TileReader:
        if not hasattr(local, "reader"):
            local.reader = TileReader(path, plan.bands, size, plan.divisor, card.mean, plan.nodata)
            with lock:
                readers.append(local.reader)
        return local.reader

    mask_fn = mask_function(plan, reader().ds)

    def load(i: int) -> Batch:
        tiles = plan.tiles[i : i + batch_size]
        buf = np.empty((len(tiles), len(plan.bands), size, size), dtype=np.float32)
        reads = reader().read_run(tiles, mask_fn, out=buf)  # straight into the batch: no stacking copy
        keep, run, valid, fractions, skipped = [], [], [], {}, {}
        for k, (t, r) in enumerate(zip(tiles, reads, strict=True)):
            fractions[t] = r.valid_fraction
            if r.valid_fraction < min_valid or r.valid_fraction == 0:
                skipped[t] = "skipped_nodata" if mask_fn is None else "skipped_nodata_or_mask"
                continue
            keep.append(k)
            run.append(t)
            valid.append(r.valid)
        data = (buf if len(keep) == len(tiles) else buf[keep]) if keep else None
        if pin and data is not None:
            data = torch.from_numpy(data).pin_memory()
        return Batch(tiles, data, run, valid, fractions, skipped)

    starts = range(0, len(plan.tiles), batch_size)
    try:
        if workers <= 1:
            for i in starts:
                if stop.is_set():
                    return
                yield load(i)
            return
        submitted = itertools.takewhile(lambda _: not stop.is_set(), starts)
        decoded = ordered_map(load, submitted, workers, ahead=workers + 1, name="rs-scene-read")
        with closing(decoded) as batches:
            for batch in batches:
                if stop.is_set():
                    return
                yield batch
    finally:
        for r in readers:
            r.close()


def gdal_cache_bytes(ds: Any) -> int:
    """A GDAL block cache that holds two block rows of the raster plus a heatmap block row, so each block is
    decoded once, and no more: GDAL's default (5 % of RAM) lets the cache, and so the peak memory, grow with
    the raster's size."""
    bh = ds.block_shapes[0][0] if ds.block_shapes else 256
    item = max(np.dtype(t).itemsize for t in ds.dtypes)
    need = 2 * ds.width * max(bh, 256) * ds.count * item + ds.width * 256 * 4
    return int(min(max(need, 64 << 20), 1 << 30))


def reader_settings(batch_size: int, workers: int, device: torch.device) -> tuple[int, int, bool]:
    """Batch size, decode workers and pinned memory: on a GPU, large batches decoded by parallel workers
    into pinned host memory (so the copy overlaps compute); on the CPU the cores are the model's."""
    if device.type != "cuda":
        return batch_size, workers, False
    workers = workers if workers > 1 else min(GPU_READ_WORKERS, os.cpu_count() or 1)
    return max(batch_size, GPU_MIN_BATCH), workers, True
