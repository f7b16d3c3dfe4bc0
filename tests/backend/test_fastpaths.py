"""The engine's fast paths give the results of the plain ones (correctness only: timings live in the bench).

- closed-form Grad-CAM equals pytorch-grad-cam's GradCAM map within 1e-4 (EfficientNet-Lite0 and ResNet-18);
- channels_last, batching and ONNX Runtime give the predictions of eager NCHW PyTorch, tile by tile;
- joined reads (one GDAL call per run of tiles) equal tile-by-tile reads exactly;
- the streamed heatmap mosaic equals a naive in-memory mosaic.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from conftest import S2_SCENE, write_raster
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from rs_scene.card import ModelCard, make_classes, save_model
from rs_scene.data.transforms import resize, upsample_for_inference
from rs_scene.engine.evaluate import preprocess
from rs_scene.engine.infer import _tile_maps, prepare
from rs_scene.engine.runtime import OnnxRunner, TorchRunner
from rs_scene.explain.cam import NO_ALIGNMENT, CamRunner
from rs_scene.io.raster import TileReader
from rs_scene.io.tiling import Tile, tile_grid
from rs_scene.io.writers import HEAT_NODATA, HeatmapWriter
from rs_scene.models import SceneClassifier, create_backbone

BANDS = ["B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12"]
ARCHS = ["efficientnet_lite0", "resnet18"]


def make_card(arch: str, size: int = 64) -> ModelCard:
    return ModelCard(name=f"test-{arch}", classes=make_classes([f"c{i}" for i in range(6)]), bands=BANDS,
                     architecture=arch, value_scale=1000.0, mean=[0.1] * 10, std=[0.05] * 10, tile_size=size // 2,
                     input_size=size, gsd=10.0)


def make_model(arch: str) -> SceneClassifier:
    torch.manual_seed(0)
    model = SceneClassifier(create_backbone(arch, in_chans=10), num_classes=6).eval()
    with torch.no_grad():  # non-trivial running statistics, so batch norm is not an identity
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    return model


def s2_tiles(card: ModelCard, n: int = 8) -> torch.Tensor:
    """``n`` real Sentinel-2 tiles from the middle of the shared scene, preprocessed for ``card``."""
    reader = TileReader(str(S2_SCENE), list(range(1, 11)), card.input_size, card.value_scale, card.mean)
    try:
        tiles = [Tile(0, i, 300 + 40 * i, 400, card.tile_size, card.tile_size) for i in range(n)]
        data = np.stack([r.data for r in reader.read_run(tiles)])
    finally:
        reader.close()
    return preprocess(torch.from_numpy(data), card)


@pytest.mark.parametrize("arch", ARCHS)
def test_closed_form_gradcam_equals_pytorch_grad_cam(arch: str) -> None:
    card, model = make_card(arch), make_model(arch)
    x = s2_tiles(card)
    logits, fast = CamRunner(model, "gradcam").run(x)
    assert CamRunner(model, "gradcam").fast
    cam = GradCAM(model=model, target_layers=[model.cam_layer])
    try:
        ref = cam(input_tensor=x, targets=[ClassifierOutputTarget(int(c)) for c in logits.argmax(1)])
    finally:
        cam.activations_and_grads.release()
    assert fast.shape == ref.shape == (len(x), card.input_size, card.input_size)
    assert np.ptp(ref, axis=(1, 2)).min() > 0.5  # real maps, not all-zero ones that agree trivially
    np.testing.assert_allclose(fast, ref, atol=1e-4)


@pytest.mark.parametrize("arch", ARCHS)
def test_channels_last_and_batching_keep_predictions(arch: str) -> None:
    card, model = make_card(arch), make_model(arch)
    x = s2_tiles(card)
    with torch.inference_mode():
        ref = model(x).softmax(1)
        single = torch.cat([model(x[i : i + 1]) for i in range(len(x))]).softmax(1)
    fast = TorchRunner(model, torch.device("cpu"), channels_last=True).logits(x).softmax(1)
    assert torch.equal(fast.argmax(1), ref.argmax(1)) and torch.equal(single.argmax(1), ref.argmax(1))
    torch.testing.assert_close(fast, ref, atol=1e-5, rtol=0)
    torch.testing.assert_close(single, ref, atol=1e-5, rtol=0)


@pytest.mark.parametrize("arch", ARCHS)
def test_onnx_runtime_keeps_predictions_and_maps(arch: str, tmp_path: Path, monkeypatch) -> None:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    monkeypatch.setenv("RS_SCENE_CACHE", str(tmp_path / "cache"))
    card, model = make_card(arch), make_model(arch)
    path = save_model(tmp_path / "m.pt", card, model.state_dict())
    x = s2_tiles(card)
    runner = OnnxRunner(model, card, path)
    assert runner.path.exists() and runner.path.parent == tmp_path / "cache" / "onnx"
    feats, logits = runner.features_and_logits(x)
    cam = CamRunner(model, "gradcam")
    ref_logits, ref_maps = cam.run(x)
    assert torch.equal(logits.argmax(1), ref_logits.argmax(1))
    torch.testing.assert_close(logits.softmax(1), ref_logits.softmax(1), atol=1e-4, rtol=0)
    np.testing.assert_allclose(cam.maps_from_features(feats, logits, None, tuple(x.shape[-2:])), ref_maps,
                               atol=1e-4)
    assert OnnxRunner(model, card, path).path == runner.path  # the export is cached, not redone


def test_native_read_then_torch_resize_is_what_evaluate_feeds_the_model() -> None:
    """Fast reading returns tiles at their raster size and ``prepare`` upsamples them, normalising first:
    the same tensor ``preprocess`` (evaluate, training) makes from the same patch."""
    card = make_card("efficientnet_lite0", 128)
    card.tile_size = 64
    reader = TileReader(str(S2_SCENE), list(range(1, 11)), 64, 1000.0, card.mean)
    try:
        data = np.stack([r.data for r in reader.read_run(tile_grid(930, 947, 64)[20:36])])
    finally:
        reader.close()
    x = torch.from_numpy(data)
    torch.testing.assert_close(prepare(x, card), preprocess(x, card), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(("tile", "stride", "size"), [(64, 64, 128), (64, 48, 128), (64, 32, 64), (50, 50, 128),
                                                       (40, 40, 20)])
def test_joined_reads_equal_tile_by_tile_reads(tile: int, stride: int, size: int) -> None:
    reader = TileReader(str(S2_SCENE), list(range(1, 11)), size, 1000.0, [0.1] * 10)
    try:
        tiles = tile_grid(reader.ds.width, reader.ds.height, tile, stride, "pad")
        one = [reader.read(t) for t in tiles]
        joined = [r for i in range(0, len(tiles), 16) for r in reader.read_run(tiles[i : i + 16])]
        into = []  # as read_batches reads: into one array per batch, single-tile reads of a run included
        for i in range(0, len(tiles), 16):
            batch = np.full((len(tiles[i : i + 16]), 10, size, size), np.nan, dtype=np.float32)
            into += [(r, batch[k]) for k, r in enumerate(reader.read_run(tiles[i : i + 16], out=batch))]
    finally:
        reader.close()
    for t, a, b in zip(tiles, one, joined):
        assert np.array_equal(a.data, b.data) and np.array_equal(a.valid, b.valid), t
        assert a.valid_fraction == b.valid_fraction
    for t, a, (c, row) in zip(tiles, one, into, strict=True):
        assert np.array_equal(a.data, row) and np.shares_memory(c.data, row), t


def test_joined_reads_respect_nodata_and_masks(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    data = rng.integers(1, 3000, (2, 70, 90)).astype(np.uint16)
    data[:, 10:30, 20:50] = 0  # a nodata hole across tile edges
    path = write_raster(tmp_path / "hole.tif", data, nodata=0)
    reader = TileReader(str(path), [1, 2], 32, 1000.0, [0.3, 0.4])

    def mask_fn(tile: Tile, transform, size: int) -> np.ndarray:
        m = np.ones((size, size), dtype=bool)
        m[: size // 3] = tile.col % 2 == 0
        return m

    try:
        tiles = tile_grid(90, 70, 16, 12, "pad")
        one = [reader.read(t, mask_fn) for t in tiles]
        joined = reader.read_run(tiles, mask_fn)
        batch = np.full((len(tiles), 2, 32, 32), np.nan, dtype=np.float32)
        into = reader.read_run(tiles, mask_fn, out=batch)  # as read_batches reads: into the batch array
    finally:
        reader.close()
    assert any(0 < r.valid_fraction < 1 for r in one)
    for k, (a, b, c) in enumerate(zip(one, joined, into, strict=True)):
        assert np.array_equal(a.data, b.data) and np.array_equal(a.valid, b.valid)
        assert np.array_equal(a.data, batch[k]) and np.shares_memory(c.data, batch[k])
        assert np.array_equal(a.valid, c.valid) and a.valid_fraction == c.valid_fraction


@pytest.mark.parametrize(("dtype", "nodata", "bands"), [("uint16", 0, [1, 2, 3]), ("uint16", 0, [3, 1, 2]),
                                                     ("uint16", 0, [1, 3]), ("float32", float("nan"), [1, 2, 3]),
                                                     ("float32", -1.5, [2, 3, 1]), ("int16", -9999, [1, 2, 3])])
def test_nodata_mask_from_read_pixels_equals_gdal_dataset_mask(tmp_path: Path, dtype: str, nodata: float,
                                                                bands: list[int]) -> None:
    """Joined reads compute a nodata-only mask from the pixels they read (any band off its nodata value is
    valid); single-tile reads ask GDAL for the dataset mask. Both agree, including pixels where only some
    bands are nodata, NaN nodata and a band subset (GDAL's mask then still looks at every band)."""
    rng = np.random.default_rng(3)
    data = rng.integers(1, 3000, (3, 70, 90)).astype(dtype)
    fill = np.nan if np.isnan(nodata) else nodata
    data[:, 10:30, 20:50] = fill  # all bands nodata
    data[0, 40:60, 5:70] = fill  # one band only: still valid
    data[1:, 45:50, 60:85] = fill  # two of three: still valid
    data[:, 62:, 70:] = fill
    path = write_raster(tmp_path / "nd.tif", data, nodata=nodata)
    reader = TileReader(str(path), bands, 16, 1000.0, [0.3] * len(bands))
    assert (reader.nodata is not None) == (len(bands) == 3)
    try:
        tiles = tile_grid(90, 70, 16, 16, "pad")
        one = [reader.read(t) for t in tiles]
        joined = reader.read_run(tiles)
    finally:
        reader.close()
    assert any(0 < r.valid_fraction < 1 for r in one) and any(r.valid_fraction == 0 for r in one)
    for t, a, b in zip(tiles, one, joined, strict=True):
        assert np.array_equal(a.valid, b.valid), t
        np.testing.assert_array_equal(a.data, b.data)


@pytest.mark.parametrize(("src", "size"), [(64, 128), (32, 128), (40, 120), (50, 128), (64, 64), (128, 64)])
def test_inference_upsampling_equals_torch_bilinear(src: int, size: int) -> None:
    """OpenCV's resize on CPU batches (``prepare``) equals torch's bilinear (``preprocess``, training) within float
    rounding, at whole and fractional factors, edges included; shrinking stays in torch."""
    x = torch.from_numpy(np.random.default_rng(src).normal(size=(3, 10, src, src)).astype(np.float32))
    x[:, :, 0] += 40.0  # a strong edge row: clamping at the border shows in the first and last rows
    got = upsample_for_inference(x, size)
    assert got.shape == (3, 10, size, size) and got.dtype == torch.float32
    torch.testing.assert_close(got, resize(x, size), atol=2e-5, rtol=1e-6)


def test_batched_map_resize_equals_per_tile_resize() -> None:
    """Unaligned, the maps are torch's bilinear resize; aligned, tiles of one size (one call) and of mixed
    sizes (one call each) give the same maps."""
    maps = np.random.default_rng(1).random((5, 128, 128), dtype=np.float32)
    tiles = [Tile(0, i, 64 * i, 0, 64, 64) for i in range(5)]
    batched = _tile_maps(maps, tiles, NO_ALIGNMENT)
    for m, t, b in zip(maps, tiles, batched):
        ref = torch.nn.functional.interpolate(torch.from_numpy(m)[None, None], size=(t.h, t.w), mode="bilinear",
                                              align_corners=False)[0, 0].numpy()
        np.testing.assert_allclose(b, ref, atol=1e-5)
    align = ((1.0, 15.5), (1.0, 15.5))
    same = _tile_maps(maps, tiles, align)
    mixed = _tile_maps(maps, tiles[:4] + [Tile(0, 4, 256, 0, 64, 40)], align)
    for a, b in zip(same[:4], mixed[:4]):
        np.testing.assert_array_equal(a, b)
    assert mixed[4].shape == (40, 64) and not np.allclose(same[0], batched[0], atol=1e-3)


def test_streamed_heatmap_equals_in_memory_mosaic(tmp_path: Path) -> None:
    w, h, tile, stride = 100, 90, 24, 16
    src = write_raster(tmp_path / "src.tif", np.ones((1, h, w), dtype=np.uint8))
    tiles = tile_grid(w, h, tile, stride, "pad")
    rng = np.random.default_rng(2)
    maps = [rng.random((tile, tile), dtype=np.float32) for _ in tiles]
    weights = [(rng.random((tile, tile)) > 0.2).astype(np.float32) for _ in tiles]
    weights[3][:] = 0  # a tile that contributes nothing
    acc, cnt = np.zeros((h + tile, w + tile)), np.zeros((h + tile, w + tile))
    for t, m, v in zip(tiles, maps, weights):
        acc[t.y : t.y + tile, t.x : t.x + tile] += m * v
        cnt[t.y : t.y + tile, t.x : t.x + tile] += v
    acc, cnt = acc[:h, :w], cnt[:h, :w]
    naive = np.where(cnt > 0, acc / np.where(cnt > 0, cnt, 1), HEAT_NODATA)
    with rasterio.open(src) as ds:
        writer = HeatmapWriter(str(tmp_path / "heat.tif"), ds, (0, 0, w, h), tile)
        for t, m, v in zip(tiles, maps, weights):
            writer.add(t.x, t.y, m, v)
        writer.commit()
    with rasterio.open(tmp_path / "heat.tif") as out:
        streamed = out.read(1)
    assert (cnt == 0).any() and (streamed == HEAT_NODATA).sum() == (cnt == 0).sum()
    np.testing.assert_allclose(streamed, naive, atol=1e-6)


def test_parallel_decode_workers_keep_order(tmp_path: Path) -> None:
    """The GPU path's parallel decoding yields the batches of the single-threaded reader, in order."""
    from rs_scene.engine.plan import make_plan
    from rs_scene.engine.reading import read_batches, read_size
    from rs_scene.io.raster import open_raster

    card = make_card("efficientnet_lite0", 128)
    card.tile_size = 64
    with open_raster(S2_SCENE) as ds:
        plan = make_plan(ds, card, bands=",".join(BANDS), input_scale=1000)
    size = read_size(plan, card)
    one = list(read_batches(str(S2_SCENE), plan, card, 0.5, 8, threading.Event(), size=size))
    many = list(read_batches(str(S2_SCENE), plan, card, 0.5, 8, threading.Event(), workers=3, size=size))
    assert [b.tiles for b in one] == [b.tiles for b in many]
    for a, b in zip(one, many):
        assert (a.data is None) == (b.data is None)
        assert a.data is None or np.array_equal(a.data, b.data)


def test_ordered_map_keeps_input_order_and_raises_worker_errors() -> None:
    """Inference streams finish out of order (here the earlier items sleep longer); results come in order."""
    import time

    from rs_scene.engine.pipeline import ordered_map

    def slow(i: int) -> int:
        time.sleep(0.02 * (i % 3 == 0))
        return i * i

    assert list(ordered_map(slow, range(20), streams=3)) == [i * i for i in range(20)]
    started: list[int] = []

    def fail_at_4(i: int) -> int:
        started.append(i)
        if i == 4:
            raise ValueError("tile 4 is bad")
        return i

    with pytest.raises(ValueError, match="tile 4 is bad"):
        list(ordered_map(fail_at_4, range(100), streams=2))
    assert max(started) < 10  # queued work stops at the error, not after all 100 items


def test_classify_with_two_streams_equals_one_stream(tmp_path: Path, monkeypatch) -> None:
    """Two ONNX Runtime streams (batches run concurrently, post-processing overlapped) fed by three parallel
    decode workers (the GPU path's reading) write the grid, heatmap and class raster of one stream fed by
    one reader, value for value."""
    pytest.importorskip("onnxruntime")
    import sqlite3

    from rs_scene.engine.infer import ClassifyParams, classify_raster

    monkeypatch.setenv("RS_SCENE_CACHE", str(tmp_path / "cache"))
    outs = {}
    for streams in (1, 2):
        d = tmp_path / f"s{streams}"
        d.mkdir()
        res = classify_raster(ClassifyParams(
            raster=str(S2_SCENE), model="sentinel2-eurosat", bands=",".join(BANDS), input_scale=1000,
            out_gpkg=str(d / "g.gpkg"), heatmap=str(d / "h.tif"), class_raster=str(d / "c.tif"),
            runtime="onnx", threads=2, streams=streams, batch_size=8, workers=1 if streams == 1 else 3))
        assert res.runtime == "onnx" and res.tiles_classified > 200
        with sqlite3.connect(d / "g.gpkg") as db:
            table = db.execute("SELECT table_name FROM gpkg_contents").fetchone()[0]
            rows = db.execute(f'SELECT "row", "col", class_name, confidence FROM "{table}" '
                              'ORDER BY "row", "col"').fetchall()
        with rasterio.open(d / "h.tif") as h, rasterio.open(d / "c.tif") as c:
            outs[streams] = (rows, h.read(1), c.read(1))
    (rows1, heat1, cls1), (rows2, heat2, cls2) = outs[1], outs[2]
    assert [r[:3] for r in rows1] == [r[:3] for r in rows2]
    conf = [[-1.0 if r[3] is None else r[3] for r in rows] for rows in (rows1, rows2)]  # None: skipped tile
    np.testing.assert_allclose(conf[0], conf[1], atol=1e-6)
    assert np.array_equal(cls1, cls2)
    np.testing.assert_allclose(heat1, heat2, atol=1e-6)


def test_onnx_cache_keeps_the_most_recently_used_exports(tmp_path: Path, monkeypatch) -> None:
    """Exports of retrained models do not pile up: a new export prunes all but the newest few, and using
    an export marks it recent."""
    pytest.importorskip("onnxruntime")
    import os

    from rs_scene.engine import runtime

    monkeypatch.setenv("RS_SCENE_CACHE", str(tmp_path / "cache"))
    cache = runtime.onnx_cache_dir()
    cache.mkdir(parents=True)
    for i in range(10):  # stale exports of earlier model files, oldest first
        f = cache / f"old{i:02d}-64.onnx"
        f.write_bytes(b"x")
        os.utime(f, (1000 + i, 1000 + i))
    card, model = make_card("efficientnet_lite0"), make_model("efficientnet_lite0")
    path = save_model(tmp_path / "m.pt", card, model.state_dict())
    runner = OnnxRunner(model, card, path)
    kept = sorted(p.name for p in cache.glob("*.onnx"))
    assert len(kept) == runtime.ONNX_CACHE_KEEP and runner.path.name in kept
    assert "old09-64.onnx" in kept and "old00-64.onnx" not in kept  # the oldest went first
    os.utime(runner.path, (1, 1))
    OnnxRunner(model, card, path)  # reuse refreshes it
    assert runner.path.stat().st_mtime > 1000


def test_reader_settings_per_device() -> None:
    """On a GPU: large batches, parallel decode workers, pinned memory; on the CPU the user's settings (the
    cores belong to the model's inference streams). Pure settings logic: no GPU is needed to check it."""
    import os

    from rs_scene.engine.reading import GPU_MIN_BATCH, GPU_READ_WORKERS, reader_settings

    assert reader_settings(16, 1, torch.device("cpu")) == (16, 1, False)
    assert reader_settings(16, 3, torch.device("cpu")) == (16, 3, False)
    workers = min(GPU_READ_WORKERS, os.cpu_count() or 1)
    assert reader_settings(16, 1, torch.device("cuda")) == (GPU_MIN_BATCH, workers, True)
    assert reader_settings(512, 6, torch.device("cuda:0")) == (512, 6, True)
