"""Raster + labelled polygons: scene tiles for training from any GDAL raster and any OGR vector layer.

Polygons (any OGR format: GeoPackage, Shapefile, GeoJSON, ...) carry their class in ``class_field``; they are
reprojected to the raster's CRS and burnt into a label grid over their bounding box (one byte per pixel of
that box). The tiles are those classify cuts: the same band mapping, input scale, declared scale and offset,
extra nodata value and GSD go through :func:`rs_scene.engine.plan.make_plan` and the same tile reader, on the
grid anchored at the raster's corner. A tile becomes a sample of class ``c`` when ``c``'s polygons cover at
least ``min_overlap`` of it. The split (:mod:`.splits`) is spatially blocked and stratified: square blocks of
``block`` x ``block`` tiles go wholly to training, validation or the held-out part, every class in each; when
tiles overlap (stride < tile), a tile that touches a later part's pixels is dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fiona
import numpy as np
import rasterio.features
import rasterio.warp
import torch
from rasterio.windows import Window, from_bounds
from rasterio.windows import transform as window_transform

from ..bands import canonical_band, parse_band_option, resolve_bands
from ..card import ModelCard, make_classes
from ..engine.plan import TilePlan, make_plan, scale_warning
from ..errors import RSSceneError
from ..io.raster import TileReader, band_names, open_raster
from ..io.tiling import Tile, tile_grid
from .datasets import SceneData
from .splits import blocked_split

POLYGON_TYPES = {"Polygon", "MultiPolygon"}


@dataclass
class PolygonSampling:
    tile_size: int = 64  # tile edge in raster pixels
    stride: int | None = None  # grid step in raster pixels (None = tile_size)
    min_overlap: float = 0.5  # share of a tile one class's polygons must cover
    min_valid: float = 0.5  # share of a tile that must hold valid (not nodata) pixels
    block: int = 4  # edge of a spatial block, in tiles
    val_fraction: float = 0.2  # share of tiles in validation blocks
    test_fraction: float = 0.2  # share of tiles in held-out blocks (when every class lies in 3+ blocks)
    seed: int = 0


@dataclass
class InputOptions:
    """How the raster's values become the model's: the options classify takes, with the same meaning."""

    bands: str | None = None  # classify's --bands: B02,B03,... (names in order), B02=1,... or 3,2,1
    input_scale: float | None = None  # divide raw values by this (default: by dtype and declared scaling)
    nodata: float | None = None  # raw value of missing pixels (in every band), besides the raster's own
    gsd: float | str | None = None  # metres per pixel to cut tiles at; None / 'native': the raster's own


def read_labelled_polygons(path: str, class_field: str, crs: Any) -> tuple[list[dict[str, Any]], list[str]]:
    """Polygons reprojected to ``crs`` and their class values (as text); features without one are skipped."""
    if not Path(path).exists():
        raise RSSceneError(f"labels file not found: {path}")
    try:
        with fiona.open(path) as src:
            fields = list(src.schema["properties"])
            if class_field not in fields:
                raise RSSceneError(
                    f"labels {path} have no field '{class_field}'; fields: {', '.join(fields)}"
                )
            src_crs = src.crs_wkt or None
            feats = [(dict(f.geometry), f.properties[class_field]) for f in src if f.geometry is not None]
    except fiona.errors.FionaError as exc:
        raise RSSceneError(f"labels {path} are not a readable vector file ({exc})") from exc
    feats = [(g, v) for g, v in feats if v is not None and str(v).strip() != ""]
    if not feats:
        raise RSSceneError(f"labels {path}: no polygon has a value in field '{class_field}'")
    bad = sorted({g["type"] for g, _ in feats} - POLYGON_TYPES)
    if bad:
        raise RSSceneError(f"labels {path}: geometries of type {', '.join(bad)}; polygons are needed")
    geoms = [rasterio.warp.transform_geom(src_crs, crs, g) if src_crs else g for g, _ in feats]
    return geoms, [str(v).strip() for _, v in feats]


def _label_window(ds: Any, geoms: list[dict[str, Any]], path: str) -> Window:
    bounds = np.array([rasterio.features.bounds(g) for g in geoms])
    xmin, ymin = bounds[:, 0].min(), bounds[:, 1].min()
    xmax, ymax = bounds[:, 2].max(), bounds[:, 3].max()
    rb = ds.bounds
    if xmax <= rb.left or xmin >= rb.right or ymax <= rb.bottom or ymin >= rb.top:
        raise RSSceneError(
            f"none of the {len(geoms)} polygons of {path} overlaps raster {ds.name} (raster bounds "
            f"{tuple(round(v, 2) for v in rb)}, polygons {(xmin, ymin, xmax, ymax)} in its CRS)"
        )
    win = from_bounds(xmin, ymin, xmax, ymax, ds.transform).round_offsets().round_lengths()
    return win.intersection(Window(0, 0, ds.width, ds.height))


def training_bands(ds: Any, option: str | None) -> list[str]:
    """The new model's band names: the raster's own (``band1``, ... where unnamed), or those ``option`` names
    in classify's forms (names in order, ``name=index``, or raster band numbers)."""
    own = [canonical_band(n) if n else f"band{i + 1}" for i, n in enumerate(band_names(ds))]
    if not option:
        return own
    parsed = parse_band_option(option, ds.count)
    if isinstance(parsed, list):
        names = parsed
    elif all(k.startswith("#") for k in parsed):
        names = [own[i - 1] for i in parsed.values()]
    else:
        names = list(parsed)
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise RSSceneError(f"--bands names band(s) {', '.join(twice)} more than once")
    return names


