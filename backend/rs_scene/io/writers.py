"""Streamed, atomic writers: the GeoPackage tile grid (styled, with a run record), the class GeoTIFF with a
colour table and the heatmap GeoTIFF. Each writes a temporary file beside the target and renames it on
``commit()``; ``abort()`` removes it, so nothing half-written is left behind."""

from __future__ import annotations

import json
import os
import sqlite3
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import fiona
import numpy as np
import rasterio
from rasterio.transform import Affine

from ..errors import RSSceneError
from .outputs import OUTPUT_TAG, RUN_RECORD_URI, release_temp, temp_path
from .qml import categorized_qml

HEAT_NODATA = -1.0
CLASS_NODATA = 255
SKIPPED = "(skipped)"


class AtomicPath:
    """A temporary path in the target's folder, renamed onto the target on commit."""

    def __init__(self, target: str | os.PathLike[str]) -> None:
        self.target = Path(target)
        folder = self.target.parent
        if not folder.is_dir():
            raise RSSceneError(f"cannot write {self.target}: folder {folder} does not exist")
        if not os.access(folder, os.W_OK):
            raise RSSceneError(f"cannot write {self.target}: folder {folder} is not writable")
        if self.target.is_dir():
            raise RSSceneError(f"cannot write {self.target}: it is a folder")
        self.tmp = temp_path(self.target)  # the drivers create the file; stale ones of killed runs go first

    def commit(self) -> None:
        os.replace(self.tmp, self.target)
        release_temp(self.tmp)

    def abort(self) -> None:
        for p in [self.tmp] + [Path(str(self.tmp) + s) for s in ("-journal", "-wal", "-shm", ".aux.xml")]:
            if p.exists():
                p.unlink()
        release_temp(self.tmp)


def grid_schema(multi_label: bool) -> dict[str, Any]:
    props: dict[str, str] = {
        "row": "int", "col": "int", "status": "str", "class_id": "int", "class_name": "str",
        "confidence": "float",
    }
    for k in (1, 2, 3):
        props[f"top{k}_name"] = "str"
        props[f"top{k}_prob"] = "float"
    props.update({"entropy": "float", "margin": "float", "valid_fraction": "float", "model": "str"})
    if multi_label:
        props["labels"] = "str"
    return {"geometry": "Polygon", "properties": props}


class GridWriter:
    """One polygon per tile in the raster's CRS, written as tiles finish."""

    LAYER = "tiles"
    STYLE_FIELD = "class_name"  # the field the layer's default style categorises

    def __init__(self, target: str, crs: Any, classes: list[dict[str, str]], multi_label: bool) -> None:
        self.path = AtomicPath(target)
        self.classes = classes
        self.schema = grid_schema(multi_label)
        self.dst = fiona.open(self.path.tmp, "w", driver="GPKG", layer=self.LAYER, crs_wkt=crs.to_wkt(),
                              schema=self.schema)
        self.count = 0

    def write(self, records: list[dict[str, Any]]) -> None:
        feats = []
        for rec in records:
            geom = rec.pop("geometry")
            props = {k: rec.get(k) for k in self.schema["properties"]}
            feats.append(fiona.Feature(geometry=fiona.Geometry(type="Polygon", coordinates=geom),
                                       properties=fiona.Properties(**props)))
        self.dst.writerecords(feats)
        self.count += len(feats)

    def commit(self, run_record: dict[str, Any]) -> None:
        self.dst.close()
        self._add_style_and_record(run_record)
        self.path.commit()

    def abort(self) -> None:
        if not self.dst.closed:
            self.dst.close()
        self.path.abort()

    def _add_style_and_record(self, run_record: dict[str, Any]) -> None:
        """QGIS reads a GeoPackage layer's default style from ``layer_styles``; the run record goes into the
        standard ``gpkg_metadata`` tables, referenced from the layer."""
        qml = categorized_qml(self.STYLE_FIELD, self.classes, SKIPPED)
        # GeoPackage DATETIME with milliseconds: without them GDAL warns "Non-conformant content" per load
        now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        con = sqlite3.connect(self.path.tmp)
        try:
            con.execute(
                "CREATE TABLE IF NOT EXISTS layer_styles (id INTEGER PRIMARY KEY AUTOINCREMENT, "
                "f_table_catalog TEXT(256), f_table_schema TEXT(256), f_table_name TEXT(256), "
                "f_geometry_column TEXT(256), styleName TEXT(30), styleQML TEXT, styleSLD TEXT, "
                "useAsDefault BOOLEAN, description TEXT, owner TEXT(30), ui TEXT(30), update_time DATETIME)")
            con.execute(
                "INSERT INTO layer_styles (f_table_catalog, f_table_schema, f_table_name, f_geometry_column, "
                "styleName, styleQML, styleSLD, useAsDefault, description, owner, update_time) "
                "VALUES ('', '', ?, 'geom', 'classes', ?, '', 1, 'RS Scene class colours', '', ?)",
                (self.LAYER, qml, now))
            con.execute(
                "CREATE TABLE IF NOT EXISTS gpkg_metadata ("
                "id INTEGER CONSTRAINT m_pk PRIMARY KEY ASC NOT NULL, "
                "md_scope TEXT NOT NULL DEFAULT 'dataset', "
                "md_standard_uri TEXT NOT NULL, "
                "mime_type TEXT NOT NULL DEFAULT 'text/xml', metadata TEXT NOT NULL DEFAULT '')")
            con.execute(
                "CREATE TABLE IF NOT EXISTS gpkg_metadata_reference (reference_scope TEXT NOT NULL, "
                "table_name TEXT, column_name TEXT, row_id_value INTEGER, "
                "timestamp DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')), "
                "md_file_id INTEGER NOT NULL, md_parent_id INTEGER)")
            cur = con.execute(
                "INSERT INTO gpkg_metadata (md_scope, md_standard_uri, mime_type, metadata) "
                "VALUES ('dataset', ?, 'application/json', ?)",
                (RUN_RECORD_URI, json.dumps(run_record)))
            con.execute("INSERT INTO gpkg_metadata_reference (reference_scope, table_name, timestamp, "
                        "md_file_id) VALUES ('table', ?, ?, ?)", (self.LAYER, now, cur.lastrowid))
            for ext in ("gpkg_metadata", "gpkg_metadata_reference"):
                con.execute("INSERT OR IGNORE INTO gpkg_extensions (table_name, column_name, extension_name, "
                            "definition, scope) VALUES (?, NULL, 'gpkg_metadata', "
                            "'http://www.geopackage.org/spec121/#extension_metadata', 'read-write')", (ext,))
            con.commit()
        finally:
            con.close()


