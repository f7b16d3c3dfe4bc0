"""Context heatmaps with a mid-level layer's LayerCAM fused in (``--heatmap-detail fused``,
explain/layer_fusion.py):

- the LayerCAM map equals pytorch-grad-cam's LayerCAM on the same dense network, layer and block input
  (the reference implementation);
- the layer is the last block before the network's last stride-2 layer, and its cells are placed exactly:
  on the shipped model at the same place as the last map's (stride 16), and through classify's context
  pass a probe network's fused map peaks on the one bright pixel of a raster;
- the fusion is the mean of the two maps with the LayerCAM map on the evidence's scale; a map with no
  evidence stays dark.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
import torch
from conftest import S2_BANDS_OPT, S2_SCENE
from pytorch_grad_cam import LayerCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from rs_scene.card import ModelCard
from rs_scene.data.transforms import normalize, upsample_for_inference
from rs_scene.engine import context
from rs_scene.engine.infer import load_model
from rs_scene.engine.plan import make_plan
from rs_scene.explain.cam import CamRunner, cam_alignment
from rs_scene.explain.layer_fusion import fuse, layercam_maps
from test_cam_context import _extent, demo_heatmaps, one_pixel_heat
from torch import nn
from torch.nn import functional as F


def _s2_fused() -> tuple[ModelCard, CamRunner]:
    card, model, _ = load_model("sentinel2-eurosat", torch.device("cpu"))
    return card, CamRunner(model, "gradcam", (10, 128, 128), "fused", "run")


def test_layercam_equals_pytorch_grad_cam_on_a_real_block() -> None:
    card, cam = _s2_fused()
    assert cam.detail == "fused" and cam.fuse_layer_name == "backbone._blocks.10"
    with rasterio.open(S2_SCENE) as ds:
        plan = make_plan(ds, card, bands=S2_BANDS_OPT, input_scale=1000, extent=_extent(ds, 4, 4, 2, 2))
    heat = context.ContextHeat(cam, card, plan, str(S2_SCENE))
    try:
        block = context.plan_blocks(plan.tiles, plan.area[:2], 64, 64, heat.margin, 1)[0][1]
        r = heat._reader(block.window.w).read(block.window)
    finally:
        heat.close()
    x = upsample_for_inference(normalize(torch.from_numpy(r.data[None]), card.mean, card.std), 256)
    ours = layercam_maps(cam.net, cam.fuse_layer, x, [1, 5])
    ours = F.interpolate(ours[:, None], size=(256, 256), mode="bilinear", align_corners=False)[:, 0].numpy()
    ref_cam = LayerCAM(model=cam.net, target_layers=[cam.fuse_layer])
    try:
        for k, c in enumerate((1, 5)):
            ref = ref_cam(input_tensor=x, targets=[ClassifierOutputTarget(c)])[0]  # min-max, [0, 1]
            m = ours[k] - ours[k].min()
            assert np.abs(m / m.max() - ref).max() < 2e-3, c
    finally:
        ref_cam.activations_and_grads.release()
    assert all(p.requires_grad for p in cam.net.parameters())  # frozen for the pass only


def test_fused_layer_cells_sit_where_the_last_maps_do() -> None:
    _, cam = _s2_fused()
    at = {n: cam_alignment(cam.net, cam.fuse_layer, 10, (n, n)) for n in (128, 288, 512)}
    assert at[128] == at[288] == at[512] == cam_alignment(cam.net, cam.net.cam_layer, 10, (128, 128))
    assert at[128] == ((1.0, 7.5), (1.0, 7.5))


class _Probe3(nn.Module):
    """Three 3x3 stride-2 convolutions copying their centre pixel (``_blocks``), a mean-pool linear head."""

    def __init__(self) -> None:
        super().__init__()
        self._blocks = nn.ModuleList(nn.Conv2d(1, 1, 3, 2, 1, bias=False) for _ in range(3))
        for c in self._blocks:
            nn.init.zeros_(c.weight)
            c.weight.data[0, 0, 1, 1] = 1.0
        self.head = nn.Linear(1, 2)
        self.head.weight.data[:] = 1.0

    @property
    def cam_layer(self) -> nn.Module:
        return self._blocks[-1]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        for b in self._blocks:
            x = b(x)
        return x

    def forward_head(self, feats: torch.Tensor) -> torch.Tensor:
        return self.head(feats.mean((2, 3)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def test_fused_cells_are_placed_on_the_pixels_they_read(tmp_path: Path) -> None:
    card = ModelCard(name="probe", classes=[{"name": "a"}, {"name": "b"}], bands=["b1"], value_scale=1.0,
                     mean=[0.0], std=[1.0], tile_size=32, input_size=32, gsd=10.0)
    cam = CamRunner(_Probe3().eval(), "gradcam", (1, 32, 32), "fused", "run")
    assert cam.detail == "fused" and cam.fuse_layer_name == "_blocks.1"
    for y, x in ((8, 12), (40, 68), (92, 36)):  # multiples of 4: the pixels the probe's dense cells read
        out = one_pixel_heat(tmp_path, cam, card, y, x)
        assert np.unravel_index(out.argmax(), out.shape) == (y, x)
        # both maps centred on the pixel: a misplaced layer map would tilt the fused one to a side
        assert abs(out[y, x - 2] - out[y, x + 2]) < 1e-4 * out[y, x]
        assert abs(out[y - 2, x] - out[y + 2, x]) < 1e-4 * out[y, x]


def test_fuse_puts_the_layer_map_on_the_evidence_scale() -> None:
    ev = np.array([[[0.0, 2.0], [1.0, 0.0]], [[0.0, 0.0], [0.0, 0.0]]], np.float32)
    lm = np.array([[[4.0, 0.0], [0.0, 8.0]], [[1.0, 3.0], [0.0, 0.0]]], np.float32)
    out = fuse(ev, lm)
    assert np.allclose(out[0], [[0.5, 1.0], [0.5, 1.0]])  # (E + 2/8 L) / 2
    assert not out[1].any()  # no class evidence in the block: dark, whatever the layer shows


def test_classify_writes_the_fused_heatmap(tmp_path: Path) -> None:
    heat = demo_heatmaps(tmp_path, (2, 3, 2, 2), {d: ["--heatmap-detail", d] for d in ("context", "fused")})
    (ctx, _, _), (fused, _, tags) = heat["context"], heat["fused"]
    assert tags["HEATMAP_DETAIL"] == "fused" and tags["HEATMAP_CONTEXT_PX"] == "32"
    assert ctx.shape == fused.shape == (128, 128) and np.isfinite(fused).all()
    assert np.abs(fused - ctx).max() > 0.05  # the layer's map is in it
