"""``rs-scene``: everything the QGIS plugin does, headless."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from typing import Any

from .errors import RSSceneError
from .io.outputs import check_outputs
from .options import CLASSIFY_RULES, check_extent, check_numbers, cli_label
from .stop import PROCESS_STOP, Cancelled


def _progress_bar(desc: str) -> Any:
    from tqdm import tqdm

    bar = tqdm(total=0, desc=desc, unit="tile", file=sys.stderr)

    def update(done: int, total: int, stage: str) -> None:
        if bar.total != total:
            bar.total = total
        bar.n = done
        bar.refresh()

    return bar, update


def cmd_info(args: argparse.Namespace) -> int:
    from .bands import resolve_bands
    from .io.raster import band_names, open_raster, raster_info
    from .zoo import list_models

    with open_raster(args.raster) as ds:
        info = raster_info(ds)
        fits = []
        for card in list_models():
            if "error" in card:
                continue
            try:
                resolve_bands(card["bands"], band_names(ds), args.bands, source=ds.name)
                fits.append({"model": card["name"], "fits": True})
            except RSSceneError as exc:
                fits.append({"model": card["name"], "fits": False, "why": str(exc)})
        info["models"] = fits
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    for key in ("path", "driver", "width", "height", "count", "dtypes", "crs", "gsd_m", "nodata", "bounds"):
        print(f"{key:>10}: {info[key]}")
        if key == "gsd_m" and info["gsd_m"] and abs(info["gsd_y_m"] / info["gsd_m"] - 1) > 0.01:
            print(f"{'gsd_y_m':>10}: {info['gsd_y_m']} (pixels not square on the ground: tiles get more "
                  "pixels along the shorter side)")
    print("     bands: " + ", ".join(f"{i + 1}={n or '?'}" for i, n in enumerate(info["band_names"]))
          + (" (unnamed 8-bit bands: assumed aerial order; override with --bands)"
             if info["band_names_assumed"] else ""))
    if any(v != 1 for v in info["scales"]) or any(v != 0 for v in info["offsets"]):
        print("   scaling: " + ", ".join(f"{i + 1}: x{sc:g} {off:+g}" for i, (sc, off)
                                          in enumerate(zip(info["scales"], info["offsets"], strict=True)))
              + " (declared; applied before classifying)")
    for f in fits:
        print(f"     model: {f['model']}: " + ("fits (bands found by name)" if f["fits"] else f["why"]))
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from .models import list_backbones
    from .zoo import list_models

    if args.backbones:
        print("\n".join(list_backbones()))
        return 0
    models = list_models()
    if args.json:
        print(json.dumps(models, indent=2))
        return 0
    for m in models:
        if "error" in m:
            print(f"{m['name']}: UNREADABLE: {m['error']}")
            continue
        acc = (m.get("metrics", {}).get("heldout") or {}).get("overall_accuracy")
        print(f"{m['name']}  [{m['method']}/{m['architecture']}, {m['task']}]  {m['path']}")
        print(f"    {m.get('description', '')}")
        print(f"    bands: {', '.join(m['bands'])}   tile: {m['tile_size']} px at {m['gsd']} m   "
              f"classes ({len(m['classes'])}): {', '.join(c['name'] for c in m['classes'])}")
        if acc is not None:
            print(f"    held-out overall accuracy: {acc:.3f} on {m['training'].get('n_heldout')} images "
                  f"({m['training'].get('heldout_rule')})")
    return 0


def _extent(text: str | None) -> tuple[float, float, float, float] | None:
    if not text:
        return None
    try:
        vals = tuple(float(v) for v in text.split(","))
    except ValueError as exc:
        raise RSSceneError(f"--extent '{text}': expected xmin,ymin,xmax,ymax") from exc
    if len(vals) != 4:
        raise RSSceneError(f"--extent '{text}': expected four numbers xmin,ymin,xmax,ymax")
    return check_extent(vals, "--extent")


def _gsd(text: str | None) -> float | str | None:
    if text is None or text == "native":
        return text
    try:
        return float(text)
    except ValueError as exc:
        raise RSSceneError(f"--gsd '{text}': give metres per pixel or 'native'") from exc


def cmd_classify(args: argparse.Namespace) -> int:
    from . import freeze_import_heap
    from .engine.infer import ClassifyParams, classify_raster

    freeze_import_heap()
    check_numbers({**vars(args), "gsd": _gsd(args.gsd)}, CLASSIFY_RULES, cli_label)
    if not args.estimate:  # before any work: never over the input, a foreign file or another output
        model_file = args.model if os.path.isfile(args.model) else None
        check_outputs({"--out": args.out, "--heatmap": args.heatmap, "--class-raster": args.class_raster},
                      (args.raster, args.mask, model_file), args.overwrite)
    params = ClassifyParams(
        raster=args.raster, model=args.model, out_gpkg=args.out, heatmap=args.heatmap,
        class_raster=args.class_raster, bands=args.bands, tile_size=args.tile_size, stride=args.stride,
        device=args.device, cam=args.cam, cam_class=args.cam_class, extent=_extent(args.extent),
        heatmap_norm=args.heatmap_norm, heatmap_detail=args.heatmap_detail,
        mask=args.mask, min_valid=args.min_valid, input_scale=args.input_scale, gsd=_gsd(args.gsd),
        nodata=args.nodata,
        edge=args.edge, batch_size=args.batch_size, runtime=args.runtime, threads=args.threads,
        streams=args.streams)
    if args.estimate:
        return _estimate(params, args.json)
    bar, update = _progress_bar("classify")
    try:
        res = classify_raster(params, progress=update)
    finally:
        bar.close()
    summary = {"tiles_total": res.tiles_total, "tiles_classified": res.tiles_classified,
               "tiles_skipped": res.tiles_skipped, "seconds": res.seconds, "class_counts": res.class_counts,
               "outputs": res.outputs, "model": res.model, "warnings": res.warnings}
    for text in res.warnings:
        print(f"warning: {text}", file=sys.stderr)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        n = max(res.tiles_classified, 1)
        shares = ", ".join(f"{k} {v / n:.0%}" for k, v in list(res.class_counts.items())[:6])
        print(f"{res.tiles_classified}/{res.tiles_total} tiles classified ({res.tiles_skipped} skipped) in "
              f"{res.seconds:.1f} s: {shares}")
        for kind, path in res.outputs.items():
            print(f"  {kind}: {path}")
    return 0


def _estimate(params: Any, as_json: bool) -> int:
    """``classify --estimate``: the ETA the plugin shows before a run; writes nothing."""
    from .bench.estimate import estimate_run

    kw = {k: v for k, v in vars(params).items()
          if k not in ("raster", "model", "out_gpkg", "heatmap", "class_raster") and v is not None}
    seconds, tiles, warnings = estimate_run(params.raster, params.model, heatmap=bool(params.heatmap), **kw)
    for text in warnings:
        print(f"warning: {text}", file=sys.stderr)
    if as_json:
        print(json.dumps({"eta_s": round(seconds, 1), "tiles": tiles, "warnings": warnings}))
    else:
        print(f"about {seconds:.0f} s for {tiles} tiles (calibrated on a sample at the raster's centre)")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .data.datasets import heldout_indices, open_dataset
    from .engine.evaluate import evaluate
    from .engine.infer import load_model
    from .engine.trainer import pick_device

    device = pick_device(args.device)
    card, model, _ = load_model(args.model, device)
    data = open_dataset(args.data, size=card.tile_size if card.bands[0] == "red" else None, bands=card.bands)
    split = "all"
    if args.split == "heldout" or (args.split == "auto" and card.training.get("kind") == data.kind
                                   and card.training.get("n_heldout")):
        _, test, rule = heldout_indices(data)
        data, split = data.subset(test), f"held-out ({rule})"
    metrics = evaluate(model, card, data, device)
    metrics.update(model=card.name, data=args.data, split=split)
    if args.json:
        print(json.dumps(metrics))
        return 0
    head = ("overall_accuracy", "sample_f1", "sample_accuracy", "hamming_loss", "ranking_loss")
    print(f"{card.name} on {args.data} [{split}], n={metrics['n']}")
    for k in head:
        if k in metrics:
            print(f"  {k}: {metrics[k]:.4f}")
    for c, v in metrics["per_class"].items():
        if v is not None:
            print(f"    {c:<28} {v:.3f}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="rs-scene", description="Remote-sensing scene classification")
    sub = ap.add_subparsers(dest="command", required=True)

    p = sub.add_parser("info", help="bands, dtype, CRS, GSD, nodata and which installed models fit")
    p.add_argument("raster")
    p.add_argument("--bands", help="names of the raster's bands, e.g. B02,B03,B04,...")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("models", help="installed models with their cards")
    p.add_argument("--json", action="store_true")
    p.add_argument("--backbones", action="store_true", help="list the registered backbones instead")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("classify", help="classify a raster tile by tile")
    p.add_argument("raster")
    p.add_argument("--model", required=True, help="installed model name or .pt file")
    p.add_argument("--out", help="GeoPackage tile grid to write")
    p.add_argument("--heatmap", help="Grad-CAM heatmap GeoTIFF to write")
    p.add_argument("--class-raster", help="class GeoTIFF (one cell per stride) to write")
    p.add_argument("--bands", help="B02,B03,... (names of the raster's bands), red=1,green=2,... or 3,2,1")
    p.add_argument("--tile-size", type=int, help="tile edge in model pixels (default: the card's)")
    p.add_argument("--stride", type=int, help="stride in model pixels (< tile size = overlap)")
    p.add_argument("--gsd", help="ground resolution to classify at, metres, or 'native' (default: model's)")
    p.add_argument("--input-scale", type=float, help="divide raw values by this (default by dtype and card)")
    p.add_argument("--extent", help="xmin,ymin,xmax,ymax in the raster's CRS")
    p.add_argument("--mask", help="vector file of polygons that limit the work")
    p.add_argument("--min-valid", type=float, default=0.5, help="skip tiles with less valid data (0-1)")
    p.add_argument("--nodata", type=float,
                   help="raw value of missing pixels (where every band holds it), besides the raster's own")
    p.add_argument("--edge", choices=["pad", "shift", "drop"], default="shift",
                   help="partial tiles at the right/bottom edge: shift the last tile inside the raster "
                   "(default; it overlaps its neighbour), pad with nodata (biases the class), or drop")
    p.add_argument("--cam", default="gradcam", help="CAM method: gradcam, gradcam++, xgradcam, hirescam, ...")
    p.add_argument("--cam-class", help="heatmap for this class instead of each tile's prediction")
    p.add_argument("--heatmap-norm", choices=("run", "tile"), default="run",
                   help="run: one scale for the whole run, weak evidence stays dim (default); tile: each "
                        "tile's map min-max on its own")
    p.add_argument("--heatmap-detail", choices=("context", "fused", "fine", "coarse"), default="context",
                   help="context (default): Grad-CAM on the twice-denser grid (8x8 cells per 128-px input), "
                        "drawn over blocks of neighbouring tiles so a tile's border cells see the pixels "
                        "beyond it (a second pass: about 2-3x classify alone on a CPU); fused: context with "
                        "LayerCAM of a mid-level layer fused in (finds small patches better; PyTorch "
                        "backward passes: slower); fine: that grid on "
                        "each tile alone (border cells see zero padding: a centre blob per tile); "
                        "coarse: the last layer's grid on each tile alone, from classify's own pass")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--runtime", choices=["auto", "torch", "onnx"], default="auto",
                   help="model runtime: auto = ONNX Runtime on CPU when installed, else PyTorch")
    p.add_argument("--threads", type=int, help="ONNX Runtime compute threads (default: all cores)")
    p.add_argument("--streams", type=int, help="ONNX Runtime batches run at once (default: one per thread)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace existing output files that are not earlier RS Scene outputs")
    p.add_argument("--estimate", action="store_true",
                   help="only print how long the run would take (a calibration on a sample); write nothing")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=cmd_classify)

    p = sub.add_parser("evaluate", help="accuracy of a model on a labelled dataset")
    p.add_argument("--model", required=True)
    p.add_argument("--data", required=True, help="folder-per-class, EuroSAT-MS or BigEarthNet folder")
    p.add_argument("--split", choices=["auto", "heldout", "all"], default="auto",
                   help="auto: the held-out split when the model was trained on this dataset")
    p.add_argument("--device", default="auto")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_evaluate)

    for extra in ("rs_scene.train_cli", "rs_scene.server.cli", "rs_scene.bench.cli", "rs_scene.scale.cli"):
        try:
            module = __import__(extra, fromlist=["register"])
        except ModuleNotFoundError as exc:
            if not (exc.name and extra.startswith(exc.name)):
                raise
            continue
        module.register(sub)
    return ap


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread like Ctrl-C so that a run removes its temporary files."""


