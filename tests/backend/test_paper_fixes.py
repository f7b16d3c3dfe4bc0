"""Fixes of issue 11 to PSKD, pre-training and BWMS against their papers; each test fails without its fix."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from rs_scene.bands import S2_TEN
from rs_scene.card import ModelCard
from rs_scene.data.datasets import SceneData, open_dataset
from rs_scene.engine.evaluate import preprocess
from rs_scene.engine.train import TrainParams, build_card, train_model
from rs_scene.engine.trainer import Trainer, TrainSettings
from rs_scene.losses.distill import kd_kl
from rs_scene.methods import build_inference_model, create_method
from rs_scene.models import create_backbone
from rs_scene.models.efficientnet_lite import imagenet_state_dict
from torch import nn
from torch.nn import functional as F

pytest_plugins = ["datasets_tiny"]
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def ucm(ucm_tiny: Path) -> SceneData:
    return open_dataset(ucm_tiny, size=32)


@pytest.fixture(scope="module")
def teacher(ucm: SceneData, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("t") / "teacher.pt"
    opts = {"backbone": "efficientnet_lite2", "init": "imagenet", "epochs": 1, "batch_size": 6}
    train_model(TrainParams(out=str(out), method="pretrain", holdout=False, options=opts,
                            settings=TrainSettings(device="cpu")), data=ucm)
    return out


def pskd(ucm: SceneData, teacher: Path, **options):
    method = create_method("pskd", {"teacher": str(teacher), **options}, num_classes=3, bands=ucm.bands)
    card = build_card(TrainParams(out="s.pt"), ucm, ucm, method)
    method.prepare_data(card, ucm)
    return method, card


def test_pskd_default_student_is_imagenet_lite0_offline(ucm: SceneData, teacher: Path) -> None:
    method, _ = pskd(ucm, teacher)  # RS_SCENE_OFFLINE=1 (conftest): resnet18 + imagenet could not load
    c = method.config
    assert (c.backbone, c.init, c.gamma, c.alpha, c.beta) == ("efficientnet_lite0", "imagenet", 0.8, 0.1, 1.0)
    net = method.build_model()
    assert torch.equal(net.student.backbone._blocks[3]._project_conv.weight,
                       imagenet_state_dict()["_blocks.3._project_conv.weight"])


@pytest.mark.parametrize("kd", ["none", "hinton"])
def test_pskd_baseline_losses(ucm: SceneData, teacher: Path, kd: str) -> None:
    method, card = pskd(ucm, teacher, kd=kd, init="scratch")
    net = method.build_model().eval()
    x, y = preprocess(ucm.x[:8], card), ucm.y[:8]
    with torch.no_grad():
        loss = method.training_step(net, x, y, method.stages()[0])["loss"]
        ce = F.cross_entropy(net.student(x), y)  # every image of the batch, not the anchors only
        want = ce if kd == "none" else 0.8 * ce + kd_kl(net.teacher(x), net.student(x), 4.0)
    assert float(loss) == pytest.approx(float(want), rel=1e-5)


@pytest.mark.parametrize("ce_images", ["all", "anchors"])
def test_pskd_cross_entropy_sees_every_image_of_the_batch(ucm: SceneData, teacher: Path, ce_images: str) -> None:
    """Eq. 9's gamma H(y_s, y) over anchors and partners (as the baselines' CE), or the anchors only."""
    method, card = pskd(ucm, teacher, init="scratch", alpha=0.0, beta=0.0, ce_images=ce_images)
    net = method.build_model().eval()
    x, y = preprocess(ucm.x[:8], card), ucm.y[:8]
    with torch.no_grad():
        loss = method.training_step(net, x, y, method.stages()[0])["loss"]
        logits = net.student(x)
        want = F.cross_entropy(logits, y) if ce_images == "all" else F.cross_entropy(logits[:4], y[:4])
    assert float(loss) == pytest.approx(0.8 * float(want), rel=1e-5)


@pytest.mark.parametrize("mix_images", ["anchors", "all"])
def test_pskd_mixup_term_mixes_the_chosen_images(ucm: SceneData, teacher: Path, mix_images: str) -> None:
    """Eq. 6-8 on the anchors (each mixed with an anchor of another label) or on every image of the batch."""
    from rs_scene.losses import MixupKDLoss

    method, card = pskd(ucm, teacher, init="scratch", alpha=0.0, gamma=0.0, mix_images=mix_images)
    net = method.build_model().eval()
    idx = torch.cat([torch.arange(4) * (len(ucm) // 4), torch.arange(4) * (len(ucm) // 4) + 1])  # mixed classes
    x, y = preprocess(ucm.x[idx], card), ucm.y[idx]
    src, ys = (x, y) if mix_images == "all" else (x[:4], y[:4])
    np.random.seed(3)
    torch.manual_seed(3)
    with torch.no_grad():
        loss = method.training_step(net, x, y, method.stages()[0])["loss"]
        np.random.seed(3)
        torch.manual_seed(3)
        j = method.mix_partners(ys)
        lam = float(np.random.beta(method.config.mixup_alpha, method.config.mixup_alpha))
        mixed = lam * src + (1 - lam) * src[j]
        want = MixupKDLoss(4.0)(net.student(mixed), net.teacher(mixed), ys, ys[j], lam)
    assert len(j) == len(src) and bool((ys[j] != ys).any())
    assert float(loss) == pytest.approx(float(want), rel=1e-5)


@pytest.mark.parametrize("batchnorm", ["frozen", "train"])
def test_pskd_batchnorm_option_keeps_or_reestimates_the_students_statistics(ucm: SceneData, teacher: Path,
                                                                           batchnorm: str) -> None:
    """``batchnorm frozen``: the student's BatchNorm layers stay in eval mode while it trains, so the
    ImageNet running statistics are what it ends with (the mixed images of Eq. 6 do not enter them); ``train``
    re-estimates them. The teacher is in eval mode either way."""
    method, card = pskd(ucm, teacher, batchnorm=batchnorm, epochs=1, batch_size=8)
    start = imagenet_state_dict()["_blocks.3._bn1.running_var"]
    model = Trainer(method, card, TrainSettings(device="cpu")).fit(ucm)
    bn = model.student.backbone._blocks[3]._bn1
    assert torch.equal(bn.running_var, start) == (batchnorm == "frozen")
    method.train_mode(model)
    assert bn.training == (batchnorm == "train") and not model.teacher.teacher.training
    assert model.student.dropout.training  # only BatchNorm is held in eval mode


@pytest.mark.parametrize("head_init", ["probe", "random"])
def test_pskd_head_init_starts_the_student_from_a_linear_probe(ucm_tiny: Path, teacher: Path,
                                                              head_init: str) -> None:
    """``head_init probe`` (LP-FT, as pretrain's): before distillation the student's classifier is fitted as a
    linear probe on its frozen features of the training images, so it already separates them; ``random``
    leaves the random classifier as built (the paper)."""
    from rs_scene.methods.pretrain import frozen_features

    ucm = open_dataset(ucm_tiny, size=64)  # at 32 px Lite0 pools a 1 x 1 map, nearly all 0
    method, card = pskd(ucm, teacher, head_init=head_init, batch_size=6)
    net = method.build_model()
    before = net.student.head.weight.detach().clone()
    torch.manual_seed(0)
    method.on_stage_start(net, method.stages()[0], ucm)
    features = frozen_features(net.student, ucm, lambda x, train=False: preprocess(x, card))
    fit = float((net.student.head(features).argmax(1) == ucm.y).float().mean())
    assert torch.equal(net.student.head.weight, before) == (head_init == "random")
    assert fit >= 0.9 if head_init == "probe" else fit < 0.75
    auto = pskd(ucm, teacher, head_init="auto")[0], pskd(ucm, teacher, head_init="auto", init="scratch")[0]
    assert [m.head_from_probe() for m in auto] == [True, False]


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_pskd_optimizer_option_is_the_papers_sgd_or_pretrains_adam(ucm: SceneData, teacher: Path,
                                                                  optimizer: str) -> None:
    """``optimizer sgd``: the paper's SGD (momentum 0.9, x0.1 at 30 / 60 / 80 % of the epochs); ``adam``:
    pretrain's fine-tuning optimiser, Adam with a linear warm-up and x0.2 at 50 / 70 / 90 %."""
    from rs_scene.methods.pretrain import warmup_step_schedule

    method, _ = pskd(ucm, teacher, optimizer=optimizer, lr=0.001, epochs=20, min_steps=0)
    net = method.build_model()
    stage = method.stages()[0]
    optim, sched = method.configure_optimizer(net, stage, 1)
    rates = []
    for _ in range(stage.epochs):
        rates.append(optim.param_groups[0]["lr"])
        optim.step()
        sched.step()
    student = {id(p) for p in net.student.parameters()}
    assert {id(p) for g in optim.param_groups for p in g["params"]} == student  # never the teacher
    if optimizer == "sgd":
        assert isinstance(optim, torch.optim.SGD) and optim.param_groups[0]["momentum"] == 0.9
        assert rates[0] == rates[5] == pytest.approx(1e-3) and rates[6] == pytest.approx(1e-4)
        assert rates[16] == pytest.approx(1e-6)
    else:
        assert isinstance(optim, torch.optim.Adam)
        factor = warmup_step_schedule(20, 5)
        assert rates == pytest.approx([1e-3 * factor(e) for e in range(20)])
        assert rates[0] == pytest.approx(2e-4) and rates[4] == pytest.approx(1e-3)
        assert rates[10] == pytest.approx(2e-4)


def test_pskd_no_tiny_anchor_batch(ucm: SceneData, teacher: Path) -> None:
    method, _ = pskd(ucm, teacher)
    batches = list(method.batch_indices(method.stages()[0], ucm, 10, torch.Generator().manual_seed(0)))
    assert [len(b) for b in batches] == [12, 12]  # 12 anchors at 5 a batch: 6 + 6, not 5 + 5 + 2


def test_pretrain_probe_trains_on_cached_unaugmented_features(ucm: SceneData) -> None:
    method = create_method("pretrain", {"mode": "linear-probe", "epochs": 2, "batch_size": 6},
                           num_classes=3, bands=ucm.bands)
    card = build_card(TrainParams(out="p.pt"), ucm, ucm, method)
    trainer = Trainer(method, card, TrainSettings(device="cpu"))
    model = trainer.fit(ucm)
    idx = torch.arange(6)
    a, _ = method.prepare_batch(ucm, idx, method.stages()[0], trainer)
    b, _ = method.prepare_batch(ucm, idx, method.stages()[0], trainer)
    with torch.no_grad():
        model.eval()
        want = model.forward_head(model.forward_features(preprocess(ucm.x[:6], card)), pre_logits=True)
    assert a.ndim == 2 and torch.equal(a, b) and torch.allclose(a, want, atol=1e-5)
    fresh = create_backbone("efficientnet_lite0", pretrained=True).state_dict()
    assert all(torch.equal(v, fresh[k]) for k, v in model.backbone.state_dict().items())  # frozen, BN too


def test_pretrain_min_steps_raises_epochs(ucm: SceneData) -> None:
    method = create_method("pretrain", {"epochs": 1, "batch_size": 6, "min_steps": 10, "init": "scratch"},
                           num_classes=3, bands=ucm.bands)
    card = build_card(TrainParams(out="p.pt"), ucm, ucm, method)
    trainer = Trainer(method, card, TrainSettings(device="cpu"))
    trainer.fit(ucm)
    assert len(trainer.history) == 5  # 12 images at batch 6: 2 steps an epoch


def test_the_card_says_how_many_epochs_ran_and_why(ucm: SceneData, tmp_path: Path) -> None:
    """The Training dialog's report reads the epochs from the card: planned (raised by min_steps), run and the
    one kept (best validation), so a run of 5 epochs is not shown as the 1 the form says."""
    opts = {"epochs": 1, "batch_size": 6, "min_steps": 10, "init": "scratch", "backbone": "resnet18"}
    card, _ = train_model(TrainParams(out=str(tmp_path / "m.pt"), method="pretrain", holdout=False,
                                      options=opts, val_fraction=0.25, settings=TrainSettings(device="cpu")),
                          data=ucm)
    t = card.training
    assert (t["epochs_option"], t["min_steps"], t["n_train"]) == (1, 10, 9)
    # 9 training images at batch 6: 2 steps an epoch, so 5 epochs for 10 steps
    [stage] = t["stages"]
    assert (stage["stage"], stage["epochs"], stage["ran"]) == ("fine-tune", 5, 5)
    best = max(t["history"], key=lambda r: r["val"])  # the first best epoch: later ties do not replace it
    assert stage["kept"] == best["epoch"]


def test_pretrain_defaults_give_a_small_set_200_steps_and_given_epochs_are_kept() -> None:
    """The dialog's defaults on a small set (20 steps at 63 images made a 0.23-OA model, 200 steps 0.58):
    at least 200 optimiser steps; epochs a user gives are trained as given."""
    method = create_method("pretrain", {"init": "scratch"}, num_classes=3, bands=["B04", "B03", "B02"])
    method.prepare_data(None, list(range(63)))
    assert method.config.min_steps == 200 and method.stages()[0].epochs == 100  # 2 batches an epoch
    given = create_method("pretrain", {"init": "scratch", "epochs": 3}, num_classes=3, bands=["B04"])
    given.prepare_data(None, list(range(63)))
    assert given.config.min_steps == 0 and given.stages()[0].epochs == 3
    both = create_method("pretrain", {"epochs": 3, "min_steps": 50}, num_classes=3, bands=["B04"])
    both.prepare_data(None, list(range(63)))
    assert both.stages()[0].epochs == 25



@pytest.fixture(scope="module")
def ucm48(ucm_tiny: Path) -> SceneData:
    return open_dataset(ucm_tiny, size=48)  # at 32 px ImageNet Lite0's eval-mode features are all 0


def lpft(ucm: SceneData, **options):
    method = create_method("pretrain", {"batch_size": 6, **options}, num_classes=3, bands=ucm.bands)
    card = build_card(TrainParams(out="p.pt"), ucm, ucm, method)
    method.prepare_data(card, ucm)
    torch.manual_seed(0)
    model = method.build_model().train()
    return method, card, model, copy.deepcopy(model.state_dict())


def test_pretrain_fine_tune_starts_from_a_linear_probe(ucm48: SceneData) -> None:
    """LP-FT (the default from pretrained weights): before the first fine-tuning step the classifier is a
    probe fitted on the frozen, unaugmented features; the backbone and the modes are untouched."""
    method, card, model, before = lpft(ucm48)
    assert method.config.head_init == "auto" and method.head_from_probe()
    stage = method.stages()[0]
    method.on_stage_start(model, stage, ucm48)
    assert model.training and model.backbone.training
    after = model.state_dict()
    assert all(torch.equal(v, before[k]) for k, v in after.items() if not k.startswith("head."))
    with torch.no_grad():
        f = model.eval().forward_head(model.forward_features(preprocess(ucm48.x, card)), pre_logits=True)
        fitted = F.cross_entropy(model.head(f), ucm48.y)
        head = nn.Linear(f.shape[1], 3)
        head.load_state_dict({k[5:]: v for k, v in before.items() if k.startswith("head.")})
        start = F.cross_entropy(head(f), ucm48.y)
    assert float(fitted) < 0.5 * float(start)
    assert (model.head(f).argmax(1) == ucm48.y).float().mean() == 1.0  # 12 images, 1280 features: separable


@pytest.mark.parametrize("options", [{"head_init": "random"}, {"init": "scratch"}, {"mode": "linear-probe"}])
def test_pretrain_head_stays_random_for_the_papers_fine_tune_and_from_scratch(ucm48: SceneData, options) -> None:
    method, _, model, before = lpft(ucm48, **options)
    method.on_stage_start(model, method.stages()[0], ucm48)
    assert not method.head_from_probe()
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_pretrain_resumed_stage_keeps_its_fine_tuned_head(ucm48: SceneData) -> None:
    """A run resumed from a checkpoint has its head in the checkpoint: it is not fitted again."""
    method, _, model, before = lpft(ucm48)
    stage = method.stages()[0]
    stage.info["resumed"] = True
    method.on_stage_start(model, stage, ucm48)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def bn_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items() if k.endswith(("running_mean", "running_var"))}


