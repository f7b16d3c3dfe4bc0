"""Training from polygons against training from the same images as a folder dataset, on mosaics whose truth
is known (:mod:`rs_scene.data.mosaic`), and the Aberystwyth case (a real scene: its own sea polygons must come
out as sea).

For each data set and seed: a mosaic of its images (one per tile, each class dealt 2/3 to the left columns,
1/3 to the right), polygons = the truth polygons of the left columns. Polygon model: ``load_polygons`` +
``train_model``, the service's train job path (what the Training dialog sends). Folder model: the same
left-column images as an in-memory folder dataset through ``train_model`` (its own held-out rule). Both are
measured by ``classify_raster`` on the mosaic, on the right-column tiles no polygon touched.

    .venv/bin/python backend/scripts/polygon_benchmark.py --out /tmp/polybench [--seeds 3] [--quick]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import fiona
import numpy as np

from rs_scene.data.datasets import SceneData, load_eurosat, load_folder
from rs_scene.data.mosaic import build_mosaic, truth_of
from rs_scene.data.polygons import InputOptions, PolygonSampling, load_polygons
from rs_scene.engine.infer import ClassifyParams, classify_raster
from rs_scene.engine.train import TrainParams, train_model
from rs_scene.engine.trainer import TrainSettings

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
# a linear probe on ImageNet EfficientNet-Lite0 features (cheap on CPU); the default probe rate (1e-3) over
# the few batches of a few hundred tiles left the Aberystwyth model saying 'sea' everywhere: 1e-2, 300 steps
OPTIONS = {"backbone": "efficientnet_lite0", "init": "imagenet", "mode": "linear-probe", "epochs": 30,
           "batch_size": 32, "lr": 0.01, "min_steps": 300}
# the network input of both paths: what training from polygons gives 64-px raster tiles by default
# (RASTER_MIN_INPUT); a folder dataset's default would be its image size, so the folder path is told the same
INPUT = 128


def datasets(quick: bool) -> dict[str, Any]:
    """Name -> loader of each data set (loaded only when run); ``quick``: 9 images per class."""
    n = 9 if quick else None
    return {
        "UC Merced (21 classes, RGB)": lambda: _cap(load_folder(SHARED / "ucmerced", 64), n),
        "EuroSAT-MS (10 classes, 10 bands)": lambda: _cap(load_eurosat(SHARED / "eurosat_ms", _s2_ten()), n),
        "AID (30 classes, RGB, 15 per class)": lambda: load_folder(
            _first_images(SHARED / "aid_150px", n or 15), 64),
    }


def _first_images(root: Path, per_class: int) -> Path:
    """A folder of links to the first ``per_class`` images of each class (AID has 200 each)."""
    out = Path(tempfile.mkdtemp(prefix="aid_subset_"))
    for d in sorted(p for p in root.iterdir() if p.is_dir()):
        (out / d.name).mkdir()
        for f in sorted(d.iterdir())[:per_class]:
            (out / d.name / f.name).symlink_to(f)
    return out


def _s2_ten() -> list[str]:
    from rs_scene.bands import S2_TEN

    return list(S2_TEN)


def _cap(data: SceneData, per_class: int | None) -> SceneData:
    if per_class is None:
        return data
    y = data.y.numpy()
    idx = [i for c in range(len(data.classes)) for i in np.flatnonzero(y == c)[:per_class]]
    return data.subset(idx)


def mosaic_accuracy(raster: str, model: str, truth: str, tmp: Path) -> dict[str, float]:
    """OA and balanced accuracy of classify on the tiles of the test region (no polygon touched them)."""
    grid = tmp / f"{Path(model).stem}_grid.gpkg"
    classify_raster(ClassifyParams(raster=raster, model=model, out_gpkg=str(grid), device="cpu", edge="drop"))
    with fiona.open(grid) as src:
        pred = {(f.properties["row"], f.properties["col"]): f.properties["class_name"] for f in src}
    cells = {k: c for k, (c, region) in truth_of(truth).items() if region == "test"}
    hits = {c: [] for c in set(cells.values())}
    for k, c in cells.items():
        hits[c].append(pred.get(k) == c)
    oa = float(np.mean([h for v in hits.values() for h in v]))
    return {"oa": oa, "balanced": float(np.mean([np.mean(v) for v in hits.values()])), "n": len(cells)}


def run_seed(data: SceneData, seed: int, tmp: Path, epochs: int) -> dict[str, Any]:
    m = build_mosaic(data, tmp, cols=12, seed=seed, name=f"m{seed}")
    settings = TrainSettings(device="cpu", seed=seed)
    options = {**OPTIONS, "epochs": epochs}
    # every tile is an image of its own (no neighbour shares its scene), so a block is one tile: the split
    # stays stratified (each class in training, validation and held-out) without 2x2 blocks of 21 classes
    # taking most of the training region
    sampling = PolygonSampling(tile_size=m.tile, block=1, seed=seed)
    poly = load_polygons(m.raster, m.train_labels, "class", sampling, InputOptions())
    t0 = time.perf_counter()
    card_p, _ = train_model(TrainParams(out=str(tmp / f"poly{seed}.pt"), options=options, settings=settings,
                                        input_size=INPUT), data=poly)
    tp = time.perf_counter() - t0
    train_files = {f.properties["image"] for f in fiona.open(m.train_labels)}
    folder = data.subset([i for i, f in enumerate(data.files) if f in train_files])
    t0 = time.perf_counter()
    card_f, _ = train_model(TrainParams(out=str(tmp / f"folder{seed}.pt"), options=options, settings=settings,
                                        val_fraction=0.1, input_size=INPUT), data=folder)
    tf = time.perf_counter() - t0
    return {"seed": seed, "tiles": m.cols * m.rows,
            "polygons": {**mosaic_accuracy(m.raster, str(tmp / f"poly{seed}.pt"), m.truth, tmp),
                         "n_train": card_p.training["n_train"], "n_val": card_p.training["n_val"],
                         "n_heldout": card_p.training["n_heldout"], "seconds": round(tp, 1),
                         "warnings": card_p.metrics.get("warnings", [])},
            "folder": {**mosaic_accuracy(m.raster, str(tmp / f"folder{seed}.pt"), m.truth, tmp),
                       "n_train": card_f.training["n_train"], "n_val": card_f.training["n_val"],
                       "n_heldout": card_f.training["n_heldout"], "seconds": round(tf, 1)}}


def aberystwyth(tmp: Path, seed: int = 0, tile: int = 32, block: int = 2,
                classes: list[str] | None = None) -> dict[str, Any]:
    """The real scene (x1000, 10 bands) with sea, town and farmland polygons, trained with the Training
    dialog's defaults (pretrain's own options) but 32-px tiles and 2 x 2-tile blocks (the town is 3 x 3 such
    tiles): the share of each class's own polygon tiles that classify gives that class (read with
    --input-scale 1000 as the polygons were trained), and the held-out figures. ``tile``, ``block`` and
    ``classes`` (a subset of the polygons' classes) change that case (``--aber-case``)."""
    scene = str(SHARED / "scenes" / "sentinel2_aberystwyth_20210527_10band.tif")
    labels = aber_labels(scene, tmp / "aber.gpkg", classes)
    bands = "B02,B03,B04,B05,B06,B07,B08,B8A,B11,B12"
    data = load_polygons(scene, str(labels), "class", PolygonSampling(tile_size=tile, block=block, seed=seed),
                         InputOptions(bands=bands, input_scale=1000))
    t0 = time.perf_counter()
    settings = TrainSettings(device="cpu", seed=seed)
    card, metrics = train_model(TrainParams(out=str(tmp / "aber.pt"), settings=settings), data=data)
    seconds = round(time.perf_counter() - t0, 1)
    grid = tmp / "aber_grid.gpkg"
    classify_raster(ClassifyParams(raster=scene, model=str(tmp / "aber.pt"), out_gpkg=str(grid), device="cpu",
                                   bands=bands, edge="drop"))
    with fiona.open(grid) as src:
        pred = {(f.properties["col"] * tile, f.properties["row"] * tile): f.properties["class_name"]
                for f in src}
    own: dict[str, list[bool]] = {}
    for f, y in zip(data.files, data.y.tolist(), strict=True):
        x, yy = (int(v[1:]) for v in f.split("_")[1:])
        own.setdefault(data.classes[y], []).append(pred.get((x, yy)) == data.classes[y])
    return {"seed": seed, "own_polygons": {c: f"{sum(v)}/{len(v)}" for c, v in own.items()},
            "own_share": {c: float(np.mean(v)) for c, v in own.items()},
            "init": card.method_config.get("init"), "input_size": card.input_size, "seconds": seconds,
            "tile": tile, "block": block,
            "training_tiles_balanced": card.metrics.get("training", {}).get("balanced_accuracy"),
            "reported": card.metrics.get("reported"), "label": metrics.get("label"),
            "n_heldout": card.training.get("n_heldout"),
            "oa": metrics.get("overall_accuracy"), "balanced": metrics.get("balanced_accuracy"),
            "warnings": metrics.get("warnings"), "split_note": card.training.get("split_note")}


ABER_BOXES = {  # (col0, row0, cols, rows) in pixels of the 930 x 947 scene, drawn on its quick-look
    "sea": [(0, 0, 96, 240), (0, 256, 96, 320)],  # Cardigan Bay (row 250 is the mosaic's nodata gap)
    "town": [(128, 384, 96, 96)],  # Aberystwyth
    "farmland": [(320, 0, 128, 240), (640, 640, 192, 192), (500, 256, 128, 128)],
}


def aber_labels(scene: str, path: Path, classes: list[str] | None = None) -> Path:
    import rasterio

    with rasterio.open(scene) as ds:
        t, crs = ds.transform, ds.crs.to_wkt()
    path.unlink(missing_ok=True)
    with fiona.open(path, "w", driver="GPKG", crs_wkt=crs,
                    schema={"geometry": "Polygon", "properties": {"class": "str"}}) as dst:
        for name, boxes in ABER_BOXES.items():
            for c, r, w, h in boxes if classes is None or name in classes else []:
                (x0, y0), (x1, y1) = t @ (c, r), t @ (c + w, r + h)
                ring = [(x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0)]
                dst.write({"geometry": {"type": "Polygon", "coordinates": [ring]},
                           "properties": {"class": name}})
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="folder for results.json and table.md")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--quick", action="store_true", help="9 images per class (a smoke run)")
    p.add_argument("--only", help="run only the data sets whose name contains this (or 'aberystwyth')")
    p.add_argument("--aber-case", default="32,2,", help="Aberystwyth: tile size, block size and the classes "
                   "kept (empty: all), e.g. '64,4,sea+farmland' for the dialog's tile and block")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        if not args.only or "aber" in args.only.lower():
            tile, block, kept = args.aber_case.split(",")
            case = (int(tile), int(block), kept.split("+") if kept else None)
            results["aberystwyth"] = [aberystwyth(tmp, s, *case) for s in range(args.seeds)]
            print(json.dumps(results["aberystwyth"]), flush=True)
        for name, loader in datasets(args.quick).items():
            if args.only and args.only.lower() not in name.lower():
                continue
            data = loader()
            results[name] = [run_seed(data, s, tmp, args.epochs) for s in range(args.seeds)]
            print(name, json.dumps(results[name]), flush=True)
    (out / "results.json").write_text(json.dumps(results, indent=1))
    (out / "table.md").write_text(table(results))
    print(table(results))
    return 0


