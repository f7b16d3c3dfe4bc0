"""The Classify dialog follows the layer: settings derived from each layer and model, the user's edits kept for
their layer only, models ordered by fit; warnings name the dialog's fields and offer a button that sets them;
each run's layers go on top with names that tell runs apart; the message bar shows the latest run only."""

from __future__ import annotations

import pytest
from conftest import SCENES, small_extent
from qgis.core import Qgis, QgsProject, QgsRasterLayer, QgsRectangle
from qgis.PyQt.QtCore import Qt

NAIP = SCENES / "naip_m_4709963_se_14_1_20200831.tif"


@pytest.fixture
def dialog(qgis_iface, manager, qtbot):
    from rs_scene_plugin.gui.classify_dialog import ClassifyDialog

    dlg = ClassifyDialog(qgis_iface, manager, [])
    qtbot.addWidget(dlg)
    return dlg


@pytest.fixture
def naip_layer(qgis_new_project):
    layer = QgsRasterLayer(str(NAIP), "naip", "gdal")
    assert layer.isValid()
    QgsProject.instance().addMapLayer(layer)
    return layer


def models(dialog) -> list[str]:
    return [dialog.model.itemText(i) for i in range(dialog.model.count())]


def test_settings_follow_the_layer_and_edits_stay_with_theirs(dialog, qtbot, s2_layer, naip_layer) -> None:
    dialog.open_for(s2_layer)
    assert models(dialog)[0] == "sentinel2-eurosat", models(dialog)  # 10 bands: never aerial-rgb first
    assert dialog.model.currentText() == "sentinel2-eurosat"
    mapping = dialog.bands.mapping()
    assert mapping["B02"] == 1 and mapping["B8A"] == 8 and mapping["B12"] == 10  # unnamed: the model's order
    assert dialog.input_scale.value() == 1000, "the demo scene holds reflectance x1000"
    assert "input scale 1000" in dialog.derived_info.text()
    assert dialog.options.gsd_mode.currentIndex() == 0 and dialog.options.edge.currentData() == "shift"
    dialog.stride.setValue(8)  # the user's edit, for this layer
    qtbot.keyClicks(dialog.band_names, "B02,B03")

    dialog.layer.setLayer(naip_layer)
    assert models(dialog)[0] == "aerial-rgb" and dialog.model.currentText() == "aerial-rgb"
    assert dialog.bands.mapping() == {"red": 1, "green": 2, "blue": 3}
    assert dialog.stride.value() == 0 and dialog.input_scale.value() == 0 and dialog.band_names.text() == ""
    assert dialog.options.gsd_mode.currentIndex() == 1, "5-m pixels are 17x the model's 0.3 m: native"
    assert "GSD native" in dialog.derived_info.text()

    dialog.layer.setLayer(s2_layer)
    assert dialog.model.currentText() == "sentinel2-eurosat"
    assert dialog.stride.value() == 8 and dialog.band_names.text() == "B02,B03"
    assert dialog.input_scale.value() == 1000 and "Your settings" in dialog.derived_info.text()

    dialog.model.setCurrentText("aerial-rgb")  # another model on the same layer: derived for that model
    assert dialog.stride.value() == 0 and set(dialog.bands.mapping()) == {"red", "green", "blue"}


def test_gsd_nodata_and_edge_reach_the_request(dialog, s2_layer) -> None:
    from rs_scene_plugin.core.classify import request_body

    dialog.open_for(s2_layer)
    dialog.options.gsd_mode.setCurrentIndex(1)
    dialog.options.nodata.setText("0")
    dialog.options.edge.setCurrentIndex(dialog.options.edge.findData("pad"))
    body = request_body(dialog.build_spec(), s2_layer, "/tmp/g.gpkg", None)
    assert body["gsd"] == "native" and body["nodata"] == 0 and body["edge"] == "pad"
    dialog.options.gsd_mode.setCurrentIndex(2)
    dialog.options.gsd_value.setValue(20)
    dialog.options.nodata.setText("")
    body = request_body(dialog.build_spec(), s2_layer, "/tmp/g.gpkg", None)
    assert body["gsd"] == 20 and "nodata" not in body
    dialog.options.nodata.setText("-")
    with pytest.raises(ValueError, match="Extra nodata '-' is not a number"):
        dialog.build_spec()


