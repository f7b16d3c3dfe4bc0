"""A request's JSON body -> engine parameters, or a RequestError (HTTP 400) naming the field at fault."""

from __future__ import annotations

import os
from typing import Any

from ..io.raster import gdal_virtual


def _raster_exists(path: str) -> bool:
    """A file, or a path GDAL opens itself (:func:`gdal_virtual`: the engine names it if it cannot)."""
    return gdal_virtual(path) or os.path.exists(path)


class RequestError(ValueError):
    """A malformed request: answered with 400 and this message."""


#: field -> (accepted JSON types, converter)
_NUM = (int, float)
CLASSIFY_FIELDS: dict[str, tuple[tuple[type, ...], Any]] = {
    "raster": ((str,), str),
    "pixels": ((dict,), dict),
    "model": ((str,), str),
    "out_gpkg": ((str, type(None)), None),
    "heatmap": ((str, type(None)), None),
    "class_raster": ((str, type(None)), None),
    "bands": ((str, list, type(None)), None),
    "tile_size": ((int, type(None)), None),
    "stride": ((int, type(None)), None),
    "device": ((str,), str),
    "cam": ((str,), str),
    "cam_class": ((str, type(None)), None),
    "extent": ((list, type(None)), None),
    "mask": ((str, type(None)), None),
    "min_valid": (_NUM, float),
    "input_scale": ((*_NUM, type(None)), None),
    "gsd": ((*_NUM, str, type(None)), None),
    "edge": ((str,), str),
    "batch_size": ((int,), int),
    "nodata": ((*_NUM, type(None)), None),
}
TRAIN_FIELDS: dict[str, tuple[tuple[type, ...], Any]] = {
    "method": ((str,), str),
    "options": ((dict,), dict),
    "data": ((str, type(None)), None),
    "raster": ((str, type(None)), None),
    "labels": ((str, type(None)), None),
    "class_field": ((str, type(None)), None),
    "bands": ((str, list, type(None)), None),
    "out": ((str, type(None)), None),
    "name": ((str, type(None)), None),
    "image_size": ((int, type(None)), None),
    "input_size": ((int, type(None)), None),
    "tile_size": ((int, type(None)), None),
    "input_scale": ((*_NUM, type(None)), None),
    "val_fraction": (_NUM, float),
    "holdout": ((bool,), bool),
    "device": ((str,), str),
    "seed": ((int,), int),
    "patience": ((int,), int),
    "description": ((str,), str),
    "stride": ((int, type(None)), None),
    "min_overlap": (_NUM, float),
    "block": ((int,), int),
}


def check_fields(body: Any, fields: dict[str, tuple[tuple[type, ...], Any]], what: str) -> dict[str, Any]:
    """Known keys with values of the right JSON type; anything else is a RequestError naming the key."""
    if not isinstance(body, dict):
        raise RequestError(f"{what}: the body must be a JSON object")
    unknown = sorted(set(body) - set(fields))
    if unknown:
        raise RequestError(
            f"{what}: unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(fields))}"
        )
    out = {}
    for key, value in body.items():
        types, convert = fields[key]
        if isinstance(value, bool) and bool not in types:
            raise RequestError(f"{what}: field '{key}' must not be a boolean")
        if not isinstance(value, types):
            names = "/".join("null" if t is type(None) else t.__name__ for t in types)
            raise RequestError(f"{what}: field '{key}' must be {names}, not {type(value).__name__}")
        out[key] = convert(value) if convert else value
    return out


def classify_request(body: Any) -> dict[str, Any]:
    req = check_fields(body, CLASSIFY_FIELDS, "classify")
    if "model" not in req:
        raise RequestError("classify: field 'model' is required (an installed model name or a .pt path)")
    if ("raster" in req) == ("pixels" in req):
        raise RequestError(
            "classify: give exactly one of 'raster' (a file path) or 'pixels' (the data by value)"
        )
    if "pixels" in req:
        from .pixels import decode_pixels

        req["pixels"] = decode_pixels(req["pixels"])  # (array, meta): checked before the job is queued
    if "raster" in req and not _raster_exists(req["raster"]):
        raise RequestError(f"classify: raster file not found: {req['raster']}")
    if not any(req.get(k) for k in ("out_gpkg", "heatmap", "class_raster")):
        raise RequestError("classify: nothing to write: give 'out_gpkg', 'heatmap' and/or 'class_raster'")
    for key in ("out_gpkg", "heatmap", "class_raster"):
        folder = os.path.dirname(os.path.abspath(req[key])) if req.get(key) else None
        if folder and not os.path.isdir(folder):
            raise RequestError(f"classify: folder of '{key}' does not exist: {folder}")
    if isinstance(req.get("bands"), list):
        req["bands"] = ",".join(str(b) for b in req["bands"])
    ext = req.get("extent")
    if ext is not None:
        if len(ext) != 4 or not all(isinstance(v, _NUM) and not isinstance(v, bool) for v in ext):
            raise RequestError("classify: 'extent' must be four numbers [xmin, ymin, xmax, ymax]")
        if ext[0] >= ext[2] or ext[1] >= ext[3]:
            raise RequestError(f"classify: 'extent' {ext} is empty (need xmin < xmax and ymin < ymax)")
        req["extent"] = tuple(float(v) for v in ext)
    return req


def train_request(body: Any) -> dict[str, Any]:
    req = check_fields(body, TRAIN_FIELDS, "train")
    has_data = bool(req.get("data"))
    has_polys = bool(req.get("raster") or req.get("labels"))
    if has_data == has_polys:
        raise RequestError(
            "train: give either 'data' (a dataset folder) or 'raster' + 'labels' + 'class_field'"
        )
    if has_data and not os.path.isdir(req["data"]):
        raise RequestError(f"train: dataset folder not found: {req['data']}")
    if has_polys:
        for key in ("raster", "labels", "class_field"):
            if not req.get(key):
                raise RequestError(f"train: field '{key}' is required when training from labelled polygons")
        for key in ("raster", "labels"):
            exists = _raster_exists(req[key]) if key == "raster" else os.path.exists(req[key])
            if not exists:
                raise RequestError(f"train: {key} file not found: {req[key]}")
    if not req.get("out") and not req.get("name"):
        raise RequestError("train: give 'name' (installed into the user's models) or 'out' (a .pt path)")
    if not 0 <= req.get("val_fraction", 0.0) < 1:
        raise RequestError("train: 'val_fraction' must be in [0, 1)")
    if isinstance(req.get("bands"), str):
        req["bands"] = [b.strip() for b in req["bands"].split(",") if b.strip()]
    return req