@pytest.mark.parametrize("batchnorm", ["frozen", "train"])
def test_pretrain_fine_tune_keeps_or_re_estimates_batchnorm_statistics(ucm48: SceneData, batchnorm: str) -> None:
    """``batchnorm frozen``: a fine-tune through the trainer leaves every running statistic as ImageNet's
    while the weights (BatchNorm's scale and shift among them) move; ``train`` re-estimates the statistics."""
    opts = {"batch_size": 6, "epochs": 1, "min_steps": 0, "batchnorm": batchnorm, "head_init": "random"}
    method = create_method("pretrain", opts, num_classes=3, bands=ucm48.bands)
    card = build_card(TrainParams(out="p.pt"), ucm48, ucm48, method)
    torch.manual_seed(0)
    imagenet = method.build_model()
    before, weights = bn_state(imagenet), {k: v.clone() for k, v in imagenet.state_dict().items()}
    model = Trainer(method, card, TrainSettings(device="cpu", seed=0)).fit(ucm48)
    after = model.state_dict()
    same = [torch.equal(after[k], v) for k, v in before.items()]
    assert len(same) > 40
    assert all(same) if batchnorm == "frozen" else not any(same)
    scales = [k for k in weights if k.replace(".weight", ".running_mean") in before and k.endswith(".weight")]
    assert scales and not all(torch.equal(after[k], weights[k]) for k in scales)  # BN's affine still trains


