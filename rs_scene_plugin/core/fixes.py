"""The service's warnings and errors name CLI flags (``--input-scale``, ``--gsd native``); in QGIS they name the
dialog's field instead, and a warning that says what to set comes with that fix, for a button to apply."""

from __future__ import annotations

import re
from dataclasses import dataclass

#: CLI flag -> field key
FLAGS = {"--input-scale": "input_scale", "--gsd": "gsd", "--tile-size": "tile_size", "--stride": "stride",
         "--bands": "bands", "--nodata": "nodata", "--edge": "edge", "--extent": "extent", "--mask": "extent"}
DIALOG_FIELDS = {"input_scale": "Input scale", "gsd": "GSD", "tile_size": "Tile size", "stride": "Stride",
                 "bands": "Band mapping", "nodata": "Extra nodata", "edge": "Edge tiles", "extent": "Extent"}
PROCESSING_FIELDS = {"input_scale": "Input scale (INPUT_SCALE)", "gsd": "GSD (GSD)",
                     "tile_size": "Tile size (TILE_SIZE)", "stride": "Stride (STRIDE)", "bands": "Bands (BANDS)",
                     "nodata": "Extra nodata (NODATA)", "edge": "Edge tiles (EDGE)", "extent": "Extent (EXTENT)"}


@dataclass(frozen=True)
class Fix:
    key: str  # the field: "input_scale", "gsd"
    value: float | str
    label: str  # the button's text: "Set Input scale to 1000"


_SCALE = re.compile(r"--input-scale,? e\.g\. ([0-9.eE+]+)")
_NATIVE = re.compile(r"--gsd native")


def fixes(text: str, fields: dict[str, str] = DIALOG_FIELDS) -> list[Fix]:
    """The one-click fixes a message prescribes (read from its CLI wording, before :func:`for_fields`)."""
    out = []
    m = _SCALE.search(text)
    if m:
        value = float(m.group(1))
        out.append(Fix("input_scale", value, f"Set {fields['input_scale']} to {value:g}"))
    if _NATIVE.search(text):
        out.append(Fix("gsd", "native", f"Set {fields['gsd']} to native"))
    return out


def for_fields(text: str, fields: dict[str, str] = DIALOG_FIELDS) -> str:
    """``text`` with each CLI flag replaced by the field's name: "set the input scale (Input scale, e.g.
    1000)", "or GSD native"."""
    def name(m: re.Match) -> str:
        return fields[FLAGS[m.group(0)]]

    flags = "|".join(re.escape(f) for f in sorted(FLAGS, key=len, reverse=True))
    return re.sub(f"(?:{flags})\\b", name, text)
