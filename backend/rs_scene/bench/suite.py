"""The benchmark suite: modes interleaved over repeats, each in a fresh subprocess, medians and ratios.

Interleaving (forward, classify, heatmap, forward, ...) matters on shared machines: load that comes and goes
hits every mode alike, so the ratios stay meaningful even when the absolute figures move.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from ..errors import RSSceneError

MODES = ("forward", "classify", "heatmap")
GOALS = {"classify_over_forward": (">=", 0.90), "heatmap_time_over_classify": ("<=", 1.25),
         "peak_rss_4x_over_1x": ("<=", 1.10), "fastest_cpu_runtime_over_onnx": (">=", 1.0)}


def run_child(spec: dict[str, Any], timeout: float = 1800) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "rs_scene.bench.child", json.dumps(spec)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RSSceneError(f"bench {spec['mode']} failed (exit {proc.returncode}): "
                           f"{proc.stderr.strip()[-2000:]}")
    return json.loads(lines[-1])


def workload(raster: str, model: str, spec: dict[str, Any]) -> dict[str, Any]:
    """Tile count and area of the standard run, computed as classify would plan it."""
    from ..engine.plan import make_plan
    from ..io.raster import open_raster
    from ..zoo import card_of

    card = card_of(model)
    keys = ("bands", "tile_size", "stride", "gsd", "input_scale", "edge")
    with open_raster(raster) as ds:
        plan = make_plan(ds, card, **{k: spec[k] for k in keys if spec.get(k) is not None})
        w, h = plan.area[2], plan.area[3]
    return {"raster": raster, "width": w, "height": h, "tiles": len(plan.tiles), "tile_px": plan.tile_src,
            "gsd_m": plan.raster_gsd, "area_km2": w * h * plan.raster_gsd * plan.raster_gsd_y / 1e6,
            "model": card.name, "architecture": card.architecture, "input_size": card.input_size}


def machine() -> dict[str, Any]:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next(ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"cpu": cpu, "cores": os.cpu_count(), "gpu": gpu, "torch": torch.__version__,
            "python": platform.python_version(), "torch_threads": torch.get_num_threads()}


def summarise(runs: list[dict[str, Any]], km2_per_tile: float) -> dict[str, Any]:
    secs = statistics.median(r["seconds"] for r in runs)
    tiles = runs[0]["tiles"]
    return {"tiles": tiles, "seconds_median": round(secs, 3),
            "seconds_all": [round(r["seconds"], 3) for r in runs],
            "tiles_per_s": round(tiles / secs, 2), "km2_per_s": round(tiles / secs * km2_per_tile, 3),
            "peak_rss_mb": round(statistics.median(r["peak_rss_mb"] for r in runs), 1),
            "runtime": runs[0].get("runtime")}


def run_suite(spec: dict[str, Any], repeats: int = 3, flat_raster: str | None = None, runtimes: bool = True,
              eta: bool = True, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Measure forward / classify / heatmap on ``spec['raster']`` (medians of ``repeats``), the runtimes side
    by side, the ETA against the measured time, and peak RSS on ``flat_raster`` (4x the pixels)."""
    t_start, load0 = time.time(), os.getloadavg()
    work = workload(spec["raster"], spec["model"], spec)
    km2_per_tile = work["area_km2"] / work["tiles"]
    raw: dict[str, list[dict[str, Any]]] = {m: [] for m in MODES}
    for r in range(repeats):
        for mode in MODES:
            out = run_child({**spec, "mode": mode, "forward_total": work["tiles"]})
            raw[mode].append(out)
            log(f"  repeat {r + 1}/{repeats} {mode:<8} {out['tiles'] / out['seconds']:8.1f} tiles/s  "
                f"{out['seconds']:7.1f} s  peak RSS {out['peak_rss_mb']:.0f} MB  ({out.get('runtime')})")
    res: dict[str, Any] = {"workload": work, "machine": machine(), "repeats": repeats,
                           "settings": {k: v for k, v in spec.items() if k not in ("raster", "model")},
                           "modes": {m: summarise(raw[m], km2_per_tile) for m in MODES}}
    modes = res["modes"]
    res["ratios"] = {
        "classify_over_forward": round(modes["classify"]["tiles_per_s"] / modes["forward"]["tiles_per_s"], 3),
        "heatmap_time_over_classify": round(modes["heatmap"]["seconds_median"]
                                            / modes["classify"]["seconds_median"], 3),
    }
    if runtimes:
        # eager NCHW PyTorch is slow on CPU: a smaller tile set keeps this part short
        n = min(int(spec.get("forward_tiles", 512)), 256)
        res["runtimes"] = run_child({**spec, "mode": "runtimes", "repeats": repeats, "forward_tiles": n})
        log(f"  runtimes: {json.dumps(res['runtimes'])}")
        if "onnx" in res["runtimes"]:
            best_torch = max(res["runtimes"][k]["tiles_per_s"] for k in ("torch", "torch_nchw"))
            default_name = "onnx" if modes["forward"]["runtime"] == "onnx" else "torch"
            default = res["runtimes"][default_name]["tiles_per_s"]
            res["ratios"]["fastest_cpu_runtime_over_onnx"] = round(
                max(default, best_torch) / res["runtimes"]["onnx"]["tiles_per_s"], 3)
            res["ratios"]["torch_over_onnx"] = round(best_torch / res["runtimes"]["onnx"]["tiles_per_s"], 3)
    if flat_raster:
        res["flat"] = flat_check(spec, flat_raster, modes["classify"], work, log)
        res["ratios"]["peak_rss_4x_over_1x"] = res["flat"]["peak_rss_ratio"]
    if eta:
        res["eta"] = eta_check(spec, modes["classify"]["seconds_median"])
        log(f"  ETA {res['eta']['estimate_s']:.1f} s for a run measured at {res['eta']['measured_s']:.1f} s")
    res["goals"] = {k: {"value": v, "goal": f"{GOALS[k][0]} {GOALS[k][1]}",
                        "met": v >= GOALS[k][1] if GOALS[k][0] == ">=" else v <= GOALS[k][1]}
                    for k, v in res["ratios"].items() if k in GOALS}
    res["load"] = {"loadavg_start": [round(v, 2) for v in load0],
                   "loadavg_end": [round(v, 2) for v in os.getloadavg()],
                   "wall_s": round(time.time() - t_start)}
    return res


