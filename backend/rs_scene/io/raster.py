"""Reading rasters window by window with rasterio: metadata, band names, GSD and resampled tile reads."""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import rasterio
from rasterio.enums import ColorInterp, MaskFlags, Resampling
from rasterio.errors import NotGeoreferencedWarning, RasterioIOError
from rasterio.transform import Affine
from rasterio.windows import Window

from ..errors import RSSceneError
from .tiling import Tile

_COLOR_NAMES = {ColorInterp.red: "red", ColorInterp.green: "green", ColorInterp.blue: "blue"}


def gdal_virtual(path: str) -> bool:
    """A GDAL virtual file system path another process can open too: a raster in a zip (``/vsizip/``),
    online (``/vsicurl/``, ``/vsis3/``, ...); not ``/vsimem/``, which lives in one process's memory."""
    return path.startswith("/vsi") and not path.startswith("/vsimem/")


def open_raster(path: str | os.PathLike[str]) -> rasterio.io.DatasetReader:
    """Open a GDAL-readable raster (a file, or a :func:`gdal_virtual` path), or raise an error naming the
    file and the reason."""
    path = os.fspath(path)
    if not gdal_virtual(path) and not os.path.exists(path):
        raise RSSceneError(f"raster not found: {path}")
    if os.path.isdir(path):
        raise RSSceneError(f"{path} is a folder, not a raster file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            return rasterio.open(path)
    except RasterioIOError as exc:
        raise RSSceneError(f"{path} is not a readable raster (GDAL: {exc})") from exc


def band_names(ds: Any) -> list[str | None]:
    """Each band's name: its description when set, else its colour interpretation (red/green/blue).

    An 8-bit raster of 3 or 4 bands that names none of them is read in the aerial order red, green, blue
    (, near-infrared), as NAIP and most orthophoto products store them (``assumed_aerial_order``)."""
    names: list[str | None] = []
    for i, desc in enumerate(ds.descriptions):
        if desc:
            names.append(desc)
            continue
        ci = ds.colorinterp[i] if i < len(ds.colorinterp) else None
        names.append(_COLOR_NAMES.get(ci))
    if assumed_aerial_order(ds, names):
        return ["red", "green", "blue", "nir"][: ds.count]
    return names


def assumed_aerial_order(ds: Any, names: list[str | None] | None = None) -> bool:
    if names is None:
        names = [d or _COLOR_NAMES.get(c) for d, c in zip(ds.descriptions, ds.colorinterp, strict=True)]
    return ds.count in (3, 4) and all(n is None for n in names) and set(ds.dtypes) == {"uint8"}


def gsd_metres_xy(ds: Any) -> tuple[float, float]:
    """A pixel's ground size in metres across (x) and down (y). A geographic CRS's degrees are converted at
    the raster's centre latitude on the WGS84 ellipsoid: a degree of longitude shrinks with the cosine of the
    latitude while one of latitude stays ~111 km, so a raster in EPSG:4326 at 52 deg N has pixels 0.62 times
    as wide as they are tall."""
    rx, ry = abs(ds.transform.a), abs(ds.transform.e)
    if ds.crs is not None and ds.crs.is_geographic:
        phi = math.radians((ds.bounds.top + ds.bounds.bottom) / 2)
        per_lat = 111_132.954 - 559.822 * math.cos(2 * phi) + 1.175 * math.cos(4 * phi)
        per_lon = 111_412.84 * math.cos(phi) - 93.5 * math.cos(3 * phi) + 0.118 * math.cos(5 * phi)
        return rx * per_lon, ry * per_lat
    if ds.crs is not None and ds.crs.linear_units_factor:
        f = ds.crs.linear_units_factor[1]
        return rx * f, ry * f
    return rx, ry


def gsd_metres(ds: Any) -> float:
    """Ground sampling distance in metres across the raster (x; see :func:`gsd_metres_xy`)."""
    return gsd_metres_xy(ds)[0]


def raster_info(ds: Any) -> dict[str, Any]:
    crs = ds.crs
    return {
        "path": ds.name, "driver": ds.driver, "width": ds.width, "height": ds.height, "count": ds.count,
        "dtypes": sorted(set(ds.dtypes)), "crs": crs.to_string() if crs else None,
        "epsg": crs.to_epsg() if crs else None, "gsd_m": round(gsd_metres(ds), 4) if crs else None,
        "gsd_y_m": round(gsd_metres_xy(ds)[1], 4) if crs else None,
        "nodata": ds.nodata, "bounds": list(ds.bounds), "band_names": band_names(ds),
        "scales": list(ds.scales), "offsets": list(ds.offsets),
        "band_names_assumed": assumed_aerial_order(ds),
        "transform": list(ds.transform)[:6],
    }


def default_divisor(dtype: str, card_value_scale: float, scaled: bool = False) -> float:
    """What raw values are divided by: 255 for 8-bit, the card's reflectance scale for 16-bit, 1 for float
    and for bands that declare a scale factor (their values are physical, reflectance 0-1, once scaled)."""
    if scaled or dtype.startswith("float"):
        return 1.0
    if dtype == "uint8":
        return 255.0
    return float(card_value_scale)


def band_scaling(ds: Any, bands: list[int]) -> tuple[list[float], list[float]] | None:
    """The scale and offset each of ``bands`` declares (GDAL band metadata: value = raw x scale + offset, as
    QGIS shows it), or None when none declares any. Sentinel-2 L2A of processing baseline 04.00 and later
    carries an offset of -1000 raw (-0.1 reflectance): ignoring it shifts every reflectance."""
    scales = [float(ds.scales[b - 1]) if ds.scales[b - 1] is not None else 1.0 for b in bands]
    offsets = [float(ds.offsets[b - 1]) if ds.offsets[b - 1] is not None else 0.0 for b in bands]
    for b, sc, off in zip(bands, scales, offsets, strict=True):
        if not (math.isfinite(sc) and math.isfinite(off)) or sc == 0:
            raise RSSceneError(f"{ds.name}: band {b} declares an unusable scale {sc} / offset {off}")
    if all(sc == 1 for sc in scales) and all(off == 0 for off in offsets):
        return None
    return scales, offsets


def bands_divisor(ds: Any, bands: list[int], card_value_scale: float) -> float:
    """:func:`default_divisor` of the raster's ``bands`` (their smallest type), after their scaling."""
    scaling = band_scaling(ds, bands)
    scaled = scaling is not None and any(sc != 1 for sc in scaling[0])
    return default_divisor(sorted({ds.dtypes[b - 1] for b in bands})[0], card_value_scale, scaled)


@dataclass
class TileRead:
    data: np.ndarray  # (C, S, S) float32, (raw x scale + offset) / divisor, invalid pixels set to the fill
    valid: np.ndarray  # (S, S) bool
    valid_fraction: float


class TileReader:
    """Reads tiles of one raster at a fixed output size: clipped to the raster, resampled on read, padded
    explicitly (padding counts as invalid), masked by nodata and optional polygons, and scaled: the bands'
    declared scale and offset (:func:`band_scaling`), then divided by ``divisor``."""

    def __init__(self, path: str, bands: list[int], out_size: int, divisor: float, fill: list[float],
                 extra_nodata: float | None = None) -> None:
        self.ds = open_raster(path)
        self.bands, self.size, self.divisor = bands, out_size, divisor
        self.extra_nodata = extra_nodata  # raw value of missing pixels (in all bands), besides the file's
        self.fill = np.asarray(fill, dtype=np.float32)[:, None, None]
        scaling = band_scaling(self.ds, bands)
        self.gain = self.bias = None  # per band, (C, 1, 1) float32, when the bands declare a scaling
        if scaling is not None:
            self.gain = (np.asarray(scaling[0], dtype=np.float64) / divisor).astype(np.float32)[:, None, None]
            self.bias = (np.asarray(scaling[1], dtype=np.float64) / divisor).astype(np.float32)[:, None, None]
        self.has_mask = self.ds.nodata is not None or any(
            "per_dataset" in str(flags) or "nodata" in str(flags) for flags in self.ds.mask_flag_enums)
        self.nodata = self._nodata_values()

    def _nodata_values(self) -> list[float] | None:
        """The read bands' nodata values when the dataset mask is nothing but them: rasterio then makes the
        mask valid wherever any band differs from its nodata value, which :meth:`_nodata_mask` computes from
        the pixels already read instead of GDAL reading every band a second time (as long again as the read
        itself). None when another mask (alpha, internal, per-dataset) exists or not all bands are read."""
        if sorted(self.bands) != list(range(1, self.ds.count + 1)):
            return None
        if any(list(flags) != [MaskFlags.nodata] for flags in self.ds.mask_flag_enums):
            return None
        values = self.ds.nodatavals
        return None if any(v is None for v in values) else [values[b - 1] for b in self.bands]

    def _extra_valid(self, win: Window, shape: tuple[int, int], native: np.ndarray | None) -> np.ndarray:
        """Where any band differs from ``extra_nodata``, on the pixels read at native size (``native``) or,
        for a resampled read, on a nearest-neighbour read of the window, as GDAL resamples its own masks."""
        raw = native if native is not None else self.ds.read(
            self.bands, window=win, out_shape=(len(self.bands), *shape), resampling=Resampling.nearest)
        return ~every_band_holds(raw, float(self.extra_nodata))

    def _nodata_mask(self, block: np.ndarray) -> np.ndarray:
        valid = np.zeros(block.shape[1:], dtype=bool)
        for band, value in zip(block, self.nodata or [], strict=True):
            valid |= ~np.isnan(band) if math.isnan(value) else band != _as_dtype(value, band.dtype)
        return valid

    def _scale_into(self, raw: np.ndarray, out: np.ndarray, where: Any = True) -> None:
        """``out[where] = (raw x scale + offset) / divisor``, in float32."""
        if self.gain is None:
            np.divide(raw, self.divisor, out=out, where=where, dtype=np.float32, casting="unsafe")
            return
        np.multiply(raw, self.gain, out=out, where=where, dtype=np.float32, casting="unsafe")
        np.add(out, self.bias, out=out, where=where)

    def close(self) -> None:
        self.ds.close()

    def tile_transform(self, tile: Tile) -> Affine:
        return self.ds.transform @ Affine.translation(tile.x, tile.y) @ Affine.scale(
            tile.w / self.size, tile.h / self.size)

    def read(self, tile: Tile, mask_fn: Any = None) -> TileRead:
        s = self.size
        data = np.zeros((len(self.bands), s, s), dtype=np.float32)
        valid = np.zeros((s, s), dtype=bool)
        cx, cy, cw, ch = tile.clipped(self.ds.width, self.ds.height)
        if cw and ch:
            fx, fy = s / tile.w, s / tile.h
            ox, oy = round((cx - tile.x) * fx), round((cy - tile.y) * fy)
            ow, oh = max(min(round(cw * fx), s - ox), 1), max(min(round(ch * fy), s - oy), 1)
            win = Window(cx, cy, cw, ch)
            resampling = Resampling.nearest if (ow, oh) == (cw, ch) else Resampling.bilinear
            block = self.ds.read(self.bands, window=win, out_shape=(len(self.bands), oh, ow),
                                 resampling=resampling).astype(np.float32)
            self._scale_into(block, data[:, oy : oy + oh, ox : ox + ow])
            if self.has_mask:
                m = self.ds.dataset_mask(window=win, out_shape=(oh, ow), resampling=Resampling.nearest) > 0
            else:
                m = np.ones((oh, ow), dtype=bool)
            m &= np.isfinite(block).all(axis=0)
            if self.extra_nodata is not None:
                m &= self._extra_valid(win, (oh, ow), block if (ow, oh) == (cw, ch) else None)
            valid[oy : oy + oh, ox : ox + ow] = m
        if mask_fn is not None:
            valid &= mask_fn(tile, self.tile_transform(tile), s)
        data = np.where(valid[None], data, self.fill)
        return TileRead(data, valid, float(valid.mean()))

    def read_run(self, tiles: list[Tile], mask_fn: Any = None,
                 out: np.ndarray | None = None) -> list[TileRead]:
        """Read tiles with one GDAL call per run of same-row neighbours instead of two per tile; with ``out``
        (tiles, bands, size, size float32) the tiles are written into it, each read's data a view of its row.

        GDAL's resampled read takes pixels beyond the window into account, so cutting a run's read into
        tiles gives exactly what :meth:`read` gives tile by tile whenever every tile edge falls on a whole
        output pixel (checked; other tiles are read one by one)."""
        reads: list[TileRead] = []
        i = 0
        while i < len(tiles):
            j = i + 1
            while j < len(tiles) and self._joins(tiles[j - 1], tiles[j]):
                j += 1
            run, dst = tiles[i:j], (out[i:j] if out is not None else None)
            if len(run) > 1:
                reads.extend(self._read_joined(run, mask_fn, dst))
            else:
                r = self.read(run[0], mask_fn)
                if dst is not None:
                    dst[0] = r.data
                    r = TileRead(dst[0], r.valid, r.valid_fraction)
                reads.append(r)
            i = j
        return reads

    def _joins(self, a: Tile, b: Tile) -> bool:
        if (a.y, a.h, a.w) != (b.y, b.h, b.w) or b.x <= a.x or a.w != a.h:
            return False
        f = self.size / a.w
        cx, _, cw, ch = b.clipped(self.ds.width, self.ds.height)
        return (cw > 0 and ch > 0 and _whole((b.x - a.x) * f) and _whole(f * cw) and _whole(f * (cx - b.x))
                and _whole(f * ch) and b.x - a.x <= a.w)

    def _read_joined(self, run: list[Tile], mask_fn: Any, out: np.ndarray | None = None) -> list[TileRead]:
        s, f, first = self.size, self.size / run[0].w, run[0]
        x0, y0, _, ch = first.clipped(self.ds.width, self.ds.height)
        x1 = max(t.clipped(self.ds.width, self.ds.height)[0] + t.clipped(self.ds.width, self.ds.height)[2]
                 for t in run)
        oy = round((y0 - first.y) * f)
        oh, ow = max(min(round(ch * f), s - oy), 1), round((x1 - x0) * f)
        win = Window(x0, y0, x1 - x0, ch)
        resampling = Resampling.nearest if f == 1 else Resampling.bilinear
        block = self.ds.read(self.bands, window=win, out_shape=(len(self.bands), oh, ow),
                             resampling=resampling)
        if self.has_mask and self.nodata is not None and f == 1:
            mask = self._nodata_mask(block)
        elif self.has_mask:
            mask = self.ds.dataset_mask(window=win, out_shape=(oh, ow), resampling=Resampling.nearest) > 0
        else:
            mask = np.ones((oh, ow), dtype=bool)
        if block.dtype.kind == "f":
            mask &= np.isfinite(block).all(axis=0)
        if self.extra_nodata is not None:
            mask &= self._extra_valid(win, (oh, ow), block if f == 1 else None)
        reads = []
        for k, t in enumerate(run):
            data = out[k] if out is not None else np.empty((len(self.bands), s, s), dtype=np.float32)
            valid = np.zeros((s, s), dtype=bool)
            a = round((t.x - x0) * f)
            ox = max(-a, 0)  # only the first tile of a run can start left of the raster
            b = min(a + s, ow)
            sub, m = block[:, :, max(a, 0) : b], mask[:, max(a, 0) : b]
            w = sub.shape[-1]
            valid[oy : oy + oh, ox : ox + w] = m
            cell = data[:, oy : oy + oh, ox : ox + w]
            if (oh, w) == (s, s) and m.all():  # the common case: no fill, no masked (slow) divide
                self._scale_into(sub, cell)
            else:
                data[:] = self.fill
                self._scale_into(sub, cell, where=m[None])
            if mask_fn is not None:
                extra = mask_fn(t, self.tile_transform(t), s)
                np.copyto(data, np.broadcast_to(self.fill, data.shape), where=(valid & ~extra)[None])
                valid &= extra
            reads.append(TileRead(data, valid, float(valid.mean())))
        return reads


def every_band_holds(raw: np.ndarray, value: float) -> np.ndarray:
    """``(H, W)``: where every band of ``raw`` ``(C, H, W)`` holds ``value`` (NaN matching NaN), as a nodata
    value the user gives marks a missing pixel."""
    if math.isnan(value):
        return np.isnan(raw).all(axis=0)
    return (raw == _as_dtype(value, raw.dtype)).all(axis=0)


def _as_dtype(value: float, dtype: np.dtype) -> Any:
    """``value`` as an integer ``dtype`` scalar when the type holds it, so comparing a band with it does not
    convert every pixel to float64 first (a value the type cannot hold never matches, either way)."""
    if dtype.kind in "iu" and float(value).is_integer():
        info = np.iinfo(dtype)
        if info.min <= value <= info.max:
            return dtype.type(int(value))
    return value


def _whole(v: float) -> bool:
    return abs(v - round(v)) < 1e-9