def reference_means(bands: list[str]) -> tuple[list[float], str]:
    """Per band, the mean a shipped model was trained on (0 where none has the band), to check the input scale
    of a new model's data as classify checks a raster against its model's training means."""
    from ..card import read_card
    from ..zoo import SHIPPED_DIR

    found: dict[str, float] = {}
    names: list[str] = []
    for path in sorted(SHIPPED_DIR.glob("*.pt")):
        card = read_card(path)
        hits = [b for b in card.bands if b in bands and b not in found]
        found.update({b: m for b, m in zip(card.bands, card.mean, strict=True) if b in hits})
        names += [card.name] if hits else []
    return [found.get(b, 0.0) for b in bands], " and ".join(names) or "none"


def polygon_plan(ds: Any, geoms: list[dict[str, Any]], classes: list[str], s: PolygonSampling,
                 opts: InputOptions, path: str = "labels") -> tuple[TilePlan, ModelCard]:
    """The classify plan of the new model's tiles over the polygons (the grid anchored at the raster's corner,
    as classify cuts it), and the card it stands for (bands, tile size, GSD; means of the shipped models)."""
    names = training_bands(ds, opts.bands)
    resolve_bands(names, band_names(ds), opts.bands or ",".join(names), source=ds.name)  # names, not indices
    means, ref = reference_means(names)
    card = ModelCard(name=f"{ref} (the shipped model(s) for these bands)", classes=make_classes(classes),
                     bands=names, value_scale=10000.0, mean=means, std=[1.0] * len(names),
                     tile_size=s.tile_size, stride=s.stride, gsd=1.0)
    win = _label_window(ds, geoms, path)
    (x0, y0), (x1, y1) = ds.transform @ (win.col_off, win.row_off + win.height), \
        ds.transform @ (win.col_off + win.width, win.row_off)
    gsd = "native" if opts.gsd in (None, "native") else float(opts.gsd)
    try:
        plan = make_plan(ds, card, bands=opts.bands or ",".join(names), tile_size=s.tile_size,
                         stride=s.stride, gsd=gsd, input_scale=opts.input_scale, nodata=opts.nodata,
                         extent=(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)), edge="pad")
    except RSSceneError as exc:
        if "larger than the" not in str(exc):
            raise
        raise RSSceneError(f"the polygons of {path} span {int(win.width)} x {int(win.height)} raster px, "
                           f"less than one {s.tile_size}-px tile ({exc})") from exc
    card.gsd = plan.target_gsd
    sx, sy = plan.stride_src, plan.stride_src_y
    ax, ay = int(win.col_off) // sx * sx, int(win.row_off) // sy * sy
    w, h = int(win.col_off + win.width) - ax, int(win.row_off + win.height) - ay
    tiles = tile_grid(max(w, plan.tile_src), max(h, plan.tile_src_y), (plan.tile_src, plan.tile_src_y),
                      (sx, sy), "pad", ax, ay)
    plan.tiles = [t for t in tiles if t.x + t.w <= ds.width and t.y + t.h <= ds.height]
    plan.area = (ax, ay, w, h)
    return plan, card


