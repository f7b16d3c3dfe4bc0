"""Model file = weights + model card. The card (JSON) says everything needed to use the weights on a raster.

A model file is a ``torch.save`` of ``{"format", "card" (JSON text), "state_dict"}`` and is always loaded with
``weights_only=True``, so a model file can never run code.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import platform
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from .errors import RSSceneError

FORMAT = "rs-scene-model/1"

#: Distinct colours for up to 21 classes (QGIS-friendly hex), cycled beyond that.
PALETTE = [
    "#e6194b", "#3cb44b", "#ffe119", "#4363d8", "#f58231", "#911eb4", "#46f0f0", "#f032e6", "#bcf60c",
    "#fabebe", "#008080", "#e6beff", "#9a6324", "#fffac8", "#800000", "#aaffc3", "#808000", "#ffd8b1",
    "#000075", "#808080", "#1b1b1b",
]


@dataclass
class ModelCard:
    """Everything a model needs besides its weights. Stored as JSON inside the model file."""

    name: str
    classes: list[dict[str, str]]
    bands: list[str]
    method: str = "pretrain"
    architecture: str = "efficientnet_lite0"
    task: str = "single-label"  # or "multi-label"
    threshold: float = 0.5  # multi-label decision threshold on sigmoid scores
    value_scale: float = 255.0  # raw raster values are divided by this (255 for 8-bit, 10000 for S2 L1C)
    mean: list[float] = field(default_factory=list)  # per band, after dividing by value_scale
    std: list[float] = field(default_factory=list)
    tile_size: int = 256  # tile edge in pixels at ``gsd``
    stride: int | None = None  # default stride in pixels at ``gsd`` (None = tile_size, no overlap)
    input_size: int = 256  # the network's input edge; tiles are resized to it
    gsd: float = 0.3  # metres per pixel of the training imagery
    description: str = ""
    training: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    method_config: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)

    @property
    def class_names(self) -> list[str]:
        return [c["name"] for c in self.classes]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelCard:
        known = set(cls.__dataclass_fields__)
        missing = [k for k in ("name", "classes", "bands") if k not in data]
        if missing:
            raise RSSceneError(f"model card lacks field(s): {', '.join(missing)}")
        return cls(**{k: v for k, v in data.items() if k in known})

    def validate(self) -> None:
        if not self.classes:
            raise RSSceneError(f"model card '{self.name}' has no classes")
        n = len(self.bands)
        if len(self.mean) != n or len(self.std) != n:
            raise RSSceneError(f"model card '{self.name}': mean/std must have one value per band ({n})")
        if self.task not in ("single-label", "multi-label"):
            raise RSSceneError(f"model card '{self.name}': unknown task '{self.task}'")


def make_classes(names: list[str]) -> list[dict[str, str]]:
    return [{"name": n, "color": PALETTE[i % len(PALETTE)]} for i, n in enumerate(names)]


def runtime_versions() -> dict[str, str]:
    import numpy
    import rasterio

    from . import __version__

    return {
        "rs_scene": __version__,
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "rasterio": rasterio.__version__,
        "gdal": rasterio.__gdal_version__,
        "python": platform.python_version(),
    }


def save_model(path: str | os.PathLike[str], card: ModelCard, state_dict: dict[str, torch.Tensor]) -> Path:
    """Write a model file atomically (temporary file in the same folder, then rename)."""
    card.validate()
    if not card.versions:
        card.versions = runtime_versions()
    path = Path(path)
    if not path.parent.exists():
        raise RSSceneError(f"cannot write model: folder {path.parent} does not exist")
    blob = {"format": FORMAT, "card": json.dumps(card.to_dict()),
            "state_dict": {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}}
    from .io.outputs import release_temp, temp_path

    tmp = temp_path(path)  # recognisable; a killed run's is removed by the next save to the same file
    try:
        torch.save(blob, tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    finally:
        release_temp(tmp)
    return path


def _load_blob(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise RSSceneError(f"model file not found: {path}")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except pickle.UnpicklingError as exc:
        raise RSSceneError(
            f"refusing to load {path}: it is not a plain weights file (it contains pickled code or objects, "
            f"which weights_only loading forbids): {str(exc).splitlines()[0]}"
        ) from exc
    except (RuntimeError, EOFError, OSError) as exc:
        raise RSSceneError(f"{path} is not a readable model file: {exc}") from exc
    if not isinstance(blob, dict) or blob.get("format") != FORMAT or "card" not in blob:
        raise RSSceneError(f"{path} is not an RS Scene model file (no '{FORMAT}' card)")
    return blob


def _card_of(blob: dict[str, Any], path: str | os.PathLike[str]) -> ModelCard:
    try:
        data = json.loads(blob["card"])
    except (json.JSONDecodeError, TypeError, ValueError, RecursionError) as exc:
        raise RSSceneError(f"{path}: the model card is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise RSSceneError(f"{path}: the model card must be a JSON object, not {type(data).__name__}")
    try:
        return ModelCard.from_dict(data)
    except TypeError as exc:
        raise RSSceneError(f"{path}: the model card does not fit the card's fields: {exc}") from exc


def read_card(path: str | os.PathLike[str]) -> ModelCard:
    return _card_of(_load_blob(Path(path)), path)


def load_model_file(path: str | os.PathLike[str]) -> tuple[ModelCard, dict[str, torch.Tensor]]:
    blob = _load_blob(Path(path))
    card = _card_of(blob, path)
    if not isinstance(blob.get("state_dict"), dict):
        raise RSSceneError(f"{path}: the model file has no weights (state_dict)")
    return card, blob["state_dict"]


def file_sha256(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
