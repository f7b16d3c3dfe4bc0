"""Context heatmaps (engine/context.py, the default ``--heatmap-detail context``).

- A block's class map equals pytorch-grad-cam's Grad-CAM of the same dense network on the same block input
  (the reference), and classify's heatmap is made of those maps, cropped to the tiles;
- its cells are placed exactly through blocks, margins and crops (a probe network reading one pixel);
- the blocks cover every tile once, in row-major order for the streaming writer;
- on the real demo scene the maps stop being a blob in each tile's centre: position bias (median
  correlation of a tile's map with the mean map) well under 0.5, where each tile's own map is above 0.8.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from conftest import S2_BANDS_OPT, S2_SCENE, run_main, write_raster
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from rs_scene.card import ModelCard
from rs_scene.data.transforms import normalize, upsample_for_inference
from rs_scene.engine import context
from rs_scene.engine.infer import load_model
from rs_scene.engine.plan import make_plan
from rs_scene.explain.cam import CamRunner, cam_alignment, resample_maps
from rs_scene.explain.faithfulness import position_bias
from rs_scene.explain.scene_bias import tile_maps
from rs_scene.io.tiling import tile_grid
from test_cam_fine import _Probe


def _extent(ds: rasterio.DatasetReader, col: int, row: int, cols: int, rows: int) -> tuple[float, ...]:
    x0, y0 = ds.transform @ (col * 64, row * 64)
    x1, y1 = ds.transform @ ((col + cols) * 64, (row + rows) * 64)
    return (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))


def test_block_maps_equal_pytorch_grad_cam_on_the_block() -> None:
    card, model, _ = load_model("sentinel2-eurosat", torch.device("cpu"))
    cam = CamRunner(model, "gradcam", (10, 128, 128), "context", "run")
    with rasterio.open(S2_SCENE) as ds:
        plan = make_plan(ds, card, bands=S2_BANDS_OPT, input_scale=1000, extent=_extent(ds, 4, 4, 2, 2))
    heat = context.ContextHeat(cam, card, plan, str(S2_SCENE))
    try:
        block = context.plan_blocks(plan.tiles, plan.area[:2], 64, 64, heat.margin, 1)[0][1]  # one tile
        assert block.window.w == 64 + 2 * 32 and len(block.tiles) == 1
        maps, _ = heat.block_maps(block, [1, 5])
        r = heat._reader(block.window.w).read(block.window)
        x = upsample_for_inference(normalize(torch.from_numpy(r.data[None]), card.mean, card.std), 256)
        gc = GradCAM(model=cam.net, target_layers=[cam.net.cam_layer])
        try:
            for c in (1, 5):
                ref = gc(input_tensor=x, targets=[ClassifierOutputTarget(c)])  # (1, 256, 256) in [0, 1]
                ref = resample_maps(ref, (128, 128), cam_alignment(cam.net, cam.net.cam_layer, 10, (256, 256)))
                ours = maps[c] / maps[c].max()
                assert np.abs(ours - ref[0] / ref[0].max()).max() < 2e-3, c
        finally:
            gc.activations_and_grads.release()
    finally:
        heat.close()


def test_context_cells_are_placed_on_the_pixels_they_read(tmp_path: Path) -> None:
    """A probe network whose dense cells copy one input pixel each: a single bright pixel of a 4 x 3-tile
    raster is where classify's context heatmap peaks, whichever tile and block it falls in."""
    net = _Probe().eval()
    net.head.weight.data[:] = 1.0
    card = ModelCard(name="probe", classes=[{"name": "a"}, {"name": "b"}], bands=["b1"], value_scale=1.0,
                     mean=[0.0], std=[1.0], tile_size=32, input_size=32, gsd=10.0)
    cam = CamRunner(net, "gradcam", (1, 32, 32), "context", "run")
    assert cam.detail == "context"
    for y, x in ((10, 14), (40, 70), (94, 34)):  # even pixels: the probe's dense cells read those
        out = one_pixel_heat(tmp_path, cam, card, y, x)
        assert np.unravel_index(out.argmax(), out.shape) == (y, x)


def one_pixel_heat(tmp: Path, cam: CamRunner, card: ModelCard, y: int, x: int) -> np.ndarray:
    """classify's context heatmap (class 0 on every tile) of a 96 x 128 raster that is 0 but pixel (y, x)."""
    a = np.zeros((1, 96, 128), np.float32)
    a[0, y, x] = 1.0
    raster = write_raster(tmp / f"p{y}_{x}.tif", a, descriptions=["b1"])
    with rasterio.open(raster) as ds:
        plan = make_plan(ds, card, bands="1", input_scale=1.0)
    out = np.zeros((96, 128), np.float32)

    def add(t: object, m: np.ndarray, v: np.ndarray) -> None:
        out[t.y : t.y + t.h, t.x : t.x + t.w] = m

    context.context_heat(cam, card, plan, str(raster), dict.fromkeys(plan.tiles, 0), add)
    return out


