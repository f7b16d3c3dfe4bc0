"""``rs-scene train`` and ``rs-scene methods``, registered by :mod:`rs_scene.cli` via ``register(sub)``."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import typing
from typing import Any

from .errors import RSSceneError
from .io.outputs import check_outputs
from .options import TRAIN_RULES, check_method_options, check_numbers, cli_label, zero_means_default

#: Flags that are method options when the chosen method has them.
OPTION_FLAGS = ("backbone", "init", "mode", "epochs", "batch_size", "balance", "teacher", "lr")


def _coerce(text: str, kind: Any, key: str) -> Any:
    if kind is bool:
        if text.lower() in ("1", "true", "yes", "on"):
            return True
        if text.lower() in ("0", "false", "no", "off"):
            return False
        raise RSSceneError(f"--option {key}={text}: expected true or false")
    try:
        return kind(text)
    except (TypeError, ValueError) as exc:
        raise RSSceneError(f"--option {key}={text}: expected a {getattr(kind, '__name__', kind)}") from exc


def method_options(args: argparse.Namespace) -> dict[str, Any]:
    """The method's options from the named flags and ``--option key=value``; a flag the method does not take
    is an error that names the method's options."""
    from .methods import get_method

    cls = get_method(args.method)
    hints = typing.get_type_hints(cls.Config)
    fields = {f.name for f in dataclasses.fields(cls.Config)}
    options: dict[str, Any] = {}
    for key in OPTION_FLAGS:
        value = getattr(args, key, None)
        if value is None:
            continue
        if key not in fields:
            raise RSSceneError(
                f"method '{args.method}' has no option --{key.replace('_', '-')}; "
                f"its options: {', '.join(sorted(fields))}"
            )
        options[key] = value
    for item in args.option or []:
        if "=" not in item:
            raise RSSceneError(f"--option '{item}': expected key=value")
        key, text = (s.strip() for s in item.split("=", 1))
        key = key.replace("-", "_")
        if key not in fields:
            raise RSSceneError(
                f"method '{args.method}' has no option '{key}'; its options: {', '.join(sorted(fields))}"
            )
        options[key] = _coerce(text, hints.get(key, str), key)
    return options


def load_training_data(args: argparse.Namespace) -> Any:
    """``--data`` (folder / EuroSAT / BigEarthNet) or ``--raster`` + ``--labels`` + ``--class-field``."""
    bands = [b.strip() for b in args.bands.split(",")] if args.bands else None
    if args.raster or args.labels:
        if not (args.raster and args.labels and args.class_field):
            raise RSSceneError("polygon training needs --raster, --labels and --class-field together")
        if args.data:
            raise RSSceneError("give either --data or --raster/--labels, not both")
        from .cli import _gsd
        from .data.polygons import InputOptions, PolygonSampling, load_polygons

        sampling = PolygonSampling(
            tile_size=args.tile_size or 64,
            stride=args.stride,
            min_overlap=args.min_overlap,
            block=args.block,
            val_fraction=0.2 if args.val_fraction is None else args.val_fraction,
            test_fraction=args.test_fraction,
            seed=args.seed,
        )
        options = InputOptions(bands=args.bands, input_scale=args.input_scale, nodata=args.nodata,
                               gsd=_gsd(args.gsd))
        return load_polygons(args.raster, args.labels, args.class_field, sampling, options)
    if not args.data:
        raise RSSceneError("no training data: give --data DIR, or --raster, --labels and --class-field")
    from .data.datasets import detect_kind, open_dataset

    if args.method == "bwms" and detect_kind(__import__("pathlib").Path(args.data)) == "bigearthnet":
        from .methods.bwms import load_bigearthnet_native

        return load_bigearthnet_native(args.data, bands)
    return open_dataset(args.data, size=args.image_size, bands=bands)


