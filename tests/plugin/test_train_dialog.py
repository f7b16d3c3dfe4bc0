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


def prepare(dialog, s2_layer, classes, name="tiny-polygons", epochs=2, scale=1000.0):
    polys = polygon_layer(s2_layer, classes)
    QgsProject.instance().addMapLayer(polys)
    dialog.open_fresh()
    dialog.inputs.input_scale.setValue(scale)  # the scene stores reflectance x1000
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
    assert dialog.matrix.horizontalHeaderItem(2).text() == "recall"
    assert "tiny-polygons" in dialog.status.text() and "Classify dialog" in dialog.status.text()
    path = Path(task.result["path"])
    assert path.exists() and path.parent == Path(os.environ["RS_SCENE_MODELS"])
    # the last screen: each figure named for what it is, the matrix of the reported one, the warnings
    assert dialog.stack.currentIndex() == 1 and dialog.report.isVisible()
    figures = dialog.report.figures.text()
    assert "held-out (never used for choosing)" in figures and "validation (used for early stopping)" in figures
    assert "balanced accuracy" in figures and "held-out" in dialog.report.matrix_title.text()
    assert "Trained fine-tune: 2 epochs" in figures and "raised" not in figures, figures  # epochs given: kept
    assert dialog.report.warnings.text().startswith(("Warnings:", "No warnings"))
    shots = Path(__file__).resolve().parents[1] / "output" / "train_dialog"  # look at it
    shots.mkdir(parents=True, exist_ok=True)
    dialog.resize(1366 - 40, 768 - 80)
    assert dialog.grab().save(str(shots / "report.png"))
    card = task.result["card"]
    assert card["value_scale"] == 1000.0 and card["training"]["input"]["input_scale"] == 1000.0
    assert card["bands"] == S2_BANDS.split(",") and not dialog.input_warning.text()

    from rs_scene_plugin.gui.classify_dialog import ClassifyDialog

    classify = ClassifyDialog(qgis_iface, manager, [])
    qtbot.addWidget(classify)
    classify.open_for(s2_layer)
    assert "tiny-polygons" in classify.models
    assert {c["name"] for c in classify.models["tiny-polygons"]["classes"]} == {"sea", "land"}


def test_the_report_says_when_min_steps_raised_the_epochs_and_which_epoch_was_kept() -> None:
    from rs_scene_plugin.gui.train_report import epochs_line

    training = {"epochs_option": 15, "min_steps": 200, "n_train": 42,
                "stages": [{"stage": "fine-tune", "epochs": 67, "ran": 40, "kept": 35}]}
    line = epochs_line(training)
    assert line.startswith("Trained fine-tune: 67 epochs (the epochs option is 15, raised so that 42 training "
                           "tiles make at least 200 optimiser steps"), line
    assert "stopped early after 40" in line and "model from epoch 35" in line
    two = {"epochs_option": 3, "min_steps": 0, "n_train": 9, "stages": [
        {"stage": "encoder", "epochs": 3, "ran": 3, "kept": None}, {"stage": "classifier", "epochs": 3,
                                                                     "ran": 3, "kept": 3}]}
    assert epochs_line(two) == "Trained encoder: 3 epochs; classifier: 3 epochs."
    assert epochs_line({}) == ""  # a card from before the stages were recorded


def test_polygons_without_class_values_are_refused(dialog, s2_layer) -> None:
    prepare(dialog, s2_layer, {"": [SEA, LAND]})
    assert dialog.train() is None
    assert "no polygon has a class value in field 'landcover'" in dialog.status.text()
    prepare(dialog, s2_layer, {"sea": [SEA]})
    assert dialog.train() is None
    assert "one class only" in dialog.status.text()


def test_cancel_writes_no_model(dialog, qtbot, s2_layer) -> None:
    """Without the input scale the range check warns before the first epoch (the run goes on); cancelled, the
    run leaves no model and no checkpoint."""
    prepare(dialog, s2_layer, {"sea": [SEA], "land": [LAND]}, name="cancelled-model", epochs=50, scale=0)
    task = dialog.train()
    qtbot.waitUntil(lambda: bool(dialog.curves.steps), timeout=120_000)
    assert "input scale looks wrong" in dialog.input_warning.text() and "1000" in dialog.input_warning.text()
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
    dialog.scroll.ensureWidgetVisible(dialog.progress)
    assert dialog.scroll.verticalScrollBar().value() > 0


