"""The plugin loads and unloads the way QGIS loads it, and registers its actions and Processing provider."""

from __future__ import annotations

import qgis.utils
from conftest import PLUGINS_DIR
from qgis.core import QgsApplication


def test_plugin_loads_and_unloads_like_qgis(qgis_iface, qgis_app) -> None:
    qgis.utils.iface = qgis_iface
    qgis.utils.plugin_paths.insert(0, str(PLUGINS_DIR))
    qgis.utils.updateAvailablePlugins()
    assert "rs_scene_plugin" in qgis.utils.available_plugins
    meta = qgis.utils.plugins_metadata_parser["rs_scene_plugin"]
    assert meta.get("general", "qgisMinimumVersion") == "3.22"
    assert meta.get("general", "hasProcessingProvider") == "yes"

    assert qgis.utils.loadPlugin("rs_scene_plugin")
    assert qgis.utils.startPlugin("rs_scene_plugin")
    plugin = qgis.utils.plugins["rs_scene_plugin"]
    registry = QgsApplication.processingRegistry()
    assert registry.providerById("rs_scene") is not None
    ids = {a.id() for a in registry.providerById("rs_scene").algorithms()}
    assert ids == {"rs_scene:classify", "rs_scene:train", "rs_scene:exportchips"}
    texts = [a.text() for a in plugin.actions]
    assert "Classify layer…" in texts and "Train model…" in texts and "Install backend…" in texts
    assert plugin.toolbar is not None and len(plugin.toolbar.actions()) == 2
    images = [a.icon().pixmap(32, 32).toImage() for a in plugin.toolbar.actions()]
    assert all(not img.isNull() for img in images) and images[0] != images[1], "Classify and Train icons differ"
    assert plugin.layer_action is not None

    assert qgis.utils.unloadPlugin("rs_scene_plugin")
    assert registry.providerById("rs_scene") is None
    assert "rs_scene_plugin" not in qgis.utils.plugins
    assert plugin.actions == [] and plugin.toolbar is None


def test_plugin_never_imports_torch() -> None:
    import sys

    import rs_scene_plugin.core.classify
    import rs_scene_plugin.processing.provider  # noqa: F401

    assert "torch" not in sys.modules and "rs_scene" not in sys.modules
