"""Hostile but fair use of the CLI: out-of-range numbers, outputs over inputs, over each other and over files
this tool did not write, broken model cards, and signals mid-run. After each: exit code 2 (or the signal's),
a message naming the option, nothing outside the requested outputs changed, no partial file under a final
name, and no temporary file left (SIGKILL's are removed by the next run on the same output)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import S2_BANDS_OPT, S2_SCENE, SCENES, run_main
from hostile import changed, snapshot, temps, wait_for_temps

SUBSET = SCENES / "sen2_20210527_aber_subset.tif"
S2 = ("--model", "sentinel2-eurosat", "--bands", S2_BANDS_OPT, "--input-scale", "1000")


@pytest.fixture
def work(tmp_path: Path) -> Path:
    shutil.copy(SUBSET, tmp_path / "scene.tif")
    (tmp_path / "notes.txt").write_text("the user's own notes\n")
    return tmp_path


def _refused(work: Path, *args: str, needle: str, command: str = "classify") -> None:
    before = snapshot(work)
    proc = run_main(command, *args)
    assert proc.returncode == 2, proc.stderr
    assert f"rs-scene {command}: error:" in proc.stderr and needle in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    assert changed(before, snapshot(work)) == set(), "a refused run changed files"


@pytest.mark.parametrize("option, value, needle", [
    ("--tile-size", "0", "--tile-size must be at least 1, not 0"),
    ("--tile-size", "-64", "--tile-size must be at least 1"),
    ("--stride", "0", "--stride must be at least 1"),
    ("--stride", "-8", "--stride must be at least 1, not -8"),
    ("--input-scale", "0", "--input-scale must be greater than 0"),
    ("--input-scale", "-1000", "--input-scale must be greater than 0"),
    ("--input-scale", "nan", "--input-scale must be a finite number"),
    ("--gsd", "0", "--gsd must be greater than 0"),
    ("--gsd", "-10", "--gsd must be greater than 0"),
    ("--gsd", "inf", "--gsd must be a finite number"),
    ("--min-valid", "nan", "--min-valid must be a finite number"),
    ("--min-valid", "1.5", "--min-valid must be between 0 and 1"),
    ("--batch-size", "0", "--batch-size must be at least 1"),
    ("--threads", "0", "--threads must be at least 1"),
    ("--extent", "nan,0,1,1", "--extent [nan, 0.0, 1.0, 1.0] must be four finite numbers"),
    ("--extent", "0,0,inf,1", "must be four finite numbers"),
])
def test_numeric_options_out_of_range_are_refused_by_name(work: Path, option: str, value: str,
                                                          needle: str) -> None:
    _refused(work, work / "scene.tif", *S2[:4], "--out", work / "g.gpkg", f"{option}={value}", needle=needle)


def test_outputs_never_replace_an_input_or_each_other(work: Path) -> None:
    scene = work / "scene.tif"
    for flag in ("--out", "--heatmap", "--class-raster"):
        _refused(work, scene, *S2, flag, scene, needle="is an input of this run")
    os.symlink(scene, work / "link.tif")  # the same file under another name
    _refused(work, work / "link.tif", *S2, "--heatmap", scene, needle="is an input of this run")
    _refused(work, scene, *S2, "--heatmap", work / "x.tif", "--class-raster", work / "sub" / ".." / "x.tif",
             needle="--heatmap and --class-raster name the same file")
    mask = work / "mask.gpkg"
    mask.write_bytes(b"not really a mask, but it is the user's file")
    _refused(work, scene, *S2, "--mask", mask, "--out", mask, "--overwrite", needle="is an input of this run")


def test_foreign_files_need_overwrite_and_earlier_outputs_do_not(work: Path) -> None:
    scene, notes = work / "scene.tif", work / "notes.txt"
    _refused(work, scene, *S2, "--heatmap", notes, needle="exists and is not an earlier RS Scene output")
    outs = ("--out", work / "g.gpkg", "--heatmap", work / "h.tif", "--class-raster", work / "c.tif")
    for _ in range(2):  # the second run replaces the first run's outputs without --overwrite
        before = snapshot(work)
        proc = run_main("classify", scene, *S2, *outs)
        assert proc.returncode == 0, proc.stderr
        assert changed(before, snapshot(work)) <= {"g.gpkg", "h.tif", "c.tif"}
    proc = run_main("classify", scene, *S2, "--heatmap", notes, "--overwrite")
    assert proc.returncode == 0, proc.stderr
    assert notes.read_bytes()[:4] == b"II*\x00" and temps(work) == []


def test_train_refuses_zero_epochs_bad_numbers_and_foreign_outputs(work: Path) -> None:
    data = str(Path(SCENES).parent / "ucmerced")
    out = ("--data", data, "--out", str(work / "m.pt"))
    _refused(work, *out, "--epochs", "0", needle="--epochs must be at least 1, not 0", command="train")
    _refused(work, *out, "--lr", "-0.1", needle="--lr must be greater than 0", command="train")
    _refused(work, *out, "--option", "epochs=0", needle="option 'epochs' must be at least 1", command="train")
    _refused(work, *out, "--val-fraction", "1", needle="--val-fraction must be at least 0 and below 1",
             command="train")
    _refused(work, "--data", data, "--out", str(work / "notes.txt"), needle="not an earlier RS Scene output",
             command="train")


def test_a_model_card_that_is_not_json_is_a_clear_error(work: Path) -> None:
    from rs_scene.card import FORMAT

    for card, needle in (("{not json", "the model card is not valid JSON"),
                         ("[1, 2]", "the model card must be a JSON object")):
        bad = work / "bad.pt"
        torch.save({"format": FORMAT, "card": card, "state_dict": {}}, bad)
        _refused(work, work / "scene.tif", "--model", bad, "--out", work / "g.gpkg", needle=needle)


def _start_long_run(work: Path) -> subprocess.Popen[bytes]:
    """A classify of the full demo scene on an 8-px stride with a heatmap: about two minutes if left alone."""
    return subprocess.Popen(
        [sys.executable, "-m", "rs_scene.cli", "classify", str(work / "big.tif"), *S2, "--stride", "8",
         "--out", str(work / "g.gpkg"), "--heatmap", str(work / "h.tif"), "--class-raster", str(work / "c.tif")],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGKILL, -9)])
def test_a_signal_mid_run_leaves_no_output_and_no_temp_for_long(work: Path, sig: int, code: int) -> None:
    shutil.copy(S2_SCENE, work / "big.tif")
    before = snapshot(work)
    proc = _start_long_run(work)
    wait_for_temps(work, proc)
    proc.send_signal(sig)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError(f"signal {sig} did not end the run within 20 s") from None
    assert proc.returncode == code, proc.stderr.read().decode()
    assert not any((work / n).exists() for n in ("g.gpkg", "h.tif", "c.tif")), "partial file under its name"
    assert {k for k in changed(before, snapshot(work)) if ".rs-scene-tmp-" not in k} == set()
    if sig != signal.SIGKILL:
        assert temps(work) == [], f"{sig} left {temps(work)}"
        return
    assert temps(work), "SIGKILL cannot clean up; the next run on the same output must"
    proc = run_main("classify", work / "big.tif", *S2, "--out", work / "g.gpkg", "--heatmap", work / "h.tif")
    assert proc.returncode == 0, proc.stderr
    assert [p.name for p in temps(work)] == [], "stale temporary files of the killed run were kept"


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_whose_exception_was_swallowed_still_stops_the_run(work: Path, sig: int, code: int) -> None:
    """The handler also sets the process-wide stop flag, so a run whose KeyboardInterrupt was dropped (raised
    inside a __del__ or GC callback) stops at its next check, as interrupted, and leaves nothing behind. Here
    the handler has run before classify starts and its exception went nowhere."""
    before = snapshot(work)
    script = ("import sys; from rs_scene import cli; from rs_scene.stop import PROCESS_STOP; "
              f"cli._SIGNALLED.append({int(sig)}); PROCESS_STOP.set(); sys.exit(cli.main(sys.argv[1:]))")
    proc = subprocess.run(
        [sys.executable, "-c", script, "classify", str(work / "scene.tif"), *S2, "--out", str(work / "g.gpkg"),
         "--heatmap", str(work / "h.tif")], capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == code, proc.stderr
    assert "interrupted; no output written" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert changed(before, snapshot(work)) == set() and temps(work) == []


def test_devices_fifos_and_long_names(work: Path) -> None:
    """Beyond the list: a FIFO or device is never replaced (as root, os.replace would swap /dev/null for a
    GeoTIFF), and opening one to see whether it is ours would block; a 230-byte output name still works."""
    fifo = work / "pipe.tif"
    os.mkfifo(fifo)
    _refused(work, work / "scene.tif", *S2, "--heatmap", fifo, "--overwrite", needle="not a regular file")
    _refused(work, work / "scene.tif", *S2, "--out", "/dev/null", "--overwrite", needle="not a regular file")
    long_name = work / ("n" * 226 + ".tif")
    proc = run_main("classify", work / "scene.tif", *S2, "--heatmap", long_name)
    assert proc.returncode == 0, proc.stderr
    assert long_name.exists() and temps(work) == []


def test_what_counts_as_an_earlier_output(work: Path) -> None:
    import numpy as np
    from conftest import write_raster
    from rs_scene.io.outputs import is_our_output, remove_stale_temps

    plain = write_raster(work / "plain.tif", np.zeros((1, 8, 8), np.float32))
    old_heat = write_raster(work / "old_heat.tif", np.zeros((1, 8, 8), np.float32),
                            descriptions=["Grad-CAM attention (0-1, per tile)"])
    sqlite = work / "other.gpkg"
    __import__("sqlite3").connect(sqlite).execute("CREATE TABLE t (x)").connection.commit()
    assert [is_our_output(p) for p in (plain, old_heat, sqlite, work / "notes.txt", work / "scene.tif")] == [
        False, True, False, False, False]
    target = work / "g.gpkg"
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    live_tmp = work / f".g.gpkg.rs-scene-tmp-{sleeper.pid}-aaaa.gpkg"
    dead_tmp = work / f".g.gpkg.rs-scene-tmp-{dead.pid}-bbbb.gpkg"
    for p in (live_tmp, dead_tmp, Path(str(dead_tmp) + "-journal")):
        p.write_bytes(b"partial")
    try:
        assert sorted(remove_stale_temps(target)) == sorted([dead_tmp, Path(str(dead_tmp) + "-journal")])
        assert live_tmp.exists(), "a live run's temporary file must be left alone"
    finally:
        sleeper.kill()
        sleeper.wait()