def test_defaults_follow_the_active_layers_and_options_are_kept(dialog, qtbot, qgis_iface, s2_layer,
                                                                  manager) -> None:
    from conftest import SCENES
    from qgis.core import QgsField, QgsRasterLayer
    from qgis.PyQt.QtCore import QVariant

    from rs_scene_plugin.gui.train_dialog import SETTINGS_KEY, TrainDialog

    naip = QgsRasterLayer(str(SCENES / "naip_m_4709963_se_14_1_20200831.tif"), "naip", "gdal")
    QgsProject.instance().addMapLayer(naip)  # another raster, added after the scene
    polys = polygon_layer(s2_layer, {"sea": [SEA], "land": [LAND]})
    polys.dataProvider().addAttributes([QgsField("fid_code", QVariant.Int)])
    polys.updateFields()
    QgsProject.instance().addMapLayer(polys)
    qgis_iface.setActiveLayer(s2_layer)
    dialog.raster.setLayer(naip)
    dialog.open_fresh()
    assert dialog.raster.currentLayer() is s2_layer
    assert dialog.inputs.bands.rowCount() == 10 and dialog.inputs.bands.item(0, 1).text() == "band1"
    qgis_iface.setActiveLayer(polys)
    dialog.open_fresh()
    assert dialog.polygons.currentLayer() is polys and dialog.class_field.currentField() == "landcover"
    dialog.method.setCurrentText("pretrain")
    assert dialog.option_widgets["lr"].text() == "the method's default"
    dialog.set_option("lr", 0.0003)
    assert dialog.option_widgets["lr"].text() == "0.0003"
    dialog.set_option("epochs", 7)
    dialog.save_options()
    try:
        again = TrainDialog(qgis_iface, manager)
        qtbot.addWidget(again)
        again.open_fresh()
        again.method.setCurrentText("pretrain")
        assert again.option_widgets["epochs"].value() == 7 and again.option_widgets["lr"].text() == "0.0003"
    finally:
        from qgis.core import QgsSettings

        QgsSettings().remove(SETTINGS_KEY)
    dialog.band_names.setText(S2_BANDS)
    dialog.inputs.apply_names()
    dialog.inputs.bands.item(9, 0).setCheckState(Qt.Unchecked)
    assert dialog.inputs.band_option() == ",".join(f"{b}={i + 1}" for i, b in enumerate(S2_BANDS.split(",")[:9]))


def test_offers_to_resume_only_a_checkpoint_that_says_what_it_resumes(dialog) -> None:
    """A killed run's checkpoint (``<name>.pt.ckpt`` with its ``.json``, as the service leaves it) is offered for
    resuming under that model name; a bare checkpoint, or another name, is not."""
    models = Path(os.environ["RS_SCENE_MODELS"])
    models.mkdir(parents=True, exist_ok=True)
    ckpt = models / "half-done.pt.ckpt"
    ckpt.write_bytes(b"epochs")
    try:
        dialog.open_fresh()
        dialog.name.setText("half-done")
        assert dialog.resume_button.isHidden()  # no .json: it cannot say what it resumes
        Path(f"{ckpt}.json").write_text('{"method": "pretrain"}')
        dialog.name.setText("other")
        assert dialog.resume_button.isHidden()
        dialog.name.setText("half-done")
        assert not dialog.resume_button.isHidden() and "half-done" in dialog.resume_button.text()
        from rs_scene_plugin.core.train import train_body

        dialog.from_folder.setChecked(True)
        dialog.folder.setFilePath(str(models))
        spec = dialog.build_spec()
        spec.resume = True
        assert train_body(spec, str(models))["resume"] is True
    finally:
        for p in (ckpt, Path(f"{ckpt}.json")):
            p.unlink(missing_ok=True)
