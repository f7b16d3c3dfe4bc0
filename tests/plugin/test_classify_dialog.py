"""The Classify dialog driven like a user: styled grid + heatmap above the raster; faults give clear messages."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from conftest import S2_BANDS, polygon_layer
from qgis.core import Qgis, QgsProject
from qgis.PyQt.QtCore import Qt


def bar_texts(bar, level):
    # imported once the plugin folder is staged
    from rs_scene_plugin.gui.messages import bar_texts as texts

    return texts(bar, level)


@pytest.fixture
def dialog(qgis_iface, manager, qtbot):
    from rs_scene_plugin.gui.classify_dialog import ClassifyDialog

    dlg = ClassifyDialog(qgis_iface, manager, [])
    qtbot.addWidget(dlg)
    return dlg


def prepare(dialog, qtbot, layer, polygons=None) -> None:
    """A user's choices: the layer, sentinel2-eurosat, the band names typed in, scale 1000, selected polygons."""
    dialog.open_for(layer)
    dialog.model.setCurrentText("sentinel2-eurosat")
    qtbot.keyClicks(dialog.band_names, S2_BANDS)
    qtbot.keyClick(dialog.band_names, Qt.Key_Return)
    dialog.input_scale.setValue(1000)
    if polygons is not None:
        dialog.extent.setCurrentText("Selected polygons")
        dialog.mask_layer.setLayer(polygons)


def selection(layer, box=(320, 96, 192, 128)):
    polys = polygon_layer(layer, {"area": [box]})
    QgsProject.instance().addMapLayer(polys)
    polys.selectAll()
    return polys


def wait_for(qtbot, task, timeout=240_000) -> None:
    """Until the task's finished() ran on the main thread (the task manager deletes the C++ task after)."""
    qtbot.waitUntil(lambda: task.completed, timeout=timeout)


def test_dialog_adds_a_styled_grid_and_heatmap_above_the_raster(dialog, qtbot, s2_layer, qgis_iface) -> None:
    polys = selection(s2_layer)
    prepare(dialog, qtbot, s2_layer, polys)
    assert dialog.bands.mapping()["B8A"] == 8 and dialog.bands.mapping()["B12"] == 10
    assert "AnnualCrop" in dialog.model_info.text() and "B8A" in dialog.model_info.text()
    qtbot.mouseClick(dialog.run_button, Qt.LeftButton)
    task = dialog.task
    assert task is not None, dialog.status.text()
    wait_for(qtbot, task)
    assert task.error is None and len(task.added) == 2
    heat, grid = task.added
    assert grid.featureCount() == 6
    renderer = grid.renderer()
    assert renderer.type() == "categorizedSymbol" and renderer.classAttribute() == "class_name"
    colours = {c.value(): c.symbol().color().name() for c in renderer.categories()}
    card = dialog.card()
    assert all(colours[c["name"]] == c["color"].lower() for c in card["classes"])
    assert heat.renderer().type() == "singlebandpseudocolor" and 0 < heat.renderer().opacity() < 1
    order = [node.layer() for node in QgsProject.instance().layerTreeRoot().findLayers()]
    assert order.index(grid) < order.index(heat) < order.index(s2_layer), "grid, heatmap, raster from the top"
    assert "6 tiles (6 classified" in dialog.status.text()
    mask_folder = os.path.dirname(task.job.body["mask"])
    assert os.path.basename(mask_folder).startswith("rs_scene_mask_") and not os.path.exists(mask_folder)
    assert task.spec.scratch is None


def test_a_wrongly_scaled_layer_warns_in_the_message_bar(dialog, qtbot, s2_layer, qgis_iface) -> None:
    """The scene holds reflectance x1000; left on 'automatic', 16-bit values are divided by 10000: the run
    goes through, and the user is told why its classes cannot be trusted and what to set."""
    prepare(dialog, qtbot, s2_layer, selection(s2_layer))
    dialog.input_scale.setValue(0)  # automatic
    qtbot.mouseClick(dialog.estimate_button, Qt.LeftButton)  # the estimate says it before any run
    estimate = dialog.estimate_task
    assert estimate is not None, dialog.status.text()
    wait_for(qtbot, estimate)
    assert dialog.status.text().startswith("About ") and "e.g. 1000" in dialog.status.text()
    qgis_iface.messageBar().clearWidgets()
    qtbot.mouseClick(dialog.run_button, Qt.LeftButton)
    task = dialog.task
    assert task is not None, dialog.status.text()
    wait_for(qtbot, task)
    assert task.error is None and len(task.added) == 2
    warnings = bar_texts(qgis_iface.messageBar(), Qgis.Warning)
    assert len(warnings) == 1 and "(Input scale, e.g. 1000)" in warnings[0], warnings
    assert not bar_texts(qgis_iface.messageBar(), Qgis.Success)
    assert "predictions are likely wrong" in dialog.status.text()