class EpochPrinter:
    """A tqdm bar over each epoch's steps and one line per epoch with its loss and validation metric."""

    def __init__(self, quiet: bool = False) -> None:
        self.bar: Any = None
        self.quiet = quiet

    def __call__(self, ev: dict[str, Any]) -> None:
        if ev["event"] == "step" and not self.quiet:
            from tqdm import tqdm

            if self.bar is None:
                self.bar = tqdm(
                    total=ev["steps"],
                    file=sys.stderr,
                    leave=False,
                    desc=f"{ev['stage']} {ev['epoch']}/{ev['epochs']}",
                )
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{ev['loss']:.4f}")
        elif ev["event"] == "epoch":
            self.close()
            val = f"  val {ev['val']:.4f}" if "val" in ev else ""
            print(
                f"[{ev['stage']}] epoch {ev['epoch']}/{ev['epochs']}  loss {ev['loss']:.4f}{val}  "
                f"lr {ev['lr']:.2e}  {ev['seconds']:.1f}s",
                file=sys.stderr,
                flush=True,
            )
        elif ev["event"] == "early_stop":
            print(f"[{ev['stage']}] early stop after epoch {ev['epoch']}", file=sys.stderr)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def cmd_train(args: argparse.Namespace) -> int:
    from .engine.train import TrainParams, train_model
    from .engine.trainer import TrainSettings
    from .methods import create_method, get_method

    zero_ok = zero_means_default(get_method(args.method).Config)  # pretrain: --lr 0 = the paper's rate
    check_numbers(vars(args), {k: r for k, r in TRAIN_RULES.items() if not (k in zero_ok and
                                                                           getattr(args, k, None) == 0)},
                  cli_label)
    options = method_options(args)
    check_method_options(options, lambda key: f"option '{key}'", zero_ok)
    inputs = (args.raster, args.labels, options.get("init"), options.get("teacher"))
    check_outputs({"--out": args.out}, inputs, args.overwrite)
    data = load_training_data(args)
    for warning in data.meta.get("warnings", []):  # the range check classify makes, before any training
        print(f"WARNING: {warning}", file=sys.stderr, flush=True)
    # options are checked before any training: unknown ones, bad choices, a missing teacher, ...
    create_method(args.method, options, num_classes=len(data.classes), bands=data.bands, task=data.task)
    params = TrainParams(
        out=args.out,
        method=args.method,
        data=args.data or args.raster,
        name=args.name,
        options=options,
        input_size=args.input_size,
        val_fraction=0.0 if args.raster else (0.1 if args.val_fraction is None else args.val_fraction),
        settings=TrainSettings(
            device=args.device, seed=args.seed, patience=args.patience, resume=args.resume
        ),
    )
    printer = EpochPrinter(args.quiet)
    try:
        card, metrics = train_model(params, data=data, progress=printer)
    finally:
        printer.close()
    summary = {
        "model": args.out,
        "method": card.method,
        "architecture": card.architecture,
        "classes": len(card.classes),
        "heldout": card.metrics.get("heldout", {}),
        "validation": card.metrics.get("validation", {}),
        "training_tiles": card.metrics.get("training", {}),
        "reported": card.metrics.get("reported"),
        "heldout_rule": card.training.get("heldout_rule"),
        "warnings": metrics.get("warnings", []),
        "seconds": card.training.get("seconds"),
        "stages": card.training.get("stages"),  # epochs planned (min_steps may raise them), run and kept
    }
    if args.json:
        print(json.dumps(summary))
        return 0
    print(
        f"wrote {args.out} ({card.method}/{card.architecture}, {len(card.classes)} classes, "
        f"{card.training['n_train']} training images, {card.training['seconds']} s)"
    )
    for key in ("heldout", "validation", "training"):
        print_figures(card.metrics.get(key) or {})
    for warning in metrics.get("warnings", []):
        print(f"WARNING: {warning}", file=sys.stderr)
    return 0


def print_figures(m: dict[str, Any]) -> None:
    """A labelled figure set: OA, balanced accuracy and per-class recall (or the multi-label figures)."""
    if not m:
        return
    head = [f"{k} {m[k]:.4f}" for k in ("overall_accuracy", "balanced_accuracy", "sample_f1",
                                        "sample_accuracy", "hamming_loss", "ranking_loss") if k in m]
    print(f"  {m.get('label', '')} (n={m.get('n')}): {', '.join(head)}")
    if "balanced_accuracy" in m:
        print("    recall: " + ", ".join(f"{c} {'-' if r is None else f'{r:.2f}'}"
                                       for c, r in m["per_class"].items()))


