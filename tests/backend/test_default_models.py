"""The shipped default models: cards, size, and accuracy on held-out data computed by ``rs-scene evaluate``."""

from __future__ import annotations

import json

import pytest
from conftest import SHARED, run_cli


def test_models_listed_with_cards() -> None:
    models = {m["name"]: m for m in json.loads(run_cli("models", "--json", check=True).stdout)}
    assert {"aerial-rgb", "sentinel2-eurosat"} <= set(models)
    s2, rgb = models["sentinel2-eurosat"], models["aerial-rgb"]
    assert s2["bands"] == ["B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12"]
    assert s2["value_scale"] == 10000 and rgb["value_scale"] == 255
    assert len(rgb["classes"]) == 21 and len(s2["classes"]) == 10
    for m in (s2, rgb):
        assert m["architecture"] == "efficientnet_lite0"
        assert m["training"]["n_heldout"] > 0 and "held out" in m["training"]["heldout_rule"]
        assert all(c["color"].startswith("#") for c in m["classes"])
        import os

        assert os.path.getsize(m["path"]) <= 25 * 1024 * 1024


@pytest.mark.parametrize("model,data,n,target", [
    ("aerial-rgb", "ucmerced", 105, 0.92),
    ("sentinel2-eurosat", "eurosat_ms", 39, 0.85),
])
def test_heldout_accuracy(model: str, data: str, n: int, target: float) -> None:
    result = json.loads(run_cli("evaluate", "--model", model, "--data", SHARED / data, "--json", check=True).stdout)
    assert result["split"].startswith("held-out")
    assert result["n"] == n
    assert result["overall_accuracy"] >= target, result["overall_accuracy"]
    cm = result["confusion_matrix"]
    assert sum(map(sum, cm)) == n
    assert sum(cm[i][i] for i in range(len(cm))) / n == pytest.approx(result["overall_accuracy"])
    assert set(result["per_class"]) == set(result["classes"])
