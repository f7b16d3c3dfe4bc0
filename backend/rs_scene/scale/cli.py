"""``rs-scene classify-many`` (many rasters, or one huge one, on Ray) and ``rs-scene runs show``."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def cmd_classify_many(args: argparse.Namespace) -> int:
    from ..cli import _gsd
    from ..engine.infer import ClassifyParams
    from ..errors import RSSceneError
    from .driver import ManyOptions, classify_many
    from .manifest import expand_inputs

    try:
        import ray  # noqa: F401
    except ModuleNotFoundError as exc:
        raise RSSceneError("classify-many needs Ray: pip install 'rs-scene[ray]'") from exc
    for name in ("shard_tiles", "actors", "actor_cpus", "cpus", "max_in_flight", "batch_size"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise RSSceneError(f"--{name.replace('_', '-')} must be at least 1, not {value}")
    names = ("min_valid", "edge", "batch_size", "heatmap_norm", "heatmap_detail")
    same = {k: getattr(args, k) for k in names if getattr(args, k) is not None}
    params = ClassifyParams(  # classify's defaults where not given, so both cut and read the same tiles
        raster="", model=args.model, bands=args.bands, tile_size=args.tile_size, stride=args.stride,
        device=args.device, cam=args.cam, cam_class=args.cam_class, input_scale=args.input_scale,
        gsd=_gsd(args.gsd), runtime=args.runtime, nodata=args.nodata, **same)
    opts = ManyOptions(out_dir=args.out_dir, params=params, heatmaps=args.heatmaps, ray=args.ray,
                       shard_tiles=args.shard_tiles, resume=args.resume, actors=args.actors,
                       actor_cpus=args.actor_cpus, cpus=args.cpus, max_in_flight=args.max_in_flight)
    summary = classify_many(expand_inputs(args.inputs), opts)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"{summary['done']}/{summary['rasters']} rasters done, {summary['failed']} failed, "
              f"{summary['tiles']} tiles in {summary['seconds']:.1f} s; index: {args.out_dir}/runs.gpkg")
    if summary["failed"]:
        print(f"rs-scene classify-many: {summary['failed']} raster(s) failed (rs-scene runs show "
              f"{args.out_dir}); --resume retries them", file=sys.stderr)
        return 2
    return 0


def cmd_runs_show(args: argparse.Namespace) -> int:
    from .index import index_row, show_lines
    from .manifest import Manifest

    states = Manifest(args.out_dir).state()
    if args.json:
        rows = [index_row(st) | {"geometry": None} for st in states.values()]
        print(json.dumps(rows, indent=2))
    else:
        print("\n".join(show_lines(states)))
    return 0


def _classify_options(p: Any) -> None:
    p.add_argument("--bands", help="names of the rasters' bands (as classify's --bands)")
    p.add_argument("--tile-size", type=int, help="tile edge in model pixels (default: the card's)")
    p.add_argument("--stride", type=int, help="stride in model pixels (< tile size = overlap)")
    p.add_argument("--gsd", help="ground resolution to classify at, metres, or 'native'")
    p.add_argument("--input-scale", type=float, help="divide raw values by this (default by dtype and card)")
    p.add_argument("--min-valid", type=float, help="skip tiles with less valid data (0-1; as classify)")
    p.add_argument("--nodata", type=float, help="raw value of missing pixels, besides the rasters' own")
    p.add_argument("--edge", choices=["pad", "shift", "drop"], help="partial edge tiles (as classify's)")
    p.add_argument("--cam", default="gradcam", help="CAM method for --heatmaps")
    p.add_argument("--cam-class", help="heatmaps for this class instead of each tile's prediction")
    p.add_argument("--heatmap-norm", choices=("run", "tile"), help="as classify's (default: run)")
    p.add_argument("--heatmap-detail", choices=("context", "fused", "fine", "coarse"),
                   help="as classify's (default: context)")
    p.add_argument("--device", default="auto", help="auto (a GPU per actor where there are GPUs) or cpu")
    p.add_argument("--runtime", choices=["auto", "torch", "onnx"], default="auto")
    p.add_argument("--batch-size", type=int, help="tiles per batch (as classify; at least 128 on GPUs)")


def register(sub: Any) -> None:
    p = sub.add_parser("classify-many", help="classify many rasters (or one huge one) on a Ray cluster")
    p.add_argument("inputs", nargs="+", help="rasters: a list file (.txt), a folder, a glob or paths")
    p.add_argument("--model", required=True, help="installed model name or .pt file (same path on all nodes)")
    p.add_argument("--out-dir", required=True, help="run folder (shared by all nodes on a cluster)")
    p.add_argument("--heatmaps", action="store_true", help="also write a Grad-CAM heatmap per raster")
    p.add_argument("--ray", default="local",
                   help="local (start Ray here, on 127.0.0.1), auto, HOST:PORT or ray://HOST:10001")
    p.add_argument("--shard-tiles", type=int, help="tiles per shard (default: 256 MB of tiles, <= 1024)")
    p.add_argument("--resume", action="store_true", help="finish the run in --out-dir: skip finished shards")
    p.add_argument("--actors", type=int, help="model actors (default: one per GPU, else cluster CPUs - 1)")
    p.add_argument("--actor-cpus", type=int, default=1, help="CPUs (ONNX Runtime threads) per CPU actor")
    p.add_argument("--cpus", type=int, help="CPUs of the local cluster (--ray local; default: all)")
    p.add_argument("--max-in-flight", type=int, help="shards in flight at once (default: 2 per actor)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    _classify_options(p)
    p.set_defaults(func=cmd_classify_many)

    p = sub.add_parser("runs", help="a classify-many run's state")
    runs = p.add_subparsers(dest="runs_command", required=True)
    s = runs.add_parser("show", help="per raster: status, tiles, shards, seconds, error")
    s.add_argument("out_dir")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_runs_show)
