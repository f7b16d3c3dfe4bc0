"""Settings derived from a layer and a model, each time either changes: band mapping, input scale, GSD, tiles,
extra nodata and edge handling; and the order in which models fit a layer's bands.

Nothing here is carried over from a previous layer: a Sentinel-2 run's band names, scale and stride must not
be reused on a NAIP image. The dialogs remember what the user edits, per layer (see ``ClassifyDialog``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from qgis.core import Qgis, QgsRasterLayer, QgsUnitTypes

from .bands import AERIAL, auto_mapping, missing_bands
from .pixels import gdal_band_names, user_nodata

RANGE = 4.0  # as the service's scale and resolution warnings: beyond 4x off, a setting is derived
SAMPLE = 128  # the layer is sampled at SAMPLE x SAMPLE pixels over its extent to derive the input scale
EDGE_MODES = ("shift", "pad", "drop")
GENERIC = re.compile(r"(?i)(band)?\s*\d+")  # "Band 1", "1": a position, not a name


@dataclass
class RunSettings:
    """What the Classify dialog (and Processing) fills for one layer and model."""

    mapping: dict[str, int | None] = field(default_factory=dict)
    input_scale: float = 0.0  # 0 = automatic (the service's default for the data type)
    gsd: str | float = "model"  # "model", "native" or metres
    tile_size: int = 0  # 0 = the model's
    stride: int = 0
    nodata: float | None = None  # extra nodata value (where every band holds it)
    edge: str = "shift"
    notes: list[str] = field(default_factory=list)  # why a value was derived, for the dialog's info line


def plain_names(names: Sequence[str | None], byte: bool) -> list[str | None]:
    """Band names that say what a band is: generic ones ("Band 1") dropped; unnamed 8-bit 3- or 4-band layers
    read as red, green, blue(, nir), as the service assumes."""
    out = [None if n is None or GENERIC.fullmatch(n.strip()) else n for n in names]
    if byte and not any(out) and len(out) in (3, 4):
        return list(AERIAL[: len(out)])
    return out


def layer_mapping(card: dict[str, Any], names: Sequence[str | None], count: int,
                  byte: bool = False) -> tuple[dict[str, int | None], str]:
    """Model band -> layer band by name; unnamed layers with exactly the model's band count are taken in the
    model's order (said in the note, so the user can check)."""
    bands = list(card.get("bands", []))
    names = plain_names(names, byte)
    mapping = auto_mapping(bands, names)
    if missing_bands(mapping) and not any(names) and count == len(bands):
        return {b: i for i, b in enumerate(bands, start=1)}, (
            f"the layer's {count} bands have no names: taken in the model's order ({', '.join(bands)})")
    return mapping, ""


def _layer_bands(layer: QgsRasterLayer) -> tuple[list[str | None], int, bool]:
    return gdal_band_names(layer), layer.bandCount(), layer.dataProvider().dataType(1) == Qgis.Byte


def fit_key(card: dict[str, Any], layer: QgsRasterLayer) -> tuple[int, int, str]:
    """Smaller is a better fit: model bands the layer lacks, then the band-count difference."""
    names, count, byte = _layer_bands(layer)
    mapping, _ = layer_mapping(card, names, count, byte)
    return len(missing_bands(mapping)), abs(len(card.get("bands", [])) - count), card.get("name", "")


def order_models(cards: Sequence[dict[str, Any]], layer: QgsRasterLayer | None) -> list[dict[str, Any]]:
    """Models best fitting the layer's bands first (a 10-band Sentinel-2 layer never starts on aerial-rgb)."""
    if not isinstance(layer, QgsRasterLayer):
        return list(cards)
    return sorted(cards, key=lambda c: fit_key(c, layer))


def layer_gsd_m(layer: QgsRasterLayer) -> float | None:
    """The layer's pixel width in metres (degrees converted at the equator), None without a native size."""
    if layer.width() <= 0 or layer.extent().width() <= 0:
        return None
    factor = QgsUnitTypes.fromUnitToUnitFactor(layer.crs().mapUnits(), QgsUnitTypes.DistanceMeters)
    if not math.isfinite(factor) or factor <= 0:
        return None
    return layer.rasterUnitsPerPixelX() * factor


