"""Pixels sent by value (a layer QGIS reads through its provider: WMS, XYZ, memory) -> a temporary GeoTIFF."""

from __future__ import annotations

import base64
import binascii
import math
from pathlib import Path
from typing import Any

import numpy as np

from .requests import RequestError

_DTYPES = ("uint8", "uint16", "int16", "uint32", "int32", "float32", "float64")


def _need(pix: dict[str, Any], key: str, types: tuple[type, ...]) -> Any:
    if key not in pix:
        raise RequestError(f"pixels: field '{key}' is required")
    value = pix[key]
    if not isinstance(value, types) or isinstance(value, bool):
        raise RequestError(f"pixels: field '{key}' has the wrong type ({type(value).__name__})")
    return value


def decode_pixels(pix: dict[str, Any]) -> tuple[np.ndarray, dict[str, Any]]:
    """``(count, height, width)`` array and rasterio profile pieces, checked against each other."""
    width, height, count = (_need(pix, k, (int,)) for k in ("width", "height", "count"))
    if min(width, height, count) < 1:
        raise RequestError(f"pixels: width, height and count must be positive, not {width}x{height}x{count}")
    dtype = _need(pix, "dtype", (str,))
    if dtype not in _DTYPES:
        raise RequestError(f"pixels: dtype '{dtype}' is not one of {', '.join(_DTYPES)}")
    transform = _need(pix, "transform", (list,))
    if len(transform) != 6 or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                      and math.isfinite(v) for v in transform):
        raise RequestError("pixels: 'transform' must be six finite numbers (GDAL geotransform order)")
    if transform[1] == 0 or transform[5] == 0:
        raise RequestError("pixels: 'transform' has a zero pixel size")
    try:
        raw = base64.b64decode(_need(pix, "data_b64", (str,)), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise RequestError(f"pixels: 'data_b64' is not valid base64: {exc}") from exc
    expected = width * height * count * np.dtype(dtype).itemsize
    if len(raw) != expected:
        raise RequestError(
            f"pixels: data has {len(raw)} bytes; {count} band(s) of {width}x{height} {dtype} need {expected}"
        )
    names = pix.get("band_names") or []
    if names and (not isinstance(names, list) or len(names) != count):
        raise RequestError(f"pixels: 'band_names' must list {count} names, one per band")
    data = np.frombuffer(raw, dtype=np.dtype(dtype).newbyteorder("<")).reshape(count, height, width)
    meta = {
        "crs_wkt": pix.get("crs_wkt") or None,
        "transform": transform,
        "nodata": pix.get("nodata"),
        "band_names": [str(n) for n in names],
    }
    return data, meta


def write_pixels(data: np.ndarray, meta: dict[str, Any], path: Path) -> Path:
    """Write decoded pixels as a GeoTIFF whose band descriptions carry the layer's band names."""
    import rasterio
    from affine import Affine
    from rasterio.crs import CRS

    crs = None
    if meta["crs_wkt"]:
        try:
            crs = CRS.from_wkt(meta["crs_wkt"])
        except Exception as exc:  # rasterio's CRSError has no stable import path across versions
            raise RequestError(f"pixels: 'crs_wkt' is not a valid CRS: {exc}") from exc
    profile = {
        "driver": "GTiff",
        "width": data.shape[2],
        "height": data.shape[1],
        "count": data.shape[0],
        "dtype": data.dtype.name,
        "crs": crs,
        "transform": Affine.from_gdal(*meta["transform"]),
        "nodata": meta["nodata"],
        "tiled": True,
        "blockxsize": 256,
        "blockysize": 256,
    }
    if data.shape[1] < 256 or data.shape[2] < 256:
        profile.update(tiled=False, blockxsize=None, blockysize=None)
        profile = {k: v for k, v in profile.items() if v is not None or k in ("crs", "nodata")}
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
        for i, name in enumerate(meta["band_names"], start=1):
            dst.set_band_description(i, name)
    return path
