"""Read a layer's pixels through its data provider (WMS, XYZ, memory, anything QGIS reads) for one extent,
packed as the service's ``pixels`` request object."""

from __future__ import annotations

import base64
import os
from typing import Any

import numpy as np
from qgis.core import Qgis, QgsRasterDataProvider, QgsRasterLayer, QgsRectangle

_NUMPY = {Qgis.Byte: "uint8", Qgis.UInt16: "uint16", Qgis.Int16: "int16", Qgis.UInt32: "uint32",
          Qgis.Int32: "int32", Qgis.Float32: "float32", Qgis.Float64: "float64"}
_COLOUR = (Qgis.ARGB32, Qgis.ARGB32_Premultiplied)
MAX_PIXELS = 60_000_000  # values per band x bands: keeps one request well under the service's limit


def is_local_file(layer: QgsRasterLayer) -> bool:
    """True when the service can read the layer's file itself: a GDAL layer on local disk, or on one of
    GDAL's virtual file systems that another process can open as well (in a zip, online: ``/vsizip/``,
    ``/vsicurl/``...; not ``/vsimem/``). The service then reads it at its own resolution, tile by tile, with
    its declared scale and offset, instead of receiving QGIS's rendering of one extent."""
    path = layer.source().split("|")[0]
    virtual = path.startswith("/vsi") and not path.startswith("/vsimem/")
    return layer.providerType() == "gdal" and (virtual or os.path.isfile(path))


def user_nodata(layer: QgsRasterLayer) -> float | None:
    """The no-data value the user added in the layer's properties (Transparency, 'Additional no data value')
    when every band has that one value, for the service to skip those pixels as QGIS hides them; None
    otherwise (ranges, or per-band values, are left to the raster's own nodata)."""
    provider = layer.dataProvider()
    values = set()
    for band in range(1, layer.bandCount() + 1):
        ranges = provider.userNoDataValues(band)
        if len(ranges) != 1 or ranges[0].min() != ranges[0].max():
            return None
        values.add(ranges[0].min())
    return values.pop() if len(values) == 1 else None


def gdal_band_names(layer: QgsRasterLayer) -> list[str | None]:
    """The raster's own band names (GDAL descriptions, else colour interpretation), None where unknown."""
    names: list[str | None] = []
    if layer.providerType() == "gdal":
        from osgeo import gdal

        ds = gdal.Open(layer.source().split("|")[0])  # keep ds alive while reading its bands
        if ds is not None:
            for i in range(1, ds.RasterCount + 1):
                band = ds.GetRasterBand(i)
                desc = band.GetDescription().strip()
                interp = gdal.GetColorInterpretationName(band.GetColorInterpretation()).lower()
                names.append(desc or (interp if interp in ("red", "green", "blue") else None))
            ds = None
            return names
    if layer.dataProvider().dataType(1) in _COLOUR:
        return ["red", "green", "blue"]
    return [None] * layer.bandCount()


def pixel_size(layer: QgsRasterLayer, fallback: float) -> float:
    """Native pixel size in layer units; ``fallback`` for providers without one (WMS, XYZ)."""
    if layer.dataProvider().capabilities() & QgsRasterDataProvider.Size and layer.width() > 0:
        return layer.rasterUnitsPerPixelX()
    return fallback


def read_pixels(provider: QgsRasterDataProvider, extent: QgsRectangle, res: float, crs_wkt: str,
                band_names: list[str | None]) -> dict[str, Any]:
    """Pixels of ``extent`` at ``res`` layer units per pixel. Colour (ARGB) providers become red/green/blue."""
    width, height = max(1, round(extent.width() / res)), max(1, round(extent.height() / res))
    count = provider.bandCount()
    colour = provider.dataType(1) in _COLOUR
    if width * height * (3 if colour else count) > MAX_PIXELS:
        raise ValueError(f"the extent is {width} x {height} pixels at {res:g} units per pixel, too large to "
                         "send; choose a smaller extent")
    arrays, names = [], list(band_names)
    if colour:
        block = provider.block(1, extent, width, height)
        argb = np.frombuffer(bytes(block.data()), dtype="<u4").reshape(height, width)
        arrays = [((argb >> s) & 0xFF).astype(np.uint8) for s in (16, 8, 0)]
        names, dtype, nodata = ["red", "green", "blue"], "uint8", None
    else:
        dtype = _NUMPY.get(provider.dataType(1))
        if dtype is None:
            raise ValueError(f"band 1 has a data type ({provider.dataType(1)}) the service cannot take")
        for b in range(1, count + 1):
            block = provider.block(b, extent, width, height)
            arr = np.frombuffer(bytes(block.data()), dtype=np.dtype(dtype).newbyteorder("="))
            arrays.append(arr.reshape(height, width).astype(dtype, copy=False))
        nodata = provider.sourceNoDataValue(1) if provider.sourceHasNoDataValue(1) else None
    data = np.ascontiguousarray(np.stack(arrays).astype(np.dtype(dtype).newbyteorder("<")))
    ex, ey = extent.width() / width, extent.height() / height
    return {"width": width, "height": height, "count": len(arrays), "dtype": dtype, "crs_wkt": crs_wkt,
            "transform": [extent.xMinimum(), ex, 0.0, extent.yMaximum(), 0.0, -ey], "nodata": nodata,
            "band_names": [n or "" for n in names] if any(names) else [],
            "data_b64": base64.b64encode(data.tobytes()).decode("ascii")}
