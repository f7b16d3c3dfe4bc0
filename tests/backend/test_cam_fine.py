"""The finer heatmap grid (explain/dense.py) and the run-wide normalisation.

- The dense copy of the shipped models classifies exactly as they do, its even cells are their cells, and
  its closed-form maps equal pytorch-grad-cam's Grad-CAM on the same dense network (the reference);
- its cells are placed exactly (a probe network), at 8 x 8 per 64-px Sentinel-2 tile and 14 x 14 per 256-px
  aerial tile, and ONNX Runtime's export of it gives the same maps as PyTorch;
- with the default run-wide normalisation a tile with weak evidence for a class is dimmer than one with
  strong evidence (with per-tile normalisation both reach 1), and the GeoTIFF says which it holds.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from conftest import S2_BANDS_OPT, S2_SCENE, SHARED, run_main, write_raster
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from rs_scene.engine.evaluate import preprocess
from rs_scene.engine.infer import load_model
from rs_scene.engine.runtime import OnnxRunner
from rs_scene.explain.cam import CamRunner, cam_alignment, resample_maps
from rs_scene.explain.dense import densify
from torch import nn
from torch.nn import functional as F

S2 = S2_BANDS_OPT.split(",")


def _scene_tiles(n: int = 6) -> np.ndarray:
    with rasterio.open(S2_SCENE) as ds:
        a = ds.read(window=((300, 364), (0, 64 * n))).astype(np.float32) / 1000.0
    return np.stack([a[:, :, 64 * i : 64 * (i + 1)] for i in range(n)])


@pytest.fixture(scope="module")
def s2() -> tuple:
    card, model, path = load_model("sentinel2-eurosat", torch.device("cpu"))
    return card, model, path, preprocess(torch.from_numpy(_scene_tiles()), card)


def test_dense_copy_classifies_as_the_model_and_its_maps_equal_pytorch_grad_cam(s2: tuple) -> None:
    _, model, _, x = s2
    fine = CamRunner(model, "gradcam", (10, 128, 128), detail="fine")
    assert fine.detail == "fine"
    with torch.inference_mode():
        ref_feats, ref_logits = model.forward_features(x), model(x)
        feats = fine.net.forward_features(x)
        logits = fine.net.forward_head(feats)
    assert feats.shape[-2:] == (8, 8) and ref_feats.shape[-2:] == (4, 4)
    torch.testing.assert_close(feats[:, :, ::2, ::2], ref_feats, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(logits, ref_logits, atol=1e-5, rtol=1e-5)
    _, maps = fine.run(x)
    cam = GradCAM(model=fine.net, target_layers=[fine.net.cam_layer])
    try:
        ref = cam(input_tensor=x, targets=[ClassifierOutputTarget(int(c)) for c in ref_logits.argmax(1)])
    finally:
        cam.activations_and_grads.release()
    np.testing.assert_allclose(maps, ref, atol=1e-4)
    coarse = CamRunner(model, "gradcam", (10, 128, 128), detail="coarse").run(x)[1]
    assert np.abs(maps - coarse).max() > 0.1, "the fine grid draws a different map"


class _Probe(nn.Module):
    """Two 3x3 stride-2 convolutions copying their centre pixel, a mean-pool linear head."""

    def __init__(self) -> None:
        super().__init__()
        self.convs = nn.Sequential(*(nn.Conv2d(1, 1, 3, 2, 1, bias=False) for _ in range(2)))
        for c in self.convs:
            nn.init.zeros_(c.weight)
            c.weight.data[0, 0, 1, 1] = 1.0
        self.head = nn.Linear(1, 2)

    @property
    def cam_layer(self) -> nn.Module:
        return self.convs[-1]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.convs(x)

    def forward_head(self, feats: torch.Tensor) -> torch.Tensor:
        return self.head(feats.mean((2, 3)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def test_dense_cells_are_placed_on_the_pixels_they_read() -> None:
    """Densified, the probe's cell j reads input pixel 2j (not 4j): a pixel read by an odd cell only, which
    the original grid never sees, is where the placed map peaks."""
    net = _Probe().eval()
    dense = densify(net, 1, (32, 32))
    assert dense is not None
    x = torch.zeros(1, 1, 32, 32)
    x[0, 0, 10, 14] = 1.0  # dense cell (5, 7): odd, between two cells of the original 8 x 8 grid
    with torch.no_grad():
        feats = dense.forward_features(x)
        assert net.forward_features(x).sum() == 0
    assert feats.shape[-2:] == (16, 16) and feats[0, 0, 5, 7] == 1 and feats.sum() == 1
    align = cam_alignment(dense, dense.cam_layer, 1, (32, 32))
    assert align == ((1.0, 0.5), (1.0, 0.5))  # stride 2: a resize draws cell j at 2j + 1, it reads 2j + 0.5
    resized = F.interpolate(feats, size=(32, 32), mode="bilinear", align_corners=False)[0].numpy()
    placed = resample_maps(resized, (32, 32), align)[0]
    assert np.unravel_index(placed.argmax(), placed.shape) == (10, 14)
    assert placed[10, 13] == pytest.approx(placed[10, 15]) and placed[9, 14] == pytest.approx(placed[11, 14])


@pytest.mark.parametrize(("name", "cells"), [("sentinel2-eurosat", 8), ("aerial-rgb", 14)])
def test_default_grid_of_the_shipped_models(name: str, cells: int) -> None:
    card, model, _ = load_model(name, torch.device("cpu"))
    size = (card.input_size, card.input_size)
    runner = CamRunner(model, "gradcam", (len(card.bands), *size), detail="fine")
    with torch.inference_mode():
        grid = runner.net.forward_features(torch.zeros(1, len(card.bands), *size)).shape[-2:]
    assert runner.detail == "fine" and tuple(grid) == (cells, cells)
    # stride 16 from pixel 0.5: a resize draws cell j at 16 * (j + 0.5) * size / (16 * cells)
    gain, offset = runner.alignment(size)[0]
    s = size[0] / cells
    assert gain == pytest.approx(s / 16) and offset == pytest.approx(s * (0.5 - 0.5 / 16))


def test_onnx_export_of_the_dense_grid_gives_the_torch_maps(s2: tuple, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("onnxruntime")
    monkeypatch.setenv("RS_SCENE_CACHE", str(tmp_path / "cache"))
    card, model, path, x = s2
    cam = CamRunner(model, "gradcam", (10, 128, 128), detail="fine", norm="run")
    onnx = OnnxRunner(cam.net, card, path, variant="dense")
    assert onnx.path.name.endswith("-dense.onnx")
    feats, logits = onnx.features_and_logits(x)
    ref_logits, ref_maps = cam.run(x)
    torch.testing.assert_close(logits, ref_logits, atol=1e-4, rtol=1e-4)
    maps = cam.maps_from_features(feats, logits, None, (128, 128))
    np.testing.assert_allclose(maps, ref_maps, atol=1e-3 * float(ref_maps.max()))


def test_weak_evidence_stays_dim_with_run_normalisation(tmp_path: Path) -> None:
    """Two tiles side by side: a real EuroSAT Forest image, and a real SeaLake image with one 16-px corner of
    that forest pasted in; the heatmap of class Forest. Run-wide, the forest tile holds the run's strongest
    heat and the other stays well below it; per tile, both reach 1."""
    order = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B09", "B10", "B11", "B12", "B8A"]
    idx = [order.index(b) + 1 for b in S2]
    imgs = {}
    for cls in ("Forest", "SeaLake"):
        with rasterio.open(min((SHARED / "eurosat_ms" / cls).glob("*.tif"))) as ds:
            imgs[cls] = ds.read(idx)
    weak = imgs["SeaLake"].copy()
    weak[:, :16, :16] = imgs["Forest"][:, :16, :16]
    raster = write_raster(tmp_path / "two.tif", np.concatenate([imgs["Forest"], weak], axis=2),
                          descriptions=S2)
    peaks, tags = {}, {}
    for norm in ("run", "tile"):
        heat = tmp_path / f"h_{norm}.tif"
        proc = run_main("classify", raster, "--model", "sentinel2-eurosat", "--bands", S2_BANDS_OPT,
                        "--cam-class", "Forest", "--heatmap", heat, "--heatmap-norm", norm,
                        "--heatmap-detail", "fine")  # side by side: context maps would share the forest
        assert proc.returncode == 0, proc.stderr
        with rasterio.open(heat) as h:
            a = h.read(1)
            tags[norm] = h.tags()
        peaks[norm] = (a[:, :64].max(), a[:, 64:].max())
    strong, dim = peaks["run"]
    assert strong == pytest.approx(1.0) and dim < 0.6 * strong, peaks
    assert min(peaks["tile"]) > 0.95, peaks  # each tile min-max on its own (resampled to the tile: ~0.98)
    assert tags["run"]["HEATMAP_NORMALISATION"] == "run" and tags["tile"]["HEATMAP_NORMALISATION"] == "tile"
    assert tags["run"]["HEATMAP_CELLS_PER_TILE"] == "8x8" and tags["run"]["HEATMAP_DETAIL"] == "fine"
    assert float(tags["run"]["HEATMAP_RUN_SCALE"]) > 0
