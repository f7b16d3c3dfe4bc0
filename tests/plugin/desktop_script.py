"""Run inside the real QGIS desktop (``qgis --code``): classify the Sentinel-2 scene through the plugin's
Classify dialog, save screenshots and a JSON report, then quit. Paths come from RS_SCENE_DESKTOP_* variables."""

import json
import os
import traceback

from qgis.core import (
    QgsApplication,
    QgsContrastEnhancement,
    QgsProject,
    QgsRasterLayer,
    QgsRasterMinMaxOrigin,
    QgsRectangle,
)
from qgis.PyQt.QtCore import QTimer
from qgis.utils import iface, plugins

OUT = os.environ["RS_SCENE_DESKTOP_OUT"]
SCENE = os.environ["RS_SCENE_DESKTOP_SCENE"]
BANDS = "B02,B03,B04,B05,B06,B07,B08,B8A,B11,B12"
report = {"steps": []}
state = {}


def log(step):
    report["steps"].append(step)


def finish(error=None):
    if error:
        report["error"] = error
    with open(os.path.join(OUT, "desktop_report.json"), "w") as f:
        json.dump(report, f, indent=1)
    try:
        iface.newProject(False)  # quitting 3.22 with layers loaded can crash
    finally:
        iface.actionExit().trigger()


def guarded(fn):
    def wrapper():
        try:
            fn()
        except Exception:  # noqa: BLE001 -- an uncaught error would open a modal dialog and hang QGIS
            finish(traceback.format_exc())
    return wrapper


@guarded
def start():
    report["plugins"] = sorted(plugins)
    layer = QgsRasterLayer(SCENE, "aberystwyth", "gdal")
    renderer = layer.renderer()  # true colour: B04, B03, B02
    renderer.setRedBand(3), renderer.setGreenBand(2), renderer.setBlueBand(1)
    layer.setContrastEnhancement(QgsContrastEnhancement.StretchToMinimumMaximum, QgsRasterMinMaxOrigin.CumulativeCut)
    QgsProject.instance().addMapLayer(layer)
    state["layer"] = layer
    # a 6 x 5 tile window around the coast at Aberystwyth: sea, town and farmland
    ext, res = layer.extent(), layer.rasterUnitsPerPixelX()
    x0, y1 = ext.xMinimum() + 64 * res, ext.yMaximum() - 320 * res
    area = QgsRectangle(x0, y1 - 5 * 64 * res, x0 + 6 * 64 * res, y1)
    state["area"] = area
    iface.mapCanvas().setDestinationCrs(layer.crs())
    iface.mapCanvas().setExtent(area)
    iface.mapCanvas().refresh()
    plugin = plugins["rs_scene_plugin"]
    dlg = plugin.show_classify(layer)
    report["models"] = sorted(dlg.models)
    dlg.model.setCurrentText("sentinel2-eurosat")
    dlg.band_names.setText(BANDS)
    dlg._apply_band_names()
    dlg.input_scale.setValue(1000)
    dlg.extent.setCurrentText("Map canvas")
    task = dlg.run()
    if task is None:
        raise RuntimeError("the dialog refused to run: " + dlg.status.text())
    state["dlg"], state["task"] = dlg, task
    log("classify started")
    QTimer.singleShot(500, wait_for_task)


@guarded
def wait_for_task():
    task = state["task"]
    if not task.completed:
        QTimer.singleShot(500, wait_for_task)
        return
    dlg = state["dlg"]
    report["status"] = dlg.status.text()
    report["error_task"] = task.error
    report["layers"] = [{"name": lyr.name(), "type": lyr.type(), "renderer": lyr.renderer().type()
                         if lyr.renderer() else None} for lyr in QgsProject.instance().layerTreeRoot().layerOrder()]
    report["message_bar"] = [w.text() for w in iface.messageBar().items()] if hasattr(
        iface.messageBar(), "items") else []
    dlg.hide()
    log("classify finished")
    canvas = iface.mapCanvas()
    canvas.setExtent(state["area"])
    canvas.mapCanvasRefreshed.connect(on_rendered)
    canvas.refresh()


def on_rendered():
    iface.mapCanvas().mapCanvasRefreshed.disconnect(on_rendered)
    QTimer.singleShot(800, shoot)


@guarded
def shoot():
    canvas = iface.mapCanvas()
    iface.mainWindow().grab().save(os.path.join(OUT, "desktop_classify.png"))
    canvas.grab().save(os.path.join(OUT, "desktop_canvas.png"))
    log("screenshots saved")
    # the same view with the results hidden, to prove the grid and heatmap change what is drawn
    root = QgsProject.instance().layerTreeRoot()
    for lyr in state["task"].added:
        root.findLayer(lyr.id()).setItemVisibilityChecked(False)
    canvas.mapCanvasRefreshed.connect(on_rendered_base)
    canvas.refresh()


def on_rendered_base():
    iface.mapCanvas().mapCanvasRefreshed.disconnect(on_rendered_base)
    QTimer.singleShot(800, guarded(shoot_base))


def shoot_base():
    iface.mapCanvas().grab().save(os.path.join(OUT, "desktop_canvas_raster_only.png"))
    log("base screenshot saved")
    finish()


iface.mainWindow().resize(1600, 1000)
QTimer.singleShot(1500, start)
QgsApplication.processEvents()
