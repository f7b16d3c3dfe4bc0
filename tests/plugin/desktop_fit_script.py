"""Run inside the real QGIS desktop (``qgis --code``) on a 1366 x 768 screen: open every RS Scene dialog, click
through Classify (model, GSD, nodata, Estimate) and Train, check that no control lies off the screen (inside a
scroll area: that it can be scrolled into view), save screenshots and a JSON report, then quit."""

import json
import os
import traceback

from qgis.core import QgsProject, QgsRasterLayer
from qgis.PyQt.QtCore import QPoint, QRect, QTimer
from qgis.PyQt.QtWidgets import (
    QAbstractButton,
    QAbstractItemView,
    QApplication,
    QComboBox,
    QLineEdit,
    QScrollArea,
    QSpinBox,
)
from qgis.utils import iface, plugins

OUT = os.environ["RS_SCENE_DESKTOP_OUT"]
SCENE = os.environ["RS_SCENE_DESKTOP_SCENE"]
report = {"dialogs": {}, "steps": []}
state = {}


def finish(error=None):
    if error:
        report["error"] = error
    with open(os.path.join(OUT, "fit_report.json"), "w") as f:
        json.dump(report, f, indent=1)
    try:
        for dlg in state.get("open", []):
            dlg.hide()
        iface.newProject(False)
    finally:
        iface.actionExit().trigger()


def guarded(fn):
    def wrapper():
        try:
            fn()
        except Exception:  # noqa: BLE001 -- an uncaught error would open a modal dialog and hang QGIS
            finish(traceback.format_exc())
    return wrapper


def global_rect(w):
    return QRect(w.mapToGlobal(QPoint(0, 0)), w.size())


def scroll_parent(w):
    p = w.parentWidget()
    while p is not None:
        if isinstance(p, QScrollArea):
            return p
        p = p.parentWidget()
    return None


def label(w):
    text = w.text() if hasattr(w, "text") else ""
    return f"{type(w).__name__} '{text}' {w.objectName()}".strip()


def check(name, dlg):
    """Where the dialog and each of its controls lie against the screen's free area: a control outside every
    scroll area must lie on the screen; one inside must come into view when scrolled to, in a scroll area
    that lies on the screen."""
    QApplication.processEvents()
    screen = QApplication.primaryScreen().availableGeometry()
    frame = dlg.frameGeometry()
    off = [f"{label(a)} scroll area at {global_rect(a).getRect()}" for a in dlg.findChildren(QScrollArea)
           if a.isVisibleTo(dlg) and not screen.contains(global_rect(a))]
    for w in dlg.findChildren((QAbstractButton, QComboBox, QLineEdit, QSpinBox)):
        if not w.isVisibleTo(dlg) or w.parentWidget() is None or isinstance(w.parentWidget(), QComboBox):
            continue
        area = scroll_parent(w)
        view = w.parentWidget().parentWidget()
        if isinstance(view, QAbstractItemView):  # a cell widget: scroll its table to it first
            view.scrollTo(view.indexAt(w.geometry().center()))
        if area is not None:
            area.ensureWidgetVisible(view if isinstance(view, QAbstractItemView) else w)
            area.ensureWidgetVisible(w)
            QApplication.processEvents()
            if w.visibleRegion().isEmpty():
                off.append(f"{label(w)} cannot be scrolled into view")
        elif not screen.contains(global_rect(w)):
            off.append(f"{label(w)} at {global_rect(w).getRect()}")
    report["dialogs"][name] = {"frame": list(frame.getRect()), "screen": list(screen.getRect()),
                               "fits": screen.contains(frame), "off_screen": off,
                               "scroll_areas": len(dlg.findChildren(QScrollArea))}


def shoot(name, dlg):
    for area in dlg.findChildren(QScrollArea):
        area.verticalScrollBar().setValue(0)
    QApplication.processEvents()
    dlg.grab().save(os.path.join(OUT, f"fit_{name}.png"))
    QApplication.primaryScreen().grabWindow(0).save(os.path.join(OUT, f"fit_{name}_screen.png"))


@guarded
def start():
    win = iface.mainWindow()
    win.setGeometry(QApplication.primaryScreen().availableGeometry())
    layer = QgsRasterLayer(SCENE, "aberystwyth", "gdal")
    QgsProject.instance().addMapLayer(layer)
    plugin = plugins["rs_scene_plugin"]
    dlg = plugin.show_classify(layer)
    state["open"] = [dlg]
    report["models"] = [dlg.model.itemText(i) for i in range(dlg.model.count())]
    dlg.model.setCurrentText("sentinel2-eurosat")
    dlg.options.gsd_mode.setCurrentIndex(1)  # native
    dlg.options.nodata.setText("0")
    dlg.options.gsd_mode.setCurrentIndex(0)
    report["classify_scale"] = dlg.input_scale.value()
    check("classify", dlg)
    dlg.estimate_button.click()
    state["classify"] = dlg
    QTimer.singleShot(500, wait_estimate)


@guarded
def wait_estimate():
    dlg = state["classify"]
    task = dlg.estimate_task
    if task is None or not task.completed:
        QTimer.singleShot(500, wait_estimate)
        return
    report["estimate"] = dlg.status.text()
    shoot("classify", dlg)
    dlg.hide()
    plugin = plugins["rs_scene_plugin"]
    train = plugin.show_train()
    state["open"].append(train)
    QApplication.processEvents()
    buttons = [b for b in train.findChildren(QAbstractButton) if b.text() in ("Train", "Cancel", "Close")]
    report["train_buttons"] = sorted(b.text() for b in buttons if b.isVisible())
    check("train", train)
    shoot("train", train)
    train.hide()
    for name, show in (("export", plugin.show_export), ("settings", plugin.show_settings),
                       ("install", plugin.show_install), ("diagnostics", plugin.show_diagnostics)):
        other = show()
        state["open"].append(other)
        check(name, other)
        shoot(name, other)
        other.hide()
    finish()


QTimer.singleShot(1500, start)