def automatic_divisor(layer: QgsRasterLayer, card: dict[str, Any]) -> float:
    """What the service divides by when the input scale is automatic (its ``default_divisor``)."""
    dtype = layer.dataProvider().dataType(1)
    if dtype in (Qgis.Float32, Qgis.Float64):
        return 1.0
    if dtype == Qgis.Byte:
        return 255.0
    return float(card.get("value_scale") or 10000.0)


def band_means(layer: QgsRasterLayer, bands: Sequence[int], nodata: float | None) -> list[float] | None:
    """Mean value of each of ``bands`` over a SAMPLE x SAMPLE sampling of the extent, nodata left out."""
    provider = layer.dataProvider()
    if layer.providerType() != "gdal" or not bands:
        return None
    stack = []
    for b in bands:
        block = provider.block(b, layer.extent(), SAMPLE, SAMPLE)
        if not block.isValid():
            return None
        dtype = {Qgis.Byte: np.uint8, Qgis.UInt16: np.uint16, Qgis.Int16: np.int16, Qgis.UInt32: np.uint32,
                 Qgis.Int32: np.int32, Qgis.Float32: np.float32, Qgis.Float64: np.float64}.get(block.dataType())
        if dtype is None:
            return None
        arr = np.frombuffer(bytes(block.data()), dtype=dtype).astype(np.float64).reshape(-1)
        if provider.sourceHasNoDataValue(b):
            arr = np.where(arr == provider.sourceNoDataValue(b), np.nan, arr)
        stack.append(arr)
    data = np.stack(stack)
    if nodata is not None:
        data[:, np.all(data == nodata, axis=0)] = np.nan
    valid = np.all(np.isfinite(data), axis=0)
    if valid.sum() < 16:
        return None
    return [float(v) for v in data[:, valid].mean(axis=1)]


def derive_input_scale(layer: QgsRasterLayer, card: dict[str, Any], mapping: dict[str, int | None],
                       nodata: float | None) -> tuple[float, str]:
    """0 (automatic) when the service's default puts the layer's values within 4x of what the model was
    trained on, else the power-of-ten scale that does (the demo scene's x1000 reflectance: 1000)."""
    trained = card.get("mean") or []
    pairs = [(idx, m) for (band, idx), m in zip(mapping.items(), trained) if idx is not None and m > 1e-3]
    means = band_means(layer, [idx for idx, _ in pairs], nodata)
    if not means:
        return 0.0, ""
    auto = automatic_divisor(layer, card)
    ratio = float(np.median([v / auto / m for v, (_, m) in zip(means, pairs)]))
    if ratio <= 0 or 1 / RANGE <= ratio <= RANGE:
        return 0.0, ""
    scale = auto * 10 ** round(math.log10(ratio))
    return scale, (f"input scale {scale:g}: divided by {auto:g} (automatic) the layer's values average "
                   f"{ratio:.2g} times the model's training values")


def derive(layer: QgsRasterLayer, card: dict[str, Any]) -> RunSettings:
    """The settings for ``layer`` and ``card``, derived from the layer alone (never from an earlier run)."""
    mapping, note = layer_mapping(card, *_layer_bands(layer))
    out = RunSettings(mapping=mapping, nodata=user_nodata(layer), notes=[note] if note else [])
    out.input_scale, note = derive_input_scale(layer, card, mapping, out.nodata)
    if note:
        out.notes.append(note)
    gsd, model_gsd = layer_gsd_m(layer), float(card.get("gsd") or 0)
    if gsd and model_gsd and gsd / model_gsd > RANGE:
        out.gsd = "native"
        out.notes.append(f"GSD native: the layer's {gsd:.3g} m pixels are {gsd / model_gsd:.0f} times coarser "
                         f"than the model's {model_gsd:g} m")
    return out
