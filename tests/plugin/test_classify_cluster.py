"""The "Ray cluster" backend setting in real QGIS: the plugin starts its service with ``--ray local`` (a real
Ray cluster on this machine), the Classify dialog says "on cluster local", and a run goes through the cluster
into the same styled layers; without the setting the dialog says nothing of a cluster."""

from __future__ import annotations

import os

import pytest
from conftest import S2_BANDS, polygon_layer
from qgis.core import QgsProject, QgsSettings
from qgis.PyQt.QtCore import Qt

KEYS = ("rs_scene/ray", "rs_scene/device")


@pytest.fixture(scope="module")
def ray_manager(qgis_app):
    """A BackendManager reading the plugin's settings, with the Ray cluster set to ``local``."""
    from rs_scene_plugin.core.backend import BackendManager

    s = QgsSettings()
    before = {k: s.value(k) for k in KEYS if s.contains(k)}
    s.setValue("rs_scene/ray", "local")
    s.setValue("rs_scene/device", "cpu")
    mgr = BackendManager()
    yield mgr
    mgr.stop()
    for k in KEYS:  # other tests read the settings too: leave them as they were
        s.remove(k)
        if k in before:
            s.setValue(k, before[k])


def dialog_for(iface, manager, qtbot):
    from rs_scene_plugin.gui.classify_dialog import ClassifyDialog

    dlg = ClassifyDialog(iface, manager, [])
    qtbot.addWidget(dlg)
    return dlg


def test_the_dialog_says_on_cluster_and_runs_there(ray_manager, qgis_iface, qtbot, s2_layer) -> None:
    from rs_scene_plugin.core.diagnostics import diagnostics_text
    from rs_scene_plugin.gui.settings_dialog import SettingsDialog

    assert SettingsDialog(ray_manager).settings().ray == "local"
    dialog = dialog_for(qgis_iface, ray_manager, qtbot)
    dialog.open_for(s2_layer)  # starts the service: it joins (here: starts) the cluster before it answers
    assert "--ray local" in ray_manager.log_tail(400, requests=True)
    assert not dialog.cluster.isHidden() and "on cluster local (1 node," in dialog.cluster.text()
    text = diagnostics_text(ray_manager)
    assert "Ray cluster setting: local" in text and "classify jobs: on Ray cluster local (GCS " in text
    polys = polygon_layer(s2_layer, {"area": [(320, 96, 192, 128)]})
    QgsProject.instance().addMapLayer(polys)
    polys.selectAll()
    dialog.model.setCurrentText("sentinel2-eurosat")
    qtbot.keyClicks(dialog.band_names, S2_BANDS)
    qtbot.keyClick(dialog.band_names, Qt.Key_Return)
    dialog.input_scale.setValue(1000)
    dialog.extent.setCurrentText("Selected polygons")
    dialog.mask_layer.setLayer(polys)
    task = dialog.run()
    assert task is not None, dialog.status.text()
    assert "on cluster local" in dialog.status.text()
    qtbot.waitUntil(lambda: task.completed, timeout=240_000)
    assert task.error is None and task.result["cluster"] == "local" and len(task.added) == 2
    assert task.added[1].featureCount() == 6 and dialog.progress.value() == 100
    assert "6 tiles (6 classified" in dialog.status.text()


def test_without_the_setting_no_cluster_is_shown(manager, qgis_iface, qtbot, s2_layer) -> None:
    from rs_scene_plugin.core.diagnostics import diagnostics_text

    dialog = dialog_for(qgis_iface, manager, qtbot)
    dialog.open_for(s2_layer)
    assert manager.health.get("ray") is None
    assert dialog.cluster.isHidden() and dialog.cluster.text() == "" and dialog.cluster.suffix == ""
    assert "classify jobs: in the service process" in diagnostics_text(manager, start=False)


def test_cancel_in_the_dialog_stops_the_cluster_job(ray_manager, qgis_iface, qtbot, s2_layer) -> None:
    dialog = dialog_for(qgis_iface, ray_manager, qtbot)
    dialog.open_for(s2_layer)
    dialog.model.setCurrentText("sentinel2-eurosat")
    qtbot.keyClicks(dialog.band_names, S2_BANDS)
    qtbot.keyClick(dialog.band_names, Qt.Key_Return)
    dialog.input_scale.setValue(1000)
    dialog.tile_size.setValue(16)  # thousands of tiles, dozens of shards: long enough to cancel mid-way
    before = set(QgsProject.instance().mapLayers())
    task = dialog.run()
    qtbot.waitUntil(lambda: task.last_job.get("done", 0) > 0, timeout=120_000)  # a shard is done
    assert task.last_job["done"] < task.last_job["total"]
    qtbot.mouseClick(dialog.cancel_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: task.completed, timeout=60_000)
    assert task.cancelled, (task.error, task.last_job)
    assert not task.added and set(QgsProject.instance().mapLayers()) == before
    assert not os.path.exists(task.tmp) and "Cancelled" in dialog.status.text(), dialog.status.text()
    job = ray_manager.client().job(task.last_job["id"])
    assert job["state"] == "cancelled", job
    pids = job["metrics"].get("ray_actor_pids")
    assert pids, job["metrics"]
    qtbot.waitUntil(lambda: not any(map(running, pids)), timeout=10_000)  # the model actor was killed


def running(pid: int) -> bool:
    """A process that exists and is not a zombie waiting to be reaped."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
