"""Every registered method: one tiny epoch per stage on real data (finite loss, gradients reach every trainable
parameter, checkpoint + resume, prediction shape, the saved file rebuilt from its card); DDRL-AM's attention
input against pytorch-grad-cam; BWMS on BigEarthNet at native resolution; multi-label metrics vs sklearn."""

from __future__ import annotations

import math
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from pytorch_grad_cam import GradCAM
from rs_scene.bands import S2_TEN
from rs_scene.card import load_model_file, save_model
from rs_scene.data.datasets import SceneData, open_dataset
from rs_scene.data.transforms import normalize, resize
from rs_scene.engine.metrics import multi_label_metrics
from rs_scene.engine.train import TrainParams, build_card, train_model
from rs_scene.engine.trainer import Cancelled, Trainer, TrainSettings
from rs_scene.errors import RSSceneError
from rs_scene.methods import build_inference_model, create_method, list_methods
from rs_scene.methods.bwms import load_bigearthnet_native
from sklearn import metrics as skm

pytest_plugins = ["datasets_tiny"]
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def ucm(ucm_tiny: Path) -> SceneData:
    return open_dataset(ucm_tiny, size=32)


@pytest.fixture(scope="module")
def eurosat(eurosat_tiny: Path) -> SceneData:
    return open_dataset(eurosat_tiny, bands=S2_TEN)