@pytest.mark.parametrize(("options", "frozen"), [({}, True), ({"init": "scratch"}, False),
                                                  ({"batchnorm": "train"}, False),
                                                  ({"mode": "linear-probe"}, False)])
def test_pretrain_batchnorm_auto_freezes_pretrained_statistics_only(options: dict, frozen: bool) -> None:
    method = create_method("pretrain", options, num_classes=3, bands=["B04", "B03", "B02"])
    assert method.frozen_batchnorm() is frozen


def test_pskd_defaults_give_a_small_set_200_steps_and_given_epochs_are_kept() -> None:
    """PSKD's pair batches hold B/2 anchors: 63 images at batch 32 are 4 batches an epoch, 50 epochs."""
    method = create_method("pskd", {"teacher": "t.pt"}, num_classes=3, bands=["B04"])
    method.n_train = 63
    assert method.config.min_steps == 200 and method.stages()[0].epochs == 50
    given = create_method("pskd", {"teacher": "t.pt", "epochs": 4}, num_classes=3, bands=["B04"])
    given.n_train = 63
    assert given.config.min_steps == 0 and given.stages()[0].epochs == 4


def test_bwms_leaky_relu_inside_and_old_files_keep_relu() -> None:
    method = create_method("bwms", {"backbone": "resnet18", "init": "scratch"}, num_classes=10, bands=S2_TEN)
    net = method.build_model()
    kinds = {type(m) for m in net.modules()}
    assert nn.LeakyReLU in kinds and nn.ReLU not in kinds
    card = ModelCard(name="x", method="bwms", architecture="bwms_resnet18", bands=list(S2_TEN),
                     classes=[{"name": str(i)} for i in range(10)], input_size=64, method_config={"multiplier": 4})
    assert nn.ReLU in {type(m) for m in build_inference_model(card).modules()}
    card.method_config = method.card_fields()["method_config"]
    assert nn.ReLU not in {type(m) for m in build_inference_model(card).modules()}