def table(results: dict[str, Any]) -> str:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from experiments.stats import interval, paired

    rows = ["| data set (test tiles per seed) | polygons: OA | folder: OA | polygons - folder (points) | "
            "polygons: balanced acc. | folder: balanced acc. |", "|---|---|---|---|---|---|"]
    for name, runs in results.items():
        if name == "aberystwyth":
            continue
        po = {r["seed"]: r["polygons"]["oa"] for r in runs}
        fo = {r["seed"]: r["folder"]["oa"] for r in runs}
        rows.append(f"| {name} ({runs[0]['polygons']['n']}) | {interval(list(po.values())).text()} | "
                    f"{interval(list(fo.values())).text()} | {paired(po, fo).text(points=True)} | "
                    f"{interval([r['polygons']['balanced'] for r in runs]).text()} | "
                    f"{interval([r['folder']['balanced'] for r in runs]).text()} |")
    return "\n".join(rows) + "\n" + (aber_table(results["aberystwyth"], interval)
                                      if "aberystwyth" in results else "")


def aber_table(runs: list[dict[str, Any]], interval: Any) -> str:
    """Per class, the share of its own polygon tiles classify gives it; the held-out OA and balanced
    accuracy; mean and 95 % interval over the seeds."""
    classes = sorted(runs[0]["own_share"])
    r0 = runs[0]
    head = (f"Aberystwyth ({len(runs)} seeds; {r0['tile']}-px tiles, {r0['block']}-tile blocks, init "
            f"{r0['init']}, {r0['input_size']}-px input)")
    rows = ["", head, "",
            "| " + " | ".join(f"own '{c}' tiles given '{c}'" for c in classes) + " | held-out OA | "
            "held-out balanced acc. | training tiles: balanced acc. |", "|---" * (len(classes) + 3) + "|"]
    cells = [interval([r["own_share"][c] for r in runs]).text() for c in classes]
    cells += [interval([r[k] for r in runs]).text() for k in ("oa", "balanced", "training_tiles_balanced")]
    return "\n".join([*rows, "| " + " | ".join(cells) + " |"]) + "\n"


if __name__ == "__main__":
    sys.exit(main())