def read_run_record(gpkg: str | os.PathLike[str]) -> dict[str, Any]:
    con = sqlite3.connect(gpkg)
    try:
        row = con.execute("SELECT metadata FROM gpkg_metadata WHERE mime_type='application/json' "
                          "ORDER BY id DESC LIMIT 1").fetchone()
    finally:
        con.close()
    return json.loads(row[0]) if row else {}


class HeatmapWriter:
    """Mosaics per-tile attention maps into a float32 GeoTIFF, streaming rows out as soon as no later tile can
    touch them (tiles arrive in row-major order), so memory does not grow with the raster's height.
    Overlaps are averaged; pixels no classified tile covered are nodata."""

    def __init__(self, target: str, profile_src: Any, area: tuple[int, int, int, int], band_h: int,
                 norm: str = "tile") -> None:
        """``norm`` 'tile': the maps come in [0, 1] each and are written as they are; 'run': they share one
        scale, and the mosaic is divided by its largest value at the end (streamed to an uncompressed
        temporary file, compressed into the target on commit)."""
        self.path = AtomicPath(target)
        self.norm, self.peak = norm, 0.0
        self.raw = AtomicPath(target) if norm == "run" else None
        self.x0, self.y0, self.w, self.h = area
        transform = profile_src.transform @ Affine.translation(self.x0, self.y0)
        self.profile = {"driver": "GTiff", "width": self.w, "height": self.h, "count": 1, "dtype": "float32",
                        "crs": profile_src.crs, "transform": transform, "nodata": HEAT_NODATA, "tiled": True,
                        "blockxsize": 256, "blockysize": 256, "compress": "deflate", "predictor": 3,
                        "BIGTIFF": "IF_SAFER"}
        if self.raw is None:
            self.dst = rasterio.open(self.path.tmp, "w", **self.profile)
        else:
            raw = {k: v for k, v in self.profile.items() if k not in ("compress", "predictor")}
            self.dst = rasterio.open(self.raw.tmp, "w", **raw)
        self.buf_y = 0  # raster row (relative to the area) of the buffer's first row
        self.rows = band_h * 2
        self.acc = np.zeros((self.rows, self.w), dtype=np.float32)
        self.cnt = np.zeros((self.rows, self.w), dtype=np.float32)

    def add(self, x: int, y: int, cam: np.ndarray, weight: np.ndarray) -> None:
        """Add a map ``cam`` (h, w) whose top-left is at raster pixel (x, y); ``weight`` marks valid
        pixels."""
        x, y = x - self.x0, y - self.y0
        self._flush_until(y)
        h, w = cam.shape
        xa, xb = max(x, 0), min(x + w, self.w)
        ya, yb = max(y, 0), min(y + h, self.h)
        if xa >= xb or ya >= yb:
            return
        need = yb - self.buf_y
        if need > self.rows:
            self._grow(need)
        sl = (slice(ya - self.buf_y, yb - self.buf_y), slice(xa, xb))
        src = (slice(ya - y, yb - y), slice(xa - x, xb - x))
        self.acc[sl] += cam[src] * weight[src]
        self.cnt[sl] += weight[src]

    def _grow(self, rows: int) -> None:
        extra = rows - self.rows
        self.acc = np.vstack([self.acc, np.zeros((extra, self.w), np.float32)])
        self.cnt = np.vstack([self.cnt, np.zeros((extra, self.w), np.float32)])
        self.rows = rows

    def _flush_until(self, y: int) -> None:
        """Write out all rows above ``y`` (relative): no later tile starts above it."""
        y = min(y, self.h)
        n = y - self.buf_y
        if n <= 0:
            return
        n_buf = min(n, self.rows)
        out = np.full((n, self.w), HEAT_NODATA, dtype=np.float32)
        part = self.cnt[:n_buf] > 0
        out[:n_buf][part] = self.acc[:n_buf][part] / self.cnt[:n_buf][part]
        if part.any():
            self.peak = max(self.peak, float(out[:n_buf][part].max()))
        self.dst.write(out, 1, window=rasterio.windows.Window(0, self.buf_y, self.w, n))
        self.acc = np.roll(self.acc, -n_buf, axis=0)
        self.cnt = np.roll(self.cnt, -n_buf, axis=0)
        self.acc[-n_buf:] = 0
        self.cnt[-n_buf:] = 0
        self.buf_y = y

    def commit(self, tags: dict[str, Any] | None = None) -> None:
        """Finish the file; ``tags`` (what the heat means: method, grid, ...) go into its metadata along with
        the normalisation and, for 'run', the scale the mosaic was divided by."""
        self._flush_until(self.h)
        scale = self.peak if self.norm == "run" and self.peak > 0 else 1.0
        meta = {OUTPUT_TAG: "heatmap", "HEATMAP_NORMALISATION": self.norm, **(tags or {})}
        if self.norm == "run":
            meta["HEATMAP_RUN_SCALE"] = repr(scale)
        desc = ("attention (0-1, one scale for the whole run: 1 = the run's strongest evidence)"
                if self.norm == "run" else "attention (0-1, each tile min-max on its own)")
        if self.raw is None:
            self._describe(self.dst, desc, meta)
            self.dst.close()
        else:
            self.dst.close()
            with rasterio.open(self.raw.tmp) as src, \
                    rasterio.open(self.path.tmp, "w", NUM_THREADS="ALL_CPUS", **self.profile) as dst:
                for y in range(0, self.h, 1024):
                    win = rasterio.windows.Window(0, y, self.w, min(1024, self.h - y))
                    a = src.read(1, window=win)
                    a[a != HEAT_NODATA] /= scale
                    dst.write(a, 1, window=win)
                self._describe(dst, desc, meta)
            self.raw.abort()
        self.path.commit()

    @staticmethod
    def _describe(dst: Any, desc: str, meta: dict[str, Any]) -> None:
        dst.set_band_description(1, desc)
        dst.update_tags(**{k: str(v) for k, v in meta.items()})

    def abort(self) -> None:
        if not self.dst.closed:
            self.dst.close()
        self.path.abort()
        if self.raw is not None:
            self.raw.abort()


