"""A killed training leaves a checkpoint that says what it resumes (``.ckpt.json``); resumed, it continues
from its last epoch and leaves nothing behind; another training cannot resume it; a cancel leaves nothing."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from rs_scene.data.polygons import InputOptions, PolygonSampling, load_polygons
from rs_scene.engine.train import TrainParams, train_model
from rs_scene.engine.trainer import Cancelled, TrainSettings
from rs_scene.errors import RSSceneError
from test_polygons import BOXES, write_labels

pytest_plugins = ["datasets_tiny"]
pytestmark = pytest.mark.usefixtures("one_thread")
OPTIONS = {"backbone": "resnet18", "init": "scratch", "epochs": 3, "batch_size": 64, "warmup_epochs": 1}


class Killed(Exception):
    """Stands for the process dying after an epoch's checkpoint was written."""


@pytest.fixture(scope="module")
def data(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    raster = str(data_root / "scenes" / "sen2_20210527_aber_subset.tif")
    labels = write_labels(tmp_path_factory.mktemp("resume") / "l.gpkg", raster, BOXES)
    return load_polygons(raster, labels, "cls", PolygonSampling(tile_size=16, block=3),
                         InputOptions(input_scale=1000))


def params(out: Path, resume: bool = False, seed: int = 0) -> TrainParams:
    return TrainParams(out=str(out), options=dict(OPTIONS), settings=TrainSettings(device="cpu", seed=seed,
                                                                                    resume=resume))


def kill_after(epoch: int) -> Any:
    """Dies as epoch ``epoch`` ends, before its checkpoint is saved: the one of the epoch before remains."""

    def progress(ev: dict[str, Any]) -> None:
        if ev["event"] == "epoch" and ev["epoch"] == epoch:
            raise Killed

    return progress


def test_a_killed_training_resumes_from_its_last_epoch(data: Any, tmp_path: Path) -> None:
    out = tmp_path / "m.pt"
    with pytest.raises(Killed):
        train_model(params(out), data=data, progress=kill_after(2))
    ckpt, info = Path(f"{out}.ckpt"), Path(f"{out}.ckpt.json")
    assert ckpt.exists() and info.exists() and not out.exists()
    with pytest.raises(RSSceneError, match="written by another training"):  # another seed: other batches
        train_model(params(out, resume=True, seed=1), data=data)
    epochs: list[int] = []
    card, _ = train_model(params(out, resume=True), data=data,
                          progress=lambda ev: epochs.append(ev["epoch"]) if ev["event"] == "epoch" else None)
    assert epochs == [2, 3] and [h["epoch"] for h in card.training["history"]] == [1, 2, 3]
    assert out.exists() and not ckpt.exists() and not info.exists()


def test_a_fresh_start_or_a_cancel_leaves_no_checkpoint(data: Any, tmp_path: Path) -> None:
    out = tmp_path / "c.pt"
    with pytest.raises(Killed):
        train_model(params(out), data=data, progress=kill_after(2))
    assert Path(f"{out}.ckpt").exists()
    cancel = threading.Event()

    def progress(ev: dict[str, Any]) -> None:
        if ev["event"] == "step":
            cancel.set()

    with pytest.raises(Cancelled):
        train_model(params(out), data=data, progress=progress, cancel=cancel)
    assert not list(tmp_path.iterdir()), list(tmp_path.iterdir())
