"""The stratified, spatially blocked split on hand-made polygon layouts over the real Sentinel-2 subset (a
class in one corner only, a class of one polygon), the folder-dataset rule, and the warnings of the final
figures: they fire on a one-class model and stay quiet on a good one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from rs_scene.data.datasets import SceneData
from rs_scene.data.polygons import PolygonSampling, load_polygons
from rs_scene.data.splits import blocked_split
from rs_scene.engine.metrics import metric_warnings, single_label_metrics
from rs_scene.engine.train import check_validation, stratified_split
from rs_scene.errors import RSSceneError
from test_polygons import write_labels

pytest_plugins = ["datasets_tiny"]
pytestmark = pytest.mark.usefixtures("one_thread")

FIELD = [  # the pond polygons come last: drawn over the field
    ((64, 0, 324, 339), "field"), ((0, 64, 64, 339), "field")]
SAMPLING = PolygonSampling(tile_size=16, block=2, min_overlap=0.75)  # blocks of 32 x 32 px


@pytest.fixture(scope="module")
def raster(data_root: Path) -> str:
    return str(data_root / "scenes" / "sen2_20210527_aber_subset.tif")


def parts_of(data: SceneData) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for sp, y in zip(data.split, data.y.tolist()):
        out.setdefault(sp, set()).add(data.classes[y])
    return out


def test_a_class_in_one_corner_only_is_in_every_part(raster: str, tmp_path: Path) -> None:
    labels = write_labels(tmp_path / "corner.gpkg", raster, [((0, 0, 64, 64), "corner"), *FIELD])
    for seed in range(5):  # whatever the block order, the 4 corner blocks are shared out
        data = load_polygons(raster, labels, "cls", PolygonSampling(**{**SAMPLING.__dict__, "seed": seed}))
        assert parts_of(data) == {p: {"corner", "field"} for p in ("train", "val", "test")}, seed
        assert data.classes[data.y[data.split.index("train")]] in data.classes
        corner = [sp for sp, y in zip(data.split, data.y.tolist()) if data.classes[y] == "corner"]
        assert corner.count("train") >= 4  # of 16 corner tiles, whole 4-tile blocks
    assert data.meta["split_note"].startswith("held-out part")


def test_a_class_of_one_polygon_in_one_block_is_refused_by_name(raster: str, tmp_path: Path) -> None:
    labels = write_labels(tmp_path / "one.gpkg", raster, [*FIELD, ((96, 96, 128, 128), "pond")])
    with pytest.raises(RSSceneError, match=r"class 'pond' lies in 1 block.*at least 2 separate blocks"):
        load_polygons(raster, labels, "cls", SAMPLING)


def test_a_class_of_one_polygon_over_two_blocks_trains_and_validates_without_a_heldout_part(
        raster: str, tmp_path: Path) -> None:
    labels = write_labels(tmp_path / "two.gpkg", raster, [*FIELD, ((96, 96, 160, 128), "pond")])
    data = load_polygons(raster, labels, "cls", SAMPLING)
    assert parts_of(data) == {"train": {"pond", "field"}, "val": {"pond", "field"}}
    assert "no held-out part: 'pond' lies in 2 blocks" in data.meta["split_note"]


def test_blocked_split_shares_and_rarest_class_first() -> None:
    rng = np.random.default_rng(0)
    blocks = [int(b) for b in rng.integers(0, 40, 400)]
    labels = [0 if b < 37 else 1 for b in blocks]  # class 1 in 3 blocks only
    split, note = blocked_split(blocks, labels, ["common", "rare"], 0.2, 0.2, seed=3)
    for part in ("train", "val", "test"):
        assert {y for y, sp in zip(labels, split) if sp == part} == {0, 1}, part
        assert all(len({sp for b2, sp in zip(blocks, split) if b2 == b}) == 1 for b in set(blocks))
    assert 0.1 <= split.count("val") / 400 <= 0.35 and 0.1 <= split.count("test") / 400 <= 0.35
    assert note.startswith("held-out part")


def test_folder_dataset_follows_the_same_rule() -> None:
    import torch

    data = SceneData(torch.zeros(7, 3, 4, 4), torch.tensor([0, 0, 0, 1, 1, 1, 2]), ["a", "b", "c"],
                     ["red", "green", "blue"], [f"f{i}" for i in range(7)], 255.0, 1.0)
    train, val = stratified_split(data, list(range(7)), 0.3, 0)
    assert {int(data.y[i]) for i in val} == {0, 1}
    with pytest.raises(RSSceneError, match=r"class\(es\) 'c' \(1 image\) too few .* training and validation"):
        check_validation(data, train, val, "folder")


def test_warnings_fire_on_a_one_class_model_and_stay_quiet_on_a_good_one() -> None:
    classes = ["sea", "urban", "farmland", "woodland"]
    y = np.repeat(np.arange(4), [76, 36, 84, 40])
    one = single_label_metrics(y, np.full_like(y, 2), classes)  # 'farmland' for everything
    assert one["balanced_accuracy"] == pytest.approx(0.25) and one["per_class"]["sea"] == 0
    w = metric_warnings(one, "training tiles", training=True)
    assert len(w) == 3 and "sea, urban, woodland were never recognised" in w[0]
    assert "'farmland' for 100% of the tiles (36% are 'farmland')" in w[1] and "not learned" in w[2]
    good = y.copy()
    good[::10] = (good[::10] + 1) % 4  # 90 % right, every class found
    m = single_label_metrics(y, good, classes)
    assert m["overall_accuracy"] > 0.85 and metric_warnings(m, "training tiles", training=True) == []
    # a data set that is nearly all one class, predicted as it is, does not warn
    mostly = np.array([0] * 95 + [1] * 5)
    assert metric_warnings(single_label_metrics(mostly, mostly, classes[:2]), "validation") == []
