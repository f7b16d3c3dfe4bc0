"""Range checks of numeric options, shared by the CLI (``--tile-size``) and the service (``'tile_size'``): a
value out of range is an error naming the option, never a silent fall-back to a default."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

from .errors import RSSceneError

Label = Callable[[str], str]


def cli_label(key: str) -> str:
    return "--" + key.replace("_", "-")


def field_label(key: str) -> str:
    return f"field '{key}'"


#: key -> (rule, whether None is allowed). Rules: "pos" > 0, "int1" integer >= 1, "int0" integer >= 0,
#: "frac" in [0, 1], "frac_open" in [0, 1), "any" any finite number, "gsd" > 0 or 'native', "nodata" any
#: number (NaN too: a float raster's nodata may be NaN).
CLASSIFY_RULES = {
    "tile_size": "int1", "stride": "int1", "input_scale": "pos", "gsd": "gsd", "min_valid": "frac",
    "batch_size": "int1", "threads": "int1", "streams": "int1", "nodata": "nodata",
}
TRAIN_RULES = {
    "epochs": "int1", "batch_size": "int1", "lr": "pos", "tile_size": "int1", "stride": "int1",
    "min_overlap": "frac", "block": "int1", "value_scale": "pos", "input_scale": "pos", "image_size": "int1",
    "input_size": "int1", "val_fraction": "frac_open", "patience": "int0",
}


def _bad(rule: str, value: Any) -> str | None:
    """Why ``value`` breaks ``rule``, or None when it is fine."""
    if rule == "gsd" and value == "native":
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"must be a number, not {value!r}"
    if rule == "nodata":
        return None if not math.isinf(value) else f"must be a finite number (or NaN), not {value}"
    if not math.isfinite(value):
        return f"must be a finite number, not {value}"
    if rule in ("int1", "int0") and value != int(value):
        return f"must be a whole number, not {value}"
    limits = {
        "pos": (value > 0, "must be greater than 0"),
        "gsd": (value > 0, "must be greater than 0 metres (or 'native')"),
        "int1": (value >= 1, "must be at least 1"),
        "int0": (value >= 0, "must be 0 or more"),
        "frac": (0 <= value <= 1, "must be between 0 and 1"),
        "frac_open": (0 <= value < 1, "must be at least 0 and below 1"),
        "any": (True, ""),
    }
    ok, text = limits[rule]
    return None if ok else f"{text}, not {value:g}"


def check_numbers(values: dict[str, Any], rules: dict[str, str], label: Label) -> None:
    """Every key of ``values`` that has a rule and is not None must keep it."""
    for key, rule in rules.items():
        value = values.get(key)
        if value is None:
            continue
        why = _bad(rule, value)
        if why:
            raise RSSceneError(f"{label(key)} {why}")


def check_extent(ext: Any, label: str) -> tuple[float, float, float, float] | None:
    if ext is None:
        return None
    if (not isinstance(ext, (list, tuple)) or len(ext) != 4
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in ext)):
        raise RSSceneError(f"{label} must be four numbers xmin,ymin,xmax,ymax")
    if not all(math.isfinite(v) for v in ext):
        raise RSSceneError(f"{label} {list(ext)} must be four finite numbers (no NaN or infinity)")
    if ext[0] >= ext[2] or ext[1] >= ext[3]:
        raise RSSceneError(f"{label} {list(ext)} is empty (need xmin < xmax and ymin < ymax)")
    return tuple(float(v) for v in ext)  # type: ignore[return-value]


def method_option_rule(key: str) -> str:
    """The range rule of a method option by its name (the methods' Config fields)."""
    if key == "warmup_epochs":
        return "int0"
    if key.endswith("epochs") or key in ("batch_size", "hidden", "proj_dim", "num_classes"):
        return "int1"
    if key == "lr" or key.endswith("_lr") or key.startswith("lr_") or key == "temperature":
        return "pos"
    if key in ("dropout", "p", "p_grey") or key.endswith("weight_decay"):
        return "frac"
    return "any"


def zero_means_default(config: type) -> set[str]:
    """The options of a method's Config whose help says what 0 means ("0 = the paper's rate"): 0 is valid."""
    return {f.name for f in dataclasses.fields(config) if "0 =" in f.metadata.get("help", "")}


def check_method_options(options: dict[str, Any], label: Label, zero_ok: set[str] | None = None) -> None:
    """Numbers among a method's options in range (epochs >= 1, lr > 0, ...); all of them finite. The options
    in ``zero_ok`` (:func:`zero_means_default`) may also be 0."""
    numbers = {k: v for k, v in options.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
               and not (k in (zero_ok or set()) and v == 0)}
    check_numbers(numbers, {k: method_option_rule(k) for k in numbers}, label)
