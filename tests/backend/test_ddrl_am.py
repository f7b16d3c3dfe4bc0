"""DDRL-AM against its paper: the class centers start at the class means of the fused features as training
computes them (train-mode BatchNorm), the center loss is scaled to the paper's 512 feature dimensions, the SFT
is Table I (no activation), only the SFT and classifier learning rates decay, and stage 1 augments with
rotations and flips only."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from rs_scene.data.datasets import SceneData, open_dataset
from rs_scene.data.transforms import normalize, resize
from rs_scene.engine.train import TrainParams, build_card
from rs_scene.engine.trainer import Trainer, TrainSettings
from rs_scene.errors import RSSceneError
from rs_scene.losses import CenterLoss
from rs_scene.methods import create_method
from rs_scene.methods.ddrl_am import bn_buffers
from rs_scene.models.sft import SFT
from torch import nn

pytest_plugins = ["datasets_tiny"]
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def ucm(ucm_tiny: Path) -> SceneData:
    return open_dataset(ucm_tiny, size=64)


def setup(data: SceneData, tmp: Path, **options: object) -> tuple:
    opts = {"backbone": "efficientnet_lite0", "init": "scratch", "epochs": 1, "stage1_epochs": 1, **options}
    method = create_method("ddrl-am", opts, num_classes=len(data.classes), bands=data.bands)
    card = build_card(TrainParams(out=str(tmp / "m.pt")), data, data, method)
    method.prepare_data(card, data)
    return method, card


def test_centers_start_at_the_train_mode_class_means(ucm: SceneData, tmp_path: Path) -> None:
    method, card = setup(ucm, tmp_path, batch_size=64)  # one batch: train mode normalises by the whole set
    torch.manual_seed(0)  # an untrained stage 1 whose maps are not all 0 (they were for some random inits)
    model = method.build_model()
    last = model.net.sft.layers[-1]  # an SFT whose output varies (a fresh one starts at 1 everywhere)
    last.weight.data.fill_(1.0), last.bias.data.zero_()
    before = bn_buffers(model.net)
    method.on_stage_start(model, method.stages()[1], ucm)
    assert method.maps.amax() > 0
    after = bn_buffers(model.net)
    assert all(torch.equal(before[k], after[k]) for k in before)  # the running statistics are untouched
    net = model.net.train()
    x = normalize(resize(ucm.x, card.input_size), card.mean, card.std)
    with torch.no_grad():
        trained = net.forward_head(net.fused_features(x, method.maps), pre_logits=True)
        evaluated = net.eval().forward_head(net.fused_features(x, method.maps), pre_logits=True)
    means = torch.stack([trained[ucm.y == c].mean(0) for c in range(len(ucm.classes))])
    assert torch.allclose(model.center.centers, means, rtol=1e-4, atol=1e-5)
    # what the eval-mode start gave (fresh SFT BatchNorm: running mean 0, variance 1) is far from it
    eval_means = torch.stack([evaluated[ucm.y == c].mean(0) for c in range(len(ucm.classes))])
    assert (eval_means - means).norm() > 0.5 * means.norm()


def test_center_loss_is_scaled_to_512_dims() -> None:
    f, y = torch.randn(6, 1280), torch.tensor([0, 1, 2, 0, 1, 2])
    plain, scaled = CenterLoss(3, 1280), CenterLoss(3, 1280, ref_dim=512)
    assert scaled(f, y).item() == pytest.approx(plain(f, y).item() * 512 / 1280, rel=1e-6)
    method = create_method("ddrl-am", {"init": "scratch"}, num_classes=3, bands=["R", "G", "B"])
    assert method.build_model().center.scale == pytest.approx(512 / 1280)
    assert method.config.center_weight < 0.1  # Wen et al.'s range, not the paper's 0.5 that shrinks features


def test_sft_is_table_one_without_activation() -> None:
    sft = SFT(512)
    kinds = [type(m) for m in sft.layers]
    conv, bn, pool = nn.Conv2d, nn.BatchNorm2d, nn.MaxPool2d
    assert kinds == [conv, bn, pool, conv, bn, conv, bn, conv, bn]
    assert [m.out_channels for m in sft.layers if isinstance(m, conv)] == [64, 128, 256, 512]
    out = sft.train()(torch.rand(4, 1, 64, 64))
    assert out.shape == (4, 512, 2, 2) and torch.equal(out, torch.ones_like(out))  # starts at 1 everywhere
    sft.layers[-1].weight.data.fill_(1.0)
    assert sft(torch.rand(4, 1, 64, 64)).min() < 0  # the last BN's output, not rectified


def test_only_sft_and_head_learning_rates_decay(ucm: SceneData, tmp_path: Path) -> None:
    method, _ = setup(ucm, tmp_path, lr=1e-3, lr_backbone=1e-4, lr_step=10)
    model = method.build_model()
    for stage in method.stages():
        optim, sched = method.configure_optimizer(model, stage, 1)
        for _ in range(10):
            optim.step()
            sched.step()
        lrs = [g["lr"] for g in optim.param_groups]
        assert lrs == pytest.approx([1e-4, 1e-4]), stage.name  # backbone kept, SFT + head x0.1


def test_stage1_augments_with_rotations_and_flips_only(ucm: SceneData, tmp_path: Path) -> None:
    method, card = setup(ucm, tmp_path)
    trainer = Trainer(method, card, TrainSettings(device="cpu", seed=3))
    idx = torch.arange(len(ucm))
    x, _ = trainer.batch_inputs(ucm, idx, method.stages()[0])
    plain = normalize(resize(ucm.x, card.input_size), card.mean, card.std)
    for i in range(len(ucm)):
        variants = [torch.rot90(v, k, (-2, -1)) for v in (plain[i], plain[i].flip(-1)) for k in range(4)]
        assert any(torch.allclose(x[i], v, atol=1e-5) for v in variants), i


def test_a_model_with_the_former_relu_sft_is_refused_clearly() -> None:
    old = nn.Sequential(*[m for layer in SFT(512).layers for m in (
        [layer, nn.ReLU()] if isinstance(layer, nn.BatchNorm2d) else [layer])])
    state = {f"layers.{k}": v for k, v in old.state_dict().items()}
    with pytest.raises(RSSceneError, match="train it again"):
        SFT(512).load_state_dict(state)


def test_the_two_stream_network_starts_as_the_stage_1_network(ucm: SceneData, tmp_path: Path) -> None:
    """Stream and head from stage 1, a fresh SFT outputs 1: before stage 2 trains, the two-stream network's
    logits are the stage-1 network's, so the map can only be learnt on top of what stage 1 knows."""
    method, card = setup(ucm, tmp_path)
    model = method.build_model()
    net = model.net
    with torch.no_grad():  # a stage-1 network that is not its initialisation
        for p in net.attention_net.parameters():
            p.add_(0.01 * torch.randn_like(p))
    method.on_stage_start(model, method.stages()[1], ucm)
    x = normalize(resize(ucm.x, card.input_size), card.mean, card.std)
    net.eval()
    with torch.no_grad():
        two, one = net(x), net.attention_net(x)
        assert torch.equal(net.sft(method.maps[:4]), torch.ones_like(net.sft(method.maps[:4])))
    assert torch.allclose(two, one, atol=1e-4, rtol=1e-4)
    assert not torch.allclose(one, torch.zeros_like(one), atol=1e-2)
