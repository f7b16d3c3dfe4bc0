"""What a heatmap costs on top of classify, per heatmap setting (``make bench-heatmap-cost``).

Interleaved in one process (so load that comes and goes hits every setting alike), ``--repeats`` times each:
classify alone (GeoPackage), and classify + heatmap at each (detail, norm); medians and their ratio to
classify alone. A first untimed run of each setting exports its ONNX model and warms the caches.

    python backend/scripts/bench_heatmap_cost.py --raster bench-data/s2_2000.tif --repeats 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from rs_scene.engine.infer import ClassifyParams, classify_raster

SETTINGS = [None, ("context", "run"), ("context", "tile"), ("fused", "run"), ("fine", "run"),
            ("coarse", "run"), ("coarse", "tile")]


def one(raster: str, setting: tuple[str, str] | None, tmp: str, args: argparse.Namespace) -> float:
    p = ClassifyParams(raster=raster, model=args.model, out_gpkg=str(Path(tmp) / "g.gpkg"), bands=args.bands,
                       input_scale=args.input_scale, threads=args.threads)
    if setting:
        p.heatmap, p.heatmap_detail, p.heatmap_norm = str(Path(tmp) / "h.tif"), *setting
    t0 = time.perf_counter()
    res = classify_raster(p)
    dt = time.perf_counter() - t0
    for f in Path(tmp).iterdir():
        f.unlink()
    return dt if res.tiles_classified else float("nan")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--raster", required=True)
    ap.add_argument("--model", default="sentinel2-eurosat")
    ap.add_argument("--bands", default="B02,B03,B04,B05,B06,B07,B08,B8A,B11,B12")
    ap.add_argument("--input-scale", type=float, default=1000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, help="compute threads (default: all cores)")
    ap.add_argument("--settings", help="only these, e.g. none,context:run,fused:run")
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    if args.settings:
        SETTINGS[:] = [None if s == "none" else tuple(s.split(":")) for s in args.settings.split(",")]
    times: dict[str, list[float]] = {str(s): [] for s in SETTINGS}
    with tempfile.TemporaryDirectory() as tmp:
        for s in SETTINGS:
            one(args.raster, s, tmp, args)
        for _ in range(args.repeats):
            for s in SETTINGS:
                times[str(s)].append(one(args.raster, s, tmp, args))
    base = statistics.median(times["None"])
    out = {k: {"seconds": [round(t, 3) for t in v], "median": round(statistics.median(v), 3),
               "over_classify": round(statistics.median(v) / base, 3)} for k, v in times.items()}
    print(json.dumps(out, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
