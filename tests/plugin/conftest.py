"""Real QGIS, a real plugin folder, a real backend service.

The plugin is staged the way QGIS installs it (metadata.txt and resources inside the plugin folder; the files
are symlinks to the checkout) before the package is first imported, so every test runs the code QGIS loads.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCENES = Path(os.environ.get("RS_SCENE_SHARED", ROOT.parent / "shared")) / "data" / "scenes"
S2_SCENE = SCENES / "sentinel2_aberystwyth_20210527_10band.tif"
S2_SUBSET = SCENES / "sen2_20210527_aber_subset.tif"
S2_BANDS = "B02,B03,B04,B05,B06,B07,B08,B8A,B11,B12"
BACKEND_PYTHON = os.environ.get("RS_SCENE_BACKEND_PYTHON") or str(ROOT / ".venv" / "bin" / "python")
OUTPUT = ROOT / "tests" / "output"

_TMP = Path(tempfile.mkdtemp(prefix="rs_scene_plugin_tests_"))
PLUGINS_DIR = _TMP / "plugins"
os.environ.setdefault("XDG_RUNTIME_DIR", str(_TMP / "run"))
os.makedirs(os.environ["XDG_RUNTIME_DIR"], mode=0o700, exist_ok=True)
os.environ["RS_SCENE_MODELS"] = str(_TMP / "models")  # models trained by tests stay out of the user's folder
os.environ["RS_SCENE_BACKEND_PYTHON"] = BACKEND_PYTHON


def qgis_env(**extra: str) -> dict[str, str]:
    """The environment for a separate QGIS program (desktop, qgis_process): this one without an activated
    virtual environment. With a venv's bin first on PATH, QGIS's embedded Python took that venv's interpreter
    for its own and loaded another Python's standard library: "Couldn't load SIP module", a modal error
    dialog, and the desktop hung until the test's timeout (qgis_process crashed)."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONHOME", "PYTHONPATH")}
    path = [d for d in env.get("PATH", "").split(os.pathsep) if d and not (Path(d).parent / "pyvenv.cfg").exists()]
    env["PATH"] = os.pathsep.join(path)
    env.update(extra)
    return env


def stage_plugin(plugins_dir: Path) -> Path:
    """``plugins_dir/rs_scene_plugin`` laid out like the zip ``make package`` builds."""
    target = plugins_dir / "rs_scene_plugin"
    target.mkdir(parents=True)
    for entry in (ROOT / "rs_scene_plugin").iterdir():
        if entry.name != "__pycache__":
            (target / entry.name).symlink_to(entry)
    (target / "metadata.txt").symlink_to(ROOT / "metadata.txt")
    (target / "resources").symlink_to(ROOT / "resources")
    return target


stage_plugin(PLUGINS_DIR)
sys.path.insert(0, str(PLUGINS_DIR))


@pytest.fixture(scope="session", autouse=True)
def _free_leftover_layers(qgis_app):
    """A failed test's report keeps its layers alive; deleted after QGIS has exited they would crash the
    interpreter (exit 139 hiding the real result), so delete them while QGIS still runs."""
    yield
    import gc

    from qgis.core import QgsMapLayer, QgsProject
    from qgis.PyQt import sip

    QgsProject.instance().removeAllMapLayers()
    gc.collect()
    for obj in gc.get_objects():
        if isinstance(obj, QgsMapLayer) and not sip.isdeleted(obj) and sip.ispyowned(obj):
            sip.delete(obj)


def pytest_sessionfinish(session: pytest.Session) -> None:
    shutil.rmtree(_TMP, ignore_errors=True)


@pytest.fixture(scope="session")
def manager(qgis_app):
    """One backend service for the session, as the plugin runs it (settings from the environment)."""
    from rs_scene_plugin.core.backend import BackendManager
    from rs_scene_plugin.core.settings import BackendSettings

    assert Path(BACKEND_PYTHON).exists(), f"backend interpreter {BACKEND_PYTHON} not found (make setup)"
    mgr = BackendManager(lambda: BackendSettings(python=BACKEND_PYTHON, device="cpu"))
    yield mgr
    mgr.stop()


@pytest.fixture(scope="session")
def s2_models(manager):
    return {m["name"]: m for m in manager.client().models()}


@pytest.fixture
def s2_layer(qgis_new_project):
    from qgis.core import QgsProject, QgsRasterLayer

    layer = QgsRasterLayer(str(S2_SCENE), "aberystwyth", "gdal")
    assert layer.isValid()
    QgsProject.instance().addMapLayer(layer)
    return layer


def small_extent(layer, cols: int = 3, rows: int = 2, tile: int = 64, col0: int = 320, row0: int = 96):
    """An extent of cols x rows whole tiles on the layer's pixel grid, away from the nodata row."""
    from qgis.core import QgsRectangle

    ext, res = layer.extent(), layer.rasterUnitsPerPixelX()
    x0, y1 = ext.xMinimum() + col0 * res, ext.yMaximum() - row0 * res
    return QgsRectangle(x0, y1 - rows * tile * res, x0 + cols * tile * res, y1)


def polygon_layer(layer, classes: dict, field: str = "landcover"):
    """A memory layer of labelled rectangles: ``{class: [(col0, row0, cols, rows) in pixels, ...]}``."""
    from qgis.core import (
        QgsFeature,
        QgsField,
        QgsGeometry,
        QgsRectangle,
        QgsVectorLayer,
    )
    from qgis.PyQt.QtCore import QVariant

    vl = QgsVectorLayer(f"Polygon?crs={layer.crs().authid()}", "labels", "memory")
    vl.dataProvider().addAttributes([QgsField(field, QVariant.String)])
    vl.updateFields()
    ext, res = layer.extent(), layer.rasterUnitsPerPixelX()
    feats = []
    for name, boxes in classes.items():
        for c0, r0, w, h in boxes:
            f = QgsFeature(vl.fields())
            x0, y1 = ext.xMinimum() + c0 * res, ext.yMaximum() - r0 * res
            f.setGeometry(QgsGeometry.fromRect(QgsRectangle(x0, y1 - h * res, x0 + w * res, y1)))
            f[field] = name
            feats.append(f)
    vl.dataProvider().addFeatures(feats)
    vl.updateExtents()
    return vl
