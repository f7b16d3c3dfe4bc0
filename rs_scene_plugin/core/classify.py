"""Classify a layer: the parameters a dialog or algorithm fills, the service request built from them, and
the QgsTask that runs the job and adds the result layers on the main thread."""

from __future__ import annotations

import shutil
import tempfile
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsProject,
    QgsRasterLayer,
    QgsRectangle,
    QgsTask,
)

from .backend import BackendManager
from .client import BackendError, JobCancelled
from .jobs import percent, run_job
from .layers import add_on_top, load_grid, load_heatmap, run_name, summary
from .pixels import gdal_band_names, is_local_file, pixel_size, read_pixels, user_nodata


@dataclass
class ClassifySpec:
    """Everything one classification needs; dialogs and algorithms only fill this."""

    model: dict[str, Any]  # the model card from the service (name, classes, bands, gsd, tile_size)
    bands: str | None = None  # service form: "B02=1,B03=2,..." or None for automatic by name
    tile_size: int | None = None
    stride: int | None = None
    extent: QgsRectangle | None = None  # in the layer's CRS; None = whole layer
    mask: str | None = None  # vector file of polygons (already in the layer's CRS)
    heatmap: bool = True
    cam: str = "gradcam"
    out_gpkg: str | None = None  # None: temporary outputs
    input_scale: float | None = None
    pixel_size: float | None = None  # for layers read by value that have no native resolution
    gsd: float | str | None = None  # metres, "native", or None for the model's
    nodata: float | str | None = "layer"  # extra nodata value; "layer": the layer's 'Additional no data value'
    edge: str | None = None  # "shift", "pad", "drop"; None: the service's default (shift)
    extra: dict[str, Any] = field(default_factory=dict)
    scratch: str | None = None  # a temporary folder of inputs made for this spec (the mask): its task removes it


def remove_scratch(spec: ClassifySpec) -> None:
    if spec.scratch:
        shutil.rmtree(spec.scratch, ignore_errors=True)
        spec.scratch = None


def output_paths(spec: ClassifySpec) -> tuple[str, str | None, str | None]:
    """(grid, heatmap, temp folder to remove on failure or None)."""
    if spec.out_gpkg:
        out = Path(spec.out_gpkg)
        heat = str(out.with_name(out.stem + "_heatmap.tif")) if spec.heatmap else None
        return str(out), heat, None
    tmp = tempfile.mkdtemp(prefix="rs_scene_")
    return str(Path(tmp) / "tiles.gpkg"), (str(Path(tmp) / "heatmap.tif") if spec.heatmap else None), tmp


