"""One benchmark measurement, run as ``python -m rs_scene.bench.child '<json spec>'`` in a fresh process.

Prints one JSON line: seconds, tiles, the process's peak RSS and mode-specific figures. Modes:

- ``forward``: the model alone on tiles already read, preprocessed and batched in memory (the ceiling);
- ``classify``: ``classify_raster`` writing the GeoPackage grid (read, tile, scale, infer, write);
- ``heatmap``: the same plus the Grad-CAM heatmap GeoTIFF;
- ``runtimes``: PyTorch (NCHW and channels_last) and ONNX Runtime forward passes on the same tensors,
  alternated, with the largest probability difference and the class agreement between them.
"""

from __future__ import annotations

import json
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import freeze_import_heap
from ..engine.evaluate import preprocess
from ..engine.infer import ClassifyParams, classify_raster, load_model, scores_of
from ..engine.pipeline import ordered_map
from ..engine.plan import make_plan
from ..engine.reading import read_batches, read_size, reader_settings
from ..engine.runtime import OnnxRunner, Runner, TorchRunner, make_runner, small_ops_single_threaded
from ..engine.trainer import pick_device
from ..io.raster import open_raster


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # kB on Linux


def params_of(spec: dict[str, Any], **extra: Any) -> ClassifyParams:
    known = set(ClassifyParams.__dataclass_fields__)
    kw = {k: v for k, v in spec.items() if k in known}
    return ClassifyParams(**{**kw, **extra})


def load_tensors(spec: dict[str, Any]) -> tuple[Any, torch.nn.Module, Any, list[torch.Tensor], torch.device]:
    """The model and ``spec['forward_tiles']`` valid tiles from the middle of the raster, preprocessed and
    batched exactly as classify batches them, in memory."""
    p = params_of(spec, out_gpkg="unused")
    device = pick_device(p.device)
    card, model, path = load_model(p.model, device)
    with open_raster(p.raster) as ds:
        plan = make_plan(ds, card, bands=p.bands, tile_size=p.tile_size, stride=p.stride, gsd=p.gsd,
                         input_scale=p.input_scale, edge=p.edge)
    n = int(spec.get("forward_tiles", 512))
    mid = max(len(plan.tiles) // 2 - n, 0)
    plan.tiles = plan.tiles[mid : mid + 2 * n]
    batch_size, _, _ = reader_settings(p.batch_size, p.workers, device)
    batches, have = [], 0
    for b in read_batches(p.raster, plan, card, p.min_valid, batch_size, threading.Event(),
                          size=read_size(plan, card, p.fast_read)):
        if b.data is not None and have < n:
            x = torch.from_numpy(b.data[: n - have])
            batches.append(preprocess(x.to(device), card).contiguous())  # NCHW, as classify feeds it
            have += len(x)
    return card, model, path, batches, device


def time_forward(runner: Runner, card: Any, batches: list[torch.Tensor], passes: int = 1) -> float:
    """Seconds for the forward pass and scores of every batch, ``passes`` times, threaded as classify
    threads them (the runner's inference streams, scores in the calling thread)."""
    with small_ops_single_threaded(runner):
        for x in batches[: runner.streams]:  # warm-up: first-call allocations and kernel selection
            runner.logits(x)
        t0 = time.perf_counter()
        for logits in ordered_map(runner.logits, (x for _ in range(passes) for x in batches), runner.streams):
            scores_of(logits, card).cpu()
        return time.perf_counter() - t0


def mode_forward(spec: dict[str, Any]) -> dict[str, Any]:
    card, model, path, batches, device = load_tensors(spec)
    runner = make_runner(spec.get("runtime", "auto"), model, card, path, device, spec.get("threads"))
    n = sum(len(x) for x in batches)
    # as many tiles as the classify run, so both meet the same (shared-machine) load for as long
    passes = max(round(int(spec.get("forward_total", n)) / n), 1)
    seconds = time_forward(runner, card, batches, passes)
    return {"seconds": seconds, "tiles": n * passes, "runtime": runner.name}


def mode_classify(spec: dict[str, Any], heatmap: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="rs-scene-bench-") as tmp:
        p = params_of(spec, out_gpkg=str(Path(tmp) / "grid.gpkg"),
                      heatmap=str(Path(tmp) / "heat.tif") if heatmap else None)
        t0 = time.perf_counter()
        res = classify_raster(p)
        seconds = time.perf_counter() - t0
    return {"seconds": seconds, "tiles": res.tiles_total, "tiles_classified": res.tiles_classified,
            "runtime": res.runtime, "engine_seconds": res.seconds}


def mode_runtimes(spec: dict[str, Any]) -> dict[str, Any]:
    """Alternate the runtimes ``repeats`` times on the same tensors; medians, and how far their scores
    differ (NCHW PyTorch is the reference)."""
    card, model, path, batches, device = load_tensors(spec)
    runners: dict[str, Runner] = {"torch_nchw": TorchRunner(model, device, channels_last=False)}
    ref = [scores_of(runners["torch_nchw"].logits(x), card).cpu() for x in batches]
    runners["torch"] = TorchRunner(model, device, channels_last=True)
    if device.type == "cpu":
        runners["onnx"] = OnnxRunner(model, card, path, spec.get("threads"))
    out: dict[str, Any] = {"tiles": sum(len(x) for x in batches)}
    times: dict[str, list[float]] = {k: [] for k in runners}
    def use(name: str) -> Runner:  # both torch runners share one model: give it their memory format
        if name.startswith("torch"):
            model.to(memory_format=torch.contiguous_format if name == "torch_nchw" else torch.channels_last)
        return runners[name]

    for _ in range(int(spec.get("repeats", 3))):
        for name in runners:
            times[name].append(time_forward(use(name), card, batches))
    for name in runners:
        r = use(name)
        scores = [scores_of(r.logits(x), card).cpu() for x in batches]
        diff = max(float((a - b).abs().max()) for a, b in zip(scores, ref, strict=True))
        same = [(a.argmax(1) == b.argmax(1)).numpy() for a, b in zip(scores, ref, strict=True)]
        agree = float(np.mean(np.concatenate(same)))
        out[name] = {"tiles_per_s": out["tiles"] / float(np.median(times[name])), "max_abs_prob_diff": diff,
                     "class_agreement": agree}
    return out


def main(argv: list[str] | None = None) -> int:
    spec = json.loads((argv or sys.argv[1:])[0])
    freeze_import_heap()  # as the command line does
    if spec.get("torch_threads"):
        torch.set_num_threads(int(spec["torch_threads"]))
    mode = spec["mode"]
    if mode == "forward":
        out = mode_forward(spec)
    elif mode in ("classify", "heatmap"):
        out = mode_classify(spec, heatmap=mode == "heatmap")
    elif mode == "runtimes":
        out = mode_runtimes(spec)
    else:
        raise SystemExit(f"unknown bench mode {mode}")
    out.update(mode=mode, peak_rss_mb=round(peak_rss_mb(), 1))
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
