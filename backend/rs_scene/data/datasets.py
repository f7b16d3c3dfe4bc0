"""Scene datasets held in memory as value-scaled float32 arrays.

* folder-per-class images (UC Merced / AID / NWPU-RESISC45 layout): ``root/<class>/<image>``, RGB, 8-bit.
* EuroSAT-MS (Helber et al. 2019): ``root/<Class>/<Class>_N.tif``, 13 Sentinel-2 L1C bands (order
  :data:`rs_scene.bands.EUROSAT_ORDER`), reflectance x 10000, 64 x 64 px at 10 m; ``split.csv`` when present.
* BigEarthNet-S2 v1 (Sumbul et al. 2019): ``root/<patch>/<patch>_Bxx.tif`` at 10/20/60 m plus
  ``<patch>_labels_metadata.json`` with CORINE labels (multi-label, 43 classes).
"""

from __future__ import annotations

import csv
import json
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import torch
from PIL import Image

from ..bands import EUROSAT_ORDER, S2_TEN, canonical_band
from ..errors import RSSceneError

IMAGE_EXT = {".tif", ".tiff", ".jpg", ".jpeg", ".png", ".bmp"}

#: The 43 CORINE land-cover classes of BigEarthNet v1, in the dataset's canonical order.
BIGEARTHNET_43 = [
    "Continuous urban fabric", "Discontinuous urban fabric", "Industrial or commercial units",
    "Road and rail networks and associated land", "Port areas", "Airports", "Mineral extraction sites",
    "Dump sites", "Construction sites", "Green urban areas", "Sport and leisure facilities",
    "Non-irrigated arable land", "Permanently irrigated land", "Rice fields", "Vineyards",
    "Fruit trees and berry plantations", "Olive groves", "Pastures",
    "Annual crops associated with permanent crops", "Complex cultivation patterns",
    "Land principally occupied by agriculture, with significant areas of natural vegetation",
    "Agro-forestry areas", "Broad-leaved forest", "Coniferous forest", "Mixed forest", "Natural grassland",
    "Moors and heathland", "Sclerophyllous vegetation", "Transitional woodland/shrub",
    "Beaches, dunes, sands", "Bare rock", "Sparsely vegetated areas", "Burnt areas", "Inland marshes",
    "Peatbogs", "Salt marshes", "Salines", "Intertidal flats", "Water courses", "Water bodies",
    "Coastal lagoons", "Estuaries", "Sea and ocean",
]


@dataclass
class SceneData:
    """Images ``x`` (N, C, H, W) float32 already divided by ``value_scale``;
    labels ``y`` (N,) long or (N, K)."""

    x: torch.Tensor
    y: torch.Tensor
    classes: list[str]
    bands: list[str]
    files: list[str]
    value_scale: float
    gsd: float
    task: str = "single-label"
    kind: str = "folder"
    split: list[str] = field(default_factory=list)  # "train"/"test" per item when the dataset defines one
    meta: dict[str, Any] = field(default_factory=dict)  # how it was read (polygons: input settings, warnings)

    def __len__(self) -> int:
        return len(self.files)

    def subset(self, idx: list[int] | np.ndarray) -> SceneData:
        idx_t = torch.as_tensor(np.asarray(idx, dtype=np.int64))
        return SceneData(self.x[idx_t], self.y[idx_t], self.classes, self.bands,
                         [self.files[i] for i in idx_t.tolist()], self.value_scale, self.gsd, self.task,
                         self.kind, [self.split[i] for i in idx_t.tolist()] if self.split else [])

    def class_counts(self) -> np.ndarray:
        if self.task == "multi-label":
            return self.y.sum(0).numpy().astype(int)
        return np.bincount(self.y.numpy(), minlength=len(self.classes))


def norm_name(name: str) -> str:
    """Class-name key ignoring case and separators: ``Dense Residential`` == ``denseresidential``."""
    return re.sub(r"[^a-z0-9]", "", name.lower())


def detect_kind(root: Path) -> str:
    if not root.is_dir():
        raise RSSceneError(f"dataset folder not found: {root}")
    subdirs = sorted(p for p in root.iterdir() if p.is_dir())
    if not subdirs:
        raise RSSceneError(f"dataset folder {root} has no class or patch sub-folders")
    first = subdirs[0]
    if any(f.name.endswith("_labels_metadata.json") for f in first.iterdir()):
        return "bigearthnet"
    tifs = sorted(first.glob("*.tif"))
    if tifs:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
            with rasterio.open(tifs[0]) as ds:
                if ds.count == 13:
                    return "eurosat"
    return "folder"


def open_dataset(root: str | Path, size: int | None = None, bands: list[str] | None = None) -> SceneData:
    """Load any supported dataset, recognised from its layout.

    ``size`` resizes images (folder/BigEarthNet).
    """
    root = Path(root)
    kind = detect_kind(root)
    if kind == "bigearthnet":
        return load_bigearthnet(root, bands or S2_TEN, size or 120)
    if kind == "eurosat":
        return load_eurosat(root, bands or S2_TEN)
    return load_folder(root, size or 256)


def _class_dirs(root: Path) -> list[Path]:
    dirs = sorted(p for p in root.iterdir() if p.is_dir())
    empty = [d.name for d in dirs if not any(f.suffix.lower() in IMAGE_EXT for f in d.iterdir())]
    if empty:
        raise RSSceneError(f"dataset {root}: class folder(s) with no images: {', '.join(empty)}")
    if len(dirs) < 2:
        raise RSSceneError(f"dataset {root} has {len(dirs)} class folder; at least 2 classes are needed")
    return dirs