def sample_tiles(
    ds: Any,
    geoms: list[dict[str, Any]],
    values: list[str],
    classes: list[str],
    s: PolygonSampling,
    path: str = "labels",
    plan: TilePlan | None = None,
) -> list[tuple[Tile, int]]:
    """Tiles of the plan's grid, each with the class that covers ``min_overlap`` of it. Tiles are
    ``tile_size`` pixels wide and square on the ground, as classify cuts them."""
    plan = plan or polygon_plan(ds, geoms, classes, s, InputOptions(), path)[0]
    if not plan.tiles:
        raise RSSceneError(f"the polygons of {path} lie where no whole {s.tile_size}-px tile fits the raster")
    x0 = min(t.x for t in plan.tiles)
    y0 = min(t.y for t in plan.tiles)
    w, h = max(t.x + t.w for t in plan.tiles) - x0, max(t.y + t.h for t in plan.tiles) - y0
    index = {c: i + 1 for i, c in enumerate(classes)}
    label = rasterio.features.rasterize(
        [(g, index[v]) for g, v in zip(geoms, values, strict=True)],
        out_shape=(h, w),
        transform=window_transform(Window(x0, y0, w, h), ds.transform),
        fill=0,
        dtype="uint16",
    )
    out = []
    for t in plan.tiles:
        patch = label[t.y - y0 : t.y - y0 + t.h, t.x - x0 : t.x - x0 + t.w]
        share = np.bincount(patch.ravel(), minlength=len(classes) + 1)[1:] / patch.size
        best = int(share.argmax())
        if share[best] >= s.min_overlap:
            out.append((t, best))
    return out


def block_of(t: Tile, plan_stride: tuple[int, int], block: int) -> tuple[int, int]:
    """The spatial block of a tile: ``block`` x ``block`` grid steps, counted from the raster's corner."""
    return t.y // (plan_stride[1] * block), t.x // (plan_stride[0] * block)


def spatial_split(samples: list[tuple[Tile, int]], s: PolygonSampling, classes: list[str],
                  stride: tuple[int, int] | None = None) -> tuple[list[str], str]:
    """'train' / 'val' / 'test' / 'dropped' per sample (:func:`.splits.blocked_split` over spatial blocks),
    and what was done; a training (or validation) tile that shares pixels with a tile of a later part is
    dropped. Raises :class:`RSSceneError` naming a class left without training or validation tiles."""
    if s.val_fraction <= 0:
        return ["train"] * len(samples), "no validation part asked for"
    stride = stride or (s.stride or s.tile_size, s.stride or s.tile_size)
    blocks = [block_of(t, stride, s.block) for t, _ in samples]
    split, note = blocked_split(blocks, [c for _, c in samples], classes, s.val_fraction, s.test_fraction,
                                s.seed)
    xy = np.array([(t.x, t.y, t.x + t.w, t.y + t.h) for t, _ in samples]).reshape(-1, 4)
    for part, later in (("train", ("val", "test")), ("val", ("test",))):
        other = xy[[sp in later for sp in split]]
        for i, sp in enumerate(split):
            if sp == part and len(other) and (
                    (xy[i, 0] < other[:, 2]) & (other[:, 0] < xy[i, 2])
                    & (xy[i, 1] < other[:, 3]) & (other[:, 1] < xy[i, 3])).any():
                split[i] = "dropped"
    for part, name in (("train", "training"), ("val", "validation")):
        have = {y for (_, y), sp in zip(samples, split, strict=True) if sp == part}
        missing = [c for i, c in enumerate(classes) if i not in have]
        if missing:
            raise RSSceneError(f"class(es) {', '.join(missing)} have no {name} tile left once tiles sharing "
                               "pixels with another part are dropped; use a stride equal to the tile size")
    return split, note


