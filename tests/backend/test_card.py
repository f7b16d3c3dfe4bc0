"""Model file = weights + card: round trip, and refusal of files that could run code."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch
from rs_scene.card import (
    ModelCard,
    load_model_file,
    make_classes,
    read_card,
    save_model,
)
from rs_scene.engine.infer import load_model
from rs_scene.errors import RSSceneError
from rs_scene.methods import build_inference_model


def tiny_card(**kw) -> ModelCard:
    base = {"name": "tiny", "classes": make_classes(["water", "forest", "urban"]),
            "bands": ["red", "green", "blue"], "architecture": "resnet18", "mean": [0.4, 0.4, 0.4],
            "std": [0.2, 0.2, 0.2], "tile_size": 64, "input_size": 64, "gsd": 1.0,
            "training": {"data": "synthetic"}, "metrics": {"heldout": {"overall_accuracy": 0.5}}}
    base.update(kw)
    return ModelCard(**base)


def test_round_trip(tmp_path: Path) -> None:
    card = tiny_card()
    model = build_inference_model(card)
    path = save_model(tmp_path / "tiny.pt", card, model.state_dict())
    card2, state = load_model_file(path)
    assert card2.to_dict() == {**card.to_dict(), "versions": card2.versions}
    assert card2.versions["torch"] == torch.__version__
    assert set(state) == set(model.state_dict())
    for k, v in model.state_dict().items():
        assert torch.equal(state[k], v)
    _, loaded, _ = load_model(str(path), torch.device("cpu"))
    x = torch.randn(2, 3, 64, 64)
    model.eval()
    assert torch.allclose(loaded(x), model(x))
    assert read_card(path).class_names == ["water", "forest", "urban"]


class Evil:
    def __reduce__(self):
        return (print, ("this would run code",))


def test_pickled_code_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"format": "rs-scene-model/1", "card": "{}", "state_dict": {}, "payload": Evil()}, path)
    with pytest.raises(RSSceneError, match="refusing to load"):
        load_model_file(path)


def test_whole_module_pickle_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "module.pt"
    torch.save(torch.nn.Linear(2, 2), path)
    with pytest.raises(RSSceneError, match="refusing to load"):
        read_card(path)


def test_other_files_are_refused(tmp_path: Path) -> None:
    plain = tmp_path / "plain.pt"
    torch.save({"weight": torch.zeros(2)}, plain)
    with pytest.raises(RSSceneError, match="not an RS Scene model file"):
        read_card(plain)
    text = tmp_path / "text.pt"
    text.write_text("hello")
    with pytest.raises(RSSceneError):
        read_card(text)
    with pytest.raises(RSSceneError, match="not found"):
        read_card(tmp_path / "missing.pt")
    assert pickle  # the module is imported for the Evil payload's protocol


def test_card_validation(tmp_path: Path) -> None:
    with pytest.raises(RSSceneError, match="one value per band"):
        save_model(tmp_path / "bad.pt", tiny_card(mean=[0.1]), {})
    with pytest.raises(RSSceneError, match="does not exist"):
        save_model(tmp_path / "nope" / "bad.pt", tiny_card(), {})
    assert not list(tmp_path.iterdir()), "nothing half-written"