def flat_check(spec: dict[str, Any], big: str, small: dict[str, Any], small_work: dict[str, Any],
               log: Callable[[str], None]) -> dict[str, Any]:
    """Peak RSS of one classify of ``big`` against the median of the standard raster's classify runs."""
    out = run_child({**spec, "mode": "classify", "raster": big})
    work = workload(big, spec["model"], spec)
    ratio = out["peak_rss_mb"] / small["peak_rss_mb"]
    log(f"  4x raster: {out['tiles'] / out['seconds']:.1f} tiles/s, peak RSS {out['peak_rss_mb']:.0f} MB "
        f"vs {small['peak_rss_mb']:.0f} MB ({ratio:.3f}x)")
    return {"raster": big, "width": work["width"], "height": work["height"], "tiles": out["tiles"],
            "pixels_ratio": round(work["width"] * work["height"]
                                  / (small_work["width"] * small_work["height"]), 2),
            "tiles_per_s": round(out["tiles"] / out["seconds"], 2),
            "km2_per_s": round(work["area_km2"] / out["seconds"], 3), "peak_rss_mb": out["peak_rss_mb"],
            "peak_rss_ratio": round(ratio, 3)}


def eta_check(spec: dict[str, Any], measured: float) -> dict[str, Any]:
    from .estimate import estimate_seconds

    params = {k: v for k, v in spec.items() if k not in ("raster", "model", "mode")}
    t0 = time.perf_counter()
    est = estimate_seconds(spec["raster"], spec["model"], heatmap=False, **params)
    return {"estimate_s": round(est, 1), "measured_s": round(measured, 1),
            "error": round(est / measured - 1, 3), "calibration_s": round(time.perf_counter() - t0, 1)}
