"""The installed models' names as last listed by the service, kept in QgsSettings, so Processing can offer
them as a list without starting the service when QGIS loads its algorithms."""

from __future__ import annotations

import json
from collections.abc import Sequence

from qgis.core import QgsApplication, QgsSettings

from .settings import PREFIX

KEY = PREFIX + "models"
SHIPPED = ["sentinel2-eurosat", "aerial-rgb"]  # the backend's zoo: offered before the service was ever asked


def known_models() -> list[str]:
    try:
        names = json.loads(QgsSettings().value(KEY, "[]", type=str) or "[]")
    except ValueError:
        names = []
    return [n for n in names if isinstance(n, str)] or list(SHIPPED)


def remember_models(names: Sequence[str], refresh: bool = True) -> bool:
    """Store the service's list; when it changed, reload the Processing algorithms so their lists show it
    (``refresh``; not from inside a running algorithm)."""
    names = list(names)
    if not names or names == known_models():
        return False
    QgsSettings().setValue(KEY, json.dumps(names))
    provider = QgsApplication.processingRegistry().providerById("rs_scene")
    if refresh and provider is not None:
        provider.refreshAlgorithms()
    return True