def test_missing_bands_are_named_and_nothing_runs(dialog, qtbot, s2_layer) -> None:
    dialog.open_for(s2_layer)
    dialog.model.setCurrentText("aerial-rgb")  # 10 unnamed bands: nothing says which is red
    qtbot.mouseClick(dialog.run_button, Qt.LeftButton)
    assert dialog.task is None
    assert "lacks band(s) red, green, blue" in dialog.status.text()
    assert "aberystwyth" in dialog.status.text()


def test_polygons_off_the_layer_are_refused_and_leave_no_mask_behind(dialog, qtbot, s2_layer) -> None:
    def masks() -> set[Path]:
        return set(Path(tempfile.gettempdir()).glob("rs_scene_mask_*"))

    before = masks()
    prepare(dialog, qtbot, s2_layer, selection(s2_layer, box=(2000, 2000, 100, 100)))
    for button in (dialog.run_button, dialog.estimate_button):
        qtbot.mouseClick(button, Qt.LeftButton)
        assert dialog.task is None and dialog.estimate_task is None
        assert "does not overlap layer" in dialog.status.text(), dialog.status.text()
        assert masks() == before


def test_service_not_installed_says_how_to_fix(qgis_iface, qtbot, s2_layer, tmp_path: Path) -> None:
    from rs_scene_plugin.core.backend import BackendManager
    from rs_scene_plugin.core.settings import BackendSettings
    from rs_scene_plugin.gui.classify_dialog import ClassifyDialog

    subprocess.run([sys.executable, "-m", "venv", "--without-pip", "--copies", str(tmp_path / "bare")], check=True)
    for python, expect in (("", "No backend Python interpreter is configured"),
                           (str(tmp_path / "nope" / "python"), "does not exist"),
                           (sys.executable, "is the program running QGIS itself"),
                           (str(tmp_path / "bare" / "bin" / "python"),
                            "has no rs_scene package: use RS Scene > Install backend")):
        mgr = BackendManager(lambda p=python: BackendSettings(python=p))
        dlg = ClassifyDialog(qgis_iface, mgr, [])
        qtbot.addWidget(dlg)
        dlg.open_for(s2_layer)
        assert expect in dlg.status.text()
        assert dlg.model.count() == 0


def test_cancel_leaves_no_layers_or_files(dialog, qtbot, s2_layer) -> None:
    prepare(dialog, qtbot, s2_layer)
    dialog.tile_size.setValue(16)  # thousands of tiles: long enough to cancel mid-way
    before = set(QgsProject.instance().mapLayers())
    task = dialog.run()
    qtbot.waitUntil(lambda: task.last_job.get("done", 0) > 0, timeout=120_000)
    qtbot.mouseClick(dialog.cancel_button, Qt.LeftButton)
    wait_for(qtbot, task)
    assert task.cancelled and not task.added
    assert set(QgsProject.instance().mapLayers()) == before
    assert not os.path.exists(task.tmp), "temporary outputs must be removed"
    assert "Cancelled" in dialog.status.text()


def test_killed_service_fails_cleanly_and_next_run_restarts_it(dialog, qtbot, s2_layer, manager,
                                                               qgis_iface) -> None:
    prepare(dialog, qtbot, s2_layer)
    dialog.tile_size.setValue(16)  # the whole layer in 16-px tiles: thousands, a job long enough to be seen running
    task = dialog.run()
    qtbot.waitUntil(lambda: task.last_job.get("state") == "running", timeout=120_000)
    old_pid = manager.pid()
    os.kill(old_pid, signal.SIGKILL)
    wait_for(qtbot, task)
    assert not task.added and "service stopped during the job (it was killed (SIGKILL" in task.error
    assert "stopped during the job" in dialog.status.text()
    [bar] = bar_texts(qgis_iface.messageBar(), Qgis.Critical)
    assert "it was killed (SIGKILL" in bar and "Log tail" not in bar, bar  # the cause, not a cut-off log
    assert '"GET /' not in task.error and '"POST /' not in task.error, "no HTTP access lines in the log tail"
    assert not os.path.exists(task.tmp)
    dialog.tile_size.setValue(0)
    task = dialog.run()
    wait_for(qtbot, task)
    assert task.error is None and len(task.added) == 2
    assert manager.pid() not in (None, old_pid)


def test_estimate_shows_the_time_before_a_run_and_adds_nothing(dialog, qtbot, s2_layer) -> None:
    polys = selection(s2_layer)
    prepare(dialog, qtbot, s2_layer, polys)
    layers_before = set(QgsProject.instance().mapLayers())
    qtbot.mouseClick(dialog.estimate_button, Qt.LeftButton)
    task = dialog.estimate_task
    assert task is not None, dialog.status.text()
    wait_for(qtbot, task)
    assert task.error is None, task.error
    assert task.result["tiles"] == 6 and task.result["eta_s"] > 0  # the 3 x 2 tiles under the selection
    text = dialog.status.text()
    assert text.startswith("About ") and "for 6 tiles" in text and task.result["warnings"] == [], text
    assert set(QgsProject.instance().mapLayers()) == layers_before
    assert dialog.estimate_button.isEnabled() and task.spec.scratch is None
    assert not os.path.exists(task.body["mask"].rsplit("/", 1)[0]), "the estimate's mask must go"
