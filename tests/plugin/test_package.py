"""`make package` builds a zip QGIS can install; installed from it, the algorithms run in qgis_process."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
from conftest import BACKEND_PYTHON, ROOT, S2_BANDS, S2_SCENE, qgis_env, small_extent

ZIP = ROOT / "rs_scene_plugin.zip"
QGIS_PROCESS = shutil.which("qgis_process.bin") or shutil.which("qgis_process")


@pytest.fixture(scope="module")
def package() -> Path:
    subprocess.run(["make", "-s", "-C", str(ROOT), "package"], check=True,
                   capture_output=True)
    return ZIP


def test_zip_holds_plugin_metadata_and_icon(package: Path) -> None:
    with zipfile.ZipFile(package) as z:
        names = set(z.namelist())
        meta = z.read("rs_scene_plugin/metadata.txt").decode()
    assert {"rs_scene_plugin/__init__.py", "rs_scene_plugin/plugin.py", "rs_scene_plugin/metadata.txt",
            "rs_scene_plugin/resources/icon.svg", "rs_scene_plugin/resources/classify.svg",
            "rs_scene_plugin/resources/train.svg", "rs_scene_plugin/processing/provider.py"} <= names
    assert all(n.startswith("rs_scene_plugin/") for n in names), "one top-level folder, as QGIS expects"
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    for line in ("qgisMinimumVersion=3.22", "hasProcessingProvider=yes", "version=0.1.0", "name=RS Scene",
                 "tracker=https://github.com/rs-scene/rs-scene/issues", "icon=resources/icon.svg"):
        assert line in meta


def test_zip_ships_the_backend_wheel_that_install_uses(package: Path, tmp_path: Path) -> None:
    """Installed from the zip alone (no checkout beside it), "Install backend" pip-installs the wheel the zip
    carries, with the shipped models and the rs-scene command in it."""
    with zipfile.ZipFile(package) as z:
        wheels = [n for n in z.namelist() if n.startswith("rs_scene_plugin/backend/") and n.endswith(".whl")]
        z.extractall(tmp_path)
    assert len(wheels) == 1 and Path(wheels[0]).name.startswith("rs_scene-0.1.0-")
    with zipfile.ZipFile(tmp_path / wheels[0]) as w:
        names = set(w.namelist())
        entry = next(w.read(n).decode() for n in names if n.endswith("entry_points.txt"))
    assert {"rs_scene/cli.py", "rs_scene/zoo/aerial-rgb.pt", "rs_scene/zoo/sentinel2-eurosat.pt"} <= names
    assert "rs-scene = rs_scene.cli:main" in entry
    probe = ("import sys; sys.path.insert(0, sys.argv[1]); "
             "from rs_scene_plugin.core.install import default_package; print(default_package())")
    out = subprocess.run([sys.executable, "-c", probe, str(tmp_path)], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == str((tmp_path / wheels[0]).resolve())


@pytest.mark.skipif(QGIS_PROCESS is None, reason="qgis_process not installed")
def test_qgis_process_runs_classify_from_the_installed_zip(package: Path, s2_layer, tmp_path: Path) -> None:
    plugins = tmp_path / "profiles" / "default" / "python" / "plugins"
    plugins.mkdir(parents=True)
    with zipfile.ZipFile(package) as z:
        z.extractall(plugins)
    env = qgis_env(QGIS_CUSTOM_CONFIG_PATH=str(tmp_path), QT_QPA_PLATFORM="offscreen",
                   RS_SCENE_BACKEND_PYTHON=BACKEND_PYTHON)
    subprocess.run([QGIS_PROCESS, "plugins", "enable", "rs_scene_plugin"], env=env, check=True,
                   capture_output=True)
    listing = subprocess.run([QGIS_PROCESS, "list"], env=env, capture_output=True, text=True, check=True).stdout
    assert "rs_scene:classify" in listing and "rs_scene:train" in listing and "rs_scene:exportchips" in listing
    e = small_extent(s2_layer)
    proc = subprocess.run(
        [QGIS_PROCESS, "--json", "run", "rs_scene:classify", "--", f"INPUT={S2_SCENE}", "MODEL=sentinel2-eurosat",
         f"BANDS={S2_BANDS}", "INPUT_SCALE=1000",
         f"EXTENT={e.xMinimum()!r},{e.xMaximum()!r},{e.yMinimum()!r},{e.yMaximum()!r} [EPSG:27700]",
         f"OUTPUT_GRID={tmp_path / 'grid.gpkg'}", f"OUTPUT_HEATMAP={tmp_path / 'heat.tif'}"],
        env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    results = json.loads(proc.stdout)["results"]
    assert results["TILES_TOTAL"] == results["TILES_CLASSIFIED"] == 6
    assert (tmp_path / "grid.gpkg").exists() and (tmp_path / "heat.tif").exists()
    t0 = time.time()  # the service follows its parent out (qgis_process does not unload plugins)
    while time.time() - t0 < 10 and _services(tmp_path):
        time.sleep(0.5)
    assert not _services(tmp_path), "the service must not outlive qgis_process"


def _services(profile: Path) -> list:
    out = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if "rs_scene.server" in line and str(profile) in line]
