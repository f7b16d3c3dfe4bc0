"""The run index: a GeoPackage of the rasters' footprints (EPSG:4326) with each one's status, tile counts,
class shares, time and error, styled by status; and the table ``runs show`` prints."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import fiona
from rasterio.crs import CRS

from ..io.writers import GridWriter
from .manifest import RasterState

STATUS_COLOURS = [{"name": "done", "color": "#4daf4a"}, {"name": "failed", "color": "#e41a1c"},
                  {"name": "planned", "color": "#ff7f00"}, {"name": "pending", "color": "#999999"}]


class IndexWriter(GridWriter):
    """A GridWriter's atomic write, default style and run record, for one feature per raster."""

    LAYER = "rasters"
    STYLE_FIELD = "status"

    def __init__(self, target: str) -> None:
        props = {"key": "str", "raster": "str", "status": "str", "tiles_total": "int",
                 "tiles_classified": "int", "tiles_skipped": "int", "shards": "int", "shards_done": "int",
                 "seconds": "float",
                 "top_class": "str", "class_shares": "str", "error": "str", "grid": "str"}
        self._schema = {"geometry": "Polygon", "properties": props}
        super().__init__(target, CRS.from_epsg(4326), STATUS_COLOURS, False)

    @property
    def schema(self) -> dict[str, Any]:
        return self._schema

    @schema.setter
    def schema(self, value: dict[str, Any]) -> None:  # GridWriter sets its tile schema: keep ours
        pass

    def write(self, records: list[dict[str, Any]]) -> None:
        feats = []
        for rec in records:
            geom = rec.pop("geometry")
            feats.append(fiona.Feature(geometry=fiona.Geometry.from_dict(geom) if geom else None,
                                       properties=fiona.Properties(**rec)))
        self.dst.writerecords(feats)


def index_row(st: RasterState) -> dict[str, Any]:
    res, plan = st.result or {}, st.plan or {}
    counts = res.get("class_counts", {})
    n = max(res.get("tiles_classified", 0), 1)
    shares = {k: round(v / n, 4) for k, v in counts.items()}
    return {"key": st.key, "raster": st.path, "status": st.status, "tiles_total": res.get("tiles_total",
            plan.get("tiles")), "tiles_classified": res.get("tiles_classified"),
            "tiles_skipped": res.get("tiles_skipped"), "shards": len(plan.get("shards", [])) or None,
            "shards_done": res.get("shards", len(st.shards_done)) if plan else None,
            "seconds": res.get("seconds"), "top_class": next(iter(counts), None),
            "class_shares": json.dumps(shares) if shares else None, "error": st.error,
            "grid": (res.get("outputs") or {}).get("out_gpkg"), "geometry": plan.get("footprint")}


def write_index(path: Path, states: dict[str, RasterState]) -> None:
    w = IndexWriter(str(path))
    try:
        w.write([index_row(st) for st in states.values()])
        w.commit({"tool": "rs-scene classify-many", "rasters": len(states),
                  "done": sum(s.status == "done" for s in states.values()),
                  "failed": sum(s.status == "failed" for s in states.values())})
    except BaseException:
        w.abort()
        raise


def show_lines(states: dict[str, RasterState]) -> list[str]:
    """One line per raster: status, tiles, seconds, top class or error."""
    lines = [f"{'status':<8} {'tiles':>13} {'shards':>9} {'s':>8}  raster"]
    for st in states.values():
        row = index_row(st)
        tiles = f"{row['tiles_classified'] or 0}/{row['tiles_total'] or '?'}"
        shards = f"{len(st.shards_done) if st.status != 'done' else row['shards']}/{row['shards'] or '?'}"
        secs = f"{row['seconds']:.1f}" if row["seconds"] is not None else "-"
        top = f"  top: {row['top_class']}" if row["top_class"] else ""
        tail = f"  error: {st.error}" if st.error else top
        lines.append(f"{st.status:<8} {tiles:>13} {shards:>9} {secs:>8}  {st.path}{tail}")
    return lines
