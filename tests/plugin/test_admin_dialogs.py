"""Backend settings, diagnostics, install and export, driven through their dialogs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import BACKEND_PYTHON, ROOT, S2_BANDS, polygon_layer, small_extent
from qgis.core import QgsApplication, QgsRasterLayer, QgsVectorLayer
from qgis.PyQt.QtCore import Qt


@pytest.fixture
def own_manager():
    from rs_scene_plugin.core.backend import BackendManager

    mgr = BackendManager()
    yield mgr
    mgr.stop()


def test_settings_save_and_test_starts_the_service(own_manager, qtbot) -> None:
    from rs_scene_plugin.core.settings import BackendSettings
    from rs_scene_plugin.gui.settings_dialog import SettingsDialog

    dlg = SettingsDialog(own_manager)
    qtbot.addWidget(dlg)
    dlg.python.setFilePath(sys.executable)
    qtbot.mouseClick(dlg.save_button, Qt.LeftButton)
    assert "is the program running QGIS itself" in dlg.status.text()
    dlg.python.setFilePath(BACKEND_PYTHON)
    dlg.device.setCurrentText("cpu")
    qtbot.mouseClick(dlg.test_button, Qt.LeftButton)
    assert "Service running" in dlg.status.text() and "device cpu" in dlg.status.text(), dlg.status.text()
    saved = BackendSettings.load()
    assert saved.python == BACKEND_PYTHON and saved.device == "cpu"
    assert own_manager.is_running()


def test_diagnostics_copies_interpreter_versions_device_and_log(own_manager, qtbot) -> None:
    from rs_scene_plugin.core.settings import BackendSettings
    from rs_scene_plugin.gui.settings_dialog import DiagnosticsDialog

    BackendSettings(python=BACKEND_PYTHON, device="cpu").save()
    dlg = DiagnosticsDialog(own_manager)
    qtbot.addWidget(dlg)
    text = dlg.text.toPlainText()
    for part in (f"backend interpreter: {BACKEND_PYTHON}", "QGIS 3.", "torch 2.", "device: cpu",
                 "service log", "listening on http://127.0.0.1:"):
        assert part in text, part
    assert QgsApplication.clipboard().text() == text


def _base_python() -> str:
    """The interpreter the project's .venv was made from (make setup's base)."""
    cfg = dict(line.split(" = ", 1) for line in (ROOT / ".venv" / "pyvenv.cfg").read_text().splitlines()
               if " = " in line)
    return cfg["executable"]


def test_install_offers_only_pythons_that_run(own_manager, qtbot, tmp_path: Path) -> None:
    """A pyenv shim for a version that is not installed exits 127: it is neither offered nor accepted."""
    from rs_scene_plugin.gui.install_dialog import InstallDialog

    shim = tmp_path / "python3.12"
    shim.write_text("#!/bin/sh\necho 'pyenv: python3.12: command not found' >&2\nexit 127\n")
    shim.chmod(0o755)
    dlg = InstallDialog(own_manager)
    qtbot.addWidget(dlg)
    dlg.find_pythons([str(shim), _base_python()])
    offered = [dlg.base.itemText(i) for i in range(dlg.base.count())]
    assert _base_python() in offered and str(shim) not in offered, offered
    assert all(dlg.base.itemData(i).startswith("3.") for i in range(dlg.base.count()))
    assert os.path.realpath(sys.executable) not in map(os.path.realpath, offered)
    dlg.base.setEditText(str(shim))
    assert dlg.install() is None and "exit code 127" in dlg.status.text(), dlg.status.text()


def test_install_backend_sizes_then_installs_the_runtime_set_with_onnx(own_manager, qtbot, tmp_path: Path) -> None:
    """The real install code end to end, with one shortcut: before the install step the new environment is
    given the project's .venv site-packages by a .pth line, so pip resolves make setup's runtime set
    (backend[bench,ray]: torch, ONNX Runtime, Ray...), finds those already satisfied and installs the backend
    alone instead of copying 6 GB. The size check before it is the real dry run of the full set."""
    from rs_scene_plugin.core.backend import BackendManager
    from rs_scene_plugin.core.settings import BackendSettings
    from rs_scene_plugin.gui.install_dialog import InstallDialog

    dlg = InstallDialog(own_manager)
    qtbot.addWidget(dlg)
    assert dlg.package.text() == str(ROOT / "backend")
    dlg.base.setEditText(_base_python())
    venv = tmp_path / "venv"
    dlg.venv.setText(str(venv))
    task = dlg.install()
    assert task is not None and task.size, dlg.status.text()
    qtbot.waitUntil(lambda: task.completed, timeout=400_000)
    assert task.sized is not None, dlg.log.toPlainText()[-3000:]
    total, count, _ = task.sized
    assert total > 1e9 and count > 20, task.sized  # torch alone is over 1 GB: the full set was resolved
    assert "pip will download" in dlg.status.text() and " GB for " in dlg.status.text()
    assert dlg.install_button.text().startswith("Download and install (")
    assert "[bench,ray]" in dlg.log.toPlainText(), "the runtime extras make setup installs"
    site = subprocess.run([str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                          capture_output=True, text=True, check=True).stdout.strip()
    main_site = next((ROOT / ".venv" / "lib").glob("python3*/site-packages"))
    Path(site, "project_venv.pth").write_text(f"{main_site}\n")
    task = dlg.install()
    assert task is not None and not task.size
    qtbot.waitUntil(lambda: task.completed, timeout=400_000)
    log = dlg.log.toPlainText()
    assert task.python == str(venv / "bin" / "python"), log[-3000:]
    assert "Requirement already satisfied: onnxruntime" in log, "ONNX Runtime is part of what was installed"
    assert "Installed" in dlg.status.text() and dlg.progress.value() == 100
    assert BackendSettings.load().python == task.python
    out = subprocess.run([task.python, "-c", "import rs_scene; print(rs_scene.__file__)"], capture_output=True,
                         text=True, check=True)
    assert str(venv) in out.stdout
    mgr = BackendManager(lambda: BackendSettings(python=task.python, device="cpu"))
    try:
        device = mgr.client().health()["device"]
    finally:
        mgr.stop()
    assert device["type"] == "cpu" and device["runtime"] == "onnx" and device["onnxruntime"], device
    BackendSettings(python=BACKEND_PYTHON, device="cpu").save()  # not the temporary venv for later sessions


def test_failed_install_removes_the_venv(own_manager, qtbot, tmp_path: Path) -> None:
    from rs_scene_plugin.gui.install_dialog import InstallDialog

    dlg = InstallDialog(own_manager)
    qtbot.addWidget(dlg)
    dlg.base.setEditText(_base_python())
    dlg.venv.setText(str(tmp_path / "venv"))
    dlg.package.setText(str(tmp_path / "no-such-backend"))
    dlg.pip_options.setText("--no-index")
    task = dlg.install()
    qtbot.waitUntil(lambda: task.completed, timeout=240_000)
    assert task.python is None and "pip install failed" in dlg.status.text(), dlg.status.text()
    assert not (tmp_path / "venv").exists()


def test_export_grid_heatmap_and_chips(manager, qgis_processing, s2_layer, qtbot, qgis_iface, tmp_path) -> None:
    import processing

    from rs_scene_plugin.gui.export_dialog import ExportDialog
    from rs_scene_plugin.processing.provider import RSSceneProvider

    provider = RSSceneProvider(manager)
    QgsApplication.processingRegistry().addProvider(provider)
    try:
        ext = small_extent(s2_layer)
        res = processing.run("rs_scene:classify", {
            "INPUT": s2_layer, "MODEL": "sentinel2-eurosat", "BANDS": S2_BANDS, "INPUT_SCALE": 1000,
            "EXTENT": f"{ext.xMinimum()},{ext.xMaximum()},{ext.yMinimum()},{ext.yMaximum()} [EPSG:27700]",
            "OUTPUT_GRID": str(tmp_path / "grid.gpkg"), "OUTPUT_HEATMAP": str(tmp_path / "heat.tif")})
    finally:
        QgsApplication.processingRegistry().removeProvider(provider)
    grid = QgsVectorLayer(res["OUTPUT_GRID"], "grid", "ogr")
    heat = QgsRasterLayer(res["OUTPUT_HEATMAP"], "heat")
    from qgis.core import QgsProject

    labels = polygon_layer(s2_layer, {"sea": [(0, 0, 64, 64)], "land": [(320, 0, 64, 64)]})
    QgsProject.instance().addMapLayers([grid, heat, labels])
    dlg = ExportDialog(qgis_iface)
    qtbot.addWidget(dlg)
    dlg.grid_layer.setLayer(grid)
    for ext_ in ("geojson", "shp", "csv", "gpkg"):
        dlg.grid_file.setFilePath(str(tmp_path / f"out.{ext_}"))
        qtbot.mouseClick(dlg.grid_button, Qt.LeftButton)
        assert "exported" in dlg.status.text(), dlg.status.text()
        if ext_ != "csv":
            assert QgsVectorLayer(str(tmp_path / f"out.{ext_}"), "x", "ogr").featureCount() == 6
    header = (tmp_path / "out.csv").read_text().splitlines()[0]
    assert header.startswith("WKT") and "class_name" in header
    dlg.grid_file.setFilePath(str(tmp_path / "out.xlsx"))
    qtbot.mouseClick(dlg.grid_button, Qt.LeftButton)
    assert "use one of" in dlg.status.text()
    dlg.heat_layer.setLayer(heat)
    dlg.heat_file.setFilePath(str(tmp_path / "copy.tif"))
    qtbot.mouseClick(dlg.heat_button, Qt.LeftButton)
    assert QgsRasterLayer(str(tmp_path / "copy.tif"), "c").width() == heat.width()
    dlg.chip_raster.setLayer(s2_layer)
    dlg.chip_polygons.setLayer(labels)
    dlg.chip_field.setField("landcover")
    dlg.chip_size.setValue(32)
    dlg.chip_folder.setFilePath(str(tmp_path / "chips"))
    qtbot.mouseClick(dlg.chip_button, Qt.LeftButton)
    assert "8 chips written" in dlg.status.text(), dlg.status.text()
    assert sorted(os.listdir(tmp_path / "chips")) == ["land", "sea"]
    # only our heatmaps are exported as heatmaps: the scene itself is refused, not copied
    dlg.heat_layer.setLayer(s2_layer)
    dlg.heat_file.setFilePath(str(tmp_path / "scene.tif"))
    qtbot.mouseClick(dlg.heat_button, Qt.LeftButton)
    assert "is not an RS Scene heatmap" in dlg.status.text() and not (tmp_path / "scene.tif").exists()
    # a relative chip folder: refused while the project has no folder, then taken in the project's folder
    QgsProject.instance().setFileName("")
    dlg.chip_folder.setFilePath("rel_chips")
    qtbot.mouseClick(dlg.chip_button, Qt.LeftButton)
    assert "is relative and the project has no folder yet" in dlg.status.text(), dlg.status.text()
    assert not Path("rel_chips").exists()
    QgsProject.instance().setFileName(str(tmp_path / "project.qgz"))
    qtbot.mouseClick(dlg.chip_button, Qt.LeftButton)
    assert f"written to {tmp_path / 'rel_chips'}" in dlg.status.text(), dlg.status.text()
    assert sorted(os.listdir(tmp_path / "rel_chips")) == ["land", "sea"]
    QgsProject.instance().setFileName("")


def test_grid_loads_without_gdal_warnings(manager, qgis_processing, s2_layer, tmp_path) -> None:
    """The layer_styles timestamp in the GeoPackage's own format: GDAL used to warn "Non-conformant content
    for record 1 in column update_time" on every load of a grid."""
    import processing
    from osgeo import gdal, ogr

    from rs_scene_plugin.processing.provider import RSSceneProvider

    provider = RSSceneProvider(manager)
    QgsApplication.processingRegistry().addProvider(provider)
    try:
        ext = small_extent(s2_layer, cols=1, rows=1)
        res = processing.run("rs_scene:classify", {
            "INPUT": s2_layer, "MODEL": "sentinel2-eurosat", "BANDS": S2_BANDS, "INPUT_SCALE": 1000,
            "HEATMAP": False, "OUTPUT_GRID": str(tmp_path / "grid.gpkg"),
            "EXTENT": f"{ext.xMinimum()},{ext.xMaximum()},{ext.yMinimum()},{ext.yMaximum()} [EPSG:27700]"})
    finally:
        QgsApplication.processingRegistry().removeProvider(provider)
    messages = []
    gdal.PushErrorHandler(lambda cls, code, msg: messages.append(msg))
    try:
        ds = ogr.Open(res["OUTPUT_GRID"])
        styles = ds.GetLayerByName("layer_styles")
        stamps = [f.GetField("update_time") for f in styles]
        ds = None
    finally:
        gdal.PopErrorHandler()
    assert stamps and not [m for m in messages if "Non-conformant" in m], messages
