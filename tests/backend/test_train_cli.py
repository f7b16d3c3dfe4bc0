"""``rs-scene train`` / ``rs-scene methods`` end to end (in-process): model files that classify, polygon
training, and bad input refused with exit code 2 before any training, leaving nothing behind."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rs_scene.card import read_card
from rs_scene.cli import main
from rs_scene.engine.infer import ClassifyParams, classify_raster
from test_polygons import (  # tests/backend is on sys.path (rootdir conftest)
    BOXES,
    write_labels,
)

pytest_plugins = ["datasets_tiny"]
pytestmark = pytest.mark.usefixtures("one_thread")

FAST = [
    "--epochs",
    "1",
    "--batch-size",
    "6",
    "--init",
    "scratch",
    "--quiet",
    "--device",
    "cpu",
]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def test_methods_lists_the_five_with_options(
    capsys: pytest.CaptureFixture[str],
) -> None:
    rc, out, _ = run(capsys, "methods", "--json")
    methods = {m["name"]: m for m in json.loads(out)}
    assert rc == 0 and set(methods) == {"pretrain", "ddrl-am", "pskd", "scl", "bwms"}
    scl = {o["name"]: o for o in methods["scl"]["options"]}
    assert (
        scl["balance"]["choices"] == ["cb", "csce"]
        and scl["temperature"]["default"] == 0.1
    )
    rc, out, _ = run(capsys, "methods")
    assert rc == 0 and "ddrl-am:" in out and "center_weight" in out


def test_train_ddrl_am_then_classify(
    capsys: pytest.CaptureFixture[str], ucm_tiny: Path, data_root: Path, tmp_path: Path
) -> None:
    out = tmp_path / "ddrl.pt"
    rc, stdout, err = run(
        capsys,
        "train",
        "--method",
        "ddrl-am",
        "--data",
        str(ucm_tiny),
        "--image-size",
        "64",
        "--backbone",
        "efficientnet_lite0",
        "--option",
        "stage1_epochs=1",
        "--out",
        str(out),
        "--json",
        *FAST,
    )
    assert rc == 0, err
    summary = json.loads(stdout)
    assert summary["method"] == "ddrl-am" and "overall_accuracy" in summary["heldout"]
    assert "[attention] epoch 1/1" in err and "[two-stream] epoch 1/1" in err
    assert err.count("  val ") == 2  # a default 10 % validation part, measured every epoch
    assert not Path(str(out) + ".ckpt").exists()
    card = read_card(out)
    assert card.method_config["stage1_epochs"] == 1 and card.input_size == 64
    res = classify_raster(
        ClassifyParams(
            raster=str(data_root / "scenes" / "landsat7_RGB.byte.tif"),
            model=str(out),
            out_gpkg=str(tmp_path / "g.gpkg"),
            heatmap=str(tmp_path / "h.tif"),
            gsd="native",
            device="cpu",
            extent=None,
            tile_size=64,
            min_valid=0.1,
        )
    )
    assert res.tiles_classified > 0 and set(res.outputs) == {"grid", "heatmap"}
    # in-domain pre-training: another method starts from this model's image stream
    rc, _, err = run(
        capsys,
        "train",
        "--data",
        str(ucm_tiny),
        "--image-size",
        "64",
        "--init",
        str(out),
        "--mode",
        "linear-probe",
        "--epochs",
        "1",
        "--quiet",
        "--device",
        "cpu",
        "--out",
        str(tmp_path / "p.pt"),
    )
    assert rc == 0, err


def test_train_on_polygons(
    capsys: pytest.CaptureFixture[str], data_root: Path, tmp_path: Path
) -> None:
    raster = str(data_root / "scenes" / "sen2_20210527_aber_subset.tif")
    labels = write_labels(tmp_path / "l.gpkg", raster, BOXES)
    out = tmp_path / "poly.pt"
    rc, stdout, err = run(
        capsys,
        "train",
        "--raster",
        raster,
        "--labels",
        labels,
        "--class-field",
        "cls",
        "--tile-size",
        "16",
        "--block",
        "3",
        "--val-fraction",
        "0.25",
        "--out",
        str(out),
        "--backbone",
        "efficientnet_lite0",
        *FAST,
    )
    assert rc == 0, err
    card = read_card(out)
    assert (
        card.class_names == ["forest", "urban", "water"]
        and card.tile_size == 16
        and card.gsd == 10.0
    )
    assert card.training["kind"] == "polygons" and card.training["n_val"] > 0
    assert "val" in err and "held-out (never used for choosing)" in stdout and "balanced_accuracy" in stdout
    assert card.metrics["reported"] == "heldout" and card.training["n_heldout"] > 0
    assert card.metrics["validation"]["label"] == "validation (used for early stopping)"
    assert set(card.metrics["heldout"]["per_class"]) == {"forest", "urban", "water"}
    res = classify_raster(
        ClassifyParams(
            raster=raster,
            model=str(out),
            out_gpkg=str(tmp_path / "p.gpkg"),
            device="cpu",
        )
    )
    assert (
        res.tiles_total == (324 // 16 + 1) * (339 // 16 + 1)
        and res.tiles_classified >= 20 * 21
    )


@pytest.mark.parametrize(
    "case,argv,message",
    [
        ("method", ["--method", "nope"], "unknown method 'nope'"),
        ("option", ["--method", "scl", "--option", "tau=0.2"], "has no option 'tau'"),
        ("flag", ["--method", "bwms", "--teacher", "t.pt"], "has no option --teacher"),
        (
            "choice",
            ["--method", "scl", "--balance", "smote"],
            "balance='smote' must be one of cb, csce",
        ),
        (
            "value",
            ["--method", "scl", "--option", "temperature=warm"],
            "expected a float",
        ),
        ("teacherless", ["--method", "pskd"], "pskd needs a teacher"),
        ("no data", ["--method", "pretrain", "--no-data"], "no training data"),
    ],
)
def test_bad_input_is_refused_before_training(
    capsys: pytest.CaptureFixture[str],
    ucm_tiny: Path,
    tmp_path: Path,
    case: str,
    argv: list[str],
    message: str,
) -> None:
    out = tmp_path / "m.pt"
    data = [] if "--no-data" in argv else ["--data", str(ucm_tiny)]
    argv = [a for a in argv if a != "--no-data"]
    rc, _, err = run(capsys, "train", *argv, *data, "--out", str(out), "--quiet")
    assert rc == 2 and message in err, err
    assert list(tmp_path.iterdir()) == []


def test_bad_datasets_are_refused(
    capsys: pytest.CaptureFixture[str], ucm_tiny: Path, data_root: Path, tmp_path: Path
) -> None:
    one = tmp_path / "one"
    (one / "beach").mkdir(parents=True)
    for f in sorted((ucm_tiny / "beach").iterdir()):
        (one / "beach" / f.name).symlink_to(f.resolve())
    rc, _, err = run(
        capsys, "train", "--data", str(one), "--out", str(tmp_path / "a.pt"), *FAST
    )
    assert rc == 2 and "at least 2 classes" in err
    (one / "empty").mkdir()
    rc, _, err = run(
        capsys, "train", "--data", str(one), "--out", str(tmp_path / "a.pt"), *FAST
    )
    assert rc == 2 and "no images: empty" in err
    raster = str(data_root / "scenes" / "sen2_20210527_aber_subset.tif")
    away = write_labels(
        tmp_path / "away.gpkg", raster, BOXES, crs="EPSG:27700", offset=(0.0, -90_000.0)
    )
    rc, _, err = run(
        capsys,
        "train",
        "--raster",
        raster,
        "--labels",
        away,
        "--class-field",
        "cls",
        "--out",
        str(tmp_path / "a.pt"),
        *FAST,
    )
    assert rc == 2 and "overlaps raster" in err
    assert not (tmp_path / "a.pt").exists()


def test_pskd_teacher_of_other_classes_is_refused(
    capsys: pytest.CaptureFixture[str],
    ucm_tiny: Path,
    eurosat_tiny: Path,
    tmp_path: Path,
) -> None:
    teacher = tmp_path / "t.pt"
    rc, _, err = run(
        capsys,
        "train",
        "--data",
        str(eurosat_tiny),
        "--bands",
        "B04,B03,B02",
        "--out",
        str(teacher),
        "--backbone",
        "efficientnet_lite0",
        *FAST,
    )
    assert rc == 0, err
    out = tmp_path / "s.pt"
    rc, _, err = run(
        capsys,
        "train",
        "--method",
        "pskd",
        "--teacher",
        str(teacher),
        "--data",
        str(ucm_tiny),
        "--image-size",
        "32",
        "--backbone",
        "mobilenet_v3_small",
        "--out",
        str(out),
        *FAST,
    )
    assert rc == 2 and "classes" in err and "differ" in err
    assert not out.exists() and not Path(str(out) + ".ckpt").exists()


S2_TEN = "B02,B03,B04,B05,B06,B07,B08,B8A,B11,B12"


def test_train_on_a_x1000_raster_and_classify_it_the_same_way(
    capsys: pytest.CaptureFixture[str], data_root: Path, tmp_path: Path
) -> None:
    """The subset stores reflectance x1000. Read as x10000 the range check warns before training; with
    --input-scale 1000 it is quiet, the card records the scale, and classify (no --input-scale) cuts and scales
    the tiles under the polygons exactly as training did: the same class on every training tile."""
    import fiona
    import numpy as np
    import torch
    from rs_scene.data.polygons import InputOptions, PolygonSampling, load_polygons
    from rs_scene.engine.evaluate import predict_scores
    from rs_scene.engine.infer import load_model

    raster = str(data_root / "scenes" / "sen2_20210527_aber_subset.tif")
    labels = write_labels(tmp_path / "l.gpkg", raster, BOXES)
    common = ["train", "--raster", raster, "--labels", labels, "--class-field", "cls", "--tile-size", "16",
              "--block", "3", "--bands", S2_TEN, *FAST, "--backbone", "resnet18", "--batch-size", "32"]
    rc, _, err = run(capsys, *common, "--out", str(tmp_path / "wrong.pt"))
    assert rc == 0 and "WARNING: Before training, the input scale looks wrong" in err and "e.g. 1000" in err
    out = tmp_path / "x1000.pt"
    rc, _, err = run(capsys, *common, "--input-scale", "1000", "--out", str(out))
    assert rc == 0 and "input scale looks wrong" not in err, err
    card = read_card(out)
    assert card.value_scale == 1000.0 and card.bands == S2_TEN.split(",")
    assert card.training["input"]["input_scale"] == 1000.0 and card.training["input"]["divisor"] == 1000.0
    res = classify_raster(ClassifyParams(raster=raster, model=str(out), out_gpkg=str(tmp_path / "c.gpkg"),
                                         device="cpu", bands=S2_TEN, edge="drop", runtime="torch"))
    assert not any("input scale" in w for w in res.warnings), res.warnings
    with fiona.open(tmp_path / "c.gpkg") as src:
        classified = {(f.properties["col"] * 16, f.properties["row"] * 16): f.properties["class_name"]
                      for f in src}
    data = load_polygons(raster, labels, "cls", PolygonSampling(tile_size=16, block=3),
                         InputOptions(bands=S2_TEN, input_scale=1000))
    _, model, _ = load_model(str(out), torch.device("cpu"))
    pred = predict_scores(model, card, data.x, torch.device("cpu")).argmax(1)
    tiles = [tuple(int(v[1:]) for v in f.split("_")[1:]) for f in data.files]
    assert len(tiles) > 300 and all(t in classified for t in tiles)
    same = np.mean([classified[t] == card.class_names[p] for t, p in zip(tiles, pred)])
    assert same == 1.0, f"classify and training disagree on {1 - same:.1%} of the training tiles"
    # and the card's figures on its own training tiles are those of the tiles classify cut
    train = [p for p, sp in zip(pred, data.split) if sp == "train"]
    own = card.metrics["training"]
    assert own["n"] == len(train) and own["label"] == "training tiles (the model's own polygons)"
    assert own["predicted_share"] == pytest.approx(
        {c: float(np.mean(np.asarray(train) == i)) for i, c in enumerate(card.class_names)})
