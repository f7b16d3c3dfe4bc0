"""What the algorithms share: the backend manager, model lookup and band checks with clear messages."""

from __future__ import annotations

from typing import Any

from qgis.core import (
    Qgis,
    QgsProcessingAlgorithm,
    QgsProcessingException,
    QgsRasterLayer,
)

from ..core.backend import BackendManager
from ..core.bands import mapping_option, missing_bands, names_to_mapping
from ..core.client import BackendError
from ..core.model_list import remember_models
from ..core.pixels import gdal_band_names


class RSSceneAlgorithm(QgsProcessingAlgorithm):
    def __init__(self, manager: BackendManager) -> None:
        super().__init__()
        self.manager = manager

    def createInstance(self):
        return type(self)(self.manager)

    def group(self) -> str:
        return "Scene classification"

    def groupId(self) -> str:
        return "scene"

    def client(self):
        try:
            return self.manager.client()
        except BackendError as exc:
            raise QgsProcessingException(str(exc)) from exc

    def model_card(self, model: str) -> dict[str, Any]:
        models = [m for m in self.client().models() if "error" not in m]
        remember_models([m["name"] for m in models], refresh=False)
        for m in models:
            if model in (m["name"], m.get("path")):
                return m
        if model.endswith(".pt"):
            return {"name": model, "path": model, "classes": [], "bands": []}
        names = ", ".join(m["name"] for m in models) or "none"
        raise QgsProcessingException(f"Unknown model '{model}'. Installed models: {names}")


def band_option(layer: QgsRasterLayer, card: dict[str, Any], bands: str) -> str | None:
    """The service's band mapping for ``layer``, or QgsProcessingException naming the missing bands."""
    bands = (bands or "").strip()
    if bands and "=" in bands:
        return bands
    if bands:
        names = [b.strip() for b in bands.split(",") if b.strip()]
        if len(names) != layer.bandCount():
            raise QgsProcessingException(
                f"BANDS names {len(names)} bands but layer '{layer.name()}' has {layer.bandCount()}: name every "
                "band in order (e.g. B02,B03,...) or map them as model_band=layer_band (e.g. B02=1,B03=2)")
        mapping = names_to_mapping(card.get("bands", []), bands)
    else:
        from ..core.derive import layer_mapping

        mapping, _ = layer_mapping(card, gdal_band_names(layer), layer.bandCount(),
                                   layer.dataProvider().dataType(1) == Qgis.Byte)
    missing = missing_bands(mapping)
    if missing:
        known = ", ".join(n or "?" for n in gdal_band_names(layer))
        raise QgsProcessingException(
            f"Layer '{layer.name()}' lacks band(s) {', '.join(missing)} needed by model '{card['name']}' "
            f"(its {layer.bandCount()} bands are named: {known}). Name the layer's bands in BANDS, e.g. "
            + ",".join(card.get("bands", [])[: layer.bandCount()]))
    return mapping_option(mapping) or None