def _read_tiles(raster: str, plan: TilePlan, samples: list[tuple[Tile, int]], s: PolygonSampling
                ) -> tuple[list[tuple[Tile, int]], np.ndarray]:
    """The samples with enough valid pixels, and their tiles read as classify reads them; missing pixels
    are set to the bands' mean, as classify sets them to the model's."""
    reader = TileReader(raster, plan.bands, s.tile_size, plan.divisor, [0.0] * len(plan.bands), plan.nodata)
    try:
        reads = [reader.read(t) for t, _ in samples]
    finally:
        reader.close()
    keep = [i for i, r in enumerate(reads) if r.valid_fraction >= s.min_valid]
    if not keep:
        return [], np.zeros((0, len(plan.bands), s.tile_size, s.tile_size), dtype=np.float32)
    x = np.stack([reads[i].data for i in keep])
    valid = np.stack([reads[i].valid for i in keep])[:, None]
    mean = (x * valid).sum(axis=(0, 2, 3)) / np.maximum(valid.sum(axis=(0, 2, 3)), 1)
    x = np.where(valid, x, mean[None, :, None, None].astype(np.float32))
    return [samples[i] for i in keep], x


def card_value_scale(plan: TilePlan) -> float:
    """What the card records as the raw value of 1.0: the divisor, or where the bands declare a scale
    factor, the divisor over it (a raster scaled 1e-4 reads as one stored x10000)."""
    if plan.scaling is None or len(set(plan.scaling[0])) != 1 or plan.scaling[0][0] == 1:
        return float(plan.divisor)
    return float(plan.divisor / plan.scaling[0][0])


def load_polygons(
    raster: str,
    labels: str,
    class_field: str,
    sampling: PolygonSampling | None = None,
    options: InputOptions | None = None,
) -> SceneData:
    """Tiles of ``raster`` labelled by the polygons of ``labels``, read as classify reads them, split into
    spatially blocked train / val (/ test) parts. ``data.meta`` holds the input settings used and the
    range warning (the one classify gives) when the values look scaled wrongly."""
    s, opts = sampling or PolygonSampling(), options or InputOptions()
    if not 0 < s.min_overlap <= 1:
        raise RSSceneError(f"min_overlap must be in (0, 1], not {s.min_overlap}")
    with open_raster(raster) as ds:
        if ds.crs is None:
            raise RSSceneError(f"{raster} has no CRS: the polygons cannot be placed on it")
        geoms, values = read_labelled_polygons(labels, class_field, ds.crs)
        classes = sorted(set(values))
        if len(classes) < 2:
            raise RSSceneError(
                f"labels {labels}: field '{class_field}' has one class ({classes[0]}); "
                "training needs at least two"
            )
        plan, ref = polygon_plan(ds, geoms, classes, s, opts, labels)
        samples = sample_tiles(ds, geoms, values, classes, s, labels, plan)
        warning = scale_warning(ds, plan, ref)
    samples, x_all = _read_tiles(raster, plan, samples, s)
    found = {c for _, c in samples}
    empty = [c for i, c in enumerate(classes) if i not in found]
    if empty:
        raise RSSceneError(
            f"class(es) {', '.join(empty)} of {labels} got no tile: no {s.tile_size}-px tile is "
            f"covered to {s.min_overlap:.0%} by their polygons; lower the tile size or min overlap"
        )
    split, note = spatial_split(samples, s, classes, (plan.stride_src, plan.stride_src_y))
    keep = [i for i, sp in enumerate(split) if sp != "dropped"]
    meta = {"input": {"bands": ref.bands, "raster_bands": plan.bands, "band_option": opts.bands,
                      "divisor": plan.divisor, "input_scale": opts.input_scale, "nodata": opts.nodata,
                      "declared_scaling": plan.scaling, "gsd": plan.target_gsd,
                      "tile_src": [plan.tile_src, plan.tile_src_y]},
            "split_note": note, "block": s.block,
            "warnings": [f"Before training, the input scale looks wrong: {warning}"] if warning else []}
    files = [f"tile_x{samples[i][0].x}_y{samples[i][0].y}" for i in keep]
    return SceneData(
        torch.from_numpy(x_all[keep]), torch.tensor([samples[i][1] for i in keep]), classes, ref.bands, files,
        card_value_scale(plan), plan.target_gsd, kind="polygons", split=[split[i] for i in keep], meta=meta,
    )