def cmd_methods(args: argparse.Namespace) -> int:
    from .methods import list_methods

    methods = list_methods()
    if args.json:
        print(json.dumps(methods, indent=2))
        return 0
    for m in methods:
        print(f"{m['name']}: {m['description']}  [paper: {m['paper']}]")
        for o in m["options"]:
            choices = f" {{{'|'.join(map(str, o['choices']))}}}" if o["choices"] else ""
            print(f"    {o['name']:<24} {o['type']:<6} default {o['default']!r}{choices}  {o['help']}")
    return 0


def add_train_parser(sub: Any) -> None:
    p = sub.add_parser("train", help="train a model file with one of the methods (see `rs-scene methods`)")
    p.add_argument("--method", default="pretrain", help="pretrain, ddrl-am, pskd, scl, bwms")
    p.add_argument("--data", help="folder-per-class, EuroSAT-MS or BigEarthNet folder")
    p.add_argument("--raster", help="raster to cut training tiles from (with --labels and --class-field)")
    p.add_argument("--labels", help="vector file of labelled polygons (any OGR format)")
    p.add_argument("--class-field", help="attribute of --labels holding the class")
    p.add_argument("--tile-size", type=int, help="polygon training: tile edge in raster pixels (default 64)")
    p.add_argument(
        "--stride", type=int, help="polygon training: grid step in raster pixels (default: tile size)"
    )
    p.add_argument(
        "--min-overlap", type=float, default=0.5, help="polygon training: share of a tile a class must cover"
    )
    p.add_argument("--block", type=int, default=4, help="polygon training: spatial block edge, in tiles")
    p.add_argument("--input-scale", "--value-scale", dest="input_scale", type=float,
                   help="polygon training: divide raw values by this (as classify; default by dtype and the "
                   "bands' declared scaling)")
    p.add_argument("--nodata", type=float, help="polygon training: raw value of missing pixels (where every "
                   "band holds it), besides the raster's own")
    p.add_argument("--gsd", help="polygon training: metres per pixel to cut tiles at, or 'native' (default)")
    p.add_argument("--test-fraction", type=float, default=0.2, help="polygon training: share of tiles in "
                   "held-out blocks, evaluated once after training (made when every class lies in 3+ blocks)")
    p.add_argument("--out", required=True, help="model file to write (.pt)")
    p.add_argument("--name", help="model name in its card (default: the file name)")
    p.add_argument("--backbone", help="backbone architecture (see `rs-scene models --backbones`)")
    p.add_argument("--init", help="imagenet, scratch, or a model name / file (in-domain pre-training); "
                   "pretrain's default 'auto': a shipped model with the raster's bands, else imagenet")
    p.add_argument("--mode", help="pretrain: fine-tune or linear-probe")
    p.add_argument("--epochs", type=int, help="epochs (per stage for two-stage methods)")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float, help="learning rate")
    p.add_argument("--balance", help="scl: cb (class-balanced sampling) or csce (cost-sensitive CE)")
    p.add_argument("--teacher", help="pskd: the teacher model file")
    p.add_argument("--option", action="append", metavar="KEY=VALUE", help="any method option (repeatable)")
    p.add_argument(
        "--bands", help="bands to train on, e.g. B02,B03,B04,B08 (polygons: as classify takes them, the "
        "names of the raster's bands in order, B02=1,B03=2,... or 3,2,1)"
    )
    p.add_argument(
        "--image-size", type=int, help="resize dataset images to this on loading (folder datasets)"
    )
    p.add_argument("--input-size", type=int, help="network input edge (default: the image size; raster tiles "
                   "from pretrained weights at least 128)")
    p.add_argument(
        "--val-fraction",
        type=float,
        help="share of the training part kept for per-epoch validation and early stopping (default 0.1; "
        "polygons: share of tiles in spatially blocked validation blocks, default 0.2)",
    )
    p.add_argument("--patience", type=int, default=0, help="early stopping: epochs without validation gain")
    p.add_argument("--resume", action="store_true", help="continue from OUT.ckpt")
    p.add_argument("--overwrite", action="store_true",
                   help="replace --out even if it is not an RS Scene model file")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=cmd_train)


def register(sub: Any) -> None:
    add_train_parser(sub)
    p = sub.add_parser("methods", help="the training methods and their options")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_methods)
