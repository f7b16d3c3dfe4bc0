"""Train a model through the service: the parameters a dialog or algorithm fills, and the request."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qgis.core import QgsRasterLayer, QgsTask, QgsVectorLayer
from qgis.PyQt.QtCore import pyqtSignal

from .backend import BackendManager
from .client import BackendError, JobCancelled
from .jobs import percent, run_job
from .labels import write_labels
from .pixels import is_local_file


@dataclass
class TrainSpec:
    method: str = "pretrain"
    options: dict[str, Any] = field(default_factory=dict)  # the method's options (backbone, init, epochs, ...)
    raster: QgsRasterLayer | None = None
    labels: QgsVectorLayer | None = None
    class_field: str = ""
    data: str = ""  # a dataset folder instead of raster + labels
    name: str = ""  # installed into the user's models under this name
    out: str = ""  # or a .pt path
    val_fraction: float = 0.2
    test_fraction: float = 0.2  # held-out blocks, evaluated once after training (polygons)
    bands: str | None = None  # classify's band forms: B02,B03,... (names in order) or B02=1,B03=2,...
    tile_size: int | None = None
    input_scale: float | None = None
    nodata: float | None = None  # raw value of missing pixels, besides the raster's own
    gsd: float | None = None  # metres per pixel to cut tiles at (None: the raster's own)
    block: int | None = None  # edge of the split's spatial blocks, in tiles (None: the service's 4)
    resume: bool = False  # continue from the checkpoint a killed run of the same training left


def train_body(spec: TrainSpec, workdir: str) -> dict[str, Any]:
    """The service request; polygons are written (labelled ones only, in the raster's CRS) under ``workdir``."""
    body: dict[str, Any] = {"method": spec.method, "options": dict(spec.options),
                            "val_fraction": spec.val_fraction}
    if spec.name:
        body["name"] = spec.name
    if spec.out:
        body["out"] = spec.out
    if spec.resume:
        body["resume"] = True
    if spec.data:
        if not os.path.isdir(spec.data):
            raise ValueError(f"dataset folder not found: {spec.data}")
        body["data"] = spec.data
        return body
    if spec.raster is None or spec.labels is None or not spec.class_field:
        raise ValueError("choose a raster layer, a polygon layer and its class field (or a dataset folder)")
    source = spec.raster.source().split("|")[0]
    if not is_local_file(spec.raster):
        raise ValueError(f"layer '{spec.raster.name()}' is not a raster file the service can read; save it as "
                         "GeoTIFF first")
    body.update(raster=source, class_field=spec.class_field,
                labels=write_labels(spec.labels, spec.class_field, spec.raster.crs(),
                                    os.path.join(workdir, "labels.gpkg")))
    body["test_fraction"] = spec.test_fraction
    for key in ("bands", "tile_size", "input_scale", "nodata", "gsd", "block"):
        if getattr(spec, key) is not None:
            body[key] = getattr(spec, key)
    return body


def user_models_dir() -> Path:
    """Where the service installs models by name: the folder it resolves the same way (it runs with this
    process's environment)."""
    env = os.environ.get("RS_SCENE_MODELS")
    if env:
        return Path(env)
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "rs-scene" / "models"


def resumable_checkpoint(name: str, out: str = "") -> Path | None:
    """The checkpoint a killed training of this model left, when it says what it can resume (``.ckpt.json``
    beside it); None otherwise."""
    if not name and not out:
        return None
    ckpt = Path(f"{out}.ckpt") if out else user_models_dir() / f"{name}.pt.ckpt"
    return ckpt if ckpt.exists() and Path(f"{ckpt}.json").exists() else None


def run_training(manager: BackendManager, spec: TrainSpec, on_update: Callable[[dict[str, Any]], None],
                 is_canceled: Callable[[], bool]) -> dict[str, Any]:
    workdir = tempfile.mkdtemp(prefix="rs_scene_train_")
    try:
        return run_job(manager, "train", train_body(spec, workdir), on_update, is_canceled)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


class TrainTask(QgsTask):
    update = pyqtSignal(dict)

    def __init__(self, manager: BackendManager, spec: TrainSpec) -> None:
        super().__init__(f"RS Scene: train {spec.name}", QgsTask.CanCancel)
        self.manager, self.spec = manager, spec
        self.result: dict[str, Any] = {}
        self.error: str | None = None
        self.cancelled = self.completed = False

    def run(self) -> bool:
        try:
            self.result = run_training(self.manager, self.spec, self._update, self.isCanceled)
            return True
        except JobCancelled:
            self.cancelled = True
        except (BackendError, ValueError) as exc:
            self.error = str(exc)
        return False

    def _update(self, job: dict[str, Any]) -> None:
        self.setProgress(percent(job))
        self.update.emit(job)

    def finished(self, ok: bool) -> None:
        self.cancelled = self.cancelled or (not ok and self.error is None)
        self.completed = True
