"""The real QGIS desktop under Xvfb, the plugin enabled from a profile, Classify run on the Sentinel-2 scene;
the screenshot must show the grid and the heatmap over the raster."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
from conftest import BACKEND_PYTHON, OUTPUT, S2_SCENE, qgis_env, stage_plugin
from qgis.PyQt.QtGui import QColor, QImage

HERE = Path(__file__).resolve().parent


def make_profile(root: Path) -> None:
    profile = root / "profiles" / "default"
    stage_plugin(profile / "python" / "plugins")
    (profile / "QGIS").mkdir(parents=True)
    (profile / "QGIS" / "QGIS3.ini").write_text(
        "[PythonPlugins]\nrs_scene_plugin=true\n\n"
        f"[rs_scene]\npython={BACKEND_PYTHON}\ndevice=cpu\nport=0\n\n"
        "[qgis]\ncheckVersion=false\nshowTips=false\n")


def run_desktop(cmd: list[str], env: dict[str, str], timeout: float) -> tuple[str, str, int | str]:
    """Run xvfb-run + QGIS in its own process group; a QGIS hung on a modal dialog is killed with its X server
    at the timeout, and whatever of the group is left after a normal exit goes too, instead of outliving the
    test (two left-over desktops once made the next runs of QGIS time out or crash)."""
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
        return stdout, stderr, proc.returncode
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
        return stdout, stderr, f"killed after {timeout:.0f} s"
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:  # the whole group has ended: the normal case
            pass


def image_stats(path: Path) -> tuple:
    """(grey-level standard deviation, number of distinct colours) over a grid of samples."""
    img = QImage(str(path))
    assert not img.isNull(), path
    values, colours = [], set()
    for y in range(0, img.height(), 4):
        for x in range(0, img.width(), 4):
            c = QColor(img.pixel(x, y))
            values.append(0.299 * c.red() + 0.587 * c.green() + 0.114 * c.blue())
            colours.add((c.red() // 8, c.green() // 8, c.blue() // 8))
    mean = sum(values) / len(values)
    return (sum((v - mean) ** 2 for v in values) / len(values)) ** 0.5, len(colours)


def changed_share(a: Path, b: Path) -> float:
    ia, ib = QImage(str(a)), QImage(str(b))
    assert ia.size() == ib.size()
    n = diff = 0
    for y in range(0, ia.height(), 4):
        for x in range(0, ia.width(), 4):
            n += 1
            diff += ia.pixel(x, y) != ib.pixel(x, y)
    return diff / n


@pytest.mark.skipif(not shutil.which("xvfb-run") or not shutil.which("qgis"), reason="needs qgis and xvfb-run")
def test_desktop_classify_shows_grid_and_heatmap(tmp_path: Path) -> None:
    out = OUTPUT / "desktop"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    make_profile(tmp_path / "qgis")
    env = qgis_env(RS_SCENE_DESKTOP_OUT=str(out), RS_SCENE_DESKTOP_SCENE=str(S2_SCENE))
    env.pop("QT_QPA_PLATFORM", None)  # the desktop needs the X display
    cmd = ["xvfb-run", "-a", "-s", "-screen 0 1600x1000x24", "qgis", "--nologo", "--noversioncheck",
           "--profiles-path", str(tmp_path / "qgis"), "--profile", "default", "--code",
           str(HERE / "desktop_script.py")]
    stdout, stderr, returncode = run_desktop(cmd, env, timeout=400)
    (out / "qgis_output.txt").write_text(stdout + stderr)
    report_file = out / "desktop_report.json"
    assert report_file.exists(), f"QGIS wrote no report (exit {returncode}):\n{stderr[-3000:]}"
    report = json.loads(report_file.read_text())
    assert "error" not in report, report["error"]
    assert "rs_scene_plugin" in report["plugins"] and "sentinel2-eurosat" in report["models"]
    counts = re.match(r"(\d+) tiles \((\d+) classified, 0 skipped\)", report["status"])
    assert report["error_task"] is None and counts, report["status"]
    assert int(counts[1]) == int(counts[2]) >= 30, "every tile of the canvas extent is classified"
    renderers = [(lyr["name"], lyr["renderer"]) for lyr in report["layers"]]
    assert renderers[0][1] == "categorizedSymbol" and "classes" in renderers[0][0]
    assert renderers[1][1] == "singlebandpseudocolor" and "attention" in renderers[1][0]
    assert renderers[2] == ("aberystwyth", "multibandcolor")

    window, canvas, base = (out / n for n in ("desktop_classify.png", "desktop_canvas.png",
                                              "desktop_canvas_raster_only.png"))
    std, colours = image_stats(window)
    assert std > 20 and colours > 200, (std, colours)
    std, colours = image_stats(canvas)
    assert std > 15 and colours > 200, "the canvas must not be blank"
    assert changed_share(canvas, base) > 0.5, "the grid and heatmap must cover the raster in the screenshot"
