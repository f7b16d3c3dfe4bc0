"""``make bench-explain``: how faithful each CAM method's heatmap is, on the two shipped models and real
images from ../shared/data (fixed seeds). Writes JSON and a Markdown table
(see rs_scene.explain.faithfulness).

Per model and method: pasted patch (peak inside, contrast; for context maps each pasted tile lies in a
field of 8 other images of its base class), deletion / insertion against random orders (blurred copy, and
ROAD's noisy linear imputation), and position bias
over a real scene's whole tiles as ``classify`` writes its heatmap (and how smooth that mosaic is across tile
borders; rs_scene.explain.scene_bias): sentinel2-eurosat over the demo scene, aerial-rgb over the NAIP scene
(see SCENES), and for aerial-rgb also over UC Merced's held-out images (the earlier proxy). Slow
methods (Score-CAM: one forward pass per feature channel) run on fewer images; each row gives its sizes.

    python backend/scripts/bench_explain.py --out out/bench-explain [--models sentinel2-eurosat] [--quick]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rs_scene.data.datasets import heldout_indices, open_dataset
from rs_scene.engine.infer import load_model
from rs_scene.engine.runtime import make_runner
from rs_scene.explain import faithfulness as fa
from rs_scene.explain import scene_bias as sb
from rs_scene.explain.cam import CAM_METHODS, CONTEXT_DETAILS

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"
# position bias over a real scene, with the classify options a user would give it:
# sentinel2-eurosat: the demo scene (10 m, x1000, 64-px tiles); aerial-rgb: the NAIP scene's red, green and
# blue bands at its own 5 m (--gsd native; the card's 0.3 m would make each 256-px tile 16 raster pixels
# enlarged, and classify warns so) in 64-px tiles (320 m: the nearest to UC Merced's 78 m tiles that keeps
# the enlargement to the network's 224-px input at 3.5x, under classify's 4x warning; 180 tiles)
SCENES = {
    "sentinel2-eurosat": sb.Scene(str(SHARED / "scenes" / "sentinel2_aberystwyth_20210527_10band.tif"),
                                  "B02,B03,B04,B05,B06,B07,B08,B8A,B11,B12", 64, input_scale=1000,
                                  label="demo scene (Sentinel-2), whole tiles"),
    "aerial-rgb": sb.Scene(str(SHARED / "scenes" / "naip_m_4709963_se_14_1_20200831.tif"),
                           "red=1,green=2,blue=3", 64, gsd="native", tile_size=64,
                           label="NAIP scene (5 m, --gsd native --tile-size 64), whole tiles"),
}
MODELS = {"sentinel2-eurosat": {"data": "eurosat_ms", "patch": 24},
          "aerial-rgb": {"data": "ucmerced", "patch": 96}}
SLOW = {"scorecam": 0.05}  # share of the sizes the slow methods run on
# (method, detail, norm) rows: the default first, then the cheaper grid, then every other CLI method
ROWS = [("gradcam", "context", "run"), ("gradcam", "fine", "run"), ("gradcam", "coarse", "run")] + [
    (m, "fine", "run") for m in CAM_METHODS if m != "gradcam"]


def _sizes(method: str, sizes: dict[str, int]) -> dict[str, int]:
    share = SLOW.get(method, 1.0)
    return {k: max(int(v * share), 4) for k, v in sizes.items()}


def paste_pool(data: Any, pastes_from: str) -> np.ndarray:
    """Indices of the images pastes are made of: every image, or the held-out ones only."""
    if pastes_from == "heldout":
        return np.asarray(heldout_indices(data)[1])
    if pastes_from != "all":
        raise ValueError(f"--pastes-from {pastes_from!r}: all or heldout")
    return np.arange(len(data))


def bench_model(name: str, sizes: dict[str, int], seed: int, model_file: str | None = None,
                pastes_from: str = "all") -> list[dict[str, Any]]:
    """Every row of ``ROWS`` for the shipped model ``name`` (or ``model_file``, a model trained on the same
    data and held-out split); the pasted patches and their bases from every image of the data or only from
    its held-out images (``pastes_from``: a model trained with CutMix has seen its training images pasted)."""
    card, model, path = load_model(model_file or name, torch.device("cpu"))
    cfg = MODELS[name]
    data = open_dataset(SHARED / cfg["data"], bands=card.bands if name != "aerial-rgb" else None)
    images, labels = data.x.numpy(), data.y.numpy()
    _, held, _ = heldout_indices(data)
    pool = paste_pool(data, pastes_from)
    paste_images, paste_labels = images[pool], labels[pool]
    predict = fa.predictor(card, make_runner("auto", model, card, path, torch.device("cpu")).logits)
    rows = []
    for method, detail, norm in ROWS:
        sz, t0 = _sizes(method, sizes), time.perf_counter()
        explain, runner = fa.explainer(card, model, method, detail, norm)
        rng = np.random.default_rng(seed)
        bases: list[int] = []
        tiles, targets, boxes = fa.paste_set(paste_images, paste_labels, sz["pastes"], cfg["patch"], seed,
                                             bases)
        # context maps: each pasted tile in a field of 8 other images of its base class
        grouped = runner.detail in CONTEXT_DETAILS
        ring = fa.same_class_neighbours(paste_images, paste_labels, bases, seed) if grouped else None
        row: dict[str, Any] = {"model": name, "method": method, "detail": runner.detail, "norm": norm,
                               "cells": None, "model_file": model_file, "pastes_from": pastes_from}
        print(f"{name} {method} {detail} {norm}: pasted patch", file=sys.stderr, flush=True)
        row["pasted"] = fa.pasted_patch(explain, tiles, targets, boxes, cfg["patch"], ring)
        pick = rng.choice(len(images), size=min(sz["deletion"], len(images)), replace=False)
        print("  deletion / insertion", file=sys.stderr, flush=True)
        row["deletion"] = fa.deletion_insertion(explain, predict, images[pick], seed=seed, road=True)
        square = max(int(np.sqrt(sz["scene"])), 2) if method in SLOW else None
        row["position"] = sb.scene_position_bias(SCENES[name], model_file or name, method, detail, norm,
                                                 square)
        if name == "aerial-rgb":  # the earlier proxy: UC Merced photos (often centred on an object)
            _, maps = explain(images[held][: sz["scene"]], None)
            row["position_ucm"] = fa.position_bias(maps) | {"source": "UC Merced held-out images"}
        feat = runner.net.forward_features(torch.zeros(1, len(card.bands), card.input_size, card.input_size))
        row["cells"] = list(feat.shape[-2:])
        row["seconds"] = round(time.perf_counter() - t0, 1)
        runner.close()
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def road_cell(d: dict[str, Any]) -> str:
    if "road_deletion_auc" not in d:
        return "-"
    return (f"{d['road_deletion_auc']:.3f} / {d['road_deletion_auc_other_map']:.3f} / "
            f"{d['road_deletion_auc_random']:.3f}")


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = ["| model | method | grid (cells per input) | norm | peak inside patch (95 % CI; chance) | "
             "blank maps; peak inside where not blank | contrast | deletion AUC map / other map / random | "
             "insertion AUC map / random | ROAD deletion map / other map / random | "
             "position bias over the scene (median r) | seam ratio | "
             "position bias, UC Merced held-out photos (aerial) | "
             "sizes (pastes / deletion tiles / position tiles) |",
             "|---|---|---|---|---|---|---:|---|---|---|---:|---:|---:|---|"]
    for r in rows:
        p, d, q = r["pasted"], r["deletion"], r["position"]
        ucm = r.get("position_ucm")
        ucm_cell = f"{ucm['median_corr']} ({ucm['tiles']})" if ucm else "-"
        shown = p.get("peak_inside_shown")
        lines.append(
            f"| {r['model']} | {r['method']} | {r['detail']} {r['cells'][0]}x{r['cells'][1]} | {r['norm']} | "
            f"{p['peak_inside']:.2f} ({p['peak_inside_ci95'][0]:.2f}-{p['peak_inside_ci95'][1]:.2f}; "
            f"{p['chance']:.2f}) | {p.get('blank_maps', '-')}; {'-' if shown is None else f'{shown:.2f}'} | "
            f"{p['contrast']:.3f} | "
            f"{d['deletion_auc']:.3f} / {d['deletion_auc_other_map']:.3f} / {d['deletion_auc_random']:.3f} | "
            f"{d['insertion_auc']:.3f} / {d['insertion_auc_random']:.3f} | {road_cell(d)} | "
            f"{q['median_corr']} | "
            f"{q.get('seam_ratio', '-')} | {ucm_cell} | {p['pastes']} / {d['tiles']} / {q['tiles']} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="out/bench-explain")
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--methods", help="only these CAM methods (comma-separated)")
    ap.add_argument("--rows", help="instead: method:detail:norm rows, e.g. gradcam:fine:tile")
    ap.add_argument("--pastes", type=int, default=200)
    ap.add_argument("--deletion", type=int, default=32, help="images in the deletion / insertion test")
    ap.add_argument("--scene", type=int, default=105,
                    help="aerial-rgb: UC Merced held-out images for the second position bias")
    ap.add_argument("--aerial-share", type=float, default=0.5,
                    help="aerial-rgb (256-px tiles, 3.5x the compute) runs this share of the sizes")
    ap.add_argument("--model-file", help="a model file trained on the --models model's data and split, "
                    "measured in its place (one model)")
    ap.add_argument("--pastes-from", choices=("all", "heldout"), default="all",
                    help="images the pasted patches and their bases come from (heldout: only the images "
                    "the model was not trained on)")
    ap.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    sizes = {"pastes": args.pastes, "deletion": args.deletion, "scene": args.scene}
    if args.quick:
        sizes = {"pastes": 40, "deletion": 8, "scene": 16}
    if args.rows:
        ROWS[:] = [tuple(r.split(":")) for r in args.rows.split(",")]
    if args.methods:
        keep = set(args.methods.split(","))
        ROWS[:] = [r for r in ROWS if r[0] in keep]
    torch.manual_seed(args.seed)
    torch.set_num_threads(1)  # the measurements are of maps, not speed: one thread shares a busy machine best
    rows = []
    for name in args.models.split(","):
        share = args.aerial_share if name == "aerial-rgb" else 1.0
        rows += bench_model(name, {k: max(int(v * share), 4) for k, v in sizes.items()}, args.seed,
                            args.model_file, args.pastes_from)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench-explain.json").write_text(json.dumps(rows, indent=1))
    (out / "bench-explain.md").write_text(markdown(rows))
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