def run(dialog, qtbot):
    qtbot.mouseClick(dialog.run_button, Qt.LeftButton)
    task = dialog.task
    assert task is not None, dialog.status.text()
    qtbot.waitUntil(lambda: task.completed, timeout=240_000)
    assert task.error is None and len(task.added) == 2, task.error
    return task


def test_a_warning_names_the_field_offers_its_fix_and_the_latest_run_wins(dialog, qtbot, s2_layer,
                                                                          qgis_iface) -> None:
    from rs_scene_plugin.gui.messages import bar_texts

    bar = qgis_iface.messageBar()
    bar.clearWidgets()
    dialog.open_for(s2_layer)
    dialog.extent.setCurrentText("Map canvas")
    qgis_iface.mapCanvas().setDestinationCrs(s2_layer.crs())
    qgis_iface.mapCanvas().setExtent(QgsRectangle(small_extent(s2_layer)))
    dialog.input_scale.setValue(0)  # the user overrides the derived 1000: read as x10000, a warning with a fix
    first = run(dialog, qtbot)
    warnings = bar_texts(bar, Qgis.Warning)
    assert len(warnings) == 1 and "Input scale, e.g. 1000" in warnings[0] and "--input-scale" not in warnings[0]
    assert "--" not in dialog.status.text() and "Input scale" in dialog.status.text()
    [button] = dialog.fix_buttons.buttons
    assert button.text() == "Set Input scale to 1000" and not dialog.fix_buttons.isHidden()
    item_button = bar.items()[0].widget().findChildren(type(button))[0]
    assert item_button.text() == "Set Input scale to 1000"
    item_button.click()  # the message bar's button sets the dialog's field
    assert dialog.input_scale.value() == 1000

    second = run(dialog, qtbot)
    assert bar_texts(bar, Qgis.Warning) == [], "the previous run's warning must not come back"
    assert len(bar_texts(bar, Qgis.Success)) == 1 and dialog.fix_buttons.isHidden()
    order = [n.layer() for n in QgsProject.instance().layerTreeRoot().findLayers()]
    assert order[:4] == [second.added[1], second.added[0], first.added[1], first.added[0]], \
        "the new run's grid and heatmap on top of the older ones"
    assert order[-1] == s2_layer
    names = {lyr.name() for lyr in (*first.added, *second.added)}
    assert len(names) == 4, names
    assert all("sentinel2-eurosat" in n and n.startswith("aberystwyth") for n in names)


def test_coarse_layer_offers_native_gsd(dialog, qtbot, naip_layer, qgis_iface) -> None:
    """NAIP's 5-m pixels for aerial-rgb's 0.3 m: the dialog derives 'native'; set back to the model's, the
    run's resolution warning names the GSD field and its button sets it to native."""
    dialog.open_for(naip_layer)
    assert dialog.model.currentText() == "aerial-rgb" and dialog.options.gsd_mode.currentIndex() == 1
    dialog.options.gsd_mode.setCurrentIndex(0)
    dialog.extent.setCurrentText("Map canvas")  # 2 x 2 tiles of 76.8 m
    ext = naip_layer.extent()
    c = ext.center()
    qgis_iface.mapCanvas().setDestinationCrs(naip_layer.crs())
    qgis_iface.mapCanvas().setExtent(QgsRectangle(c.x(), c.y(), c.x() + 153.6, c.y() + 153.6))
    run(dialog, qtbot)
    assert "--gsd" not in dialog.status.text() and "GSD native" in dialog.status.text(), dialog.status.text()
    [button] = dialog.fix_buttons.buttons
    assert button.text() == "Set GSD to native"
    qtbot.mouseClick(button, Qt.LeftButton)
    assert dialog.options.gsd_mode.currentIndex() == 1
