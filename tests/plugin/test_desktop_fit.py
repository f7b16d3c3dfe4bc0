"""Every RS Scene dialog is usable on a 1366 x 768 screen: the real desktop under Xvfb at that size, Classify and
Train clicked through, each dialog inside the screen and each control on it or reachable by scrolling;
screenshots are kept in tests/output/desktop_fit/ (look at them)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import OUTPUT, S2_SCENE, qgis_env
from test_desktop import image_stats, make_profile, run_desktop

HERE = Path(__file__).resolve().parent
DIALOGS = ("classify", "train", "export", "settings", "install", "diagnostics")


@pytest.mark.skipif(not shutil.which("xvfb-run") or not shutil.which("qgis"), reason="needs qgis and xvfb-run")
def test_every_dialog_fits_a_1366x768_screen(tmp_path: Path) -> None:
    out = OUTPUT / "desktop_fit"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    make_profile(tmp_path / "qgis")
    env = qgis_env(RS_SCENE_DESKTOP_OUT=str(out), RS_SCENE_DESKTOP_SCENE=str(S2_SCENE))
    env.pop("QT_QPA_PLATFORM", None)
    cmd = ["xvfb-run", "-a", "-s", "-screen 0 1366x768x24", "qgis", "--nologo", "--noversioncheck",
           "--profiles-path", str(tmp_path / "qgis"), "--profile", "default", "--code",
           str(HERE / "desktop_fit_script.py")]
    stdout, stderr, returncode = run_desktop(cmd, env, timeout=400)
    (out / "qgis_output.txt").write_text(stdout + stderr)
    report_file = out / "fit_report.json"
    assert report_file.exists(), f"QGIS wrote no report (exit {returncode}):\n{stderr[-3000:]}"
    report = json.loads(report_file.read_text())
    assert "error" not in report, report["error"]
    assert report["models"][0] == "sentinel2-eurosat", "the 10-band scene's best fit first"
    assert report["classify_scale"] == 1000 and report["estimate"].startswith("About "), report["estimate"]
    assert report["train_buttons"] == ["Cancel", "Close", "Train"], report["train_buttons"]
    for name in DIALOGS:
        d = report["dialogs"][name]
        assert d["screen"][2] <= 1366 and d["screen"][3] <= 768 and d["fits"], (name, d)
        assert d["off_screen"] == [], (name, d["off_screen"])
        std, colours = image_stats(out / f"fit_{name}.png")
        assert std > 5 and colours > 20, (name, std, colours)
    assert report["dialogs"]["classify"]["scroll_areas"] >= 1 and report["dialogs"]["train"]["scroll_areas"] >= 1
