"""Installed models: the defaults shipped in the package and the user's own folder."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .card import ModelCard, read_card
from .errors import RSSceneError

SHIPPED_DIR = Path(__file__).parent / "zoo"


def user_models_dir() -> Path:
    env = os.environ.get("RS_SCENE_MODELS")
    if env:
        return Path(env)
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "rs-scene" / "models"


def model_files() -> list[Path]:
    files: dict[str, Path] = {}
    for folder in (SHIPPED_DIR, user_models_dir()):  # user models override shipped ones of the same name
        if folder.is_dir():
            for f in sorted(folder.glob("*.pt")):
                files[f.stem] = f
    return list(files.values())


def list_models() -> list[dict[str, Any]]:
    """Cards of all installed models, each with its ``path``; unreadable files are reported, not hidden."""
    out = []
    for f in model_files():
        try:
            card = read_card(f)
            out.append({**card.to_dict(), "path": str(f)})
        except RSSceneError as exc:
            out.append({"name": f.stem, "path": str(f), "error": str(exc)})
    return out


def resolve_model(name_or_path: str) -> Path:
    """A model file path from an installed model's name or a path to a ``.pt`` file."""
    p = Path(name_or_path)
    if p.suffix == ".pt" or os.sep in name_or_path:
        if not p.exists():
            raise RSSceneError(f"model file not found: {p}")
        return p
    for f in model_files():
        if f.stem == name_or_path:
            return f
    names = ", ".join(f.stem for f in model_files()) or "none"
    raise RSSceneError(f"unknown model '{name_or_path}'; installed models: {names}")


def card_of(name_or_path: str) -> ModelCard:
    return read_card(resolve_model(name_or_path))