class ClassRasterWriter:
    """Class per grid cell (cells are one stride wide), from the mean probabilities of the tiles covering it,
    written as a uint8 GeoTIFF with a colour table. Memory: cells x classes floats."""

    def __init__(self, target: str, src: Any, area: tuple[int, int, int, int], stride: tuple[int, int],
                 tile: tuple[int, int], classes: list[dict[str, str]]) -> None:
        self.path = AtomicPath(target)
        self.x0, self.y0, w, h = area
        self.sx, self.sy = stride
        self.kx, self.ky = max(round(tile[0] / self.sx), 1), max(round(tile[1] / self.sy), 1)
        self.cols, self.rows = -(-w // self.sx), -(-h // self.sy)
        self.classes = classes
        self.prob = np.zeros((self.rows, self.cols, len(classes)), dtype=np.float32)
        self.cnt = np.zeros((self.rows, self.cols), dtype=np.float32)
        self.src = src

    def add(self, x: int, y: int, probs: np.ndarray) -> None:
        c0, r0 = (x - self.x0) // self.sx, (y - self.y0) // self.sy
        ra, rb = max(r0, 0), min(r0 + self.ky, self.rows)
        ca, cb = max(c0, 0), min(c0 + self.kx, self.cols)
        self.prob[ra:rb, ca:cb] += probs
        self.cnt[ra:rb, ca:cb] += 1

    def commit(self) -> None:
        out = np.where(self.cnt > 0, self.prob.argmax(-1), CLASS_NODATA).astype(np.uint8)
        transform = self.src.transform @ Affine.translation(self.x0, self.y0) @ Affine.scale(self.sx, self.sy)
        with rasterio.open(self.path.tmp, "w", driver="GTiff", width=self.cols, height=self.rows, count=1,
                           dtype="uint8", crs=self.src.crs, transform=transform, nodata=CLASS_NODATA,
                           compress="deflate") as dst:
            dst.write(out, 1)
            cmap = {i: tuple(int(c["color"].lstrip("#")[j : j + 2], 16) for j in (0, 2, 4)) + (255,)
                    for i, c in enumerate(self.classes)}
            cmap[CLASS_NODATA] = (0, 0, 0, 0)
            dst.write_colormap(1, cmap)
            dst.update_tags(1, **{f"CLASS_{i}": c["name"] for i, c in enumerate(self.classes)})
            dst.update_tags(**{OUTPUT_TAG: "classes"})
        self.path.commit()

    def abort(self) -> None:
        self.path.abort()
