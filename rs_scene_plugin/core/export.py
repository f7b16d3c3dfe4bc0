"""Export: the tile grid to GeoPackage / GeoJSON / Shapefile / CSV, the heatmap as GeoTIFF, and training chips
(tiles under labelled polygons) to a folder-per-class dataset."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from qgis.core import (
    QgsGeometry,
    QgsProject,
    QgsRasterLayer,
    QgsRectangle,
    QgsVectorFileWriter,
    QgsVectorLayer,
)

from .labels import check_labels, labelled_geometries

GRID_FORMATS = {".gpkg": "GPKG", ".geojson": "GeoJSON", ".json": "GeoJSON", ".shp": "ESRI Shapefile",
                ".csv": "CSV"}


def export_grid(layer: QgsVectorLayer, path: str) -> str:
    """Write the grid in the format its extension names; CSV gets the geometry as WKT."""
    driver = GRID_FORMATS.get(Path(path).suffix.lower())
    if driver is None:
        raise ValueError(f"cannot export to '{path}': use one of {', '.join(sorted(GRID_FORMATS))}")
    opts = QgsVectorFileWriter.SaveVectorOptions()
    opts.driverName = driver
    if driver == "CSV":
        opts.layerOptions = ["GEOMETRY=AS_WKT"]
    err, msg, *_ = QgsVectorFileWriter.writeAsVectorFormatV3(layer, path, QgsProject.instance().transformContext(),
                                                             opts)
    if err != QgsVectorFileWriter.NoError:
        raise ValueError(f"cannot export layer '{layer.name()}' to {path}: {msg}")
    return path


HEATMAP_TAG = ("RS_SCENE_OUTPUT", "heatmap")  # the metadata item the backend writes into its heatmaps


def is_heatmap(source: str) -> bool:
    """True for a GeoTIFF the RS Scene backend wrote as an attention heatmap (its metadata says so)."""
    from osgeo import gdal

    ds = gdal.Open(source) if os.path.isfile(source) else None
    try:
        return ds is not None and ds.GetMetadataItem(HEATMAP_TAG[0]) == HEATMAP_TAG[1]
    finally:
        ds = None


def export_heatmap(layer: QgsRasterLayer, path: str) -> str:
    source = layer.source().split("|")[0]
    if not os.path.isfile(source):
        raise ValueError(f"layer '{layer.name()}' is not a file that can be copied")
    if not is_heatmap(source):
        raise ValueError(f"layer '{layer.name()}' is not an RS Scene heatmap (its file {source} lacks the "
                         f"{HEATMAP_TAG[0]}={HEATMAP_TAG[1]} metadata a classification writes): choose the "
                         "'attention' layer of a run")
    if not path.lower().endswith((".tif", ".tiff")):
        raise ValueError(f"the heatmap is a GeoTIFF: give a .tif path, not {path}")
    tmp = f"{path}.partial"
    shutil.copyfile(source, tmp)
    os.replace(tmp, path)
    return path


def _folder_name(name: str) -> str:
    return re.sub(r"[^\w.-]+", "_", name).strip("_") or "class"


def export_chips(raster: QgsRasterLayer, polygons: QgsVectorLayer, field: str, out_dir: str, tile_px: int,
                 progress: Callable[[float], None] = lambda p: None,
                 is_canceled: Callable[[], bool] = lambda: False) -> dict[str, int]:
    """Every whole tile of ``tile_px`` raster pixels on the raster's grid that lies inside a labelled polygon,
    as ``out_dir/<class>/<class>_<fid>_<row>_<col>.tif``. Written to a temporary folder first, then moved in:
    a cancelled or failed run leaves nothing."""
    from osgeo import gdal

    source = raster.source().split("|")[0]  # read here, in QGIS's process: any GDAL path will do
    ds = gdal.Open(source) if raster.providerType() == "gdal" else None
    if ds is None:
        raise ValueError(f"layer '{raster.name()}' is not a raster file GDAL can open; save it as GeoTIFF first")
    if tile_px < 1:
        raise ValueError(f"the chip size must be at least 1 pixel, not {tile_px}")
    check_labels(polygons, field)
    gt = ds.GetGeoTransform()
    out = chip_folder(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".chips-", dir=out))
    counts: Counter = Counter()
    try:
        items = list(labelled_geometries(polygons, field, raster.crs()))
        for i, (name, geom, fid) in enumerate(items):
            for row, col in _tiles_inside(geom, gt, ds.RasterXSize, ds.RasterYSize, tile_px):
                if is_canceled():
                    raise InterruptedError("cancelled")
                folder = tmp / _folder_name(name)
                folder.mkdir(exist_ok=True)
                dst = folder / f"{_folder_name(name)}_{fid}_{row}_{col}.tif"
                if gdal.Translate(str(dst), ds, srcWin=[col, row, tile_px, tile_px]) is None:
                    raise ValueError(f"cannot write chip {dst}")
                counts[name] += 1
            progress(100.0 * (i + 1) / len(items))
        if not counts:
            raise ValueError(f"no whole {tile_px} x {tile_px} pixel tile of '{raster.name()}' lies inside a "
                             f"labelled polygon of '{polygons.name()}'; use larger polygons or smaller chips")
        for folder in tmp.iterdir():
            target = out / folder.name
            target.mkdir(exist_ok=True)
            for f in folder.iterdir():
                os.replace(f, target / f.name)
    finally:
        ds = None
        shutil.rmtree(tmp, ignore_errors=True)
    return dict(counts)


def chip_folder(out_dir: str) -> Path:
    """An absolute folder: a relative one is taken in the project's folder (never QGIS's working directory);
    with an unsaved project it is refused, saying what to do."""
    out = Path(os.path.expanduser(out_dir))
    if out.is_absolute():
        return out
    home = QgsProject.instance().absolutePath()
    if not home:
        raise ValueError(f"the chip folder '{out_dir}' is relative and the project has no folder yet: save the "
                         "project first, or give a full path")
    return Path(home) / out


def _tiles_inside(geom: QgsGeometry, gt: tuple, width: int, height: int, tile: int):
    """(row, col) of the raster-grid tiles whose rectangle lies inside ``geom``."""
    box = geom.boundingBox()
    c0 = max(0, int((box.xMinimum() - gt[0]) / gt[1]))
    c1 = min(width, int((box.xMaximum() - gt[0]) / gt[1]) + 1)
    r0 = max(0, int((box.yMaximum() - gt[3]) / gt[5]))
    r1 = min(height, int((box.yMinimum() - gt[3]) / gt[5]) + 1)
    for row in range(r0, r1 - tile + 1, tile):
        for col in range(c0, c1 - tile + 1, tile):
            x0, y0 = gt[0] + col * gt[1], gt[3] + row * gt[5]
            rect = QgsRectangle(x0, y0 + tile * gt[5], x0 + tile * gt[1], y0)
            if geom.contains(QgsGeometry.fromRect(rect)):
                yield row, col
