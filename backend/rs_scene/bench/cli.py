"""``rs-scene bench RASTER --model M``: registered into the main CLI by :func:`register`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..errors import RSSceneError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="throughput, memory and ETA of classify on a raster, side by side")
    p.add_argument("raster")
    p.add_argument("--model", required=True)
    p.add_argument("--bands", help="names of the raster's bands, as for classify")
    p.add_argument("--input-scale", type=float, help="divide raw values by this, as for classify")
    p.add_argument("--device", default="auto")
    p.add_argument("--runtime", default="auto", choices=["auto", "torch", "onnx"])
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--threads", type=int, help="compute threads (default: all cores)")
    p.add_argument("--repeats", type=int, default=3, help="interleaved repeats per mode (medians)")
    p.add_argument("--forward-tiles", type=int, default=512, help="tiles in memory for forward-only")
    p.add_argument("--flat", help="a raster with 4x the pixels: compare classify's peak RSS on it")
    p.add_argument("--no-runtimes", action="store_true", help="skip the PyTorch / ONNX Runtime comparison")
    p.add_argument("--no-eta", action="store_true", help="skip the ETA check")
    p.add_argument("--json", help="write the results as JSON here")
    p.add_argument("--markdown", help="write the results as a Markdown table here")
    p.set_defaults(func=cmd_bench)


def cmd_bench(args: argparse.Namespace) -> int:
    from .report import markdown
    from .suite import run_suite

    if args.repeats < 1:
        raise RSSceneError("--repeats must be at least 1")
    for path in (args.raster, args.flat):
        if path and not Path(path).is_file():
            raise RSSceneError(f"raster not found: {path}")
    spec = {"raster": args.raster, "model": args.model, "bands": args.bands, "input_scale": args.input_scale,
            "device": args.device, "runtime": args.runtime, "batch_size": args.batch_size,
            "threads": args.threads, "torch_threads": args.threads, "forward_tiles": args.forward_tiles}
    print(f"rs-scene bench: {args.raster} with {args.model}, {args.repeats} repeats", file=sys.stderr)
    res = run_suite(spec, args.repeats, args.flat, runtimes=not args.no_runtimes, eta=not args.no_eta,
                    log=lambda s: print(s, file=sys.stderr, flush=True))
    text = markdown(res)
    print(text)
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2) + "\n")
    if args.markdown:
        Path(args.markdown).write_text(text)
    return 0
