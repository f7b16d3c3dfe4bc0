"""From a raster, a model card and the user's options to a tile plan: bands, scaling, GSD and the grid."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import fiona
import numpy as np
import rasterio.features
import rasterio.warp
from rasterio.transform import Affine
from rasterio.windows import Window, from_bounds

from ..bands import resolve_bands
from ..card import ModelCard
from ..errors import RSSceneError
from ..io.raster import band_names, band_scaling, bands_divisor, every_band_holds, gsd_metres_xy
from ..io.tiling import Tile, tile_grid

MIN_TILE_SRC = 4  # a tile narrower than this many raster pixels carries no scene


@dataclass
class TilePlan:
    bands: list[int]
    divisor: float  # after the bands' declared scale and offset (``scaling``), when they declare one
    raster_gsd: float  # metres, across the raster (x)
    target_gsd: float
    tile_src: int  # tile width in raster pixels
    stride_src: int
    area: tuple[int, int, int, int]  # x0, y0, w, h in raster pixels
    tiles: list[Tile]
    mask: list[dict[str, Any]] = field(default_factory=list)  # GeoJSON geometries in the raster CRS
    mask_bounds: list[tuple[float, float, float, float]] = field(default_factory=list)
    scaling: tuple[list[float], list[float]] | None = None  # the bands' declared (scales, offsets)
    # down the raster, where pixels are not square on the ground (else as across: raster_gsd, tile_src, ...)
    raster_gsd_y: float = 0.0
    tile_src_y: int = 0
    stride_src_y: int = 0
    nodata: float | None = None  # the user's raw value for missing pixels, besides the raster's own

    def __post_init__(self) -> None:
        self.raster_gsd_y = self.raster_gsd_y or self.raster_gsd
        self.tile_src_y = self.tile_src_y or self.tile_src
        self.stride_src_y = self.stride_src_y or self.stride_src


def _area(ds: Any, extent: tuple[float, float, float, float] | None) -> tuple[int, int, int, int]:
    if extent is None:
        return 0, 0, ds.width, ds.height
    xmin, ymin, xmax, ymax = extent
    if xmin >= xmax or ymin >= ymax:
        raise RSSceneError(f"extent {extent} is empty (give xmin,ymin,xmax,ymax)")
    win = from_bounds(xmin, ymin, xmax, ymax, ds.transform)
    x0, y0 = max(int(math.floor(win.col_off)), 0), max(int(math.floor(win.row_off)), 0)
    x1 = min(int(math.ceil(win.col_off + win.width)), ds.width)
    y1 = min(int(math.ceil(win.row_off + win.height)), ds.height)
    if x1 <= x0 or y1 <= y0:
        raise RSSceneError(f"extent {extent} does not overlap the raster (bounds {tuple(ds.bounds)})")
    return x0, y0, x1 - x0, y1 - y0


def read_mask(path: str, crs: Any) -> list[dict[str, Any]]:
    try:
        with fiona.open(path) as src:
            src_crs = src.crs_wkt
            geoms = [dict(f.geometry) for f in src if f.geometry is not None]
    except fiona.errors.DriverError as exc:
        raise RSSceneError(f"mask {path} is not a readable vector file ({exc})") from exc
    if not geoms:
        raise RSSceneError(f"mask {path} has no geometries")
    if src_crs:
        geoms = [rasterio.warp.transform_geom(src_crs, crs, g) for g in geoms]
    return geoms


def make_plan(ds: Any, card: ModelCard, *, bands: str | None = None, tile_size: int | None = None,
              stride: int | None = None, gsd: float | str | None = None, extent: Any = None,
              mask: str | None = None, input_scale: float | None = None, edge: str = "shift",
              nodata: float | None = None) -> TilePlan:
    if ds.crs is None:
        raise RSSceneError(f"{ds.name} has no CRS: a georeferenced raster is needed to place the tile grid")
    band_idx = resolve_bands(card.bands, band_names(ds), bands, source=ds.name)
    scaling = band_scaling(ds, band_idx)
    divisor = float(input_scale) if input_scale else bands_divisor(ds, band_idx, card.value_scale)
    gx, gy = gsd_metres_xy(ds)
    target_gsd = min(gx, gy) if gsd == "native" else float(gsd or card.gsd)
    tile = tile_size or card.tile_size
    step = stride or card.stride or tile
    # tiles square on the ground, as the model was trained: pixels that are not (a geographic CRS away from
    # the equator) get tiles of as many more pixels along their shorter side
    fx, fy = target_gsd / gx, target_gsd / gy
    tile_x, tile_y = max(round(tile * fx), 1), max(round(tile * fy), 1)
    stride_x, stride_y = max(round(step * fx), 1), max(round(step * fy), 1)
    if min(tile_x, tile_y) < MIN_TILE_SRC:
        coarse = max(gx, gy)
        raise RSSceneError(
            f"{ds.name}: the raster's {coarse:.2f} m pixels are much coarser than the model's "
            f"{target_gsd:.2f} m; a {tile}-px model tile would cover {tile * target_gsd / coarse:.2f} raster "
            "pixels. Pass --gsd native to classify at the raster's own resolution")
    area = _area(ds, extent)
    if tile_x > area[2] or tile_y > area[3]:
        size = f"{tile_x}" if tile_x == tile_y else f"{tile_x} x {tile_y}"
        raise RSSceneError(
            f"tile of {size} raster px ({tile} px at {target_gsd:g} m) is larger than the "
            f"{'extent' if extent else 'raster'} ({area[2]} x {area[3]} px); use a smaller --tile-size")
    try:
        tiles = tile_grid(area[2], area[3], (tile_x, tile_y), (stride_x, stride_y), edge, area[0], area[1])
    except ValueError as exc:
        raise RSSceneError(str(exc)) from exc
    plan = TilePlan(band_idx, divisor, gx, target_gsd, tile_x, stride_x, area, tiles, scaling=scaling,
                    raster_gsd_y=gy, tile_src_y=tile_y, stride_src_y=stride_y, nodata=nodata)
    if mask:
        plan.mask = read_mask(mask, ds.crs)
        plan.mask_bounds = [rasterio.features.bounds(g) for g in plan.mask]
    return plan


def tile_bounds(ds: Any, tile: Tile, transform: Affine | None = None) -> tuple[float, float, float, float]:
    """Map bounds of the tile's part inside the raster; pass ``ds.transform`` when calling for many tiles
    (rasterio builds it anew on every access)."""
    transform = transform or ds.transform
    x, y, w, h = tile.clipped(ds.width, ds.height)
    xa, ya = transform @ (x, y)
    xb, yb = transform @ (x + w, y + h)
    return min(xa, xb), min(ya, yb), max(xa, xb), max(ya, yb)


def mask_function(plan: TilePlan, ds: Any) -> Any:
    """``f(tile, transform, size) -> bool mask`` of the polygons, or None when there is no mask."""
    if not plan.mask:
        return None

    def fn(tile: Tile, transform: Any, size: int) -> np.ndarray:
        b = tile_bounds(ds, tile)
        hits = [g for g, gb in zip(plan.mask, plan.mask_bounds, strict=True)
                if gb[0] < b[2] and gb[2] > b[0] and gb[1] < b[3] and gb[3] > b[1]]
        if not hits:
            return np.zeros((size, size), dtype=bool)
        return rasterio.features.geometry_mask(hits, (size, size), transform, invert=True)

    return fn


def tile_polygon(ds: Any, tile: Tile, transform: Affine | None = None) -> list[list[tuple[float, float]]]:
    x0, y0, x1, y1 = tile_bounds(ds, tile, transform)
    return [[(x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0)]]


RANGE_WARN = 4.0  # warn when the scaled values average this many times more (or less) than training's
UPSAMPLE_WARN = 4.0  # warn when a tile's raster pixels are enlarged more than this to the model's tile


def input_warnings(ds: Any, plan: TilePlan, card: ModelCard, tile_size: int | None = None) -> list[str]:
    """What a run of ``plan`` should tell the user although it goes through (:func:`scale_warning`,
    :func:`resolution_warning`)."""
    return [w for w in (scale_warning(ds, plan, card), resolution_warning(ds, plan, card, tile_size)) if w]


def resolution_warning(ds: Any, plan: TilePlan, card: ModelCard, tile_size: int | None = None) -> str | None:
    """A warning when the raster is much coarser than the resolution the tiles are cut at: each model tile
    is then made of a few raster pixels blown up (a 5-m NAIP tile for a 0.3-m aerial model: 15 pixels for
    256), which the model never saw in training."""
    tile, few = tile_size or card.tile_size, min(plan.tile_src, plan.tile_src_y)
    factor = tile / few
    if factor <= UPSAMPLE_WARN:
        return None
    coarse, target = max(plan.raster_gsd, plan.raster_gsd_y), plan.target_gsd
    return (f"{ds.name}: its {coarse:.3g} m pixels are {factor:.0f} times coarser than the {target:g} m "
            f"the tiles are cut at, so each {tile}-px tile is {few} raster pixels enlarged and the "
            f"predictions are unreliable. Use a model trained at about {coarse:.3g} m, or --gsd native "
            "to show this one the pixels as they are.")


def scale_warning(ds: Any, plan: TilePlan, card: ModelCard) -> str | None:
    """A warning when the raster's values, as the plan scales them, average far from the values the model was
    trained on (``card.mean``): the usual cause is a raster scaled x1000 read as x10000, or a 16-bit image
    given to an 8-bit model, and it makes every prediction wrong without any error. Reads five 256-px windows
    of the area (centre and quarters), so it costs milliseconds on any raster."""
    x0, y0, w, h = plan.area
    sw, sh = min(256, w), min(256, h)
    parts: list[list[np.ndarray]] = [[] for _ in plan.bands]
    for fx, fy in ((0.5, 0.5), (0.25, 0.25), (0.75, 0.25), (0.25, 0.75), (0.75, 0.75)):
        win = Window(x0 + int(fx * (w - sw)), y0 + int(fy * (h - sh)), sw, sh)
        block = ds.read(plan.bands, window=win, masked=True)
        if plan.nodata is not None:
            missing = every_band_holds(block.data, plan.nodata)
            block = np.ma.masked_array(block.data, mask=np.ma.getmaskarray(block) | missing[None])
        for i in range(len(plan.bands)):
            parts[i].append(block[i].compressed())
    scales, offsets = plan.scaling or ([1.0] * len(plan.bands), [0.0] * len(plan.bands))
    means = []
    for vals, sc, off in zip(parts, scales, offsets, strict=True):
        v = np.concatenate(vals).astype(np.float64)
        v = v[np.isfinite(v)]
        if v.size == 0:
            return None  # no valid pixel in the sample: nothing to compare
        means.append((v.mean() * sc + off) / plan.divisor)
    trained = np.asarray(card.mean, dtype=np.float64)
    usable = np.flatnonzero(trained > 1e-3)  # a ratio says something only against a positive training mean
    if len(usable) * 2 < len(trained):
        return None  # e.g. SAR in dB, or a model trained on standardised values
    ratios = np.asarray(means)[usable] / trained[usable]
    r = float(np.median(ratios))
    if 1 / RANGE_WARN <= r <= RANGE_WARN:
        return None
    i = int(usable[np.argsort(ratios)[len(ratios) // 2]])
    suggest = plan.divisor * 10 ** round(math.log10(r)) if r > 0 else None
    return (f"{ds.name}: divided by {plan.divisor:g}, the bands' values average {r:.2g} times what model "
            f"{card.name} was trained on (band {card.bands[i]}: {means[i]:.3g} against {card.mean[i]:.3g}), "
            "so its predictions are likely wrong. If the raster is scaled differently, set the input scale "
            f"(--input-scale{f', e.g. {suggest:g}' if suggest else ''}).")