def request_body(spec: ClassifySpec, layer: QgsRasterLayer, grid: str, heat: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {"model": spec.model.get("path") or spec.model["name"], "out_gpkg": grid,
                            "cam": spec.cam, **spec.extra}
    if heat:
        body["heatmap"] = heat
    for key in ("bands", "tile_size", "stride", "mask", "input_scale", "gsd", "edge"):
        if getattr(spec, key) is not None:
            body[key] = getattr(spec, key)
    nodata = user_nodata(layer) if spec.nodata == "layer" else spec.nodata
    if nodata is not None:
        body["nodata"] = nodata
    if is_local_file(layer):
        body["raster"] = layer.source().split("|")[0]
        if spec.extent is not None:
            e = spec.extent
            body["extent"] = [e.xMinimum(), e.yMinimum(), e.xMaximum(), e.yMaximum()]
    return body


class ClassifyJob:
    """One classification, prepared where the layer lives (main or algorithm thread) and run anywhere."""

    def __init__(self, spec: ClassifySpec, layer: QgsRasterLayer, grid: str, heat: str | None) -> None:
        self.spec, self.layer_name = spec, layer.name()
        self.body = request_body(spec, layer, grid, heat)
        self.by_value = "raster" not in self.body
        if self.by_value:  # a provider clone may be read from another thread
            self._provider = layer.dataProvider().clone()
            self._extent = spec.extent or layer.extent()
            self._res = pixel_size(layer, spec.pixel_size or float(spec.model.get("gsd") or 1.0))
            self._crs_wkt = layer.crs().toWkt(QgsCoordinateReferenceSystem.WKT_PREFERRED_GDAL)
            self._names = gdal_band_names(layer)

    def run(self, manager: BackendManager, on_update: Callable[[dict[str, Any]], None],
            is_canceled: Callable[[], bool]) -> dict[str, Any]:
        if self.by_value:
            self.body["pixels"] = read_pixels(self._provider, self._extent, self._res, self._crs_wkt, self._names)
        return run_job(manager, "classify", self.body, on_update, is_canceled)


class ClassifyTask(QgsTask):
    """Runs in a QGIS worker thread; layers are created in ``finished`` (the main thread)."""

    def __init__(self, manager: BackendManager, spec: ClassifySpec, layer: QgsRasterLayer,
                 on_finished: Callable[[ClassifyTask], None] | None = None,
                 project: QgsProject | None = None) -> None:
        super().__init__(f"RS Scene: classify {layer.name()}", QgsTask.CanCancel)
        self.manager, self.spec, self.layer = manager, spec, layer
        self.layer_name, self.project = layer.name(), project or QgsProject.instance()
        self.grid_path, self.heat_path, self.tmp = output_paths(spec)
        self.job = ClassifyJob(spec, layer, self.grid_path, self.heat_path)
        self.result: dict[str, Any] = {}
        self.error: str | None = None
        self.cancelled = False
        self.completed = False  # set last in finished(): the C++ task may be gone after that
        self.added: list[Any] = []
        self.on_finished = on_finished
        self.last_job: dict[str, Any] = {}

    def run(self) -> bool:
        try:
            self.setProgress(1)
            self.result = self.job.run(self.manager, self._update, self.isCanceled)
            return True
        except JobCancelled:
            self.cancelled = True
        except (BackendError, ValueError) as exc:
            self.error = str(exc)
        except Exception:  # noqa: BLE001 -- shown to the user, never a crash of the task manager
            self.error = traceback.format_exc()
        return False

    def _update(self, job: dict[str, Any]) -> None:
        self.last_job = job
        self.setProgress(max(1.0, percent(job)))

    def finished(self, ok: bool) -> None:
        if ok:
            try:
                self._add_layers()
            except Exception as exc:  # noqa: BLE001 -- a result that cannot be loaded is a failure, not a crash
                ok, self.error = False, f"the results could not be loaded: {exc}"
        if not ok:
            self.cancelled = self.cancelled or self.isCanceled()
            self._discard()
        remove_scratch(self.spec)
        self.completed = True
        if self.on_finished is not None:
            self.on_finished(self)

    def _add_layers(self) -> None:
        classes = self.spec.model.get("classes", [])
        layers = []
        model = self.spec.model["name"]
        if self.heat_path:
            layers.append(load_heatmap(self.heat_path, run_name(self.layer_name, f"attention, {self.spec.cam}",
                                                                 model, project=self.project)))
        layers.append(load_grid(self.grid_path, run_name(self.layer_name, "classes", model, project=self.project),
                                classes))
        add_on_top(self.project, layers)  # above the raster and above every earlier run's results
        self.added = layers

    def _discard(self) -> None:
        if self.tmp:
            shutil.rmtree(self.tmp, ignore_errors=True)

    @property
    def summary(self) -> str:
        return summary(self.result)


def duration_text(seconds: float) -> str:
    if seconds < 90:
        return f"{max(round(seconds), 1)} s"
    if seconds < 5400:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"


class EstimateTask(QgsTask):
    """The ETA before a run: the service classifies a sample at the layer's centre with the same settings
    (nothing is written) and scales it to the run's tiles. Layers from files only."""

    def __init__(self, manager: BackendManager, spec: ClassifySpec, layer: QgsRasterLayer,
                 on_finished: Callable[[EstimateTask], None] | None = None) -> None:
        super().__init__(f"RS Scene: estimate {layer.name()}", QgsTask.Flags())
        self.manager, self.spec, self.layer_name, self.on_finished = manager, spec, layer.name(), on_finished
        self.body: dict[str, Any] | None = None
        if is_local_file(layer):  # the request is built here, on the thread that owns the layer
            folder = tempfile.gettempdir()  # the service checks the folders exist; it writes nothing there
            self.body = request_body(spec, layer, str(Path(folder) / "rs_scene_estimate.gpkg"),
                                     str(Path(folder) / "rs_scene_estimate.tif") if spec.heatmap else None)
        self.result: dict[str, Any] = {}
        self.error: str | None = None
        self.completed = False

    def run(self) -> bool:
        if self.body is None:
            self.error = (f"Layer '{self.layer_name}' is not a file the service can read: its time shows as "
                          "the run goes.")
            return False
        try:
            self.result = self.manager.client().estimate(self.body)
            return True
        except (BackendError, ValueError) as exc:
            self.error = str(exc)
        except Exception:  # noqa: BLE001 -- shown to the user, never a crash of the task manager
            self.error = traceback.format_exc()
        return False

    def finished(self, ok: bool) -> None:
        remove_scratch(self.spec)
        self.completed = True
        if self.on_finished is not None:
            self.on_finished(self)

    @property
    def text(self) -> str:
        return (f"About {duration_text(self.result['eta_s'])} for {self.result['tiles']} tiles on this machine "
                "(measured on a sample at the layer's centre)."
                + "".join(f"\n{w}" for w in self.result.get("warnings") or []))
