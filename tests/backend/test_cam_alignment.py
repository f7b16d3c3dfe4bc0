"""Heatmap cells on their receptive fields: the geometry found by following the network, exactly placed on a
toy network, and on the shipped model real evidence (a patch of another class pasted into a real EuroSAT
image) gets more of the heat once aligned."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import rasterio
import torch
from conftest import SHARED
from rs_scene.engine.evaluate import preprocess
from rs_scene.engine.infer import load_model
from rs_scene.explain.cam import NO_ALIGNMENT, CamRunner, cam_alignment, resample_maps
from rs_scene.models import create_backbone
from torch import nn
from torch.nn import functional as F

S2 = ["B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12"]


@pytest.mark.parametrize(("name", "size", "expected"), [
    ("efficientnet_lite0", 128, (1.0, 15.5)), ("efficientnet_lite0", 224, (1.0, 15.5)),
    ("resnet18", 128, (1.0, 15.5)), ("mobilenet_v3_small", 128, (1.0, 15.5)),
    ("bwms_resnet18", 128, (1.0, 7.5)),  # stride 16
    # 120 px: 4 cells of 30 px on screen, but they sit 32 px apart from 0.5: read at 30/32 u + 14.53
    ("efficientnet_lite0", 120, (30 / 32, 30 * (0.5 - 0.5 / 32))),
])
def test_alignment_of_the_shipped_networks(name: str, size: int, expected: tuple[float, float]) -> None:
    net = create_backbone(name, in_chans=10, bands=S2).eval()
    align = cam_alignment(net, net.cam_layer, 10, (size, size))
    assert align[0] == pytest.approx(expected) and align[1] == pytest.approx(expected)


class _Probe(nn.Module):
    """Two 3x3 stride-2 convolutions that copy their centre pixel: cell j of the output is input pixel 4j."""

    def __init__(self, kernel: int = 3, padding: int = 1) -> None:
        super().__init__()
        self.convs = nn.Sequential(*(nn.Conv2d(1, 1, kernel, 2, padding, bias=False) for _ in range(2)))
        for c in self.convs:
            nn.init.zeros_(c.weight)
            c.weight.data[0, 0, kernel // 2, kernel // 2] = 1.0

    @property
    def cam_layer(self) -> nn.Module:
        return self.convs[-1]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.convs(x)


def test_an_aligned_map_peaks_on_the_pixel_its_cell_reads() -> None:
    net = _Probe().eval()
    x = torch.zeros(1, 1, 32, 32)
    x[0, 0, 8, 12] = 1.0  # read by cell (2, 3) alone, away from the grid's edges
    with torch.no_grad():
        feats = net.forward_features(x)
    assert feats[0, 0, 2, 3] == 1 and feats.sum() == 1
    resized = F.interpolate(feats, size=(32, 32), mode="bilinear", align_corners=False)[0].numpy()
    align = cam_alignment(net, net.cam_layer, 1, (32, 32))
    assert align == ((1.0, 1.5), (1.0, 1.5))
    placed = resample_maps(resized, (32, 32), align)[0]
    assert np.unravel_index(placed.argmax(), placed.shape) == (8, 12)
    # centred on that pixel: the heat falls off alike on either side
    assert placed[8, 11] == pytest.approx(placed[8, 13]) and placed[7, 12] == pytest.approx(placed[9, 12])
    assert placed[8, 10] == pytest.approx(placed[8, 14]) and placed[8, 11] < placed[8, 12]
    plain = resample_maps(resized, (32, 32))[0]
    assert np.unravel_index(plain.argmax(), plain.shape) != (8, 12), "a plain resize draws it 1.5 px off"
    # 2x2 stride-2 windows tile the input: their cells are already where a resize draws them
    tiled = _Probe(kernel=2, padding=0).eval()
    assert cam_alignment(tiled, tiled.cam_layer, 1, (16, 16)) == NO_ALIGNMENT


def test_pasted_evidence_gets_more_heat_once_aligned() -> None:
    """Into real EuroSAT images of one class, a 24-px patch cut from an image of another class; the Grad-CAM
    map for the pasted class. Across all 90 class pairs, heat inside the patch minus heat outside it."""
    card, model, _ = load_model("sentinel2-eurosat", torch.device("cpu"))
    order = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B09", "B10", "B11", "B12", "B8A"]
    idx = [order.index(b) + 1 for b in card.bands]
    images = {}
    for cls in card.class_names:
        with rasterio.open(min((SHARED / "eurosat_ms" / cls).glob("*.tif"))) as ds:
            images[cls] = ds.read(idx).astype(np.float32) / 10000.0
    rng, p = np.random.default_rng(0), 24
    batch, boxes, targets = [], [], []
    for base, pasted in itertools.permutations(card.class_names, 2):
        y, x = rng.integers(0, 64 - p + 1, size=2)
        img = images[base].copy()
        img[:, y : y + p, x : x + p] = images[pasted][:, 20 : 20 + p, 20 : 20 + p]
        batch.append(img)
        boxes.append((y, x))
        targets.append(card.class_names.index(pasted))
    runner = CamRunner(model, "gradcam", (len(card.bands), card.input_size, card.input_size))
    xb = preprocess(torch.from_numpy(np.stack(batch)), card)
    with torch.inference_mode():
        feats = model.forward_features(xb)
        logits = model.forward_head(feats)
    maps = np.concatenate([runner.maps_from_features(feats[i : i + 1], logits[i : i + 1], t, xb.shape[-2:])
                           for i, t in enumerate(targets)])
    contrast = {}
    for name, align in (("plain", NO_ALIGNMENT), ("aligned", runner.alignment(xb.shape[-2:]))):
        placed, c = resample_maps(maps, (64, 64), align), []
        for m, (y, x) in zip(placed, boxes, strict=True):
            inside = m[y : y + p, x : x + p]
            c.append(inside.mean() - (m.sum() - inside.sum()) / (64 * 64 - p * p))
        contrast[name] = float(np.mean(c))
    assert runner.alignment(xb.shape[-2:]) == ((1.0, 15.5), (1.0, 15.5))
    assert contrast["aligned"] > 1.3 * contrast["plain"] and contrast["aligned"] > contrast["plain"] + 0.03, contrast
