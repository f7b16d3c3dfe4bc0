"""Method registry. A sixth method is one new file with ``@register_method``."""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

from torch import nn

from ..card import ModelCard
from ..errors import RSSceneError
from .base import Method

_METHODS: dict[str, type[Method]] = {}


def register_method(cls: type[Method]) -> type[Method]:
    _METHODS[cls.name] = cls
    return cls


def get_method(name: str) -> type[Method]:
    if name not in _METHODS:
        raise RSSceneError(f"unknown method '{name}'; known methods: {', '.join(sorted(_METHODS))}")
    return _METHODS[name]


def _option(f: dataclasses.Field[Any], hints: dict[str, Any]) -> dict[str, Any]:
    meta = dict(f.metadata)
    default = f.default if f.default is not dataclasses.MISSING else None
    hint = hints.get(f.name, f.type)
    type_name = getattr(hint, "__name__", str(hint)).replace("typing.", "")
    return {"name": f.name, "type": type_name, "default": default,
            "choices": meta.get("choices"), "help": meta.get("help", "")}


def list_methods() -> list[dict[str, Any]]:
    """Each method with its options (name, type, default, choices, help): enough for a GUI form."""
    out = []
    for name in sorted(_METHODS):
        cls = _METHODS[name]
        hints = typing.get_type_hints(cls.Config)
        out.append({"name": name, "description": cls.description, "paper": cls.paper,
                    "options": [_option(f, hints) for f in dataclasses.fields(cls.Config)]})
    return out


def create_method(name: str, options: dict[str, Any] | None = None, **kwargs: Any) -> Method:
    """Instantiate method ``name``; unknown options are an error that lists the valid ones."""
    cls = get_method(name)
    valid = {f.name: f for f in dataclasses.fields(cls.Config)}
    options = dict(options or {})
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise RSSceneError(
            f"method '{name}' has no option(s) {', '.join(unknown)}; options: {', '.join(valid)}")
    for key, value in options.items():
        choices = valid[key].metadata.get("choices")
        if choices and value not in choices:
            raise RSSceneError(f"method '{name}': option {key}={value!r} must be one of {', '.join(choices)}")
    if "min_steps" in valid and "epochs" in options and "min_steps" not in options:
        options["min_steps"] = 0  # epochs given: exactly that many (min_steps only lifts the default)
    return cls(cls.Config(**options), **kwargs)


def build_inference_model(card: ModelCard) -> nn.Module:
    """The nn.Module for a model card (weights not loaded): ``forward(x) -> logits``."""
    return get_method(card.method).inference_model(card)
