"""BWMS: min_steps on small sets (the lr halving stretched with the run) and the EfficientNet-Lite body with
ImageNet blocks after the band-wise layer (stem-equivalent start, card round trip, ONNX export, Grad-CAM)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from rs_scene.bands import S2_TEN
from rs_scene.card import load_model_file
from rs_scene.data.datasets import open_dataset
from rs_scene.engine.runtime import export_onnx
from rs_scene.engine.train import TrainParams, build_card, train_model
from rs_scene.engine.trainer import Trainer, TrainSettings
from rs_scene.errors import RSSceneError
from rs_scene.methods import build_inference_model, create_method
from rs_scene.models import create_backbone

pytest_plugins = ["datasets_tiny"]
pytestmark = pytest.mark.usefixtures("one_thread")
RGB = ["red", "green", "blue"]


def test_bwms_defaults_give_a_small_set_200_steps_with_the_halving_stretched() -> None:
    """63 images at batch 32 (2 batches an epoch): 100 epochs, the halving every 300 (30 of 10: none inside
    the run, as before); a halving of 5 of 10 epochs becomes 50 of 100; given epochs are kept."""
    method = create_method("bwms", {}, num_classes=3, bands=RGB)
    method.prepare_data(None, list(range(63)))
    stage = method.stages()[0]
    assert method.config.min_steps == 200 and stage.epochs == 100 and stage.info["lr_halving"] == 300
    half = create_method("bwms", {"lr_halving": 5}, num_classes=3, bands=RGB)
    half.prepare_data(None, list(range(63)))
    stage = half.stages()[0]
    _, sched = half.configure_optimizer(half.build_model(), stage, 2)
    assert stage.epochs == 100 and sched.step_size == 50
    given = create_method("bwms", {"epochs": 4}, num_classes=3, bands=RGB)
    given.prepare_data(None, list(range(63)))
    assert given.config.min_steps == 0 and given.stages()[0].epochs == 4
    assert given.stages()[0].info["lr_halving"] == 30


def test_bwms_lr_0_is_the_papers_from_scratch_and_the_validation_choice_from_imagenet() -> None:
    scratch = create_method("bwms", {"backbone": "resnet18", "init": "scratch"}, num_classes=3, bands=RGB)
    lite = create_method("bwms", {"backbone": "efficientnet_lite0", "init": "imagenet"}, num_classes=3,
                         bands=RGB)
    given = create_method("bwms", {"lr": 0.01}, num_classes=3, bands=RGB)
    assert (scratch.base_lr(), lite.base_lr(), given.base_lr()) == (1e-3, 3e-4, 0.01)


def test_bwms_min_steps_trains_that_many_steps(ucm_tiny: Path) -> None:
    data = open_dataset(ucm_tiny, size=32)
    method = create_method("bwms", {"epochs": 1, "batch_size": 6, "min_steps": 10, "multiplier": 1},
                           num_classes=len(data.classes), bands=data.bands)
    trainer = Trainer(method, build_card(TrainParams(out="b.pt"), data, data, method), TrainSettings("cpu"))
    trainer.fit(data)
    per_epoch = max(1, int(len(data) / 6 + 0.5))
    assert len(trainer.history) == -(-10 // per_epoch) > 1


def test_lite0_body_starts_as_the_imagenet_stem() -> None:
    """The band-wise layer + fusion conv compute the ImageNet stem conv on 10 m bands (exact factorisation),
    the fusion BatchNorm is the stem's; the blocks after it are ImageNet's. Random band-wise init: not so."""
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    ref = create_backbone("efficientnet_lite0", pretrained=True).eval()
    for bands in (RGB, ["B04", "B03", "B02", "B08"]):
        net = create_method("bwms", {"backbone": "efficientnet_lite0", "init": "imagenet"}, num_classes=5,
                            bands=bands).build_model().backbone.eval()
        xb = torch.cat([x, x[:, :1]], 1)[:, : len(bands)]
        stem = create_backbone("efficientnet_lite0", in_chans=len(bands), pretrained=True, bands=bands)
        with torch.no_grad():
            got, want = net.fusion[0](net.bandwise(xb)), stem._conv_stem(xb)
        assert torch.allclose(got, want, atol=1e-4 * want.abs().max())
        assert torch.equal(net.fusion[1].running_var, ref._bn0.running_var)
        assert torch.equal(net._blocks[3]._depthwise_conv.weight, ref._blocks[3]._depthwise_conv.weight)
    rand = create_method("bwms", {"backbone": "efficientnet_lite0", "init": "imagenet", "band_init": "random"},
                         num_classes=5, bands=RGB).build_model().backbone.eval()
    with torch.no_grad():
        assert not torch.allclose(rand.fusion[0](rand.bandwise(x)), ref._conv_stem(x), atol=1e-2)


def test_resnet_body_after_the_band_wise_layer_refuses_imagenet() -> None:
    with pytest.raises(RSSceneError, match="efficientnet_lite0"):
        create_method("bwms", {"backbone": "resnet18", "init": "imagenet"}, num_classes=3, bands=RGB).build_model()


def test_lite0_bwms_file_rebuilds_exports_and_explains(eurosat_tiny: Path, tmp_path: Path) -> None:
    """A trained file with the Lite0 body (ten Sentinel-2 bands, 20 m ones on their grid) rebuilds from its
    card with equal logits, exports to ONNX with equal logits and features, and its CAM layer is the last
    feature map."""
    import onnxruntime as ort

    out = tmp_path / "lite.pt"
    params = TrainParams(out=str(out), method="bwms", holdout=False, settings=TrainSettings(device="cpu"),
                         options={"backbone": "efficientnet_lite0", "init": "imagenet", "epochs": 1,
                                  "batch_size": 8, "multiplier": 2})
    card, _ = train_model(params, data=open_dataset(eurosat_tiny, bands=S2_TEN))
    card, state = load_model_file(out)
    assert card.architecture == "bwms_efficientnet_lite0" and card.method_config["body_activation"] == "relu6"
    net = build_inference_model(card)
    net.load_state_dict(state)
    net.eval()
    x = torch.randn(3, 10, card.input_size, card.input_size)
    seen = []
    net.cam_layer.register_forward_hook(lambda m, i, o: seen.append(o.shape))
    with torch.no_grad():
        logits, feats = net(x), net.forward_features(x)
    assert seen[0] == feats.shape and feats.shape[1] == 1280
    path = export_onnx(net, card, tmp_path / "lite.onnx")
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x.numpy()})
    assert torch.allclose(torch.from_numpy(got[0]), logits, atol=1e-4)
    assert torch.allclose(torch.from_numpy(got[1]), feats, atol=1e-4)
