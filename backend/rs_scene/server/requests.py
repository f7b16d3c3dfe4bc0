"""A request's JSON body -> engine parameters, or a RequestError (HTTP 400) naming the field at fault."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ..errors import RSSceneError
from ..io.outputs import check_outputs
from ..io.raster import gdal_virtual
from ..options import (
    CLASSIFY_RULES,
    TRAIN_RULES,
    check_extent,
    check_method_options,
    check_numbers,
    field_label,
    zero_means_default,
)

#: GDAL file systems and open strings that reach the network (``/vsizip//vsicurl/...`` included).
_NETWORK = re.compile(r"/vsi(curl|s3|gs|az|adls|oss|swift|hdfs|webhdfs)|://|^[A-Za-z][A-Za-z0-9_]+:|^\s*<")
_LOOPBACK = re.compile(r"(://|/vsicurl[a-z_]*/)(\[?::1\]?|localhost|127\.[0-9.]+|0\.0\.0\.0|0+)([:/?]|$)",
                       re.IGNORECASE)
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def _raster_exists(path: str) -> bool:
    """A regular file (not a FIFO or device, which would block or never end), or a path GDAL opens itself
    (:func:`gdal_virtual`: the engine names it if it cannot)."""
    return gdal_virtual(path) or os.path.isfile(path)


class RequestError(ValueError):
    """A malformed request: answered with 400 and this message."""


@contextmanager
def _as_request_error(what: str) -> Iterator[None]:
    try:
        yield
    except RSSceneError as exc:
        raise RequestError(f"{what}: {exc}") from exc


def check_input_path(what: str, key: str, path: str | None, allow_network: bool) -> None:
    """Network paths (``/vsicurl/``, ``/vsis3/``, URLs, driver open strings) only when the service was started
    with ``--allow-network``; never to this machine's own addresses (the service's port included)."""
    if not path or not _NETWORK.search(path):
        return
    if not allow_network:
        raise RequestError(f"{what}: '{key}' {path} is a network path; this service was started without "
                           "--allow-network, so it reads local files only")
    if _LOOPBACK.search(path):
        raise RequestError(f"{what}: '{key}' {path} points at this machine itself; the service does not "
                           "fetch from its own addresses")


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
    "heatmap_norm": ((str,), str),
    "heatmap_detail": ((str,), str),
    "extent": ((list, type(None)), None),
    "mask": ((str, type(None)), None),
    "min_valid": (_NUM, float),
    "input_scale": ((*_NUM, type(None)), None),
    "gsd": ((*_NUM, str, type(None)), None),
    "edge": ((str,), str),
    "batch_size": ((int,), int),
    "nodata": ((*_NUM, type(None)), None),
    "overwrite": ((bool,), bool),
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
    "test_fraction": (_NUM, float),
    "nodata": ((*_NUM, type(None)), None),
    "gsd": ((*_NUM, str, type(None)), None),
    "resume": ((bool,), bool),
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


def classify_request(body: Any, allow_network: bool = False, outputs: bool = True) -> dict[str, Any]:
    """A classify (or, with ``outputs=False``, an estimate) request, checked before a job is queued."""
    req = check_fields(body, CLASSIFY_FIELDS, "classify")
    if "model" not in req:
        raise RequestError("classify: field 'model' is required (an installed model name or a .pt path)")
    if ("raster" in req) == ("pixels" in req):
        raise RequestError(
            "classify: give exactly one of 'raster' (a file path) or 'pixels' (the data by value)"
        )
    with _as_request_error("classify"):
        check_numbers(req, CLASSIFY_RULES, field_label)
        req["extent"] = check_extent(req.get("extent"), "field 'extent'")
    for key in ("raster", "mask", "model"):
        check_input_path("classify", key, req.get(key), allow_network)
    if "pixels" in req:
        from .pixels import decode_pixels

        req["pixels"] = decode_pixels(req["pixels"])  # (array, meta): checked before the job is queued
    if "raster" in req and not _raster_exists(req["raster"]):
        raise RequestError(f"classify: raster file not found: {req['raster']}")
    for key in ("mask", "model"):
        path = req.get(key)
        if path and (os.sep in path or path.endswith(".pt")) and not _raster_exists(path):
            raise RequestError(f"classify: '{key}' is not a file: {path}")
    if outputs:
        check_classify_outputs(req)
    if isinstance(req.get("bands"), list):
        req["bands"] = ",".join(str(b) for b in req["bands"])
    return req


def check_classify_outputs(req: dict[str, Any]) -> None:
    """Something to write, in existing folders, never over an input, another output or a foreign file."""
    keys = ("out_gpkg", "heatmap", "class_raster")
    if not any(req.get(k) for k in keys):
        raise RequestError("classify: nothing to write: give 'out_gpkg', 'heatmap' and/or 'class_raster'")
    for key in keys:
        folder = os.path.dirname(os.path.abspath(req[key])) if req.get(key) else None
        if folder and not os.path.isdir(folder):
            raise RequestError(f"classify: folder of '{key}' does not exist: {folder}")
    model = req.get("model")
    inputs = (req.get("raster"), req.get("mask"), model if model and os.path.isfile(model) else None)
    with _as_request_error("classify"):
        check_outputs({f"'{k}'": req.get(k) for k in keys}, inputs, req.get("overwrite", False))


def _check_method(req: dict[str, Any]) -> None:
    from ..methods import get_method

    method = req.setdefault("method", "pretrain")
    with _as_request_error("train"):
        cls = get_method(method)
        known = {f.name for f in __import__("dataclasses").fields(cls.Config)}
        unknown = sorted(set(req.get("options", {})) - known)
        if unknown:
            raise RSSceneError(f"method '{method}' has no option(s) {', '.join(unknown)}; "
                               f"its options: {', '.join(sorted(known))}")
        check_method_options(req.get("options", {}), lambda k: f"option '{k}'",
                             zero_means_default(cls.Config))


def train_request(body: Any, allow_network: bool = False) -> dict[str, Any]:
    req = check_fields(body, TRAIN_FIELDS, "train")
    has_data = bool(req.get("data"))
    has_polys = bool(req.get("raster") or req.get("labels"))
    if has_data == has_polys:
        raise RequestError(
            "train: give either 'data' (a dataset folder) or 'raster' + 'labels' + 'class_field'"
        )
    for key in ("data", "raster", "labels"):
        check_input_path("train", key, req.get(key), allow_network)
    if has_data and not os.path.isdir(req["data"]):
        raise RequestError(f"train: dataset folder not found: {req['data']}")
    if has_polys:
        for key in ("raster", "labels", "class_field"):
            if not req.get(key):
                raise RequestError(f"train: field '{key}' is required when training from labelled polygons")
        for key in ("raster", "labels"):
            exists = _raster_exists(req[key])
            if not exists:
                raise RequestError(f"train: {key} file not found: {req[key]}")
    if not req.get("out") and not req.get("name"):
        raise RequestError("train: give 'name' (installed into the user's models) or 'out' (a .pt path)")
    if req.get("name") is not None and not NAME.fullmatch(req["name"]):
        raise RequestError(f"train: 'name' {req['name']!r} must be a model name (letters, digits, '.', '_', "
                           "'-'; not starting with '.'), not a path")
    with _as_request_error("train"):
        check_numbers(req, TRAIN_RULES, field_label)
    _check_method(req)
    _check_train_output(req)
    if isinstance(req.get("bands"), str):
        req["bands"] = [b.strip() for b in req["bands"].split(",") if b.strip()]
    return req


def _check_train_output(req: dict[str, Any]) -> None:
    out = req.get("out")
    if out and not os.path.isdir(os.path.dirname(os.path.abspath(out))):
        raise RequestError(f"train: folder of 'out' does not exist: {os.path.dirname(os.path.abspath(out))}")
    if not out:
        from ..zoo import user_models_dir

        out = str(user_models_dir() / f"{req['name']}.pt")
    options = req.get("options", {})
    inputs = (req.get("raster"), req.get("labels"), options.get("init"), options.get("teacher"))
    with _as_request_error("train"):
        check_outputs({"'out'" if req.get("out") else "'name'": out}, inputs, req.get("overwrite", False))