@pytest.fixture(scope="module")
def teacher(ucm: SceneData, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("teacher") / "teacher.pt"
    params = TrainParams(
        out=str(out),
        method="pretrain",
        holdout=False,
        settings=TrainSettings(device="cpu"),
        options={
            "backbone": "efficientnet_lite0",
            "init": "scratch",
            "epochs": 1,
            "batch_size": 6,
        },
    )
    train_model(params, data=ucm)
    return out


CASES: dict[str, dict[str, Any]] = {
    "pretrain": {"backbone": "efficientnet_lite0", "init": "scratch", "epochs": 2},
    "ddrl-am": {
        "backbone": "efficientnet_lite0",
        "init": "scratch",
        "epochs": 1,
        "stage1_epochs": 1,
    },
    "scl": {
        "backbone": "efficientnet_lite0",
        "init": "scratch",
        "epochs": 1,
        "lr": 0.05,
        "balance": "csce",
    },
    "pskd": {
        "backbone": "mobilenet_v3_small",
        "init": "scratch",
        "epochs": 2,
        "lr": 0.01,
    },
    "bwms": {"epochs": 2, "multiplier": 2},
}


def test_every_registered_method_has_a_smoke_case() -> None:
    assert {m["name"] for m in list_methods()} == set(CASES)


def setup(
    name: str, data: SceneData, tmp: Path, teacher: Path | None
) -> tuple[Any, Any]:
    options = {**CASES[name], "batch_size": 6}
    if name == "pskd":
        options["teacher"] = str(teacher)
    method = create_method(
        name, options, num_classes=len(data.classes), bands=data.bands, task=data.task
    )
    return method, build_card(TrainParams(out=str(tmp / "m.pt")), data, data, method)


def check_gradients(
    method: Any, trainer: Trainer, model: torch.nn.Module, data: SceneData
) -> None:
    """In every stage, one step's loss is finite and reaches every parameter that stage trains."""
    for stage in method.stages():
        method.on_stage_start(model, stage, data)
        model.train()
        idx = trainer.batches(data, 6, stage)[0]
        x, y = trainer.batch_inputs(data, idx, stage)
        model.zero_grad(set_to_none=True)
        loss = method.training_step(model, x, y, stage)["loss"]
        assert math.isfinite(loss.item()), stage.name
        loss.backward()
        trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        assert trainable, stage.name
        missing = [
            n
            for n, p in trainable
            if p.grad is None or not torch.isfinite(p.grad).all()
        ]
        assert not missing, f"{stage.name}: no gradient for {missing[:5]}"
        assert any(p.grad.abs().sum() > 0 for _, p in trainable)


@pytest.mark.parametrize("name", sorted(CASES))
def test_method_smoke(
    name: str, ucm: SceneData, eurosat: SceneData, teacher: Path, tmp_path: Path
) -> None:
    data = eurosat if name == "bwms" else ucm
    ckpt = str(tmp_path / "m.pt.ckpt")
    cancel = threading.Event()
    events: list[dict[str, Any]] = []

    def stop_after_first_epoch(ev: dict[str, Any]) -> None:
        events.append(ev)
        if ev["event"] == "epoch":
            cancel.set()

    method, card = setup(name, data, tmp_path, teacher)
    with pytest.raises(Cancelled):
        Trainer(
            method, card, TrainSettings(device="cpu"), stop_after_first_epoch, cancel
        ).fit(data, data, checkpoint=ckpt)
    first = [e for e in events if e["event"] == "epoch"]
    assert len(first) == 1 and math.isfinite(first[0]["loss"])
    saved = torch.load(ckpt, weights_only=True)
    assert (saved["stage"], saved["epoch"]) == (0, 0)

    method, card = setup(
        name, data, tmp_path, teacher
    )  # a fresh process would rebuild everything
    trainer = Trainer(method, card, TrainSettings(device="cpu", resume=True))
    model = trainer.fit(data, data, checkpoint=ckpt)
    total = sum(s.epochs for s in method.stages())
    assert [h["epoch"] for h in trainer.history][:1] == [1] and len(
        trainer.history
    ) == total
    assert all(math.isfinite(h["loss"]) and 0 <= h["val"] <= 1 for h in trainer.history)

    module = method.export_module(model).eval()
    x = normalize(resize(data.x[:3], card.input_size), card.mean, card.std)
    with torch.no_grad():
        logits = module(x)
    assert logits.shape == (3, len(data.classes)) and torch.isfinite(logits).all()

    path = save_model(tmp_path / "model.pt", card, module.state_dict())
    card2, state = load_model_file(path)
    rebuilt = build_inference_model(card2)
    rebuilt.load_state_dict(state)
    with torch.no_grad():
        assert torch.allclose(rebuilt.eval()(x), logits, atol=1e-4)

    check_gradients(method, trainer, model, data)


def test_ddrl_am_attention_equals_pytorch_grad_cam(
    ucm_tiny: Path, tmp_path: Path
) -> None:
    data = open_dataset(
        ucm_tiny, size=96
    )  # 3 x 3 feature maps: a map with some structure
    method, card = setup("ddrl-am", data, tmp_path, None)
    trainer = Trainer(method, card, TrainSettings(device="cpu"))
    model = trainer.fit(data)
    net = model.net.eval()
    x = normalize(resize(data.x[:4], card.input_size), card.mean, card.std)
    cam = GradCAM(model=net.attention_net, target_layers=[net.attention_net.cam_layer])
    try:
        maps = cam(
            input_tensor=x.clone().requires_grad_(True), targets=None
        )  # its net is frozen by now
        reference = torch.from_numpy(np.asarray(maps, dtype=np.float32))
    finally:
        cam.activations_and_grads.release()
    assert (
        reference.shape == (4, card.input_size, card.input_size)
        and reference.amax((1, 2)).min() > 0.5
    )
    assert torch.allclose(
        method.maps[:4, 0], reference, atol=1e-4
    )  # the stage-2 training input
    assert torch.allclose(
        net.attention(x)[:, 0], reference, atol=1e-4
    )  # the map made at inference


def test_ddrl_am_resume_keeps_the_trained_stream(
    ucm: SceneData, tmp_path: Path
) -> None:
    method, card = setup("ddrl-am", ucm, tmp_path, None)
    model = Trainer(method, card, TrainSettings(device="cpu")).fit(
        ucm, checkpoint=str(tmp_path / "c")
    )
    assert bool(model.net.stream_ready)
    stream = {k: v.clone() for k, v in model.net.stream.state_dict().items()}
    method.on_stage_start(
        model, method.stages()[1], ucm
    )  # a resumed stage 2 must not re-copy stage 1
    assert all(
        torch.equal(v, model.net.stream.state_dict()[k]) for k, v in stream.items()
    )


def test_scl_class_balanced_sampling(ucm: SceneData) -> None:
    method = create_method("scl", {"balance": "cb"}, num_classes=3, bands=ucm.bands)
    stage = method.stages()[1]
    data = ucm.subset(
        [0, 1, 2, 3, 4, 8]
    )  # 4 / 1 / 1 images: minorities must be drawn as often as the majority
    g = torch.Generator().manual_seed(0)
    drawn = torch.cat(
        [torch.cat(method.batch_indices(stage, data, 6, g)) for _ in range(500)]
    )
    share = torch.bincount(data.y[drawn], minlength=3).float() / len(drawn)
    assert torch.allclose(share, torch.full((3,), 1 / 3), atol=0.03)


def test_scl_csce_weights(ucm: SceneData) -> None:
    method = create_method("scl", {"balance": "csce"}, num_classes=3, bands=ucm.bands)
    method.prepare_data(None, ucm.subset([0, 1, 2, 3, 4, 8]))
    assert method.class_weights.tolist() == pytest.approx([0.25, 1.0, 1.0])


def test_pskd_pairs_share_a_label(ucm: SceneData, teacher: Path) -> None:
    method, _ = setup("pskd", ucm, Path("/tmp"), teacher)
    for idx in method.batch_indices(
        method.stages()[0], ucm, 6, torch.Generator().manual_seed(1)
    ):
        half = len(idx) // 2
        assert torch.equal(ucm.y[idx[:half]], ucm.y[idx[half:]])
        assert (idx[:half] != idx[half:]).all()
    y = torch.tensor([0, 0, 1, 2])
    j = method.mix_partners(y)
    assert (y[j] != y).all()


def test_pskd_teacher_with_other_classes_is_refused(
    ucm: SceneData, teacher: Path, tmp_path: Path
) -> None:
    other = ucm.subset([i for i in range(len(ucm)) if ucm.y[i] != 2])
    other.classes = ["agricultural", "beach", "harbor"]
    method, card = setup("pskd", other, tmp_path, teacher)
    with pytest.raises(RSSceneError, match="classes"):
        Trainer(method, card, TrainSettings(device="cpu")).fit(other)
    with pytest.raises(RSSceneError, match="teacher"):
        create_method("pskd", {}, num_classes=3, bands=ucm.bands)


def test_bwms_bigearthnet_native_multilabel(data_root: Path, tmp_path: Path) -> None:
    data = load_bigearthnet_native(data_root / "bigearthnet_s2")
    assert data.x.shape[1:] == (10, 120, 120) and data.task == "multi-label"
    b05 = data.bands.index(
        "B05"
    )  # 20 m band: replicated 2x2, so average pooling returns the native pixels
    native = torch.nn.functional.avg_pool2d(data.x[:1, b05 : b05 + 1], 2)
    assert torch.equal(
        torch.repeat_interleave(torch.repeat_interleave(native, 2, -1), 2, -2),
        data.x[:1, b05 : b05 + 1],
    )
    params = TrainParams(
        out=str(tmp_path / "s2.pt"),
        method="bwms",
        settings=TrainSettings(device="cpu"),
        options={"epochs": 1, "batch_size": 4, "multiplier": 2, "backbone": "resnet18", "init": "scratch"},
    )
    card, metrics = train_model(params, data=data)
    assert card.task == "multi-label" and card.architecture == "bwms_resnet18"
    assert {"sample_f1", "sample_accuracy", "hamming_loss", "ranking_loss"} <= set(
        metrics
    )


def test_multilabel_metrics_equal_sklearn() -> None:
    y = np.array([[1, 0, 1, 0], [0, 1, 0, 0], [1, 1, 0, 1], [0, 0, 1, 1]])
    scores = np.array(
        [
            [0.9, 0.2, 0.4, 0.1],
            [0.3, 0.8, 0.6, 0.2],
            [0.7, 0.1, 0.2, 0.9],
            [0.2, 0.3, 0.8, 0.55],
        ]
    )
    m = multi_label_metrics(y, scores, ["a", "b", "c", "d"])
    pred = (scores >= 0.5).astype(int)
    f1, acc = [], []
    for t, p in zip(y, pred):
        tp = int((t & p).sum())
        f1.append(2 * tp / (t.sum() + p.sum()))
        acc.append(tp / int((t | p).sum()))
    rank = []
    for t, s in zip(y, scores):
        pos, neg = s[t == 1], s[t == 0]
        rank.append(sum(a <= b for a in pos for b in neg) / (len(pos) * len(neg)))
    assert (
        m["sample_f1"]
        == pytest.approx(np.mean(f1))
        == pytest.approx(skm.f1_score(y, pred, average="samples"))
    )
    assert m["sample_accuracy"] == pytest.approx(np.mean(acc))
    assert (
        m["hamming_loss"]
        == pytest.approx((y != pred).mean())
        == pytest.approx(skm.hamming_loss(y, pred))
    )
    assert (
        m["ranking_loss"]
        == pytest.approx(np.mean(rank))
        == pytest.approx(skm.label_ranking_loss(y, scores))
    )
