"""The Training dialog trains a tiny model from polygons drawn in the test; it then appears in Classify."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import S2_BANDS, polygon_layer
from qgis.core import QgsProject
from qgis.PyQt.QtCore import Qt

SEA, LAND = (0, 0, 96, 576), (320, 0, 96, 576)  # pixel boxes: Cardigan Bay and the land east of it


@pytest.fixture
def dialog(qgis_iface, manager, qtbot):
    from rs_scene_plugin.gui.train_dialog import TrainDialog

    dlg = TrainDialog(qgis_iface, manager)
    qtbot.addWidget(dlg)
    return dlg


def prepare(dialog, s2_layer, classes, name="tiny-polygons", epochs=2):
    polys = polygon_layer(s2_layer, classes)
    QgsProject.instance().addMapLayer(polys)
    dialog.open_fresh()
    dialog.raster.setLayer(s2_layer)
    dialog.polygons.setLayer(polys)
    dialog.class_field.setField("landcover")
    dialog.band_names.setText(S2_BANDS)
    dialog.tile_size.setValue(32)
    dialog.method.setCurrentText("pretrain")
    for key, value in (("backbone", "resnet18"), ("init", "scratch"), ("epochs", epochs), ("batch_size", 16),
                       ("warmup_epochs", 1)):
        dialog.set_option(key, value)
    dialog.name.setText(name)
    return polys


def test_method_options_become_form_widgets(dialog) -> None:
    dialog.open_fresh()
    assert "pretrain" in [dialog.method.itemText(i) for i in range(dialog.method.count())]
    dialog.method.setCurrentText("pretrain")
    mode = dialog.option_widgets["mode"]
    assert [mode.itemText(i) for i in range(mode.count())] == ["fine-tune", "linear-probe"]
    init = dialog.option_widgets["init"]
    assert {"imagenet", "scratch", "sentinel2-eurosat"} <= {init.itemText(i) for i in range(init.count())}


def test_trains_from_polygons_and_the_model_appears_in_classify(dialog, qtbot, s2_layer, qgis_iface,
                                                                 manager) -> None:
    prepare(dialog, s2_layer, {"sea": [SEA], "land": [LAND]})
    qtbot.mouseClick(dialog.train_button, Qt.LeftButton)
    task = dialog.task
    assert task is not None, dialog.status.text()
    qtbot.waitUntil(lambda: task.completed, timeout=300_000)
    assert task.error is None, task.error
    assert len(dialog.curves.loss) == 2 and dialog.curves.steps, "the curves must show each epoch"
    assert dialog.matrix.rowCount() == 2 and dialog.matrix.columnCount() == 3
    assert dialog.matrix.horizontalHeaderItem(2).text() == "accuracy"
    assert "tiny-polygons" in dialog.status.text() and "Classify dialog" in dialog.status.text()
    path = Path(task.result["path"])
    assert path.exists() and path.parent == Path(os.environ["RS_SCENE_MODELS"])

    from rs_scene_plugin.gui.classify_dialog import ClassifyDialog

    classify = ClassifyDialog(qgis_iface, manager, [])
    qtbot.addWidget(classify)
    classify.open_for(s2_layer)
    assert "tiny-polygons" in classify.models
    assert {c["name"] for c in classify.models["tiny-polygons"]["classes"]} == {"sea", "land"}


def test_polygons_without_class_values_are_refused(dialog, s2_layer) -> None:
    prepare(dialog, s2_layer, {"": [SEA, LAND]})
    assert dialog.train() is None
    assert "no polygon has a class value in field 'landcover'" in dialog.status.text()
    prepare(dialog, s2_layer, {"sea": [SEA]})
    assert dialog.train() is None
    assert "one class only" in dialog.status.text()


def test_cancel_writes_no_model(dialog, qtbot, s2_layer) -> None:
    prepare(dialog, s2_layer, {"sea": [SEA], "land": [LAND]}, name="cancelled-model", epochs=50)
    task = dialog.train()
    qtbot.waitUntil(lambda: bool(dialog.curves.steps), timeout=120_000)
    qtbot.mouseClick(dialog.cancel_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: task.completed, timeout=60_000)
    assert not task.result and task.error is None
    assert "Cancelled" in dialog.status.text()
    assert not list(Path(os.environ["RS_SCENE_MODELS"]).glob("cancelled-model*"))


def test_fits_a_1366x768_screen_with_its_buttons_visible(dialog, qtbot) -> None:
    dialog.open_fresh()
    dialog.resize(1366 - 40, 768 - 80)  # what a laptop screen leaves after the title bar and the task bar
    dialog.show()
    qtbot.waitExposed(dialog)
    assert dialog.height() <= 768 - 80 and dialog.sizeHint().height() <= 768 - 80
    for button in (dialog.train_button, dialog.cancel_button):
        corner = button.mapTo(dialog, button.rect().bottomRight())
        assert button.isVisible() and corner.y() <= dialog.height(), button.text()
    content = dialog.scroll.widget()
    assert content.sizeHint().height() > dialog.scroll.viewport().height(), "the content is taller: it must scroll"
    dialog.scroll.ensureWidgetVisible(dialog.matrix)
    assert dialog.scroll.verticalScrollBar().value() > 0
