"""Retrain the two shipped default models from ../shared/data (``make models``).

aerial-rgb         EfficientNet-Lite0 (ImageNet init) fine-tuned on UC Merced, 21 classes.
sentinel2-eurosat  EfficientNet-Lite0 (ImageNet init, first conv adapted to 10 bands) fine-tuned on
                   EuroSAT-MS.
Both hold out a split the model never sees in training and record its metrics in the card.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rs_scene.bands import S2_TEN
from rs_scene.engine.train import TrainParams, train_model
from rs_scene.engine.trainer import TrainSettings

ZOO = Path(__file__).resolve().parents[1] / "rs_scene" / "zoo"


def jobs(data_root: Path, epochs: int) -> dict[str, TrainParams]:
    return {
        "aerial-rgb": TrainParams(
            out=str(ZOO / "aerial-rgb.pt"), name="aerial-rgb", data=str(data_root / "ucmerced"),
            image_size=256, input_size=224,
            options={"backbone": "efficientnet_lite0", "init": "imagenet", "mode": "fine-tune",
                     "epochs": epochs, "batch_size": 24, "lr": 1e-3, "warmup_epochs": 2,
                     "batchnorm": "train"},  # the shipped file's recipe (before frozen became the default)
            description="UC Merced land use (21 classes), 1 ft (0.3 m) RGB aerial imagery, 256 px tiles",
        ),
        "sentinel2-eurosat": TrainParams(
            out=str(ZOO / "sentinel2-eurosat.pt"), name="sentinel2-eurosat",
            data=str(data_root / "eurosat_ms"),
            bands=list(S2_TEN), input_size=128,
            options={"backbone": "efficientnet_lite0", "init": "imagenet", "mode": "fine-tune",
                     "epochs": epochs, "batch_size": 24, "lr": 1e-3, "warmup_epochs": 2,
                     "batchnorm": "train"},  # the shipped file's recipe (before frozen became the default)
            description="EuroSAT land cover (10 classes) from the ten Sentinel-2 bands L1C and L2A share, "
                        "reflectance x 10000, 64 px tiles at 10 m",
        ),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2].parent / "shared" / "data"))
    ap.add_argument("--only", choices=["aerial-rgb", "sentinel2-eurosat"])
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    for name, params in jobs(Path(args.data), args.epochs).items():
        if args.only and name != args.only:
            continue
        params.settings = TrainSettings(seed=args.seed)

        def show(ev: dict, name: str = name) -> None:
            if ev.get("event") == "epoch":
                print(f"[{name}] epoch {ev['epoch']}/{ev['epochs']} loss {ev['loss']:.4f} "
                      f"lr {ev['lr']:.2e} {ev['seconds']}s", flush=True)

        card, metrics = train_model(params, progress=show)
        print(json.dumps({"model": name, "heldout_overall_accuracy": metrics.get("overall_accuracy"),
                          "n_heldout": card.training["n_heldout"]}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
