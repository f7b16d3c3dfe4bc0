"""``rs-scene classify-many`` with Ray started in this process (``--ray local``, on 127.0.0.1): real rasters
(a file, the same file inside a zip, a copy framed by nodata), a corrupt file, a raster with the wrong bands
and a missing one; 32-px stride over 64-px tiles, so tiles and heatmaps overlap across shard borders."""

from __future__ import annotations

import json
from pathlib import Path

import fiona
import pytest
from conftest import LANDSAT, run_main
from rs_scene.scale.manifest import raster_key
from scale_common import (
    S2_OPTS,
    SUBSET,
    assert_same_outputs,
    framed_subset,
    reference,
    zipped_subset,
)

RUN = ["--stride", "32", "--shard-tiles", "7", "--heatmaps", "--cpus", "2"]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    tmp = tmp_path_factory.mktemp("scale")
    corrupt = tmp / "corrupt.tif"
    corrupt.write_bytes(b"II*\x00" + bytes(range(256)) * 20)
    rasters = [str(SUBSET), zipped_subset(tmp), str(framed_subset(tmp)), str(corrupt), str(LANDSAT),
               str(tmp / "missing.tif")]
    (tmp / "rasters.txt").write_text("\n".join(rasters) + "\n")
    proc = run_main("classify-many", tmp / "rasters.txt", *S2_OPTS, "--out-dir", tmp / "run", *RUN, "--json")
    return {"tmp": tmp, "proc": proc, "rasters": rasters, "out": tmp / "run"}


def test_outputs_equal_single_process_classify(run: dict) -> None:
    assert run["proc"].returncode == 2, run["proc"].stderr  # three rasters failed
    summary = json.loads(run["proc"].stdout)
    assert (summary["done"], summary["failed"]) == (3, 3)
    out, tmp = run["out"], run["tmp"]
    refs = [reference(run["rasters"][i], tmp / f"ref{i}", ["--stride", "32"]) for i in (0, 2)]
    assert_same_outputs(refs[0], out / raster_key(run["rasters"][0]))
    assert_same_outputs(refs[1], out / raster_key(run["rasters"][2]))  # whole shards of nodata
    assert_same_outputs(refs[0], out / raster_key(run["rasters"][1]))  # read inside the zip, where it lies
    assert not list((out / ".parts").iterdir()), "part files go once their raster is merged"


def test_failed_rasters_are_recorded_and_the_run_goes_on(run: dict) -> None:
    errors = json.loads(run["proc"].stdout)["errors"]
    corrupt, landsat, missing = run["rasters"][3:]
    assert "not a readable raster" in errors[corrupt]
    assert "bands" in errors[landsat] and "3" in errors[landsat]
    assert errors[missing].startswith("raster not found") and missing in errors[missing]
    show = run_main("runs", "show", run["out"])
    assert show.returncode == 0
    line = {path: next(t for t in show.stdout.splitlines() if f" {path}  " in t) for path in (str(SUBSET), corrupt)}
    assert line[str(SUBSET)].startswith("done") and "100/100" in line[str(SUBSET)]
    assert line[corrupt].startswith("failed") and "not a readable raster" in line[corrupt]


def test_run_index_has_footprints_status_counts_and_shares(run: dict) -> None:
    with fiona.open(run["out"] / "runs.gpkg") as src:
        assert src.crs.to_epsg() == 4326
        feats = {f.properties["raster"]: f for f in src}
    assert len(feats) == 6
    done = feats[str(SUBSET)]
    xmin, ymin, xmax, ymax = fiona.bounds(done)
    assert -4.2 < xmin < xmax < -3.9 and 52.3 < ymin < ymax < 52.5, "the subset lies at Aberystwyth"
    shares = json.loads(done.properties["class_shares"])
    assert abs(sum(shares.values()) - 1) < 1e-3 and done.properties["top_class"] == max(shares, key=shares.get)
    assert done.properties["tiles_total"] == 100 and done.properties["shards"] == 20
    framed = feats[run["rasters"][2]].properties
    assert framed["tiles_skipped"] > 0 and framed["tiles_classified"] < framed["tiles_total"]
    failed = feats[run["rasters"][3]]
    assert failed.properties["status"] == "failed" and failed.geometry is None and failed.properties["error"]


def test_a_finished_run_is_not_overwritten_and_options_are_checked(run: dict) -> None:
    again = run_main("classify-many", run["rasters"][0], *S2_OPTS, "--out-dir", run["out"], *RUN)
    assert again.returncode == 2 and "already holds a run" in again.stderr
    other = run_main("classify-many", run["rasters"][0], *S2_OPTS, "--out-dir", run["out"], *RUN[2:],
                     "--resume")
    assert other.returncode == 2 and "other options" in other.stderr and "stride" in other.stderr
    bad = run_main("classify-many", run["rasters"][0], *S2_OPTS, "--out-dir", run["tmp"] / "x",
                   "--shard-tiles", "0")
    assert bad.returncode == 2 and "--shard-tiles must be at least 1" in bad.stderr
    assert not (run["tmp"] / "x").exists()


def test_fused_heatmaps_equal_single_process_classify(tmp_path: Path) -> None:
    """``--heatmap-detail fused`` is drawn by the context pass in the shards too (as ``serve --ray`` runs it),
    not as each tile's own map (that differed by up to 0.99, mean 0.19, on this raster). Its LayerCAM part is a
    backward pass, one thread in a shard and several in classify: within 1e-4 (measured 5e-5)."""
    proc = run_main("classify-many", SUBSET, *S2_OPTS, "--out-dir", tmp_path / "run", *RUN,
                    "--heatmap-detail", "fused", "--json")
    assert proc.returncode == 0, proc.stderr
    ref = reference(SUBSET, tmp_path / "ref", ["--stride", "32", "--heatmap-detail", "fused"])
    assert_same_outputs(ref, tmp_path / "run" / raster_key(str(SUBSET)), heat_tol=1e-4)
