"""Band names: Sentinel-2 (B01..B12, B8A) and aerial (red, green, blue, nir), and matching a raster's bands
to the bands a model was trained on."""

from __future__ import annotations

import re
from collections.abc import Sequence

from .errors import RSSceneError

S2_BANDS = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12"]
#: Native ground sampling distance of each Sentinel-2 band, metres.
S2_RESOLUTION = {
    "B01": 60, "B02": 10, "B03": 10, "B04": 10, "B05": 20, "B06": 20, "B07": 20,
    "B08": 10, "B8A": 20, "B09": 60, "B10": 60, "B11": 20, "B12": 20,
}
#: The ten bands L1C and L2A products share at 10 and 20 m.
S2_TEN = ["B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12"]
#: Band order of the EuroSAT-MS GeoTIFFs (Helber et al. 2019).
EUROSAT_ORDER = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B09", "B10", "B11", "B12", "B8A"]
AERIAL = ["red", "green", "blue", "nir"]
#: The Sentinel-2 band that stands in for an aerial colour band, and back.
AERIAL_TO_S2 = {"red": "B04", "green": "B03", "blue": "B02", "nir": "B08"}
S2_TO_AERIAL = {v: k for k, v in AERIAL_TO_S2.items()}

_ALIASES = {"r": "red", "g": "green", "b": "blue", "n": "nir", "near-infrared": "nir", "nearinfrared": "nir"}


def canonical_band(name: str) -> str:
    """Canonical spelling of a band name: ``b8`` -> ``B08``, ``8a`` -> ``B8A``, ``Red`` -> ``red``."""
    raw = name.strip()
    low = raw.lower().replace(" ", "").replace("_", "")
    if low in AERIAL:
        return low
    if low in _ALIASES:
        return _ALIASES[low]
    m = re.fullmatch(r"(?:band|b)?0*(\d{1,2})(a?)", low)
    if m and (low.startswith("b") and not low.startswith("band")):
        num, a = int(m.group(1)), m.group(2)
        return f"B{num}A" if a else f"B{num:02d}"
    m = re.fullmatch(r"b?0*8a", low)
    if m:
        return "B8A"
    return raw


def _lookup(wanted: str, names: Sequence[str | None]) -> int | None:
    canon = [canonical_band(n) if n else None for n in names]
    if wanted in canon:
        return canon.index(wanted)
    alt = AERIAL_TO_S2.get(wanted) or S2_TO_AERIAL.get(wanted)
    if alt and alt in canon:
        return canon.index(alt)
    return None


def parse_band_option(option: str, raster_count: int) -> dict[str, int] | list[str]:
    """Parse ``--bands``.

    Three forms: ``red=1,green=2,blue=3`` (model band -> 1-based raster band), ``B02,B03,...`` (the names
    of the raster's bands 1..n, in order) or ``3,2,1`` (raster bands to feed, in the model's band order).
    """
    parts = [p.strip() for p in option.split(",") if p.strip()]
    if not parts:
        raise RSSceneError("--bands is empty")
    if all("=" in p for p in parts):
        mapping: dict[str, int] = {}
        for p in parts:
            key, val = p.split("=", 1)
            mapping[canonical_band(key)] = _band_index(val, raster_count)
        return mapping
    if all(p.isdigit() for p in parts):
        return {f"#{i}": _band_index(p, raster_count) for i, p in enumerate(parts)}
    if len(parts) != raster_count:
        raise RSSceneError(
            f"--bands names {len(parts)} bands but the raster has {raster_count}; "
            "name every raster band in order or use the form model_band=raster_index"
        )
    return [canonical_band(p) for p in parts]


def _band_index(text: str, raster_count: int) -> int:
    try:
        idx = int(text)
    except ValueError as exc:
        raise RSSceneError(f"--bands: '{text}' is not a band number") from exc
    if not 1 <= idx <= raster_count:
        raise RSSceneError(f"--bands: band {idx} does not exist; the raster has bands 1..{raster_count}")
    return idx


def resolve_bands(
    model_bands: Sequence[str],
    raster_names: Sequence[str | None],
    option: str | None = None,
    source: str = "raster",
) -> list[int]:
    """Return the 1-based raster band indices that feed each model band, in the model's order.

    ``raster_names`` are the raster's own band names (descriptions or colour interpretation), ``None`` where
    unknown. ``option`` is the user's ``--bands``. Raises :class:`RSSceneError` naming the missing bands.
    """
    count = len(raster_names)
    names: Sequence[str | None] = raster_names
    if option:
        parsed = parse_band_option(option, count)
        if isinstance(parsed, dict):
            if all(k.startswith("#") for k in parsed):
                idx = list(parsed.values())
                if len(idx) != len(model_bands):
                    raise RSSceneError(
                        f"--bands lists {len(idx)} raster bands but the model needs {len(model_bands)}: "
                        + ", ".join(model_bands)
                    )
                return idx
            out, missing = [], []
            for band in model_bands:
                hit = parsed.get(band)
                if hit is None:
                    alt = AERIAL_TO_S2.get(band) or S2_TO_AERIAL.get(band)
                    hit = parsed.get(alt) if alt else None
                if hit is None:
                    missing.append(band)
                out.append(hit)
            if missing:
                raise RSSceneError(f"--bands does not map the model band(s) {', '.join(missing)}")
            return out  # type: ignore[return-value]
        names = parsed
    out, missing = [], []
    for band in model_bands:
        pos = _lookup(band, names)
        if pos is None:
            missing.append(band)
        else:
            out.append(pos + 1)
    if missing:
        known = ", ".join(n or "?" for n in names)
        raise RSSceneError(
            f"{source}: cannot find band(s) {', '.join(missing)} needed by the model (model bands: "
            f"{', '.join(model_bands)}; the raster's {count} band(s) are named: {known}). "
            "Say which raster band is which with --bands, e.g. --bands "
            + ",".join(f"{b}={i + 1}" for i, b in enumerate(model_bands[:count]))
        )
    return out
