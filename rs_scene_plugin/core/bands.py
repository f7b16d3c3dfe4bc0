"""Match a layer's bands to a model's bands by name (pure Python: the dialog, Processing and tests share it).

The service does the same matching; doing it here lets the dialog show the mapping and name missing bands
before anything runs.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

AERIAL = ("red", "green", "blue", "nir")
_ALIASES = {"r": "red", "g": "green", "b": "blue", "n": "nir", "nearinfrared": "nir", "near-infrared": "nir"}
AERIAL_TO_S2 = {"red": "B04", "green": "B03", "blue": "B02", "nir": "B08"}
S2_TO_AERIAL = {v: k for k, v in AERIAL_TO_S2.items()}


def canonical(name: str | None) -> str | None:
    """``b8`` -> ``B08``, ``8a`` / ``B8a`` -> ``B8A``, ``Red`` -> ``red``; anything else unchanged."""
    if not name:
        return None
    low = name.strip().lower().replace(" ", "").replace("_", "")
    if low in AERIAL:
        return low
    if low in _ALIASES:
        return _ALIASES[low]
    if re.fullmatch(r"b?0*8a", low):
        return "B8A"
    m = re.fullmatch(r"b0*(\d{1,2})", low)
    return f"B{int(m.group(1)):02d}" if m else name.strip()


def auto_mapping(model_bands: Sequence[str], layer_names: Sequence[str | None]) -> dict[str, int | None]:
    """Model band -> 1-based layer band found by name (or the aerial/Sentinel-2 equivalent), None if absent."""
    canon = [canonical(n) for n in layer_names]
    out: dict[str, int | None] = {}
    for band in model_bands:
        want = canonical(band)
        alt = AERIAL_TO_S2.get(want or "") or S2_TO_AERIAL.get(want or "")
        if want and want in canon:
            out[band] = canon.index(want) + 1
        else:
            out[band] = canon.index(alt) + 1 if alt and alt in canon else None
    return out


def missing_bands(mapping: dict[str, int | None]) -> list[str]:
    return [band for band, idx in mapping.items() if idx is None]


def mapping_option(mapping: dict[str, int | None]) -> str:
    """The service's ``bands`` form ``model_band=layer_band,...``."""
    return ",".join(f"{band}={idx}" for band, idx in mapping.items() if idx is not None)


def names_to_mapping(model_bands: Sequence[str], names_text: str) -> dict[str, int | None]:
    """From the user's names of the layer's bands in order, e.g. ``B02,B03,B04``."""
    names = [n.strip() for n in names_text.split(",") if n.strip()]
    return auto_mapping(model_bands, names)