@pytest.mark.parametrize(("stride", "edge"), [(64, "shift"), (32, "pad"), (64, "drop")])
def test_blocks_cover_every_tile_once(stride: int, edge: str) -> None:
    tiles = tile_grid(1000, 700, 64, stride, edge)
    rows, cols = tiles[-1].row + 1, tiles[-1].col + 1
    side = context.block_side(rows, cols)
    assert side <= context.MOST_TILES
    blocks = context.plan_blocks(tiles, (0, 0), stride, 64, 32, side)
    seen = [t for row in blocks for b in row for t in b.tiles]
    assert sorted(seen, key=lambda t: (t.row, t.col)) == tiles
    for row in blocks:
        for b in row:
            w = b.window
            assert w.w == w.h  # square, holding its tiles and the margin around them
            assert all(w.x + 32 <= t.x and t.x + t.w <= w.x + w.w - 32 for t in b.tiles)
            assert all(w.y + 32 <= t.y and t.y + t.h <= w.y + w.h - 32 for t in b.tiles)


def demo_heatmaps(tmp: Path, tiles: tuple[int, int, int, int],
                  runs: dict[str, list[str]]) -> dict[str, tuple[np.ndarray, np.ndarray, dict[str, str]]]:
    """classify's heatmap of ``tiles`` (col, row, cols, rows of 64 px) of the demo scene once per run (its
    extra options): per run the heatmap, its valid pixels and its tags."""
    with rasterio.open(S2_SCENE) as ds:
        extent = ",".join(map(str, _extent(ds, *tiles)))
    out = {}
    for key, extra in runs.items():
        heat = tmp / f"{key}.tif"
        proc = run_main("classify", S2_SCENE, "--model", "sentinel2-eurosat", "--bands", S2_BANDS_OPT,
                        "--input-scale", "1000", "--extent", extent, "--heatmap", heat, *extra)
        assert proc.returncode == 0, proc.stderr
        with rasterio.open(heat) as h:
            a = h.read(1)
            out[key] = (a, a != h.nodata, h.tags())
    return out


def test_context_maps_on_the_demo_scene_are_not_centre_blobs(tmp_path: Path) -> None:
    heat = demo_heatmaps(tmp_path, (7, 4, 6, 6), {"context": [], "fine": ["--heatmap-detail", "fine"]})
    pb = {}
    for detail, (a, valid, tags) in heat.items():
        maps = tile_maps(a, valid, 64)
        assert len(maps) == 36 and tags["HEATMAP_DETAIL"] == detail
        pb[detail] = position_bias(maps)["median_corr"]
    assert tags["HEATMAP_CELLS_PER_TILE"] == "8x8"
    assert pb["context"] < 0.5 and pb["fine"] > 0.8, pb


def test_context_maps_from_onnx_runtime_equal_pytorch(tmp_path: Path) -> None:
    """The context pass runs the dense network through an ONNX export with dynamic height and width where
    classify runs on ONNX Runtime; its heatmap equals the PyTorch one's."""
    pytest.importorskip("onnxruntime")
    heat = demo_heatmaps(tmp_path, (2, 3, 3, 3), {r: ["--runtime", r] for r in ("torch", "onnx")})
    (x, _, a), (y, _, b) = heat["torch"], heat["onnx"]
    assert a["HEATMAP_DETAIL"] == b["HEATMAP_DETAIL"] == "context"
    assert x.shape == y.shape == (192, 192) and np.abs(x - y).max() < 1e-3


def test_block_alignment_is_the_same_at_sizes_a_total_stride_apart() -> None:
    """The context pass measures the cells' placement once, at the smallest size a whole number of the
    network's total stride (32) from a block's: the same placement as at the block's own size."""
    card, model, _ = load_model("sentinel2-eurosat", torch.device("cpu"))
    cam = CamRunner(model, "gradcam", (10, 128, 128), "context", "run")
    at = {n: cam_alignment(cam.net, cam.net.cam_layer, 10, (n, n)) for n in (128, 288, 512)}
    assert at[128] == at[288] == at[512] == ((1.0, 7.5), (1.0, 7.5))
    heat = context.ContextHeat(cam, card, make_plan_for_subset(card), str(S2_SCENE))
    try:
        assert heat._align(512) == at[512]
    finally:
        heat.close()


def make_plan_for_subset(card: ModelCard) -> object:
    with rasterio.open(S2_SCENE) as ds:
        return make_plan(ds, card, bands=S2_BANDS_OPT, input_scale=1000, extent=_extent(ds, 0, 0, 2, 2))