def load_folder(root: Path, size: int = 256) -> SceneData:
    xs, ys, files = [], [], []
    dirs = _class_dirs(root)
    for ci, d in enumerate(dirs):
        for f in sorted(d.iterdir()):
            if f.suffix.lower() not in IMAGE_EXT:
                continue
            try:
                with Image.open(f) as im:
                    arr = np.asarray(im.convert("RGB").resize((size, size), Image.BILINEAR), dtype=np.float32)
            except OSError as exc:
                raise RSSceneError(f"cannot read image {f}: {exc}") from exc
            xs.append(arr.transpose(2, 0, 1) / 255.0)
            ys.append(ci)
            files.append(f"{d.name}/{f.name}")
    return SceneData(torch.from_numpy(np.stack(xs)), torch.tensor(ys), [d.name for d in dirs],
                     ["red", "green", "blue"], files, 255.0, 0.3048, kind="folder")


def load_eurosat(root: Path, bands: list[str]) -> SceneData:
    bands = [canonical_band(b) for b in bands]
    missing = [b for b in bands if b not in EUROSAT_ORDER]
    if missing:
        raise RSSceneError(f"EuroSAT-MS has no band(s) {', '.join(missing)}")
    idx = [EUROSAT_ORDER.index(b) + 1 for b in bands]
    split_of: dict[str, str] = {}
    if (root / "split.csv").exists():
        with open(root / "split.csv", newline="") as fh:
            split_of = {row["file"]: row["split"] for row in csv.DictReader(fh)}
    xs, ys, files, split = [], [], [], []
    dirs = _class_dirs(root)
    for ci, d in enumerate(dirs):
        for f in sorted(d.glob("*.tif")):
            with rasterio.open(f) as ds:
                if ds.count != 13:
                    raise RSSceneError(f"{f}: EuroSAT-MS images have 13 bands, this one has {ds.count}")
                xs.append(ds.read(idx).astype(np.float32) / 10000.0)
            ys.append(ci)
            files.append(f"{d.name}/{f.name}")
            split.append(split_of.get(f.name, ""))
    return SceneData(torch.from_numpy(np.stack(xs)), torch.tensor(ys), [d.name for d in dirs], bands, files,
                     10000.0, 10.0, kind="eurosat", split=split if all(split) else [])


def read_bigearthnet_patch(folder: Path, bands: list[str], size: int | None) -> np.ndarray:
    """One patch's bands as float32 reflectance; resampled to ``size`` (bilinear) when given."""
    out = []
    for b in bands:
        path = folder / f"{folder.name}_{b}.tif"
        if not path.exists():
            raise RSSceneError(f"BigEarthNet patch {folder.name}: band file {path.name} is missing")
        with warnings.catch_warnings(), rasterio.open(path) as ds:
            arr = ds.read(1).astype(np.float32) / 10000.0
        if size is not None and arr.shape != (size, size):
            t = torch.from_numpy(arr)[None, None]
            arr = torch.nn.functional.interpolate(t, size=(size, size), mode="bilinear",
                                                  align_corners=False)[0, 0].numpy()
        out.append(arr)
    return np.stack(out)


def bigearthnet_target(folder: Path) -> np.ndarray:
    """A patch's multi-hot vector over :data:`BIGEARTHNET_43`, from its labels JSON."""
    meta = folder / f"{folder.name}_labels_metadata.json"
    if not meta.exists():
        raise RSSceneError(f"BigEarthNet patch {folder}: {meta.name} is missing")
    labels = json.loads(meta.read_text())["labels"]
    unknown = [lab for lab in labels if lab not in BIGEARTHNET_43]
    if unknown:
        raise RSSceneError(f"{meta}: unknown label(s) {unknown}")
    target = np.zeros(len(BIGEARTHNET_43), dtype=np.float32)
    target[[BIGEARTHNET_43.index(lab) for lab in labels]] = 1
    return target


def load_bigearthnet(root: Path, bands: list[str], size: int = 120) -> SceneData:
    bands = [canonical_band(b) for b in bands]
    xs, ys, files = [], [], []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        target = bigearthnet_target(folder)
        xs.append(read_bigearthnet_patch(folder, bands, size))
        ys.append(target)
        files.append(folder.name)
    return SceneData(torch.from_numpy(np.stack(xs)), torch.from_numpy(np.stack(ys)), list(BIGEARTHNET_43),
                     bands, files, 10000.0, 10.0, task="multi-label", kind="bigearthnet")


def heldout_indices(data: SceneData) -> tuple[list[int], list[int], str]:
    """The train/test split the default models use: the dataset's own split file when it has one, else every
    third image of each class (sorted by file name) held out. Returns ``(train, test, rule)``."""
    if data.split:
        train = [i for i, s in enumerate(data.split) if s == "train"]
        test = [i for i, s in enumerate(data.split) if s == "test"]
        return train, test, "split.csv of the dataset (its 'test' rows held out)"
    train, test = [], []
    per_class: dict[int, int] = {}
    for i in range(len(data)):
        key = int(data.y[i]) if data.task == "single-label" else 0
        k = per_class.get(key, 0)
        (test if k % 3 == 2 else train).append(i)
        per_class[key] = k + 1
    return train, test, "every third image of each class, in file-name order (the 3rd, 6th, ...), held out"


def match_classes(data_classes: list[str], model_classes: list[str], where: str) -> list[int]:
    """Index of each dataset class in the model's classes, ignoring case and separators."""
    keys = {norm_name(c): i for i, c in enumerate(model_classes)}
    out, missing = [], []
    for c in data_classes:
        if norm_name(c) in keys:
            out.append(keys[norm_name(c)])
        else:
            missing.append(c)
    if missing:
        raise RSSceneError(f"{where}: class folder(s) {', '.join(missing)} are not classes of the model "
                           f"({', '.join(model_classes)})")
    return out