_SIGNALLED: list[int] = []  # the signals that interrupted this command-line process


def _interrupt(signum: int, frame: Any) -> None:
    """SIGINT / SIGTERM: every run that was given no cancel event of its own stops at its next check
    (PROCESS_STOP), and the main thread gets a KeyboardInterrupt (Terminated for SIGTERM) at once. The flag
    is what ends the run where that exception is swallowed (one raised inside a __del__ or a GC callback is
    printed and dropped; a CI run once went on for over 20 s after a SIGINT)."""
    _SIGNALLED.append(signum)
    PROCESS_STOP.set()
    raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if argv is None:  # a command-line process (not a call from a test or a library)
        signal.signal(signal.SIGINT, _interrupt)
        signal.signal(signal.SIGTERM, _interrupt)
    try:
        return int(args.func(args) or 0)
    except RSSceneError as exc:
        print(f"rs-scene {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, Cancelled) as exc:
        if isinstance(exc, Cancelled) and not _SIGNALLED:
            raise
        # a signal can land before a writer exists to abort (e.g. inside the GeoPackage driver's create):
        # every temporary file this process started and did not commit goes too
        from .io.outputs import remove_live_temps

        remove_live_temps()
        print(f"rs-scene {args.command}: interrupted; no output written", file=sys.stderr)
        terminated = isinstance(exc, Terminated) or signal.SIGTERM in _SIGNALLED[:1]
        return 143 if terminated else 130


if __name__ == "__main__":
    sys.exit(main())