def test_stride2_stem_resnet_runs_its_body_on_the_half_grid() -> None:
    s4, s2 = create_backbone("resnet18", in_chans=10), create_backbone("resnet18_s2", in_chans=10)
    x = torch.randn(1, 10, 64, 64)
    assert s4.forward_features(x).shape[-1] == 2 and s2.forward_features(x).shape[-1] == 4
    assert sum(p.numel() for p in s4.parameters()) == sum(p.numel() for p in s2.parameters())
    method = create_method("bwms", {"stem": "conv-s2", "backbone": "resnet18", "init": "scratch"}, num_classes=10,
                           bands=S2_TEN)
    assert method.card_fields()["architecture"] == "resnet18_s2"


def test_ddrl_am_defaults_lift_both_stages_and_scale_the_lr_step() -> None:
    """63 images at batch 32 (2 batches an epoch): both stages 100 epochs, the x0.1 step every 100 (its
    default 10 of 10 epochs: no decay inside the run, as before); a given step of 5 of 10 becomes 50."""
    method = create_method("ddrl-am", {"init": "scratch"}, num_classes=3, bands=["B04", "B03", "B02"])
    method.n_train = 63
    first, two = method.stages()
    assert method.config.min_steps == 200 and (first.epochs, two.epochs) == (100, 100)
    assert two.info["lr_step"] == 100 and first.info["lr_step"] == 100
    halved = create_method("ddrl-am", {"init": "scratch", "lr_step": 5}, num_classes=3, bands=["B04"])
    halved.n_train = 63
    stage = halved.stages()[1]
    model = halved.build_model()
    _, sched = halved.configure_optimizer(model, stage, 2)
    factors = [f(e) for e in (49, 50) for f in sched.lr_lambdas[1:]]
    assert stage.info["lr_step"] == 50 and factors == [1.0, 0.1]
    given = create_method("ddrl-am", {"init": "scratch", "epochs": 4}, num_classes=3, bands=["B04"])
    given.n_train = 63
    assert given.config.min_steps == 0 and [s.epochs for s in given.stages()] == [4, 4]
    assert given.stages()[1].info["lr_step"] == 10


def test_scl_defaults_lift_stage_1_and_scale_its_warmup() -> None:
    """Stage 1 (contrastive) of 63 images at batch 32: 100 epochs with 20 of warm-up (2 of 10 before);
    stage 2 on cached features keeps its 100 epochs."""
    method = create_method("scl", {"init": "scratch"}, num_classes=3, bands=["B04", "B03", "B02"])
    method.n_train = 63
    first, second = method.stages()
    assert method.config.min_steps == 200 and (first.epochs, second.epochs) == (100, 100)
    _, sched = method.configure_optimizer(method.build_model(), first, 2)
    lam = sched.lr_lambdas[0]
    assert first.info["warmup"] == 20 and lam(0) == 1 / 21 and lam(19) == 20 / 21 and lam(20) == 1.0
    given = create_method("scl", {"init": "scratch", "epochs": 3}, num_classes=3, bands=["B04"])
    given.n_train = 63
    assert given.config.min_steps == 0 and given.stages()[0].epochs == 3
